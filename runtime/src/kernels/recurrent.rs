//! Recurrent cell arithmetic: Elman RNN, LSTM and GRU, f32 and integer-only
//! int8 (the layers themselves, validation and state, are in
//! `layers/recurrent.rs`).
//!
//! # Equations (PyTorch's conventions, which the trainer uses too)
//! With `x` the layer's input at step `t`, `h` the previous hidden state and
//! `σ` the logistic sigmoid, each cell first computes, for every gate row `k`,
//! `gx[k] = bias_input[k] + W_input[k] · x` and `gh[k] = bias_hidden[k] + W_hidden[k] · h`
//! (`W_input` is `gates*hidden x inputs`, `W_hidden` is `gates*hidden x hidden`,
//! both row-major, gate blocks of `hidden` rows in the order below). Then, per unit `j`:
//!
//! | cell | gates (order) | update |
//! | --- | --- | --- |
//! | [`Cell::Rnn`] | 1 | `h = tanh(gx + gh)` |
//! | [`Cell::Lstm`] | 4: i, f, g, o | `i = σ(gx_i + gh_i)`, `f = σ(gx_f + gh_f)`, `g = tanh(gx_g + gh_g)`, `o = σ(gx_o + gh_o)`, `c = f c + i g`, `h = o tanh(c)` |
//! | [`Cell::Gru`] | 3: r, z, n | `r = σ(gx_r + gh_r)`, `z = σ(gx_z + gh_z)`, `n = tanh(gx_n + r gh_n)`, `h = (1 - z) n + z h` |
//!
//! The state starts at zero ([`Model::reset`](crate::Model::reset)). The f32
//! path computes exactly this with `libm` (`σ(x) = 1 / (1 + exp(-x))`).
//!
//! # The int8 path (integer only)
//! - Weights are int8, symmetric per gate row; `x` is the int8 input tensor
//!   (its zero point folded into `bias_input`), `h` is the **int16** hidden
//!   state in Q15 (`h_real = h / 32768`), used as is in `W_hidden · h`.
//! - Each gate row's accumulators are rescaled to a Q12 pre-activation
//!   (`rescale(acc, m, shift)`, one multiplier for the input part and one for
//!   the hidden part, so the GRU's `r gh_n` stays separate).
//! - `tanh` and `σ` are a 257-entry Q15 table of `tanh` on `[0, 8]` with linear
//!   interpolation (`σ(x) = (1 + tanh(x / 2)) / 2`); error below 1e-4.
//! - The LSTM cell state `c` is int16 in Q11 (range ±16; `tanh(16)` is 1 in Q15).
//! - Products of Q15 values round half up; results saturate to int16.
//! - The layer's int8 output tensor (for a stacked layer or the head) is
//!   `zp + rescale(h, output)`, so the head sees calibrated int8 activations
//!   while the state itself keeps 16 bits and does not drift over long streams.

use super::{dense_f32, le_i32};
pub use crate::format::Cell;
use crate::math;
use crate::quant::{rescale, saturate_i8};

/// `round(tanh(k / 32) * 32767)` for `k = 0..=256`.
#[rustfmt::skip]
const TANH_Q15: [i16; 257] = [
    0, 1024, 2045, 3063, 4075, 5079, 6073, 7056, 8025, 8980, 9919, 10840,
    11742, 12625, 13486, 14325, 15142, 15936, 16706, 17451, 18173, 18869, 19541, 20189,
    20812, 21411, 21986, 22537, 23065, 23570, 24053, 24515, 24955, 25375, 25775, 26156,
    26518, 26863, 27190, 27501, 27796, 28075, 28340, 28592, 28829, 29054, 29267, 29469,
    29659, 29839, 30009, 30169, 30321, 30464, 30599, 30726, 30846, 30959, 31066, 31166,
    31261, 31350, 31435, 31514, 31588, 31658, 31725, 31787, 31845, 31900, 31952, 32001,
    32047, 32090, 32131, 32169, 32205, 32239, 32270, 32300, 32328, 32355, 32380, 32403,
    32425, 32446, 32465, 32483, 32500, 32516, 32531, 32546, 32559, 32572, 32583, 32595,
    32605, 32615, 32624, 32633, 32641, 32648, 32656, 32662, 32669, 32675, 32680, 32685,
    32690, 32695, 32699, 32703, 32707, 32711, 32714, 32717, 32720, 32723, 32726, 32728,
    32731, 32733, 32735, 32737, 32739, 32740, 32742, 32744, 32745, 32746, 32748, 32749,
    32750, 32751, 32752, 32753, 32754, 32754, 32755, 32756, 32757, 32757, 32758, 32758,
    32759, 32759, 32760, 32760, 32761, 32761, 32761, 32762, 32762, 32762, 32763, 32763,
    32763, 32763, 32764, 32764, 32764, 32764, 32764, 32765, 32765, 32765, 32765, 32765,
    32765, 32765, 32765, 32766, 32766, 32766, 32766, 32766, 32766, 32766, 32766, 32766,
    32766, 32766, 32766, 32766, 32766, 32766, 32766, 32766, 32766, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767,];

/// `tanh` of a fixed-point value with `frac` fractional bits (`5 < frac < 20`), in Q15.
#[inline]
pub fn tanh_fixed(x: i32, frac: u32) -> i32 {
    let shift = frac - 5; // table step 1/32
    let limit = 8u32 << frac;
    let ax = x.unsigned_abs().min(limit);
    let idx = (ax >> shift) as usize;
    let f = (ax & ((1 << shift) - 1)) as i32;
    let lo = i32::from(*TANH_Q15.get(idx).unwrap_or(&32767));
    let hi = i32::from(*TANH_Q15.get(idx + 1).unwrap_or(&32767));
    let y = lo + (((hi - lo) * f + (1 << (shift - 1))) >> shift);
    if x < 0 {
        -y
    } else {
        y
    }
}

/// `σ` of a Q12 value, in Q15 (`0..=32767`).
#[inline]
pub fn sigmoid_q12(x: i32) -> i32 {
    // x in Q12 is x/2 in Q13.
    (tanh_fixed(x, 13) + 32767 + 1) >> 1
}

/// `a * b / 2^15`, rounded half up, in i64 (no overflow for i32 inputs).
#[inline]
fn mul_q15(a: i32, b: i32) -> i64 {
    (i64::from(a) * i64::from(b) + (1 << 14)) >> 15
}

#[inline]
fn sat16(v: i64) -> i16 {
    v.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

#[inline]
fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + math::exp(-x))
}

/// The first `n` bytes of `bytes`, advancing it; `None` if too short.
#[inline(always)]
fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let b: &'a [u8] = bytes;
    let (head, rest) = (b.get(..n)?, b.get(n..)?);
    *bytes = rest;
    Some(head)
}

/// Bytes of a `RecurrentF32` layer's `params` (see [`crate::format::LayerDef`]).
pub fn params_len_f32(cell: Cell, inputs: usize, hidden: usize) -> usize {
    let r = cell.gates() * hidden;
    4 * (r * inputs + r * hidden + 2 * r)
}

/// Bytes of a `RecurrentI8` layer's `params` (see [`crate::format::LayerDef`]).
pub fn params_len_i8(cell: Cell, inputs: usize, hidden: usize) -> usize {
    let r = cell.gates() * hidden;
    r * inputs + r * hidden + 16 * r + 2 * r
}

/// A validated f32 recurrent layer (parameter slices of their exact lengths).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecurrentF32<'a> {
    pub cell: Cell,
    pub hidden: usize,
    pub w_input: &'a [u8],
    pub w_hidden: &'a [u8],
    pub bias_input: &'a [u8],
    pub bias_hidden: &'a [u8],
}

impl<'a> RecurrentF32<'a> {
    /// Views into `params` (layout in [`crate::format::LayerDef::RecurrentF32`]).
    // Always inlined: the views then live in registers, not in a copied struct.
    #[inline(always)]
    pub(crate) fn from_params(
        cell: Cell,
        inputs: usize,
        hidden: usize,
        params: &'a [u8],
    ) -> Option<Self> {
        let r = cell.gates() * hidden;
        let mut p = params;
        Some(RecurrentF32 {
            cell,
            hidden,
            w_input: take(&mut p, 4 * r * inputs)?,
            w_hidden: take(&mut p, 4 * r * hidden)?,
            bias_input: take(&mut p, 4 * r)?,
            bias_hidden: take(&mut p, 4 * r)?,
        })
    }

    /// One step: `state` is `h` (and `c`), `gx`/`gh` hold `gates * hidden` each.
    pub fn step(&self, x: &[f32], state: &mut [f32], gx: &mut [f32], gh: &mut [f32]) {
        let h_len = self.hidden;
        let rows = self.cell.gates() * h_len;
        let (Some(gx), Some(gh)) = (gx.get_mut(..rows), gh.get_mut(..rows)) else {
            return;
        };
        let (h, c) = state.split_at_mut(h_len.min(state.len()));
        dense_f32(self.w_input, self.bias_input, x, gx);
        dense_f32(self.w_hidden, self.bias_hidden, h, gh);
        for j in 0..h_len.min(h.len()) {
            let g = |k: usize| gx[k * h_len + j] + gh[k * h_len + j];
            match self.cell {
                Cell::Rnn => h[j] = math::tanh(g(0)),
                Cell::Lstm => {
                    let (i, f) = (sigmoid_f32(g(0)), sigmoid_f32(g(1)));
                    let (gg, o) = (math::tanh(g(2)), sigmoid_f32(g(3)));
                    if let Some(cj) = c.get_mut(j) {
                        *cj = f * *cj + i * gg;
                        h[j] = o * math::tanh(*cj);
                    }
                }
                Cell::Gru => {
                    let (r, z) = (sigmoid_f32(g(0)), sigmoid_f32(g(1)));
                    let n = math::tanh(gx[2 * h_len + j] + r * gh[2 * h_len + j]);
                    h[j] = (1.0 - z) * n + z * h[j];
                }
            }
        }
    }
}

/// A validated int8 recurrent layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecurrentI8<'a> {
    pub cell: Cell,
    pub hidden: usize,
    pub w_input: &'a [u8],
    pub w_hidden: &'a [u8],
    pub bias_input: &'a [u8],
    pub bias_hidden: &'a [u8],
    pub mult_input: &'a [u8],
    pub shift_input: &'a [u8],
    pub mult_hidden: &'a [u8],
    pub shift_hidden: &'a [u8],
}

/// `out[k] = rescale(bias[k] + W[k] · x, m[k], s[k])` with int8 weights,
/// rows by index: the compact form (no iterator struct, which `opt-level =
/// "z"` builds would copy with `memcpy`, 0.6 KB of flash on the M0). The
/// reference, used on every core without DSP (the DSP cores run
/// `arm_dsp::gate_rows_i8` / `gate_rows_q15`, held to it by the property
/// test of `kernels::check`).
// Out of line: one copy per input type, and its loop is faster so.
#[cfg_attr(all(feature = "arm-dsp", target_arch = "arm"), allow(dead_code))]
#[inline(never)]
pub(crate) fn gate_rows<T: Copy + Into<i32>>(
    weights: &[u8],
    bias: &[u8],
    mult: &[u8],
    shift: &[u8],
    x: &[T],
    out: &mut [i32],
) {
    let cols = x.len();
    for (k, (o, &s)) in out.iter_mut().zip(shift).enumerate() {
        let at = k * cols;
        let (Some(row), Some(b), Some(m)) = (
            weights.get(at..at + cols),
            bias.get(4 * k..4 * k + 4),
            mult.get(4 * k..4 * k + 4),
        ) else {
            return;
        };
        let mut acc = le_i32(b);
        for (&w, &v) in row.iter().zip(x) {
            acc = acc.wrapping_add(i32::from(w as i8) * v.into());
        }
        *o = rescale(acc, le_i32(m), s);
    }
}

/// The gates' input part, `out[k] = rescale(bias[k] + W[k] · x, m[k], s[k])`,
/// with the kernel the build selects (`arm_dsp::gate_rows_i8` on DSP cores,
/// else [`gate_rows`], its reference).
#[inline(always)]
pub(crate) fn input_gates(
    weights: &[u8],
    bias: &[u8],
    mult: &[u8],
    shift: &[u8],
    x: &[i8],
    out: &mut [i32],
) {
    #[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
    super::arm_dsp::gate_rows_i8(weights, bias, mult, shift, x, out);
    #[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
    gate_rows(weights, bias, mult, shift, x, out);
}

/// The gates' hidden part over `h` (Q15), as [`input_gates`]; `permuted` is
/// scratch for the DSP kernel's widened `h` (`h.len()` rounded up to 4,
/// halved, words; unused elsewhere).
#[inline(always)]
pub(crate) fn hidden_gates(
    weights: &[u8],
    bias: &[u8],
    mult: &[u8],
    shift: &[u8],
    (h, permuted): (&[i16], &mut [u32]),
    out: &mut [i32],
) {
    #[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
    {
        super::arm_dsp::permute_q15(h, permuted);
        super::arm_dsp::gate_rows_q15(weights, bias, mult, shift, (h, permuted), out);
    }
    #[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
    {
        let _ = permuted;
        gate_rows(weights, bias, mult, shift, h, out);
    }
}

impl<'a> RecurrentI8<'a> {
    /// Views into `params` (layout in [`crate::format::LayerDef::RecurrentI8`]).
    #[inline(always)]
    pub(crate) fn from_params(
        cell: Cell,
        inputs: usize,
        hidden: usize,
        params: &'a [u8],
    ) -> Option<Self> {
        let r = cell.gates() * hidden;
        let mut p = params;
        Some(RecurrentI8 {
            cell,
            hidden,
            w_input: take(&mut p, r * inputs)?,
            w_hidden: take(&mut p, r * hidden)?,
            bias_input: take(&mut p, 4 * r)?,
            bias_hidden: take(&mut p, 4 * r)?,
            mult_input: take(&mut p, 4 * r)?,
            mult_hidden: take(&mut p, 4 * r)?,
            shift_input: take(&mut p, r)?,
            shift_hidden: take(&mut p, r)?,
        })
    }

    /// One step: `state` is `h` (and `c`) in int16, `gx`/`gh` hold `gates *
    /// hidden`; `permuted` is scratch for `h` widened for the DSP kernel
    /// (`hidden` rounded up to 4, halved, words; unused elsewhere).
    pub fn step(
        &self,
        x: &[i8],
        state: &mut [i16],
        gx: &mut [i32],
        gh: &mut [i32],
        permuted: &mut [u32],
    ) {
        let h_len = self.hidden;
        let rows = self.cell.gates() * h_len;
        let (Some(gx), Some(gh)) = (gx.get_mut(..rows), gh.get_mut(..rows)) else {
            return;
        };
        let (h, c) = state.split_at_mut(h_len.min(state.len()));
        input_gates(
            self.w_input,
            self.bias_input,
            self.mult_input,
            self.shift_input,
            x,
            gx,
        );
        hidden_gates(
            self.w_hidden,
            self.bias_hidden,
            self.mult_hidden,
            self.shift_hidden,
            (&*h, permuted),
            gh,
        );
        for j in 0..h_len.min(h.len()) {
            let g = |k: usize| gx[k * h_len + j].saturating_add(gh[k * h_len + j]);
            match self.cell {
                Cell::Rnn => h[j] = sat16(i64::from(tanh_fixed(g(0), 12))),
                Cell::Lstm => {
                    let (i, f) = (sigmoid_q12(g(0)), sigmoid_q12(g(1)));
                    let (gg, o) = (tanh_fixed(g(2), 12), sigmoid_q12(g(3)));
                    if let Some(cj) = c.get_mut(j) {
                        // f (Q15) * c (Q11) -> Q11; i (Q15) * g (Q15) -> Q11.
                        let kept = mul_q15(f, i32::from(*cj));
                        let added = (i64::from(i) * i64::from(gg) + (1 << 18)) >> 19;
                        *cj = sat16(kept + added);
                        h[j] = sat16(mul_q15(o, tanh_fixed(i32::from(*cj), 11)));
                    }
                }
                Cell::Gru => {
                    let (r, z) = (sigmoid_q12(g(0)), sigmoid_q12(g(1)));
                    let gated = mul_q15(r, gh[2 * h_len + j]);
                    let pre = (i64::from(gx[2 * h_len + j]) + gated)
                        .clamp(i64::from(i32::MIN), i64::from(i32::MAX))
                        as i32;
                    let n = tanh_fixed(pre, 12);
                    let prev = i32::from(h[j]);
                    h[j] = sat16(i64::from(n) + mul_q15(z, prev - n));
                }
            }
        }
    }
}

/// The int8 output tensor of an int16 Q15 hidden state `h`:
/// `zp + rescale(h, output)`, saturated.
pub(crate) fn output_i8(output: crate::format::Rescale, zero_point: i8, h: &[i16], out: &mut [i8]) {
    for (o, &v) in out.iter_mut().zip(h) {
        let r = rescale(i32::from(v), output.multiplier, output.shift);
        *o = saturate_i8(r.saturating_add(i32::from(zero_point)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_tanh() {
        for (k, &v) in TANH_Q15.iter().enumerate() {
            let want = libm::round(libm::tanh(k as f64 / 32.0) * 32767.0) as i16;
            assert_eq!(v, want, "entry {k}");
        }
    }

    #[test]
    fn fixed_point_nonlinearities_are_within_1e4() {
        let mut worst = (0.0f64, 0.0f64);
        for q in -40_000..40_000 {
            let x = f64::from(q) / 4096.0;
            let t = f64::from(tanh_fixed(q, 12)) / 32768.0;
            let s = f64::from(sigmoid_q12(q)) / 32768.0;
            worst.0 = worst.0.max((t - libm::tanh(x)).abs());
            worst.1 = worst.1.max((s - 1.0 / (1.0 + libm::exp(-x))).abs());
        }
        assert!(worst.0 < 1.5e-4 && worst.1 < 1.5e-4, "{worst:?}");
        assert_eq!(tanh_fixed(i32::MIN, 12), -32767);
        assert_eq!(tanh_fixed(i32::MAX, 11), 32767);
    }
}
