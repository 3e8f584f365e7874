//! What the two test-vector firmwares share: this crate's `main.rs`, which
//! reports over semihosting as text, and `firmware/defmt-qemu/`, which logs
//! with defmt. Both include this file (`#[path]`), so the code that is
//! timed, and the timing itself, is one copy compiled into each.
//!
//! - Instruction counting: SysTick on the core clock, its wraps counted by
//!   the exception handler here, converted with the board's instructions
//!   per tick under QEMU's `-icount shift=0` (`crate::INSTRUCTIONS_PER_TICK_X2`,
//!   from `build.rs`'s `config.rs`); [`calibrate`] times a loop of known
//!   length so the host can check that factor.
//! - [`infer`]: one feedforward inference on one vector; only the runtime
//!   call lies between the two SysTick reads.
//! - [`Aligned`]: the embedded model and vectors start on a 16-byte boundary
//!   in both.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::exception;
use runtime::{Model, Numeric, TestVectors};

/// Embedded bytes at a fixed alignment. Where a blob lands in flash
/// otherwise depends on whatever is linked before it, and `memcpy` (the
/// runtime copies each input into its arena) takes more instructions from a
/// source that is not word-aligned: instruction counts would shift from one
/// build to the next, and differ between the two firmwares.
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);

/// SysTick wraps (every 2^24 ticks), counted by the exception handler.
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    // Only this handler writes WRAPS, so load + store is race-free (and works on
    // the M0, which has no atomic read-modify-write).
    WRAPS.store(
        WRAPS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Start SysTick on the core clock, free-running with its wrap interrupt.
pub fn start_systick(syst: &mut SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(0x00FF_FFFF);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    // The counter reads 0 until its first reload.
    while SYST::get_current() == 0 {}
}

/// Ticks since SysTick was started.
pub fn ticks() -> u64 {
    loop {
        let before = WRAPS.load(Ordering::Relaxed);
        let current = SYST::get_current();
        if WRAPS.load(Ordering::Relaxed) == before {
            return (u64::from(before) << 24) + u64::from(0x00FF_FFFF - current);
        }
    }
}

/// Instructions in `ticks` SysTick ticks.
pub fn instructions(ticks: u64) -> u64 {
    ticks * crate::INSTRUCTIONS_PER_TICK_X2 / 2
}

/// Loop count of [`calibrate`] (two instructions each).
const CALIB_LOOPS: u32 = 500_000;

/// `(instructions, ticks)` of a loop of known length.
pub fn calibrate() -> (u64, u64) {
    let start = ticks();
    busy_loop(CALIB_LOOPS);
    (2 * u64::from(CALIB_LOOPS), ticks() - start)
}

/// Run a loop of exactly `2 * n` instructions (plus a handful around it).
fn busy_loop(n: u32) {
    // SAFETY: touches only r0 and the flags, no memory or stack.
    unsafe {
        core::arch::asm!("2:", "subs r0, #1", "bne 2b", inout("r0") n => _, options(nomem, nostack));
    }
}

/// A model's outputs, borrowed from the arena.
pub enum Output<'r> {
    F32(&'r [f32]),
    I8(&'r [i8]),
}

impl Output<'_> {
    /// Index of the highest output (as `runtime::argmax`).
    #[allow(dead_code)] // the parity firmware prints the bytes, defmt-qemu logs this
    pub fn class(&self) -> usize {
        match self {
            Output::F32(y) => runtime::argmax(y),
            Output::I8(y) => runtime::argmax(y),
        }
    }
}

/// Vector `index` of a feedforward model (f32 inputs decoded into
/// `input_f32` first): its outputs and the SysTick ticks of the runtime
/// call alone. Never inlined, so that each firmware compiles it, and the
/// runtime code it inlines, as one unit, not folded into its own `main`.
#[inline(never)]
pub fn infer<'r>(
    model: &Model,
    vectors: &TestVectors,
    index: usize,
    input_f32: &mut [f32],
    arena: &'r mut [u8],
) -> Result<(Output<'r>, u64), runtime::Error> {
    match model.numeric() {
        Numeric::F32 => {
            vectors.input_f32(index, input_f32);
            let start = ticks();
            let result = model.run_f32(input_f32, arena);
            let elapsed = ticks() - start;
            Ok((Output::F32(result?), elapsed))
        }
        Numeric::Int8 => {
            let x = vectors.input_i8(index);
            let start = ticks();
            let result = model.run_i8(x, arena);
            let elapsed = ticks() - start;
            Ok((Output::I8(result?), elapsed))
        }
    }
}
