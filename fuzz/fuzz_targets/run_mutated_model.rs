//! A real exported blob, mutated by the fuzzer and re-sealed with a correct
//! CRC (so mutations reach the structural checks behind it), then run on
//! f32 input taken from the fuzzer's bytes (NaN and infinities included;
//! int8 models get it through `quantize_input`).
//!
//! Input layout: `[seed index][mutation count n][n x (offset u16 LE, xor u8)][input bytes...]`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use runtime::format::{checksum, Envelope};
use runtime::Model;

/// Every `*.bin` under `models/exported/`, read once.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let blobs = runtime_fuzz::exported_blobs();
        assert!(!blobs.is_empty(), "no exported blobs under models/exported");
        blobs
    })
}

/// Recompute the CRC of a blob whose envelope still parses.
fn reseal(blob: &mut [u8]) {
    let crc = match postcard::take_from_bytes::<Envelope>(blob) {
        Ok((envelope, _)) => checksum(envelope.payload),
        Err(_) => return,
    };
    if let Some(field) = blob.get_mut(6..10) {
        field.copy_from_slice(&crc.to_le_bytes());
    }
}

fuzz_target!(|data: &[u8]| {
    let [seed, count, rest @ ..] = data else {
        return;
    };
    let seeds = seeds();
    let mut blob = seeds[*seed as usize % seeds.len()].clone();
    let (mutations, input) = rest.split_at((*count as usize * 3).min(rest.len()));
    for m in mutations.chunks_exact(3) {
        let offset = u16::from_le_bytes([m[0], m[1]]) as usize % blob.len();
        blob[offset] ^= m[2];
    }
    reseal(&mut blob);
    let Ok(model) = Model::from_bytes(&blob) else {
        return;
    };
    let input: Vec<f32> = input
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let result = runtime_fuzz::run_any(&model, &input);
    assert!(result.is_ok(), "a model that loads must run: {result:?}");
});
