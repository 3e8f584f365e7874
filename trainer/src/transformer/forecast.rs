//! The causal forecaster: its data, its run over the test stream, and its
//! report.
//!
//! The model reads one raw value per token (binned into `vocab` embedding
//! ids by the input normalization) and predicts the next value after each.
//! It trains on windows of `tokens` values of the normal training series.
//! Its test vectors are **one sequence vector**: the test series from
//! `tokens` points before the end of the training part to its end, one value
//! per step (`input_len` 1), whose expected output is every step's
//! prediction. `report.json` (kind `transformer-forecaster`) holds the error
//! figures and the anomaly rank of both blobs, `errors.csv` the per-step
//! errors and `errors.png` the series with the int8 error under it.

use std::fmt;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::dataset::series::windows;
use crate::dataset::{self, Normalization, Series};
use crate::export::plot;
use crate::io::ExportDir;
use crate::metrics::anomaly_rank;
use crate::report::{rank_text, Blobs, ChipMetric, Details, Kind, Metric};
use crate::runner::{run_stream, StreamRun};
use crate::spec::Spec;
use crate::train::History;
use crate::transformer::model::Transformer;
use crate::transformer::spec::TransformerSpec;

/// Training windows of a series: inputs (`tokens` raw values each) and
/// targets (the next value after each, normalized).
pub fn forecast_windows(
    values: &[f32],
    tokens: usize,
    stride: usize,
    normalization: &Normalization,
) -> (Vec<f32>, Vec<f32>) {
    let Some(last) = values.len().checked_sub(1) else {
        return (Vec::new(), Vec::new());
    };
    let (inputs, _) = windows(&values[..last], tokens, stride, 0);
    let (next, _) = windows(&values[1..], tokens, stride, 0);
    (inputs, normalization.rows(&next))
}

/// A forecaster's data: both series, the labelled anomaly, the bin
/// normalization, where the test stream starts, and the windows.
#[derive(Debug, Clone)]
pub struct ForecastData {
    /// The normal training series.
    pub train: Series,
    /// The test series (it may begin with the training part).
    pub test: Series,
    /// First and last labelled anomalous point of the test series.
    pub anomaly: (usize, usize),
    /// Raw value to bin coordinate, fitted on the training series.
    pub normalization: Normalization,
    /// Context of the model.
    pub tokens: usize,
    /// Test-series index where the stream starts: `tokens` points before the
    /// end of the training part, so the first scored prediction already has
    /// a full context.
    pub offset: usize,
    /// Training windows (`tokens` raw values each) and their next values.
    pub windows: (Vec<f32>, Vec<f32>),
    /// Watched only: non-overlapping windows of the test part.
    pub test_windows: (Vec<f32>, Vec<f32>),
}

impl ForecastData {
    /// Load a forecaster spec's series and cut them into windows.
    pub fn load(spec: &Spec<TransformerSpec>) -> Result<ForecastData> {
        let s = spec.series()?;
        let (train, test, anomaly) = dataset::load_series(s, &spec.dir)?;
        let t = &spec.family;
        let (tokens, vocab) = (t.tokens, t.vocab.unwrap_or(2));
        let train_len = train.values.len();
        if train_len <= 2 * tokens || test.values.len() <= train_len + 1 {
            bail!("the series are too short for {tokens} tokens");
        }
        let normalization = Normalization::bins(&train.values, vocab, tokens);
        let windows = forecast_windows(&train.values, tokens, s.train_stride, &normalization);
        let test_windows =
            forecast_windows(&test.values[train_len..], tokens, tokens, &normalization);
        Ok(ForecastData {
            train,
            test,
            anomaly,
            normalization,
            tokens,
            offset: train_len - tokens,
            windows,
            test_windows,
        })
    }

    /// The values run through the key/value cache.
    pub fn stream(&self) -> &[f32] {
        &self.test.values[self.offset..]
    }

    /// Stream index of the first scored point (the first test-part point).
    fn first_scored(&self) -> usize {
        self.tokens
    }
}

/// Error figures of one blob's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamFigures {
    /// Rank of the labelled anomaly among the error peaks.
    pub anomaly_rank: Option<usize>,
    /// Mean absolute next-value error, raw units.
    pub mean_abs_error: f64,
    /// Largest error.
    pub max_abs_error: f64,
    /// Test-series point of the largest error.
    pub max_error_at: usize,
    /// Largest error on a labelled anomalous point.
    pub max_error_in_anomaly: f64,
}

/// A causal blob run over the test stream: the run, each scored point's
/// absolute error (raw units) and the figures.
#[derive(Debug, Clone)]
pub struct Forecast {
    /// The run.
    pub run: StreamRun,
    /// Absolute error of each scored point.
    pub errors: Vec<f32>,
    /// What the report (and `eval`) give.
    pub figures: StreamFigures,
}

impl Metric for Forecast {
    fn blob_figure(&self) -> f64 {
        0.0
    }
}

impl fmt::Display for Forecast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "anomaly rank {} among the error peaks, mean abs error {:.4} over {} points",
            rank_text(self.figures.anomaly_rank, "none"),
            self.figures.mean_abs_error,
            self.errors.len()
        )
    }
}

/// Run a causal blob over the test stream, one value per step.
pub fn run_forecast(blob: &[u8], data: &ForecastData) -> Result<Forecast> {
    let run = run_stream(blob, data.stream(), 1)?;
    let stream = data.stream();
    let (first_scored, offset, tokens, anomaly) =
        (data.first_scored(), data.offset, data.tokens, data.anomaly);
    let normalization = &data.normalization;
    let scale = normalization.scale[0];
    // Step t's prediction is for stream point t + 1; errors in raw units.
    let errors: Vec<f32> = (first_scored..stream.len())
        .map(|p| {
            let target = (stream[p] - normalization.offset[0]) * scale;
            (run.predictions[p - 1] - target).abs() / scale
        })
        .collect();
    // A point's error stands for the window of `tokens` points centred on it.
    let starts: Vec<usize> = (first_scored..stream.len())
        .map(|p| (p + offset).saturating_sub(tokens / 2))
        .collect();
    let rank = anomaly_rank(&errors, &starts, tokens, anomaly);
    let mean = errors.iter().map(|&e| f64::from(e)).sum::<f64>() / errors.len().max(1) as f64;
    let (at, max) =
        errors.iter().enumerate().fold(
            (0, 0.0f32),
            |(bi, b), (i, &e)| if e > b { (i, e) } else { (bi, b) },
        );
    let in_anomaly = errors
        .iter()
        .enumerate()
        .filter(|(i, _)| (anomaly.0..=anomaly.1).contains(&(first_scored + i + offset)))
        .map(|(_, &e)| e)
        .fold(0.0f32, f32::max);
    let figures = StreamFigures {
        anomaly_rank: rank,
        mean_abs_error: mean,
        max_abs_error: f64::from(max),
        max_error_at: first_scored + at + offset,
        max_error_in_anomaly: f64::from(in_anomaly),
    };
    Ok(Forecast {
        run,
        errors,
        figures,
    })
}

/// Where the stream lies in the test series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSeries {
    /// Points of the training series.
    pub train_points: usize,
    /// Points of the test series.
    pub test_points: usize,
    /// Test-series point of the stream's first step.
    pub stream_from: usize,
    /// Steps of the stream.
    pub stream_steps: usize,
    /// Test-series point of the first scored prediction.
    pub scored_from: usize,
    /// First labelled anomalous point.
    pub anomaly_first: usize,
    /// Last labelled anomalous point.
    pub anomaly_last: usize,
    /// Raw units of one embedding bin.
    pub raw_units_per_bin: f64,
}

/// The forecaster's part of `report.json` (kind `transformer-forecaster`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecasterReport {
    /// `transformer-forecaster`, runs f32 and int8.
    #[serde(flatten)]
    pub kind: Kind,
    /// Mean training loss per epoch.
    pub train_loss: Vec<f64>,
    /// `1 - normalized MSE` on the test windows per epoch.
    pub test_r2_per_epoch: Vec<f64>,
    /// The host's anomaly rank (f32), the figure `cargo xtask` recomputes.
    pub metric: ChipMetric<Option<usize>>,
    /// Where the stream lies.
    pub series: StreamSeries,
    /// Training windows.
    pub train_windows: usize,
    /// The f32 blob's stream.
    pub f32_stream: StreamFigures,
    /// The int8 blob's stream.
    pub int8_stream: StreamFigures,
    /// Trainer (candle) vs runtime f32 over every full-context step.
    pub trainer_vs_runtime_f32_max_abs_diff: f64,
}

impl Details for ForecasterReport {
    fn label(&self) -> Option<&str> {
        Some("causal transformer")
    }

    fn summary(&self, blobs: Blobs<'_>) -> String {
        let (f, i) = (&self.f32_stream, &self.int8_stream);
        format!(
            "anomaly rank f32 {} / int8 {}, mean abs error f32 {:.4} / int8 {:.4}, {blobs}",
            rank_text(f.anomaly_rank, "null"),
            rank_text(i.anomaly_rank, "null"),
            f.mean_abs_error,
            i.mean_abs_error,
        )
    }
}

/// The forecaster's report, `errors.csv` and plots (`loss.png`, `errors.png`).
pub fn finish(
    spec: &Spec<TransformerSpec>,
    data: &ForecastData,
    model: &Transformer,
    history: &History,
    (f32_run, int8_run): (&Forecast, &Forecast),
    dir: &ExportDir,
) -> Result<ForecasterReport> {
    let (tokens, offset, first_scored) = (data.tokens, data.offset, data.first_scored());
    let stream = data.stream();
    let test = &data.test;

    // Trainer vs runtime: once the cache is full, step t's output is the
    // last row of the full forward pass over the window ending at t.
    let windows: Vec<f32> = (tokens - 1..stream.len())
        .flat_map(|t| stream[t + 1 - tokens..=t].iter().copied())
        .collect();
    let reference = model.predict(&windows)?;
    let max_diff = reference
        .chunks_exact(tokens)
        .zip(&f32_run.run.predictions[tokens - 1..])
        .map(|(row, &p)| (row[tokens - 1] - p).abs())
        .fold(0.0f32, f32::max);

    let mut csv = String::from("point,value,f32_abs_error,int8_abs_error,anomalous\n");
    for (i, (e32, e8)) in f32_run.errors.iter().zip(&int8_run.errors).enumerate() {
        let p = offset + first_scored + i;
        csv.push_str(&format!(
            "{p},{},{e32},{e8},{}\n",
            test.values[p],
            u8::from(test.anomalous[p])
        ));
    }
    dir.write("errors.csv", csv.as_bytes())?;
    plot(dir, "loss.png", |path| {
        crate::plot::loss_curve(path, &spec.name, &history.curves("test R² (x100)"))
    });
    let points: Vec<usize> = (0..f32_run.errors.len())
        .map(|i| offset + first_scored + i)
        .collect();
    plot(dir, "errors.png", |path| {
        crate::plot::series_scores(
            path,
            &format!(
                "{}: next-value error (int8, runtime), labelled anomaly shaded",
                spec.name
            ),
            &points,
            &points.iter().map(|&p| test.values[p]).collect::<Vec<_>>(),
            &int8_run.errors,
            &points
                .iter()
                .map(|&p| test.anomalous[p])
                .collect::<Vec<_>>(),
            "|prediction - value|",
        )
    });
    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect();
    Ok(ForecasterReport {
        kind: Kind::new("transformer-forecaster", crate::family::F32_AND_INT8),
        train_loss: widen(&history.train_loss),
        test_r2_per_epoch: widen(&history.test_score),
        metric: ChipMetric {
            name: "anomaly_rank".into(),
            host: f32_run.figures.anomaly_rank,
        },
        series: StreamSeries {
            train_points: data.train.values.len(),
            test_points: test.values.len(),
            stream_from: offset,
            stream_steps: stream.len(),
            scored_from: offset + first_scored,
            anomaly_first: data.anomaly.0,
            anomaly_last: data.anomaly.1,
            raw_units_per_bin: f64::from(1.0 / data.normalization.scale[0]),
        },
        train_windows: data.windows.0.len() / tokens,
        f32_stream: f32_run.figures.clone(),
        int8_stream: int8_run.figures.clone(),
        trainer_vs_runtime_f32_max_abs_diff: f64::from(max_diff),
    })
}
