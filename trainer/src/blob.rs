//! Model blobs: the one place the trainer writes them.
//!
//! A family assembles its model as [`Layer`]s, which own their parameter
//! bytes, and a [`Blob`] (input normalization, int8 input and output
//! quantization, output width); [`Blob::encode`] borrows them as
//! [`LayerDef`]s for `runtime::encode`, which sizes the blob exactly
//! ([`runtime::encoded_len`]) and fills in the layer count and the arena size
//! the loader's own validation computes, so an encoded model always loads.
//! Parameter arrays are little-endian bytes ([`le_bytes`]).

use anyhow::{anyhow, Result};
use runtime::format::{
    Activation, Cell, DenseI8Params, FeatureMap, LayerDef, ModelHeader, Numeric, Pool2dKind,
    PoolKind, Position, QuantParams, Rescale, Window,
};

use crate::dataset::Normalization;

/// Values stored in parameter arrays.
pub trait LeBytes: Copy {
    /// Width in bytes.
    const SIZE: usize;
    /// The little-endian bytes of one value, appended to `out`.
    fn append(self, out: &mut Vec<u8>);
}

macro_rules! le_bytes_of {
    ($($t:ty),*) => {$(
        impl LeBytes for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn append(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
le_bytes_of!(f32, i32, u32, i16, u16, i8, u8);

/// The little-endian bytes of `values`, as parameter arrays, test vectors
/// and labels store them.
pub fn le_bytes<T: LeBytes>(values: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * T::SIZE);
    for &v in values {
        v.append(&mut out);
    }
    out
}

/// An int8 dense map with owned arrays (as [`DenseI8Params`], and the
/// parameters of [`LayerDef::DenseI8`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DenseI8 {
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

impl DenseI8 {
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

/// A [`LayerDef`] that owns its parameter bytes; each variant is the
/// runtime's kind of the same name (see `runtime::format` for the layouts).
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
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
    DenseI8(DenseI8),
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
    /// [`LayerDef::NearestCentroidF32`].
    NearestCentroidF32 {
        dim: u32,
        k: u32,
        centroids: Vec<u8>,
    },
    /// [`LayerDef::SquaredErrorF32`].
    SquaredErrorF32 { slot: u8 },
    /// [`LayerDef::IsolationForestF32`].
    IsolationForestF32 {
        inputs: u32,
        sample_size: u32,
        roots: Vec<u8>,
        nodes: Vec<u8>,
    },
    /// [`LayerDef::ThresholdF32`].
    ThresholdF32 { value: f32 },
    /// [`LayerDef::RecurrentF32`].
    RecurrentF32 {
        cell: Cell,
        inputs: u32,
        hidden: u32,
        params: Vec<u8>,
    },
    /// [`LayerDef::RecurrentI8`].
    RecurrentI8 {
        cell: Cell,
        inputs: u32,
        hidden: u32,
        params: Vec<u8>,
        output: Rescale,
        output_zero_point: i8,
    },
    /// [`LayerDef::Tokens`].
    Tokens { tokens: u32, causal: bool },
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
        qkv: DenseI8,
        score: Rescale,
        exp_table: Vec<u8>,
        position_table: Vec<u8>,
        context: Rescale,
        out: DenseI8,
    },
    /// [`LayerDef::Pool`].
    Pool(PoolKind),
    /// [`LayerDef::ClassToken`].
    ClassToken(Vec<u8>),
    /// [`LayerDef::Conv2dF32`].
    Conv2dF32 {
        input: FeatureMap,
        filters: u32,
        window: Window,
        depthwise: bool,
        weights: Vec<u8>,
        bias: Vec<u8>,
    },
    /// [`LayerDef::Conv2dI8`]: the weight rows (`filters x taps`, or for a
    /// depthwise layer `taps x channels`), bias, multipliers and shifts of
    /// `params` (its `inputs` and `outputs` are not written).
    Conv2dI8 {
        input: FeatureMap,
        filters: u32,
        window: Window,
        depthwise: bool,
        params: DenseI8,
        input_zero_point: i8,
    },
    /// [`LayerDef::Pool2d`].
    Pool2d {
        input: FeatureMap,
        kind: Pool2dKind,
        window: Window,
    },
}

impl Layer {
    /// An f32 dense layer, `weights` `outputs x inputs` row-major.
    pub fn dense_f32(inputs: usize, outputs: usize, weights: &[f32], bias: &[f32]) -> Layer {
        Layer::DenseF32 {
            inputs: inputs as u32,
            outputs: outputs as u32,
            weights: le_bytes(weights),
            bias: le_bytes(bias),
        }
    }

    /// The borrowed definition the encoder takes.
    pub fn def(&self) -> LayerDef<'_> {
        match self {
            Layer::DenseF32 {
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
            Layer::Activation(a) => LayerDef::ActivationF32(*a),
            Layer::DenseI8(d) => LayerDef::DenseI8 {
                inputs: d.inputs as u32,
                outputs: d.outputs as u32,
                weights: &d.weights,
                bias: &d.bias,
                multiplier: &d.multiplier,
                shift: &d.shift,
                output_zero_point: d.output_zero_point,
            },
            Layer::TableI8(table) => LayerDef::TableI8 { table },
            Layer::SoftmaxI8(exp_table) => LayerDef::SoftmaxI8 { exp_table },
            Layer::SaveSkip(slot) => LayerDef::SaveSkip { slot: *slot },
            Layer::AddSkipF32(slot) => LayerDef::AddSkipF32 { slot: *slot },
            Layer::AddSkipI8 {
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
            Layer::NearestCentroidF32 { dim, k, centroids } => LayerDef::NearestCentroidF32 {
                dim: *dim,
                k: *k,
                centroids,
            },
            Layer::SquaredErrorF32 { slot } => LayerDef::SquaredErrorF32 { slot: *slot },
            Layer::IsolationForestF32 {
                inputs,
                sample_size,
                roots,
                nodes,
            } => LayerDef::IsolationForestF32 {
                inputs: *inputs,
                sample_size: *sample_size,
                roots,
                nodes,
            },
            Layer::ThresholdF32 { value } => LayerDef::ThresholdF32 { value: *value },
            Layer::RecurrentF32 {
                cell,
                inputs,
                hidden,
                params,
            } => LayerDef::RecurrentF32 {
                cell: *cell,
                inputs: *inputs,
                hidden: *hidden,
                params,
            },
            Layer::RecurrentI8 {
                cell,
                inputs,
                hidden,
                params,
                output,
                output_zero_point,
            } => LayerDef::RecurrentI8 {
                cell: *cell,
                inputs: *inputs,
                hidden: *hidden,
                params,
                output: *output,
                output_zero_point: *output_zero_point,
            },
            Layer::Tokens { tokens, causal } => LayerDef::Tokens {
                tokens: *tokens,
                causal: *causal,
            },
            Layer::EmbeddingF32 { vocab, dim, table } => LayerDef::EmbeddingF32 {
                vocab: *vocab,
                dim: *dim,
                table,
            },
            Layer::EmbeddingI8 { vocab, dim, table } => LayerDef::EmbeddingI8 {
                vocab: *vocab,
                dim: *dim,
                table,
            },
            Layer::AddTableF32(table) => LayerDef::AddTableF32 { table },
            Layer::AddTableI8 {
                input,
                table,
                output_zero_point,
            } => LayerDef::AddTableI8 {
                input: *input,
                table,
                output_zero_point: *output_zero_point,
            },
            Layer::LayerNormF32 { dim, eps, params } => LayerDef::LayerNormF32 {
                dim: *dim,
                eps: *eps,
                params,
            },
            Layer::LayerNormI8 {
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
            Layer::AttentionF32 {
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
            Layer::AttentionI8 {
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
            Layer::Pool(kind) => LayerDef::Pool { kind: *kind },
            Layer::ClassToken(vector) => LayerDef::ClassToken { vector },
            Layer::Conv2dF32 {
                input,
                filters,
                window,
                depthwise,
                weights,
                bias,
            } => LayerDef::Conv2dF32 {
                input: *input,
                filters: *filters,
                window: *window,
                depthwise: *depthwise,
                weights,
                bias,
            },
            Layer::Conv2dI8 {
                input,
                filters,
                window,
                depthwise,
                params,
                input_zero_point,
            } => LayerDef::Conv2dI8 {
                input: *input,
                filters: *filters,
                window: *window,
                depthwise: *depthwise,
                weights: &params.weights,
                bias: &params.bias,
                multiplier: &params.multiplier,
                shift: &params.shift,
                input_zero_point: *input_zero_point,
                output_zero_point: params.output_zero_point,
            },
            Layer::Pool2d {
                input,
                kind,
                window,
            } => LayerDef::Pool2d {
                input: *input,
                kind: *kind,
                window: *window,
            },
        }
    }
}

/// A whole model on one numeric path, ready to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    /// Raw input to model input; its width is the model's input width.
    pub normalization: Normalization,
    /// int8 models: the quantization of the normalized input and of the
    /// output; `None` for f32.
    pub quant: Option<(QuantParams, QuantParams)>,
    /// Output values.
    pub output_len: usize,
    /// Layers in order.
    pub layers: Vec<Layer>,
}

impl Blob {
    /// An f32 model.
    pub fn f32(normalization: Normalization, output_len: usize, layers: Vec<Layer>) -> Blob {
        Blob {
            normalization,
            quant: None,
            output_len,
            layers,
        }
    }

    /// An int8 model with its input and output quantization.
    pub fn int8(
        normalization: Normalization,
        (input, output): (QuantParams, QuantParams),
        output_len: usize,
        layers: Vec<Layer>,
    ) -> Blob {
        Blob {
            normalization,
            quant: Some((input, output)),
            output_len,
            layers,
        }
    }

    /// The numeric path of every layer.
    pub fn numeric(&self) -> Numeric {
        match self.quant {
            Some(_) => Numeric::Int8,
            None => Numeric::F32,
        }
    }

    /// The blob's bytes, from the runtime's own encoder.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let offset = le_bytes(&self.normalization.offset);
        let scale = le_bytes(&self.normalization.scale);
        let header = ModelHeader {
            numeric: self.numeric(),
            input_len: self.normalization.feature_count() as u32,
            output_len: self.output_len as u32,
            arena_bytes: 0,
            layer_count: 0,
            input_offset: &offset,
            input_scale: &scale,
            input_quant: self.quant.map(|q| q.0),
            output_quant: self.quant.map(|q| q.1),
        };
        let defs: Vec<LayerDef> = self.layers.iter().map(Layer::def).collect();
        let failed = |e: runtime::Error| anyhow!("encoding the model: {e}");
        let mut out = vec![0u8; runtime::encoded_len(header, &defs).map_err(failed)?];
        let len = runtime::encode(header, &defs, &mut out).map_err(failed)?;
        out.truncate(len);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_bytes_of_every_width() {
        assert_eq!(le_bytes(&[1.0f32]), 1.0f32.to_le_bytes());
        assert_eq!(le_bytes(&[-2i32, 3]), [254, 255, 255, 255, 3, 0, 0, 0]);
        assert_eq!(le_bytes(&[-1i8, 5]), [255, 5]);
        assert_eq!(le_bytes(&[0x0102u16]), [2, 1]);
        // The runtime's own f32 writer agrees.
        let mut theirs = [0u8; 8];
        runtime::format::f32_to_le_bytes(&[0.5, -3.25], &mut theirs);
        assert_eq!(le_bytes(&[0.5f32, -3.25]), theirs);
    }

    #[test]
    fn an_encoded_blob_loads_with_its_arena() {
        let blob = Blob::f32(
            Normalization::identity(2),
            2,
            vec![
                Layer::dense_f32(2, 2, &[1.0, 0.0, 0.0, 1.0], &[0.0, 0.5]),
                Layer::Activation(Activation::Relu),
            ],
        );
        let bytes = blob.encode().unwrap();
        let model = runtime::Model::from_bytes(&bytes).unwrap();
        assert_eq!((model.input_len(), model.output_len()), (2, 2));
        let mut arena = runtime::Arena::<64>::new();
        let out = model.run_f32(&[-1.0, 2.0], arena.as_mut_bytes()).unwrap();
        assert_eq!(out, [0.0, 2.5]);
    }
}
