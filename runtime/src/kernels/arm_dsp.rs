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
        && body.is_multiple_of(4)
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
    rows_i8(
        weights,
        bias,
        multiplier,
        shift,
        input,
        output,
        |acc, m, s| requantize(acc, m, s, output_zero_point),
    );
}

/// [`dense_i8`] with the input widened once to q15 in `scratch` (at least
/// 2 bytes per input, rounded up to 4 inputs, 4-byte aligned, as the
/// loader reserves for int8 dense layers): the rows then run on
/// [`dot3_q15`], one `LDRD` of the input per four columns for three rows
/// (1.42 instructions per MAC). The same results as [`dense_i8`]; with
/// too small a scratch it is [`dense_i8`].
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub fn dense_i8_widened(
    weights: &[u8],
    bias: &[u8],
    multiplier: &[u8],
    shift: &[u8],
    output_zero_point: i8,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) {
    let cols = input.len();
    let groups = cols / 4;
    let words = 2 * cols.div_ceil(4);
    let wide =
        bytemuck::try_cast_slice_mut::<u8, u32>(scratch.get_mut(..4 * words).unwrap_or(&mut []));
    let Ok(wide) = wide else {
        return dense_i8(
            weights,
            bias,
            multiplier,
            shift,
            output_zero_point,
            input,
            output,
        );
    };
    if groups == 0 {
        return dense_i8(
            weights,
            bias,
            multiplier,
            shift,
            output_zero_point,
            input,
            output,
        );
    }
    widen(input, wide);
    let wide: &[u32] = wide;
    let body = 4 * groups;
    let x_tail: &[u8] = bytemuck::cast_slice(input.get(body..).unwrap_or(&[]));
    let finish = |acc: i32, row: &[u8], m: &[u8], s: u8| {
        let total = tail(acc, row.get(body..).unwrap_or(&[]), x_tail);
        requantize(total, m, s, output_zero_point)
    };
    let triples = weights
        .chunks_exact(3 * cols)
        .zip(bias.chunks_exact(12))
        .zip(multiplier.chunks_exact(12))
        .zip(shift.chunks_exact(3))
        .zip(output.chunks_exact_mut(3));
    for ((((rows, b), m), s), out) in triples {
        let (r0, rest) = rows.split_at(cols);
        let (r1, r2) = rest.split_at(cols);
        let acc = [load_i32(&b[0..4]), load_i32(&b[4..8]), load_i32(&b[8..12])];
        let acc = dot3_q15(groups, wide, r0, r1, r2, acc);
        out[0] = finish(acc[0], r0, &m[0..4], s[0]);
        out[1] = finish(acc[1], r1, &m[4..8], s[1]);
        out[2] = finish(acc[2], r2, &m[8..12], s[2]);
    }
    let done = output.len() - output.len() % 3;
    let x: &[u8] = bytemuck::cast_slice(input);
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

/// Gate pre-activations of an int8 recurrent layer's input part: `out[k] =
/// rescale(bias[k] + W[k] · x, m[k], s[k])`; the same results as the
/// generic `gate_rows` (integer sums do not depend on their order).
#[cfg(feature = "recurrent")]
pub fn gate_rows_i8(
    weights: &[u8],
    bias: &[u8],
    multiplier: &[u8],
    shift: &[u8],
    x: &[i8],
    out: &mut [i32],
) {
    rows_i8(weights, bias, multiplier, shift, x, out, |acc, m, s| {
        rescale(acc, load_i32(m), s)
    });
}

/// `out[k] = finish(bias[k] + W[k] · input, multiplier[k], shift[k])` over
/// the rows of an int8 matrix, three rows per pass of [`dot3`] (the
/// input's unpacking shared), then the last one or two.
#[inline(always)]
fn rows_i8<T>(
    weights: &[u8],
    bias: &[u8],
    multiplier: &[u8],
    shift: &[u8],
    input: &[i8],
    output: &mut [T],
    finish: impl Fn(i32, &[u8], u8) -> T,
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
        for (k, (row, o)) in [r0, r1, r2].into_iter().zip(out).enumerate() {
            let total = tail(acc[k], row.get(body..).unwrap_or(&[]), x_tail);
            *o = finish(total, &m[4 * k..4 * k + 4], s[k]);
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
        *out = finish(dot1(x, row, load_i32(b)), m, s);
    }
}

/// One group of four columns of [`dot3_q15`]: an `LDRD` of the vector
/// and, per row, one load, two `SXTB16` and two `SMLAD` (the row and vector
/// pointers advance).
macro_rules! q15_group {
    () => {
        concat!(
            "ldrd   {x}, {y}, [{xp}], #8\n",
            "ldr    {w}, [{p0}], #4\n",
            "sxtb16 {t}, {w}\n",
            "smlad  {a0}, {t}, {x}, {a0}\n",
            "sxtb16 {w}, {w}, ror #8\n",
            "smlad  {a0}, {w}, {y}, {a0}\n",
            "ldr    {w}, [{p1}], #4\n",
            "sxtb16 {t}, {w}\n",
            "smlad  {a1}, {t}, {x}, {a1}\n",
            "sxtb16 {w}, {w}, ror #8\n",
            "smlad  {a1}, {w}, {y}, {a1}\n",
            "ldr    {w}, [{p2}], #4\n",
            "sxtb16 {t}, {w}\n",
            "smlad  {a2}, {t}, {x}, {a2}\n",
            "sxtb16 {w}, {w}, ror #8\n",
            "smlad  {a2}, {w}, {y}, {a2}\n",
        )
    };
}

/// Three int8 weight rows against one q15 vector of `groups` groups of
/// four, permuted as [`widen`] makes them (`[x0 x2] [x1 x3]` per group),
/// added to `acc`. Two groups per pass of the loop (an odd one first):
/// per group one `LDRD` of the vector and per row one load, two `SXTB16`
/// and two `SMLAD`, so 17 instructions per 12 MACs (1.42 per MAC).
#[inline(always)]
fn dot3_q15(groups: usize, x: &[u32], r0: &[u8], r1: &[u8], r2: &[u8], acc: [i32; 3]) -> [i32; 3] {
    let body = 4 * groups;
    let in_bounds = groups > 0
        && x.len() >= 2 * groups
        && [r0.len(), r1.len(), r2.len()].iter().all(|&l| l >= body);
    if !in_bounds {
        return acc;
    }
    let [mut a0, mut a1, mut a2] = acc;
    // SAFETY: the vector is read with LDRD at 8-byte steps over its first
    // `2 * groups` words (a u32 slice: 4-byte aligned, as LDRD needs), each
    // row with LDR at 4-byte steps over its first `body` bytes (unaligned LDR
    // is allowed on Armv7E-M: CCR.UNALIGN_TRP resets to 0 and nothing here
    // sets it); `groups` passes of one group in all, lengths checked above.
    // Only the named registers and the flags are written; no stack is used.
    unsafe {
        asm!(
            // Carry: an odd group; zero: no pair (the group keeps the flags).
            "lsrs   {n}, {n}, #1",
            "bcc    3f",
            q15_group!(),
            "3:",
            "beq    4f",
            "2:",
            q15_group!(),
            q15_group!(),
            "subs   {n}, {n}, #1",
            "bne    2b",
            "4:",
            n = inout(reg) groups => _,
            xp = inout(reg) x.as_ptr() => _,
            p0 = inout(reg) r0.as_ptr() => _,
            p1 = inout(reg) r1.as_ptr() => _,
            p2 = inout(reg) r2.as_ptr() => _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            x = out(reg) _,
            y = out(reg) _,
            t = out(reg) _,
            w = out(reg) _,
            options(readonly, nostack),
        );
    }
    [a0, a1, a2]
}

/// The hidden state `h` (int16 Q15) as the permuted q15 vector of
/// [`dot3_q15`] in `out` (zero past `h`).
#[cfg(feature = "recurrent")]
pub fn permute_q15(h: &[i16], out: &mut [u32]) {
    let lane = |k: usize| u32::from(h.get(k).copied().unwrap_or(0) as u16);
    for (g, pair) in out.chunks_exact_mut(2).enumerate() {
        let k = 4 * g;
        pair[0] = lane(k) | lane(k + 2) << 16;
        pair[1] = lane(k + 1) | lane(k + 3) << 16;
    }
}

/// Gate pre-activations of an int8 recurrent layer's hidden part: `out[k] =
/// rescale(bias[k] + W[k] · h, m[k], s[k])` with `h` given both as it is
/// (for the tail) and permuted ([`permute_q15`]); the same results as the
/// generic `gate_rows`.
#[cfg(feature = "recurrent")]
pub fn gate_rows_q15(
    weights: &[u8],
    bias: &[u8],
    multiplier: &[u8],
    shift: &[u8],
    (h, permuted): (&[i16], &[u32]),
    out: &mut [i32],
) {
    let cols = h.len();
    if cols == 0 {
        return;
    }
    let groups = cols / 4;
    let body = 4 * groups;
    let tail = |acc: i32, row: &[u8]| {
        row.iter().zip(h).skip(body).fold(acc, |a, (&w, &v)| {
            a.wrapping_add(i32::from(w as i8) * i32::from(v))
        })
    };
    let triples = weights
        .chunks_exact(3 * cols)
        .zip(bias.chunks_exact(12))
        .zip(multiplier.chunks_exact(12))
        .zip(shift.chunks_exact(3))
        .zip(out.chunks_exact_mut(3));
    for ((((rows, b), m), s), o) in triples {
        let (r0, rest) = rows.split_at(cols);
        let (r1, r2) = rest.split_at(cols);
        let acc = [load_i32(&b[0..4]), load_i32(&b[4..8]), load_i32(&b[8..12])];
        let acc = dot3_q15(groups, permuted, r0, r1, r2, acc);
        for (k, (row, v)) in [r0, r1, r2].into_iter().zip(o).enumerate() {
            *v = rescale(tail(acc[k], row), load_i32(&m[4 * k..4 * k + 4]), s[k]);
        }
    }
    let done = out.len() - out.len() % 3;
    let rest = weights
        .get(done * cols..)
        .unwrap_or(&[])
        .chunks_exact(cols)
        .zip(bias.get(done * 4..).unwrap_or(&[]).chunks_exact(4))
        .zip(multiplier.get(done * 4..).unwrap_or(&[]).chunks_exact(4))
        .zip(shift.get(done..).unwrap_or(&[]))
        .zip(out.get_mut(done..).unwrap_or(&mut []));
    for ((((row, b), m), &s), v) in rest {
        let acc = row.iter().zip(h).fold(load_i32(b), |a, (&w, &x)| {
            a.wrapping_add(i32::from(w as i8) * i32::from(x))
        });
        *v = rescale(acc, load_i32(m), s);
    }
}

/// Positions a standard convolution computes per pass of [`dot_row_3`].
#[cfg(feature = "conv")]
const POSITIONS: usize = 3;

/// One int8 weight row against three q15 tap columns, over `groups` groups
/// of four taps, added to `acc`. A column holds per group the words
/// `[x0 x2]` and `[x1 x3]` (i16 lanes, as `SXTB16` unpacks a weight word),
/// so each group costs one weight load, two unpacks, and per column one
/// `LDRD` and two `SMLAD` (about 1.17 instructions per MAC).
#[cfg(feature = "conv")]
#[inline(always)]
fn dot_row_3(groups: usize, row: &[u8], columns: [&[u32]; 3], acc: [i32; 3]) -> [i32; 3] {
    let in_bounds =
        groups > 0 && row.len() >= 4 * groups && columns.iter().all(|c| c.len() >= 2 * groups);
    if !in_bounds {
        return acc;
    }
    let [mut a0, mut a1, mut a2] = acc;
    // SAFETY: the weight pointer reads `4 * groups` bytes of `row` (LDR,
    // unaligned allowed on Armv7E-M), each column pointer `8 * groups`
    // bytes of its column with LDRD, which needs 4-byte alignment: the
    // columns are `u32` slices. All lengths are checked above. Only the
    // named registers and the flags are written; no stack is used.
    unsafe {
        asm!(
            "2:",
            "ldr    {w}, [{wp}], #4",
            "sxtb16 {t}, {w}",
            "sxtb16 {w}, {w}, ror #8",
            "ldrd   {x}, {y}, [{p0}], #8",
            "smlad  {a0}, {t}, {x}, {a0}",
            "smlad  {a0}, {w}, {y}, {a0}",
            "ldrd   {x}, {y}, [{p1}], #8",
            "smlad  {a1}, {t}, {x}, {a1}",
            "smlad  {a1}, {w}, {y}, {a1}",
            "ldrd   {x}, {y}, [{p2}], #8",
            "smlad  {a2}, {t}, {x}, {a2}",
            "smlad  {a2}, {w}, {y}, {a2}",
            "subs   {n}, {n}, #1",
            "bne    2b",
            n = inout(reg) groups => _,
            wp = inout(reg) row.as_ptr() => _,
            p0 = inout(reg) columns[0].as_ptr() => _,
            p1 = inout(reg) columns[1].as_ptr() => _,
            p2 = inout(reg) columns[2].as_ptr() => _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            w = out(reg) _,
            t = out(reg) _,
            x = out(reg) _,
            y = out(reg) _,
            options(pure, readonly, nostack),
        );
    }
    [a0, a1, a2]
}

/// Tap `k` of a q15 column (see [`dot_row_3`]).
#[cfg(feature = "conv")]
#[inline(always)]
fn q15_at(column: &[u32], k: usize) -> i32 {
    let word = column.get(2 * (k / 4) + (k % 2)).copied().unwrap_or(0);
    let lane = if k % 4 < 2 {
        word as u16
    } else {
        (word >> 16) as u16
    };
    i32::from(lane as i16)
}

/// An int8 column (`taps` values, any length) as a q15 column for
/// [`dot_row_3`] and [`dot3_q15`], zero past the taps.
fn widen(column_i8: &[i8], out: &mut [u32]) {
    let bytes: &[u8] = bytemuck::cast_slice(column_i8);
    let mut groups = bytes.chunks_exact(4);
    let mut words = out.chunks_exact_mut(2);
    for (group, pair) in (&mut groups).zip(&mut words) {
        let v = le_u32(group);
        pair[0] = sxtb16(v);
        pair[1] = sxtb16_ror8(v);
    }
    if let Some(pair) = words.next() {
        let mut last = [0u8; 4];
        last.iter_mut()
            .zip(groups.remainder())
            .for_each(|(d, &s)| *d = s);
        let v = u32::from_le_bytes(last);
        pair[0] = sxtb16(v);
        pair[1] = sxtb16_ror8(v);
    }
}

/// Same contract and results as the generic
/// [`conv_i8`](super::conv::conv_i8_generic): standard convolution, three
/// output positions per pass, each weight row loaded once for the three
/// (`scratch`: at least 7 x `taps` rounded up to 4 bytes, as the loader
/// reserves). Leftover positions take the generic path.
#[cfg(feature = "conv")]
#[allow(clippy::too_many_arguments)]
pub fn conv_i8(
    g: &super::conv::Geometry,
    weights: &[u8],
    bias: &[u8],
    multiplier: &[u8],
    shift: &[u8],
    zero_points: (i8, i8),
    x: &[i8],
    y: &mut [i8],
    scratch: &mut [u8],
) {
    let taps = g.taps();
    let (groups, rest) = (taps / 4, taps % 4);
    let out_c = usize::from(g.out_c);
    let words = 2 * taps.div_ceil(4);
    let Ok(scratch) = bytemuck::try_cast_slice_mut::<u8, u32>(
        scratch
            .get_mut(..7 * taps.div_ceil(4) * 4)
            .unwrap_or(&mut []),
    ) else {
        return;
    };
    let (q15, column_words) = scratch.split_at_mut(POSITIONS * words);
    let column: &mut [i8] = bytemuck::cast_slice_mut(column_words);
    let positions = g.positions();
    let full = positions - positions % POSITIONS;
    for first in (0..full).step_by(POSITIONS) {
        let mut cols = q15.chunks_exact_mut(words);
        for p in first..first + POSITIONS {
            let (Some(q), Some(src)) = (
                cols.next(),
                super::conv::tap_column(g, x, zero_points.0, p, column),
            ) else {
                return;
            };
            widen(src, q);
        }
        let columns = [
            q15.get(..words).unwrap_or(&[]),
            q15.get(words..2 * words).unwrap_or(&[]),
            q15.get(2 * words..3 * words).unwrap_or(&[]),
        ];
        let Some(outs) = y.get_mut(first * out_c..(first + POSITIONS) * out_c) else {
            return;
        };
        let (o0, rest_outs) = outs.split_at_mut(out_c);
        let (o1, o2) = rest_outs.split_at_mut(out_c);
        // One zip over the per-channel arrays (in step, so indexed without
        // checks); the weight row and the three outputs by position.
        let params = bias
            .chunks_exact(4)
            .zip(multiplier.chunks_exact(4))
            .zip(shift)
            .zip(o0.iter_mut().zip(o1.iter_mut().zip(o2.iter_mut())));
        let mut row = weights;
        for (((b, m), &s), (v0, (v1, v2))) in params {
            // A row's partial last group reads into the next rows, against
            // the columns' zero lanes: exact, where the weights go on for
            // a whole group (not for the last row, nor for the last three
            // when a row has a single tap); else the tail is added one tap
            // at a time.
            let (whole, tail) = if rest != 0 && row.len() >= 4 * (groups + 1) {
                (groups + 1, 0)
            } else {
                (groups, rest)
            };
            let mut acc = dot_row_3(whole, row, columns, [load_i32(b); 3]);
            for k in taps - tail..taps {
                let w = i32::from(row.get(k).copied().unwrap_or(0) as i8);
                for (a, c) in acc.iter_mut().zip(columns) {
                    *a = a.wrapping_add(w * q15_at(c, k));
                }
            }
            let m = load_i32(m);
            let requantize =
                |a| saturate_i8(rescale(a, m, s).saturating_add(i32::from(zero_points.1)));
            *v0 = requantize(acc[0]);
            *v1 = requantize(acc[1]);
            *v2 = requantize(acc[2]);
            row = row.get(taps..).unwrap_or(&[]);
        }
    }
    // The last one or two positions: one column each through the dense kernel.
    for p in full..positions {
        let Some(src) = super::conv::tap_column(g, x, zero_points.0, p, column) else {
            return;
        };
        if let Some(out) = y.get_mut(p * out_c..(p + 1) * out_c) {
            dense_i8(weights, bias, multiplier, shift, zero_points.1, src, out);
        }
    }
}

/// Four channels (`channel` to `channel + 3`) of one depthwise output
/// position: over the taps listed in `table` (per tap the address of its
/// input cell's first channel, padded taps pointing at a row of the input
/// zero point; a null address ends it), against q15 weight pairs `[w0 w2]
/// [w1 w3]` starting at `weights` and `stride` bytes apart per tap, added
/// to `acc`.
/// Per tap: three loads, two `SXTB16`, four 16-bit MACs and the loop's two
/// (about 3 instructions per MAC).
///
/// # Safety
/// Every address in `table` before the null one, plus `channel`, must be
/// readable for 4 bytes, and `weights + t * stride` readable for 8 bytes
/// (and 4-byte aligned) for each listed tap `t`.
#[cfg(feature = "conv")]
#[inline(always)]
unsafe fn depthwise_quad(
    table: *const u32,
    channel: usize,
    weights: *const u32,
    stride: usize,
    acc: [i32; 4],
) -> [i32; 4] {
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    // SAFETY: the caller's contract above; only the named registers and the
    // flags are written, no stack is used.
    unsafe {
        asm!(
            "2:",
            "ldr    r2, [{tbl}], #4",
            "cbz    r2, 3f",
            "ldr    r2, [r2, {c}]",
            "ldrd   {w02}, {w13}, [{wp}]",
            "add    {wp}, {wp}, {stride}",
            "sxtb16 {t}, r2",
            "sxtb16 r2, r2, ror #8",
            "smlabb {a0}, {t}, {w02}, {a0}",
            "smlatt {a2}, {t}, {w02}, {a2}",
            "smlabb {a1}, r2, {w13}, {a1}",
            "smlatt {a3}, r2, {w13}, {a3}",
            "b      2b",
            "3:",
            tbl = inout(reg) table => _,
            wp = inout(reg) weights => _,
            stride = in(reg) stride,
            c = in(reg) channel,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            a3 = inout(reg) a3,
            t = out(reg) _,
            w02 = out(reg) _,
            w13 = out(reg) _,
            // The loaded word is in r2: `cbz` takes only r0-r7, and a
            // register left to the allocator can land in r8-r12 (it did
            // at opt-level "z").
            out("r2") _,
            options(pure, readonly, nostack),
        );
    }
    [a0, a1, a2, a3]
}

/// Same contract and results as the generic
/// [`depthwise_i8`](super::conv::depthwise_i8_generic): the weights widened
/// to q15 once per call, then per output position a table of the taps'
/// input addresses, and four channels at a time in registers over the taps
/// ([`depthwise_quad`]); leftover channels take the generic arithmetic.
/// `scratch` holds [`depthwise_i8_scratch`](super::conv::depthwise_i8_scratch)
/// bytes (the loader reserves them).
#[cfg(feature = "conv")]
#[allow(clippy::too_many_arguments)]
pub fn depthwise_i8(
    g: &super::conv::Geometry,
    weights: &[u8],
    bias: &[u8],
    multiplier: &[u8],
    shift: &[u8],
    (input_zero_point, output_zero_point): (i8, i8),
    x: &[i8],
    y: &mut [i8],
    scratch: &mut [i32],
) {
    let c_n = usize::from(g.in_c);
    let taps = usize::from(g.k_h) * usize::from(g.k_w);
    let c4 = c_n.div_ceil(4) * 4;
    let quads = c_n / 4;
    let scratch: &mut [u32] = bytemuck::cast_slice_mut(scratch);
    let Some(scratch) = scratch.get_mut(..super::conv::depthwise_i8_scratch(c_n, taps) / 4) else {
        return;
    };
    let (wide, rest) = scratch.split_at_mut(taps * c4 / 2);
    let (table, rest) = rest.split_at_mut(taps + 1);
    let (zero_row, sums) = rest.split_at_mut(c4 / 4);
    let sums: &mut [i32] = bytemuck::cast_slice_mut(sums);
    // Weights, tap by tap, as q15 pairs of four channels.
    for (t, row) in wide.chunks_exact_mut(c4 / 2).enumerate() {
        let src = weights.get(t * c_n..(t + 1) * c_n).unwrap_or(&[]);
        for (pair, group) in row.chunks_exact_mut(2).zip(src.chunks(4)) {
            let mut word = [0u8; 4];
            word.iter_mut().zip(group).for_each(|(d, &s)| *d = s);
            let v = u32::from_le_bytes(word);
            pair[0] = sxtb16(v);
            pair[1] = sxtb16_ror8(v);
        }
    }
    let padded = u32::from(input_zero_point as u8) * 0x0101_0101;
    zero_row.iter_mut().for_each(|w| *w = padded);
    let x_bytes: &[u8] = bytemuck::cast_slice(x);
    let width = usize::from(g.out_w).max(1);
    for (p, out) in y.chunks_exact_mut(c_n.max(1)).enumerate() {
        let (oy, ox) = (p / width, p % width);
        for (entry, (ky, kx)) in table.iter_mut().zip(g.taps_2d()) {
            let cell = g.cell(oy, ox, ky, kx);
            // The cell's first channel; its last quad's 4 bytes are in `x`.
            *entry = match cell.and_then(|cell| x_bytes.get(cell * c_n..cell * c_n + 4 * quads)) {
                Some(row) if quads > 0 => row.as_ptr() as u32,
                _ => zero_row.as_ptr() as u32,
            };
        }
        if let Some(end) = table.get_mut(taps) {
            *end = 0;
        }
        // Accumulate quad by quad into `sums`, then requantize the row at once
        // (fewer live values around the assembly).
        let quad_bias = bias.chunks_exact(16);
        for ((q, b), sum) in quad_bias.enumerate().zip(sums.chunks_exact_mut(4)) {
            let c = 4 * q;
            let acc = [
                load_i32(&b[0..4]),
                load_i32(&b[4..8]),
                load_i32(&b[8..12]),
                load_i32(&b[12..16]),
            ];
            let first = wide.get(c / 2..).unwrap_or(&[]);
            if first.len() >= (taps - 1) * c4 / 2 + 2 {
                // SAFETY: every table entry before the end marker is the
                // start of `4 * quads` bytes of `x`, or of `zero_row` (c4 >=
                // 4 * quads bytes), set above; `c + 4 <= 4 * quads`. The
                // weight pointer advances `2 * c4` bytes (c4/2 words) per
                // tap and `first` holds the pair of every tap (checked
                // here); `wide` is a u32 slice, so 4-byte aligned.
                let acc = unsafe { depthwise_quad(table.as_ptr(), c, first.as_ptr(), 2 * c4, acc) };
                sum.copy_from_slice(&acc);
            }
        }
        let params = multiplier.chunks_exact(4).zip(shift);
        for ((v, &a), (m, &s)) in out.iter_mut().zip(sums.iter()).zip(params) {
            *v = requantize(a, m, s, output_zero_point);
        }
        for ch in 4 * quads..c_n {
            let mut acc = load_i32(bias.get(4 * ch..4 * ch + 4).unwrap_or(&[]));
            for (t, (ky, kx)) in g.taps_2d().enumerate() {
                let xv = g
                    .cell(oy, ox, ky, kx)
                    .and_then(|cell| x.get(cell * c_n + ch))
                    .copied()
                    .unwrap_or(input_zero_point);
                let w = weights.get(t * c_n + ch).copied().unwrap_or(0) as i8;
                acc = acc.wrapping_add(i32::from(w) * i32::from(xv));
            }
            let m = multiplier.get(4 * ch..4 * ch + 4).unwrap_or(&[]);
            if let (Some(v), Some(&s)) = (out.get_mut(ch), shift.get(ch)) {
                *v = requantize(acc, m, s, output_zero_point);
            }
        }
    }
}
