//! What both fuzz targets do with a model that loaded: run it, through the
//! API that fits its kind, on the given input (padded or cut to the model's
//! input length). Any error is returned; a panic is a finding.

use runtime::{Error, Model, Numeric};

/// Run `model` on `input`; encoder-decoders forecast their horizon from a
/// window of it, recurrent models take it as a two-step sequence,
/// causal transformers token by token and then as a whole.
pub fn run_any(model: &Model, input: &[f32]) -> Result<(), Error> {
    let mut x = input.to_vec();
    x.resize(model.input_len(), 0.0);
    let mut arena_words = vec![0u32; model.arena_bytes().div_ceil(4)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena_words);
    let mut q = vec![0i8; x.len()];
    if model.numeric() == Numeric::Int8 {
        model.quantize_input(&x, &mut q)?;
    }
    if model.is_seq2seq() {
        // A window of the input repeated, then the whole horizon.
        let mut state_words = vec![0u32; model.state_bytes().div_ceil(4)];
        let state: &mut [u8] = bytemuck::cast_slice_mut(&mut state_words);
        let (window, horizon) = (model.window(), model.horizon());
        let mut out = vec![0.0; horizon * model.output_len()];
        return match model.numeric() {
            Numeric::F32 => model.forecast_f32(&x.repeat(window), horizon, state, arena, &mut out),
            Numeric::Int8 => {
                let mut out = vec![0; out.len()];
                model.forecast_i8(&q.repeat(window), horizon, state, arena, &mut out)
            }
        };
    }
    if model.is_recurrent() {
        let mut state_words = vec![0u32; model.state_bytes().div_ceil(4)];
        let state: &mut [u8] = bytemuck::cast_slice_mut(&mut state_words);
        return match model.numeric() {
            Numeric::F32 => model
                .run_sequence_f32(&[x.as_slice(), &x].concat(), state, arena)
                .map(|_| ()),
            Numeric::Int8 => model
                .run_sequence_i8(&[q.as_slice(), &q].concat(), state, arena)
                .map(|_| ()),
        };
    }
    if model.is_causal() {
        // Token by token through the key/value cache, then the full pass.
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

/// Every `*.bin` under `models/exported/`.
pub fn exported_blobs() -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/exported");
    let mut blobs = Vec::new();
    for dir in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if file.path().extension().is_some_and(|e| e == "bin") {
                blobs.extend(std::fs::read(file.path()));
            }
        }
    }
    blobs.sort();
    blobs
}
