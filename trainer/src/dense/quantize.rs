//! Post-training int8 quantization of a dense stack, with the affine
//! scheme of [`crate::quantize`].
//!
//! Ranges come from running the trained f32 stack on calibration rows and
//! taking each tensor's min and max. A dense layer followed by ReLU takes the
//! ReLU's output range, so its negative outputs saturate to the zero point
//! and the int8 ReLU is a no-op instead of wasting half the codes.
//! Elementwise activations become 256-entry tables, the softmax an exp table.

use anyhow::{bail, Result};
use runtime::QuantParams;

use crate::blob::{self, le_bytes, Blob};
use crate::dense::model::{Layer, Mlp};
use crate::dense::spec::LayerSpec;
use crate::quantize::{self, asymmetric, rescale_to, Range, SOFTMAX_OUTPUT};

/// An int8 stack ready to encode.
#[derive(Debug, Clone)]
pub struct Quantized {
    /// Quantization of the normalized input.
    pub input_quant: QuantParams,
    /// Quantization of the output.
    pub output_quant: QuantParams,
    /// Layers in order.
    pub layers: Vec<blob::Layer>,
}

impl Quantized {
    /// The int8 blob of `mlp` quantized so (normalization from `mlp`).
    pub fn blob(self, mlp: &Mlp) -> Blob {
        Blob::int8(
            mlp.normalization.clone(),
            (self.input_quant, self.output_quant),
            mlp.output_len(),
            self.layers,
        )
    }
}

/// The real function of an elementwise activation (f64, `libm`), the
/// function of its int8 table.
pub fn activation(op: &LayerSpec, x: f64) -> f64 {
    match op {
        LayerSpec::Relu => x.max(0.0),
        LayerSpec::Relu6 => x.clamp(0.0, 6.0),
        LayerSpec::LeakyRelu { alpha } => {
            if x < 0.0 {
                x * f64::from(*alpha)
            } else {
                x
            }
        }
        LayerSpec::Sigmoid => 1.0 / (1.0 + libm::exp(-x)),
        LayerSpec::Tanh => libm::tanh(x),
        LayerSpec::Gelu => quantize::gelu(x),
        _ => x,
    }
}

/// Quantize `mlp` with ranges observed on `calibration` (normalized rows).
pub fn quantize(mlp: &Mlp, calibration: &[f32]) -> Result<Quantized> {
    quantize_from(mlp, calibration, asymmetric(Range::of(calibration)))
}

/// [`quantize`] with the input's quantization given: a head reads the
/// int8 tensor of the layers before it as it is.
pub fn quantize_from(
    mlp: &Mlp,
    calibration: &[f32],
    input_quant: QuantParams,
) -> Result<Quantized> {
    if calibration.is_empty() {
        bail!("no calibration data");
    }
    let trace = mlp.trace(calibration)?;
    let mut current = input_quant;
    let mut slots = [None::<QuantParams>; runtime::format::MAX_SKIP_SLOTS];
    let mut layers = Vec::new();

    for (i, layer) in mlp.layers.iter().enumerate() {
        let followed_by_relu = matches!(
            mlp.layers.get(i + 1),
            Some(Layer::Op(LayerSpec::Relu | LayerSpec::Relu6))
        );
        let observed = |index: usize| asymmetric(Range::of(&trace[index]));
        match layer {
            Layer::Dense {
                inputs,
                weights,
                bias,
                ..
            } => {
                let out = observed(if followed_by_relu { i + 1 } else { i });
                layers.push(blob::Layer::DenseI8(quantize::dense(
                    weights,
                    bias,
                    *inputs,
                    current,
                    |_| f64::from(out.scale),
                    out.zero_point,
                    &format!("layer {i}: requantization"),
                )?));
                current = out;
            }
            Layer::Op(LayerSpec::Softmax) => {
                let table = quantize::exp_table(f64::from(current.scale));
                layers.push(blob::Layer::SoftmaxI8(le_bytes(&table)));
                current = SOFTMAX_OUTPUT;
            }
            Layer::Op(LayerSpec::Save { slot }) => {
                slots[*slot as usize] = Some(current);
                layers.push(blob::Layer::SaveSkip(*slot));
            }
            Layer::Op(LayerSpec::Add { slot }) => {
                let Some(saved) = slots[*slot as usize] else {
                    bail!("layer {i}: add {slot} before save {slot}")
                };
                let out = observed(i);
                layers.push(blob::Layer::AddSkipI8 {
                    slot: *slot,
                    input: rescale_to(current, out, "residual input")?,
                    skip: rescale_to(saved, out, "residual skip")?,
                    output_zero_point: out.zero_point,
                });
                current = out;
            }
            Layer::Op(op @ (LayerSpec::Dense { .. } | LayerSpec::Recurrent { .. })) => {
                bail!("layer {i}: `{op}` cannot be quantized as a dense stack's layer")
            }
            Layer::Op(op) => {
                // ReLU (ReLU6) after a dense layer keeps the dense output's
                // parameters (already calibrated on the ReLU's range).
                let prev_is_dense = i > 0 && matches!(mlp.layers[i - 1], Layer::Dense { .. });
                let out = if matches!(op, LayerSpec::Relu | LayerSpec::Relu6) && prev_is_dense {
                    current
                } else {
                    observed(i)
                };
                let table = quantize::table(|x| activation(op, x), current, out);
                layers.push(blob::Layer::TableI8(le_bytes(&table)));
                current = out;
            }
        }
    }
    Ok(Quantized {
        input_quant,
        output_quant: current,
        layers,
    })
}
