//! # sensor: a 6-axis IMU into a streaming recurrent model, `no_std`
//!
//! An InvenSense MPU-6050 on any `embedded_hal::i2c::I2c` bus
//! ([`mpu6050`]), read one sample per [`Pipeline::poll`], converted to the
//! units the BasicMotions models were trained in, normalized by the blob's
//! own input normalization and stepped through the runtime's streaming API
//! (`reset`, `step_f32` / `step_i8`, `finish_f32` / `finish_i8`) with
//! caller-owned state and arena; one [`Decision`] per window
//! ([`pipeline`] explains the window). No allocator, no `unsafe`, no panics:
//! every failure is an [`Error`].
//!
//! ```no_run
//! use embedded_hal::{delay::DelayNs, i2c::I2c};
//! use runtime::{Arena, Model};
//! use sensor::{Pipeline, PipelineConfig};
//!
//! fn run<I: I2c, D: DelayNs>(i2c: I, delay: &mut D, blob: &[u8]) -> Result<(), sensor::Error<I::Error>> {
//!     let model = Model::from_bytes(blob)?;      // basicmotions-lstm/int8.bin
//!     let mut state = Arena::<64>::new();        // model.state_bytes()
//!     let mut arena = Arena::<544>::new();       // model.arena_bytes()
//!     let mut pipeline = Pipeline::new(
//!         i2c, &model, state.as_mut_bytes(), arena.as_mut_bytes(), PipelineConfig::BASIC_MOTIONS,
//!     );
//!     pipeline.init(delay)?;
//!     loop {
//!         delay.delay_ms(100);                   // 10 Hz, as BasicMotions was sampled
//!         match pipeline.poll() {
//!             Ok(Some(decision)) => { let _ = (decision.class(), decision.confidence()); }
//!             Ok(None) => {}                     // mid-window
//!             Err(_) => {}                       // window discarded; the next poll starts a new one
//!         }
//!     }
//! }
//! ```
//!
//! ## Units: what the BasicMotions data is in
//! Computed over both splits (80 series x 100 steps, channels accelerometer
//! x, y, z then gyroscope x, y, z, in the order `trainer/src/ts.rs` reads
//! them):
//! - **Accelerometer: m/s², gravity removed.** Running peaks at 27.6 m/s²
//!   with a per-axis standard deviation near 10; in g that would be 27 g
//!   peaks on a wrist, beyond any watch sensor's range, while in m/s² it is
//!   2.8 g. Standing still, every axis averages 0.1-0.3 m/s² (series means
//!   from -0.27 to 0.21): gravity (9.8 m/s² or 1 g on some axis) is not in
//!   the data, so the watch reported linear acceleration. Highest magnitude
//!   anywhere: 29.39 m/s² (3.0 g).
//! - **Gyroscope: rad/s.** Standing: standard deviation 0.2-0.5; Running:
//!   up to 5.2 (about 300 °/s, a swinging arm; in °/s it would be an arm
//!   barely moving). The largest value, 34.87 in the training split, is
//!   1998 °/s, just under a ±2000 °/s full scale (34.91 rad/s): a gyro at its
//!   top range.
//!
//! Hence the MPU-6050 runs at ±2000 °/s (the only range that covers the
//! data) and ±8 g (3 g of motion plus 1 g of gravity, with room), and counts
//! become m/s² and rad/s ([`mpu6050::ImuSample::from_raw`]). Gravity, which
//! the sensor does measure, is subtracted by default
//! ([`gravity`], [`PipelineConfig::BASIC_MOTIONS`]); replayed BasicMotions
//! data must use [`Gravity::AsMeasured`]. Axes are the sensor's: mount it as
//! the watch was worn (x, y, z as the data's channels 1-3) or the model sees
//! rotated inputs.
//!
//! The model's input normalization (per channel `(raw - offset) * scale`,
//! fitted on the training data) travels in the blob: f32 models apply it
//! inside `step_f32`, int8 models in `Model::quantize_input`; the pipeline
//! passes physical values to both and never normalizes itself.
//!
//! ## Features
//! - `f32`, `int8` (both default): which numeric paths the pipeline can
//!   drive; a model of a path not compiled in gives
//!   `Error::Model(runtime::Error::WrongNumericPath)` at [`Pipeline::init`].
//! - `defmt`: `defmt::Format` for [`Error`], [`Decision`] and [`Gravity`].

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod error;
pub mod gravity;
pub mod mpu6050;
pub mod pipeline;

pub use error::Error;
pub use gravity::Gravity;
pub use mpu6050::{ImuSample, Mpu6050, RawSample};
pub use pipeline::{Decision, Pipeline, PipelineConfig};
