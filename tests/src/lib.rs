//! Shared fixtures for the host integration tests: real datasets, real
//! training, real blobs.

use std::path::PathBuf;

use runtime::format::{self, Envelope, LayerDef, ModelHeader, FORMAT_VERSION, MAGIC};

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

/// Re-seal a (possibly inconsistent) header and layers without validating,
/// as a hostile or buggy writer would: the CRC is correct, the content need not be.
pub fn seal_raw(header: &ModelHeader, layers: &[LayerDef]) -> Vec<u8> {
    let mut payload = postcard::to_stdvec(header).expect("header encodes");
    for l in layers {
        payload.extend(postcard::to_stdvec(l).expect("layer encodes"));
    }
    let envelope = Envelope {
        magic: MAGIC,
        version: FORMAT_VERSION,
        crc: format::checksum(&payload),
        payload: &payload,
    };
    postcard::to_stdvec(&envelope).expect("envelope encodes")
}

/// Decode a valid blob into its header and layers (the tests' own parser).
pub fn open(blob: &[u8]) -> (ModelHeader<'_>, Vec<LayerDef<'_>>) {
    let envelope: Envelope = postcard::from_bytes(blob).expect("envelope decodes");
    let (header, mut rest) =
        postcard::take_from_bytes::<ModelHeader>(envelope.payload).expect("header decodes");
    let mut layers = Vec::new();
    while !rest.is_empty() {
        let (l, tail) = postcard::take_from_bytes::<LayerDef>(rest).expect("layer decodes");
        layers.push(l);
        rest = tail;
    }
    (header, layers)
}

/// Every exported blob (`models/exported/*/*.bin`), with its path, sorted.
pub fn exported_blobs() -> Vec<(PathBuf, Vec<u8>)> {
    let mut blobs = Vec::new();
    let root = repo_root().join("models/exported");
    for dir in std::fs::read_dir(&root)
        .expect("models/exported exists")
        .flatten()
    {
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if file.path().extension().is_some_and(|e| e == "bin") {
                blobs.push((file.path(), std::fs::read(file.path()).expect("blob reads")));
            }
        }
    }
    blobs.sort();
    assert!(
        !blobs.is_empty(),
        "no exported blobs under {}",
        root.display()
    );
    blobs
}
