//! Attention kernels: attention for one query row and rotary embeddings, on
//! both numeric paths (LayerNorm is in [`super::norm`]). The formulas are
//! the ones in
//! [`LayerDef::AttentionF32`](crate::format::LayerDef::AttentionF32) and
//! [`LayerDef::AttentionI8`](crate::format::LayerDef::AttentionI8); operation order is fixed (keys in ascending
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

/// Relative-bias index of query `i` and key `j` in a `2 tokens - 1` row:
/// `tokens - 1 + i - j`, formed so that nothing overflows for any `i`, `j`
/// (positions of a long stream are large; only their difference matters).
#[inline]
fn bias_index(i: usize, j: usize, tokens: usize) -> usize {
    let last = tokens.saturating_sub(1);
    if i >= j {
        last.saturating_add(i - j)
    } else {
        last.saturating_sub(j - i)
    }
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
}
