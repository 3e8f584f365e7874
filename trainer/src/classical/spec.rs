//! The classical family's tables, one per kind (see `docs/classical.md`):
//!
//! | kind | data | table |
//! | --- | --- | --- |
//! | `kmeans` | `[dataset]` | `[kmeans]`: `k`, `seed`, `k_range` |
//! | `hierarchical` | `[dataset]` | `[hierarchical]`: `k` |
//! | `pca` | `[series]` with `window` | `[pca]`: `components` |
//! | `autoencoder` | `[series]` with `window` | `[autoencoder]`: `hidden`, `activation`, `epochs`, `batch_size`, `learning_rate`, `seed` |
//! | `isolation-forest` | `[series]` with `window` | `[isolation_forest]`: `trees`, `sample_size`, `seed` |
//!
//! Detectors also read `[threshold]` (`quantile` of the training windows'
//! scores, default 1.0: their maximum). The kind is turned into a typed
//! [`ClassicalSpec`] here, once.

use serde::Deserialize;

use crate::dense::LayerSpec;
use crate::limits;
use crate::spec::{Spec, SpecError, Tables};

/// The classical family's part of a spec.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassicalSpec {
    /// Nearest-centroid clustering of labelled rows.
    Clustering(Clustering),
    /// An anomaly detector on windows of a series.
    Detector(DetectorSpec),
}

/// How centroids are found.
#[derive(Debug, Clone, PartialEq)]
pub enum Clustering {
    /// `kind = "kmeans"`.
    KMeans(ClusterSpec),
    /// `kind = "hierarchical"` (Ward).
    Hierarchical(ClusterSpec),
}

/// A detector: what scores a window, and where its threshold lies.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorSpec {
    /// The score.
    pub fit: Fit,
    /// Points per window (`series.window`).
    pub window: usize,
    /// Step between scored test windows (`series.test_stride`, default 4).
    pub test_stride: usize,
    /// `[threshold]`.
    pub threshold: ThresholdSpec,
}

/// What a detector fits on the training windows.
#[derive(Debug, Clone, PartialEq)]
pub enum Fit {
    /// `kind = "pca"`: reconstruction error of a PCA.
    Pca(PcaSpec),
    /// `kind = "autoencoder"`: reconstruction error of a dense autoencoder.
    Autoencoder(AutoencoderSpec),
    /// `kind = "isolation-forest"`.
    IsolationForest(ForestSpec),
}

/// `[kmeans]` / `[hierarchical]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Number of clusters.
    pub k: usize,
    /// k-means' seed.
    #[serde(default)]
    pub seed: u64,
    /// k-means only: also fit k over this inclusive range and report the
    /// inertia of each (the elbow curve), default `[2, 16]`.
    pub k_range: Option<[usize; 2]>,
}

/// `[pca]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcaSpec {
    /// Components kept.
    pub components: usize,
}

/// `[autoencoder]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoencoderSpec {
    /// Hidden widths, e.g. `[32, 8, 32]`.
    pub hidden: Vec<usize>,
    /// `relu`, `tanh`, `sigmoid` or `gelu` (default `tanh`), after every hidden layer.
    #[serde(default = "tanh")]
    pub activation: String,
    /// Passes over the training windows.
    pub epochs: usize,
    /// Windows per step.
    #[serde(default = "batch")]
    pub batch_size: usize,
    /// Adam's learning rate.
    #[serde(default = "lr")]
    pub learning_rate: f64,
    /// Seed of the weights and the batches.
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

impl AutoencoderSpec {
    /// The activation as a layer.
    pub fn activation_layer(&self) -> Option<LayerSpec> {
        Some(match self.activation.as_str() {
            "relu" => LayerSpec::Relu,
            "tanh" => LayerSpec::Tanh,
            "sigmoid" => LayerSpec::Sigmoid,
            "gelu" => LayerSpec::Gelu,
            _ => return None,
        })
    }
}

/// `[isolation_forest]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForestSpec {
    /// Trees.
    pub trees: usize,
    /// Rows each tree is grown on.
    #[serde(default = "psi")]
    pub sample_size: usize,
    /// Seed of the samples and the splits.
    #[serde(default)]
    pub seed: u64,
}

fn psi() -> usize {
    256
}

/// `[threshold]`: the decision threshold is this quantile of the training
/// windows' scores (default 1.0, their maximum).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    /// In `[0, 1]`.
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

/// Parse and check the classical family's tables, including what the
/// runtime (or the fit) would refuse.
pub fn parse(spec: &Spec, tables: &mut Tables) -> Result<ClassicalSpec, SpecError> {
    tables.unused(&["training", "quantization"])?;
    let kind = spec.kind.as_str();
    let needs = |what: &str| spec.invalid("kind", format!("{kind:?} needs {what}"));
    let parsed = match kind {
        "kmeans" | "hierarchical" => {
            let table = tables.take::<ClusterSpec>(kind)?;
            let (Some(c), true) = (table, spec.dataset.is_some() && spec.series.is_none()) else {
                return Err(needs(&format!("[dataset] and [{kind}]")));
            };
            if c.k == 0 {
                return Err(spec.invalid("k", "must be at least 1"));
            }
            if let Some([lo, hi]) = c.k_range {
                if lo == 0 || lo > hi {
                    return Err(spec.above(
                        "kmeans.k_range",
                        format!("[{lo}, {hi}] must be 1 <= low <= high"),
                    ));
                }
            }
            ClassicalSpec::Clustering(match kind {
                "kmeans" => Clustering::KMeans(c),
                _ => Clustering::Hierarchical(c),
            })
        }
        "pca" | "autoencoder" | "isolation-forest" => {
            let table = kind.replace('-', "_");
            let fit = match kind {
                "pca" => tables.take::<PcaSpec>(&table)?.map(Fit::Pca),
                "autoencoder" => tables
                    .take::<AutoencoderSpec>(&table)?
                    .map(Fit::Autoencoder),
                _ => tables.take::<ForestSpec>(&table)?.map(Fit::IsolationForest),
            };
            let (Some(fit), Some(series), None) = (fit, &spec.series, &spec.dataset) else {
                return Err(needs(&format!("[series] and [{table}]")));
            };
            let Some(window) = series.window else {
                return Err(spec.invalid("series.window", "is required (points per window)"));
            };
            let threshold = tables
                .take::<ThresholdSpec>("threshold")?
                .unwrap_or_default();
            let detector = DetectorSpec {
                fit,
                window,
                test_stride: series.test_stride.unwrap_or(4),
                threshold,
            };
            check_detector(spec, &detector)?;
            ClassicalSpec::Detector(detector)
        }
        other => return Err(spec.invalid("kind", format!("{other:?} is not a classical kind"))),
    };
    Ok(parsed)
}

/// What the runtime (or the fit) would refuse of a detector, checked before
/// any data is read.
fn check_detector(spec: &Spec, d: &DetectorSpec) -> Result<(), SpecError> {
    let w = d.window;
    if w < 2 {
        return Err(spec.above("series.window", format!("must be at least 2, got {w}")));
    }
    limits::WIDTH
        .check("width", w)
        .map_err(|p| spec.above("series.window", p))?;
    match &d.fit {
        Fit::Pca(pca) => {
            if pca.components == 0 || pca.components >= w {
                return Err(spec.above(
                    "pca.components",
                    format!(
                        "{} must be between 1 and the window length - 1 ({})",
                        pca.components,
                        w - 1
                    ),
                ));
            }
        }
        Fit::Autoencoder(a) => {
            if let Some(&h) = a.hidden.iter().find(|&&h| h == 0) {
                return Err(spec.above(
                    "autoencoder.hidden",
                    format!("widths must be at least 1, got {h}"),
                ));
            }
            for &h in &a.hidden {
                limits::WIDTH
                    .check("width", h)
                    .map_err(|p| spec.above("autoencoder.hidden", p))?;
            }
            // save, a dense layer per width and an activation per hidden
            // one, the reconstruction error, the threshold.
            let layers = 2 * a.hidden.len() + 4;
            limits::LAYERS
                .check("layer count", layers)
                .map_err(|p| spec.above("autoencoder.hidden", p))?;
            if a.activation_layer().is_none() {
                return Err(spec.invalid(
                    "autoencoder.activation",
                    format!("{:?}: use relu, tanh, sigmoid or gelu", a.activation),
                ));
            }
        }
        Fit::IsolationForest(f) => {
            if f.trees == 0 || f.sample_size < 2 {
                return Err(spec.above(
                    "isolation_forest",
                    "trees must be at least 1 and sample_size at least 2".into(),
                ));
            }
            // A tree over `sample_size` rows has at most one leaf per row.
            let nodes = 2 * f.sample_size - 1;
            limits::TREE_NODES
                .check(
                    &format!("nodes per tree 2 x {} - 1 =", f.sample_size),
                    nodes,
                )
                .map_err(|p| spec.above("isolation_forest.sample_size", p))?;
        }
    }
    if !(0.0..=1.0).contains(&d.threshold.quantile) {
        return Err(spec.invalid("threshold.quantile", "must be between 0 and 1"));
    }
    Ok(())
}
