//! The smallest application that runs a model: load the blob once, run one
//! input, keep the answer. No semihosting, no formatting, `panic-halt`,
//! `opt-level = "z"`, and the runtime with only the features the model needs.
//! Copy this crate to start your own firmware.
//!
//! The answer lands in [`OUTPUT`] and [`STATUS`] turns 1 (2 on an error),
//! where a debugger, or `cargo xtask` through QEMU's monitor, reads them.
//! Recurrent and causal models run a whole sequence (`run_sequence_*`) and
//! keep its last answer; encoder-decoders encode the window (`encode_*`)
//! and keep every step they decode (`decode_*`) over the horizon.

#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use cortex_m_rt::entry;
use panic_halt as _;
use runtime::{Arena, Model};

// ARENA_BYTES, STATE_BYTES, OUTPUT_BYTES and INPUT, from build.rs (for your
// own application: `trainer inspect <blob>` prints the sizes).
include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// The model blob, in flash; the model borrows its weights from it.
static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.bin"));

/// The loaded model (about 1.5 KB of layer descriptions), its arena and its
/// state: zero-initialised statics (`.bss`), so they cost RAM, not flash,
/// and stay off the stack.
static mut MODEL: Model<'static> = Model::empty();
static mut ARENA: Arena<ARENA_BYTES> = Arena::new();
static mut STATE: Arena<STATE_BYTES> = Arena::new();

/// The answer's bytes (little-endian), once [`STATUS`] is 1.
#[no_mangle]
static OUTPUT: [AtomicU8; OUTPUT_BYTES] = [const { AtomicU8::new(0) }; OUTPUT_BYTES];
/// 0 while running, 1 when [`OUTPUT`] holds the answer, 2 on an error.
#[no_mangle]
static STATUS: AtomicU32 = AtomicU32::new(0);

#[entry]
fn main() -> ! {
    // SAFETY: `main` runs once and nothing else (no interrupt handler) names
    // these statics, so these are the only references ever made to them.
    let (model, arena, state) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(MODEL),
            &mut *core::ptr::addr_of_mut!(ARENA),
            &mut *core::ptr::addr_of_mut!(STATE),
        )
    };
    let status = match run(model, arena.as_mut_bytes(), state.as_mut_bytes()) {
        Ok(()) => 1,
        Err(_) => 2,
    };
    STATUS.store(status, Ordering::Release);
    loop {
        cortex_m::asm::wfi();
    }
}

fn run(
    model: &mut Model<'static>,
    arena: &mut [u8],
    state: &mut [u8],
) -> Result<(), runtime::Error> {
    model.load(BLOB)?;
    let _ = &state; // feedforward models have no state
    #[cfg(all(path_i8, forecast))]
    {
        model.encode_i8(&INPUT, state, arena)?;
        for step in 0..model.horizon() {
            let y = model.decode_i8(state, arena)?;
            keep_at(step * y.len(), y.iter().map(|&v| v as u8));
        }
    }
    #[cfg(all(path_f32, forecast))]
    {
        model.encode_f32(&INPUT, state, arena)?;
        for step in 0..model.horizon() {
            let y = model.decode_f32(state, arena)?;
            keep_at(step * y.len() * 4, y.iter().flat_map(|v| v.to_le_bytes()));
        }
    }
    #[cfg(all(path_i8, not(sequence), not(forecast)))]
    keep(model.run_i8(&INPUT, arena)?.iter().map(|&v| v as u8));
    #[cfg(all(path_i8, sequence))]
    keep(
        model
            .run_sequence_i8(&INPUT, state, arena)?
            .iter()
            .map(|&v| v as u8),
    );
    #[cfg(all(path_f32, not(sequence), not(forecast)))]
    keep(
        model
            .run_f32(&INPUT, arena)?
            .iter()
            .flat_map(|v| v.to_le_bytes()),
    );
    #[cfg(all(path_f32, sequence))]
    keep(
        model
            .run_sequence_f32(&INPUT, state, arena)?
            .iter()
            .flat_map(|v| v.to_le_bytes()),
    );
    Ok(())
}

/// Keep the answer's bytes in [`OUTPUT`].
#[cfg(not(forecast))]
fn keep(bytes: impl Iterator<Item = u8>) {
    keep_at(0, bytes);
}

/// Keep bytes of the answer in [`OUTPUT`] from `offset` on.
fn keep_at(offset: usize, bytes: impl Iterator<Item = u8>) {
    for (slot, byte) in OUTPUT.iter().skip(offset).zip(bytes) {
        slot.store(byte, Ordering::Relaxed);
    }
}
