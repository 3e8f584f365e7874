//! `cargo xtask reproduce`: retrain every model of `models/specs/` and check
//! that the trainer writes the committed export again, byte for byte.
//!
//! Each spec is trained afresh (`trainer train`, which never reuses an
//! export) into a temporary folder, and every file of the committed
//! `models/exported/<name>/` is compared with the new one: blobs, test
//! vectors, plots and `errors.csv` byte for byte; `report.json` as JSON
//! values (every field with the same value, down to the digits of each
//! number; the order of the fields is not compared) without `fingerprint`
//! (a hash of the trainer's source, which changes with any edit) and
//! `training_seconds` (a wall-clock time). A file that only
//! one side has is a difference too. One line per model, a summary, and a
//! failure exit status on any difference.
//!
//! Not part of `cargo xtask test`: candle's CPU kernels pick SIMD paths by
//! CPU, so another machine may legitimately train to other floats. On the
//! machine that made the exports it proves that a change to the trainer
//! kept every model's bytes.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::report::DEMO_REPORT;
use crate::trainer::{spec_name, specs};

/// Report fields that legitimately differ between two trainings of one spec.
const VOLATILE_REPORT_FIELDS: [&str; 2] = ["fingerprint", "training_seconds"];

/// `cargo xtask reproduce`; `Ok(false)` when any model differs.
pub fn reproduce() -> Result<bool> {
    let root = crate::workspace_root();
    let specs = specs()?;
    if specs.is_empty() {
        bail!("no model specs in models/specs/*.toml");
    }
    let out = Scratch::new()?;
    let (mut same, mut different) = (0, 0);
    for spec in &specs {
        let name = spec_name(spec);
        let line = match retrain(&root, spec, out.path()) {
            Ok(()) => compare(
                &root.join("models/exported").join(&name),
                &out.path().join(&name),
            ),
            Err(e) => Err(e),
        };
        match line {
            Ok(files) => {
                same += 1;
                println!("{name}: identical ({files} files)");
            }
            Err(e) => {
                different += 1;
                println!("{name}: DIFFERENT: {e:#}");
            }
        }
    }
    println!(
        "reproduce: {same} of {} models identical to models/exported/, {different} different",
        specs.len()
    );
    Ok(different == 0)
}

/// `cargo run -q -p trainer -- train <spec> --out <out>`.
fn retrain(root: &Path, spec: &Path, out: &Path) -> Result<()> {
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root)
        .args(["run", "-q", "-p", "trainer", "--", "train"])
        .arg(spec)
        .arg("--out")
        .arg(out)
        .output()
        .context("running the trainer")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "trainer train failed ({}): {}",
            output.status,
            stderr.trim()
        );
    }
    Ok(())
}

/// Compare the committed export `old` with the new one `new`; the number of
/// files compared, or what differs.
fn compare(old: &Path, new: &Path) -> Result<usize> {
    let (old_files, new_files) = (files(old)?, files(new)?);
    let mut problems = Vec::new();
    for only in old_files.symmetric_difference(&new_files) {
        let side = if old_files.contains(only) {
            "only in the committed export"
        } else {
            "only in the new export"
        };
        problems.push(format!("{only} {side}"));
    }
    for file in old_files.intersection(&new_files) {
        let (a, b) = (read(&old.join(file))?, read(&new.join(file))?);
        let problem = if file == "report.json" {
            report_difference(&a, &b)?
        } else {
            byte_difference(&a, &b)
        };
        if let Some(problem) = problem {
            problems.push(format!("{file}: {problem}"));
        }
    }
    if problems.is_empty() {
        Ok(old_files.len())
    } else {
        bail!("{}", problems.join("; "))
    }
}

/// The files of an export folder by name (a missing folder has none), the
/// trainer's only.
fn files(dir: &Path) -> Result<BTreeSet<String>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(BTreeSet::new());
    };
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // `cargo xtask demo --model` writes its report beside the export; the trainer does not.
        if entry.path().is_file() && name != DEMO_REPORT {
            names.insert(name);
        }
    }
    Ok(names)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Where two files first differ, if they do.
fn byte_difference(a: &[u8], b: &[u8]) -> Option<String> {
    if a == b {
        return None;
    }
    let at = a.iter().zip(b).position(|(x, y)| x != y);
    Some(match at {
        Some(at) => format!(
            "first difference at byte {at} ({} vs {} bytes)",
            a.len(),
            b.len()
        ),
        None => format!(
            "{} vs {} bytes (one is a prefix of the other)",
            a.len(),
            b.len()
        ),
    })
}

/// Which top-level fields of two reports differ, volatile fields aside.
fn report_difference(a: &[u8], b: &[u8]) -> Result<Option<String>> {
    let parse = |bytes: &[u8]| -> Result<serde_json::Map<String, Value>> {
        match serde_json::from_slice(bytes).context("report.json is not JSON")? {
            Value::Object(mut fields) => {
                for field in VOLATILE_REPORT_FIELDS {
                    fields.remove(field);
                }
                Ok(fields)
            }
            _ => bail!("report.json is not a JSON object"),
        }
    };
    let (a, b) = (parse(a)?, parse(b)?);
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let differing: Vec<&str> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(String::as_str)
        .collect();
    Ok((!differing.is_empty()).then(|| format!("fields {} differ", differing.join(", "))))
}

/// A fresh temporary folder, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("mcu-nn-reproduce-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_differ_at_the_first_changed_byte() {
        assert_eq!(byte_difference(b"abc", b"abc"), None);
        assert_eq!(
            byte_difference(b"abc", b"abd").as_deref(),
            Some("first difference at byte 2 (3 vs 3 bytes)")
        );
        assert!(byte_difference(b"ab", b"abc").unwrap().contains("prefix"));
    }

    #[test]
    fn reports_compare_as_json_without_volatile_fields() {
        let a =
            br#"{"name": "m", "f32_accuracy": 0.5, "fingerprint": "1", "training_seconds": 2.0}"#;
        let b =
            br#"{"training_seconds": 3.5, "fingerprint": "2", "f32_accuracy": 0.5, "name": "m"}"#;
        assert_eq!(report_difference(a, b).unwrap(), None);
        // A value printed with other digits is another value (an f32 widened to f64, say).
        let c = br#"{"name": "m", "f32_accuracy": 0.50000001}"#;
        assert_eq!(
            report_difference(a, c).unwrap().as_deref(),
            Some("fields f32_accuracy differ")
        );
        let d = br#"{"name": "m", "f32_accuracy": 0.5, "extra": 1}"#;
        assert_eq!(
            report_difference(a, d).unwrap().as_deref(),
            Some("fields extra differ")
        );
    }
}
