//! A recurrent model's parameters and its candle forward pass.
//!
//! The cells ([`CellTensors`]: initialisation, one step, a whole layer over
//! a sequence) are the building blocks of every recurrent model (the
//! sequence-to-sequence family's encoder and decoder too), written from
//! candle ops with exactly the runtime's equations and gate order ([`runtime::kernels::recurrent`]: PyTorch's
//! conventions, LSTM i, f, g, o; GRU r, z, n with `r` multiplying
//! `W_hn h + b_hn`). Stacked layers feed each other step by step; the head
//! (a dense stack, [`crate::dense`]) runs on the last layer's final hidden
//! state.
//!
//! Unequal lengths: a batch is padded to its longest series, and each
//! series' output is read at its own last step (a one-hot mask over time),
//! so padding never reaches the answer. The runtime consumes each series at
//! its own length.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use runtime::format::Cell;

use crate::blob::{self, le_bytes};
use crate::dataset::Normalization;
use crate::dense::{Mlp, Net};

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

/// A recurrent layer's parameters as tensors (variables while training).
pub(crate) struct CellTensors {
    pub cell: Cell,
    pub hidden: usize,
    pub w_ih: Tensor,
    pub w_hh: Tensor,
    pub b_ih: Tensor,
    pub b_hh: Tensor,
}

impl CellTensors {
    /// Fresh variables for a cell of `hidden` units on `inputs` inputs,
    /// PyTorch's initialisation: every array uniform in `+-1/sqrt(hidden)`,
    /// drawn from `rng` in the order `W_input, W_hidden, bias_input,
    /// bias_hidden`, then the LSTM's forget-gate input bias set to 1. The
    /// variables are pushed onto `vars`.
    pub(crate) fn init(
        cell: Cell,
        inputs: usize,
        hidden: usize,
        rng: &mut ChaCha8Rng,
        vars: &mut Vec<Var>,
    ) -> Result<CellTensors> {
        let g = cell.gates() * hidden;
        let k = 1.0 / (hidden as f32).sqrt();
        let mut uniform =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-k..k)).collect() };
        let w_ih = uniform(g * inputs);
        let w_hh = uniform(g * hidden);
        let mut b_ih = uniform(g);
        let b_hh = uniform(g);
        if cell == Cell::Lstm {
            b_ih[hidden..2 * hidden].iter_mut().for_each(|b| *b = 1.0);
        }
        let mut variable = |values: Vec<f32>, shape: &[usize]| -> Result<Tensor> {
            let var = Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu)?)?;
            vars.push(var.clone());
            Ok(var.as_tensor().clone())
        };
        Ok(CellTensors {
            cell,
            hidden,
            w_ih: variable(w_ih, &[g, inputs])?,
            w_hh: variable(w_hh, &[g, hidden])?,
            b_ih: variable(b_ih, &[g])?,
            b_hh: variable(b_hh, &[g])?,
        })
    }

    /// Constant tensors of a trained layer.
    pub(crate) fn constant(p: &RecurrentParams) -> Result<CellTensors> {
        let g = p.cell.gates() * p.hidden;
        let tensor = |v: &[f32], shape: &[usize]| Tensor::from_slice(v, shape, &Device::Cpu);
        Ok(CellTensors {
            cell: p.cell,
            hidden: p.hidden,
            w_ih: tensor(&p.w_input, &[g, p.inputs])?,
            w_hh: tensor(&p.w_hidden, &[g, p.hidden])?,
            b_ih: tensor(&p.bias_input, &[g])?,
            b_hh: tensor(&p.bias_hidden, &[g])?,
        })
    }

    /// The trained values.
    pub(crate) fn to_params(&self) -> Result<RecurrentParams> {
        let flat = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
        Ok(RecurrentParams {
            cell: self.cell,
            inputs: self.w_ih.dim(1)?,
            hidden: self.hidden,
            w_input: flat(&self.w_ih)?,
            w_hidden: flat(&self.w_hh)?,
            bias_input: flat(&self.b_ih)?,
            bias_hidden: flat(&self.b_hh)?,
        })
    }

    /// One step on `x` (`(B, inputs)`) from the state `(h, c)`: the new `(h, c)`.
    pub(crate) fn step(
        &self,
        x: &Tensor,
        (h, c): (&Tensor, &Tensor),
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let gx = x.matmul(&self.w_ih.t()?)?.broadcast_add(&self.b_ih)?;
        cell_step(self, &gx, h, c, &self.w_hh.t()?)
    }
}

impl RecurrentParams {
    /// `params` of a [`blob::Layer::RecurrentF32`] (`W_input, W_hidden,
    /// bias_input, bias_hidden`, f32 LE).
    pub fn f32_params(&self) -> Vec<u8> {
        [
            le_bytes(&self.w_input),
            le_bytes(&self.w_hidden),
            le_bytes(&self.bias_input),
            le_bytes(&self.bias_hidden),
        ]
        .concat()
    }

    /// The layer as an f32 blob layer.
    pub fn f32_layer(&self) -> blob::Layer {
        blob::Layer::RecurrentF32 {
            cell: self.cell,
            inputs: self.inputs as u32,
            hidden: self.hidden as u32,
            params: self.f32_params(),
        }
    }
}

/// A padded batch: `x` is `(B, T, C)` normalized, `last` is `(B, T, 1)` one-hot at each series' last step.
pub(crate) struct Batch {
    pub x: Tensor,
    pub last: Tensor,
}

/// The batch of raw series `series` (each `steps x channels`).
pub(crate) fn make_batch(
    series: &[&[f32]],
    channels: usize,
    norm: &Normalization,
) -> Result<Batch> {
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

/// One step of a cell: the runtime's equations on `(B, ...)` tensors;
/// `gx` is the input part of the gate rows (`W_input x + bias_input`),
/// `w_hh_t` the hidden weights transposed. Returns the new `(h, c)`.
pub(crate) fn cell_step(
    r: &CellTensors,
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

/// One recurrent layer over a whole `(B, T, inputs)` sequence from a zero
/// state: its `(B, T, H)` outputs and its final state `(h, c)` (`c` is
/// zeros except for the LSTM).
pub(crate) fn run_layer(
    r: &CellTensors,
    x: &Tensor,
) -> candle_core::Result<(Tensor, (Tensor, Tensor))> {
    let (b, t_max, inputs) = x.dims3()?;
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
    Ok((Tensor::stack(&hs, 1)?, (h, c)))
}

/// Forward a batch: `(head output, final hidden states (B, H), every
/// layer's (B, T, H) outputs)`. `logits_only` skips the head's final
/// softmax (training).
pub(crate) fn forward(
    cells: &[CellTensors],
    head: &Net,
    batch: &Batch,
    logits_only: bool,
) -> candle_core::Result<(Tensor, Tensor, Vec<Tensor>)> {
    let mut x = batch.x.clone();
    let mut all = Vec::new();
    for r in cells {
        x = run_layer(r, &x)?.0;
        all.push(x.clone());
    }
    let final_h = x.broadcast_mul(&batch.last)?.sum(1)?;
    let y = head.forward(&final_h, logits_only, None)?;
    Ok((y, final_h, all))
}

impl SequenceModel {
    fn tensors(&self) -> Result<(Vec<CellTensors>, Net)> {
        let cells = self
            .layers
            .iter()
            .map(CellTensors::constant)
            .collect::<Result<_>>()?;
        Ok((cells, Net::constant(&self.head.layers)?))
    }

    /// The trainer's own (candle) forward pass on raw series (each
    /// `steps x channels`): the reference for trainer-vs-runtime parity.
    /// Returns one output row per series.
    pub fn predict(&self, series: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let (cells, head) = self.tensors()?;
        let batch = make_batch(series, self.channels, &self.normalization)?;
        let (y, _, _) = forward(&cells, &head, &batch, false)?;
        Ok(y.to_vec2::<f32>()?)
    }

    /// Final hidden states (f32) of raw series, and every layer's hidden
    /// values at every step (calibration).
    pub fn hidden(&self, series: &[&[f32]]) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
        let (cells, head) = self.tensors()?;
        let batch = make_batch(series, self.channels, &self.normalization)?;
        let (_, final_h, all) = forward(&cells, &head, &batch, false)?;
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
