//! Shared fixtures for the host integration tests: real datasets, real
//! training, real blobs.

use std::path::PathBuf;

use trainer::data::Dataset;
use trainer::export;
use trainer::spec::{load_spec, ModelSpec};
use trainer::train::Mlp;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A spec from `models/specs/`, with its epochs cut to `epochs` to keep tests fast.
pub fn spec(name: &str, epochs: usize) -> ModelSpec {
    let mut spec = load_spec(&repo_root().join("models/specs").join(name)).expect("spec loads");
    spec.training.epochs = epochs;
    spec
}

/// A trained model with its train and test splits.
pub struct Trained {
    pub mlp: Mlp,
    pub train: Dataset,
    pub test: Dataset,
    pub f32_blob: Vec<u8>,
    pub int8_blob: Vec<u8>,
}

/// Train `spec` in-process and export both blobs in memory.
pub fn train(spec: &ModelSpec) -> Trained {
    let (train, test) = export::load_split(spec).expect("dataset splits");
    let normalization = trainer::data::fit_normalization(&train);
    let (mlp, _) = trainer::train::train(
        &spec.model,
        &spec.training,
        normalization,
        &train,
        &test,
        false,
    )
    .expect("training runs");
    let calibration = mlp.normalize(&train.features);
    let quantized = trainer::quantize::quantize_mlp(&mlp, &calibration).expect("quantizes");
    let f32_blob = export::f32_blob(&mlp).expect("f32 blob");
    let int8_blob = export::int8_blob(&quantized, &mlp).expect("int8 blob");
    Trained {
        mlp,
        train,
        test,
        f32_blob,
        int8_blob,
    }
}
