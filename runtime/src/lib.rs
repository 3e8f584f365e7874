//! # runtime: neural-network inference for microcontrollers
//!
//! `#![no_std]`, no allocator, no `unsafe`. A model is a blob written by the
//! trainer (see [`format`]); [`Model::from_bytes`] validates it once, borrowing
//! every weight from the blob (in flash, on a chip), and then
//! [`Model::run_f32`] / [`Model::run_i8`] run it in a caller-provided arena of
//! exactly [`Model::arena_bytes`] bytes (an [`Arena`] of the exporter's
//! constant).
//!
//! ## Promises
//! - **No panics** on any blob or any input: validation happens at load and
//!   every failure is an [`Error`]; see [`model`] for what is checked.
//! - **Bit-identical results** on host and target: float math is `libm`
//!   (unless the `fast-math` feature picks `micromath`), operation order is
//!   fixed, and the int8 path is integer-only (it runs on a Cortex-M0).
//! - **Bounded memory**: at most [`format::MAX_LAYERS`] layers, widths up to
//!   [`format::MAX_WIDTH`]; the arena size is known at export.
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
//! - `fast-math`: `micromath` approximations for exp/tanh/erf (not bit-identical to libm).
//! - `defmt`: `defmt::Format` for [`Error`] and the public enums.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod arena;
pub mod error;
pub mod format;
pub mod kernels;
pub mod math;
pub mod model;
pub mod quant;
pub mod recurrent;
pub mod vectors;

pub use arena::Arena;
pub use error::{Error, Result};
pub use format::{Numeric, QuantParams};
pub use math::argmax;
pub use model::{LayerInfo, Model, ModelStats};
pub use vectors::TestVectors;
