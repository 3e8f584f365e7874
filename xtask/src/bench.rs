//! `cargo xtask bench`: instructions per inference and per MAC under QEMU
//! `-icount`, for the demo models and synthetic single dense layers.

use anyhow::{Context, Result};
use runtime::Numeric;
use serde::Serialize;

use crate::chip::{self, ChipRun, Core};
use crate::report::{run_exported, write_json_atomic};
use crate::{boards, minimal, synth, targets, toolchain, trainer};

/// Synthetic layer shapes, `rows x cols` (outputs x inputs), as in CORTEX-M.md.
const SHAPES: [(usize, usize); 3] = [(64, 64), (256, 256), (640, 128)];

/// Reference instructions/MAC on QEMU mps2-an386 (CORTEX-M.md), per shape:
/// CMSIS-NN `arm_fully_connected_s8`, plain Rust int8 loop, plain Rust f32 loop.
const CMSIS_NN_S8: [f64; 3] = [2.71, 2.07, 1.96];
const PLAIN_RUST_I8: [f64; 3] = [4.35, 3.57, 3.41];
const PLAIN_RUST_F32: [f64; 3] = [4.99, 4.48, 4.38];

#[derive(Serialize)]
struct Row {
    model: String,
    #[serde(flatten)]
    run: ChipRun,
    /// Mean instructions per inference / MACs (includes the per-inference overhead).
    instructions_per_mac: f64,
    /// Same, after subtracting the mean of a 1x1 dense model on the same core and numeric.
    net_instructions_per_mac: Option<f64>,
    /// Reference figures for the same shape (M4 only).
    cmsis_nn_s8: Option<f64>,
    plain_rust: Option<f64>,
}

#[derive(Serialize)]
struct Results {
    note: &'static str,
    baselines: Vec<ChipRun>,
    rows: Vec<Row>,
    /// The kernel targets, each beside its reference figure.
    targets: Vec<targets::Target>,
    /// What a user pays: the minimal application per model and core.
    minimal: Vec<MinimalRow>,
    /// The board applications' release builds (flash and RAM from the ELF).
    boards: Vec<boards::BoardBuild>,
}

#[derive(Serialize)]
struct MinimalRow {
    model: String,
    #[serde(flatten)]
    run: minimal::MinimalRun,
}

/// Published flash figures of peers, for the table (`../shared/CORTEX-M.md`).
const PEERS: &str = "peers (published): MicroFlow sine MLP 34.3 kB flash on an nRF52840 \
    (TFLM 116.4 kB); onnx2c sine MLP 8.2 KB of text on an STM32F411";

fn row(
    model: String,
    run: ChipRun,
    baseline: Option<f64>,
    refs: (Option<f64>, Option<f64>),
) -> Row {
    let macs = run.macs.max(1) as f64;
    Row {
        model,
        instructions_per_mac: run.mean_instructions / macs,
        net_instructions_per_mac: baseline.map(|b| (run.mean_instructions - b) / macs),
        cmsis_nn_s8: refs.0,
        plain_rust: refs.1,
        run,
    }
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

/// `cargo xtask bench`.
pub fn bench() -> Result<bool> {
    toolchain::check()?;
    let dir = crate::workspace_root().join("target/xtask/synthetic");
    let cases = [
        (Numeric::Int8, Core::M4),
        (Numeric::F32, Core::M4),
        (Numeric::Int8, Core::M0),
    ];

    // Fixed per-inference overhead: a 1x1 dense layer.
    let mut baselines = Vec::new();
    for (numeric, core) in cases {
        let s = synth::dense(&dir, numeric, 1, 1)?;
        baselines.push(chip::run_on_chip(core, &s.model, &s.vectors).context("baseline 1x1")?);
    }
    let baseline = |numeric: &str, core: Core| {
        baselines
            .iter()
            .find(|b| b.numeric == numeric && b.core == core)
            .map(|b| b.mean_instructions)
    };

    let mut rows = Vec::new();
    let exported = trainer::exported_models(false).unwrap_or_else(|e| {
        eprintln!("xtask: skipping the demo models: {e:#}");
        Vec::new()
    });
    let mut smallest = Vec::new();
    for model in &exported {
        for (numeric, core) in model.demo_runs() {
            let run = minimal::run(
                core,
                &model.file(&format!("{numeric}.bin")),
                &model.file(&format!("{numeric}.vectors")),
            )
            .with_context(|| {
                format!(
                    "minimal application {} {numeric} {}",
                    model.name,
                    core.name()
                )
            })?;
            smallest.push(MinimalRow {
                model: model.name.clone(),
                run,
            });
        }
    }
    for model in exported {
        for (numeric, core) in model.runs() {
            let run = run_exported(&model, numeric, core)
                .with_context(|| format!("{} {numeric} {}", model.name, core.name()))?;
            let b = baseline(numeric, core);
            rows.push(row(model.name.clone(), run, b, (None, None)));
        }
    }
    for (i, &(r, c)) in SHAPES.iter().enumerate() {
        for (numeric, core) in cases {
            let s = synth::dense(&dir, numeric, r, c)?;
            let run = chip::run_on_chip(core, &s.model, &s.vectors)
                .with_context(|| format!("{} on {}", s.name, core.name()))?;
            let refs = match (numeric, core) {
                (Numeric::Int8, Core::M4) => (Some(CMSIS_NN_S8[i]), Some(PLAIN_RUST_I8[i])),
                (Numeric::F32, Core::M4) => (None, Some(PLAIN_RUST_F32[i])),
                _ => (None, None),
            };
            let b = baseline(run.numeric, core);
            rows.push(row(s.name, run, b, refs));
        }
    }

    println!(
        "{:<16} {:<5} {:<3} {:>7} {:>11} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {:>7} {:>6} {:>8}",
        "model",
        "num",
        "cpu",
        "MACs",
        "instr/inf",
        "instr/MAC",
        "net/MAC",
        "CMSIS",
        "plain",
        "flash",
        "RAM",
        "arena",
        "stack",
        "parity"
    );
    let mut ok = true;
    for r in &rows {
        ok &= r.run.mismatches == 0;
        println!(
            "{:<16} {:<5} {:<3} {:>7} {:>11.0} {:>8.2} {:>8} {:>7} {:>7} {:>8} {:>7} {:>7} {:>6} {:>8}",
            r.model,
            r.run.numeric,
            r.run.core.name(),
            r.run.macs,
            r.run.mean_instructions,
            r.instructions_per_mac,
            opt(r.net_instructions_per_mac),
            opt(r.cmsis_nn_s8),
            opt(r.plain_rust),
            r.run.flash_bytes,
            r.run.ram_bytes,
            r.run.arena_bytes,
            r.run.stack_bytes,
            format!("{}/{}", r.run.identical, r.run.vectors)
        );
    }
    let recurrent: Vec<(&String, &ChipRun)> = rows
        .iter()
        .filter(|r| r.run.instructions_per_step.is_some() && r.run.causal_tokens == 0)
        .map(|r| (&r.model, &r.run))
        .collect();
    if !recurrent.is_empty() {
        println!("\nrecurrent models, per time step (CMSIS-NN arm_lstm_unidirectional_s8: 7.47 instr/gate-MAC at input 22 / hidden 11, 4.14 at 32/32):");
        for (name, r) in recurrent {
            let per_step = r.instructions_per_step.unwrap_or(0.0);
            println!(
                "  {name:<20} {} {}: {per_step:.0} instructions/step, {:.2} per MAC ({} MACs/step), state {} B, arena {} B",
                r.numeric,
                r.core.name(),
                per_step / r.macs.max(1) as f64,
                r.macs,
                r.state_bytes,
                r.arena_bytes
            );
        }
    }
    let causal: Vec<(&String, &ChipRun)> = rows
        .iter()
        .filter(|r| r.run.causal_tokens > 0)
        .map(|r| (&r.model, &r.run))
        .collect();
    if !causal.is_empty() {
        println!("\ncausal transformers, per token through the key/value cache (MACs per token at a full cache):");
        for (name, r) in causal {
            let per_token = r.instructions_per_step.unwrap_or(0.0);
            let macs = r.macs / r.causal_tokens.max(1);
            println!(
                "  {name:<20} {} {}: {per_token:.0} instructions/token ({} tokens), {:.2} per MAC ({macs} MACs/token), cache {} B, arena {} B",
                r.numeric,
                r.core.name(),
                r.steps,
                per_token / macs.max(1) as f64,
                r.state_bytes,
                r.arena_bytes
            );
        }
    }
    let forecasters: Vec<(&String, &ChipRun)> = rows
        .iter()
        .filter(|r| r.run.forecast.is_some())
        .map(|r| (&r.model, &r.run))
        .collect();
    if !forecasters.is_empty() {
        println!("\nencoder-decoders, per window (encode) and per decoded step (decoder cell, attention over the window, output head):");
        for (name, r) in forecasters {
            let Some(f) = r.forecast else { continue };
            println!(
                "  {name:<20} {} {}: {:.0} instructions/window = encode {:.0} + {} x {:.0} instructions/decoded step, state {} B, arena {} B",
                r.numeric,
                r.core.name(),
                f.per_window,
                f.encode_per_window,
                f.horizon,
                f.per_decoded_step,
                r.state_bytes,
                r.arena_bytes
            );
        }
    }
    println!(
        "\nminimal application (firmware/minimal: opt-level z, panic-halt, only the model's runtime features; flash without the one embedded input):"
    );
    println!(
        "{:<26} {:<5} {:<3} {:>8} {:>8} {:>8} {:>7}  {:<30} answer",
        "model", "num", "cpu", "flash", "code", "weights", "RAM", "features"
    );
    for m in &smallest {
        ok &= m.run.matches_host;
        println!(
            "{:<26} {:<5} {:<3} {:>8} {:>8} {:>8} {:>7}  {:<30} {}",
            m.model,
            m.run.numeric,
            m.run.core.name(),
            m.run.flash_bytes,
            m.run.code_bytes,
            m.run.weights_bytes,
            m.run.ram_bytes,
            m.run.features,
            if m.run.matches_host {
                "= host"
            } else {
                "DIFFERS"
            }
        );
    }
    println!("{PEERS}");
    let named: Vec<(String, ChipRun)> = rows
        .iter()
        .map(|r| (r.model.clone(), r.run.clone()))
        .collect();
    let mut kernel_targets = targets::from_runs(&named);
    kernel_targets.extend(targets::synthetic()?);
    for t in &kernel_targets {
        ok &= t.bit_identical;
    }
    targets::print(&kernel_targets);
    let board_builds = boards::BOARDS
        .iter()
        .map(boards::build)
        .collect::<Result<Vec<_>>>()?;
    boards::print_table(&board_builds);
    println!("\nbaseline (1x1 dense, fixed per-inference overhead, subtracted in net/MAC):");
    for b in &baselines {
        println!(
            "  {} {}: {:.0} instructions",
            b.numeric,
            b.core.name(),
            b.mean_instructions
        );
    }
    println!(
        "instr/MAC includes the per-inference overhead (input copy/normalization, output requantization); \
         CMSIS = arm_fully_connected_s8 and plain = plain Rust loops, QEMU mps2-an386 (CORTEX-M.md)."
    );
    let results = Results {
        note: "Instructions counted under QEMU -icount shift=0 via SysTick. instructions_per_mac includes \
               per-inference overhead; net_instructions_per_mac subtracts a 1x1 dense model's mean.",
        baselines,
        rows,
        targets: kernel_targets,
        minimal: smallest,
        boards: board_builds,
    };
    let path = crate::workspace_root().join("bench/results.json");
    write_json_atomic(&path, &results)?;
    println!("wrote {}", path.display());
    Ok(ok)
}
