//! Isolation forest (Liu, Ting and Zhou, 2008), our own implementation: no
//! maintained Rust crate fits (and we need the trees as flat arrays anyway).
//!
//! Each tree is grown on `sample_size` rows drawn without replacement, to a
//! height limit of `ceil(log2(sample_size))`: a node picks a feature uniformly
//! at random and a threshold uniformly in that feature's `[min, max)` over its
//! rows; rows with `x < threshold` go left. A leaf stores its whole path
//! length, `depth + c(rows in the leaf)`. Nodes are laid out in preorder, so
//! the left child is the next node and every child comes after its parent,
//! as the runtime's loader requires.

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use runtime::kernels::classical::LEAF;

use crate::blob::LeBytes;

/// One node; child indices are relative to the tree's first node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Node {
    /// `x[feature] < threshold` goes to `left`, else to `right`.
    Split {
        feature: usize,
        threshold: f32,
        left: usize,
        right: usize,
    },
    /// Path length of a row ending here: `depth + c(size)`.
    Leaf { path_length: f64 },
}

/// A fitted forest.
#[derive(Debug, Clone)]
pub struct IsolationForest {
    /// Nodes of each tree, in preorder.
    pub trees: Vec<Vec<Node>>,
    /// Rows each tree was grown on (`n` of the normaliser `c(n)`).
    pub sample_size: usize,
    /// Features per row.
    pub inputs: usize,
}

/// `c(n) = 2 H(n-1) - 2 (n-1)/n` with `H(i) ≈ ln(i) + γ` (f64 reference of
/// `runtime::kernels::classical::average_path_length`).
pub fn c(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

/// Fit `trees` trees on `rows` (row-major, `inputs` features each).
pub fn fit(
    rows: &[f32],
    inputs: usize,
    trees: usize,
    sample_size: usize,
    seed: u64,
) -> IsolationForest {
    let n = rows.len() / inputs;
    let psi = sample_size.min(n).max(2);
    let height_limit = (psi as f64).log2().ceil() as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut forest = Vec::with_capacity(trees);
    for _ in 0..trees {
        let mut picked: Vec<usize> = sample(&mut rng, n, psi.min(n)).into_vec();
        let mut nodes = Vec::new();
        grow(
            rows,
            inputs,
            &mut picked,
            0,
            height_limit,
            &mut rng,
            &mut nodes,
        );
        forest.push(nodes);
    }
    IsolationForest {
        trees: forest,
        sample_size: psi,
        inputs,
    }
}

fn grow(
    rows: &[f32],
    inputs: usize,
    idx: &mut [usize],
    depth: usize,
    limit: usize,
    rng: &mut ChaCha8Rng,
    nodes: &mut Vec<Node>,
) {
    let leaf = |nodes: &mut Vec<Node>, size: usize| {
        nodes.push(Node::Leaf {
            path_length: depth as f64 + c(size),
        })
    };
    if depth >= limit || idx.len() <= 1 {
        return leaf(nodes, idx.len());
    }
    let feature = rng.random_range(0..inputs);
    let value = |i: usize| rows[i * inputs + feature];
    let (lo, hi) = idx
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &i| {
            (lo.min(value(i)), hi.max(value(i)))
        });
    let threshold = lo + rng.random::<f32>() * (hi - lo);
    // Negated comparisons on purpose: NaN (a NaN feature value) counts as degenerate.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let degenerate = !(hi > lo) || !(threshold > lo) || !(threshold <= hi);
    if degenerate {
        // All rows equal on this feature (or a degenerate draw): isolate no further.
        return leaf(nodes, idx.len());
    }
    // Partition in place: rows below the threshold first.
    let mut split = 0;
    for k in 0..idx.len() {
        if value(idx[k]) < threshold {
            idx.swap(k, split);
            split += 1;
        }
    }
    let me = nodes.len();
    nodes.push(Node::Leaf { path_length: 0.0 }); // placeholder
    let (left_rows, right_rows) = idx.split_at_mut(split);
    let left = nodes.len();
    grow(rows, inputs, left_rows, depth + 1, limit, rng, nodes);
    let right = nodes.len();
    grow(rows, inputs, right_rows, depth + 1, limit, rng, nodes);
    nodes[me] = Node::Split {
        feature,
        threshold,
        left,
        right,
    };
}

impl IsolationForest {
    /// Path length of `x` in one tree (f64), walking the fitted nodes.
    fn path_length(tree: &[Node], x: &[f32]) -> f64 {
        let mut node = 0;
        loop {
            match tree[node] {
                Node::Leaf { path_length } => return path_length,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => node = if x[feature] < threshold { left } else { right },
            }
        }
    }

    /// The reference anomaly score in f64: `2^(-mean path length / c(sample_size))`.
    pub fn score(&self, x: &[f32]) -> f64 {
        let sum: f64 = self.trees.iter().map(|t| Self::path_length(t, x)).sum();
        let mean = sum / self.trees.len().max(1) as f64;
        (-mean / c(self.sample_size)).exp2()
    }

    /// Total node count.
    pub fn node_count(&self) -> usize {
        self.trees.iter().map(Vec::len).sum()
    }

    /// The arrays of `LayerDef::IsolationForestF32`: `roots` (u32 per tree)
    /// and `nodes` (10-byte records `feature u16, left u16, right u16, value f32`), LE.
    pub fn flat_arrays(&self) -> anyhow::Result<[Vec<u8>; 2]> {
        let mut roots = Vec::new();
        let mut nodes = Vec::new();
        let mut start = 0u32;
        for tree in &self.trees {
            if tree.len() > usize::from(u16::MAX) {
                anyhow::bail!(
                    "a tree has {} nodes, more than u16 indices hold",
                    tree.len()
                );
            }
            start.append(&mut roots);
            start += tree.len() as u32;
            for node in tree {
                let (f, l, r, v) = match *node {
                    Node::Split {
                        feature,
                        threshold,
                        left,
                        right,
                    } => (feature as u16, left as u16, right as u16, threshold),
                    Node::Leaf { path_length } => (LEAF, 0, 0, path_length as f32),
                };
                f.append(&mut nodes);
                l.append(&mut nodes);
                r.append(&mut nodes);
                v.append(&mut nodes);
            }
        }
        Ok([roots, nodes])
    }
}
