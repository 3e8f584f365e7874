//! Recurrent models (Elman RNN, LSTM, GRU + dense head) on sequence datasets:
//! training with candle, int8 quantization, blobs, evaluation by the runtime,
//! export.
//!
//! The cells are written here from candle ops with exactly the runtime's
//! equations and gate order ([`runtime::kernels::recurrent`]: PyTorch's conventions,
//! LSTM i, f, g, o; GRU r, z, n with `r` multiplying `W_hn h + b_hn`). A model
//! is `rnn|lstm|gru N` layers first (stacked if several), then a head of dense
//! layers and activations run on the last layer's final hidden state.
//!
//! Unequal lengths: a batch is padded to its longest series, and each series'
//! output is read at its own last step (a one-hot mask over time), so padding
//! never reaches the answer. The runtime consumes each series at its own length.
//!
//! int8: each gate row's input and hidden weights get their own symmetric
//! scale; the first layer's input quantization comes from the normalized
//! training data, a stacked layer's from the previous layer's hidden values
//! over all training steps, and the last layer's int8 output is the head's
//! input quantization, calibrated (like any MLP, [`crate::quantize`]) on the
//! final hidden states of the training series.

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runtime::format::Cell;
use runtime::format::{Activation, LayerDef, ModelHeader, Numeric, Rescale};
use runtime::quant::quantize_multiplier;
use runtime::{Model, QuantParams, TestVectors};

use crate::data::Normalization;
use crate::export::{Evaluation, Report, CLASSIFIER_FILES};
use crate::quantize::{params_for_range, quantize_mlp, QLayer, QuantizedMlp};
use crate::spec::{LayerSpec, ModelSpec, OptimizerSpec};
use crate::train::{self, Layer, Mlp};
use crate::ts::{self, SeriesSet};

/// One trained recurrent layer; matrices row-major, gate blocks in the runtime's order.
#[derive(Debug, Clone)]
pub struct RecurrentParams {
    /// Cell kind.
    pub cell: Cell,
    /// Input width per step.
    pub inputs: usize,
    /// Hidden width.
    pub hidden: usize,
    /// `gates * hidden x inputs`.
    pub w_input: Vec<f32>,
    /// `gates * hidden x hidden`.
    pub w_hidden: Vec<f32>,
    /// `gates * hidden`.
    pub bias_input: Vec<f32>,
    /// `gates * hidden`.
    pub bias_hidden: Vec<f32>,
}

/// A trained sequence classifier.
#[derive(Debug, Clone)]
pub struct SequenceModel {
    /// Channels per time step.
    pub channels: usize,
    /// Recurrent layers, first to last.
    pub layers: Vec<RecurrentParams>,
    /// The head, run on the last layer's final hidden state (its
    /// normalization is the identity).
    pub head: Mlp,
    /// Per-channel normalization of raw input.
    pub normalization: Normalization,
}

/// Recurrent layer parameters as tensors (variables while training).
struct RecT {
    cell: Cell,
    hidden: usize,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
}

enum HeadT {
    Dense { w: Tensor, b: Tensor },
    Op(LayerSpec),
}

/// A padded batch: `x` is `(B, T, C)` normalized, `last` is `(B, T, 1)` one-hot at each series' last step.
struct Batch {
    x: Tensor,
    last: Tensor,
}

fn make_batch(series: &[&[f32]], channels: usize, norm: &Normalization) -> Result<Batch> {
    let t_max = series
        .iter()
        .map(|s| s.len() / channels)
        .max()
        .unwrap_or(0)
        .max(1);
    let b = series.len();
    let mut x = vec![0.0f32; b * t_max * channels];
    let mut last = vec![0.0f32; b * t_max];
    for (i, s) in series.iter().enumerate() {
        let steps = s.len() / channels;
        for (t, step) in s.chunks_exact(channels).enumerate() {
            let at = (i * t_max + t) * channels;
            norm.apply(step, &mut x[at..at + channels]);
        }
        if steps > 0 {
            last[i * t_max + steps - 1] = 1.0;
        }
    }
    Ok(Batch {
        x: Tensor::from_vec(x, (b, t_max, channels), &Device::Cpu)?,
        last: Tensor::from_vec(last, (b, t_max, 1), &Device::Cpu)?,
    })
}

/// One step of a cell: the runtime's equations on `(B, ...)` tensors.
fn cell_step(
    r: &RecT,
    gx: &Tensor,
    h: &Tensor,
    c: &Tensor,
    w_hh_t: &Tensor,
) -> candle_core::Result<(Tensor, Tensor)> {
    let gh = h.matmul(w_hh_t)?.broadcast_add(&r.b_hh)?;
    let n = r.hidden;
    let sig = candle_nn::ops::sigmoid;
    Ok(match r.cell {
        Cell::Rnn => ((gx + &gh)?.tanh()?, c.clone()),
        Cell::Lstm => {
            let g = (gx + &gh)?;
            let i = sig(&g.narrow(1, 0, n)?)?;
            let f = sig(&g.narrow(1, n, n)?)?;
            let gg = g.narrow(1, 2 * n, n)?.tanh()?;
            let o = sig(&g.narrow(1, 3 * n, n)?)?;
            let c = ((f * c)? + (i * gg)?)?;
            ((o * c.tanh()?)?, c)
        }
        Cell::Gru => {
            let rr = sig(&(gx.narrow(1, 0, n)? + gh.narrow(1, 0, n)?)?)?;
            let z = sig(&(gx.narrow(1, n, n)? + gh.narrow(1, n, n)?)?)?;
            let nn = (gx.narrow(1, 2 * n, n)? + (rr * gh.narrow(1, 2 * n, n)?)?)?.tanh()?;
            // h' = (1 - z) n + z h = n + z (h - n)
            let h = (&nn + (z * (h - &nn)?)?)?;
            (h, c.clone())
        }
    })
}

/// Forward a batch: `(head output, final hidden states (B, H), every layer's (B, T, H) outputs)`.
fn forward(
    rec: &[RecT],
    head: &[HeadT],
    batch: &Batch,
    logits_only: bool,
) -> candle_core::Result<(Tensor, Tensor, Vec<Tensor>)> {
    let (b, t_max, _) = batch.x.dims3()?;
    let mut x = batch.x.clone();
    let mut all = Vec::new();
    for r in rec {
        let inputs = x.dim(2)?;
        let gates = r.cell.gates() * r.hidden;
        let xp = x
            .reshape((b * t_max, inputs))?
            .matmul(&r.w_ih.t()?)?
            .broadcast_add(&r.b_ih)?
            .reshape((b, t_max, gates))?;
        let w_hh_t = r.w_hh.t()?.contiguous()?;
        let mut h = Tensor::zeros((b, r.hidden), DType::F32, &Device::Cpu)?;
        let mut c = h.clone();
        let mut hs = Vec::with_capacity(t_max);
        for t in 0..t_max {
            let gx = xp.narrow(1, t, 1)?.squeeze(1)?;
            let (h2, c2) = cell_step(r, &gx, &h, &c, &w_hh_t)?;
            h = h2;
            c = c2;
            hs.push(h.clone());
        }
        x = Tensor::stack(&hs, 1)?;
        all.push(x.clone());
    }
    let final_h = x.broadcast_mul(&batch.last)?.sum(1)?;
    let mut y = final_h.clone();
    for (i, node) in head.iter().enumerate() {
        y = match node {
            HeadT::Dense { w, b } => y.matmul(&w.t()?)?.broadcast_add(b)?,
            HeadT::Op(op) => match op {
                LayerSpec::Relu => y.relu()?,
                LayerSpec::LeakyRelu { alpha } => y.maximum(&(&y * f64::from(*alpha))?)?,
                LayerSpec::Sigmoid => candle_nn::ops::sigmoid(&y)?,
                LayerSpec::Tanh => y.tanh()?,
                LayerSpec::Gelu => y.gelu_erf()?,
                LayerSpec::Softmax if logits_only && i + 1 == head.len() => y,
                LayerSpec::Softmax => candle_nn::ops::softmax_last_dim(&y)?,
                other => {
                    candle_core::bail!("layer {other} is not supported in a recurrent model's head")
                }
            },
        };
    }
    Ok((y, final_h, all))
}

fn tensor(v: &[f32], shape: impl Into<candle_core::Shape>) -> Result<Tensor> {
    Ok(Tensor::from_slice(v, shape, &Device::Cpu)?)
}

impl SequenceModel {
    fn tensors(&self) -> Result<(Vec<RecT>, Vec<HeadT>)> {
        let rec = self
            .layers
            .iter()
            .map(|p| {
                let g = p.cell.gates() * p.hidden;
                Ok(RecT {
                    cell: p.cell,
                    hidden: p.hidden,
                    w_ih: tensor(&p.w_input, (g, p.inputs))?,
                    w_hh: tensor(&p.w_hidden, (g, p.hidden))?,
                    b_ih: tensor(&p.bias_input, g)?,
                    b_hh: tensor(&p.bias_hidden, g)?,
                })
            })
            .collect::<Result<_>>()?;
        let head = self
            .head
            .layers
            .iter()
            .map(|l| {
                Ok(match l {
                    Layer::Dense {
                        inputs,
                        outputs,
                        weights,
                        bias,
                    } => HeadT::Dense {
                        w: tensor(weights, (*outputs, *inputs))?,
                        b: tensor(bias, *outputs)?,
                    },
                    Layer::Op(op) => HeadT::Op(*op),
                })
            })
            .collect::<Result<_>>()?;
        Ok((rec, head))
    }

    /// The trainer's own (candle) forward pass on raw series (each
    /// `steps x channels`): the reference for trainer-vs-runtime parity.
    /// Returns one output row per series.
    pub fn predict(&self, series: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let (rec, head) = self.tensors()?;
        let batch = make_batch(series, self.channels, &self.normalization)?;
        let (y, _, _) = forward(&rec, &head, &batch, false)?;
        Ok(y.to_vec2::<f32>()?)
    }

    /// Final hidden states (f32) of raw series, and every layer's hidden values at every step.
    fn hidden(&self, series: &[&[f32]]) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
        let (rec, head) = self.tensors()?;
        let batch = make_batch(series, self.channels, &self.normalization)?;
        let (_, final_h, all) = forward(&rec, &head, &batch, false)?;
        let all = all
            .iter()
            .map(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?))
            .collect::<Result<_>>()?;
        Ok((final_h.flatten_all()?.to_vec1::<f32>()?, all))
    }

    /// Output width.
    pub fn output_len(&self) -> usize {
        self.head.output_len()
    }
}

/// What training produced besides the model.
pub type History = train::History;

/// Train on `train_set` (test set only watched).
pub fn train_sequence(
    spec: &ModelSpec,
    normalization: Normalization,
    train_set: &SeriesSet,
    test_set: &SeriesSet,
    progress: bool,
) -> Result<(SequenceModel, History)> {
    let (rec_spec, head_spec) =
        crate::spec::split_recurrent(&spec.model).map_err(|e| anyhow!(e))?;
    let training = &spec.training;
    let learning_rate = match training.optimizer {
        OptimizerSpec::Adam { learning_rate } => learning_rate,
        OptimizerSpec::Sgd { .. } => bail!("recurrent models train with adam"),
    };
    let classes = train_set.class_count();
    let mut rng = ChaCha8Rng::seed_from_u64(training.seed);
    let mut vars = Vec::new();
    let var = |v: Vec<f32>, shape: (usize, usize), vars: &mut Vec<Var>| -> Result<Var> {
        let t = Tensor::from_vec(v, shape, &Device::Cpu)?;
        let t = if shape.0 == 1 { t.squeeze(0)? } else { t };
        let var = Var::from_tensor(&t)?;
        vars.push(var.clone());
        Ok(var)
    };
    // PyTorch's init: uniform(-1/sqrt(H), 1/sqrt(H)); LSTM forget-gate bias 1.
    let mut rec_vars = Vec::new();
    let mut width = train_set.channels;
    for &(cell, hidden) in &rec_spec {
        let g = cell.gates() * hidden;
        let k = 1.0 / (hidden as f32).sqrt();
        let mut uniform =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-k..k)).collect() };
        let w_ih = uniform(g * width);
        let w_hh = uniform(g * hidden);
        let mut b_ih = uniform(g);
        let b_hh = uniform(g);
        if cell == Cell::Lstm {
            b_ih[hidden..2 * hidden].iter_mut().for_each(|b| *b = 1.0);
        }
        rec_vars.push((
            cell,
            width,
            hidden,
            var(w_ih, (g, width), &mut vars)?,
            var(w_hh, (g, hidden), &mut vars)?,
            var(b_ih, (1, g), &mut vars)?,
            var(b_hh, (1, g), &mut vars)?,
        ));
        width = hidden;
    }
    let mut head_vars = Vec::new();
    for l in &head_spec {
        if let LayerSpec::Dense { units } = l {
            let bound = (6.0 / width as f32).sqrt();
            let w: Vec<f32> = (0..units * width)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            let wv = var(w, (*units, width), &mut vars)?;
            let bv = var(vec![0.0; *units], (1, *units), &mut vars)?;
            head_vars.push((Some((wv, bv, width, *units)), *l));
            width = *units;
        } else {
            head_vars.push((None, *l));
        }
    }
    if width != classes {
        bail!("the model ends with {width} outputs but the dataset has {classes} classes: make the last dense layer `dense {classes}`");
    }
    let tensors = || -> (Vec<RecT>, Vec<HeadT>) {
        let rec = rec_vars
            .iter()
            .map(|(cell, _, hidden, a, b, c, d)| RecT {
                cell: *cell,
                hidden: *hidden,
                w_ih: a.as_tensor().clone(),
                w_hh: b.as_tensor().clone(),
                b_ih: c.as_tensor().clone(),
                b_hh: d.as_tensor().clone(),
            })
            .collect();
        let head = head_vars
            .iter()
            .map(|(p, l)| match p {
                Some((w, b, _, _)) => HeadT::Dense {
                    w: w.as_tensor().clone(),
                    b: b.as_tensor().clone(),
                },
                None => HeadT::Op(*l),
            })
            .collect();
        (rec, head)
    };
    let mut optimizer = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: learning_rate,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;

    let channels = train_set.channels;
    let test_refs: Vec<&[f32]> = test_set.series.iter().map(Vec::as_slice).collect();
    let test_batch = make_batch(&test_refs, channels, &normalization)?;
    let bar = if progress {
        indicatif::ProgressBar::new(training.epochs as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut history = History::default();
    let mut order: Vec<usize> = (0..train_set.len()).collect();
    for _epoch in 0..training.epochs {
        order.shuffle(&mut rng);
        let (mut loss_sum, mut batches) = (0.0f32, 0);
        for chunk in order.chunks(training.batch_size) {
            let refs: Vec<&[f32]> = chunk
                .iter()
                .map(|&i| train_set.series[i].as_slice())
                .collect();
            let batch = make_batch(&refs, channels, &normalization)?;
            let ys: Vec<u32> = chunk.iter().map(|&i| train_set.labels[i] as u32).collect();
            let y = Tensor::from_vec(ys, chunk.len(), &Device::Cpu)?;
            let (rec, head) = tensors();
            let (logits, _, _) = forward(&rec, &head, &batch, true)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            optimizer.backward_step(&loss)?;
            loss_sum += loss.to_scalar::<f32>()?;
            batches += 1;
        }
        let (rec, head) = tensors();
        let (out, _, _) = forward(&rec, &head, &test_batch, false)?;
        let acc = train::accuracy(
            &out.flatten_all()?.to_vec1::<f32>()?,
            classes,
            &test_set.labels,
        );
        let mean = loss_sum / batches.max(1) as f32;
        history.train_loss.push(mean);
        history.test_accuracy.push(acc);
        bar.set_message(format!("loss {mean:.4}  test acc {:.2}%", 100.0 * acc));
        bar.inc(1);
    }
    bar.finish_and_clear();

    let flat = |t: &Var| -> Result<Vec<f32>> { Ok(t.as_tensor().flatten_all()?.to_vec1::<f32>()?) };
    let layers = rec_vars
        .iter()
        .map(|(cell, inputs, hidden, a, b, c, d)| {
            Ok(RecurrentParams {
                cell: *cell,
                inputs: *inputs,
                hidden: *hidden,
                w_input: flat(a)?,
                w_hidden: flat(b)?,
                bias_input: flat(c)?,
                bias_hidden: flat(d)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let head_layers = head_vars
        .iter()
        .map(|(p, l)| {
            Ok(match p {
                Some((w, b, inputs, outputs)) => Layer::Dense {
                    inputs: *inputs,
                    outputs: *outputs,
                    weights: flat(w)?,
                    bias: flat(b)?,
                },
                None => Layer::Op(*l),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let last_hidden = layers.last().map_or(channels, |l| l.hidden);
    let head = Mlp {
        input_len: last_hidden,
        layers: head_layers,
        normalization: Normalization {
            offset: vec![0.0; last_hidden],
            scale: vec![1.0; last_hidden],
        },
    };
    Ok((
        SequenceModel {
            channels,
            layers,
            head,
            normalization,
        },
        history,
    ))
}

/// An int8 recurrent layer, parameters owned.
#[derive(Debug, Clone)]
pub struct QRecurrent {
    cell: Cell,
    inputs: usize,
    hidden: usize,
    w_input: Vec<i8>,
    w_hidden: Vec<i8>,
    bias_input: Vec<i32>,
    bias_hidden: Vec<i32>,
    mult_input: Vec<i32>,
    shift_input: Vec<u8>,
    mult_hidden: Vec<i32>,
    shift_hidden: Vec<u8>,
    output: Rescale,
    output_zero_point: i8,
}

/// A quantized sequence model.
#[derive(Debug, Clone)]
pub struct QuantizedSequence {
    /// Quantization of the normalized input.
    pub input_quant: QuantParams,
    layers: Vec<QRecurrent>,
    head: QuantizedMlp,
}

/// Per-row symmetric int8 weights: `(weights, scale per row)`.
fn quantize_rows(w: &[f32], cols: usize) -> (Vec<i8>, Vec<f64>) {
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::new();
    for row in w.chunks_exact(cols) {
        let amax = row.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        let s = if amax > 0.0 {
            f64::from(amax) / 127.0
        } else {
            1.0
        };
        q.extend(
            row.iter()
                .map(|&v| libm::round(f64::from(v) / s).clamp(-127.0, 127.0) as i8),
        );
        scales.push(s);
    }
    (q, scales)
}

fn clamp_i32(v: f64) -> i32 {
    libm::round(v).clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

fn multiplier(ratio: f64, what: &str) -> Result<(i32, u8)> {
    quantize_multiplier(ratio).ok_or_else(|| anyhow!("{what}: ratio {ratio} cannot be represented"))
}

fn quantize_layer(
    p: &RecurrentParams,
    q_in: QuantParams,
    q_out: QuantParams,
) -> Result<QRecurrent> {
    let (w_input, s_in) = quantize_rows(&p.w_input, p.inputs);
    let (w_hidden, s_h) = quantize_rows(&p.w_hidden, p.hidden);
    let (mut bias_input, mut mult_input, mut shift_input) = (Vec::new(), Vec::new(), Vec::new());
    for (k, row) in w_input.chunks_exact(p.inputs).enumerate() {
        let acc_scale = s_in[k] * f64::from(q_in.scale);
        let sum: i64 = row.iter().map(|&w| i64::from(w)).sum();
        let folded = libm::round(f64::from(p.bias_input[k]) / acc_scale)
            - (i64::from(q_in.zero_point) * sum) as f64;
        bias_input.push(clamp_i32(folded));
        let (m, s) = multiplier(acc_scale * 4096.0, "input gate rescale")?;
        mult_input.push(m);
        shift_input.push(s);
    }
    let (mut bias_hidden, mut mult_hidden, mut shift_hidden) = (Vec::new(), Vec::new(), Vec::new());
    for (k, &s) in s_h.iter().enumerate() {
        let acc_scale = s / 32768.0; // h is Q15
        bias_hidden.push(clamp_i32(f64::from(p.bias_hidden[k]) / acc_scale));
        let (m, sh) = multiplier(acc_scale * 4096.0, "hidden gate rescale")?;
        mult_hidden.push(m);
        shift_hidden.push(sh);
    }
    let (m, s) = multiplier(1.0 / 32768.0 / f64::from(q_out.scale), "output rescale")?;
    Ok(QRecurrent {
        cell: p.cell,
        inputs: p.inputs,
        hidden: p.hidden,
        w_input,
        w_hidden,
        bias_input,
        bias_hidden,
        mult_input,
        shift_input,
        mult_hidden,
        shift_hidden,
        output: Rescale {
            zero_point: 0,
            multiplier: m,
            shift: s,
        },
        output_zero_point: q_out.zero_point,
    })
}

fn range(v: &[f32]) -> (f32, f32) {
    v.iter()
        .fold((0.0f32, 0.0f32), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// Calibrate and quantize on (raw) training series.
pub fn quantize_sequence(
    model: &SequenceModel,
    calibration: &[&[f32]],
) -> Result<QuantizedSequence> {
    if calibration.is_empty() {
        bail!("no calibration data");
    }
    let mut normalized = Vec::new();
    for s in calibration {
        let mut out = vec![0.0; s.len()];
        for (src, dst) in s
            .chunks_exact(model.channels)
            .zip(out.chunks_exact_mut(model.channels))
        {
            model.normalization.apply(src, dst);
        }
        normalized.extend(out);
    }
    let (lo, hi) = range(&normalized);
    let input_quant = params_for_range(lo, hi);
    let (final_h, all) = model.hidden(calibration)?;
    let head = quantize_mlp(&model.head, &final_h)?;
    let mut layers = Vec::new();
    let mut q_in = input_quant;
    for (i, p) in model.layers.iter().enumerate() {
        let q_out = if i + 1 == model.layers.len() {
            head.input_quant
        } else {
            let (lo, hi) = range(&all[i]);
            params_for_range(lo, hi)
        };
        layers.push(quantize_layer(p, q_in, q_out)?);
        q_in = q_out;
    }
    Ok(QuantizedSequence {
        input_quant,
        layers,
        head,
    })
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn i8_bytes(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}

fn encode(header: ModelHeader<'_>, layers: &[LayerDef<'_>]) -> Result<Vec<u8>> {
    let mut out = vec![
        0u8;
        runtime::encoded_len(header, layers)
            .map_err(|e| anyhow!("encoding the model: {e}"))?
    ];
    let len = runtime::encode(header, layers, &mut out)
        .map_err(|e| anyhow!("encoding the model: {e}"))?;
    out.truncate(len);
    Ok(out)
}

fn activation_def(op: &LayerSpec) -> Result<LayerDef<'static>> {
    Ok(LayerDef::ActivationF32(match *op {
        LayerSpec::Relu => Activation::Relu,
        LayerSpec::LeakyRelu { alpha } => Activation::LeakyRelu { alpha },
        LayerSpec::Sigmoid => Activation::Sigmoid,
        LayerSpec::Tanh => Activation::Tanh,
        LayerSpec::Gelu => Activation::Gelu,
        LayerSpec::Softmax => Activation::Softmax,
        other => bail!("layer {other} cannot be in a recurrent model's head"),
    }))
}

/// The f32 blob.
pub fn f32_blob(model: &SequenceModel) -> Result<Vec<u8>> {
    let offset = f32_bytes(&model.normalization.offset);
    let scale = f32_bytes(&model.normalization.scale);
    let rec: Vec<Vec<u8>> = model
        .layers
        .iter()
        .map(|p| {
            [
                f32_bytes(&p.w_input),
                f32_bytes(&p.w_hidden),
                f32_bytes(&p.bias_input),
                f32_bytes(&p.bias_hidden),
            ]
            .concat()
        })
        .collect();
    let head: Vec<(Vec<u8>, Vec<u8>)> = model
        .head
        .layers
        .iter()
        .map(|l| match l {
            Layer::Dense { weights, bias, .. } => (f32_bytes(weights), f32_bytes(bias)),
            Layer::Op(_) => (Vec::new(), Vec::new()),
        })
        .collect();
    let mut layers = Vec::new();
    for (p, params) in model.layers.iter().zip(&rec) {
        layers.push(LayerDef::RecurrentF32 {
            cell: p.cell,
            inputs: p.inputs as u32,
            hidden: p.hidden as u32,
            params,
        });
    }
    for (l, (w, b)) in model.head.layers.iter().zip(&head) {
        layers.push(match l {
            Layer::Dense {
                inputs, outputs, ..
            } => LayerDef::DenseF32 {
                inputs: *inputs as u32,
                outputs: *outputs as u32,
                weights: w,
                bias: b,
            },
            Layer::Op(op) => activation_def(op)?,
        });
    }
    let header = ModelHeader {
        numeric: Numeric::F32,
        input_len: model.channels as u32,
        output_len: model.output_len() as u32,
        arena_bytes: 0,
        layer_count: 0,
        input_offset: &offset,
        input_scale: &scale,
        input_quant: None,
        output_quant: None,
    };
    encode(header, &layers)
}

/// The int8 blob.
pub fn int8_blob(q: &QuantizedSequence, model: &SequenceModel) -> Result<Vec<u8>> {
    let offset = f32_bytes(&model.normalization.offset);
    let scale = f32_bytes(&model.normalization.scale);
    let rec: Vec<Vec<u8>> = q
        .layers
        .iter()
        .map(|l| {
            [
                i8_bytes(&l.w_input),
                i8_bytes(&l.w_hidden),
                i32_bytes(&l.bias_input),
                i32_bytes(&l.bias_hidden),
                i32_bytes(&l.mult_input),
                i32_bytes(&l.mult_hidden),
                l.shift_input.clone(),
                l.shift_hidden.clone(),
            ]
            .concat()
        })
        .collect();
    let head: Vec<[Vec<u8>; 4]> = q
        .head
        .layers
        .iter()
        .map(|l| match l {
            QLayer::Dense {
                weights,
                bias,
                multiplier,
                shift,
                ..
            } => [
                i8_bytes(weights),
                i32_bytes(bias),
                i32_bytes(multiplier),
                shift.clone(),
            ],
            QLayer::Table(t) => [i8_bytes(t), vec![], vec![], vec![]],
            QLayer::Softmax(t) => [
                t.iter().flat_map(|v| v.to_le_bytes()).collect(),
                vec![],
                vec![],
                vec![],
            ],
            _ => Default::default(),
        })
        .collect();
    let mut layers = Vec::new();
    for (l, params) in q.layers.iter().zip(&rec) {
        layers.push(LayerDef::RecurrentI8 {
            cell: l.cell,
            inputs: l.inputs as u32,
            hidden: l.hidden as u32,
            params,
            output: l.output,
            output_zero_point: l.output_zero_point,
        });
    }
    for (l, [a, b, c, d]) in q.head.layers.iter().zip(&head) {
        layers.push(match *l {
            QLayer::Dense {
                inputs,
                outputs,
                output_zero_point,
                ..
            } => LayerDef::DenseI8 {
                inputs: inputs as u32,
                outputs: outputs as u32,
                weights: a,
                bias: b,
                multiplier: c,
                shift: d,
                output_zero_point,
            },
            QLayer::Table(_) => LayerDef::TableI8 { table: a },
            QLayer::Softmax(_) => LayerDef::SoftmaxI8 { exp_table: a },
            _ => bail!("skip connections cannot be in a recurrent model's head"),
        });
    }
    let header = ModelHeader {
        numeric: Numeric::Int8,
        input_len: model.channels as u32,
        output_len: model.output_len() as u32,
        arena_bytes: 0,
        layer_count: 0,
        input_offset: &offset,
        input_scale: &scale,
        input_quant: Some(q.input_quant),
        output_quant: Some(q.head.output_quant),
    };
    encode(header, &layers)
}

/// Buffers for running a model with the runtime: an aligned arena and state.
pub struct Buffers {
    arena: Vec<u32>,
    state: Vec<u32>,
}

impl Buffers {
    /// Sized for `model`.
    pub fn new(model: &Model) -> Self {
        Buffers {
            arena: vec![0; model.arena_bytes().div_ceil(4)],
            state: vec![0; model.state_bytes().div_ceil(4)],
        }
    }
    /// `(state, arena)` byte views.
    pub fn split(&mut self) -> (&mut [u8], &mut [u8]) {
        (
            bytemuck::cast_slice_mut(&mut self.state),
            bytemuck::cast_slice_mut(&mut self.arena),
        )
    }
}

/// Quantize raw steps (`steps x channels`) for an int8 model.
pub fn quantize_series(model: &Model, series: &[f32]) -> Result<Vec<i8>> {
    let c = model.input_len();
    let mut q = vec![0i8; series.len()];
    for (src, dst) in series.chunks_exact(c).zip(q.chunks_exact_mut(c)) {
        model.quantize_input(src, dst).map_err(|e| anyhow!("{e}"))?;
    }
    Ok(q)
}

/// Run `blob` over every series of `data` (whole sequences, step by step).
pub fn evaluate(blob: &[u8], data: &SeriesSet) -> Result<Evaluation> {
    let model =
        Model::from_bytes(blob).map_err(|e| anyhow!("the exported blob does not load: {e}"))?;
    let mut buffers = Buffers::new(&model);
    let classes = data.class_count();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let (mut inputs, mut expected, mut labels, mut steps) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut correct = 0;
    for (i, series) in data.series.iter().enumerate() {
        let (state, arena) = buffers.split();
        let predicted = match model.numeric() {
            Numeric::F32 => {
                let out = model
                    .run_sequence_f32(series, state, arena)
                    .map_err(|e| anyhow!("series {i}: {e}"))?;
                inputs.extend(f32_bytes(series));
                expected.extend(f32_bytes(out));
                runtime::argmax(out)
            }
            Numeric::Int8 => {
                let q = quantize_series(&model, series)?;
                let out = model
                    .run_sequence_i8(&q, state, arena)
                    .map_err(|e| anyhow!("series {i}: {e}"))?;
                inputs.extend(i8_bytes(&q));
                expected.extend(i8_bytes(out));
                runtime::argmax(out)
            }
        };
        let label = data.labels[i];
        labels.extend((label as u16).to_le_bytes());
        steps.push(data.steps(i) as u32);
        correct += usize::from(predicted == label);
        if let Some(cell) = confusion.get_mut(label).and_then(|r| r.get_mut(predicted)) {
            *cell += 1;
        }
    }
    let vectors = TestVectors {
        numeric: model.numeric(),
        count: data.len() as u32,
        input_len: model.input_len() as u32,
        output_len: model.output_len() as u32,
        inputs: &inputs,
        expected: &expected,
        labels: &labels,
        steps: None,
    };
    let mut bytes = postcard::to_stdvec(&vectors)?;
    let mut scratch = vec![0u8; 4 * steps.len()];
    let mut trailer = vec![0u8; 4 * steps.len() + 8];
    let n = TestVectors::encode_steps(&steps, &mut scratch, &mut trailer)
        .map_err(|e| anyhow!("{e}"))?;
    bytes.extend_from_slice(&trailer[..n]);
    Ok(Evaluation {
        accuracy: correct as f64 / data.len().max(1) as f64,
        confusion,
        vectors: bytes,
    })
}

/// Whether a spec describes a sequence model.
pub fn is_sequence_spec(spec: &ModelSpec) -> bool {
    spec.model
        .iter()
        .any(|l| matches!(l, LayerSpec::Recurrent { .. }))
}

/// Load the spec's train and test series (`test_path` is required for `.ts`).
pub fn load_sequences(spec: &ModelSpec) -> Result<(SeriesSet, SeriesSet)> {
    let path = spec.dataset_path();
    let train = ts::load_ts(&path)?;
    crate::limits::check_data(
        &path,
        &[
            ("input width (channels)", train.channels),
            ("class count", train.class_count()),
        ],
    )?;
    let Some(test_path) = &spec.dataset.test_path else {
        bail!(
            "{}: a sequence dataset needs dataset.test_path (the TEST .ts file)",
            spec.name
        );
    };
    let test = ts::load_ts(&spec.spec_dir.join(test_path))?;
    if test.channels != train.channels || test.class_names != train.class_names {
        bail!("the test file's channels or class labels differ from the training file's");
    }
    Ok((train, test))
}

/// Train, quantize, evaluate and write everything for one sequence spec
/// (the files of [`crate::export`]; vectors are sequence vectors).
pub fn export_sequence_spec(
    spec_path: &Path,
    spec: &ModelSpec,
    out_root: &Path,
    reuse: bool,
    progress: bool,
) -> Result<Report> {
    let fingerprint = crate::export::fingerprint(spec_path, &spec.data_files())?;
    crate::export::write_model(
        out_root,
        &spec.name,
        &fingerprint.clone(),
        reuse.then_some(&CLASSIFIER_FILES[..]),
        |dir| {
            let (train_set, test_set) = load_sequences(spec)?;
            let normalization = ts::fit_channel_normalization(&train_set);
            let started = Instant::now();
            let (model, history) =
                train_sequence(spec, normalization, &train_set, &test_set, progress)?;
            let training_seconds = started.elapsed().as_secs_f64();
            let calibration: Vec<&[f32]> = train_set
                .series
                .iter()
                .take(spec.quantization.calibration_samples.max(1))
                .map(Vec::as_slice)
                .collect();
            let quantized = quantize_sequence(&model, &calibration)?;
            let f32_model = f32_blob(&model)?;
            let int8_model = int8_blob(&quantized, &model)?;
            let f32_eval = evaluate(&f32_model, &test_set)?;
            let int8_eval = evaluate(&int8_model, &test_set)?;
            crate::export::finish_classifier_export(
                spec,
                dir,
                crate::export::Split {
                    class_names: &train_set.class_names,
                    train_samples: train_set.len(),
                    test_samples: test_set.len(),
                },
                (&f32_model, &f32_eval),
                (&int8_model, &int8_eval),
                &history,
                training_seconds,
                fingerprint,
            )
        },
    )
}
