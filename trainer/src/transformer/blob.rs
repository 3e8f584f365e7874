//! Layers that own their parameter bytes, and the f32 blob of a transformer.
//!
//! [`LayerDef`] borrows its arrays; [`OwnedLayer`] holds them so a model can
//! be assembled first and encoded after (with the runtime's own encoder,
//! which also computes the arena size).

use anyhow::{anyhow, Result};
use runtime::format::{
    self, Activation, DenseI8Params, LayerDef, ModelHeader, Numeric, Position, QuantParams, Rescale,
};

use crate::transformer::model::{rope_table, sinusoidal_table, Transformer, LN_EPS};
use crate::transformer::spec::{PoolKind, PositionKind};

/// Little-endian bytes of f32 values.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Little-endian bytes of i32 values.
pub fn i32_bytes(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Little-endian bytes of i16 values.
pub fn i16_bytes(values: &[i16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Bytes of i8 values.
pub fn i8_bytes(values: &[i8]) -> Vec<u8> {
    values.iter().map(|&v| v as u8).collect()
}

/// An int8 dense map with owned arrays ([`DenseI8Params`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedDense {
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
    /// `outputs x inputs` i8.
    pub weights: Vec<u8>,
    /// `outputs` i32 (LE), input zero point folded in.
    pub bias: Vec<u8>,
    /// `outputs` i32 (LE).
    pub multiplier: Vec<u8>,
    /// `outputs` shifts.
    pub shift: Vec<u8>,
    /// Output zero point.
    pub output_zero_point: i8,
}

impl OwnedDense {
    fn params(&self) -> DenseI8Params<'_> {
        DenseI8Params {
            weights: &self.weights,
            bias: &self.bias,
            multiplier: &self.multiplier,
            shift: &self.shift,
            output_zero_point: self.output_zero_point,
        }
    }
}

/// A [`LayerDef`] with owned parameter bytes (only the kinds transformers use).
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedLayer {
    /// [`LayerDef::Tokens`].
    Tokens { tokens: u32, causal: bool },
    /// [`LayerDef::DenseF32`].
    DenseF32 {
        inputs: u32,
        outputs: u32,
        weights: Vec<u8>,
        bias: Vec<u8>,
    },
    /// [`LayerDef::ActivationF32`].
    Activation(Activation),
    /// [`LayerDef::DenseI8`].
    DenseI8(OwnedDense),
    /// [`LayerDef::TableI8`].
    TableI8(Vec<u8>),
    /// [`LayerDef::SoftmaxI8`].
    SoftmaxI8(Vec<u8>),
    /// [`LayerDef::SaveSkip`].
    SaveSkip(u8),
    /// [`LayerDef::AddSkipF32`].
    AddSkipF32(u8),
    /// [`LayerDef::AddSkipI8`].
    AddSkipI8 {
        slot: u8,
        input: Rescale,
        skip: Rescale,
        output_zero_point: i8,
    },
    /// [`LayerDef::EmbeddingF32`].
    EmbeddingF32 {
        vocab: u32,
        dim: u32,
        table: Vec<u8>,
    },
    /// [`LayerDef::EmbeddingI8`].
    EmbeddingI8 {
        vocab: u32,
        dim: u32,
        table: Vec<u8>,
    },
    /// [`LayerDef::AddTableF32`].
    AddTableF32(Vec<u8>),
    /// [`LayerDef::AddTableI8`].
    AddTableI8 {
        input: Rescale,
        table: Vec<u8>,
        output_zero_point: i8,
    },
    /// [`LayerDef::LayerNormF32`].
    LayerNormF32 { dim: u32, eps: f32, params: Vec<u8> },
    /// [`LayerDef::LayerNormI8`].
    LayerNormI8 {
        dim: u32,
        eps: u32,
        params: Vec<u8>,
        output_zero_point: i8,
    },
    /// [`LayerDef::AttentionF32`].
    AttentionF32 {
        dim: u32,
        heads: u32,
        position: Position,
        params: Vec<u8>,
    },
    /// [`LayerDef::AttentionI8`].
    AttentionI8 {
        dim: u32,
        heads: u32,
        position: Position,
        qkv: OwnedDense,
        score: Rescale,
        exp_table: Vec<u8>,
        position_table: Vec<u8>,
        context: Rescale,
        out: OwnedDense,
    },
    /// [`LayerDef::Pool`].
    Pool(format::PoolKind),
    /// [`LayerDef::ClassToken`].
    ClassToken(Vec<u8>),
}

impl OwnedLayer {
    /// The borrowed definition the encoder takes.
    pub fn def(&self) -> LayerDef<'_> {
        match self {
            OwnedLayer::Tokens { tokens, causal } => LayerDef::Tokens {
                tokens: *tokens,
                causal: *causal,
            },
            OwnedLayer::DenseF32 {
                inputs,
                outputs,
                weights,
                bias,
            } => LayerDef::DenseF32 {
                inputs: *inputs,
                outputs: *outputs,
                weights,
                bias,
            },
            OwnedLayer::Activation(a) => LayerDef::ActivationF32(*a),
            OwnedLayer::DenseI8(d) => LayerDef::DenseI8 {
                inputs: d.inputs as u32,
                outputs: d.outputs as u32,
                weights: &d.weights,
                bias: &d.bias,
                multiplier: &d.multiplier,
                shift: &d.shift,
                output_zero_point: d.output_zero_point,
            },
            OwnedLayer::TableI8(table) => LayerDef::TableI8 { table },
            OwnedLayer::SoftmaxI8(exp_table) => LayerDef::SoftmaxI8 { exp_table },
            OwnedLayer::SaveSkip(slot) => LayerDef::SaveSkip { slot: *slot },
            OwnedLayer::AddSkipF32(slot) => LayerDef::AddSkipF32 { slot: *slot },
            OwnedLayer::AddSkipI8 {
                slot,
                input,
                skip,
                output_zero_point,
            } => LayerDef::AddSkipI8 {
                slot: *slot,
                input: *input,
                skip: *skip,
                output_zero_point: *output_zero_point,
            },
            OwnedLayer::EmbeddingF32 { vocab, dim, table } => LayerDef::EmbeddingF32 {
                vocab: *vocab,
                dim: *dim,
                table,
            },
            OwnedLayer::EmbeddingI8 { vocab, dim, table } => LayerDef::EmbeddingI8 {
                vocab: *vocab,
                dim: *dim,
                table,
            },
            OwnedLayer::AddTableF32(table) => LayerDef::AddTableF32 { table },
            OwnedLayer::AddTableI8 {
                input,
                table,
                output_zero_point,
            } => LayerDef::AddTableI8 {
                input: *input,
                table,
                output_zero_point: *output_zero_point,
            },
            OwnedLayer::LayerNormF32 { dim, eps, params } => LayerDef::LayerNormF32 {
                dim: *dim,
                eps: *eps,
                params,
            },
            OwnedLayer::LayerNormI8 {
                dim,
                eps,
                params,
                output_zero_point,
            } => LayerDef::LayerNormI8 {
                dim: *dim,
                eps: *eps,
                params,
                output_zero_point: *output_zero_point,
            },
            OwnedLayer::AttentionF32 {
                dim,
                heads,
                position,
                params,
            } => LayerDef::AttentionF32 {
                dim: *dim,
                heads: *heads,
                position: *position,
                params,
            },
            OwnedLayer::AttentionI8 {
                dim,
                heads,
                position,
                qkv,
                score,
                exp_table,
                position_table,
                context,
                out,
            } => LayerDef::AttentionI8 {
                dim: *dim,
                heads: *heads,
                position: *position,
                qkv: qkv.params(),
                score: *score,
                exp_table,
                position_table,
                context: *context,
                out: out.params(),
            },
            OwnedLayer::Pool(kind) => LayerDef::Pool { kind: *kind },
            OwnedLayer::ClassToken(vector) => LayerDef::ClassToken { vector },
        }
    }
}

/// The runtime's position mode for a spec's.
pub fn position_mode(p: PositionKind) -> Position {
    match p {
        PositionKind::Relative => Position::RelativeBias,
        PositionKind::Rope => Position::Rope,
        PositionKind::Sinusoidal | PositionKind::None => Position::None,
    }
}

/// Encode a model: header fields plus owned layers, via `runtime::encode`.
pub fn encode(
    t: &Transformer,
    quant: Option<(QuantParams, QuantParams)>,
    layers: &[OwnedLayer],
) -> Result<Vec<u8>> {
    let offset = f32_bytes(&t.normalization.offset);
    let scale = f32_bytes(&t.normalization.scale);
    let output_len = match t.config.pool {
        PoolKind::Causal => t.config.tokens * t.config.outputs,
        _ => t.config.outputs,
    };
    let header = ModelHeader {
        numeric: if quant.is_some() {
            Numeric::Int8
        } else {
            Numeric::F32
        },
        input_len: t.config.input_len() as u32,
        output_len: output_len as u32,
        arena_bytes: 0,
        layer_count: 0,
        input_offset: &offset,
        input_scale: &scale,
        input_quant: quant.map(|q| q.0),
        output_quant: quant.map(|q| q.1),
    };
    let defs: Vec<LayerDef> = layers.iter().map(OwnedLayer::def).collect();
    let mut out = vec![
        0u8;
        runtime::encoded_len(header, &defs)
            .map_err(|e| anyhow!("encoding the transformer: {e}"))?
    ];
    let len = runtime::encode(header, &defs, &mut out)
        .map_err(|e| anyhow!("encoding the transformer: {e}"))?;
    out.truncate(len);
    Ok(out)
}

/// The f32 blob of a trained transformer.
pub fn f32_blob(t: &Transformer) -> Result<Vec<u8>> {
    let c = &t.config;
    let (dim, rows) = (c.dim as u32, c.rows());
    let norm = |(g, b): &(Vec<f32>, Vec<f32>)| OwnedLayer::LayerNormF32 {
        dim,
        eps: LN_EPS,
        params: f32_bytes(&[g.as_slice(), b.as_slice()].concat()),
    };
    let dense = |inputs: usize, outputs: usize, w: &[f32], b: &[f32]| OwnedLayer::DenseF32 {
        inputs: inputs as u32,
        outputs: outputs as u32,
        weights: f32_bytes(w),
        bias: f32_bytes(b),
    };
    let mut layers = vec![OwnedLayer::Tokens {
        tokens: c.tokens as u32,
        causal: c.causal(),
    }];
    layers.push(match c.vocab {
        Some(vocab) => OwnedLayer::EmbeddingF32 {
            vocab: vocab as u32,
            dim,
            table: f32_bytes(&t.input_weight),
        },
        None => dense(c.token_width, c.dim, &t.input_weight, &t.input_bias),
    });
    if c.pool == PoolKind::Cls {
        layers.push(OwnedLayer::ClassToken(f32_bytes(&t.class_token)));
    }
    if c.position == PositionKind::Sinusoidal {
        layers.push(OwnedLayer::AddTableF32(f32_bytes(&sinusoidal_table(
            rows, c.dim,
        ))));
    }
    for b in &t.blocks {
        let position_table = match c.position {
            PositionKind::Relative => b.relative_bias.clone(),
            PositionKind::Rope => rope_table(rows, c.head_dim()),
            _ => Vec::new(),
        };
        let params = [
            b.qkv_weight.as_slice(),
            &b.qkv_bias,
            &b.out_weight,
            &b.out_bias,
            &position_table,
        ]
        .concat();
        layers.extend([
            OwnedLayer::SaveSkip(0),
            norm(&b.norm1),
            OwnedLayer::AttentionF32 {
                dim,
                heads: c.heads as u32,
                position: position_mode(c.position),
                params: f32_bytes(&params),
            },
            OwnedLayer::AddSkipF32(0),
            OwnedLayer::SaveSkip(0),
            norm(&b.norm2),
            dense(c.dim, c.ff, &b.ff1_weight, &b.ff1_bias),
            OwnedLayer::Activation(Activation::Gelu),
            dense(c.ff, c.dim, &b.ff2_weight, &b.ff2_bias),
            OwnedLayer::AddSkipF32(0),
        ]);
    }
    layers.push(norm(&t.final_norm));
    match c.pool {
        PoolKind::Mean => layers.push(OwnedLayer::Pool(format::PoolKind::Mean)),
        PoolKind::Cls => layers.push(OwnedLayer::Pool(format::PoolKind::First)),
        PoolKind::Causal => {}
    }
    layers.push(dense(c.dim, c.outputs, &t.head_weight, &t.head_bias));
    if c.pool != PoolKind::Causal {
        layers.push(OwnedLayer::Activation(Activation::Softmax));
    }
    encode(t, None, &layers)
}
