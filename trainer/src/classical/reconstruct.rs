//! Reconstruction-error detectors: PCA (linfa-reduction) and a dense
//! autoencoder (candle, the spine's dense layers). Both become
//! `save 0, <dense layers>, squared-error 0` on the chip, so they share the
//! runtime's dense kernel; see [`super::export`].

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use linfa::prelude::*;
use linfa_reduction::Pca;
use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::Normalization;
use crate::spec::LayerSpec;
use crate::train::{Layer, Mlp};

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

/// Autoencoder settings.
#[derive(Debug, Clone, Copy)]
pub struct AutoencoderTraining {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

/// A dense autoencoder `d -> hidden... -> d` with `activation` after every
/// hidden layer and a linear output, trained with Adam on the mean squared
/// reconstruction error of normalized rows.
pub fn autoencoder(
    normalized: &[f32],
    normalization: Normalization,
    hidden: &[usize],
    activation: LayerSpec,
    t: AutoencoderTraining,
) -> Result<Reconstructor> {
    let d = normalization.feature_count();
    let n = normalized.len() / d;
    let device = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(t.seed);
    let mut widths = vec![d];
    widths.extend_from_slice(hidden);
    widths.push(d);
    let mut params = Vec::new();
    for pair in widths.windows(2) {
        let (i, o) = (pair[0], pair[1]);
        let bound = (6.0 / (i + o) as f32).sqrt(); // Glorot uniform
        let w: Vec<f32> = (0..i * o)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        params.push((
            Var::from_tensor(&Tensor::from_vec(w, (o, i), &device)?)?,
            Var::from_tensor(&Tensor::zeros(o, DType::F32, &device)?)?,
        ));
    }
    let act = |x: &Tensor| -> candle_core::Result<Tensor> {
        match activation {
            LayerSpec::Relu => x.relu(),
            LayerSpec::Tanh => x.tanh(),
            LayerSpec::Sigmoid => candle_nn::ops::sigmoid(x),
            LayerSpec::Gelu => x.gelu_erf(),
            _ => Ok(x.clone()),
        }
    };
    let forward = |x: &Tensor| -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for (k, (w, b)) in params.iter().enumerate() {
            x = x
                .matmul(&w.as_tensor().t()?)?
                .broadcast_add(b.as_tensor())?;
            if k + 1 < params.len() {
                x = act(&x)?;
            }
        }
        Ok(x)
    };
    let vars: Vec<Var> = params
        .iter()
        .flat_map(|(w, b)| [w.clone(), b.clone()])
        .collect();
    let mut opt = AdamW::new(
        vars,
        ParamsAdamW {
            lr: t.learning_rate,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let mut order: Vec<usize> = (0..n).collect();
    for _ in 0..t.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(t.batch_size.max(1)) {
            let mut xs = Vec::with_capacity(batch.len() * d);
            for &i in batch {
                xs.extend_from_slice(&normalized[i * d..(i + 1) * d]);
            }
            let x = Tensor::from_vec(xs, (batch.len(), d), &device)?;
            let loss = (forward(&x)? - &x)?.sqr()?.mean_all()?;
            opt.backward_step(&loss)?;
        }
    }
    let mut layers = Vec::new();
    for (k, (w, b)) in params.iter().enumerate() {
        layers.push(Layer::Dense {
            inputs: widths[k],
            outputs: widths[k + 1],
            weights: w.as_tensor().flatten_all()?.to_vec1::<f32>()?,
            bias: b.as_tensor().to_vec1::<f32>()?,
        });
        if k + 1 < params.len() {
            layers.push(Layer::Op(activation));
        }
    }
    Ok(Reconstructor {
        mlp: Mlp {
            input_len: d,
            layers,
            normalization,
        },
    })
}
