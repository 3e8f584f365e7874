//! The bit-exact property of every fast kernel (`runtime::kernels::check`)
//! on this core: `CASES` random cases per kernel, the same on every core
//! (one seed), reported over semihosting, one line each (parsed by
//! `xtask/src/kernel_check.rs`):
//!
//! ```text
//! kernel <name> cases <n> failed <f>
//! mismatch <the failing case>        (for each failure)
//! done <cases> failed <failures>
//! ```
//!
//! then exits with semihosting success if nothing failed, else failure.

#![no_std]
#![no_main]

use core::fmt::Write;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};
use panic_semihosting as _;
use runtime::kernels::check::{check, Buffers, Kernel, Rng};

/// Cases per kernel.
const CASES: usize = 1000;
/// The seed of every case, so that a failure can be replayed.
const SEED: u64 = 0x6b65_726e_656c_7321;

#[entry]
fn main() -> ! {
    // In `.bss`: 8.5 KB, half the Cortex-M0's RAM (cortex-m-rt makes a
    // `static mut` at the top of the entry a safe `&'static mut`).
    static mut BUFFERS: Buffers = Buffers::new();
    let mut out = hio::hstdout().ok();
    let mut line = |args: core::fmt::Arguments| {
        if let Some(out) = out.as_mut() {
            let _ = out.write_fmt(args);
        }
    };
    let mut rng = Rng(SEED);
    let (mut cases, mut failures) = (0usize, 0usize);
    for kernel in Kernel::ALL {
        let mut failed = 0;
        for _ in 0..CASES {
            let case = rng.case(kernel);
            if let Err(failure) = check(&case, BUFFERS) {
                line(format_args!("mismatch {failure:?}\n"));
                failed += 1;
            }
        }
        line(format_args!(
            "kernel {} cases {CASES} failed {failed}\n",
            kernel.name()
        ));
        cases += CASES;
        failures += failed;
    }
    line(format_args!("done {cases} failed {failures}\n"));
    let status = if failures == 0 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    };
    loop {
        debug::exit(status);
    }
}
