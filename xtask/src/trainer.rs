//! The trainer's side: model specs, exporting them, and the exported files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// One exported model folder, `models/exported/<name>/`.
pub struct Exported {
    pub name: String,
    pub dir: PathBuf,
}

impl Exported {
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// `report.json`, or `Null` when missing or unreadable.
    pub fn report(&self) -> serde_json::Value {
        fs::read(self.file("report.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null)
    }
    fn complete(&self) -> bool {
        let numerics = self.numerics();
        self.file("report.json").is_file()
            && numerics.iter().all(|n| {
                self.file(&format!("{n}.bin")).is_file()
                    && self.file(&format!("{n}.vectors")).is_file()
            })
    }
    /// Which blobs the export has: `report.json`'s `runs` (classical kinds
    /// are f32 only), else both `f32` and `int8`.
    pub fn numerics(&self) -> Vec<String> {
        match self.report()["runs"].as_array() {
            Some(runs) => runs
                .iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect(),
            None => vec!["f32".into(), "int8".into()],
        }
    }
    /// The chip runs of [`crate::cores::RUNS`] this export has blobs for.
    pub fn runs(&self) -> Vec<(&'static str, crate::cores::Core)> {
        self.runs_of(&crate::cores::RUNS)
    }
    /// The same, of [`crate::cores::DEMO_RUNS`].
    pub fn demo_runs(&self) -> Vec<(&'static str, crate::cores::Core)> {
        self.runs_of(&crate::cores::DEMO_RUNS)
    }
    fn runs_of(
        &self,
        runs: &[(&'static str, crate::cores::Core)],
    ) -> Vec<(&'static str, crate::cores::Core)> {
        let numerics = self.numerics();
        runs.iter()
            .copied()
            .filter(|(n, _)| numerics.iter().any(|m| m == n))
            .collect()
    }
}

/// `models/specs/*.toml`, sorted.
pub fn specs() -> Result<Vec<PathBuf>> {
    let dir = crate::workspace_root().join("models/specs");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut specs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    specs.sort();
    Ok(specs)
}

/// The model name of a spec: its top-level `name`, else the file stem.
pub fn spec_name(spec: &Path) -> String {
    fs::read_to_string(spec)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| t.get("name").and_then(|n| n.as_str()).map(str::to_string))
        .or_else(|| spec.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

fn exported_dir() -> PathBuf {
    crate::workspace_root().join("models/exported")
}

/// Run `cargo run -q -p trainer -- export <spec> --out models/exported`.
pub fn export(spec: &Path) -> Result<()> {
    let root = crate::workspace_root();
    eprintln!("xtask: exporting {}", spec.display());
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(&root)
        .args(["run", "-q", "-p", "trainer", "--", "export"])
        .arg(spec)
        .args(["--out", "models/exported"])
        .status()
        .context("running the trainer")?;
    if !status.success() {
        bail!("trainer export of {} failed ({status})", spec.display());
    }
    Ok(())
}

/// Every spec's exported model. `always_export`: call the trainer for each
/// spec (it may reuse its own results); otherwise only for missing exports.
pub fn exported_models(always_export: bool) -> Result<Vec<Exported>> {
    specs()?
        .iter()
        .map(|spec| exported_model(spec, always_export))
        .collect()
}

/// One spec's exported model, as [`exported_models`] makes each.
pub fn exported_model(spec: &Path, always_export: bool) -> Result<Exported> {
    let name = spec_name(spec);
    let model = Exported {
        dir: exported_dir().join(&name),
        name,
    };
    if always_export || !model.complete() {
        export(spec)?;
    }
    if !model.complete() {
        bail!(
            "trainer export of {} did not write {}/{{f32,int8}}.{{bin,vectors}} and report.json",
            spec.display(),
            model.dir.display()
        );
    }
    Ok(model)
}

/// The spec a user names: a path to a spec file, or the name of one in
/// `models/specs/` (its `name` or its file stem).
pub fn find_spec(name_or_path: &str) -> Result<PathBuf> {
    let path = Path::new(name_or_path);
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let specs = specs()?;
    specs
        .iter()
        .find(|s| spec_name(s) == name_or_path || s.file_stem().is_some_and(|f| f == name_or_path))
        .cloned()
        .ok_or_else(|| {
            let names: Vec<String> = specs.iter().map(|s| spec_name(s)).collect();
            anyhow::anyhow!(
                "no spec file {name_or_path} and no model of that name in models/specs/ (there are: {})",
                names.join(", ")
            )
        })
}
