//! `trainer`: train, export, evaluate and inspect models.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::Write;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};
use runtime::Model;

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
        /// No progress while training (a bar on a terminal, else a line every few epochs).
        #[arg(long, short)]
        quiet: bool,
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
        /// No progress while training (a bar on a terminal, else a line every few epochs).
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run a blob with the runtime over the test split of a spec's dataset.
    Eval {
        /// Model blob (`f32.bin` or `int8.bin`).
        blob: PathBuf,
        /// The spec whose dataset and split to use.
        #[arg(long)]
        spec: PathBuf,
    },
    /// Show a blob's layers (output shape and MACs of each), parameters, MACs, flash and arena bytes.
    Inspect {
        /// Model blob.
        blob: PathBuf,
    },
}

fn read_blob(path: &Path) -> Result<Vec<u8>> {
    trainer::io::read(path, "model blob")
}

/// `writeln!` to the command's output. Rust ignores SIGPIPE, so a reader
/// that went away (`| head -1`) is an error here, reported as one line
/// instead of `println!`'s panic.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).context("cannot write to standard output")?
    };
}

fn run(cli: Cli, stdout: &mut impl Write) -> Result<()> {
    match cli.command {
        Command::Train { specs, out, quiet } => {
            for spec in specs {
                say!(
                    stdout,
                    "{}",
                    trainer::export_spec_with(&spec, &out, false, quiet)?
                );
            }
        }
        Command::Export {
            specs,
            out,
            force,
            quiet,
        } => {
            for spec in specs {
                say!(
                    stdout,
                    "{}",
                    trainer::export_spec_with(&spec, &out, !force, quiet)?
                );
            }
        }
        Command::Eval { blob, spec } => {
            let bytes = read_blob(&blob)?;
            say!(
                stdout,
                "{}: {}",
                blob.display(),
                trainer::evaluate_spec(&spec, &bytes)?
            );
        }
        Command::Inspect { blob } => {
            let bytes = read_blob(&blob)?;
            let model =
                Model::from_bytes(&bytes).map_err(|e| anyhow!("{}: {e}", blob.display()))?;
            let stats = model.stats();
            say!(
                stdout,
                "{}: {:?} model, {} inputs -> {} outputs",
                blob.display(),
                model.numeric(),
                model.input_len(),
                model.output_len()
            );
            say!(stdout, "  #   layer                  output           MACs");
            // Elementwise layers and skips keep the map of the layer before.
            let mut map = None;
            for (i, layer) in model.layers().enumerate() {
                map = layer.map.or(map.filter(|m: &runtime::format::FeatureMap| {
                    m.len() == Some(layer.width as u32) && !layer.kind.starts_with("dense")
                }));
                let shape = match map {
                    Some(m) => format!("{}x{}x{}", m.height, m.width, m.channels),
                    None => layer.width.to_string(),
                };
                say!(
                    stdout,
                    "  {i:2}  {:<22} {shape:<16} {}",
                    layer.kind,
                    layer.macs
                );
            }
            say!(stdout, "parameters  {}", stats.parameters);
            say!(stdout, "MACs        {}", stats.macs);
            say!(stdout, "flash bytes {} (blob)", bytes.len());
            say!(stdout, "arena bytes {}", model.arena_bytes());
            if model.state_bytes() > 0 {
                say!(stdout, "state bytes {}", model.state_bytes());
            }
            say!(
                stdout,
                "runtime features {} (the smallest build that runs it); Cargo.toml line:",
                model.features()
            );
            say!(stdout, "{}", dependency_line(&model));
            say!(
                stdout,
                "(on a Cortex-M4, M7 or M33 add \"arm-dsp\" to the features for the DSP int8 kernels)"
            );
        }
    }
    stdout.flush().context("cannot write to standard output")
}

/// The `runtime` dependency a firmware needs for `model`: this checkout's
/// runtime with only the model's features.
fn dependency_line(model: &Model) -> String {
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime");
    let path = std::fs::canonicalize(&runtime).unwrap_or(runtime);
    format!(
        "runtime = {{ path = \"{}\", default-features = false, features = [{}] }}",
        path.display(),
        model.features()
    )
}

fn main() -> ExitCode {
    match run(Cli::parse(), &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
