//! Bad model bytes and bad caller buffers: every failure is its named error,
//! nothing panics. Run on real blobs: the exported iris MLP.

use std::sync::OnceLock;

use runtime::format::{LayerDef, ModelHeader, FORMAT_VERSION};
use runtime::{Arena, Error, Model};

mod common;
use common::{exported, open, seal_raw};

/// The exported iris blobs.
struct Blobs {
    f32_blob: Vec<u8>,
    int8_blob: Vec<u8>,
}

fn trained() -> &'static Blobs {
    static BLOBS: OnceLock<Blobs> = OnceLock::new();
    BLOBS.get_or_init(|| Blobs {
        f32_blob: exported("iris-mlp", "f32.bin"),
        int8_blob: exported("iris-mlp", "int8.bin"),
    })
}

#[test]
fn real_blobs_load() {
    for blob in [&trained().f32_blob, &trained().int8_blob] {
        let model = Model::from_bytes(blob).unwrap();
        assert_eq!(model.input_len(), 4);
        // Sealing the parsed parts again gives the same bytes: the test's seal matches the encoder.
        let (h, l) = open(blob);
        assert_eq!(&seal_raw(&h, &l), blob);
    }
}

#[test]
fn every_truncation_is_truncated() {
    for blob in [&trained().f32_blob, &trained().int8_blob] {
        for len in 0..blob.len() {
            assert_eq!(
                Model::from_bytes(&blob[..len]).err(),
                Some(Error::Truncated),
                "prefix of {len} bytes"
            );
        }
    }
}

#[test]
fn every_single_bit_flip_is_rejected_by_name() {
    for blob in [&trained().f32_blob, &trained().int8_blob] {
        for byte in 0..blob.len() {
            for bit in 0..8 {
                let mut bad = blob.clone();
                bad[byte] ^= 1 << bit;
                let err = Model::from_bytes(&bad)
                    .err()
                    .unwrap_or_else(|| panic!("flip at {byte}.{bit} accepted"));
                match byte {
                    0..=3 => assert_eq!(err, Error::BadMagic),
                    4..=5 => assert!(matches!(err, Error::UnsupportedVersion { .. })),
                    6..=9 => assert!(matches!(err, Error::BadCrc { .. })),
                    // The payload length varint: too long reads past the end, too short leaves bytes over.
                    10..=12 if !matches!(err, Error::BadCrc { .. }) => {
                        assert!(
                            matches!(err, Error::Truncated | Error::Malformed),
                            "{err:?}"
                        )
                    }
                    _ => assert!(
                        matches!(err, Error::BadCrc { .. }),
                        "flip at {byte}.{bit}: {err:?}"
                    ),
                }
            }
        }
    }
}

#[test]
fn wrong_magic() {
    let mut bad = trained().f32_blob.clone();
    bad[..4].copy_from_slice(b"GGUF");
    assert_eq!(Model::from_bytes(&bad).err(), Some(Error::BadMagic));
    assert_eq!(Model::from_bytes(b"\x7fELF").err(), Some(Error::BadMagic));
}

#[test]
fn newer_version() {
    let mut bad = trained().int8_blob.clone();
    bad[4..6].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert_eq!(
        Model::from_bytes(&bad).err(),
        Some(Error::UnsupportedVersion {
            found: FORMAT_VERSION + 1,
            supported: FORMAT_VERSION
        })
    );
}

#[test]
fn crc_mismatch() {
    let mut bad = trained().f32_blob.clone();
    let last = bad.len() - 1;
    bad[last] = bad[last].wrapping_add(1);
    assert!(matches!(Model::from_bytes(&bad), Err(Error::BadCrc { .. })));
}

#[test]
fn declared_arena_that_lies() {
    let (mut header, layers) = open(&trained().f32_blob);
    let needed = header.arena_bytes;
    header.arena_bytes = needed - 4;
    let bad = seal_raw(&header, &layers);
    assert_eq!(
        Model::from_bytes(&bad).err(),
        Some(Error::ArenaSizeMismatch {
            declared: needed - 4,
            needed
        })
    );
}

#[test]
fn layer_count_beyond_capacity() {
    let (mut header, layers) = open(&trained().f32_blob);
    header.layer_count = 1000;
    let bad = seal_raw(&header, &layers);
    assert_eq!(
        Model::from_bytes(&bad).err(),
        Some(Error::TooManyLayers {
            found: 1000,
            max: 32
        })
    );
}

#[test]
fn dimensions_over_the_limit() {
    let (mut header, layers) = open(&trained().f32_blob);
    header.input_len = 100_000;
    let bad = seal_raw(&header, &layers);
    assert_eq!(
        Model::from_bytes(&bad).err(),
        Some(Error::DimensionOutOfRange {
            layer: u32::MAX,
            value: 100_000
        })
    );
}

#[test]
fn shapes_that_do_not_chain() {
    let (header, mut layers) = open(&trained().f32_blob);
    // Drop the first dense layer: the second no longer takes the input width.
    let first_dense = layers
        .iter()
        .position(|l| matches!(l, LayerDef::DenseF32 { .. }))
        .unwrap();
    layers.remove(first_dense);
    let next_dense = layers
        .iter()
        .position(|l| matches!(l, LayerDef::DenseF32 { .. }))
        .unwrap();
    let header = ModelHeader {
        layer_count: layers.len() as u32,
        ..header
    };
    let bad = seal_raw(&header, &layers);
    assert_eq!(
        Model::from_bytes(&bad).err(),
        Some(Error::ShapeMismatch {
            layer: next_dense as u32
        })
    );
}

#[test]
fn too_small_arena_wrong_input_and_wrong_path() {
    let model = Model::from_bytes(&trained().f32_blob).unwrap();
    let needed = model.arena_bytes();
    let mut arena = Arena::<4096>::new();
    let bytes = arena.as_mut_bytes();
    assert_eq!(
        model.run_f32(&[0.0; 4], &mut bytes[..needed - 1]).err(),
        Some(Error::ArenaTooSmall {
            needed,
            given: needed - 1
        })
    );
    assert_eq!(
        model.run_f32(&[0.0; 3], bytes).err(),
        Some(Error::WrongInputLength {
            expected: 4,
            given: 3
        })
    );
    assert_eq!(
        model.run_f32(&[0.0; 4], &mut bytes[1..]).err(),
        Some(Error::ArenaMisaligned)
    );
    assert_eq!(
        model.run_i8(&[0; 4], bytes).err(),
        Some(Error::WrongNumericPath)
    );
    assert!(model.run_f32(&[5.1, 3.5, 1.4, 0.2], bytes).is_ok());

    let model = Model::from_bytes(&trained().int8_blob).unwrap();
    assert_eq!(
        model.run_i8(&[0; 5], bytes).err(),
        Some(Error::WrongInputLength {
            expected: 4,
            given: 5
        })
    );
    assert_eq!(
        model
            .run_i8(&[0; 4], &mut bytes[..model.arena_bytes() - 1])
            .err(),
        Some(Error::ArenaTooSmall {
            needed: model.arena_bytes(),
            given: model.arena_bytes() - 1
        })
    );
}

#[test]
fn non_finite_input_is_defined() {
    let f32_model = Model::from_bytes(&trained().f32_blob).unwrap();
    let mut arena = Arena::<4096>::new();
    let out = f32_model
        .run_f32(&[f32::NAN, 1.0, 1.0, 1.0], arena.as_mut_bytes())
        .unwrap();
    assert!(
        out.iter().all(|v| v.is_nan()),
        "NaN propagates on the f32 path: {out:?}"
    );
    assert_eq!(runtime::argmax(out), 0, "argmax of all-NaN is 0");
    let int8_model = Model::from_bytes(&trained().int8_blob).unwrap();
    let q = int8_model.input_quant().unwrap();
    let mut quantized = [0i8; 4];
    int8_model
        .quantize_input(
            &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0],
            &mut quantized,
        )
        .unwrap();
    assert_eq!(
        quantized[0], q.zero_point,
        "NaN quantizes to the zero point"
    );
    assert_eq!(&quantized[1..3], &[127, -128], "infinities saturate");
    assert!(int8_model.run_i8(&quantized, arena.as_mut_bytes()).is_ok());
}
