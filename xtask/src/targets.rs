//! The kernel targets of the bench (the convolution and kernel issues),
//! each measured here beside its reference figure: `cargo xtask bench`
//! prints them and writes them to `bench/results.json` (`targets`).
//!
//! Figures are instructions per MAC of whole inferences under QEMU
//! `-icount` (per gate-MAC and time step for recurrent layers, per element
//! for softmax), on the Cortex-M4 unless a row says otherwise. References
//! come from `../shared/CORTEX-M.md` (CMSIS-NN measured on the same QEMU)
//! and from published MLPerf Tiny results.

use anyhow::{Context, Result};
use runtime::Numeric;
use serde::Serialize;

use crate::chip::{self, ChipRun};
use crate::cores::Core;
use crate::synth;

/// One target row.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is measured, e.g. `"int8 conv2d 32x32x16 3x3 -> 16"`.
    pub kernel: String,
    pub core: Core,
    /// Our figure.
    pub measured: f64,
    /// The unit of `measured` and `target`.
    pub unit: &'static str,
    /// The target (at most this).
    pub target: f64,
    pub met: bool,
    /// The reference figure(s) beside it.
    pub reference: String,
    /// Whether the chip's outputs equal the host's on every vector.
    pub bit_identical: bool,
}

fn target(
    kernel: impl Into<String>,
    run: &ChipRun,
    measured: f64,
    (unit, target): (&'static str, f64),
    reference: impl Into<String>,
) -> Target {
    Target {
        kernel: kernel.into(),
        core: run.core,
        measured,
        unit,
        target,
        met: measured <= target,
        reference: reference.into(),
        bit_identical: run.mismatches == 0 && run.vectors > 0,
    }
}

fn per_mac(run: &ChipRun) -> f64 {
    run.mean_instructions / run.macs.max(1) as f64
}

/// The synthetic kernel targets: convolutions and DS-CNN, softmax, the
/// MLPerf Tiny AD autoencoder and CMSIS-NN's LSTM shapes (each run on QEMU
/// and checked against the host).
pub fn synthetic() -> Result<Vec<Target>> {
    let dir = crate::workspace_root().join("target/xtask/synthetic");
    let run = |s: synth::Synthetic, core: Core| {
        chip::run_on_chip(core, &s.model, &s.vectors)
            .with_context(|| format!("{} on {}", s.name, core.name()))
    };
    let mut targets = Vec::new();
    for (shape, cmsis) in synth::CONV_BENCH {
        let r = run(synth::conv(&dir, Numeric::Int8, &shape)?, Core::M4)?;
        targets.push(target(
            format!("int8 {}", shape.name),
            &r,
            per_mac(&r),
            ("instr/MAC", cmsis),
            format!("CMSIS-NN {cmsis} (same shape, same QEMU)"),
        ));
    }
    let r = run(synth::ds_cnn(&dir)?, Core::M4)?;
    targets.push(target(
        "int8 MLPerf Tiny DS-CNN keyword spotting, end to end",
        &r,
        per_mac(&r),
        ("instr/MAC", 2.5),
        "TFLM 181.9 ms = about 8.2 cycles/MAC, X-CUBE-AI about 2.0 (120 MHz Cortex-M4, MLPerf Tiny v1.0)",
    ));
    for n in [10, 128] {
        let r = run(synth::softmax(&dir, n)?, Core::M4)?;
        let per_element = r.mean_instructions / n as f64;
        // Only the 128-element row has a target; 10 elements is reported beside it.
        let limit = if n == 128 { 100.0 } else { f64::INFINITY };
        targets.push(target(
            format!("int8 softmax, {n} elements"),
            &r,
            per_element,
            ("instr/element", limit),
            format!(
                "CMSIS-NN arm_softmax_s8 {} per element",
                if n == 10 { 534 } else { 525 }
            ),
        ));
    }
    let r = run(synth::autoencoder(&dir)?, Core::M4)?;
    targets.push(target(
        "int8 MLPerf Tiny AD autoencoder (640-128x4-8-128x4-640), end to end",
        &r,
        per_mac(&r),
        ("instr/MAC", 1.6),
        "TFLM about 4.6 cycles/MAC, best submission (Plumerai) 1.84 (Cortex-M4 board)",
    ));
    for ((i, h), (cmsis, limit)) in
        [(22, 11), (32, 32), (64, 64)]
            .into_iter()
            .zip([(7.47, 5.6), (4.14, 3.1), (2.91, 2.2)])
    {
        let r = run(synth::lstm(&dir, i, h, 10)?, Core::M4)?;
        let per_step = r.instructions_per_step.unwrap_or(r.mean_instructions);
        targets.push(target(
            format!("int8 LSTM input {i} / hidden {h}, 10 steps, per gate-MAC"),
            &r,
            per_step / r.macs.max(1) as f64,
            ("instr/gate-MAC", limit),
            format!("CMSIS-NN arm_lstm_unidirectional_s8 {cmsis}"),
        ));
    }
    Ok(targets)
}

/// Targets from runs the bench already made: the dense layers (by name
/// `dense-RxC`) and the demo models' per-MAC figures.
pub fn from_runs(runs: &[(String, ChipRun)]) -> Vec<Target> {
    let find = |name: &str, numeric: &str, core: Core| {
        runs.iter()
            .find(|(n, r)| n == name && r.numeric == numeric && r.core == core)
            .map(|(_, r)| r)
    };
    let mut targets = Vec::new();
    let dense = [
        ("dense-64x64", [2.2, 3.0, 5.5], 2.71, 4.99),
        ("dense-256x256", [1.6, 2.6, 5.0], 2.07, 4.48),
        ("dense-640x128", [1.5, 2.5, 5.0], 1.96, 4.38),
    ];
    for (name, [int8, f32, m0], cmsis, plain) in dense {
        if let Some(r) = find(name, "int8", Core::M4) {
            targets.push(target(
                format!("int8 {name}"),
                r,
                per_mac(r),
                ("instr/MAC", int8),
                format!("CMSIS-NN {cmsis}"),
            ));
        }
        if let Some(r) = find(name, "f32", Core::M4) {
            targets.push(target(
                format!("f32 {name}"),
                r,
                per_mac(r),
                ("instr/MAC", f32),
                format!("plain Rust f32 loop {plain}"),
            ));
        }
        if let Some(r) = find(name, "int8", Core::M0) {
            targets.push(target(
                format!("int8 {name}"),
                r,
                per_mac(r),
                ("instr/MAC", m0),
                "-",
            ));
        }
    }
    for model in ["basicmotions-lstm", "basicmotions-gru", "basicmotions-rnn"] {
        let (Some(r), Some(f)) = (find(model, "int8", Core::M4), find(model, "f32", Core::M4))
        else {
            continue;
        };
        let per = |r: &ChipRun| r.instructions_per_step.unwrap_or(0.0) / r.macs.max(1) as f64;
        let mut t = target(
            format!("int8 {model} per MAC (per time step)"),
            r,
            per(r),
            ("instr/MAC", 6.0),
            format!("f32 {:.2} (must be above)", per(f)),
        );
        t.met &= per(r) < per(f);
        targets.push(t);
    }
    for (model, limit) in [
        ("digits-transformer", 3.0),
        ("basicmotions-transformer", 4.0),
    ] {
        let (Some(r), Some(f)) = (find(model, "int8", Core::M4), find(model, "f32", Core::M4))
        else {
            continue;
        };
        targets.push(target(
            format!("int8 {model} per MAC"),
            r,
            per_mac(r),
            ("instr/MAC", limit),
            format!("f32 {:.2}", per_mac(f)),
        ));
    }
    targets
}

/// Print the targets table.
pub fn print(targets: &[Target]) {
    println!("\nkernel targets (instructions under QEMU -icount; lower is better):");
    println!(
        "{:<72} {:<4} {:>9} {:>8}  {:<5} reference",
        "kernel", "cpu", "measured", "target", "met"
    );
    for t in targets {
        let limit = if t.target.is_finite() {
            format!("{:.2}", t.target)
        } else {
            "-".into()
        };
        println!(
            "{:<72} {:<4} {:>9.2} {:>8}  {:<5} {}{}",
            t.kernel,
            t.core.name(),
            t.measured,
            limit,
            if t.met { "yes" } else { "NO" },
            t.reference,
            if t.bit_identical {
                ""
            } else {
                "  (OUTPUTS DIFFER)"
            }
        );
    }
}
