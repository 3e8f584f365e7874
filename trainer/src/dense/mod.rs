//! The dense stack: dense layers, activations and residual (skip) blocks,
//! the counterpart of the runtime's `layers/dense.rs` and `layers/skip.rs`.
//! Not a family of its own but the building block of several: the MLP
//! family's model, a recurrent model's head, the PCA and autoencoder
//! reconstructions of the classical family.
//!
//! | module | concern |
//! | --- | --- |
//! | [`spec`] | the `[model] layers` grammar (`"dense 32"`, `"relu"`, `"save 0"`, ...) |
//! | [`model`] | parameters ([`Mlp`]), initialisation and the candle forward pass ([`Net`]), f32 layers |
//! | [`quantize`] | calibrated int8 layers |

pub mod model;
pub mod quantize;
pub mod spec;

pub use model::{Init, Layer, Mlp, Net};
pub use spec::LayerSpec;
