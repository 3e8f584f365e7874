//! Embeds the model and writes the constants the application needs
//! (`config.rs` in `OUT_DIR`), checking at build time what the chip would
//! otherwise find out at run time.
//!
//! `MODEL` is the blob (default: `models/exported/basicmotions-lstm/int8.bin`):
//! a recurrent model over the pipeline's six channels with at most
//! `sensor::pipeline::MAX_CLASSES` outputs, on a numeric path this crate's
//! features enable. Class names come from the `report.json` the trainer
//! writes beside the blob (`classes`), else `class 0`, `class 1`, ...; the
//! model's name is its export folder's.

use std::{env, fs, path::PathBuf};

use runtime::{Model, Numeric};

/// `sensor::pipeline::CHANNELS` and `MAX_CLASSES` (a build script cannot
/// use the no_std sensor crate's constants without building it for the host).
const CHANNELS: usize = 6;
const MAX_CLASSES: usize = 16;

fn run() -> Result<(), String> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    println!("cargo:rerun-if-env-changed=MODEL");
    let model_path = env::var_os("MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../../models/exported/basicmotions-lstm/int8.bin"));
    println!("cargo:rerun-if-changed={}", model_path.display());
    let blob = fs::read(&model_path)
        .map_err(|e| format!("activity: cannot read MODEL={}: {e}", model_path.display()))?;
    let model = Model::from_bytes(&blob)
        .map_err(|e| format!("activity: invalid model {}: {e}", model_path.display()))?;
    if !model.is_recurrent() || model.step_width() != CHANNELS {
        return Err(format!(
            "activity: {} is not a recurrent model over {CHANNELS} channels per step \
             (accelerometer x, y, z, gyroscope x, y, z), as the pipeline feeds",
            model_path.display()
        ));
    }
    let outputs = model.output_len();
    if outputs == 0 || outputs > MAX_CLASSES {
        return Err(format!(
            "activity: {} has {outputs} outputs; a decision holds 1 to {MAX_CLASSES}",
            model_path.display()
        ));
    }
    let (numeric, feature) = match model.numeric() {
        Numeric::Int8 => ("int8", "CARGO_FEATURE_INT8"),
        Numeric::F32 => ("f32", "CARGO_FEATURE_F32"),
    };
    if env::var_os(feature).is_none() {
        return Err(format!(
            "activity: {} is an {numeric} model: build with --features {numeric}",
            model_path.display()
        ));
    }

    let report = model_path.with_file_name("report.json");
    println!("cargo:rerun-if-changed={}", report.display());
    let named: Option<Vec<String>> = fs::read(&report)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|r| {
            r["classes"].as_array().map(|c| {
                c.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
        })
        .filter(|names: &Vec<String>| names.len() == outputs);
    let classes = named.unwrap_or_else(|| {
        (0..outputs)
            .map(|i| format!("class {i}"))
            .collect::<Vec<_>>()
    });
    let name = model_path
        .parent()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());

    fs::write(out.join("model.bin"), &blob)
        .map_err(|e| format!("activity: cannot write model.bin: {e}"))?;
    let config = format!(
        "/// The model's name (its export folder).\n\
         pub const MODEL_NAME: &str = {name:?};\n\
         /// `\"int8\"` or `\"f32\"`.\n\
         pub const NUMERIC: &str = {numeric:?};\n\
         /// Arena bytes the model needs (`trainer inspect` prints it too).\n\
         pub const ARENA_BYTES: usize = {};\n\
         /// Recurrent state bytes.\n\
         pub const STATE_BYTES: usize = {};\n\
         /// Class names, in the model's output order.\n\
         pub const CLASSES: [&str; {outputs}] = {classes:?};\n\
         /// The same, comma-separated (for the first log line).\n\
         pub const CLASS_LIST: &str = {list:?};\n",
        model.arena_bytes(),
        model.state_bytes(),
        list = classes.join(", "),
    );
    fs::write(out.join("config.rs"), config)
        .map_err(|e| format!("activity: cannot write config.rs: {e}"))?;
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
