//! A real exported recurrent or causal model stepped from state bytes the
//! fuzzer chooses (stale, garbage or hostile: positions near `u32::MAX`,
//! caches full of NaN), on input from the fuzzer: a result or
//! `ContextFull` (absolute positions past the context), never a panic; an
//! encoder-decoder also decodes from them (values or `HorizonOutOfRange`).
//!
//! Input layout: `[seed index][state bytes ... (state_bytes() of them)][input bytes...]`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use runtime::{Error, Model, Numeric};

/// The exported blobs of models that keep state, read once.
fn seeds() -> &'static [&'static [u8]] {
    static SEEDS: OnceLock<Vec<&'static [u8]>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let stateful: Vec<&'static [u8]> = runtime_fuzz::exported_blobs()
            .into_iter()
            .map(|b| &*Box::leak(b.into_boxed_slice()))
            .filter(|b| Model::from_bytes(b).is_ok_and(|m| m.is_recurrent() || m.is_causal()))
            .collect();
        assert!(!stateful.is_empty(), "no recurrent or causal exported blob");
        stateful
    })
}

fuzz_target!(|data: &[u8]| {
    let [seed, rest @ ..] = data else {
        return;
    };
    let seeds = seeds();
    let model = Model::from_bytes(seeds[*seed as usize % seeds.len()]).expect("a real blob loads");
    let mut state_words = vec![0u32; model.state_bytes().div_ceil(4)];
    let state: &mut [u8] = bytemuck::cast_slice_mut(&mut state_words);
    let (given, input) = rest.split_at(state.len().min(rest.len()));
    state[..given.len()].copy_from_slice(given);
    let mut arena_words = vec![0u32; model.arena_bytes().div_ceil(4)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena_words);
    let mut x: Vec<f32> = input
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    x.resize(model.step_width(), 0.0);
    if model.is_seq2seq() {
        // A decode step from any state: values, or past the horizon.
        let result = match model.numeric() {
            Numeric::F32 => model.decode_f32(state, arena).map(|_| ()),
            Numeric::Int8 => model.decode_i8(state, arena).map(|_| ()),
        };
        match result {
            Ok(()) | Err(Error::HorizonOutOfRange { .. }) => {}
            Err(e) => panic!("a decode from any state must run: {e}"),
        }
    }
    let result = match model.numeric() {
        Numeric::F32 => model.step_f32(&x, state, arena).map(|_| ()),
        Numeric::Int8 => {
            let q: Vec<i8> = x.iter().map(|&v| v as i8).collect();
            model.step_i8(&q, state, arena).map(|_| ())
        }
    };
    match result {
        Ok(()) => {}
        Err(Error::ContextFull { .. }) if model.is_causal() => {}
        Err(e) => panic!("a step from any state must run: {e}"),
    }
});
