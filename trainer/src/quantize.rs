//! Post-training quantization: calibrated int8 activations, per-channel int8
//! weights, integer-only requantization.
//!
//! Ranges come from running the trained f32 model on training rows and taking
//! each tensor's min and max (widened to include 0, so real zero is exact). A
//! dense layer followed by ReLU takes the ReLU's output range, so its
//! negative outputs saturate to the zero point and the int8 ReLU is a no-op
//! instead of wasting half the codes. Elementwise activations become 256-entry
//! tables computed here in f64 (`libm`, so every machine writes the same table).

use anyhow::{bail, Result};
use runtime::format::Rescale;
use runtime::quant::quantize_multiplier;
use runtime::QuantParams;

use crate::spec::LayerSpec;
use crate::train::{Layer, Mlp};

/// One int8 layer, parameters owned.
#[derive(Debug, Clone)]
pub enum QLayer {
    /// Fully connected, per-channel requantization.
    Dense {
        inputs: usize,
        outputs: usize,
        weights: Vec<i8>,
        bias: Vec<i32>,
        multiplier: Vec<i32>,
        shift: Vec<u8>,
        output_zero_point: i8,
    },
    /// Elementwise lookup `y = table[x + 128]`.
    Table(Vec<i8>),
    /// Softmax exp table (Q15), output scale 1/256, zero point -128.
    Softmax(Vec<u16>),
    /// Save to a skip slot.
    Save(u8),
    /// Residual add.
    Add {
        slot: u8,
        input: Rescale,
        skip: Rescale,
        output_zero_point: i8,
    },
}

/// An int8 model ready to encode.
#[derive(Debug, Clone)]
pub struct QuantizedMlp {
    /// Quantization of the normalized input.
    pub input_quant: QuantParams,
    /// Quantization of the output.
    pub output_quant: QuantParams,
    /// Layers in order.
    pub layers: Vec<QLayer>,
}

/// Affine int8 parameters covering `[min, max]` (widened to include 0).
pub fn params_for_range(min: f32, max: f32) -> QuantParams {
    let (min, max) = (f64::from(min.min(0.0)), f64::from(max.max(0.0)));
    let span = max - min;
    let scale = if span.is_finite() && span > 0.0 {
        (span / 255.0) as f32
    } else {
        1.0
    };
    let zero_point = libm::round(-128.0 - min / f64::from(scale)).clamp(-128.0, 127.0) as i8;
    QuantParams { scale, zero_point }
}

fn range(values: &[f32]) -> (f32, f32) {
    values
        .iter()
        .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

fn quantize(value: f64, q: QuantParams) -> i8 {
    (libm::round(value / f64::from(q.scale)) + f64::from(q.zero_point)).clamp(-128.0, 127.0) as i8
}

fn dequantize(q: i8, p: QuantParams) -> f64 {
    f64::from(p.scale) * (f64::from(q) - f64::from(p.zero_point))
}

fn rescale_to(from: QuantParams, to: QuantParams) -> Result<Rescale> {
    let Some((multiplier, shift)) =
        quantize_multiplier(f64::from(from.scale) / f64::from(to.scale))
    else {
        bail!(
            "scale ratio {} / {} cannot be represented",
            from.scale,
            to.scale
        );
    };
    Ok(Rescale {
        zero_point: from.zero_point,
        multiplier,
        shift,
    })
}

fn activation(op: &LayerSpec, x: f64) -> f64 {
    match op {
        LayerSpec::Relu => x.max(0.0),
        LayerSpec::LeakyRelu { alpha } => {
            if x < 0.0 {
                x * f64::from(*alpha)
            } else {
                x
            }
        }
        LayerSpec::Sigmoid => 1.0 / (1.0 + libm::exp(-x)),
        LayerSpec::Tanh => libm::tanh(x),
        LayerSpec::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        _ => x,
    }
}

/// Quantize `mlp` with ranges observed on `calibration` (normalized rows).
pub fn quantize_mlp(mlp: &Mlp, calibration: &[f32]) -> Result<QuantizedMlp> {
    if calibration.is_empty() {
        bail!("no calibration data");
    }
    let trace = mlp.trace(calibration)?;
    let (lo, hi) = range(calibration);
    let input_quant = params_for_range(lo, hi);
    let mut current = input_quant;
    let mut slots = [None::<QuantParams>; runtime::format::MAX_SKIP_SLOTS];
    let mut layers = Vec::new();

    for (i, layer) in mlp.layers.iter().enumerate() {
        let followed_by_relu = matches!(mlp.layers.get(i + 1), Some(Layer::Op(LayerSpec::Relu)));
        let observed = |index: usize| {
            let (lo, hi) = range(&trace[index]);
            params_for_range(lo, hi)
        };
        match layer {
            Layer::Dense {
                inputs,
                outputs,
                weights,
                bias,
            } => {
                let out = observed(if followed_by_relu { i + 1 } else { i });
                let mut qw = Vec::with_capacity(weights.len());
                let (mut qb, mut mult, mut shift) = (Vec::new(), Vec::new(), Vec::new());
                for (row, &b) in weights.chunks_exact(*inputs).zip(bias) {
                    let amax = row.iter().fold(0.0f32, |m, &w| m.max(w.abs()));
                    let w_scale = if amax > 0.0 {
                        f64::from(amax) / 127.0
                    } else {
                        1.0
                    };
                    let row_q: Vec<i8> = row
                        .iter()
                        .map(|&w| libm::round(f64::from(w) / w_scale).clamp(-127.0, 127.0) as i8)
                        .collect();
                    let acc_scale = f64::from(current.scale) * w_scale;
                    let sum_w: i64 = row_q.iter().map(|&w| i64::from(w)).sum();
                    let folded = libm::round(f64::from(b) / acc_scale) as i64
                        - i64::from(current.zero_point) * sum_w;
                    qb.push(folded.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
                    let Some((m, s)) = quantize_multiplier(acc_scale / f64::from(out.scale)) else {
                        bail!("layer {i}: requantization ratio out of range");
                    };
                    mult.push(m);
                    shift.push(s);
                    qw.extend(row_q);
                }
                layers.push(QLayer::Dense {
                    inputs: *inputs,
                    outputs: *outputs,
                    weights: qw,
                    bias: qb,
                    multiplier: mult,
                    shift,
                    output_zero_point: out.zero_point,
                });
                current = out;
            }
            Layer::Op(LayerSpec::Softmax) => {
                let table = (0..256)
                    .map(|d| {
                        libm::round(32768.0 * libm::exp(-f64::from(current.scale) * d as f64))
                            as u16
                    })
                    .collect();
                layers.push(QLayer::Softmax(table));
                current = QuantParams {
                    scale: 1.0 / 256.0,
                    zero_point: -128,
                };
            }
            Layer::Op(LayerSpec::Save { slot }) => {
                slots[*slot as usize] = Some(current);
                layers.push(QLayer::Save(*slot));
            }
            Layer::Op(LayerSpec::Add { slot }) => {
                let Some(saved) = slots[*slot as usize] else {
                    bail!("layer {i}: add {slot} before save {slot}")
                };
                let out = observed(i);
                layers.push(QLayer::Add {
                    slot: *slot,
                    input: rescale_to(current, out)?,
                    skip: rescale_to(saved, out)?,
                    output_zero_point: out.zero_point,
                });
                current = out;
            }
            Layer::Op(LayerSpec::Dense { .. }) => {
                bail!("layer {i}: dense layer without parameters")
            }
            Layer::Op(op) => {
                // ReLU after a dense layer keeps the dense output's parameters
                // (already calibrated on the ReLU's range).
                let prev_is_dense = i > 0 && matches!(mlp.layers[i - 1], Layer::Dense { .. });
                let out = if matches!(op, LayerSpec::Relu) && prev_is_dense {
                    current
                } else {
                    observed(i)
                };
                let table = (-128i32..=127)
                    .map(|q| quantize(activation(op, dequantize(q as i8, current)), out))
                    .collect();
                layers.push(QLayer::Table(table));
                current = out;
            }
        }
    }
    Ok(QuantizedMlp {
        input_quant,
        output_quant: current,
        layers,
    })
}
