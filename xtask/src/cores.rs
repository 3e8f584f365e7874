//! The emulated cores the firmware runs on, and which numeric path runs on
//! which (the bottom of xtask: it imports nothing from the other modules).

use runtime::Numeric;
use serde::Serialize;

/// A QEMU board the firmware runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Core {
    /// Cortex-M4F on `mps2-an386` (FPU, DSP).
    M4,
    /// Cortex-M0 on `microbit` (256 KiB flash, 16 KiB RAM; no FPU, no DSP).
    M0,
    /// Cortex-M3 on `mps2-an385` (no FPU, no DSP).
    M3,
    /// Cortex-M7 on `mps2-an500` (FPU, DSP; the M4's build).
    M7,
    /// Cortex-M33 on `mps2-an505` (FPU, DSP extension; secure state).
    M33,
}

impl Core {
    /// Every core, in report order.
    pub const ALL: [Core; 5] = [Core::M4, Core::M0, Core::M3, Core::M7, Core::M33];

    pub fn target(self) -> &'static str {
        match self {
            Core::M4 | Core::M7 => "thumbv7em-none-eabihf",
            Core::M0 => "thumbv6m-none-eabi",
            Core::M3 => "thumbv7m-none-eabi",
            Core::M33 => "thumbv8m.main-none-eabihf",
        }
    }
    pub fn machine(self) -> &'static str {
        match self {
            Core::M4 => "mps2-an386",
            Core::M0 => "microbit",
            Core::M3 => "mps2-an385",
            Core::M7 => "mps2-an500",
            Core::M33 => "mps2-an505",
        }
    }
    pub fn cpu(self) -> &'static str {
        match self {
            Core::M4 => "cortex-m4",
            Core::M0 => "cortex-m0",
            Core::M3 => "cortex-m3",
            Core::M7 => "cortex-m7",
            Core::M33 => "cortex-m33",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Core::M4 => "M4",
            Core::M0 => "M0",
            Core::M3 => "M3",
            Core::M7 => "M7",
            Core::M33 => "M33",
        }
    }
    /// Whether the core has a single-precision FPU (the f32 path runs there).
    pub fn has_fpu(self) -> bool {
        matches!(self, Core::M4 | Core::M7 | Core::M33)
    }
    /// Instructions per SysTick tick under `-icount shift=0`, times 2 (the
    /// firmware's build script has the same table; the firmware's
    /// calibration loop checks it on every run).
    pub fn instructions_per_tick_x2(self) -> u64 {
        match self {
            Core::M0 => 125,
            Core::M33 => 100,
            _ => 80,
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

/// The chip runs of an exported model: f32 on every core with an FPU, int8
/// on every core.
pub const RUNS: [(&str, Core); 8] = [
    ("f32", Core::M4),
    ("int8", Core::M4),
    ("int8", Core::M0),
    ("int8", Core::M3),
    ("f32", Core::M7),
    ("int8", Core::M7),
    ("f32", Core::M33),
    ("int8", Core::M33),
];

/// The runs of `cargo xtask demo` and of the minimal application: the two
/// cores a user is most likely to start from (an M4F and an M0).
pub const DEMO_RUNS: [(&str, Core); 3] =
    [("f32", Core::M4), ("int8", Core::M4), ("int8", Core::M0)];

/// The 32-bit host target of the overflow checks: the chip's `usize` is 32
/// bits, and the runtime's tests run there too.
pub const HOST_32: &str = "i686-unknown-linux-gnu";
