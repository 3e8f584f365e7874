//! LayerNorm over one row, on both numeric paths, and the integer square
//! root the int8 path needs. The formulas are the ones in
//! [`LayerDef::LayerNormF32`](crate::format::LayerDef::LayerNormF32) and
//! [`LayerDef::LayerNormI8`](crate::format::LayerDef::LayerNormI8).

use super::{le_f32, le_i32};
use crate::math;
use crate::quant::saturate_i8;

/// LayerNorm of one row, f32, in place. `params` is `gamma` then `beta`.
pub fn layer_norm_f32(x: &mut [f32], eps: f32, params: &[u8]) {
    let n = x.len() as f32;
    let mean = x.iter().fold(0.0f32, |a, &v| a + v) / n;
    let var = x.iter().fold(0.0f32, |a, &v| a + (v - mean) * (v - mean)) / n;
    let inv = 1.0 / math::sqrt(var + eps);
    let (gamma, beta) = params.split_at(params.len() / 2);
    for ((v, g), b) in x
        .iter_mut()
        .zip(gamma.chunks_exact(4))
        .zip(beta.chunks_exact(4))
    {
        *v = (*v - mean) * inv * le_f32(g) + le_f32(b);
    }
}

/// Integer square root (floor) of a u64, bit by bit (in 32-bit arithmetic
/// when the value fits: same floor, far fewer instructions on a 32-bit core).
pub fn isqrt(value: u64) -> u64 {
    if let Ok(small) = u32::try_from(value) {
        return u64::from(isqrt_u32(small));
    }
    let mut rem = value;
    let mut root = 0u64;
    let mut bit = 1u64 << 62;
    while bit > rem {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

/// [`isqrt`] of a u32: the same bit-by-bit algorithm on 32-bit words.
fn isqrt_u32(value: u32) -> u32 {
    let mut rem = value;
    let mut root = 0u32;
    let mut bit = 1u32 << 30;
    while bit > rem {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

/// `floor((k * x + r) / 2^(16 + s))` in 32-bit arithmetic, with the
/// constants split as `k = kh * 2^16 + kl` and `r = rh * 2^16 + rl`
/// (`kl`, `rl` in `[0, 2^16)`): `k x + r = (kh x + rh) 2^16 + (kl x + rl)`,
/// and flooring by `2^16` then by `2^s` is flooring by `2^(16 + s)`.
/// The caller guarantees that no step overflows:
/// `|kl x| + rl < 2^31` and `|kh x + rh| + 2^15 < 2^31`.
#[inline(always)]
fn split_mul_shift(k: (i32, i32), x: i32, r: (i32, i32), s: u32) -> i32 {
    (k.0 * x + r.0 + ((k.1 * x + r.1) >> 16)) >> s
}

/// `(v >> 16, v & 0xffff)` of an i64 whose high part fits an i32.
#[inline(always)]
fn split16(v: i64) -> (i32, i32) {
    ((v >> 16) as i32, (v & 0xffff) as i32)
}

/// LayerNorm of one row, integer-only, in place; see
/// [`LayerDef::LayerNormI8`](crate::format::LayerDef::LayerNormI8).
///
/// Rows of at most 256 values whose magnitudes allow it (checked per row,
/// always the case for trained models) run in 32-bit arithmetic with the
/// exact same results; other rows take the literal i64 formulas
/// ([`layer_norm_i8_wide`]).
pub fn layer_norm_i8(x: &mut [i8], eps: u32, params: &[u8], output_zero_point: i8) {
    if !layer_norm_i8_narrow(x, eps, params, output_zero_point) {
        layer_norm_i8_wide(x, eps, params, output_zero_point);
    }
}

/// [`layer_norm_i8`] in 32-bit arithmetic; `false` (and `x` untouched) when
/// the row is too long or its values too large for that.
fn layer_norm_i8_narrow(x: &mut [i8], eps: u32, params: &[u8], output_zero_point: i8) -> bool {
    if x.is_empty() || x.len() > 256 {
        return false;
    }
    let n = x.len() as i32;
    // |S| <= 128 n and |c| = |n x - S| <= 255 n <= 65280, so c^2 fits a u32.
    let sum: i32 = x.iter().map(|&v| i32::from(v)).sum();
    let mut var = 0u64;
    let mut c_max = 0u32;
    for &v in x.iter() {
        let c = (n * i32::from(v) - sum).unsigned_abs();
        var += u64::from(c * c);
        c_max = c_max.max(c);
    }
    let mean_square = match u32::try_from(var) {
        Ok(v) => u64::from(v / n as u32),
        Err(_) => var / n as u64,
    };
    let sigma = isqrt(mean_square + u64::from(eps)).max(1);
    let inv: u64 = match u32::try_from(sigma) {
        // 2^40 / sigma as two 16-bit digits of a long division (the
        // remainder is below sigma < 2^16, so `rem << 16` fits a u32).
        Ok(s) if s < 1 << 16 => {
            let (high, rem) = ((1u32 << 24) / s, (1u32 << 24) % s);
            (u64::from(high) << 16) | u64::from((rem << 16) / s)
        }
        _ => (1u64 << 40) / sigma,
    };
    // Bounds for `split_mul_shift`: |c| <= c_max, and |normalized| <= n_max.
    let (c_max, inv_parts) = (u64::from(c_max), split16(inv as i64));
    let n_max = ((c_max * inv) >> 28) + 1;
    let fits = c_max * 0xffff < 1 << 31
        && c_max * inv_parts.0 as u64 + (1 << 11) + (1 << 15) < 1 << 31
        && n_max <= 32_000;
    if !fits {
        return false;
    }
    let (gamma, beta) = params.split_at(params.len() / 2);
    for ((v, g), b) in x
        .iter_mut()
        .zip(gamma.chunks_exact(4))
        .zip(beta.chunks_exact(4))
    {
        let c = n * i32::from(*v) - sum;
        // (c * inv + 2^27) >> 28
        let normalized = split_mul_shift(inv_parts, c, (1 << 11, 0), 12);
        // (gamma * normalized + beta + 2^23) >> 24, |normalized| <= 32000
        let (beta_high, beta_low) = split16(i64::from(le_i32(b)));
        let gamma_parts = split16(i64::from(le_i32(g)));
        let y = split_mul_shift(gamma_parts, normalized, (beta_high + (1 << 7), beta_low), 8);
        *v = saturate_i8(y + i32::from(output_zero_point));
    }
    true
}

/// [`layer_norm_i8`] by the literal i64 formulas, for any row.
fn layer_norm_i8_wide(x: &mut [i8], eps: u32, params: &[u8], output_zero_point: i8) {
    let n = x.len() as i64;
    let sum: i64 = x.iter().map(|&v| i64::from(v)).sum();
    let var: u64 = x
        .iter()
        .map(|&v| {
            let c = n * i64::from(v) - sum;
            (c * c) as u64
        })
        .sum();
    let sigma = isqrt(var / n as u64 + u64::from(eps)).max(1);
    let inv = ((1u64 << 40) / sigma) as i64;
    let (gamma, beta) = params.split_at(params.len() / 2);
    for ((v, g), b) in x
        .iter_mut()
        .zip(gamma.chunks_exact(4))
        .zip(beta.chunks_exact(4))
    {
        let c = n * i64::from(*v) - sum;
        let normalized = (c * inv + (1 << 27)) >> 28;
        let acc = i64::from(le_i32(g)) * normalized + i64::from(le_i32(b));
        let y = ((acc + (1 << 23)) >> 24) + i64::from(output_zero_point);
        *v = y.clamp(-128, 127) as i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isqrt_is_the_floor_square_root() {
        for v in (0u64..5000).chain([u64::MAX, (1 << 40) + 7, 999_999_999_999]) {
            let r = isqrt(v);
            assert!(r * r <= v, "{v}");
            assert!((r + 1).checked_mul(r + 1).is_none_or(|s| s > v), "{v}");
        }
        for v in (0u32..70_000).chain([u32::MAX, u32::MAX - 1, 1 << 31, 65535 * 65535]) {
            let r = u64::from(isqrt_u32(v));
            assert!(
                r * r <= u64::from(v) && (r + 1) * (r + 1) > u64::from(v),
                "{v}"
            );
        }
    }

    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn narrow_layer_norm_equals_the_i64_formulas() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut narrow_rows = 0;
        for case in 0..4000 {
            let n = 1 + (next(&mut state) % 300) as usize;
            let spread = 1 + (next(&mut state) % 256) as i64;
            let centre = (next(&mut state) % 256) as i64 - 128;
            let x: Vec<i8> = (0..n)
                .map(|_| {
                    let r = (next(&mut state) % (2 * spread as u64 + 1)) as i64 - spread;
                    (centre + r).clamp(-128, 127) as i8
                })
                .collect();
            let eps = match case % 4 {
                0 => 0,
                1 => (next(&mut state) % 1000) as u32,
                2 => next(&mut state) as u32,
                _ => u32::MAX,
            };
            let big = case % 3 == 0;
            let mut param = || {
                let v = next(&mut state) as i32;
                if big {
                    v
                } else {
                    v >> (8 + next(&mut state) % 16)
                }
            };
            let gamma: Vec<i32> = (0..n).map(|_| param()).collect();
            let beta: Vec<i32> = (0..n).map(|_| param()).collect();
            let params: Vec<u8> = gamma
                .iter()
                .chain(&beta)
                .flat_map(|v| v.to_le_bytes())
                .collect();
            let zp = next(&mut state) as i8;
            let (mut fast, mut wide) = (x.clone(), x.clone());
            layer_norm_i8(&mut fast, eps, &params, zp);
            layer_norm_i8_wide(&mut wide, eps, &params, zp);
            assert_eq!(fast, wide, "case {case}");
            let mut probe = x.clone();
            if layer_norm_i8_narrow(&mut probe, eps, &params, zp) {
                narrow_rows += 1;
            }
        }
        assert!(narrow_rows > 2000, "{narrow_rows}");
    }
}
