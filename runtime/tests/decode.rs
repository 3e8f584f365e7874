//! The runtime's hand decoder of postcard's wire format against serde's
//! (the writer's): for every layer kind and any field values they agree,
//! and on any bytes one succeeds exactly when the other does.

use proptest::prelude::*;
use runtime::format::{
    Activation, Cell, DenseI8Params, FeatureMap, LayerDef, ModelHeader, Numeric, Padding,
    Pool2dKind, PoolKind, Position, QuantParams, Reader, Rescale, Window, LAYER_KINDS,
};

mod common;
use common::{exported_blobs, open};

/// Field values for a layer: numbers (varint edge cases included) and byte strings.
#[derive(Debug, Clone)]
struct Fields {
    words: Vec<u32>,
    floats: Vec<f32>,
    small: Vec<u8>,
    blobs: Vec<Vec<u8>>,
}

fn fields() -> impl Strategy<Value = Fields> {
    let word = prop_oneof![
        Just(0u32),
        Just(127),
        Just(128),
        Just(16_383),
        Just(16_384),
        Just(u32::MAX),
        any::<u32>()
    ];
    (
        prop::collection::vec(word, 8),
        prop::collection::vec(any::<f32>(), 2),
        prop::collection::vec(any::<u8>(), 12),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 6),
    )
        .prop_map(|(words, floats, small, blobs)| Fields {
            words,
            floats,
            small,
            blobs,
        })
}

/// Layer kind `tag` built from `f`.
fn layer(tag: u32, f: &Fields) -> LayerDef<'_> {
    let (w, b, s) = (&f.words, &f.blobs, &f.small);
    let rescale = |i: usize| Rescale {
        zero_point: s[i] as i8,
        multiplier: w[i % 8] as i32,
        shift: s[i + 1],
    };
    let dense = |i: usize| DenseI8Params {
        weights: &b[i % 6],
        bias: &b[(i + 1) % 6],
        multiplier: &b[(i + 2) % 6],
        shift: &b[(i + 3) % 6],
        output_zero_point: s[i] as i8,
    };
    let cell = [Cell::Rnn, Cell::Lstm, Cell::Gru][w[2] as usize % 3];
    let map = FeatureMap {
        height: w[4],
        width: w[5],
        channels: w[6],
    };
    let window = Window {
        kernel_h: w[0],
        kernel_w: w[1],
        stride_h: w[2],
        stride_w: w[3],
        dilation_h: w[7],
        dilation_w: w[4],
        padding: [Padding::Valid, Padding::Same][s[6] as usize % 2],
    };
    let position = [Position::None, Position::RelativeBias, Position::Rope][w[3] as usize % 3];
    match tag {
        0 => LayerDef::DenseF32 {
            inputs: w[0],
            outputs: w[1],
            weights: &b[0],
            bias: &b[1],
        },
        1 => LayerDef::ActivationF32(match w[0] % 7 {
            0 => Activation::Relu,
            1 => Activation::LeakyRelu { alpha: f.floats[0] },
            2 => Activation::Sigmoid,
            3 => Activation::Tanh,
            4 => Activation::Gelu,
            5 => Activation::Softmax,
            _ => Activation::Relu6,
        }),
        2 => LayerDef::DenseI8 {
            inputs: w[0],
            outputs: w[1],
            weights: &b[0],
            bias: &b[1],
            multiplier: &b[2],
            shift: &b[3],
            output_zero_point: s[0] as i8,
        },
        3 => LayerDef::TableI8 { table: &b[0] },
        4 => LayerDef::SoftmaxI8 { exp_table: &b[0] },
        5 => LayerDef::SaveSkip { slot: s[0] },
        6 => LayerDef::AddSkipF32 { slot: s[0] },
        7 => LayerDef::AddSkipI8 {
            slot: s[0],
            input: rescale(1),
            skip: rescale(3),
            output_zero_point: s[5] as i8,
        },
        8 => LayerDef::NearestCentroidF32 {
            dim: w[0],
            k: w[1],
            centroids: &b[0],
        },
        9 => LayerDef::SquaredErrorF32 { slot: s[0] },
        10 => LayerDef::IsolationForestF32 {
            inputs: w[0],
            sample_size: w[1],
            roots: &b[0],
            nodes: &b[1],
        },
        11 => LayerDef::ThresholdF32 { value: f.floats[0] },
        12 => LayerDef::RecurrentF32 {
            cell,
            inputs: w[0],
            hidden: w[1],
            params: &b[0],
        },
        13 => LayerDef::RecurrentI8 {
            cell,
            inputs: w[0],
            hidden: w[1],
            params: &b[0],
            output: rescale(1),
            output_zero_point: s[3] as i8,
        },
        14 => LayerDef::Tokens {
            tokens: w[0],
            causal: s[0] % 2 == 1,
        },
        15 => LayerDef::EmbeddingF32 {
            vocab: w[0],
            dim: w[1],
            table: &b[0],
        },
        16 => LayerDef::EmbeddingI8 {
            vocab: w[0],
            dim: w[1],
            table: &b[0],
        },
        17 => LayerDef::AddTableF32 { table: &b[0] },
        18 => LayerDef::AddTableI8 {
            input: rescale(0),
            table: &b[0],
            output_zero_point: s[2] as i8,
        },
        19 => LayerDef::LayerNormF32 {
            dim: w[0],
            eps: f.floats[1],
            params: &b[0],
        },
        20 => LayerDef::LayerNormI8 {
            dim: w[0],
            eps: w[1],
            params: &b[0],
            output_zero_point: s[0] as i8,
        },
        21 => LayerDef::AttentionF32 {
            dim: w[0],
            heads: w[1],
            position,
            params: &b[0],
        },
        22 => LayerDef::AttentionI8 {
            dim: w[0],
            heads: w[1],
            position,
            qkv: dense(0),
            score: rescale(2),
            exp_table: &b[4],
            position_table: &b[5],
            context: rescale(4),
            out: dense(6),
        },
        23 => LayerDef::Pool {
            kind: [PoolKind::Mean, PoolKind::First][w[0] as usize % 2],
        },
        24 => LayerDef::ClassToken { vector: &b[0] },
        25 => LayerDef::Conv2dF32 {
            input: map,
            filters: w[3],
            window,
            depthwise: s[7] % 2 == 1,
            weights: &b[0],
            bias: &b[1],
        },
        26 => LayerDef::Conv2dI8 {
            input: map,
            filters: w[3],
            window,
            depthwise: s[7] % 2 == 1,
            weights: &b[0],
            bias: &b[1],
            multiplier: &b[2],
            shift: &b[3],
            input_zero_point: s[8] as i8,
            output_zero_point: s[9] as i8,
        },
        27 => LayerDef::Pool2d {
            input: map,
            kind: [Pool2dKind::Max, Pool2dKind::Average][s[10] as usize % 2],
            window,
        },
        28 => LayerDef::DecoderF32 {
            window: w[0],
            horizon: w[1],
            cell: [Cell::Rnn, Cell::Lstm, Cell::Gru][w[2] as usize % 3],
            outputs: w[3],
            hidden: w[4],
            attention: w[5],
            feedback: &b[0],
            params: &b[1],
        },
        29 => LayerDef::DecoderI8 {
            window: w[0],
            horizon: w[1],
            cell: [Cell::Rnn, Cell::Lstm, Cell::Gru][w[2] as usize % 3],
            outputs: w[3],
            hidden: w[4],
            attention: w[5],
            feedback: &b[0],
            start: rescale(0),
            params: &b[1],
            query: rescale(2),
            score: rescale(4),
            exp_table: &b[2],
            context: rescale(6),
            combine: dense(3),
            tanh: &b[4],
            out: dense(7),
        },
        _ => unreachable!("{tag}"),
    }
}

proptest! {
    /// Every kind, any field values: decoding serde's bytes gives the layer
    /// back (compared as bytes, so NaN fields compare too) and reads all of it.
    #[test]
    fn the_decoder_reads_what_serde_writes(tag in 0..LAYER_KINDS, f in fields()) {
        let def = layer(tag, &f);
        prop_assert_eq!(def.tag(), tag);
        let bytes = postcard::to_stdvec(&def).unwrap();
        let mut reader = Reader::new(&bytes);
        let decoded = LayerDef::decode(&mut reader, 0).unwrap();
        prop_assert!(reader.rest().is_empty());
        prop_assert_eq!(postcard::to_stdvec(&decoded).unwrap(), bytes);
    }

    /// Any bytes: the hand decoder succeeds exactly when serde does, with
    /// the same layer and the same number of bytes read.
    #[test]
    fn on_any_bytes_both_decoders_agree(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let serde = postcard::take_from_bytes::<LayerDef>(&bytes).ok();
        let mut reader = Reader::new(&bytes);
        let hand = LayerDef::decode(&mut reader, 0).ok();
        match (serde, hand) {
            (Some((a, rest)), Some(b)) => {
                prop_assert_eq!(postcard::to_stdvec(&a).unwrap(), postcard::to_stdvec(&b).unwrap());
                prop_assert_eq!(rest.len(), reader.rest().len());
            }
            (None, None) => {}
            (a, b) => prop_assert!(false, "serde {:?}, hand {:?}", a.map(|x| x.0), b),
        }
    }

    /// Any header fields round-trip too.
    #[test]
    fn headers_round_trip(f in fields(), int8 in any::<bool>()) {
        let quant = |i: usize| (f.small[i] % 2 == 1).then(|| QuantParams {
            scale: f.floats[i % 2],
            zero_point: f.small[i + 1] as i8,
        });
        let header = ModelHeader {
            numeric: if int8 { Numeric::Int8 } else { Numeric::F32 },
            input_len: f.words[0],
            output_len: f.words[1],
            arena_bytes: f.words[2],
            layer_count: f.words[3],
            input_offset: &f.blobs[0],
            input_scale: &f.blobs[1],
            input_quant: quant(0),
            output_quant: quant(2),
        };
        let bytes = postcard::to_stdvec(&header).unwrap();
        let mut reader = Reader::new(&bytes);
        let decoded = ModelHeader::decode(&mut reader).unwrap();
        prop_assert!(reader.rest().is_empty());
        prop_assert_eq!(postcard::to_stdvec(&decoded).unwrap(), bytes);
    }
}

/// Every exported blob: the hand decoder gives the layers serde gives.
#[test]
fn exported_blobs_decode_the_same() {
    for (path, blob) in exported_blobs() {
        let (_, layers) = open(&blob);
        let envelope = runtime::format::decode::envelope(&blob).unwrap();
        let mut reader = Reader::new(envelope.payload);
        ModelHeader::decode(&mut reader).unwrap();
        for (at, layer) in layers.iter().enumerate() {
            let decoded = LayerDef::decode(&mut reader, at as u32).unwrap();
            assert_eq!(
                postcard::to_stdvec(&decoded).unwrap(),
                postcard::to_stdvec(layer).unwrap(),
                "{} layer {at}",
                path.display()
            );
        }
        assert!(reader.rest().is_empty(), "{}", path.display());
    }
}

/// The encoder writes exactly `encoded_len` bytes, byte for byte what
/// postcard makes of the envelope, and the result loads: checked on every
/// exported blob, re-encoded from its parts.
#[test]
fn the_encoder_reproduces_every_exported_blob() {
    for (path, blob) in exported_blobs() {
        let (header, layers) = open(&blob);
        let len = runtime::encoded_len(header, &layers).unwrap();
        assert_eq!(len, blob.len(), "{}", path.display());
        let mut out = vec![0u8; len];
        assert_eq!(runtime::encode(header, &layers, &mut out), Ok(len));
        assert_eq!(out, blob, "{}", path.display());
        let mut short = vec![0u8; len - 1];
        assert_eq!(
            runtime::encode(header, &layers, &mut short),
            Err(runtime::Error::Truncated),
            "{}",
            path.display()
        );
    }
}
