//! Compute kernels. `generic` holds the plain reference versions, written for
//! clarity and used on every target; faster architecture-specific kernels live
//! beside it and are selected at compile time (`arm_dsp` with the `arm-dsp`
//! feature on Armv7E-M, `armv6m` on Armv6-M), each held to its reference by
//! the one property of `check`. A family's kernels are
//! compiled only with its feature.

pub mod activation;
#[cfg(any(feature = "attention", feature = "seq2seq"))]
pub mod attention;
pub mod blocked;
#[cfg(feature = "kernel-check")]
pub mod check;
#[cfg(feature = "classical")]
pub mod classical;
#[cfg(feature = "conv")]
pub mod conv;
pub mod generic;
#[cfg(feature = "attention")]
pub mod norm;
#[cfg(feature = "recurrent")]
pub mod recurrent;

#[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
pub mod arm_dsp;
#[cfg(armv6m)]
pub mod armv6m;

pub use blocked::dense_f32;

#[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
pub use arm_dsp::{dense_i8, dense_i8_widened};
#[cfg(armv6m)]
pub use armv6m::{dense_i8, dense_i8_widened};
#[cfg(not(any(all(feature = "arm-dsp", target_arch = "arm"), armv6m)))]
pub use generic::{dense_i8, dense_i8_widened};

/// Read a little-endian f32 from a 4-byte chunk (0.0 for any other length,
/// which validated layouts never produce).
#[inline(always)]
pub(crate) fn le_f32(bytes: &[u8]) -> f32 {
    match *bytes {
        [a, b, c, d] => f32::from_le_bytes([a, b, c, d]),
        _ => 0.0,
    }
}

/// Read a little-endian u32 from a 4-byte chunk (0 for any other length).
#[inline(always)]
pub(crate) fn le_u32(bytes: &[u8]) -> u32 {
    match *bytes {
        [a, b, c, d] => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Read a little-endian u16 from a 2-byte chunk (0 for any other length).
#[inline(always)]
#[allow(dead_code)]
pub(crate) fn le_u16(bytes: &[u8]) -> u16 {
    match *bytes {
        [a, b] => u16::from_le_bytes([a, b]),
        _ => 0,
    }
}

/// Read a little-endian i32 from a 4-byte chunk (0 for any other length).
#[inline(always)]
pub(crate) fn le_i32(bytes: &[u8]) -> i32 {
    match *bytes {
        [a, b, c, d] => i32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}
