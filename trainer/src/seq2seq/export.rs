//! An encoder-decoder's blobs: its recurrent layers, then one decoder
//! layer (`LayerDef::DecoderF32` / `LayerDef::DecoderI8`).
//!
//! The int8 blob is calibrated on training windows ([`Seq2Seq::ranges`]):
//! - the encoder as any recurrent model's ([`crate::recurrent::quantize`]),
//!   except that the top layer's output, the query (the decoder's `h`) and
//!   the context share **one symmetric scale**: the context is a weighted
//!   mean of the top layer's outputs, and `[ctx; q]` enter one int8 dense
//!   layer, which takes one input quantization;
//! - the scores' exp table has a step chosen from the observed score spread
//!   (clamped to 8..=20 over 255 entries), as in the transformers'
//!   attention ([`crate::transformer::quantize`]);
//! - the outputs (which are also the decoder's inputs) get one asymmetric
//!   quantization covering the outputs and the first inputs; `start` maps
//!   the model's input quantization to it;
//! - `tanh` is a 256-entry table from the combine layer's quantization to
//!   the attentional state's.

use anyhow::Result;
use runtime::QuantParams;

use crate::blob::{le_bytes, Blob, DecoderShape, Layer};
use crate::quantize::{asymmetric, dense, exp_table, rescale, rescale_to, symmetric, table};
use crate::recurrent::quantize::{self as recurrent_quantize, cell_params, hidden_rescale};
use crate::seq2seq::model::Seq2Seq;

fn shape(m: &Seq2Seq) -> DecoderShape {
    let feedback: Vec<u16> = m.predict.iter().map(|&c| c as u16).collect();
    DecoderShape {
        window: m.window as u32,
        horizon: m.horizon as u32,
        cell: m.decoder.cell,
        outputs: m.outputs() as u32,
        hidden: m.decoder.hidden as u32,
        attention: m.attention() as u32,
        feedback: le_bytes(&feedback),
    }
}

/// The f32 blob: `params` of the decoder are its cell's (as a
/// `RecurrentF32`'s), then `W_c`, `b_c`, `W_y`, `b_y`.
pub fn f32_blob(m: &Seq2Seq) -> Blob {
    let mut layers: Vec<Layer> = m.encoder.iter().map(|p| p.f32_layer()).collect();
    layers.push(Layer::DecoderF32 {
        shape: shape(m),
        params: [
            m.decoder.f32_params(),
            le_bytes(&m.combine_weight),
            le_bytes(&m.combine_bias),
            le_bytes(&m.out_weight),
            le_bytes(&m.out_bias),
        ]
        .concat(),
    });
    Blob::f32(m.normalization.clone(), m.outputs(), layers)
}

/// The int8 blob, calibrated on `calibration` (raw windows, `n x window x channels`).
pub fn int8_blob(m: &Seq2Seq, calibration: &[f32]) -> Result<Blob> {
    let r = m.ranges(calibration)?;
    let input_quant = asymmetric(r.input);
    let top = r.encoder.last().copied().unwrap_or_default();
    let keys = QuantParams {
        scale: symmetric(
            top.abs_max()
                .max(r.query.abs_max())
                .max(r.context.abs_max()),
        ) as f32,
        zero_point: 0,
    };
    let mut layers = Vec::with_capacity(m.encoder.len() + 1);
    let mut q_in = input_quant;
    for (i, p) in m.encoder.iter().enumerate() {
        let q_out = if i + 1 == m.encoder.len() {
            keys
        } else {
            asymmetric(r.encoder[i])
        };
        layers.push(recurrent_quantize::layer(p, q_in, q_out)?);
        q_in = q_out;
    }
    let output = asymmetric(r.output);
    let combine = asymmetric(r.combine);
    let attentional = asymmetric(r.attentional);
    let (h, a) = (m.decoder.hidden, m.attention());
    let s = f64::from(keys.scale);
    let score_unit = s * s / (h as f64).sqrt();
    let step = f64::from(r.score_spread).clamp(8.0, 20.0) / 255.0;
    layers.push(Layer::DecoderI8 {
        shape: shape(m),
        start: rescale_to(input_quant, output, "decoder start")?,
        params: cell_params(&m.decoder, output)?,
        query: hidden_rescale(keys.scale, "decoder query")?,
        score: rescale(score_unit / step, 0, "decoder scores")?,
        exp_table: le_bytes(&exp_table(step)),
        // The weighted sum is Q16 of the keys' scale, which the context shares.
        context: rescale(1.0 / 65536.0, 0, "decoder context")?,
        combine: dense(
            &m.combine_weight,
            &m.combine_bias,
            2 * h,
            keys,
            |_| f64::from(combine.scale),
            combine.zero_point,
            "decoder combine",
        )?,
        tanh: le_bytes(&table(libm::tanh, combine, attentional)),
        out: dense(
            &m.out_weight,
            &m.out_bias,
            a,
            attentional,
            |_| f64::from(output.scale),
            output.zero_point,
            "decoder output",
        )?,
    });
    Ok(Blob::int8(
        m.normalization.clone(),
        (input_quant, output),
        m.outputs(),
        layers,
    ))
}
