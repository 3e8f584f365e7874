//! Sequence (recurrent) models: validation of recurrent layers, the state
//! buffer, and the streaming API.
//!
//! A recurrent model's layers split in two at load: the **per-step** layers
//! (everything up to and including the last recurrent layer: dense layers,
//! elementwise activations and recurrent layers, possibly stacked) run once per
//! time step on `x_t`; the **head** (everything after) runs on the last
//! recurrent layer's hidden state when [`Model::finish_f32`] /
//! [`Model::finish_i8`] is called. Skip slots are not allowed in recurrent
//! models (a slot would carry data outside the state). The model's `input_len`
//! is the number of channels per step.
//!
//! The state is a caller-owned buffer of exactly [`Model::state_bytes`] bytes
//! (4-byte aligned, e.g. an [`Arena`](crate::Arena)): for each recurrent layer in
//! order, `h` then (LSTM) `c`, `hidden` values each, f32 on the f32 path and
//! int16 (`h` Q15, `c` Q11) on the int8 path. Whole-sequence runs
//! ([`Model::run_sequence_f32`]) are reset + steps + finish, the same code as
//! streaming, so both give identical outputs.

use super::{
    activate_f32, check_len, check_width, softmax_i8, Layer, Model, ModelStats, Step, MODEL_LEVEL,
};
use crate::error::{Error, Result};
use crate::format::{LayerDef, Numeric, Rescale};
use crate::kernels::{dense_f32, dense_i8, le_i32};
use crate::quant::is_valid_multiplier;
use crate::recurrent::{params_len_f32, params_len_i8, Cell, RecurrentF32, RecurrentI8};

/// Where the per-step part ends, how big the state is, where the gate scratch lives.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SequenceLayout {
    /// One past the last recurrent layer (0: not a recurrent model).
    pub head_start: usize,
    /// State elements (f32, or i16 for int8 models).
    pub state_len: usize,
    /// Largest `gates * hidden` of any recurrent layer.
    pub gate_rows: usize,
    /// Byte offset of the gate scratch (`2 * gate_rows` f32 or i32) in the arena.
    pub scratch_offset: usize,
}

/// A validated recurrent layer, kept small (it sits in every [`Step`]): its
/// parameters stay one borrowed byte string, split into views per step.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rec<'a> {
    cell: Cell,
    inputs: u16,
    hidden: u16,
    /// Offset of this layer's state, in elements.
    state: u32,
    params: &'a [u8],
}

/// An int8 recurrent layer: [`Rec`] plus its output quantization.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecI8<'a> {
    pub rec: Rec<'a>,
    output: Rescale,
    output_zero_point: i8,
}

impl<'a> Rec<'a> {
    fn hidden(&self) -> usize {
        usize::from(self.hidden)
    }
    fn state_range(&self) -> core::ops::Range<usize> {
        let at = self.state as usize;
        at..at + self.cell.state_vectors() * self.hidden()
    }
    fn f32_view(&self) -> Option<RecurrentF32<'a>> {
        RecurrentF32::from_params(self.cell, self.inputs.into(), self.hidden(), self.params)
    }
    /// `"lstm int8"` and the like.
    pub fn kind(&self, numeric: Numeric) -> &'static str {
        match (self.cell, numeric) {
            (Cell::Rnn, Numeric::F32) => "rnn f32",
            (Cell::Lstm, Numeric::F32) => "lstm f32",
            (Cell::Gru, Numeric::F32) => "gru f32",
            (Cell::Rnn, Numeric::Int8) => "rnn int8",
            (Cell::Lstm, Numeric::Int8) => "lstm int8",
            (Cell::Gru, Numeric::Int8) => "gru int8",
        }
    }
    /// Adds weights + biases, MACs per time step and parameter bytes.
    pub fn add_stats(&self, s: &mut ModelStats, _numeric: Numeric) {
        let rows = self.cell.gates() * self.hidden();
        let weights = rows * (usize::from(self.inputs) + self.hidden());
        s.macs += weights;
        s.parameters += weights + 2 * rows;
        s.parameter_bytes += self.params.len();
    }
}

impl<'a> RecI8<'a> {
    fn view(&self) -> Option<RecurrentI8<'a>> {
        let r = &self.rec;
        RecurrentI8::from_params(
            r.cell,
            r.inputs.into(),
            r.hidden(),
            r.params,
            self.output,
            self.output_zero_point,
        )
    }
}

impl SequenceLayout {
    /// No recurrent layers.
    pub const fn new() -> Self {
        SequenceLayout {
            head_start: 0,
            state_len: 0,
            gate_rows: 0,
            scratch_offset: 0,
        }
    }

    /// Validate one recurrent layer definition at index `at` whose input has `width` values.
    pub fn layer<'a>(
        &mut self,
        at: u32,
        def: LayerDef<'a>,
        width: &mut usize,
    ) -> Result<Layer<'a>> {
        let (cell, inputs, hidden, params) = match def {
            LayerDef::RecurrentF32 {
                cell,
                inputs,
                hidden,
                params,
            }
            | LayerDef::RecurrentI8 {
                cell,
                inputs,
                hidden,
                params,
                ..
            } => (cell, inputs, hidden, params),
            _ => return Err(Error::Malformed),
        };
        let (i, h) = (check_width(at, inputs)?, check_width(at, hidden)?);
        if i != *width {
            return Err(Error::ShapeMismatch { layer: at });
        }
        let rows = cell.gates() * h;
        let state =
            u32::try_from(self.state_len).map_err(|_| Error::ShapeMismatch { layer: at })?;
        let rec = Rec {
            cell,
            inputs: i as u16, // widths are at most MAX_WIDTH (4096)
            hidden: h as u16,
            state,
            params,
        };
        let layer = match def {
            LayerDef::RecurrentF32 { .. } => {
                check_len(at, params, params_len_f32(cell, i, h))?;
                Layer::RecurrentF32(rec)
            }
            LayerDef::RecurrentI8 {
                output,
                output_zero_point,
                ..
            } => {
                check_len(at, params, params_len_i8(cell, i, h))?;
                if output.zero_point != 0 || !is_valid_multiplier(output.multiplier, output.shift) {
                    return Err(Error::BadQuantization { layer: at });
                }
                let r = RecI8 {
                    rec,
                    output,
                    output_zero_point,
                };
                let view = r.view().ok_or(Error::ShapeMismatch { layer: at })?;
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
                Layer::RecurrentI8(r)
            }
            _ => return Err(Error::Malformed),
        };
        self.state_len += cell.state_vectors() * h;
        self.gate_rows = self.gate_rows.max(rows);
        self.head_start = at as usize + 1;
        *width = h;
        Ok(layer)
    }

    /// Whole-model checks once all layers are known; returns the arena bytes
    /// with the gate scratch placed after `bytes`.
    pub fn finish(&mut self, steps: &[Step<'_>], bytes: usize) -> Result<usize> {
        if self.head_start == 0 {
            return Ok(bytes);
        }
        for (index, step) in steps.iter().enumerate() {
            let allowed = match step.layer {
                Layer::DenseF32 { .. }
                | Layer::ActivationF32(_)
                | Layer::DenseI8 { .. }
                | Layer::TableI8(_)
                | Layer::SoftmaxI8(_) => true,
                Layer::RecurrentF32(_) | Layer::RecurrentI8(_) => index < self.head_start,
                _ => false,
            };
            if !allowed {
                return Err(Error::BadSkipSlot {
                    layer: index as u32,
                });
            }
        }
        self.scratch_offset = bytes.div_ceil(4) * 4;
        Ok(self.scratch_offset + 2 * self.gate_rows * 4)
    }
}

/// `(floats, scratch)` views of an f32 or int8 arena.
fn split_arena<'r>(
    arena: &'r mut [u8],
    layout: &SequenceLayout,
    needed: usize,
) -> Result<(&'r mut [u8], &'r mut [u8])> {
    let arena = arena
        .get_mut(..needed)
        .ok_or(Error::ArenaTooSmall { needed, given: 0 })?;
    let (work, scratch) = arena.split_at_mut(layout.scratch_offset.min(needed));
    Ok((work, scratch))
}

impl<'a> Model<'a> {
    /// Whether the model is recurrent (use the state API, not `run_*`).
    pub fn is_recurrent(&self) -> bool {
        self.seq.head_start > 0
    }

    /// Exact bytes of state a recurrent or causal model needs (0 for other
    /// models): hidden states, or a causal model's position and key/value cache.
    pub fn state_bytes(&self) -> usize {
        if self.tf.causal {
            return self.tf.state_bytes;
        }
        let e = match self.header.numeric {
            Numeric::F32 => 4,
            Numeric::Int8 => 2,
        };
        self.seq.state_len * e
    }

    pub(super) fn check_state(&self, len: usize) -> Result<()> {
        if !self.is_recurrent() && !self.is_causal() {
            return Err(Error::NotRecurrent);
        }
        if len < self.state_bytes() {
            return Err(Error::StateTooSmall {
                needed: self.state_bytes(),
                given: len,
            });
        }
        Ok(())
    }

    fn check_step(
        &self,
        numeric: Numeric,
        input_len: usize,
        state_len: usize,
        arena_len: usize,
    ) -> Result<()> {
        self.check_state(state_len)?;
        self.check_arena(arena_len, input_len, numeric)
    }

    /// Zero the state: the start of a new sequence.
    pub fn reset(&self, state: &mut [u8]) -> Result<()> {
        self.check_state(state.len())?;
        state
            .iter_mut()
            .take(self.state_bytes())
            .for_each(|b| *b = 0);
        Ok(())
    }

    fn state_f32<'s>(&self, state: &'s mut [u8]) -> Result<&'s mut [f32]> {
        let bytes = self.state_bytes();
        let s = state.get_mut(..bytes).ok_or(Error::StateTooSmall {
            needed: bytes,
            given: 0,
        })?;
        bytemuck::try_cast_slice_mut(s).map_err(|_| Error::ArenaMisaligned)
    }

    fn state_i16<'s>(&self, state: &'s mut [u8]) -> Result<&'s mut [i16]> {
        let bytes = self.state_bytes();
        let s = state.get_mut(..bytes).ok_or(Error::StateTooSmall {
            needed: bytes,
            given: 0,
        })?;
        bytemuck::try_cast_slice_mut(s).map_err(|_| Error::ArenaMisaligned)
    }

    /// Run the layers in `range` (f32), starting from `cur[..width]`.
    #[allow(clippy::too_many_arguments)]
    fn layers_f32<'r>(
        &self,
        range: core::ops::Range<usize>,
        mut cur: &'r mut [f32],
        mut next: &'r mut [f32],
        mut width: usize,
        state: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<&'r [f32]> {
        let steps = self
            .steps
            .get(range)
            .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
        let (gx, gh) = scratch.split_at_mut(self.seq.gate_rows.min(scratch.len()));
        for step in steps {
            let x = cur
                .get_mut(..width)
                .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
            match step.layer {
                Layer::DenseF32 { weights, bias } => {
                    let y = next
                        .get_mut(..step.width)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    dense_f32(weights, bias, x, y);
                    core::mem::swap(&mut cur, &mut next);
                }
                Layer::ActivationF32(a) => activate_f32(a, x),
                Layer::RecurrentF32(rec) => {
                    let cell = rec
                        .f32_view()
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    let st = state
                        .get_mut(rec.state_range())
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    cell.step(x, st, gx, gh);
                    let y = next
                        .get_mut(..step.width)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    y.copy_from_slice(
                        st.get(..step.width)
                            .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?,
                    );
                    core::mem::swap(&mut cur, &mut next);
                }
                _ => return Err(Error::WrongNumericPath),
            }
            width = step.width;
        }
        let cur: &'r [f32] = cur;
        cur.get(..width)
            .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })
    }

    #[allow(clippy::too_many_arguments)]
    fn layers_i8<'r>(
        &self,
        range: core::ops::Range<usize>,
        mut cur: &'r mut [i8],
        mut next: &'r mut [i8],
        mut width: usize,
        state: &mut [i16],
        scratch: &mut [i32],
    ) -> Result<&'r [i8]> {
        let steps = self
            .steps
            .get(range)
            .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
        let (gx, gh) = scratch.split_at_mut(self.seq.gate_rows.min(scratch.len()));
        for step in steps {
            let x = cur
                .get_mut(..width)
                .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
            match step.layer {
                Layer::DenseI8 {
                    weights,
                    bias,
                    multiplier,
                    shift,
                    output_zero_point,
                } => {
                    let y = next
                        .get_mut(..step.width)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    dense_i8(weights, bias, multiplier, shift, output_zero_point, x, y);
                    core::mem::swap(&mut cur, &mut next);
                }
                Layer::TableI8(table) => {
                    for v in x.iter_mut() {
                        *v = table[(*v as u8 ^ 0x80) as usize] as i8;
                    }
                }
                Layer::SoftmaxI8(t) => softmax_i8(t, x),
                Layer::RecurrentI8(rec) => {
                    let cell = rec
                        .view()
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    let st = state
                        .get_mut(rec.rec.state_range())
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    cell.step(x, st, gx, gh);
                    let y = next
                        .get_mut(..step.width)
                        .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
                    cell.output(st, y);
                    core::mem::swap(&mut cur, &mut next);
                }
                _ => return Err(Error::WrongNumericPath),
            }
            width = step.width;
        }
        let cur: &'r [i8] = cur;
        cur.get(..width)
            .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })
    }

    fn f32_buffers<'r>(
        &self,
        arena: &'r mut [u8],
    ) -> Result<(&'r mut [f32], &'r mut [f32], &'r mut [f32])> {
        let (work, scratch) = split_arena(arena, &self.seq, self.arena_bytes)?;
        let floats: &mut [f32] =
            bytemuck::try_cast_slice_mut(work).map_err(|_| Error::ArenaMisaligned)?;
        let scratch: &mut [f32] =
            bytemuck::try_cast_slice_mut(scratch).map_err(|_| Error::ArenaMisaligned)?;
        let (cur, rest) = floats.split_at_mut(self.work_width.min(floats.len()));
        let (next, _) = rest.split_at_mut(self.work_width.min(rest.len()));
        Ok((cur, next, scratch))
    }

    fn i8_buffers<'r>(
        &self,
        arena: &'r mut [u8],
    ) -> Result<(&'r mut [i8], &'r mut [i8], &'r mut [i32])> {
        let (work, scratch) = split_arena(arena, &self.seq, self.arena_bytes)?;
        let ints: &mut [i8] = bytemuck::cast_slice_mut(work);
        let scratch: &mut [i32] =
            bytemuck::try_cast_slice_mut(scratch).map_err(|_| Error::ArenaMisaligned)?;
        let (cur, rest) = ints.split_at_mut(self.work_width.min(ints.len()));
        let (next, _) = rest.split_at_mut(self.work_width.min(rest.len()));
        Ok((cur, next, scratch))
    }

    /// One time step of an f32 recurrent model on raw (unnormalized) `x_t`
    /// (`input_len` channels): updates `state` and returns the last per-step
    /// layer's output. For a causal transformer, one token (`input_len /
    /// tokens` values) and its output row (see `transformer`).
    pub fn step_f32<'r>(
        &self,
        x_t: &[f32],
        state: &mut [u8],
        arena: &'r mut [u8],
    ) -> Result<&'r [f32]> {
        if self.is_causal() {
            return self.step_causal_f32(x_t, state, arena);
        }
        self.check_step(Numeric::F32, x_t.len(), state.len(), arena.len())?;
        let state = self.state_f32(state)?;
        let (cur, next, scratch) = self.f32_buffers(arena)?;
        let offsets = self.header.input_offset.chunks_exact(4);
        let scales = self.header.input_scale.chunks_exact(4);
        for (((dst, &x), o), s) in cur.iter_mut().zip(x_t).zip(offsets).zip(scales) {
            *dst = (x - crate::kernels::le_f32(o)) * crate::kernels::le_f32(s);
        }
        self.layers_f32(
            0..self.seq.head_start,
            cur,
            next,
            self.input_len(),
            state,
            scratch,
        )
    }

    /// One time step of an int8 recurrent model on quantized `x_t` (see
    /// [`Model::quantize_input`]), or one token of a causal transformer.
    /// Integer-only.
    pub fn step_i8<'r>(
        &self,
        x_t: &[i8],
        state: &mut [u8],
        arena: &'r mut [u8],
    ) -> Result<&'r [i8]> {
        if self.is_causal() {
            return self.step_causal_i8(x_t, state, arena);
        }
        self.check_step(Numeric::Int8, x_t.len(), state.len(), arena.len())?;
        let state = self.state_i16(state)?;
        let (cur, next, scratch) = self.i8_buffers(arena)?;
        cur.iter_mut().zip(x_t).for_each(|(d, &x)| *d = x);
        self.layers_i8(
            0..self.seq.head_start,
            cur,
            next,
            self.input_len(),
            state,
            scratch,
        )
    }

    /// The last recurrent layer (its state offset and hidden width).
    fn last_recurrent(&self) -> Result<(usize, usize)> {
        match self
            .steps
            .get(self.seq.head_start.wrapping_sub(1))
            .map(|s| s.layer)
        {
            Some(Layer::RecurrentF32(r)) => Ok((r.state as usize, r.hidden())),
            Some(Layer::RecurrentI8(r)) => Ok((r.rec.state as usize, r.rec.hidden())),
            _ => Err(Error::NotRecurrent),
        }
    }

    /// Run the head on the current hidden state (f32). Does not change the
    /// state, so streaming callers may ask for an answer after any step.
    pub fn finish_f32<'r>(&self, state: &mut [u8], arena: &'r mut [u8]) -> Result<&'r [f32]> {
        self.check_step(Numeric::F32, self.input_len(), state.len(), arena.len())?;
        let state = self.state_f32(state)?;
        let (at, h) = self.last_recurrent()?;
        let (cur, next, scratch) = self.f32_buffers(arena)?;
        let src = state
            .get(at..at + h)
            .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
        cur.get_mut(..h)
            .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?
            .copy_from_slice(src);
        self.layers_f32(
            self.seq.head_start..self.steps.len(),
            cur,
            next,
            h,
            state,
            scratch,
        )
    }

    /// Run the head on the current hidden state (int8). Integer-only; does not change the state.
    pub fn finish_i8<'r>(&self, state: &mut [u8], arena: &'r mut [u8]) -> Result<&'r [i8]> {
        self.check_step(Numeric::Int8, self.input_len(), state.len(), arena.len())?;
        let state = self.state_i16(state)?;
        let last = match self
            .steps
            .get(self.seq.head_start.wrapping_sub(1))
            .map(|s| s.layer)
        {
            Some(Layer::RecurrentI8(r)) => (
                r.view()
                    .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?,
                r.rec.state as usize,
            ),
            _ => return Err(Error::WrongNumericPath),
        };
        let (cur, next, scratch) = self.i8_buffers(arena)?;
        let h = last.0.hidden;
        let src = state
            .get(last.1..last.1 + h)
            .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?;
        last.0.output(
            src,
            cur.get_mut(..h)
                .ok_or(Error::ShapeMismatch { layer: MODEL_LEVEL })?,
        );
        self.layers_i8(
            self.seq.head_start..self.steps.len(),
            cur,
            next,
            h,
            state,
            scratch,
        )
    }

    /// A whole sequence, `steps x input_len` raw values: reset, one
    /// [`Model::step_f32`] per step, then [`Model::finish_f32`].
    pub fn run_sequence_f32<'r>(
        &self,
        xs: &[f32],
        state: &mut [u8],
        arena: &'r mut [u8],
    ) -> Result<&'r [f32]> {
        let c = self.step_width();
        if !xs.len().is_multiple_of(c) {
            return Err(Error::WrongInputLength {
                expected: c,
                given: xs.len() % c,
            });
        }
        self.reset(state)?;
        if self.is_causal() {
            return self.run_causal_f32(xs, state, arena);
        }
        for x_t in xs.chunks_exact(c) {
            self.step_f32(x_t, state, arena)?;
        }
        self.finish_f32(state, arena)
    }

    /// A whole quantized sequence, `steps x input_len` int8 values.
    pub fn run_sequence_i8<'r>(
        &self,
        xs: &[i8],
        state: &mut [u8],
        arena: &'r mut [u8],
    ) -> Result<&'r [i8]> {
        let c = self.step_width();
        if !xs.len().is_multiple_of(c) {
            return Err(Error::WrongInputLength {
                expected: c,
                given: xs.len() % c,
            });
        }
        self.reset(state)?;
        if self.is_causal() {
            return self.run_causal_i8(xs, state, arena);
        }
        for x_t in xs.chunks_exact(c) {
            self.step_i8(x_t, state, arena)?;
        }
        self.finish_i8(state, arena)
    }

    /// Real values of the last recurrent layer's hidden state (host-side
    /// convenience for tests and reports; int16 Q15 is divided by 32768).
    /// Returns the hidden width.
    pub fn hidden_state(&self, state: &mut [u8], out: &mut [f32]) -> Result<usize> {
        self.check_state(state.len())?;
        let (at, h) = self.last_recurrent()?;
        match self.header.numeric {
            Numeric::F32 => {
                let s = self.state_f32(state)?;
                for (o, v) in out.iter_mut().zip(s.iter().skip(at).take(h)) {
                    *o = *v;
                }
            }
            Numeric::Int8 => {
                let s = self.state_i16(state)?;
                for (o, v) in out.iter_mut().zip(s.iter().skip(at).take(h)) {
                    *o = f32::from(*v) / 32768.0;
                }
            }
        }
        Ok(h)
    }
}
