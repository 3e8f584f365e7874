//! Property tests over every exported blob (`models/exported/*/*.bin`, all
//! model kinds): random mutations never panic the loader, always give a valid
//! model or a named error, and a model that validates runs on any input.

use std::sync::OnceLock;

use proptest::prelude::*;
use runtime::format::LayerDef;
use runtime::{Error, Model, Numeric};
mod common;
use common::{exported_blobs, open, seal_raw};

/// Run a model on `input` (cut or padded to its input length) through the
/// public API a firmware uses (as `fuzz/src/lib.rs`'s `run_any` does; the
/// fuzz crate is outside the workspace).
fn run(model: &Model, input: &[f32]) -> Result<(), Error> {
    let mut x = input.to_vec();
    x.resize(model.input_len(), 0.0);
    let mut words = vec![0u32; model.arena_bytes().div_ceil(4)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    if model.is_seq2seq() {
        // Encoder-decoders: a window of the input repeated, then the whole horizon.
        let mut state_words = vec![0u32; model.state_bytes().div_ceil(4)];
        let state: &mut [u8] = bytemuck::cast_slice_mut(&mut state_words);
        let (window, horizon) = (model.window(), model.horizon());
        return match model.numeric() {
            Numeric::F32 => {
                let mut out = vec![0.0; horizon * model.output_len()];
                model.forecast_f32(&x.repeat(window), horizon, state, arena, &mut out)
            }
            Numeric::Int8 => {
                let mut q = vec![0i8; x.len()];
                model.quantize_input(&x, &mut q)?;
                let mut out = vec![0i8; horizon * model.output_len()];
                model.forecast_i8(&q.repeat(window), horizon, state, arena, &mut out)
            }
        };
    }
    if model.is_recurrent() {
        // Recurrent models: the input is one time step of a two-step sequence.
        let mut state_words = vec![0u32; model.state_bytes().div_ceil(4)];
        let state: &mut [u8] = bytemuck::cast_slice_mut(&mut state_words);
        let xs = [x.as_slice(), x.as_slice()].concat();
        return match model.numeric() {
            Numeric::F32 => model.run_sequence_f32(&xs, state, arena).map(|_| ()),
            Numeric::Int8 => {
                let mut q = vec![0i8; x.len()];
                model.quantize_input(&x, &mut q)?;
                let qs = [q.as_slice(), q.as_slice()].concat();
                model.run_sequence_i8(&qs, state, arena).map(|_| ())
            }
        };
    }
    let mut q = vec![0i8; x.len()];
    if model.numeric() == Numeric::Int8 {
        model.quantize_input(&x, &mut q)?;
    }
    if model.is_causal() {
        // Causal transformers: token by token through the key/value cache too.
        let mut state_words = vec![0u32; model.state_bytes().div_ceil(4)];
        let state: &mut [u8] = bytemuck::cast_slice_mut(&mut state_words);
        match model.numeric() {
            Numeric::F32 => model.run_sequence_f32(&x, state, arena).map(|_| ())?,
            Numeric::Int8 => model.run_sequence_i8(&q, state, arena).map(|_| ())?,
        }
    }
    match model.numeric() {
        Numeric::F32 => model.run_f32(&x, arena).map(|_| ()),
        Numeric::Int8 => model.run_i8(&q, arena).map(|_| ()),
    }
}

/// Every exported blob, read once; each must load and run unmutated.
fn blobs() -> &'static [Vec<u8>] {
    static BLOBS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    BLOBS.get_or_init(|| {
        exported_blobs()
            .into_iter()
            .map(|(path, blob)| {
                {
                    let model = Model::from_bytes(&blob)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    assert_eq!(run(&model, &[]), Ok(()), "{} runs", path.display());
                }
                blob
            })
            .collect()
    })
}

/// One blob chosen by the strategy.
fn pick(which: &prop::sample::Index) -> &'static Vec<u8> {
    which.get(blobs())
}

/// Recompute the CRC of a blob whose envelope still parses, so mutations
/// reach the structural checks behind it.
fn reseal(blob: &mut [u8]) {
    if let Ok((envelope, _)) = postcard::take_from_bytes::<runtime::format::Envelope>(blob) {
        let crc = runtime::format::checksum(envelope.payload);
        blob[6..10].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The loader's answer to mutated bytes; if it validates, it must run.
fn check(blob: &[u8], input: &[f32]) -> Result<(), TestCaseError> {
    if let Ok(model) = Model::from_bytes(blob) {
        prop_assert_eq!(run(&model, input), Ok(()));
    }
    Ok(())
}

fn any_input() -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(
        prop_oneof![
            any::<f32>(),
            Just(f32::NAN),
            Just(f32::INFINITY),
            -1e3f32..1e3
        ],
        0..64,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn truncations_are_truncated(which in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
        let blob = pick(&which);
        let len = cut.index(blob.len());
        prop_assert_eq!(Model::from_bytes(&blob[..len]).err(), Some(Error::Truncated));
    }

    #[test]
    fn byte_mutations_never_panic(
        which in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..), 1..8),
        resealed in any::<bool>(),
        input in any_input(),
    ) {
        let mut blob = pick(&which).clone();
        for (at, xor) in &flips {
            let i = at.index(blob.len());
            blob[i] ^= xor;
        }
        if resealed {
            reseal(&mut blob);
        } else {
            // Without a new CRC the loader must notice: any change past the magic and version fails.
            prop_assert!(Model::from_bytes(&blob).is_err() || blob == *pick(&which));
        }
        check(&blob, &input)?;
    }

    #[test]
    fn huge_length_fields_never_panic(which in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), input in any_input()) {
        let mut blob = pick(&which).clone();
        let i = at.index(blob.len().saturating_sub(5)).max(10);
        blob[i..i + 5].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // varint u32::MAX
        reseal(&mut blob);
        check(&blob, &input)?;
    }

    #[test]
    fn layer_counts_beyond_capacity(which in any::<prop::sample::Index>(), count in 33u32..) {
        let (mut header, layers) = open(pick(&which));
        header.layer_count = count;
        prop_assert_eq!(
            Model::from_bytes(&seal_raw(&header, &layers)).err(),
            Some(Error::TooManyLayers { found: count, max: 32 })
        );
    }

    #[test]
    fn arena_sizes_that_lie(which in any::<prop::sample::Index>(), declared in any::<u32>()) {
        let (mut header, layers) = open(pick(&which));
        let needed = header.arena_bytes;
        prop_assume!(declared != needed);
        header.arena_bytes = declared;
        prop_assert_eq!(
            Model::from_bytes(&seal_raw(&header, &layers)).err(),
            Some(Error::ArenaSizeMismatch { declared, needed })
        );
    }

    #[test]
    fn shapes_that_do_not_chain(which in any::<prop::sample::Index>(), layer in any::<prop::sample::Index>(), width in 1u32..5000, change_inputs in any::<bool>()) {
        let (header, mut layers) = open(pick(&which));
        let dense: Vec<usize> = layers
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l, LayerDef::DenseF32 { .. } | LayerDef::DenseI8 { .. }))
            .map(|(i, _)| i)
            .collect();
        prop_assume!(!dense.is_empty());
        let at = dense[layer.index(dense.len())];
        let changed = match layers[at] {
            LayerDef::DenseF32 { inputs, outputs, weights, bias } => {
                let (i, o) = if change_inputs { (width, outputs) } else { (inputs, width) };
                prop_assume!((i, o) != (inputs, outputs));
                LayerDef::DenseF32 { inputs: i, outputs: o, weights, bias }
            }
            LayerDef::DenseI8 { inputs, outputs, weights, bias, multiplier, shift, output_zero_point } => {
                let (i, o) = if change_inputs { (width, outputs) } else { (inputs, width) };
                prop_assume!((i, o) != (inputs, outputs));
                LayerDef::DenseI8 { inputs: i, outputs: o, weights, bias, multiplier, shift, output_zero_point }
            }
            _ => unreachable!(),
        };
        layers[at] = changed;
        let err = Model::from_bytes(&seal_raw(&header, &layers)).err();
        if width > runtime::format::MAX_WIDTH {
            prop_assert_eq!(err, Some(Error::DimensionOutOfRange { layer: at as u32, value: width }));
        } else {
            prop_assert!(
                matches!(err, Some(Error::ShapeMismatch { .. })),
                "layer {} set to width {}: {:?}", at, width, err
            );
        }
    }

    #[test]
    fn valid_models_run_on_any_input(which in any::<prop::sample::Index>(), input in any_input()) {
        let model = Model::from_bytes(pick(&which)).unwrap();
        prop_assert_eq!(run(&model, &input), Ok(()));
    }
}
