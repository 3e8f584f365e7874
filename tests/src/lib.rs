//! Shared fixtures for the host integration tests: real datasets, real
//! training, real blobs.

use std::path::PathBuf;

use trainer::dataset::{self, Dataset, Normalization};
use trainer::dense::{quantize, Mlp};
use trainer::mlp::{MlpFamily, MlpSpec};
use trainer::spec::Spec;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// An MLP spec from `models/specs/`, with its epochs cut to `epochs` to keep tests fast.
pub fn spec(name: &str, epochs: usize) -> Spec<MlpSpec> {
    let path = repo_root().join("models/specs").join(name);
    let mut spec = trainer::family::load(&MlpFamily, &path).expect("spec loads");
    spec.training.as_mut().expect("[training]").epochs = epochs;
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

/// Train `spec` in-process and export both blobs in memory (int8
/// calibrated on every training row).
pub fn train(spec: &Spec<MlpSpec>) -> Trained {
    let (train, test) =
        dataset::load_split(spec.dataset().expect("[dataset]"), &spec.dir).expect("dataset splits");
    let normalization = Normalization::per_feature(&train);
    let (mlp, _) = trainer::mlp::train::classifier(
        &spec.family.layers,
        spec.training().expect("[training]"),
        normalization,
        &train,
        &test,
        false,
    )
    .expect("training runs");
    let calibration = mlp.normalize(&train.features);
    let quantized = quantize::quantize(&mlp, &calibration).expect("quantizes");
    let f32_blob = mlp.f32_blob().and_then(|b| b.encode()).expect("f32 blob");
    let int8_blob = quantized.blob(&mlp).encode().expect("int8 blob");
    Trained {
        mlp,
        train,
        test,
        f32_blob,
        int8_blob,
    }
}
