//! Transformer models: validation of the token layers, attention on both
//! numeric paths, and the key/value cache of causal models.
//!
//! # Shapes
//! [`LayerDef::Tokens`] (first layer) splits the input into `tokens` rows;
//! every later tensor is `tokens x width` (each [`Step`] records its rows).
//! Per-row layers (dense, activations, tables, LayerNorm) act on each row,
//! attention mixes rows, [`LayerDef::Pool`] ends the sequence and
//! [`LayerDef::ClassToken`] adds a row. Transformer models have no recurrent
//! or classical layers.
//!
//! # Arena
//! After the work buffers and skip slots, an attention scratch sized for the
//! largest attention layer: q, k, v and the context (`tokens x dim` each) and
//! one row of `tokens` scores (f32; on the int8 path i32, plus `dim` i32
//! accumulators). All of it is in
//! [`Model::arena_bytes`](super::Model::arena_bytes), known at export.
//!
//! # Causal models and the key/value cache
//! A causal model (`Tokens { causal: true }`, no pooling) also runs one token
//! at a time: [`Model::step_f32`](super::Model::step_f32) /
//! [`Model::step_i8`](super::Model::step_i8) take one token's values and return
//! its output row. The state ([`Model::state_bytes`](super::Model::state_bytes),
//! 4-byte aligned) holds the position (u32) and, per attention layer, a key
//! and a value cache of `tokens x dim` (f32 or i8); position `p` lives in row
//! `p % tokens`. For the first `tokens` tokens the rows are bit-identical to
//! the full causal pass ([`Model::run_f32`](super::Model::run_f32)), because
//! both run the same kernels in the same order. After that, a model whose
//! positions are relative (relative bias, or none) keeps going with a
//! sliding window over the last `tokens` tokens; a model with absolute
//! positions (a positional table or RoPE) returns [`Error::ContextFull`].

use super::{check_len, check_rescale, check_width, Layer, Step};
use crate::error::{Error, Result};
use crate::format::{DenseI8Params, LayerDef, Numeric, PoolKind, Position, Rescale, MAX_TOKENS};
use crate::kernels::attention::{attend_f32, attend_i8, rope_f32, rope_i8, KeyValues, Span};
use crate::kernels::{dense_f32, dense_i8, le_i32};
use crate::quant::is_valid_multiplier;

/// Most attention layers a model may have.
pub const MAX_ATTENTION_LAYERS: usize = 4;

/// Parameters of one attention layer, by numeric path.
#[derive(Debug, Clone, Copy)]
enum Params<'a> {
    F32 {
        qkv_weights: &'a [u8],
        qkv_bias: &'a [u8],
        out_weights: &'a [u8],
        out_bias: &'a [u8],
        table: &'a [u8],
    },
    I8 {
        qkv: DenseI8Params<'a>,
        out: DenseI8Params<'a>,
        score: Rescale,
        context: Rescale,
        exp_table: &'a [u8; 512],
        table: &'a [u8],
    },
}

/// A validated attention layer (kept out of [`Layer`] so every step stays small).
#[derive(Debug, Clone, Copy)]
pub(super) struct Attention<'a> {
    dim: usize,
    heads: usize,
    tokens: usize,
    position: Position,
    /// Byte offset of this layer's key cache in the state (values follow).
    cache: usize,
    params: Params<'a>,
}

impl Attention<'_> {
    fn head_dim(&self) -> usize {
        self.dim / self.heads
    }
    /// Bytes of one cache (keys or values).
    fn cache_len(&self, element: usize) -> usize {
        self.tokens * self.dim * element
    }
    /// `"attention rope int8"` and the like.
    pub fn kind(&self) -> &'static str {
        let f32_path = matches!(self.params, Params::F32 { .. });
        match (self.position, f32_path) {
            (Position::None, true) => "attention f32",
            (Position::RelativeBias, true) => "attention relative-bias f32",
            (Position::Rope, true) => "attention rope f32",
            (Position::None, false) => "attention int8",
            (Position::RelativeBias, false) => "attention relative-bias int8",
            (Position::Rope, false) => "attention rope int8",
        }
    }
    /// MACs for `rows` query rows (each against at most `tokens` keys).
    pub fn macs(&self, rows: usize) -> usize {
        rows * (4 * self.dim * self.dim + 2 * self.tokens * self.dim)
    }
    /// Parameter elements and bytes.
    pub fn parameters(&self) -> (usize, usize) {
        match self.params {
            Params::F32 {
                qkv_weights,
                qkv_bias,
                out_weights,
                out_bias,
                table,
            } => {
                let bytes = qkv_weights.len()
                    + qkv_bias.len()
                    + out_weights.len()
                    + out_bias.len()
                    + table.len();
                (bytes / 4, bytes)
            }
            Params::I8 {
                qkv, out, table, ..
            } => {
                let bytes = [qkv, out]
                    .iter()
                    .map(|p| p.weights.len() + p.bias.len() + p.multiplier.len() + p.shift.len())
                    .sum::<usize>()
                    + 512
                    + table.len();
                (
                    qkv.weights.len() + out.weights.len() + (qkv.bias.len() + out.bias.len()) / 4,
                    bytes,
                )
            }
        }
    }
}

/// Token bookkeeping of a model, filled in during validation.
#[derive(Debug, Clone, Default)]
pub(super) struct TokenLayout<'a> {
    /// Rows declared by [`LayerDef::Tokens`] (0: not a transformer).
    pub tokens: usize,
    /// Whether the model is causal (step API available).
    pub causal: bool,
    /// Whether any layer uses absolute positions (no sliding past `tokens`).
    absolute: bool,
    pub attention: heapless::Vec<Attention<'a>, MAX_ATTENTION_LAYERS>,
    /// Bytes of state of a causal model (position + caches).
    pub state_bytes: usize,
    /// Byte offset of the attention scratch in the arena.
    pub scratch_offset: usize,
}

fn check_dense(at: u32, p: &DenseI8Params<'_>, inputs: usize, outputs: usize) -> Result<()> {
    check_len(at, p.weights, inputs * outputs)?;
    check_len(at, p.bias, outputs * 4)?;
    check_len(at, p.multiplier, outputs * 4)?;
    check_len(at, p.shift, outputs)?;
    for (m, &s) in p.multiplier.chunks_exact(4).zip(p.shift) {
        if !is_valid_multiplier(le_i32(m), s) {
            return Err(Error::BadQuantization { layer: at });
        }
    }
    Ok(())
}

/// `rows` of `dense` starting at output row `first` (weights are row-major,
/// so a block of output rows is a contiguous slice of every array).
fn dense_rows<'a>(
    p: &DenseI8Params<'a>,
    inputs: usize,
    first: usize,
    rows: usize,
) -> DenseI8Params<'a> {
    let r = first..first + rows;
    DenseI8Params {
        weights: p
            .weights
            .get(r.start * inputs..r.end * inputs)
            .unwrap_or(&[]),
        bias: p.bias.get(r.start * 4..r.end * 4).unwrap_or(&[]),
        multiplier: p.multiplier.get(r.start * 4..r.end * 4).unwrap_or(&[]),
        shift: p.shift.get(r.clone()).unwrap_or(&[]),
        output_zero_point: p.output_zero_point,
    }
}

impl<'a> TokenLayout<'a> {
    /// Not a transformer.
    pub const fn new() -> Self {
        TokenLayout {
            tokens: 0,
            causal: false,
            absolute: false,
            attention: heapless::Vec::new(),
            state_bytes: 0,
            scratch_offset: 0,
        }
    }

    /// Validate one transformer layer at index `at`. `width` is the whole
    /// tensor's width and `tokens` its rows; both are updated.
    pub fn layer(
        &mut self,
        at: u32,
        def: LayerDef<'a>,
        numeric: Numeric,
        width: &mut usize,
        tokens: &mut usize,
    ) -> Result<Layer<'a>> {
        let is_f32 = numeric == Numeric::F32;
        let element = if is_f32 { 4 } else { 1 };
        if let LayerDef::Tokens { tokens: t, causal } = def {
            let t = t as usize;
            if at != 0 || t == 0 || t > MAX_TOKENS as usize || !(*width).is_multiple_of(t) {
                return Err(Error::ShapeMismatch { layer: at });
            }
            self.tokens = t;
            self.causal = causal;
            *tokens = t;
            return Ok(Layer::Tokens);
        }
        if self.tokens == 0 {
            // Token layers only make sense after `Tokens`.
            return Err(Error::ShapeMismatch { layer: at });
        }
        let row = *width / *tokens;
        let wrong_path = |f32_layer: bool| f32_layer != is_f32;
        let layer = match def {
            LayerDef::EmbeddingF32 { vocab, dim, table }
            | LayerDef::EmbeddingI8 { vocab, dim, table } => {
                let f32_layer = matches!(def, LayerDef::EmbeddingF32 { .. });
                if wrong_path(f32_layer) {
                    return Err(Error::WrongNumericPath);
                }
                let max_vocab = if f32_layer { MAX_TOKENS * 256 } else { 128 };
                if vocab == 0 || vocab > max_vocab {
                    return Err(Error::DimensionOutOfRange {
                        layer: at,
                        value: vocab,
                    });
                }
                let d = check_width(at, dim)?;
                if row != 1 {
                    return Err(Error::ShapeMismatch { layer: at });
                }
                check_len(at, table, vocab as usize * d * element)?;
                *width = check_width(at, (*tokens * d) as u32)?;
                if f32_layer {
                    Layer::EmbeddingF32 { table, dim: d }
                } else {
                    Layer::EmbeddingI8 { table, dim: d }
                }
            }
            LayerDef::AddTableF32 { table } => {
                if wrong_path(true) {
                    return Err(Error::WrongNumericPath);
                }
                check_len(at, table, *width * 4)?;
                self.absolute = true;
                Layer::AddTableF32(table)
            }
            LayerDef::AddTableI8 {
                input,
                table,
                output_zero_point,
            } => {
                if wrong_path(false) {
                    return Err(Error::WrongNumericPath);
                }
                check_len(at, table, *width * 2)?;
                check_rescale(at, &input)?;
                self.absolute = true;
                Layer::AddTableI8 {
                    input,
                    table,
                    output_zero_point,
                }
            }
            LayerDef::LayerNormF32 { dim, eps, params } => {
                if wrong_path(true) {
                    return Err(Error::WrongNumericPath);
                }
                if check_width(at, dim)? != row {
                    return Err(Error::ShapeMismatch { layer: at });
                }
                if !(eps.is_finite() && eps >= 0.0) {
                    return Err(Error::BadParameter { layer: at });
                }
                check_len(at, params, 2 * row * 4)?;
                Layer::NormF32 { eps, params }
            }
            LayerDef::LayerNormI8 {
                dim,
                eps,
                params,
                output_zero_point,
            } => {
                if wrong_path(false) {
                    return Err(Error::WrongNumericPath);
                }
                if check_width(at, dim)? != row {
                    return Err(Error::ShapeMismatch { layer: at });
                }
                check_len(at, params, 2 * row * 4)?;
                Layer::NormI8 {
                    eps,
                    params,
                    output_zero_point,
                }
            }
            LayerDef::AttentionF32 {
                dim,
                heads,
                position,
                params,
            } => {
                if wrong_path(true) {
                    return Err(Error::WrongNumericPath);
                }
                let (d, h) = self.attention_shape(at, dim, heads, position, row)?;
                let t = *tokens;
                let table_len = match position {
                    Position::None => 0,
                    Position::RelativeBias => h * (2 * t - 1),
                    Position::Rope => t * (d / h),
                };
                let sizes = [3 * d * d, 3 * d, d * d, d, table_len];
                check_len(at, params, sizes.iter().sum::<usize>() * 4)?;
                let mut rest = params;
                let mut take = |n: usize| {
                    let (head, tail) = rest.split_at(n * 4);
                    rest = tail;
                    head
                };
                let p = Params::F32 {
                    qkv_weights: take(sizes[0]),
                    qkv_bias: take(sizes[1]),
                    out_weights: take(sizes[2]),
                    out_bias: take(sizes[3]),
                    table: take(sizes[4]),
                };
                self.push_attention(at, d, h, t, position, p, 4)?
            }
            LayerDef::AttentionI8 {
                dim,
                heads,
                position,
                qkv,
                score,
                exp_table,
                position_table,
                context,
                out,
            } => {
                if wrong_path(false) {
                    return Err(Error::WrongNumericPath);
                }
                let (d, h) = self.attention_shape(at, dim, heads, position, row)?;
                let t = *tokens;
                check_dense(at, &qkv, d, 3 * d)?;
                check_dense(at, &out, d, d)?;
                if qkv.output_zero_point != 0 || score.zero_point != 0 || context.zero_point != 0 {
                    return Err(Error::BadQuantization { layer: at });
                }
                check_rescale(at, &score)?;
                check_rescale(at, &context)?;
                let exp_table: &[u8; 512] = exp_table
                    .try_into()
                    .map_err(|_| Error::ShapeMismatch { layer: at })?;
                if exp_table[0] == 0 && exp_table[1] == 0 {
                    return Err(Error::BadQuantization { layer: at });
                }
                let table_len = match position {
                    Position::None => 0,
                    Position::RelativeBias => h * (2 * t - 1) * 4,
                    Position::Rope => t * (d / h) * 2,
                };
                check_len(at, position_table, table_len)?;
                let p = Params::I8 {
                    qkv,
                    out,
                    score,
                    context,
                    exp_table,
                    table: position_table,
                };
                self.push_attention(at, d, h, t, position, p, 1)?
            }
            LayerDef::Pool { kind } => {
                if self.causal {
                    return Err(Error::ShapeMismatch { layer: at });
                }
                *tokens = 1;
                *width = row;
                Layer::Pool(kind)
            }
            LayerDef::ClassToken { vector } => {
                if self.causal || *tokens >= MAX_TOKENS as usize {
                    return Err(Error::ShapeMismatch { layer: at });
                }
                check_len(at, vector, row * element)?;
                *tokens += 1;
                *width = check_width(at, (*tokens * row) as u32)?;
                Layer::ClassToken(vector)
            }
            _ => return Err(Error::Malformed),
        };
        Ok(layer)
    }

    fn attention_shape(
        &mut self,
        at: u32,
        dim: u32,
        heads: u32,
        position: Position,
        row: usize,
    ) -> Result<(usize, usize)> {
        let d = check_width(at, dim)?;
        if d != row || heads == 0 || !dim.is_multiple_of(heads) {
            return Err(Error::ShapeMismatch { layer: at });
        }
        if position == Position::Rope {
            if !(dim / heads).is_multiple_of(2) {
                return Err(Error::ShapeMismatch { layer: at });
            }
            self.absolute = true;
        }
        Ok((d, heads as usize))
    }

    #[allow(clippy::too_many_arguments)]
    fn push_attention(
        &mut self,
        at: u32,
        dim: usize,
        heads: usize,
        tokens: usize,
        position: Position,
        params: Params<'a>,
        element: usize,
    ) -> Result<Layer<'a>> {
        let index = self.attention.len();
        let cache = 4 + self
            .attention
            .iter()
            .map(|a| 2 * a.cache_len(element))
            .sum::<usize>();
        self.attention
            .push(Attention {
                dim,
                heads,
                tokens,
                position,
                cache,
                params,
            })
            .map_err(|_| Error::TooManyLayers {
                found: at + 1,
                max: MAX_ATTENTION_LAYERS as u32,
            })?;
        Ok(Layer::Attention(index as u8))
    }

    /// Whole-model checks; returns the arena bytes with the attention scratch
    /// placed after `bytes`.
    pub fn finish(&mut self, steps: &[Step<'_>], bytes: usize, numeric: Numeric) -> Result<usize> {
        self.scratch_offset = bytes;
        if self.tokens == 0 {
            return Ok(bytes);
        }
        for (index, step) in steps.iter().enumerate() {
            let allowed = !matches!(
                step.layer,
                Layer::RecurrentF32(_)
                    | Layer::RecurrentI8(_)
                    | Layer::NearestCentroidF32 { .. }
                    | Layer::SquaredErrorF32 { .. }
                    | Layer::IsolationForestF32(_)
                    | Layer::ThresholdF32 { .. }
            );
            if !allowed {
                return Err(Error::ShapeMismatch {
                    layer: index as u32,
                });
            }
        }
        let element = match numeric {
            Numeric::F32 => 4,
            Numeric::Int8 => 1,
        };
        self.state_bytes = if self.causal {
            4 + self
                .attention
                .iter()
                .map(|a| 2 * a.cache_len(element))
                .sum::<usize>()
        } else {
            0
        };
        let scratch = self
            .attention
            .iter()
            .map(|a| (4 * a.tokens * a.dim * element).div_ceil(4) * 4 + 4 * (a.tokens + a.dim))
            .max()
            .unwrap_or(0);
        self.scratch_offset = bytes.div_ceil(4) * 4;
        Ok(self.scratch_offset + scratch)
    }

    /// Whether stepping at `position` is allowed.
    pub fn check_position(&self, position: u32) -> Result<()> {
        if (self.absolute && position as usize >= self.tokens) || position == u32::MAX {
            return Err(Error::ContextFull {
                tokens: self.tokens,
            });
        }
        Ok(())
    }
}

/// Which rows a pass computes: all of them, or one token of a causal model.
#[derive(Debug, Clone, Copy)]
pub(super) enum Pass {
    /// The whole sequence (rows `0..tokens`).
    Full,
    /// One token at absolute `position`, keys and values in the cache.
    Step {
        /// Position of the token.
        position: usize,
    },
}

impl Pass {
    /// Rows a layer with `tokens` rows computes in this pass.
    pub fn rows(&self, tokens: usize) -> usize {
        match self {
            Pass::Full => tokens,
            Pass::Step { .. } => 1,
        }
    }
    /// Absolute position of the first row.
    pub fn first(&self) -> usize {
        match self {
            Pass::Full => 0,
            Pass::Step { position } => *position,
        }
    }
}

/// Keys of a query at `query`: causal rows see `query - tokens + 1 ..= query`
/// (clamped at 0), others every row.
fn span(query: usize, tokens: usize, causal: bool) -> Span {
    if causal {
        Span {
            query,
            first: (query + 1).saturating_sub(tokens),
            last: query,
        }
    } else {
        Span {
            query,
            first: 0,
            last: tokens - 1,
        }
    }
}

const BAD: Error = Error::ShapeMismatch { layer: u32::MAX };

/// `(q, k, v, ctx, scores)` views of an attention scratch.
type ScratchF32<'s> = (
    &'s mut [f32],
    &'s mut [f32],
    &'s mut [f32],
    &'s mut [f32],
    &'s mut [f32],
);

fn split_f32(scratch: &mut [u8], block: usize) -> Result<ScratchF32<'_>> {
    let floats: &mut [f32] =
        bytemuck::try_cast_slice_mut(scratch).map_err(|_| Error::ArenaMisaligned)?;
    let (q, rest) = floats.split_at_mut(block.min(floats.len()));
    let (k, rest) = rest.split_at_mut(block.min(rest.len()));
    let (v, rest) = rest.split_at_mut(block.min(rest.len()));
    let (ctx, scores) = rest.split_at_mut(block.min(rest.len()));
    Ok((q, k, v, ctx, scores))
}

impl Attention<'_> {
    /// Run the layer on `rows` rows of `x` into `y` (f32). `cache` is the
    /// state after the position word in step passes.
    pub fn run_f32(
        &self,
        pass: Pass,
        causal: bool,
        x: &[f32],
        y: &mut [f32],
        scratch: &mut [u8],
        cache: Option<&mut [u8]>,
    ) -> Result<()> {
        let Params::F32 {
            qkv_weights,
            qkv_bias,
            out_weights,
            out_bias,
            table,
        } = self.params
        else {
            return Err(Error::WrongNumericPath);
        };
        let (dim, t, hd) = (self.dim, self.tokens, self.head_dim());
        let block = t * dim;
        let (q, k_scratch, v_scratch, ctx, scores) = split_f32(scratch, block)?;
        let (keys, values): (&mut [f32], &mut [f32]) = match cache {
            None => (k_scratch, v_scratch),
            Some(state) => {
                let bytes = state
                    .get_mut(self.cache - 4..self.cache - 4 + 2 * block * 4)
                    .ok_or(BAD)?;
                let floats: &mut [f32] =
                    bytemuck::try_cast_slice_mut(bytes).map_err(|_| Error::ArenaMisaligned)?;
                floats.split_at_mut(block)
            }
        };
        let rows = pass.rows(t);
        let w = dim * dim * 4;
        let b = dim * 4;
        for r in 0..rows {
            let pos = pass.first() + r;
            let slot = pos % t;
            let xr = x.get(r * dim..(r + 1) * dim).ok_or(BAD)?;
            let qr = q.get_mut(r * dim..(r + 1) * dim).ok_or(BAD)?;
            let kr = keys.get_mut(slot * dim..(slot + 1) * dim).ok_or(BAD)?;
            let vr = values.get_mut(slot * dim..(slot + 1) * dim).ok_or(BAD)?;
            dense_f32(&qkv_weights[..w], &qkv_bias[..b], xr, qr);
            dense_f32(&qkv_weights[w..2 * w], &qkv_bias[b..2 * b], xr, kr);
            dense_f32(&qkv_weights[2 * w..], &qkv_bias[2 * b..], xr, vr);
            if self.position == Position::Rope {
                let row = table.get(pos * hd * 4..(pos + 1) * hd * 4).ok_or(BAD)?;
                rope_f32(qr, hd, row);
                rope_f32(kr, hd, row);
            }
        }
        for r in 0..rows {
            let query = pass.first() + r;
            let sp = span(query, t, causal);
            for h in 0..self.heads {
                let kv = KeyValues {
                    keys,
                    values,
                    dim,
                    tokens: t,
                    head_offset: h * hd,
                };
                let bias = match self.position {
                    Position::RelativeBias => {
                        let n = (2 * t - 1) * 4;
                        table.get(h * n..(h + 1) * n)
                    }
                    _ => None,
                };
                let at = r * dim + h * hd;
                attend_f32(
                    q.get(at..at + hd).ok_or(BAD)?,
                    &kv,
                    sp,
                    bias,
                    scores.get_mut(..t).ok_or(BAD)?,
                    ctx.get_mut(at..at + hd).ok_or(BAD)?,
                );
            }
        }
        for r in 0..rows {
            dense_f32(
                out_weights,
                out_bias,
                ctx.get(r * dim..(r + 1) * dim).ok_or(BAD)?,
                y.get_mut(r * dim..(r + 1) * dim).ok_or(BAD)?,
            );
        }
        Ok(())
    }

    /// Run the layer on `rows` rows of `x` into `y`, integer-only.
    pub fn run_i8(
        &self,
        pass: Pass,
        causal: bool,
        x: &[i8],
        y: &mut [i8],
        scratch: &mut [u8],
        cache: Option<&mut [u8]>,
    ) -> Result<()> {
        let Params::I8 {
            qkv,
            out,
            score,
            context,
            exp_table,
            table,
        } = self.params
        else {
            return Err(Error::WrongNumericPath);
        };
        let (dim, t, hd) = (self.dim, self.tokens, self.head_dim());
        let block = t * dim;
        let (bytes, score_bytes) = scratch.split_at_mut((4 * block).div_ceil(4) * 4);
        let scores: &mut [i32] =
            bytemuck::try_cast_slice_mut(score_bytes.get_mut(..4 * (t + dim)).ok_or(BAD)?)
                .map_err(|_| Error::ArenaMisaligned)?;
        let ints: &mut [i8] = bytemuck::cast_slice_mut(bytes);
        let (q, rest) = ints.split_at_mut(block.min(ints.len()));
        let (k_scratch, rest) = rest.split_at_mut(block.min(rest.len()));
        let (v_scratch, ctx) = rest.split_at_mut(block.min(rest.len()));
        let (keys, values): (&mut [i8], &mut [i8]) = match cache {
            None => (k_scratch, v_scratch),
            Some(state) => {
                let bytes = state
                    .get_mut(self.cache - 4..self.cache - 4 + 2 * block)
                    .ok_or(BAD)?;
                bytemuck::cast_slice_mut::<u8, i8>(bytes).split_at_mut(block)
            }
        };
        let (qp, kp, vp) = (
            dense_rows(&qkv, dim, 0, dim),
            dense_rows(&qkv, dim, dim, dim),
            dense_rows(&qkv, dim, 2 * dim, dim),
        );
        let rows = pass.rows(t);
        for r in 0..rows {
            let pos = pass.first() + r;
            let slot = pos % t;
            let xr = x.get(r * dim..(r + 1) * dim).ok_or(BAD)?;
            let qr = q.get_mut(r * dim..(r + 1) * dim).ok_or(BAD)?;
            let kr = keys.get_mut(slot * dim..(slot + 1) * dim).ok_or(BAD)?;
            let vr = values.get_mut(slot * dim..(slot + 1) * dim).ok_or(BAD)?;
            for (p, o) in [(&qp, qr), (&kp, kr), (&vp, vr)] {
                dense_i8(p.weights, p.bias, p.multiplier, p.shift, 0, xr, o);
            }
            if self.position == Position::Rope {
                let row = table.get(pos * hd * 2..(pos + 1) * hd * 2).ok_or(BAD)?;
                rope_i8(q.get_mut(r * dim..(r + 1) * dim).ok_or(BAD)?, hd, row);
                rope_i8(
                    keys.get_mut(slot * dim..(slot + 1) * dim).ok_or(BAD)?,
                    hd,
                    row,
                );
            }
        }
        for r in 0..rows {
            let query = pass.first() + r;
            let sp = span(query, t, causal);
            for h in 0..self.heads {
                let kv = KeyValues {
                    keys,
                    values,
                    dim,
                    tokens: t,
                    head_offset: h * hd,
                };
                let bias = match self.position {
                    Position::RelativeBias => {
                        let n = (2 * t - 1) * 4;
                        table.get(h * n..(h + 1) * n)
                    }
                    _ => None,
                };
                let at = r * dim + h * hd;
                attend_i8(
                    q.get(at..at + hd).ok_or(BAD)?,
                    &kv,
                    sp,
                    bias,
                    score,
                    exp_table,
                    context,
                    scores,
                    ctx.get_mut(at..at + hd).ok_or(BAD)?,
                );
            }
        }
        for r in 0..rows {
            dense_i8(
                out.weights,
                out.bias,
                out.multiplier,
                out.shift,
                out.output_zero_point,
                ctx.get(r * dim..(r + 1) * dim).ok_or(BAD)?,
                y.get_mut(r * dim..(r + 1) * dim).ok_or(BAD)?,
            );
        }
        Ok(())
    }
}

/// Mean (f32) of the rows into the first row, in place.
pub(super) fn pool_f32(kind: PoolKind, x: &mut [f32], rows: usize) {
    if kind == PoolKind::First || rows == 0 {
        return;
    }
    let row = x.len() / rows;
    for c in 0..row {
        let mut sum = 0.0f32;
        for r in 0..rows {
            sum += x[r * row + c];
        }
        x[c] = sum / rows as f32;
    }
}

/// Mean (int8, `floor((2 sum + rows) / (2 rows))`) of the rows into the first row.
pub(super) fn pool_i8(kind: PoolKind, x: &mut [i8], rows: usize) {
    if kind == PoolKind::First || rows == 0 {
        return;
    }
    let row = x.len() / rows;
    let n = rows as i32;
    for c in 0..row {
        let mut sum = 0i32;
        for r in 0..rows {
            sum += i32::from(x[r * row + c]);
        }
        x[c] = (2 * sum + n).div_euclid(2 * n).clamp(-128, 127) as i8;
    }
}

impl<'a> super::Model<'a> {
    /// Whether the model is a causal transformer (step API with a key/value cache).
    pub fn is_causal(&self) -> bool {
        self.tf.causal
    }

    /// Tokens of a transformer model's input (its context, for a causal
    /// model); 0 for other models.
    pub fn tokens(&self) -> usize {
        self.tf.tokens
    }

    /// Values per step: `input_len / tokens` for a causal model, else `input_len`.
    pub fn step_width(&self) -> usize {
        if self.tf.causal {
            self.input_len() / self.tf.tokens.max(1)
        } else {
            self.input_len()
        }
    }

    /// Checks of a causal step; returns the position to run.
    fn causal_checks(
        &self,
        numeric: Numeric,
        x_len: usize,
        state: &[u8],
        arena: usize,
    ) -> Result<u32> {
        if self.header.numeric != numeric {
            return Err(Error::WrongNumericPath);
        }
        if x_len != self.step_width() {
            return Err(Error::WrongInputLength {
                expected: self.step_width(),
                given: x_len,
            });
        }
        if arena < self.arena_bytes {
            return Err(Error::ArenaTooSmall {
                needed: self.arena_bytes,
                given: arena,
            });
        }
        self.check_state(state.len())?;
        let position = match state.get(..4) {
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
            _ => {
                return Err(Error::StateTooSmall {
                    needed: self.state_bytes(),
                    given: state.len(),
                })
            }
        };
        self.tf.check_position(position)?;
        Ok(position)
    }

    /// One token of an f32 causal model (raw values, normalized with the
    /// input offsets of row `position % tokens`).
    pub(super) fn step_causal_f32<'r>(
        &self,
        x_t: &[f32],
        state: &mut [u8],
        arena: &'r mut [u8],
    ) -> Result<&'r [f32]> {
        let position = self.causal_checks(Numeric::F32, x_t.len(), state, arena.len())?;
        let state = state.get_mut(..self.state_bytes()).ok_or(BAD)?;
        let (word, cache) = state.split_at_mut(4);
        let (cur, next, slots, scratch) = self.f32_split(arena)?;
        let row = position as usize % self.tf.tokens;
        self.normalize_into(x_t, row * x_t.len(), cur);
        let pass = Pass::Step {
            position: position as usize,
        };
        let out = self.forward_f32(cur, next, slots, scratch, pass, Some(cache))?;
        word.copy_from_slice(&(position + 1).to_le_bytes());
        Ok(out)
    }

    /// One token of an int8 causal model (quantized values). Integer-only.
    pub(super) fn step_causal_i8<'r>(
        &self,
        x_t: &[i8],
        state: &mut [u8],
        arena: &'r mut [u8],
    ) -> Result<&'r [i8]> {
        let position = self.causal_checks(Numeric::Int8, x_t.len(), state, arena.len())?;
        let state = state.get_mut(..self.state_bytes()).ok_or(BAD)?;
        let (word, cache) = state.split_at_mut(4);
        let (cur, next, slots, scratch) = self.i8_split(arena)?;
        cur.iter_mut().zip(x_t).for_each(|(d, &x)| *d = x);
        let pass = Pass::Step {
            position: position as usize,
        };
        let out = self.forward_i8(cur, next, slots, scratch, pass, Some(cache))?;
        word.copy_from_slice(&(position + 1).to_le_bytes());
        Ok(out)
    }

    /// Every token of `xs` in turn (after a reset); the last token's row.
    pub(super) fn run_causal_f32<'r>(
        &self,
        xs: &[f32],
        state: &mut [u8],
        arena: &'r mut [u8],
    ) -> Result<&'r [f32]> {
        let c = self.step_width();
        let steps = xs.len() / c;
        if steps == 0 {
            return Err(Error::WrongInputLength {
                expected: c,
                given: 0,
            });
        }
        for x_t in xs.chunks_exact(c).take(steps - 1) {
            self.step_causal_f32(x_t, state, arena)?;
        }
        self.step_causal_f32(&xs[(steps - 1) * c..], state, arena)
    }

    /// Every token of `xs` in turn (after a reset); the last token's row.
    pub(super) fn run_causal_i8<'r>(
        &self,
        xs: &[i8],
        state: &mut [u8],
        arena: &'r mut [u8],
    ) -> Result<&'r [i8]> {
        let c = self.step_width();
        let steps = xs.len() / c;
        if steps == 0 {
            return Err(Error::WrongInputLength {
                expected: c,
                given: 0,
            });
        }
        for x_t in xs.chunks_exact(c).take(steps - 1) {
            self.step_causal_i8(x_t, state, arena)?;
        }
        self.step_causal_i8(&xs[(steps - 1) * c..], state, arena)
    }
}
