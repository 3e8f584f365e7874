//! Trainer: fit models on real data, quantize them and export blobs for the runtime.
//!
//! Data flows one way: [`spec`] (what to build) + [`data`] (real rows) →
//! [`train`] (candle, f32) → [`quantize`] (calibrated int8) → [`export`] (blobs,
//! test vectors, reports, plots). Evaluation always runs the exported blob
//! through the `runtime` crate itself, so reported accuracy is the chip's.

pub mod classical;
pub mod data;
pub mod export;
pub mod family;
pub mod io;
pub mod limits;
pub mod plot;
pub mod quantize;
pub mod recurrent;
pub mod spec;
pub mod train;
pub mod transformer;
pub mod ts;
