//! Compute kernels. `generic` holds the plain reference versions, written for
//! clarity and used on every target; faster architecture-specific kernels live
//! beside it and are selected at compile time.

pub mod generic;

pub use generic::{dense_f32, dense_i8};

/// Read a little-endian f32 from a 4-byte chunk (0.0 for any other length,
/// which validated layouts never produce).
#[inline(always)]
pub(crate) fn le_f32(bytes: &[u8]) -> f32 {
    match *bytes {
        [a, b, c, d] => f32::from_le_bytes([a, b, c, d]),
        _ => 0.0,
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
