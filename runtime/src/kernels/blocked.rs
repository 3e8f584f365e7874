//! f32 kernels blocked over output rows: each input value is loaded once per
//! block of four rows instead of once per row. Pure Rust, every target.
//!
//! Each row keeps its own accumulator with the reference's operation order
//! (bias first, then inputs in index order), so the results are bit-identical
//! to [`generic::dense_f32`](super::generic::dense_f32); the tests below check
//! it on random shapes, including row counts that leave 1 to 3 rows over.

use super::le_f32;

/// Same contract and results as [`generic::dense_f32`](super::generic::dense_f32).
// Out of line: one copy for every caller, and its loop is faster so.
#[inline(never)]
pub fn dense_f32(weights: &[u8], bias: &[u8], input: &[f32], output: &mut [f32]) {
    let row_bytes = input.len() * 4;
    if row_bytes == 0 {
        return;
    }
    let blocks = weights
        .chunks_exact(4 * row_bytes)
        .zip(bias.chunks_exact(16))
        .zip(output.chunks_exact_mut(4));
    for ((rows, b), out) in blocks {
        let (r0, rest) = rows.split_at(row_bytes);
        let (r1, rest) = rest.split_at(row_bytes);
        let (r2, r3) = rest.split_at(row_bytes);
        let mut acc = [
            le_f32(&b[0..4]),
            le_f32(&b[4..8]),
            le_f32(&b[8..12]),
            le_f32(&b[12..16]),
        ];
        let columns = r0
            .chunks_exact(4)
            .zip(r1.chunks_exact(4))
            .zip(r2.chunks_exact(4))
            .zip(r3.chunks_exact(4));
        for ((((w0, w1), w2), w3), &x) in columns.zip(input) {
            acc[0] += le_f32(w0) * x;
            acc[1] += le_f32(w1) * x;
            acc[2] += le_f32(w2) * x;
            acc[3] += le_f32(w3) * x;
        }
        out.copy_from_slice(&acc);
    }
    let done = output.len() - output.len() % 4;
    if let (Some(w), Some(b), Some(out)) = (
        weights.get(done * row_bytes..),
        bias.get(done * 4..),
        output.get_mut(done..),
    ) {
        super::generic::dense_f32(w, b, input, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn blocked_equals_reference_bit_for_bit() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            let rows = 1 + (next(&mut state) % 23) as usize;
            let cols = 1 + (next(&mut state) % 37) as usize;
            let mut value = || (next(&mut state) % 20_001) as f32 / 1000.0 - 10.0;
            let weights: Vec<u8> = (0..rows * cols)
                .flat_map(|_| value().to_le_bytes())
                .collect();
            let bias: Vec<u8> = (0..rows).flat_map(|_| value().to_le_bytes()).collect();
            let input: Vec<f32> = (0..cols).map(|_| value()).collect();
            let (mut fast, mut reference) = (vec![0.0; rows], vec![0.0; rows]);
            dense_f32(&weights, &bias, &input, &mut fast);
            super::super::generic::dense_f32(&weights, &bias, &input, &mut reference);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&reference), "{rows}x{cols}");
        }
    }
}
