//! Fitting, encoding and evaluating the classical kinds, and writing their
//! exports: `f32.bin`, `f32.vectors` and `report.json` (f32 only; these run on
//! the Cortex-M4 — the M0 runs int8 models only).
//!
//! `report.json` carries `kind`, `runs` (`["f32"]`) and `metric`
//! (`{"name": "anomaly_rank" | "purity", "host": ...}`), so `cargo xtask`
//! knows which metric to compute from the chip's outputs. For detectors,
//! `series` gives the window length, the start of every scored window
//! (`first_start + i * stride`) and the labelled anomaly, and each vector's
//! label is 1 when its window overlaps the anomaly. For clustering, labels
//! are the true classes.

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use runtime::format::{Activation, LayerDef, ModelHeader, Numeric};
use runtime::{Model, TestVectors};
use serde_json::json;

use super::clustering::{self, Centroids};
use super::iforest::{self, IsolationForest};
use super::reconstruct::{self, AutoencoderTraining, Reconstructor};
use super::series::{self, Series};
use super::ClassicalSpec;
use crate::data::{self, Dataset, Normalization};
use crate::export::BlobReport;
use crate::spec::LayerSpec;
use crate::train::Layer;

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Encode an f32 model with the runtime's encoder.
pub fn encode_f32(
    normalization: &Normalization,
    output_len: usize,
    layers: &[LayerDef<'_>],
) -> Result<Vec<u8>> {
    let offset = f32_bytes(&normalization.offset);
    let scale = f32_bytes(&normalization.scale);
    let header = ModelHeader {
        numeric: Numeric::F32,
        input_len: normalization.feature_count() as u32,
        output_len: output_len as u32,
        arena_bytes: 0,
        layer_count: 0,
        input_offset: &offset,
        input_scale: &scale,
        input_quant: None,
        output_quant: None,
    };
    let mut out = vec![
        0u8;
        runtime::encoded_len(header, layers)
            .map_err(|e| anyhow!("encoding the model: {e}"))?
    ];
    let len = runtime::encode(header, layers, &mut out)
        .map_err(|e| anyhow!("encoding the model: {e}"))?;
    out.truncate(len);
    Ok(out)
}

/// Identity normalization for `d` features.
pub fn identity(d: usize) -> Normalization {
    Normalization {
        offset: vec![0.0; d],
        scale: vec![1.0; d],
    }
}

/// Blob of a nearest-centroid model (raw inputs).
pub fn centroid_blob(c: &Centroids) -> Result<Vec<u8>> {
    let centroids = f32_bytes(&c.values);
    encode_f32(
        &identity(c.dim),
        2,
        &[LayerDef::NearestCentroidF32 {
            dim: c.dim as u32,
            k: c.k as u32,
            centroids: &centroids,
        }],
    )
}

fn activation_def(op: LayerSpec) -> Result<LayerDef<'static>> {
    Ok(LayerDef::ActivationF32(match op {
        LayerSpec::Relu => Activation::Relu,
        LayerSpec::Tanh => Activation::Tanh,
        LayerSpec::Sigmoid => Activation::Sigmoid,
        LayerSpec::Gelu => Activation::Gelu,
        LayerSpec::LeakyRelu { alpha } => Activation::LeakyRelu { alpha },
        other => bail!("layer {other} is not allowed in a reconstruction model"),
    }))
}

/// Blob of a reconstruction model: `save 0, layers, squared-error 0`, then a
/// threshold when given.
pub fn reconstruction_blob(r: &Reconstructor, threshold: Option<f32>) -> Result<Vec<u8>> {
    let params: Vec<(Vec<u8>, Vec<u8>)> = r
        .mlp
        .layers
        .iter()
        .map(|l| match l {
            Layer::Dense { weights, bias, .. } => (f32_bytes(weights), f32_bytes(bias)),
            Layer::Op(_) => (Vec::new(), Vec::new()),
        })
        .collect();
    let mut layers = vec![LayerDef::SaveSkip { slot: 0 }];
    for (layer, (w, b)) in r.mlp.layers.iter().zip(&params) {
        layers.push(match layer {
            Layer::Dense {
                inputs, outputs, ..
            } => LayerDef::DenseF32 {
                inputs: *inputs as u32,
                outputs: *outputs as u32,
                weights: w,
                bias: b,
            },
            Layer::Op(op) => activation_def(*op)?,
        });
    }
    layers.push(LayerDef::SquaredErrorF32 { slot: 0 });
    if let Some(value) = threshold {
        layers.push(LayerDef::ThresholdF32 { value });
    }
    encode_f32(
        &r.mlp.normalization,
        if threshold.is_some() { 2 } else { 1 },
        &layers,
    )
}

/// Blob of an isolation forest (raw inputs), with a threshold when given.
pub fn forest_blob(f: &IsolationForest, threshold: Option<f32>) -> Result<Vec<u8>> {
    let [roots, nodes] = f.flat_arrays()?;
    let mut layers = vec![LayerDef::IsolationForestF32 {
        inputs: f.inputs as u32,
        sample_size: f.sample_size as u32,
        roots: &roots,
        nodes: &nodes,
    }];
    if let Some(value) = threshold {
        layers.push(LayerDef::ThresholdF32 { value });
    }
    encode_f32(
        &identity(f.inputs),
        if threshold.is_some() { 2 } else { 1 },
        &layers,
    )
}

/// The wire layout of [`TestVectors`] for one-step (feedforward) vectors,
/// field for field, so this module does not depend on the struct's Rust-only fields.
#[derive(serde::Serialize)]
struct VectorsOut<'a> {
    numeric: Numeric,
    count: u32,
    input_len: u32,
    output_len: u32,
    #[serde(with = "serde_bytes_slice")]
    inputs: &'a [u8],
    #[serde(with = "serde_bytes_slice")]
    expected: &'a [u8],
    #[serde(with = "serde_bytes_slice")]
    labels: &'a [u8],
}

/// `&[u8]` as a byte string (what `#[serde(borrow)] &[u8]` derives to).
mod serde_bytes_slice {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
}

/// Run an f32 blob over raw rows; outputs row-major and the test vectors.
pub fn run_blob(blob: &[u8], rows: &[f32], labels: &[u16]) -> Result<(Vec<f32>, Vec<u8>)> {
    let model =
        Model::from_bytes(blob).map_err(|e| anyhow!("the exported blob does not load: {e}"))?;
    let d = model.input_len();
    let mut arena = vec![0u32; model.arena_bytes().div_ceil(4)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
    let mut outputs = Vec::new();
    for (i, row) in rows.chunks_exact(d).enumerate() {
        let out = model
            .run_f32(row, arena)
            .map_err(|e| anyhow!("row {i}: {e}"))?;
        outputs.extend_from_slice(out);
    }
    let inputs = f32_bytes(rows);
    let expected = f32_bytes(&outputs);
    let label_bytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    let vectors = VectorsOut {
        numeric: Numeric::F32,
        count: (rows.len() / d) as u32,
        input_len: d as u32,
        output_len: model.output_len() as u32,
        inputs: &inputs,
        expected: &expected,
        labels: &label_bytes,
    };
    let bytes = postcard::to_stdvec(&vectors)?;
    // The file must read back as the runtime's own type.
    TestVectors::from_bytes(&bytes).map_err(|e| anyhow!("test vectors do not decode: {e}"))?;
    Ok((outputs, bytes))
}

fn blob_report(blob: &[u8], metric: f64) -> Result<BlobReport> {
    let model = Model::from_bytes(blob).map_err(|e| anyhow!("{e}"))?;
    let stats = model.stats();
    Ok(BlobReport {
        blob_bytes: blob.len(),
        arena_bytes: model.arena_bytes(),
        parameters: stats.parameters,
        macs: stats.macs,
        accuracy: metric,
    })
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

/// A detector fitted on windows of the training series and scored on the test series.
pub struct Detector {
    /// The blob with its threshold.
    pub blob: Vec<u8>,
    /// The trainer's reference score of each test window (f64).
    pub reference: Vec<f64>,
}

/// Export one classical spec into `out_root/<name>/`; with `reuse`, keep an
/// export whose fingerprint matches. Returns the report.
pub fn export_classical(
    spec_path: &Path,
    out_root: &Path,
    reuse: bool,
) -> Result<serde_json::Value> {
    let spec = ClassicalSpec::load(spec_path)?;
    let fingerprint = crate::export::fingerprint(spec_path, &spec.data_files())?;
    let reuse = reuse.then_some(&["f32.bin", "f32.vectors"][..]);
    crate::export::write_model(out_root, &spec.name, &fingerprint.clone(), reuse, |dir| {
        let started = Instant::now();
        let (blob, vectors, mut report) = match spec.kind.as_str() {
            "kmeans" | "hierarchical" => fit_clustering(&spec)?,
            _ => fit_detector(&spec)?,
        };
        let seconds = started.elapsed().as_secs_f64();
        let obj = report
            .as_object_mut()
            .ok_or_else(|| anyhow!("report is not an object"))?;
        obj.insert("name".into(), json!(spec.name));
        obj.insert("kind".into(), json!(spec.kind));
        obj.insert("runs".into(), json!(["f32"]));
        obj.insert("fingerprint".into(), json!(fingerprint));
        obj.insert("training_seconds".into(), json!(seconds));
        dir.write("f32.bin", &blob)?;
        dir.write("f32.vectors", &vectors)?;
        Ok(report)
    })
}

/// The train and test split of a clustering spec.
pub fn clustering_split(spec: &ClassicalSpec) -> Result<(Dataset, Dataset)> {
    let ds = spec
        .dataset
        .as_ref()
        .ok_or_else(|| anyhow!("no [dataset]"))?;
    let path = spec.spec_dir.join(&ds.path);
    let all = data::load_csv(
        &path,
        &data::CsvOptions {
            label_column: ds.label_column.clone(),
            header: ds.header,
        },
    )?;
    crate::limits::check_data(&path, &[("input width", all.feature_count)])?;
    Ok(data::split_stratified(&all, ds.test_fraction, ds.seed))
}

/// A nearest-centroid blob run over the test rows.
pub struct ClusterRun {
    /// Per row: cluster and squared distance.
    pub outputs: Vec<f32>,
    /// Test vectors (labels are the true classes).
    pub vectors: Vec<u8>,
    /// Purity of the runtime's assignment.
    pub purity: f64,
}

/// Run a clustering blob over `test` (the report's and `eval`'s purity).
pub fn run_clustering(blob: &[u8], test: &Dataset) -> Result<ClusterRun> {
    let labels: Vec<u16> = test.labels.iter().map(|&l| l as u16).collect();
    let (outputs, vectors) = run_blob(blob, &test.features, &labels)?;
    let assigned: Vec<usize> = outputs.chunks_exact(2).map(|o| o[0] as usize).collect();
    let purity = series::purity(&assigned, &test.labels);
    Ok(ClusterRun {
        outputs,
        vectors,
        purity,
    })
}

fn fit_clustering(spec: &ClassicalSpec) -> Result<(Vec<u8>, Vec<u8>, serde_json::Value)> {
    let (train, test) = clustering_split(spec)?;
    let dim = train.feature_count;
    let mut extra = json!({});
    let centroids = if spec.kind == "kmeans" {
        let c = spec.kmeans.as_ref().ok_or_else(|| anyhow!("no [kmeans]"))?;
        let [lo, hi] = c.k_range.unwrap_or([2, 16]);
        let mut curve = Vec::new();
        for k in lo.max(1)..=hi {
            let fit = clustering::kmeans(&train.features, dim, k, c.seed)?;
            curve.push(json!({"k": k, "inertia": fit.inertia(&train.features)}));
        }
        extra["inertia_by_k"] = json!(curve);
        clustering::kmeans(&train.features, dim, c.k, c.seed)?
    } else {
        let c = spec
            .hierarchical
            .as_ref()
            .ok_or_else(|| anyhow!("no [hierarchical]"))?;
        extra["linkage"] = json!("ward");
        clustering::hierarchical(&train.features, dim, c.k)?
    };
    let blob = centroid_blob(&centroids)?;
    let ClusterRun {
        outputs,
        vectors,
        purity: host_purity,
    } = run_clustering(&blob, &test)?;
    let train_assigned: Vec<usize> = (0..train.len())
        .map(|i| centroids.assign(train.row(i)).0)
        .collect();
    // Trainer vs runtime: same cluster, squared distance within a relative 1e-5.
    let mut same = 0;
    let mut max_rel = 0.0f64;
    for (i, o) in outputs.chunks_exact(2).enumerate() {
        let (c, d) = centroids.assign(test.row(i));
        same += usize::from(c == o[0] as usize);
        max_rel = max_rel.max((f64::from(o[1]) - d).abs() / d.max(1.0));
    }
    extra["metric"] = json!({"name": "purity", "host": host_purity});
    extra["train_purity"] = json!(series::purity(&train_assigned, &train.labels));
    extra["k"] = json!(centroids.k);
    extra["inertia"] = json!(centroids.inertia(&train.features));
    extra["trainer_vs_runtime"] =
        json!({"same_cluster": same, "rows": test.len(), "max_relative_distance_diff": max_rel});
    let ds = spec
        .dataset
        .as_ref()
        .ok_or_else(|| anyhow!("no [dataset]"))?;
    extra["dataset"] = json!(ds.path.display().to_string());
    extra["train_samples"] = json!(train.len());
    extra["test_samples"] = json!(test.len());
    extra["f32"] = serde_json::to_value(blob_report(&blob, host_purity)?)?;
    Ok((blob, vectors, extra))
}

/// The trainer's own f64 score of every window of some rows.
pub type ReferenceScores = Box<dyn Fn(&[f32]) -> Result<Vec<f64>>>;

/// Fit the spec's detector on training windows; its blob (with threshold),
/// the threshold, the training scores and the f64 reference scores of `test_rows`.
pub fn fit_detector_parts(
    spec: &ClassicalSpec,
    train_rows: &[f32],
    window: usize,
) -> Result<(Vec<u8>, f32, ReferenceScores)> {
    let mean = train_rows.iter().map(|&v| f64::from(v)).sum::<f64>() / train_rows.len() as f64;
    let var = train_rows
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / train_rows.len() as f64;
    let normalization = Normalization {
        offset: vec![mean as f32; window],
        scale: vec![(1.0 / var.sqrt().max(1e-12)) as f32; window],
    };
    let q = spec.threshold.quantile;
    match spec.kind.as_str() {
        "pca" | "autoencoder" => {
            let z: Vec<f32> = {
                let mut z = vec![0.0; train_rows.len()];
                for (src, dst) in train_rows
                    .chunks_exact(window)
                    .zip(z.chunks_exact_mut(window))
                {
                    normalization.apply(src, dst);
                }
                z
            };
            let r = if spec.kind == "pca" {
                let p = spec.pca.as_ref().ok_or_else(|| anyhow!("no [pca]"))?;
                reconstruct::pca(&z, normalization, p.components)?
            } else {
                let a = spec
                    .autoencoder
                    .as_ref()
                    .ok_or_else(|| anyhow!("no [autoencoder]"))?;
                let activation = match a.activation.as_str() {
                    "relu" => LayerSpec::Relu,
                    "tanh" => LayerSpec::Tanh,
                    "sigmoid" => LayerSpec::Sigmoid,
                    "gelu" => LayerSpec::Gelu,
                    other => {
                        bail!("autoencoder.activation {other:?}: use relu, tanh, sigmoid or gelu")
                    }
                };
                reconstruct::autoencoder(
                    &z,
                    normalization,
                    &a.hidden,
                    activation,
                    AutoencoderTraining {
                        epochs: a.epochs,
                        batch_size: a.batch_size,
                        learning_rate: a.learning_rate,
                        seed: a.seed,
                    },
                )?
            };
            // Threshold from the runtime's own scores of the training windows.
            let plain = reconstruction_blob(&r, None)?;
            let (train_scores, _) =
                run_blob(&plain, train_rows, &vec![0; train_rows.len() / window])?;
            let t: Vec<f64> = train_scores.iter().map(|&v| f64::from(v)).collect();
            let threshold = quantile(&t, q) as f32;
            let blob = reconstruction_blob(&r, Some(threshold))?;
            Ok((
                blob,
                threshold,
                Box::new(move |rows: &[f32]| r.errors(rows)),
            ))
        }
        "isolation-forest" => {
            let f = spec
                .isolation_forest
                .as_ref()
                .ok_or_else(|| anyhow!("no [isolation_forest]"))?;
            let forest = iforest::fit(train_rows, window, f.trees, f.sample_size, f.seed);
            let plain = forest_blob(&forest, None)?;
            let (train_scores, _) =
                run_blob(&plain, train_rows, &vec![0; train_rows.len() / window])?;
            let t: Vec<f64> = train_scores.iter().map(|&v| f64::from(v)).collect();
            let threshold = quantile(&t, q) as f32;
            let blob = forest_blob(&forest, Some(threshold))?;
            Ok((
                blob,
                threshold,
                Box::new(move |rows: &[f32]| {
                    Ok(rows.chunks_exact(window).map(|x| forest.score(x)).collect())
                }),
            ))
        }
        other => bail!("{other} is not an anomaly detector"),
    }
}

/// A detector's windows: training windows, scored test windows and their labels.
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
    /// Load a detector spec's series and cut them into windows.
    pub fn load(spec: &ClassicalSpec) -> Result<DetectorData> {
        let s = spec.series.as_ref().ok_or_else(|| anyhow!("no [series]"))?;
        let train = Series::load(&spec.spec_dir.join(&s.train))?;
        let test = Series::load(&spec.spec_dir.join(&s.test))?;
        let Some(anomaly) = test.anomaly_range() else {
            bail!("the test series has no labelled anomaly");
        };
        let (train_rows, _) = series::windows(&train.values, s.window, s.train_stride, 0);
        if train_rows.is_empty() {
            bail!("the training series is shorter than one window");
        }
        let from = s.test_from.unwrap_or(train.values.len());
        let (test_rows, starts) = series::windows(&test.values, s.window, s.test_stride, from);
        let labels = starts
            .iter()
            .map(|&st| u16::from(st <= anomaly.1 && anomaly.0 < st + s.window))
            .collect();
        Ok(DetectorData {
            train_rows,
            test_rows,
            starts,
            labels,
            anomaly,
            window: s.window,
        })
    }
}

/// A detector blob run over the test windows.
pub struct DetectorRun {
    /// Per window: score and flag.
    pub outputs: Vec<f32>,
    /// Test vectors.
    pub vectors: Vec<u8>,
    /// Per window: the score.
    pub scores: Vec<f32>,
    /// Rank of the labelled anomaly among the score peaks.
    pub rank: Option<usize>,
}

/// Run a detector blob over the test windows (the report's and `eval`'s rank).
pub fn run_detector(blob: &[u8], data: &DetectorData) -> Result<DetectorRun> {
    let (outputs, vectors) = run_blob(blob, &data.test_rows, &data.labels)?;
    let scores: Vec<f32> = outputs.chunks_exact(2).map(|o| o[0]).collect();
    let rank = series::anomaly_rank(&scores, &data.starts, data.window, data.anomaly);
    Ok(DetectorRun {
        outputs,
        vectors,
        scores,
        rank,
    })
}

fn fit_detector(spec: &ClassicalSpec) -> Result<(Vec<u8>, Vec<u8>, serde_json::Value)> {
    let s = spec.series.as_ref().ok_or_else(|| anyhow!("no [series]"))?;
    let data = DetectorData::load(spec)?;
    let DetectorData {
        train_rows,
        test_rows,
        starts,
        labels,
        anomaly,
        ..
    } = &data;
    let (blob, threshold, reference) = fit_detector_parts(spec, train_rows, s.window)?;
    let DetectorRun {
        outputs,
        vectors,
        scores,
        rank,
    } = run_detector(&blob, &data)?;
    let flagged = outputs.chunks_exact(2).filter(|o| o[1] > 0.5).count();
    let flagged_anomalous = outputs
        .chunks_exact(2)
        .zip(labels)
        .filter(|(o, &l)| o[1] > 0.5 && l == 1)
        .count();
    let anomaly = *anomaly;
    let reference = reference(test_rows)?;
    let max_diff = scores
        .iter()
        .zip(&reference)
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max);
    let max_rel = scores
        .iter()
        .zip(&reference)
        .map(|(&a, &b)| (f64::from(a) - b).abs() / b.abs().max(1e-3))
        .fold(0.0, f64::max);
    let rank_json = rank.map_or(serde_json::Value::Null, |r| json!(r));
    Ok((
        blob.clone(),
        vectors,
        json!({
            "metric": {"name": "anomaly_rank", "host": rank_json},
            "dataset": s.test.display().to_string(),
            "series": {
                "window": s.window,
                "stride": s.test_stride,
                "first_start": starts.first().copied().unwrap_or(0),
                "anomaly_first": anomaly.0,
                "anomaly_last": anomaly.1,
            },
            "threshold": threshold,
            "threshold_quantile": spec.threshold.quantile,
            "flagged_windows": flagged,
            "flagged_windows_overlapping_anomaly": flagged_anomalous,
            "windows_overlapping_anomaly": labels.iter().filter(|&&l| l == 1).count(),
            "trainer_vs_runtime": {"max_abs_score_diff": max_diff, "max_rel_score_diff": max_rel},
            "train_samples": train_rows.len() / s.window,
            "test_samples": test_rows.len() / s.window,
            "f32": blob_report(&blob, rank.map_or(0.0, |r| r as f64))?,
        }),
    ))
}
