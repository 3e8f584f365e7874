//! int8 kernels for cores with the Armv7E-M DSP extension (Cortex-M4, M7, M33
//! with DSP), enabled by the `arm-dsp` feature.
//!
//! LLVM does not form `SXTB16`/`SMLAD` from plain Rust, so those two
//! instructions are inline assembly; loads, loop and scheduling stay Rust.
//! Four int8 MACs cost one weight load, two `SXTB16` and two `SMLAD`; the
//! input's two `SXTB16` are shared by two output rows. Results are identical
//! to [`generic::dense_i8`](super::generic::dense_i8) (same wrapping int32
//! accumulation, same requantization); the QEMU parity tests check it.
#![allow(unsafe_code)]

use core::arch::asm;

use super::{le_i32, le_u32};
use crate::quant::{rescale, saturate_i8};

/// Sign-extend bytes 0 and 2 of `x` into two i16 lanes.
#[inline(always)]
fn sxtb16(x: u32) -> u32 {
    let r: u32;
    // SAFETY: register-only instruction available on every DSP core this
    // module is compiled for; it touches no memory, stack or flags.
    unsafe {
        asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// Sign-extend bytes 1 and 3 of `x` into two i16 lanes.
#[inline(always)]
fn sxtb16_ror8(x: u32) -> u32 {
    let r: u32;
    // SAFETY: as for `sxtb16`.
    unsafe {
        asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `acc + a.lo * b.lo + a.hi * b.hi` on i16 lanes (wrapping, like the reference).
#[inline(always)]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: register-only; it may set the Q (sticky saturation) flag, which
    // nothing here reads, so `preserves_flags` is not claimed.
    unsafe {
        asm!("smlad {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack))
    };
    r
}

#[inline(always)]
fn requantize(acc: i32, multiplier: &[u8], shift: u8, output_zero_point: i8) -> i8 {
    let scaled = rescale(acc, le_i32(multiplier), shift);
    saturate_i8(scaled.saturating_add(i32::from(output_zero_point)))
}

/// Dot product tail (the last `cols % 4` elements).
#[inline(always)]
fn tail(acc: i32, w: &[u8], x: &[u8]) -> i32 {
    w.iter().zip(x).fold(acc, |a, (&w, &x)| {
        a.wrapping_add(i32::from(w as i8) * i32::from(x as i8))
    })
}

/// Same contract and results as [`generic::dense_i8`](super::generic::dense_i8).
pub fn dense_i8(
    weights: &[u8],
    bias: &[u8],
    multiplier: &[u8],
    shift: &[u8],
    output_zero_point: i8,
    input: &[i8],
    output: &mut [i8],
) {
    let cols = input.len();
    if cols == 0 {
        return;
    }
    let x: &[u8] = bytemuck::cast_slice(input);
    let body = cols & !3;
    let (x_body, x_tail) = x.split_at(body);

    let pairs = weights
        .chunks_exact(2 * cols)
        .zip(bias.chunks_exact(8))
        .zip(multiplier.chunks_exact(8))
        .zip(shift.chunks_exact(2))
        .zip(output.chunks_exact_mut(2));
    for ((((rows, b), m), s), out) in pairs {
        let (row0, row1) = rows.split_at(cols);
        let (mut acc0, mut acc1) = (le_i32(&b[..4]), le_i32(&b[4..]));
        for ((w0, w1), xq) in row0
            .chunks_exact(4)
            .zip(row1.chunks_exact(4))
            .zip(x_body.chunks_exact(4))
        {
            let xv = le_u32(xq);
            let (x02, x13) = (sxtb16(xv), sxtb16_ror8(xv));
            let (a, b) = (le_u32(w0), le_u32(w1));
            acc0 = smlad(sxtb16(a), x02, acc0);
            acc0 = smlad(sxtb16_ror8(a), x13, acc0);
            acc1 = smlad(sxtb16(b), x02, acc1);
            acc1 = smlad(sxtb16_ror8(b), x13, acc1);
        }
        acc0 = tail(acc0, row0.get(body..).unwrap_or(&[]), x_tail);
        acc1 = tail(acc1, row1.get(body..).unwrap_or(&[]), x_tail);
        out[0] = requantize(acc0, &m[..4], s[0], output_zero_point);
        out[1] = requantize(acc1, &m[4..], s[1], output_zero_point);
    }

    // An odd last row.
    let rows_done = output.len() & !1;
    if let (Some(row), Some(b), Some(m), Some(&s), Some(out)) = (
        weights.get(rows_done * cols..(rows_done + 1) * cols),
        bias.get(rows_done * 4..rows_done * 4 + 4),
        multiplier.get(rows_done * 4..rows_done * 4 + 4),
        shift.get(rows_done),
        output.get_mut(rows_done),
    ) {
        let mut acc = le_i32(b);
        for (w, xq) in row.chunks_exact(4).zip(x_body.chunks_exact(4)) {
            let (a, xv) = (le_u32(w), le_u32(xq));
            acc = smlad(sxtb16(a), sxtb16(xv), acc);
            acc = smlad(sxtb16_ror8(a), sxtb16_ror8(xv), acc);
        }
        acc = tail(acc, row.get(body..).unwrap_or(&[]), x_tail);
        *out = requantize(acc, m, s, output_zero_point);
    }
}
