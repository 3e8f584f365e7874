//! What an encoder-decoder's blobs measure, and its report.
//!
//! Each blob forecasts every test window in one call of the runtime
//! ([`run_forecasts`]); its figure is the mean absolute error per horizon
//! step in raw units (over the windows and the predicted channels). The
//! report sets them beside two baselines on the same windows: persistence
//! (every step repeats the window's last value) and, when the spec names
//! one, a causal one-step forecaster blob rolled out over the horizon on
//! its own predictions ([`roll_out`]). `report.json` (kind `seq2seq`) holds
//! the tables; `forecast.png` shows one test window (input, truth, the f32
//! and int8 forecasts, persistence), `mae.png` the error per step, and
//! `loss.png` the training curve.

use std::fmt;

use anyhow::{bail, Result};
use plotters::style::RGBColor;
use serde::{Deserialize, Serialize};

use crate::export::plot;
use crate::io::ExportDir;
use crate::plot::Line;
use crate::report::{Blobs, ChipMetric, Details, Kind, Metric};
use crate::runner::{roll_out, run_forecasts, ForecastRun};
use crate::seq2seq::data::Seq2SeqData;
use crate::seq2seq::model::Seq2Seq;
use crate::seq2seq::spec::Seq2SeqSpec;
use crate::spec::Spec;
use crate::train::History;

/// One blob's forecasts of the test windows and their errors.
#[derive(Debug, Clone)]
pub struct Forecasts {
    /// The run (forecasts in normalized units, and the test vectors).
    pub run: ForecastRun,
    /// Mean absolute error of each horizon step, raw units.
    pub mae_per_step: Vec<f64>,
}

impl Forecasts {
    /// Mean absolute error over every step.
    pub fn mae(&self) -> f64 {
        mean(&self.mae_per_step)
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

impl Metric for Forecasts {
    fn blob_figure(&self) -> f64 {
        0.0
    }
}

impl fmt::Display for Forecasts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mean abs error {:.4} (raw units) over {} horizon steps, step 1 {:.4}, last step {:.4}",
            self.mae(),
            self.mae_per_step.len(),
            self.mae_per_step.first().copied().unwrap_or(0.0),
            self.mae_per_step.last().copied().unwrap_or(0.0),
        )
    }
}

/// Mean absolute error per horizon step of `predictions` (raw units, `n x
/// horizon x outputs`) against the test windows' truth.
fn errors_per_step(predictions: &[f32], data: &Seq2SeqData, spec: &Seq2SeqSpec) -> Vec<f64> {
    let o = spec.predict.len();
    let mut sums = vec![0.0f64; spec.horizon];
    for (i, (p, t)) in predictions.iter().zip(&data.test.targets).enumerate() {
        sums[(i / o) % spec.horizon] += f64::from((p - t).abs());
    }
    let n = (data.test.len() * o).max(1) as f64;
    sums.iter().map(|s| s / n).collect()
}

/// Normalized forecasts back to raw units, per predicted channel.
fn denormalize(forecasts: &[f32], data: &Seq2SeqData, predict: &[usize]) -> Vec<f32> {
    let n = &data.normalization;
    forecasts
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            let c = predict[i % predict.len()];
            y / n.scale[c] + n.offset[c]
        })
        .collect()
}

/// Run a blob over the test windows.
pub fn evaluate(blob: &[u8], data: &Seq2SeqData, spec: &Seq2SeqSpec) -> Result<Forecasts> {
    let run = run_forecasts(blob, &data.test.inputs, &data.test.labels)?;
    let raw = denormalize(&run.forecasts, data, &spec.predict);
    Ok(Forecasts {
        mae_per_step: errors_per_step(&raw, data, spec),
        run,
    })
}

/// Persistence: every step of window `i` is its last value of each predicted channel.
fn persistence(data: &Seq2SeqData, spec: &Seq2SeqSpec) -> Vec<f32> {
    let c = data.channels;
    data.test
        .inputs
        .chunks_exact(spec.window * c)
        .flat_map(|w| {
            let last = &w[(spec.window - 1) * c..];
            (0..spec.horizon).flat_map(move |_| spec.predict.iter().map(move |&p| last[p]))
        })
        .collect()
}

/// Per-step errors of the forecasts and baselines (raw units).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerStep {
    /// The f32 blob.
    pub f32: Vec<f64>,
    /// The int8 blob.
    pub int8: Vec<f64>,
    /// Repeating the window's last value.
    pub persistence: Vec<f64>,
    /// The one-step forecaster rolled out, if the spec names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecaster: Option<Vec<f64>>,
}

/// The means of [`PerStep`] over the horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overall {
    /// The f32 blob.
    pub f32: f64,
    /// The int8 blob.
    pub int8: f64,
    /// Repeating the window's last value.
    pub persistence: f64,
    /// The one-step forecaster rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecaster: Option<f64>,
}

/// The windows a model reads and writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// Encoder steps.
    pub window: usize,
    /// Decoder steps.
    pub horizon: usize,
    /// Channels per input step.
    pub channels: usize,
    /// The predicted (fed-back) channels.
    pub predict: Vec<usize>,
    /// Training windows.
    pub train_windows: usize,
    /// Test windows (one test vector each).
    pub test_windows: usize,
}

/// An encoder-decoder's part of `report.json` (kind `seq2seq`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seq2SeqReport {
    /// `seq2seq`, runs f32 and int8.
    #[serde(flatten)]
    pub kind: Kind,
    /// Test windows, as the demo's header counts samples.
    pub test_samples: usize,
    /// The host's f32 mean absolute error, the figure the chip reproduces.
    pub metric: ChipMetric<f64>,
    /// Windows and channels.
    pub shape: Shape,
    /// Mean training loss (MSE, normalized units) per epoch.
    pub train_loss: Vec<f64>,
    /// R² of free-running test forecasts (normalized units) per epoch.
    pub test_r2_per_epoch: Vec<f64>,
    /// Mean absolute error over the horizon, raw units.
    pub mean_abs_error: Overall,
    /// Mean absolute error per horizon step, raw units.
    pub mean_abs_error_per_step: PerStep,
    /// `1 - f32 / persistence`: how far below persistence f32 is.
    pub f32_below_persistence: f64,
    /// `int8 / f32 - 1`: how far above f32 int8 is.
    pub int8_above_f32: f64,
    /// The baseline forecaster's blob, as the spec names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_forecaster: Option<String>,
    /// Trainer (candle) vs runtime f32 over every step of every test window.
    pub trainer_vs_runtime_f32_max_abs_diff: f64,
    /// The test window `forecast.png` shows (the one of median f32 error).
    pub plotted_window: usize,
}

impl Details for Seq2SeqReport {
    fn label(&self) -> Option<&str> {
        Some("encoder-decoder")
    }

    fn summary(&self, blobs: Blobs<'_>) -> String {
        let m = &self.mean_abs_error;
        let forecaster = m
            .forecaster
            .map(|f| format!(", forecaster rolled out {f:.4}"))
            .unwrap_or_default();
        format!(
            "mean abs error over {} steps f32 {:.4} / int8 {:.4}, persistence {:.4}{forecaster}, {blobs}",
            self.shape.horizon, m.f32, m.int8, m.persistence
        )
    }
}

const BLACK: RGBColor = RGBColor(0, 0, 0);
const GREEN: RGBColor = RGBColor(0, 150, 60);
const BLUE: RGBColor = RGBColor(30, 90, 200);
const RED: RGBColor = RGBColor(210, 40, 40);
const GREY: RGBColor = RGBColor(150, 150, 150);
const ORANGE: RGBColor = RGBColor(230, 140, 20);

/// The report, and the plots.
pub fn finish(
    spec: &Spec<Seq2SeqSpec>,
    data: &Seq2SeqData,
    (model, history): (&Seq2Seq, &History),
    (f32_run, int8_run): (&Forecasts, &Forecasts),
    dir: &ExportDir,
) -> Result<Seq2SeqReport> {
    let s = &spec.family;
    let (w, h, o) = (s.window, s.horizon, s.predict.len());

    // Trainer vs runtime on every step of every test window.
    let reference = model.predict(&data.test.inputs)?;
    if reference.len() != f32_run.run.forecasts.len() {
        bail!("the trainer and the runtime forecast different lengths");
    }
    let max_diff = reference
        .iter()
        .zip(&f32_run.run.forecasts)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);

    let persistence = persistence(data, s);
    let persistence_errors = errors_per_step(&persistence, data, s);
    let forecaster = match &s.baseline_forecaster {
        Some(path) => {
            if data.channels != 1 {
                bail!(
                    "seq2seq.baseline_forecaster: a one-step forecaster of one value per step needs univariate data, not {} channels",
                    data.channels
                );
            }
            let blob = crate::io::read(path, "baseline forecaster blob")?;
            let raw = roll_out(&blob, &data.test.inputs, w, h)
                .map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?;
            Some((raw.clone(), errors_per_step(&raw, data, s)))
        }
        None => None,
    };

    // The window of median f32 error.
    let window_error = |i: usize| -> f32 {
        let n = &data.normalization;
        (0..h * o)
            .map(|k| {
                let c = s.predict[k % o];
                let y = f32_run.run.forecasts[i * h * o + k] / n.scale[c] + n.offset[c];
                (y - data.test.targets[i * h * o + k]).abs()
            })
            .sum()
    };
    let mut order: Vec<usize> = (0..data.test.len()).collect();
    order.sort_by(|&a, &b| window_error(a).total_cmp(&window_error(b)).then(a.cmp(&b)));
    let shown = order[order.len() / 2];

    let raw = |forecasts: &[f32]| denormalize(forecasts, data, &s.predict);
    let (f32_raw, int8_raw) = (raw(&f32_run.run.forecasts), raw(&int8_run.run.forecasts));
    let first = s.predict[0];
    let c = data.channels;
    let input = &data.test.inputs[shown * w * c..(shown + 1) * w * c];
    let step_points = |values: &[f32]| -> Vec<(f64, f64)> {
        (0..h)
            .map(|t| (t as f64 + 1.0, f64::from(values[shown * h * o + t * o])))
            .collect()
    };
    // Forecasts start from the last input point, so each line joins the input.
    let joined = |values: &[f32]| {
        let mut points = vec![(0.0, f64::from(input[(w - 1) * c + first]))];
        points.extend(step_points(values));
        points
    };
    let mut lines = vec![
        Line {
            label: "input window",
            color: BLACK,
            points: (0..w)
                .map(|t| {
                    (
                        (t as f64) - (w as f64) + 1.0,
                        f64::from(input[t * c + first]),
                    )
                })
                .collect(),
            dots: false,
        },
        Line {
            label: "truth",
            color: GREEN,
            points: joined(&data.test.targets),
            dots: true,
        },
        Line {
            label: "f32 forecast (runtime)",
            color: BLUE,
            points: joined(&f32_raw),
            dots: true,
        },
        Line {
            label: "int8 forecast (runtime)",
            color: RED,
            points: joined(&int8_raw),
            dots: true,
        },
        Line {
            label: "persistence",
            color: GREY,
            points: joined(&persistence),
            dots: false,
        },
    ];
    if let Some((raw, _)) = &forecaster {
        lines.push(Line {
            label: "one-step forecaster rolled out",
            color: ORANGE,
            points: joined(raw),
            dots: false,
        });
    }
    let (sequence, start) = data.test.starts[shown];
    plot(dir, "forecast.png", |path| {
        crate::plot::lines(
            path,
            &format!(
                "{}: test window {shown} (sequence {sequence}, steps {start}..{}), channel {first}",
                spec.name,
                start + w + h
            ),
            ("step (0 = last input)", "value (raw units)"),
            &lines,
        )
    });
    let per_step = |errors: &[f64]| -> Vec<(f64, f64)> {
        errors
            .iter()
            .enumerate()
            .map(|(t, &e)| (t as f64 + 1.0, e))
            .collect()
    };
    let mut mae_lines = vec![
        Line {
            label: "f32",
            color: BLUE,
            points: per_step(&f32_run.mae_per_step),
            dots: true,
        },
        Line {
            label: "int8",
            color: RED,
            points: per_step(&int8_run.mae_per_step),
            dots: true,
        },
        Line {
            label: "persistence",
            color: GREY,
            points: per_step(&persistence_errors),
            dots: true,
        },
    ];
    if let Some((_, errors)) = &forecaster {
        mae_lines.push(Line {
            label: "one-step forecaster rolled out",
            color: ORANGE,
            points: per_step(errors),
            dots: true,
        });
    }
    plot(dir, "mae.png", |path| {
        crate::plot::lines(
            path,
            &format!(
                "{}: mean abs error per horizon step over {} test windows",
                spec.name,
                data.test.len()
            ),
            ("horizon step", "mean abs error (raw units)"),
            &mae_lines,
        )
    });
    plot(dir, "loss.png", |path| {
        crate::plot::loss_curve(path, &spec.name, &history.curves("test R² (x100)"))
    });

    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect();
    let overall = Overall {
        f32: f32_run.mae(),
        int8: int8_run.mae(),
        persistence: mean(&persistence_errors),
        forecaster: forecaster.as_ref().map(|(_, e)| mean(e)),
    };
    Ok(Seq2SeqReport {
        kind: Kind::new("seq2seq", crate::family::F32_AND_INT8),
        test_samples: data.test.len(),
        metric: ChipMetric {
            name: "mean_abs_error".into(),
            host: overall.f32,
        },
        shape: Shape {
            window: w,
            horizon: h,
            channels: data.channels,
            predict: s.predict.clone(),
            train_windows: data.train.len(),
            test_windows: data.test.len(),
        },
        train_loss: widen(&history.train_loss),
        test_r2_per_epoch: widen(&history.test_score),
        f32_below_persistence: 1.0 - overall.f32 / overall.persistence,
        int8_above_f32: overall.int8 / overall.f32 - 1.0,
        mean_abs_error: overall,
        mean_abs_error_per_step: PerStep {
            f32: f32_run.mae_per_step.clone(),
            int8: int8_run.mae_per_step.clone(),
            persistence: persistence_errors,
            forecaster: forecaster.map(|(_, e)| e),
        },
        baseline_forecaster: s
            .baseline_forecaster
            .as_ref()
            .map(|p| p.strip_prefix(&spec.dir).unwrap_or(p).display().to_string()),
        trainer_vs_runtime_f32_max_abs_diff: f64::from(max_diff),
        plotted_window: shown,
    })
}
