//! The bit-exact property every fast kernel is held to: on a case drawn at
//! random (a shape, an alignment and the values), the kernel this build
//! selects gives the same bytes as the reference kernel.
//!
//! One property, run in two places (feature `kernel-check`):
//! - on the host, by proptest (`tests/tests/kernels.rs`), which shrinks a
//!   failing case to a small shape: a smaller draw is a smaller shape;
//! - on every Cortex-M core under QEMU (`firmware/kernel-check`, driven by
//!   `cargo xtask test`), where the selected kernels are the architecture
//!   ones: the SXTB16/SMLAD kernels of `arm_dsp` on the M4, M7 and M33.
//!
//! | [`Kernel`] | fast (the build's) | reference |
//! | --- | --- | --- |
//! | `DenseF32` | `blocked::dense_f32` | `generic::dense_f32` |
//! | `DenseI8` | `kernels::dense_i8` | `generic::dense_i8` |
//! | `DenseI8Widened` | `kernels::dense_i8_widened` | `generic::dense_i8` |
//! | `GatesI8` | `recurrent::input_gates` | `recurrent::gate_rows` |
//! | `GatesQ15` | `recurrent::hidden_gates` | `recurrent::gate_rows` |
//! | `ConvI8` | `conv::conv_i8` | `conv::conv_i8_reference` (the direct sum) |
//! | `DepthwiseI8` | `conv::depthwise_i8` | `conv::depthwise_i8_generic` |
//!
//! Weights and int8 inputs start at a drawn offset from a word boundary,
//! as arrays in a blob do; outputs start filled with different bytes on
//! the two sides, so an output a kernel leaves unwritten is a mismatch.
//! Everything lives in a caller's [`Buffers`] (about 8.5 KB, which fits
//! the Cortex-M0's 16 KB of RAM): no allocation.

use super::conv::{self, Geometry};
use super::{generic, recurrent};
use crate::format::{window_axis, Padding};

/// The kernels under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// f32 fully connected.
    DenseF32,
    /// int8 fully connected.
    DenseI8,
    /// int8 fully connected with the input widened in scratch.
    DenseI8Widened,
    /// int8 recurrent gates, input part (int8 vector).
    GatesI8,
    /// int8 recurrent gates, hidden part (Q15 vector).
    GatesQ15,
    /// int8 standard convolution (including pointwise and 1-D shapes).
    ConvI8,
    /// int8 depthwise convolution.
    DepthwiseI8,
}

impl Kernel {
    /// Every kernel.
    pub const ALL: [Kernel; 7] = [
        Kernel::DenseF32,
        Kernel::DenseI8,
        Kernel::DenseI8Widened,
        Kernel::GatesI8,
        Kernel::GatesQ15,
        Kernel::ConvI8,
        Kernel::DepthwiseI8,
    ];

    /// Short name, for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::DenseF32 => "dense-f32",
            Kernel::DenseI8 => "dense-i8",
            Kernel::DenseI8Widened => "dense-i8-widened",
            Kernel::GatesI8 => "gates-i8",
            Kernel::GatesQ15 => "gates-q15",
            Kernel::ConvI8 => "conv-i8",
            Kernel::DepthwiseI8 => "depthwise-i8",
        }
    }
}

/// Random numbers that pick a case's shape and offsets. Each is reduced
/// into its range, so that zero is the smallest case.
pub const DRAWS: usize = 10;

/// One case: a kernel, its shape, and the seed of its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The kernel under test.
    pub kernel: Kernel,
    /// Dense and gate kernels: output rows and input columns.
    pub rows: usize,
    /// See `rows`.
    pub cols: usize,
    /// Convolutions: the window over the input map.
    pub geometry: Geometry,
    /// Bytes the weights and the int8 input start past a word boundary (0..4).
    pub offset: usize,
    /// Seed of the values.
    pub seed: u64,
}

/// A kernel that disagrees with its reference, or a case too large for the
/// buffers (a bug of this module, never of a kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The first output byte that differs.
    Differs {
        /// The case.
        case: Case,
        /// Byte index into the output.
        byte: usize,
    },
    /// The case does not fit [`Buffers`].
    TooLarge {
        /// The case.
        case: Case,
    },
}

/// Largest shapes: dense and gate kernels (rows x columns; the f32 kernel
/// fewer rows, each weight taking four bytes).
const DENSE_ROWS: u32 = 40;
const DENSE_F32_ROWS: u32 = 10;
const DENSE_COLS: u32 = 72;
/// Recurrent hidden widths.
const HIDDEN: u32 = 40;
/// Convolutions: input rows and columns, channels, kernel side.
const MAP_SIDE: u32 = 8;
const CONV_IN_C: u32 = 6;
const CONV_OUT_C: u32 = 9;
const CONV_KERNEL: u32 = 3;
const DEPTHWISE_C: u32 = 19;
const DEPTHWISE_KERNEL: u32 = 5;

const WEIGHT_WORDS: usize = 740;
const CHANNEL_WORDS: usize = 48;
const MAP_WORDS: usize = 320;

// The largest case of each kernel fits (3: the largest offset).
const fn at_most(bytes: u32, words: usize) -> bool {
    bytes as usize <= 4 * words
}
const CONV_TAPS: u32 = CONV_KERNEL * CONV_KERNEL * CONV_IN_C;
const DEPTHWISE_TAPS: u32 = DEPTHWISE_KERNEL * DEPTHWISE_KERNEL;
const MAP_CELLS: u32 = MAP_SIDE * MAP_SIDE;
const _: () = assert!(
    at_most(DENSE_ROWS * DENSE_COLS + 3, WEIGHT_WORDS)
        && at_most(4 * DENSE_F32_ROWS * DENSE_COLS + 3, WEIGHT_WORDS)
        && at_most(CONV_OUT_C * CONV_TAPS + 3, WEIGHT_WORDS)
        && at_most(DEPTHWISE_C * DEPTHWISE_TAPS + 3, WEIGHT_WORDS)
        && DENSE_ROWS as usize <= CHANNEL_WORDS
        && DEPTHWISE_C as usize <= CHANNEL_WORDS
        && at_most(4 * DENSE_COLS + 3, MAP_WORDS)
        && at_most(4 * DENSE_ROWS, MAP_WORDS)
        && at_most(MAP_CELLS * CONV_IN_C + 3, MAP_WORDS)
        && at_most(MAP_CELLS * CONV_OUT_C, MAP_WORDS)
        && at_most(MAP_CELLS * DEPTHWISE_C + 3, MAP_WORDS)
        && at_most(conv::conv_i8_scratch(CONV_TAPS as usize) as u32, MAP_WORDS)
        && at_most(
            conv::depthwise_i8_scratch(DEPTHWISE_C as usize, DEPTHWISE_TAPS as usize) as u32,
            MAP_WORDS
        )
);

/// Every array a case uses, word-aligned.
pub struct Buffers {
    weights: [u32; WEIGHT_WORDS],
    bias: [u32; CHANNEL_WORDS],
    multiplier: [u32; CHANNEL_WORDS],
    shift: [u8; 4 * CHANNEL_WORDS],
    input: [u32; MAP_WORDS],
    fast: [u32; MAP_WORDS],
    reference: [u32; MAP_WORDS],
    scratch: [u32; MAP_WORDS],
}

impl Buffers {
    /// Zeroed buffers (const: a firmware keeps them in a static).
    pub const fn new() -> Self {
        Buffers {
            weights: [0; WEIGHT_WORDS],
            bias: [0; CHANNEL_WORDS],
            multiplier: [0; CHANNEL_WORDS],
            shift: [0; 4 * CHANNEL_WORDS],
            input: [0; MAP_WORDS],
            fast: [0; MAP_WORDS],
            reference: [0; MAP_WORDS],
            scratch: [0; MAP_WORDS],
        }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

/// splitmix64: the values of a case, and the firmware's draws.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    /// Uniform in `0..n` (n > 0; the bias of the modulo does not matter here).
    fn below(&mut self, n: u32) -> u32 {
        self.next_u32() % n
    }
    /// A random case of `kernel`.
    pub fn case(&mut self, kernel: Kernel) -> Case {
        let mut draws = [0u32; DRAWS];
        draws.iter_mut().for_each(|d| *d = self.next_u32());
        Case::new(kernel, draws, self.next_u64())
    }
}

/// `1 + draw % max`: 1 to `max`.
fn pick(draw: u32, max: u32) -> u16 {
    (1 + draw % max) as u16
}

impl Case {
    /// The case `draws` pick for `kernel`, its values from `seed`.
    pub fn new(kernel: Kernel, draws: [u32; DRAWS], seed: u64) -> Case {
        let [d0, d1, d2, ..] = draws;
        let (rows, cols) = match kernel {
            Kernel::DenseF32 => (pick(d0, DENSE_F32_ROWS), pick(d1, DENSE_COLS)),
            Kernel::GatesQ15 => (pick(d0, DENSE_ROWS), pick(d1, HIDDEN)),
            _ => (pick(d0, DENSE_ROWS), pick(d1, DENSE_COLS)),
        };
        let geometry = match kernel {
            Kernel::ConvI8 => window(draws, CONV_IN_C, CONV_KERNEL, Some(CONV_OUT_C)),
            Kernel::DepthwiseI8 => window(draws, DEPTHWISE_C, DEPTHWISE_KERNEL, None),
            _ => Geometry::default(),
        };
        Case {
            kernel,
            rows: usize::from(rows),
            cols: usize::from(cols),
            geometry,
            offset: (d2 % 4) as usize,
            seed,
        }
    }
}

/// A window over a map of at most `MAP_SIDE` square, `channels` channels and
/// kernel sides up to `kernel`: strides and dilations 1 or 2, "same" or
/// "valid" padding ("same" where the kernel is larger than the map). One
/// case in four of a standard convolution is pointwise (1x1, stride 1, no
/// padding), which takes its own path. `out_c`: standard convolution
/// output channels (depthwise: as many as in).
fn window(draws: [u32; DRAWS], channels: u32, kernel: u32, out_c: Option<u32>) -> Geometry {
    let [_, _, _, d3, d4, d5, d6, d7, d8, d9] = draws;
    let (in_h, in_w, in_c) = (pick(d3, MAP_SIDE), pick(d4, MAP_SIDE), pick(d5, channels));
    let pointwise = out_c.is_some() && d9 % 4 == 0;
    let (mut k_h, mut k_w) = (pick(d6, kernel), pick(d6 / 8, kernel));
    let (mut s_h, mut s_w) = (pick(d7, 2), pick(d7 / 2, 2));
    let (mut d_h, mut d_w) = (pick(d8, 2), pick(d8 / 2, 2));
    let mut padding = if d9 / 4 % 2 == 0 {
        Padding::Same
    } else {
        Padding::Valid
    };
    if pointwise {
        (k_h, k_w, s_h, s_w, d_h, d_w) = (1, 1, 1, 1, 1, 1);
        padding = Padding::Valid;
    }
    let axis = |input: u16, k: u16, s: u16, d: u16| {
        let (i, k, s, d) = (u32::from(input), u32::from(k), u32::from(s), u32::from(d));
        window_axis(i, k, s, d, padding)
            .or_else(|| window_axis(i, k, s, d, Padding::Same))
            .unwrap_or((1, 0))
    };
    let (out_h, pad_top) = axis(in_h, k_h, s_h, d_h);
    let (out_w, pad_left) = axis(in_w, k_w, s_w, d_w);
    Geometry {
        in_h,
        in_w,
        in_c,
        out_h: out_h as u16,
        out_w: out_w as u16,
        out_c: out_c.map_or(in_c, |c| pick(d9 / 8, c)),
        k_h,
        k_w,
        s_h,
        s_w,
        d_h,
        d_w,
        pad_top: pad_top as u16,
        pad_left: pad_left as u16,
    }
}

/// Fill `bytes` with random int8 values (all of -128..=127).
fn fill_i8(rng: &mut Rng, bytes: &mut [u8]) {
    bytes.iter_mut().for_each(|b| *b = rng.next_u32() as u8);
}

/// Per output channel: biases (one in eight channels anywhere in the i32
/// range, so that sums wrap), multipliers in `[2^30, 2^31)` (one in
/// sixteen 0), and shifts that put an output of `fan_in` random int8
/// products mostly inside the int8 range, give or take a factor of 4 (one
/// in eight any valid shift).
fn fill_channels(
    rng: &mut Rng,
    fan_in: usize,
    bias: &mut [u32],
    multiplier: &mut [u32],
    shift: &mut [u8],
) {
    // A sum of `fan_in` products has a spread of about 2^13 * sqrt(fan_in).
    let spread_bits = 13 + (usize::BITS - fan_in.leading_zeros()) / 2;
    for ((b, m), s) in bias.iter_mut().zip(multiplier).zip(shift) {
        *b = if rng.below(8) == 0 {
            rng.next_u32()
        } else {
            (rng.next_u32() >> 16) as i16 as i32 as u32
        };
        *m = if rng.below(16) == 0 {
            0
        } else {
            (1 << 30) | (rng.next_u32() >> 2)
        };
        // ratio 2^(31 - shift) ~ 2^6 / 2^spread_bits, +-2 bits; one in
        // eight anywhere in 1..=62 (shifts below 33 take rescale's 64-bit path).
        *s = if rng.below(8) == 0 {
            1 + rng.below(62) as u8
        } else {
            (31 + spread_bits - 6 + rng.below(5)).saturating_sub(2) as u8
        };
    }
}

/// The first byte where `fast` and `reference` differ.
fn compare(case: Case, fast: &[u8], reference: &[u8]) -> Result<(), Failure> {
    match fast.iter().zip(reference).position(|(a, b)| a != b) {
        Some(byte) => Err(Failure::Differs { case, byte }),
        None => Ok(()),
    }
}

/// Run `case`'s kernel and its reference; `Ok` if every output byte agrees.
pub fn check(case: &Case, buffers: &mut Buffers) -> Result<(), Failure> {
    let case = *case;
    run(case, buffers).ok_or(Failure::TooLarge { case })?
}

/// [`check`], `None` if the case does not fit.
fn run(case: Case, buffers: &mut Buffers) -> Option<Result<(), Failure>> {
    let mut rng = Rng(case.seed);
    let g = &case.geometry;
    let (outputs, weights, fan_in) = match case.kernel {
        Kernel::ConvI8 => {
            let outputs = g.positions() * usize::from(g.out_c);
            (outputs, usize::from(g.out_c) * g.taps(), g.taps())
        }
        Kernel::DepthwiseI8 => {
            let taps = usize::from(g.k_h) * usize::from(g.k_w);
            let c = usize::from(g.in_c);
            (g.positions() * c, taps * c, taps)
        }
        _ => (case.rows, case.rows * case.cols, case.cols),
    };
    let channels = match case.kernel {
        Kernel::ConvI8 => usize::from(g.out_c),
        Kernel::DepthwiseI8 => usize::from(g.in_c),
        _ => case.rows,
    };
    // Output bytes per value.
    let width = match case.kernel {
        Kernel::DenseF32 | Kernel::GatesI8 | Kernel::GatesQ15 => 4,
        _ => 1,
    };
    let weight_width = if case.kernel == Kernel::DenseF32 {
        4
    } else {
        1
    };
    let input_len = match case.kernel {
        Kernel::ConvI8 | Kernel::DepthwiseI8 => {
            usize::from(g.in_h) * usize::from(g.in_w) * usize::from(g.in_c)
        }
        _ => case.cols,
    };

    let all_weights: &mut [u8] = bytemuck::cast_slice_mut(&mut buffers.weights);
    let w = all_weights.get_mut(case.offset..case.offset + weights * weight_width)?;
    match case.kernel {
        Kernel::DenseF32 => fill_f32(&mut rng, w),
        _ => fill_i8(&mut rng, w),
    }
    let w: &[u8] = w;
    if case.kernel == Kernel::DenseF32 {
        let bias: &mut [u8] = bytemuck::cast_slice_mut(buffers.bias.get_mut(..channels)?);
        fill_f32(&mut rng, bias);
    } else {
        fill_channels(
            &mut rng,
            fan_in,
            buffers.bias.get_mut(..channels)?,
            buffers.multiplier.get_mut(..channels)?,
            buffers.shift.get_mut(..channels)?,
        );
    }
    let bias: &[u8] = bytemuck::cast_slice(buffers.bias.get(..channels)?);
    let multiplier: &[u8] = bytemuck::cast_slice(buffers.multiplier.get(..channels)?);
    let shift = buffers.shift.get(..channels)?;
    let zero_points = (rng.next_u32() as i8, rng.next_u32() as i8);

    let fast_bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buffers.fast);
    let fast = fast_bytes.get_mut(..outputs * width)?;
    fast.fill(0x55);
    let reference_bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buffers.reference);
    let reference = reference_bytes.get_mut(..outputs * width)?;
    reference.fill(0xAA);
    let scratch = &mut buffers.scratch;

    match case.kernel {
        Kernel::DenseF32 => {
            let x: &mut [f32] = bytemuck::cast_slice_mut(buffers.input.get_mut(..input_len)?);
            x.iter_mut().for_each(|v| *v = random_f32(&mut rng));
            let x: &[f32] = x;
            super::dense_f32(w, bias, x, bytemuck::cast_slice_mut(fast));
            generic::dense_f32(w, bias, x, bytemuck::cast_slice_mut(reference));
        }
        Kernel::GatesQ15 => {
            let h: &mut [i16] =
                bytemuck::cast_slice_mut(buffers.input.get_mut(..input_len.div_ceil(2))?);
            let h = h.get_mut(..input_len)?;
            h.iter_mut().for_each(|v| *v = rng.next_u32() as i16);
            let h: &[i16] = h;
            let permuted = scratch.get_mut(..2 * input_len.div_ceil(4))?;
            let (gates, reference_gates) = (
                bytemuck::cast_slice_mut(fast),
                bytemuck::cast_slice_mut(reference),
            );
            recurrent::hidden_gates(w, bias, multiplier, shift, (h, permuted), gates);
            recurrent::gate_rows(w, bias, multiplier, shift, h, reference_gates);
        }
        _ => {
            let all_input: &mut [u8] = bytemuck::cast_slice_mut(&mut buffers.input);
            let x = all_input.get_mut(case.offset..case.offset + input_len)?;
            fill_i8(&mut rng, x);
            let x: &[i8] = bytemuck::cast_slice(x);
            let (fast_i8, reference_i8): (&mut [i8], &mut [i8]) = (
                bytemuck::cast_slice_mut(fast),
                bytemuck::cast_slice_mut(reference),
            );
            let zp_out = zero_points.1;
            match case.kernel {
                Kernel::DenseI8 => {
                    super::dense_i8(w, bias, multiplier, shift, zp_out, x, fast_i8);
                    generic::dense_i8(w, bias, multiplier, shift, zp_out, x, reference_i8);
                }
                Kernel::DenseI8Widened => {
                    // As the loader reserves: 2 bytes per input, whole groups of 4.
                    let words = input_len.div_ceil(4) * 2;
                    let wide = bytemuck::cast_slice_mut(scratch.get_mut(..words)?);
                    super::dense_i8_widened(w, bias, multiplier, shift, zp_out, x, fast_i8, wide);
                    generic::dense_i8(w, bias, multiplier, shift, zp_out, x, reference_i8);
                }
                Kernel::GatesI8 => {
                    let (gates, reference_gates) = (
                        bytemuck::cast_slice_mut(fast_i8),
                        bytemuck::cast_slice_mut(reference_i8),
                    );
                    recurrent::input_gates(w, bias, multiplier, shift, x, gates);
                    recurrent::gate_rows(w, bias, multiplier, shift, x, reference_gates);
                }
                Kernel::ConvI8 => {
                    let bytes = conv::conv_i8_scratch(g.taps());
                    let column = bytemuck::cast_slice_mut(scratch.get_mut(..bytes / 4)?);
                    conv::conv_i8(
                        g,
                        w,
                        bias,
                        multiplier,
                        shift,
                        zero_points,
                        x,
                        fast_i8,
                        column,
                    );
                    conv::conv_i8_reference(
                        g,
                        w,
                        bias,
                        multiplier,
                        shift,
                        zero_points,
                        x,
                        reference_i8,
                    );
                }
                Kernel::DepthwiseI8 => {
                    let taps = usize::from(g.k_h) * usize::from(g.k_w);
                    let bytes = conv::depthwise_i8_scratch(usize::from(g.in_c), taps);
                    let acc: &mut [i32] = bytemuck::cast_slice_mut(scratch.get_mut(..bytes / 4)?);
                    conv::depthwise_i8(g, w, bias, multiplier, shift, zero_points, x, fast_i8, acc);
                    conv::depthwise_i8_generic(
                        g,
                        w,
                        bias,
                        multiplier,
                        shift,
                        zero_points,
                        x,
                        reference_i8,
                        acc,
                    );
                }
                Kernel::DenseF32 | Kernel::GatesQ15 => {}
            }
        }
    }
    Some(compare(case, fast, reference))
}

/// A random f32 in [-8, 8), with 24 random bits.
fn random_f32(rng: &mut Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1 << 20) as f32 - 8.0
}

/// Fill `bytes` (a whole number of f32) with random little-endian f32.
fn fill_f32(rng: &mut Rng, bytes: &mut [u8]) {
    for chunk in bytes.chunks_exact_mut(4) {
        chunk.copy_from_slice(&random_f32(rng).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random cases of every kernel fit the buffers (the bounds are also
    /// asserted at compile time above), and the property holds.
    #[test]
    fn cases_fit_and_agree() {
        let mut buffers = Buffers::new();
        let mut rng = Rng(7);
        for kernel in Kernel::ALL {
            for _ in 0..500 {
                let case = rng.case(kernel);
                assert_eq!(check(&case, &mut buffers), Ok(()));
            }
        }
    }
}
