//! Runs the embedded model on every embedded test vector and reports over
//! semihosting, one line each (parsed by `xtask/src/qemu.rs`):
//!
//! ```text
//! model <f32|int8> inputs <n> outputs <m> macs <k> arena <bytes>
//! stack-after-load <bytes>
//! calib <instructions> <ticks>
//! out <index> <output bytes in hex, as in memory (LE)> <instructions>
//! stack <high-water bytes>
//! done <count> instructions <total>
//! ```
//!
//! Recurrent models also print `ram state <bytes> arena <bytes>` after the
//! `model` line; each vector is a whole sequence fed step by step through the
//! streaming API (`reset`, `step_*` per sample, `finish_*`), and the `out`
//! instructions cover the whole sequence. Then the **streaming example** runs:
//! every vector's samples back to back with no reset, as a sensor would deliver
//! them, asking the model for an answer after every sample and printing
//! `stream <sample> <class>` whenever the answer changes, and finally
//! `stream-done <samples> <changes>`.
//!
//! Causal transformers also print the `ram` line; each vector is a sequence
//! fed one token at a time through the key/value cache (`reset`, `step_*`),
//! and its `out` line holds every step's output row back to back; the
//! instructions cover the steps only (not the printing).
//!
//! Encoder-decoders (seq2seq) print the `ram` line too; each vector is one
//! window, encoded (`encode_*`) and then decoded step by step (`decode_*`,
//! the step API) over the whole horizon; its `out` line holds every decoded
//! step's output row back to back (the host's vectors come from the one-call
//! `forecast_*`, so parity also checks that the two APIs agree), and
//! `seq2seq <index> encode <instructions> decode <instructions>` splits the
//! instructions of the window; the `out` instructions are their sum.
//!
//! then exits with semihosting success; any error prints `error <text>` and
//! exits with failure. Instructions are SysTick ticks times the instructions
//! per tick that QEMU's `-icount shift=0` gives on the board (see build.rs);
//! `calib` times a loop of known length so the host can check that factor.
//! `stack-after-load` is the high-water mark once the model is loaded (most of
//! the stack goes to `Model::from_bytes`), `stack` the one at the end.

#![no_std]
#![no_main]

use core::fmt::{self, Write};

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};
use harness::{instructions, ticks, Output};
use panic_semihosting as _;
use runtime::{Arena, Model, Numeric, TestVectors};

/// SysTick instruction counting and the timed inference, shared with `defmt-qemu/`.
mod harness;

include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// The model blob; weights are borrowed from it in flash.
static MODEL: &[u8] = &harness::Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.bin"))).0;
/// The parsed model (about 2 KB of layer descriptions): loaded in place into
/// a static, so it is neither on the stack nor copied.
static mut LOADED: Model<'static> = Model::empty();
/// postcard `TestVectors` for the model.
static VECTORS: &[u8] =
    &harness::Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/vectors.bin"))).0;

/// Word written over the free stack at start; the first word that differs at
/// the end marks the deepest the stack went.
const STACK_PAINT: u32 = 0x5EED_C0DE;
/// Bytes below the current stack pointer left unpainted (room for `paint_stack` itself).
const PAINT_MARGIN: usize = 64;

extern "C" {
    // From cortex-m-rt's link.x: the stack spans [_stack_end, _stack_start).
    static _stack_start: u32;
    static _stack_end: u32;
}

fn stack_bounds() -> (usize, usize) {
    // Addresses only; the symbols are never read as values.
    (
        core::ptr::addr_of!(_stack_end) as usize,
        core::ptr::addr_of!(_stack_start) as usize,
    )
}

/// Fill the free stack (from its lowest address to just below the current
/// stack pointer) with [`STACK_PAINT`].
#[inline(never)]
fn paint_stack() {
    let (bottom, _) = stack_bounds();
    let limit = (cortex_m::register::msp::read() as usize).saturating_sub(PAINT_MARGIN) & !3;
    let mut addr = bottom;
    while addr < limit {
        // SAFETY: [bottom, limit) is RAM between the end of the statics and the
        // stack pointer minus a margin: no live data is there (no interrupt is
        // enabled yet, and this loop calls nothing), and it is word aligned.
        unsafe { core::ptr::write_volatile(addr as *mut u32, STACK_PAINT) };
        addr += 4;
    }
}

/// Bytes of stack ever used since [`paint_stack`]: from the stack top down to
/// the lowest word that no longer holds the paint.
fn stack_high_water() -> usize {
    let (bottom, top) = stack_bounds();
    let mut addr = bottom;
    // SAFETY: every address read is a word-aligned RAM address inside the stack
    // region; reading it (volatile, as u32) creates no reference to live data.
    while addr < top && unsafe { core::ptr::read_volatile(addr as *const u32) } == STACK_PAINT {
        addr += 4;
    }
    top - addr
}

/// A line assembled in a small buffer and sent to the host in few semihosting calls.
struct Line {
    out: hio::HostStream,
    buf: [u8; 128],
    len: usize,
}

impl Line {
    fn flush(&mut self) {
        let _ = self.out.write_all(&self.buf[..self.len]);
        self.len = 0;
    }
    fn byte(&mut self, b: u8) {
        if self.len == self.buf.len() {
            self.flush();
        }
        self.buf[self.len] = b;
        self.len += 1;
    }
    fn hex(&mut self, b: u8) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        self.byte(DIGITS[usize::from(b >> 4)]);
        self.byte(DIGITS[usize::from(b & 15)]);
    }
    fn end(&mut self) {
        self.byte(b'\n');
        self.flush();
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(|b| self.byte(b));
        Ok(())
    }
}

fn fail(line: &mut Line, what: fmt::Arguments) -> ! {
    let _ = write!(line, "error {what}");
    line.end();
    loop {
        debug::exit(debug::EXIT_FAILURE);
    }
}

#[entry]
fn main() -> ! {
    paint_stack();
    let Ok(out) = hio::hstdout() else {
        loop {
            debug::exit(debug::EXIT_FAILURE);
        }
    };
    let mut line = Line {
        out,
        buf: [0; 128],
        len: 0,
    };

    let Some(mut core) = cortex_m::Peripherals::take() else {
        fail(&mut line, format_args!("core peripherals already taken"))
    };
    // SAFETY: `main` runs once and is the only code that names `LOADED` (no
    // interrupt handler touches it), so this is the only reference ever made.
    let model: &'static mut Model<'static> = unsafe { &mut *core::ptr::addr_of_mut!(LOADED) };
    if let Err(e) = model.load(MODEL) {
        fail(&mut line, format_args!("model: {e}"));
    }
    let model: &Model = model;
    let vectors = match TestVectors::from_bytes(VECTORS) {
        Ok(v) => v,
        Err(e) => fail(&mut line, format_args!("vectors: {e}")),
    };
    let Some(arena) = cortex_m::singleton!(: Arena<ARENA_BYTES> = Arena::new()) else {
        fail(&mut line, format_args!("arena already taken"))
    };
    let Some(input_f32) = cortex_m::singleton!(: [f32; INPUT_F32_LEN] = [0.0; INPUT_F32_LEN])
    else {
        fail(&mut line, format_args!("input buffer already taken"))
    };

    let Some(state) = cortex_m::singleton!(: Arena<STATE_BYTES> = Arena::new()) else {
        fail(&mut line, format_args!("state already taken"))
    };

    let _ = write!(line, "stack-after-load {}", stack_high_water());
    line.end();
    let numeric = match model.numeric() {
        Numeric::F32 => "f32",
        Numeric::Int8 => "int8",
    };
    let stats = model.stats();
    let _ = write!(
        line,
        "model {numeric} inputs {} outputs {} macs {} arena {}",
        model.input_len(),
        model.output_len(),
        stats.macs,
        model.arena_bytes()
    );
    line.end();

    harness::start_systick(&mut core.SYST);
    let (calib_instructions, calib_ticks) = harness::calibrate();
    let _ = write!(line, "calib {calib_instructions} {calib_ticks}");
    line.end();

    if model.is_recurrent() || model.is_causal() || model.is_seq2seq() {
        let _ = write!(
            line,
            "ram state {} arena {}",
            model.state_bytes(),
            model.arena_bytes()
        );
        line.end();
    }

    let mut total = 0u64;
    for index in 0..vectors.count as usize {
        #[cfg(feature = "seq2seq")]
        if model.is_seq2seq() {
            match run_forecast(model, &vectors, index, input_f32, state, arena, &mut line) {
                Ok((encode, decode)) => {
                    total += encode + decode;
                    let _ = write!(line, " {}", encode + decode);
                    line.end();
                    let _ = write!(line, "seq2seq {index} encode {encode} decode {decode}");
                    line.end();
                }
                Err(e) => fail(&mut line, format_args!("vector {index}: {e}")),
            }
            continue;
        }
        if model.is_causal() {
            match run_causal(model, &vectors, index, input_f32, state, arena, &mut line) {
                Ok(n) => {
                    total += n;
                    let _ = write!(line, " {n}");
                    line.end();
                }
                Err(e) => fail(&mut line, format_args!("vector {index}: {e}")),
            }
            continue;
        }
        if model.is_recurrent() {
            let start = ticks();
            let result = run_sequence(model, &vectors, index, input_f32, state, arena, &mut line);
            let elapsed = ticks() - start;
            if let Err(e) = result {
                fail(&mut line, format_args!("vector {index}: {e}"));
            }
            let n = instructions(elapsed);
            total += n;
            let _ = write!(line, " {n}");
            line.end();
            continue;
        }
        let elapsed = match harness::infer(model, &vectors, index, input_f32, arena.as_mut_bytes())
        {
            Ok((y, elapsed)) => {
                let _ = write!(line, "out {index} ");
                match y {
                    Output::F32(y) => y
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .for_each(|b| line.hex(b)),
                    Output::I8(y) => y.iter().for_each(|&v| line.hex(v as u8)),
                }
                elapsed
            }
            Err(e) => fail(&mut line, format_args!("vector {index}: {e}")),
        };
        let n = instructions(elapsed);
        total += n;
        let _ = write!(line, " {n}");
        line.end();
    }

    if model.is_recurrent() && !model.is_seq2seq() {
        if let Err(e) = stream(model, &vectors, input_f32, state, arena, &mut line) {
            fail(&mut line, format_args!("stream: {e}"));
        }
    }

    let _ = write!(line, "stack {}", stack_high_water());
    line.end();
    let _ = write!(line, "done {} instructions {total}", vectors.count);
    line.end();
    loop {
        debug::exit(debug::EXIT_SUCCESS);
    }
}

/// One step of sample `t` of vector `index` (f32 inputs are decoded into `input_f32`).
fn step(
    model: &Model,
    vectors: &TestVectors,
    index: usize,
    t: usize,
    input_f32: &mut [f32],
    state: &mut [u8],
    arena: &mut [u8],
) -> Result<(), runtime::Error> {
    step_output(model, vectors, index, t, input_f32, state, arena, |_| ())
}

/// Output of one step, as little-endian bytes.
enum StepOutput<'r> {
    F32(&'r [f32]),
    I8(&'r [i8]),
}

/// One step (as [`step`]), handing its output row to `use_output`.
#[allow(clippy::too_many_arguments)]
fn step_output<R>(
    model: &Model,
    vectors: &TestVectors,
    index: usize,
    t: usize,
    input_f32: &mut [f32],
    state: &mut [u8],
    arena: &mut [u8],
    use_output: impl FnOnce(StepOutput) -> R,
) -> Result<R, runtime::Error> {
    let channels = model.step_width();
    let bytes = vectors.input_bytes(index);
    match model.numeric() {
        Numeric::F32 => {
            let sample = bytes
                .get(t * channels * 4..(t + 1) * channels * 4)
                .unwrap_or(&[]);
            for (dst, c) in input_f32.iter_mut().zip(sample.chunks_exact(4)) {
                *dst = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            let y = model.step_f32(&input_f32[..channels.min(input_f32.len())], state, arena)?;
            Ok(use_output(StepOutput::F32(y)))
        }
        Numeric::Int8 => {
            let all = vectors.input_i8(index);
            let sample = all.get(t * channels..(t + 1) * channels).unwrap_or(&[]);
            Ok(use_output(StepOutput::I8(
                model.step_i8(sample, state, arena)?,
            )))
        }
    }
}

/// Vector `index` of a causal model, one token at a time; prints the `out`
/// line's bytes and returns the instructions spent in the steps.
fn run_causal(
    model: &Model,
    vectors: &TestVectors,
    index: usize,
    input_f32: &mut [f32],
    state: &mut Arena<STATE_BYTES>,
    arena: &mut Arena<ARENA_BYTES>,
    line: &mut Line,
) -> Result<u64, runtime::Error> {
    model.reset(state.as_mut_bytes())?;
    let _ = write!(line, "out {index} ");
    let mut elapsed = 0u64;
    for t in 0..vectors.steps(index) {
        let start = ticks();
        let printed = step_output(
            model,
            vectors,
            index,
            t,
            input_f32,
            state.as_mut_bytes(),
            arena.as_mut_bytes(),
            |y| {
                elapsed += ticks() - start;
                match y {
                    StepOutput::F32(y) => y
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .for_each(|b| line.hex(b)),
                    StepOutput::I8(y) => y.iter().for_each(|&v| line.hex(v as u8)),
                }
            },
        );
        printed?;
    }
    Ok(instructions(elapsed))
}

/// Window `index` of an encoder-decoder: encoded, then decoded one step at
/// a time over the horizon; prints the `out` line's bytes and returns the
/// instructions of the encode and of all the decoded steps.
#[cfg(feature = "seq2seq")]
#[cfg_attr(not(feature = "f32"), allow(unused_variables))] // input_f32: the f32 path's
fn run_forecast(
    model: &Model,
    vectors: &TestVectors,
    index: usize,
    input_f32: &mut [f32],
    state: &mut Arena<STATE_BYTES>,
    arena: &mut Arena<ARENA_BYTES>,
    line: &mut Line,
) -> Result<(u64, u64), runtime::Error> {
    let (state, arena) = (state.as_mut_bytes(), arena.as_mut_bytes());
    let start = ticks();
    // The forecast API exists only on the numeric paths the build enables
    // (the firmware is built with the model's features only).
    match model.numeric() {
        #[cfg(feature = "f32")]
        Numeric::F32 => {
            vectors.input_f32(index, input_f32);
            model.encode_f32(input_f32, state, arena)?;
        }
        #[cfg(feature = "int8")]
        Numeric::Int8 => model.encode_i8(vectors.input_i8(index), state, arena)?,
        #[allow(unreachable_patterns)]
        _ => return Err(runtime::Error::WrongNumericPath),
    }
    let encode = ticks() - start;
    let _ = write!(line, "out {index} ");
    let mut decode = 0u64;
    for _ in 0..model.horizon() {
        let start = ticks();
        match model.numeric() {
            #[cfg(feature = "f32")]
            Numeric::F32 => {
                let y = model.decode_f32(state, arena)?;
                decode += ticks() - start;
                y.iter()
                    .flat_map(|v| v.to_le_bytes())
                    .for_each(|b| line.hex(b));
            }
            #[cfg(feature = "int8")]
            Numeric::Int8 => {
                let y = model.decode_i8(state, arena)?;
                decode += ticks() - start;
                y.iter().for_each(|&v| line.hex(v as u8));
            }
            #[allow(unreachable_patterns)]
            _ => return Err(runtime::Error::WrongNumericPath),
        }
    }
    Ok((instructions(encode), instructions(decode)))
}

/// Vector `index` as a whole sequence through the streaming API; prints its `out` bytes.
fn run_sequence(
    model: &Model,
    vectors: &TestVectors,
    index: usize,
    input_f32: &mut [f32],
    state: &mut Arena<STATE_BYTES>,
    arena: &mut Arena<ARENA_BYTES>,
    line: &mut Line,
) -> Result<(), runtime::Error> {
    model.reset(state.as_mut_bytes())?;
    for t in 0..vectors.steps(index) {
        step(
            model,
            vectors,
            index,
            t,
            input_f32,
            state.as_mut_bytes(),
            arena.as_mut_bytes(),
        )?;
    }
    let _ = write!(line, "out {index} ");
    match model.numeric() {
        Numeric::F32 => model
            .finish_f32(state.as_mut_bytes(), arena.as_mut_bytes())?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .for_each(|b| line.hex(b)),
        Numeric::Int8 => model
            .finish_i8(state.as_mut_bytes(), arena.as_mut_bytes())?
            .iter()
            .for_each(|&v| line.hex(v as u8)),
    }
    Ok(())
}

/// The streaming example: samples arrive one at a time (every vector's, back
/// to back, never reset) and the model answers after each one.
fn stream(
    model: &Model,
    vectors: &TestVectors,
    input_f32: &mut [f32],
    state: &mut Arena<STATE_BYTES>,
    arena: &mut Arena<ARENA_BYTES>,
    line: &mut Line,
) -> Result<(), runtime::Error> {
    model.reset(state.as_mut_bytes())?;
    let (mut sample, mut changes, mut last) = (0usize, 0usize, usize::MAX);
    for index in 0..vectors.count as usize {
        for t in 0..vectors.steps(index) {
            step(
                model,
                vectors,
                index,
                t,
                input_f32,
                state.as_mut_bytes(),
                arena.as_mut_bytes(),
            )?;
            let class = match model.numeric() {
                Numeric::F32 => {
                    runtime::argmax(model.finish_f32(state.as_mut_bytes(), arena.as_mut_bytes())?)
                }
                Numeric::Int8 => {
                    runtime::argmax(model.finish_i8(state.as_mut_bytes(), arena.as_mut_bytes())?)
                }
            };
            if class != last {
                let _ = write!(line, "stream {sample} {class}");
                line.end();
                changes += 1;
                last = class;
            }
            sample += 1;
        }
    }
    let _ = write!(line, "stream-done {sample} {changes}");
    line.end();
    Ok(())
}
