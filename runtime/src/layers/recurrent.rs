//! The recurrent family (feature `recurrent`): Elman RNN, LSTM and GRU
//! layers, stackable, f32 and integer-only int8 with int16 state. The cell
//! arithmetic is in [`crate::kernels::recurrent`].
//!
//! A recurrent model's layers split in two at load: the **per-step** layers
//! (everything up to and including the last recurrent layer: dense layers,
//! activations and recurrent layers) run once per time step on `x_t`; the
//! **head** (everything after) runs on the last recurrent layer's hidden
//! state when the caller asks for an answer. Only dense-family layers
//! without skips may appear beside recurrent ones (a slot would carry data
//! outside the state). The model's `input_len` is the number of channels per
//! step.
//!
//! The state is a caller-owned buffer of exactly `Model::state_bytes` bytes
//! (4-byte aligned): for each recurrent layer in order, `h` then (LSTM) `c`,
//! `hidden` values each, f32 on the f32 path and int16 (`h` Q15, `c` Q11)
//! on the int8 path. The arena's scratch holds the gate pre-activations
//! (`2 x gates x hidden` f32 or i32 of the widest layer).

use super::ModelStats;
use super::{check_len, check_rescale, check_width, Ctx, Io, Layer, Out, Plan, BAD};
use crate::error::{Error, Result};
use crate::format::{Cell, LayerDef, Numeric, Rescale};
use crate::kernels::le_i32;
use crate::kernels::recurrent::{
    output_i8, params_len_f32, params_len_i8, RecurrentF32, RecurrentI8,
};
use crate::quant::is_valid_multiplier;

/// A validated recurrent layer, kept small (it sits in every step): its
/// parameters stay one borrowed byte string, split into views when it runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recurrent<'a> {
    cell: Cell,
    numeric: Numeric,
    inputs: u16,
    hidden: u16,
    /// Offset of this layer's state, in elements.
    state: u32,
    params: &'a [u8],
    /// int8: the Q15 state to the int8 output tensor, and its zero point.
    output: Rescale,
    output_zero_point: i8,
}

/// Model-wide facts of a recurrent model.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Layout {
    /// One past the last recurrent layer (0: not a recurrent model).
    pub head_start: usize,
    /// State elements (f32, or i16 for int8 models).
    pub state_len: usize,
    /// Largest `gates * hidden` of any recurrent layer.
    pub gate_rows: usize,
    /// Largest hidden width.
    pub hidden: usize,
    /// The last recurrent layer so far (what a decoder continues); hidden 0
    /// before the first. Not an `Option`: `Option<Top>`'s `None` is a
    /// non-zero niche of `Cell`, which would move a static `Model::empty()`
    /// from `.bss` into `.data` (its whole size in flash).
    pub top: Top,
}

/// What a decoder needs to know of the encoder's last layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Top {
    pub cell: Cell,
    pub hidden: usize,
    /// Offset of its state, in elements (the decoder continues it).
    pub state: usize,
    /// Zero point of its int8 output tensor (0 on the f32 path).
    pub output_zero_point: i8,
}

impl Top {
    /// No recurrent layer yet (all zero, see [`Layout::top`]).
    const NONE: Top = Top {
        cell: Cell::Rnn,
        hidden: 0,
        state: 0,
        output_zero_point: 0,
    };
}

impl Default for Top {
    fn default() -> Self {
        Top::NONE
    }
}

impl Layout {
    /// Not a recurrent model.
    pub(crate) const fn new() -> Self {
        Layout {
            head_start: 0,
            state_len: 0,
            gate_rows: 0,
            hidden: 0,
            top: Top::NONE,
        }
    }

    /// Bytes of state.
    pub(crate) fn state_bytes(&self, numeric: Numeric) -> usize {
        self.state_len * element_bytes(numeric)
    }
    /// Bytes of arena scratch: the gate pre-activations (input and hidden
    /// parts, i32 or f32), then room for `h` widened to 16-bit pairs (the
    /// DSP kernel's; 2 bytes per unit, rounded up to 4 units).
    pub(crate) fn scratch_bytes(&self) -> usize {
        2 * self.gate_rows * 4 + 2 * self.hidden.div_ceil(4) * 4
    }
}

/// Bytes per state element.
fn element_bytes(numeric: Numeric) -> usize {
    match numeric {
        Numeric::F32 => 4,
        Numeric::Int8 => 2,
    }
}

/// Validate a recurrent definition (`None`: not of this family).
pub(crate) fn validate<'a>(
    at: u32,
    def: &LayerDef<'a>,
    plan: &mut Plan<'_, 'a>,
) -> Option<Result<Recurrent<'a>>> {
    let (cell, inputs, hidden, params, output) = match *def {
        LayerDef::RecurrentF32 {
            cell,
            inputs,
            hidden,
            params,
        } => (cell, inputs, hidden, params, None),
        LayerDef::RecurrentI8 {
            cell,
            inputs,
            hidden,
            params,
            output,
            output_zero_point,
        } => (
            cell,
            inputs,
            hidden,
            params,
            Some((output, output_zero_point)),
        ),
        _ => return None,
    };
    Some((|| {
        let (i, h) = (check_width(at, inputs)?, check_width(at, hidden)?);
        if i != plan.width {
            return Err(Error::ShapeMismatch { layer: at });
        }
        let layout = &mut plan.families.recurrent;
        let state =
            u32::try_from(layout.state_len).map_err(|_| Error::ShapeMismatch { layer: at })?;
        let mut layer = Recurrent {
            cell,
            numeric: Numeric::F32,
            inputs: i as u16, // widths are at most MAX_WIDTH (4096)
            hidden: h as u16,
            state,
            params,
            output: Rescale {
                zero_point: 0,
                multiplier: 0,
                shift: 1,
            },
            output_zero_point: 0,
        };
        match output {
            None => check_len(at, params, params_len_f32(cell, i, h))?,
            Some((rescale, zero_point)) => {
                check_len(at, params, params_len_i8(cell, i, h))?;
                if rescale.zero_point != 0 {
                    return Err(Error::BadQuantization { layer: at });
                }
                check_rescale(at, &rescale)?;
                layer.numeric = Numeric::Int8;
                layer.output = rescale;
                layer.output_zero_point = zero_point;
                let view = layer.view_i8().ok_or(Error::ShapeMismatch { layer: at })?;
                let multipliers = view
                    .mult_input
                    .chunks_exact(4)
                    .chain(view.mult_hidden.chunks_exact(4));
                let shifts = view.shift_input.iter().chain(view.shift_hidden);
                for (m, &s) in multipliers.zip(shifts) {
                    if !is_valid_multiplier(le_i32(m), s) {
                        return Err(Error::BadQuantization { layer: at });
                    }
                }
            }
        }
        layout.state_len += cell.state_vectors() * h;
        layout.gate_rows = layout.gate_rows.max(cell.gates() * h);
        layout.hidden = layout.hidden.max(h);
        layout.head_start = at as usize + 1;
        layout.top = Top {
            cell,
            hidden: h,
            state: state as usize,
            output_zero_point: layer.output_zero_point,
        };
        plan.width = h;
        Ok(layer)
    })())
}

/// Whole-model check of a recurrent model: beside the recurrent layers only
/// dense layers, and no recurrent layer in the head (a decoder, validated in
/// its own file, is the whole head).
pub(crate) fn check_model<'l>(
    layout: &Layout,
    layers: impl Iterator<Item = &'l Layer<'l>>,
) -> Result<()> {
    if layout.head_start == 0 {
        return Ok(());
    }
    // Index of the decoder, once seen: nothing may follow it.
    let mut decoder = None;
    for (index, layer) in layers.enumerate() {
        let at = index as u32;
        if let Some(decoder) = decoder {
            return Err(Error::DecoderMismatch { layer: decoder });
        }
        let allowed = match layer {
            Layer::Dense(_) => true,
            Layer::Recurrent(_) => index < layout.head_start,
            #[cfg(feature = "seq2seq")]
            Layer::Decoder => {
                decoder = Some(at);
                true
            }
            _ => false,
        };
        if !allowed {
            return Err(Error::BadSkipSlot { layer: at });
        }
    }
    Ok(())
}

impl<'a> Recurrent<'a> {
    fn hidden(&self) -> usize {
        usize::from(self.hidden)
    }

    /// This layer's part of the state, in bytes.
    fn state_range(&self) -> core::ops::Range<usize> {
        let e = element_bytes(self.numeric);
        let at = self.state as usize * e;
        at..at + self.cell.state_vectors() * self.hidden() * e
    }

    #[inline(always)]
    fn view_f32(&self) -> Option<RecurrentF32<'a>> {
        RecurrentF32::from_params(self.cell, self.inputs.into(), self.hidden(), self.params)
    }

    #[inline(always)]
    fn view_i8(&self) -> Option<RecurrentI8<'a>> {
        RecurrentI8::from_params(self.cell, self.inputs.into(), self.hidden(), self.params)
    }

    /// `"lstm int8"` and the like.
    pub(crate) fn kind(&self) -> &'static str {
        match (self.cell, self.numeric) {
            (Cell::Rnn, Numeric::F32) => "rnn f32",
            (Cell::Lstm, Numeric::F32) => "lstm f32",
            (Cell::Gru, Numeric::F32) => "gru f32",
            (Cell::Rnn, Numeric::Int8) => "rnn int8",
            (Cell::Lstm, Numeric::Int8) => "lstm int8",
            (Cell::Gru, Numeric::Int8) => "gru int8",
        }
    }

    /// Adds weights + biases, MACs per time step and parameter bytes.
    pub(crate) fn add_stats(&self, s: &mut ModelStats) {
        let rows = self.cell.gates() * self.hidden();
        let weights = rows * (usize::from(self.inputs) + self.hidden());
        s.macs += weights;
        s.parameters += weights + 2 * rows;
        s.parameter_bytes += self.params.len();
    }

    /// One time step on the f32 path; the output is the new `h`.
    #[cfg(feature = "f32")]
    pub(crate) fn run_f32(&self, io: Io<'_, f32>, ctx: &mut Ctx<'_, '_>) -> Result<Out> {
        let cell = self.view_f32().ok_or(BAD)?;
        let state = ctx.state.get_mut(self.state_range()).ok_or(BAD)?;
        let state: &mut [f32] =
            bytemuck::try_cast_slice_mut(state).map_err(|_| Error::ArenaMisaligned)?;
        let gates: &mut [f32] =
            bytemuck::try_cast_slice_mut(&mut *ctx.scratch).map_err(|_| Error::ArenaMisaligned)?;
        let rows = self.cell.gates() * self.hidden();
        let (gx, gh) = gates.split_at_mut(rows.min(gates.len()));
        cell.step(io.x, state, gx, gh);
        io.y.iter_mut().zip(state.iter()).for_each(|(y, &h)| *y = h);
        Ok(Out::Next)
    }

    /// One time step on the int8 path (integer-only); the output is the new
    /// `h` rescaled to the int8 output tensor.
    #[cfg(feature = "int8")]
    pub(crate) fn run_i8(&self, io: Io<'_, i8>, ctx: &mut Ctx<'_, '_>) -> Result<Out> {
        let cell = self.view_i8().ok_or(BAD)?;
        let state = ctx.state.get_mut(self.state_range()).ok_or(BAD)?;
        let state: &mut [i16] =
            bytemuck::try_cast_slice_mut(state).map_err(|_| Error::ArenaMisaligned)?;
        let scratch: &mut [i32] =
            bytemuck::try_cast_slice_mut(&mut *ctx.scratch).map_err(|_| Error::ArenaMisaligned)?;
        let gate_rows = ctx.families.recurrent.gate_rows;
        let (gates, permuted) = scratch.split_at_mut((2 * gate_rows).min(scratch.len()));
        let rows = self.cell.gates() * self.hidden();
        let (gx, gh) = gates.split_at_mut(rows.min(gates.len()));
        cell.step(io.x, state, gx, gh, bytemuck::cast_slice_mut(permuted));
        output_i8(self.output, self.output_zero_point, state, io.y);
        Ok(Out::Next)
    }

    /// The head's input from the state: `h` (f32 path) into `out`; its width.
    #[cfg(feature = "f32")]
    pub(crate) fn hidden_f32(&self, state: &[u8], out: &mut [f32]) -> Result<usize> {
        let h = self.hidden();
        let bytes = state.get(self.state_range()).ok_or(BAD)?;
        let values: &[f32] = bytemuck::try_cast_slice(bytes).map_err(|_| Error::ArenaMisaligned)?;
        let out = out.get_mut(..h).ok_or(BAD)?;
        out.iter_mut().zip(values).for_each(|(o, &v)| *o = v);
        Ok(h)
    }

    /// The head's input from the state: `h` rescaled to int8 into `out`; its width.
    #[cfg(feature = "int8")]
    pub(crate) fn hidden_i8(&self, state: &[u8], out: &mut [i8]) -> Result<usize> {
        let h = self.hidden();
        let bytes = state.get(self.state_range()).ok_or(BAD)?;
        let values: &[i16] = bytemuck::try_cast_slice(bytes).map_err(|_| Error::ArenaMisaligned)?;
        let (values, out) = (values.get(..h).ok_or(BAD)?, out.get_mut(..h).ok_or(BAD)?);
        output_i8(self.output, self.output_zero_point, values, out);
        Ok(h)
    }

    /// Real values of `h` (int16 Q15 divided by 32768); its width.
    pub(crate) fn hidden_real(&self, state: &[u8], out: &mut [f32]) -> Result<usize> {
        let h = self.hidden();
        let bytes = state.get(self.state_range()).ok_or(BAD)?;
        let pairs = out.iter_mut().take(h);
        match self.numeric {
            Numeric::F32 => pairs
                .zip(bytes.chunks_exact(4))
                .for_each(|(o, b)| *o = crate::kernels::le_f32(b)),
            Numeric::Int8 => pairs
                .zip(bytes.chunks_exact(2))
                .for_each(|(o, b)| *o = f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0),
        }
        Ok(h)
    }
}
