//! The emulated cores the firmware runs on, and which numeric path runs on
//! which (the bottom of xtask: it imports nothing from the other modules).

use runtime::Numeric;
use serde::Serialize;

/// A QEMU board the firmware runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Core {
    /// Cortex-M4F on `mps2-an386`.
    M4,
    /// Cortex-M0 on `microbit` (256 KiB flash, 16 KiB RAM).
    M0,
}

impl Core {
    /// Every core, in report order.
    pub const ALL: [Core; 2] = [Core::M4, Core::M0];

    pub fn target(self) -> &'static str {
        match self {
            Core::M4 => "thumbv7em-none-eabihf",
            Core::M0 => "thumbv6m-none-eabi",
        }
    }
    pub fn machine(self) -> &'static str {
        match self {
            Core::M4 => "mps2-an386",
            Core::M0 => "microbit",
        }
    }
    pub fn cpu(self) -> &'static str {
        match self {
            Core::M4 => "cortex-m4",
            Core::M0 => "cortex-m0",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Core::M4 => "M4",
            Core::M0 => "M0",
        }
    }
    /// Instructions per SysTick tick under `-icount shift=0`, times 2 (the
    /// firmware's build script has the same table).
    pub fn instructions_per_tick_x2(self) -> u64 {
        match self {
            Core::M4 => 80,
            Core::M0 => 125,
        }
    }
}

/// `"f32"` or `"int8"`.
pub fn numeric_name(n: Numeric) -> &'static str {
    match n {
        Numeric::F32 => "f32",
        Numeric::Int8 => "int8",
    }
}

/// The chip runs of an exported model: f32 on the M4, int8 on the M4 and the M0.
pub const RUNS: [(&str, Core); 3] = [("f32", Core::M4), ("int8", Core::M4), ("int8", Core::M0)];

/// The 32-bit host target of the overflow checks: the chip's `usize` is 32
/// bits, and the runtime's tests run there too.
pub const HOST_32: &str = "i686-unknown-linux-gnu";
