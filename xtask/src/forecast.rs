//! The causal forecaster's metric from the chip's own outputs: each step's
//! prediction of the next value, its absolute error in raw units, and where
//! the labelled anomaly ranks among the error peaks (the same definitions as
//! the trainer's report, recomputed here from what QEMU printed).

use runtime::{Model, Numeric};
use serde_json::{json, Value};

use crate::chip::ChipRun;
use crate::classical::{anomaly_rank, f32s};

/// Per run (f32 M4, int8 M4, int8 M0): mean absolute error and anomaly rank;
/// `None` for models that are not forecasters.
pub fn chip_metric(report: &Value, runs: &[ChipRun]) -> Option<Value> {
    if report["kind"].as_str()? != "transformer-forecaster" {
        return None;
    }
    let s = &report["series"];
    let stream_from = s["stream_from"].as_u64()? as usize;
    let first_scored = s["scored_from"].as_u64()? as usize - stream_from;
    let anomaly = (
        s["anomaly_first"].as_u64()? as usize,
        s["anomaly_last"].as_u64()? as usize,
    );
    let dir = crate::workspace_root()
        .join("models/exported")
        .join(report["name"].as_str()?);
    // Raw values of the stream: the f32 vectors' inputs.
    let vectors = std::fs::read(dir.join("f32.vectors")).ok()?;
    let stream = f32s(
        runtime::TestVectors::from_bytes(&vectors)
            .ok()?
            .input_bytes(0),
    );
    let per_run: Vec<Value> = runs
        .iter()
        .filter_map(|run| {
            let blob = std::fs::read(dir.join(format!("{}.bin", run.numeric))).ok()?;
            let model = Model::from_bytes(&blob).ok()?;
            let (offset, scale) = model.input_normalization(0)?;
            let bytes = run.outputs.first()?;
            let predictions: Vec<f32> = match model.numeric() {
                Numeric::F32 => f32s(bytes),
                Numeric::Int8 => {
                    let q = model.output_quant()?;
                    bytes
                        .iter()
                        .map(|&b| q.scale * (i32::from(b as i8) - i32::from(q.zero_point)) as f32)
                        .collect()
                }
            };
            // Step t predicts stream point t + 1 (normalized units).
            let errors: Vec<f32> = (first_scored.max(1)..stream.len().min(predictions.len() + 1))
                .map(|p| (predictions[p - 1] - (stream[p] - offset) * scale).abs() / scale)
                .collect();
            let tokens = model.tokens();
            let starts: Vec<usize> = (first_scored.max(1)..)
                .take(errors.len())
                .map(|p| (p + stream_from).saturating_sub(tokens / 2))
                .collect();
            let mean =
                errors.iter().map(|&e| f64::from(e)).sum::<f64>() / errors.len().max(1) as f64;
            Some(json!({
                "run": format!("{} {}", run.numeric, run.core.name()),
                "mean_abs_error": mean,
                "anomaly_rank": anomaly_rank(&errors, &starts, tokens, anomaly),
                "scored_points": errors.len(),
            }))
        })
        .collect();
    Some(json!({"name": "forecast", "runs": per_run}))
}

/// Demo lines: the chip's forecast error and anomaly rank per run.
pub fn describe(report: &Value, chip: Option<&Value>) -> Option<String> {
    let chip = chip?;
    if chip["name"].as_str()? != "forecast" {
        return None;
    }
    let s = &report["series"];
    let mut lines = vec![format!(
        "forecaster: one step per point over the test series ({} steps, from point {}), error = |prediction - next value| in raw units; labelled anomaly at points {}-{}",
        s["stream_steps"], s["stream_from"], s["anomaly_first"], s["anomaly_last"]
    )];
    for r in chip["runs"].as_array()? {
        lines.push(format!(
            "  {}: mean abs error {:.4} over {} points, anomaly ranks {} among the error peaks (host f32 {}, int8 {})",
            r["run"].as_str()?,
            r["mean_abs_error"].as_f64()?,
            r["scored_points"],
            r["anomaly_rank"],
            report["f32_stream"]["anomaly_rank"],
            report["int8_stream"]["anomaly_rank"],
        ));
    }
    Some(lines.join("\n"))
}
