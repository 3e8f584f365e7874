//! `cargo xtask test`: everything CI runs, each part reported on its own
//! line, and one summary line at the end.
//!
//! 1. `cargo test --workspace` on the host;
//! 2. the runtime's own tests on a 32-bit host target (`i686`, debug build:
//!    overflow checks on), so an index or size that overflows only with a
//!    32-bit `usize`, as on the chip, fails here;
//! 3. the runtime's feature matrix: each reduced build compiles for both
//!    cores and passes `runtime/tests/features.rs` on the host (blobs of a
//!    family that is left out are refused by name);
//! 4. the kernels' bit-exact property (`runtime::kernels::check`) under
//!    QEMU on the M0, M3, M4, M7 and M33 ([`crate::kernel_check`]);
//! 5. QEMU parity of synthetic layers (dense, odd convolutions, DS-CNN)
//!    and every exported model on the M0, M3, M4, M7 and M33, each firmware
//!    built with only its model's runtime features;
//! 6. the minimal application for every exported model and core: built,
//!    run once under QEMU, its answer equal to the host's;
//! 7. the board applications built `--release` ([`crate::boards`]) and the
//!    defmt firmware's log decoded and checked ([`crate::defmt_log`]).

use std::process::Command;

use anyhow::Result;
use runtime::Numeric;

use crate::chip::{self, ChipRun};
use crate::cores::{numeric_name, Core, HOST_32};
use crate::report::run_exported;
use crate::{boards, defmt_log, minimal, synth, toolchain, trainer};

/// Peak stack any model may use: half of the smallest target's RAM (the
/// Cortex-M0 micro:bit's 16 KiB), so that arena, recurrent state, statics and
/// the application keep the other half. Measured by painting the stack in the
/// firmware; the figure includes the firmware's own frames (formatting,
/// semihosting), not only the runtime's.
pub const STACK_BUDGET_BYTES: u64 = 8 * 1024;

/// The reduced runtime builds checked on every core (plus the default, all).
pub const FEATURE_MATRIX: [&str; 8] = [
    "int8",
    "f32",
    "int8,recurrent",
    "int8,attention",
    "f32,classical",
    "int8,conv",
    "f32,seq2seq",
    "f32,int8,recurrent,attention,classical,conv",
];

/// Writes a synthetic model's blob and vectors for one numeric path.
type MakeSynthetic = Box<dyn Fn(Numeric) -> Result<synth::Synthetic>>;

/// Passed and failed checks, printed as they go.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    fn check(&mut self, label: &str, result: Result<String>) {
        match result {
            Ok(detail) => {
                println!("{label}: ok{detail}");
                self.passed += 1;
            }
            Err(e) => {
                println!("{label}: FAILED: {e:#}");
                self.failed += 1;
            }
        }
    }
}

fn cargo(args: &[&str]) -> Result<()> {
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(crate::workspace_root())
        .args(args)
        .status()?;
    if !status.success() {
        anyhow::bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// A parity run: bit-identical on every vector, and within the stack budget.
fn parity(run: Result<ChipRun>) -> Result<String> {
    let r = run?;
    if r.mismatches > 0 || r.vectors == 0 {
        anyhow::bail!(
            "{}/{} bit-identical ({})",
            r.identical,
            r.vectors,
            r.first_mismatch.as_deref().unwrap_or("no vectors")
        );
    }
    if r.stack_bytes > STACK_BUDGET_BYTES {
        anyhow::bail!(
            "{}/{} bit-identical, but peak stack {} B is over the {} B budget",
            r.identical,
            r.vectors,
            r.stack_bytes,
            STACK_BUDGET_BYTES
        );
    }
    Ok(format!(
        ", {}/{} bit-identical, stack {} B (budget {} B)",
        r.identical, r.vectors, r.stack_bytes, STACK_BUDGET_BYTES
    ))
}

/// `cargo xtask test`.
pub fn test() -> Result<bool> {
    let mut host = Tally::default();
    host.check(
        "cargo test --workspace",
        cargo(&["test", "--workspace"]).map(|()| String::new()),
    );

    let prerequisites = toolchain::check();
    host.check(
        &format!("runtime tests on {HOST_32} (32-bit usize, debug: overflow checks on)"),
        prerequisites
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .and_then(|()| {
                cargo(&[
                    "test",
                    "-q",
                    "-p",
                    "runtime",
                    "--features",
                    "kernel-check",
                    "--target",
                    HOST_32,
                ])
            })
            .map(|()| String::new()),
    );
    for features in FEATURE_MATRIX {
        for core in Core::ALL {
            host.check(
                &format!("runtime build --features {features} {}", core.target()),
                cargo(&[
                    "build",
                    "-q",
                    "-p",
                    "runtime",
                    "--no-default-features",
                    "--features",
                    features,
                    "--target",
                    core.target(),
                ])
                .map(|()| String::new()),
            );
        }
        host.check(
            &format!("runtime --features {features}: blobs of missing families refused by name"),
            cargo(&[
                "test",
                "-q",
                "-p",
                "runtime",
                "--no-default-features",
                "--features",
                features,
                "--test",
                "features",
            ])
            .map(|()| String::new()),
        );
    }

    let mut kernels = Tally::default();
    for core in Core::ALL {
        let label = format!("kernel property {}", core.name());
        let run = prerequisites
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .and_then(|()| crate::kernel_check::run(core));
        kernels.check(&label, run);
    }

    let mut qemu = Tally::default();
    let mut minimal = Tally::default();
    let mut on_boards = Tally::default();
    match prerequisites.and_then(|()| trainer::exported_models(true)) {
        Err(e) => qemu.check("qemu parity", Err(e)),
        Ok(models) => {
            // Synthetic layers first: row counts of 3k, 3k+1 and 3k+2 and
            // column counts below exercise every path of the DSP kernel (three
            // rows per pass, then the rest; two groups of four columns per
            // step, an odd group, then the rest).
            let dir = crate::workspace_root().join("target/xtask/synthetic");
            // Odd convolution shapes too (channel counts off groups of 4, strides,
            // dilation, padding), and the whole DS-CNN on the larger cores.
            let numerics = [Numeric::F32, Numeric::Int8];
            let every_run = || {
                numerics.into_iter().flat_map(|n| {
                    Core::ALL
                        .into_iter()
                        .filter(move |c| n == Numeric::Int8 || c.has_fpu())
                        .map(move |c| (n, c))
                })
            };
            let mut synthetic: Vec<(String, MakeSynthetic)> = Vec::new();
            // Column groups of four: odd and tail 2, odd and tail 3, even
            // (the DSP loop's pairs), and one group with a tail of 1.
            for (rows, cols) in [(34, 30), (35, 31), (34, 40), (33, 5)] {
                let dir = dir.clone();
                synthetic.push((
                    format!("dense-{rows}x{cols}"),
                    Box::new(move |n| synth::dense(&dir, n, rows, cols)),
                ));
            }
            for shape in synth::CONV_PARITY {
                let dir = dir.clone();
                synthetic.push((
                    shape.name.to_string(),
                    Box::new(move |n| synth::conv(&dir, n, &shape)),
                ));
            }
            for (name, make) in &synthetic {
                for (numeric, core) in every_run() {
                    let label = format!(
                        "qemu parity {name} {} {}",
                        numeric_name(numeric),
                        core.name()
                    );
                    let run =
                        make(numeric).and_then(|s| chip::run_on_chip(core, &s.model, &s.vectors));
                    qemu.check(&label, parity(run));
                }
            }
            for core in [Core::M4, Core::M3, Core::M7, Core::M33] {
                let run =
                    synth::ds_cnn(&dir).and_then(|s| chip::run_on_chip(core, &s.model, &s.vectors));
                qemu.check(
                    &format!("qemu parity ds-cnn int8 {}", core.name()),
                    parity(run),
                );
            }
            for model in &models {
                for (numeric, core) in model.runs() {
                    let label = format!("qemu parity {} {numeric} {}", model.name, core.name());
                    qemu.check(&label, parity(run_exported(model, numeric, core)));
                }
            }
            for model in &models {
                for (numeric, core) in model.runs() {
                    let label = format!(
                        "minimal application {} {numeric} {}",
                        model.name,
                        core.name()
                    );
                    let run = minimal::run(
                        core,
                        &model.file(&format!("{numeric}.bin")),
                        &model.file(&format!("{numeric}.vectors")),
                    )
                    .and_then(|r| {
                        if r.matches_host {
                            Ok(format!(
                                ", the host's answer; flash {} B ({} code + {} weights), RAM {} B, features {}",
                                r.flash_bytes, r.code_bytes, r.weights_bytes, r.ram_bytes, r.features
                            ))
                        } else {
                            Err(anyhow::anyhow!("its answer differs from the host's"))
                        }
                    });
                    minimal.check(&label, run);
                }
            }
            for (label, result) in boards::test() {
                on_boards.check(&label, result);
            }
            for core in Core::ALL {
                let label = format!("defmt log {} int8 {}", defmt_log::MODEL, core.name());
                on_boards.check(&label, defmt_log::check(core));
            }
        }
    }

    println!(
        "host checks: {} passed, {} failed (workspace tests, {HOST_32}, feature matrix)",
        host.passed, host.failed
    );
    println!(
        "kernel property: {} passed, {} failed (fast kernels = reference, on every core)",
        kernels.passed, kernels.failed
    );
    println!(
        "minimal application: {} passed, {} failed",
        minimal.passed, minimal.failed
    );
    println!(
        "boards and defmt: {} passed, {} failed",
        on_boards.passed, on_boards.failed
    );
    println!(
        "qemu parity: {} passed, {} failed",
        qemu.passed, qemu.failed
    );
    Ok(host.failed + kernels.failed + minimal.failed + on_boards.failed + qemu.failed == 0)
}
