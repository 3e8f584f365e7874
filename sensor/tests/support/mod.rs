//! Shared by the integration tests: the BasicMotions test split, the blobs,
//! the sensor's counts and I2C transactions worked out from the datasheet
//! (independently of the crate's own constants), and the runtime's own
//! decisions as the reference.
#![allow(dead_code)] // each test file uses part of it

use std::path::PathBuf;

use embedded_hal_mock::eh1::delay::{CheckedDelay, Transaction as DelayTransaction};
use embedded_hal_mock::eh1::i2c::Transaction as I2cTransaction;
use runtime::{Arena, Model, Numeric};

/// The MPU-6050's address with AD0 low.
pub const ADDRESS: u8 = 0x68;

/// m/s² per count at ±8 g: datasheet 4096 LSB/g, standard gravity.
pub const ACCEL_SCALE: f64 = 9.806_65 / 4096.0;
/// rad/s per count at ±2000 °/s: datasheet 16.4 LSB/(°/s).
pub const GYRO_SCALE: f64 = std::f64::consts::PI / 180.0 / 16.4;
/// A temperature reading to put in the bursts (about 25 °C).
pub const TEMPERATURE_COUNTS: i16 = -3920;

/// One labelled series, time-major: `steps[t]` is accel x, y, z, gyro x, y, z.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: usize,
    pub steps: Vec<[f32; 6]>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Parse a `.ts` file: `@` header lines (the class names from
/// `@classLabel true ...`), then one series per line, channels separated by
/// `:`, values by `,`, the label after the last `:`.
pub fn parse_ts(text: &str) -> Vec<Series> {
    let mut classes: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut in_data = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('@') {
            let mut words = header.split_whitespace();
            match words.next().map(str::to_ascii_lowercase).as_deref() {
                Some("classlabel") => {
                    assert_eq!(words.next(), Some("true"));
                    classes = words.map(String::from).collect();
                }
                Some("data") => in_data = true,
                _ => {}
            }
            continue;
        }
        assert!(in_data, "data line before @data: {line:.40}");
        let mut parts: Vec<&str> = line.split(':').collect();
        let label = parts.pop().unwrap().trim();
        let label = classes
            .iter()
            .position(|c| c == label)
            .unwrap_or_else(|| panic!("unknown label {label}"));
        assert_eq!(parts.len(), 6, "BasicMotions has 6 channels");
        let channels: Vec<Vec<f32>> = parts
            .iter()
            .map(|c| c.split(',').map(|v| v.trim().parse().unwrap()).collect())
            .collect();
        let len = channels[0].len();
        assert!(channels.iter().all(|c| c.len() == len));
        let steps = (0..len)
            .map(|t| std::array::from_fn(|c| channels[c][t]))
            .collect();
        out.push(Series { label, steps });
    }
    out
}

/// The 40 series of `BasicMotions_TEST.ts`.
pub fn test_series() -> Vec<Series> {
    let path = repo().join("models/datasets/basic-motions/BasicMotions_TEST.ts");
    let series = parse_ts(&std::fs::read_to_string(path).unwrap());
    assert_eq!(series.len(), 40);
    assert!(series.iter().all(|s| s.steps.len() == 100));
    series
}

/// `models/exported/<model>/<file>`.
pub fn blob(model: &str, file: &str) -> Vec<u8> {
    std::fs::read(repo().join("models/exported").join(model).join(file)).unwrap()
}

fn saturate(x: f64) -> i16 {
    x.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
}

/// Sensor counts for one dataset step: accel, then gyro, rounded and saturated.
pub fn counts(step: &[f32; 6]) -> [i16; 6] {
    std::array::from_fn(|c| {
        let scale = if c < 3 { ACCEL_SCALE } else { GYRO_SCALE };
        saturate(f64::from(step[c]) / scale)
    })
}

/// Counts plus a constant gravity vector (m/s²) on the accelerometer axes.
pub fn counts_with_gravity(step: &[f32; 6], gravity: [f64; 3]) -> [i16; 6] {
    std::array::from_fn(|c| {
        if c < 3 {
            saturate((f64::from(step[c]) + gravity[c]) / ACCEL_SCALE)
        } else {
            saturate(f64::from(step[c]) / GYRO_SCALE)
        }
    })
}

/// What counts convert back to: one f32 multiplication by the datasheet
/// scale rounded to f32 once.
pub fn physical(counts: &[i16; 6]) -> [f32; 6] {
    std::array::from_fn(|c| {
        let scale = if c < 3 { ACCEL_SCALE } else { GYRO_SCALE } as f32;
        f32::from(counts[c]) * scale
    })
}

/// The 15 bytes an MPU-6050 returns from 0x3B: accel x, y, z, temperature,
/// gyro x, y, z (big-endian), then EXT_SENS_DATA_00 = 0x00.
pub fn burst(counts: &[i16; 6]) -> Vec<u8> {
    let words = [
        counts[0],
        counts[1],
        counts[2],
        TEMPERATURE_COUNTS,
        counts[3],
        counts[4],
        counts[5],
    ];
    let mut out: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    out.push(0x00);
    out
}

/// The sample read: one write-read of 15 bytes from ACCEL_XOUT_H.
pub fn sample_read(counts: &[i16; 6]) -> I2cTransaction {
    I2cTransaction::write_read(ADDRESS, vec![0x3B], burst(counts))
}

/// `init`'s transactions at `address`, per the register map.
pub fn init_transactions_at(address: u8) -> Vec<I2cTransaction> {
    vec![
        I2cTransaction::write_read(address, vec![0x75], vec![0x68]),
        I2cTransaction::write(address, vec![0x6B, 0x80]),
        I2cTransaction::write(address, vec![0x6B, 0x01]),
        I2cTransaction::write(address, vec![0x19, 0x00, 0x06, 0x18, 0x10]),
        I2cTransaction::write_read(address, vec![0x19], vec![0x00, 0x06, 0x18, 0x10]),
        I2cTransaction::write_read(address, vec![0x6B], vec![0x01]),
    ]
}

pub fn init_transactions() -> Vec<I2cTransaction> {
    init_transactions_at(ADDRESS)
}

/// The delay `init` must make: 100 ms after the reset.
pub fn init_delay() -> CheckedDelay {
    CheckedDelay::new(&[DelayTransaction::delay_ms(100)])
}

/// The runtime's own answer on a series of physical values.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub class: usize,
    pub confidence: f32,
    pub scores_i8: Option<Vec<i8>>,
    pub scores_f32: Option<Vec<f32>>,
}

/// Run `model` directly (reset, one step per sample, finish), the int8 path
/// through `quantize_input`, the f32 path on raw values.
pub fn reference(model: &Model, steps: &[[f32; 6]]) -> Reference {
    let mut state = Arena::<512>::new();
    let mut arena = Arena::<4096>::new();
    let (state, arena) = (state.as_mut_bytes(), arena.as_mut_bytes());
    model.reset(state).unwrap();
    match model.numeric() {
        Numeric::Int8 => {
            for x in steps {
                let mut q = [0i8; 6];
                model.quantize_input(x, &mut q).unwrap();
                model.step_i8(&q, state, arena).unwrap();
            }
            let scores = model.finish_i8(state, arena).unwrap().to_vec();
            let class = runtime::argmax(&scores);
            let mut real = vec![0.0; scores.len()];
            model.dequantize_output(&scores, &mut real).unwrap();
            Reference {
                class,
                confidence: real[class],
                scores_i8: Some(scores),
                scores_f32: None,
            }
        }
        Numeric::F32 => {
            for x in steps {
                model.step_f32(x, state, arena).unwrap();
            }
            let scores = model.finish_f32(state, arena).unwrap().to_vec();
            let class = runtime::argmax(&scores);
            Reference {
                class,
                confidence: scores[class],
                scores_i8: None,
                scores_f32: Some(scores),
            }
        }
    }
}

/// Assert a pipeline decision is the reference, bit for bit.
pub fn assert_same(decision: &sensor::Decision, expected: &Reference, what: &str) {
    assert_eq!(decision.class(), expected.class, "{what}: class");
    assert_eq!(
        decision.confidence().to_bits(),
        expected.confidence.to_bits(),
        "{what}: confidence {} vs {}",
        decision.confidence(),
        expected.confidence
    );
    assert_eq!(
        decision.scores_i8().map(<[i8]>::to_vec),
        expected.scores_i8,
        "{what}: int8 scores"
    );
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        decision.scores_f32().map(bits),
        expected.scores_f32.as_deref().map(bits),
        "{what}: f32 scores"
    );
}
