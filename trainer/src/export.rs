//! Writing one export, all or nothing, and knowing when an export is up to
//! date.
//!
//! An export is a folder `<out>/<name>/`: per numeric path a blob
//! (`f32.bin`, `int8.bin`) and its test vectors (`f32.vectors`,
//! `int8.vectors`), `report.json`, and the family's extra files (plots,
//! `errors.csv`). [`write_model`] writes it into a staging
//! [`ExportDir`] and swaps it into place in one step,
//! so the folder always holds a complete export (see [`crate::io`]).

use std::path::{Path, PathBuf};

use anyhow::Result;
use runtime::format;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::io::{self, ExportDir};

/// Export one model into `out_root/<name>/`, all or nothing. First undo what
/// a killed export left ([`io::recover`]); with `reuse` (the files a
/// complete export has), keep an export whose report carries `fingerprint`;
/// otherwise `build` trains and writes the files into a staging
/// [`ExportDir`], this writes the report it returns last, and the folder is
/// swapped into place.
pub fn write_model<R: Serialize + DeserializeOwned>(
    out_root: &Path,
    name: &str,
    fingerprint: &str,
    reuse: Option<&[String]>,
    build: impl FnOnce(&ExportDir) -> Result<R>,
) -> Result<R> {
    io::recover(out_root, name)?;
    if let Some(files) = reuse {
        if let Some(old) = up_to_date_report(&out_root.join(name), fingerprint, files) {
            return Ok(old);
        }
    }
    let dir = ExportDir::create(out_root, name)?;
    let report = build(&dir)?;
    dir.write(
        "report.json",
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    dir.commit()?;
    Ok(report)
}

/// The report of the export in `dir` if it is complete (`report.json` and
/// every file in `files`) and was made from inputs with this `fingerprint`;
/// `None` means the model must be exported again.
pub fn up_to_date_report<R: DeserializeOwned>(
    dir: &Path,
    fingerprint: &str,
    files: &[String],
) -> Option<R> {
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).ok()?).ok()?;
    let complete = files.iter().all(|f| dir.join(f).is_file());
    if value["fingerprint"] == fingerprint && complete {
        serde_json::from_value(value).ok()
    } else {
        None
    }
}

/// Identifies what an export was made from: the spec, its data files, the
/// format version and the trainer's and runtime's source (see `build.rs`).
pub fn fingerprint(spec_path: &Path, data_files: &[PathBuf]) -> Result<String> {
    let mut digest = format::CRC32.digest();
    digest.update(&io::read(spec_path, "spec")?);
    for file in data_files {
        digest.update(&io::read(file, "dataset")?);
    }
    digest.update(&format::FORMAT_VERSION.to_le_bytes());
    digest.update(env!("TRAINER_SOURCE_FINGERPRINT").as_bytes());
    Ok(format!("{:08x}", digest.finalize()))
}

/// Draw `file` of an export with `draw`; a plot that cannot be drawn is a
/// warning, not an error.
pub fn plot(dir: &ExportDir, file: &str, draw: impl FnOnce(&Path) -> Result<()>) {
    if let Err(e) = dir.render(file, draw) {
        eprintln!("warning: plot skipped: {e:#}");
    }
}
