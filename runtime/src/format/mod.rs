//! The model blob: what the trainer writes and the loader reads.
//!
//! A blob is a postcard-encoded [`Envelope`] whose fields have fixed widths, so
//! its first 10 bytes are always, little-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | [`MAGIC`] `b"MCUN"` |
//! | 4..6 | format version (`u16`), currently [`FORMAT_VERSION`] |
//! | 6..10 | CRC-32 (ISO-HDLC, as zlib) of the payload bytes |
//! | 10.. | payload length (postcard varint), then the payload |
//!
//! The payload is a postcard-encoded [`ModelHeader`] followed by exactly
//! `layer_count` postcard-encoded [`LayerDef`]s and nothing else. Multi-byte
//! parameter arrays (f32, i32, u16) are byte strings in little-endian order, so
//! the loader borrows them from the blob as they are (zero copy: on a chip they
//! stay in flash).
//!
//! # Versions
//! The envelope layout never changes. Any change to the payload encoding bumps
//! [`FORMAT_VERSION`]; a runtime reads exactly its own version and rejects others
//! with [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion), so an
//! old runtime never misreads a new blob. New layer kinds are appended to
//! [`LayerDef`] (postcard tags enum variants by index), which also bumps the version.
//!
//! Version 2 added the classical layers: [`LayerDef::NearestCentroidF32`],
//! [`LayerDef::SquaredErrorF32`], [`LayerDef::IsolationForestF32`] and
//! [`LayerDef::ThresholdF32`]. Version 3 added the transformer layers, from
//! [`LayerDef::Tokens`] on (see "Sequences of tokens" below). Version 4
//! added the convolution layers ([`LayerDef::Conv2dF32`],
//! [`LayerDef::Conv2dI8`], [`LayerDef::Pool2d`]; see "Feature maps"),
//! [`Activation::Relu6`] and the sequence-to-sequence decoder
//! ([`LayerDef::DecoderF32`], [`LayerDef::DecoderI8`]).
//!
//! # Numeric paths
//! A model is either all-f32 or all-int8 ([`Numeric`]). int8 layers follow the
//! usual affine scheme `real = scale * (q - zero_point)`: weights are symmetric
//! per output channel (zero point 0), activations asymmetric per tensor, biases
//! int32 with the input zero point already folded in
//! (`bias' = bias - zp_in * sum(w)`), and each output channel is rescaled with a
//! fixed-point multiplier `m / 2^shift` (`m` an int32 in `[2^30, 2^31)` or 0).
//!
//! # Sequences of tokens (transformer models)
//!
//! A transformer model starts with [`LayerDef::Tokens`], which declares its
//! `input_len` values as `tokens` rows (token-major, row after row). From there
//! every tensor is `tokens x width` and per-token layers (dense, activations,
//! tables, LayerNorm, positional tables) act on each row alone, while
//! attention mixes rows. [`LayerDef::Pool`] ends the sequence (one row).
//!
//! A *causal* model (`Tokens { causal: true }`) has no pooling and can also run
//! one token at a time with a key/value cache (the step API of
//! [`Model`](crate::Model)); its output is one row per token.
//!
//! # Feature maps (convolutional models)
//!
//! A convolution or pooling layer declares its input [`FeatureMap`]
//! (`height x width x channels`, channels last as in TFLM and CMSIS-NN),
//! whose size must equal the current tensor's width; its output is again a
//! flat channels-last map, so a dense layer after it reads it as a vector
//! (flatten costs nothing) and skip slots add maps of equal size (residual
//! blocks). Output sizes and padding follow [`window_axis`] (TensorFlow's
//! rules). Batch norm has no layer: exporters fold it into the convolution
//! before it.
//!
//! # Sequence to sequence (encoder-decoder models)
//!
//! A model whose last layer is a decoder ([`LayerDef::DecoderF32`],
//! [`LayerDef::DecoderI8`]) is an encoder-decoder: its layers before the
//! decoder are a recurrent model's per-step layers (the encoder), read over
//! a window of `window` steps of `input_len` channels; the decoder then
//! generates up to `horizon` steps of `outputs` values, each fed back as
//! the next step's input, attending over the encoder's outputs. The
//! model's `output_len` is `outputs` (one decoder step). Outputs are in the
//! normalized units of their feedback channels (the model's input
//! normalization maps them back).
//!
//! # Reading and families
//! Writers encode with postcard (the types derive serde). The loader reads
//! with [`Reader`] ([`decode`]), which knows the same wire format and
//! decodes only the layer kinds of the families this build has
//! ([`Features`]): a runtime without, say, the `attention` feature carries
//! no code for attention's kinds and rejects them by name.
//!
//! This module is the bottom of the crate: it imports nothing from the
//! loader or the interpreter.

use serde::{Deserialize, Serialize};

pub mod decode;
mod features;

pub use decode::Reader;
pub use features::Features;

/// First four bytes of every blob.
pub const MAGIC: [u8; 4] = *b"MCUN";
/// The payload version this runtime reads and the trainer writes.
pub const FORMAT_VERSION: u16 = 4;
/// Most tokens a sequence (and a key/value cache) may hold.
pub const MAX_TOKENS: u32 = 256;
/// Number of [`LayerDef`] kinds; tags (variant indices) are `0..LAYER_KINDS`.
pub const LAYER_KINDS: u32 = 30;
/// Most layers a model may have.
pub const MAX_LAYERS: usize = 32;
/// Most skip slots (saved activations for residual connections) a model may use.
pub const MAX_SKIP_SLOTS: usize = 4;
/// Largest dimension of a layer: a dense layer's inputs and outputs, a
/// recurrent layer's hidden width, a model dimension, a feature map's
/// height, width or channels, a kernel size.
pub const MAX_WIDTH: u32 = 4096;
/// Largest tensor, in values: a model's input or output, or any layer's
/// output (a feature map is `height x width x channels` values).
pub const MAX_TENSOR: u32 = 1 << 16;
/// Most attention layers a model may have.
pub const MAX_ATTENTION_LAYERS: usize = 4;
/// Most token ids of an f32 embedding ([`LayerDef::EmbeddingF32`]).
pub const MAX_VOCAB_F32: u32 = MAX_TOKENS * 256;
/// Most token ids of an int8 embedding ([`LayerDef::EmbeddingI8`]): ids are
/// non-negative int8 values.
pub const MAX_VOCAB_I8: u32 = 128;
/// CRC used over the payload. Bitwise (no lookup table): one table would
/// cost 1 KB of flash, and the CRC runs once per load.
pub const CRC32: crc::Crc<u32, crc::NoTable> =
    crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32 of a payload, as stored in the envelope.
pub fn checksum(payload: &[u8]) -> u32 {
    CRC32.checksum(payload)
}

/// The outer layer of a blob. Its first three fields have fixed widths.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// [`FORMAT_VERSION`] of the writer.
    #[serde(with = "postcard::fixint::le")]
    pub version: u16,
    /// [`checksum`] of `payload`.
    #[serde(with = "postcard::fixint::le")]
    pub crc: u32,
    /// [`ModelHeader`] followed by the layers.
    #[serde(borrow)]
    pub payload: &'a [u8],
}

/// Which arithmetic a model uses throughout.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Numeric {
    /// 32-bit float everywhere.
    F32,
    /// int8 activations and weights, int32 accumulators, integer-only.
    Int8,
}

/// Affine quantization of one tensor: `real = scale * (q - zero_point)`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QuantParams {
    /// Real value of one quantization step; finite and positive.
    pub scale: f32,
    /// The quantized value of real zero.
    pub zero_point: i8,
}

/// Model-wide facts, first in the payload.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct ModelHeader<'a> {
    /// Numeric path of every layer.
    pub numeric: Numeric,
    /// Number of input values (raw, before normalization).
    pub input_len: u32,
    /// Number of output values.
    pub output_len: u32,
    /// Exact bytes of working memory inference needs (checked at load).
    pub arena_bytes: u32,
    /// Number of [`LayerDef`]s after the header.
    pub layer_count: u32,
    /// Per-feature offset, `input_len` f32 (LE): `x' = (x - offset) * scale`.
    #[serde(borrow)]
    pub input_offset: &'a [u8],
    /// Per-feature scale, `input_len` f32 (LE).
    #[serde(borrow)]
    pub input_scale: &'a [u8],
    /// int8 models: quantization of the normalized input. `None` for f32.
    pub input_quant: Option<QuantParams>,
    /// int8 models: quantization of the output. `None` for f32.
    pub output_quant: Option<QuantParams>,
}

/// f32 elementwise (or, for softmax, row-wise) activations.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Activation {
    /// `max(x, 0)`
    Relu,
    /// `x` if `x >= 0`, else `alpha * x`
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// `1 / (1 + exp(-x))`
    Sigmoid,
    /// `tanh(x)`
    Tanh,
    /// `0.5 * x * (1 + erf(x / sqrt(2)))` (exact GELU)
    Gelu,
    /// `exp(x - max) / sum(exp(x - max))` over the whole tensor
    Softmax,
    /// `min(max(x, 0), 6)` (format version 4)
    Relu6,
}

/// One layer as stored. Parameter arrays are little-endian byte strings.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub enum LayerDef<'a> {
    /// `y = W x + b`, f32. `weights` is `outputs x inputs` row-major f32,
    /// `bias` is `outputs` f32.
    DenseF32 {
        /// Input width.
        inputs: u32,
        /// Output width.
        outputs: u32,
        /// `outputs * inputs` f32.
        #[serde(borrow)]
        weights: &'a [u8],
        /// `outputs` f32.
        #[serde(borrow)]
        bias: &'a [u8],
    },
    /// f32 activation, in place.
    ActivationF32(Activation),
    /// int8 fully connected layer, see the module docs for the scheme.
    DenseI8 {
        /// Input width.
        inputs: u32,
        /// Output width.
        outputs: u32,
        /// `outputs * inputs` i8, row-major.
        #[serde(borrow)]
        weights: &'a [u8],
        /// `outputs` i32: bias with the input zero point folded in.
        #[serde(borrow)]
        bias: &'a [u8],
        /// `outputs` i32 fixed-point multipliers in `[2^30, 2^31)`, or 0.
        #[serde(borrow)]
        multiplier: &'a [u8],
        /// `outputs` right shifts, each in `1..=62`.
        #[serde(borrow)]
        shift: &'a [u8],
        /// Zero point of the output tensor.
        output_zero_point: i8,
    },
    /// int8 elementwise function by lookup: `y = table[x + 128]` (256 i8).
    /// Covers ReLU, LeakyReLU, sigmoid, tanh and GELU with any scales.
    TableI8 {
        /// 256 i8.
        #[serde(borrow)]
        table: &'a [u8],
    },
    /// int8 softmax. `exp_table[d]` (256 u16, LE) is `exp(-scale_in * d)` in
    /// Q15 for `d = max - x`; output scale is 1/256 with zero point -128.
    SoftmaxI8 {
        /// 256 u16 (LE); entry 0 must be non-zero.
        #[serde(borrow)]
        exp_table: &'a [u8],
    },
    /// Copy the current tensor into a skip slot (start of a residual block).
    SaveSkip {
        /// Slot index, below [`MAX_SKIP_SLOTS`].
        slot: u8,
    },
    /// f32 residual: `x += saved[slot]`.
    AddSkipF32 {
        /// Slot index.
        slot: u8,
    },
    /// int8 residual: `y = zp_out + rescale(x - zp_x) + rescale(s - zp_s)`.
    AddSkipI8 {
        /// Slot index.
        slot: u8,
        /// Rescaling of the current tensor to the output scale.
        input: Rescale,
        /// Rescaling of the saved tensor to the output scale.
        skip: Rescale,
        /// Zero point of the result.
        output_zero_point: i8,
    },
    /// Nearest centroid (k-means, hierarchical clustering): output
    /// `[index of the nearest centroid as f32, its squared Euclidean distance]`.
    /// Ties go to the lowest index. See [`crate::kernels::classical`].
    NearestCentroidF32 {
        /// Input width (dimension of each centroid).
        dim: u32,
        /// Number of centroids, at least 1 and below 2^24 (exact as f32).
        k: u32,
        /// `k * dim` f32, row-major (one centroid per row).
        #[serde(borrow)]
        centroids: &'a [u8],
    },
    /// Reconstruction error: output `[sum((x - saved[slot])^2) / n]`, the
    /// mean squared difference between the current tensor and the one saved
    /// in `slot` (which must have the same width). PCA and autoencoders end with it.
    SquaredErrorF32 {
        /// Slot saved earlier with [`LayerDef::SaveSkip`].
        slot: u8,
    },
    /// Isolation forest: output `[2^(-E[h(x)] / c(sample_size))]`, the
    /// standard anomaly score (near 1: anomalous, well below 0.5: normal).
    ///
    /// Nodes of all trees are stored in one flat array of 10-byte records,
    /// tree after tree; tree `t` holds nodes `roots[t] .. roots[t + 1]` (the
    /// last tree ends at the node count) and starts at its first node. A node
    /// is, little-endian: `feature: u16, left: u16, right: u16, value: f32`.
    /// `feature == 0xFFFF` marks a leaf, whose `value` is its whole path
    /// length `depth + c(leaf size)` (children unused, written 0); otherwise
    /// `x[feature] < value` goes to `left`, else (NaN too) to `right`. Child
    /// indices are relative to the tree's first node and strictly greater than
    /// the parent's, so a walk ends at a leaf within the tree's node count.
    IsolationForestF32 {
        /// Input width; every split feature is below it.
        inputs: u32,
        /// Rows each tree was grown on (`n` of `c(n)`), at least 2.
        sample_size: u32,
        /// One u32 (LE) per tree: the index of its first node.
        #[serde(borrow)]
        roots: &'a [u8],
        /// 10 bytes per node, as above.
        #[serde(borrow)]
        nodes: &'a [u8],
    },
    /// Decision on a one-value score: output `[score, 1.0 if score > value else 0.0]`.
    ThresholdF32 {
        /// Threshold, chosen on training data; not NaN.
        value: f32,
    },
    /// f32 recurrent layer (Elman RNN, LSTM or GRU) run once per time step;
    /// equations and gate order in [`crate::kernels::recurrent`]. Its output tensor is
    /// the new hidden state `h` (`hidden` values). With `G` gates and
    /// `R = G * hidden` gate rows, `params` holds f32 (LE), in order:
    /// `W_input` (`R x inputs`, row-major), `W_hidden` (`R x hidden`),
    /// `bias_input` (`R`), `bias_hidden` (`R`).
    RecurrentF32 {
        /// Cell kind.
        cell: Cell,
        /// Input width per step.
        inputs: u32,
        /// Hidden width.
        hidden: u32,
        /// All parameters, see above.
        #[serde(borrow)]
        params: &'a [u8],
    },
    /// int8 recurrent layer with int16 state, integer only; see
    /// [`crate::kernels::recurrent`]. `params` holds, in order: `W_input` (`R x inputs`
    /// i8), `W_hidden` (`R x hidden` i8), `bias_input` (`R` i32, input zero
    /// point folded in), `bias_hidden` (`R` i32), `mult_input` and
    /// `mult_hidden` (`R` i32 each, to Q12), `shift_input` and `shift_hidden`
    /// (`R` u8 each); multi-byte values little-endian.
    RecurrentI8 {
        /// Cell kind.
        cell: Cell,
        /// Input width per step.
        inputs: u32,
        /// Hidden width.
        hidden: u32,
        /// All parameters, see above.
        #[serde(borrow)]
        params: &'a [u8],
        /// Q15 hidden state to the int8 output tensor (its zero point must be 0).
        output: Rescale,
        /// Zero point of the int8 output tensor.
        output_zero_point: i8,
    },
    /// First layer of a transformer model: the `input_len` values are
    /// `tokens` rows of `input_len / tokens` values (see the module docs).
    Tokens {
        /// Rows, in `1..=MAX_TOKENS`; divides `input_len`. The context
        /// (and key/value cache capacity) of a causal model.
        tokens: u32,
        /// Attention sees only earlier tokens; enables the step API.
        causal: bool,
    },
    /// Token embedding, f32: each row holds one value `x`, the token id is
    /// `round(x)` clamped to `[0, vocab)` (NaN: 0), and the row becomes
    /// `table[id]` (`dim` values). With the input normalization this turns a
    /// raw value into one of `vocab` evenly spaced bins.
    EmbeddingF32 {
        /// Number of token ids.
        vocab: u32,
        /// Width of each embedding.
        dim: u32,
        /// `vocab x dim` f32.
        #[serde(borrow)]
        table: &'a [u8],
    },
    /// Token embedding, int8: the id is the quantized input value clamped to
    /// `[0, vocab)` (exporters quantize ids with scale 1, zero point 0) and
    /// `table` holds the embeddings already in the output's quantization.
    EmbeddingI8 {
        /// Number of token ids, at most 128.
        vocab: u32,
        /// Width of each embedding.
        dim: u32,
        /// `vocab x dim` i8.
        #[serde(borrow)]
        table: &'a [u8],
    },
    /// `x += table`, f32, over the whole `tokens x width` tensor (fixed
    /// sinusoidal positions). In the step API, row `position` of the table.
    AddTableF32 {
        /// `tokens * width` f32.
        #[serde(borrow)]
        table: &'a [u8],
    },
    /// int8 `y = zp_out + rescale(x - zp_x) + table[i]`, saturated; `table`
    /// is `tokens * width` i16 (LE) already in output steps.
    AddTableI8 {
        /// Rescaling of the current tensor to the output scale.
        input: Rescale,
        /// `tokens * width` i16.
        #[serde(borrow)]
        table: &'a [u8],
        /// Zero point of the result.
        output_zero_point: i8,
    },
    /// LayerNorm over each row, f32: `y = (x - mean) / sqrt(var + eps) *
    /// gamma + beta` with the biased variance.
    LayerNormF32 {
        /// Row width.
        dim: u32,
        /// Added to the variance; finite and non-negative.
        eps: f32,
        /// `gamma` then `beta`, `dim` f32 each.
        #[serde(borrow)]
        params: &'a [u8],
    },
    /// LayerNorm over each row, integer-only. With `S = sum(x)`,
    /// `c = dim * x - S`, `V = sum(c^2)` (u64),
    /// `sigma = max(1, isqrt(V / dim + eps))`, `inv = 2^40 / sigma`,
    /// `n = (c * inv + 2^27) >> 28` (Q12 of the normalized value) and
    /// `y = sat(zp_out + ((gamma * n + beta + 2^23) >> 24))` in i64, so
    /// `gamma = round(gamma_real / s_out * 2^12)`,
    /// `beta = round(beta_real / s_out * 2^24)` and
    /// `eps = eps_real * dim^2 / s_in^2` (saturated).
    LayerNormI8 {
        /// Row width.
        dim: u32,
        /// Variance epsilon in squared input steps times `dim^2`.
        eps: u32,
        /// `gamma` then `beta`, `dim` i32 (LE) each.
        #[serde(borrow)]
        params: &'a [u8],
        /// Zero point of the output.
        output_zero_point: i8,
    },
    /// Multi-head self-attention with input and output projections, f32.
    ///
    /// Per row `i`: `[q k v] = W_qkv x_i + b_qkv` (`3 dim` values: q, then k,
    /// then v); with [`Position::Rope`] each head's `q` and `k` pairs
    /// `(2m, 2m+1)` are rotated by the table's `(cos, sin)` for the row's
    /// position. For head `h` (values `h*d .. (h+1)*d`, `d = dim / heads`),
    /// `s_j = (q_i . k_j) * (1 / sqrt(d)) + bias_h[i - j + tokens - 1]` over
    /// `j` in `0..tokens` (causal: `0..=i`), `p = softmax(s)` (exp(s - max),
    /// summed in order), `ctx_i = sum_j p_j v_j` (in order of `j`), then
    /// `y_i = W_out ctx_i + b_out`.
    ///
    /// `params`, f32: `W_qkv` (`3 dim x dim`), `b_qkv` (`3 dim`), `W_out`
    /// (`dim x dim`), `b_out` (`dim`), then the position table:
    /// relative bias `heads x (2 tokens - 1)`, RoPE `tokens x d`
    /// (`cos, sin` per pair and position), none otherwise.
    AttentionF32 {
        /// Row width (model dimension).
        dim: u32,
        /// Heads; divides `dim`.
        heads: u32,
        /// How positions enter the scores.
        position: Position,
        /// All parameters, see above.
        #[serde(borrow)]
        params: &'a [u8],
    },
    /// Multi-head self-attention, integer-only (same structure as
    /// [`LayerDef::AttentionF32`]); q, k, v and the context are symmetric
    /// int8 (zero point 0).
    ///
    /// 1. `[q k v]` = int8 dense of the row (`qkv`, output zero point 0).
    /// 2. RoPE: `q'_{2m} = sat((q_{2m} c - q_{2m+1} s + 2^13) >> 14)`,
    ///    `q'_{2m+1} = sat((q_{2m} s + q_{2m+1} c + 2^13) >> 14)` with
    ///    `(c, s)` Q14 i16 from the table; same for `k`.
    /// 3. `a_j = q_i . k_j + bias_h[i - j + tokens - 1]` (i32, bias i32).
    /// 4. `e_j = exp_table[r]` if `r = rescale(max(a) - a_j, score) < 256`,
    ///    else 0 (`exp_table` 256 u16, entry 0 non-zero).
    /// 5. `num = sum_j e_j v_j` (i32), `inv = 2^47 / sum(e)` (u64),
    ///    `t = (num * inv + 2^30) >> 31` (i64),
    ///    `ctx = sat(rescale(t, context))`.
    /// 6. `y` = int8 dense of `ctx` (`out`).
    AttentionI8 {
        /// Row width.
        dim: u32,
        /// Heads; divides `dim`.
        heads: u32,
        /// How positions enter the scores.
        position: Position,
        /// Projection to q, k, v (`3 dim` outputs, zero point 0).
        qkv: DenseI8Params<'a>,
        /// Score difference to exp-table index.
        score: Rescale,
        /// 256 u16 (LE).
        #[serde(borrow)]
        exp_table: &'a [u8],
        /// Relative bias `heads x (2 tokens - 1)` i32, RoPE `tokens x d`
        /// i16 (`cos, sin` Q14 per pair), or empty.
        #[serde(borrow)]
        position_table: &'a [u8],
        /// Q16 context to the int8 context (its zero point must be 0).
        context: Rescale,
        /// Output projection (`dim` outputs).
        out: DenseI8Params<'a>,
    },
    /// Pooling over the rows, either path: the sequence becomes one row.
    /// int8 mean: `floor((2 sum + tokens) / (2 tokens))`.
    Pool {
        /// Mean of the rows, or the first row (class token).
        kind: PoolKind,
    },
    /// Prepend a learned class-token row (`tokens` becomes `tokens + 1`).
    /// `vector` is `width` f32 (LE), or `width` i8 in the current
    /// tensor's quantization.
    ClassToken {
        /// The class token.
        #[serde(borrow)]
        vector: &'a [u8],
    },
    /// 2-D convolution over a channels-last feature map, f32 (1-D: height
    /// 1); see "Feature maps" in the module docs. Standard: `weights` is
    /// `filters x kernel_h x kernel_w x channels` (OHWI) f32; depthwise
    /// (`filters == channels`, one filter per channel): `kernel_h x
    /// kernel_w x channels` (HWC). `bias` is `filters` f32.
    Conv2dF32 {
        /// The input feature map.
        input: FeatureMap,
        /// Output channels.
        filters: u32,
        /// Kernel, stride, dilation, padding.
        window: Window,
        /// One filter per input channel instead of a full one.
        depthwise: bool,
        /// See above.
        #[serde(borrow)]
        weights: &'a [u8],
        /// `filters` f32.
        #[serde(borrow)]
        bias: &'a [u8],
    },
    /// 2-D convolution, int8, with the layout of [`LayerDef::Conv2dF32`] and
    /// the scheme of [`LayerDef::DenseI8`]: weights symmetric per output
    /// channel, `bias` i32 with the input zero point folded in over *all*
    /// taps (`bias' = bias - zp_in * sum(w)`), so padded taps read the input
    /// zero point (real zero) and every tap is a plain int8 product.
    Conv2dI8 {
        /// The input feature map.
        input: FeatureMap,
        /// Output channels.
        filters: u32,
        /// Kernel, stride, dilation, padding.
        window: Window,
        /// One filter per input channel instead of a full one.
        depthwise: bool,
        /// Weights, as for [`LayerDef::Conv2dF32`], i8.
        #[serde(borrow)]
        weights: &'a [u8],
        /// `filters` i32, input zero point folded in.
        #[serde(borrow)]
        bias: &'a [u8],
        /// `filters` i32 fixed-point multipliers in `[2^30, 2^31)`, or 0.
        #[serde(borrow)]
        multiplier: &'a [u8],
        /// `filters` right shifts, each in `1..=62`.
        #[serde(borrow)]
        shift: &'a [u8],
        /// Zero point of the input (the value of a padded tap).
        input_zero_point: i8,
        /// Zero point of the output.
        output_zero_point: i8,
    },
    /// Max or average pooling over windows of a channels-last feature map,
    /// either path; each channel alone. Padded cells take no part (an
    /// average divides by the valid cells; int8 rounds half up:
    /// `floor((2 sum + n) / (2 n))`). Global average pooling is a window
    /// the size of the map.
    Pool2d {
        /// The input feature map.
        input: FeatureMap,
        /// Maximum or mean.
        kind: Pool2dKind,
        /// Window, stride, padding (dilation must be 1).
        window: Window,
    },
    /// The decoder of a sequence-to-sequence model, f32 (see "Sequence to
    /// sequence" above): last layer, right after the encoder's last
    /// recurrent layer, with its `cell` and `hidden`. Per decoder step, with
    /// `y` the previous output (the first: the last window step's
    /// `feedback` channels, normalized):
    /// 1. `h = cell(y, h)` (the state starts as the encoder's final state);
    /// 2. `s_i = (h . e_i) / sqrt(hidden)` over the `window` encoder
    ///    outputs `e_i`, `p = softmax(s)`, `ctx = sum_i p_i e_i` (in order of `i`);
    /// 3. `a = tanh(W_c [ctx; h] + b_c)`;
    /// 4. `y = W_y a + b_y`: the step's `outputs` values.
    ///
    /// `params`, f32 (LE): the cell's parameters as in
    /// [`LayerDef::RecurrentF32`] with `outputs` inputs, `W_c`
    /// (`attention x 2 hidden`), `b_c` (`attention`), `W_y`
    /// (`outputs x attention`), `b_y` (`outputs`).
    DecoderF32 {
        /// Encoder steps (the window), in `1..=MAX_TOKENS`.
        window: u32,
        /// Most decoder steps, in `1..=MAX_TOKENS`.
        horizon: u32,
        /// The decoder's cell kind (the encoder's last layer's).
        cell: Cell,
        /// Values per decoder step.
        outputs: u32,
        /// Hidden width (the encoder's last layer's).
        hidden: u32,
        /// Width of the attentional state `a`.
        attention: u32,
        /// `outputs` u16 (LE): the input channel each output continues.
        #[serde(borrow)]
        feedback: &'a [u8],
        /// All parameters, see above.
        #[serde(borrow)]
        params: &'a [u8],
    },
    /// The decoder, integer-only: the steps of [`LayerDef::DecoderF32`] with
    /// the encoder outputs `e` as the last recurrent layer's int8 output
    /// tensor (zero point 0) and `h` as int16 Q15:
    /// 0. the first `y` is `zp_y + rescale(x_c - zp_x, start)` for each
    ///    feedback channel `c` of the last window step;
    /// 1. the cell as [`LayerDef::RecurrentI8`] with `outputs` inputs (`y`'s
    ///    zero point folded into its input bias);
    /// 2. `q = rescale(h, query)` (int8, zero point 0), then attention as
    ///    [`LayerDef::AttentionI8`] steps 3-5 with one head over the
    ///    `window` keys and values `e` (`score`, `exp_table`, `context`);
    /// 3. `a = tanh[combine([ctx; q])]`: an int8 dense layer of `2 hidden`
    ///    inputs and `attention` outputs, then the 256-entry `tanh` table;
    /// 4. `y = out(a)`: an int8 dense layer in the model's output quantization.
    DecoderI8 {
        /// Encoder steps (the window), in `1..=MAX_TOKENS`.
        window: u32,
        /// Most decoder steps, in `1..=MAX_TOKENS`.
        horizon: u32,
        /// The decoder's cell kind (the encoder's last layer's).
        cell: Cell,
        /// Values per decoder step.
        outputs: u32,
        /// Hidden width (the encoder's last layer's).
        hidden: u32,
        /// Width of the attentional state `a`.
        attention: u32,
        /// `outputs` u16 (LE): the input channel each output continues.
        #[serde(borrow)]
        feedback: &'a [u8],
        /// The model's int8 input to the output quantization (first step).
        start: Rescale,
        /// The cell's parameters, laid out as [`LayerDef::RecurrentI8`]'s.
        #[serde(borrow)]
        params: &'a [u8],
        /// Q15 `h` to the int8 query (zero point 0).
        query: Rescale,
        /// Score differences to exp-table indices.
        score: Rescale,
        /// 256 u16 (LE), entry 0 non-zero.
        #[serde(borrow)]
        exp_table: &'a [u8],
        /// Q16 context to the int8 context (zero point 0).
        context: Rescale,
        /// `[ctx; q]` to the attentional state's pre-activation.
        combine: DenseI8Params<'a>,
        /// 256 i8: `tanh` on the combine's output scale.
        #[serde(borrow)]
        tanh: &'a [u8],
        /// `a` to the step's output.
        out: DenseI8Params<'a>,
    },
}

impl LayerDef<'_> {
    /// The kind's postcard tag: its index in this enum, as on the wire.
    pub const fn tag(&self) -> u32 {
        match self {
            LayerDef::DenseF32 { .. } => 0,
            LayerDef::ActivationF32(_) => 1,
            LayerDef::DenseI8 { .. } => 2,
            LayerDef::TableI8 { .. } => 3,
            LayerDef::SoftmaxI8 { .. } => 4,
            LayerDef::SaveSkip { .. } => 5,
            LayerDef::AddSkipF32 { .. } => 6,
            LayerDef::AddSkipI8 { .. } => 7,
            LayerDef::NearestCentroidF32 { .. } => 8,
            LayerDef::SquaredErrorF32 { .. } => 9,
            LayerDef::IsolationForestF32 { .. } => 10,
            LayerDef::ThresholdF32 { .. } => 11,
            LayerDef::RecurrentF32 { .. } => 12,
            LayerDef::RecurrentI8 { .. } => 13,
            LayerDef::Tokens { .. } => 14,
            LayerDef::EmbeddingF32 { .. } => 15,
            LayerDef::EmbeddingI8 { .. } => 16,
            LayerDef::AddTableF32 { .. } => 17,
            LayerDef::AddTableI8 { .. } => 18,
            LayerDef::LayerNormF32 { .. } => 19,
            LayerDef::LayerNormI8 { .. } => 20,
            LayerDef::AttentionF32 { .. } => 21,
            LayerDef::AttentionI8 { .. } => 22,
            LayerDef::Pool { .. } => 23,
            LayerDef::ClassToken { .. } => 24,
            LayerDef::Conv2dF32 { .. } => 25,
            LayerDef::Conv2dI8 { .. } => 26,
            LayerDef::Pool2d { .. } => 27,
            LayerDef::DecoderF32 { .. } => 28,
            LayerDef::DecoderI8 { .. } => 29,
        }
    }
}

/// The shape of a channels-last (HWC) feature map: `height x width x
/// channels` values, channel fastest. A 1-D sequence is `1 x steps x channels`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FeatureMap {
    /// Rows.
    pub height: u32,
    /// Columns (time steps of a 1-D sequence).
    pub width: u32,
    /// Values per position.
    pub channels: u32,
}

impl FeatureMap {
    /// Values in the map, if it fits a `u32`.
    pub const fn len(&self) -> Option<u32> {
        match self.height.checked_mul(self.width) {
            Some(hw) => hw.checked_mul(self.channels),
            None => None,
        }
    }
    /// Whether the map has no value.
    pub const fn is_empty(&self) -> bool {
        self.height == 0 || self.width == 0 || self.channels == 0
    }
}

/// How a window meets the border of a feature map.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Padding {
    /// No padding: every window lies inside the map.
    Valid,
    /// TensorFlow's "same": `ceil(input / stride)` outputs, the padding
    /// split with the smaller half before.
    Same,
}

/// A convolution's or pooling's window, per axis (height, then width).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Window {
    /// Kernel rows.
    pub kernel_h: u32,
    /// Kernel columns.
    pub kernel_w: u32,
    /// Step between output rows, at least 1.
    pub stride_h: u32,
    /// Step between output columns, at least 1.
    pub stride_w: u32,
    /// Spacing of kernel rows, at least 1.
    pub dilation_h: u32,
    /// Spacing of kernel columns, at least 1.
    pub dilation_w: u32,
    /// Border rule.
    pub padding: Padding,
}

/// One axis of a window over an input of `input` cells: `(outputs, padding
/// before)`, or `None` when the kernel, stride or dilation is 0 or the
/// dilated kernel is larger than the padded input.
pub const fn window_axis(
    input: u32,
    kernel: u32,
    stride: u32,
    dilation: u32,
    padding: Padding,
) -> Option<(u32, u32)> {
    if input == 0 || kernel == 0 || stride == 0 || dilation == 0 {
        return None;
    }
    // (kernel - 1) * dilation + 1, without overflow.
    let span = match (kernel - 1).checked_mul(dilation) {
        Some(s) => s as u64 + 1,
        None => return None,
    };
    let (input, stride) = (input as u64, stride as u64);
    match padding {
        Padding::Valid => {
            if span > input {
                return None;
            }
            Some((((input - span) / stride + 1) as u32, 0))
        }
        Padding::Same => {
            let out = input.div_ceil(stride);
            let needed = (out - 1) * stride + span;
            let total = needed.saturating_sub(input);
            if span > input + total {
                return None;
            }
            Some((out as u32, (total / 2) as u32))
        }
    }
}

impl Window {
    /// `(rows, columns, padding above, padding left)` of the output over
    /// `input` (see [`window_axis`]).
    pub const fn output(&self, input: &FeatureMap) -> Option<(u32, u32, u32, u32)> {
        let h = window_axis(
            input.height,
            self.kernel_h,
            self.stride_h,
            self.dilation_h,
            self.padding,
        );
        let w = window_axis(
            input.width,
            self.kernel_w,
            self.stride_w,
            self.dilation_w,
            self.padding,
        );
        match (h, w) {
            (Some((oh, ph)), Some((ow, pw))) => Some((oh, ow, ph, pw)),
            _ => None,
        }
    }
}

/// What [`LayerDef::Pool2d`] computes over each window.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Pool2dKind {
    /// The largest value.
    Max,
    /// The mean of the valid cells.
    Average,
}

/// Which recurrent cell a layer computes; equations in [`crate::kernels::recurrent`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Cell {
    /// Elman RNN, `tanh`.
    Rnn,
    /// LSTM, gates i, f, g, o.
    Lstm,
    /// GRU, gates r, z, n (PyTorch / cuDNN variant: `r` multiplies `gh_n`).
    Gru,
}

impl Cell {
    /// Gate blocks of `hidden` rows in the weight matrices.
    pub const fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
    /// State vectors of `hidden` values: `h`, and `c` for the LSTM.
    pub const fn state_vectors(self) -> usize {
        match self {
            Cell::Lstm => 2,
            _ => 1,
        }
    }
    /// Lower-case name (`"rnn"`, `"lstm"`, `"gru"`).
    pub const fn name(self) -> &'static str {
        match self {
            Cell::Rnn => "rnn",
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
        }
    }
}

/// How an attention layer sees positions (fixed sinusoidal positions are an
/// [`LayerDef::AddTableF32`] / [`LayerDef::AddTableI8`] before it instead).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Position {
    /// No positional term in the scores.
    None,
    /// A learned bias per head and relative distance, added to the scores.
    RelativeBias,
    /// Rotary position embedding of q and k.
    Rope,
}

/// How [`LayerDef::Pool`] reduces the rows.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PoolKind {
    /// Mean of every row.
    Mean,
    /// The first row (a class token's).
    First,
}

/// Parameters of an int8 dense map inside a larger layer (same scheme as
/// [`LayerDef::DenseI8`]; the input width is the layer's).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct DenseI8Params<'a> {
    /// `outputs x inputs` i8, row-major.
    #[serde(borrow)]
    pub weights: &'a [u8],
    /// `outputs` i32, input zero point folded in.
    #[serde(borrow)]
    pub bias: &'a [u8],
    /// `outputs` i32 multipliers.
    #[serde(borrow)]
    pub multiplier: &'a [u8],
    /// `outputs` shifts.
    #[serde(borrow)]
    pub shift: &'a [u8],
    /// Zero point of the output.
    pub output_zero_point: i8,
}

/// `(q - zero_point) * multiplier / 2^shift`, the integer form of a scale ratio.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Rescale {
    /// Zero point of the tensor being rescaled.
    pub zero_point: i8,
    /// Fixed-point multiplier in `[2^30, 2^31)`, or 0.
    pub multiplier: i32,
    /// Right shift, in `1..=62`.
    pub shift: u8,
}

/// Bytes of f32 values in little-endian order, as parameter arrays store them.
/// (`out` must hold `4 * values.len()` bytes; extra values are ignored.)
pub fn f32_to_le_bytes(values: &[f32], out: &mut [u8]) {
    for (chunk, v) in out.chunks_exact_mut(4).zip(values) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
}
