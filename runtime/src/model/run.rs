//! Running a loaded model. Every entry point (a whole input, one time step
//! of a recurrent model, its head, one token of a causal transformer) is a
//! range of the model's steps run by the one interpreter loop,
//! [`Model::forward`], on the numeric path's element type.
//!
//! Entry points check only the caller's buffers, then index within what the
//! loader established; see the contract in [`super`].

use core::ops::Range;

use super::Model;
use crate::error::{Error, Result};
use crate::format::Numeric;
use crate::kernels::le_f32;
use crate::layers::{Ctx, Element, Io, Layer, Out, Pass, BAD};
use crate::quant::saturate_i8;

/// The two work buffers and the skip slots, in elements.
pub(super) struct Work<'r, T> {
    pub(super) cur: &'r mut [T],
    next: &'r mut [T],
    slots: &'r mut [T],
}

impl<'a> Model<'a> {
    pub(super) fn check_loaded(&self) -> Result<()> {
        if self.is_loaded() {
            Ok(())
        } else {
            Err(Error::NotLoaded)
        }
    }

    /// The caller's side of a run: path, input length, arena size.
    pub(super) fn check_run(
        &self,
        numeric: Numeric,
        input_len: usize,
        arena_len: usize,
    ) -> Result<()> {
        self.check_loaded()?;
        if self.numeric != numeric {
            return Err(Error::WrongNumericPath);
        }
        if input_len != self.input_len() {
            return Err(Error::WrongInputLength {
                expected: self.input_len(),
                given: input_len,
            });
        }
        if arena_len < self.arena_bytes {
            return Err(Error::ArenaTooSmall {
                needed: self.arena_bytes,
                given: arena_len,
            });
        }
        Ok(())
    }

    /// The work buffers of `arena` (as `T`) and the families' scratch.
    pub(super) fn split<'r, T: Element>(
        &self,
        arena: &'r mut [u8],
    ) -> Result<(Work<'r, T>, &'r mut [u8])> {
        let arena = arena
            .get_mut(..self.arena_bytes)
            .ok_or(Error::ArenaTooSmall {
                needed: self.arena_bytes,
                given: 0,
            })?;
        let (work, scratch) = arena.split_at_mut(self.scratch_offset.min(self.arena_bytes));
        let elements: &mut [T] =
            bytemuck::try_cast_slice_mut(work).map_err(|_| Error::ArenaMisaligned)?;
        let (cur, rest) = elements.split_at_mut(self.work_width.min(elements.len()));
        let (next, slots) = rest.split_at_mut(self.work_width.min(rest.len()));
        Ok((Work { cur, next, slots }, scratch))
    }

    /// The interpreter: run `steps` from `work.cur` holding `rows` rows of
    /// `row` values. Each layer reads the current buffer and either works in
    /// place or writes the other one (then they swap).
    // Out of line: every entry point shares one copy (flash).
    #[inline(never)]
    fn forward<'r, T: Element>(
        &self,
        steps: Range<usize>,
        (mut row, mut rows): (usize, usize),
        work: Work<'r, T>,
        ctx: &mut Ctx<'_, '_>,
    ) -> Result<&'r [T]> {
        let Work {
            mut cur,
            mut next,
            slots,
        } = work;
        for step in self.steps.get(steps).ok_or(BAD)? {
            let out_rows = ctx.pass.rows(step.tokens);
            let io = Io {
                x: cur.get_mut(..row * rows).ok_or(BAD)?,
                y: next.get_mut(..step.row * out_rows).ok_or(BAD)?,
                row,
                rows,
                out_row: step.row,
                slots: &mut *slots,
                offsets: &self.slot_offsets,
            };
            if T::run(&step.layer, io, ctx)? == Out::Next {
                core::mem::swap(&mut cur, &mut next);
            }
            row = step.row;
            rows = out_rows;
        }
        let cur: &'r [T] = cur;
        cur.get(..row * rows).ok_or(BAD)
    }

    /// A whole pass over every layer.
    fn run_all<'r, T: Element>(&self, work: Work<'r, T>, scratch: &mut [u8]) -> Result<&'r [T]> {
        let mut ctx = Ctx {
            pass: Pass::Full,
            scratch,
            state: &mut [],
            families: &self.families,
        };
        let shape = (self.input_row, self.tokens().max(1));
        self.forward(0..self.steps.len(), shape, work, &mut ctx)
    }

    /// `x' = (x - offset) * scale` with the offsets and scales from input value `first` on.
    pub(super) fn normalize_into(&self, input: &[f32], first: usize, out: &mut [f32]) {
        let offsets = self.input_offset.unwrap_or(&[]).chunks_exact(4).skip(first);
        let scales = self.input_scale.unwrap_or(&[]).chunks_exact(4).skip(first);
        for (((dst, &x), o), s) in out.iter_mut().zip(input).zip(offsets).zip(scales) {
            *dst = (x - le_f32(o)) * le_f32(s);
        }
    }

    /// Run an f32 model on raw (unnormalized) input. The result borrows the
    /// arena. Causal transformers return one output row per token.
    pub fn run_f32<'r>(&self, input: &[f32], arena: &'r mut [u8]) -> Result<&'r [f32]> {
        self.check_run(Numeric::F32, input.len(), arena.len())?;
        if self.is_recurrent() {
            return Err(Error::Recurrent);
        }
        let (work, scratch) = self.split::<f32>(arena)?;
        self.normalize_into(input, 0, work.cur);
        self.run_all(work, scratch)
    }

    /// Run an int8 model on quantized input. Integer-only. The result borrows the arena.
    pub fn run_i8<'r>(&self, input: &[i8], arena: &'r mut [u8]) -> Result<&'r [i8]> {
        self.check_run(Numeric::Int8, input.len(), arena.len())?;
        if self.is_recurrent() {
            return Err(Error::Recurrent);
        }
        let (work, scratch) = self.split::<i8>(arena)?;
        work.cur.iter_mut().zip(input).for_each(|(d, &x)| *d = x);
        self.run_all(work, scratch)
    }

    /// Quantize raw input for an int8 model: normalization and input
    /// quantization in one float step (the only float in the int8 path; feed
    /// [`Model::run_i8`] pre-quantized values on cores without an FPU).
    pub fn quantize_input(&self, raw: &[f32], out: &mut [i8]) -> Result<()> {
        self.check_loaded()?;
        let q = self.input_quant.ok_or(Error::WrongNumericPath)?;
        if raw.len() != self.input_len() || out.len() != self.input_len() {
            return Err(Error::WrongInputLength {
                expected: self.input_len(),
                given: raw.len().min(out.len()),
            });
        }
        let offsets = self.input_offset.unwrap_or(&[]).chunks_exact(4);
        let scales = self.input_scale.unwrap_or(&[]).chunks_exact(4);
        for (((dst, &x), o), s) in out.iter_mut().zip(raw).zip(offsets).zip(scales) {
            let normalized = (x - le_f32(o)) * le_f32(s);
            // `as i32` maps NaN to 0 and saturates infinities.
            let steps = libm::roundf(normalized / q.scale) as i32;
            *dst = saturate_i8(steps.saturating_add(i32::from(q.zero_point)));
        }
        Ok(())
    }

    /// Real values of an int8 output (host-side convenience; uses floats).
    pub fn dequantize_output(&self, q: &[i8], out: &mut [f32]) -> Result<()> {
        self.check_loaded()?;
        let p = self.output_quant.ok_or(Error::WrongNumericPath)?;
        for (dst, &v) in out.iter_mut().zip(q) {
            *dst = p.scale * (i32::from(v) - i32::from(p.zero_point)) as f32;
        }
        Ok(())
    }

    /// Whether the model is recurrent (use the state API, not `run_*`).
    pub fn is_recurrent(&self) -> bool {
        self.recurrent_head() > 0
    }

    /// One past the last recurrent layer (0: not recurrent).
    fn recurrent_head(&self) -> usize {
        #[cfg(feature = "recurrent")]
        return self.families.recurrent.head_start;
        #[cfg(not(feature = "recurrent"))]
        0
    }

    /// Whether the model is an encoder-decoder (use the forecast API:
    /// `forecast_*`, or `encode_*` then `decode_*` step by step).
    pub fn is_seq2seq(&self) -> bool {
        #[cfg(feature = "seq2seq")]
        return self.families.seq2seq.decoder.is_some();
        #[cfg(not(feature = "seq2seq"))]
        false
    }

    /// Whether the model is a causal transformer (step API with a key/value cache).
    pub fn is_causal(&self) -> bool {
        #[cfg(feature = "attention")]
        return self.families.tokens.causal;
        #[cfg(not(feature = "attention"))]
        false
    }

    /// Tokens of a transformer model's input (its context, for a causal
    /// model); 0 for other models.
    pub fn tokens(&self) -> usize {
        #[cfg(feature = "attention")]
        return self.families.tokens.tokens;
        #[cfg(not(feature = "attention"))]
        0
    }

    /// Values per step: `input_len / tokens` for a causal model, else `input_len`.
    pub fn step_width(&self) -> usize {
        if self.is_causal() {
            self.input_len() / self.tokens().max(1)
        } else {
            self.input_len()
        }
    }

    /// Exact bytes of state a recurrent or causal model needs (0 for other
    /// models): hidden states, or a causal model's position and key/value cache.
    pub fn state_bytes(&self) -> usize {
        #[cfg(feature = "seq2seq")]
        if let Some(d) = &self.families.seq2seq.decoder {
            return d.state_bytes();
        }
        #[cfg(feature = "attention")]
        if self.is_causal() {
            return self.families.tokens.state_bytes();
        }
        #[cfg(feature = "recurrent")]
        return self.families.recurrent.state_bytes(self.numeric);
        #[cfg(not(feature = "recurrent"))]
        0
    }

    pub(super) fn check_state(&self, len: usize) -> Result<()> {
        self.check_loaded()?;
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

    /// Zero the state: the start of a new sequence.
    pub fn reset(&self, state: &mut [u8]) -> Result<()> {
        self.check_state(state.len())?;
        state
            .iter_mut()
            .take(self.state_bytes())
            .for_each(|b| *b = 0);
        Ok(())
    }

    /// One time step of an f32 recurrent model on raw (unnormalized) `x_t`
    /// (`input_len` channels): updates `state` and returns the last per-step
    /// layer's output. For a causal transformer, one token (`input_len /
    /// tokens` values) and its output row.
    pub fn step_f32<'r>(
        &self,
        x_t: &[f32],
        state: &mut [u8],
        arena: &'r mut [u8],
    ) -> Result<&'r [f32]> {
        if self.is_causal() {
            return self.step_causal(Numeric::F32, x_t.len(), state, arena, |m, cur, row| {
                m.normalize_into(x_t, row * x_t.len(), cur)
            });
        }
        self.check_state(state.len())?;
        self.check_run(Numeric::F32, x_t.len(), arena.len())?;
        let (work, scratch) = self.split::<f32>(arena)?;
        self.normalize_into(x_t, 0, work.cur);
        self.run_steps(work, scratch, state)
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
            return self.step_causal(Numeric::Int8, x_t.len(), state, arena, |_, cur, _| {
                cur.iter_mut().zip(x_t).for_each(|(d, &x)| *d = x)
            });
        }
        self.check_state(state.len())?;
        self.check_run(Numeric::Int8, x_t.len(), arena.len())?;
        let (work, scratch) = self.split::<i8>(arena)?;
        work.cur.iter_mut().zip(x_t).for_each(|(d, &x)| *d = x);
        self.run_steps(work, scratch, state)
    }

    /// The per-step layers of a recurrent model, on `work.cur[..input_len]`.
    pub(super) fn run_steps<'r, T: Element>(
        &self,
        work: Work<'r, T>,
        scratch: &mut [u8],
        state: &mut [u8],
    ) -> Result<&'r [T]> {
        let mut ctx = Ctx {
            pass: Pass::Full,
            scratch,
            state,
            families: &self.families,
        };
        let steps = 0..self.recurrent_head();
        self.forward(steps, (self.input_len(), 1), work, &mut ctx)
    }

    /// The last recurrent layer.
    #[cfg(feature = "recurrent")]
    fn last_recurrent(&self) -> Result<&crate::layers::recurrent::Recurrent<'a>> {
        match self
            .steps
            .get(self.recurrent_head().wrapping_sub(1))
            .map(|s| &s.layer)
        {
            Some(Layer::Recurrent(r)) => Ok(r),
            _ => Err(Error::NotRecurrent),
        }
    }

    /// Run the head on the current hidden state (f32). Does not change the
    /// state, so streaming callers may ask for an answer after any step.
    pub fn finish_f32<'r>(&self, state: &mut [u8], arena: &'r mut [u8]) -> Result<&'r [f32]> {
        self.check_state(state.len())?;
        self.check_run(Numeric::F32, self.input_len(), arena.len())?;
        if self.is_seq2seq() {
            return Err(Error::Seq2Seq);
        }
        #[cfg(all(feature = "recurrent", feature = "f32"))]
        {
            let (work, scratch) = self.split::<f32>(arena)?;
            let h = self.last_recurrent()?.hidden_f32(state, work.cur)?;
            return self.run_head(work, scratch, state, h);
        }
        #[allow(unreachable_code)]
        Err(Error::NotRecurrent)
    }

    /// Run the head on the current hidden state (int8). Integer-only; does not change the state.
    pub fn finish_i8<'r>(&self, state: &mut [u8], arena: &'r mut [u8]) -> Result<&'r [i8]> {
        self.check_state(state.len())?;
        self.check_run(Numeric::Int8, self.input_len(), arena.len())?;
        if self.is_seq2seq() {
            return Err(Error::Seq2Seq);
        }
        #[cfg(all(feature = "recurrent", feature = "int8"))]
        {
            let (work, scratch) = self.split::<i8>(arena)?;
            let h = self.last_recurrent()?.hidden_i8(state, work.cur)?;
            return self.run_head(work, scratch, state, h);
        }
        #[allow(unreachable_code)]
        Err(Error::NotRecurrent)
    }

    /// The head of a recurrent model on `work.cur[..width]`.
    #[cfg(feature = "recurrent")]
    fn run_head<'r, T: Element>(
        &self,
        work: Work<'r, T>,
        scratch: &mut [u8],
        state: &mut [u8],
        width: usize,
    ) -> Result<&'r [T]> {
        let mut ctx = Ctx {
            pass: Pass::Full,
            scratch,
            state,
            families: &self.families,
        };
        let steps = self.recurrent_head()..self.steps.len();
        self.forward(steps, (width, 1), work, &mut ctx)
    }

    /// A whole sequence, `steps x step_width` raw values: reset, one
    /// [`Model::step_f32`] per step, then [`Model::finish_f32`] (for a causal
    /// transformer: the last token's row).
    pub fn run_sequence_f32<'r>(
        &self,
        xs: &[f32],
        state: &mut [u8],
        arena: &'r mut [u8],
    ) -> Result<&'r [f32]> {
        let steps = self.sequence_steps(xs.len())?;
        self.reset(state)?;
        let c = self.step_width();
        if self.is_causal() {
            for x_t in xs.chunks_exact(c).take(steps - 1) {
                self.step_f32(x_t, state, arena)?;
            }
            return self.step_f32(xs.get((steps - 1) * c..).ok_or(BAD)?, state, arena);
        }
        for x_t in xs.chunks_exact(c) {
            self.step_f32(x_t, state, arena)?;
        }
        self.finish_f32(state, arena)
    }

    /// A whole quantized sequence, `steps x step_width` int8 values.
    pub fn run_sequence_i8<'r>(
        &self,
        xs: &[i8],
        state: &mut [u8],
        arena: &'r mut [u8],
    ) -> Result<&'r [i8]> {
        let steps = self.sequence_steps(xs.len())?;
        self.reset(state)?;
        let c = self.step_width();
        if self.is_causal() {
            for x_t in xs.chunks_exact(c).take(steps - 1) {
                self.step_i8(x_t, state, arena)?;
            }
            return self.step_i8(xs.get((steps - 1) * c..).ok_or(BAD)?, state, arena);
        }
        for x_t in xs.chunks_exact(c) {
            self.step_i8(x_t, state, arena)?;
        }
        self.finish_i8(state, arena)
    }

    /// Steps in a sequence of `len` values (a whole number of steps, and at
    /// least one for a causal model).
    fn sequence_steps(&self, len: usize) -> Result<usize> {
        self.check_loaded()?;
        let c = self.step_width().max(1);
        if !len.is_multiple_of(c) || (self.is_causal() && len == 0) {
            return Err(Error::WrongInputLength {
                expected: c,
                given: len % c,
            });
        }
        Ok(len / c)
    }

    /// Real values of the last recurrent layer's hidden state (host-side
    /// convenience for tests and reports; int16 Q15 is divided by 32768).
    /// Returns the hidden width.
    pub fn hidden_state(&self, state: &mut [u8], out: &mut [f32]) -> Result<usize> {
        self.check_state(state.len())?;
        #[cfg(feature = "recurrent")]
        return self.last_recurrent()?.hidden_real(state, out);
        #[cfg(not(feature = "recurrent"))]
        Err(Error::NotRecurrent)
    }

    /// One token of a causal model: checks, the position, `fill` puts the
    /// token's (normalized or quantized) values into the work buffer, the
    /// layers run in a step pass with the cache, the position advances.
    #[allow(unused_variables, unused_mut)]
    fn step_causal<'r, T: Element>(
        &self,
        numeric: Numeric,
        x_len: usize,
        state: &mut [u8],
        arena: &'r mut [u8],
        fill: impl FnOnce(&Self, &mut [T], usize),
    ) -> Result<&'r [T]> {
        self.check_loaded()?;
        if self.numeric != numeric {
            return Err(Error::WrongNumericPath);
        }
        if x_len != self.step_width() {
            return Err(Error::WrongInputLength {
                expected: self.step_width(),
                given: x_len,
            });
        }
        if arena.len() < self.arena_bytes {
            return Err(Error::ArenaTooSmall {
                needed: self.arena_bytes,
                given: arena.len(),
            });
        }
        self.check_state(state.len())?;
        #[cfg(feature = "attention")]
        {
            let layout = &self.families.tokens;
            let state = state.get_mut(..self.state_bytes()).ok_or(BAD)?;
            let (word, cache) = state.split_at_mut(4.min(state.len()));
            let word: &mut [u8; 4] = word.try_into().map_err(|_| BAD)?;
            let position = layout.position(u32::from_le_bytes(*word))?;
            let (work, scratch) = self.split::<T>(arena)?;
            fill(self, work.cur, position % layout.tokens.max(1));
            let mut ctx = Ctx {
                pass: Pass::Step { position },
                scratch,
                state: cache,
                families: &self.families,
            };
            let shape = (self.input_row, 1);
            let out = self.forward(0..self.steps.len(), shape, work, &mut ctx)?;
            // Below 2 tokens <= 512 (see `Layout::position`): fits a u32.
            *word = ((position + 1) as u32).to_le_bytes();
            return Ok(out);
        }
        #[allow(unreachable_code)]
        Err(Error::NotRecurrent)
    }
}
