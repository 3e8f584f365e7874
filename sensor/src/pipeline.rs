//! One IMU sample per poll into a streaming recurrent model, one decision per
//! window.
//!
//! # Design
//! The BasicMotions models were trained on 100-step series, each starting
//! from a zero state, with the answer read after the last step. The pipeline
//! does exactly that on a live stream, in consecutive (tumbling) windows of
//! [`PipelineConfig::window_len`] samples: the first sample of a window
//! resets the state, every sample is one `step_*`, and the last one is
//! followed by `finish_*` and returns a [`Decision`]. So a decision is the
//! runtime's answer on those `window_len` samples as a series, bit for bit.
//!
//! There is no sample buffer: the recurrent state is the window's summary,
//! so keeping the samples would only be needed to overlap windows (a
//! decision every `h` samples over the last `window_len` would re-run
//! `window_len` steps per decision and keep `window_len` x 6 values). RAM is
//! the model's state and arena, owned by the caller, plus this struct.
//!
//! # Sampling
//! Call [`Pipeline::poll`] once per sample period: BasicMotions was sampled
//! at 10 Hz (every 100 ms) and a window of 100 samples is its 10 s series.
//! Each poll reads the newest sample; the sensor runs at 1 kHz behind a 5 Hz
//! low-pass filter (see [`mpu6050`]), so a 10 Hz poll reads a
//! fresh, band-limited value whatever its phase.
//!
//! # Errors and the state
//! [`Pipeline::init`] checks the model and buffers first (input width 6, at
//! most [`MAX_CLASSES`] outputs, a dry run of reset, one step and finish
//! on zeros, so a wrong buffer shows here rather than 10 s into a stream),
//! then the sensor. Any error from [`Pipeline::poll`] (bus, short read,
//! runtime) **discards the current window**: the samples so far are dropped
//! (a window with a hole in it is not the uniformly-sampled series the model
//! was trained on), the gravity estimate is forgotten, and the next
//! successful sample starts a new window from a zeroed state. No decision
//! is ever made from a partial or mixed window, and a sample is used only
//! after its whole burst was read and checked. Nothing here panics.

use core::num::NonZeroU16;

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use runtime::{Model, Numeric};

use crate::gravity::{Gravity, GravityFilter};
use crate::mpu6050::{self, Mpu6050};
use crate::Error;

/// Input channels the pipeline feeds: accelerometer x, y, z, gyroscope x, y, z.
pub const CHANNELS: usize = 6;
/// Most model outputs a [`Decision`] holds.
pub const MAX_CLASSES: usize = 16;
/// BasicMotions' series length: 100 samples, 10 s at 10 Hz.
pub const BASIC_MOTIONS_WINDOW: NonZeroU16 = NonZeroU16::MIN.saturating_add(99);

/// How the pipeline reads and windows the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineConfig {
    /// The MPU-6050's I2C address ([`mpu6050::ADDRESS_AD0_LOW`] or `_HIGH`).
    pub address: u8,
    /// Samples per decision (the model's training series length).
    pub window_len: NonZeroU16,
    /// Whether gravity is subtracted from the accelerometer channels.
    pub gravity: Gravity,
}

impl PipelineConfig {
    /// A board running the BasicMotions models: address 0x68, windows of
    /// 100 samples, gravity subtracted with a 6-sample average (a corner near
    /// 0.3 Hz at 10 Hz, where activity-recognition work commonly splits
    /// gravity from body motion).
    pub const BASIC_MOTIONS: PipelineConfig = PipelineConfig {
        address: mpu6050::ADDRESS_AD0_LOW,
        window_len: BASIC_MOTIONS_WINDOW,
        gravity: Gravity::Subtract {
            samples: NonZeroU16::MIN.saturating_add(5),
        },
    };
}

/// The model's answer on one window.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Decision {
    class: usize,
    confidence: f32,
    scores: Scores,
    len: u8,
    model_ticks: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
// With one numeric path compiled out, the other variant is never built.
#[cfg_attr(not(all(feature = "f32", feature = "int8")), allow(dead_code))]
enum Scores {
    F32([f32; MAX_CLASSES]),
    Int8([i8; MAX_CLASSES]),
}

impl Decision {
    /// Index of the highest output (the first one on a tie; never a NaN).
    pub fn class(&self) -> usize {
        self.class
    }

    /// The model's output for [`Decision::class`] in real units: the softmax
    /// probability for models that end in a softmax, as the BasicMotions ones
    /// do (int8 outputs dequantized with [`Model::dequantize_output`]).
    pub fn confidence(&self) -> f32 {
        self.confidence
    }

    /// Ticks of the counter given to [`Pipeline::poll_timed`] spent in the
    /// runtime over this window's samples (0 from [`Pipeline::poll`]):
    /// divide by the window length for a figure per step.
    pub fn model_ticks(&self) -> u32 {
        self.model_ticks
    }

    /// The int8 model's raw outputs, as `finish_i8` returned them.
    pub fn scores_i8(&self) -> Option<&[i8]> {
        match &self.scores {
            Scores::Int8(v) => v.get(..usize::from(self.len)),
            Scores::F32(_) => None,
        }
    }

    /// The f32 model's outputs, as `finish_f32` returned them.
    pub fn scores_f32(&self) -> Option<&[f32]> {
        match &self.scores {
            Scores::F32(v) => v.get(..usize::from(self.len)),
            Scores::Int8(_) => None,
        }
    }
}

/// An MPU-6050 feeding a recurrent model, one window at a time.
///
/// `state` must hold [`Model::state_bytes`] and `arena`
/// [`Model::arena_bytes`], both 4-byte aligned (use [`runtime::Arena`]).
pub struct Pipeline<'p, 'm, I2C> {
    imu: Mpu6050<I2C>,
    model: &'p Model<'m>,
    state: &'p mut [u8],
    // Unused when neither numeric path is compiled in.
    #[cfg_attr(not(any(feature = "f32", feature = "int8")), allow(dead_code))]
    arena: &'p mut [u8],
    window_len: NonZeroU16,
    in_window: u16,
    gravity: Option<GravityFilter>,
    initialized: bool,
    window_ticks: u32,
}

impl<'p, 'm, I2C: I2c> Pipeline<'p, 'm, I2C> {
    /// A pipeline over `i2c` and `model`. Checks nothing and touches no bus:
    /// [`Pipeline::init`] does both, so a failure leaves the bus here
    /// ([`Pipeline::release`]).
    pub fn new(
        i2c: I2C,
        model: &'p Model<'m>,
        state: &'p mut [u8],
        arena: &'p mut [u8],
        config: PipelineConfig,
    ) -> Self {
        Pipeline {
            imu: Mpu6050::new(i2c, config.address),
            model,
            state,
            arena,
            window_len: config.window_len,
            in_window: 0,
            gravity: match config.gravity {
                Gravity::AsMeasured => None,
                Gravity::Subtract { samples } => Some(GravityFilter::new(samples)),
            },
            initialized: false,
            window_ticks: 0,
        }
    }

    /// Check the model and buffers (no bus traffic), then identify,
    /// reset and configure the sensor ([`Mpu6050::init`]). Until it succeeds,
    /// [`Pipeline::poll`] returns [`Error::NotInitialized`]. May be called
    /// again (after a sensor power loss, say); it starts a new window.
    pub fn init<D: DelayNs>(&mut self, delay: &mut D) -> Result<(), Error<I2C::Error>> {
        self.initialized = false;
        self.restart_window();
        self.check_model()?;
        self.imu.init(delay)?;
        self.initialized = true;
        Ok(())
    }

    /// Read one sample and step the model; at the end of a window, return
    /// its decision. On any error the window is discarded (see the module
    /// docs) and the error returned; the next call starts a new window.
    pub fn poll(&mut self) -> Result<Option<Decision>, Error<I2C::Error>> {
        self.poll_timed(&mut || 0)
    }

    /// [`Pipeline::poll`], also timing the runtime's share of the work:
    /// `now` is read right before and right after the runtime is called for
    /// this sample (the reset at a window's start, the step, and the finish
    /// at its end), after the bus read, so the I2C transfer is not counted.
    /// `now` must be a free-running counter that wraps at 2^32 (DWT CYCCNT,
    /// or SysTick extended to 32 bits by its exception); a window's total is
    /// [`Decision::model_ticks`]. Errors and windows as for `poll`.
    pub fn poll_timed(
        &mut self,
        now: &mut impl FnMut() -> u32,
    ) -> Result<Option<Decision>, Error<I2C::Error>> {
        if !self.initialized {
            return Err(Error::NotInitialized);
        }
        let result = self.next_sample(now);
        if result.is_err() {
            self.restart_window();
        }
        result
    }

    /// Drop the current window (and the gravity estimate): the next sample
    /// starts a new one from a zeroed state.
    pub fn restart_window(&mut self) {
        self.in_window = 0;
        if let Some(filter) = &mut self.gravity {
            filter.reset();
        }
    }

    /// Samples stepped in the current window (0 right after a decision or an error).
    pub fn samples_in_window(&self) -> u16 {
        self.in_window
    }

    /// Samples per decision.
    pub fn window_len(&self) -> NonZeroU16 {
        self.window_len
    }

    /// Whether [`Pipeline::init`] has succeeded.
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// Give the bus back.
    pub fn release(self) -> I2C {
        self.imu.release()
    }

    fn next_sample(
        &mut self,
        now: &mut impl FnMut() -> u32,
    ) -> Result<Option<Decision>, Error<I2C::Error>> {
        // The model is touched only after the whole burst was read and checked.
        let sample = self.imu.read()?;
        let [gx, gy, gz] = sample.gyro_rad_s;
        let [ax, ay, az] = match &mut self.gravity {
            Some(filter) => filter.apply(sample.accel_mps2),
            None => sample.accel_mps2,
        };
        let start = now();
        if self.in_window == 0 {
            self.window_ticks = 0;
            self.model.reset(self.state)?;
        }
        self.step(&[ax, ay, az, gx, gy, gz])?;
        self.in_window = self.in_window.saturating_add(1);
        let decision = if self.in_window < self.window_len.get() {
            None
        } else {
            self.in_window = 0;
            Some(self.finish()?)
        };
        self.window_ticks = self.window_ticks.wrapping_add(now().wrapping_sub(start));
        Ok(decision.map(|d| Decision {
            model_ticks: self.window_ticks,
            ..d
        }))
    }

    /// Input and output widths, then reset / step / finish on zeros, then reset.
    fn check_model(&mut self) -> Result<(), runtime::Error> {
        if self.model.input_len() != CHANNELS {
            return Err(runtime::Error::WrongInputLength {
                expected: self.model.input_len(),
                given: CHANNELS,
            });
        }
        let outputs = self.model.output_len();
        if outputs == 0 || outputs > MAX_CLASSES {
            return Err(runtime::Error::DimensionOutOfRange {
                layer: u32::MAX,
                value: u32::try_from(outputs).unwrap_or(u32::MAX),
            });
        }
        self.model.reset(self.state)?;
        self.step(&[0.0; CHANNELS])?;
        self.finish()?;
        self.model.reset(self.state)
    }

    fn step(&mut self, x: &[f32; CHANNELS]) -> Result<(), runtime::Error> {
        match self.model.numeric() {
            Numeric::Int8 => self.step_int8(x),
            Numeric::F32 => self.step_float(x),
        }
    }

    fn finish(&mut self) -> Result<Decision, runtime::Error> {
        match self.model.numeric() {
            Numeric::Int8 => self.finish_int8(),
            Numeric::F32 => self.finish_float(),
        }
    }

    #[cfg(feature = "int8")]
    fn step_int8(&mut self, x: &[f32; CHANNELS]) -> Result<(), runtime::Error> {
        let mut quantized = [0i8; CHANNELS];
        self.model.quantize_input(x, &mut quantized)?;
        self.model.step_i8(&quantized, self.state, self.arena)?;
        Ok(())
    }

    #[cfg(feature = "int8")]
    fn finish_int8(&mut self) -> Result<Decision, runtime::Error> {
        let mut values = [0i8; MAX_CLASSES];
        let len = copy_scores(self.model.finish_i8(self.state, self.arena)?, &mut values)?;
        let scores = values.get(..len).unwrap_or(&[]);
        let class = argmax(scores);
        let mut confidence = [0.0f32];
        let top = scores.get(class..=class).unwrap_or(&[]);
        self.model.dequantize_output(top, &mut confidence)?;
        let [confidence] = confidence;
        Ok(Decision {
            class,
            confidence,
            scores: Scores::Int8(values),
            len: len as u8, // at most MAX_CLASSES
            model_ticks: 0,
        })
    }

    #[cfg(feature = "f32")]
    fn step_float(&mut self, x: &[f32; CHANNELS]) -> Result<(), runtime::Error> {
        // step_f32 applies the blob's input normalization itself.
        self.model.step_f32(x, self.state, self.arena)?;
        Ok(())
    }

    #[cfg(feature = "f32")]
    fn finish_float(&mut self) -> Result<Decision, runtime::Error> {
        let mut values = [0.0f32; MAX_CLASSES];
        let len = copy_scores(self.model.finish_f32(self.state, self.arena)?, &mut values)?;
        let scores = values.get(..len).unwrap_or(&[]);
        let class = argmax(scores);
        let confidence = scores.get(class).copied().unwrap_or(f32::NAN);
        Ok(Decision {
            class,
            confidence,
            scores: Scores::F32(values),
            len: len as u8, // at most MAX_CLASSES
            model_ticks: 0,
        })
    }

    #[cfg(not(feature = "int8"))]
    fn step_int8(&mut self, _: &[f32; CHANNELS]) -> Result<(), runtime::Error> {
        Err(runtime::Error::WrongNumericPath)
    }

    #[cfg(not(feature = "int8"))]
    fn finish_int8(&mut self) -> Result<Decision, runtime::Error> {
        Err(runtime::Error::WrongNumericPath)
    }

    #[cfg(not(feature = "f32"))]
    fn step_float(&mut self, _: &[f32; CHANNELS]) -> Result<(), runtime::Error> {
        Err(runtime::Error::WrongNumericPath)
    }

    #[cfg(not(feature = "f32"))]
    fn finish_float(&mut self) -> Result<Decision, runtime::Error> {
        Err(runtime::Error::WrongNumericPath)
    }
}

/// Copy a model's outputs into a decision's fixed array; their count.
#[cfg(any(feature = "int8", feature = "f32"))]
fn copy_scores<T: Copy>(scores: &[T], out: &mut [T; MAX_CLASSES]) -> Result<usize, runtime::Error> {
    if scores.is_empty() || scores.len() > MAX_CLASSES {
        return Err(runtime::Error::DimensionOutOfRange {
            layer: u32::MAX,
            value: u32::try_from(scores.len()).unwrap_or(u32::MAX),
        });
    }
    out.iter_mut().zip(scores).for_each(|(o, &s)| *o = s);
    Ok(scores.len())
}

/// Index of the largest value, the first on a tie; a NaN is never chosen
/// (0 if every value is NaN), as `runtime::argmax` does.
#[cfg(any(feature = "int8", feature = "f32"))]
fn argmax<T: PartialOrd + Copy>(values: &[T]) -> usize {
    let mut best: Option<(usize, T)> = None;
    for (i, &v) in values.iter().enumerate() {
        let better = match best {
            None => v.partial_cmp(&v).is_some(),
            Some((_, b)) => v > b,
        };
        if better {
            best = Some((i, v));
        }
    }
    best.map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_first_max_and_never_nan() {
        assert_eq!(argmax(&[1i8, 5, 5, -3]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.2, 0.7, 0.1]), 2);
        assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
        assert_eq!(argmax::<i8>(&[]), 0);
    }

    #[test]
    fn basic_motions_window_is_100() {
        assert_eq!(BASIC_MOTIONS_WINDOW.get(), 100);
        match PipelineConfig::BASIC_MOTIONS.gravity {
            Gravity::Subtract { samples } => assert_eq!(samples.get(), 6),
            Gravity::AsMeasured => panic!("board default subtracts gravity"),
        }
    }
}
