//! Exporting transformer specs: data, training, quantization, evaluation of
//! both blobs by the runtime, reports and test vectors.
//!
//! Classifiers end like every classifier export
//! ([`crate::export::finish_classifier_export`]): `f32.bin`, `int8.bin`,
//! one-row test vectors, `report.json`, `loss.png`, `confusion.png`.
//!
//! The causal forecaster writes the same blob and vector files, but its
//! vectors are **one sequence vector**: the test series from `tokens` points
//! before the end of the training part to its end, one value per step
//! (`input_len` 1), whose expected output is every step's prediction
//! (`output_len` = steps). Its `report.json` (kind `transformer-forecaster`)
//! holds the error figures and the anomaly rank of both blobs, and
//! `errors.csv` the per-step errors and `errors.png` the series with the int8 error under it.

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use runtime::{Model, Numeric, TestVectors};
use serde_json::json;

use crate::classical::series::{anomaly_rank, Series};
use crate::data::{self, Dataset, Normalization};
use crate::export::{self, Report, Split, CLASSIFIER_FILES};
use crate::io::ExportDir;
use crate::recurrent::Buffers;
use crate::transformer::blob::{f32_blob, f32_bytes, i8_bytes};
use crate::transformer::model::{Config, Transformer};
use crate::transformer::quantize::{int8_blob, quantize};
use crate::transformer::spec::TransformerSpec;
use crate::transformer::train::{train, Examples, Schedule, Targets};
use crate::ts;

fn schedule(spec: &TransformerSpec) -> Schedule {
    Schedule {
        epochs: spec.training.epochs,
        batch_size: spec.training.batch_size,
        learning_rate: spec.learning_rate(),
        seed: spec.training.seed.wrapping_add(1),
    }
}

/// One offset and scale for every input value (mean and 1 / std of all of
/// them): tokens of one homogeneous signal, such as image rows, share it.
fn global_normalization(set: &Dataset) -> Normalization {
    let n = set.features.len().max(1) as f64;
    let mean = set.features.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = set
        .features
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let scale = if var > 0.0 {
        (1.0 / var.sqrt()) as f32
    } else {
        1.0
    };
    Normalization {
        offset: vec![mean as f32; set.feature_count],
        scale: vec![scale; set.feature_count],
    }
}

/// Equal-length series as rows (`steps x channels`, time-major).
fn series_rows(set: &ts::SeriesSet) -> Result<Dataset> {
    let len = set.series.first().map_or(0, Vec::len);
    if set.series.iter().any(|s| s.len() != len) {
        bail!("a transformer needs series of equal length (the tokens are fixed)");
    }
    Ok(Dataset {
        features: set.series.concat(),
        labels: set.labels.clone(),
        feature_count: len,
        class_names: set.class_names.clone(),
    })
}

/// Train and test rows of a classifier spec, with the normalization: one
/// for the whole row (CSV), or per channel, repeated over the steps (`.ts`).
pub fn classifier_data(spec: &TransformerSpec) -> Result<(Dataset, Dataset, Normalization)> {
    let d = spec
        .dataset
        .as_ref()
        .ok_or_else(|| anyhow!("{}: a classifier needs [dataset]", spec.name))?;
    let path = spec.spec_dir.join(&d.path);
    if path.extension().is_some_and(|e| e == "ts") {
        let Some(test_path) = &d.test_path else {
            bail!("{}: a .ts dataset needs dataset.test_path", spec.name);
        };
        let train_set = ts::load_ts(&path)?;
        let test_set = ts::load_ts(&spec.spec_dir.join(test_path))?;
        let channel = ts::fit_channel_normalization(&train_set);
        let (train_rows, test_rows) = (series_rows(&train_set)?, series_rows(&test_set)?);
        check_widths(&path, &train_rows)?;
        if train_rows.feature_count != test_rows.feature_count {
            bail!("the train and test series differ in length");
        }
        let steps = train_rows.feature_count / train_set.channels.max(1);
        let normalization = Normalization {
            offset: channel.offset.repeat(steps),
            scale: channel.scale.repeat(steps),
        };
        return Ok((train_rows, test_rows, normalization));
    }
    let all = data::load_csv(
        &path,
        &data::CsvOptions {
            label_column: d.label_column.clone(),
            header: d.header,
        },
    )?;
    check_widths(&path, &all)?;
    let (train_set, test_set) = data::split_stratified(&all, d.test_fraction, d.seed);
    if train_set.is_empty() || test_set.is_empty() {
        bail!("the dataset is too small to split into train and test");
    }
    let normalization = global_normalization(&train_set);
    Ok((train_set, test_set, normalization))
}

/// A classifier's data-given widths against the runtime's limit: the
/// input row (every token's values) and the classes.
fn check_widths(path: &Path, rows: &Dataset) -> Result<()> {
    crate::limits::check_data(
        path,
        &[
            ("input width", rows.feature_count),
            ("class count", rows.class_count()),
        ],
    )
}

/// `n` evenly spaced rows of `rows` (all if fewer), for calibration.
fn spread_rows(rows: &[f32], width: usize, n: usize) -> Vec<f32> {
    let count = rows.len() / width;
    if count <= n {
        return rows.to_vec();
    }
    (0..n)
        .flat_map(|i| {
            let r = i * count / n;
            rows[r * width..(r + 1) * width].iter().copied()
        })
        .collect()
}

/// Train, quantize, evaluate and write a classifier.
fn export_classifier(
    spec: &TransformerSpec,
    dir: &ExportDir,
    fingerprint: String,
    progress: bool,
) -> Result<Report> {
    let (train_set, test_set, normalization) = classifier_data(spec)?;
    let config = Config::new(
        &spec.transformer,
        train_set.feature_count,
        train_set.class_count(),
    )?;
    let init = Transformer::init(config, normalization, spec.training.seed);
    let started = Instant::now();
    let (model, history) = train(
        &init,
        Examples {
            inputs: &train_set.features,
            targets: Targets::Classes(&train_set.labels),
        },
        Examples {
            inputs: &test_set.features,
            targets: Targets::Classes(&test_set.labels),
        },
        schedule(spec),
        progress,
    )?;
    let training_seconds = started.elapsed().as_secs_f64();
    let calibration = spread_rows(
        &train_set.features,
        train_set.feature_count,
        spec.quantization.calibration_samples,
    );
    let quantized = quantize(&model, &calibration)?;
    let f32_model = f32_blob(&model)?;
    let int8_model = int8_blob(&model, &quantized)?;
    let f32_eval = export::evaluate(&f32_model, &test_set)?;
    let int8_eval = export::evaluate(&int8_model, &test_set)?;
    export::finish_classifier_export(
        &crate::spec::ModelSpec {
            name: spec.name.clone(),
            dataset: spec
                .dataset
                .clone()
                .ok_or_else(|| anyhow!("no [dataset]"))?,
            model: Vec::new(),
            training: spec.training.clone(),
            quantization: spec.quantization.clone(),
            spec_dir: spec.spec_dir.clone(),
        },
        dir,
        Split {
            class_names: &train_set.class_names,
            train_samples: train_set.len(),
            test_samples: test_set.len(),
        },
        (&f32_model, &f32_eval),
        (&int8_model, &int8_eval),
        &history,
        training_seconds,
        fingerprint,
    )
}

/// The forecaster's normalization: a raw value to its bin coordinate, the
/// training range widened by a tenth on each side spread over `0..vocab-1`.
pub fn bin_normalization(train: &[f32], vocab: usize, tokens: usize) -> Normalization {
    let lo = train.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = train.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let margin = 0.1 * (hi - lo).max(1e-6);
    let scale = (vocab - 1) as f32 / (hi - lo + 2.0 * margin);
    Normalization {
        offset: vec![lo - margin; tokens],
        scale: vec![scale; tokens],
    }
}

/// Training windows of a series: inputs (`tokens` raw values each) and
/// targets (the next value after each, normalized).
pub fn forecast_windows(
    values: &[f32],
    tokens: usize,
    stride: usize,
    normalization: &Normalization,
) -> (Vec<f32>, Vec<f32>) {
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    let mut start = 0;
    while start + tokens < values.len() {
        inputs.extend_from_slice(&values[start..start + tokens]);
        let mut next = vec![0.0; tokens];
        normalization.apply(&values[start + 1..start + tokens + 1], &mut next);
        targets.extend(next);
        start += stride.max(1);
    }
    (inputs, targets)
}

/// A causal blob run step by step over a stream of raw values.
pub struct StreamRun {
    /// Prediction after each step (in normalized units, dequantized for int8).
    pub predictions: Vec<f32>,
    /// Test vectors: the stream as one sequence vector with every step's output.
    pub vectors: Vec<u8>,
}

/// Run a causal blob over `values` with the step API (one value per step,
/// the key/value cache sliding once full), from a fresh state.
pub fn run_stream(blob: &[u8], values: &[f32], label: u16) -> Result<StreamRun> {
    let model =
        Model::from_bytes(blob).map_err(|e| anyhow!("the exported blob does not load: {e}"))?;
    if !model.is_causal() {
        bail!("not a causal model");
    }
    let width = model.input_len();
    let mut buffers = Buffers::new(&model);
    let (state, arena) = buffers.split();
    model.reset(state).map_err(|e| anyhow!("{e}"))?;
    let (mut inputs, mut expected, mut predictions) = (Vec::new(), Vec::new(), Vec::new());
    match model.numeric() {
        Numeric::F32 => {
            for (t, &v) in values.iter().enumerate() {
                let out = model
                    .step_f32(&[v], state, arena)
                    .map_err(|e| anyhow!("step {t}: {e}"))?;
                predictions.push(out[0]);
                expected.extend(f32_bytes(out));
            }
            inputs.extend(f32_bytes(values));
        }
        Numeric::Int8 => {
            // The input normalization is the same at every position, so a
            // window's quantization serves any step.
            let mut q = Vec::with_capacity(values.len());
            for chunk in values.chunks(width) {
                let mut padded = chunk.to_vec();
                padded.resize(width, chunk[0]);
                let mut out = vec![0i8; width];
                model
                    .quantize_input(&padded, &mut out)
                    .map_err(|e| anyhow!("{e}"))?;
                q.extend_from_slice(&out[..chunk.len()]);
            }
            let mut dequantized = [0.0f32; 1];
            for (t, &v) in q.iter().enumerate() {
                let out = model
                    .step_i8(&[v], state, arena)
                    .map_err(|e| anyhow!("step {t}: {e}"))?;
                model
                    .dequantize_output(&out[..1], &mut dequantized)
                    .map_err(|e| anyhow!("{e}"))?;
                predictions.push(dequantized[0]);
                expected.extend(i8_bytes(out));
            }
            inputs.extend(i8_bytes(&q));
        }
    }
    let outputs_per_step = expected.len()
        / values.len().max(1)
        / match model.numeric() {
            Numeric::F32 => 4,
            Numeric::Int8 => 1,
        };
    let labels = label.to_le_bytes();
    let vectors = TestVectors {
        numeric: model.numeric(),
        count: 1,
        input_len: 1,
        output_len: (values.len() * outputs_per_step) as u32,
        inputs: &inputs,
        expected: &expected,
        labels: &labels,
        steps: None,
    };
    let mut bytes = postcard::to_stdvec(&vectors)?;
    let steps = [values.len() as u32];
    let (mut scratch, mut trailer) = ([0u8; 4], [0u8; 16]);
    let n = TestVectors::encode_steps(&steps, &mut scratch, &mut trailer)
        .map_err(|e| anyhow!("{e}"))?;
    bytes.extend_from_slice(&trailer[..n]);
    Ok(StreamRun {
        predictions,
        vectors: bytes,
    })
}

/// Error figures of one blob's stream.
fn stream_figures(
    run: &StreamRun,
    stream: &[f32],
    first_scored: usize,
    offset: usize,
    normalization: &Normalization,
    tokens: usize,
    anomaly: (usize, usize),
) -> (Vec<f32>, serde_json::Value) {
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
    let in_anomaly: Vec<f32> = errors
        .iter()
        .enumerate()
        .filter(|(i, _)| (anomaly.0..=anomaly.1).contains(&(first_scored + i + offset)))
        .map(|(_, &e)| e)
        .collect();
    let figures = json!({
        "anomaly_rank": rank,
        "mean_abs_error": mean,
        "max_abs_error": max,
        "max_error_at": first_scored + at + offset,
        "max_error_in_anomaly": in_anomaly.iter().copied().fold(0.0f32, f32::max),
    });
    (errors, figures)
}

/// A forecaster's data: both series, the labelled anomaly, the bin
/// normalization, and where the test stream starts.
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
}

impl ForecastData {
    /// Load a forecaster spec's series.
    pub fn load(spec: &TransformerSpec) -> Result<ForecastData> {
        let s = spec.series.as_ref().ok_or_else(|| anyhow!("no [series]"))?;
        let train = Series::load(&spec.spec_dir.join(&s.train))?;
        let test = Series::load(&spec.spec_dir.join(&s.test))?;
        let Some(anomaly) = test.anomaly_range() else {
            bail!("the test series has no labelled anomaly");
        };
        let t = &spec.transformer;
        let (tokens, vocab) = (t.tokens, t.vocab.unwrap_or(2));
        let train_len = train.values.len();
        if train_len <= 2 * tokens || test.values.len() <= train_len + 1 {
            bail!("the series are too short for {tokens} tokens");
        }
        let normalization = bin_normalization(&train.values, vocab, tokens);
        Ok(ForecastData {
            train,
            test,
            anomaly,
            normalization,
            tokens,
            offset: train_len - tokens,
        })
    }

    /// The values run through the key/value cache.
    pub fn stream(&self) -> &[f32] {
        &self.test.values[self.offset..]
    }
}

/// A causal blob run over the test stream: the run, each scored point's
/// absolute error (raw units) and the figures of the report (and `eval`).
pub fn run_forecast(
    blob: &[u8],
    data: &ForecastData,
) -> Result<(StreamRun, Vec<f32>, serde_json::Value)> {
    let run = run_stream(blob, data.stream(), 1)?;
    let (errors, figures) = stream_figures(
        &run,
        data.stream(),
        data.tokens, // stream index of the first test-part point
        data.offset,
        &data.normalization,
        data.tokens,
        data.anomaly,
    );
    Ok((run, errors, figures))
}

/// Train, quantize, run and write a causal forecaster.
fn export_forecaster(
    spec: &TransformerSpec,
    dir: &ExportDir,
    fingerprint: String,
    progress: bool,
) -> Result<serde_json::Value> {
    let s = spec.series.as_ref().ok_or_else(|| anyhow!("no [series]"))?;
    let data = ForecastData::load(spec)?;
    let (train_series, test_series) = (&data.train, &data.test);
    let (anomaly, normalization) = (data.anomaly, &data.normalization);
    let t = &spec.transformer;
    let tokens = t.tokens;
    let train_len = train_series.values.len();
    let (inputs, targets) =
        forecast_windows(&train_series.values, tokens, s.train_stride, normalization);
    // Watched only: non-overlapping windows of the test part.
    let (test_inputs, test_targets) = forecast_windows(
        &test_series.values[train_len..],
        tokens,
        tokens,
        normalization,
    );
    let config = Config::new(t, tokens, 1)?;
    let mut init = Transformer::init(config, normalization.clone(), spec.training.seed);
    init.head_bias[0] = targets.iter().sum::<f32>() / targets.len().max(1) as f32;
    let started = Instant::now();
    let (model, history) = train(
        &init,
        Examples {
            inputs: &inputs,
            targets: Targets::Next(&targets),
        },
        Examples {
            inputs: &test_inputs,
            targets: Targets::Next(&test_targets),
        },
        schedule(spec),
        progress,
    )?;
    let training_seconds = started.elapsed().as_secs_f64();
    let calibration = spread_rows(&inputs, tokens, spec.quantization.calibration_samples);
    let quantized = quantize(&model, &calibration)?;
    let f32_model = f32_blob(&model)?;
    let int8_model = int8_blob(&model, &quantized)?;

    let (offset, stream) = (data.offset, data.stream());
    let first_scored = tokens;
    let (f32_run, f32_errors, f32_figures) = run_forecast(&f32_model, &data)?;
    let (int8_run, int8_errors, int8_figures) = run_forecast(&int8_model, &data)?;

    // Trainer vs runtime: once the cache is full, step t's output is the
    // last row of the full forward pass over the window ending at t.
    let windows: Vec<f32> = (tokens - 1..stream.len())
        .flat_map(|t| stream[t + 1 - tokens..=t].iter().copied())
        .collect();
    let reference = model.predict(&windows)?;
    let max_diff = reference
        .chunks_exact(tokens)
        .zip(&f32_run.predictions[tokens - 1..])
        .map(|(row, &p)| (row[tokens - 1] - p).abs())
        .fold(0.0f32, f32::max);

    let mut csv = String::from("point,value,f32_abs_error,int8_abs_error,anomalous\n");
    for (i, (e32, e8)) in f32_errors.iter().zip(&int8_errors).enumerate() {
        let p = offset + first_scored + i;
        csv.push_str(&format!(
            "{p},{},{e32},{e8},{}\n",
            test_series.values[p],
            u8::from(test_series.anomalous[p])
        ));
    }
    let report = json!({
        "name": spec.name,
        "kind": "transformer-forecaster",
        "runs": ["f32", "int8"],
        "fingerprint": fingerprint,
        "training_seconds": training_seconds,
        "train_loss": history.train_loss,
        "test_r2_per_epoch": history.test_accuracy,
        "metric": {"name": "anomaly_rank", "host": f32_figures["anomaly_rank"]},
        "series": {
            "train_points": train_len,
            "test_points": test_series.values.len(),
            "stream_from": offset,
            "stream_steps": stream.len(),
            "scored_from": offset + first_scored,
            "anomaly_first": anomaly.0,
            "anomaly_last": anomaly.1,
            "raw_units_per_bin": 1.0 / normalization.scale[0],
        },
        "train_windows": inputs.len() / tokens,
        "f32_stream": f32_figures,
        "int8_stream": int8_figures,
        "trainer_vs_runtime_f32_max_abs_diff": max_diff,
        "f32": export::blob_report(&f32_model, 0.0)?,
        "int8": export::blob_report(&int8_model, 0.0)?,
    });
    dir.write("f32.bin", &f32_model)?;
    dir.write("int8.bin", &int8_model)?;
    dir.write("f32.vectors", &f32_run.vectors)?;
    dir.write("int8.vectors", &int8_run.vectors)?;
    dir.write("errors.csv", csv.as_bytes())?;
    export::plot(dir, "loss.png", |path| {
        crate::plot::loss_and_metric_curve(
            path,
            &spec.name,
            &history.train_loss,
            &history.test_accuracy,
            "test R² (x100)",
        )
    });
    let points: Vec<usize> = (0..f32_errors.len())
        .map(|i| offset + first_scored + i)
        .collect();
    export::plot(dir, "errors.png", |path| {
        crate::plot::series_scores(
            path,
            &format!(
                "{}: next-value error (int8, runtime), labelled anomaly shaded",
                spec.name
            ),
            &points,
            &points
                .iter()
                .map(|&p| test_series.values[p])
                .collect::<Vec<_>>(),
            &int8_errors,
            &points
                .iter()
                .map(|&p| test_series.anomalous[p])
                .collect::<Vec<_>>(),
            "|prediction - value|",
        )
    });
    Ok(report)
}

/// Train, quantize, evaluate and write one transformer spec into
/// `out_root/<name>/`; with `reuse`, an export whose fingerprint matches is
/// kept. Returns the report.
pub fn export_spec(
    spec_path: &Path,
    out_root: &Path,
    reuse: bool,
    progress: bool,
) -> Result<serde_json::Value> {
    let spec = TransformerSpec::load(spec_path)?;
    let fingerprint = export::fingerprint(spec_path, &spec.data_files())?;
    let name = &spec.name;
    if spec.series.is_some() {
        let reuse = reuse.then_some(&FORECASTER_FILES[..]);
        export::write_model(out_root, name, &fingerprint.clone(), reuse, |dir| {
            export_forecaster(&spec, dir, fingerprint, progress)
        })
    } else {
        // The report is written from `Report` itself, as for every classifier.
        let reuse = reuse.then_some(&CLASSIFIER_FILES[..]);
        let report = export::write_model(out_root, name, &fingerprint.clone(), reuse, |dir| {
            export_classifier(&spec, dir, fingerprint, progress)
        })?;
        Ok(serde_json::to_value(report)?)
    }
}

/// The files of a forecaster export besides its report.
const FORECASTER_FILES: [&str; 5] = [
    "f32.bin",
    "int8.bin",
    "f32.vectors",
    "int8.vectors",
    "errors.csv",
];

/// One line summarising a transformer report.
pub fn summary(r: &serde_json::Value) -> String {
    let name = r["name"].as_str().unwrap_or("?");
    if r["kind"] == "transformer-forecaster" {
        format!(
            "{name} (causal transformer): anomaly rank f32 {} / int8 {}, mean abs error f32 {:.4} / int8 {:.4}, blobs {} B f32 / {} B int8, arena {} B f32 / {} B int8",
            r["f32_stream"]["anomaly_rank"],
            r["int8_stream"]["anomaly_rank"],
            r["f32_stream"]["mean_abs_error"].as_f64().unwrap_or(f64::NAN),
            r["int8_stream"]["mean_abs_error"].as_f64().unwrap_or(f64::NAN),
            r["f32"]["blob_bytes"],
            r["int8"]["blob_bytes"],
            r["f32"]["arena_bytes"],
            r["int8"]["arena_bytes"],
        )
    } else {
        format!(
            "{name} (transformer): f32 {:.2}%  int8 {:.2}%  (test {} rows, train {} rows)  blobs {} B f32 / {} B int8, arena {} B f32 / {} B int8",
            100.0 * r["f32_accuracy"].as_f64().unwrap_or(f64::NAN),
            100.0 * r["int8_accuracy"].as_f64().unwrap_or(f64::NAN),
            r["test_samples"],
            r["train_samples"],
            r["f32"]["blob_bytes"],
            r["int8"]["blob_bytes"],
            r["f32"]["arena_bytes"],
            r["int8"]["arena_bytes"],
        )
    }
}
