//! One home per layer family: each file validates its layer definitions
//! (definition and input shape in, validated layer out) and runs them on
//! both numeric paths.
//!
//! | file | family | feature |
//! | --- | --- | --- |
//! | `dense.rs` | dense, activations, int8 tables, softmax | `f32` / `int8` |
//! | `skip.rs` | residual save / add | `f32` / `int8` |
//! | `recurrent.rs` | Elman RNN, LSTM, GRU | `recurrent` |
//! | `transformer.rs` | tokens, embedding, positions, LayerNorm, attention, pooling | `attention` |
//! | `classical.rs` | nearest centroid, squared error, isolation forest, threshold | `classical` |
//! | `conv.rs` | standard and depthwise 2-D / 1-D convolution, max and average pooling | `conv` |
//! | `seq2seq.rs` | the encoder-decoder's decoder with attention | `seq2seq` |
//!
//! A family that a build leaves out has no variant in [`Layer`], no
//! validation and no run code; the decoder rejects its kinds before they
//! get here. Adding a family is a file here, a variant of [`Layer`] with its
//! arms below, and its kernels in `kernels/`.
//!
//! The interpreter (`model/run.rs`) gives each layer an [`Io`]: the current
//! tensor `x` (`rows` rows), the other work buffer `y` sized for the layer's
//! output, and the skip slots; a layer answers whether its result is in `x`
//! or in `y` ([`Out`]).

pub(crate) mod dense;
pub(crate) mod skip;

#[cfg(feature = "classical")]
pub(crate) mod classical;
#[cfg(feature = "conv")]
pub(crate) mod conv;
#[cfg(feature = "recurrent")]
pub(crate) mod recurrent;
#[cfg(feature = "seq2seq")]
pub(crate) mod seq2seq;
#[cfg(feature = "attention")]
pub(crate) mod transformer;

use crate::error::{Error, Result};
use crate::format::{Features, LayerDef, Numeric, Rescale, MAX_SKIP_SLOTS, MAX_TENSOR, MAX_WIDTH};
use crate::quant::is_valid_multiplier;

/// Summary of a model's size, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelStats {
    /// Weights, biases and quantization parameters, in elements.
    pub parameters: usize,
    /// Multiply-accumulates per inference (per time step for recurrent models).
    pub macs: usize,
    /// Bytes of parameter data in the blob (what stays in flash).
    pub parameter_bytes: usize,
}

/// Marks errors about the model's input/output rather than one layer.
pub(crate) const MODEL_LEVEL: u32 = u32::MAX;

/// The error of an index that validation made impossible (defensive: the
/// interpreter returns it rather than panic).
pub(crate) const BAD: Error = Error::ShapeMismatch { layer: MODEL_LEVEL };

/// A validated layer, by family.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Layer<'a> {
    Dense(dense::Dense<'a>),
    Skip(skip::Skip),
    #[cfg(feature = "recurrent")]
    Recurrent(recurrent::Recurrent<'a>),
    #[cfg(feature = "attention")]
    Token(transformer::Token<'a>),
    #[cfg(feature = "classical")]
    Classical(classical::Classical<'a>),
    #[cfg(feature = "conv")]
    Conv(conv::Conv<'a>),
    /// The decoder (kept in [`Families`]: one per model, and large).
    #[cfg(feature = "seq2seq")]
    Decoder,
}

/// Where a layer left its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Out {
    /// In `x` (the layer worked in place).
    InPlace,
    /// In `y` (the buffers swap).
    Next,
}

/// What validation knows while it walks the layers: the tensor's shape so
/// far and each family's model-wide bookkeeping.
#[derive(Debug)]
pub(crate) struct Plan<'p, 'a> {
    pub numeric: Numeric,
    /// The model's input width.
    pub input: usize,
    /// Width of the whole tensor (all rows).
    pub width: usize,
    /// Rows of the tensor (tokens; 1 outside transformers).
    pub tokens: usize,
    pub slots: skip::Slots,
    /// The feature map the tensor is, when a convolution or pooling made
    /// it (kept by elementwise layers and skips).
    pub map: Option<crate::format::FeatureMap>,
    /// The model's family facts, filled in as the layers go by.
    pub families: &'p mut Families<'a>,
}

impl<'p, 'a> Plan<'p, 'a> {
    /// Before the first layer: the model's input, one row.
    pub(crate) fn new(numeric: Numeric, width: usize, families: &'p mut Families<'a>) -> Self {
        Plan {
            numeric,
            input: width,
            width,
            tokens: 1,
            slots: skip::Slots::new(),
            map: None,
            families,
        }
    }

    /// Values per row of the tensor.
    pub(crate) fn row(&self) -> usize {
        self.width / self.tokens.max(1)
    }
}

/// Model-wide facts of the families that have them (filled in at load,
/// read by the interpreter).
#[derive(Debug, Clone, Default)]
pub(crate) struct Families<'a> {
    pub dense: dense::Layout,
    #[cfg(feature = "recurrent")]
    pub recurrent: recurrent::Layout,
    #[cfg(feature = "attention")]
    pub tokens: transformer::Layout<'a>,
    #[cfg(feature = "conv")]
    pub conv: conv::Layout,
    #[cfg(feature = "seq2seq")]
    pub seq2seq: seq2seq::Layout<'a>,
    #[allow(dead_code)]
    pub blob: core::marker::PhantomData<&'a ()>,
}

impl Families<'_> {
    /// No family facts (a model that is not recurrent and not a transformer).
    pub(crate) const fn new() -> Self {
        Families {
            dense: dense::Layout::new(),
            #[cfg(feature = "recurrent")]
            recurrent: recurrent::Layout::new(),
            #[cfg(feature = "attention")]
            tokens: transformer::Layout::new(),
            #[cfg(feature = "conv")]
            conv: conv::Layout::new(),
            #[cfg(feature = "seq2seq")]
            seq2seq: seq2seq::Layout::new(),
            blob: core::marker::PhantomData,
        }
    }

    /// Back to [`Families::new`], in place.
    pub(crate) fn clear(&mut self) {
        self.dense = dense::Layout::new();
        #[cfg(feature = "recurrent")]
        {
            self.recurrent = recurrent::Layout::new();
        }
        #[cfg(feature = "attention")]
        self.tokens.clear();
        #[cfg(feature = "conv")]
        {
            self.conv = conv::Layout::new();
        }
        #[cfg(feature = "seq2seq")]
        {
            self.seq2seq = seq2seq::Layout::new();
        }
    }
}

/// Which rows a pass computes: all of them, or one token of a causal model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// The whole tensor (every row).
    Full,
    /// One token at absolute `position`, keys and values in the cache.
    #[cfg_attr(not(feature = "attention"), allow(dead_code))]
    Step { position: usize },
}

impl Pass {
    /// Rows a layer with `tokens` rows computes in this pass.
    pub(crate) fn rows(&self, tokens: usize) -> usize {
        match self {
            Pass::Full => tokens,
            Pass::Step { .. } => 1,
        }
    }
    /// Absolute position of the first row.
    pub(crate) fn first(&self) -> usize {
        match self {
            Pass::Full => 0,
            Pass::Step { position } => *position,
        }
    }
}

/// One layer's buffers.
pub(crate) struct Io<'r, T> {
    /// The current tensor, `rows` rows of `row` values.
    pub x: &'r mut [T],
    /// The other work buffer, exactly the layer's output (rows of
    /// `out_row` values).
    pub y: &'r mut [T],
    pub row: usize,
    pub rows: usize,
    pub out_row: usize,
    /// The skip-slot area, and each slot's element offset in it.
    pub slots: &'r mut [T],
    pub offsets: &'r [u32; MAX_SKIP_SLOTS],
}

impl<'r, T> Io<'r, T> {
    /// `f` on each input row and its output row (splitting, not dividing:
    /// no division routine on cores without one).
    pub(crate) fn each_row_in_out(self, mut f: impl FnMut(&[T], &mut [T])) {
        let (mut x, mut y) = (&*self.x, self.y);
        while let (Some((xr, x_rest)), Some((yr, y_rest))) = (
            x.split_at_checked(self.row.max(1)),
            y.split_at_mut_checked(self.out_row.max(1)),
        ) {
            f(xr, yr);
            (x, y) = (x_rest, y_rest);
        }
    }
    /// `f` on each input row, in place.
    pub(crate) fn each_row(self, mut f: impl FnMut(&mut [T])) {
        let mut x = self.x;
        while let Some((xr, rest)) = x.split_at_mut_checked(self.row.max(1)) {
            f(xr);
            x = rest;
        }
    }
    /// `x` and the slot's tensor of the same width.
    pub(crate) fn x_and_slot(self, slot: u8) -> Result<(&'r mut [T], &'r mut [T])> {
        let bad = Error::BadSkipSlot { layer: MODEL_LEVEL };
        let at = *self.offsets.get(usize::from(slot)).ok_or(bad)? as usize;
        let saved = self
            .slots
            .get_mut(at..at.saturating_add(self.x.len()))
            .ok_or(bad)?;
        Ok((self.x, saved))
    }
}

/// What a pass gives every layer beside its buffers.
pub(crate) struct Ctx<'c, 'a> {
    pub pass: Pass,
    /// The families' arena scratch (4-byte aligned).
    pub scratch: &'c mut [u8],
    /// Recurrent state, or a causal model's cache (empty otherwise).
    pub state: &'c mut [u8],
    pub families: &'c Families<'a>,
}

/// A tensor size in `1..=MAX_TENSOR`.
pub(crate) fn check_tensor(layer: u32, value: u32) -> Result<usize> {
    if value == 0 || value > MAX_TENSOR {
        return Err(Error::DimensionOutOfRange { layer, value });
    }
    Ok(value as usize)
}

/// A width or length in `1..=MAX_WIDTH`.
pub(crate) fn check_width(layer: u32, value: u32) -> Result<usize> {
    if value == 0 || value > MAX_WIDTH {
        return Err(Error::DimensionOutOfRange { layer, value });
    }
    Ok(value as usize)
}

/// A parameter array of exactly `expected` bytes.
pub(crate) fn check_len(layer: u32, bytes: &[u8], expected: usize) -> Result<()> {
    if bytes.len() != expected {
        return Err(Error::ShapeMismatch { layer });
    }
    Ok(())
}

/// A valid fixed-point ratio.
pub(crate) fn check_rescale(layer: u32, r: &Rescale) -> Result<()> {
    if is_valid_multiplier(r.multiplier, r.shift) {
        Ok(())
    } else {
        Err(Error::BadQuantization { layer })
    }
}

impl<'a> Layer<'a> {
    /// Validate layer `at`, updating the plan's shape. Kinds whose family
    /// this build leaves out are rejected by name.
    pub(crate) fn validate(at: u32, def: &LayerDef<'a>, plan: &mut Plan<'_, 'a>) -> Result<Self> {
        let needs = Features::of_kind(def.tag());
        if let Some(feature) = needs.missing_from(Features::BUILD) {
            return Err(Error::UnsupportedLayer { layer: at, feature });
        }
        // A kind of the other numeric path (shape-only kinds have none).
        let path = Features::of_numeric(plan.numeric);
        let other = Features::F32.with(Features::INT8);
        if !path.contains(Features::of_kind(def.tag()).and(other)) {
            return Err(Error::WrongNumericPath);
        }
        // Only elementwise layers and skips keep a feature map's shape.
        let keeps_map = matches!(
            def,
            LayerDef::ActivationF32(_)
                | LayerDef::TableI8 { .. }
                | LayerDef::SaveSkip { .. }
                | LayerDef::AddSkipF32 { .. }
                | LayerDef::AddSkipI8 { .. }
        );
        #[cfg(feature = "conv")]
        if let Some(l) = conv::validate(at, def, plan) {
            return l.map(Layer::Conv);
        }
        if !keeps_map {
            plan.map = None;
        }
        if let Some(l) = dense::validate(at, def, plan) {
            return l.map(Layer::Dense);
        }
        if let Some(l) = skip::validate(at, def, plan) {
            return l.map(Layer::Skip);
        }
        #[cfg(feature = "recurrent")]
        if let Some(l) = recurrent::validate(at, def, plan) {
            return l.map(Layer::Recurrent);
        }
        #[cfg(feature = "attention")]
        if let Some(l) = transformer::validate(at, def, plan) {
            return l.map(Layer::Token);
        }
        #[cfg(feature = "classical")]
        if let Some(l) = classical::validate(at, def, plan) {
            return l.map(Layer::Classical);
        }
        #[cfg(feature = "seq2seq")]
        if let Some(l) = seq2seq::validate(at, def, plan) {
            return l.map(|()| Layer::Decoder);
        }
        Err(Error::Malformed)
    }

    /// Short name for reports, e.g. `"dense int8"`.
    pub(crate) fn kind(&self, families: &Families<'_>) -> &'static str {
        match self {
            Layer::Dense(l) => l.kind(),
            Layer::Skip(l) => l.kind(),
            #[cfg(feature = "recurrent")]
            Layer::Recurrent(l) => l.kind(),
            #[cfg(feature = "attention")]
            Layer::Token(l) => l.kind(&families.tokens),
            #[cfg(feature = "classical")]
            Layer::Classical(l) => l.kind(),
            #[cfg(feature = "conv")]
            Layer::Conv(l) => l.kind(),
            #[cfg(feature = "seq2seq")]
            Layer::Decoder => families.seq2seq.decoder.map_or("decoder", |d| d.kind()),
        }
    }

    /// The feature map the layer produces, if it is a convolution or pooling.
    pub(crate) fn map(&self) -> Option<crate::format::FeatureMap> {
        match self {
            #[cfg(feature = "conv")]
            Layer::Conv(l) => Some(l.output()),
            _ => None,
        }
    }

    /// Adds the layer's parameters, MACs and parameter bytes (`rows` rows).
    pub(crate) fn add_stats(&self, s: &mut ModelStats, rows: usize, families: &Families<'_>) {
        match self {
            Layer::Dense(l) => l.add_stats(s, rows),
            Layer::Skip(_) => {}
            #[cfg(feature = "recurrent")]
            Layer::Recurrent(l) => l.add_stats(s),
            #[cfg(feature = "attention")]
            Layer::Token(l) => l.add_stats(s, rows, &families.tokens),
            #[cfg(feature = "classical")]
            Layer::Classical(l) => l.add_stats(s),
            #[cfg(feature = "conv")]
            Layer::Conv(l) => l.add_stats(s),
            #[cfg(feature = "seq2seq")]
            Layer::Decoder => {
                if let Some(d) = &families.seq2seq.decoder {
                    d.add_stats(s);
                }
            }
        }
    }
}

/// The element type of a numeric path: how each layer runs on it.
pub(crate) trait Element: Copy + Default + bytemuck::Pod {
    /// Run one layer.
    fn run(layer: &Layer<'_>, io: Io<'_, Self>, ctx: &mut Ctx<'_, '_>) -> Result<Out>;
}

impl Element for f32 {
    fn run(layer: &Layer<'_>, io: Io<'_, f32>, ctx: &mut Ctx<'_, '_>) -> Result<Out> {
        match layer {
            #[cfg(feature = "f32")]
            Layer::Dense(l) => l.run_f32(io),
            #[cfg(feature = "f32")]
            Layer::Skip(l) => l.run_f32(io),
            #[cfg(all(feature = "recurrent", feature = "f32"))]
            Layer::Recurrent(l) => l.run_f32(io, ctx),
            #[cfg(all(feature = "attention", feature = "f32"))]
            Layer::Token(l) => l.run_f32(io, ctx),
            #[cfg(feature = "classical")]
            Layer::Classical(l) => l.run_f32(io),
            #[cfg(all(feature = "conv", feature = "f32"))]
            Layer::Conv(l) => l.run_f32(io),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongNumericPath),
        }
    }
}

impl Element for i8 {
    fn run(layer: &Layer<'_>, io: Io<'_, i8>, ctx: &mut Ctx<'_, '_>) -> Result<Out> {
        match layer {
            #[cfg(feature = "int8")]
            Layer::Dense(l) => {
                let offset = ctx.families.dense.offset;
                l.run_i8(io, ctx.scratch.get_mut(offset..).unwrap_or(&mut []))
            }
            #[cfg(feature = "int8")]
            Layer::Skip(l) => l.run_i8(io),
            #[cfg(all(feature = "recurrent", feature = "int8"))]
            Layer::Recurrent(l) => l.run_i8(io, ctx),
            #[cfg(all(feature = "attention", feature = "int8"))]
            Layer::Token(l) => l.run_i8(io, ctx),
            #[cfg(all(feature = "conv", feature = "int8"))]
            Layer::Conv(l) => l.run_i8(io, ctx.scratch),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongNumericPath),
        }
    }
}
