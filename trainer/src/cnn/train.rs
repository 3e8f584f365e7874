//! Training a CNN classifier: Kaiming-uniform convolutions (zero biases),
//! batch norms at the identity, the head as any dense stack's, then the
//! shared loop ([`crate::train`]) on cross-entropy with the `[training]`
//! recipe (the specs here pin a cosine rate down to a tenth), watching the
//! test accuracy. One
//! generator, seeded from the spec, draws the weights and then the batches.
//!
//! Batch normalization ([`BatchNorm`], as PyTorch's `BatchNorm2d`):
//! while training, each channel is normalized with the batch's mean and
//! (biased) variance over every position and the running statistics move
//! a tenth of the way to the batch's (unbiased variance); for the test
//! score and at export the running statistics are used, and the trained
//! model holds each batch norm folded into the convolution before it:
//! `w' = w s`, `b' = (b - mean) s + beta` with `s = gamma / sqrt(var + eps)`
//! per output channel.

use std::cell::RefCell;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::cnn::model::{batch_of, channel_rows, flatten, Cnn, Front, Node, Trained};
use crate::cnn::spec::{CnnSpec, FrontKind};
use crate::dataset::{Dataset, Normalization};
use crate::dense::model::{output_width, Init, Mlp, Net};
use crate::metrics::accuracy;
use crate::spec::TrainingSpec;
use crate::train::{self, History, Settings};

/// Added to the variance before its square root.
pub const BN_EPS: f64 = 1e-5;
/// How far the running statistics move towards each batch's.
const BN_MOMENTUM: f32 = 0.1;
/// Rows per forward pass when scoring the test set.
const EVAL_ROWS: usize = 256;

/// A batch norm being trained: `gamma`, `beta` (variables) and the running
/// statistics.
pub(crate) struct BatchNorm {
    gamma: Tensor,
    beta: Tensor,
    /// Running mean and variance per channel.
    running: RefCell<(Vec<f32>, Vec<f32>)>,
}

impl BatchNorm {
    fn new(channels: usize, vars: &mut Vec<Var>) -> Result<Self> {
        let gamma = Var::ones(channels, DType::F32, &Device::Cpu)?;
        let beta = Var::zeros(channels, DType::F32, &Device::Cpu)?;
        let bn = BatchNorm {
            gamma: gamma.as_tensor().clone(),
            beta: beta.as_tensor().clone(),
            running: RefCell::new((vec![0.0; channels], vec![1.0; channels])),
        };
        vars.extend([gamma, beta]);
        Ok(bn)
    }

    /// Normalize `x` (channels last) with the batch's statistics
    /// (`training`, updating the running ones) or the running ones.
    pub(crate) fn forward(&self, x: &Tensor, training: bool) -> candle_core::Result<Tensor> {
        let (mean, var) = if training {
            let rows = channel_rows(x)?;
            let n = rows.dim(0)?;
            let mean = rows.mean(0)?;
            let var = channel_rows(&x.broadcast_sub(&mean)?.sqr()?)?.mean(0)?;
            let (batch_mean, batch_var) = (mean.to_vec1::<f32>()?, var.to_vec1::<f32>()?);
            let unbiased = n as f32 / (n.max(2) - 1) as f32;
            let mut running = self.running.borrow_mut();
            let (running_mean, running_var) = &mut *running;
            for (r, b) in running_mean.iter_mut().zip(&batch_mean) {
                *r += BN_MOMENTUM * (b - *r);
            }
            for (r, b) in running_var.iter_mut().zip(&batch_var) {
                *r += BN_MOMENTUM * (b * unbiased - *r);
            }
            (mean, var)
        } else {
            let running = self.running.borrow();
            (
                Tensor::from_slice(&running.0, running.0.len(), &Device::Cpu)?,
                Tensor::from_slice(&running.1, running.1.len(), &Device::Cpu)?,
            )
        };
        x.broadcast_sub(&mean)?
            .broadcast_div(&(var + BN_EPS)?.sqrt()?)?
            .broadcast_mul(&self.gamma)?
            .broadcast_add(&self.beta)
    }

    /// Fold into the convolution before: its weights (`filters` rows of a
    /// standard convolution, or `taps x channels` of a depthwise one) and bias.
    fn fold(&self, depthwise: bool, weights: &mut [f32], bias: &mut [f32]) -> Result<()> {
        let gamma = self.gamma.to_vec1::<f32>()?;
        let beta = self.beta.to_vec1::<f32>()?;
        let running = self.running.borrow();
        let scale: Vec<f64> = gamma
            .iter()
            .zip(&running.1)
            .map(|(&g, &v)| f64::from(g) / (f64::from(v) + BN_EPS).sqrt())
            .collect();
        // Output channel of weight i: its column (depthwise) or its row.
        let channels = scale.len().max(1);
        let row = (weights.len() / channels).max(1);
        for (i, w) in weights.iter_mut().enumerate() {
            let c = if depthwise { i % channels } else { i / row };
            *w = (f64::from(*w) * scale[c]) as f32;
        }
        for (c, b) in bias.iter_mut().enumerate() {
            *b = ((f64::from(*b) - f64::from(running.0[c])) * scale[c] + f64::from(beta[c])) as f32;
        }
        Ok(())
    }
}

/// Train on `train_set` (the test set is only watched).
pub fn train(
    spec: &CnnSpec,
    training: &TrainingSpec,
    normalization: Normalization,
    train_set: &Dataset,
    test_set: &Dataset,
    progress: bool,
) -> Result<(Cnn, History)> {
    let input_len = spec.input.len().unwrap_or(0) as usize;
    if train_set.feature_count != input_len {
        bail!(
            "the model's input holds {input_len} values but the data has {} per row",
            train_set.feature_count
        );
    }
    if train_set.is_empty() {
        bail!("the training split is empty");
    }
    let classes = train_set.class_count();
    let mut rng = ChaCha8Rng::seed_from_u64(training.seed);
    let mut vars = Vec::new();
    let mut nodes = Vec::with_capacity(spec.front.len());
    for layer in &spec.front {
        nodes.push(match layer.kind {
            FrontKind::Conv {
                depthwise,
                filters,
                window,
            } => {
                let taps = (window.kernel_h * window.kernel_w) as usize;
                let channels = layer.input.channels as usize;
                let (rows, cols, fan_in) = if depthwise {
                    (taps, channels, taps)
                } else {
                    (filters, taps * channels, taps * channels)
                };
                let bound = (6.0 / fan_in as f32).sqrt();
                let w: Vec<f32> = (0..rows * cols)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                let weights = Var::from_tensor(&Tensor::from_vec(w, (rows, cols), &Device::Cpu)?)?;
                let bias = Var::zeros(filters, DType::F32, &Device::Cpu)?;
                let node = Node::Conv {
                    layer: *layer,
                    weights: weights.as_tensor().clone(),
                    bias: bias.as_tensor().clone(),
                };
                vars.extend([weights, bias]);
                node
            }
            FrontKind::BatchNorm => {
                Node::BatchNorm(BatchNorm::new(layer.output.channels as usize, &mut vars)?)
            }
            _ => Node::Other(*layer),
        });
    }
    let front = Front { nodes };
    let flat = spec
        .front
        .last()
        .map_or(input_len, |l| l.output.len().unwrap_or(0) as usize);
    let head = Net::init(&spec.head, flat, Init::Kaiming, &mut rng, &mut vars)?;
    let outputs = output_width(&spec.head, flat);
    if outputs != classes {
        bail!("the model ends with {outputs} outputs but the dataset has {classes} classes: make the last dense layer `dense {classes}`");
    }

    let train_x = normalization.rows(&train_set.features);
    let test_x = normalization.rows(&test_set.features);
    let settings = Settings::new(training, progress.then_some("test acc"));
    let history = train::run(
        vars,
        &settings,
        &mut rng,
        train_set.len(),
        |batch| {
            let mut xs = Vec::with_capacity(batch.len() * input_len);
            for &i in batch {
                xs.extend_from_slice(&train_x[i * input_len..(i + 1) * input_len]);
            }
            let ys: Vec<u32> = batch.iter().map(|&i| train_set.labels[i] as u32).collect();
            let x = batch_of(xs, &spec.input)?;
            let y = Tensor::from_vec(ys, batch.len(), &Device::Cpu)?;
            let logits = head.forward(&flatten(&front.forward(&x, true, None)?)?, true, None)?;
            Ok(candle_nn::loss::cross_entropy(&logits, &y)?)
        },
        || {
            let mut out = Vec::with_capacity(test_set.len() * classes);
            for rows in test_x.chunks(EVAL_ROWS * input_len.max(1)) {
                let x = batch_of(rows.to_vec(), &spec.input)?;
                let y = head.forward(&flatten(&front.forward(&x, false, None)?)?, false, None)?;
                out.extend(y.flatten_all()?.to_vec1::<f32>()?);
            }
            Ok(Some(accuracy(&out, classes, &test_set.labels)))
        },
    )?;
    Ok((
        Cnn {
            input: spec.input,
            front: fold(&front)?,
            head: Mlp {
                input_len: flat,
                layers: head.to_layers(flat)?,
                normalization: Normalization::identity(flat),
            },
            normalization,
        },
        history,
    ))
}

/// The trained front as plain layers, each batch norm folded into the
/// convolution before it.
fn fold(front: &Front) -> Result<Vec<Trained>> {
    let mut out: Vec<Trained> = Vec::with_capacity(front.nodes.len());
    for node in &front.nodes {
        match node {
            Node::Conv {
                layer,
                weights,
                bias,
            } => out.push(Trained {
                layer: *layer,
                weights: weights.flatten_all()?.to_vec1::<f32>()?,
                bias: bias.to_vec1::<f32>()?,
            }),
            Node::BatchNorm(bn) => {
                let Some(conv) = out.last_mut() else {
                    bail!("a batch norm before any convolution");
                };
                let FrontKind::Conv { depthwise, .. } = conv.layer.kind else {
                    bail!("a batch norm after `{}`, not a convolution", conv.layer);
                };
                bn.fold(depthwise, &mut conv.weights, &mut conv.bias)?;
            }
            Node::Other(layer) => out.push(Trained {
                layer: *layer,
                weights: Vec::new(),
                bias: Vec::new(),
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::format::{FeatureMap, Padding, Window};

    use crate::cnn::spec::FrontLayer;

    /// A folded batch norm computes what the convolution then the batch
    /// norm (running statistics) computed, standard and depthwise.
    #[test]
    fn folding_keeps_the_function() {
        let input = FeatureMap {
            height: 3,
            width: 4,
            channels: 2,
        };
        let window = Window {
            kernel_h: 2,
            kernel_w: 3,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            padding: Padding::Same,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x: Vec<f32> = (0..2 * 24).map(|_| rng.random_range(-2.0..2.0)).collect();
        let x = Tensor::from_vec(x, (2, 3, 4, 2), &Device::Cpu).unwrap();
        for (depthwise, filters) in [(false, 3), (true, 2)] {
            let layer = FrontLayer {
                kind: FrontKind::Conv {
                    depthwise,
                    filters,
                    window,
                },
                input,
                output: FeatureMap {
                    channels: filters as u32,
                    ..input
                },
            };
            let (rows, cols) = if depthwise { (6, 2) } else { (3, 12) };
            let w: Vec<f32> = (0..rows * cols)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let b: Vec<f32> = (0..filters).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut vars = Vec::new();
            let bn = BatchNorm::new(filters, &mut vars).unwrap();
            vars[0]
                .set(&Tensor::new(&[1.5f32, 0.5, 2.0][..filters], &Device::Cpu).unwrap())
                .unwrap();
            vars[1]
                .set(&Tensor::new(&[0.1f32, -0.3, 0.7][..filters], &Device::Cpu).unwrap())
                .unwrap();
            *bn.running.borrow_mut() = (
                vec![0.2, -0.5, 1.0][..filters].to_vec(),
                vec![0.8, 2.5, 0.3][..filters].to_vec(),
            );
            let w_t = Tensor::from_slice(&w, (rows, cols), &Device::Cpu).unwrap();
            let b_t = Tensor::from_slice(&b, filters, &Device::Cpu).unwrap();
            let unfolded = bn
                .forward(
                    &crate::cnn::model::conv(&x, &layer, &w_t, &b_t).unwrap(),
                    false,
                )
                .unwrap();
            let front = Front {
                nodes: vec![
                    Node::Conv {
                        layer,
                        weights: w_t,
                        bias: b_t,
                    },
                    Node::BatchNorm(bn),
                ],
            };
            let folded = Front::constant(&fold(&front).unwrap())
                .unwrap()
                .forward(&x, false, None)
                .unwrap();
            let diff = (unfolded - folded)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                diff < 1e-5,
                "depthwise {depthwise}: folded differs by {diff}"
            );
        }
    }
}
