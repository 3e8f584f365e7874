//! A trained CNN's parameters ([`Cnn`]) and the candle forward pass of its
//! front ([`Front`]), the reference the runtime must match.
//!
//! Tensors are channels-last throughout, `(batch, height, width,
//! channels)`, as the runtime stores maps, so flattening for the head is a
//! reshape and standard weights are the runtime's `filters x kernel_h x
//! kernel_w x channels` rows. Every windowed layer reads its input through
//! [`taps`]: one `(batch, out_h, out_w, channels)` tensor per kernel tap,
//! cut from the input padded by the runtime's own rule
//! ([`Window::output`]), so strides, dilations and `same` padding on either
//! axis mean exactly what they mean on the chip. A standard convolution
//! concatenates the taps (im2col) and multiplies by its weight rows; a
//! depthwise one scales each tap per channel; pooling takes the maximum or
//! the mean of the valid cells.
//!
//! Batch normalization exists only while training (`crate::cnn::train`):
//! a trained [`Cnn`] holds it folded into its convolutions.

use anyhow::{anyhow, Result};
use candle_core::{Device, Tensor, D};
use runtime::format::{FeatureMap, Pool2dKind, Window};

use crate::blob::{self, le_bytes, Blob};
use crate::cnn::spec::{FrontKind, FrontLayer};
use crate::dataset::Normalization;
use crate::dense::model::{apply_op, Slots};
use crate::dense::{LayerSpec, Mlp, Net};

/// A trained CNN: the front with its batch norms folded, and the head.
#[derive(Debug, Clone)]
pub struct Cnn {
    /// The input map.
    pub input: FeatureMap,
    /// The front's layers in order (no batch norm).
    pub front: Vec<Trained>,
    /// The dense stack on the flattened front output (identity normalization).
    pub head: Mlp,
    /// Raw input to normalized input (per channel, the same at every position).
    pub normalization: Normalization,
}

/// One trained front layer: its spec (with maps) and, for a convolution,
/// its parameters.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The layer.
    pub layer: FrontLayer,
    /// Standard: `filters x (kernel_h kernel_w channels)`; depthwise:
    /// `(kernel_h kernel_w) x channels`. Empty for other layers.
    pub weights: Vec<f32>,
    /// `filters` values; empty for other layers.
    pub bias: Vec<f32>,
}

/// A front layer as tensors (variables while training).
pub(crate) enum Node {
    /// A convolution: `weights` `(filters, taps x channels)` (standard) or
    /// `(taps, channels)` (depthwise), `bias` `(filters)`.
    Conv {
        layer: FrontLayer,
        weights: Tensor,
        bias: Tensor,
    },
    /// Batch normalization (training only), see `crate::cnn::train`.
    BatchNorm(crate::cnn::train::BatchNorm),
    /// Pooling or a parameter-free layer.
    Other(FrontLayer),
}

/// `(height, width, channels)` of a map as `usize`.
fn dims(map: &FeatureMap) -> (usize, usize, usize) {
    (
        map.height as usize,
        map.width as usize,
        map.channels as usize,
    )
}

/// Every `stride`-th of `count` slices of `x` along `dim` from `start`
/// (the input must hold `start + count * stride` along `dim`).
fn strided(
    x: &Tensor,
    dim: usize,
    start: usize,
    count: usize,
    stride: usize,
) -> candle_core::Result<Tensor> {
    if stride == 1 {
        return x.narrow(dim, start, count);
    }
    let picked = x.narrow(dim, start, count * stride)?;
    let mut shape = picked.dims().to_vec();
    shape[dim] = count;
    shape.insert(dim + 1, stride);
    picked
        .reshape(shape)?
        .narrow(dim + 1, 0, 1)?
        .squeeze(dim + 1)
}

/// `x` with `before` and `after` cells of `fill` along `dim`.
fn pad(
    x: &Tensor,
    dim: usize,
    before: usize,
    after: usize,
    fill: f32,
) -> candle_core::Result<Tensor> {
    if before == 0 && after == 0 {
        return Ok(x.clone());
    }
    if fill == 0.0 {
        return x.pad_with_zeros(dim, before, after);
    }
    let side = |n: usize| {
        let mut shape = x.dims().to_vec();
        shape[dim] = n;
        Tensor::full(fill, shape, x.device())
    };
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(side(before)?);
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(side(after)?);
    }
    Tensor::cat(&parts, dim)
}

/// The input cells each tap of `window` reads for every output position of
/// `layer` (`x` is `(batch, in_h, in_w, channels)`): one `(batch, out_h,
/// out_w, channels)` tensor per tap, row by row of the kernel; padded
/// cells read `fill`.
fn taps(
    x: &Tensor,
    layer: &FrontLayer,
    window: &Window,
    fill: f32,
) -> candle_core::Result<Vec<Tensor>> {
    let (in_h, in_w, _) = dims(&layer.input);
    let (out_h, out_w, _) = dims(&layer.output);
    let Some((_, _, top, left)) = window.output(&layer.input) else {
        candle_core::bail!("layer `{layer}` does not fit its input");
    };
    let (top, left) = (top as usize, left as usize);
    let [k_h, k_w, s_h, s_w, d_h, d_w] = [
        window.kernel_h,
        window.kernel_w,
        window.stride_h,
        window.stride_w,
        window.dilation_h,
        window.dilation_w,
    ]
    .map(|v| v as usize);
    // Room for every tap's strided cut: the runtime's padding, and after it
    // enough cells that the last cut is whole (they are never read).
    let after_h = ((k_h - 1) * d_h + out_h * s_h).saturating_sub(top + in_h);
    let after_w = ((k_w - 1) * d_w + out_w * s_w).saturating_sub(left + in_w);
    let padded = pad(&pad(x, 1, top, after_h, fill)?, 2, left, after_w, fill)?;
    let mut out = Vec::with_capacity(k_h * k_w);
    for ky in 0..k_h {
        let rows = strided(&padded, 1, ky * d_h, out_h, s_h)?;
        for kx in 0..k_w {
            out.push(strided(&rows, 2, kx * d_w, out_w, s_w)?);
        }
    }
    Ok(out)
}

/// Valid cells of each window of an average pooling, `(1, out_h, out_w, 1)`.
fn valid_cells(layer: &FrontLayer, window: &Window) -> candle_core::Result<Tensor> {
    let (in_h, in_w, _) = dims(&layer.input);
    let (out_h, out_w, _) = dims(&layer.output);
    let (_, _, top, left) = window.output(&layer.input).unwrap_or((0, 0, 0, 0));
    let axis = |out: usize, input: usize, k: u32, s: u32, before: u32| -> Vec<f32> {
        (0..out)
            .map(|o| {
                (0..k as usize)
                    .filter(|&t| {
                        (o * s as usize + t)
                            .checked_sub(before as usize)
                            .is_some_and(|i| i < input)
                    })
                    .count() as f32
            })
            .collect()
    };
    let rows = axis(out_h, in_h, window.kernel_h, window.stride_h, top);
    let cols = axis(out_w, in_w, window.kernel_w, window.stride_w, left);
    let counts: Vec<f32> = rows
        .iter()
        .flat_map(|r| cols.iter().map(move |c| r * c))
        .collect();
    Tensor::from_vec(counts, (1, out_h, out_w, 1), &Device::Cpu)
}

/// A pooled map (`x` as for [`taps`]).
fn pool(
    x: &Tensor,
    layer: &FrontLayer,
    kind: Pool2dKind,
    window: &Window,
) -> candle_core::Result<Tensor> {
    if layer.is_global() {
        return x.mean_keepdim(1)?.mean_keepdim(2);
    }
    // Padded cells take no part: they never win a maximum, and a mean
    // divides by the valid cells alone.
    let fill = match kind {
        Pool2dKind::Max => -1e30,
        Pool2dKind::Average => 0.0,
    };
    let cells = taps(x, layer, window, fill)?;
    let mut acc = cells[0].clone();
    for c in &cells[1..] {
        acc = match kind {
            Pool2dKind::Max => acc.maximum(c)?,
            Pool2dKind::Average => (acc + c)?,
        };
    }
    match kind {
        Pool2dKind::Max => Ok(acc),
        Pool2dKind::Average => acc.broadcast_div(&valid_cells(layer, window)?),
    }
}

/// A convolution (`x` as for [`taps`]; parameters as in [`Node::Conv`]).
pub(crate) fn conv(
    x: &Tensor,
    layer: &FrontLayer,
    weights: &Tensor,
    bias: &Tensor,
) -> candle_core::Result<Tensor> {
    let FrontKind::Conv {
        depthwise, window, ..
    } = layer.kind
    else {
        candle_core::bail!("`{layer}` is not a convolution");
    };
    let cells = taps(x, layer, &window, 0.0)?;
    let (out_h, out_w, filters) = dims(&layer.output);
    if depthwise {
        let mut acc = cells[0].broadcast_mul(&weights.get(0)?)?;
        for (t, c) in cells.iter().enumerate().skip(1) {
            acc = (acc + c.broadcast_mul(&weights.get(t)?)?)?;
        }
        return acc.broadcast_add(bias);
    }
    let batch = x.dim(0)?;
    // im2col: the taps side by side, tap-major as the weight rows.
    let columns = if cells.len() == 1 {
        cells[0].clone()
    } else {
        Tensor::cat(&cells, 3)?
    };
    let taps_width = columns.dim(3)?;
    columns
        .reshape((batch * out_h * out_w, taps_width))?
        .matmul(&weights.t()?)?
        .broadcast_add(bias)?
        .reshape((batch, out_h, out_w, filters))
}

/// The front as candle tensors.
pub(crate) struct Front {
    pub nodes: Vec<Node>,
}

impl Front {
    /// Run the front on `x` `(batch, h, w, c)`, normalized; batch norms use
    /// the batch's statistics when `training`. `trace` receives the tensor
    /// after each node.
    pub fn forward(
        &self,
        x: &Tensor,
        training: bool,
        mut trace: Option<&mut Vec<Tensor>>,
    ) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        let mut slots = Slots::default();
        for node in &self.nodes {
            x = match node {
                Node::Conv {
                    layer,
                    weights,
                    bias,
                } => conv(&x, layer, weights, bias)?,
                Node::BatchNorm(bn) => bn.forward(&x, training)?,
                Node::Other(layer) => match layer.kind {
                    FrontKind::Pool { kind, window } => pool(&x, layer, kind, &window)?,
                    FrontKind::Op(op) => apply_op(&op, &x, false, &mut slots)?,
                    _ => candle_core::bail!("`{layer}` without its parameters"),
                },
            };
            if let Some(t) = trace.as_deref_mut() {
                t.push(x.clone());
            }
        }
        Ok(x)
    }

    /// Constant tensors of a trained front.
    pub fn constant(front: &[Trained]) -> Result<Front> {
        let nodes = front
            .iter()
            .map(|t| {
                Ok(match t.layer.kind {
                    FrontKind::Conv {
                        depthwise, filters, ..
                    } => {
                        let rows = if depthwise {
                            t.weights.len() / filters.max(1)
                        } else {
                            filters
                        };
                        Node::Conv {
                            layer: t.layer,
                            weights: Tensor::from_slice(
                                &t.weights,
                                (rows, t.weights.len() / rows.max(1)),
                                &Device::Cpu,
                            )?,
                            bias: Tensor::from_slice(&t.bias, filters, &Device::Cpu)?,
                        }
                    }
                    FrontKind::BatchNorm => {
                        return Err(anyhow!("a trained front holds no batch norm"))
                    }
                    _ => Node::Other(t.layer),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Front { nodes })
    }
}

/// `rows` normalized inputs as a `(rows, h, w, c)` tensor.
pub(crate) fn batch_of(values: Vec<f32>, input: &FeatureMap) -> candle_core::Result<Tensor> {
    let (h, w, c) = dims(input);
    let rows = values.len() / (h * w * c).max(1);
    Tensor::from_vec(values, (rows, h, w, c), &Device::Cpu)
}

/// The flat `(rows, h w c)` form of a `(rows, h, w, c)` map, for the head.
pub(crate) fn flatten(x: &Tensor) -> candle_core::Result<Tensor> {
    x.flatten_from(1)
}

impl Cnn {
    /// Values of one input.
    pub fn input_len(&self) -> usize {
        self.input.len().unwrap_or(0) as usize
    }

    /// The trainer's own (candle) forward pass on raw rows (`rows x
    /// input_len`): the reference for trainer-vs-runtime parity. Returns
    /// `rows x outputs`, row-major.
    pub fn predict(&self, raw: &[f32]) -> Result<Vec<f32>> {
        let x = batch_of(self.normalization.rows(raw), &self.input)?;
        let features = flatten(&Front::constant(&self.front)?.forward(&x, false, None)?)?;
        let y = Net::constant(&self.head.layers)?.forward(&features, false, None)?;
        Ok(y.flatten_all()?.to_vec1::<f32>()?)
    }

    /// The tensor after each front layer for normalized rows (calibration),
    /// each flattened in the runtime's order; the last is the head's input.
    pub fn trace(&self, normalized: &[f32]) -> Result<Vec<Vec<f32>>> {
        let x = batch_of(normalized.to_vec(), &self.input)?;
        let mut trace = Vec::new();
        Front::constant(&self.front)?.forward(&x, false, Some(&mut trace))?;
        trace
            .iter()
            .map(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?))
            .collect()
    }

    /// Output width.
    pub fn output_len(&self) -> usize {
        self.head.output_len()
    }

    /// The f32 blob: `Conv2dF32` / `Pool2d` per front layer (activations
    /// and skips as the dense stack writes them), then the head's layers.
    pub fn f32_blob(&self) -> Result<Blob> {
        let mut layers = Vec::with_capacity(self.front.len() + self.head.layers.len());
        for t in &self.front {
            let l = &t.layer;
            layers.push(match l.kind {
                FrontKind::Conv {
                    depthwise,
                    filters,
                    window,
                } => blob::Layer::Conv2dF32 {
                    input: l.input,
                    filters: filters as u32,
                    window,
                    depthwise,
                    weights: le_bytes(&t.weights),
                    bias: le_bytes(&t.bias),
                },
                FrontKind::Pool { kind, window } => blob::Layer::Pool2d {
                    input: l.input,
                    kind,
                    window,
                },
                FrontKind::Op(LayerSpec::Save { slot }) => blob::Layer::SaveSkip(slot),
                FrontKind::Op(LayerSpec::Add { slot }) => blob::Layer::AddSkipF32(slot),
                FrontKind::Op(op) => blob::Layer::Activation(crate::dense::model::activation(op)?),
                FrontKind::BatchNorm => return Err(anyhow!("a trained front holds no batch norm")),
            });
        }
        layers.extend(self.head.f32_layers()?);
        Ok(Blob::f32(
            self.normalization.clone(),
            self.output_len(),
            layers,
        ))
    }
}

/// The last dimension of `x` as the channel axis: `(rows, channels)`.
pub(crate) fn channel_rows(x: &Tensor) -> candle_core::Result<Tensor> {
    let c = x.dim(D::Minus1)?;
    x.reshape(((), c))
}
