//! Embeds the model and one input, and writes the constants the
//! application needs (`config.rs` in `OUT_DIR`).
//!
//! `MODEL` is the blob (default: `models/exported/iris-mlp/int8.bin`),
//! `VECTORS` its test vectors (default: the `.vectors` beside the blob); the
//! application runs the first vector's input. The runtime validates the blob
//! here too, so a bad blob fails the build rather than the chip.

use std::{env, fs, path::PathBuf};

use runtime::{Model, Numeric, TestVectors};

fn path(var: &str, default: PathBuf) -> PathBuf {
    println!("cargo:rerun-if-env-changed={var}");
    let p = env::var_os(var).map(PathBuf::from).unwrap_or(default);
    println!("cargo:rerun-if-changed={}", p.display());
    p
}

fn run() -> Result<(), String> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let target = env::var("TARGET").map_err(|e| e.to_string())?;
    let model_path = path(
        "MODEL",
        manifest.join("../../models/exported/iris-mlp/int8.bin"),
    );
    let vectors_path = path("VECTORS", model_path.with_extension("vectors"));
    let read =
        |p: &PathBuf| fs::read(p).map_err(|e| format!("minimal: cannot read {}: {e}", p.display()));
    let blob = read(&model_path)?;
    let vector_bytes = read(&vectors_path)?;
    let model = Model::from_bytes(&blob)
        .map_err(|e| format!("minimal: invalid model {}: {e}", model_path.display()))?;
    let vectors = TestVectors::from_bytes(&vector_bytes)
        .map_err(|e| format!("minimal: invalid vectors {}: {e}", vectors_path.display()))?;
    // The crate's features must cover the model's (a clear message here
    // rather than `Error::UnsupportedLayer` on the chip).
    let missing: Vec<&str> = model
        .features()
        .names()
        .filter(|f| env::var_os(format!("CARGO_FEATURE_{}", f.to_uppercase())).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "minimal: {} needs the runtime features {}: build with --features {}",
            model_path.display(),
            model.features(),
            model.features().names().collect::<Vec<_>>().join(",")
        ));
    }
    let input = vectors.input_bytes(0);
    // An encoder-decoder forecasts its whole horizon (its own cfg).
    let forecast = model.is_seq2seq();
    let sequence = (model.is_recurrent() || model.is_causal()) && !forecast;
    let (element, values) = match model.numeric() {
        Numeric::F32 => (
            "f32",
            input
                .chunks_exact(4)
                .map(|c| {
                    format!(
                        "f32::from_bits({:#010x})",
                        u32::from_le_bytes([c[0], c[1], c[2], c[3]])
                    )
                })
                .collect::<Vec<_>>(),
        ),
        Numeric::Int8 => ("i8", input.iter().map(|&b| (b as i8).to_string()).collect()),
    };
    let output_bytes = match model.numeric() {
        Numeric::F32 => 4,
        Numeric::Int8 => 1,
    } * if forecast {
        model.horizon() * model.output_len()
    } else if model.is_causal() {
        model.output_len() / model.tokens()
    } else {
        model.output_len()
    };
    let memory_x = match target.as_str() {
        // QEMU microbit (nRF51822, Cortex-M0).
        "thumbv6m-none-eabi" => "MEMORY { FLASH : ORIGIN = 0x00000000, LENGTH = 256K RAM : ORIGIN = 0x20000000, LENGTH = 16K }\n",
        // QEMU mps2-an505 (Cortex-M33, secure state): code in SSRAM1's secure
        // alias, data in SSRAM2/3's, as the parity firmware.
        "thumbv8m.main-none-eabihf" => "MEMORY { FLASH : ORIGIN = 0x10000000, LENGTH = 4M RAM : ORIGIN = 0x38000000, LENGTH = 2M }\n",
        // QEMU mps2-an386 / an385 / an500 (Cortex-M4F, M3, M7).
        _ => "MEMORY { FLASH : ORIGIN = 0x00000000, LENGTH = 4M RAM : ORIGIN = 0x20000000, LENGTH = 4M }\n",
    };
    let write = |name: &str, bytes: &[u8]| {
        fs::write(out.join(name), bytes).map_err(|e| format!("minimal: cannot write {name}: {e}"))
    };
    write("memory.x", memory_x.as_bytes())?;
    write("model.bin", &blob)?;
    write(
        "config.rs",
        format!(
            "/// Arena bytes of the model (`trainer inspect` prints it too).\n\
             const ARENA_BYTES: usize = {};\n\
             /// State bytes of a recurrent or causal model (0 otherwise).\n\
             const STATE_BYTES: usize = {};\n\
             /// Bytes of the answer.\n\
             const OUTPUT_BYTES: usize = {output_bytes};\n\
             /// One input ({} values).\n\
             static INPUT: [{element}; {}] = [{}];\n",
            model.arena_bytes(),
            model.state_bytes(),
            values.len(),
            values.len(),
            values.join(", "),
        )
        .as_bytes(),
    )?;
    if sequence {
        println!("cargo:rustc-cfg=sequence");
    }
    if forecast {
        println!("cargo:rustc-cfg=forecast");
    }
    println!("cargo:rustc-cfg=path_{element}");
    println!("cargo::rustc-check-cfg=cfg(sequence, forecast, path_f32, path_i8)");
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
