//! Post-training int8 quantization of a CNN, with the affine scheme of
//! [`crate::quantize`] and the runtime's `Conv2dI8` / `Pool2d` layers.
//!
//! Ranges come from running the trained (folded) f32 model on calibration
//! rows. A convolution is a dense map per output position: its weight rows
//! (per output channel; a depthwise layer's per channel over its taps) are
//! symmetric int8, the input zero point is folded into the bias over every
//! tap ([`quantize::dense`]), since a padded tap reads the input zero point.
//! A convolution or residual add followed by ReLU or ReLU6 takes the
//! activation's range, so the activation is the saturation itself and its
//! table would be the identity: identity tables are left out. Pooling keeps
//! its input's quantization (max of codes, rounded mean of codes). The head
//! is the dense stack's quantization on the flattened map
//! ([`crate::dense::quantize::quantize_from`]).

use anyhow::{bail, Result};
use runtime::format::MAX_SKIP_SLOTS;
use runtime::QuantParams;

use crate::blob::{self, le_bytes, Blob};
use crate::cnn::model::Cnn;
use crate::cnn::spec::FrontKind;
use crate::dense::quantize::{activation, quantize_from};
use crate::dense::LayerSpec;
use crate::quantize::{self, asymmetric, rescale_to, Range};

/// `rows x cols` row-major values transposed.
fn transpose<T: Copy>(values: &[T], rows: usize, cols: usize) -> Vec<T> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| values[r * cols + c]))
        .collect()
}

/// Whether an int8 table maps every code to itself.
fn is_identity(table: &[i8]) -> bool {
    table.iter().zip(-128i16..).all(|(&t, q)| i16::from(t) == q)
}

/// The int8 blob of `cnn`, calibrated on `calibration` (normalized rows).
pub fn int8_blob(cnn: &Cnn, calibration: &[f32]) -> Result<Blob> {
    if calibration.is_empty() {
        bail!("no calibration data");
    }
    let trace = cnn.trace(calibration)?;
    let input_quant = asymmetric(Range::of(calibration));
    let mut current = input_quant;
    let mut slots = [None::<QuantParams>; MAX_SKIP_SLOTS];
    let mut layers = Vec::new();
    let front = &cnn.front;
    for (i, t) in front.iter().enumerate() {
        let l = &t.layer;
        let observed = |index: usize| asymmetric(Range::of(&trace[index]));
        // A clamping activation next: calibrate on its output.
        let clamped = matches!(
            front.get(i + 1).map(|n| n.layer.kind),
            Some(FrontKind::Op(LayerSpec::Relu | LayerSpec::Relu6))
        );
        let out_index = if clamped { i + 1 } else { i };
        match l.kind {
            FrontKind::Conv {
                depthwise,
                filters,
                window,
            } => {
                let out = observed(out_index);
                let what = format!("layer {i} `{l}`: requantization");
                let params = if depthwise {
                    // Scales per channel over the taps: channels as rows.
                    let taps = t.weights.len() / filters.max(1);
                    let rows = transpose(&t.weights, taps, filters);
                    let mut d = quantize::dense(
                        &rows,
                        &t.bias,
                        taps,
                        current,
                        |_| f64::from(out.scale),
                        out.zero_point,
                        &what,
                    )?;
                    d.weights = transpose(&d.weights, filters, taps);
                    d
                } else {
                    quantize::dense(
                        &t.weights,
                        &t.bias,
                        t.weights.len() / filters.max(1),
                        current,
                        |_| f64::from(out.scale),
                        out.zero_point,
                        &what,
                    )?
                };
                layers.push(blob::Layer::Conv2dI8 {
                    input: l.input,
                    filters: filters as u32,
                    window,
                    depthwise,
                    params,
                    input_zero_point: current.zero_point,
                });
                current = out;
            }
            FrontKind::Pool { kind, window } => layers.push(blob::Layer::Pool2d {
                input: l.input,
                kind,
                window,
            }),
            FrontKind::Op(LayerSpec::Save { slot }) => {
                slots[usize::from(slot)] = Some(current);
                layers.push(blob::Layer::SaveSkip(slot));
            }
            FrontKind::Op(LayerSpec::Add { slot }) => {
                let Some(saved) = slots[usize::from(slot)] else {
                    bail!("layer {i}: add {slot} before save {slot}")
                };
                let out = observed(out_index);
                layers.push(blob::Layer::AddSkipI8 {
                    slot,
                    input: rescale_to(current, out, "residual input")?,
                    skip: rescale_to(saved, out, "residual skip")?,
                    output_zero_point: out.zero_point,
                });
                current = out;
            }
            FrontKind::Op(op) => {
                // After a layer calibrated on its range, ReLU keeps the
                // quantization (and is the identity).
                let fused = matches!(op, LayerSpec::Relu | LayerSpec::Relu6)
                    && i > 0
                    && matches!(
                        front[i - 1].layer.kind,
                        FrontKind::Conv { .. } | FrontKind::Op(LayerSpec::Add { .. })
                    );
                let out = if fused { current } else { observed(i) };
                let table = quantize::table(|x| activation(&op, x), current, out);
                if !is_identity(&table) {
                    layers.push(blob::Layer::TableI8(le_bytes(&table)));
                }
                current = out;
            }
            FrontKind::BatchNorm => bail!("layer {i}: a trained front holds no batch norm"),
        }
    }
    let features = trace.last().map_or(calibration, Vec::as_slice);
    let head = quantize_from(&cnn.head, features, current)?;
    layers.extend(head.layers);
    Ok(Blob::int8(
        cnn.normalization.clone(),
        (input_quant, head.output_quant),
        cnn.output_len(),
        layers,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_and_identity() {
        assert_eq!(transpose(&[1, 2, 3, 4, 5, 6], 2, 3), [1, 4, 2, 5, 3, 6]);
        let identity: Vec<i8> = (-128i16..=127).map(|q| q as i8).collect();
        assert!(is_identity(&identity));
        let mut other = identity.clone();
        other[0] = -127;
        assert!(!is_identity(&other));
    }
}
