//! Reference kernels: the definition of each operation's result.
//!
//! Operation order is fixed (bias first, then inputs in index order) so the
//! f32 results are the same on every target.

use super::{le_f32, le_i32};
use crate::quant::{rescale, saturate_i8};

/// `output[o] = bias[o] + sum_i weights[o][i] * input[i]`, f32.
///
/// `weights` is `output.len() x input.len()` row-major little-endian f32 and
/// `bias` holds `output.len()` f32. Shorter parameter slices leave the
/// remaining outputs untouched; the loader guarantees they never are.
pub fn dense_f32(weights: &[u8], bias: &[u8], input: &[f32], output: &mut [f32]) {
    let row_bytes = input.len() * 4;
    if row_bytes == 0 {
        return;
    }
    for ((row, b), out) in weights
        .chunks_exact(row_bytes)
        .zip(bias.chunks_exact(4))
        .zip(output)
    {
        let mut acc = le_f32(b);
        for (w, &x) in row.chunks_exact(4).zip(input) {
            acc += le_f32(w) * x;
        }
        *out = acc;
    }
}

/// int8 fully connected layer with per-output-channel requantization:
/// `output[o] = sat8(zp_out + rescale(bias[o] + sum_i w[o][i] * input[i], m[o], shift[o]))`.
///
/// The input zero point is folded into `bias` at export, so the inner loop is
/// a plain int8 dot product.
pub fn dense_i8(
    weights: &[u8],
    bias: &[u8],
    multiplier: &[u8],
    shift: &[u8],
    output_zero_point: i8,
    input: &[i8],
    output: &mut [i8],
) {
    let cols = input.len();
    if cols == 0 {
        return;
    }
    let mut params = Rows::new(weights, bias, multiplier);
    for (out, &s) in output.iter_mut().zip(shift) {
        let Some((row, b, m)) = params.next(cols) else {
            return;
        };
        let mut acc = b;
        for (&w, &x) in row.iter().zip(input) {
            acc = acc.wrapping_add(i32::from(w as i8) * i32::from(x));
        }
        let scaled = rescale(acc, m, s);
        *out = saturate_i8(scaled.saturating_add(i32::from(output_zero_point)));
    }
}

/// [`dense_i8`]: the DSP kernel's form with scratch for the widened input,
/// which the generic kernel does not need.
#[allow(clippy::too_many_arguments)]
pub fn dense_i8_widened(
    weights: &[u8],
    bias: &[u8],
    multiplier: &[u8],
    shift: &[u8],
    output_zero_point: i8,
    input: &[i8],
    output: &mut [i8],
    _scratch: &mut [u8],
) {
    dense_i8(
        weights,
        bias,
        multiplier,
        shift,
        output_zero_point,
        input,
        output,
    );
}

/// The rows of an int8 matrix with their i32 bias and multiplier, one at a
/// time. (Split off as they go: nested `zip`s of `chunks_exact` build large
/// iterator structs, which some targets copy with `memcpy`.)
pub(crate) struct Rows<'a> {
    weights: &'a [u8],
    bias: &'a [u8],
    multiplier: &'a [u8],
}

impl<'a> Rows<'a> {
    /// Rows of `weights` (row-major int8), `bias` and `multiplier` (i32 LE).
    #[inline(always)]
    pub(crate) fn new(weights: &'a [u8], bias: &'a [u8], multiplier: &'a [u8]) -> Self {
        Rows {
            weights,
            bias,
            multiplier,
        }
    }

    /// The next row of `cols` weights, its bias and its multiplier.
    #[inline(always)]
    pub(crate) fn next(&mut self, cols: usize) -> Option<(&'a [u8], i32, i32)> {
        let (row, weights) = self.weights.split_at_checked(cols)?;
        let (b, bias) = self.bias.split_at_checked(4)?;
        let (m, multiplier) = self.multiplier.split_at_checked(4)?;
        *self = Rows {
            weights,
            bias,
            multiplier,
        };
        Some((row, le_i32(b), le_i32(m)))
    }
}
