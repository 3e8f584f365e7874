//! The minimal application (`firmware/minimal/`): what a user pays for a
//! model. Built for a model and a core with only the model's runtime
//! features, its flash and RAM read from the ELF (code and weights apart),
//! run once under QEMU, its answer read through QEMU's monitor and compared
//! with the host runtime's.

use std::fs;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use object::{Object, ObjectSymbol};
use runtime::{Model, TestVectors};
use serde::Serialize;

use crate::chip::{build_crate, elf_sizes, model_features, numeric_name};
use crate::cores::Core;
use crate::qemu;

/// One build and run of the minimal application.
#[derive(Debug, Clone, Serialize)]
pub struct MinimalRun {
    pub core: Core,
    pub numeric: &'static str,
    /// The runtime features it was built with.
    pub features: String,
    /// `.vector_table + .text + .rodata + .data`, less the one embedded input.
    pub flash_bytes: u64,
    /// The blob (weights, tables and layer descriptions).
    pub weights_bytes: u64,
    /// `flash_bytes - weights_bytes`: the runtime and the application.
    pub code_bytes: u64,
    /// `.data + .bss` (model, arena, state); the stack comes on top.
    pub ram_bytes: u64,
    /// Whether the chip's answer equals the host runtime's, byte for byte.
    pub matches_host: bool,
}

/// Build the minimal application for `model_path` on `core`, run it once
/// and compare its answer with vector 0 of `vectors_path`.
pub fn run(core: Core, model_path: &Path, vectors_path: &Path) -> Result<MinimalRun> {
    let blob = fs::read(model_path).with_context(|| format!("reading {}", model_path.display()))?;
    let vector_bytes =
        fs::read(vectors_path).with_context(|| format!("reading {}", vectors_path.display()))?;
    let model = Model::from_bytes(&blob)
        .map_err(|e| anyhow!("invalid model blob {}: {e}", model_path.display()))?;
    let vectors = TestVectors::from_bytes(&vector_bytes)
        .map_err(|e| anyhow!("invalid vectors {}: {e}", vectors_path.display()))?;
    let features = model_features(&model);
    let elf = build_crate(
        "minimal",
        core,
        &features,
        &[("MODEL", model_path), ("VECTORS", vectors_path)],
    )?;
    let (flash, ram) = elf_sizes(&elf)?;
    // The host's answer to vector 0: a causal model's last row.
    let expected = vectors.expected_bytes(0);
    let expected = if model.is_causal() {
        let row = expected.len() / vectors.steps(0).max(1);
        &expected[expected.len() - row..]
    } else {
        expected
    };
    let (status, output) = symbol(&elf, "STATUS").and_then(|status| {
        let output = symbol(&elf, "OUTPUT")?;
        qemu::run_and_read(core, &elf, status, output, expected.len())
    })?;
    if status != 1 {
        bail!(
            "the minimal application on {} reported an error (status {status})",
            core.name()
        );
    }
    let flash_bytes = flash.saturating_sub(vectors.input_bytes(0).len() as u64);
    Ok(MinimalRun {
        core,
        numeric: numeric_name(model.numeric()),
        features,
        flash_bytes,
        weights_bytes: blob.len() as u64,
        code_bytes: flash_bytes.saturating_sub(blob.len() as u64),
        ram_bytes: ram,
        matches_host: output == expected,
    })
}

/// Address of a symbol of an ELF.
fn symbol(elf: &Path, name: &str) -> Result<u64> {
    let data = fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing ELF {}", elf.display()))?;
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .map(|s| s.address())
        .ok_or_else(|| anyhow!("{} has no symbol {name}", elf.display()))
}
