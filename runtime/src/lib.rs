//! # runtime: neural-network inference for microcontrollers
//!
//! `#![no_std]`, no allocator, no `unsafe` outside the Armv7E-M DSP kernel.
//! A model is a blob written by the trainer (see [`format`]);
//! [`Model::from_bytes`] validates it once, borrowing every weight from the
//! blob (in flash, on a chip), and then [`Model::run_f32`] /
//! [`Model::run_i8`] (or the step API of recurrent and causal models, or the
//! forecast API of encoder-decoders) run it
//! in a caller-provided arena of exactly [`Model::arena_bytes`] bytes (an
//! [`Arena`] of the exporter's constant).
//!
//! ## Promises
//! - **No panics** on any blob, any state bytes or any input: validation
//!   happens at load and every failure is an [`Error`]; see [`model`] for
//!   what is checked.
//! - **Bit-identical results** on host and target: float math is `libm`
//!   (unless the `fast-math` feature picks `micromath`), operation order is
//!   fixed, and the int8 path is integer-only (it runs on a Cortex-M0).
//! - **Bounded memory**: at most [`format::MAX_LAYERS`] layers, widths up to
//!   [`format::MAX_WIDTH`]; the arena size is known at export.
//! - **Pay for what you use**: each layer family is a cargo feature; a family
//!   that a build leaves out costs no byte of flash, and a blob that needs
//!   it fails to load with [`Error::UnsupportedLayer`] naming the feature.
//!   [`Model::features`] says what a model needs.
//!
//! ```
//! # fn demo(blob: &[u8]) -> Result<usize, runtime::Error> {
//! use runtime::{Arena, Model};
//! let model = Model::from_bytes(blob)?;
//! let mut arena = Arena::<4096>::new();
//! let scores = model.run_f32(&[0.0; 64], arena.as_mut_bytes())?;
//! Ok(runtime::argmax(scores))
//! # }
//! ```
//!
//! ## Features
//! All of the layer features are on by default (host tools and tests get
//! everything); firmware picks its own, e.g. `default-features = false,
//! features = ["int8"]` for an int8 MLP.
//! - `f32`, `int8`: the numeric paths, each with the dense family (dense,
//!   activations, softmax, residual skips).
//! - `recurrent`: Elman RNN, LSTM and GRU layers and the streaming API.
//! - `attention`: transformer layers (tokens, embedding, positions,
//!   LayerNorm, attention, pooling) and the key/value cache.
//! - `classical`: nearest centroid, reconstruction error, isolation forest,
//!   threshold (f32; turns `f32` on).
//! - `conv`: standard and depthwise convolutions (2-D, 1-D, pointwise) and
//!   max / average pooling over channels-last feature maps.
//! - `seq2seq`: encoder-decoder models (a recurrent encoder, a decoder cell
//!   with attention over the encoder's outputs) and the forecast / decode
//!   API; turns `recurrent` on.
//! - `arm-dsp`: SXTB16/SMLAD int8 kernels for Armv7E-M cores with DSP.
//! - `fast-math`: `micromath` approximations for exp/tanh/erf (not bit-identical to libm).
//! - `defmt`: `defmt::Format` for [`Error`] and the public enums.
//!
//! ## Layout
//! Imports run one way: [`format`] (the wire format, a leaf), then
//! [`kernels`] (arithmetic), then `layers` (one file per family: its
//! validation and its run), then [`model`] (loading and the interpreter).

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![deny(missing_docs)]
// A build without some family leaves helpers shared with it unused.
#![cfg_attr(
    not(all(
        feature = "f32",
        feature = "int8",
        feature = "recurrent",
        feature = "attention",
        feature = "classical",
        feature = "conv",
        feature = "seq2seq"
    )),
    allow(
        unused,
        unreachable_patterns,
        unreachable_code,
        irrefutable_let_patterns
    )
)]

pub mod arena;
pub mod error;
pub mod format;
pub mod kernels;
mod layers;
pub mod math;
pub mod model;
pub mod quant;
pub mod vectors;

pub use arena::Arena;
pub use error::{Error, Result};
pub use format::{Features, Numeric, QuantParams};
pub use math::argmax;
pub use model::{encode, encoded_len, LayerInfo, Model, ModelStats};
pub use vectors::TestVectors;
