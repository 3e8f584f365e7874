//! Loading (validation) and running a model.
//!
//! # Contract
//! [`Model::from_bytes`] is the only way to get a [`Model`], and it checks,
//! once and in this order:
//! 1. the magic, then the format version, then that the payload is complete,
//!    then the payload's CRC-32;
//! 2. that the payload decodes to a header and exactly `layer_count` layers
//!    (at most [`MAX_LAYERS`]) with nothing after them;
//! 3. every width is in `1..=MAX_WIDTH`, each layer's input width equals the
//!    previous layer's output width, the last width equals `output_len`, and
//!    every parameter array has exactly the length its shape implies;
//! 4. every layer belongs to the model's numeric path, every quantization
//!    parameter is in range (scales finite and positive, multipliers in
//!    `[2^30, 2^31)` or 0, shifts in `1..=62`, tables of the right size, softmax
//!    table entry 0 non-zero);
//! 5. every residual add reads a slot saved earlier with the same width;
//! 6. the declared arena size equals what the layers need;
//! 7. classical layers: a nearest-centroid layer has `1..2^24` centroids of
//!    the input width; a squared-error layer reads a slot saved with the
//!    current width; an isolation forest's trees tile its node arrays, every
//!    split feature is below the input width, every value is finite, and every
//!    child index is after its parent and inside its tree
//!    ([`Error::BadTreeNode`] otherwise), so a walk always ends at a leaf; a
//!    threshold follows a one-value score and is not NaN.
//!
//! 8. recurrent layers ([`sequence`]): input width chains, every parameter
//!    array has its exact length, multipliers are valid, the output rescale
//!    reads a zero-point-0 Q15 state; after the last recurrent layer only
//!    dense, activation, table and softmax layers follow, and recurrent
//!    models use no skip slots.
//!
//! After that, running the model only checks the caller's buffers (input
//! length, arena size and alignment) and never panics: every index into the
//! blob or the arena is within the bounds established at load. The blob is
//! borrowed, not copied.
//!
//! Non-finite inputs: on the f32 path NaN and ±inf propagate by IEEE rules
//! (a NaN input makes every output of a dense layer NaN, and every activation,
//! ReLU included, passes NaN on; [`argmax`](crate::argmax) never picks NaN and
//! returns 0 when all outputs are NaN). On
//! the int8 path [`Model::quantize_input`] maps NaN to the zero point and ±inf
//! to the int8 limits; from there everything is integer.

use crate::error::{Error, Result};
use crate::format::{
    Activation, Envelope, LayerDef, ModelHeader, Numeric, PoolKind, QuantParams, Rescale,
    FORMAT_VERSION, MAGIC, MAX_LAYERS, MAX_SKIP_SLOTS, MAX_WIDTH,
};
use crate::kernels::attention::{layer_norm_f32, layer_norm_i8};
use crate::kernels::classical::{self, Forest, NODE_BYTES};
use crate::kernels::{dense_f32, dense_i8, le_f32, le_i32};
use crate::math;
use crate::quant::{is_valid_multiplier, rescale, saturate_i8};

mod sequence;
mod transformer;

use transformer::Pass;

/// Marks errors about the model's input/output rather than a layer.
const MODEL_LEVEL: u32 = u32::MAX;

/// A validated layer; parameter slices have the lengths their shapes imply.
#[derive(Debug, Clone, Copy)]
enum Layer<'a> {
    DenseF32 {
        weights: &'a [u8],
        bias: &'a [u8],
    },
    ActivationF32(Activation),
    DenseI8 {
        weights: &'a [u8],
        bias: &'a [u8],
        multiplier: &'a [u8],
        shift: &'a [u8],
        output_zero_point: i8,
    },
    TableI8(&'a [u8; 256]),
    SoftmaxI8(&'a [u8; 512]),
    SaveSkip {
        slot: usize,
    },
    AddSkipF32 {
        slot: usize,
    },
    AddSkipI8 {
        slot: usize,
        input: Rescale,
        skip: Rescale,
        output_zero_point: i8,
    },
    NearestCentroidF32 {
        centroids: &'a [u8],
    },
    SquaredErrorF32 {
        slot: usize,
    },
    IsolationForestF32(Forest<'a>),
    ThresholdF32 {
        value: f32,
    },
    RecurrentF32(sequence::Rec<'a>),
    RecurrentI8(sequence::RecI8<'a>),
    /// Marks a transformer model (no work at run time).
    Tokens,
    EmbeddingF32 {
        table: &'a [u8],
        dim: usize,
    },
    EmbeddingI8 {
        table: &'a [u8],
        dim: usize,
    },
    AddTableF32(&'a [u8]),
    AddTableI8 {
        input: Rescale,
        table: &'a [u8],
        output_zero_point: i8,
    },
    NormF32 {
        eps: f32,
        params: &'a [u8],
    },
    NormI8 {
        eps: u32,
        params: &'a [u8],
        output_zero_point: i8,
    },
    /// Index into the model's attention layers.
    Attention(u8),
    Pool(PoolKind),
    ClassToken(&'a [u8]),
}

#[derive(Debug, Clone, Copy)]
struct Step<'a> {
    layer: Layer<'a>,
    /// Width of the tensor after this layer (all rows).
    width: usize,
    /// Rows (tokens) of the tensor after this layer; 1 outside transformers.
    tokens: usize,
}

/// Where each skip slot lives in the arena, in elements past the two work buffers.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    offset: usize,
}

/// A validated model borrowing its parameters from the blob.
#[derive(Debug, Clone)]
pub struct Model<'a> {
    header: ModelHeader<'a>,
    steps: heapless::Vec<Step<'a>, MAX_LAYERS>,
    slots: [Slot; MAX_SKIP_SLOTS],
    /// Width of each of the two work buffers, in elements.
    work_width: usize,
    arena_bytes: usize,
    /// Per-step/head split and state size of recurrent models (see `sequence`).
    seq: sequence::SequenceLayout,
    /// Tokens, attention layers and cache of transformer models (see `transformer`).
    tf: transformer::TokenLayout<'a>,
}

/// One layer as reports show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// Short name of the layer kind and numeric type, e.g. `"dense int8"`.
    pub kind: &'static str,
    /// Width of the tensor the layer produces.
    pub width: usize,
}

/// Summary of a model's size, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelStats {
    /// Weights, biases and quantization parameters, in elements.
    pub parameters: usize,
    /// Multiply-accumulates per inference.
    pub macs: usize,
    /// Bytes of parameter data in the blob (what stays in flash).
    pub parameter_bytes: usize,
}

fn element_bytes(numeric: Numeric) -> usize {
    match numeric {
        Numeric::F32 => 4,
        Numeric::Int8 => 1,
    }
}

fn check_width(layer: u32, value: u32) -> Result<usize> {
    if value == 0 || value > MAX_WIDTH {
        return Err(Error::DimensionOutOfRange { layer, value });
    }
    Ok(value as usize)
}

fn check_len(layer: u32, bytes: &[u8], expected: usize) -> Result<()> {
    if bytes.len() != expected {
        return Err(Error::ShapeMismatch { layer });
    }
    Ok(())
}

fn check_quant(layer: u32, q: Option<QuantParams>) -> Result<()> {
    match q {
        Some(q) if q.scale.is_finite() && q.scale > 0.0 => Ok(()),
        _ => Err(Error::BadQuantization { layer }),
    }
}

fn check_rescale(layer: u32, r: &Rescale) -> Result<()> {
    if is_valid_multiplier(r.multiplier, r.shift) {
        Ok(())
    } else {
        Err(Error::BadQuantization { layer })
    }
}

/// Split a blob into its checked payload (steps 1 of the contract).
fn open_envelope(blob: &[u8]) -> Result<&[u8]> {
    match blob.get(..4) {
        None => {
            return Err(if MAGIC.starts_with(blob) {
                Error::Truncated
            } else {
                Error::BadMagic
            })
        }
        Some(m) if m != MAGIC => return Err(Error::BadMagic),
        Some(_) => {}
    }
    let version = match blob.get(4..6) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]),
        _ => return Err(Error::Truncated),
    };
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let (envelope, rest) = postcard::take_from_bytes::<Envelope>(blob)?;
    if !rest.is_empty() {
        return Err(Error::Malformed);
    }
    let computed = crate::format::checksum(envelope.payload);
    if computed != envelope.crc {
        return Err(Error::BadCrc {
            stored: envelope.crc,
            computed,
        });
    }
    Ok(envelope.payload)
}

impl<'a> Model<'a> {
    /// A model with no layers and no input: every run returns an error until
    /// [`Model::load`] fills it. `const`, so firmware can keep it in a static.
    pub const fn empty() -> Self {
        Model {
            header: ModelHeader {
                numeric: Numeric::F32,
                input_len: 0,
                output_len: 0,
                arena_bytes: 0,
                layer_count: 0,
                input_offset: &[],
                input_scale: &[],
                input_quant: None,
                output_quant: None,
            },
            steps: heapless::Vec::new(),
            slots: [Slot { offset: 0 }; MAX_SKIP_SLOTS],
            work_width: 0,
            arena_bytes: 0,
            seq: sequence::SequenceLayout::new(),
            tf: transformer::TokenLayout::new(),
        }
    }

    /// Parse and validate a blob (see the module docs for every check).
    pub fn from_bytes(blob: &'a [u8]) -> Result<Self> {
        let mut model = Model::empty();
        model.load(blob)?;
        Ok(model)
    }

    /// [`Model::from_bytes`] into an existing model, without moving a whole
    /// [`Model`] around on the stack (on a chip, keep it in a static). On
    /// error the model is left [`Model::empty`].
    pub fn load(&mut self, blob: &'a [u8]) -> Result<()> {
        let result = self.load_checked(blob);
        if result.is_err() {
            *self = Model::empty();
        }
        result
    }

    fn load_checked(&mut self, blob: &'a [u8]) -> Result<()> {
        *self = Model::empty();
        let payload = open_envelope(blob)?;
        let (header, mut rest) = postcard::take_from_bytes::<ModelHeader>(payload)?;
        if header.layer_count as usize > MAX_LAYERS {
            return Err(Error::TooManyLayers {
                found: header.layer_count,
                max: MAX_LAYERS as u32,
            });
        }
        // Layers are decoded one at a time as validation consumes them, so no
        // second array of layer definitions ever sits on the stack.
        let defs = (0..header.layer_count).map(|_| {
            let (def, tail) = postcard::take_from_bytes::<LayerDef>(rest)?;
            rest = tail;
            Ok(def)
        });
        self.validate(header, defs)?;
        if !rest.is_empty() {
            return Err(Error::Malformed);
        }
        if header.arena_bytes as usize != self.arena_bytes {
            return Err(Error::ArenaSizeMismatch {
                declared: header.arena_bytes,
                needed: self.arena_bytes as u32,
            });
        }
        Ok(())
    }

    /// The arena bytes a header and its layers need, with every check of
    /// [`Model::from_bytes`] except the envelope and the declared arena size.
    /// Exporters call this to fill in [`ModelHeader::arena_bytes`].
    pub fn required_arena_bytes(header: ModelHeader<'a>, layers: &[LayerDef<'a>]) -> Result<u32> {
        if layers.len() > MAX_LAYERS || header.layer_count as usize != layers.len() {
            return Err(Error::TooManyLayers {
                found: layers.len() as u32,
                max: MAX_LAYERS as u32,
            });
        }
        let mut model = Model::empty();
        model.validate(header, layers.iter().copied().map(Ok))?;
        Ok(model.arena_bytes as u32)
    }

    /// Validate into `self` (assumed empty), building the steps in place.
    fn validate(
        &mut self,
        header: ModelHeader<'a>,
        defs: impl Iterator<Item = Result<LayerDef<'a>>>,
    ) -> Result<()> {
        let input_len = check_width(MODEL_LEVEL, header.input_len)?;
        let output_len = check_width(MODEL_LEVEL, header.output_len)?;
        check_len(MODEL_LEVEL, header.input_offset, input_len * 4)?;
        check_len(MODEL_LEVEL, header.input_scale, input_len * 4)?;
        let numeric = header.numeric;
        match numeric {
            Numeric::F32 => {
                if header.input_quant.is_some() || header.output_quant.is_some() {
                    return Err(Error::BadQuantization { layer: MODEL_LEVEL });
                }
            }
            Numeric::Int8 => {
                check_quant(MODEL_LEVEL, header.input_quant)?;
                check_quant(MODEL_LEVEL, header.output_quant)?;
            }
        }

        let steps = &mut self.steps;
        let mut width = input_len;
        let mut work_width = input_len;
        let mut slot_capacity = [0usize; MAX_SKIP_SLOTS];
        let mut slot_width: [Option<usize>; MAX_SKIP_SLOTS] = [None; MAX_SKIP_SLOTS];
        let seq = &mut self.seq;
        let tf = &mut self.tf;
        let mut tokens = 1usize;
        for (index, def) in defs.enumerate() {
            let def = def?;
            let at = index as u32;
            let is_f32 = matches!(
                def,
                LayerDef::DenseF32 { .. }
                    | LayerDef::ActivationF32(_)
                    | LayerDef::AddSkipF32 { .. }
                    | LayerDef::NearestCentroidF32 { .. }
                    | LayerDef::SquaredErrorF32 { .. }
                    | LayerDef::IsolationForestF32 { .. }
                    | LayerDef::ThresholdF32 { .. }
                    | LayerDef::RecurrentF32 { .. }
            );
            let is_i8 = matches!(
                def,
                LayerDef::DenseI8 { .. }
                    | LayerDef::TableI8 { .. }
                    | LayerDef::SoftmaxI8 { .. }
                    | LayerDef::AddSkipI8 { .. }
                    | LayerDef::RecurrentI8 { .. }
            );
            if (is_f32 && numeric != Numeric::F32) || (is_i8 && numeric != Numeric::Int8) {
                return Err(Error::WrongNumericPath);
            }
            let slot_index = |slot: u8| -> Result<usize> {
                let s = slot as usize;
                if s < MAX_SKIP_SLOTS {
                    Ok(s)
                } else {
                    Err(Error::BadSkipSlot { layer: at })
                }
            };
            let layer = match def {
                LayerDef::DenseF32 {
                    inputs,
                    outputs,
                    weights,
                    bias,
                } => {
                    let (i, o) = (check_width(at, inputs)?, check_width(at, outputs)?);
                    if i * tokens != width {
                        return Err(Error::ShapeMismatch { layer: at });
                    }
                    check_len(at, weights, i * o * 4)?;
                    check_len(at, bias, o * 4)?;
                    width = check_width(at, (o * tokens) as u32)?;
                    Layer::DenseF32 { weights, bias }
                }
                LayerDef::ActivationF32(a) => {
                    if let Activation::LeakyRelu { alpha } = a {
                        if !alpha.is_finite() {
                            return Err(Error::BadQuantization { layer: at });
                        }
                    }
                    Layer::ActivationF32(a)
                }
                LayerDef::DenseI8 {
                    inputs,
                    outputs,
                    weights,
                    bias,
                    multiplier,
                    shift,
                    output_zero_point,
                } => {
                    let (i, o) = (check_width(at, inputs)?, check_width(at, outputs)?);
                    if i * tokens != width {
                        return Err(Error::ShapeMismatch { layer: at });
                    }
                    check_len(at, weights, i * o)?;
                    check_len(at, bias, o * 4)?;
                    check_len(at, multiplier, o * 4)?;
                    check_len(at, shift, o)?;
                    for (m, &s) in multiplier.chunks_exact(4).zip(shift) {
                        if !is_valid_multiplier(le_i32(m), s) {
                            return Err(Error::BadQuantization { layer: at });
                        }
                    }
                    width = check_width(at, (o * tokens) as u32)?;
                    Layer::DenseI8 {
                        weights,
                        bias,
                        multiplier,
                        shift,
                        output_zero_point,
                    }
                }
                LayerDef::TableI8 { table } => Layer::TableI8(
                    table
                        .try_into()
                        .map_err(|_| Error::ShapeMismatch { layer: at })?,
                ),
                LayerDef::SoftmaxI8 { exp_table } => {
                    let t: &[u8; 512] = exp_table
                        .try_into()
                        .map_err(|_| Error::ShapeMismatch { layer: at })?;
                    if t[0] == 0 && t[1] == 0 {
                        return Err(Error::BadQuantization { layer: at });
                    }
                    Layer::SoftmaxI8(t)
                }
                LayerDef::SaveSkip { slot } => {
                    let s = slot_index(slot)?;
                    slot_width[s] = Some(width);
                    slot_capacity[s] = slot_capacity[s].max(width);
                    Layer::SaveSkip { slot: s }
                }
                LayerDef::AddSkipF32 { slot } => {
                    let s = slot_index(slot)?;
                    if slot_width[s] != Some(width) {
                        return Err(Error::BadSkipSlot { layer: at });
                    }
                    Layer::AddSkipF32 { slot: s }
                }
                LayerDef::AddSkipI8 {
                    slot,
                    input,
                    skip,
                    output_zero_point,
                } => {
                    let s = slot_index(slot)?;
                    if slot_width[s] != Some(width) {
                        return Err(Error::BadSkipSlot { layer: at });
                    }
                    check_rescale(at, &input)?;
                    check_rescale(at, &skip)?;
                    Layer::AddSkipI8 {
                        slot: s,
                        input,
                        skip,
                        output_zero_point,
                    }
                }
                LayerDef::NearestCentroidF32 { dim, k, centroids } => {
                    let d = check_width(at, dim)?;
                    if k == 0 || k >= 1 << 24 {
                        return Err(Error::DimensionOutOfRange {
                            layer: at,
                            value: k,
                        });
                    }
                    if d != width {
                        return Err(Error::ShapeMismatch { layer: at });
                    }
                    check_len(
                        at,
                        centroids,
                        (k as usize).saturating_mul(d).saturating_mul(4),
                    )?;
                    width = 2;
                    Layer::NearestCentroidF32 { centroids }
                }
                LayerDef::SquaredErrorF32 { slot } => {
                    let s = slot_index(slot)?;
                    if slot_width[s] != Some(width) {
                        return Err(Error::BadSkipSlot { layer: at });
                    }
                    width = 1;
                    Layer::SquaredErrorF32 { slot: s }
                }
                LayerDef::IsolationForestF32 {
                    inputs,
                    sample_size,
                    roots,
                    nodes,
                } => {
                    let i = check_width(at, inputs)?;
                    if i != width {
                        return Err(Error::ShapeMismatch { layer: at });
                    }
                    let forest = classical::validate_forest(at, i, sample_size, roots, nodes)?;
                    width = 1;
                    Layer::IsolationForestF32(forest)
                }
                LayerDef::ThresholdF32 { value } => {
                    if value.is_nan() {
                        return Err(Error::BadParameter { layer: at });
                    }
                    if width != 1 {
                        return Err(Error::ShapeMismatch { layer: at });
                    }
                    width = 2;
                    Layer::ThresholdF32 { value }
                }
                def @ (LayerDef::RecurrentF32 { .. } | LayerDef::RecurrentI8 { .. }) => {
                    seq.layer(at, def, &mut width)?
                }
                def => tf.layer(at, def, numeric, &mut width, &mut tokens)?,
            };
            work_width = work_width.max(width);
            steps
                .push(Step {
                    layer,
                    width,
                    tokens,
                })
                .map_err(|_| Error::TooManyLayers {
                    found: at + 1,
                    max: MAX_LAYERS as u32,
                })?;
        }
        if width != output_len {
            return Err(Error::ShapeMismatch { layer: MODEL_LEVEL });
        }

        let mut slots = [Slot::default(); MAX_SKIP_SLOTS];
        let mut offset = 2 * work_width;
        for (slot, &capacity) in slots.iter_mut().zip(&slot_capacity) {
            *slot = Slot { offset };
            offset += capacity;
        }
        let arena_bytes = seq.finish(steps, offset * element_bytes(numeric))?;
        let arena_bytes = tf.finish(steps, arena_bytes, numeric)?;
        self.header = header;
        self.slots = slots;
        self.work_width = work_width;
        self.arena_bytes = arena_bytes;
        Ok(())
    }

    /// The model's numeric path.
    pub fn numeric(&self) -> Numeric {
        self.header.numeric
    }
    /// Number of input values.
    pub fn input_len(&self) -> usize {
        self.header.input_len as usize
    }
    /// Number of output values.
    pub fn output_len(&self) -> usize {
        self.header.output_len as usize
    }
    /// Exact bytes of arena [`Model::run_f32`] / [`Model::run_i8`] need.
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes
    }
    /// Number of layers.
    pub fn layer_count(&self) -> usize {
        self.steps.len()
    }
    /// Quantization of the int8 output (`None` for f32 models).
    pub fn output_quant(&self) -> Option<QuantParams> {
        self.header.output_quant
    }
    /// Quantization of the int8 input (`None` for f32 models).
    pub fn input_quant(&self) -> Option<QuantParams> {
        self.header.input_quant
    }
    /// `(offset, scale)` of input value `index`: the model sees
    /// `(raw - offset) * scale` (`None` past the input).
    pub fn input_normalization(&self, index: usize) -> Option<(f32, f32)> {
        let at = index.checked_mul(4)?;
        let offset = self.header.input_offset.get(at..at + 4)?;
        let scale = self.header.input_scale.get(at..at + 4)?;
        Some((le_f32(offset), le_f32(scale)))
    }

    /// Kind and output width of each layer, in order (for `inspect`-style reports).
    pub fn layers(&self) -> impl Iterator<Item = LayerInfo> + '_ {
        self.steps.iter().map(|step| LayerInfo {
            kind: match step.layer {
                Layer::DenseF32 { .. } => "dense f32",
                Layer::ActivationF32(Activation::Relu) => "relu f32",
                Layer::ActivationF32(Activation::LeakyRelu { .. }) => "leaky-relu f32",
                Layer::ActivationF32(Activation::Sigmoid) => "sigmoid f32",
                Layer::ActivationF32(Activation::Tanh) => "tanh f32",
                Layer::ActivationF32(Activation::Gelu) => "gelu f32",
                Layer::ActivationF32(Activation::Softmax) => "softmax f32",
                Layer::DenseI8 { .. } => "dense int8",
                Layer::TableI8(_) => "table int8",
                Layer::SoftmaxI8(_) => "softmax int8",
                Layer::SaveSkip { .. } => "save skip",
                Layer::AddSkipF32 { .. } => "add skip f32",
                Layer::AddSkipI8 { .. } => "add skip int8",
                Layer::NearestCentroidF32 { .. } => "nearest centroid f32",
                Layer::SquaredErrorF32 { .. } => "squared error f32",
                Layer::IsolationForestF32(_) => "isolation forest f32",
                Layer::ThresholdF32 { .. } => "threshold f32",
                Layer::RecurrentF32(r) => r.kind(Numeric::F32),
                Layer::RecurrentI8(r) => r.rec.kind(Numeric::Int8),
                Layer::Tokens => "tokens",
                Layer::EmbeddingF32 { .. } => "embedding f32",
                Layer::EmbeddingI8 { .. } => "embedding int8",
                Layer::AddTableF32(_) => "positions f32",
                Layer::AddTableI8 { .. } => "positions int8",
                Layer::NormF32 { .. } => "layernorm f32",
                Layer::NormI8 { .. } => "layernorm int8",
                Layer::Attention(i) => match self.tf.attention.get(usize::from(i)) {
                    Some(a) => a.kind(),
                    None => "attention",
                },
                Layer::Pool(PoolKind::Mean) => "mean pool",
                Layer::Pool(PoolKind::First) => "class-token pool",
                Layer::ClassToken(_) => "class token",
            },
            width: step.width,
        })
    }

    /// Parameter count, MACs per inference and parameter bytes.
    pub fn stats(&self) -> ModelStats {
        let mut s = ModelStats {
            parameters: 0,
            macs: 0,
            parameter_bytes: 0,
        };
        let input_params = 2 * self.input_len();
        s.parameters += input_params;
        s.parameter_bytes += input_params * 4;
        for step in &self.steps {
            match step.layer {
                Layer::DenseF32 { weights, bias } => {
                    s.parameters += (weights.len() + bias.len()) / 4;
                    s.macs += weights.len() / 4 * step.tokens;
                    s.parameter_bytes += weights.len() + bias.len();
                }
                Layer::DenseI8 {
                    weights,
                    bias,
                    multiplier,
                    shift,
                    ..
                } => {
                    s.parameters += weights.len() + bias.len() / 4;
                    s.macs += weights.len() * step.tokens;
                    s.parameter_bytes +=
                        weights.len() + bias.len() + multiplier.len() + shift.len();
                }
                Layer::TableI8(t) => s.parameter_bytes += t.len(),
                Layer::SoftmaxI8(t) => s.parameter_bytes += t.len(),
                Layer::NearestCentroidF32 { centroids } => {
                    s.parameters += centroids.len() / 4;
                    s.macs += centroids.len() / 4;
                    s.parameter_bytes += centroids.len();
                }
                Layer::IsolationForestF32(f) => {
                    // feature, value, left, right per node (no MACs: comparisons only).
                    s.parameters += 4 * f.nodes() + f.trees();
                    s.parameter_bytes += NODE_BYTES * f.nodes() + 4 * f.trees();
                }
                Layer::ThresholdF32 { .. } => s.parameters += 1,
                // Recurrent layers: MACs per time step.
                Layer::RecurrentF32(r) => r.add_stats(&mut s, Numeric::F32),
                Layer::RecurrentI8(r) => r.rec.add_stats(&mut s, Numeric::Int8),
                Layer::EmbeddingF32 { table, .. } => {
                    s.parameters += table.len() / 4;
                    s.parameter_bytes += table.len();
                }
                Layer::EmbeddingI8 { table, .. } => {
                    s.parameters += table.len();
                    s.parameter_bytes += table.len();
                }
                Layer::AddTableF32(t) | Layer::AddTableI8 { table: t, .. } => {
                    s.parameter_bytes += t.len()
                }
                Layer::NormF32 { params, .. } | Layer::NormI8 { params, .. } => {
                    s.parameters += params.len() / 4;
                    s.parameter_bytes += params.len();
                    s.macs += params.len() / 8 * step.tokens;
                }
                Layer::Attention(i) => {
                    if let Some(a) = self.tf.attention.get(usize::from(i)) {
                        let (p, b) = a.parameters();
                        s.parameters += p;
                        s.parameter_bytes += b;
                        s.macs += a.macs(step.tokens);
                    }
                }
                Layer::ClassToken(v) => {
                    s.parameters += v.len() / element_bytes(self.header.numeric);
                    s.parameter_bytes += v.len();
                }
                _ => {}
            }
        }
        s
    }

    fn check_arena(&self, arena_len: usize, input_len: usize, numeric: Numeric) -> Result<()> {
        if self.header.numeric != numeric {
            return Err(Error::WrongNumericPath);
        }
        if input_len != self.input_len() {
            return Err(Error::WrongInputLength {
                expected: self.input_len(),
                given: input_len,
            });
        }
        if arena_len < self.arena_bytes {
            return Err(Error::ArenaTooSmall {
                needed: self.arena_bytes,
                given: arena_len,
            });
        }
        Ok(())
    }

    /// Run an f32 model on raw (unnormalized) input. The result borrows the
    /// arena. Causal transformers return one output row per token.
    pub fn run_f32<'r>(&self, input: &[f32], arena: &'r mut [u8]) -> Result<&'r [f32]> {
        self.check_arena(arena.len(), input.len(), Numeric::F32)?;
        if self.is_recurrent() {
            return Err(Error::Recurrent);
        }
        let (cur, next, slots, scratch) = self.f32_split(arena)?;
        self.normalize_into(input, 0, cur);
        self.forward_f32(cur, next, slots, scratch, Pass::Full, None)
    }

    /// `x' = (x - offset) * scale` with the offsets and scales from input value `first` on.
    fn normalize_into(&self, input: &[f32], first: usize, out: &mut [f32]) {
        let offsets = self.header.input_offset.chunks_exact(4).skip(first);
        let scales = self.header.input_scale.chunks_exact(4).skip(first);
        for (((dst, &x), o), s) in out.iter_mut().zip(input).zip(offsets).zip(scales) {
            *dst = (x - le_f32(o)) * le_f32(s);
        }
    }

    /// `(cur, next, slots, attention scratch)` of an f32 arena.
    #[allow(clippy::type_complexity)]
    fn f32_split<'r>(
        &self,
        arena: &'r mut [u8],
    ) -> Result<(&'r mut [f32], &'r mut [f32], &'r mut [f32], &'r mut [u8])> {
        let arena = arena
            .get_mut(..self.arena_bytes)
            .ok_or(Error::ArenaTooSmall {
                needed: self.arena_bytes,
                given: 0,
            })?;
        let (work, scratch) = arena.split_at_mut(self.tf.scratch_offset.min(self.arena_bytes));
        let floats: &mut [f32] =
            bytemuck::try_cast_slice_mut(work).map_err(|_| Error::ArenaMisaligned)?;
        let (cur, rest) = floats.split_at_mut(self.work_width.min(floats.len()));
        let (next, slots) = rest.split_at_mut(self.work_width.min(rest.len()));
        Ok((cur, next, slots, scratch))
    }

    /// `(cur, next, slots, attention scratch)` of an int8 arena.
    #[allow(clippy::type_complexity)]
    fn i8_split<'r>(
        &self,
        arena: &'r mut [u8],
    ) -> Result<(&'r mut [i8], &'r mut [i8], &'r mut [i8], &'r mut [u8])> {
        let arena = arena
            .get_mut(..self.arena_bytes)
            .ok_or(Error::ArenaTooSmall {
                needed: self.arena_bytes,
                given: 0,
            })?;
        let (work, scratch) = arena.split_at_mut(self.tf.scratch_offset.min(self.arena_bytes));
        let ints: &mut [i8] = bytemuck::cast_slice_mut(work);
        let (cur, rest) = ints.split_at_mut(self.work_width.min(ints.len()));
        let (next, slots) = rest.split_at_mut(self.work_width.min(rest.len()));
        Ok((cur, next, slots, scratch))
    }

    /// Values per row at the input: all of them, or one token's in a step pass.
    fn input_width(&self, pass: Pass) -> usize {
        match pass {
            Pass::Full => self.input_len(),
            Pass::Step { .. } => self.input_len() / self.tf.tokens.max(1),
        }
    }

    /// The f32 layers from `cur[..input width]`. `cache` is the key/value
    /// cache of a step pass.
    // Out of line: several entry points share one copy (flash).
    #[inline(never)]
    fn forward_f32<'r>(
        &self,
        mut cur: &'r mut [f32],
        mut next: &'r mut [f32],
        slots: &mut [f32],
        scratch: &mut [u8],
        pass: Pass,
        mut cache: Option<&mut [u8]>,
    ) -> Result<&'r [f32]> {
        let base = 2 * self.work_width;
        let mut width = self.input_width(pass);
        let mut rows = pass.rows(self.tf.tokens.max(1));
        for step in &self.steps {
            let x = cur
                .get_mut(..width)
                .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
            let out_rows = pass.rows(step.tokens);
            let out_width = step.width / step.tokens.max(1) * out_rows;
            let row = width / rows.max(1);
            match step.layer {
                Layer::DenseF32 { weights, bias } => {
                    let y = next
                        .get_mut(..out_width)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    let out_row = out_width / out_rows.max(1);
                    for (xr, yr) in x.chunks_exact(row).zip(y.chunks_exact_mut(out_row)) {
                        dense_f32(weights, bias, xr, yr);
                    }
                    core::mem::swap(&mut cur, &mut next);
                }
                Layer::ActivationF32(a @ Activation::Softmax) => {
                    x.chunks_exact_mut(row).for_each(|r| activate_f32(a, r))
                }
                Layer::ActivationF32(a) => activate_f32(a, x),
                Layer::SaveSkip { slot } => {
                    slot_mut(slots, &self.slots, slot, base, width)?.copy_from_slice(x)
                }
                Layer::AddSkipF32 { slot } => {
                    let saved = slot_mut(slots, &self.slots, slot, base, width)?;
                    for (v, &s) in x.iter_mut().zip(saved.iter()) {
                        *v += s;
                    }
                }
                Layer::NearestCentroidF32 { centroids } => {
                    let y = next
                        .get_mut(..step.width)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    classical::nearest_centroid_f32(centroids, x, y);
                    core::mem::swap(&mut cur, &mut next);
                }
                Layer::SquaredErrorF32 { slot } => {
                    let saved = slot_mut(slots, &self.slots, slot, base, width)?;
                    let e = classical::squared_error_f32(x, saved);
                    if let Some(v) = x.first_mut() {
                        *v = e;
                    }
                }
                Layer::IsolationForestF32(forest) => {
                    let s = forest.score(x);
                    if let Some(v) = x.first_mut() {
                        *v = s;
                    }
                }
                Layer::ThresholdF32 { value } => {
                    let y = next
                        .get_mut(..2)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    let score = x.first().copied().unwrap_or(f32::NAN);
                    y[0] = score;
                    y[1] = if score > value { 1.0 } else { 0.0 };
                    core::mem::swap(&mut cur, &mut next);
                }
                Layer::Tokens => {}
                Layer::EmbeddingF32 { table, dim } => {
                    let y = next
                        .get_mut(..out_width)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    let vocab = table.len() / (4 * dim);
                    for (&v, yr) in x.iter().zip(y.chunks_exact_mut(dim)) {
                        let id = if v.is_nan() {
                            0
                        } else {
                            libm::roundf(v).clamp(0.0, (vocab - 1) as f32) as usize
                        };
                        let from = table.get(id * dim * 4..(id + 1) * dim * 4).unwrap_or(&[]);
                        for (o, b) in yr.iter_mut().zip(from.chunks_exact(4)) {
                            *o = le_f32(b);
                        }
                    }
                    core::mem::swap(&mut cur, &mut next);
                }
                Layer::AddTableF32(table) => {
                    let at = pass.first() * row * 4;
                    let t = table
                        .get(at..at + width * 4)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    for (v, b) in x.iter_mut().zip(t.chunks_exact(4)) {
                        *v += le_f32(b);
                    }
                }
                Layer::NormF32 { eps, params } => x
                    .chunks_exact_mut(row)
                    .for_each(|r| layer_norm_f32(r, eps, params)),
                Layer::Attention(i) => {
                    let a = self
                        .tf
                        .attention
                        .get(usize::from(i))
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    let y = next
                        .get_mut(..out_width)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    a.run_f32(pass, self.tf.causal, x, y, scratch, cache.as_deref_mut())?;
                    core::mem::swap(&mut cur, &mut next);
                }
                Layer::Pool(kind) => transformer::pool_f32(kind, x, rows),
                Layer::ClassToken(vector) => {
                    let y = next
                        .get_mut(..out_width)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    let (first, rest) = y.split_at_mut(row.min(out_width));
                    for (o, b) in first.iter_mut().zip(vector.chunks_exact(4)) {
                        *o = le_f32(b);
                    }
                    rest.iter_mut().zip(x.iter()).for_each(|(o, &v)| *o = v);
                    core::mem::swap(&mut cur, &mut next);
                }
                _ => return Err(Error::WrongNumericPath),
            }
            width = out_width;
            rows = out_rows;
        }
        let cur: &'r [f32] = cur;
        cur.get(..width)
            .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })
    }

    /// Quantize raw input for an int8 model: normalization and input
    /// quantization in one float step (the only float in the int8 path; feed
    /// [`Model::run_i8`] pre-quantized values on cores without an FPU).
    pub fn quantize_input(&self, raw: &[f32], out: &mut [i8]) -> Result<()> {
        let q = self.header.input_quant.ok_or(Error::WrongNumericPath)?;
        if raw.len() != self.input_len() || out.len() != self.input_len() {
            return Err(Error::WrongInputLength {
                expected: self.input_len(),
                given: raw.len().min(out.len()),
            });
        }
        let offsets = self.header.input_offset.chunks_exact(4);
        let scales = self.header.input_scale.chunks_exact(4);
        for (((dst, &x), o), s) in out.iter_mut().zip(raw).zip(offsets).zip(scales) {
            let normalized = (x - le_f32(o)) * le_f32(s);
            // `as i32` maps NaN to 0 and saturates infinities.
            let steps = libm::roundf(normalized / q.scale) as i32;
            *dst = saturate_i8(steps.saturating_add(i32::from(q.zero_point)));
        }
        Ok(())
    }

    /// Real values of an int8 output (host-side convenience; uses floats).
    pub fn dequantize_output(&self, q: &[i8], out: &mut [f32]) -> Result<()> {
        let p = self.header.output_quant.ok_or(Error::WrongNumericPath)?;
        for (dst, &v) in out.iter_mut().zip(q) {
            *dst = p.scale * (i32::from(v) - i32::from(p.zero_point)) as f32;
        }
        Ok(())
    }

    /// Run an int8 model on quantized input. Integer-only. The result borrows the arena.
    pub fn run_i8<'r>(&self, input: &[i8], arena: &'r mut [u8]) -> Result<&'r [i8]> {
        self.check_arena(arena.len(), input.len(), Numeric::Int8)?;
        if self.is_recurrent() {
            return Err(Error::Recurrent);
        }
        let (cur, next, slots, scratch) = self.i8_split(arena)?;
        cur.iter_mut().zip(input).for_each(|(d, &x)| *d = x);
        self.forward_i8(cur, next, slots, scratch, Pass::Full, None)
    }

    /// The int8 layers from `cur[..input width]`; see [`Model::forward_f32`].
    // Out of line: several entry points share one copy (flash).
    #[inline(never)]
    fn forward_i8<'r>(
        &self,
        mut cur: &'r mut [i8],
        mut next: &'r mut [i8],
        slots: &mut [i8],
        scratch: &mut [u8],
        pass: Pass,
        mut cache: Option<&mut [u8]>,
    ) -> Result<&'r [i8]> {
        let base = 2 * self.work_width;
        let mut width = self.input_width(pass);
        let mut rows = pass.rows(self.tf.tokens.max(1));
        for step in &self.steps {
            let x = cur
                .get_mut(..width)
                .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
            let out_rows = pass.rows(step.tokens);
            let out_width = step.width / step.tokens.max(1) * out_rows;
            let row = width / rows.max(1);
            match step.layer {
                Layer::DenseI8 {
                    weights,
                    bias,
                    multiplier,
                    shift,
                    output_zero_point,
                } => {
                    let y = next
                        .get_mut(..out_width)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    let out_row = out_width / out_rows.max(1);
                    for (xr, yr) in x.chunks_exact(row).zip(y.chunks_exact_mut(out_row)) {
                        dense_i8(weights, bias, multiplier, shift, output_zero_point, xr, yr);
                    }
                    core::mem::swap(&mut cur, &mut next);
                }
                Layer::TableI8(table) => {
                    for v in x.iter_mut() {
                        *v = table[(*v as u8 ^ 0x80) as usize] as i8;
                    }
                }
                Layer::SoftmaxI8(exp_table) => x
                    .chunks_exact_mut(row)
                    .for_each(|r| softmax_i8(exp_table, r)),
                Layer::SaveSkip { slot } => {
                    slot_mut(slots, &self.slots, slot, base, width)?.copy_from_slice(x)
                }
                Layer::AddSkipI8 {
                    slot,
                    input,
                    skip,
                    output_zero_point,
                } => {
                    let saved = slot_mut(slots, &self.slots, slot, base, width)?;
                    for (v, &s) in x.iter_mut().zip(saved.iter()) {
                        let a = rescale(
                            i32::from(*v) - i32::from(input.zero_point),
                            input.multiplier,
                            input.shift,
                        );
                        let b = rescale(
                            i32::from(s) - i32::from(skip.zero_point),
                            skip.multiplier,
                            skip.shift,
                        );
                        *v = saturate_i8(
                            a.saturating_add(b)
                                .saturating_add(i32::from(output_zero_point)),
                        );
                    }
                }
                Layer::Tokens => {}
                Layer::EmbeddingI8 { table, dim } => {
                    let y = next
                        .get_mut(..out_width)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    let vocab = table.len() / dim;
                    for (&v, yr) in x.iter().zip(y.chunks_exact_mut(dim)) {
                        let id = (v.max(0) as usize).min(vocab - 1);
                        let from = table.get(id * dim..(id + 1) * dim).unwrap_or(&[]);
                        yr.iter_mut().zip(from).for_each(|(o, &b)| *o = b as i8);
                    }
                    core::mem::swap(&mut cur, &mut next);
                }
                Layer::AddTableI8 {
                    input,
                    table,
                    output_zero_point,
                } => {
                    let at = pass.first() * row * 2;
                    let t = table
                        .get(at..at + width * 2)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    for (v, b) in x.iter_mut().zip(t.chunks_exact(2)) {
                        let a = rescale(
                            i32::from(*v) - i32::from(input.zero_point),
                            input.multiplier,
                            input.shift,
                        );
                        let p = i32::from(i16::from_le_bytes([b[0], b[1]]));
                        *v = saturate_i8(
                            a.saturating_add(p)
                                .saturating_add(i32::from(output_zero_point)),
                        );
                    }
                }
                Layer::NormI8 {
                    eps,
                    params,
                    output_zero_point,
                } => x
                    .chunks_exact_mut(row)
                    .for_each(|r| layer_norm_i8(r, eps, params, output_zero_point)),
                Layer::Attention(i) => {
                    let a = self
                        .tf
                        .attention
                        .get(usize::from(i))
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    let y = next
                        .get_mut(..out_width)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    a.run_i8(pass, self.tf.causal, x, y, scratch, cache.as_deref_mut())?;
                    core::mem::swap(&mut cur, &mut next);
                }
                Layer::Pool(kind) => transformer::pool_i8(kind, x, rows),
                Layer::ClassToken(vector) => {
                    let y = next
                        .get_mut(..out_width)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    let (first, rest) = y.split_at_mut(row.min(out_width));
                    first
                        .iter_mut()
                        .zip(vector)
                        .for_each(|(o, &b)| *o = b as i8);
                    rest.iter_mut().zip(x.iter()).for_each(|(o, &v)| *o = v);
                    core::mem::swap(&mut cur, &mut next);
                }
                _ => return Err(Error::WrongNumericPath),
            }
            width = out_width;
            rows = out_rows;
        }
        let cur: &'r [i8] = cur;
        cur.get(..width)
            .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })
    }
}

/// The `width` elements of skip slot `slot`, from the arena tail that starts
/// at element `base`.
fn slot_mut<'s, T>(
    slots: &'s mut [T],
    layout: &[Slot],
    slot: usize,
    base: usize,
    width: usize,
) -> Result<&'s mut [T]> {
    let s = layout
        .get(slot)
        .ok_or(Error::BadSkipSlot { layer: MODEL_LEVEL })?;
    let start = s.offset.saturating_sub(base);
    slots
        .get_mut(start..start.saturating_add(width))
        .ok_or(Error::BadSkipSlot { layer: MODEL_LEVEL })
}

fn activate_f32(a: Activation, x: &mut [f32]) {
    match a {
        // `< 0.0` rather than `max`, so NaN passes through like every other layer.
        Activation::Relu => x.iter_mut().for_each(|v| {
            if *v < 0.0 {
                *v = 0.0
            }
        }),
        Activation::LeakyRelu { alpha } => x.iter_mut().for_each(|v| {
            if *v < 0.0 {
                *v *= alpha
            }
        }),
        Activation::Sigmoid => x.iter_mut().for_each(|v| *v = 1.0 / (1.0 + math::exp(-*v))),
        Activation::Tanh => x.iter_mut().for_each(|v| *v = math::tanh(*v)),
        Activation::Gelu => x
            .iter_mut()
            .for_each(|v| *v = 0.5 * *v * (1.0 + math::erf(*v * core::f32::consts::FRAC_1_SQRT_2))),
        Activation::Softmax => {
            let max = x
                .iter()
                .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
            let mut sum = 0.0f32;
            for v in x.iter_mut() {
                *v = math::exp(*v - max);
                sum += *v;
            }
            for v in x.iter_mut() {
                *v /= sum;
            }
        }
    }
}

/// Integer softmax: `y = round(256 * e[max - x] / sum(e)) - 128`, saturated.
fn softmax_i8(exp_table: &[u8; 512], x: &mut [i8]) {
    let max = x.iter().copied().max().unwrap_or(0);
    let exp_of = |v: i8| -> u32 {
        let d = (i32::from(max) - i32::from(v)) as usize & 0xff; // 0..=255 since max >= v
        u32::from(u16::from_le_bytes([exp_table[2 * d], exp_table[2 * d + 1]]))
    };
    let sum: u32 = x.iter().map(|&v| exp_of(v)).sum();
    for v in x.iter_mut() {
        let e = exp_of(*v);
        let p = ((e << 8) + sum / 2).checked_div(sum).unwrap_or(0) as i32;
        *v = saturate_i8(p - 128);
    }
}
