//! Convolution and 2-D pooling over channels-last (HWC) feature maps, on
//! both numeric paths; the layer formulas are in
//! [`LayerDef::Conv2dF32`](crate::format::LayerDef::Conv2dF32),
//! [`LayerDef::Conv2dI8`](crate::format::LayerDef::Conv2dI8) and
//! [`LayerDef::Pool2d`](crate::format::LayerDef::Pool2d).
//!
//! Every sum runs in a fixed order (bias, then the taps row by row, column
//! by column, channel by channel), so f32 results are the same on every
//! target. The int8 standard convolution gathers each output position's
//! taps into a column (im2col; padded taps read the input zero point) and
//! runs the dense kernel over it ([`conv_i8_generic`]); its definition is
//! the direct sum ([`conv_i8_reference`]), which a test checks it against.
//! On Armv7E-M (`arm-dsp`) [`conv_i8`] and [`depthwise_i8`] are the DSP
//! kernels of `arm_dsp.rs`, checked bit for bit against these on QEMU.
//!
//! The loader has checked every size: `Geometry` holds only consistent
//! shapes, and every slice is as long as its shape says. Kernels index
//! through `get` all the same and do nothing where a slice is short.

use super::{dense_i8, le_f32, le_i32};
use crate::quant::{rescale, saturate_i8};

/// A validated window over a feature map: input and output shapes and the
/// kernel's stride, dilation and padding (before: top and left).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Geometry {
    /// Input rows, columns, channels.
    pub in_h: u16,
    /// See `in_h`.
    pub in_w: u16,
    /// See `in_h`.
    pub in_c: u16,
    /// Output rows, columns, channels.
    pub out_h: u16,
    /// See `out_h`.
    pub out_w: u16,
    /// See `out_h`.
    pub out_c: u16,
    /// Kernel rows and columns.
    pub k_h: u16,
    /// See `k_h`.
    pub k_w: u16,
    /// Strides.
    pub s_h: u16,
    /// See `s_h`.
    pub s_w: u16,
    /// Dilations.
    pub d_h: u16,
    /// See `d_h`.
    pub d_w: u16,
    /// Padding before the first row and column.
    pub pad_top: u16,
    /// See `pad_top`.
    pub pad_left: u16,
}

impl Geometry {
    fn u(v: u16) -> usize {
        usize::from(v)
    }
    /// Values per tap column of a standard convolution: `k_h * k_w * in_c`.
    pub fn taps(&self) -> usize {
        Self::u(self.k_h) * Self::u(self.k_w) * Self::u(self.in_c)
    }
    /// Output positions.
    pub fn positions(&self) -> usize {
        Self::u(self.out_h) * Self::u(self.out_w)
    }
    /// The input cell of kernel tap `(ky, kx)` for output `(oy, ox)`, or
    /// `None` in the padding.
    #[inline(always)]
    pub(crate) fn cell(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
        let u = Self::u;
        let iy = (oy * u(self.s_h) + ky * u(self.d_h)).checked_sub(u(self.pad_top))?;
        let ix = (ox * u(self.s_w) + kx * u(self.d_w)).checked_sub(u(self.pad_left))?;
        (iy < u(self.in_h) && ix < u(self.in_w)).then_some(iy * u(self.in_w) + ix)
    }
    /// Every output position `(oy, ox)` in order.
    fn outputs(&self) -> impl Iterator<Item = (usize, usize)> {
        let (h, w) = (Self::u(self.out_h), Self::u(self.out_w));
        (0..h).flat_map(move |oy| (0..w).map(move |ox| (oy, ox)))
    }
    /// Every kernel tap `(ky, kx)` in order.
    pub(crate) fn taps_2d(&self) -> impl Iterator<Item = (usize, usize)> {
        let (h, w) = (Self::u(self.k_h), Self::u(self.k_w));
        (0..h).flat_map(move |ky| (0..w).map(move |kx| (ky, kx)))
    }
}

/// Standard convolution, f32: `y[p][o] = bias[o] + sum w[o][ky][kx][c] x[cell][c]`
/// over the taps inside the map.
pub fn conv_f32(g: &Geometry, weights: &[u8], bias: &[u8], x: &[f32], y: &mut [f32]) {
    let (in_c, out_c, taps) = (Geometry::u(g.in_c), Geometry::u(g.out_c), g.taps());
    for ((oy, ox), out) in g.outputs().zip(y.chunks_exact_mut(out_c.max(1))) {
        for (o, (v, b)) in out.iter_mut().zip(bias.chunks_exact(4)).enumerate() {
            let filter = weights.get(o * taps * 4..(o + 1) * taps * 4).unwrap_or(&[]);
            let mut acc = le_f32(b);
            for (t, (ky, kx)) in g.taps_2d().enumerate() {
                let Some(cell) = g.cell(oy, ox, ky, kx) else {
                    continue;
                };
                let xs = x.get(cell * in_c..(cell + 1) * in_c).unwrap_or(&[]);
                let ws = filter.get(t * in_c * 4..(t + 1) * in_c * 4).unwrap_or(&[]);
                for (w, &xv) in ws.chunks_exact(4).zip(xs) {
                    acc += le_f32(w) * xv;
                }
            }
            *v = acc;
        }
    }
}

/// Depthwise convolution, f32: `y[p][c] = bias[c] + sum w[ky][kx][c] x[cell][c]`.
pub fn depthwise_f32(g: &Geometry, weights: &[u8], bias: &[u8], x: &[f32], y: &mut [f32]) {
    let c_n = Geometry::u(g.in_c);
    for ((oy, ox), out) in g.outputs().zip(y.chunks_exact_mut(c_n.max(1))) {
        for (c, (v, b)) in out.iter_mut().zip(bias.chunks_exact(4)).enumerate() {
            let mut acc = le_f32(b);
            for (t, (ky, kx)) in g.taps_2d().enumerate() {
                if let Some(cell) = g.cell(oy, ox, ky, kx) {
                    let w = weights.get((t * c_n + c) * 4..(t * c_n + c + 1) * 4);
                    acc += le_f32(w.unwrap_or(&[])) * x.get(cell * c_n + c).copied().unwrap_or(0.0);
                }
            }
            *v = acc;
        }
    }
}

/// Gather the taps of output `(oy, ox)` into `column` (`k_h x k_w x in_c`
/// int8), padded taps as `zero_point`.
#[inline]
fn im2col_i8(g: &Geometry, x: &[i8], zero_point: i8, (oy, ox): (usize, usize), column: &mut [i8]) {
    let in_c = Geometry::u(g.in_c);
    for ((ky, kx), dst) in g.taps_2d().zip(column.chunks_exact_mut(in_c.max(1))) {
        match g
            .cell(oy, ox, ky, kx)
            .and_then(|cell| x.get(cell * in_c..(cell + 1) * in_c))
        {
            Some(src) => dst.copy_from_slice(src),
            None => dst.iter_mut().for_each(|v| *v = zero_point),
        }
    }
}

/// The taps of output position `p` (`k_h x k_w x in_c` int8): the input
/// itself for a 1x1 kernel with stride 1 and no padding, else gathered into
/// `column` (padded taps as `zero_point`). `None` if `column` is short.
#[inline]
pub(crate) fn tap_column<'c>(
    g: &Geometry,
    x: &'c [i8],
    zero_point: i8,
    p: usize,
    column: &'c mut [i8],
) -> Option<&'c [i8]> {
    let taps = g.taps();
    let pointwise =
        g.k_h == 1 && g.k_w == 1 && g.s_h == 1 && g.s_w == 1 && g.pad_top == 0 && g.pad_left == 0;
    if pointwise {
        return x.get(p * taps..(p + 1) * taps);
    }
    let column = column.get_mut(..taps)?;
    let w = Geometry::u(g.out_w).max(1);
    im2col_i8(g, x, zero_point, (p / w, p % w), column);
    Some(column)
}

/// Standard convolution, int8 (integer-only), one output position at a
/// time through the dense kernel. `scratch` holds a tap column (`taps`
/// bytes at least).
#[allow(clippy::too_many_arguments)]
pub fn conv_i8_generic(
    g: &Geometry,
    weights: &[u8],
    bias: &[u8],
    multiplier: &[u8],
    shift: &[u8],
    (input_zero_point, output_zero_point): (i8, i8),
    x: &[i8],
    y: &mut [i8],
    scratch: &mut [u8],
) {
    let out_c = Geometry::u(g.out_c).max(1);
    let column: &mut [i8] = bytemuck::cast_slice_mut(scratch);
    for (p, out) in y.chunks_exact_mut(out_c).enumerate() {
        let Some(input) = tap_column(g, x, input_zero_point, p, column) else {
            return;
        };
        dense_i8(
            weights,
            bias,
            multiplier,
            shift,
            output_zero_point,
            input,
            out,
        );
    }
}

#[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
pub use super::arm_dsp::{conv_i8, depthwise_i8};
#[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
pub use {conv_i8_generic as conv_i8, depthwise_i8_generic as depthwise_i8};

/// Bytes of arena scratch an int8 depthwise convolution needs on every
/// core: `in_c` i32 accumulators (generic), or the Armv7E-M kernel's
/// widened weights, tap table, zero-point row and sums, whichever is more.
pub const fn depthwise_i8_scratch(in_c: usize, taps: usize) -> usize {
    let c4 = in_c.div_ceil(4) * 4;
    let fast = 2 * taps * c4 + 4 * (taps + 1) + c4 + 4 * c4;
    if 4 * in_c > fast {
        4 * in_c
    } else {
        fast
    }
}

/// Bytes of arena scratch an int8 standard convolution with `taps` taps
/// per position needs on every core: seven tap columns' worth (the Armv7E-M
/// kernel widens three positions' columns to 16 bits, plus one gathered
/// column).
pub const fn conv_i8_scratch(taps: usize) -> usize {
    7 * taps.div_ceil(4) * 4
}

/// The definition of [`conv_i8_generic`]: the direct sum over every tap, padded
/// taps reading the input zero point. For tests (it is slower).
#[allow(clippy::too_many_arguments)]
pub fn conv_i8_reference(
    g: &Geometry,
    weights: &[u8],
    bias: &[u8],
    multiplier: &[u8],
    shift: &[u8],
    (input_zero_point, output_zero_point): (i8, i8),
    x: &[i8],
    y: &mut [i8],
) {
    let (in_c, out_c, taps) = (Geometry::u(g.in_c), Geometry::u(g.out_c), g.taps());
    for ((oy, ox), out) in g.outputs().zip(y.chunks_exact_mut(out_c.max(1))) {
        for (o, v) in out.iter_mut().enumerate() {
            let mut acc = le_i32(bias.get(4 * o..4 * o + 4).unwrap_or(&[]));
            for (t, (ky, kx)) in g.taps_2d().enumerate() {
                let cell = g.cell(oy, ox, ky, kx);
                for c in 0..in_c {
                    let xv = match cell {
                        Some(cell) => x.get(cell * in_c + c).copied().unwrap_or(0),
                        None => input_zero_point,
                    };
                    let w = weights.get(o * taps + t * in_c + c).copied().unwrap_or(0) as i8;
                    acc = acc.wrapping_add(i32::from(w) * i32::from(xv));
                }
            }
            let m = le_i32(multiplier.get(4 * o..4 * o + 4).unwrap_or(&[]));
            let s = shift.get(o).copied().unwrap_or(1);
            *v = saturate_i8(rescale(acc, m, s).saturating_add(i32::from(output_zero_point)));
        }
    }
}

/// Depthwise convolution, int8 (integer-only): per channel `c`,
/// `acc = bias[c] + sum w[ky][kx][c] x[cell][c]` (padded taps read the input
/// zero point), requantized per channel. `acc` is scratch of `in_c` i32.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_i8_generic(
    g: &Geometry,
    weights: &[u8],
    bias: &[u8],
    multiplier: &[u8],
    shift: &[u8],
    (input_zero_point, output_zero_point): (i8, i8),
    x: &[i8],
    y: &mut [i8],
    acc: &mut [i32],
) {
    let c_n = Geometry::u(g.in_c);
    let Some(acc) = acc.get_mut(..c_n) else {
        return;
    };
    for ((oy, ox), out) in g.outputs().zip(y.chunks_exact_mut(c_n.max(1))) {
        for (a, b) in acc.iter_mut().zip(bias.chunks_exact(4)) {
            *a = le_i32(b);
        }
        for (t, (ky, kx)) in g.taps_2d().enumerate() {
            let ws = weights.get(t * c_n..(t + 1) * c_n).unwrap_or(&[]);
            let cell = g.cell(oy, ox, ky, kx);
            match cell.and_then(|cell| x.get(cell * c_n..(cell + 1) * c_n)) {
                Some(xs) => {
                    for ((a, &w), &xv) in acc.iter_mut().zip(ws).zip(xs) {
                        *a = a.wrapping_add(i32::from(w as i8) * i32::from(xv));
                    }
                }
                None => {
                    for (a, &w) in acc.iter_mut().zip(ws) {
                        *a = a.wrapping_add(i32::from(w as i8) * i32::from(input_zero_point));
                    }
                }
            }
        }
        let params = multiplier.chunks_exact(4).zip(shift);
        for ((v, &a), (m, &s)) in out.iter_mut().zip(acc.iter()).zip(params) {
            *v = saturate_i8(rescale(a, le_i32(m), s).saturating_add(i32::from(output_zero_point)));
        }
    }
}

/// Max pooling, either path: the largest valid cell of each window, per
/// channel (`>`: a NaN never replaces a value, and the first valid cell
/// starts the window).
pub fn max_pool<T: Copy + PartialOrd>(g: &Geometry, x: &[T], y: &mut [T]) {
    let c_n = Geometry::u(g.in_c);
    for ((oy, ox), out) in g.outputs().zip(y.chunks_exact_mut(c_n.max(1))) {
        for (c, v) in out.iter_mut().enumerate() {
            let mut best: Option<T> = None;
            for (ky, kx) in g.taps_2d() {
                if let Some(&xv) = g
                    .cell(oy, ox, ky, kx)
                    .and_then(|cell| x.get(cell * c_n + c))
                {
                    if best.is_none_or(|b| xv > b) {
                        best = Some(xv);
                    }
                }
            }
            if let Some(b) = best {
                *v = b;
            }
        }
    }
}

/// Average pooling, f32: the mean of the valid cells (summed in order).
pub fn average_pool_f32(g: &Geometry, x: &[f32], y: &mut [f32]) {
    let c_n = Geometry::u(g.in_c);
    for ((oy, ox), out) in g.outputs().zip(y.chunks_exact_mut(c_n.max(1))) {
        for (c, v) in out.iter_mut().enumerate() {
            let (mut sum, mut n) = (0.0f32, 0u32);
            for (ky, kx) in g.taps_2d() {
                if let Some(&xv) = g
                    .cell(oy, ox, ky, kx)
                    .and_then(|cell| x.get(cell * c_n + c))
                {
                    sum += xv;
                    n += 1;
                }
            }
            *v = sum / n.max(1) as f32;
        }
    }
}

/// Average pooling, int8: `floor((2 sum + n) / (2 n))` over the valid cells.
pub fn average_pool_i8(g: &Geometry, x: &[i8], y: &mut [i8]) {
    let c_n = Geometry::u(g.in_c);
    for ((oy, ox), out) in g.outputs().zip(y.chunks_exact_mut(c_n.max(1))) {
        for (c, v) in out.iter_mut().enumerate() {
            let (mut sum, mut n) = (0i32, 0i32);
            for (ky, kx) in g.taps_2d() {
                if let Some(&xv) = g
                    .cell(oy, ox, ky, kx)
                    .and_then(|cell| x.get(cell * c_n + c))
                {
                    sum += i32::from(xv);
                    n += 1;
                }
            }
            let n = n.max(1);
            *v = (2 * sum + n).div_euclid(2 * n).clamp(-128, 127) as i8;
        }
    }
}
