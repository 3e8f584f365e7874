//! The dense stack's parameters ([`Mlp`]) and its candle form ([`Net`]).
//!
//! The forward pass here is the reference the runtime must match: same layer
//! semantics ([`runtime::format::Activation`] documents each), dense weights
//! stored `outputs x inputs` row-major. A final softmax is skipped while
//! training (cross-entropy takes logits) and applied at inference.

use anyhow::{anyhow, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use runtime::format::Activation;

use crate::blob::{self, Blob};
use crate::dataset::Normalization;
use crate::dense::spec::LayerSpec;

/// One layer of a trained stack, parameters as plain vectors.
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

/// A trained f32 stack of dense layers and activations (a multilayer
/// perceptron) with the input normalization it was trained with.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// Raw input width.
    pub input_len: usize,
    /// Layers in order.
    pub layers: Vec<Layer>,
    /// Per-input normalization applied to raw inputs.
    pub normalization: Normalization,
}

/// How fresh dense weights are drawn: uniform in `+-bound`, biases zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// `bound = sqrt(6 / inputs)` (Kaiming uniform, for ReLU stacks).
    Kaiming,
    /// `bound = sqrt(6 / (inputs + outputs))` (Glorot uniform).
    Glorot,
}

/// The width after `layers` on an input `inputs` wide.
pub fn output_width(layers: &[LayerSpec], inputs: usize) -> usize {
    layers.iter().fold(inputs, |w, l| match l {
        LayerSpec::Dense { units } => *units,
        _ => w,
    })
}

/// A stack as candle tensors (variables while training).
pub struct Net {
    nodes: Vec<Node>,
}

enum Node {
    Dense { weights: Tensor, bias: Tensor },
    Op(LayerSpec),
}

impl Net {
    /// Fresh weights for `layers` on an input `inputs` wide, drawn from
    /// `rng` layer after layer; the new variables are pushed onto `vars`.
    pub fn init(
        layers: &[LayerSpec],
        inputs: usize,
        init: Init,
        rng: &mut ChaCha8Rng,
        vars: &mut Vec<Var>,
    ) -> Result<Net> {
        let device = Device::Cpu;
        let mut width = inputs;
        let mut nodes = Vec::with_capacity(layers.len());
        for layer in layers {
            let LayerSpec::Dense { units } = *layer else {
                nodes.push(Node::Op(*layer));
                continue;
            };
            let bound = match init {
                Init::Kaiming => (6.0 / width as f32).sqrt(),
                Init::Glorot => (6.0 / (width + units) as f32).sqrt(),
            };
            let w: Vec<f32> = (0..units * width)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            let weights = Var::from_tensor(&Tensor::from_vec(w, (units, width), &device)?)?;
            let bias = Var::from_tensor(&Tensor::zeros(units, DType::F32, &device)?)?;
            nodes.push(Node::Dense {
                weights: weights.as_tensor().clone(),
                bias: bias.as_tensor().clone(),
            });
            vars.extend([weights, bias]);
            width = units;
        }
        Ok(Net { nodes })
    }

    /// Constant tensors of a trained stack (inference, calibration).
    pub fn constant(layers: &[Layer]) -> Result<Net> {
        let nodes = layers
            .iter()
            .map(|l| {
                Ok(match l {
                    Layer::Dense {
                        inputs,
                        outputs,
                        weights,
                        bias,
                    } => Node::Dense {
                        weights: Tensor::from_slice(weights, (*outputs, *inputs), &Device::Cpu)?,
                        bias: Tensor::from_slice(bias, *outputs, &Device::Cpu)?,
                    },
                    Layer::Op(op) => Node::Op(*op),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Net { nodes })
    }

    /// Run the layers on a batch `(rows, inputs)`. `trace`, when given,
    /// receives the tensor after each layer (for calibration). A softmax as
    /// the last layer is skipped when `logits_only` (training).
    pub fn forward(
        &self,
        x: &Tensor,
        logits_only: bool,
        mut trace: Option<&mut Vec<Tensor>>,
    ) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        let mut slots = Slots::default();
        for (i, node) in self.nodes.iter().enumerate() {
            x = match node {
                Node::Dense { weights, bias } => x.matmul(&weights.t()?)?.broadcast_add(bias)?,
                Node::Op(op) => {
                    let last = logits_only && i + 1 == self.nodes.len();
                    apply_op(op, &x, last, &mut slots)?
                }
            };
            if let Some(t) = trace.as_deref_mut() {
                t.push(x.clone());
            }
        }
        Ok(x)
    }

    /// The (trained) tensors back as plain layers, on an input `inputs` wide.
    pub fn to_layers(&self, inputs: usize) -> Result<Vec<Layer>> {
        let mut width = inputs;
        self.nodes
            .iter()
            .map(|node| {
                Ok(match node {
                    Node::Dense { weights, bias } => {
                        let outputs = bias.dims1()?;
                        let layer = Layer::Dense {
                            inputs: width,
                            outputs,
                            weights: weights.flatten_all()?.to_vec1::<f32>()?,
                            bias: bias.to_vec1::<f32>()?,
                        };
                        width = outputs;
                        layer
                    }
                    Node::Op(op) => Layer::Op(*op),
                })
            })
            .collect()
    }
}

/// Skip slots of a forward pass: the tensors saved so far.
pub type Slots = [Option<Tensor>; runtime::format::MAX_SKIP_SLOTS];

/// A parameter-free layer on `x` (any shape; a softmax acts on the last
/// dimension): an activation, or a save or add through `slots`. A softmax
/// is skipped when `skip_softmax` (the last layer while training: the loss
/// takes logits).
pub fn apply_op(
    op: &LayerSpec,
    x: &Tensor,
    skip_softmax: bool,
    slots: &mut Slots,
) -> candle_core::Result<Tensor> {
    Ok(match op {
        LayerSpec::Dense { .. } => candle_core::bail!("dense layer without parameters"),
        LayerSpec::Recurrent { .. } => {
            candle_core::bail!("recurrent layers need a sequence (.ts) dataset")
        }
        LayerSpec::Relu => x.relu()?,
        LayerSpec::Relu6 => x.clamp(0f32, 6f32)?,
        LayerSpec::LeakyRelu { alpha } => x.maximum(&(x * f64::from(*alpha))?)?,
        LayerSpec::Sigmoid => candle_nn::ops::sigmoid(x)?,
        LayerSpec::Tanh => x.tanh()?,
        LayerSpec::Gelu => x.gelu_erf()?,
        LayerSpec::Softmax if skip_softmax => x.clone(),
        LayerSpec::Softmax => candle_nn::ops::softmax_last_dim(x)?,
        LayerSpec::Save { slot } => {
            slots[*slot as usize] = Some(x.clone());
            x.clone()
        }
        LayerSpec::Add { slot } => match &slots[*slot as usize] {
            Some(saved) => (x + saved)?,
            None => candle_core::bail!("add {slot} before save {slot}"),
        },
    })
}

impl Mlp {
    /// Normalize raw rows (`rows x input_len`, row-major) as the runtime does.
    pub fn normalize(&self, raw: &[f32]) -> Vec<f32> {
        self.normalization.rows(raw)
    }

    /// The trainer's own (candle) forward pass on raw rows: the reference for
    /// trainer-vs-runtime parity. Returns `rows x outputs`, row-major.
    pub fn predict(&self, raw: &[f32]) -> Result<Vec<f32>> {
        let rows = raw.len() / self.input_len;
        let x = Tensor::from_vec(self.normalize(raw), (rows, self.input_len), &Device::Cpu)?;
        let y = Net::constant(&self.layers)?.forward(&x, false, None)?;
        Ok(y.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Tensors after each layer for normalized rows, flattened (calibration).
    pub fn trace(&self, normalized: &[f32]) -> Result<Vec<Vec<f32>>> {
        let rows = normalized.len() / self.input_len;
        let x = Tensor::from_slice(normalized, (rows, self.input_len), &Device::Cpu)?;
        let mut trace = Vec::new();
        Net::constant(&self.layers)?.forward(&x, false, Some(&mut trace))?;
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

    /// The f32 blob layers of the stack.
    pub fn f32_layers(&self) -> Result<Vec<blob::Layer>> {
        self.layers
            .iter()
            .map(|layer| {
                Ok(match layer {
                    Layer::Dense {
                        inputs,
                        outputs,
                        weights,
                        bias,
                    } => blob::Layer::dense_f32(*inputs, *outputs, weights, bias),
                    Layer::Op(op) => match *op {
                        LayerSpec::Save { slot } => blob::Layer::SaveSkip(slot),
                        LayerSpec::Add { slot } => blob::Layer::AddSkipF32(slot),
                        op => blob::Layer::Activation(activation(op)?),
                    },
                })
            })
            .collect()
    }

    /// The f32 blob of the stack alone.
    pub fn f32_blob(&self) -> Result<Blob> {
        Ok(Blob::f32(
            self.normalization.clone(),
            self.output_len(),
            self.f32_layers()?,
        ))
    }
}

/// The runtime's f32 activation of an activation layer.
pub fn activation(op: LayerSpec) -> Result<Activation> {
    Ok(match op {
        LayerSpec::Relu => Activation::Relu,
        LayerSpec::Relu6 => Activation::Relu6,
        LayerSpec::LeakyRelu { alpha } => Activation::LeakyRelu { alpha },
        LayerSpec::Sigmoid => Activation::Sigmoid,
        LayerSpec::Tanh => Activation::Tanh,
        LayerSpec::Gelu => Activation::Gelu,
        LayerSpec::Softmax => Activation::Softmax,
        other => return Err(anyhow!("layer `{other}` is not an activation")),
    })
}
