//! Loading: the envelope, decoding, validation of every layer, and the arena
//! plan (steps 1 to 7 of the contract in the module docs of [`super`]).
//!
//! # Arena
//! `[cur | next | skip slots]` in elements of the numeric path (the two work
//! buffers are as wide as the widest tensor), then, for recurrent models and
//! transformers, the family's scratch at the next 4-byte boundary (gate
//! pre-activations, or attention's q/k/v, context and scores). The exporter
//! writes the total into the header and the loader checks it equals this.

use super::{Model, Step};
use crate::error::{Error, Result};
use crate::format::{
    checksum, decode, Features, LayerDef, ModelHeader, Numeric, QuantParams, Reader,
    FORMAT_VERSION, MAGIC, MAX_LAYERS,
};
use crate::layers::{self, check_tensor, Layer, Plan, MODEL_LEVEL};

/// A positive, finite f32, tested on its bits (no float arithmetic: an
/// int8-only build on a core without FPU links no soft-float routine).
fn is_positive_finite(x: f32) -> bool {
    let bits = x.to_bits();
    bits >> 31 == 0 && bits & 0x7f80_0000 != 0x7f80_0000 && bits != 0
}

fn check_quant(q: Option<QuantParams>) -> Result<()> {
    match q {
        Some(q) if is_positive_finite(q.scale) => Ok(()),
        _ => Err(Error::BadQuantization { layer: MODEL_LEVEL }),
    }
}

/// The checked payload of a blob (step 1 of the contract).
fn open_envelope(blob: &[u8]) -> Result<&[u8]> {
    match blob.get(..4) {
        None if MAGIC.starts_with(blob) => return Err(Error::Truncated),
        Some(m) if m == MAGIC => {}
        _ => return Err(Error::BadMagic),
    }
    let version = match blob.get(4..6) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]),
        _ => return Err(Error::Truncated),
    };
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let envelope = decode::envelope(blob)?;
    let computed = checksum(envelope.payload);
    if computed != envelope.crc {
        return Err(Error::BadCrc {
            stored: envelope.crc,
            computed,
        });
    }
    Ok(envelope.payload)
}

/// 4-byte aligned.
fn align4(bytes: usize) -> usize {
    bytes.div_ceil(4) * 4
}

impl<'a> Model<'a> {
    /// Parse and validate a blob (see the module docs for every check).
    pub fn from_bytes(blob: &'a [u8]) -> Result<Self> {
        let mut model = Model::empty();
        model.load(blob)?;
        Ok(model)
    }

    /// [`Model::from_bytes`] into an existing model, without moving a whole
    /// [`Model`] around on the stack (on a chip, keep it in a static). On
    /// error the model is left [`Model::empty`].
    pub fn load(&mut self, blob: &'a [u8]) -> Result<()> {
        let result = self.load_checked(blob);
        if result.is_err() {
            self.clear();
        }
        result
    }

    /// Back to [`Model::empty`], field by field (assigning a whole model
    /// would move about 1.5 KB through the stack).
    fn clear(&mut self) {
        self.input_len = 0;
        self.output_len = 0;
        self.input_row = 0;
        self.input_offset = None;
        self.input_scale = None;
        self.input_quant = None;
        self.output_quant = None;
        self.steps.clear();
        self.arena_bytes = 0;
        self.families.clear();
        self.features = Features::NONE;
    }

    fn load_checked(&mut self, blob: &'a [u8]) -> Result<()> {
        self.clear();
        let mut reader = Reader::new(open_envelope(blob)?);
        let header = ModelHeader::decode(&mut reader)?;
        if header.layer_count as usize > MAX_LAYERS {
            return Err(Error::TooManyLayers {
                found: header.layer_count,
                max: MAX_LAYERS as u32,
            });
        }
        // Layers are decoded one at a time as validation consumes them, so no
        // array of layer definitions ever sits on the stack.
        let defs = (0..header.layer_count).map(|at| LayerDef::decode(&mut reader, at));
        self.validate(header, defs)?;
        if !reader.rest().is_empty() {
            return Err(Error::Malformed);
        }
        if header.arena_bytes as usize != self.arena_bytes {
            return Err(Error::ArenaSizeMismatch {
                declared: header.arena_bytes,
                needed: self.arena_bytes as u32,
            });
        }
        Ok(())
    }

    /// The arena bytes a header and its layers need, with every check of
    /// [`Model::from_bytes`] except the envelope and the declared arena size.
    /// Exporters call this to fill in [`ModelHeader::arena_bytes`].
    pub fn required_arena_bytes(header: ModelHeader<'a>, layers: &[LayerDef<'a>]) -> Result<u32> {
        if layers.len() > MAX_LAYERS || header.layer_count as usize != layers.len() {
            return Err(Error::TooManyLayers {
                found: layers.len() as u32,
                max: MAX_LAYERS as u32,
            });
        }
        let mut model = Model::empty();
        model.validate(header, layers.iter().copied().map(Ok))?;
        // (Host side: exporters call this; the copy above does not matter there.)
        Ok(model.arena_bytes as u32)
    }

    /// Validate into `self` (assumed empty), building the steps in place.
    fn validate(
        &mut self,
        header: ModelHeader<'a>,
        defs: impl Iterator<Item = Result<LayerDef<'a>>>,
    ) -> Result<()> {
        let input_len = check_tensor(MODEL_LEVEL, header.input_len)?;
        let output_len = check_tensor(MODEL_LEVEL, header.output_len)?;
        layers::check_len(MODEL_LEVEL, header.input_offset, input_len * 4)?;
        layers::check_len(MODEL_LEVEL, header.input_scale, input_len * 4)?;
        let numeric = header.numeric;
        let mut features = Features::of_numeric(numeric);
        if let Some(feature) = features.missing_from(Features::BUILD) {
            return Err(Error::UnsupportedLayer {
                layer: MODEL_LEVEL,
                feature,
            });
        }
        match numeric {
            Numeric::F32 => {
                if header.input_quant.is_some() || header.output_quant.is_some() {
                    return Err(Error::BadQuantization { layer: MODEL_LEVEL });
                }
            }
            Numeric::Int8 => {
                check_quant(header.input_quant)?;
                check_quant(header.output_quant)?;
            }
        }

        self.families.clear();
        let mut plan = Plan::new(numeric, input_len, &mut self.families);
        let mut work_width = input_len;
        let mut input_row = input_len;
        for (index, def) in defs.enumerate() {
            let def = def?;
            let at = index as u32;
            features = features.with(Features::of_kind(def.tag()));
            let layer = Layer::validate(at, &def, &mut plan)?;
            if index == 0 {
                // `Tokens` (always first) splits the input into rows.
                input_row = input_len / plan.tokens.max(1);
            }
            work_width = work_width.max(plan.width);
            self.steps
                .push(Step {
                    layer,
                    row: plan.row(),
                    tokens: plan.tokens,
                })
                .map_err(|_| Error::TooManyLayers {
                    found: at + 1,
                    max: MAX_LAYERS as u32,
                })?;
        }
        if plan.width != output_len {
            return Err(Error::ShapeMismatch { layer: MODEL_LEVEL });
        }
        let layers = || self.steps.iter().map(|s| &s.layer);
        #[cfg(feature = "recurrent")]
        layers::recurrent::check_model(&plan.families.recurrent, layers())?;
        #[cfg(feature = "attention")]
        layers::transformer::check_model(&plan.families.tokens, layers())?;
        let _ = layers;

        let (slot_offsets, slot_elements) = plan.slots.layout();
        let element = match numeric {
            Numeric::F32 => 4,
            Numeric::Int8 => 1,
        };
        let work_bytes = (2 * work_width + slot_elements) * element;
        let scratch = family_scratch(&plan);
        // The dense family's scratch follows the family's own.
        let dense = &mut plan.families.dense;
        dense.offset = align4(scratch.unwrap_or(0));
        self.scratch_offset = align4(work_bytes);
        self.arena_bytes = match (scratch, dense.widened) {
            (None, 0) => work_bytes,
            (Some(family), 0) => self.scratch_offset + family,
            (_, widened) => self.scratch_offset + dense.offset + widened,
        };
        self.numeric = numeric;
        self.input_len = input_len as u32;
        self.output_len = output_len as u32;
        self.input_row = input_row;
        self.input_offset = Some(header.input_offset);
        self.input_scale = Some(header.input_scale);
        self.input_quant = header.input_quant;
        self.output_quant = header.output_quant;
        self.slot_offsets = slot_offsets;
        self.work_width = work_width;
        self.features = features;
        Ok(())
    }
}

/// Bytes of scratch the model's families need after the work buffers
/// (`None`: no family scratch, the arena ends with the slots).
fn family_scratch(plan: &Plan<'_, '_>) -> Option<usize> {
    #[cfg(feature = "seq2seq")]
    if let Some(d) = &plan.families.seq2seq.decoder {
        return Some(plan.families.recurrent.scratch_bytes() + d.scratch().len);
    }
    #[cfg(feature = "recurrent")]
    if plan.families.recurrent.head_start > 0 {
        return Some(plan.families.recurrent.scratch_bytes());
    }
    #[cfg(feature = "attention")]
    if plan.families.tokens.tokens > 0 {
        return Some(plan.families.tokens.scratch_bytes());
    }
    #[cfg(feature = "conv")]
    if plan.families.conv.present {
        return Some(plan.families.conv.scratch);
    }
    None
}

/// Bytes of `value` in postcard's encoding.
fn postcard_len<T: serde::Serialize + ?Sized>(value: &T) -> Result<usize> {
    Ok(postcard::serialize_with_flavor(
        value,
        postcard::ser_flavors::Size::default(),
    )?)
}

/// `header` with its `layer_count` and `arena_bytes` filled in, the latter
/// by the loader's own validation ([`Model::required_arena_bytes`]), so an
/// encoded model always loads; and the payload's length.
fn complete<'a>(
    mut header: ModelHeader<'a>,
    layers: &[LayerDef<'a>],
) -> Result<(ModelHeader<'a>, usize)> {
    header.layer_count = layers.len() as u32;
    header.arena_bytes = 0;
    header.arena_bytes = Model::required_arena_bytes(header, layers)?;
    let mut payload = postcard_len(&header)?;
    for layer in layers {
        payload += postcard_len(layer)?;
    }
    Ok((header, payload))
}

/// Bytes in the envelope before a payload of `payload` bytes: magic,
/// version, CRC and the payload's varint length.
fn prefix_len(payload: usize) -> usize {
    let varint = (usize::BITS - (payload | 1).leading_zeros()).div_ceil(7) as usize;
    4 + 2 + 4 + varint
}

/// The exact length of the blob [`encode`] writes for `header` and
/// `layers` (validating them as the loader would): size the buffer with it.
pub fn encoded_len<'a>(header: ModelHeader<'a>, layers: &[LayerDef<'a>]) -> Result<usize> {
    let (_, payload) = complete(header, layers)?;
    Ok(prefix_len(payload) + payload)
}

/// Encode a model into `out` (at least [`encoded_len`] bytes) and return
/// the blob's length. No allocation. `header.layer_count` and
/// `header.arena_bytes` are filled in here, the latter by the loader's own
/// validation, so an encoded model always loads.
pub fn encode<'a>(
    header: ModelHeader<'a>,
    layers: &[LayerDef<'a>],
    out: &mut [u8],
) -> Result<usize> {
    let (header, payload) = complete(header, layers)?;
    let start = prefix_len(payload);
    let body = out
        .get_mut(start..start + payload)
        .ok_or(Error::Truncated)?;
    let mut used = postcard::to_slice(&header, body)?.len();
    for layer in layers {
        let rest = body.get_mut(used..).ok_or(Error::Truncated)?;
        used += postcard::to_slice(layer, rest)?.len();
    }
    let crc = checksum(body.get(..used).ok_or(Error::Truncated)?);
    // The envelope's fields, as postcard writes them (see `format`): magic,
    // fixed-width version and CRC, then the payload's varint length.
    let prefix = out.get_mut(..start).ok_or(Error::Truncated)?;
    let (fixed, varint) = prefix.split_at_mut(10);
    fixed[..4].copy_from_slice(&MAGIC);
    fixed[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    fixed[6..].copy_from_slice(&crc.to_le_bytes());
    let mut n = used;
    for byte in varint.iter_mut() {
        *byte = (n as u8 & 0x7f) | if n >= 0x80 { 0x80 } else { 0 };
        n >>= 7;
    }
    Ok(start + used)
}
