//! The convolution family (feature `conv`): standard and depthwise 2-D
//! convolutions (1-D: height 1; pointwise: 1x1) and max / average pooling
//! over channels-last feature maps, on both numeric paths. The kernels are
//! in [`crate::kernels::conv`].
//!
//! Validation: the declared input map has exactly the current tensor's
//! size, and the shape the previous convolution or pooling produced (so
//! channel counts chain, not only totals; its size is at most `MAX_TENSOR`,
//! each dimension at most `MAX_WIDTH`); kernel, stride and dilation are
//! in `1..=MAX_WIDTH` (a stride of 0 is [`Error::BadParameter`]) and the
//! dilated kernel fits the padded input ([`Error::ShapeMismatch`]
//! otherwise); a depthwise layer has one filter per channel; every
//! parameter array has its exact length (a batch norm folded with the wrong
//! length shows here); pooling has no dilation.
//!
//! Arena: an int8 standard convolution needs
//! [`conv_i8_scratch`] bytes (tap columns), a depthwise one `in_c` i32
//! accumulators; in the families' scratch.

use super::dense::check_multipliers;
use super::{check_len, check_width, Io, ModelStats, Out, Plan, BAD};
use crate::error::{Error, Result};
use crate::format::{FeatureMap, LayerDef, Pool2dKind, Window, MAX_TENSOR};
use crate::kernels::conv::{
    average_pool_f32, average_pool_i8, conv_f32, conv_i8, conv_i8_scratch, depthwise_f32,
    depthwise_i8, depthwise_i8_scratch, max_pool, Geometry,
};

/// A validated convolution-family layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conv<'a> {
    geometry: Geometry,
    op: Op<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Op<'a> {
    #[cfg(feature = "f32")]
    F32 {
        depthwise: bool,
        weights: &'a [u8],
        bias: &'a [u8],
    },
    #[cfg(feature = "int8")]
    I8 {
        depthwise: bool,
        weights: &'a [u8],
        bias: &'a [u8],
        multiplier: &'a [u8],
        shift: &'a [u8],
        zero_points: (i8, i8),
    },
    Pool(Pool2dKind),
}

/// Model-wide facts of the convolution layers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Layout {
    /// Whether the model has a convolution or pooling layer.
    pub present: bool,
    /// Bytes of arena scratch the largest layer needs.
    pub scratch: usize,
}

impl Layout {
    /// No convolution.
    pub(crate) const fn new() -> Self {
        Layout {
            present: false,
            scratch: 0,
        }
    }
}

/// A window parameter in `1..=MAX_WIDTH` (0 is a bad parameter: a stride or
/// kernel of 0 means nothing).
fn check_step(at: u32, value: u32) -> Result<u16> {
    if value == 0 {
        return Err(Error::BadParameter { layer: at });
    }
    check_width(at, value).map(|v| v as u16)
}

/// The geometry of `window` over `input` with `out_c` output channels.
fn geometry(at: u32, input: &FeatureMap, window: &Window, out_c: u32) -> Result<Geometry> {
    let (in_h, in_w, in_c) = (
        check_width(at, input.height)? as u16,
        check_width(at, input.width)? as u16,
        check_width(at, input.channels)? as u16,
    );
    let (k_h, k_w) = (
        check_step(at, window.kernel_h)?,
        check_step(at, window.kernel_w)?,
    );
    let (s_h, s_w) = (
        check_step(at, window.stride_h)?,
        check_step(at, window.stride_w)?,
    );
    let (d_h, d_w) = (
        check_step(at, window.dilation_h)?,
        check_step(at, window.dilation_w)?,
    );
    let (out_h, out_w, pad_top, pad_left) = window
        .output(input)
        .ok_or(Error::ShapeMismatch { layer: at })?;
    let out_c = check_width(at, out_c)? as u16;
    // Each output axis is at most its padded input axis (no more than two
    // MAX_WIDTH): it fits a u16.
    Ok(Geometry {
        in_h,
        in_w,
        in_c,
        out_h: out_h as u16,
        out_w: out_w as u16,
        out_c,
        k_h,
        k_w,
        s_h,
        s_w,
        d_h,
        d_w,
        pad_top: pad_top as u16,
        pad_left: pad_left as u16,
    })
}

/// The input map against the tensor it reads (`at`'s error otherwise).
fn check_input(at: u32, input: &FeatureMap, plan: &Plan<'_, '_>) -> Result<()> {
    let len = input.len().ok_or(Error::ShapeMismatch { layer: at })?;
    if plan.tokens != 1 || len as usize != plan.width {
        return Err(Error::ShapeMismatch { layer: at });
    }
    match plan.map {
        Some(map) if map != *input => Err(Error::ShapeMismatch { layer: at }),
        _ => Ok(()),
    }
}

/// The output map of `g`, as the new tensor.
fn set_output(at: u32, g: &Geometry, plan: &mut Plan<'_, '_>) -> Result<()> {
    let map = FeatureMap {
        height: u32::from(g.out_h),
        width: u32::from(g.out_w),
        channels: u32::from(g.out_c),
    };
    let len = map
        .len()
        .filter(|&l| l <= MAX_TENSOR)
        .ok_or(Error::DimensionOutOfRange {
            layer: at,
            value: map.len().unwrap_or(u32::MAX),
        })?;
    plan.width = len as usize;
    plan.map = Some(map);
    plan.families.conv.present = true;
    Ok(())
}

/// Validate a convolution-family definition (`None`: not of this family).
pub(crate) fn validate<'a>(
    at: u32,
    def: &LayerDef<'a>,
    plan: &mut Plan<'_, 'a>,
) -> Option<Result<Conv<'a>>> {
    let layer = match *def {
        LayerDef::Conv2dF32 {
            ref input,
            filters,
            ref window,
            depthwise,
            weights,
            bias,
        } => (|| {
            let g = conv_geometry(at, input, window, filters, depthwise, plan)?;
            check_len(at, weights, weight_count(&g, depthwise) * 4)?;
            check_len(at, bias, usize::from(g.out_c) * 4)?;
            set_output(at, &g, plan)?;
            #[cfg(feature = "f32")]
            return Ok(Conv {
                geometry: g,
                op: Op::F32 {
                    depthwise,
                    weights,
                    bias,
                },
            });
            #[cfg(not(feature = "f32"))]
            Err(Error::WrongNumericPath)
        })(),
        LayerDef::Conv2dI8 {
            ref input,
            filters,
            ref window,
            depthwise,
            weights,
            bias,
            multiplier,
            shift,
            input_zero_point,
            output_zero_point,
        } => (|| {
            let g = conv_geometry(at, input, window, filters, depthwise, plan)?;
            check_len(at, weights, weight_count(&g, depthwise))?;
            check_len(at, bias, usize::from(g.out_c) * 4)?;
            check_multipliers(at, multiplier, shift, usize::from(g.out_c))?;
            set_output(at, &g, plan)?;
            let layout = &mut plan.families.conv;
            let taps = usize::from(g.k_h) * usize::from(g.k_w);
            layout.scratch = layout.scratch.max(if depthwise {
                depthwise_i8_scratch(usize::from(g.in_c), taps)
            } else {
                conv_i8_scratch(g.taps())
            });
            #[cfg(feature = "int8")]
            return Ok(Conv {
                geometry: g,
                op: Op::I8 {
                    depthwise,
                    weights,
                    bias,
                    multiplier,
                    shift,
                    zero_points: (input_zero_point, output_zero_point),
                },
            });
            #[cfg(not(feature = "int8"))]
            Err(Error::WrongNumericPath)
        })(),
        LayerDef::Pool2d {
            ref input,
            kind,
            ref window,
        } => (|| {
            check_input(at, input, plan)?;
            if window.dilation_h != 1 || window.dilation_w != 1 {
                return Err(Error::BadParameter { layer: at });
            }
            let g = geometry(at, input, window, input.channels)?;
            set_output(at, &g, plan)?;
            Ok(Conv {
                geometry: g,
                op: Op::Pool(kind),
            })
        })(),
        _ => return None,
    };
    Some(layer)
}

fn conv_geometry(
    at: u32,
    input: &FeatureMap,
    window: &Window,
    filters: u32,
    depthwise: bool,
    plan: &Plan<'_, '_>,
) -> Result<Geometry> {
    check_input(at, input, plan)?;
    if depthwise && filters != input.channels {
        return Err(Error::ShapeMismatch { layer: at });
    }
    geometry(at, input, window, filters)
}

/// Weights of a layer: `out_c x taps` (standard) or `k_h x k_w x in_c` (depthwise).
fn weight_count(g: &Geometry, depthwise: bool) -> usize {
    if depthwise {
        usize::from(g.k_h) * usize::from(g.k_w) * usize::from(g.in_c)
    } else {
        usize::from(g.out_c) * g.taps()
    }
}

impl Conv<'_> {
    /// Short name for reports.
    pub(crate) fn kind(&self) -> &'static str {
        let g = &self.geometry;
        let one_d = g.in_h == 1;
        match self.op {
            #[cfg(feature = "f32")]
            Op::F32 { depthwise, .. } => match (depthwise, one_d) {
                (true, _) => "depthwise conv f32",
                (false, true) => "conv1d f32",
                (false, false) => "conv2d f32",
            },
            #[cfg(feature = "int8")]
            Op::I8 { depthwise, .. } => match (depthwise, one_d) {
                (true, _) => "depthwise conv int8",
                (false, true) => "conv1d int8",
                (false, false) => "conv2d int8",
            },
            Op::Pool(Pool2dKind::Max) => "max pool",
            Op::Pool(Pool2dKind::Average) if g.out_h == 1 && g.out_w == 1 => "global average pool",
            Op::Pool(Pool2dKind::Average) => "average pool",
        }
    }

    /// The output feature map (for reports).
    pub(crate) fn output(&self) -> FeatureMap {
        let g = &self.geometry;
        FeatureMap {
            height: u32::from(g.out_h),
            width: u32::from(g.out_w),
            channels: u32::from(g.out_c),
        }
    }

    /// Adds parameters, MACs (every tap, padded ones too, as CMSIS-NN
    /// counts them) and parameter bytes.
    pub(crate) fn add_stats(&self, s: &mut ModelStats) {
        let g = &self.geometry;
        let per_position = |depthwise: bool| {
            usize::from(g.k_h)
                * usize::from(g.k_w)
                * usize::from(if depthwise { 1 } else { g.in_c })
                * usize::from(g.out_c)
        };
        match self.op {
            #[cfg(feature = "f32")]
            Op::F32 {
                depthwise,
                weights,
                bias,
            } => {
                s.parameters += (weights.len() + bias.len()) / 4;
                s.parameter_bytes += weights.len() + bias.len();
                s.macs += per_position(depthwise) * g.positions();
            }
            #[cfg(feature = "int8")]
            Op::I8 {
                depthwise,
                weights,
                bias,
                multiplier,
                shift,
                ..
            } => {
                s.parameters += weights.len() + bias.len() / 4;
                s.parameter_bytes += weights.len() + bias.len() + multiplier.len() + shift.len();
                s.macs += per_position(depthwise) * g.positions();
            }
            Op::Pool(_) => {}
        }
    }

    #[cfg(feature = "f32")]
    pub(crate) fn run_f32(&self, io: Io<'_, f32>) -> Result<Out> {
        let g = &self.geometry;
        match self.op {
            Op::F32 {
                depthwise: false,
                weights,
                bias,
            } => conv_f32(g, weights, bias, io.x, io.y),
            Op::F32 {
                depthwise: true,
                weights,
                bias,
            } => depthwise_f32(g, weights, bias, io.x, io.y),
            Op::Pool(Pool2dKind::Max) => max_pool(g, io.x, io.y),
            Op::Pool(Pool2dKind::Average) => average_pool_f32(g, io.x, io.y),
            #[allow(unreachable_patterns)]
            _ => return Err(Error::WrongNumericPath),
        }
        Ok(Out::Next)
    }

    #[cfg(feature = "int8")]
    pub(crate) fn run_i8(&self, io: Io<'_, i8>, scratch: &mut [u8]) -> Result<Out> {
        let g = &self.geometry;
        match self.op {
            Op::I8 {
                depthwise: false,
                weights,
                bias,
                multiplier,
                shift,
                zero_points,
            } => {
                conv_i8(
                    g,
                    weights,
                    bias,
                    multiplier,
                    shift,
                    zero_points,
                    io.x,
                    io.y,
                    scratch,
                );
            }
            Op::I8 {
                depthwise: true,
                weights,
                bias,
                multiplier,
                shift,
                zero_points,
            } => {
                let acc: &mut [i32] =
                    bytemuck::try_cast_slice_mut(scratch).map_err(|_| Error::ArenaMisaligned)?;
                depthwise_i8(
                    g,
                    weights,
                    bias,
                    multiplier,
                    shift,
                    zero_points,
                    io.x,
                    io.y,
                    acc,
                );
            }
            Op::Pool(Pool2dKind::Max) => max_pool(g, io.x, io.y),
            Op::Pool(Pool2dKind::Average) => average_pool_i8(g, io.x, io.y),
            #[allow(unreachable_patterns)]
            _ => return Err(BAD),
        }
        Ok(Out::Next)
    }
}
