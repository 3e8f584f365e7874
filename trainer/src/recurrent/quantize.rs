//! int8 recurrent models, integer-only with int16 (Q15) state, following
//! `LayerDef::RecurrentI8` (equations in `runtime::kernels::recurrent`).
//!
//! Each gate row's input and hidden weights get their own symmetric scale
//! ([`crate::quantize::weight_rows`]) and both accumulators are rescaled to
//! Q12. The first layer's input quantization comes from the normalized
//! training data, a stacked layer's from the previous layer's hidden values
//! over all training steps, and the last layer's int8 output is the head's
//! input quantization, calibrated (as any dense stack's) on the final hidden
//! states of the training series. [`layer`], [`cell_params`] and
//! [`hidden_rescale`] are the int8 cell for any family (a decoder cell too).

use anyhow::{bail, Result};
use runtime::format::Rescale;
use runtime::QuantParams;

use crate::blob::{self, le_bytes, Blob};
use crate::dense::quantize::quantize as quantize_head;
use crate::quantize::{asymmetric, fold_bias, multiplier, rescale, round_i32, weight_rows, Range};
use crate::recurrent::model::{RecurrentParams, SequenceModel};

/// The int8 blob of `model`, calibrated on raw training series.
pub fn int8_blob(model: &SequenceModel, calibration: &[&[f32]]) -> Result<Blob> {
    if calibration.is_empty() {
        bail!("no calibration data");
    }
    let mut input = Range::default();
    for s in calibration {
        input.merge(&model.normalization.rows(s));
    }
    let input_quant = asymmetric(input);
    let (final_h, all) = model.hidden(calibration)?;
    let head = quantize_head(&model.head, &final_h)?;
    let mut layers = Vec::new();
    let mut q_in = input_quant;
    for (i, p) in model.layers.iter().enumerate() {
        let q_out = if i + 1 == model.layers.len() {
            head.input_quant
        } else {
            asymmetric(Range::of(&all[i]))
        };
        layers.push(layer(p, q_in, q_out)?);
        q_in = q_out;
    }
    layers.extend(head.layers);
    Ok(Blob::int8(
        model.normalization.clone(),
        (input_quant, head.output_quant),
        model.output_len(),
        layers,
    ))
}

/// One int8 recurrent layer from input quantization `q_in` to output `q_out`.
pub fn layer(p: &RecurrentParams, q_in: QuantParams, q_out: QuantParams) -> Result<blob::Layer> {
    Ok(blob::Layer::RecurrentI8 {
        cell: p.cell,
        inputs: p.inputs as u32,
        hidden: p.hidden as u32,
        params: cell_params(p, q_in)?,
        output: hidden_rescale(q_out.scale, "output rescale")?,
        output_zero_point: q_out.zero_point,
    })
}

/// The `params` of an int8 cell whose input has the quantization `q_in`
/// (the layout of `LayerDef::RecurrentI8`, which a decoder cell shares).
pub fn cell_params(p: &RecurrentParams, q_in: QuantParams) -> Result<Vec<u8>> {
    let (w_input, s_in) = weight_rows(&p.w_input, p.inputs);
    let (w_hidden, s_h) = weight_rows(&p.w_hidden, p.hidden);
    let (mut bias_input, mut mult_input, mut shift_input) = (Vec::new(), Vec::new(), Vec::new());
    for (k, row) in w_input.chunks_exact(p.inputs).enumerate() {
        let acc_scale = s_in[k] * f64::from(q_in.scale);
        bias_input.push(fold_bias(p.bias_input[k], acc_scale, q_in.zero_point, row));
        let (m, s) = multiplier(acc_scale * 4096.0, "input gate rescale")?;
        mult_input.push(m);
        shift_input.push(s);
    }
    let (mut bias_hidden, mut mult_hidden, mut shift_hidden) = (Vec::new(), Vec::new(), Vec::new());
    for (k, &s) in s_h.iter().enumerate() {
        let acc_scale = s / 32768.0; // h is Q15
        bias_hidden.push(round_i32(f64::from(p.bias_hidden[k]) / acc_scale));
        let (m, sh) = multiplier(acc_scale * 4096.0, "hidden gate rescale")?;
        mult_hidden.push(m);
        shift_hidden.push(sh);
    }
    Ok([
        le_bytes(&w_input),
        le_bytes(&w_hidden),
        le_bytes(&bias_input),
        le_bytes(&bias_hidden),
        le_bytes(&mult_input),
        le_bytes(&mult_hidden),
        shift_input,
        shift_hidden,
    ]
    .concat())
}

/// The Q15 hidden state to an int8 tensor of scale `scale` (zero point
/// added by the caller); `what` names it if it cannot be represented.
pub fn hidden_rescale(scale: f32, what: &str) -> Result<Rescale> {
    rescale(1.0 / 32768.0 / f64::from(scale), 0, what)
}
