//! A univariate series with labelled anomalies (the UCR anomaly archive's
//! `timestamp,value,is_anomaly` CSV), and sliding windows over it: what
//! anomaly detectors and forecasters train and are scored on.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// A series and its per-point anomaly labels.
#[derive(Debug, Clone)]
pub struct Series {
    /// Values in time order.
    pub values: Vec<f32>,
    /// `true` where the point is labelled anomalous.
    pub anomalous: Vec<bool>,
}

impl Series {
    /// Read a `timestamp,value,is_anomaly` CSV with a header row.
    pub fn load(path: &Path) -> Result<Series> {
        let text = crate::io::read_text(path, "series")?;
        let mut values = Vec::new();
        let mut anomalous = Vec::new();
        for (n, line) in text.lines().enumerate().skip(1) {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let cells: Vec<&str> = line.split(',').collect();
            let (Some(v), Some(a)) = (cells.get(1), cells.get(2)) else {
                bail!(
                    "{}:{}: expected timestamp,value,is_anomaly",
                    path.display(),
                    n + 1
                );
            };
            let v: f32 = v.trim().parse().with_context(|| {
                format!("{}:{}: value {v:?} is not a number", path.display(), n + 1)
            })?;
            if !v.is_finite() {
                bail!("{}:{}: value is not finite", path.display(), n + 1);
            }
            values.push(v);
            anomalous.push(a.trim() == "1");
        }
        if values.is_empty() {
            bail!("{}: no rows", path.display());
        }
        Ok(Series { values, anomalous })
    }

    /// First and last (inclusive) labelled anomalous point, if any.
    pub fn anomaly_range(&self) -> Option<(usize, usize)> {
        let first = self.anomalous.iter().position(|&a| a)?;
        let last = self.anomalous.iter().rposition(|&a| a)?;
        Some((first, last))
    }
}

/// Windows of `len` points starting at `from`, `from + stride`, ... (while
/// they fit), row-major, with their start indices.
pub fn windows(values: &[f32], len: usize, stride: usize, from: usize) -> (Vec<f32>, Vec<usize>) {
    let mut rows = Vec::new();
    let mut starts = Vec::new();
    let mut s = from;
    while s + len <= values.len() {
        rows.extend_from_slice(&values[s..s + len]);
        starts.push(s);
        s += stride.max(1);
    }
    (rows, starts)
}
