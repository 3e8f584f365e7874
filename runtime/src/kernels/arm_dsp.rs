//! int8 kernels for cores with the Armv7E-M DSP extension (Cortex-M4, M7, M33
//! with DSP), enabled by the `arm-dsp` feature.
//!
//! LLVM does not form `SXTB16`/`SMLAD` from plain Rust, so those two
//! instructions are inline assembly; loads, loop and scheduling stay Rust.
//! Four int8 MACs cost one weight load, two `SXTB16` and two `SMLAD`; the
//! input's two `SXTB16` are shared by three output rows. Results are identical
//! to [`generic::dense_i8`](super::generic::dense_i8) (same wrapping int32
//! accumulation, same requantization); the QEMU parity tests check it.
#![allow(unsafe_code)]

use core::arch::asm;

use super::le_u32;
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

/// Little-endian i32 from the first 4 bytes (0 if fewer), as one unaligned
/// `LDR`: LLVM otherwise often assembles it from four byte loads.
#[inline(always)]
fn load_i32(bytes: &[u8]) -> i32 {
    if bytes.len() < 4 {
        return 0;
    }
    // SAFETY: 4 readable bytes at `bytes.as_ptr()` (checked above);
    // `read_unaligned` has no alignment requirement, and every bit pattern is
    // a valid i32. Cortex-M is little-endian, matching the blob's byte order.
    unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<i32>()) }
}

#[inline(always)]
fn requantize(acc: i32, multiplier: &[u8], shift: u8, output_zero_point: i8) -> i8 {
    let scaled = rescale(acc, load_i32(multiplier), shift);
    saturate_i8(scaled.saturating_add(i32::from(output_zero_point)))
}

/// Dot product tail (the last `cols % 4` elements).
#[inline(always)]
fn tail(acc: i32, w: &[u8], x: &[u8]) -> i32 {
    w.iter().zip(x).fold(acc, |a, (&w, &x)| {
        a.wrapping_add(i32::from(w as i8) * i32::from(x as i8))
    })
}

/// Three int8 dot products over the first `body` bytes (`body` a non-zero
/// multiple of 4) of `x` and the rows `r0`, `r1`, `r2`, added to `acc`.
///
/// The loop is assembly so that the twelve live values stay in registers:
/// one negative offset serves as loop counter and as the index of all four
/// streams, so four MACs per row cost one load, two `SXTB16` and two `SMLAD`,
/// and the input's unpacking is shared by the three rows (about 1.67
/// instructions per MAC with the loop's `adds`/`bne`).
#[inline(always)]
fn dot3(body: usize, x: &[u8], r0: &[u8], r1: &[u8], r2: &[u8], acc: [i32; 3]) -> [i32; 3] {
    let in_bounds = body > 0
        && body % 4 == 0
        && [x.len(), r0.len(), r1.len(), r2.len()]
            .iter()
            .all(|&l| l >= body);
    if !in_bounds {
        return acc;
    }
    let [mut a0, mut a1, mut a2] = acc;
    let offset = (body as isize).wrapping_neg();
    // SAFETY: each stream is read at `end + offset` for offset in
    // [-body, 0) in steps of 4, i.e. bytes [0, body) of `x`, `r0`, `r1`,
    // `r2`, all checked above to be at least `body` long. Unaligned LDR is
    // architecturally allowed on Armv7E-M (the reset value of CCR.UNALIGN_TRP
    // is 0 and nothing here sets it). Only the named registers and the flags
    // are written; no stack is used.
    unsafe {
        asm!(
            "2:",
            "ldr    {w}, [{xe}, {i}]",
            "sxtb16 {x02}, {w}",
            "sxtb16 {x13}, {w}, ror #8",
            "ldr    {w}, [{e0}, {i}]",
            "sxtb16 {t}, {w}",
            "smlad  {a0}, {t}, {x02}, {a0}",
            "sxtb16 {w}, {w}, ror #8",
            "smlad  {a0}, {w}, {x13}, {a0}",
            "ldr    {w}, [{e1}, {i}]",
            "sxtb16 {t}, {w}",
            "smlad  {a1}, {t}, {x02}, {a1}",
            "sxtb16 {w}, {w}, ror #8",
            "smlad  {a1}, {w}, {x13}, {a1}",
            "ldr    {w}, [{e2}, {i}]",
            "sxtb16 {t}, {w}",
            "smlad  {a2}, {t}, {x02}, {a2}",
            "sxtb16 {w}, {w}, ror #8",
            "smlad  {a2}, {w}, {x13}, {a2}",
            "adds   {i}, {i}, #4",
            "bne    2b",
            i = inout(reg) offset => _,
            xe = in(reg) x.as_ptr().wrapping_add(body),
            e0 = in(reg) r0.as_ptr().wrapping_add(body),
            e1 = in(reg) r1.as_ptr().wrapping_add(body),
            e2 = in(reg) r2.as_ptr().wrapping_add(body),
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            x02 = out(reg) _,
            x13 = out(reg) _,
            t = out(reg) _,
            w = out(reg) _,
            options(pure, readonly, nostack),
        );
    }
    [a0, a1, a2]
}

/// One row's dot product (body by SMLAD pairs, tail by plain MACs).
#[inline(always)]
fn dot1(x: &[u8], row: &[u8], mut acc: i32) -> i32 {
    let body = x.len() & !3;
    for (w, xq) in row
        .chunks_exact(4)
        .zip(x.get(..body).unwrap_or(&[]).chunks_exact(4))
    {
        let (a, xv) = (le_u32(w), le_u32(xq));
        acc = smlad(sxtb16(a), sxtb16(xv), acc);
        acc = smlad(sxtb16_ror8(a), sxtb16_ror8(xv), acc);
    }
    tail(
        acc,
        row.get(body..).unwrap_or(&[]),
        x.get(body..).unwrap_or(&[]),
    )
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
    let x_tail = x.get(body..).unwrap_or(&[]);

    // Three output rows per pass.
    let triples = weights
        .chunks_exact(3 * cols)
        .zip(bias.chunks_exact(12))
        .zip(multiplier.chunks_exact(12))
        .zip(shift.chunks_exact(3))
        .zip(output.chunks_exact_mut(3));
    for ((((rows, b), m), s), out) in triples {
        let (r0, rest) = rows.split_at(cols);
        let (r1, r2) = rest.split_at(cols);
        let mut acc = [load_i32(&b[0..4]), load_i32(&b[4..8]), load_i32(&b[8..12])];
        if body > 0 {
            acc = dot3(body, x, r0, r1, r2, acc);
        }
        for (k, row) in [r0, r1, r2].into_iter().enumerate() {
            let total = tail(acc[k], row.get(body..).unwrap_or(&[]), x_tail);
            out[k] = requantize(total, &m[4 * k..4 * k + 4], s[k], output_zero_point);
        }
    }

    // The last one or two rows.
    let done = output.len() - output.len() % 3;
    let rest = weights
        .get(done * cols..)
        .unwrap_or(&[])
        .chunks_exact(cols)
        .zip(bias.get(done * 4..).unwrap_or(&[]).chunks_exact(4))
        .zip(multiplier.get(done * 4..).unwrap_or(&[]).chunks_exact(4))
        .zip(shift.get(done..).unwrap_or(&[]))
        .zip(output.get_mut(done..).unwrap_or(&mut []));
    for ((((row, b), m), &s), out) in rest {
        *out = requantize(dot1(x, row, load_i32(b)), m, s, output_zero_point);
    }
}
