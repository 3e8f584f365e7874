//! The sequence-to-sequence family (feature `seq2seq`, with `recurrent`): a
//! recurrent encoder (the model's recurrent layers) read over a window of
//! `window` steps, then a decoder cell that generates up to `horizon`
//! steps, each fed its own previous output, attending over the encoder's
//! outputs at every step. The kernels are the recurrent cells', the
//! attention kernels' and the dense ones'.
//!
//! # Decoder step (both paths; see [`LayerDef::DecoderF32`])
//! 1. `h = cell(y_prev, h)` (the encoder's top cell kind and width; its
//!    state starts as the encoder's final state);
//! 2. `ctx = attention(q = h, keys = values = encoder outputs)`: scaled
//!    dot-product scores `q . e_i / sqrt(hidden)`, softmax over the window,
//!    weighted sum of the encoder outputs (Luong's multiplicative attention,
//!    computed after the cell as Luong does, with the transformer layers'
//!    kernels: no parameters, and integer-only on the int8 path);
//! 3. `a = tanh(W_c [ctx; h] + b_c)` (`attention` values);
//! 4. `y = W_y a + b_y` (`outputs` values), the step's answer and the next
//!    step's input. The first input is the last window step's `feedback`
//!    channels.
//!
//! # Arena and state
//! The arena holds, after the recurrent gate scratch, the encoder's outputs
//! (`window x hidden` values: they live there from `encode` until the last
//! decode step, so the caller keeps the arena for the model in between),
//! the scores, `[ctx; h]` and `a`. The state holds the encoder's recurrent
//! states (the decoder cell continues in its last layer's: one decoder
//! layer, started from the top encoder layer's final state), then the
//! previous output and the step count; all sizes are exact and known at
//! export.

use core::ops::Range;

use super::dense::check_multipliers;
use super::recurrent::{Layout as RecurrentLayout, Top};
use super::{check_len, check_rescale, check_width, ModelStats, Plan, BAD};
use crate::error::{Error, Result};
use crate::format::Activation;
use crate::format::{Cell, DenseI8Params, LayerDef, Numeric, Rescale, MAX_TOKENS};
#[cfg(feature = "f32")]
use crate::kernels::activation::activate_f32;
use crate::kernels::activation::table_i8;
use crate::kernels::attention::{attend_f32, attend_i8};
use crate::kernels::attention::{KeyValues, Span};
use crate::kernels::le_i32;
use crate::kernels::recurrent::{output_i8, RecurrentF32, RecurrentI8};
use crate::kernels::recurrent::{params_len_f32, params_len_i8};
use crate::kernels::{dense_f32, dense_i8};
use crate::quant::{is_valid_multiplier, rescale, saturate_i8};

/// The parameters of a decoder, by numeric path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Params<'a> {
    #[cfg(feature = "f32")]
    F32 {
        cell: &'a [u8],
        combine_weights: &'a [u8],
        combine_bias: &'a [u8],
        out_weights: &'a [u8],
        out_bias: &'a [u8],
    },
    #[cfg(feature = "int8")]
    I8 {
        start: Rescale,
        cell: &'a [u8],
        query: Rescale,
        score: Rescale,
        exp_table: &'a [u8; 512],
        context: Rescale,
        combine: DenseI8Params<'a>,
        tanh: &'a [u8; 256],
        out: DenseI8Params<'a>,
    },
}

/// A validated decoder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decoder<'a> {
    pub cell: Cell,
    pub window: usize,
    pub horizon: usize,
    pub outputs: usize,
    pub hidden: usize,
    pub attention: usize,
    /// `outputs` u16 (LE) input channels: the first decoder input.
    pub feedback: &'a [u8],
    /// Offset of the decoder cell's state in the recurrent state, in
    /// elements: the encoder's last layer's (the decoder continues it).
    pub state: usize,
    /// Byte offset of the decoder's tail state (previous output, step count).
    pub tail: usize,
    pub params: Params<'a>,
}

/// Model-wide facts of a sequence-to-sequence model.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Layout<'a> {
    pub decoder: Option<Decoder<'a>>,
}

impl Layout<'_> {
    /// Not a sequence-to-sequence model.
    pub(crate) const fn new() -> Self {
        Layout { decoder: None }
    }
}

/// Bytes per element of a numeric path (f32 4, int8 1).
fn element(numeric: Numeric) -> usize {
    match numeric {
        Numeric::F32 => 4,
        Numeric::Int8 => 1,
    }
}

fn align4(bytes: usize) -> usize {
    bytes.div_ceil(4) * 4
}

/// Where a decoder's buffers lie in its part of the arena scratch, in bytes.
#[derive(Debug, Clone)]
pub(crate) struct ScratchPlan {
    pub encoder: core::ops::Range<usize>,
    pub scores: core::ops::Range<usize>,
    pub joined: core::ops::Range<usize>,
    pub attention: core::ops::Range<usize>,
    pub len: usize,
}

impl Decoder<'_> {
    fn numeric(&self) -> Numeric {
        match self.params {
            #[cfg(feature = "f32")]
            Params::F32 { .. } => Numeric::F32,
            #[cfg(feature = "int8")]
            Params::I8 { .. } => Numeric::Int8,
        }
    }

    /// The decoder's scratch, after the recurrent gate scratch: the encoder
    /// outputs, the scores (and the int8 path's `hidden` accumulators),
    /// `[ctx; h]` and `a`.
    pub(crate) fn scratch(&self) -> ScratchPlan {
        let e = element(self.numeric());
        let encoder = 0..align4(self.window * self.hidden * e);
        let scores = encoder.end..encoder.end + 4 * (self.window + self.hidden);
        let joined = scores.end..scores.end + align4(2 * self.hidden * e);
        let attention = joined.end..joined.end + align4(self.attention * e);
        let len = attention.end;
        ScratchPlan {
            encoder,
            scores,
            joined,
            attention,
            len,
        }
    }

    /// Bytes of the decoder's state after the recurrent states: the previous
    /// output (4-byte rounded) and the step count (u32).
    pub(crate) fn tail_state(&self) -> usize {
        align4(self.outputs * element(self.numeric())) + 4
    }

    /// `"decoder lstm f32"` and the like.
    pub(crate) fn kind(&self) -> &'static str {
        match (self.cell, self.numeric()) {
            (Cell::Rnn, Numeric::F32) => "decoder rnn + attention f32",
            (Cell::Lstm, Numeric::F32) => "decoder lstm + attention f32",
            (Cell::Gru, Numeric::F32) => "decoder gru + attention f32",
            (Cell::Rnn, Numeric::Int8) => "decoder rnn + attention int8",
            (Cell::Lstm, Numeric::Int8) => "decoder lstm + attention int8",
            (Cell::Gru, Numeric::Int8) => "decoder gru + attention int8",
        }
    }

    /// Adds parameters, MACs per decoder step and parameter bytes.
    pub(crate) fn add_stats(&self, s: &mut ModelStats) {
        let (o, h, a, n) = (self.outputs, self.hidden, self.attention, self.window);
        let rows = self.cell.gates() * h;
        let cell = rows * (o + h);
        s.macs += cell + 2 * n * h + a * 2 * h + o * a;
        s.parameters += cell + 2 * rows + a * 2 * h + a + o * a + o;
        s.parameter_bytes += match self.params {
            #[cfg(feature = "f32")]
            Params::F32 {
                cell,
                combine_weights,
                combine_bias,
                out_weights,
                out_bias,
            } => {
                cell.len()
                    + combine_weights.len()
                    + combine_bias.len()
                    + out_weights.len()
                    + out_bias.len()
            }
            #[cfg(feature = "int8")]
            Params::I8 {
                cell, combine, out, ..
            } => {
                let dense = |d: &DenseI8Params<'_>| {
                    d.weights.len() + d.bias.len() + d.multiplier.len() + d.shift.len()
                };
                cell.len() + dense(&combine) + dense(&out) + 512 + 256
            }
        };
    }
}

fn check_dense(at: u32, d: &DenseI8Params<'_>, inputs: usize, outputs: usize) -> Result<()> {
    check_len(at, d.weights, inputs * outputs)?;
    check_len(at, d.bias, 4 * outputs)?;
    check_multipliers(at, d.multiplier, d.shift, outputs)
}

/// The multipliers of an int8 recurrent cell's parameter block are valid.
fn check_cell_i8(at: u32, cell: Cell, inputs: usize, hidden: usize, params: &[u8]) -> Result<()> {
    check_len(at, params, params_len_i8(cell, inputs, hidden))?;
    let r = cell.gates() * hidden;
    let weights = r * inputs + r * hidden + 8 * r;
    let (multipliers, shifts) = params
        .get(weights..)
        .ok_or(Error::ShapeMismatch { layer: at })?
        .split_at(8 * r);
    for (m, &s) in multipliers.chunks_exact(4).zip(shifts) {
        if !is_valid_multiplier(le_i32(m), s) {
            return Err(Error::BadQuantization { layer: at });
        }
    }
    Ok(())
}

/// A window or horizon in `1..=MAX_TOKENS`.
fn check_steps(at: u32, value: u32) -> Result<usize> {
    if value == 0 || value > MAX_TOKENS {
        return Err(Error::DimensionOutOfRange { layer: at, value });
    }
    Ok(value as usize)
}

/// Validate a decoder definition (`None`: not of this family). It must
/// follow the encoder's last recurrent layer, with that layer's cell kind
/// and width.
pub(crate) fn validate<'a>(
    at: u32,
    def: &LayerDef<'a>,
    plan: &mut Plan<'_, 'a>,
) -> Option<Result<()>> {
    let (window, horizon, cell, outputs, hidden, attention, feedback) = match *def {
        LayerDef::DecoderF32 {
            window,
            horizon,
            cell,
            outputs,
            hidden,
            attention,
            feedback,
            ..
        }
        | LayerDef::DecoderI8 {
            window,
            horizon,
            cell,
            outputs,
            hidden,
            attention,
            feedback,
            ..
        } => (window, horizon, cell, outputs, hidden, attention, feedback),
        _ => return None,
    };
    Some((|| {
        let (n, steps) = (check_steps(at, window)?, check_steps(at, horizon)?);
        let (o, h, a) = (
            check_width(at, outputs)?,
            check_width(at, hidden)?,
            check_width(at, attention)?,
        );
        let mismatch = Error::DecoderMismatch { layer: at };
        let recurrent: &mut RecurrentLayout = &mut plan.families.recurrent;
        let top: Top = recurrent.top;
        // Right after the encoder, with its top layer's width and cell.
        if recurrent.head_start != at as usize || top.hidden != h || top.cell != cell {
            return Err(mismatch);
        }
        check_len(at, feedback, 2 * o)?;
        let channels = plan.input;
        if feedback
            .chunks_exact(2)
            .any(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) >= channels)
        {
            return Err(Error::ShapeMismatch { layer: at });
        }
        let attention_mismatch = Error::AttentionMismatch { layer: at };
        let params = match *def {
            #[cfg(feature = "f32")]
            LayerDef::DecoderF32 { params, .. } => {
                let cell_len = params_len_f32(cell, o, h);
                check_len(at, params.get(..cell_len).unwrap_or(&[]), cell_len)?;
                let sizes = [cell_len, 4 * a * 2 * h, 4 * a, 4 * o * a, 4 * o];
                if params.len() != sizes.iter().sum::<usize>() {
                    return Err(attention_mismatch);
                }
                let mut rest = params;
                let mut take = |n: usize| {
                    let (head, tail) = rest.split_at(n.min(rest.len()));
                    rest = tail;
                    head
                };
                Params::F32 {
                    cell: take(sizes[0]),
                    combine_weights: take(sizes[1]),
                    combine_bias: take(sizes[2]),
                    out_weights: take(sizes[3]),
                    out_bias: take(sizes[4]),
                }
            }
            #[cfg(feature = "int8")]
            LayerDef::DecoderI8 {
                start,
                params,
                query,
                score,
                exp_table,
                context,
                combine,
                tanh,
                out,
                ..
            } => {
                check_cell_i8(at, cell, o, h, params)?;
                for r in [&start, &query, &score, &context] {
                    check_rescale(at, r)?;
                }
                // Queries, keys (the encoder's outputs) and the context are
                // symmetric, as the attention kernel assumes.
                if query.zero_point != 0 || context.zero_point != 0 || top.output_zero_point != 0 {
                    return Err(attention_mismatch);
                }
                check_dense(at, &combine, 2 * h, a).map_err(|e| match e {
                    Error::ShapeMismatch { .. } => attention_mismatch,
                    e => e,
                })?;
                check_dense(at, &out, a, o)?;
                let exp_table: &[u8; 512] = exp_table
                    .try_into()
                    .map_err(|_| Error::ShapeMismatch { layer: at })?;
                if exp_table[0] == 0 && exp_table[1] == 0 {
                    return Err(Error::BadQuantization { layer: at });
                }
                let tanh: &[u8; 256] = tanh
                    .try_into()
                    .map_err(|_| Error::ShapeMismatch { layer: at })?;
                Params::I8 {
                    start,
                    cell: params,
                    query,
                    score,
                    exp_table,
                    context,
                    combine,
                    tanh,
                    out,
                }
            }
            _ => return Err(Error::WrongNumericPath),
        };
        // The decoder cell continues the encoder's last layer in its state.
        let state = top.state;
        let tail = align4(recurrent.state_bytes(plan.numeric));
        plan.families.seq2seq.decoder = Some(Decoder {
            cell,
            window: n,
            horizon: steps,
            outputs: o,
            hidden: h,
            attention: a,
            feedback,
            state,
            tail,
            params,
        });
        plan.width = o;
        Ok(())
    })())
}

/// `bytes` as a slice of `T` (the arena and the state are 4-byte aligned and
/// every region in them starts at a multiple of 4).
fn cast_mut<T: bytemuck::Pod>(bytes: &mut [u8]) -> Result<&mut [T]> {
    bytemuck::try_cast_slice_mut(bytes).map_err(|_| Error::ArenaMisaligned)
}

/// The decoder's regions of its scratch: encoder outputs, scores, `[ctx; h]`, `a`.
struct Regions<'s> {
    encoder: &'s mut [u8],
    scores: &'s mut [u8],
    joined: &'s mut [u8],
    attention: &'s mut [u8],
}

impl Decoder<'_> {
    /// The scratch, split into its regions.
    fn regions<'s>(&self, scratch: &'s mut [u8]) -> Result<Regions<'s>> {
        let plan = self.scratch();
        let scratch = scratch.get_mut(..plan.len).ok_or(BAD)?;
        let (encoder, rest) = scratch.split_at_mut(plan.encoder.end);
        let (scores, rest) = rest.split_at_mut(plan.scores.len().min(rest.len()));
        let (joined, rest) = rest.split_at_mut(plan.joined.len().min(rest.len()));
        let attention = rest.get_mut(..plan.attention.len()).ok_or(BAD)?;
        Ok(Regions {
            encoder,
            scores,
            joined,
            attention,
        })
    }

    /// Bytes per element of this decoder's path.
    fn element(&self) -> usize {
        element(self.numeric())
    }

    /// The decoder cell's part of the state, in bytes.
    fn cell_state(&self) -> Range<usize> {
        let e = match self.numeric() {
            Numeric::F32 => 4,
            Numeric::Int8 => 2,
        };
        let at = self.state * e;
        at..at + self.cell.state_vectors() * self.hidden * e
    }

    /// Exact bytes of state of the whole model.
    pub(crate) fn state_bytes(&self) -> usize {
        self.tail + self.tail_state()
    }

    /// Byte range of the previous output in the state.
    fn previous(&self) -> Range<usize> {
        self.tail..self.tail + self.outputs * self.element()
    }

    /// Byte range of the step count in the state.
    fn count(&self) -> Range<usize> {
        let at = self.tail + align4(self.outputs * self.element());
        at..at + 4
    }

    /// Steps decoded since the last encode (from the state; any value).
    pub(crate) fn decoded(&self, state: &[u8]) -> Result<usize> {
        let word = state.get(self.count()).ok_or(BAD)?;
        Ok(le_i32(word) as u32 as usize)
    }

    /// Record `steps` decoded steps in the state.
    pub(crate) fn set_decoded(&self, state: &mut [u8], steps: usize) -> Result<()> {
        let word = state.get_mut(self.count()).ok_or(BAD)?;
        // At most `horizon` (256): fits a u32.
        word.copy_from_slice(&(steps as u32).to_le_bytes());
        Ok(())
    }

    /// Store encoder output `t` (the encoder's last layer's output, `hidden`
    /// values) in the scratch.
    pub(crate) fn store<T: bytemuck::Pod>(
        &self,
        t: usize,
        h: &[T],
        scratch: &mut [u8],
    ) -> Result<()> {
        let r = self.regions(scratch)?;
        let rows: &mut [T] = cast_mut(r.encoder)?;
        let row = rows
            .get_mut(t * self.hidden..(t + 1) * self.hidden)
            .ok_or(BAD)?;
        row.copy_from_slice(h.get(..self.hidden).ok_or(BAD)?);
        Ok(())
    }

    /// The first decoder input from a window step's (normalized) f32 values.
    #[cfg(feature = "f32")]
    pub(crate) fn start_f32(&self, x: &[f32], state: &mut [u8]) -> Result<()> {
        let prev: &mut [f32] = cast_mut(state.get_mut(self.previous()).ok_or(BAD)?)?;
        for (p, c) in prev.iter_mut().zip(self.feedback.chunks_exact(2)) {
            *p = *x
                .get(usize::from(u16::from_le_bytes([c[0], c[1]])))
                .ok_or(BAD)?;
        }
        Ok(())
    }

    /// The first decoder input from a window step's int8 values.
    #[cfg(feature = "int8")]
    pub(crate) fn start_i8(&self, x: &[i8], state: &mut [u8]) -> Result<()> {
        let Params::I8 { start, out, .. } = self.params else {
            return Err(Error::WrongNumericPath);
        };
        let prev: &mut [i8] = cast_mut(state.get_mut(self.previous()).ok_or(BAD)?)?;
        for (p, c) in prev.iter_mut().zip(self.feedback.chunks_exact(2)) {
            let v = *x
                .get(usize::from(u16::from_le_bytes([c[0], c[1]])))
                .ok_or(BAD)?;
            let r = rescale(
                i32::from(v) - i32::from(start.zero_point),
                start.multiplier,
                start.shift,
            );
            *p = saturate_i8(r.saturating_add(i32::from(out.output_zero_point)));
        }
        Ok(())
    }

    /// One decoder step, f32: `y` gets the `outputs` values. `gates` is the
    /// recurrent scratch, `scratch` the decoder's.
    #[cfg(feature = "f32")]
    pub(crate) fn step_f32(
        &self,
        state: &mut [u8],
        gates: &mut [u8],
        scratch: &mut [u8],
        y: &mut [f32],
    ) -> Result<()> {
        let Params::F32 {
            cell,
            combine_weights,
            combine_bias,
            out_weights,
            out_bias,
        } = self.params
        else {
            return Err(Error::WrongNumericPath);
        };
        let (h, o) = (self.hidden, self.outputs);
        let view = RecurrentF32::from_params(self.cell, o, h, cell).ok_or(BAD)?;
        let (head, tail) = state.split_at_mut(self.tail.min(state.len()));
        let cell_state: &mut [f32] = cast_mut(head.get_mut(self.cell_state()).ok_or(BAD)?)?;
        let prev: &mut [f32] = cast_mut(tail.get_mut(..4 * o).ok_or(BAD)?)?;
        let gates: &mut [f32] = cast_mut(gates)?;
        let rows = self.cell.gates() * h;
        let (gx, gh) = gates.split_at_mut(rows.min(gates.len()));
        view.step(prev, cell_state, gx, gh);

        let r = self.regions(scratch)?;
        let encoder: &[f32] = cast_mut(r.encoder)?;
        let joined: &mut [f32] = cast_mut(r.joined)?;
        let (context, query) = joined.split_at_mut(h.min(joined.len()));
        query.copy_from_slice(cell_state.get(..h).ok_or(BAD)?);
        attend_f32(
            query,
            &self.keys(encoder),
            self.span(),
            None,
            cast_mut(r.scores)?,
            context,
        );
        let a: &mut [f32] = cast_mut(r.attention)?;
        let a = a.get_mut(..self.attention).ok_or(BAD)?;
        dense_f32(
            combine_weights,
            combine_bias,
            joined.get(..2 * h).ok_or(BAD)?,
            a,
        );
        activate_f32(Activation::Tanh, a);
        let y = y.get_mut(..o).ok_or(BAD)?;
        dense_f32(out_weights, out_bias, a, y);
        prev.copy_from_slice(y);
        Ok(())
    }

    /// One decoder step, integer-only; `gate_rows` is the recurrent
    /// scratch's gate part (see the recurrent layout).
    #[cfg(feature = "int8")]
    pub(crate) fn step_i8(
        &self,
        state: &mut [u8],
        (gates, gate_rows): (&mut [u8], usize),
        scratch: &mut [u8],
        y: &mut [i8],
    ) -> Result<()> {
        let Params::I8 {
            cell,
            query,
            score,
            exp_table,
            context,
            combine,
            tanh,
            out,
            ..
        } = self.params
        else {
            return Err(Error::WrongNumericPath);
        };
        let (h, o) = (self.hidden, self.outputs);
        let view = RecurrentI8::from_params(self.cell, o, h, cell).ok_or(BAD)?;
        let (head, tail) = state.split_at_mut(self.tail.min(state.len()));
        let cell_state: &mut [i16] = cast_mut(head.get_mut(self.cell_state()).ok_or(BAD)?)?;
        let prev: &mut [i8] = cast_mut(tail.get_mut(..o).ok_or(BAD)?)?;
        let words: &mut [i32] = cast_mut(gates)?;
        let (gates, permuted) = words.split_at_mut((2 * gate_rows).min(words.len()));
        let rows = self.cell.gates() * h;
        let (gx, gh) = gates.split_at_mut(rows.min(gates.len()));
        view.step(prev, cell_state, gx, gh, bytemuck::cast_slice_mut(permuted));

        let r = self.regions(scratch)?;
        let encoder: &[i8] = cast_mut(r.encoder)?;
        let joined: &mut [i8] = cast_mut(r.joined)?;
        let joined = joined.get_mut(..2 * h).ok_or(BAD)?;
        let (ctx, q) = joined.split_at_mut(h);
        output_i8(query, 0, cell_state.get(..h).ok_or(BAD)?, q);
        let scores: &mut [i32] = cast_mut(r.scores)?;
        let kv = self.keys(encoder);
        attend_i8(
            q,
            &kv,
            self.span(),
            None,
            score,
            exp_table,
            context,
            scores,
            ctx,
        );
        let a: &mut [i8] = cast_mut(r.attention)?;
        let a = a.get_mut(..self.attention).ok_or(BAD)?;
        let c = &combine;
        dense_i8(
            c.weights,
            c.bias,
            c.multiplier,
            c.shift,
            c.output_zero_point,
            joined,
            a,
        );
        table_i8(tanh, a);
        let y = y.get_mut(..o).ok_or(BAD)?;
        dense_i8(
            out.weights,
            out.bias,
            out.multiplier,
            out.shift,
            out.output_zero_point,
            a,
            y,
        );
        prev.copy_from_slice(y);
        Ok(())
    }

    /// The encoder's outputs as one head's keys and values.
    fn keys<'s, T>(&self, encoder: &'s [T]) -> KeyValues<'s, T> {
        KeyValues {
            keys: encoder,
            values: encoder,
            dim: self.hidden,
            tokens: self.window,
            head_offset: 0,
        }
    }

    /// Every encoder step.
    fn span(&self) -> Span {
        Span {
            query: 0,
            first: 0,
            last: self.window - 1,
        }
    }
}
