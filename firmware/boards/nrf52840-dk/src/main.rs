//! The activity classifier on an nRF52840-DK (PCA10056) with an MPU-6050
//! on TWIM0.
//!
//! | MPU-6050 | nRF52840 | DK header |
//! | --- | --- | --- |
//! | SCL | P0.27 | Arduino header pin marked SCL (beside AREF) |
//! | SDA | P0.26 | Arduino header pin marked SDA |
//! | VCC | VDD (3.0 V) | power header VDD (not 5V: the breakout's pull-ups would then sit above the chip's supply) |
//! | GND | GND | power header GND |
//! | AD0 | GND (address 0x68) | |
//!
//! Clocks: the 64 MHz HFCLK from the external 32 MHz crystal (more
//! accurate than the internal RC; TWIM and the core need nothing else).
//! TWIM at 100 kHz, with the pins' internal pull-ups on top of the
//! breakout's. TWIM reads and writes through EasyDMA, which cannot read
//! flash: nrf-hal's `embedded-hal` implementation copies buffers that are
//! not in RAM (the driver's constant register writes) into RAM first.
//! Cycles per step come from DWT CYCCNT.

#![no_std]
#![no_main]

use activity::CycleCounter;
use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use nrf52840_hal::{clocks::Clocks, gpio::p0, pac, twim, Delay, Twim};
use {defmt_rtt as _, panic_probe as _};

/// The core clock with the HFCLK running (nRF52840 PS: 64 MHz).
const CORE_HZ: u32 = 64_000_000;

#[entry]
fn main() -> ! {
    let (Some(p), Some(mut cp)) = (pac::Peripherals::take(), cortex_m::Peripherals::take()) else {
        defmt::panic!("peripherals already taken")
    };
    // Kept: dropping it would not stop the clock, but it documents that the
    // crystal must stay on.
    let _clocks = Clocks::new(p.CLOCK).enable_ext_hfosc();
    let port0 = p0::Parts::new(p.P0);
    let pins = twim::Pins {
        scl: port0.p0_27.into_floating_input().degrade(),
        sda: port0.p0_26.into_floating_input().degrade(),
    };
    let i2c = Twim::new(p.TWIM0, pins, twim::Frequency::K100);
    cp.DCB.enable_trace();
    cp.DWT.enable_cycle_counter();
    let mut delay = Delay::new(cp.SYST);
    activity::run(
        "nrf52840-dk",
        i2c,
        &mut delay,
        CycleCounter {
            now: DWT::cycle_count,
            hz: CORE_HZ,
        },
    )
}
