//! Affine int8 quantization, the scheme of `runtime::format` for every
//! family: `real = scale * (q - zero_point)`.
//!
//! - **Calibration**: a tensor's observed [`Range`] (always containing 0, so
//!   real zero is exact) gives its asymmetric parameters ([`asymmetric`]).
//! - **Weights**: symmetric per output channel (row), `+-127`, zero point 0
//!   ([`weight_rows`]); the input zero point is folded into the int32 bias
//!   ([`fold_bias`]), and each row's accumulator is rescaled to the output
//!   with a fixed-point multiplier ([`multiplier`], [`rescale`]).
//!   [`dense`] does all of it for one dense map.
//! - **Elementwise functions** become 256-entry tables ([`table`]), the
//!   softmax an exp table ([`exp_table`]), computed in f64 with `libm` so
//!   every machine writes the same bytes.
//!
//! Families choose the ranges and scales (on calibration rows picked by
//! [`spread_rows`]); the arithmetic is here, once.

use anyhow::{anyhow, Result};
use runtime::format::Rescale;
use runtime::quant::quantize_multiplier;
use runtime::QuantParams;

use crate::blob::{le_bytes, DenseI8};

/// `[lo, hi]` of the values a tensor took, always containing 0.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Range {
    /// Smallest value seen (at most 0).
    pub lo: f32,
    /// Largest value seen (at least 0).
    pub hi: f32,
}

impl Range {
    /// The range of `values` (and 0).
    pub fn of(values: &[f32]) -> Range {
        let mut range = Range::default();
        range.merge(values);
        range
    }

    /// Widen to cover `values`.
    pub fn merge(&mut self, values: &[f32]) {
        for &v in values {
            self.lo = self.lo.min(v);
            self.hi = self.hi.max(v);
        }
    }

    /// Largest magnitude.
    pub fn abs_max(&self) -> f32 {
        self.lo.abs().max(self.hi.abs())
    }
}

/// Asymmetric int8 parameters covering `range` with all 256 codes.
pub fn asymmetric(range: Range) -> QuantParams {
    let (min, max) = (f64::from(range.lo.min(0.0)), f64::from(range.hi.max(0.0)));
    let span = max - min;
    let scale = if span.is_finite() && span > 0.0 {
        (span / 255.0) as f32
    } else {
        1.0
    };
    let zero_point = libm::round(-128.0 - min / f64::from(scale)).clamp(-128.0, 127.0) as i8;
    QuantParams { scale, zero_point }
}

/// The scale of a symmetric quantization covering `abs_max` with `+-127`
/// (1 when there is nothing to cover).
pub fn symmetric(abs_max: f32) -> f64 {
    if abs_max > 0.0 && abs_max.is_finite() {
        f64::from(abs_max) / 127.0
    } else {
        1.0
    }
}

/// `value` in the int8 quantization `q`, saturated.
pub fn quantize_value(value: f64, q: QuantParams) -> i8 {
    (libm::round(value / f64::from(q.scale)) + f64::from(q.zero_point)).clamp(-128.0, 127.0) as i8
}

/// The real value of code `q` in the quantization `p`.
pub fn dequantize(q: i8, p: QuantParams) -> f64 {
    f64::from(p.scale) * (f64::from(q) - f64::from(p.zero_point))
}

/// Round to the nearest `i32`, saturated.
pub fn round_i32(value: f64) -> i32 {
    libm::round(value).clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

/// Per-row symmetric int8 weights of a `rows x cols` matrix: the codes and
/// each row's scale.
pub fn weight_rows(weights: &[f32], cols: usize) -> (Vec<i8>, Vec<f64>) {
    let mut codes = Vec::with_capacity(weights.len());
    let mut scales = Vec::with_capacity(weights.len() / cols.max(1));
    for row in weights.chunks_exact(cols) {
        let scale = symmetric(row.iter().fold(0.0f32, |m, &w| m.max(w.abs())));
        codes.extend(
            row.iter()
                .map(|&w| libm::round(f64::from(w) / scale).clamp(-127.0, 127.0) as i8),
        );
        scales.push(scale);
    }
    (codes, scales)
}

/// An int32 bias in accumulator steps (`acc_scale` = input scale x weight
/// scale) with the input zero point folded in: `round(b / acc_scale) -
/// zp_in * sum(row codes)`.
pub fn fold_bias(bias: f32, acc_scale: f64, input_zero_point: i8, row: &[i8]) -> i32 {
    let sum: i64 = row.iter().map(|&w| i64::from(w)).sum();
    round_i32(libm::round(f64::from(bias) / acc_scale) - (i64::from(input_zero_point) * sum) as f64)
}

/// The fixed-point form of a scale ratio; `what` names it if it cannot be
/// represented.
pub fn multiplier(ratio: f64, what: &str) -> Result<(i32, u8)> {
    quantize_multiplier(ratio)
        .ok_or_else(|| anyhow!("{what}: scale ratio {ratio} cannot be represented"))
}

/// A tensor with zero point `zero_point` rescaled by `ratio`.
pub fn rescale(ratio: f64, zero_point: i8, what: &str) -> Result<Rescale> {
    let (multiplier, shift) = multiplier(ratio, what)?;
    Ok(Rescale {
        zero_point,
        multiplier,
        shift,
    })
}

/// From the quantization `from` to the scale of `to`.
pub fn rescale_to(from: QuantParams, to: QuantParams, what: &str) -> Result<Rescale> {
    rescale(
        f64::from(from.scale) / f64::from(to.scale),
        from.zero_point,
        what,
    )
}

/// An int8 dense map `y = W x + b`: per-row symmetric weights, input
/// quantization `input`; row `r` goes to scale `out_scale(r)` with zero
/// point `out_zero_point`.
pub fn dense(
    weights: &[f32],
    bias: &[f32],
    inputs: usize,
    input: QuantParams,
    out_scale: impl Fn(usize) -> f64,
    out_zero_point: i8,
    what: &str,
) -> Result<DenseI8> {
    let (codes, scales) = weight_rows(weights, inputs);
    let (mut b, mut m, mut s) = (Vec::new(), Vec::new(), Vec::new());
    for (r, (row, &w_scale)) in codes.chunks_exact(inputs).zip(&scales).enumerate() {
        let acc_scale = f64::from(input.scale) * w_scale;
        b.push(fold_bias(bias[r], acc_scale, input.zero_point, row));
        let (mm, ss) = multiplier(acc_scale / out_scale(r), what)?;
        m.push(mm);
        s.push(ss);
    }
    Ok(DenseI8 {
        inputs,
        outputs: bias.len(),
        weights: le_bytes(&codes),
        bias: le_bytes(&b),
        multiplier: le_bytes(&m),
        shift: s,
        output_zero_point: out_zero_point,
    })
}

/// The 256-entry table of an elementwise function `f` from quantization
/// `input` to `output`: entry `q + 128` is `f(q)`.
pub fn table(f: impl Fn(f64) -> f64, input: QuantParams, output: QuantParams) -> Vec<i8> {
    (-128i32..=127)
        .map(|q| quantize_value(f(dequantize(q as i8, input)), output))
        .collect()
}

/// The exact GELU, `0.5 x (1 + erf(x / sqrt 2))`, in f64 (`libm`): the
/// real function of every GELU table.
pub fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

/// A softmax exp table: entry `d` is `exp(-step d)` in Q15, `d` in `0..256`.
pub fn exp_table(step: f64) -> Vec<u16> {
    (0..256)
        .map(|d| libm::round(32768.0 * libm::exp(-step * f64::from(d))) as u16)
        .collect()
}

/// The quantization of a softmax's output: probabilities in `[0, 1]` with
/// 1/256 steps from code -128.
pub const SOFTMAX_OUTPUT: QuantParams = QuantParams {
    scale: 1.0 / 256.0,
    zero_point: -128,
};

/// `n` evenly spaced rows of `rows` (all if fewer), for calibration.
pub fn spread_rows(rows: &[f32], width: usize, n: usize) -> Vec<f32> {
    let count = rows.len() / width;
    if count <= n {
        return rows.to_vec();
    }
    (0..n)
        .flat_map(|i| {
            let r = i * count / n;
            rows[r * width..(r + 1) * width].iter().copied()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asymmetric_covers_the_range_with_zero_exact() {
        let q = asymmetric(Range { lo: -1.0, hi: 3.0 });
        assert!((q.scale - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(quantize_value(0.0, q), q.zero_point);
        assert_eq!(quantize_value(-1.0, q), -128);
        assert_eq!(quantize_value(3.0, q), 127);
        assert_eq!(asymmetric(Range::default()).scale, 1.0);
        assert_eq!(Range::of(&[2.0, 5.0]), Range { lo: 0.0, hi: 5.0 });
    }

    #[test]
    fn weight_rows_are_symmetric_per_row() {
        let (codes, scales) = weight_rows(&[1.0, -0.5, 0.0, 0.0, 2.0, 4.0], 3);
        assert_eq!(&codes[..3], &[127, -64, 0]);
        assert_eq!(scales[0], 1.0 / 127.0);
        // An all-zero row gets scale 1.
        let (codes, scales) = weight_rows(&[0.0, 0.0], 2);
        assert_eq!((codes, scales), (vec![0, 0], vec![1.0]));
    }

    #[test]
    fn folded_bias_subtracts_the_input_zero_point() {
        // bias 1.0 at accumulator scale 0.5 is 2 steps; zp 3 x sum 5 = 15.
        assert_eq!(fold_bias(1.0, 0.5, 3, &[2, 3]), 2 - 15);
    }

    #[test]
    fn tables_follow_the_function() {
        let unit = QuantParams {
            scale: 1.0,
            zero_point: 0,
        };
        let t = table(|x| x.max(0.0), unit, unit);
        assert_eq!((t[0], t[128], t[255]), (0, 0, 127));
        let e = exp_table(0.1);
        assert_eq!(e[0], 32768);
        assert!(e.windows(2).all(|w| w[0] >= w[1]));
    }
}
