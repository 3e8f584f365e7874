//! Every BasicMotions test series played to the pipeline as the I2C
//! transactions an MPU-6050 would produce (counts from the dataset's values
//! at ±8 g / ±2000 °/s, rounded and saturated), through one pipeline and one
//! `init`, back to back. Each window's decision must be the runtime's own
//! decision on the physical values those counts convert back to, bit for
//! bit (class, every output byte or float bit, confidence), and every mock
//! must have seen exactly the expected transactions.

mod support;

use embedded_hal_mock::eh1::i2c::Mock as I2cMock;
use runtime::{Arena, Model};
use sensor::gravity::GravityFilter;
use sensor::mpu6050::{self, RawSample};
use sensor::{Gravity, ImuSample, Pipeline, PipelineConfig};
use support::*;

const REPLAY: PipelineConfig = PipelineConfig {
    gravity: Gravity::AsMeasured, // the dataset is already gravity-free
    ..PipelineConfig::BASIC_MOTIONS
};

/// Play every test series (as `counts_of` turns each step into counts) and
/// compare each decision with `expected_of` applied to the series' physical
/// values. Returns (pipeline correct, runtime on the exact dataset values correct).
fn replay(
    model_dir: &str,
    file: &str,
    config: PipelineConfig,
    counts_of: impl Fn(&[f32; 6]) -> [i16; 6],
    expected_of: impl Fn(&Model, &[[f32; 6]]) -> Reference,
) -> (usize, usize) {
    let bytes = blob(model_dir, file);
    let model = Model::from_bytes(&bytes).unwrap();
    let series = test_series();

    let mut expectations = init_transactions();
    let mut expected = Vec::new();
    for s in &series {
        let counts: Vec<[i16; 6]> = s.steps.iter().map(&counts_of).collect();
        expectations.extend(counts.iter().map(sample_read));
        let values: Vec<[f32; 6]> = counts.iter().map(physical).collect();
        expected.push(expected_of(&model, &values));
    }

    let mut state = Arena::<128>::new();
    let mut arena = Arena::<1024>::new();
    let mut delay = init_delay();
    let mut pipeline = Pipeline::new(
        I2cMock::new(&expectations),
        &model,
        state.as_mut_bytes(),
        arena.as_mut_bytes(),
        config,
    );
    pipeline.init(&mut delay).unwrap();

    let mut correct = 0;
    for (i, (s, expected)) in series.iter().zip(&expected).enumerate() {
        for t in 0..99 {
            assert_eq!(pipeline.poll().unwrap(), None, "series {i} sample {t}");
            assert_eq!(pipeline.samples_in_window(), t + 1);
        }
        let decision = pipeline
            .poll()
            .unwrap()
            .expect("a decision every 100 samples");
        assert_same(
            &decision,
            expected,
            &format!("{model_dir}/{file} series {i}"),
        );
        assert_eq!(pipeline.samples_in_window(), 0);
        correct += usize::from(decision.class() == s.label);
    }
    pipeline.release().done();
    delay.done();

    // The sensor's rounding to counts, against the dataset's exact values.
    let exact = series
        .iter()
        .filter(|s| reference(&model, &s.steps).class == s.label)
        .count();
    (correct, exact)
}

fn replay_as_measured(model_dir: &str, file: &str) {
    let (correct, exact) = replay(model_dir, file, REPLAY, counts, reference);
    println!(
        "{model_dir}/{file}: pipeline {correct}/40 correct (runtime on the dataset's exact values: {exact}/40)"
    );
}

#[test]
fn int8_lstm_decisions_equal_the_runtime_on_every_test_series() {
    replay_as_measured("basicmotions-lstm", "int8.bin");
}

#[test]
fn f32_lstm_decisions_equal_the_runtime_on_every_test_series() {
    replay_as_measured("basicmotions-lstm", "f32.bin");
}

#[test]
fn int8_gru_decisions_equal_the_runtime_on_every_test_series() {
    replay_as_measured("basicmotions-gru", "int8.bin");
}

#[test]
fn f32_gru_decisions_equal_the_runtime_on_every_test_series() {
    replay_as_measured("basicmotions-gru", "f32.bin");
}

/// With gravity subtraction on, the pipeline must feed the model exactly
/// the documented arithmetic (`gravity` module docs), written out again
/// here: the series with 1 g added on z, filtered per series (the estimate
/// is kept across windows, so the reference carries it too).
#[test]
fn gravity_subtraction_feeds_the_documented_arithmetic() {
    const G: [f64; 3] = [0.0, 0.0, 9.806_65];
    let samples = match PipelineConfig::BASIC_MOTIONS.gravity {
        Gravity::Subtract { samples } => samples,
        Gravity::AsMeasured => unreachable!(),
    };
    let k = 1.0 / f32::from(samples.get());
    let estimate = std::cell::Cell::new(None::<[f32; 3]>);
    let filtered_reference = |model: &Model, values: &[[f32; 6]]| {
        let filtered: Vec<[f32; 6]> = values
            .iter()
            .map(|x| {
                let e = match estimate.get() {
                    None => [x[0], x[1], x[2]],
                    Some(e) => std::array::from_fn(|i| e[i] + k * (x[i] - e[i])),
                };
                estimate.set(Some(e));
                [x[0] - e[0], x[1] - e[1], x[2] - e[2], x[3], x[4], x[5]]
            })
            .collect();
        reference(model, &filtered)
    };
    for file in ["int8.bin", "f32.bin"] {
        estimate.set(None);
        let (correct, _) = replay(
            "basicmotions-lstm",
            file,
            PipelineConfig::BASIC_MOTIONS,
            |s| counts_with_gravity(s, G),
            filtered_reference,
        );
        // Not a bar, a figure: what the simple filter costs on this data.
        println!(
            "basicmotions-lstm/{file} with 1 g on z, gravity subtracted: {correct}/40 correct"
        );
    }
}

/// What gravity does when it is not removed (figures for the docs; the
/// assertion is only that the unfiltered run is the runtime's answer).
#[test]
fn gravity_left_in_is_reported() {
    const G: [f64; 3] = [0.0, 0.0, 9.806_65];
    for file in ["int8.bin", "f32.bin"] {
        let (correct, _) = replay(
            "basicmotions-lstm",
            file,
            REPLAY,
            |s| counts_with_gravity(s, G),
            reference,
        );
        println!("basicmotions-lstm/{file} with 1 g on z left in: {correct}/40 correct");
    }
}

/// Counts convert like the datasheet says, and exactly like the tests'
/// own conversion (which the replay's bit-for-bit comparison relies on).
#[test]
fn counts_convert_to_datasheet_units() {
    assert_eq!(
        mpu6050::ACCEL_MPS2_PER_COUNT.to_bits(),
        (ACCEL_SCALE as f32).to_bits()
    );
    assert_eq!(
        mpu6050::GYRO_RAD_S_PER_COUNT.to_bits(),
        (GYRO_SCALE as f32).to_bits()
    );
    // Full scale: 32767 counts is just under 8 g and just under 2000 °/s
    // (nominal 16.4 LSB/(°/s) makes it 1998 °/s); tolerance 1e-6 relative.
    let full = ImuSample::from_raw(&RawSample {
        accel: [i16::MAX, i16::MIN, 4096],
        temperature: 0,
        gyro: [i16::MAX, i16::MIN, 164],
    });
    let close = |got: f32, want: f64| {
        assert!(
            (f64::from(got) - want).abs() <= 1e-6 * want.abs(),
            "{got} vs {want}"
        );
    };
    close(full.accel_mps2[0], 32767.0 / 4096.0 * 9.806_65);
    close(full.accel_mps2[1], -8.0 * 9.806_65);
    close(full.accel_mps2[2], 9.806_65);
    close(
        full.gyro_rad_s[0],
        32767.0 / 16.4 * std::f64::consts::PI / 180.0,
    );
    close(
        full.gyro_rad_s[1],
        -32768.0 / 16.4 * std::f64::consts::PI / 180.0,
    );
    close(full.gyro_rad_s[2], 10.0_f64.to_radians());

    // Every test step: the driver's conversion is the tests' bit for bit,
    // and the round trip through counts is within half a count (plus 4e-6,
    // two f32 ulps at 30, for the float rounding of value and result).
    for s in test_series() {
        for step in &s.steps {
            let c = counts(step);
            let raw = RawSample::from_burst(&burst(&c)).unwrap();
            assert_eq!(raw.accel, [c[0], c[1], c[2]]);
            assert_eq!(raw.gyro, [c[3], c[4], c[5]]);
            assert_eq!(raw.temperature, TEMPERATURE_COUNTS);
            let ours = ImuSample::from_raw(&raw).channels();
            let theirs = physical(&c);
            assert_eq!(ours.map(f32::to_bits), theirs.map(f32::to_bits));
            for (channel, (&x, &y)) in step.iter().zip(&ours).enumerate() {
                let half = 0.5 * if channel < 3 { ACCEL_SCALE } else { GYRO_SCALE };
                assert!(
                    (f64::from(x) - f64::from(y)).abs() <= half + 4e-6,
                    "{x} -> {y}"
                );
            }
        }
    }
}

/// The decoder is the inverse of the encoder the simulators use.
#[test]
fn burst_round_trip() {
    let raw = RawSample {
        accel: [1, -2, i16::MAX],
        temperature: TEMPERATURE_COUNTS,
        gyro: [i16::MIN, 0, -1],
    };
    assert_eq!(
        raw.to_burst().to_vec(),
        burst(&[1, -2, i16::MAX, i16::MIN, 0, -1])
    );
    assert_eq!(RawSample::from_burst(&raw.to_burst()), Ok(raw));
    // The filter used by the pipeline is the public one.
    let mut f = GravityFilter::new(core::num::NonZeroU16::new(6).unwrap());
    assert_eq!(f.apply([1.0, 2.0, 3.0]), [0.0; 3]);
}

/// A decision really comes from the sensor's data: a pipeline fed one
/// series' transactions answers that series, not a constant.
#[test]
fn decisions_follow_the_data() {
    let bytes = blob("basicmotions-lstm", "int8.bin");
    let model = Model::from_bytes(&bytes).unwrap();
    let series = test_series();
    let mut seen = std::collections::BTreeSet::new();
    for s in series.iter().step_by(5) {
        let mut expectations = init_transactions();
        expectations.extend(s.steps.iter().map(|x| sample_read(&counts(x))));
        let mut state = Arena::<64>::new();
        let mut arena = Arena::<1024>::new();
        let mut pipeline = Pipeline::new(
            I2cMock::new(&expectations),
            &model,
            state.as_mut_bytes(),
            arena.as_mut_bytes(),
            REPLAY,
        );
        let mut delay = init_delay();
        pipeline.init(&mut delay).unwrap();
        let decision = (0..100).find_map(|_| pipeline.poll().unwrap()).unwrap();
        seen.insert(decision.class());
        pipeline.release().done();
        delay.done();
    }
    assert_eq!(seen.len(), 4, "every class appears: {seen:?}");
}
