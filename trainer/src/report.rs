//! What an export reports: `report.json` and the one-line summary the
//! trainer prints, the same type for every family.
//!
//! A [`Report`] holds what every export has (the model's name, the figures
//! of each blob, the training time, the fingerprint of what it was made
//! from) and the family's [`Details`], flattened into the same JSON object:
//! `report.json` is one object whose fields `cargo xtask` and the tests read
//! by name. Its `Display` is the summary line.
//!
//! A blob run over the test data gives an [`Evaluation`]: the family's
//! [`Metric`] (what `trainer eval` prints) and the test vectors.

use std::fmt;

use anyhow::{anyhow, Result};
use runtime::{Model, Numeric};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `report.json` of one export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report<D> {
    /// Model name from the spec.
    pub name: String,
    /// The family's own figures.
    #[serde(flatten)]
    pub details: D,
    /// The f32 blob.
    pub f32: BlobReport,
    /// The int8 blob, for families that export one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8: Option<BlobReport>,
    /// Seconds spent training (or fitting).
    pub training_seconds: f64,
    /// Identifies the inputs (spec, data, trainer and runtime source) this
    /// export came from.
    pub fingerprint: String,
}

/// Size and cost of one blob, for reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlobReport {
    /// Blob size (what goes to flash).
    pub blob_bytes: usize,
    /// Working memory inference needs.
    pub arena_bytes: usize,
    /// Weights, biases and quantization parameters.
    pub parameters: usize,
    /// Multiply-accumulates per inference.
    pub macs: usize,
    /// The blob's headline figure on the test data, computed by the runtime
    /// ([`Metric::blob_figure`]: the accuracy of a classifier).
    pub accuracy: f64,
}

impl BlobReport {
    /// Size and cost figures of `blob`, with its headline figure.
    pub fn new(blob: &[u8], figure: f64) -> Result<BlobReport> {
        let model = Model::from_bytes(blob).map_err(|e| anyhow!("{e}"))?;
        let stats = model.stats();
        Ok(BlobReport {
            blob_bytes: blob.len(),
            arena_bytes: model.arena_bytes(),
            parameters: stats.parameters,
            macs: stats.macs,
            accuracy: figure,
        })
    }
}

/// A family's part of a report.
pub trait Details: Serialize + DeserializeOwned {
    /// Shown in parentheses after the model's name in the summary line.
    fn label(&self) -> Option<&str> {
        None
    }
    /// The summary line after `name (label): `, given the blobs' figures.
    fn summary(&self, blobs: Blobs<'_>) -> String;
}

/// The blob figures of a report, as the summary line shows them.
#[derive(Debug, Clone, Copy)]
pub struct Blobs<'a> {
    /// The f32 blob.
    pub f32: &'a BlobReport,
    /// The int8 blob, if any.
    pub int8: Option<&'a BlobReport>,
}

impl fmt::Display for Blobs<'_> {
    /// `blobs 594 B f32 / 1136 B int8, arena 128 B f32 / 32 B int8`, or
    /// `blob 594 B, arena 128 B` for an f32 model alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.int8 {
            Some(int8) => write!(
                f,
                "blobs {} B f32 / {} B int8, arena {} B f32 / {} B int8",
                self.f32.blob_bytes, int8.blob_bytes, self.f32.arena_bytes, int8.arena_bytes
            ),
            None => write!(
                f,
                "blob {} B, arena {} B",
                self.f32.blob_bytes, self.f32.arena_bytes
            ),
        }
    }
}

impl<D: Details> fmt::Display for Report<D> {
    /// The one-line summary `train` and `export` print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(label) = self.details.label() {
            write!(f, " ({label})")?;
        }
        let blobs = Blobs {
            f32: &self.f32,
            int8: self.int8.as_ref(),
        };
        write!(f, ": {}", self.details.summary(blobs))
    }
}

/// `kind` and `runs` of the reports that are not a plain classifier's:
/// how `cargo xtask` tells the metric to compute from the chip's outputs,
/// and which blobs the export has (a classifier's are f32 and int8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kind {
    /// The report kind, e.g. `"kmeans"` or `"transformer-forecaster"`.
    pub kind: String,
    /// The numeric paths exported, `"f32"` and `"int8"`.
    pub runs: Vec<String>,
}

impl Kind {
    /// A report of `kind` with blobs on `runs`.
    pub fn new(kind: &str, runs: &[Numeric]) -> Kind {
        Kind {
            kind: kind.to_string(),
            runs: runs.iter().map(|&n| numeric_name(n).to_string()).collect(),
        }
    }
}

/// `metric` of the reports that are not a plain classifier's: which figure
/// `cargo xtask` computes again from the chip's outputs, and the host's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChipMetric<T> {
    /// `"anomaly_rank"` or `"purity"`.
    pub name: String,
    /// The figure on the host runtime.
    pub host: T,
}

/// `"f32"` or `"int8"`, as file names and reports spell the numeric paths.
pub fn numeric_name(numeric: Numeric) -> &'static str {
    match numeric {
        Numeric::F32 => "f32",
        Numeric::Int8 => "int8",
    }
}

/// What a blob measured on the test data: the figure `trainer eval` prints
/// (its `Display`, after `<blob>: `) and the report records.
pub trait Metric: fmt::Display {
    /// The figure of the blob's [`BlobReport::accuracy`].
    fn blob_figure(&self) -> f64;
}

/// A blob run over the test data by the runtime.
#[derive(Debug, Clone)]
pub struct Evaluation<M> {
    /// What it measured.
    pub metric: M,
    /// The test vectors of the run.
    pub vectors: Vec<u8>,
}

/// An anomaly rank as reports and `eval` print it: the number, or `null`
/// (`none` in `eval`'s words) when no peak overlaps the anomaly.
pub fn rank_text(rank: Option<usize>, none: &str) -> String {
    rank.map_or(none.to_string(), |r| r.to_string())
}
