//! Training an MLP (dense layers, activations, residual blocks) with candle.
//!
//! The forward pass here is the reference the runtime must match: same layer
//! semantics ([`runtime::format::Activation`] documents each), dense weights
//! stored `outputs x inputs` row-major. A final softmax is skipped while
//! training (cross-entropy takes logits) and applied at inference.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::{Dataset, Normalization};
use crate::spec::{LayerSpec, OptimizerSpec, TrainingSpec};

/// One layer of a trained MLP, parameters as plain vectors.
#[derive(Debug, Clone)]
pub enum Layer {
    /// `y = W x + b`; `weights` is `outputs x inputs` row-major.
    Dense {
        inputs: usize,
        outputs: usize,
        weights: Vec<f32>,
        bias: Vec<f32>,
    },
    /// Any non-parametric layer, as in the spec.
    Op(LayerSpec),
}

/// A trained f32 MLP with the input normalization it was trained with.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// Raw input width.
    pub input_len: usize,
    /// Layers in order.
    pub layers: Vec<Layer>,
    /// Per-feature normalization applied to raw inputs.
    pub normalization: Normalization,
}

/// What training produced besides the model.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Mean training loss per epoch.
    pub train_loss: Vec<f32>,
    /// Test accuracy (f32, candle forward) after each epoch.
    pub test_accuracy: Vec<f32>,
}

/// The candle form of a layer while training.
enum Node {
    Dense { weights: Var, bias: Var },
    Op(LayerSpec),
}

fn output_width(layers: &[LayerSpec], input_len: usize) -> usize {
    layers.iter().fold(input_len, |w, l| match l {
        LayerSpec::Dense { units } => *units,
        _ => w,
    })
}

/// Run layers on a batch. `trace`, when given, receives the tensor after each
/// layer (for calibration). A softmax as the last layer is skipped when
/// `logits_only` (training).
fn forward_nodes(
    nodes: &[Node],
    x: &Tensor,
    logits_only: bool,
    mut trace: Option<&mut Vec<Tensor>>,
) -> candle_core::Result<Tensor> {
    let mut x = x.clone();
    let mut slots: [Option<Tensor>; runtime::format::MAX_SKIP_SLOTS] = Default::default();
    for (i, node) in nodes.iter().enumerate() {
        x = match node {
            Node::Dense { weights, bias } => x
                .matmul(&weights.as_tensor().t()?)?
                .broadcast_add(bias.as_tensor())?,
            Node::Op(op) => match op {
                LayerSpec::Dense { .. } => candle_core::bail!("dense layer without parameters"),
                LayerSpec::Recurrent { .. } => {
                    candle_core::bail!("recurrent layers need a sequence (.ts) dataset")
                }
                LayerSpec::Relu => x.relu()?,
                LayerSpec::LeakyRelu { alpha } => x.maximum(&(&x * f64::from(*alpha))?)?,
                LayerSpec::Sigmoid => candle_nn::ops::sigmoid(&x)?,
                LayerSpec::Tanh => x.tanh()?,
                LayerSpec::Gelu => x.gelu_erf()?,
                LayerSpec::Softmax if logits_only && i + 1 == nodes.len() => x,
                LayerSpec::Softmax => candle_nn::ops::softmax_last_dim(&x)?,
                LayerSpec::Save { slot } => {
                    slots[*slot as usize] = Some(x.clone());
                    x
                }
                LayerSpec::Add { slot } => match &slots[*slot as usize] {
                    Some(saved) => (&x + saved)?,
                    None => candle_core::bail!("add {slot} before save {slot}"),
                },
            },
        };
        if let Some(t) = trace.as_deref_mut() {
            t.push(x.clone());
        }
    }
    Ok(x)
}

impl Mlp {
    fn nodes(&self) -> Result<Vec<Node>> {
        self.layers
            .iter()
            .map(|l| {
                Ok(match l {
                    Layer::Dense {
                        inputs,
                        outputs,
                        weights,
                        bias,
                    } => Node::Dense {
                        weights: Var::from_tensor(&Tensor::from_slice(
                            weights,
                            (*outputs, *inputs),
                            &Device::Cpu,
                        )?)?,
                        bias: Var::from_tensor(&Tensor::from_slice(bias, *outputs, &Device::Cpu)?)?,
                    },
                    Layer::Op(op) => Node::Op(*op),
                })
            })
            .collect()
    }

    /// Normalize raw rows (`rows x input_len`, row-major) as the runtime does.
    pub fn normalize(&self, raw: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; raw.len()];
        for (src, dst) in raw
            .chunks_exact(self.input_len)
            .zip(out.chunks_exact_mut(self.input_len))
        {
            self.normalization.apply(src, dst);
        }
        out
    }

    /// The trainer's own (candle) forward pass on raw rows: the reference for
    /// trainer-vs-runtime parity. Returns `rows x outputs`, row-major.
    pub fn predict(&self, raw: &[f32]) -> Result<Vec<f32>> {
        let rows = raw.len() / self.input_len;
        let x = Tensor::from_vec(self.normalize(raw), (rows, self.input_len), &Device::Cpu)?;
        let y = forward_nodes(&self.nodes()?, &x, false, None)?;
        Ok(y.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Tensors after each layer for normalized rows, flattened (calibration).
    pub fn trace(&self, normalized: &[f32]) -> Result<Vec<Vec<f32>>> {
        let rows = normalized.len() / self.input_len;
        let x = Tensor::from_slice(normalized, (rows, self.input_len), &Device::Cpu)?;
        let mut trace = Vec::new();
        forward_nodes(&self.nodes()?, &x, false, Some(&mut trace))?;
        trace
            .iter()
            .map(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?))
            .collect()
    }

    /// Output width.
    pub fn output_len(&self) -> usize {
        self.layers.iter().fold(self.input_len, |w, l| match l {
            Layer::Dense { outputs, .. } => *outputs,
            _ => w,
        })
    }
}

/// SGD with (heavy-ball) momentum: `v = momentum * v + g; p -= lr * v`.
struct SgdMomentum {
    vars: Vec<(Var, Tensor)>,
    learning_rate: f64,
    momentum: f64,
}

impl SgdMomentum {
    fn new(vars: Vec<Var>, learning_rate: f64, momentum: f64) -> Result<Self> {
        let vars = vars
            .into_iter()
            .map(|v| {
                let zeros = v.as_tensor().zeros_like()?;
                Ok((v, zeros))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            vars,
            learning_rate,
            momentum,
        })
    }

    fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        for (var, velocity) in self.vars.iter_mut() {
            if let Some(g) = grads.get(var.as_tensor()) {
                *velocity = ((&*velocity * self.momentum)? + g)?;
                var.set(&(var.as_tensor() - (&*velocity * self.learning_rate)?)?)?;
            }
        }
        Ok(())
    }
}

enum Opt {
    Adam(AdamW),
    Sgd(SgdMomentum),
}

impl Opt {
    fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        match self {
            Opt::Adam(o) => Ok(o.backward_step(loss)?),
            Opt::Sgd(o) => o.backward_step(loss),
        }
    }
}

/// Accuracy of logits/probabilities (`rows x classes`) against labels.
pub fn accuracy(outputs: &[f32], classes: usize, labels: &[usize]) -> f32 {
    let correct = outputs
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &label)| runtime::argmax(row) == label)
        .count();
    correct as f32 / labels.len().max(1) as f32
}

/// Train an MLP on normalized copies of `train`; `test` is only watched.
pub fn train(
    layers: &[LayerSpec],
    training: &TrainingSpec,
    normalization: Normalization,
    train: &Dataset,
    test: &Dataset,
    progress: bool,
) -> Result<(Mlp, History)> {
    let input_len = train.feature_count;
    let classes = train.class_count();
    let out_width = output_width(layers, input_len);
    if out_width != classes {
        bail!("the model ends with {out_width} outputs but the dataset has {classes} classes: make the last dense layer `dense {classes}`");
    }
    if train.is_empty() {
        bail!("the training split is empty");
    }
    let device = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(training.seed);

    // Kaiming-uniform weights, zero biases, from our own seeded generator so a
    // run reproduces exactly.
    let mut nodes = Vec::new();
    let mut vars = Vec::new();
    let mut width = input_len;
    for layer in layers {
        if let LayerSpec::Dense { units } = layer {
            let bound = (6.0 / width as f32).sqrt();
            let w: Vec<f32> = (0..units * width)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            let weights = Var::from_tensor(&Tensor::from_vec(w, (*units, width), &device)?)?;
            let bias = Var::from_tensor(&Tensor::zeros(*units, DType::F32, &device)?)?;
            vars.push(weights.clone());
            vars.push(bias.clone());
            nodes.push(Node::Dense { weights, bias });
            width = *units;
        } else {
            nodes.push(Node::Op(*layer));
        }
    }
    let mut optimizer = match training.optimizer {
        OptimizerSpec::Adam { learning_rate } => Opt::Adam(AdamW::new(
            vars.clone(),
            ParamsAdamW {
                lr: learning_rate,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?),
        OptimizerSpec::Sgd {
            learning_rate,
            momentum,
        } => Opt::Sgd(SgdMomentum::new(vars.clone(), learning_rate, momentum)?),
    };

    let normalize = |d: &Dataset| -> Vec<f32> {
        let mut out = vec![0.0; d.features.len()];
        for (src, dst) in d
            .features
            .chunks_exact(input_len)
            .zip(out.chunks_exact_mut(input_len))
        {
            normalization.apply(src, dst);
        }
        out
    };
    let train_x = normalize(train);
    let test_x = Tensor::from_vec(normalize(test), (test.len(), input_len), &device)?;

    let bar = if progress {
        ProgressBar::new(training.epochs as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("  training {bar:30} {pos}/{len} epochs  {msg}")
            .context("progress template")?,
    );
    let mut history = History::default();
    let mut order: Vec<usize> = (0..train.len()).collect();
    for _epoch in 0..training.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0f32;
        let mut batches = 0;
        for batch in order.chunks(training.batch_size) {
            let mut xs = Vec::with_capacity(batch.len() * input_len);
            for &i in batch {
                xs.extend_from_slice(&train_x[i * input_len..(i + 1) * input_len]);
            }
            let ys: Vec<u32> = batch.iter().map(|&i| train.labels[i] as u32).collect();
            let x = Tensor::from_vec(xs, (batch.len(), input_len), &device)?;
            let y = Tensor::from_vec(ys, batch.len(), &device)?;
            let logits = forward_nodes(&nodes, &x, true, None)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            optimizer.backward_step(&loss)?;
            loss_sum += loss.to_scalar::<f32>()?;
            batches += 1;
        }
        let test_out = forward_nodes(&nodes, &test_x, false, None)?;
        let acc = accuracy(
            &test_out.flatten_all()?.to_vec1::<f32>()?,
            classes,
            &test.labels,
        );
        let mean_loss = loss_sum / batches.max(1) as f32;
        history.train_loss.push(mean_loss);
        history.test_accuracy.push(acc);
        bar.set_message(format!("loss {mean_loss:.4}  test acc {:.2}%", 100.0 * acc));
        bar.inc(1);
    }
    bar.finish_and_clear();

    let mut out_layers = Vec::new();
    let mut width = input_len;
    for node in &nodes {
        out_layers.push(match node {
            Node::Dense { weights, bias } => {
                let outputs = bias.as_tensor().dims1()?;
                let layer = Layer::Dense {
                    inputs: width,
                    outputs,
                    weights: weights.as_tensor().flatten_all()?.to_vec1::<f32>()?,
                    bias: bias.as_tensor().to_vec1::<f32>()?,
                };
                width = outputs;
                layer
            }
            Node::Op(op) => Layer::Op(*op),
        });
    }
    Ok((
        Mlp {
            input_len,
            layers: out_layers,
            normalization,
        },
        history,
    ))
}
