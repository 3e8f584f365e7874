//! A model: loading it (validation, `load.rs`) and running it (`run.rs`).
//!
//! # Contract
//! [`Model::from_bytes`] (or [`Model::load`] into an existing model) is the
//! only way to get a loaded [`Model`], and it checks, once and in this order:
//! 1. the magic, then the format version, then that the payload is complete,
//!    then the payload's CRC-32;
//! 2. that the payload decodes to a header and exactly `layer_count` layers
//!    (at most [`MAX_LAYERS`](crate::format::MAX_LAYERS)) with nothing after
//!    them, and that this build has every family and numeric path the model
//!    uses ([`Error::UnsupportedLayer`] names the cargo feature otherwise);
//! 3. every dimension is in `1..=MAX_WIDTH` and every tensor in
//!    `1..=MAX_TENSOR` values, each layer's input width equals the
//!    previous layer's output width, the last width equals `output_len`, and
//!    every parameter array has exactly the length its shape implies;
//! 4. every layer belongs to the model's numeric path, every quantization
//!    parameter is in range (scales finite and positive, multipliers in
//!    `[2^30, 2^31)` or 0, shifts in `1..=62`, tables of the right size,
//!    softmax table entry 0 non-zero);
//! 5. every residual add reads a slot saved earlier with the same width;
//! 6. each family's own rules (in its file under `layers/`: recurrent
//!    models, transformers, the classical layers, an encoder-decoder's
//!    decoder after its encoder);
//! 7. the declared arena size equals what the layers need.
//!
//! After that, running the model only checks the caller's buffers (input
//! length, arena and state size and alignment) and never panics: every index
//! into the blob or the arena is within the bounds established at load, and
//! every size and position is computed without overflow on a 32-bit `usize`.
//! The blob is borrowed, not copied. A model that is not loaded
//! ([`Model::empty`], or after a failed load) answers every run with
//! [`Error::NotLoaded`].
//!
//! Non-finite inputs: on the f32 path NaN and ±inf propagate by IEEE rules
//! (a NaN input makes every output of a dense layer NaN, and every
//! activation, ReLU included, passes NaN on; [`argmax`](crate::argmax) never
//! picks NaN and returns 0 when all outputs are NaN). On the int8 path
//! [`Model::quantize_input`] maps NaN to the zero point and ±inf to the int8
//! limits; from there everything is integer.

#[cfg(feature = "seq2seq")]
mod forecast;
mod load;
mod run;

pub use load::{encode, encoded_len};

use crate::format::{Features, Numeric, QuantParams, MAX_LAYERS, MAX_SKIP_SLOTS};
use crate::kernels::le_f32;
pub use crate::layers::ModelStats;
use crate::layers::{Families, Layer};

/// One validated layer and the shape of its output.
#[derive(Debug, Clone, Copy)]
struct Step<'a> {
    layer: Layer<'a>,
    /// Values per row of the tensor after this layer.
    row: usize,
    /// Rows (tokens) of the tensor after this layer; 1 outside transformers.
    tokens: usize,
}

/// A validated model borrowing its parameters from the blob.
///
/// [`Model::empty`] is all zero bytes, so a `static` holding one costs no
/// flash (it sits in `.bss`).
#[derive(Debug, Clone)]
pub struct Model<'a> {
    numeric: Numeric,
    /// 0 until a load succeeds (a model has at least one input).
    input_len: u32,
    output_len: u32,
    /// Values per row of the input (`input_len / tokens`).
    input_row: usize,
    /// `input_len` f32 (LE) each; `None` until loaded.
    input_offset: Option<&'a [u8]>,
    input_scale: Option<&'a [u8]>,
    input_quant: Option<QuantParams>,
    output_quant: Option<QuantParams>,
    steps: heapless::Vec<Step<'a>, MAX_LAYERS>,
    /// Element offset of each skip slot in the slot area.
    slot_offsets: [u32; MAX_SKIP_SLOTS],
    /// Width of each of the two work buffers, in elements.
    work_width: usize,
    /// Byte offset of the families' scratch in the arena.
    scratch_offset: usize,
    arena_bytes: usize,
    families: Families<'a>,
    features: Features,
}

/// One layer as reports show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// Short name of the layer kind and numeric type, e.g. `"dense int8"`.
    pub kind: &'static str,
    /// Width of the tensor the layer produces.
    pub width: usize,
    /// The feature map it produces (convolution and pooling layers).
    pub map: Option<crate::format::FeatureMap>,
    /// Its multiply-accumulates per inference (per time step in recurrent models).
    pub macs: usize,
}

impl<'a> Model<'a> {
    /// A model with no layers and no input: every run returns
    /// [`Error::NotLoaded`](crate::Error::NotLoaded) until [`Model::load`]
    /// fills it. `const`, so firmware can keep it in a static.
    pub const fn empty() -> Self {
        Model {
            numeric: Numeric::F32,
            input_len: 0,
            output_len: 0,
            input_row: 0,
            input_offset: None,
            input_scale: None,
            input_quant: None,
            output_quant: None,
            steps: heapless::Vec::new(),
            slot_offsets: [0; MAX_SKIP_SLOTS],
            work_width: 0,
            scratch_offset: 0,
            arena_bytes: 0,
            families: Families::new(),
            features: Features::NONE,
        }
    }

    /// Whether a load succeeded.
    pub fn is_loaded(&self) -> bool {
        self.input_len > 0
    }
    /// The model's numeric path.
    pub fn numeric(&self) -> Numeric {
        self.numeric
    }
    /// Number of input values (per step for recurrent and causal models: see
    /// [`Model::step_width`]).
    pub fn input_len(&self) -> usize {
        self.input_len as usize
    }
    /// Number of output values.
    pub fn output_len(&self) -> usize {
        self.output_len as usize
    }
    /// Exact bytes of arena the run and step functions need.
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes
    }
    /// Number of layers.
    pub fn layer_count(&self) -> usize {
        self.steps.len()
    }
    /// Quantization of the int8 output (`None` for f32 models).
    pub fn output_quant(&self) -> Option<QuantParams> {
        self.output_quant
    }
    /// Quantization of the int8 input (`None` for f32 models).
    pub fn input_quant(&self) -> Option<QuantParams> {
        self.input_quant
    }
    /// The runtime features (layer families and numeric path) this model
    /// uses: the smallest build of the runtime that loads it.
    pub fn features(&self) -> Features {
        self.features
    }

    /// `(offset, scale)` of input value `index`: the model sees
    /// `(raw - offset) * scale` (`None` past the input).
    pub fn input_normalization(&self, index: usize) -> Option<(f32, f32)> {
        let value = |bytes: Option<&[u8]>| bytes?.chunks_exact(4).nth(index).map(le_f32);
        Some((value(self.input_offset)?, value(self.input_scale)?))
    }

    /// Kind and output width of each layer, in order (for `inspect`-style reports).
    pub fn layers(&self) -> impl Iterator<Item = LayerInfo> + '_ {
        self.steps.iter().map(|step| {
            let mut stats = ModelStats::default();
            step.layer
                .add_stats(&mut stats, step.tokens, &self.families);
            LayerInfo {
                kind: step.layer.kind(&self.families),
                width: step.row * step.tokens,
                map: step.layer.map(),
                macs: stats.macs,
            }
        })
    }

    /// Parameter count, MACs per inference and parameter bytes.
    pub fn stats(&self) -> ModelStats {
        let input_params = 2 * self.input_len();
        let mut s = ModelStats {
            parameters: input_params,
            macs: 0,
            parameter_bytes: input_params * 4,
        };
        for step in &self.steps {
            step.layer.add_stats(&mut s, step.tokens, &self.families);
        }
        s
    }
}
