//! Data: the spec tables that name it, reading it, splitting it and fitting
//! the input normalization. No family reads a file or fits a normalization
//! of its own.
//!
//! | module | holds |
//! | --- | --- |
//! | [`table`] | labelled rows from a CSV ([`Dataset`]), the stratified train/test split |
//! | [`sequences`] | labelled multichannel sequences from `.ts` files ([`Sequences`]) |
//! | [`series`] | a univariate series with labelled anomalies ([`Series`]) and windows over it |
//! | [`normalize`] | the input normalization every blob carries ([`Normalization`]) and its fits |
//!
//! A spec names its data in one of two tables: `[dataset]` ([`DatasetSpec`]:
//! a CSV split by `test_fraction`, or a `.ts` TRAIN/TEST pair) or `[series]`
//! ([`SeriesSpec`]: a normal training series and a test series with a
//! labelled anomaly). The loaders here check what the runtime would refuse
//! and only the data can tell (the input width, the class count) as soon as
//! the data is read; every error names its file.

pub mod normalize;
pub mod sequences;
pub mod series;
pub mod table;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub use normalize::Normalization;
pub use sequences::Sequences;
pub use series::Series;
pub use table::{CsvOptions, DataError, Dataset, LabelColumn};

use crate::limits;

/// A fixed input length reached by padding or cropping, for models that
/// read a whole sequence (or row) as one input of a set length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// Extend to this many time steps (values of a row) by repeating the
    /// last one; longer inputs are an error.
    Pad(usize),
    /// Keep the first this many time steps (values of a row); shorter
    /// inputs are an error.
    Crop(usize),
}

impl Resize {
    /// The length reached.
    pub fn length(self) -> usize {
        match self {
            Resize::Pad(n) | Resize::Crop(n) => n,
        }
    }

    /// `values` (`steps x width`, time-major) at the resized length; the
    /// problem when it cannot be reached, counting steps in `unit`s.
    pub fn apply(self, values: &[f32], width: usize, unit: &str) -> Result<Vec<f32>, String> {
        let width = width.max(1);
        let steps = values.len() / width;
        match self {
            Resize::Pad(n) if steps > n => Err(format!(
                "{steps} {unit}, more than pad_to = {n} (crop_to crops)"
            )),
            Resize::Pad(_) if steps == 0 => Err(format!("no {unit} to pad")),
            Resize::Pad(n) => {
                let mut out = values[..steps * width].to_vec();
                let last = values[(steps - 1) * width..steps * width].to_vec();
                for _ in steps..n {
                    out.extend_from_slice(&last);
                }
                Ok(out)
            }
            Resize::Crop(n) if steps < n => Err(format!(
                "{steps} {unit}, fewer than crop_to = {n} (pad_to pads)"
            )),
            Resize::Crop(n) => Ok(values[..n * width].to_vec()),
        }
    }
}

/// Labelled examples, rows or sequences.
pub trait Labelled {
    /// Number of examples.
    fn count(&self) -> usize;
    /// Class names (index = class id).
    fn class_names(&self) -> &[String];
}

impl Labelled for Dataset {
    fn count(&self) -> usize {
        self.len()
    }
    fn class_names(&self) -> &[String] {
        &self.class_names
    }
}

impl Labelled for Sequences {
    fn count(&self) -> usize {
        self.len()
    }
    fn class_names(&self) -> &[String] {
        &self.class_names
    }
}

/// The `[dataset]` table: labelled rows or sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// CSV, gzip CSV or `.ts` file, relative to the spec file (or absolute).
    pub path: PathBuf,
    /// Which CSV column holds the label.
    #[serde(default)]
    pub label_column: LabelColumn,
    /// Whether the CSV's first row (after `skip_rows`) is a header; `None`
    /// auto-detects (a header has a feature cell that is not a number).
    #[serde(default)]
    pub header: Option<bool>,
    /// CSV lines at the top of the file not read at all (default 0).
    #[serde(default)]
    pub skip_rows: usize,
    /// The CSV's cell separator, one ASCII character (default `","`; `"\t"`
    /// for tabs).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Share of each class held out for testing, in (0, 1).
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Seed of the train/test split.
    #[serde(default)]
    pub seed: u64,
    /// A separate test file (relative to the spec file), used as the test
    /// split instead of `test_fraction`; `.ts` datasets come as TRAIN/TEST pairs.
    #[serde(default)]
    pub test_path: Option<PathBuf>,
}

fn default_test_fraction() -> f64 {
    0.2
}

impl DatasetSpec {
    /// How to read the CSV (the delimiter checked by [`Self::delimiter_byte`]).
    pub fn csv_options(&self) -> CsvOptions {
        CsvOptions {
            label_column: self.label_column.clone(),
            header: self.header,
            skip_rows: self.skip_rows,
            delimiter: self.delimiter_byte().unwrap_or(b','),
        }
    }

    /// The delimiter as the byte the CSV reader splits at, or why it
    /// cannot be one.
    pub fn delimiter_byte(&self) -> Result<u8, String> {
        let Some(text) = &self.delimiter else {
            return Ok(b',');
        };
        match text.as_bytes() {
            [b'"' | b'\n' | b'\r'] => Err(format!(
                "{text:?} cannot separate cells (it quotes or ends rows)"
            )),
            [byte] if byte.is_ascii() => Ok(*byte),
            _ => Err(format!(
                "must be one ASCII character such as \",\", \";\" or \"\\t\", got {text:?}"
            )),
        }
    }

    /// Whether the data is a `.ts` sequence file (else a CSV).
    pub fn is_sequences(&self) -> bool {
        self.path.extension().is_some_and(|e| e == "ts")
    }
}

/// The `[series]` table: a normal training series and a test series with a
/// labelled anomaly (`timestamp,value,is_anomaly` CSVs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesSpec {
    /// Normal training series.
    pub train: PathBuf,
    /// Test series with the labelled anomaly; it may begin with the training part.
    pub test: PathBuf,
    /// Step between training windows (default 1).
    #[serde(default = "one")]
    pub train_stride: usize,
    /// Window-scoring detectors: points per window.
    #[serde(default)]
    pub window: Option<usize>,
    /// Window-scoring detectors: step between scored test windows (default 4).
    #[serde(default)]
    pub test_stride: Option<usize>,
    /// Window-scoring detectors: score test windows from this point (default:
    /// the training length, so only the part after the training series).
    #[serde(default)]
    pub test_from: Option<usize>,
}

fn one() -> usize {
    1
}

/// The rows of a CSV `[dataset]`, split into `(train, test)` as the table
/// says; both must be non-empty.
pub fn load_split(spec: &DatasetSpec, dir: &Path) -> Result<(Dataset, Dataset)> {
    let path = dir.join(&spec.path);
    let all = table::load_csv(&path, &spec.csv_options())?;
    limits::check_data(
        &path,
        &[
            ("input width", all.feature_count),
            ("class count", all.class_count()),
        ],
    )?;
    let (train, test) = table::split_stratified(&all, spec.test_fraction, spec.seed);
    if train.is_empty() || test.is_empty() {
        bail!("the dataset is too small to split into train and test");
    }
    Ok((train, test))
}

/// The `(train, test)` sequences of a `.ts` `[dataset]` (`path` and
/// `test_path`), with the same channels and classes.
pub fn load_sequences(spec: &DatasetSpec, dir: &Path) -> Result<(Sequences, Sequences)> {
    let path = dir.join(&spec.path);
    let Some(test_path) = &spec.test_path else {
        bail!(
            "{}: a sequence dataset needs dataset.test_path (the TEST .ts file)",
            path.display()
        );
    };
    let train = sequences::load(&path)?;
    limits::check_data(&path, &[("class count", train.class_count())])?;
    let test = sequences::load(&dir.join(test_path))?;
    if test.channels != train.channels || test.class_names != train.class_names {
        bail!("the test file's channels or class labels differ from the training file's");
    }
    Ok((train, test))
}

/// The training and test series of a `[series]` table, and the first and
/// last point of the test series' labelled anomaly.
pub fn load_series(spec: &SeriesSpec, dir: &Path) -> Result<(Series, Series, (usize, usize))> {
    let train = Series::load(&dir.join(&spec.train))?;
    let test = Series::load(&dir.join(&spec.test))?;
    let Some(anomaly) = test.anomaly_range() else {
        bail!("the test series has no labelled anomaly");
    };
    Ok((train, test, anomaly))
}
