//! The test-vector firmware, logging with defmt: runs the embedded
//! feedforward model on every embedded vector and logs one defmt frame per
//! vector, through semihosting (`defmt-semihosting`; QEMU has no RTT):
//!
//! ```text
//! calib <instructions> <ticks>
//! <model> class <argmax> instructions <instructions>     (one per vector, in order)
//! done <count>
//! ```
//!
//! then exits with semihosting success; a failure logs `error ...` and exits
//! with failure. The inference and its timing are `../src/harness.rs`, the
//! same source the semihosting parity firmware runs, so the instructions
//! can be compared with its. `cargo xtask test` decodes the frames with
//! `defmt-decoder` and this ELF's defmt table (`xtask/src/defmt_log.rs`).
//!
//! Errors are formatted on the chip (`Display2Format`), so the runtime is
//! built with the parity firmware's features, without its `defmt` one.
//!
//! Recurrent and causal models are refused (logged, failure exit): their
//! step-by-step runs stay in the parity firmware.

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use defmt_semihosting as _;
use runtime::{Arena, Model, TestVectors};

#[path = "../../src/harness.rs"]
mod harness;

include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// The model blob; weights are borrowed from it in flash.
static MODEL: &[u8] = &harness::Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.bin"))).0;
/// postcard `TestVectors` for the model.
static VECTORS: &[u8] =
    &harness::Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/vectors.bin"))).0;

fn exit(status: debug::ExitStatus) -> ! {
    loop {
        debug::exit(status);
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // A defmt frame, so the log stays decodable (the runtime does not panic;
    // this is for the firmware's own code).
    defmt::error!("error panic");
    exit(debug::EXIT_FAILURE)
}

#[entry]
fn main() -> ! {
    let (Some(mut core), Some(model)) = (
        cortex_m::Peripherals::take(),
        cortex_m::singleton!(: Model<'static> = Model::empty()),
    ) else {
        defmt::error!("error peripherals or model already taken");
        exit(debug::EXIT_FAILURE)
    };
    if let Err(e) = model.load(MODEL) {
        defmt::error!("error model: {}", defmt::Display2Format(&e));
        exit(debug::EXIT_FAILURE)
    }
    let model: &Model = model;
    if model.is_recurrent() || model.is_causal() {
        defmt::error!(
            "error {=str}: sequence models run in the parity firmware only",
            MODEL_NAME
        );
        exit(debug::EXIT_FAILURE)
    }
    let vectors = match TestVectors::from_bytes(VECTORS) {
        Ok(v) => v,
        Err(e) => {
            defmt::error!("error vectors: {}", defmt::Display2Format(&e));
            exit(debug::EXIT_FAILURE)
        }
    };
    let (Some(arena), Some(input_f32)) = (
        cortex_m::singleton!(: Arena<ARENA_BYTES> = Arena::new()),
        cortex_m::singleton!(: [f32; INPUT_F32_LEN] = [0.0; INPUT_F32_LEN]),
    ) else {
        defmt::error!("error buffers already taken");
        exit(debug::EXIT_FAILURE)
    };

    harness::start_systick(&mut core.SYST);
    let (calib_instructions, calib_ticks) = harness::calibrate();
    defmt::info!("calib {=u64} {=u64}", calib_instructions, calib_ticks);
    for index in 0..vectors.count as usize {
        match harness::infer(model, &vectors, index, input_f32, arena.as_mut_bytes()) {
            Ok((y, ticks)) => defmt::info!(
                "{=str} class {=usize} instructions {=u64}",
                MODEL_NAME,
                y.class(),
                harness::instructions(ticks)
            ),
            Err(e) => {
                defmt::error!(
                    "error vector {=usize}: {}",
                    index,
                    defmt::Display2Format(&e)
                );
                exit(debug::EXIT_FAILURE)
            }
        }
    }
    defmt::info!("done {=u32}", vectors.count);
    exit(debug::EXIT_SUCCESS)
}
