//! Classical and unsupervised models: k-means, hierarchical clustering, PCA,
//! an autoencoder, an isolation forest (anomaly detectors on sliding windows
//! of a series), and self-training (semi-supervised MLP).
//!
//! A spec picks one with a top-level `kind` (absent means `"mlp"`, handled by
//! [`crate::export`]). Each kind becomes an ordinary runtime blob — a stack
//! of [`LayerDef`]s, the classical ones included — and is evaluated by the
//! runtime itself, like the MLPs. See `docs/classical.md` for the spec keys.
//!
//! | kind | fitted by | blob |
//! | --- | --- | --- |
//! | `kmeans` | linfa-clustering | `nearest-centroid` |
//! | `hierarchical` | kodama (Ward) | `nearest-centroid` of the cluster means |
//! | `pca` | linfa-reduction | `save 0, dense k, dense d, squared-error 0, threshold` |
//! | `autoencoder` | candle (own loop) | `save 0, dense.., squared-error 0, threshold` |
//! | `isolation-forest` | own ([`iforest`]) | `isolation-forest, threshold` |
//! | `self-training` | candle MLP ([`crate::train`]) | the MLP's f32 and int8 blobs |

pub mod clustering;
pub mod export;
pub mod iforest;
pub mod reconstruct;
pub mod selftrain;
pub mod series;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::limits;
use crate::spec::DatasetSpec;

/// The model kind a spec file asks for (`"mlp"` when it has no `kind`).
pub fn spec_kind(path: &Path) -> Result<String> {
    let text = crate::io::read_text(path, "spec")?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{}: not valid TOML", path.display()))?;
    match table.get("kind") {
        None => Ok("mlp".into()),
        Some(toml::Value::String(s)) => Ok(s.clone()),
        Some(_) => bail!("{}: kind must be a string", path.display()),
    }
}

/// Kinds that are not plain MLPs.
pub const KINDS: [&str; 6] = [
    "kmeans",
    "hierarchical",
    "pca",
    "autoencoder",
    "isolation-forest",
    "self-training",
];

/// A classical spec (every kind but `mlp` and `self-training`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassicalSpec {
    pub name: String,
    pub kind: String,
    /// Labelled rows (clustering kinds).
    pub dataset: Option<DatasetSpec>,
    /// A series (anomaly kinds).
    pub series: Option<SeriesSpec>,
    pub kmeans: Option<ClusterSpec>,
    pub hierarchical: Option<ClusterSpec>,
    pub pca: Option<PcaSpec>,
    pub autoencoder: Option<AutoencoderSpec>,
    pub isolation_forest: Option<ForestSpec>,
    #[serde(default)]
    pub threshold: ThresholdSpec,
    #[serde(skip)]
    pub spec_dir: PathBuf,
}

/// `[series]`: windows of a normal training series and a test series.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesSpec {
    /// Normal training series (`timestamp,value,is_anomaly` CSV).
    pub train: PathBuf,
    /// Test series with the labelled anomaly; may begin with the training part.
    pub test: PathBuf,
    /// Points per window.
    pub window: usize,
    /// Step between training windows (default 1).
    #[serde(default = "one")]
    pub train_stride: usize,
    /// Step between scored test windows (default 4).
    #[serde(default = "four")]
    pub test_stride: usize,
    /// Score test windows starting from this point (default: the training length,
    /// so only the part after the training series is scored).
    pub test_from: Option<usize>,
}

fn one() -> usize {
    1
}
fn four() -> usize {
    4
}

/// `[kmeans]` / `[hierarchical]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Number of clusters.
    pub k: usize,
    #[serde(default)]
    pub seed: u64,
    /// k-means only: also fit k over this inclusive range and report the
    /// inertia of each (the elbow curve), default `[2, 16]`.
    pub k_range: Option<[usize; 2]>,
}

/// `[pca]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcaSpec {
    pub components: usize,
}

/// `[autoencoder]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoencoderSpec {
    /// Hidden widths, e.g. `[32, 8, 32]`.
    pub hidden: Vec<usize>,
    /// `relu`, `tanh`, `sigmoid` or `gelu` (default `tanh`).
    #[serde(default = "tanh")]
    pub activation: String,
    pub epochs: usize,
    #[serde(default = "batch")]
    pub batch_size: usize,
    #[serde(default = "lr")]
    pub learning_rate: f64,
    #[serde(default)]
    pub seed: u64,
}

fn tanh() -> String {
    "tanh".into()
}
fn batch() -> usize {
    32
}
fn lr() -> f64 {
    0.002
}

/// `[isolation_forest]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForestSpec {
    pub trees: usize,
    #[serde(default = "psi")]
    pub sample_size: usize,
    #[serde(default)]
    pub seed: u64,
}

fn psi() -> usize {
    256
}

/// `[threshold]`: the decision threshold is this quantile of the training
/// windows' scores (default 1.0, their maximum).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    #[serde(default = "max_quantile")]
    pub quantile: f64,
}

fn max_quantile() -> f64 {
    1.0
}

impl Default for ThresholdSpec {
    fn default() -> Self {
        ThresholdSpec { quantile: 1.0 }
    }
}

impl ClassicalSpec {
    /// Read and check a classical spec.
    pub fn load(path: &Path) -> Result<ClassicalSpec> {
        let text = crate::io::read_text(path, "spec")?;
        let mut spec: ClassicalSpec = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
        spec.spec_dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let p = path.display();
        if spec.name.is_empty()
            || !spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || spec.name.starts_with('.')
        {
            bail!(
                "{p}: name {:?} must be letters, digits, '-', '_' or '.'",
                spec.name
            );
        }
        let need = |ok: bool, what: &str| -> Result<()> {
            if ok {
                Ok(())
            } else {
                bail!("{p}: kind {:?} needs {what}", spec.kind)
            }
        };
        match spec.kind.as_str() {
            "kmeans" => need(
                spec.dataset.is_some() && spec.kmeans.is_some(),
                "[dataset] and [kmeans]",
            )?,
            "hierarchical" => need(
                spec.dataset.is_some() && spec.hierarchical.is_some(),
                "[dataset] and [hierarchical]",
            )?,
            "pca" => need(
                spec.series.is_some() && spec.pca.is_some(),
                "[series] and [pca]",
            )?,
            "autoencoder" => need(
                spec.series.is_some() && spec.autoencoder.is_some(),
                "[series] and [autoencoder]",
            )?,
            "isolation-forest" => need(
                spec.series.is_some() && spec.isolation_forest.is_some(),
                "[series] and [isolation_forest]",
            )?,
            other => bail!(
                "{p}: unknown kind {other:?} (known: mlp, {})",
                KINDS.join(", ")
            ),
        }
        spec.check_limits()
            .map_err(|e| anyhow::anyhow!("{p}: {e}"))?;
        if !(0.0..=1.0).contains(&spec.threshold.quantile) {
            bail!("{p}: threshold.quantile must be between 0 and 1");
        }
        Ok(spec)
    }
}

impl ClassicalSpec {
    /// What the runtime (or the fit) would refuse, checked before any data is
    /// read: `"field: problem"`.
    fn check_limits(&self) -> std::result::Result<(), String> {
        fn field(name: &'static str) -> impl Fn(String) -> String {
            move |problem| format!("{name}: {problem}")
        }
        let window = self.series.as_ref().map(|s| s.window);
        if let Some(w) = window {
            if w < 2 {
                return Err(format!("series.window: must be at least 2, got {w}"));
            }
            limits::WIDTH
                .check("width", w)
                .map_err(field("series.window"))?;
        }
        if let (Some(pca), Some(w)) = (&self.pca, window) {
            if pca.components == 0 || pca.components >= w {
                return Err(format!(
                    "pca.components: {} must be between 1 and the window length - 1 ({})",
                    pca.components,
                    w - 1
                ));
            }
        }
        if let Some(a) = &self.autoencoder {
            if let Some(&h) = a.hidden.iter().find(|&&h| h == 0) {
                return Err(format!(
                    "autoencoder.hidden: widths must be at least 1, got {h}"
                ));
            }
            for &h in &a.hidden {
                limits::WIDTH
                    .check("width", h)
                    .map_err(field("autoencoder.hidden"))?;
            }
            // save, a dense layer per width and an activation per hidden
            // one, the reconstruction error, the threshold.
            let layers = 2 * a.hidden.len() + 4;
            limits::LAYERS
                .check("layer count", layers)
                .map_err(field("autoencoder.hidden"))?;
        }
        if let Some(f) = &self.isolation_forest {
            if f.trees == 0 || f.sample_size < 2 {
                return Err(
                    "isolation_forest: trees must be at least 1 and sample_size at least 2".into(),
                );
            }
            // A tree over `sample_size` rows has at most one leaf per row.
            let nodes = 2 * f.sample_size - 1;
            limits::TREE_NODES
                .check(
                    &format!("nodes per tree 2 x {} - 1 =", f.sample_size),
                    nodes,
                )
                .map_err(field("isolation_forest.sample_size"))?;
        }
        for c in [&self.kmeans, &self.hierarchical].into_iter().flatten() {
            if c.k == 0 {
                return Err("k must be at least 1".into());
            }
            if let Some([lo, hi]) = c.k_range {
                if lo == 0 || lo > hi {
                    return Err(format!(
                        "kmeans.k_range: [{lo}, {hi}] must be 1 <= low <= high"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl ClassicalSpec {
    /// The data files the export depends on.
    pub fn data_files(&self) -> Vec<PathBuf> {
        match (&self.dataset, &self.series) {
            (Some(d), _) => vec![self.spec_dir.join(&d.path)],
            (None, Some(s)) => vec![self.spec_dir.join(&s.train), self.spec_dir.join(&s.test)],
            _ => vec![],
        }
    }
}

/// Export any non-MLP spec (see [`KINDS`]); with `reuse`, keep an up-to-date export.
pub fn export_spec(spec_path: &Path, out_root: &Path, reuse: bool) -> Result<serde_json::Value> {
    match spec_kind(spec_path)?.as_str() {
        "self-training" => selftrain::export_self_training(spec_path, out_root, reuse),
        _ => export::export_classical(spec_path, out_root, reuse),
    }
}

/// One line summarising a classical report.
pub fn summary(r: &serde_json::Value) -> String {
    let name = r["name"].as_str().unwrap_or("?");
    let kind = r["kind"].as_str().unwrap_or("?");
    match kind {
        "self-training" => format!(
            "{name} ({kind}): {:.2}% with pseudo-labels, {:.2}% on the labelled {:.0}% alone; int8 {:.2}%",
            100.0 * r["self_training"]["self_trained_accuracy"].as_f64().unwrap_or(0.0),
            100.0 * r["self_training"]["labelled_only_accuracy"].as_f64().unwrap_or(0.0),
            100.0 * r["self_training"]["labelled_fraction"].as_f64().unwrap_or(0.0),
            100.0 * r["int8_accuracy"].as_f64().unwrap_or(0.0),
        ),
        _ => format!(
            "{name} ({kind}): {} {}  blob {} B, arena {} B",
            r["metric"]["name"].as_str().unwrap_or("?"),
            r["metric"]["host"],
            r["f32"]["blob_bytes"],
            r["f32"]["arena_bytes"],
        ),
    }
}
