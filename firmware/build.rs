//! Picks the memory layout for the target, embeds the model and its test
//! vectors, and validates both with the runtime itself (so a bad blob fails
//! the build, not the chip).
//!
//! Inputs (set by `cargo xtask`): `FW_MODEL` (model blob path) and
//! `FW_VECTORS` (postcard `TestVectors` path).
//! Outputs in `OUT_DIR`: `memory.x`, `model.bin`, `vectors.bin` and
//! `config.rs` (`ARENA_BYTES`, `INPUT_F32_LEN`, `INSTRUCTIONS_PER_TICK_X2`,
//! `STATE_BYTES`, `MODEL_NAME`).
//!
//! `firmware/defmt-qemu/` runs this same script (its `build` key points
//! here); only it logs `MODEL_NAME`, the blob's folder name
//! (`models/exported/<name>/int8.bin`).

use std::{env, fs, path::PathBuf};

use runtime::{Model, Numeric, TestVectors};

/// The QEMU boards' memory maps, shared with `kernel-check/`.
#[path = "memory.rs"]
mod memory;
use memory::board;

fn input(var: &str) -> Result<(PathBuf, Vec<u8>), String> {
    println!("cargo:rerun-if-env-changed={var}");
    let path = env::var_os(var).map(PathBuf::from).ok_or_else(|| {
        format!("firmware: set {var} to an absolute path (normally `cargo xtask` does this)")
    })?;
    println!("cargo:rerun-if-changed={}", path.display());
    let bytes = fs::read(&path)
        .map_err(|e| format!("firmware: cannot read {var}={}: {e}", path.display()))?;
    Ok((path, bytes))
}

fn run() -> Result<(), String> {
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let target = env::var("TARGET").map_err(|e| e.to_string())?;
    let (memory_x, per_tick_x2) = board(&target)?;

    let (model_path, model_bytes) = input("FW_MODEL")?;
    let (vectors_path, vector_bytes) = input("FW_VECTORS")?;
    let model = Model::from_bytes(&model_bytes)
        .map_err(|e| format!("firmware: invalid model blob {}: {e}", model_path.display()))?;
    let vectors = TestVectors::from_bytes(&vector_bytes)
        .map_err(|e| format!("firmware: invalid vectors {}: {e}", vectors_path.display()))?;
    // Causal models take one token per step and print one output row per
    // step, so a vector's output is `steps x row`.
    // Encoder-decoders take a window and print every decoded step's row.
    let widths_match = if model.is_seq2seq() {
        vectors.input_len as usize == model.window() * model.input_len()
            && vectors.output_len as usize == model.horizon() * model.output_len()
    } else if model.is_causal() {
        let row = model.output_len() / model.tokens();
        vectors.input_len as usize == model.step_width()
            && (vectors.output_len as usize).is_multiple_of(row)
    } else {
        vectors.input_len as usize == model.input_len()
            && vectors.output_len as usize == model.output_len()
    };
    if vectors.numeric != model.numeric() || !widths_match {
        return Err(format!(
            "firmware: vectors {} do not match model {} (numeric or widths differ)",
            vectors_path.display(),
            model_path.display()
        ));
    }
    // The runtime features this build enables must cover the model's (a clear
    // message here rather than `Error::UnsupportedLayer` on the chip).
    let missing: Vec<&str> = model
        .features()
        .names()
        .filter(|f| env::var_os(format!("CARGO_FEATURE_{}", f.to_uppercase())).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "firmware: {} needs the runtime features {}: build with --features {}",
            model_path.display(),
            model.features(),
            model.features().names().collect::<Vec<_>>().join(",")
        ));
    }
    let name = model_path
        .parent()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let input_f32_len = match model.numeric() {
        Numeric::F32 if model.is_seq2seq() => model.window() * model.input_len(),
        Numeric::F32 => model.step_width(),
        Numeric::Int8 => 0,
    };

    let write = |name: &str, bytes: &[u8]| {
        fs::write(out.join(name), bytes).map_err(|e| format!("firmware: cannot write {name}: {e}"))
    };
    // A real board brings its own memory map; the QEMU boards use the built-in ones.
    println!("cargo:rerun-if-env-changed=FW_MEMORY_X");
    let memory_x = match env::var_os("FW_MEMORY_X") {
        Some(path) => {
            println!("cargo:rerun-if-changed={}", PathBuf::from(&path).display());
            fs::read_to_string(&path).map_err(|e| {
                format!(
                    "firmware: cannot read FW_MEMORY_X={}: {e}",
                    PathBuf::from(&path).display()
                )
            })?
        }
        None => memory_x.to_string(),
    };
    write("memory.x", memory_x.as_bytes())?;
    write("model.bin", &model_bytes)?;
    write("vectors.bin", &vector_bytes)?;
    write(
        "config.rs",
        format!(
            "/// Arena bytes the embedded model needs (from the blob, validated at build time).\n\
             pub const ARENA_BYTES: usize = {};\n\
             /// f32 input values per vector (0 for int8 models).\n\
             pub const INPUT_F32_LEN: usize = {input_f32_len};\n\
             /// Instructions per SysTick tick under `-icount shift=0`, times 2.\n\
             pub const INSTRUCTIONS_PER_TICK_X2: u64 = {per_tick_x2};\n\
             /// State bytes of a recurrent or causal model (0 otherwise).\n\
             pub const STATE_BYTES: usize = {};\n\
             /// The model's name (its export folder).\n\
             #[allow(dead_code)] // logged by defmt-qemu only\n\
             pub const MODEL_NAME: &str = {name:?};\n",
            model.arena_bytes(),
            model.state_bytes()
        )
        .as_bytes(),
    )?;

    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg=-Tlink.x");
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
