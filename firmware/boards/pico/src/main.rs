//! The activity classifier on a Raspberry Pi Pico (RP2040, Cortex-M0+)
//! with an MPU-6050 on I2C0.
//!
//! | MPU-6050 | RP2040 | Pico pin |
//! | --- | --- | --- |
//! | SDA | GP4 (I2C0 SDA) | 6 |
//! | SCL | GP5 (I2C0 SCL) | 7 |
//! | VCC | 3V3(OUT) | 36 |
//! | GND | GND | 8 (or 38) |
//! | AD0 | GND (address 0x68) | |
//!
//! Clocks: the 12 MHz crystal through the PLL to 125 MHz (rp2040-hal's
//! `init_clocks_and_plls`). I2C at 100 kHz with the pins' internal pull-ups
//! on top of the breakout's. The M0+ has no DWT cycle counter: cycles come
//! from SysTick on the core clock, a 24-bit down-counter whose wraps (every
//! 134 ms at 125 MHz) the SysTick exception counts, giving a 32-bit
//! free-running count. Delays use the RP2040's 1 MHz timer, so SysTick is
//! left to counting.

#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use activity::CycleCounter;
use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::exception;
use rp2040_hal::fugit::RateExtU32;
use rp2040_hal::gpio::{FunctionI2C, Pin, PullUp};
use rp2040_hal::{clocks::init_clocks_and_plls, pac, Clock, Sio, Timer, Watchdog, I2C};
use {defmt_rtt as _, panic_probe as _};

/// The second-stage bootloader for the Pico's W25Q16JV flash (the generic
/// W25Q080 one, as the Pico SDK uses), placed by `memory.x`.
// SAFETY: `.boot2` is the 256-byte BOOT2 region of memory.x and nothing
// else is placed there; the boot ROM, not Rust code, reads it.
#[allow(unsafe_code)]
#[link_section = ".boot2"]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The Pico's crystal.
const XTAL_HZ: u32 = 12_000_000;

/// SysTick wraps so far (each one 2^24 cycles).
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    // Only this handler writes WRAPS, so load + store is race-free (the M0+
    // has no atomic read-modify-write).
    WRAPS.store(
        WRAPS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Core cycles since SysTick started, wrapping at 2^32.
fn cycles() -> u32 {
    loop {
        let wraps = WRAPS.load(Ordering::Relaxed);
        let current = SYST::get_current();
        // A wrap between the two reads would pair the old count with the new
        // counter value: read again.
        if WRAPS.load(Ordering::Relaxed) == wraps {
            return (wraps << 24) | (0x00FF_FFFF - current);
        }
    }
}

#[rp2040_hal::entry]
fn main() -> ! {
    let (Some(mut pac), Some(mut cp)) = (pac::Peripherals::take(), cortex_m::Peripherals::take())
    else {
        defmt::panic!("peripherals already taken")
    };
    let mut watchdog = Watchdog::new(pac.WATCHDOG);
    let Ok(clocks) = init_clocks_and_plls(
        XTAL_HZ,
        pac.XOSC,
        pac.CLOCKS,
        pac.PLL_SYS,
        pac.PLL_USB,
        &mut pac.RESETS,
        &mut watchdog,
    ) else {
        defmt::panic!("clock setup failed (crystal or PLL did not start)")
    };
    let sio = Sio::new(pac.SIO);
    let pins = rp2040_hal::gpio::Pins::new(
        pac.IO_BANK0,
        pac.PADS_BANK0,
        sio.gpio_bank0,
        &mut pac.RESETS,
    );
    let sda: Pin<_, FunctionI2C, PullUp> = pins.gpio4.reconfigure();
    let scl: Pin<_, FunctionI2C, PullUp> = pins.gpio5.reconfigure();
    let i2c = I2C::i2c0(
        pac.I2C0,
        sda,
        scl,
        100.kHz(),
        &mut pac.RESETS,
        &clocks.system_clock,
    );
    let mut timer = Timer::new(pac.TIMER, &mut pac.RESETS, &clocks);

    let syst = &mut cp.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(0x00FF_FFFF);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();

    activity::run(
        "pico",
        i2c,
        &mut timer,
        CycleCounter {
            now: cycles,
            hz: clocks.system_clock.freq().to_Hz(),
        },
    )
}
