//! Anomaly detectors on windows of a series: the windows, the fit (PCA or
//! autoencoder reconstruction error, or an isolation forest), the
//! threshold, and the blobs.
//!
//! The windows share one normalization (they are one signal). The threshold
//! is a quantile of the runtime's own scores of the training windows, so the
//! chip's decision uses exactly the scores it computes.

use anyhow::{bail, Result};

use super::iforest::{self, IsolationForest};
use super::reconstruct::{self, Reconstructor};
use super::spec::{DetectorSpec, Fit};
use crate::blob::{Blob, Layer};
use crate::dataset::series::windows;
use crate::dataset::{self, Normalization, SeriesSpec};
use crate::runner::run_rows;

/// Blob of a reconstruction model: `save 0, layers, squared-error 0`, then a
/// threshold when given.
pub fn reconstruction_blob(r: &Reconstructor, threshold: Option<f32>) -> Result<Blob> {
    let mut layers = vec![Layer::SaveSkip(0)];
    layers.extend(r.mlp.f32_layers()?);
    layers.push(Layer::SquaredErrorF32 { slot: 0 });
    layers.extend(threshold.map(|value| Layer::ThresholdF32 { value }));
    Ok(Blob::f32(
        r.mlp.normalization.clone(),
        if threshold.is_some() { 2 } else { 1 },
        layers,
    ))
}

/// Blob of an isolation forest (raw inputs), with a threshold when given.
pub fn forest_blob(f: &IsolationForest, threshold: Option<f32>) -> Result<Blob> {
    let [roots, nodes] = f.flat_arrays()?;
    let mut layers = vec![Layer::IsolationForestF32 {
        inputs: f.inputs as u32,
        sample_size: f.sample_size as u32,
        roots,
        nodes,
    }];
    layers.extend(threshold.map(|value| Layer::ThresholdF32 { value }));
    Ok(Blob::f32(
        Normalization::identity(f.inputs),
        if threshold.is_some() { 2 } else { 1 },
        layers,
    ))
}

/// The `q` quantile (0..=1, nearest rank) of `values`.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// The trainer's own f64 score of a window: the reference for runtime parity.
#[derive(Debug, Clone)]
pub enum Reference {
    /// Reconstruction error (PCA, autoencoder).
    Reconstruction(Reconstructor),
    /// Isolation-forest score from a direct walk of the fitted trees.
    Forest(IsolationForest),
}

impl Reference {
    /// The score of every window of `rows` (`window` values each).
    pub fn scores(&self, rows: &[f32]) -> Result<Vec<f64>> {
        match self {
            Reference::Reconstruction(r) => r.errors(rows),
            Reference::Forest(f) => Ok(rows.chunks_exact(f.inputs).map(|x| f.score(x)).collect()),
        }
    }
}

/// A detector fitted on the training windows.
#[derive(Debug, Clone)]
pub struct Detector {
    /// The blob, its threshold included.
    pub blob: Blob,
    /// The threshold: a quantile of the runtime's scores of the training windows.
    pub threshold: f32,
    /// The trainer's reference scores.
    pub reference: Reference,
}

/// Fit the detector on training windows (`window` points each, raw): the
/// score, then the threshold from the runtime's own scores of the
/// training windows.
pub fn fit(d: &DetectorSpec, train_rows: &[f32]) -> Result<Detector> {
    let window = d.window;
    // One offset and scale for every point: the windows are one signal.
    let normalization = Normalization::global(train_rows, window);
    let (plain, reference) = match &d.fit {
        Fit::Pca(p) => {
            let z = normalization.rows(train_rows);
            let r = reconstruct::pca(&z, normalization, p.components)?;
            (reconstruction_blob(&r, None)?, Reference::Reconstruction(r))
        }
        Fit::Autoencoder(a) => {
            let z = normalization.rows(train_rows);
            let r = reconstruct::autoencoder(&z, normalization, a)?;
            (reconstruction_blob(&r, None)?, Reference::Reconstruction(r))
        }
        Fit::IsolationForest(f) => {
            let forest = iforest::fit(train_rows, window, f.trees, f.sample_size, f.seed);
            (forest_blob(&forest, None)?, Reference::Forest(forest))
        }
    };
    let train_scores = run_rows(
        &plain.encode()?,
        train_rows,
        &vec![0; train_rows.len() / window],
    )?;
    let scores: Vec<f64> = train_scores.outputs.iter().map(|&v| f64::from(v)).collect();
    let threshold = quantile(&scores, d.threshold.quantile) as f32;
    let blob = match &reference {
        Reference::Reconstruction(r) => reconstruction_blob(r, Some(threshold))?,
        Reference::Forest(f) => forest_blob(f, Some(threshold))?,
    };
    Ok(Detector {
        blob,
        threshold,
        reference,
    })
}

/// A detector's windows: training windows, scored test windows and their labels.
#[derive(Debug, Clone)]
pub struct DetectorData {
    /// Training windows, row-major.
    pub train_rows: Vec<f32>,
    /// Scored test windows, row-major.
    pub test_rows: Vec<f32>,
    /// Start of each test window in the test series.
    pub starts: Vec<usize>,
    /// 1 where a test window overlaps the labelled anomaly.
    pub labels: Vec<u16>,
    /// First and last labelled anomalous point.
    pub anomaly: (usize, usize),
    /// Points per window.
    pub window: usize,
}

impl DetectorData {
    /// Load a detector's series and cut them into windows.
    pub fn load(series: &SeriesSpec, d: &DetectorSpec, dir: &std::path::Path) -> Result<Self> {
        let (train, test, anomaly) = dataset::load_series(series, dir)?;
        let window = d.window;
        let (train_rows, _) = windows(&train.values, window, series.train_stride, 0);
        if train_rows.is_empty() {
            bail!("the training series is shorter than one window");
        }
        let from = series.test_from.unwrap_or(train.values.len());
        let (test_rows, starts) = windows(&test.values, window, d.test_stride, from);
        let labels = starts
            .iter()
            .map(|&st| u16::from(st <= anomaly.1 && anomaly.0 < st + window))
            .collect();
        Ok(DetectorData {
            train_rows,
            test_rows,
            starts,
            labels,
            anomaly,
            window,
        })
    }
}
