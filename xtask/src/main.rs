//! `cargo xtask`: build the firmware for a Cortex-M, run it under QEMU with
//! instruction counting, and compare every output with the host runtime's.
//!
//! - `demo`: export every model spec with the trainer, run it on the chips, print a report.
//! - `test`: host tests (also on a 32-bit target), the runtime's feature
//!   matrix, QEMU parity of every exported model, the minimal application.
//! - `bench`: instructions per inference and per MAC for the demo models and
//!   synthetic dense layers, next to the CMSIS-NN reference figures.
//! - `reproduce`: retrain every spec and compare with the committed exports
//!   byte for byte (not in `test`: other CPUs may train to other floats).
//! - `boards`: the board applications' builds and the defmt log check, alone.

mod bench;
mod boards;
mod chip;
mod classical;
mod cores;
mod defmt_log;
mod forecast;
mod fuzz;
mod kernel_check;
mod minimal;
mod qemu;
mod recurrent;
mod report;
mod reproduce;
mod synth;
mod targets;
mod test;
mod toolchain;
mod trainer;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Build, run and measure the firmware under QEMU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Export every model spec, run f32/int8 on the M4 and int8 on the M0, print a report.
    Demo {
        /// Use complete exports as they are instead of calling the trainer (which reuses up-to-date ones itself).
        #[arg(long)]
        no_export: bool,
        /// Only this model: a name in models/specs/, or the path of a spec
        /// file (your own); it is trained or reused, exported to
        /// models/exported/<name>/, and run on the emulated chips.
        #[arg(long)]
        model: Option<String>,
    },
    /// Host tests, QEMU parity of every exported model, no_std target builds.
    Test,
    /// Instruction counts of the demo models and synthetic dense layers.
    Bench,
    /// Retrain every model spec and compare with models/exported/ byte for byte.
    Reproduce,
    /// Build the board applications and check the defmt log under QEMU (part of `test`).
    Boards,
    /// The fast kernels' bit-exact property against the reference kernels on
    /// every core under QEMU (part of `test`).
    Kernels,
    /// Fuzz the model loader (cargo-fuzz) for N seconds per target.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Run a synthetic benchmark or parity model (by name, e.g.
    /// `pwconv-25x5-64to64`, `ds-cnn`, `dense-64x64`) on one core.
    Synth {
        /// m4 (mps2-an386) or m0 (microbit).
        #[arg(long, default_value = "m4")]
        core: cores::Core,
        /// f32 or int8.
        #[arg(long, default_value = "int8")]
        numeric: String,
        /// The shape's name.
        name: String,
    },
    /// Run one model blob and its vectors on one core and print the result.
    Run {
        /// m4 (mps2-an386) or m0 (microbit).
        #[arg(long, default_value = "m4")]
        core: cores::Core,
        /// Model blob.
        model: PathBuf,
        /// postcard TestVectors for it.
        vectors: PathBuf,
    },
}

/// The host workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { no_export, model } => report::demo(!no_export, model.as_deref()),
        Command::Test => test::test(),
        Command::Bench => bench::bench(),
        Command::Reproduce => reproduce::reproduce(),
        Command::Boards => boards::boards(),
        Command::Kernels => kernel_check::all_cores(),
        Command::Fuzz { seconds } => fuzz::fuzz(seconds),
        Command::Run {
            core,
            model,
            vectors,
        } => run_one(core, &model, &vectors),
        Command::Synth {
            core,
            numeric,
            name,
        } => synth::by_name(&name, &numeric).and_then(|s| run_one(core, &s.model, &s.vectors)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_one(core: cores::Core, model: &Path, vectors: &Path) -> Result<bool> {
    toolchain::check()?;
    let run = chip::run_on_chip(core, model, vectors)?;
    println!("{}", serde_json::to_string_pretty(&run)?);
    Ok(run.mismatches == 0)
}
