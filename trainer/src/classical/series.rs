//! Univariate series with labelled anomalies (the UCR anomaly archive's
//! `timestamp,value,is_anomaly` CSV), sliding windows over them, and the
//! metrics the reports use: the anomaly rank among score peaks, and cluster purity.

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

/// Rank of the labelled anomaly among the score peaks (1 = the highest peak).
///
/// Peaks are picked greedily: windows in decreasing score order (ties: earlier
/// first), each kept as a peak unless its start is within `window` points of
/// an already kept peak (so one bump in the score counts once). The rank is
/// the position of the first kept peak whose window `[start, start + window)`
/// overlaps the labelled anomaly `[first, last]`; `None` if none does.
/// NaN scores sort last.
pub fn anomaly_rank(
    scores: &[f32],
    starts: &[usize],
    window: usize,
    anomaly: (usize, usize),
) -> Option<usize> {
    let mut order: Vec<usize> = (0..scores.len().min(starts.len())).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (scores[a], scores[b]);
        y.partial_cmp(&x)
            .unwrap_or_else(|| x.is_nan().cmp(&y.is_nan()))
            .then(a.cmp(&b))
    });
    let mut peaks: Vec<usize> = Vec::new();
    for i in order {
        let s = starts[i];
        if peaks.iter().any(|&p| p.abs_diff(s) < window) {
            continue;
        }
        peaks.push(s);
        if s <= anomaly.1 && anomaly.0 < s + window {
            return Some(peaks.len());
        }
    }
    None
}

/// Cluster purity: each cluster counts its most common true label; the sum over
/// clusters divided by the number of rows.
pub fn purity(clusters: &[usize], labels: &[usize]) -> f64 {
    let mut counts = std::collections::HashMap::<(usize, usize), usize>::new();
    for (&c, &l) in clusters.iter().zip(labels) {
        *counts.entry((c, l)).or_default() += 1;
    }
    let mut best = std::collections::HashMap::<usize, usize>::new();
    for (&(c, _), &n) in &counts {
        let b = best.entry(c).or_default();
        *b = (*b).max(n);
    }
    best.values().sum::<usize>() as f64 / labels.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_counts_each_bump_once() {
        // Two windows of a bump at 0..8 outscore the anomaly at 40.
        let starts = [0, 4, 8, 20, 40, 44];
        let scores = [0.9, 0.95, 0.1, 0.2, 0.8, 0.7];
        assert_eq!(anomaly_rank(&scores, &starts, 16, (42, 45)), Some(2));
        assert_eq!(anomaly_rank(&scores, &starts, 16, (4, 5)), Some(1));
        // Conservative: a window on the anomaly suppressed by a peak that does
        // not itself overlap the anomaly does not count.
        assert_eq!(anomaly_rank(&scores, &starts, 16, (1, 2)), None);
    }

    #[test]
    fn purity_of_perfect_and_mixed_clusters() {
        assert_eq!(purity(&[0, 0, 1, 1], &[3, 3, 5, 5]), 1.0);
        assert_eq!(purity(&[0, 0, 0, 0], &[3, 3, 5, 5]), 0.5);
    }
}
