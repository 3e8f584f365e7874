//! Reading blobs: postcard's wire format, decoded by hand.
//!
//! The blob types derive serde's traits, and writers encode with postcard.
//! Reading goes through [`Reader`] instead, a checked view over the bytes
//! with one method per wire type, because serde's derived decoder carries
//! code for every layer kind, while here a layer family that this build
//! leaves out (see [`Features::BUILD`]) costs no byte: its kinds are
//! rejected by tag with [`Error::UnsupportedLayer`] before any field is
//! read. A property test checks that this decoder and serde's agree on every
//! layer kind.
//!
//! The rules are postcard's: `u8`/`i8` one byte; `u16`/`u32` LEB128 varints
//! (at most 3 / 5 bytes, the last byte within range); `i32` zigzag then
//! varint; `f32` 4 bytes LE; `bool` one byte 0 or 1; `Option` a byte 0 or 1
//! then the value; enums a varint variant index then the fields in order;
//! byte strings a varint length then the bytes. Running out of bytes is
//! [`Error::Truncated`]; anything else invalid is [`Error::Malformed`].

use super::{
    Activation, Cell, DenseI8Params, Envelope, FeatureMap, Features, LayerDef, ModelHeader,
    Numeric, Padding, Pool2dKind, PoolKind, Position, QuantParams, Rescale, Window, LAYER_KINDS,
};
use crate::error::{Error, Result};

/// A cursor over postcard bytes that never reads past its slice.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// The bytes not read yet.
    pub const fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.bytes.len() {
            return Err(Error::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    /// One byte (`u8`).
    pub fn u8(&mut self) -> Result<u8> {
        let (&first, tail) = self.bytes.split_first().ok_or(Error::Truncated)?;
        self.bytes = tail;
        Ok(first)
    }

    /// One byte as `i8`.
    pub fn i8(&mut self) -> Result<i8> {
        Ok(self.u8()? as i8)
    }

    /// A `bool`: 0 or 1.
    pub fn bool(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::Malformed),
        }
    }

    /// A varint `u32` (at most 5 bytes; the 5th holds at most 4 bits).
    pub fn u32(&mut self) -> Result<u32> {
        let mut value = 0u32;
        for i in 0..5 {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return if i == 4 && byte > 0x0f {
                    Err(Error::Malformed)
                } else {
                    Ok(value)
                };
            }
        }
        Err(Error::Malformed)
    }

    /// A zigzag varint `i32`.
    pub fn i32(&mut self) -> Result<i32> {
        let n = self.u32()?;
        Ok((n >> 1) as i32 ^ -((n & 1) as i32))
    }

    /// An `f32`, 4 bytes little-endian.
    pub fn f32(&mut self) -> Result<f32> {
        match *self.take(4)? {
            [a, b, c, d] => Ok(f32::from_le_bytes([a, b, c, d])),
            _ => Err(Error::Truncated),
        }
    }

    /// A byte string: varint length, then the bytes (borrowed).
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.u32()?;
        self.take(len as usize)
    }

    /// An `Option` tag: whether a value follows.
    fn some(&mut self) -> Result<bool> {
        self.bool()
    }

    fn quant(&mut self) -> Result<Option<QuantParams>> {
        if !self.some()? {
            return Ok(None);
        }
        Ok(Some(QuantParams {
            scale: self.f32()?,
            zero_point: self.i8()?,
        }))
    }

    fn numeric(&mut self) -> Result<Numeric> {
        match self.u32()? {
            0 => Ok(Numeric::F32),
            1 => Ok(Numeric::Int8),
            _ => Err(Error::Malformed),
        }
    }

    #[allow(dead_code)]
    fn rescale(&mut self) -> Result<Rescale> {
        Ok(Rescale {
            zero_point: self.i8()?,
            multiplier: self.i32()?,
            shift: self.u8()?,
        })
    }

    #[allow(dead_code)]
    fn feature_map(&mut self) -> Result<FeatureMap> {
        Ok(FeatureMap {
            height: self.u32()?,
            width: self.u32()?,
            channels: self.u32()?,
        })
    }

    #[allow(dead_code)]
    fn window(&mut self) -> Result<Window> {
        Ok(Window {
            kernel_h: self.u32()?,
            kernel_w: self.u32()?,
            stride_h: self.u32()?,
            stride_w: self.u32()?,
            dilation_h: self.u32()?,
            dilation_w: self.u32()?,
            padding: match self.u32()? {
                0 => Padding::Valid,
                1 => Padding::Same,
                _ => return Err(Error::Malformed),
            },
        })
    }

    #[allow(dead_code)]
    fn dense_i8(&mut self) -> Result<DenseI8Params<'a>> {
        Ok(DenseI8Params {
            weights: self.bytes()?,
            bias: self.bytes()?,
            multiplier: self.bytes()?,
            shift: self.bytes()?,
            output_zero_point: self.i8()?,
        })
    }
}

/// The envelope of `blob`, which must hold nothing after it.
pub fn envelope(blob: &[u8]) -> Result<Envelope<'_>> {
    let mut r = Reader::new(blob);
    let magic = r.take(4)?.try_into().map_err(|_| Error::Truncated)?;
    let version = r.take(2)?;
    let crc = r.take(4)?;
    let payload = r.bytes()?;
    if !r.rest().is_empty() {
        return Err(Error::Malformed);
    }
    let word = |b: &[u8]| b.iter().rev().fold(0u32, |w, &x| w << 8 | u32::from(x));
    Ok(Envelope {
        magic,
        version: word(version) as u16,
        crc: word(crc),
        payload,
    })
}

impl<'a> ModelHeader<'a> {
    /// Decode the header at the start of a payload.
    pub fn decode(r: &mut Reader<'a>) -> Result<Self> {
        Ok(ModelHeader {
            numeric: r.numeric()?,
            input_len: r.u32()?,
            output_len: r.u32()?,
            arena_bytes: r.u32()?,
            layer_count: r.u32()?,
            input_offset: r.bytes()?,
            input_scale: r.bytes()?,
            input_quant: r.quant()?,
            output_quant: r.quant()?,
        })
    }
}

impl<'a> LayerDef<'a> {
    /// Decode one layer definition (layer `at` of the model, for errors).
    ///
    /// A kind whose family or numeric path this build leaves out is
    /// [`Error::UnsupportedLayer`], named by the cargo feature it needs.
    pub fn decode(r: &mut Reader<'a>, at: u32) -> Result<Self> {
        let tag = r.u32()?;
        if tag >= LAYER_KINDS {
            return Err(Error::Malformed);
        }
        if let Some(feature) = Features::of_kind(tag).missing_from(Features::BUILD) {
            return Err(Error::UnsupportedLayer { layer: at, feature });
        }
        // Only kinds of compiled-in families get an arm (see `Features::of_kind`).
        let def = match tag {
            #[cfg(feature = "f32")]
            0 => LayerDef::DenseF32 {
                inputs: r.u32()?,
                outputs: r.u32()?,
                weights: r.bytes()?,
                bias: r.bytes()?,
            },
            #[cfg(feature = "f32")]
            1 => LayerDef::ActivationF32(match r.u32()? {
                0 => Activation::Relu,
                1 => Activation::LeakyRelu { alpha: r.f32()? },
                2 => Activation::Sigmoid,
                3 => Activation::Tanh,
                4 => Activation::Gelu,
                5 => Activation::Softmax,
                6 => Activation::Relu6,
                _ => return Err(Error::Malformed),
            }),
            #[cfg(feature = "int8")]
            2 => LayerDef::DenseI8 {
                inputs: r.u32()?,
                outputs: r.u32()?,
                weights: r.bytes()?,
                bias: r.bytes()?,
                multiplier: r.bytes()?,
                shift: r.bytes()?,
                output_zero_point: r.i8()?,
            },
            #[cfg(feature = "int8")]
            3 => LayerDef::TableI8 { table: r.bytes()? },
            #[cfg(feature = "int8")]
            4 => LayerDef::SoftmaxI8 {
                exp_table: r.bytes()?,
            },
            5 => LayerDef::SaveSkip { slot: r.u8()? },
            #[cfg(feature = "f32")]
            6 => LayerDef::AddSkipF32 { slot: r.u8()? },
            #[cfg(feature = "int8")]
            7 => LayerDef::AddSkipI8 {
                slot: r.u8()?,
                input: r.rescale()?,
                skip: r.rescale()?,
                output_zero_point: r.i8()?,
            },
            #[cfg(feature = "classical")]
            8 => LayerDef::NearestCentroidF32 {
                dim: r.u32()?,
                k: r.u32()?,
                centroids: r.bytes()?,
            },
            #[cfg(feature = "classical")]
            9 => LayerDef::SquaredErrorF32 { slot: r.u8()? },
            #[cfg(feature = "classical")]
            10 => LayerDef::IsolationForestF32 {
                inputs: r.u32()?,
                sample_size: r.u32()?,
                roots: r.bytes()?,
                nodes: r.bytes()?,
            },
            #[cfg(feature = "classical")]
            11 => LayerDef::ThresholdF32 { value: r.f32()? },
            #[cfg(all(feature = "recurrent", feature = "f32"))]
            12 => LayerDef::RecurrentF32 {
                cell: cell(r)?,
                inputs: r.u32()?,
                hidden: r.u32()?,
                params: r.bytes()?,
            },
            #[cfg(all(feature = "recurrent", feature = "int8"))]
            13 => LayerDef::RecurrentI8 {
                cell: cell(r)?,
                inputs: r.u32()?,
                hidden: r.u32()?,
                params: r.bytes()?,
                output: r.rescale()?,
                output_zero_point: r.i8()?,
            },
            #[cfg(feature = "attention")]
            14 => LayerDef::Tokens {
                tokens: r.u32()?,
                causal: r.bool()?,
            },
            #[cfg(all(feature = "attention", feature = "f32"))]
            15 => LayerDef::EmbeddingF32 {
                vocab: r.u32()?,
                dim: r.u32()?,
                table: r.bytes()?,
            },
            #[cfg(all(feature = "attention", feature = "int8"))]
            16 => LayerDef::EmbeddingI8 {
                vocab: r.u32()?,
                dim: r.u32()?,
                table: r.bytes()?,
            },
            #[cfg(all(feature = "attention", feature = "f32"))]
            17 => LayerDef::AddTableF32 { table: r.bytes()? },
            #[cfg(all(feature = "attention", feature = "int8"))]
            18 => LayerDef::AddTableI8 {
                input: r.rescale()?,
                table: r.bytes()?,
                output_zero_point: r.i8()?,
            },
            #[cfg(all(feature = "attention", feature = "f32"))]
            19 => LayerDef::LayerNormF32 {
                dim: r.u32()?,
                eps: r.f32()?,
                params: r.bytes()?,
            },
            #[cfg(all(feature = "attention", feature = "int8"))]
            20 => LayerDef::LayerNormI8 {
                dim: r.u32()?,
                eps: r.u32()?,
                params: r.bytes()?,
                output_zero_point: r.i8()?,
            },
            #[cfg(all(feature = "attention", feature = "f32"))]
            21 => LayerDef::AttentionF32 {
                dim: r.u32()?,
                heads: r.u32()?,
                position: position(r)?,
                params: r.bytes()?,
            },
            #[cfg(all(feature = "attention", feature = "int8"))]
            22 => LayerDef::AttentionI8 {
                dim: r.u32()?,
                heads: r.u32()?,
                position: position(r)?,
                qkv: r.dense_i8()?,
                score: r.rescale()?,
                exp_table: r.bytes()?,
                position_table: r.bytes()?,
                context: r.rescale()?,
                out: r.dense_i8()?,
            },
            #[cfg(feature = "attention")]
            23 => LayerDef::Pool {
                kind: match r.u32()? {
                    0 => PoolKind::Mean,
                    1 => PoolKind::First,
                    _ => return Err(Error::Malformed),
                },
            },
            #[cfg(feature = "attention")]
            24 => LayerDef::ClassToken { vector: r.bytes()? },
            #[cfg(all(feature = "conv", feature = "f32"))]
            25 => LayerDef::Conv2dF32 {
                input: r.feature_map()?,
                filters: r.u32()?,
                window: r.window()?,
                depthwise: r.bool()?,
                weights: r.bytes()?,
                bias: r.bytes()?,
            },
            #[cfg(all(feature = "conv", feature = "int8"))]
            26 => LayerDef::Conv2dI8 {
                input: r.feature_map()?,
                filters: r.u32()?,
                window: r.window()?,
                depthwise: r.bool()?,
                weights: r.bytes()?,
                bias: r.bytes()?,
                multiplier: r.bytes()?,
                shift: r.bytes()?,
                input_zero_point: r.i8()?,
                output_zero_point: r.i8()?,
            },
            #[cfg(feature = "conv")]
            27 => LayerDef::Pool2d {
                input: r.feature_map()?,
                kind: match r.u32()? {
                    0 => Pool2dKind::Max,
                    1 => Pool2dKind::Average,
                    _ => return Err(Error::Malformed),
                },
                window: r.window()?,
            },
            #[cfg(all(feature = "seq2seq", feature = "f32"))]
            28 => LayerDef::DecoderF32 {
                window: r.u32()?,
                horizon: r.u32()?,
                cell: cell(r)?,
                outputs: r.u32()?,
                hidden: r.u32()?,
                attention: r.u32()?,
                feedback: r.bytes()?,
                params: r.bytes()?,
            },
            #[cfg(all(feature = "seq2seq", feature = "int8"))]
            29 => LayerDef::DecoderI8 {
                window: r.u32()?,
                horizon: r.u32()?,
                cell: cell(r)?,
                outputs: r.u32()?,
                hidden: r.u32()?,
                attention: r.u32()?,
                feedback: r.bytes()?,
                start: r.rescale()?,
                params: r.bytes()?,
                query: r.rescale()?,
                score: r.rescale()?,
                exp_table: r.bytes()?,
                context: r.rescale()?,
                combine: r.dense_i8()?,
                tanh: r.bytes()?,
                out: r.dense_i8()?,
            },
            _ => return Err(Error::Malformed),
        };
        Ok(def)
    }
}

#[allow(dead_code)]
fn cell(r: &mut Reader<'_>) -> Result<Cell> {
    match r.u32()? {
        0 => Ok(Cell::Rnn),
        1 => Ok(Cell::Lstm),
        2 => Ok(Cell::Gru),
        _ => Err(Error::Malformed),
    }
}

#[allow(dead_code)]
fn position(r: &mut Reader<'_>) -> Result<Position> {
    match r.u32()? {
        0 => Ok(Position::None),
        1 => Ok(Position::RelativeBias),
        2 => Ok(Position::Rope),
        _ => Err(Error::Malformed),
    }
}
