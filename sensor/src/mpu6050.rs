//! InvenSense MPU-6050 over I2C (embedded-hal 1.0), the few registers the
//! pipeline needs.
//!
//! # Why this part, and why not a driver crate
//! The MPU-6050 is the most common 6-axis IMU on hobby and evaluation boards
//! (the GY-521 breakout wires straight to an STM32F411, nRF52840 or RP2040),
//! and its register map is public and stable. The driver crates on crates.io
//! were checked: `mpu6050` (0.1.6) and `lsm6dsox` (1.0.1) are built on
//! embedded-hal 0.2; `mpu6050-dmp` (0.6) targets embedded-hal 1.0 but carries
//! the DMP firmware and its own initialisation sequence; `mpu6050-driver`
//! (0.1.1) targets 1.0 but is one young release whose reads may retry on its
//! own. The pipeline's contract, and its tests, are the exact register
//! transactions, the full-scale settings the unit conversion relies on and a
//! named error per fault, so the five registers are read and written here
//! (about 100 lines) rather than through a crate whose transactions are its
//! own business.
//!
//! # Register map relied on
//! Sources: InvenSense *MPU-6000 and MPU-6050 Register Map and Descriptions*,
//! RM-MPU-6000A-00 rev. 4.2 (RM), and *MPU-6000 and MPU-6050 Product
//! Specification*, PS-MPU-6000A-00 rev. 3.4 (PS). Register numbers are the
//! RM's (decimal there, hex here).
//!
//! | register | name | value used | meaning (RM) |
//! | --- | --- | --- | --- |
//! | 0x19 (25) | `SMPLRT_DIV` | 0x00 | sample rate = gyro output rate / (1 + 0) = 1 kHz with the DLPF on |
//! | 0x1A (26) | `CONFIG` | 0x06 | `DLPF_CFG` = 6: accelerometer 5 Hz bandwidth (19.0 ms delay), gyroscope 5 Hz (18.6 ms), gyro output rate 1 kHz |
//! | 0x1B (27) | `GYRO_CONFIG` | 0x18 | `FS_SEL` = 3 (bits 4:3): ±2000 °/s, 16.4 LSB/(°/s) |
//! | 0x1C (28) | `ACCEL_CONFIG` | 0x10 | `AFS_SEL` = 2 (bits 4:3): ±8 g, 4096 LSB/g |
//! | 0x3B..0x40 (59-64) | `ACCEL_XOUT_H` .. `ACCEL_ZOUT_L` | read | x, y, z, big-endian two's complement |
//! | 0x41..0x42 (65-66) | `TEMP_OUT_H/L` | read | °C = `TEMP_OUT` / 340 + 36.53 |
//! | 0x43..0x48 (67-72) | `GYRO_XOUT_H` .. `GYRO_ZOUT_L` | read | x, y, z, big-endian two's complement |
//! | 0x49 (73) | `EXT_SENS_DATA_00` | read, must be 0x00 | written only by the auxiliary I2C master, which is never enabled: 0x00 after reset |
//! | 0x6B (107) | `PWR_MGMT_1` | 0x80, then 0x01 | `DEVICE_RESET` (bit 7); then awake (`SLEEP`, bit 6, clear) with `CLKSEL` = 1, the X gyro PLL (PS recommends a gyro clock for stability) |
//! | 0x75 (117) | `WHO_AM_I` | read, must be 0x68 | bits 6:1 = 0x34; the AD0 pin is not reflected, so 0x68 at either address |
//!
//! Every register resets to 0x00 except `PWR_MGMT_1` (0x40: asleep) and
//! `WHO_AM_I` (RM, register map table). Multi-byte reads and writes
//! auto-increment the register address (PS, I2C communications protocol:
//! burst read / burst write).
//!
//! # Full scale and units
//! The BasicMotions data (see the crate docs) is accelerometer in m/s² and
//! gyroscope in rad/s, peaking at 29.4 m/s² (3.0 g) and 34.87 rad/s
//! (1998 °/s). ±8 g leaves room for that plus 1 g of gravity; ±2000 °/s is
//! the only gyro range that covers the data at all. Counts convert with one
//! `f32` multiplication each ([`ACCEL_MPS2_PER_COUNT`],
//! [`GYRO_RAD_S_PER_COUNT`]), so the result is the same on every target.
//!
//! # Transactions (the contract the tests check)
//! - [`Mpu6050::init`]: `write_read([0x75], 1 byte)` (WHO_AM_I, else
//!   [`Error::WrongDevice`]); `write([0x6B, 0x80])` (reset); a 100 ms delay
//!   (PS: start-up time for register read/write); `write([0x6B, 0x01])` (wake,
//!   gyro PLL); `write([0x19, 0x00, 0x06, 0x18, 0x10])` (rate, filter, ranges,
//!   one burst); `write_read([0x19], 4 bytes)` and `write_read([0x6B], 1 byte)`
//!   (read back, else [`Error::ConfigMismatch`]).
//! - [`Mpu6050::read_raw`]: `write_read([0x3B], 15 bytes)`: one burst, so the
//!   six axes come from the same sample; byte 14 (`EXT_SENS_DATA_00`) is an
//!   end marker that must read 0x00.
//!
//! Nothing here panics: every byte is read from a fixed-size buffer by a
//! pattern, and every bus error is returned as [`Error::I2c`].
//!
//! # Not detected
//! A sensor that resets itself after `init` (a brown-out on its supply)
//! goes back to sleep at ±2 g / ±250 °/s and its data registers stop
//! updating; the bursts still read back cleanly, so the samples are stale
//! and wrongly scaled without any error. Checking for that would cost a
//! `PWR_MGMT_1` read per sample; call `init` again after a power event
//! instead. A burst cut short that reads as 0x00 (SDA held low) is not
//! detectable either (see [`RawSample::from_burst`]).

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::Error;

/// I2C address with the AD0 pin low (the GY-521 default).
pub const ADDRESS_AD0_LOW: u8 = 0x68;
/// I2C address with the AD0 pin high.
pub const ADDRESS_AD0_HIGH: u8 = 0x69;

/// `WHO_AM_I` of an MPU-6050.
pub const WHO_AM_I_VALUE: u8 = 0x68;

/// Register addresses used (RM-MPU-6000A-00 rev. 4.2).
pub mod register {
    /// Sample rate divider (25).
    pub const SMPLRT_DIV: u8 = 0x19;
    /// Configuration: external sync and digital low-pass filter (26).
    pub const CONFIG: u8 = 0x1A;
    /// Gyroscope configuration: full scale (27).
    pub const GYRO_CONFIG: u8 = 0x1B;
    /// Accelerometer configuration: full scale (28).
    pub const ACCEL_CONFIG: u8 = 0x1C;
    /// First byte of the measurement burst: accelerometer x, high byte (59).
    pub const ACCEL_XOUT_H: u8 = 0x3B;
    /// First external-sensor data byte, the burst's end marker (73).
    pub const EXT_SENS_DATA_00: u8 = 0x49;
    /// Power management 1: reset, sleep, clock source (107).
    pub const PWR_MGMT_1: u8 = 0x6B;
    /// Device identity (117).
    pub const WHO_AM_I: u8 = 0x75;
}

/// `PWR_MGMT_1` with `DEVICE_RESET` set.
pub const PWR_MGMT_1_RESET: u8 = 0x80;
/// `PWR_MGMT_1` awake, clock from the X-axis gyroscope PLL.
pub const PWR_MGMT_1_AWAKE_PLL_X: u8 = 0x01;
/// `SMPLRT_DIV`, `CONFIG`, `GYRO_CONFIG`, `ACCEL_CONFIG` as written (one burst
/// from [`register::SMPLRT_DIV`]): 1 kHz, 5 Hz low-pass, ±2000 °/s, ±8 g.
pub const CONFIG_BURST: [u8; 4] = [0x00, 0x06, 0x18, 0x10];
/// Milliseconds waited after `DEVICE_RESET`.
pub const RESET_WAIT_MS: u32 = 100;

/// Bytes of one measurement burst: 14 of data and the end marker.
pub const BURST_LEN: usize = 15;

/// Standard gravity, m/s² per g.
pub const STANDARD_GRAVITY: f64 = 9.806_65;
/// Accelerometer sensitivity at ±8 g (PS: 4096 LSB/g).
pub const ACCEL_COUNTS_PER_G: f64 = 4096.0;
/// Gyroscope sensitivity at ±2000 °/s (PS: 16.4 LSB/(°/s)).
pub const GYRO_COUNTS_PER_DEG_S: f64 = 16.4;
/// m/s² per accelerometer count at ±8 g (computed in f64, rounded once).
pub const ACCEL_MPS2_PER_COUNT: f32 = (STANDARD_GRAVITY / ACCEL_COUNTS_PER_G) as f32;
/// rad/s per gyroscope count at ±2000 °/s (computed in f64, rounded once).
pub const GYRO_RAD_S_PER_COUNT: f32 =
    (core::f64::consts::PI / 180.0 / GYRO_COUNTS_PER_DEG_S) as f32;

/// One burst as the sensor reports it: counts, not units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawSample {
    /// Accelerometer x, y, z counts (4096 per g).
    pub accel: [i16; 3],
    /// Temperature counts (°C = counts / 340 + 36.53).
    pub temperature: i16,
    /// Gyroscope x, y, z counts (16.4 per °/s).
    pub gyro: [i16; 3],
}

/// Why a burst was rejected (becomes [`Error::ShortRead`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortRead {
    /// Bytes a complete burst has ([`BURST_LEN`]).
    pub expected: u8,
    /// Bytes before the cut.
    pub valid: u8,
}

impl<E> From<ShortRead> for Error<E> {
    fn from(s: ShortRead) -> Self {
        Error::ShortRead {
            expected: s.expected,
            valid: s.valid,
        }
    }
}

impl RawSample {
    /// Decode a burst read from [`register::ACCEL_XOUT_H`]: 15 bytes, the last
    /// being `EXT_SENS_DATA_00`, which must be 0x00.
    ///
    /// Use it directly when the bytes arrive some other way (DMA, an async
    /// bus) with a byte count. A slice shorter than [`BURST_LEN`] is a short
    /// read; so is a burst whose end marker is not 0x00. Over I2C the master
    /// clocks every byte it asked for, so a device that stops driving SDA
    /// mid-burst (reset, brown-out, loose wire) makes the rest read as the
    /// pull-ups' 0xFF without any bus error: the marker catches that. A cut
    /// that reads as 0x00 (SDA held low) is not detectable from the data.
    pub fn from_burst(bytes: &[u8]) -> Result<Self, ShortRead> {
        let expected = BURST_LEN as u8;
        let Some(burst) = bytes.first_chunk::<BURST_LEN>() else {
            return Err(ShortRead {
                expected,
                valid: bytes.len() as u8, // shorter than BURST_LEN, so it fits
            });
        };
        let [ax_h, ax_l, ay_h, ay_l, az_h, az_l, t_h, t_l, gx_h, gx_l, gy_h, gy_l, gz_h, gz_l, marker] =
            *burst;
        if marker != 0x00 {
            // The cut is where the trailing run of pull-up 0xFF bytes starts.
            let ones = burst.iter().rev().take_while(|&&b| b == 0xFF).count();
            return Err(ShortRead {
                expected,
                valid: (BURST_LEN - ones) as u8,
            });
        }
        let be = i16::from_be_bytes;
        Ok(RawSample {
            accel: [be([ax_h, ax_l]), be([ay_h, ay_l]), be([az_h, az_l])],
            temperature: be([t_h, t_l]),
            gyro: [be([gx_h, gx_l]), be([gy_h, gy_l]), be([gz_h, gz_l])],
        })
    }

    /// The burst [`RawSample::from_burst`] decodes to `self` (for tests and
    /// simulators that play a sensor).
    pub fn to_burst(&self) -> [u8; BURST_LEN] {
        let mut out = [0u8; BURST_LEN];
        let words = [
            self.accel[0],
            self.accel[1],
            self.accel[2],
            self.temperature,
            self.gyro[0],
            self.gyro[1],
            self.gyro[2],
        ];
        for (pair, word) in out.chunks_exact_mut(2).zip(words) {
            pair.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

/// One sample in the units the BasicMotions model was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ImuSample {
    /// Acceleration x, y, z in m/s² (as measured: gravity included).
    pub accel_mps2: [f32; 3],
    /// Angular rate x, y, z in rad/s.
    pub gyro_rad_s: [f32; 3],
}

impl ImuSample {
    /// Counts to units at the configured full scale: one multiplication per
    /// axis by [`ACCEL_MPS2_PER_COUNT`] or [`GYRO_RAD_S_PER_COUNT`].
    pub fn from_raw(raw: &RawSample) -> Self {
        ImuSample {
            accel_mps2: raw.accel.map(|c| f32::from(c) * ACCEL_MPS2_PER_COUNT),
            gyro_rad_s: raw.gyro.map(|c| f32::from(c) * GYRO_RAD_S_PER_COUNT),
        }
    }

    /// The six model channels in BasicMotions order: accelerometer x, y, z,
    /// then gyroscope x, y, z.
    pub fn channels(&self) -> [f32; 6] {
        let [ax, ay, az] = self.accel_mps2;
        let [gx, gy, gz] = self.gyro_rad_s;
        [ax, ay, az, gx, gy, gz]
    }
}

/// An MPU-6050 on an I2C bus.
#[derive(Debug)]
pub struct Mpu6050<I2C> {
    i2c: I2C,
    address: u8,
}

impl<I2C: I2c> Mpu6050<I2C> {
    /// A driver for the device at `address` ([`ADDRESS_AD0_LOW`] or
    /// [`ADDRESS_AD0_HIGH`]). Does not touch the bus.
    pub fn new(i2c: I2C, address: u8) -> Self {
        Mpu6050 { i2c, address }
    }

    /// Check the identity, reset, wake and configure (±8 g, ±2000 °/s, 5 Hz
    /// low-pass, 1 kHz internal rate), then read the configuration back.
    /// Stops at the first failure; call it again to retry from the start.
    pub fn init<D: DelayNs>(&mut self, delay: &mut D) -> Result<(), Error<I2C::Error>> {
        let found = self.read_register(register::WHO_AM_I)?;
        if found != WHO_AM_I_VALUE {
            return Err(Error::WrongDevice { found });
        }
        self.write(&[register::PWR_MGMT_1, PWR_MGMT_1_RESET])?;
        delay.delay_ms(RESET_WAIT_MS);
        self.write(&[register::PWR_MGMT_1, PWR_MGMT_1_AWAKE_PLL_X])?;
        let [div, config, gyro, accel] = CONFIG_BURST;
        self.write(&[register::SMPLRT_DIV, div, config, gyro, accel])?;

        let mut back = [0u8; 4];
        self.i2c
            .write_read(self.address, &[register::SMPLRT_DIV], &mut back)
            .map_err(Error::I2c)?;
        let registers = [
            register::SMPLRT_DIV,
            register::CONFIG,
            register::GYRO_CONFIG,
            register::ACCEL_CONFIG,
        ];
        for ((register, expected), found) in registers.into_iter().zip(CONFIG_BURST).zip(back) {
            if found != expected {
                return Err(Error::ConfigMismatch {
                    register,
                    expected,
                    found,
                });
            }
        }
        let power = self.read_register(register::PWR_MGMT_1)?;
        if power != PWR_MGMT_1_AWAKE_PLL_X {
            return Err(Error::ConfigMismatch {
                register: register::PWR_MGMT_1,
                expected: PWR_MGMT_1_AWAKE_PLL_X,
                found: power,
            });
        }
        Ok(())
    }

    /// `WHO_AM_I` (0x68 for an MPU-6050).
    pub fn who_am_i(&mut self) -> Result<u8, Error<I2C::Error>> {
        self.read_register(register::WHO_AM_I)
    }

    /// One measurement burst (see [`RawSample::from_burst`] for what is checked).
    pub fn read_raw(&mut self) -> Result<RawSample, Error<I2C::Error>> {
        let mut burst = [0u8; BURST_LEN];
        self.i2c
            .write_read(self.address, &[register::ACCEL_XOUT_H], &mut burst)
            .map_err(Error::I2c)?;
        Ok(RawSample::from_burst(&burst)?)
    }

    /// One measurement in m/s² and rad/s.
    pub fn read(&mut self) -> Result<ImuSample, Error<I2C::Error>> {
        Ok(ImuSample::from_raw(&self.read_raw()?))
    }

    /// Give the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    fn read_register(&mut self, register: u8) -> Result<u8, Error<I2C::Error>> {
        let mut value = [0u8; 1];
        self.i2c
            .write_read(self.address, &[register], &mut value)
            .map_err(Error::I2c)?;
        let [value] = value;
        Ok(value)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Error<I2C::Error>> {
        self.i2c.write(self.address, bytes).map_err(Error::I2c)
    }
}
