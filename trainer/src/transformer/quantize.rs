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
//! `SoftmaxI8` exp table, as for MLPs. The arithmetic (per-channel weights,
//! folded biases, multipliers, tables) is [`crate::quantize`]'s.

use anyhow::Result;
use runtime::format;
use runtime::QuantParams;

use crate::blob::{le_bytes, Blob, Layer};
use crate::quantize::{
    asymmetric, dense, exp_table, gelu as gelu_fn, quantize_value, rescale, rescale_to, round_i32,
    symmetric, table, SOFTMAX_OUTPUT,
};
use crate::transformer::model::{rope_table, sinusoidal_table, Ranges, Transformer, LN_EPS};
use crate::transformer::spec::{PoolKind, PositionKind};

/// An int8 transformer ready to encode.
#[derive(Debug, Clone)]
pub struct QuantizedTransformer {
    /// Quantization of the normalized input.
    pub input_quant: QuantParams,
    /// Quantization of the output.
    pub output_quant: QuantParams,
    /// Layers in order.
    pub layers: Vec<Layer>,
}

impl QuantizedTransformer {
    /// The int8 blob of `t` quantized so.
    pub fn blob(self, t: &Transformer) -> Blob {
        Blob::int8(
            t.normalization.clone(),
            (self.input_quant, self.output_quant),
            t.config.output_len(),
            self.layers,
        )
    }
}

fn layer_norm(
    (gamma, beta): &(Vec<f32>, Vec<f32>),
    input: QuantParams,
    output: QuantParams,
) -> Layer {
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
    Layer::LayerNormI8 {
        dim: dim as u32,
        eps: libm::round(eps).clamp(0.0, f64::from(u32::MAX)) as u32,
        params: le_bytes(&[g, b].concat()),
        output_zero_point: output.zero_point,
    }
}

fn add_skip(input: QuantParams, saved: QuantParams, output: QuantParams) -> Result<Layer> {
    Ok(Layer::AddSkipI8 {
        slot: 0,
        input: rescale_to(input, output, "residual input")?,
        skip: rescale_to(saved, output, "residual skip")?,
        output_zero_point: output.zero_point,
    })
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
    let mut layers = vec![Layer::Tokens {
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
        Some(vocab) => Layer::EmbeddingI8 {
            vocab: vocab as u32,
            dim: dim as u32,
            table: le_bytes(
                &t.input_weight
                    .iter()
                    .map(|&v| quantize_value(f64::from(v), embedded))
                    .collect::<Vec<_>>(),
            ),
        },
        None => Layer::DenseI8(dense(
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
        layers.push(Layer::ClassToken(le_bytes(&q)));
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
        layers.push(Layer::AddTableI8 {
            input: rescale_to(current, out, "positions")?,
            table: le_bytes(&table),
            output_zero_point: out.zero_point,
        });
        current = out;
    }
    for (b, r) in t.blocks.iter().zip(&ranges.blocks) {
        let saved = current;
        layers.push(Layer::SaveSkip(0));
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
            PositionKind::Relative => le_bytes(
                &b.relative_bias
                    .iter()
                    .map(|&v| round_i32(f64::from(v) / score_unit))
                    .collect::<Vec<_>>(),
            ),
            PositionKind::Rope => le_bytes(
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
        layers.push(Layer::AttentionI8 {
            dim: dim as u32,
            heads: c.heads as u32,
            position: c.position.runtime(),
            qkv,
            score: rescale(score_unit / step, 0, "attention scores")?,
            exp_table: le_bytes(&exp_table(step)),
            position_table,
            context: rescale(s_v / 65536.0 / s_ctx, 0, "attention context")?,
            out,
        });
        let residual1 = asymmetric(r.residual1);
        layers.push(add_skip(attention, saved, residual1)?);

        layers.push(Layer::SaveSkip(0));
        let norm2 = asymmetric(r.norm2);
        layers.push(layer_norm(&b.norm2, residual1, norm2));
        let ff1 = asymmetric(r.ff1);
        layers.push(Layer::DenseI8(dense(
            &b.ff1_weight,
            &b.ff1_bias,
            dim,
            norm2,
            |_| f64::from(ff1.scale),
            ff1.zero_point,
            "feed-forward 1",
        )?));
        let gelu = asymmetric(r.gelu);
        layers.push(Layer::TableI8(le_bytes(&table(gelu_fn, ff1, gelu))));
        let ff2 = asymmetric(r.ff2);
        layers.push(Layer::DenseI8(dense(
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
        PoolKind::Mean => layers.push(Layer::Pool(format::PoolKind::Mean)),
        PoolKind::Cls => layers.push(Layer::Pool(format::PoolKind::First)),
        PoolKind::Causal => {}
    }
    let head = asymmetric(ranges.head);
    layers.push(Layer::DenseI8(dense(
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
        layers.push(Layer::SoftmaxI8(le_bytes(&exp_table(f64::from(
            head.scale,
        )))));
        SOFTMAX_OUTPUT
    };
    Ok(QuantizedTransformer {
        input_quant,
        output_quant,
        layers,
    })
}
