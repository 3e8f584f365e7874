//! The transformer family (feature `attention`): token rows, embeddings,
//! positional tables, LayerNorm, multi-head attention, pooling and class
//! tokens, on both numeric paths; and the key/value cache of causal models.
//! The kernels are in [`crate::kernels::attention`] and [`crate::kernels::norm`].
//!
//! # Shapes
//! [`LayerDef::Tokens`] (first layer) splits the input into `tokens` rows;
//! every later tensor is `tokens x width`. Per-row layers (dense,
//! activations, tables, LayerNorm) act on each row, attention mixes rows,
//! [`LayerDef::Pool`] ends the sequence and [`LayerDef::ClassToken`] adds a
//! row. Transformer models have no recurrent or classical layers.
//!
//! # Arena
//! After the work buffers and skip slots, an attention scratch sized for the
//! largest attention layer: q, k, v and the context (`tokens x dim` each) and
//! one row of `tokens` scores (f32; on the int8 path i32, plus `dim` i32
//! accumulators). All of it is in the model's arena size, known at export.
//!
//! # Causal models and the key/value cache
//! A causal model (`Tokens { causal: true }`, no pooling) also runs one token
//! at a time: `Model::step_f32` / `Model::step_i8` take one token's values
//! and return its output row. The state (`Model::state_bytes`, 4-byte
//! aligned) holds the position (u32) and, per attention layer, a key and a
//! value cache of `tokens x dim` (f32 or i8); position `p` lives in row
//! `p % tokens`. For the first `tokens` tokens the rows are bit-identical to
//! the full causal pass, because both run the same kernels in the same
//! order. After that, a model whose positions are relative (relative bias,
//! or none) keeps going with a sliding window over the last `tokens` tokens:
//! only positions modulo `tokens` matter then, so the stored position stays
//! in `tokens..2 tokens` and a stream never overflows it, however long it
//! runs (and any position word, stale or garbage, is brought into that
//! range). A model with absolute positions (a positional table or RoPE)
//! returns [`Error::ContextFull`] at position `tokens`.

use super::dense::check_multipliers;
use super::ModelStats;
use super::{check_len, check_rescale, check_width, Ctx, Io, Layer, Out, Pass, Plan, BAD};
use crate::error::{Error, Result};
use crate::format::{
    DenseI8Params, LayerDef, Numeric, PoolKind, Position, Rescale, MAX_ATTENTION_LAYERS,
    MAX_TOKENS, MAX_VOCAB_F32, MAX_VOCAB_I8,
};
use crate::kernels::attention::{attend_f32, attend_i8, rope_f32, rope_i8, KeyValues, Span};
use crate::kernels::norm::{layer_norm_f32, layer_norm_i8};
use crate::kernels::{dense_f32, dense_i8, le_f32};
use crate::quant::saturate_i8;

/// A validated transformer-family layer.
#[derive(Debug, Clone, Copy)]
#[allow(clippy::enum_variant_names)] // `ClassToken` is the format's name
pub(crate) enum Token<'a> {
    /// Marks a transformer model (no work at run time).
    Tokens,
    #[cfg(feature = "f32")]
    EmbeddingF32 {
        table: &'a [u8],
        dim: usize,
    },
    #[cfg(feature = "int8")]
    EmbeddingI8 {
        table: &'a [u8],
        dim: usize,
    },
    #[cfg(feature = "f32")]
    AddTableF32(&'a [u8]),
    #[cfg(feature = "int8")]
    AddTableI8 {
        input: Rescale,
        table: &'a [u8],
        output_zero_point: i8,
    },
    #[cfg(feature = "f32")]
    NormF32 {
        eps: f32,
        params: &'a [u8],
    },
    #[cfg(feature = "int8")]
    NormI8 {
        eps: u32,
        params: &'a [u8],
        output_zero_point: i8,
    },
    /// Index into the layout's attention layers (kept out of the step: big).
    Attention(u8),
    Pool(PoolKind),
    ClassToken(&'a [u8]),
}

/// Parameters of one attention layer, by numeric path.
#[derive(Debug, Clone, Copy)]
enum Params<'a> {
    #[cfg(feature = "f32")]
    F32 {
        qkv_weights: &'a [u8],
        qkv_bias: &'a [u8],
        out_weights: &'a [u8],
        out_bias: &'a [u8],
        table: &'a [u8],
    },
    #[cfg(feature = "int8")]
    I8 {
        qkv: DenseI8Params<'a>,
        out: DenseI8Params<'a>,
        score: Rescale,
        context: Rescale,
        exp_table: &'a [u8; 512],
        table: &'a [u8],
    },
}

/// A validated attention layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attention<'a> {
    dim: usize,
    heads: usize,
    tokens: usize,
    position: Position,
    /// Byte offset of this layer's key cache in the cache (values follow).
    cache: usize,
    params: Params<'a>,
}

/// Token bookkeeping of a model, filled in during validation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout<'a> {
    /// Rows declared by [`LayerDef::Tokens`] (0: not a transformer).
    pub tokens: usize,
    /// Whether the model is causal (step API available).
    pub causal: bool,
    /// Whether any layer uses absolute positions (no sliding past `tokens`).
    absolute: bool,
    /// Bytes per tensor element (1 on the int8 path, 4 on the f32 path).
    element: usize,
    attention: heapless::Vec<Attention<'a>, MAX_ATTENTION_LAYERS>,
}

impl Attention<'_> {
    fn head_dim(&self) -> usize {
        self.dim / self.heads
    }
    /// Bytes of one cache (keys or values).
    fn cache_len(&self, element: usize) -> usize {
        self.tokens * self.dim * element
    }
    fn element(&self) -> usize {
        match self.params {
            #[cfg(feature = "f32")]
            Params::F32 { .. } => 4,
            #[cfg(feature = "int8")]
            Params::I8 { .. } => 1,
        }
    }
    /// `"attention rope int8"` and the like.
    fn kind(&self) -> &'static str {
        let f32_path = self.element() == 4;
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
    fn macs(&self, rows: usize) -> usize {
        rows * (4 * self.dim * self.dim + 2 * self.tokens * self.dim)
    }
    /// Parameter elements and bytes.
    fn parameters(&self) -> (usize, usize) {
        match self.params {
            #[cfg(feature = "f32")]
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
            #[cfg(feature = "int8")]
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
    /// Bytes of arena scratch this layer needs.
    fn scratch_bytes(&self) -> usize {
        (4 * self.tokens * self.dim * self.element()).div_ceil(4) * 4 + 4 * (self.tokens + self.dim)
    }
}

#[cfg(feature = "int8")]
fn check_dense(at: u32, p: &DenseI8Params<'_>, inputs: usize, outputs: usize) -> Result<()> {
    check_len(at, p.weights, inputs * outputs)?;
    check_len(at, p.bias, outputs * 4)?;
    check_multipliers(at, p.multiplier, p.shift, outputs)
}

/// `rows` of `dense` starting at output row `first` (weights are row-major,
/// so a block of output rows is a contiguous slice of every array).
#[cfg(feature = "int8")]
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

/// Validate a transformer-family definition (`None`: not of this family).
pub(crate) fn validate<'a>(
    at: u32,
    def: &LayerDef<'a>,
    plan: &mut Plan<'_, 'a>,
) -> Option<Result<Token<'a>>> {
    let is_token_kind = matches!(
        def,
        LayerDef::Tokens { .. }
            | LayerDef::EmbeddingF32 { .. }
            | LayerDef::EmbeddingI8 { .. }
            | LayerDef::AddTableF32 { .. }
            | LayerDef::AddTableI8 { .. }
            | LayerDef::LayerNormF32 { .. }
            | LayerDef::LayerNormI8 { .. }
            | LayerDef::AttentionF32 { .. }
            | LayerDef::AttentionI8 { .. }
            | LayerDef::Pool { .. }
            | LayerDef::ClassToken { .. }
    );
    is_token_kind.then(|| validate_token(at, def, plan))
}

fn validate_token<'a>(at: u32, def: &LayerDef<'a>, plan: &mut Plan<'_, 'a>) -> Result<Token<'a>> {
    let element = match plan.numeric {
        Numeric::F32 => 4,
        Numeric::Int8 => 1,
    };
    let layout = &mut plan.families.tokens;
    if let LayerDef::Tokens { tokens: t, causal } = *def {
        let t = t as usize;
        if at != 0 || t == 0 || t > MAX_TOKENS as usize || !plan.width.is_multiple_of(t) {
            return Err(Error::ShapeMismatch { layer: at });
        }
        layout.tokens = t;
        layout.causal = causal;
        layout.element = element;
        plan.tokens = t;
        return Ok(Token::Tokens);
    }
    if layout.tokens == 0 {
        // Token layers only make sense after `Tokens`.
        return Err(Error::ShapeMismatch { layer: at });
    }
    let tokens = plan.tokens;
    let row = plan.width / tokens;
    let layer = match *def {
        LayerDef::EmbeddingF32 { vocab, dim, table }
        | LayerDef::EmbeddingI8 { vocab, dim, table } => {
            let f32_layer = matches!(def, LayerDef::EmbeddingF32 { .. });
            let max_vocab = if f32_layer {
                MAX_VOCAB_F32
            } else {
                MAX_VOCAB_I8
            };
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
            plan.width = check_width(at, (tokens * d) as u32)?;
            match def {
                #[cfg(feature = "f32")]
                LayerDef::EmbeddingF32 { .. } => Token::EmbeddingF32 { table, dim: d },
                #[cfg(feature = "int8")]
                LayerDef::EmbeddingI8 { .. } => Token::EmbeddingI8 { table, dim: d },
                _ => return Err(Error::WrongNumericPath),
            }
        }
        #[cfg(feature = "f32")]
        LayerDef::AddTableF32 { table } => {
            check_len(at, table, plan.width * 4)?;
            layout.absolute = true;
            Token::AddTableF32(table)
        }
        #[cfg(feature = "int8")]
        LayerDef::AddTableI8 {
            input,
            table,
            output_zero_point,
        } => {
            check_len(at, table, plan.width * 2)?;
            check_rescale(at, &input)?;
            layout.absolute = true;
            Token::AddTableI8 {
                input,
                table,
                output_zero_point,
            }
        }
        #[cfg(feature = "f32")]
        LayerDef::LayerNormF32 { dim, eps, params } => {
            if check_width(at, dim)? != row {
                return Err(Error::ShapeMismatch { layer: at });
            }
            if !(eps.is_finite() && eps >= 0.0) {
                return Err(Error::BadParameter { layer: at });
            }
            check_len(at, params, 2 * row * 4)?;
            Token::NormF32 { eps, params }
        }
        #[cfg(feature = "int8")]
        LayerDef::LayerNormI8 {
            dim,
            eps,
            params,
            output_zero_point,
        } => {
            if check_width(at, dim)? != row {
                return Err(Error::ShapeMismatch { layer: at });
            }
            check_len(at, params, 2 * row * 4)?;
            Token::NormI8 {
                eps,
                params,
                output_zero_point,
            }
        }
        #[cfg(feature = "f32")]
        LayerDef::AttentionF32 {
            dim,
            heads,
            position,
            params,
        } => {
            let (d, h) = layout.attention_shape(at, dim, heads, position, row)?;
            let table_len = match position {
                Position::None => 0,
                Position::RelativeBias => h * (2 * tokens - 1),
                Position::Rope => tokens * (d / h),
            };
            let sizes = [3 * d * d, 3 * d, d * d, d, table_len];
            check_len(at, params, sizes.iter().sum::<usize>() * 4)?;
            let mut rest = params;
            let mut take = |n: usize| {
                let (head, tail) = rest.split_at((n * 4).min(rest.len()));
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
            layout.push_attention(at, d, h, tokens, position, p)?
        }
        #[cfg(feature = "int8")]
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
            let (d, h) = layout.attention_shape(at, dim, heads, position, row)?;
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
                Position::RelativeBias => h * (2 * tokens - 1) * 4,
                Position::Rope => tokens * (d / h) * 2,
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
            layout.push_attention(at, d, h, tokens, position, p)?
        }
        LayerDef::Pool { kind } => {
            if layout.causal {
                return Err(Error::ShapeMismatch { layer: at });
            }
            plan.tokens = 1;
            plan.width = row;
            Token::Pool(kind)
        }
        LayerDef::ClassToken { vector } => {
            if layout.causal || tokens >= MAX_TOKENS as usize {
                return Err(Error::ShapeMismatch { layer: at });
            }
            check_len(at, vector, row * element)?;
            plan.tokens += 1;
            plan.width = check_width(at, (plan.tokens * row) as u32)?;
            Token::ClassToken(vector)
        }
        _ => return Err(Error::WrongNumericPath),
    };
    Ok(layer)
}

impl<'a> Layout<'a> {
    /// Not a transformer.
    pub(crate) const fn new() -> Self {
        Layout {
            tokens: 0,
            causal: false,
            absolute: false,
            element: 0,
            attention: heapless::Vec::new(),
        }
    }

    /// Back to [`Layout::new`], in place.
    pub(crate) fn clear(&mut self) {
        self.tokens = 0;
        self.causal = false;
        self.absolute = false;
        self.element = 0;
        self.attention.clear();
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

    fn attention(&self) -> impl Iterator<Item = &Attention<'a>> {
        self.attention.iter()
    }

    /// Bytes of the key/value caches.
    fn cache_bytes(&self) -> usize {
        self.attention().map(|a| 2 * a.cache_len(a.element())).sum()
    }

    fn push_attention(
        &mut self,
        at: u32,
        dim: usize,
        heads: usize,
        tokens: usize,
        position: Position,
        params: Params<'a>,
    ) -> Result<Token<'a>> {
        let index = self.attention.len();
        let cache = self.cache_bytes();
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
        Ok(Token::Attention(index as u8))
    }

    fn get(&self, index: u8) -> Result<&Attention<'a>> {
        self.attention.get(usize::from(index)).ok_or(BAD)
    }

    /// Bytes of state of a causal model (position + caches), 0 otherwise.
    pub(crate) fn state_bytes(&self) -> usize {
        if self.causal {
            4 + self.cache_bytes()
        } else {
            0
        }
    }

    /// Bytes of arena scratch: the largest attention layer's.
    pub(crate) fn scratch_bytes(&self) -> usize {
        self.attention()
            .map(Attention::scratch_bytes)
            .max()
            .unwrap_or(0)
    }

    /// The position to run for a stored position word (see the module docs).
    pub(crate) fn position(&self, stored: u32) -> Result<usize> {
        let (p, t) = (stored as usize, self.tokens.max(1));
        if p < t {
            Ok(p)
        } else if self.absolute {
            Err(Error::ContextFull {
                tokens: self.tokens,
            })
        } else {
            // Same row (p % t) and same keys in view; cannot overflow.
            Ok(t + (p - t) % t)
        }
    }
}

/// Whole-model check of a transformer: no recurrent or classical layers.
pub(crate) fn check_model<'l>(
    layout: &Layout<'_>,
    layers: impl Iterator<Item = &'l Layer<'l>>,
) -> Result<()> {
    if layout.tokens == 0 {
        return Ok(());
    }
    for (index, layer) in layers.enumerate() {
        let allowed = match layer {
            #[cfg(feature = "recurrent")]
            Layer::Recurrent(_) => false,
            #[cfg(feature = "classical")]
            Layer::Classical(_) => false,
            #[cfg(feature = "conv")]
            Layer::Conv(_) => false,
            _ => true,
        };
        if !allowed {
            return Err(Error::ShapeMismatch {
                layer: index as u32,
            });
        }
    }
    Ok(())
}

impl Token<'_> {
    /// Short name for reports.
    pub(crate) fn kind(&self, layout: &Layout<'_>) -> &'static str {
        match *self {
            Token::Tokens => "tokens",
            #[cfg(feature = "f32")]
            Token::EmbeddingF32 { .. } => "embedding f32",
            #[cfg(feature = "int8")]
            Token::EmbeddingI8 { .. } => "embedding int8",
            #[cfg(feature = "f32")]
            Token::AddTableF32(_) => "positions f32",
            #[cfg(feature = "int8")]
            Token::AddTableI8 { .. } => "positions int8",
            #[cfg(feature = "f32")]
            Token::NormF32 { .. } => "layernorm f32",
            #[cfg(feature = "int8")]
            Token::NormI8 { .. } => "layernorm int8",
            Token::Attention(i) => layout.get(i).map_or("attention", Attention::kind),
            Token::Pool(PoolKind::Mean) => "mean pool",
            Token::Pool(PoolKind::First) => "class-token pool",
            Token::ClassToken(_) => "class token",
        }
    }

    /// Adds parameters, MACs (`rows` rows) and parameter bytes.
    pub(crate) fn add_stats(&self, s: &mut ModelStats, rows: usize, layout: &Layout<'_>) {
        match *self {
            #[cfg(feature = "f32")]
            Token::EmbeddingF32 { table, .. } => {
                s.parameters += table.len() / 4;
                s.parameter_bytes += table.len();
            }
            #[cfg(feature = "int8")]
            Token::EmbeddingI8 { table, .. } => {
                s.parameters += table.len();
                s.parameter_bytes += table.len();
            }
            #[cfg(feature = "f32")]
            Token::AddTableF32(t) => s.parameter_bytes += t.len(),
            #[cfg(feature = "int8")]
            Token::AddTableI8 { table, .. } => s.parameter_bytes += table.len(),
            #[cfg(feature = "f32")]
            Token::NormF32 { params, .. } => norm_stats(s, params, rows),
            #[cfg(feature = "int8")]
            Token::NormI8 { params, .. } => norm_stats(s, params, rows),
            Token::Attention(i) => {
                if let Ok(a) = layout.get(i) {
                    let (p, b) = a.parameters();
                    s.parameters += p;
                    s.parameter_bytes += b;
                    s.macs += a.macs(rows);
                }
            }
            Token::ClassToken(v) => {
                s.parameters += v.len() / layout.element.max(1);
                s.parameter_bytes += v.len();
            }
            _ => {}
        }
    }

    #[cfg(feature = "f32")]
    pub(crate) fn run_f32(&self, io: Io<'_, f32>, ctx: &mut Ctx<'_, '_>) -> Result<Out> {
        match *self {
            Token::Tokens => Ok(Out::InPlace),
            Token::EmbeddingF32 { table, dim } => {
                let vocab = table.len() / (4 * dim).max(1);
                for (&v, yr) in io.x.iter().zip(io.y.chunks_exact_mut(dim.max(1))) {
                    let id = if v.is_nan() {
                        0
                    } else {
                        libm::roundf(v).clamp(0.0, vocab.saturating_sub(1) as f32) as usize
                    };
                    let from = table.get(id * dim * 4..(id + 1) * dim * 4).unwrap_or(&[]);
                    for (o, b) in yr.iter_mut().zip(from.chunks_exact(4)) {
                        *o = le_f32(b);
                    }
                }
                Ok(Out::Next)
            }
            Token::AddTableF32(table) => {
                let at = ctx.pass.first() * io.row * 4;
                let t = table.get(at..at + io.x.len() * 4).ok_or(BAD)?;
                for (v, b) in io.x.iter_mut().zip(t.chunks_exact(4)) {
                    *v += le_f32(b);
                }
                Ok(Out::InPlace)
            }
            Token::NormF32 { eps, params } => {
                io.each_row(|r| layer_norm_f32(r, eps, params));
                Ok(Out::InPlace)
            }
            Token::Attention(i) => {
                let layout = &ctx.families.tokens;
                layout.get(i)?.run_f32(
                    ctx.pass,
                    layout.causal,
                    io.x,
                    io.y,
                    ctx.scratch,
                    ctx.state,
                )?;
                Ok(Out::Next)
            }
            Token::Pool(kind) => {
                pool_f32(kind, io.x, io.rows);
                Ok(Out::InPlace)
            }
            Token::ClassToken(vector) => {
                let (first, rest) = io.y.split_at_mut(io.out_row.min(io.y.len()));
                for (o, b) in first.iter_mut().zip(vector.chunks_exact(4)) {
                    *o = le_f32(b);
                }
                rest.iter_mut().zip(io.x.iter()).for_each(|(o, &v)| *o = v);
                Ok(Out::Next)
            }
            _ => Err(Error::WrongNumericPath),
        }
    }

    #[cfg(feature = "int8")]
    pub(crate) fn run_i8(&self, io: Io<'_, i8>, ctx: &mut Ctx<'_, '_>) -> Result<Out> {
        match *self {
            Token::Tokens => Ok(Out::InPlace),
            Token::EmbeddingI8 { table, dim } => {
                let vocab = table.len() / dim.max(1);
                for (&v, yr) in io.x.iter().zip(io.y.chunks_exact_mut(dim.max(1))) {
                    let id = (v.max(0) as usize).min(vocab.saturating_sub(1));
                    let from = table.get(id * dim..(id + 1) * dim).unwrap_or(&[]);
                    yr.iter_mut().zip(from).for_each(|(o, &b)| *o = b as i8);
                }
                Ok(Out::Next)
            }
            Token::AddTableI8 {
                input,
                table,
                output_zero_point,
            } => {
                let at = ctx.pass.first() * io.row * 2;
                let t = table.get(at..at + io.x.len() * 2).ok_or(BAD)?;
                for (v, b) in io.x.iter_mut().zip(t.chunks_exact(2)) {
                    let a = super::skip::apply(&input, *v);
                    let p = i32::from(i16::from_le_bytes([b[0], b[1]]));
                    *v = saturate_i8(
                        a.saturating_add(p)
                            .saturating_add(i32::from(output_zero_point)),
                    );
                }
                Ok(Out::InPlace)
            }
            Token::NormI8 {
                eps,
                params,
                output_zero_point,
            } => {
                io.each_row(|r| layer_norm_i8(r, eps, params, output_zero_point));
                Ok(Out::InPlace)
            }
            Token::Attention(i) => {
                let layout = &ctx.families.tokens;
                layout.get(i)?.run_i8(
                    ctx.pass,
                    layout.causal,
                    io.x,
                    io.y,
                    ctx.scratch,
                    ctx.state,
                )?;
                Ok(Out::Next)
            }
            Token::Pool(kind) => {
                pool_i8(kind, io.x, io.rows);
                Ok(Out::InPlace)
            }
            Token::ClassToken(vector) => {
                let (first, rest) = io.y.split_at_mut(io.out_row.min(io.y.len()));
                first
                    .iter_mut()
                    .zip(vector)
                    .for_each(|(o, &b)| *o = b as i8);
                rest.iter_mut().zip(io.x.iter()).for_each(|(o, &v)| *o = v);
                Ok(Out::Next)
            }
            _ => Err(Error::WrongNumericPath),
        }
    }
}

fn norm_stats(s: &mut ModelStats, params: &[u8], rows: usize) {
    s.parameters += params.len() / 4;
    s.parameter_bytes += params.len();
    s.macs += params.len() / 8 * rows;
}

/// Keys of a query at `query`: causal rows see `query - tokens + 1 ..= query`
/// (clamped at 0), others every row.
fn span(query: usize, tokens: usize, causal: bool) -> Span {
    if causal {
        Span {
            query,
            first: query.saturating_add(1).saturating_sub(tokens),
            last: query,
        }
    } else {
        Span {
            query,
            first: 0,
            last: tokens.saturating_sub(1),
        }
    }
}

/// `(q, k, v, ctx, scores)` views of an attention scratch.
#[cfg(feature = "f32")]
type ScratchF32<'s> = (
    &'s mut [f32],
    &'s mut [f32],
    &'s mut [f32],
    &'s mut [f32],
    &'s mut [f32],
);

#[cfg(feature = "f32")]
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
    /// Run the layer on `rows` rows of `x` into `y` (f32). In a step pass,
    /// `cache` is the model's cache (after the position word).
    // Out of line: several entry points share one copy (flash).
    #[cfg(feature = "f32")]
    #[inline(never)]
    fn run_f32(
        &self,
        pass: Pass,
        causal: bool,
        x: &[f32],
        y: &mut [f32],
        scratch: &mut [u8],
        cache: &mut [u8],
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
        let (keys, values): (&mut [f32], &mut [f32]) = match pass {
            Pass::Full => (k_scratch, v_scratch),
            Pass::Step { .. } => {
                let bytes = cache
                    .get_mut(self.cache..self.cache + 2 * block * 4)
                    .ok_or(BAD)?;
                let floats: &mut [f32] =
                    bytemuck::try_cast_slice_mut(bytes).map_err(|_| Error::ArenaMisaligned)?;
                floats.split_at_mut(block)
            }
        };
        let rows = pass.rows(t);
        let (w, b) = (dim * dim * 4, dim * 4);
        let (wq, wk, wv) = (
            qkv_weights.get(..w).ok_or(BAD)?,
            qkv_weights.get(w..2 * w).ok_or(BAD)?,
            qkv_weights.get(2 * w..).ok_or(BAD)?,
        );
        let (bq, bk, bv) = (
            qkv_bias.get(..b).ok_or(BAD)?,
            qkv_bias.get(b..2 * b).ok_or(BAD)?,
            qkv_bias.get(2 * b..).ok_or(BAD)?,
        );
        for r in 0..rows {
            let pos = pass.first() + r;
            let slot = pos % t;
            let xr = x.get(r * dim..(r + 1) * dim).ok_or(BAD)?;
            let qr = q.get_mut(r * dim..(r + 1) * dim).ok_or(BAD)?;
            let kr = keys.get_mut(slot * dim..(slot + 1) * dim).ok_or(BAD)?;
            let vr = values.get_mut(slot * dim..(slot + 1) * dim).ok_or(BAD)?;
            dense_f32(wq, bq, xr, qr);
            dense_f32(wk, bk, xr, kr);
            dense_f32(wv, bv, xr, vr);
            if self.position == Position::Rope {
                let row = table.get(pos * hd * 4..(pos + 1) * hd * 4).ok_or(BAD)?;
                rope_f32(qr, hd, row);
                rope_f32(kr, hd, row);
            }
        }
        for r in 0..rows {
            let sp = span(pass.first() + r, t, causal);
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
    // Out of line: several entry points share one copy (flash).
    #[cfg(feature = "int8")]
    #[inline(never)]
    fn run_i8(
        &self,
        pass: Pass,
        causal: bool,
        x: &[i8],
        y: &mut [i8],
        scratch: &mut [u8],
        cache: &mut [u8],
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
        let split = ((4 * block).div_ceil(4) * 4).min(scratch.len());
        let (bytes, score_bytes) = scratch.split_at_mut(split);
        let scores: &mut [i32] =
            bytemuck::try_cast_slice_mut(score_bytes.get_mut(..4 * (t + dim)).ok_or(BAD)?)
                .map_err(|_| Error::ArenaMisaligned)?;
        let ints: &mut [i8] = bytemuck::cast_slice_mut(bytes);
        let (q, rest) = ints.split_at_mut(block.min(ints.len()));
        let (k_scratch, rest) = rest.split_at_mut(block.min(rest.len()));
        let (v_scratch, ctx) = rest.split_at_mut(block.min(rest.len()));
        let (keys, values): (&mut [i8], &mut [i8]) = match pass {
            Pass::Full => (k_scratch, v_scratch),
            Pass::Step { .. } => {
                let bytes = cache
                    .get_mut(self.cache..self.cache + 2 * block)
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
            for (p, o) in [(&qp, &mut *qr), (&kp, &mut *kr), (&vp, vr)] {
                dense_i8(p.weights, p.bias, p.multiplier, p.shift, 0, xr, o);
            }
            if self.position == Position::Rope {
                let row = table.get(pos * hd * 2..(pos + 1) * hd * 2).ok_or(BAD)?;
                rope_i8(qr, hd, row);
                rope_i8(kr, hd, row);
            }
        }
        for r in 0..rows {
            let sp = span(pass.first() + r, t, causal);
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
#[cfg(feature = "f32")]
fn pool_f32(kind: PoolKind, x: &mut [f32], rows: usize) {
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
#[cfg(feature = "int8")]
fn pool_i8(kind: PoolKind, x: &mut [i8], rows: usize) {
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
