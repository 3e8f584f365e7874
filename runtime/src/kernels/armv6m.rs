//! The int8 dense kernel for Armv6-M (Cortex-M0/M0+), selected on those
//! targets (`cfg(armv6m)`, set by the build script).
//!
//! Armv6-M has no DSP instructions and `LDRSB` only with a register offset.
//! One negative index counts up to zero and addresses the input and three
//! weight rows, so three MACs cost one input load, three weight loads,
//! three `MULS`, three adds and the loop's `ADDS`/`BNE`: 4 instructions per
//! MAC. Results are identical to
//! [`generic::dense_i8`](super::generic::dense_i8), the same wrapping int32
//! sums and requantization; `kernels::check` holds it to that.
#![allow(unsafe_code)]

use core::arch::asm;

use super::le_i32;
use crate::quant::{rescale, saturate_i8};

/// Three int8 dot products of `x` with the rows `r0`, `r1` and `r2` over
/// `cols` columns (zero if a slice is shorter than `cols`).
#[inline(always)]
fn dot3(cols: usize, x: &[u8], r0: &[u8], r1: &[u8], r2: &[u8]) -> [i32; 3] {
    if cols == 0
        || [x.len(), r0.len(), r1.len(), r2.len()]
            .iter()
            .any(|&l| l < cols)
    {
        return [0; 3];
    }
    let (a0, a1, a2): (i32, i32, i32);
    // SAFETY: the index runs over [-cols, 0), so each stream is read at
    // bytes [0, cols) of `x`, `r0`, `r1` and `r2`, all checked above to be
    // at least `cols` long (LDRSB reads single bytes: no alignment). r6,
    // which inline assembly may not name as an operand (LLVM's base
    // pointer), is saved in r8 and restored before the end; nothing here
    // uses the stack or memory other than those reads. Only the named
    // registers and the flags are written.
    unsafe {
        asm!(
            // The sums live in high registers, which `ADD` (no flags) can
            // name; the low ones hold the index, the four pointers and the
            // two loaded values.
            "mov    r8, r6",
            "movs   r5, #0",
            "mov    r10, r5",
            "mov    r11, r5",
            "mov    r12, r5",
            "2:",
            "ldrsb  r5, [r1, r0]",
            "ldrsb  r6, [r2, r0]",
            "muls   r6, r5, r6",
            "add    r10, r6",
            "ldrsb  r6, [r3, r0]",
            "muls   r6, r5, r6",
            "add    r11, r6",
            "ldrsb  r6, [r4, r0]",
            "muls   r6, r5, r6",
            "add    r12, r6",
            "adds   r0, #1",
            "bne    2b",
            "mov    r2, r10",
            "mov    r3, r11",
            "mov    r4, r12",
            "mov    r6, r8",
            inout("r0") (cols as isize).wrapping_neg() => _,
            in("r1") x.as_ptr().wrapping_add(cols),
            inout("r2") r0.as_ptr().wrapping_add(cols) => a0,
            inout("r3") r1.as_ptr().wrapping_add(cols) => a1,
            inout("r4") r2.as_ptr().wrapping_add(cols) => a2,
            out("r5") _,
            out("r8") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            options(pure, readonly, nostack),
        );
    }
    [a0, a1, a2]
}

/// The high word of the 64-bit product `value * multiplier` (`multiplier`
/// in `[0, 2^31)`, as the loader checks), from four 16 x 16-bit `MULS`:
/// Armv6-M has no long multiply, and `__aeabi_lmul` costs about twice this.
#[inline(always)]
fn mul_high(value: i32, multiplier: i32) -> i32 {
    let (vh, vl) = (value >> 16, value & 0xFFFF);
    let (mh, ml) = (multiplier >> 16, multiplier & 0xFFFF);
    // value * multiplier = vh mh 2^32 + (vh ml + vl mh) 2^16 + vl ml, each
    // partial product exact in 32 bits (|vh| <= 2^15, mh < 2^15, vl, ml < 2^16).
    let cross_signed = vh * ml;
    let cross = (vl * mh) as u32;
    let low = ((vl as u32) * (ml as u32)) >> 16;
    // floor((cross_signed + cross + low) / 2^16), without overflow.
    let carry = ((cross_signed & 0xFFFF) as u32 + (cross & 0xFFFF) + low) >> 16;
    vh * mh + (cross_signed >> 16) + (cross >> 16) as i32 + carry as i32
}

/// [`rescale`](crate::quant::rescale), its usual case (`shift >= 33`, the
/// high word only) through [`mul_high`].
#[inline(always)]
fn rescale_v6m(value: i32, multiplier: i32, shift: u8) -> i32 {
    if shift >= 33 {
        return ((mul_high(value, multiplier) >> (shift - 33)) + 1) >> 1;
    }
    rescale(value, multiplier, shift)
}

/// Same contract and results as [`generic::dense_i8`](super::generic::dense_i8):
/// three output rows per pass of [`dot3`] (the last pass repeats its last
/// row where fewer than three are left: less code than a loop for one or two).
// Out of line: inlined into the interpreter, its values spill to the stack.
#[inline(never)]
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
    let x: &[u8] = bytemuck::cast_slice(input);
    let rows = output.len().min(shift.len());
    let row = |k: usize| weights.get(k * cols..(k + 1) * cols).unwrap_or(&[]);
    let word = |bytes: &[u8], k: usize| le_i32(bytes.get(4 * k..4 * k + 4).unwrap_or(&[]));
    let mut first = 0;
    while first < rows {
        let last = rows - 1;
        let sums = dot3(
            cols,
            x,
            row(first),
            row((first + 1).min(last)),
            row((first + 2).min(last)),
        );
        for (k, sum) in (first..rows).zip(sums) {
            let acc = word(bias, k).wrapping_add(sum);
            let scaled = rescale_v6m(acc, word(multiplier, k), shift.get(k).copied().unwrap_or(1));
            if let Some(out) = output.get_mut(k) {
                *out = saturate_i8(scaled.saturating_add(i32::from(output_zero_point)));
            }
        }
        first += 3;
    }
}

/// [`dense_i8`] in the DSP kernel's form (the widening scratch unused).
#[allow(clippy::too_many_arguments)]
pub fn dense_i8_widened(
    weights: &[u8],
    bias: &[u8],
    multiplier: &[u8],
    shift: &[u8],
    output_zero_point: i8,
    input: &[i8],
    output: &mut [i8],
    _scratch: &mut [u8],
) {
    dense_i8(
        weights,
        bias,
        multiplier,
        shift,
        output_zero_point,
        input,
        output,
    );
}
