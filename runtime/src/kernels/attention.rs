//! Transformer kernels: attention for one query row, rotary embeddings,
//! LayerNorm, on both numeric paths. The formulas are the ones in
//! [`LayerDef::AttentionF32`](crate::format::LayerDef::AttentionF32),
//! [`LayerDef::AttentionI8`](crate::format::LayerDef::AttentionI8) and the
//! LayerNorm definitions; operation order is fixed (keys in ascending
//! position) so that a full causal pass and a one-token-at-a-time pass with a
//! key/value cache give bit-identical rows.
//!
//! Keys and values live in `tokens x dim` buffers; the key of absolute
//! position `j` is in row `j % tokens`, so the same code serves the full pass
//! (rows 0..tokens) and a sliding cache.

use super::{le_f32, le_i32};
use crate::format::Rescale;
use crate::math;
use crate::quant::{rescale, saturate_i8};

/// Where one attention head reads its keys and values.
#[derive(Debug, Clone, Copy)]
pub struct KeyValues<'s, T> {
    /// `tokens x dim` keys; position `j` in row `j % tokens`.
    pub keys: &'s [T],
    /// `tokens x dim` values, same rows.
    pub values: &'s [T],
    /// Row width.
    pub dim: usize,
    /// Rows (the cache capacity).
    pub tokens: usize,
    /// First value of this head in each row.
    pub head_offset: usize,
}

impl<'s, T: Copy> KeyValues<'s, T> {
    /// This head's `d` values of the rows of positions `first`, `first + 1`,
    /// ... of `buffer` (the keys or the values), wrapping around the
    /// `tokens` rows: one modulo per call instead of one per key.
    fn rows(&self, buffer: &'s [T], first: usize, d: usize) -> Rows<'s, T> {
        Rows {
            buffer,
            at: (first % self.tokens.max(1)) * self.dim + self.head_offset,
            d,
            dim: self.dim,
            wrap: self.tokens * self.dim,
        }
    }
}

/// Iterator of [`KeyValues::rows`]: the next row starts `dim` further on,
/// back at the first row after the last.
struct Rows<'s, T> {
    buffer: &'s [T],
    at: usize,
    d: usize,
    dim: usize,
    wrap: usize,
}

impl<'s, T> Iterator for Rows<'s, T> {
    type Item = &'s [T];
    #[inline(always)]
    fn next(&mut self) -> Option<&'s [T]> {
        let row = self.buffer.get(self.at..self.at + self.d)?;
        self.at += self.dim;
        if self.at >= self.wrap {
            self.at -= self.wrap;
        }
        Some(row)
    }
}

/// Which keys a query at absolute position `query` sees: `first..=last`.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// Absolute position of the query.
    pub query: usize,
    /// First key position.
    pub first: usize,
    /// Last key position (inclusive).
    pub last: usize,
}

impl Span {
    fn len(&self) -> usize {
        self.last + 1 - self.first
    }
}

/// Relative-bias index of query `i` and key `j` in a `2 tokens - 1` row.
#[inline]
fn bias_index(i: usize, j: usize, tokens: usize) -> usize {
    (i + tokens - 1).wrapping_sub(j)
}

/// One head of attention for one query row, f32.
///
/// `scores` (at least `tokens` long) ends holding the attention weights:
/// `scores[n]` for key `span.first + n`, and exactly 0.0 for every entry
/// past the span (the masked positions of a causal row in a full pass).
/// `bias` is this head's `2 tokens - 1` relative-bias row (f32 LE), if any.
/// `out` (`d` values) receives the weighted sum of the values.
pub fn attend_f32(
    q: &[f32],
    kv: &KeyValues<'_, f32>,
    span: Span,
    bias: Option<&[u8]>,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let d = q.len();
    let scale = 1.0 / math::sqrt(d as f32);
    let count = span.len().min(scores.len());
    let (live, masked) = scores.split_at_mut(count);
    masked.iter_mut().for_each(|s| *s = 0.0);
    let mut max = f32::NEG_INFINITY;
    for ((n, s), key) in live
        .iter_mut()
        .enumerate()
        .zip(kv.rows(kv.keys, span.first, d))
    {
        let j = span.first + n;
        let mut dot = 0.0f32;
        for (a, b) in q.iter().zip(key) {
            dot += a * b;
        }
        let mut v = dot * scale;
        if let Some(bias) = bias {
            let at = 4 * bias_index(span.query, j, kv.tokens);
            v += le_f32(bias.get(at..at + 4).unwrap_or(&[]));
        }
        *s = v;
        if v > max {
            max = v;
        }
    }
    let mut sum = 0.0f32;
    for s in live.iter_mut() {
        *s = math::exp(*s - max);
        sum += *s;
    }
    for s in live.iter_mut() {
        *s /= sum;
    }
    out.iter_mut().for_each(|o| *o = 0.0);
    // Two keys per pass over `out`; each output still adds its terms in key order.
    let mut values = kv.rows(kv.values, span.first, d);
    let mut pairs = live.chunks_exact(2);
    for p in &mut pairs {
        let (v0, v1) = (values.next().unwrap_or(&[]), values.next().unwrap_or(&[]));
        for ((o, &a), &b) in out.iter_mut().zip(v0).zip(v1) {
            *o = *o + p[0] * a + p[1] * b;
        }
    }
    if let ([p], Some(value)) = (pairs.remainder(), values.next()) {
        for (o, &v) in out.iter_mut().zip(value) {
            *o += p * v;
        }
    }
}

/// Rotate the pairs `(2m, 2m+1)` of every head of `x` by the `(cos, sin)`
/// pairs of `table_row` (`d` f32 LE: one position's row of the RoPE table).
pub fn rope_f32(x: &mut [f32], d: usize, table_row: &[u8]) {
    for head in x.chunks_exact_mut(d) {
        for (pair, cs) in head.chunks_exact_mut(2).zip(table_row.chunks_exact(8)) {
            let (c, s) = (le_f32(&cs[..4]), le_f32(&cs[4..]));
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * c - b * s;
            pair[1] = a * s + b * c;
        }
    }
}

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

/// One head of attention for one query row, integer-only (steps 3-5 of
/// [`LayerDef::AttentionI8`](crate::format::LayerDef::AttentionI8)).
/// `scores` (at least `tokens + d` long) is scratch; `out` gets `d` int8 values.
#[allow(clippy::too_many_arguments)]
pub fn attend_i8(
    q: &[i8],
    kv: &KeyValues<'_, i8>,
    span: Span,
    bias: Option<&[u8]>,
    score: Rescale,
    exp_table: &[u8; 512],
    context: Rescale,
    scores: &mut [i32],
    out: &mut [i8],
) {
    let d = q.len();
    let (scores, num) = scores.split_at_mut(kv.tokens.min(scores.len()));
    let take = d.min(num.len());
    let num = &mut num[..take];
    let count = span.len().min(scores.len());
    let live = &mut scores[..count];
    let mut max = i32::MIN;
    for ((n, s), key) in live
        .iter_mut()
        .enumerate()
        .zip(kv.rows(kv.keys, span.first, d))
    {
        let j = span.first + n;
        let mut dot = dot_i8(q, key);
        if let Some(bias) = bias {
            let at = 4 * bias_index(span.query, j, kv.tokens);
            dot = dot.saturating_add(le_i32(bias.get(at..at + 4).unwrap_or(&[])));
        }
        *s = dot;
        max = max.max(dot);
    }
    let mut sum = 0u32;
    for s in live.iter_mut() {
        // max - s >= 0; saturate so a huge gap just means "far down the table".
        let index = rescale(max.saturating_sub(*s), score.multiplier, score.shift);
        *s = match usize::try_from(index) {
            Ok(k) if k < 256 => {
                i32::from(u16::from_le_bytes([exp_table[2 * k], exp_table[2 * k + 1]]))
            }
            _ => 0,
        };
        sum += *s as u32;
    }
    // Weighted sum of the value rows, key by key (one row lookup per key).
    num.iter_mut().for_each(|v| *v = 0);
    for (&e, value) in live.iter().zip(kv.rows(kv.values, span.first, d)) {
        for (acc, &v) in num.iter_mut().zip(value) {
            *acc += e * i32::from(v);
        }
    }
    // The max's entry is exp_table[0] > 0 (checked at load), so sum >= 1.
    let inv = reciprocal_47(sum.max(1));
    for (o, &acc) in out.iter_mut().zip(num.iter()) {
        let t = ((i64::from(acc) * inv as i64 + (1 << 30)) >> 31) as i32;
        *o = saturate_i8(rescale(t, context.multiplier, context.shift));
    }
}

/// `sum(a[i] * b[i])` of two int8 rows, four products per step (integer
/// sums do not depend on the order).
#[inline(always)]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let mut dot = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum::<i32>();
    for (x, y) in a4.zip(b4) {
        dot += i32::from(x[0]) * i32::from(y[0])
            + i32::from(x[1]) * i32::from(y[1])
            + i32::from(x[2]) * i32::from(y[2])
            + i32::from(x[3]) * i32::from(y[3]);
    }
    dot
}

/// `2^47 / sum` for `sum >= 1`. Below `2^24` (always: at most 256 table
/// entries of at most 65535) as a long division with three 32-bit steps,
/// `2^47 = 2^31 * 2^16` then two 8-bit digits (each remainder is below
/// `sum`, so `rem << 8` fits a u32); a u64 division would be a library call.
fn reciprocal_47(sum: u32) -> u64 {
    if sum == 0 || sum >= 1 << 24 {
        return (1u64 << 47) / u64::from(sum.max(1));
    }
    let (q0, r0) = ((1u32 << 31) / sum, (1u32 << 31) % sum);
    let (q1, r1) = ((r0 << 8) / sum, (r0 << 8) % sum);
    let q2 = (r1 << 8) / sum;
    (u64::from(q0) << 16) | u64::from((q1 << 8) | q2)
}

/// Integer RoPE: rotate pairs of every head by Q14 `(cos, sin)` (i16 LE).
pub fn rope_i8(x: &mut [i8], d: usize, table_row: &[u8]) {
    for head in x.chunks_exact_mut(d) {
        for (pair, cs) in head.chunks_exact_mut(2).zip(table_row.chunks_exact(4)) {
            let c = i32::from(i16::from_le_bytes([cs[0], cs[1]]));
            let s = i32::from(i16::from_le_bytes([cs[2], cs[3]]));
            let (a, b) = (i32::from(pair[0]), i32::from(pair[1]));
            pair[0] = saturate_i8((a * c - b * s + (1 << 13)) >> 14);
            pair[1] = saturate_i8((a * s + b * c + (1 << 13)) >> 14);
        }
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
    fn reciprocal_is_the_u64_quotient() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let random = (0..100_000).map(|_| (next(&mut state) % (1 << 25)) as u32);
        for sum in (1u32..70_000)
            .chain(random)
            .chain([u32::MAX, (1 << 24) - 1, 1 << 24])
        {
            assert_eq!(reciprocal_47(sum), (1u64 << 47) / u64::from(sum), "{sum}");
        }
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
