//! The crate's one error type.

use core::fmt;

/// Everything that can go wrong between the I2C bus and a decision.
///
/// `E` is the I2C implementation's error type. Every failure of the driver or
/// the pipeline is one of these variants; nothing in this crate panics instead.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error<E> {
    /// The I2C bus reported an error, for example
    /// [`NoAcknowledge`](embedded_hal::i2c::ErrorKind::NoAcknowledge): no
    /// device answers at the address, or it stopped answering.
    I2c(E),
    /// The device at the address is not an MPU-6050: its `WHO_AM_I` register
    /// (0x75) reads `found` instead of
    /// [`WHO_AM_I_VALUE`](crate::mpu6050::WHO_AM_I_VALUE) (0x68).
    WrongDevice {
        /// The value read from `WHO_AM_I`.
        found: u8,
    },
    /// A sample burst ended early: fewer than `expected` bytes came back (a
    /// slice too short), or the burst's end marker was not the device's (the
    /// device stopped driving the bus and the tail read as the pull-ups' 0xFF;
    /// see [`RawSample::from_burst`](crate::mpu6050::RawSample::from_burst)).
    ShortRead {
        /// Bytes a complete burst has.
        expected: u8,
        /// Bytes before the cut: the slice's length, or where the trailing
        /// run of 0xFF starts.
        valid: u8,
    },
    /// A configuration register did not read back the value written at
    /// [`init`](crate::mpu6050::Mpu6050::init) (the unit conversion relies on
    /// the full-scale settings, so a device that ignores them is rejected).
    ConfigMismatch {
        /// The register address.
        register: u8,
        /// The value written.
        expected: u8,
        /// The value read back.
        found: u8,
    },
    /// [`Pipeline::poll`](crate::Pipeline::poll) before a successful
    /// [`Pipeline::init`](crate::Pipeline::init): an unconfigured MPU-6050
    /// sleeps and its data registers do not update, so no sample is read.
    NotInitialized,
    /// The runtime rejected the model or a buffer (at
    /// [`Pipeline::new`](crate::Pipeline::new)), or a step.
    Model(runtime::Error),
}

impl<E> From<runtime::Error> for Error<E> {
    fn from(e: runtime::Error) -> Self {
        Error::Model(e)
    }
}

impl<E: embedded_hal::i2c::Error> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::I2c(e) => write!(f, "I2C error: {}", e.kind()),
            Error::WrongDevice { found } => write!(
                f,
                "not an MPU-6050: WHO_AM_I reads {found:#04x}, expected 0x68"
            ),
            Error::ShortRead { expected, valid } => write!(
                f,
                "short read: {valid} of {expected} bytes of the sample burst are valid"
            ),
            Error::ConfigMismatch {
                register,
                expected,
                found,
            } => write!(
                f,
                "register {register:#04x} reads back {found:#04x}, {expected:#04x} was written"
            ),
            Error::NotInitialized => write!(f, "poll before a successful init"),
            Error::Model(e) => write!(f, "model: {e}"),
        }
    }
}

impl<E: embedded_hal::i2c::Error> core::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Model(e) => Some(e),
            _ => None,
        }
    }
}
