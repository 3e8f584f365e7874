//! Post-training int8 quantization of a [`Transformer`], following the
//! integer contracts of `runtime::format` (`LayerNormI8`, `AttentionI8`,
//! `AddTableI8`, `EmbeddingI8`, ...).
//!
//! Ranges come from the candle model on training inputs ([`Transformer::ranges`]):
//! every stored tensor gets asymmetric per-tensor parameters from its min and
//! max; q, k, v and the attention context are symmetric (zero point 0), q
//! and k covering their values before and after RoPE (a rotation can move
//! magnitude between the two values of a pair). Weights are symmetric per
//! output channel. Inside attention:
//!
//! - the integer score `q . k` has the real unit `s_q s_k / sqrt(d)`; the
//!   relative bias is stored in that unit;
//! - the softmax exp table has a step `delta` chosen from the observed score
//!   spread (clamped to 8..=20, over 255 entries): `table[r] = 2^15 exp(-r delta)`,
//!   and `score` rescales a score difference to `r`;
//! - the weighted sum of values comes out in Q16 of `s_v` and `context`
//!   rescales it to the context's int8 scale.
//!
//! GELU is a 256-entry table (f64 `libm::erf`), the classifier's softmax a
//! `SoftmaxI8` exp table, as for MLPs.

use anyhow::{anyhow, Result};
use runtime::format::{self, Rescale};
use runtime::quant::quantize_multiplier;
use runtime::QuantParams;

use crate::quantize::params_for_range;
use crate::transformer::blob::{
    i16_bytes, i32_bytes, i8_bytes, position_mode, OwnedDense, OwnedLayer,
};
use crate::transformer::model::{rope_table, sinusoidal_table, Range, Ranges, Transformer, LN_EPS};
use crate::transformer::spec::{PoolKind, PositionKind};

/// An int8 transformer ready to encode.
#[derive(Debug, Clone)]
pub struct QuantizedTransformer {
    /// Quantization of the normalized input.
    pub input_quant: QuantParams,
    /// Quantization of the output.
    pub output_quant: QuantParams,
    /// Layers in order.
    pub layers: Vec<OwnedLayer>,
}

fn asymmetric(r: Range) -> QuantParams {
    params_for_range(r.lo, r.hi)
}

/// Symmetric scale covering `abs_max` with +-127.
fn symmetric(abs_max: f32) -> f64 {
    if abs_max > 0.0 && abs_max.is_finite() {
        f64::from(abs_max) / 127.0
    } else {
        1.0
    }
}

fn round_i32(v: f64) -> i32 {
    libm::round(v).clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

fn quantize_value(v: f64, q: QuantParams) -> i8 {
    (libm::round(v / f64::from(q.scale)) + f64::from(q.zero_point)).clamp(-128.0, 127.0) as i8
}

fn multiplier(ratio: f64, what: &str) -> Result<(i32, u8)> {
    quantize_multiplier(ratio)
        .ok_or_else(|| anyhow!("{what}: scale ratio {ratio} cannot be represented"))
}

fn rescale(ratio: f64, zero_point: i8, what: &str) -> Result<Rescale> {
    let (multiplier, shift) = multiplier(ratio, what)?;
    Ok(Rescale {
        zero_point,
        multiplier,
        shift,
    })
}

/// Per-row symmetric weights; each output row `r` goes to scale `out_scale(r)`
/// and zero point `out_zero_point`.
fn dense(
    weights: &[f32],
    bias: &[f32],
    inputs: usize,
    input: QuantParams,
    out_scale: impl Fn(usize) -> f64,
    out_zero_point: i8,
    what: &str,
) -> Result<OwnedDense> {
    let outputs = bias.len();
    let (mut w, mut b, mut m, mut s) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (r, row) in weights.chunks_exact(inputs).enumerate() {
        let w_scale = symmetric(row.iter().fold(0.0f32, |a, &v| a.max(v.abs())));
        let q: Vec<i8> = row
            .iter()
            .map(|&v| libm::round(f64::from(v) / w_scale).clamp(-127.0, 127.0) as i8)
            .collect();
        let acc_scale = f64::from(input.scale) * w_scale;
        let sum: i64 = q.iter().map(|&v| i64::from(v)).sum();
        let folded = libm::round(f64::from(bias[r]) / acc_scale)
            - (i64::from(input.zero_point) * sum) as f64;
        b.push(round_i32(folded));
        let (mm, ss) = multiplier(acc_scale / out_scale(r), what)?;
        m.push(mm);
        s.push(ss);
        w.extend(q);
    }
    Ok(OwnedDense {
        inputs,
        outputs,
        weights: i8_bytes(&w),
        bias: i32_bytes(&b),
        multiplier: i32_bytes(&m),
        shift: s,
        output_zero_point: out_zero_point,
    })
}

fn layer_norm(
    (gamma, beta): &(Vec<f32>, Vec<f32>),
    input: QuantParams,
    output: QuantParams,
) -> OwnedLayer {
    let dim = gamma.len();
    let s_out = f64::from(output.scale);
    let g: Vec<i32> = gamma
        .iter()
        .map(|&v| round_i32(f64::from(v) / s_out * 4096.0))
        .collect();
    let b: Vec<i32> = beta
        .iter()
        .map(|&v| round_i32(f64::from(v) / s_out * 16_777_216.0))
        .collect();
    let eps = f64::from(LN_EPS) * (dim * dim) as f64 / f64::from(input.scale).powi(2);
    OwnedLayer::LayerNormI8 {
        dim: dim as u32,
        eps: libm::round(eps).clamp(0.0, f64::from(u32::MAX)) as u32,
        params: i32_bytes(&[g, b].concat()),
        output_zero_point: output.zero_point,
    }
}

fn add_skip(input: QuantParams, saved: QuantParams, output: QuantParams) -> Result<OwnedLayer> {
    let s = f64::from(output.scale);
    Ok(OwnedLayer::AddSkipI8 {
        slot: 0,
        input: rescale(
            f64::from(input.scale) / s,
            input.zero_point,
            "residual input",
        )?,
        skip: rescale(
            f64::from(saved.scale) / s,
            saved.zero_point,
            "residual skip",
        )?,
        output_zero_point: output.zero_point,
    })
}

/// The softmax / attention exp table: `2^15 exp(-step r)`, u16 LE.
fn exp_table(step: f64) -> Vec<u8> {
    (0..256)
        .flat_map(|r| (libm::round(32768.0 * libm::exp(-step * f64::from(r))) as u16).to_le_bytes())
        .collect()
}

/// Quantize with ranges measured on `calibration` (raw inputs, `n x input_len`).
pub fn quantize(t: &Transformer, calibration: &[f32]) -> Result<QuantizedTransformer> {
    let ranges = t.ranges(calibration)?;
    quantize_with(t, &ranges)
}

/// Quantize with given ranges.
pub fn quantize_with(t: &Transformer, ranges: &Ranges) -> Result<QuantizedTransformer> {
    let c = &t.config;
    let (dim, rows, d) = (c.dim, c.rows(), c.head_dim());
    let mut layers = vec![OwnedLayer::Tokens {
        tokens: c.tokens as u32,
        causal: c.causal(),
    }];
    // Token ids are quantized with scale 1 and zero point 0 (the embedding's contract).
    let input_quant = match c.vocab {
        Some(_) => QuantParams {
            scale: 1.0,
            zero_point: 0,
        },
        None => asymmetric(ranges.input),
    };
    let embedded = asymmetric(ranges.embedded);
    layers.push(match c.vocab {
        Some(vocab) => OwnedLayer::EmbeddingI8 {
            vocab: vocab as u32,
            dim: dim as u32,
            table: i8_bytes(
                &t.input_weight
                    .iter()
                    .map(|&v| quantize_value(f64::from(v), embedded))
                    .collect::<Vec<_>>(),
            ),
        },
        None => OwnedLayer::DenseI8(dense(
            &t.input_weight,
            &t.input_bias,
            c.token_width,
            input_quant,
            |_| f64::from(embedded.scale),
            embedded.zero_point,
            "token projection",
        )?),
    });
    if c.pool == PoolKind::Cls {
        let q: Vec<i8> = t
            .class_token
            .iter()
            .map(|&v| quantize_value(f64::from(v), embedded))
            .collect();
        layers.push(OwnedLayer::ClassToken(i8_bytes(&q)));
    }
    let mut current = embedded;
    if c.position == PositionKind::Sinusoidal {
        let out = asymmetric(ranges.positioned);
        let table: Vec<i16> = sinusoidal_table(rows, dim)
            .iter()
            .map(|&v| {
                libm::round(f64::from(v) / f64::from(out.scale)).clamp(-32768.0, 32767.0) as i16
            })
            .collect();
        layers.push(OwnedLayer::AddTableI8 {
            input: rescale(
                f64::from(current.scale) / f64::from(out.scale),
                current.zero_point,
                "positions",
            )?,
            table: i16_bytes(&table),
            output_zero_point: out.zero_point,
        });
        current = out;
    }
    for (b, r) in t.blocks.iter().zip(&ranges.blocks) {
        let saved = current;
        layers.push(OwnedLayer::SaveSkip(0));
        let norm1 = asymmetric(r.norm1);
        layers.push(layer_norm(&b.norm1, current, norm1));

        let (s_q, s_k, s_v) = (
            symmetric(r.q.abs_max()),
            symmetric(r.k.abs_max()),
            symmetric(r.v.abs_max()),
        );
        let qkv = dense(
            &b.qkv_weight,
            &b.qkv_bias,
            dim,
            norm1,
            |row| match row / dim {
                0 => s_q,
                1 => s_k,
                _ => s_v,
            },
            0,
            "attention qkv",
        )?;
        let score_unit = s_q * s_k / (d as f64).sqrt();
        let step = f64::from(r.score_spread).clamp(8.0, 20.0) / 255.0;
        let position_table = match c.position {
            PositionKind::Relative => i32_bytes(
                &b.relative_bias
                    .iter()
                    .map(|&v| round_i32(f64::from(v) / score_unit))
                    .collect::<Vec<_>>(),
            ),
            PositionKind::Rope => i16_bytes(
                &rope_table(rows, d)
                    .iter()
                    .map(|&v| libm::round(f64::from(v) * 16384.0) as i16)
                    .collect::<Vec<_>>(),
            ),
            _ => Vec::new(),
        };
        let s_ctx = symmetric(r.context.abs_max());
        let attention = asymmetric(r.attention);
        let out = dense(
            &b.out_weight,
            &b.out_bias,
            dim,
            QuantParams {
                scale: s_ctx as f32,
                zero_point: 0,
            },
            |_| f64::from(attention.scale),
            attention.zero_point,
            "attention output",
        )?;
        layers.push(OwnedLayer::AttentionI8 {
            dim: dim as u32,
            heads: c.heads as u32,
            position: position_mode(c.position),
            qkv,
            score: rescale(score_unit / step, 0, "attention scores")?,
            exp_table: exp_table(step),
            position_table,
            context: rescale(s_v / 65536.0 / s_ctx, 0, "attention context")?,
            out,
        });
        let residual1 = asymmetric(r.residual1);
        layers.push(add_skip(attention, saved, residual1)?);

        layers.push(OwnedLayer::SaveSkip(0));
        let norm2 = asymmetric(r.norm2);
        layers.push(layer_norm(&b.norm2, residual1, norm2));
        let ff1 = asymmetric(r.ff1);
        layers.push(OwnedLayer::DenseI8(dense(
            &b.ff1_weight,
            &b.ff1_bias,
            dim,
            norm2,
            |_| f64::from(ff1.scale),
            ff1.zero_point,
            "feed-forward 1",
        )?));
        let gelu = asymmetric(r.gelu);
        let table: Vec<i8> = (-128i32..=127)
            .map(|q| {
                let x = f64::from(ff1.scale) * f64::from(q - i32::from(ff1.zero_point));
                let y = 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
                quantize_value(y, gelu)
            })
            .collect();
        layers.push(OwnedLayer::TableI8(i8_bytes(&table)));
        let ff2 = asymmetric(r.ff2);
        layers.push(OwnedLayer::DenseI8(dense(
            &b.ff2_weight,
            &b.ff2_bias,
            c.ff,
            gelu,
            |_| f64::from(ff2.scale),
            ff2.zero_point,
            "feed-forward 2",
        )?));
        let residual2 = asymmetric(r.residual2);
        layers.push(add_skip(ff2, residual1, residual2)?);
        current = residual2;
    }
    let final_norm = asymmetric(ranges.final_norm);
    layers.push(layer_norm(&t.final_norm, current, final_norm));
    match c.pool {
        PoolKind::Mean => layers.push(OwnedLayer::Pool(format::PoolKind::Mean)),
        PoolKind::Cls => layers.push(OwnedLayer::Pool(format::PoolKind::First)),
        PoolKind::Causal => {}
    }
    let head = asymmetric(ranges.head);
    layers.push(OwnedLayer::DenseI8(dense(
        &t.head_weight,
        &t.head_bias,
        dim,
        final_norm,
        |_| f64::from(head.scale),
        head.zero_point,
        "head",
    )?));
    let output_quant = if c.pool == PoolKind::Causal {
        head
    } else {
        layers.push(OwnedLayer::SoftmaxI8(exp_table(f64::from(head.scale))));
        QuantParams {
            scale: 1.0 / 256.0,
            zero_point: -128,
        }
    };
    Ok(QuantizedTransformer {
        input_quant,
        output_quant,
        layers,
    })
}

/// The int8 blob.
pub fn int8_blob(t: &Transformer, q: &QuantizedTransformer) -> Result<Vec<u8>> {
    crate::transformer::blob::encode(t, Some((q.input_quant, q.output_quant)), &q.layers)
}
