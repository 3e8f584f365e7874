//! `cargo xtask demo`, and the JSON writer the commands share.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::chip::{self, ChipRun, Core};
use crate::{toolchain, trainer};

/// The demo's report: `models/exported/` for the whole demo, beside the
/// export for one model (`cargo xtask demo --model`).
pub const DEMO_REPORT: &str = "demo-report.json";

/// Write `value` as pretty JSON to `path` atomically (temp file, then rename).
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// Run one exported model's `numeric` blob on `core`.
pub fn run_exported(model: &trainer::Exported, numeric: &str, core: Core) -> Result<ChipRun> {
    chip::run_on_chip(
        core,
        &model.file(&format!("{numeric}.bin")),
        &model.file(&format!("{numeric}.vectors")),
    )
}

#[derive(Serialize)]
struct DemoModel {
    name: String,
    host_f32_accuracy: Option<f64>,
    host_int8_accuracy: Option<f64>,
    test_samples: Option<u64>,
    runs: Vec<ChipRun>,
    /// Classical kinds: the metric computed from the chip's outputs (see `classical.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    chip_metric: Option<serde_json::Value>,
}

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:.2}%", 100.0 * v))
        .unwrap_or_else(|| "-".into())
}

/// `cargo xtask demo`, for every spec or (`only`: a name or a spec file)
/// for one: the user's loop with their own data.
pub fn demo(export: bool, only: Option<&str>) -> Result<bool> {
    toolchain::check()?;
    let models = match only {
        Some(name) => vec![trainer::exported_model(&trainer::find_spec(name)?, export)?],
        None => trainer::exported_models(export)?,
    };
    if models.is_empty() {
        bail!("no model specs in models/specs/*.toml");
    }
    let mut all = Vec::new();
    let mut ok = true;
    for model in &models {
        let report = model.report();
        let mut runs = Vec::new();
        for (numeric, core) in model.demo_runs() {
            runs.push(
                run_exported(model, numeric, core)
                    .with_context(|| format!("{} {numeric} on {}", model.name, core.name()))?,
            );
        }
        let demo = DemoModel {
            name: model.name.clone(),
            host_f32_accuracy: report["f32_accuracy"].as_f64(),
            host_int8_accuracy: report["int8_accuracy"].as_f64(),
            test_samples: report["test_samples"].as_u64(),
            chip_metric: crate::classical::chip_metric(&report, &runs)
                .or_else(|| crate::forecast::chip_metric(&report, &runs)),
            runs,
        };
        println!(
            "\n== {} ({} test samples)",
            demo.name,
            demo.test_samples
                .map(|n| n.to_string())
                .unwrap_or("?".into())
        );
        println!(
            "{:<10} {:>9} {:>9} {:>22} {:>9} {:>8} {:>7} {:>12} {:>7}",
            "run",
            "host acc",
            "chip acc",
            "host vs QEMU",
            "flash",
            "RAM",
            "arena",
            "instr/inf",
            "stack"
        );
        for r in &demo.runs {
            let host = if r.numeric == "f32" {
                demo.host_f32_accuracy
            } else {
                demo.host_int8_accuracy
            };
            let same = format!(
                "{}/{} {}",
                r.identical,
                r.vectors,
                if r.mismatches == 0 {
                    "identical"
                } else {
                    "DIFFER"
                }
            );
            println!(
                "{:<10} {:>9} {:>9} {:>22} {:>9} {:>8} {:>7} {:>12.0} {:>7}",
                format!("{} {}", r.numeric, r.core.name()),
                pct(host),
                // Argmax accuracy means nothing for clustering and detectors:
                // their metric is printed under the table (classical.rs).
                if report["metric"].is_object() {
                    "-".to_string()
                } else {
                    pct(Some(r.chip_accuracy))
                },
                same,
                r.flash_bytes,
                r.ram_bytes,
                r.arena_bytes,
                r.mean_instructions,
                r.stack_bytes
            );
            if let Some(m) = &r.first_mismatch {
                println!("  first mismatch: {m}");
                ok = false;
            }
        }
        if let Some(lines) = crate::recurrent::describe(&demo.runs) {
            println!("{lines}");
        }
        if let Some(line) = crate::classical::describe(&report, demo.chip_metric.as_ref()) {
            println!("{line}");
        }
        if let Some(lines) = crate::forecast::describe(&report, demo.chip_metric.as_ref()) {
            println!("{lines}");
        }
        all.push(demo);
    }
    // One model's run goes beside its export, not over the whole report.
    let path = match (only, models.first()) {
        (Some(_), Some(model)) => model.file(DEMO_REPORT),
        _ => crate::workspace_root()
            .join("models/exported")
            .join(DEMO_REPORT),
    };
    write_json_atomic(&path, &all)?;
    println!("\nwrote {}", path.display());
    Ok(ok)
}
