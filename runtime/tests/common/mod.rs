//! Fixtures shared by the runtime's integration tests: the real exported
//! blobs of `models/exported/`, and a raw writer and reader for them.

#![allow(dead_code)]

use std::path::PathBuf;

use runtime::format::{self, Envelope, LayerDef, ModelHeader, FORMAT_VERSION, MAGIC};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// An exported blob, `models/exported/<model>/<file>`.
pub fn exported(model: &str, file: &str) -> Vec<u8> {
    let path = repo_root().join("models/exported").join(model).join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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

/// Decode a valid blob into its header and layers with serde's decoder (the
/// tests' own parser, independent of the runtime's).
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
