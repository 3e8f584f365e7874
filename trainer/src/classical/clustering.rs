//! k-means (linfa-clustering) and agglomerative Ward clustering (kodama),
//! both ending as centroids for the runtime's nearest-centroid layer
//! ([`centroid_blob`]).

use anyhow::{anyhow, bail, Result};
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::Array2;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

use super::spec::Clustering;
use crate::blob::{le_bytes, Blob, Layer};
use crate::dataset::{Dataset, Normalization};

/// Fitted centroids, `k x dim` row-major f32.
#[derive(Debug, Clone)]
pub struct Centroids {
    pub k: usize,
    pub dim: usize,
    pub values: Vec<f32>,
}

impl Centroids {
    /// Index of the nearest centroid and the squared distance, f64 (the
    /// trainer's reference for runtime parity).
    pub fn assign(&self, x: &[f32]) -> (usize, f64) {
        let mut best = (0, f64::INFINITY);
        for (i, c) in self.values.chunks_exact(self.dim).enumerate() {
            let d: f64 = c
                .iter()
                .zip(x)
                .map(|(&c, &v)| (f64::from(v) - f64::from(c)).powi(2))
                .sum();
            if d < best.1 {
                best = (i, d);
            }
        }
        best
    }

    /// Sum of squared distances to the nearest centroid (k-means' objective).
    pub fn inertia(&self, rows: &[f32]) -> f64 {
        rows.chunks_exact(self.dim).map(|x| self.assign(x).1).sum()
    }
}

fn to_array(rows: &[f32], dim: usize) -> Result<Array2<f64>> {
    let n = rows.len() / dim;
    Array2::from_shape_vec((n, dim), rows.iter().map(|&v| f64::from(v)).collect())
        .map_err(|e| anyhow!("{e}"))
}

/// k-means with k-means++ initialisation (linfa-clustering), seeded.
pub fn kmeans(rows: &[f32], dim: usize, k: usize, seed: u64) -> Result<Centroids> {
    if k == 0 || k > rows.len() / dim {
        bail!("k = {k} must be between 1 and the number of training rows");
    }
    let data = DatasetBase::from(to_array(rows, dim)?);
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
        .n_runs(4)
        .max_n_iterations(300)
        .tolerance(1e-6)
        .fit(&data)
        .map_err(|e| anyhow!("k-means: {e}"))?;
    Ok(Centroids {
        k,
        dim,
        values: model.centroids().iter().map(|&v| v as f32).collect(),
    })
}

/// Agglomerative clustering with Ward linkage (kodama), cut at `k` clusters;
/// each cluster's mean is its centroid. Ward merges minimise the growth of
/// within-cluster variance, so the means are the natural nearest-centroid
/// summary of the tree.
pub fn hierarchical(rows: &[f32], dim: usize, k: usize) -> Result<Centroids> {
    let n = rows.len() / dim;
    if k == 0 || k > n {
        bail!("k = {k} must be between 1 and the number of training rows");
    }
    // Condensed matrix of Euclidean distances (kodama's Ward takes distances).
    let mut condensed = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n - 1 {
        let a = &rows[i * dim..(i + 1) * dim];
        for j in i + 1..n {
            let b = &rows[j * dim..(j + 1) * dim];
            let d: f64 = a
                .iter()
                .zip(b)
                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                .sum();
            condensed.push(d.sqrt());
        }
    }
    let dendrogram = kodama::linkage(&mut condensed, n, kodama::Method::Ward);
    // Replay the first n - k merges with a union-find; clusters created by step
    // s have id n + s, as in SciPy's linkage matrix.
    let mut parent: Vec<usize> = (0..2 * n).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for (s, step) in dendrogram.steps().iter().take(n - k).enumerate() {
        let (a, b) = (
            find(&mut parent, step.cluster1),
            find(&mut parent, step.cluster2),
        );
        parent[a] = n + s;
        parent[b] = n + s;
    }
    let mut ids: Vec<usize> = Vec::new();
    let mut sums = Vec::new();
    let mut counts = Vec::new();
    for i in 0..n {
        let root = find(&mut parent, i);
        let c = match ids.iter().position(|&r| r == root) {
            Some(c) => c,
            None => {
                ids.push(root);
                sums.push(vec![0.0f64; dim]);
                counts.push(0usize);
                ids.len() - 1
            }
        };
        for (s, &v) in sums[c].iter_mut().zip(&rows[i * dim..(i + 1) * dim]) {
            *s += f64::from(v);
        }
        counts[c] += 1;
    }
    let values = sums
        .iter()
        .zip(&counts)
        .flat_map(|(s, &m)| s.iter().map(move |v| (v / m as f64) as f32))
        .collect();
    Ok(Centroids {
        k: ids.len(),
        dim,
        values,
    })
}

/// Blob of a nearest-centroid model (raw inputs).
pub fn centroid_blob(c: &Centroids) -> Blob {
    Blob::f32(
        Normalization::identity(c.dim),
        2,
        vec![Layer::NearestCentroidF32 {
            dim: c.dim as u32,
            k: c.k as u32,
            centroids: le_bytes(&c.values),
        }],
    )
}

/// Fitted clusters.
#[derive(Debug, Clone)]
pub struct Clusters {
    /// The centroids the blob holds.
    pub centroids: Centroids,
    /// k-means: the elbow curve.
    pub inertia_by_k: Option<Vec<InertiaAt>>,
    /// Hierarchical: the linkage.
    pub linkage: Option<&'static str>,
}

/// One point of the elbow curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InertiaAt {
    /// Clusters.
    pub k: usize,
    /// Inertia of the fit with `k` clusters.
    pub inertia: f64,
}

/// Fit the spec's clustering on the training rows; k-means also over its
/// `k_range` (the elbow curve, default `[2, 16]`).
pub fn fit(spec: &Clustering, train: &Dataset) -> Result<Clusters> {
    let dim = train.feature_count;
    Ok(match spec {
        Clustering::KMeans(c) => {
            let [lo, hi] = c.k_range.unwrap_or([2, 16]);
            let mut curve = Vec::new();
            for k in lo.max(1)..=hi {
                let fit = kmeans(&train.features, dim, k, c.seed)?;
                curve.push(InertiaAt {
                    k,
                    inertia: fit.inertia(&train.features),
                });
            }
            Clusters {
                centroids: kmeans(&train.features, dim, c.k, c.seed)?,
                inertia_by_k: Some(curve),
                linkage: None,
            }
        }
        Clustering::Hierarchical(c) => Clusters {
            centroids: hierarchical(&train.features, dim, c.k)?,
            inertia_by_k: None,
            linkage: Some("ward"),
        },
    })
}
