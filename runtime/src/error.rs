//! The runtime's one error type.

use core::fmt;

/// Everything that can go wrong, at load time or when running a model.
///
/// Load-time variants say what was wrong with the bytes; run-time variants say
/// what was wrong with the caller's buffers. Nothing in the runtime panics instead.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
// A word-sized tag: results move as whole words (a byte tag before 4-byte
// fields made some targets copy them with `memcpy`, which costs flash).
#[repr(u32)]
pub enum Error {
    /// The blob ends before its declared content does.
    Truncated,
    /// The blob does not start with [`MAGIC`](crate::format::MAGIC).
    BadMagic,
    /// The blob was written by a format version this runtime does not read.
    UnsupportedVersion {
        /// Version found in the blob.
        found: u16,
        /// The version this runtime reads.
        supported: u16,
    },
    /// The payload's CRC-32 does not match the one in the envelope.
    BadCrc {
        /// CRC stored in the envelope.
        stored: u32,
        /// CRC computed over the payload.
        computed: u32,
    },
    /// The payload is not a valid encoding (bad enum tag, bad varint, trailing bytes).
    Malformed,
    /// More layers (or skip slots) than the runtime's fixed capacity.
    TooManyLayers {
        /// Number found.
        found: u32,
        /// Capacity ([`MAX_LAYERS`](crate::format::MAX_LAYERS)).
        max: u32,
    },
    /// A dimension beyond [`MAX_WIDTH`](crate::format::MAX_WIDTH), a tensor
    /// beyond [`MAX_TENSOR`](crate::format::MAX_TENSOR) values, or zero.
    DimensionOutOfRange {
        /// Index of the layer (or `u32::MAX` for the model's input/output).
        layer: u32,
        /// The offending dimension.
        value: u32,
    },
    /// A layer's shape does not chain with the previous one, or a parameter
    /// array has the wrong length for the declared shape.
    ShapeMismatch {
        /// Index of the layer (or `u32::MAX` for the model's input/output).
        layer: u32,
    },
    /// A layer's kind does not belong to the model's numeric path (an f32 layer
    /// in an int8 model, or the reverse), or the caller used the wrong path.
    WrongNumericPath,
    /// A quantization parameter is out of its valid range.
    BadQuantization {
        /// Index of the layer (or `u32::MAX` for the model's input/output).
        layer: u32,
    },
    /// A skip connection refers to a slot that was never saved.
    BadSkipSlot {
        /// Index of the layer.
        layer: u32,
    },
    /// The arena size declared in the blob is not what its layers need.
    ArenaSizeMismatch {
        /// Bytes declared in the blob.
        declared: u32,
        /// Bytes the layers need.
        needed: u32,
    },
    /// The caller's arena is smaller than the model needs.
    ArenaTooSmall {
        /// Bytes the model needs.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// The caller's arena is not 4-byte aligned (use [`Arena`](crate::Arena)).
    ArenaMisaligned,
    /// An isolation-forest node is invalid: a child index not after the node
    /// or beyond its tree, a split feature beyond the input width, or a
    /// non-finite value; or the trees' first-node indices are not increasing.
    BadTreeNode {
        /// Index of the layer.
        layer: u32,
        /// Index of the node in the layer's flat arrays (or of the tree, for a bad root).
        node: u32,
    },
    /// A layer parameter is out of its valid range (for example a NaN threshold).
    BadParameter {
        /// Index of the layer.
        layer: u32,
    },
    /// The caller's state buffer is smaller than [`Model::state_bytes`](crate::Model::state_bytes).
    StateTooSmall {
        /// Bytes the model needs.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// A state/step call on a model with neither recurrent layers nor causal attention.
    NotRecurrent,
    /// A causal model with absolute positions (a positional table or RoPE)
    /// was stepped past its context: reset the state.
    ContextFull {
        /// The model's context, in tokens.
        tokens: usize,
    },
    /// `run_f32`/`run_i8` on a recurrent model: use the step or sequence API.
    Recurrent,
    /// The blob uses a layer family or numeric path that this build of the
    /// runtime leaves out: enable the named cargo feature of `runtime`.
    UnsupportedLayer {
        /// Index of the layer (or `u32::MAX` for the model's numeric path).
        layer: u32,
        /// The cargo feature it needs (one of `f32`, `int8`, `recurrent`,
        /// `attention`, `classical`; a set, to keep the error small).
        feature: crate::format::Features,
    },
    /// The model was never loaded, or its last load failed (see
    /// [`Model::load`](crate::Model::load)).
    NotLoaded,
    /// The input slice has the wrong number of elements.
    WrongInputLength {
        /// Elements the model takes.
        expected: usize,
        /// Elements given.
        given: usize,
    },
    /// A decoder whose cell kind or hidden width differs from the encoder's
    /// last recurrent layer, or that does not follow it as the last layer.
    DecoderMismatch {
        /// Index of the decoder layer.
        layer: u32,
    },
    /// A decoder's attention does not match its widths: the combine layer
    /// is not `attention x 2 hidden`, the output layer not `outputs x
    /// attention`, or the keys are not symmetric.
    AttentionMismatch {
        /// Index of the decoder layer.
        layer: u32,
    },
    /// An encode/decode call on a model without a decoder.
    NotSeq2Seq,
    /// `finish_*` on an encoder-decoder: use `forecast_*` or `decode_*`.
    Seq2Seq,
    /// A horizon of 0, or decoding past the model's horizon (encode again).
    HorizonOutOfRange {
        /// The model's horizon.
        max: usize,
        /// Steps asked for (or the step about to be decoded).
        given: usize,
    },
    /// The caller's output buffer is too small for the asked horizon.
    OutputTooSmall {
        /// Values needed.
        needed: usize,
        /// Values given.
        given: usize,
    },
}

/// Shorthand for results carrying [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated => write!(f, "model blob is truncated"),
            Error::BadMagic => write!(f, "not a model blob (bad magic)"),
            Error::UnsupportedVersion { found, supported } => write!(
                f,
                "model format version {found} is not supported (this runtime reads version {supported})"
            ),
            Error::BadCrc { stored, computed } => write!(
                f,
                "model payload is corrupt: CRC-32 {computed:#010x} does not match stored {stored:#010x}"
            ),
            Error::Malformed => write!(f, "model payload is malformed"),
            Error::TooManyLayers { found, max } => {
                write!(f, "model has {found} layers or slots, the runtime holds at most {max}")
            }
            Error::DimensionOutOfRange { layer, value } => {
                write!(f, "dimension {value} out of range at layer {layer}")
            }
            Error::ShapeMismatch { layer } => write!(f, "shape mismatch at layer {layer}"),
            Error::WrongNumericPath => write!(f, "layer or call does not match the model's numeric path"),
            Error::BadQuantization { layer } => {
                write!(f, "quantization parameter out of range at layer {layer}")
            }
            Error::BadSkipSlot { layer } => write!(f, "skip connection to an unsaved slot at layer {layer}"),
            Error::ArenaSizeMismatch { declared, needed } => write!(
                f,
                "blob declares an arena of {declared} bytes but its layers need {needed}"
            ),
            Error::ArenaTooSmall { needed, given } => {
                write!(f, "arena too small: model needs {needed} bytes, given {given}")
            }
            Error::ArenaMisaligned => write!(f, "arena is not 4-byte aligned"),
            Error::BadTreeNode { layer, node } => {
                write!(f, "invalid isolation-forest node {node} at layer {layer}")
            }
            Error::BadParameter { layer } => write!(f, "parameter out of range at layer {layer}"),
            Error::StateTooSmall { needed, given } => {
                write!(f, "state too small: model needs {needed} bytes, given {given}")
            }
            Error::NotRecurrent => write!(
                f,
                "the model has no recurrent layer or causal attention (no state to step)"
            ),
            Error::ContextFull { tokens } => write!(
                f,
                "the model's context of {tokens} tokens is full (absolute positions): reset the state"
            ),
            Error::Recurrent => {
                write!(f, "the model is recurrent: use step/run_sequence with a state buffer")
            }
            Error::UnsupportedLayer { layer, feature } => write!(
                f,
                "layer {layer} needs the runtime feature {feature}, which this build leaves out"
            ),
            Error::NotLoaded => write!(f, "no model is loaded (the last load failed or none was made)"),
            Error::WrongInputLength { expected, given } => {
                write!(f, "wrong input length: model takes {expected} values, given {given}")
            }
            Error::DecoderMismatch { layer } => write!(
                f,
                "the decoder at layer {layer} does not match the encoder's last recurrent layer (cell kind, hidden width or place)"
            ),
            Error::AttentionMismatch { layer } => write!(
                f,
                "the decoder's attention at layer {layer} does not match its widths"
            ),
            Error::NotSeq2Seq => write!(f, "the model has no decoder (not an encoder-decoder)"),
            Error::Seq2Seq => {
                write!(f, "the model is an encoder-decoder: use forecast or encode/decode")
            }
            Error::HorizonOutOfRange { max, given } => {
                write!(f, "horizon {given} out of range: the model decodes 1 to {max} steps")
            }
            Error::OutputTooSmall { needed, given } => {
                write!(f, "output buffer too small: needs {needed} values, given {given}")
            }
        }
    }
}

impl core::error::Error for Error {}

impl From<postcard::Error> for Error {
    fn from(e: postcard::Error) -> Self {
        match e {
            postcard::Error::DeserializeUnexpectedEnd | postcard::Error::SerializeBufferFull => {
                Error::Truncated
            }
            _ => Error::Malformed,
        }
    }
}
