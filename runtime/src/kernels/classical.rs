//! Classical and unsupervised model kernels, f32: nearest centroid
//! (k-means, hierarchical clustering), reconstruction error (PCA,
//! autoencoders), isolation forest and a score threshold.
//!
//! The layers (`layers/classical.rs`) validate their parameters once, and
//! the kernels then index only within the bounds established there. Like the other reference kernels, every sum
//! runs in index order so results are bit-identical on every target.

use super::{le_f32, le_u16, le_u32};

/// `feature` value that marks an isolation-forest leaf.
pub const LEAF: u16 = 0xFFFF;

/// Euler–Mascheroni constant, for [`average_path_length`].
const EULER_GAMMA: f32 = 0.577_215_7;

/// `out = [index of the nearest centroid, its squared distance]`.
///
/// `centroids` holds rows of `x.len()` f32 (LE). Ties and NaN distances go to
/// the lowest index (a distance only wins when strictly smaller).
pub fn nearest_centroid_f32(centroids: &[u8], x: &[f32], out: &mut [f32]) {
    let row_bytes = x.len() * 4;
    if row_bytes == 0 {
        return;
    }
    let mut best = (0usize, f32::NAN);
    for (i, row) in centroids.chunks_exact(row_bytes).enumerate() {
        let mut d = 0.0f32;
        for (c, &v) in row.chunks_exact(4).zip(x) {
            let diff = v - le_f32(c);
            d += diff * diff;
        }
        if i == 0 || d < best.1 {
            best = (i, d);
        }
    }
    if let [index, distance, ..] = out {
        *index = best.0 as f32;
        *distance = best.1;
    }
}

/// `sum((x - saved)^2) / n`, summed in index order.
pub fn squared_error_f32(x: &[f32], saved: &[f32]) -> f32 {
    let mut sum = 0.0f32;
    for (&a, &b) in x.iter().zip(saved) {
        let diff = a - b;
        sum += diff * diff;
    }
    sum / x.len().max(1) as f32
}

/// `c(n) = 2 H(n-1) - 2 (n-1) / n`, the average path length of an
/// unsuccessful search in a binary search tree of `n` points, with
/// `H(i) ≈ ln(i) + γ`; `c(2) = 1`, `c(n) = 0` for `n < 2`. The isolation
/// forest's normaliser (Liu, Ting and Zhou, 2008).
pub fn average_path_length(n: u32) -> f32 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f32;
            2.0 * (libm::logf(n - 1.0) + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// Bytes per isolation-forest node: `feature: u16, left: u16, right: u16, value: f32`.
pub const NODE_BYTES: usize = 10;

/// One decoded node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    pub feature: u16,
    pub left: u16,
    pub right: u16,
    pub value: f32,
}

/// Node `i` of the flat array, `None` past its end.
#[inline(always)]
pub(crate) fn node(nodes: &[u8], i: usize) -> Option<Node> {
    let b = nodes.get(i * NODE_BYTES..(i + 1) * NODE_BYTES)?;
    Some(Node {
        feature: le_u16(&b[0..2]),
        left: le_u16(&b[2..4]),
        right: le_u16(&b[4..6]),
        value: le_f32(&b[6..10]),
    })
}

/// A validated isolation forest borrowing its arrays from the blob (two
/// slices, so the loader's per-layer record stays small).
#[derive(Debug, Clone, Copy)]
pub struct Forest<'a> {
    pub(crate) roots: &'a [u8],
    pub(crate) nodes: &'a [u8],
    /// `c(sample_size)`, positive.
    pub(crate) normaliser: f32,
}

impl<'a> Forest<'a> {
    /// Number of trees.
    pub fn trees(&self) -> usize {
        self.roots.len() / 4
    }
    /// Number of nodes over all trees.
    pub fn nodes(&self) -> usize {
        self.nodes.len() / NODE_BYTES
    }
    /// Nodes `start..end` of tree `t`.
    pub(crate) fn tree_range(&self, t: usize) -> (usize, usize) {
        let start = self.roots.get(4 * t..4 * t + 4).map_or(0, le_u32) as usize;
        let end = self
            .roots
            .get(4 * t + 4..4 * t + 8)
            .map_or(self.nodes(), |b| le_u32(b) as usize);
        (start, end)
    }

    /// Path length of `x` in tree `t` (the leaf's stored value). The walk
    /// moves strictly forward within the tree, so it takes at most the tree's
    /// node count steps; an index outside the array (never produced by a
    /// validated forest) ends it with 0.
    fn path_length(&self, t: usize, x: &[f32]) -> f32 {
        let (start, end) = self.tree_range(t);
        let mut at = start;
        for _ in start..end {
            let Some(n) = node(self.nodes, at) else {
                return 0.0;
            };
            if n.feature == LEAF {
                return n.value;
            }
            let go_left = x
                .get(usize::from(n.feature))
                .is_some_and(|&xf| xf < n.value);
            at = start + usize::from(if go_left { n.left } else { n.right });
        }
        0.0
    }

    /// The anomaly score `2^(-mean path length / c(sample_size))`; the mean
    /// sums the trees in order.
    pub fn score(&self, x: &[f32]) -> f32 {
        let trees = self.trees();
        let mut sum = 0.0f32;
        for t in 0..trees {
            sum += self.path_length(t, x);
        }
        let mean = sum / trees.max(1) as f32;
        libm::exp2f(-mean / self.normaliser)
    }
}
