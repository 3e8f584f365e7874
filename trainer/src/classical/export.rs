//! The classical kinds' runs over the test data, and their reports. Every
//! blob is f32 (these run on the Cortex-M4; the M0 runs int8 models only).
//!
//! `report.json` carries `kind`, `runs` (`["f32"]`) and `metric`
//! (`{"name": "anomaly_rank" | "purity", "host": ...}`), so `cargo xtask`
//! knows which metric to compute from the chip's outputs. For detectors,
//! `series` gives the window length, the start of every scored window
//! (`first_start + i * stride`) and the labelled anomaly, and each vector's
//! label is 1 when its window overlaps the anomaly. For clustering, labels
//! are the true classes.

use std::fmt;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::clustering::{Clusters, InertiaAt};
use super::detector::{Detector, DetectorData};
use super::spec::DetectorSpec;
use crate::dataset::{Dataset, SeriesSpec};
use crate::metrics::{anomaly_rank, purity};
use crate::report::{rank_text, Blobs, ChipMetric, Details, Kind, Metric};
use crate::runner::run_rows;

/// A nearest-centroid blob run over the test rows.
#[derive(Debug, Clone)]
pub struct ClusterRun {
    /// Per row: cluster and squared distance.
    pub outputs: Vec<f32>,
    /// Purity of the runtime's assignment.
    pub purity: f64,
    /// Test rows.
    pub rows: usize,
}

/// Run a clustering blob over `test` (the report's and `eval`'s purity);
/// the run and the test vectors (labels are the true classes).
pub fn run_clustering(blob: &[u8], test: &Dataset) -> Result<(ClusterRun, Vec<u8>)> {
    let labels: Vec<u16> = test.labels.iter().map(|&l| l as u16).collect();
    let run = run_rows(blob, &test.features, &labels)?;
    let assigned: Vec<usize> = run.outputs.chunks_exact(2).map(|o| o[0] as usize).collect();
    let purity = purity(&assigned, &test.labels);
    Ok((
        ClusterRun {
            outputs: run.outputs,
            purity,
            rows: test.len(),
        },
        run.vectors,
    ))
}

/// A detector blob run over the test windows.
#[derive(Debug, Clone)]
pub struct DetectorRun {
    /// Per window: score and flag.
    pub outputs: Vec<f32>,
    /// Per window: the score.
    pub scores: Vec<f32>,
    /// Rank of the labelled anomaly among the score peaks.
    pub rank: Option<usize>,
}

/// Run a detector blob over the test windows (the report's and `eval`'s
/// rank); the run and the test vectors.
pub fn run_detector(blob: &[u8], data: &DetectorData) -> Result<(DetectorRun, Vec<u8>)> {
    let run = run_rows(blob, &data.test_rows, &data.labels)?;
    let scores: Vec<f32> = run.outputs.chunks_exact(2).map(|o| o[0]).collect();
    let rank = anomaly_rank(&scores, &data.starts, data.window, data.anomaly);
    Ok((
        DetectorRun {
            outputs: run.outputs,
            scores,
            rank,
        },
        run.vectors,
    ))
}

/// What a classical blob measures on the test data.
#[derive(Debug, Clone)]
pub enum ClassicalMetric {
    /// Clustering: cluster purity of the test rows.
    Purity(ClusterRun),
    /// A detector: the labelled anomaly's rank among the score peaks.
    AnomalyRank(DetectorRun),
}

impl Metric for ClassicalMetric {
    fn blob_figure(&self) -> f64 {
        match self {
            ClassicalMetric::Purity(c) => c.purity,
            ClassicalMetric::AnomalyRank(d) => d.rank.map_or(0.0, |r| r as f64),
        }
    }
}

impl fmt::Display for ClassicalMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClassicalMetric::Purity(c) => {
                write!(f, "purity {:.2}% on {} test rows", 100.0 * c.purity, c.rows)
            }
            ClassicalMetric::AnomalyRank(d) => write!(
                f,
                "anomaly rank {} among the score peaks over {} test windows",
                rank_text(d.rank, "none"),
                d.scores.len()
            ),
        }
    }
}

/// The classical family's report part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassicalReport {
    /// k-means or hierarchical clustering.
    Clustering(ClusteringReport),
    /// An anomaly detector.
    Detector(DetectorReport),
}

/// A clustering report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusteringReport {
    /// The kind, runs f32.
    #[serde(flatten)]
    pub kind: Kind,
    /// Purity of the test rows (runtime).
    pub metric: ChipMetric<f64>,
    /// Dataset path as given in the spec.
    pub dataset: String,
    /// Purity of the training rows (trainer).
    pub train_purity: f64,
    /// Clusters.
    pub k: usize,
    /// Sum of squared distances of the training rows to their centroid.
    pub inertia: f64,
    /// k-means: the inertia over `k_range` (the elbow curve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inertia_by_k: Option<Vec<InertiaAt>>,
    /// Hierarchical: the linkage (`"ward"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linkage: Option<String>,
    /// Trainer vs runtime on the test rows.
    pub trainer_vs_runtime: ClusterParity,
    /// Training rows.
    pub train_samples: usize,
    /// Test rows (and test vectors).
    pub test_samples: usize,
}

/// Trainer vs runtime on the test rows: same cluster, squared distances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterParity {
    /// Rows assigned the same cluster.
    pub same_cluster: usize,
    /// Test rows.
    pub rows: usize,
    /// Largest relative difference of the squared distance.
    pub max_relative_distance_diff: f64,
}

/// A detector report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorReport {
    /// The kind, runs f32.
    #[serde(flatten)]
    pub kind: Kind,
    /// The labelled anomaly's rank (runtime).
    pub metric: ChipMetric<Option<usize>>,
    /// The test series as given in the spec.
    pub dataset: String,
    /// The scored windows.
    pub series: WindowSeries,
    /// The decision threshold.
    pub threshold: f64,
    /// Which quantile of the training scores it is.
    pub threshold_quantile: f64,
    /// Test windows above the threshold.
    pub flagged_windows: usize,
    /// Of those, the ones overlapping the labelled anomaly.
    pub flagged_windows_overlapping_anomaly: usize,
    /// Test windows overlapping the labelled anomaly.
    pub windows_overlapping_anomaly: usize,
    /// Trainer vs runtime scores on the test windows.
    pub trainer_vs_runtime: ScoreParity,
    /// Training windows.
    pub train_samples: usize,
    /// Test windows (and test vectors).
    pub test_samples: usize,
}

/// Which windows of the test series were scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSeries {
    /// Points per window.
    pub window: usize,
    /// Step between scored windows.
    pub stride: usize,
    /// Start of the first scored window.
    pub first_start: usize,
    /// First labelled anomalous point.
    pub anomaly_first: usize,
    /// Last labelled anomalous point.
    pub anomaly_last: usize,
}

/// Trainer vs runtime scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreParity {
    /// Largest absolute difference.
    pub max_abs_score_diff: f64,
    /// Largest relative difference (relative to at least 1e-3).
    pub max_rel_score_diff: f64,
}

impl Details for ClassicalReport {
    fn label(&self) -> Option<&str> {
        Some(match self {
            ClassicalReport::Clustering(r) => &r.kind.kind,
            ClassicalReport::Detector(r) => &r.kind.kind,
        })
    }

    fn summary(&self, blobs: Blobs<'_>) -> String {
        let (name, host) = match self {
            ClassicalReport::Clustering(r) => (&r.metric.name, r.metric.host.to_string()),
            ClassicalReport::Detector(r) => (&r.metric.name, rank_text(r.metric.host, "null")),
        };
        format!("{name} {host}  {blobs}")
    }
}

/// A clustering report from the fitted clusters and the test run.
pub fn clustering_report(
    kind: &str,
    dataset: String,
    (train, test): (&Dataset, &Dataset),
    clusters: &Clusters,
    run: &ClusterRun,
) -> ClusteringReport {
    let centroids = &clusters.centroids;
    let train_assigned: Vec<usize> = (0..train.len())
        .map(|i| centroids.assign(train.row(i)).0)
        .collect();
    // Trainer vs runtime: same cluster, squared distance within a relative 1e-5.
    let mut same = 0;
    let mut max_rel = 0.0f64;
    for (i, o) in run.outputs.chunks_exact(2).enumerate() {
        let (c, d) = centroids.assign(test.row(i));
        same += usize::from(c == o[0] as usize);
        max_rel = max_rel.max((f64::from(o[1]) - d).abs() / d.max(1.0));
    }
    ClusteringReport {
        kind: Kind::new(kind, crate::family::F32_ONLY),
        metric: ChipMetric {
            name: "purity".into(),
            host: run.purity,
        },
        dataset,
        train_purity: purity(&train_assigned, &train.labels),
        k: centroids.k,
        inertia: centroids.inertia(&train.features),
        inertia_by_k: clusters.inertia_by_k.clone(),
        linkage: clusters.linkage.map(str::to_string),
        trainer_vs_runtime: ClusterParity {
            same_cluster: same,
            rows: test.len(),
            max_relative_distance_diff: max_rel,
        },
        train_samples: train.len(),
        test_samples: test.len(),
    }
}

/// A detector report from the fitted detector and the test run.
pub fn detector_report(
    kind: &str,
    (series, d): (&SeriesSpec, &DetectorSpec),
    data: &DetectorData,
    detector: &Detector,
    run: &DetectorRun,
) -> Result<DetectorReport> {
    let flagged = run.outputs.chunks_exact(2).filter(|o| o[1] > 0.5).count();
    let flagged_anomalous = run
        .outputs
        .chunks_exact(2)
        .zip(&data.labels)
        .filter(|(o, &l)| o[1] > 0.5 && l == 1)
        .count();
    let reference = detector.reference.scores(&data.test_rows)?;
    let diffs = run.scores.iter().zip(&reference);
    let max_diff = diffs
        .clone()
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max);
    let max_rel = diffs
        .map(|(&a, &b)| (f64::from(a) - b).abs() / b.abs().max(1e-3))
        .fold(0.0, f64::max);
    Ok(DetectorReport {
        kind: Kind::new(kind, crate::family::F32_ONLY),
        metric: ChipMetric {
            name: "anomaly_rank".into(),
            host: run.rank,
        },
        dataset: series.test.display().to_string(),
        series: WindowSeries {
            window: d.window,
            stride: d.test_stride,
            first_start: data.starts.first().copied().unwrap_or(0),
            anomaly_first: data.anomaly.0,
            anomaly_last: data.anomaly.1,
        },
        threshold: f64::from(detector.threshold),
        threshold_quantile: d.threshold.quantile,
        flagged_windows: flagged,
        flagged_windows_overlapping_anomaly: flagged_anomalous,
        windows_overlapping_anomaly: data.labels.iter().filter(|&&l| l == 1).count(),
        trainer_vs_runtime: ScoreParity {
            max_abs_score_diff: max_diff,
            max_rel_score_diff: max_rel,
        },
        train_samples: data.train_rows.len() / d.window,
        test_samples: data.test_rows.len() / d.window,
    })
}
