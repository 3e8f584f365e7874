//! `cargo xtask demo` and `cargo xtask test`, and the JSON writer they share.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::chip::{self, ChipRun, Core};
use crate::{synth, toolchain, trainer};
use runtime::Numeric;

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

/// The three chip runs of an exported model: f32 on M4, int8 on M4 and M0.
pub const RUNS: [(&str, Core); 3] = [("f32", Core::M4), ("int8", Core::M4), ("int8", Core::M0)];

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

/// `cargo xtask demo`.
pub fn demo(export: bool) -> Result<bool> {
    toolchain::check()?;
    let models = trainer::exported_models(export)?;
    if models.is_empty() {
        bail!("no model specs in models/specs/*.toml");
    }
    let mut all = Vec::new();
    let mut ok = true;
    for model in &models {
        let report = model.report();
        let mut runs = Vec::new();
        for (numeric, core) in model.runs() {
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
    let path = crate::workspace_root().join("models/exported/demo-report.json");
    write_json_atomic(&path, &all)?;
    println!("\nwrote {}", path.display());
    Ok(ok)
}

/// Print one parity line and count it.
/// Peak stack any model may use: half of the smallest target's RAM (the
/// Cortex-M0 micro:bit's 16 KiB), so that arena, recurrent state, statics and
/// the application keep the other half. Measured by painting the stack in the
/// firmware; the figure includes the firmware's own frames (formatting,
/// semihosting), not only the runtime's.
pub const STACK_BUDGET_BYTES: u64 = 8 * 1024;

fn tally(label: &str, run: Result<ChipRun>, passed: &mut usize, failed: &mut usize) {
    match run {
        Ok(r) if r.mismatches == 0 && r.vectors > 0 && r.stack_bytes > STACK_BUDGET_BYTES => {
            println!(
                "{label}: {}/{} bit-identical, but peak stack {} B is over the {} B budget FAILED",
                r.identical, r.vectors, r.stack_bytes, STACK_BUDGET_BYTES
            );
            *failed += 1;
        }
        Ok(r) if r.mismatches == 0 && r.vectors > 0 => {
            println!(
                "{label}: {}/{} bit-identical, stack {} B (budget {} B)",
                r.identical, r.vectors, r.stack_bytes, STACK_BUDGET_BYTES
            );
            *passed += 1;
        }
        Ok(r) => {
            println!(
                "{label}: {}/{} bit-identical FAILED ({})",
                r.identical,
                r.vectors,
                r.first_mismatch.as_deref().unwrap_or("no vectors")
            );
            *failed += 1;
        }
        Err(e) => {
            println!("{label}: FAILED: {e:#}");
            *failed += 1;
        }
    }
}

/// `cargo xtask test`.
pub fn test() -> Result<bool> {
    let root = crate::workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut ok = true;

    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["test", "--workspace"])
        .status()?;
    if !status.success() {
        println!("cargo test --workspace: FAILED");
        ok = false;
    }

    let (mut passed, mut failed) = (0usize, 0usize);
    let qemu = toolchain::check();
    match (&qemu, trainer::exported_models(true)) {
        (Err(e), _) => {
            println!("qemu parity: FAILED: {e}");
            failed += 1;
        }
        (Ok(()), Err(e)) => {
            println!("qemu parity: FAILED: {e:#}");
            failed += 1;
        }
        (Ok(()), Ok(models)) => {
            // Synthetic layers first: row counts of 3k+1 and 3k+2 and column
            // tails of 2 and 3 exercise every path of the DSP kernel (three
            // rows per pass, then the rest; four columns per step, then the rest).
            let runs = [
                (Numeric::F32, Core::M4),
                (Numeric::Int8, Core::M4),
                (Numeric::Int8, Core::M0),
            ];
            for (rows, cols) in [(34, 30), (35, 31)] {
                for (numeric, core) in runs {
                    let label = format!(
                        "qemu parity dense-{rows}x{cols} {} {}",
                        chip::numeric_name(numeric),
                        core.name()
                    );
                    let run =
                        synth::dense(&root.join("target/xtask/synthetic"), numeric, rows, cols)
                            .and_then(|s| chip::run_on_chip(core, &s.model, &s.vectors));
                    tally(&label, run, &mut passed, &mut failed);
                }
            }
            for model in &models {
                for (numeric, core) in model.runs() {
                    let label = format!("qemu parity {} {numeric} {}", model.name, core.name());
                    tally(
                        &label,
                        run_exported(model, numeric, core),
                        &mut passed,
                        &mut failed,
                    );
                }
            }
        }
    }

    for target in [Core::M0.target(), Core::M4.target()] {
        let status = Command::new(&cargo)
            .current_dir(&root)
            .args([
                "build",
                "-q",
                "-p",
                "runtime",
                "--no-default-features",
                "--target",
                target,
            ])
            .status()?;
        if status.success() {
            println!("no_std build runtime {target}: ok");
        } else {
            println!("no_std build runtime {target}: FAILED");
            ok = false;
        }
    }

    println!("qemu parity: {passed} passed, {failed} failed");
    Ok(ok && failed == 0)
}
