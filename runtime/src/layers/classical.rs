//! The classical family (feature `classical`, f32 only): nearest centroid
//! (k-means, hierarchical clustering), reconstruction error (PCA,
//! autoencoders), isolation forest and a score threshold. They are layers
//! like the dense ones, so a PCA is `save 0, dense k, dense d,
//! squared-error 0` and an anomaly detector ends with a threshold. The
//! kernels are in [`crate::kernels::classical`].
//!
//! Validation: a nearest-centroid layer has `1..2^24` centroids of the input
//! width; a squared-error layer reads a slot saved with the current width;
//! an isolation forest's trees tile its node arrays, every split feature is
//! below the input width, every value is finite, and every child index is
//! after its parent and inside its tree ([`Error::BadTreeNode`] otherwise),
//! so a walk always ends at a leaf; a threshold follows a one-value score
//! and is not NaN.

use super::ModelStats;
use super::{check_len, check_width, Io, Out, Plan};
use crate::error::{Error, Result};
use crate::format::LayerDef;
use crate::kernels::classical::{self, average_path_length, node, Forest, LEAF, NODE_BYTES};

/// A validated classical layer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Classical<'a> {
    NearestCentroid { centroids: &'a [u8] },
    SquaredError { slot: u8 },
    IsolationForest(Forest<'a>),
    Threshold { value: f32 },
}

/// Validate a classical definition (`None`: not of this family).
pub(crate) fn validate<'a>(
    at: u32,
    def: &LayerDef<'a>,
    plan: &mut Plan<'_, 'a>,
) -> Option<Result<Classical<'a>>> {
    let width = plan.width;
    let layer = match *def {
        LayerDef::NearestCentroidF32 { dim, k, centroids } => (|| {
            let d = check_width(at, dim)?;
            if k == 0 || k >= 1 << 24 {
                return Err(Error::DimensionOutOfRange {
                    layer: at,
                    value: k,
                });
            }
            if d != width {
                return Err(Error::ShapeMismatch { layer: at });
            }
            check_len(
                at,
                centroids,
                (k as usize).saturating_mul(d).saturating_mul(4),
            )?;
            plan.width = 2;
            Ok(Classical::NearestCentroid { centroids })
        })(),
        LayerDef::SquaredErrorF32 { slot } => plan.slots.check_read(at, slot, width).map(|()| {
            plan.width = 1;
            Classical::SquaredError { slot }
        }),
        LayerDef::IsolationForestF32 {
            inputs,
            sample_size,
            roots,
            nodes,
        } => (|| {
            let i = check_width(at, inputs)?;
            if i != width {
                return Err(Error::ShapeMismatch { layer: at });
            }
            let forest = validate_forest(at, i, sample_size, roots, nodes)?;
            plan.width = 1;
            Ok(Classical::IsolationForest(forest))
        })(),
        LayerDef::ThresholdF32 { value } => {
            if value.is_nan() {
                Err(Error::BadParameter { layer: at })
            } else if width != 1 {
                Err(Error::ShapeMismatch { layer: at })
            } else {
                plan.width = 2;
                Ok(Classical::Threshold { value })
            }
        }
        _ => return None,
    };
    Some(layer)
}

/// Check an isolation forest's arrays (lengths, roots, every node) and return
/// the validated view. `layer` names the layer in errors.
fn validate_forest<'a>(
    layer: u32,
    inputs: usize,
    sample_size: u32,
    roots: &'a [u8],
    nodes: &'a [u8],
) -> Result<Forest<'a>> {
    if roots.is_empty()
        || !roots.len().is_multiple_of(4)
        || nodes.is_empty()
        || !nodes.len().is_multiple_of(NODE_BYTES)
    {
        return Err(Error::ShapeMismatch { layer });
    }
    if sample_size < 2 {
        return Err(Error::BadParameter { layer });
    }
    let forest = Forest {
        roots,
        nodes,
        normaliser: average_path_length(sample_size),
    };
    let count = forest.nodes();
    let mut previous_end = 0usize;
    for t in 0..forest.trees() {
        let (start, end) = forest.tree_range(t);
        // Trees tile the node array: each starts where the last ended and is non-empty.
        if start != previous_end || end <= start || end > count {
            return Err(Error::BadTreeNode {
                layer,
                node: t as u32,
            });
        }
        previous_end = end;
        for i in start..end {
            let bad = Error::BadTreeNode {
                layer,
                node: i as u32,
            };
            let n = node(nodes, i).ok_or(bad)?;
            if !n.value.is_finite() {
                return Err(bad);
            }
            if n.feature == LEAF {
                continue;
            }
            if usize::from(n.feature) >= inputs {
                return Err(bad);
            }
            for child in [n.left, n.right] {
                let c = start + usize::from(child);
                if c <= i || c >= end {
                    return Err(bad);
                }
            }
        }
    }
    if previous_end != count {
        return Err(Error::BadTreeNode {
            layer,
            node: previous_end as u32,
        });
    }
    Ok(forest)
}

impl Classical<'_> {
    /// Short name for reports.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Classical::NearestCentroid { .. } => "nearest centroid f32",
            Classical::SquaredError { .. } => "squared error f32",
            Classical::IsolationForest(_) => "isolation forest f32",
            Classical::Threshold { .. } => "threshold f32",
        }
    }

    /// Adds parameters, MACs and parameter bytes.
    pub(crate) fn add_stats(&self, s: &mut ModelStats) {
        match *self {
            Classical::NearestCentroid { centroids } => {
                s.parameters += centroids.len() / 4;
                s.macs += centroids.len() / 4;
                s.parameter_bytes += centroids.len();
            }
            Classical::IsolationForest(f) => {
                // feature, value, left, right per node (no MACs: comparisons only).
                s.parameters += 4 * f.nodes() + f.trees();
                s.parameter_bytes += NODE_BYTES * f.nodes() + 4 * f.trees();
            }
            Classical::Threshold { .. } => s.parameters += 1,
            Classical::SquaredError { .. } => {}
        }
    }

    pub(crate) fn run_f32(&self, io: Io<'_, f32>) -> Result<Out> {
        match *self {
            Classical::NearestCentroid { centroids } => {
                classical::nearest_centroid_f32(centroids, io.x, io.y);
                Ok(Out::Next)
            }
            Classical::SquaredError { slot } => {
                let (x, saved) = io.x_and_slot(slot)?;
                let e = classical::squared_error_f32(x, saved);
                if let Some(v) = x.first_mut() {
                    *v = e;
                }
                Ok(Out::InPlace)
            }
            Classical::IsolationForest(forest) => {
                let s = forest.score(io.x);
                if let Some(v) = io.x.first_mut() {
                    *v = s;
                }
                Ok(Out::InPlace)
            }
            Classical::Threshold { value } => {
                let score = io.x.first().copied().unwrap_or(f32::NAN);
                if let [y0, y1, ..] = io.y {
                    *y0 = score;
                    *y1 = if score > value { 1.0 } else { 0.0 };
                }
                Ok(Out::Next)
            }
        }
    }
}
