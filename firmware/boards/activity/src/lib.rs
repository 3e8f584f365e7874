//! # activity: the application every board runs
//!
//! An MPU-6050 on I2C feeds the BasicMotions LSTM through
//! [`sensor::Pipeline`] at 10 Hz; every 100 samples (10 s, one BasicMotions
//! series) the model decides between Standing, Running, Walking and
//! Badminton, and the decision is logged with defmt. A board crate
//! (`firmware/boards/<board>/`) sets up its clocks, its I2C bus, a delay and
//! a cycle counter with its HAL, then calls [`run`], which never returns.
//!
//! ## Contract
//! - The model is embedded at build time (`build.rs`: `MODEL=` overrides
//!   the default `models/exported/basicmotions-lstm/int8.bin`) and checked
//!   there: recurrent, six channels per step, a numeric path this build
//!   enables. Model, state and arena are statics (`.bss`), sized exactly by
//!   the build script; nothing is allocated.
//! - The sensor's `init` is retried every second until it succeeds, each
//!   failure logged by name (`I2c(NoAcknowledge(Address))`,
//!   `WrongDevice ...`): a loose wire can be fixed while the board runs.
//! - Then one poll every 100 ms, paced by the cycle counter (the work of a
//!   poll is subtracted from the wait). A decision logs the class name, the
//!   confidence (the softmax probability, dequantized on int8) and the
//!   model's cycles per step (the runtime's share only, timed by
//!   [`sensor::Pipeline::poll_timed`]; not the I2C transfer). A failed poll
//!   logs its error by name and discards the window (see `sensor::pipeline`);
//!   the next decision comes a whole window later.
//!
//! Log lines (defmt, `info` and up):
//! ```text
//! nucleo-f411re: basicmotions-lstm (int8), classes Standing, Running, Walking, Badminton; state 64 B, arena 544 B
//! MPU-6050 ready at 0x68: a decision every 100 samples (10 s at 10 Hz)
//! decision 1: Walking 96% (21754 cycles/step)
//! poll: I2c(NoAcknowledge(Data)); window discarded
//! ```

#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, I2c, NoAcknowledgeSource};
use runtime::{Arena, Model};
use sensor::{Error, Pipeline, PipelineConfig};

mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}
pub use config::{ARENA_BYTES, CLASSES, CLASS_LIST, MODEL_NAME, NUMERIC, STATE_BYTES};

/// The model blob, in flash; the model borrows its weights from it.
pub static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.bin"));

/// Sample period: BasicMotions was recorded at 10 Hz.
pub const PERIOD_US: u32 = 100_000;
/// Wait between two `init` attempts.
const RETRY_MS: u32 = 1_000;

/// A free-running counter of core clock cycles that wraps at 2^32 (DWT
/// CYCCNT on a Cortex-M4; SysTick extended to 32 bits by its exception on a
/// Cortex-M0+), and its rate.
pub struct CycleCounter<F: FnMut() -> u32> {
    /// Reads the counter.
    pub now: F,
    /// Cycles per second (the core clock); at least 1 MHz.
    pub hz: u32,
}

/// Run the classifier forever: `board` names the board in the first log
/// line, `i2c` is the bus with the MPU-6050 at 0x68 (AD0 low), `delay` any
/// blocking delay (it is not used to measure anything).
pub fn run<I, D, F>(board: &'static str, i2c: I, delay: &mut D, mut cycles: CycleCounter<F>) -> !
where
    I: I2c,
    D: DelayNs,
    F: FnMut() -> u32,
{
    // `run` is entered once, so each singleton is created exactly once.
    let (Some(model), Some(state), Some(arena)) = (
        cortex_m::singleton!(: Model<'static> = Model::empty()),
        cortex_m::singleton!(: Arena<STATE_BYTES> = Arena::new()),
        cortex_m::singleton!(: Arena<ARENA_BYTES> = Arena::new()),
    ) else {
        defmt::panic!("activity::run entered twice")
    };
    if let Err(e) = model.load(BLOB) {
        // The build script validated the same bytes: only a corrupted flash gets here.
        defmt::panic!("model {=str}: {}", MODEL_NAME, e);
    }
    let model: &'static Model<'static> = model;
    defmt::info!(
        "{=str}: {=str} ({=str}), classes {=str}; state {=usize} B, arena {=usize} B",
        board,
        MODEL_NAME,
        NUMERIC,
        CLASS_LIST,
        STATE_BYTES,
        ARENA_BYTES
    );

    let config = PipelineConfig::BASIC_MOTIONS;
    let window = config.window_len.get();
    let mut pipeline = Pipeline::new(
        i2c,
        model,
        state.as_mut_bytes(),
        arena.as_mut_bytes(),
        config,
    );
    while let Err(e) = pipeline.init(delay) {
        defmt::error!(
            "MPU-6050 init: {}; retrying in 1 s (check SDA, SCL, 3V3, GND and AD0 low)",
            Named(&e)
        );
        delay.delay_ms(RETRY_MS);
    }
    defmt::info!(
        "MPU-6050 ready at {=u8:#x}: a decision every {=u16} samples ({=u16} s at 10 Hz)",
        config.address,
        window,
        window / 10
    );

    let cycles_per_us = (cycles.hz / 1_000_000).max(1);
    let mut decisions = 0u32;
    loop {
        let start = (cycles.now)();
        match pipeline.poll_timed(&mut cycles.now) {
            Ok(None) => {}
            Ok(Some(decision)) => {
                decisions = decisions.wrapping_add(1);
                let class = CLASSES.get(decision.class()).copied().unwrap_or("?");
                // Rounded to a whole percent; the probability is in 0..=1.
                let percent = (decision.confidence() * 100.0 + 0.5) as u32;
                defmt::info!(
                    "decision {=u32}: {=str} {=u32}% ({=u32} cycles/step)",
                    decisions,
                    class,
                    percent,
                    decision.model_ticks() / u32::from(window)
                );
            }
            Err(e) => defmt::warn!("poll: {}; window discarded", Named(&e)),
        }
        let busy_us = (cycles.now)().wrapping_sub(start) / cycles_per_us;
        delay.delay_us(PERIOD_US.saturating_sub(busy_us));
    }
}

/// A pipeline error, formatted by variant name with its fields (the HAL's
/// own I2C error type need not implement `defmt::Format`: its
/// `embedded_hal` kind is named instead).
struct Named<'e, E>(&'e Error<E>);

impl<E: embedded_hal::i2c::Error> defmt::Format for Named<'_, E> {
    fn format(&self, f: defmt::Formatter) {
        match self.0 {
            Error::I2c(e) => defmt::write!(f, "I2c({=str})", kind_name(e.kind())),
            Error::WrongDevice { found } => defmt::write!(
                f,
                "WrongDevice (WHO_AM_I reads {=u8:#x}; an MPU-6050 reads 0x68)",
                found
            ),
            Error::ShortRead { expected, valid } => defmt::write!(
                f,
                "ShortRead ({=u8} of {=u8} bytes of the burst valid)",
                valid,
                expected
            ),
            Error::ConfigMismatch {
                register,
                expected,
                found,
            } => defmt::write!(
                f,
                "ConfigMismatch (register {=u8:#x} reads back {=u8:#x}, {=u8:#x} was written)",
                register,
                found,
                expected
            ),
            Error::NotInitialized => defmt::write!(f, "NotInitialized"),
            Error::Model(e) => defmt::write!(f, "Model({})", e),
            _ => defmt::write!(f, "unnamed sensor error"),
        }
    }
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address) => "NoAcknowledge(Address)",
        ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data) => "NoAcknowledge(Data)",
        ErrorKind::NoAcknowledge(_) => "NoAcknowledge",
        ErrorKind::Bus => "Bus",
        ErrorKind::ArbitrationLoss => "ArbitrationLoss",
        ErrorKind::Overrun => "Overrun",
        _ => "Other",
    }
}
