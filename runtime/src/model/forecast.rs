//! The encoder-decoder API (feature `seq2seq`): encode a window, then decode
//! step by step, or both in one call ([`Model::forecast_f32`]).
//!
//! # Contract
//! - `encode_*` resets the state, runs the encoder over exactly `window x
//!   input_len` values and leaves the encoder's outputs in the arena: keep
//!   the same arena for this model until the last `decode_*` (running
//!   another model in it between overwrites them).
//! - Each `decode_*` generates one step (`output_len` values, borrowed from
//!   the arena) and counts it in the state; past the model's `horizon` it
//!   answers [`Error::HorizonOutOfRange`] until the next encode.
//! - `forecast_*` is `encode_*` then `horizon` decodes into the caller's
//!   buffer, bit for bit the same values; a horizon of 0 or past the
//!   model's, or a buffer shorter than `horizon x output_len`, is an error
//!   before anything runs.
//!
//! Outputs are in the normalized units of their feedback channels (see
//! [`Model::input_normalization`]); int8 outputs in the output quantization.

use super::run::Work;
use super::Model;
use crate::error::{Error, Result};
use crate::format::Numeric;
use crate::layers::seq2seq::Decoder;
use crate::layers::Element;

/// How the encoder-decoder runs on one numeric path.
trait Path: Element {
    const NUMERIC: Numeric;
    /// The model's input for one window step: `x_t` normalized (f32) or as is.
    fn fill(model: &Model<'_>, x_t: &[Self], cur: &mut [Self]);
    /// The first decoder input from the last window step's input.
    fn start(decoder: &Decoder<'_>, x: &[Self], state: &mut [u8]) -> Result<()>;
    /// One decoder step into `y`.
    fn step(
        decoder: &Decoder<'_>,
        state: &mut [u8],
        gates: (&mut [u8], usize),
        scratch: &mut [u8],
        y: &mut [Self],
    ) -> Result<()>;
}

#[cfg(feature = "f32")]
impl Path for f32 {
    const NUMERIC: Numeric = Numeric::F32;
    fn fill(model: &Model<'_>, x_t: &[f32], cur: &mut [f32]) {
        model.normalize_into(x_t, 0, cur);
    }
    fn start(decoder: &Decoder<'_>, x: &[f32], state: &mut [u8]) -> Result<()> {
        decoder.start_f32(x, state)
    }
    fn step(
        decoder: &Decoder<'_>,
        state: &mut [u8],
        (gates, _): (&mut [u8], usize),
        scratch: &mut [u8],
        y: &mut [f32],
    ) -> Result<()> {
        decoder.step_f32(state, gates, scratch, y)
    }
}

#[cfg(feature = "int8")]
impl Path for i8 {
    const NUMERIC: Numeric = Numeric::Int8;
    fn fill(_: &Model<'_>, x_t: &[i8], cur: &mut [i8]) {
        cur.iter_mut().zip(x_t).for_each(|(d, &x)| *d = x);
    }
    fn start(decoder: &Decoder<'_>, x: &[i8], state: &mut [u8]) -> Result<()> {
        decoder.start_i8(x, state)
    }
    fn step(
        decoder: &Decoder<'_>,
        state: &mut [u8],
        gates: (&mut [u8], usize),
        scratch: &mut [u8],
        y: &mut [i8],
    ) -> Result<()> {
        decoder.step_i8(state, gates, scratch, y)
    }
}

impl<'a> Model<'a> {
    fn decoder(&self) -> Result<&Decoder<'a>> {
        self.check_loaded()?;
        self.families
            .seq2seq
            .decoder
            .as_ref()
            .ok_or(Error::NotSeq2Seq)
    }

    /// Encoder steps an encoder-decoder reads (0 for other models).
    pub fn window(&self) -> usize {
        self.decoder().map_or(0, |d| d.window)
    }

    /// Most steps an encoder-decoder decodes after one encode (0 for other models).
    pub fn horizon(&self) -> usize {
        self.decoder().map_or(0, |d| d.horizon)
    }

    /// The work buffers, the recurrent gate scratch (and its gate rows) and
    /// the decoder's scratch.
    #[allow(clippy::type_complexity)]
    fn split_decoder<'r, T: Element>(
        &self,
        arena: &'r mut [u8],
    ) -> Result<(Work<'r, T>, (&'r mut [u8], usize), &'r mut [u8])> {
        let recurrent = &self.families.recurrent;
        let (work, scratch) = self.split::<T>(arena)?;
        let (gates, decoder) = scratch.split_at_mut(recurrent.scratch_bytes().min(scratch.len()));
        Ok((work, (gates, recurrent.gate_rows), decoder))
    }

    fn encode<T: Path>(&self, xs: &[T], state: &mut [u8], arena: &mut [u8]) -> Result<()> {
        let d = self.decoder()?;
        self.check_run(T::NUMERIC, self.input_len(), arena.len())?;
        let c = self.input_len();
        if xs.len() != d.window * c {
            return Err(Error::WrongInputLength {
                expected: d.window * c,
                given: xs.len(),
            });
        }
        self.reset(state)?;
        for (t, x_t) in xs.chunks_exact(c).enumerate() {
            let (work, (gates, _), decoder) = self.split_decoder::<T>(arena)?;
            T::fill(self, x_t, work.cur);
            if t + 1 == d.window {
                T::start(d, work.cur, state)?;
            }
            let h = self.run_steps(work, gates, state)?;
            d.store(t, h, decoder)?;
        }
        d.set_decoded(state, 0)
    }

    fn decode<'r, T: Path>(&self, state: &mut [u8], arena: &'r mut [u8]) -> Result<&'r [T]> {
        let d = self.decoder()?;
        self.check_state(state.len())?;
        self.check_run(T::NUMERIC, self.input_len(), arena.len())?;
        let done = d.decoded(state)?;
        if done >= d.horizon {
            return Err(Error::HorizonOutOfRange {
                max: d.horizon,
                given: done.saturating_add(1),
            });
        }
        let (work, gates, decoder) = self.split_decoder::<T>(arena)?;
        T::step(d, state, gates, decoder, work.cur)?;
        d.set_decoded(state, done + 1)?;
        let y: &'r [T] = work.cur;
        y.get(..d.outputs).ok_or(Error::NotSeq2Seq)
    }

    fn forecast<T: Path>(
        &self,
        window: &[T],
        horizon: usize,
        state: &mut [u8],
        arena: &mut [u8],
        out: &mut [T],
    ) -> Result<()> {
        let d = self.decoder()?;
        if horizon == 0 || horizon > d.horizon {
            return Err(Error::HorizonOutOfRange {
                max: d.horizon,
                given: horizon,
            });
        }
        let needed = horizon * d.outputs;
        if out.len() < needed {
            return Err(Error::OutputTooSmall {
                needed,
                given: out.len(),
            });
        }
        self.encode(window, state, arena)?;
        for step in out.chunks_exact_mut(d.outputs).take(horizon) {
            step.copy_from_slice(self.decode::<T>(state, arena)?);
        }
        Ok(())
    }

    #[cfg(feature = "f32")]
    /// Encode a window of `window() x input_len` raw f32 values (resets the
    /// state; the encoder's outputs stay in the arena for the decoder).
    pub fn encode_f32(&self, window: &[f32], state: &mut [u8], arena: &mut [u8]) -> Result<()> {
        self.encode(window, state, arena)
    }

    #[cfg(feature = "int8")]
    /// Encode a window of quantized int8 values (see [`Model::quantize_input`]). Integer-only.
    pub fn encode_i8(&self, window: &[i8], state: &mut [u8], arena: &mut [u8]) -> Result<()> {
        self.encode(window, state, arena)
    }

    #[cfg(feature = "f32")]
    /// Decode the next step (f32): `output_len` values, borrowed from the arena.
    pub fn decode_f32<'r>(&self, state: &mut [u8], arena: &'r mut [u8]) -> Result<&'r [f32]> {
        self.decode(state, arena)
    }

    #[cfg(feature = "int8")]
    /// Decode the next step (int8). Integer-only.
    pub fn decode_i8<'r>(&self, state: &mut [u8], arena: &'r mut [u8]) -> Result<&'r [i8]> {
        self.decode(state, arena)
    }

    #[cfg(feature = "f32")]
    /// Encode `window` and decode `horizon` steps into `out` (`horizon x
    /// output_len` values, step after step).
    pub fn forecast_f32(
        &self,
        window: &[f32],
        horizon: usize,
        state: &mut [u8],
        arena: &mut [u8],
        out: &mut [f32],
    ) -> Result<()> {
        self.forecast(window, horizon, state, arena, out)
    }

    #[cfg(feature = "int8")]
    /// [`Model::forecast_f32`] on int8 values. Integer-only.
    pub fn forecast_i8(
        &self,
        window: &[i8],
        horizon: usize,
        state: &mut [u8],
        arena: &mut [u8],
        out: &mut [i8],
    ) -> Result<()> {
        self.forecast(window, horizon, state, arena, out)
    }
}
