//! The input normalization every blob carries: `x' = (x - offset) * scale`
//! per input value, applied by the runtime to raw input (see
//! `runtime::format`), and the ways of fitting it.
//!
//! ## Contract
//! - Every fit sees training data only, so the test data stays unseen.
//! - Statistics are accumulated in f64 (f32 sums over thousands of rows lose
//!   digits): offset = mean, scale = 1 / population standard deviation; a
//!   constant input (or no data) gets scale 1, so it maps to 0 instead of
//!   dividing by zero.
//! - [`Normalization::apply`] is the runtime's formula in its operation
//!   order, so host and chip see the same normalized inputs, bit for bit.

use serde::{Deserialize, Serialize};

use super::sequences::Sequences;
use super::table::Dataset;

/// Per-input affine normalization, `x' = (x - offset) * scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Per-input offset (the training mean).
    pub offset: Vec<f32>,
    /// Per-input scale (1 / training standard deviation, or 1).
    pub scale: Vec<f32>,
}

impl Normalization {
    /// No change to `width` inputs (offset 0, scale 1).
    pub fn identity(width: usize) -> Normalization {
        Normalization {
            offset: vec![0.0; width],
            scale: vec![1.0; width],
        }
    }

    /// Each feature of the rows on its own statistics.
    pub fn per_feature(train: &Dataset) -> Normalization {
        fit((0..train.len()).map(|i| train.row(i)), train.feature_count)
    }

    /// Each channel of the sequences on its own statistics, over every time
    /// step of every sequence (a step is one input of a recurrent model).
    pub fn per_channel(train: &Sequences) -> Normalization {
        let c = train.channels;
        fit(train.series.iter().flat_map(|s| s.chunks_exact(c)), c)
    }

    /// Each channel of channels-last rows (`positions x channels` values,
    /// channel fastest: a feature map) on its own statistics, over every
    /// position of every row; the same at every position.
    pub fn per_map_channel(rows: &[f32], channels: usize, positions: usize) -> Normalization {
        fit(rows.chunks_exact(channels.max(1)), channels).repeated(positions)
    }

    /// One offset and scale for all `width` inputs, fitted on every value of
    /// `values`: inputs that are all one signal (the rows of an image, the
    /// points of a window) share them.
    pub fn global(values: &[f32], width: usize) -> Normalization {
        fit(values.chunks_exact(1), 1).repeated(width)
    }

    /// A value to its bin coordinate, for an embedding of `vocab` bins: the
    /// range of `values` widened by a tenth on each side, spread over
    /// `0..vocab - 1`, the same for all `width` inputs.
    pub fn bins(values: &[f32], vocab: usize, width: usize) -> Normalization {
        let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let margin = 0.1 * (hi - lo).max(1e-6);
        let scale = (vocab - 1) as f32 / (hi - lo + 2.0 * margin);
        Normalization {
            offset: vec![lo - margin; width],
            scale: vec![scale; width],
        }
    }

    /// This normalization repeated `times` over (a per-channel one over
    /// every time step of a fixed-length input).
    pub fn repeated(&self, times: usize) -> Normalization {
        Normalization {
            offset: self.offset.repeat(times),
            scale: self.scale.repeat(times),
        }
    }

    /// Number of inputs this normalization expects.
    pub fn feature_count(&self) -> usize {
        self.offset.len()
    }

    /// Normalize one row into `out`: `(x - offset) * scale` in f32, in exactly
    /// the runtime's operation order, so host and chip see the same inputs.
    /// Panics if `row` or `out` is not `feature_count()` long (a caller bug).
    pub fn apply(&self, row: &[f32], out: &mut [f32]) {
        assert_eq!(
            row.len(),
            self.offset.len(),
            "row width does not match the normalization"
        );
        assert_eq!(
            out.len(),
            self.offset.len(),
            "output width does not match the normalization"
        );
        for (((dst, &x), &offset), &scale) in
            out.iter_mut().zip(row).zip(&self.offset).zip(&self.scale)
        {
            *dst = (x - offset) * scale;
        }
    }

    /// Consecutive rows of `feature_count()` raw values, normalized (a
    /// trailing partial row is dropped).
    pub fn rows(&self, raw: &[f32]) -> Vec<f32> {
        let width = self.feature_count().max(1);
        let mut out = vec![0.0; raw.len() / width * width];
        for (row, dst) in raw.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            self.apply(row, dst);
        }
        out
    }
}

/// Mean and 1 / population standard deviation of each of `width` columns
/// over `rows`, in f64; see the module docs.
fn fit<'a>(rows: impl Iterator<Item = &'a [f32]> + Clone, width: usize) -> Normalization {
    let mut count = 0usize;
    let mut mean = vec![0.0f64; width];
    for row in rows.clone() {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += f64::from(x);
        }
        count += 1;
    }
    if count > 0 {
        mean.iter_mut().for_each(|m| *m /= count as f64);
    }
    let mut variance = vec![0.0f64; width];
    for row in rows {
        for ((v, &m), &x) in variance.iter_mut().zip(&mean).zip(row) {
            let d = f64::from(x) - m;
            *v += d * d;
        }
    }
    let scale = variance
        .iter()
        .map(|&v| {
            let std = if count > 0 {
                (v / count as f64).sqrt()
            } else {
                0.0
            };
            let scale = (1.0 / std) as f32;
            if std > 0.0 && scale.is_finite() {
                scale
            } else {
                1.0
            }
        })
        .collect();
    Normalization {
        offset: mean.iter().map(|&m| m as f32).collect(),
        scale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::table::{load_csv, split_stratified, CsvOptions};
    use std::path::Path;

    #[test]
    fn per_feature_uses_train_statistics_only() {
        let train = Dataset {
            features: vec![1.0, 5.0, 3.0, 5.0],
            labels: vec![0, 1],
            feature_count: 2,
            class_names: vec!["a".into(), "b".into()],
        };
        let norm = Normalization::per_feature(&train);
        assert_eq!(norm.offset, [2.0, 5.0]);
        // std of [1, 3] is 1; the constant feature keeps scale 1.
        assert_eq!(norm.scale, [1.0, 1.0]);

        let mut out = [0.0; 2];
        norm.apply(&[100.0, 7.0], &mut out);
        assert_eq!(out, [98.0, 2.0]);

        // A test row is transformed with the train statistics, never refitted.
        assert_eq!(norm.rows(&[100.0, 5.0]), [98.0, 0.0]);
    }

    #[test]
    fn per_feature_matches_runtime_formula_bit_for_bit() {
        let data = load_csv(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/datasets/iris/iris.csv"),
            &CsvOptions::default(),
        )
        .unwrap();
        let (train, test) = split_stratified(&data, 0.3, 3);
        let norm = Normalization::per_feature(&train);
        let normalized = norm.rows(&test.features);
        for (i, &x) in test.features.iter().enumerate() {
            let f = i % test.feature_count;
            let expected = (x - norm.offset[f]) * norm.scale[f];
            assert_eq!(normalized[i].to_bits(), expected.to_bits());
        }
        // Train rows come out with mean ~0 and std ~1.
        let train_normalized = norm.rows(&train.features);
        for f in 0..train.feature_count {
            let column: Vec<f64> = train_normalized
                .iter()
                .skip(f)
                .step_by(train.feature_count)
                .map(|&v| f64::from(v))
                .collect();
            let mean = column.iter().sum::<f64>() / column.len() as f64;
            let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / column.len() as f64;
            assert!(mean.abs() < 1e-5, "mean {mean}");
            assert!((var - 1.0).abs() < 1e-4, "var {var}");
        }
    }

    #[test]
    fn per_channel_and_global_fits() {
        let set = Sequences {
            series: vec![vec![1.0, 10.0, 3.0, 10.0], vec![2.0, 10.0]],
            labels: vec![0, 0],
            channels: 2,
            class_names: vec!["a".into()],
        };
        let norm = Normalization::per_channel(&set);
        assert_eq!(norm.offset, [2.0, 10.0]);
        assert_eq!(norm.scale[1], 1.0, "a constant channel keeps scale 1");
        assert!((norm.scale[0] - (1.5f64).sqrt() as f32).abs() < 1e-6);

        let global = Normalization::global(&[1.0, 3.0, 1.0, 3.0], 3);
        assert_eq!(global.offset, [2.0; 3]);
        assert_eq!(global.scale, [1.0; 3]);
        assert_eq!(Normalization::global(&[4.0; 5], 2).scale, [1.0; 2]);
    }
}
