//! An encoder-decoder's parameters and its candle forward pass: the math
//! contract the runtime's `LayerDef::DecoderF32` follows.
//!
//! 1. The encoder's recurrent layers ([`CellTensors`], stacked) read the
//!    `window` normalized steps from a zero state; the top layer's outputs
//!    `e_1..e_window` are the attention's keys and values.
//! 2. The decoder is one cell of the top layer's kind and width, starting
//!    from the top layer's final state (`h`, and `c` for an LSTM). Its first
//!    input is the last window step's `predict` channels; each later input
//!    is the previous step's output, or with teacher forcing the true
//!    previous value.
//! 3. Per decoder step, after the cell: `s_i = (h . e_i) / sqrt(hidden)`,
//!    `p = softmax(s)`, `ctx = sum_i p_i e_i` (Luong's dot-product
//!    attention: no parameters, and the same kernel as the transformers'),
//!    `a = tanh(W_c [ctx; h] + b_c)`, `y = W_y a + b_y`.
//!
//! Outputs are in the normalized units of their channels.

use anyhow::{bail, Result};
use candle_core::{Device, Tensor, D};
use runtime::format::Cell;

use crate::dataset::Normalization;
use crate::quantize::Range;
use crate::recurrent::model::{run_layer, CellTensors};
use crate::recurrent::RecurrentParams;

/// A trained encoder-decoder.
#[derive(Debug, Clone)]
pub struct Seq2Seq {
    /// Channels per window step.
    pub channels: usize,
    /// Encoder steps.
    pub window: usize,
    /// Decoder steps.
    pub horizon: usize,
    /// The channel each output continues (and is fed back as).
    pub predict: Vec<usize>,
    /// Encoder layers, first to last.
    pub encoder: Vec<RecurrentParams>,
    /// The decoder cell (`predict.len()` inputs, the top layer's kind and width).
    pub decoder: RecurrentParams,
    /// `W_c`, `attention x 2 hidden` row-major (over `[ctx; h]`).
    pub combine_weight: Vec<f32>,
    /// `b_c`, `attention`.
    pub combine_bias: Vec<f32>,
    /// `W_y`, `outputs x attention`.
    pub out_weight: Vec<f32>,
    /// `b_y`, `outputs`.
    pub out_bias: Vec<f32>,
    /// Per-channel normalization of raw input (`channels` wide).
    pub normalization: Normalization,
}

impl Seq2Seq {
    /// Values per decoder step.
    pub fn outputs(&self) -> usize {
        self.predict.len()
    }

    /// Width of the attentional state.
    pub fn attention(&self) -> usize {
        self.combine_bias.len()
    }

    /// The decoder's (and the top encoder layer's) cell and width.
    pub fn top(&self) -> (Cell, usize) {
        (self.decoder.cell, self.decoder.hidden)
    }

    /// Raw windows (`n x window x channels`) normalized.
    pub fn normalize(&self, windows: &[f32]) -> Vec<f32> {
        self.normalization.rows(windows)
    }

    /// The trainer's own (candle) forward pass on raw windows, free running
    /// (each step fed the previous output): `n x horizon x outputs`
    /// normalized values, the reference for trainer-vs-runtime parity.
    pub fn predict(&self, windows: &[f32]) -> Result<Vec<f32>> {
        self.run(windows, None)
    }

    /// [`Seq2Seq::predict`], measuring every tensor the int8 model stores.
    pub fn ranges(&self, windows: &[f32]) -> Result<Ranges> {
        let mut ranges = Ranges {
            encoder: vec![Range::default(); self.encoder.len()],
            ..Ranges::default()
        };
        self.run(windows, Some(&mut ranges))?;
        Ok(ranges)
    }

    fn run(&self, windows: &[f32], mut ranges: Option<&mut Ranges>) -> Result<Vec<f32>> {
        let net = Net::constant(self)?;
        let step = self.window * self.channels;
        if step == 0 || !windows.len().is_multiple_of(step) {
            bail!(
                "windows of {step} values expected, got {} values",
                windows.len()
            );
        }
        let mut out = Vec::with_capacity(windows.len() / step * self.horizon * self.outputs());
        // Batches keep the encoder's tensors small.
        for chunk in windows.chunks(step * 256) {
            let n = chunk.len() / step;
            let x = Tensor::from_vec(
                self.normalize(chunk),
                (n, self.window, self.channels),
                &Device::Cpu,
            )?;
            let y = net.forward(&x, self.horizon, None, ranges.as_deref_mut())?;
            out.extend(y.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

/// Observed ranges of the tensors the int8 model stores (calibration).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ranges {
    /// Normalized input (every channel).
    pub input: Range,
    /// Each encoder layer's outputs.
    pub encoder: Vec<Range>,
    /// The decoder cell's `h` at every step (the query).
    pub query: Range,
    /// The attention context.
    pub context: Range,
    /// Largest `max_i s_i - s_i` of one step (real score units).
    pub score_spread: f32,
    /// `W_c [ctx; h] + b_c`, before the `tanh`.
    pub combine: Range,
    /// `a`.
    pub attentional: Range,
    /// Every output, and the first decoder inputs.
    pub output: Range,
}

/// What the decoder is fed after its first step while training: per step
/// `t >= 1`, the true previous values where `masks[t - 1]` is 1 and its own
/// previous output where it is 0 (`None`: always the truth).
pub(crate) struct TeacherInput<'a> {
    /// `(B, horizon, outputs)` normalized targets.
    pub targets: &'a Tensor,
    /// `horizon - 1` masks of `(B, 1)` zeros and ones, or `None`.
    pub masks: Option<&'a [Tensor]>,
}

/// The parameters as candle tensors (variables while training).
pub(crate) struct Net {
    pub encoder: Vec<CellTensors>,
    pub decoder: CellTensors,
    pub combine_weight: Tensor,
    pub combine_bias: Tensor,
    pub out_weight: Tensor,
    pub out_bias: Tensor,
    /// The predicted channels (u32), to pick the first decoder input.
    pub predict: Tensor,
}

/// Widen `range` to the values of `t`.
fn merge(range: &mut Range, t: &Tensor) -> candle_core::Result<()> {
    range.merge(&t.flatten_all()?.to_vec1::<f32>()?);
    Ok(())
}

impl Net {
    /// Constant tensors of a trained model.
    pub fn constant(m: &Seq2Seq) -> Result<Net> {
        let tensor = |v: &[f32], shape: &[usize]| Tensor::from_slice(v, shape, &Device::Cpu);
        let (a, h, o) = (m.attention(), m.decoder.hidden, m.outputs());
        Ok(Net {
            encoder: m
                .encoder
                .iter()
                .map(CellTensors::constant)
                .collect::<Result<_>>()?,
            decoder: CellTensors::constant(&m.decoder)?,
            combine_weight: tensor(&m.combine_weight, &[a, 2 * h])?,
            combine_bias: tensor(&m.combine_bias, &[a])?,
            out_weight: tensor(&m.out_weight, &[o, a])?,
            out_bias: tensor(&m.out_bias, &[o])?,
            predict: predict_index(&m.predict)?,
        })
    }

    /// `horizon` decoder steps after encoding `x` (`(B, window, channels)`,
    /// normalized): `(B, horizon, outputs)`. `teacher` feeds true values
    /// (training); `ranges` records calibration ranges.
    pub fn forward(
        &self,
        x: &Tensor,
        horizon: usize,
        teacher: Option<&TeacherInput<'_>>,
        mut ranges: Option<&mut Ranges>,
    ) -> candle_core::Result<Tensor> {
        let window = x.dim(1)?;
        if let Some(r) = ranges.as_deref_mut() {
            merge(&mut r.input, x)?;
        }
        let mut e = x.clone();
        let mut state = None;
        for (i, layer) in self.encoder.iter().enumerate() {
            let (outputs, last) = run_layer(layer, &e)?;
            if let Some(r) = ranges.as_deref_mut() {
                merge(&mut r.encoder[i], &outputs)?;
            }
            e = outputs;
            state = Some(last);
        }
        let Some((mut h, mut c)) = state else {
            candle_core::bail!("an encoder-decoder needs an encoder layer");
        };
        let hidden = h.dim(1)?;
        let scale = 1.0 / (hidden as f64).sqrt();
        let mut y = x
            .narrow(1, window - 1, 1)?
            .squeeze(1)?
            .contiguous()?
            .index_select(&self.predict, 1)?;
        if let Some(r) = ranges.as_deref_mut() {
            merge(&mut r.output, &y)?;
        }
        let mut ys = Vec::with_capacity(horizon);
        for t in 0..horizon {
            if let (Some(teacher), true) = (teacher, t > 0) {
                let truth = teacher.targets.narrow(1, t - 1, 1)?.squeeze(1)?;
                y = match teacher.masks {
                    None => truth,
                    Some(masks) => {
                        let m = &masks[t - 1];
                        (truth.broadcast_mul(m)? + y.broadcast_mul(&(1.0 - m)?)?)?
                    }
                };
            }
            (h, c) = self.decoder.step(&y, (&h, &c))?;
            let scores = (e.matmul(&h.unsqueeze(2)?)?.squeeze(2)? * scale)?;
            let p = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = p.unsqueeze(1)?.matmul(&e)?.squeeze(1)?;
            let joined = Tensor::cat(&[&context, &h], 1)?;
            let combine = joined
                .matmul(&self.combine_weight.t()?)?
                .broadcast_add(&self.combine_bias)?;
            let a = combine.tanh()?;
            y = a
                .matmul(&self.out_weight.t()?)?
                .broadcast_add(&self.out_bias)?;
            if let Some(r) = ranges.as_deref_mut() {
                merge(&mut r.query, &h)?;
                merge(&mut r.context, &context)?;
                let max = scores.max_keepdim(D::Minus1)?;
                let spread = max.broadcast_sub(&scores)?.max(D::Minus1)?.max(0)?;
                r.score_spread = r.score_spread.max(spread.to_scalar::<f32>()?);
                merge(&mut r.combine, &combine)?;
                merge(&mut r.attentional, &a)?;
                merge(&mut r.output, &y)?;
            }
            ys.push(y.clone());
        }
        Tensor::stack(&ys, 1)
    }

    /// The trained values.
    pub fn to_params(
        &self,
        (channels, window, horizon): (usize, usize, usize),
        predict: &[usize],
        normalization: Normalization,
    ) -> Result<Seq2Seq> {
        let flat = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
        Ok(Seq2Seq {
            channels,
            window,
            horizon,
            predict: predict.to_vec(),
            encoder: self
                .encoder
                .iter()
                .map(CellTensors::to_params)
                .collect::<Result<_>>()?,
            decoder: self.decoder.to_params()?,
            combine_weight: flat(&self.combine_weight)?,
            combine_bias: flat(&self.combine_bias)?,
            out_weight: flat(&self.out_weight)?,
            out_bias: flat(&self.out_bias)?,
            normalization,
        })
    }
}

/// The predicted channels as an index tensor.
pub(crate) fn predict_index(predict: &[usize]) -> Result<Tensor> {
    let ids: Vec<u32> = predict.iter().map(|&c| c as u32).collect();
    Ok(Tensor::from_vec(ids, predict.len(), &Device::Cpu)?)
}
