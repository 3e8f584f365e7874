//! The smallest application that runs a model: load the blob once, run one
//! input, keep the answer. No semihosting, no formatting, `panic-halt`.
//!
//! The answer lands in [`OUTPUT`] and [`STATUS`] turns 1 (or 2 on an error),
//! where a debugger, or `cargo xtask` through QEMU's monitor, reads them.

#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use cortex_m_rt::entry;
use panic_halt as _;
use runtime::{Arena, Model};

include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// The model blob, in flash; the model borrows its weights from it.
static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.bin"));

/// The loaded model (about 1.5 KB of layer descriptions) and its arena:
/// zero-initialised statics (`.bss`), so they cost RAM, not flash, and stay
/// off the stack.
static mut MODEL: Model<'static> = Model::empty();
static mut ARENA: Arena<ARENA_BYTES> = Arena::new();

/// The answer's bytes (little-endian), once [`STATUS`] is 1.
#[no_mangle]
static OUTPUT: [AtomicU8; OUTPUT_BYTES] = [const { AtomicU8::new(0) }; OUTPUT_BYTES];
/// 0 while running, 1 when [`OUTPUT`] holds the answer, 2 on an error.
#[no_mangle]
static STATUS: AtomicU32 = AtomicU32::new(0);

#[entry]
fn main() -> ! {
    let status = match run() {
        Ok(()) => 1,
        Err(_) => 2,
    };
    STATUS.store(status, Ordering::Release);
    loop {
        cortex_m::asm::wfi();
    }
}

fn run() -> Result<(), runtime::Error> {
    // SAFETY: `run` is called once, from `main`, and nothing else (no
    // interrupt handler) names these statics: these are the only references.
    let (model, arena) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(MODEL),
            &mut *core::ptr::addr_of_mut!(ARENA),
        )
    };
    model.load(BLOB)?;
    infer(model, arena.as_mut_bytes())
}

/// Keep the answer's bytes in [`OUTPUT`].
fn keep(bytes: impl Iterator<Item = u8>) {
    for (slot, byte) in OUTPUT.iter().zip(bytes) {
        slot.store(byte, Ordering::Relaxed);
    }
}

#[cfg(all(path_i8, not(sequence)))]
fn infer(model: &Model, arena: &mut [u8]) -> Result<(), runtime::Error> {
    let out = model.run_i8(&INPUT, arena)?;
    keep(out.iter().map(|&v| v as u8));
    Ok(())
}
