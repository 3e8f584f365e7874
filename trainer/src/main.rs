//! `trainer`: train, export, evaluate and inspect models.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Parser, Subcommand};
use runtime::Model;
use trainer::export;

#[derive(Parser)]
#[command(
    version,
    about = "Train, quantize and export models for microcontrollers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model from its spec, quantize it and write blobs, test vectors, report and plots.
    Train {
        /// Model spec files (TOML).
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        /// Folder that receives one sub-folder per model.
        #[arg(long, default_value = "models/exported")]
        out: PathBuf,
    },
    /// Like `train`, but keeps an export that is already up to date with its spec and dataset.
    Export {
        /// Model spec files (TOML).
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        /// Folder that receives one sub-folder per model.
        #[arg(long, default_value = "models/exported")]
        out: PathBuf,
        /// Retrain even if the export is up to date.
        #[arg(long)]
        force: bool,
    },
    /// Run a blob with the runtime over the test split of a spec's dataset.
    Eval {
        /// Model blob (`f32.bin` or `int8.bin`).
        blob: PathBuf,
        /// The spec whose dataset and split to use.
        #[arg(long)]
        spec: PathBuf,
    },
    /// Show a blob's layers, parameters, MACs, flash and arena bytes.
    Inspect {
        /// Model blob.
        blob: PathBuf,
    },
}

fn print_report(r: &export::Report) {
    println!(
        "{}: f32 {:.2}%  int8 {:.2}%  (test {} rows, train {} rows)  blobs {} B f32 / {} B int8, arena {} B f32 / {} B int8",
        r.name,
        100.0 * r.f32_accuracy,
        100.0 * r.int8_accuracy,
        r.test_samples,
        r.train_samples,
        r.f32.blob_bytes,
        r.int8.blob_bytes,
        r.f32.arena_bytes,
        r.int8.arena_bytes
    );
}

fn read_blob(path: &Path) -> Result<Vec<u8>> {
    trainer::io::read(path, "model blob")
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train { specs, out } => {
            for spec in specs {
                if trainer::classical::spec_kind(&spec)? == "transformer" {
                    let r = trainer::transformer::export_spec(&spec, &out, false, true)?;
                    println!("{}", trainer::transformer::summary(&r));
                    continue;
                }
                if trainer::classical::spec_kind(&spec)? != "mlp" {
                    let r = trainer::classical::export_spec(&spec, &out, false)?;
                    println!("{}", trainer::classical::summary(&r));
                    continue;
                }
                print_report(&export::export_spec(&spec, &out, false, true)?);
            }
        }
        Command::Export { specs, out, force } => {
            for spec in specs {
                if trainer::classical::spec_kind(&spec)? == "transformer" {
                    let r = trainer::transformer::export_spec(&spec, &out, !force, true)?;
                    println!("{}", trainer::transformer::summary(&r));
                    continue;
                }
                if trainer::classical::spec_kind(&spec)? != "mlp" {
                    let r = trainer::classical::export_spec(&spec, &out, !force)?;
                    println!("{}", trainer::classical::summary(&r));
                    continue;
                }
                print_report(&export::export_spec(&spec, &out, !force, true)?);
            }
        }
        Command::Eval { blob, spec } => {
            let bytes = read_blob(&blob)?;
            let spec = trainer::spec::load_spec(&spec)?;
            let (_, test) = export::load_split(&spec)?;
            let eval = export::evaluate(&bytes, &test)?;
            println!(
                "{}: accuracy {:.2}% on {} test rows",
                blob.display(),
                100.0 * eval.accuracy,
                test.len()
            );
            println!("confusion (rows = true class, columns = predicted):");
            for (name, row) in test.class_names.iter().zip(&eval.confusion) {
                let cells: Vec<String> = row.iter().map(|c| format!("{c:4}")).collect();
                println!("  {name:>12} {}", cells.join(""));
            }
        }
        Command::Inspect { blob } => {
            let bytes = read_blob(&blob)?;
            let model =
                Model::from_bytes(&bytes).map_err(|e| anyhow!("{}: {e}", blob.display()))?;
            let stats = model.stats();
            println!(
                "{}: {:?} model, {} inputs -> {} outputs",
                blob.display(),
                model.numeric(),
                model.input_len(),
                model.output_len()
            );
            for (i, layer) in model.layers().enumerate() {
                println!("  {i:2}  {:<14} -> {}", layer.kind, layer.width);
            }
            println!("parameters  {}", stats.parameters);
            println!("MACs        {}", stats.macs);
            println!("flash bytes {} (blob)", bytes.len());
            println!("arena bytes {}", model.arena_bytes());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
