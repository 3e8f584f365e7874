//! Build the firmware for one (core, model, vectors), run it under QEMU and
//! check it against the host: bit-for-bit outputs, accuracy, sizes, instructions.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use object::{Object, ObjectSection};
use runtime::{Model, Numeric, TestVectors};
use serde::Serialize;

pub use crate::cores::{numeric_name, Core};
use crate::qemu;

/// The result of one firmware run, checked against the vectors file.
#[derive(Debug, Clone, Serialize)]
pub struct ChipRun {
    pub core: Core,
    pub numeric: &'static str,
    pub vectors: usize,
    /// Vectors whose output bytes equal the host runtime's exactly.
    pub identical: usize,
    /// `vectors - identical` (a missing output counts as a mismatch).
    pub mismatches: usize,
    /// Argmax of the chip's outputs vs the labels, 0..1.
    pub chip_accuracy: f64,
    /// Mean instructions per inference (SysTick under `-icount`).
    pub mean_instructions: f64,
    pub macs: usize,
    pub stack_bytes: u64,
    /// `.vector_table + .text + .rodata + .data` of the ELF, less the embedded test vectors.
    pub flash_bytes: u64,
    /// `.data + .bss + .uninit` of the ELF (the stack comes on top).
    pub ram_bytes: u64,
    pub arena_bytes: usize,
    /// First mismatch, for the error message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_mismatch: Option<String>,
    /// Recurrent models: bytes of state (0 otherwise).
    pub state_bytes: usize,
    /// Time steps over all vectors (= vectors for feedforward models).
    pub steps: usize,
    /// Recurrent models: mean instructions per time step (whole sequences,
    /// including the head once per sequence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions_per_step: Option<f64>,
    /// Causal transformers: the context (key/value cache capacity) in tokens; 0 otherwise.
    pub causal_tokens: usize,
    /// Recurrent models: `(samples, answer changes)` of the firmware's streaming example.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<(usize, usize)>,
    /// The chip's output bytes per vector (empty where it printed none), for
    /// per-kind metrics (`crate::classical`).
    #[serde(skip)]
    pub outputs: Vec<Vec<u8>>,
}

/// The runtime features a model needs, as a `--features` list (`"int8,recurrent"`).
pub fn model_features(model: &Model) -> String {
    model.features().names().collect::<Vec<_>>().join(",")
}

/// `cargo build --release` of a firmware crate under `firmware/` (`"."` is
/// the parity firmware, `"minimal"` the minimal application) for `core`,
/// with `features` and the build script's inputs in `env`; the ELF path.
/// Every firmware crate shares one target directory, so their common
/// dependencies build once per core.
pub fn build_crate(
    dir: &str,
    core: Core,
    features: &str,
    env: &[(&str, &Path)],
) -> Result<PathBuf> {
    let firmware = crate::workspace_root().join("firmware");
    let target_dir = firmware.join("target");
    let crate_dir = firmware.join(dir);
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(&crate_dir)
        .args(["build", "--quiet", "--release", "--target", core.target()])
        .args(["--features", features])
        .env("CARGO_TARGET_DIR", &target_dir);
    for (var, path) in env {
        let abs =
            fs::canonicalize(path).with_context(|| format!("{} not found", path.display()))?;
        command.env(var, abs);
    }
    let out = command
        .output()
        .with_context(|| format!("running cargo build in {}", crate_dir.display()))?;
    if !out.status.success() {
        bail!(
            "build of {} for {} (features {features}) failed:\n{}",
            crate_dir.display(),
            core.target(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let name = if dir == "." { "firmware" } else { dir };
    Ok(target_dir.join(core.target()).join("release").join(name))
}

/// Build the parity firmware embedding `model` and `vectors` for `core`, with
/// only the runtime features the model needs; the ELF path.
pub fn build_firmware(core: Core, model: &Path, vectors: &Path) -> Result<PathBuf> {
    let blob = fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let features = model_features(
        &Model::from_bytes(&blob)
            .map_err(|e| anyhow::anyhow!("invalid model blob {}: {e}", model.display()))?,
    );
    build_crate(
        ".",
        core,
        &features,
        &[("FW_MODEL", model), ("FW_VECTORS", vectors)],
    )
}

/// `(flash, ram)` bytes of a firmware ELF.
pub fn elf_sizes(elf: &Path) -> Result<(u64, u64)> {
    let data = fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing ELF {}", elf.display()))?;
    let size = |name: &str| file.section_by_name(name).map(|s| s.size()).unwrap_or(0);
    let flash = size(".vector_table") + size(".text") + size(".rodata") + size(".data");
    let ram = size(".data") + size(".bss") + size(".uninit");
    Ok((flash, ram))
}

fn argmax_of(numeric: Numeric, bytes: &[u8]) -> usize {
    match numeric {
        Numeric::F32 => {
            let v: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            runtime::argmax(&v)
        }
        Numeric::Int8 => {
            let v: Vec<i8> = bytes.iter().map(|&b| b as i8).collect();
            runtime::argmax(&v)
        }
    }
}

/// Build, run under QEMU, and compare with the vectors file. Errors only when
/// something could not be run; mismatches are counted in the result.
pub fn run_on_chip(core: Core, model_path: &Path, vectors_path: &Path) -> Result<ChipRun> {
    let blob = fs::read(model_path).with_context(|| format!("reading {}", model_path.display()))?;
    let vec_bytes =
        fs::read(vectors_path).with_context(|| format!("reading {}", vectors_path.display()))?;
    let model = Model::from_bytes(&blob)
        .map_err(|e| anyhow::anyhow!("invalid model blob {}: {e}", model_path.display()))?;
    let vectors = TestVectors::from_bytes(&vec_bytes)
        .map_err(|e| anyhow::anyhow!("invalid vectors {}: {e}", vectors_path.display()))?;

    let elf = build_firmware(core, model_path, vectors_path)?;
    let (elf_flash_bytes, ram_bytes) = elf_sizes(&elf)?;
    // The embedded test vectors are a test fixture, not part of a deployed
    // firmware: report flash without them.
    let flash_bytes = elf_flash_bytes.saturating_sub(vec_bytes.len() as u64);
    let text = qemu::run(core, &elf)?;
    let report = qemu::parse(&text)?;
    check_calibration(core, report.calib)?;

    let count = vectors.count as usize;
    let mut identical = 0;
    let mut correct = 0;
    let mut first_mismatch = None;
    let mut instructions = 0u64;
    let mut outputs = vec![Vec::new(); count];
    for (i, output) in outputs.iter_mut().enumerate() {
        let Some((_, bytes, n)) = report.outputs.iter().find(|(index, _, _)| *index == i) else {
            first_mismatch.get_or_insert_with(|| format!("vector {i}: no output"));
            continue;
        };
        output.clone_from(bytes);
        instructions += n;
        let expected = vectors.expected_bytes(i);
        if bytes.as_slice() == expected {
            identical += 1;
        } else {
            first_mismatch.get_or_insert_with(|| {
                format!("vector {i}: chip {} host {}", hex(bytes), hex(expected))
            });
        }
        if argmax_of(vectors.numeric, bytes) == usize::from(vectors.label(i)) {
            correct += 1;
        }
    }
    let per = |x: f64| if count == 0 { 0.0 } else { x / count as f64 };
    let steps: usize = (0..count).map(|i| vectors.steps(i)).sum();
    let stream = text.lines().find_map(|l| {
        let mut w = l.strip_prefix("stream-done ")?.split_whitespace();
        Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
    });
    Ok(ChipRun {
        core,
        numeric: numeric_name(model.numeric()),
        vectors: count,
        identical,
        mismatches: count - identical,
        chip_accuracy: per(correct as f64),
        mean_instructions: per(instructions as f64),
        macs: model.stats().macs,
        stack_bytes: report.stack_bytes.unwrap_or(0),
        flash_bytes,
        ram_bytes,
        arena_bytes: model.arena_bytes(),
        first_mismatch,
        outputs,
        state_bytes: model.state_bytes(),
        steps,
        instructions_per_step: ((model.is_recurrent() || model.is_causal()) && steps > 0)
            .then(|| instructions as f64 / steps as f64),
        stream,
        causal_tokens: if model.is_causal() { model.tokens() } else { 0 },
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The firmware timed a loop of known length: the instructions it derived from
/// SysTick must match (within 1%), else the per-tick factor is wrong.
fn check_calibration(core: Core, calib: Option<(u64, u64)>) -> Result<()> {
    let Some((expected, ticks)) = calib else {
        bail!("firmware printed no `calib` line")
    };
    let per_tick_x2 = core.instructions_per_tick_x2();
    let measured = ticks * per_tick_x2 / 2;
    let error = (measured as f64 - expected as f64).abs() / expected as f64;
    if error > 0.01 {
        bail!(
            "SysTick calibration on {}: a {expected}-instruction loop took {ticks} ticks \
             ({measured} instructions at {}/tick); instruction counts would be wrong",
            core.machine(),
            per_tick_x2 as f64 / 2.0
        );
    }
    Ok(())
}
