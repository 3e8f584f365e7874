//! Reconstruction-error detectors: PCA (linfa-reduction) and a dense
//! autoencoder (a dense stack, [`crate::dense`], trained on the shared
//! loop). Both become `save 0, <dense layers>, squared-error 0` on the chip,
//! so they share the runtime's dense kernel; see [`super::export`].

use anyhow::{anyhow, bail, Result};
use candle_core::{Device, Tensor};
use linfa::prelude::*;
use linfa_reduction::Pca;
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::spec::AutoencoderSpec;
use crate::dataset::Normalization;
use crate::dense::{Init, Layer, LayerSpec, Mlp, Net};
use crate::spec::OptimizerSpec;
use crate::train::{self, Settings};

/// A dense reconstruction model on normalized inputs: the layers map the
/// normalized input back onto itself.
#[derive(Debug, Clone)]
pub struct Reconstructor {
    /// Dense layers and activations (no save / squared-error: added at export).
    pub mlp: Mlp,
}

impl Reconstructor {
    /// The trainer's reference reconstruction error of raw rows, f64 sums over
    /// the candle forward pass: `mean((normalize(x) - reconstruction)^2)`.
    pub fn errors(&self, raw: &[f32]) -> Result<Vec<f64>> {
        let d = self.mlp.input_len;
        let z = self.mlp.normalize(raw);
        let y = self.mlp.predict(raw)?;
        Ok(z.chunks_exact(d)
            .zip(y.chunks_exact(d))
            .map(|(z, y)| {
                z.iter()
                    .zip(y)
                    .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                    .sum::<f64>()
                    / d as f64
            })
            .collect())
    }
}

/// PCA with `components` components, fitted by linfa-reduction on normalized
/// rows. Projection `W (z - m)` and reconstruction `m + W^T p` become two dense
/// layers with the mean folded into the biases.
pub fn pca(
    normalized: &[f32],
    normalization: Normalization,
    components: usize,
) -> Result<Reconstructor> {
    let d = normalization.feature_count();
    let n = normalized.len() / d;
    if components == 0 || components >= d {
        bail!(
            "pca.components = {components} must be between 1 and {} (the window length - 1)",
            d - 1
        );
    }
    let records =
        Array2::from_shape_vec((n, d), normalized.iter().map(|&v| f64::from(v)).collect())
            .map_err(|e| anyhow!("{e}"))?;
    let fitted = Pca::params(components)
        .fit(&DatasetBase::from(records))
        .map_err(|e| anyhow!("PCA: {e}"))?;
    let w = fitted.components(); // components x d
    let mean = fitted.mean();
    let mut w1 = Vec::with_capacity(components * d);
    let mut b1 = Vec::with_capacity(components);
    for r in 0..components {
        let row = w.row(r);
        w1.extend(row.iter().map(|&v| v as f32));
        b1.push(-(row.iter().zip(mean.iter()).map(|(a, b)| a * b).sum::<f64>()) as f32);
    }
    let mut w2 = Vec::with_capacity(d * components);
    for c in 0..d {
        w2.extend((0..components).map(|r| w[[r, c]] as f32));
    }
    let b2 = mean.iter().map(|&v| v as f32).collect();
    Ok(Reconstructor {
        mlp: Mlp {
            input_len: d,
            layers: vec![
                Layer::Dense {
                    inputs: d,
                    outputs: components,
                    weights: w1,
                    bias: b1,
                },
                Layer::Dense {
                    inputs: components,
                    outputs: d,
                    weights: w2,
                    bias: b2,
                },
            ],
            normalization,
        },
    })
}

/// A dense autoencoder `d -> hidden... -> d` with `activation` after every
/// hidden layer and a linear output, trained with Adam (settings of
/// [`AutoencoderSpec`]) on the mean squared
/// reconstruction error of normalized rows. Glorot-uniform weights and
/// then the batches come from one generator seeded with `seed`.
pub fn autoencoder(
    normalized: &[f32],
    normalization: Normalization,
    a: &AutoencoderSpec,
) -> Result<Reconstructor> {
    let Some(activation) = a.activation_layer() else {
        bail!(
            "autoencoder.activation {:?}: use relu, tanh, sigmoid or gelu",
            a.activation
        );
    };
    let d = normalization.feature_count();
    let n = normalized.len() / d;
    let device = Device::Cpu;
    let mut layers = Vec::new();
    for &h in &a.hidden {
        layers.extend([LayerSpec::Dense { units: h }, activation]);
    }
    layers.push(LayerSpec::Dense { units: d });
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let mut vars = Vec::new();
    let net = Net::init(&layers, d, Init::Glorot, &mut rng, &mut vars)?;
    // The [autoencoder] table names its own epochs and rate: the plain loop.
    let settings = Settings::plain(
        a.epochs,
        a.batch_size,
        OptimizerSpec::Adam {
            learning_rate: a.learning_rate,
        },
    );
    train::run(
        vars,
        &settings,
        &mut rng,
        n,
        |batch| {
            let mut xs = Vec::with_capacity(batch.len() * d);
            for &i in batch {
                xs.extend_from_slice(&normalized[i * d..(i + 1) * d]);
            }
            let x = Tensor::from_vec(xs, (batch.len(), d), &device)?;
            Ok((net.forward(&x, false, None)? - &x)?.sqr()?.mean_all()?)
        },
        || Ok(None),
    )?;
    Ok(Reconstructor {
        mlp: Mlp {
            input_len: d,
            layers: net.to_layers(d)?,
            normalization,
        },
    })
}
