//! Per-kind metrics computed from the chip's own outputs, for the classical
//! kinds (`report.json` `kind`, written by `trainer/src/classical/`):
//!
//! - `kmeans`, `hierarchical`: cluster purity of the chip's assignments
//!   (output 0 is the cluster index) against the true labels of the vectors;
//! - `pca`, `autoencoder`, `isolation-forest`: the rank of the labelled
//!   anomaly among the peaks of the chip's scores (output 0), with the windows
//!   and the anomaly described by `report.json`'s `series`, and how many windows
//!   the chip's decision (output 1) flags.
//!
//! The definitions match the trainer's (`trainer::metrics`), which
//! reports the same metrics from the host runtime's outputs; the demo prints both.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::chip::ChipRun;

pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Purity: each cluster counts its most common label; the sum over rows.
fn purity(clusters: &[usize], labels: &[usize]) -> f64 {
    let mut counts = HashMap::<(usize, usize), usize>::new();
    for (&c, &l) in clusters.iter().zip(labels) {
        *counts.entry((c, l)).or_default() += 1;
    }
    let mut best = HashMap::<usize, usize>::new();
    for (&(c, _), &n) in &counts {
        let b = best.entry(c).or_default();
        *b = (*b).max(n);
    }
    best.values().sum::<usize>() as f64 / labels.len().max(1) as f64
}

/// Rank of the anomaly among score peaks: windows in decreasing score order
/// (ties: earlier first, NaN last), each kept unless its start is within
/// `window` points of a kept peak; the rank is the 1-based position of the
/// first kept peak whose window overlaps `[first, last]`.
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

/// The chip-side metric of a classical export, from its f32 run; `None` for MLPs.
pub fn chip_metric(report: &Value, runs: &[ChipRun]) -> Option<Value> {
    let name = report["metric"]["name"].as_str()?;
    let run = runs.iter().find(|r| r.numeric == "f32")?;
    let outputs: Vec<Vec<f32>> = run.outputs.iter().map(|b| f32s(b)).collect();
    let labels = run_labels(report, run)?;
    match name {
        "purity" => {
            let clusters: Vec<usize> = outputs
                .iter()
                .map(|o| o.first().map_or(usize::MAX, |&c| c as usize))
                .collect();
            Some(json!({"name": "purity", "chip": purity(&clusters, &labels)}))
        }
        "anomaly_rank" => {
            let s = &report["series"];
            let window = s["window"].as_u64()? as usize;
            let stride = s["stride"].as_u64()? as usize;
            let first = s["first_start"].as_u64()? as usize;
            let anomaly = (
                s["anomaly_first"].as_u64()? as usize,
                s["anomaly_last"].as_u64()? as usize,
            );
            let starts: Vec<usize> = (0..outputs.len()).map(|i| first + i * stride).collect();
            let scores: Vec<f32> = outputs
                .iter()
                .map(|o| o.first().copied().unwrap_or(f32::NAN))
                .collect();
            let flagged = outputs
                .iter()
                .filter(|o| o.get(1).is_some_and(|&d| d > 0.5))
                .count();
            let flagged_anomaly = outputs
                .iter()
                .zip(&labels)
                .filter(|(o, &l)| l == 1 && o.get(1).is_some_and(|&d| d > 0.5))
                .count();
            Some(json!({
                "name": "anomaly_rank",
                "chip": anomaly_rank(&scores, &starts, window, anomaly),
                "flagged_windows": flagged,
                "flagged_windows_overlapping_anomaly": flagged_anomaly,
            }))
        }
        _ => None,
    }
}

/// Labels of the vectors the run used (re-read from the vectors file).
fn run_labels(report: &Value, run: &ChipRun) -> Option<Vec<usize>> {
    let name = report["name"].as_str()?;
    let path = crate::workspace_root()
        .join("models/exported")
        .join(name)
        .join(format!("{}.vectors", run.numeric));
    let bytes = std::fs::read(path).ok()?;
    let v = runtime::TestVectors::from_bytes(&bytes).ok()?;
    Some(
        (0..v.count as usize)
            .map(|i| usize::from(v.label(i)))
            .collect(),
    )
}

/// One line for the demo: the kind's metric on the chip next to the host's.
pub fn describe(report: &Value, chip: Option<&Value>) -> Option<String> {
    let kind = report["kind"].as_str()?;
    if kind == "self-training" {
        let st = &report["self_training"];
        return Some(format!(
            "self-training: test accuracy {:.2}% with pseudo-labels vs {:.2}% on the labelled {:.0}% alone (host runtime, f32); chip accuracy above",
            100.0 * st["self_trained_accuracy"].as_f64()?,
            100.0 * st["labelled_only_accuracy"].as_f64()?,
            100.0 * st["labelled_fraction"].as_f64()?,
        ));
    }
    let chip = chip?;
    match chip["name"].as_str()? {
        "purity" => Some(format!(
            "{kind}: purity on the test split {:.2}% on the chip (host {:.2}%), k = {}",
            100.0 * chip["chip"].as_f64()?,
            100.0 * report["metric"]["host"].as_f64()?,
            report["k"]
        )),
        "anomaly_rank" => Some(format!(
            "{kind}: labelled anomaly ranks {} among the chip's score peaks (host {}); threshold {:.4e} flags {} windows on the chip, {} of the {} overlapping the anomaly",
            chip["chip"],
            report["metric"]["host"],
            report["threshold"].as_f64()?,
            chip["flagged_windows"],
            chip["flagged_windows_overlapping_anomaly"],
            report["windows_overlapping_anomaly"],
        )),
        _ => None,
    }
}
