//! Faults: a sensor that NACKs, the wrong chip, a short read, a configuration
//! that does not stick, and models or buffers that do not fit. Each gives its
//! named error (no panic), performs exactly the expected transactions, and
//! never yields a decision from a stale or partial window: after a failed
//! read the next decision comes only after a whole window of new samples,
//! and it is the runtime's answer on exactly those samples.

mod support;

use core::num::NonZeroU16;
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::delay::{CheckedDelay, Transaction as DelayTransaction};
use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cTransaction};

use runtime::{Arena, Model};
use sensor::mpu6050::{self, Mpu6050, RawSample};
use sensor::{Error, Gravity, Pipeline, PipelineConfig};
use support::*;

/// Windows of 10 samples here, not 100: a recurrent state forgets where it
/// started (the int8 LSTM's outputs after 100 steps do not depend on its
/// starting state at all), so only a short window shows, bit for bit, a
/// state carried over from samples that should have been dropped.
const WINDOW: usize = 10;
const REPLAY: PipelineConfig = PipelineConfig {
    gravity: Gravity::AsMeasured,
    window_len: NonZeroU16::MIN.saturating_add(WINDOW as u16 - 1),
    ..PipelineConfig::BASIC_MOTIONS
};

type Pipe<'p, 'm> = Pipeline<'p, 'm, I2cMock>;

/// Build a pipeline over a mock with `expectations`, run `f`, then check
/// that every expected transaction and delay happened.
fn with_pipeline<R>(
    model: &Model,
    config: PipelineConfig,
    expectations: &[I2cTransaction],
    delays: &[DelayTransaction],
    f: impl FnOnce(&mut Pipe<'_, '_>, &mut CheckedDelay) -> R,
) -> R {
    let mut state = Arena::<128>::new();
    let mut arena = Arena::<1024>::new();
    let mut delay = CheckedDelay::new(delays);
    let mut pipeline = Pipeline::new(
        I2cMock::new(expectations),
        model,
        state.as_mut_bytes(),
        arena.as_mut_bytes(),
        config,
    );
    let result = f(&mut pipeline, &mut delay);
    pipeline.release().done();
    delay.done();
    result
}

/// The reads of a series' first `n` samples.
fn reads(series: &Series, n: usize) -> Vec<I2cTransaction> {
    series
        .steps
        .iter()
        .take(n)
        .map(|x| sample_read(&counts(x)))
        .collect()
}

/// Poll through one whole window, which must end in the runtime's answer on
/// the first `WINDOW` samples of `series` (played with `reads(series, WINDOW)`).
fn expect_window(pipeline: &mut Pipe<'_, '_>, model: &Model, series: &Series, what: &str) {
    for t in 0..WINDOW - 1 {
        assert_eq!(pipeline.poll().unwrap(), None, "{what}: sample {t}");
    }
    let decision = pipeline
        .poll()
        .unwrap()
        .expect("decision at the window's end");
    let values: Vec<[f32; 6]> = series.steps[..WINDOW]
        .iter()
        .map(|x| physical(&counts(x)))
        .collect();
    assert_same(&decision, &reference(model, &values), what);
}

const NACK_DATA: ErrorKind = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Unknown);
const NACK_ADDRESS: ErrorKind = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);

/// A burst cut after `valid` bytes: the rest reads as the pull-ups' 0xFF.
fn cut_burst(counts: &[i16; 6], valid: usize) -> Vec<u8> {
    let mut bytes = burst(counts);
    bytes[valid..].fill(0xFF);
    bytes
}

#[test]
fn init_performs_the_documented_transactions_at_either_address() {
    let bytes = blob("basicmotions-lstm", "int8.bin");
    let model = Model::from_bytes(&bytes).unwrap();
    let series = &test_series()[0];
    for address in [mpu6050::ADDRESS_AD0_LOW, mpu6050::ADDRESS_AD0_HIGH] {
        let mut expectations = init_transactions_at(address);
        let c = counts(&series.steps[0]);
        expectations.push(I2cTransaction::write_read(address, vec![0x3B], burst(&c)));
        let config = PipelineConfig { address, ..REPLAY };
        with_pipeline(
            &model,
            config,
            &expectations,
            &[DelayTransaction::delay_ms(100)],
            |p, delay| {
                assert!(!p.is_initialized());
                p.init(delay).unwrap();
                assert!(p.is_initialized());
                assert_eq!(p.poll().unwrap(), None);
                assert_eq!(p.samples_in_window(), 1);
            },
        );
    }
    // The bare driver: identity and one sample in units.
    let c = counts(&series.steps[0]);
    let mut i2c = I2cMock::new(&[
        I2cTransaction::write_read(0x68, vec![0x75], vec![0x68]),
        sample_read(&c),
    ]);
    let mut imu = Mpu6050::new(i2c.clone(), 0x68);
    assert_eq!(imu.who_am_i(), Ok(0x68));
    let sample = imu.read().unwrap();
    assert_eq!(
        sample.channels().map(f32::to_bits),
        physical(&c).map(f32::to_bits)
    );
    i2c.done();
}

#[test]
fn nack_at_init_is_an_i2c_error_and_the_sensor_can_come_back() {
    let bytes = blob("basicmotions-lstm", "int8.bin");
    let model = Model::from_bytes(&bytes).unwrap();
    let series = &test_series()[3];
    let mut expectations =
        vec![I2cTransaction::write_read(ADDRESS, vec![0x75], vec![0x00]).with_error(NACK_ADDRESS)];
    expectations.extend(init_transactions());
    expectations.extend(reads(series, WINDOW));
    with_pipeline(
        &model,
        REPLAY,
        &expectations,
        &[DelayTransaction::delay_ms(100)],
        |p, delay| {
            assert_eq!(p.init(delay), Err(Error::I2c(NACK_ADDRESS)));
            // No sample is read from a sensor that was never configured.
            assert_eq!(p.poll(), Err(Error::NotInitialized));
            p.init(delay).unwrap();
            expect_window(p, &model, series, "after a NACK at init");
        },
    );
}

/// A NACK in the middle of a window and on its last sample: the error is
/// returned, the window is dropped, and the next decision is the runtime's
/// on the next window's samples alone (a pipeline that kept the old state, or
/// counted the old samples, answers differently or at the wrong time).
#[test]
fn nack_mid_window_discards_the_window() {
    let all = test_series();
    let (first, second) = (&all[0], &all[12]); // Standing, then another class
    assert_ne!(first.label, second.label);
    for file in ["int8.bin", "f32.bin"] {
        let bytes = blob("basicmotions-lstm", file);
        let model = Model::from_bytes(&bytes).unwrap();
        for fail_at in [5, WINDOW - 1] {
            let mut expectations = init_transactions();
            expectations.extend(reads(first, fail_at));
            let c = counts(&first.steps[fail_at]);
            expectations.push(
                I2cTransaction::write_read(ADDRESS, vec![0x3B], burst(&c)).with_error(NACK_DATA),
            );
            expectations.extend(reads(second, WINDOW));
            with_pipeline(
                &model,
                REPLAY,
                &expectations,
                &[DelayTransaction::delay_ms(100)],
                |p, delay| {
                    p.init(delay).unwrap();
                    for _ in 0..fail_at {
                        assert_eq!(p.poll().unwrap(), None);
                    }
                    assert_eq!(p.samples_in_window(), fail_at as u16);
                    assert_eq!(p.poll(), Err(Error::I2c(NACK_DATA)));
                    assert_eq!(p.samples_in_window(), 0);
                    expect_window(p, &model, second, &format!("{file}: NACK at {fail_at}"));
                },
            );
        }
    }
}

#[test]
fn wrong_who_am_i_is_named_and_nothing_else_is_sent() {
    let bytes = blob("basicmotions-lstm", "int8.bin");
    let model = Model::from_bytes(&bytes).unwrap();
    // An MPU-6500 (0x70), and a bus with nothing on it but pull-ups (0xFF).
    for found in [0x70u8, 0xFF] {
        let expectations = [I2cTransaction::write_read(ADDRESS, vec![0x75], vec![found])];
        with_pipeline(&model, REPLAY, &expectations, &[], |p, delay| {
            assert_eq!(p.init(delay), Err(Error::WrongDevice { found }));
            assert!(!p.is_initialized());
            assert_eq!(p.poll(), Err(Error::NotInitialized));
        });
    }
}

/// A burst whose tail reads 0xFF (the device stopped driving the bus) is a
/// short read; the window is dropped as for a NACK.
#[test]
fn short_read_mid_window_is_named_and_discards_the_window() {
    let all = test_series();
    let (first, second) = (&all[25], &all[5]);
    for file in ["int8.bin", "f32.bin"] {
        let bytes = blob("basicmotions-lstm", file);
        let model = Model::from_bytes(&bytes).unwrap();
        for valid in [0usize, 8, 14] {
            let mut expectations = init_transactions();
            expectations.extend(reads(first, 4));
            let c = counts(&first.steps[4]);
            expectations.push(I2cTransaction::write_read(
                ADDRESS,
                vec![0x3B],
                cut_burst(&c, valid),
            ));
            expectations.extend(reads(second, WINDOW));
            with_pipeline(
                &model,
                REPLAY,
                &expectations,
                &[DelayTransaction::delay_ms(100)],
                |p, delay| {
                    p.init(delay).unwrap();
                    for _ in 0..4 {
                        assert_eq!(p.poll().unwrap(), None);
                    }
                    let err = p.poll().unwrap_err();
                    // Where the 0xFF run starts is where the cut shows; data
                    // bytes that happen to be 0xFF just before it count as cut.
                    let shown = burst(&c)[..valid]
                        .iter()
                        .rev()
                        .take_while(|&&b| b == 0xFF)
                        .count();
                    assert_eq!(
                        err,
                        Error::ShortRead {
                            expected: 15,
                            valid: (valid - shown) as u8
                        }
                    );
                    assert_eq!(p.samples_in_window(), 0);
                    expect_window(p, &model, second, &format!("{file}: cut at {valid}"));
                },
            );
        }
    }
}

/// Bytes that arrive another way (DMA, async) with a count: any slice
/// shorter than the burst is a short read naming how much arrived.
#[test]
fn short_slice_is_a_short_read() {
    let full = burst(&[100, -200, 4096, 7, -8, 9]);
    for n in 0..15 {
        assert_eq!(
            RawSample::from_burst(&full[..n]).map_err(Error::<ErrorKind>::from),
            Err(Error::ShortRead {
                expected: 15,
                valid: n as u8
            })
        );
    }
    let raw = RawSample::from_burst(&full).unwrap();
    assert_eq!(raw.accel, [100, -200, 4096]);
    assert_eq!(raw.gyro, [7, -8, 9]);
    // A non-zero end marker that is not 0xFF: nothing after the cut, valid = 15.
    let mut marked = full.clone();
    marked[14] = 0x01;
    assert_eq!(
        RawSample::from_burst(&marked).map_err(Error::<ErrorKind>::from),
        Err(Error::ShortRead {
            expected: 15,
            valid: 15
        })
    );
}

#[test]
fn configuration_that_does_not_read_back_is_rejected() {
    let bytes = blob("basicmotions-lstm", "int8.bin");
    let model = Model::from_bytes(&bytes).unwrap();
    let mut ranges_ignored = init_transactions();
    ranges_ignored[4] =
        I2cTransaction::write_read(ADDRESS, vec![0x19], vec![0x00, 0x06, 0x00, 0x10]);
    ranges_ignored.truncate(5);
    let mut still_asleep = init_transactions();
    still_asleep[5] = I2cTransaction::write_read(ADDRESS, vec![0x6B], vec![0x41]);
    for (expectations, want) in [
        (
            ranges_ignored,
            Error::ConfigMismatch {
                register: 0x1B,
                expected: 0x18,
                found: 0x00,
            },
        ),
        (
            still_asleep,
            Error::ConfigMismatch {
                register: 0x6B,
                expected: 0x01,
                found: 0x41,
            },
        ),
    ] {
        with_pipeline(
            &model,
            REPLAY,
            &expectations,
            &[DelayTransaction::delay_ms(100)],
            |p, delay| {
                assert_eq!(p.init(delay), Err(want));
                assert_eq!(p.poll(), Err(Error::NotInitialized));
            },
        );
    }
}

/// Models and buffers are checked at `init` before any bus traffic.
#[test]
fn unfit_models_and_buffers_are_rejected_before_any_bus_traffic() {
    let lstm_i8 = blob("basicmotions-lstm", "int8.bin");
    let lstm_f32 = blob("basicmotions-lstm", "f32.bin");
    let digits = blob("digits-mlp", "int8.bin");
    let lstm_i8 = Model::from_bytes(&lstm_i8).unwrap();
    let lstm_f32 = Model::from_bytes(&lstm_f32).unwrap();
    let digits = Model::from_bytes(&digits).unwrap();

    let mut state = Arena::<256>::new();
    let mut arena = Arena::<1024>::new();
    let cases: Vec<(&Model, usize, usize, usize, runtime::Error)> = vec![
        (
            &digits,
            0,
            256,
            1024,
            runtime::Error::WrongInputLength {
                expected: 64,
                given: 6,
            },
        ),
        (
            &lstm_i8,
            0,
            32,
            1024,
            runtime::Error::StateTooSmall {
                needed: 64,
                given: 32,
            },
        ),
        (
            &lstm_i8,
            0,
            256,
            100,
            runtime::Error::ArenaTooSmall {
                needed: 608,
                given: 100,
            },
        ),
        (&lstm_f32, 1, 129, 1024, runtime::Error::ArenaMisaligned),
    ];
    for (model, offset, state_len, arena_len, want) in cases {
        let i2c = I2cMock::new(&[]);
        let mut delay = CheckedDelay::new(&[]);
        let mut p = Pipeline::new(
            i2c,
            model,
            &mut state.as_mut_bytes()[offset..state_len],
            &mut arena.as_mut_bytes()[..arena_len],
            REPLAY,
        );
        assert_eq!(p.init(&mut delay), Err(Error::Model(want)));
        assert_eq!(p.poll(), Err(Error::NotInitialized));
        p.release().done();
        delay.done();
    }
}

#[test]
fn restart_window_starts_over() {
    let bytes = blob("basicmotions-gru", "int8.bin");
    let model = Model::from_bytes(&bytes).unwrap();
    let all = test_series();
    let mut expectations = init_transactions();
    expectations.extend(reads(&all[30], 3));
    expectations.extend(reads(&all[8], WINDOW));
    with_pipeline(
        &model,
        REPLAY,
        &expectations,
        &[DelayTransaction::delay_ms(100)],
        |p, delay| {
            p.init(delay).unwrap();
            for _ in 0..3 {
                assert_eq!(p.poll().unwrap(), None);
            }
            p.restart_window();
            assert_eq!(p.samples_in_window(), 0);
            expect_window(p, &model, &all[8], "after restart_window");
        },
    );
}

#[test]
fn errors_say_what_went_wrong() {
    let text = |e: Error<ErrorKind>| e.to_string();
    assert!(text(Error::I2c(NACK_ADDRESS)).contains("I2C error"));
    assert!(text(Error::WrongDevice { found: 0x70 }).contains("WHO_AM_I reads 0x70"));
    assert!(text(Error::ShortRead {
        expected: 15,
        valid: 8
    })
    .contains("8 of 15 bytes"));
    assert!(text(Error::ConfigMismatch {
        register: 0x1b,
        expected: 0x18,
        found: 0
    })
    .contains("register 0x1b reads back 0x00, 0x18 was written"));
    assert!(text(Error::NotInitialized).contains("init"));
    let model = Error::<ErrorKind>::Model(runtime::Error::Recurrent);
    assert!(text(model).starts_with("model: "));
    assert!(core::error::Error::source(&model).is_some());
    assert!(core::error::Error::source(&Error::<ErrorKind>::NotInitialized).is_none());
}

/// With gravity subtraction on, an error also forgets the gravity estimate:
/// the next window is filtered from a fresh seed, exactly as a pipeline that
/// had just started would filter it.
#[test]
fn an_error_also_forgets_the_gravity_estimate() {
    const G: [f64; 3] = [1.7, -9.5, 1.2];
    let bytes = blob("basicmotions-lstm", "f32.bin");
    let model = Model::from_bytes(&bytes).unwrap();
    let all = test_series();
    let (first, second) = (&all[15], &all[35]);
    let config = PipelineConfig {
        window_len: REPLAY.window_len,
        ..PipelineConfig::BASIC_MOTIONS
    };
    let Gravity::Subtract { samples } = config.gravity else {
        unreachable!()
    };
    let with_g = |s: &Series, n: usize| -> Vec<[i16; 6]> {
        s.steps
            .iter()
            .take(n)
            .map(|x| counts_with_gravity(x, G))
            .collect()
    };
    let mut expectations = init_transactions();
    expectations.extend(with_g(first, 6).iter().map(sample_read));
    expectations.push(
        I2cTransaction::write_read(ADDRESS, vec![0x3B], burst(&with_g(first, 7)[6]))
            .with_error(NACK_DATA),
    );
    expectations.extend(with_g(second, WINDOW).iter().map(sample_read));

    let mut filter = sensor::gravity::GravityFilter::new(samples);
    let expected_inputs: Vec<[f32; 6]> = with_g(second, WINDOW)
        .iter()
        .map(|c| {
            let x = physical(c);
            let [ax, ay, az] = filter.apply([x[0], x[1], x[2]]);
            [ax, ay, az, x[3], x[4], x[5]]
        })
        .collect();
    let expected = reference(&model, &expected_inputs);

    with_pipeline(
        &model,
        config,
        &expectations,
        &[DelayTransaction::delay_ms(100)],
        |p, delay| {
            p.init(delay).unwrap();
            for _ in 0..6 {
                assert_eq!(p.poll().unwrap(), None);
            }
            assert_eq!(p.poll(), Err(Error::I2c(NACK_DATA)));
            for _ in 0..WINDOW - 1 {
                assert_eq!(p.poll().unwrap(), None);
            }
            let decision = p.poll().unwrap().unwrap();
            assert_same(&decision, &expected, "gravity after a NACK");
        },
    );
}
