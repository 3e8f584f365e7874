//! `Pipeline::poll_timed`: the counter is read around the runtime only (never
//! around a bus read, never after a failed read), a decision carries its
//! window's total, the answer is the same as `poll`'s, and a discarded
//! window's ticks do not leak into the next decision.

mod support;

use core::cell::Cell;
use core::num::NonZeroU16;

use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cTransaction};
use runtime::{Arena, Model};
use sensor::{Error, Gravity, Pipeline, PipelineConfig};
use support::*;

const WINDOW: usize = 10;
const CONFIG: PipelineConfig = PipelineConfig {
    gravity: Gravity::AsMeasured,
    window_len: NonZeroU16::MIN.saturating_add(WINDOW as u16 - 1),
    ..PipelineConfig::BASIC_MOTIONS
};
/// Ticks the fake counter advances per read.
const STRIDE: u32 = 7;

#[test]
fn a_decision_carries_the_runtime_ticks_of_its_window_only() {
    let bytes = blob("basicmotions-lstm", "int8.bin");
    let model = Model::from_bytes(&bytes).unwrap();
    let all = test_series();
    let series = &all[5];
    let reads = |n: usize| -> Vec<I2cTransaction> {
        series.steps[..n]
            .iter()
            .map(|x| sample_read(&counts(x)))
            .collect()
    };
    let mut expectations = init_transactions();
    expectations.extend(reads(3));
    let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Unknown);
    expectations
        .push(I2cTransaction::write_read(ADDRESS, vec![0x3B], vec![0; 15]).with_error(nack));
    expectations.extend(reads(WINDOW));

    let mut state = Arena::<128>::new();
    let mut arena = Arena::<1024>::new();
    let mut delay = init_delay();
    let mut pipeline = Pipeline::new(
        I2cMock::new(&expectations),
        &model,
        state.as_mut_bytes(),
        arena.as_mut_bytes(),
        CONFIG,
    );
    pipeline.init(&mut delay).unwrap();
    // Starts near the top so the total must wrap correctly.
    let counter = Cell::new(u32::MAX - 20);
    let reads_of_counter = Cell::new(0u32);
    let mut now = || {
        reads_of_counter.set(reads_of_counter.get() + 1);
        counter.set(counter.get().wrapping_add(STRIDE));
        counter.get()
    };
    for _ in 0..3 {
        assert_eq!(pipeline.poll_timed(&mut now).unwrap(), None);
    }
    assert_eq!(reads_of_counter.get(), 6, "two reads per sample");
    assert_eq!(
        pipeline.poll_timed(&mut now),
        Err(Error::I2c(nack)),
        "the NACK discards the window"
    );
    assert_eq!(reads_of_counter.get(), 6, "a failed bus read is not timed");
    for _ in 0..WINDOW - 1 {
        assert_eq!(pipeline.poll_timed(&mut now).unwrap(), None);
    }
    let decision = pipeline.poll_timed(&mut now).unwrap().unwrap();
    assert_eq!(
        decision.model_ticks(),
        STRIDE * WINDOW as u32,
        "one stride per sample of this window, none of the discarded one"
    );
    let values: Vec<[f32; 6]> = series.steps[..WINDOW]
        .iter()
        .map(|x| physical(&counts(x)))
        .collect();
    assert_same(&decision, &reference(&model, &values), "timed window");
    pipeline.release().done();
    delay.done();
}

#[test]
fn poll_reports_no_ticks() {
    let bytes = blob("basicmotions-lstm", "int8.bin");
    let model = Model::from_bytes(&bytes).unwrap();
    let all = test_series();
    let mut expectations = init_transactions();
    expectations.extend(
        all[0].steps[..WINDOW]
            .iter()
            .map(|x| sample_read(&counts(x))),
    );
    let mut state = Arena::<128>::new();
    let mut arena = Arena::<1024>::new();
    let mut delay = init_delay();
    let mut pipeline = Pipeline::new(
        I2cMock::new(&expectations),
        &model,
        state.as_mut_bytes(),
        arena.as_mut_bytes(),
        CONFIG,
    );
    pipeline.init(&mut delay).unwrap();
    let mut last = None;
    for _ in 0..WINDOW {
        last = pipeline.poll().unwrap();
    }
    assert_eq!(last.map(|d| d.model_ticks()), Some(0));
    pipeline.release().done();
    delay.done();
}
