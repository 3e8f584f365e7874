//! The activity classifier on an STM32F411: a Nucleo-F411RE, or a Black
//! Pill (STM32F411CEU6), with an MPU-6050 on I2C1.
//!
//! | MPU-6050 | STM32F411 | Nucleo-F411RE header | Black Pill pin |
//! | --- | --- | --- | --- |
//! | SCL | PB8 (I2C1_SCL, AF4) | CN5 D15 | B8 |
//! | SDA | PB9 (I2C1_SDA, AF4) | CN5 D14 | B9 |
//! | VCC | 3V3 | CN6 3V3 | 3V3 |
//! | GND | GND | CN6 GND | GND |
//! | AD0 | GND (address 0x68) | | |
//!
//! Clocks: the 16 MHz internal HSI through the PLL to 100 MHz, the chip's
//! maximum. The HSI works on both boards (the Nucleo's HSE comes from the
//! ST-LINK's MCO only on some board revisions and solder-bridge settings;
//! the Black Pill has a 25 MHz crystal), so one build runs on either.
//! I2C at 100 kHz (standard mode: forgiving of jumper wires; a 15-byte
//! burst takes under 2 ms). Cycles per step come from DWT CYCCNT.

#![no_std]
#![no_main]

use activity::CycleCounter;
use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use stm32f4xx_hal::i2c::{I2c, Mode};
use stm32f4xx_hal::{pac, prelude::*, rcc::Config};
use {defmt_rtt as _, panic_probe as _};

#[entry]
fn main() -> ! {
    let (Some(dp), Some(mut cp)) = (pac::Peripherals::take(), cortex_m::Peripherals::take()) else {
        defmt::panic!("peripherals already taken")
    };
    let mut rcc = dp.RCC.freeze(Config::hsi().sysclk(100.MHz()));
    let gpiob = dp.GPIOB.split(&mut rcc);
    let i2c = I2c::new(
        dp.I2C1,
        (gpiob.pb8, gpiob.pb9),
        Mode::standard(100.kHz()),
        &mut rcc,
    );
    cp.DCB.enable_trace();
    cp.DWT.enable_cycle_counter();
    let hz = rcc.clocks.sysclk().raw();
    let mut delay = cp.SYST.delay(&rcc.clocks);
    activity::run(
        "nucleo-f411re",
        i2c,
        &mut delay,
        CycleCounter {
            now: DWT::cycle_count,
            hz,
        },
    )
}
