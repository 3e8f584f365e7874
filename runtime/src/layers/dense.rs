//! The dense family: fully connected layers, activations, int8 lookup
//! tables and softmax. It comes with either numeric path (features `f32`,
//! `int8`) and needs no feature of its own.
//!
//! Dense layers act on each row of the tensor (one row outside transformers),
//! activations elementwise, softmax on each row.

use super::ModelStats;
use super::{check_len, check_width, Io, Out, Plan};
use crate::error::{Error, Result};
use crate::format::{Activation, LayerDef};
use crate::kernels::activation::{activate_f32, softmax_i8, table_i8};
use crate::kernels::{dense_f32, dense_i8_widened, le_i32};
use crate::quant::is_valid_multiplier;

/// A validated dense-family layer; parameter slices have the lengths their
/// shapes imply.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dense<'a> {
    #[cfg(feature = "f32")]
    F32 { weights: &'a [u8], bias: &'a [u8] },
    #[cfg(feature = "f32")]
    Activation(Activation),
    #[cfg(feature = "int8")]
    I8 {
        weights: &'a [u8],
        bias: &'a [u8],
        multiplier: &'a [u8],
        shift: &'a [u8],
        output_zero_point: i8,
    },
    #[cfg(feature = "int8")]
    Table(&'a [u8; 256]),
    #[cfg(feature = "int8")]
    Softmax(&'a [u8; 512]),
    /// Keeps `'a` used when neither path is compiled in.
    #[allow(dead_code)]
    None(core::marker::PhantomData<&'a ()>),
}

/// Model-wide facts of the dense family: the arena scratch of the int8
/// kernel's widened input (the DSP kernel widens a layer's input to q15
/// once; other cores leave it unused, but a blob's arena is the same on
/// every core).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Layout {
    /// Bytes: 2 per input of the widest int8 dense layer, rounded up to 4 inputs.
    pub widened: usize,
    /// Where it starts in the families' scratch (after the family's own).
    pub offset: usize,
}

impl Layout {
    /// No int8 dense layer.
    pub(crate) const fn new() -> Self {
        Layout {
            widened: 0,
            offset: 0,
        }
    }

    /// Room for an int8 dense input of `inputs` values.
    pub(crate) fn widen(&mut self, inputs: usize) {
        self.widened = self.widened.max(8 * inputs.div_ceil(4));
    }
}

/// The input and output widths of a per-row dense layer, checked against
/// the tensor (`tokens` rows of the current width).
fn dense_shape(at: u32, plan: &Plan<'_, '_>, inputs: u32, outputs: u32) -> Result<(usize, usize)> {
    let (i, o) = (check_width(at, inputs)?, check_width(at, outputs)?);
    if i * plan.tokens != plan.width {
        return Err(Error::ShapeMismatch { layer: at });
    }
    Ok((i, o))
}

/// The tensor after a per-row dense layer of `outputs` values per row.
fn set_outputs(at: u32, plan: &mut Plan<'_, '_>, outputs: usize) -> Result<()> {
    plan.width = check_width(at, (outputs * plan.tokens) as u32)?;
    Ok(())
}

/// Validate a dense-family definition (`None`: not of this family).
pub(crate) fn validate<'a>(
    at: u32,
    def: &LayerDef<'a>,
    plan: &mut Plan<'_, 'a>,
) -> Option<Result<Dense<'a>>> {
    let layer = match *def {
        #[cfg(feature = "f32")]
        LayerDef::DenseF32 {
            inputs,
            outputs,
            weights,
            bias,
        } => (|| {
            let (i, o) = dense_shape(at, plan, inputs, outputs)?;
            check_len(at, weights, i * o * 4)?;
            check_len(at, bias, o * 4)?;
            set_outputs(at, plan, o)?;
            Ok(Dense::F32 { weights, bias })
        })(),
        #[cfg(feature = "f32")]
        LayerDef::ActivationF32(a) => match a {
            Activation::LeakyRelu { alpha } if !alpha.is_finite() => {
                Err(Error::BadQuantization { layer: at })
            }
            _ => Ok(Dense::Activation(a)),
        },
        #[cfg(feature = "int8")]
        LayerDef::DenseI8 {
            inputs,
            outputs,
            weights,
            bias,
            multiplier,
            shift,
            output_zero_point,
        } => (|| {
            let (i, o) = dense_shape(at, plan, inputs, outputs)?;
            check_len(at, weights, i * o)?;
            check_len(at, bias, o * 4)?;
            check_multipliers(at, multiplier, shift, o)?;
            set_outputs(at, plan, o)?;
            plan.families.dense.widen(i);
            Ok(Dense::I8 {
                weights,
                bias,
                multiplier,
                shift,
                output_zero_point,
            })
        })(),
        #[cfg(feature = "int8")]
        LayerDef::TableI8 { table } => table
            .try_into()
            .map(Dense::Table)
            .map_err(|_| Error::ShapeMismatch { layer: at }),
        #[cfg(feature = "int8")]
        LayerDef::SoftmaxI8 { exp_table } => match <&[u8; 512]>::try_from(exp_table) {
            Err(_) => Err(Error::ShapeMismatch { layer: at }),
            Ok(t) if t[0] == 0 && t[1] == 0 => Err(Error::BadQuantization { layer: at }),
            Ok(t) => Ok(Dense::Softmax(t)),
        },
        _ => return None,
    };
    Some(layer)
}

/// `outputs` i32 multipliers and u8 shifts, each pair a valid fixed-point ratio.
pub(crate) fn check_multipliers(
    at: u32,
    multiplier: &[u8],
    shift: &[u8],
    outputs: usize,
) -> Result<()> {
    check_len(at, multiplier, outputs * 4)?;
    check_len(at, shift, outputs)?;
    for (m, &s) in multiplier.chunks_exact(4).zip(shift) {
        if !is_valid_multiplier(le_i32(m), s) {
            return Err(Error::BadQuantization { layer: at });
        }
    }
    Ok(())
}

impl Dense<'_> {
    /// Short name for reports.
    pub(crate) fn kind(&self) -> &'static str {
        match *self {
            #[cfg(feature = "f32")]
            Dense::F32 { .. } => "dense f32",
            #[cfg(feature = "f32")]
            Dense::Activation(a) => match a {
                Activation::Relu => "relu f32",
                Activation::Relu6 => "relu6 f32",
                Activation::LeakyRelu { .. } => "leaky-relu f32",
                Activation::Sigmoid => "sigmoid f32",
                Activation::Tanh => "tanh f32",
                Activation::Gelu => "gelu f32",
                Activation::Softmax => "softmax f32",
            },
            #[cfg(feature = "int8")]
            Dense::I8 { .. } => "dense int8",
            #[cfg(feature = "int8")]
            Dense::Table(_) => "table int8",
            #[cfg(feature = "int8")]
            Dense::Softmax(_) => "softmax int8",
            _ => "",
        }
    }

    /// Adds parameters, MACs (for `rows` rows) and parameter bytes.
    pub(crate) fn add_stats(&self, s: &mut ModelStats, rows: usize) {
        match *self {
            #[cfg(feature = "f32")]
            Dense::F32 { weights, bias } => {
                s.parameters += (weights.len() + bias.len()) / 4;
                s.macs += weights.len() / 4 * rows;
                s.parameter_bytes += weights.len() + bias.len();
            }
            #[cfg(feature = "int8")]
            Dense::I8 {
                weights,
                bias,
                multiplier,
                shift,
                ..
            } => {
                s.parameters += weights.len() + bias.len() / 4;
                s.macs += weights.len() * rows;
                s.parameter_bytes += weights.len() + bias.len() + multiplier.len() + shift.len();
            }
            #[cfg(feature = "int8")]
            Dense::Table(t) => s.parameter_bytes += t.len(),
            #[cfg(feature = "int8")]
            Dense::Softmax(t) => s.parameter_bytes += t.len(),
            _ => {}
        }
    }

    /// Run on the f32 path.
    #[cfg(feature = "f32")]
    pub(crate) fn run_f32(&self, io: Io<'_, f32>) -> Result<Out> {
        match *self {
            Dense::F32 { weights, bias } => {
                io.each_row_in_out(|x, y| dense_f32(weights, bias, x, y));
                Ok(Out::Next)
            }
            Dense::Activation(a @ Activation::Softmax) => {
                io.each_row(|r| activate_f32(a, r));
                Ok(Out::InPlace)
            }
            Dense::Activation(a) => {
                activate_f32(a, io.x);
                Ok(Out::InPlace)
            }
            _ => Err(Error::WrongNumericPath),
        }
    }

    /// Run on the int8 path.
    #[cfg(feature = "int8")]
    /// `scratch` is the dense family's (see [`Layout`]).
    pub(crate) fn run_i8(&self, io: Io<'_, i8>, scratch: &mut [u8]) -> Result<Out> {
        match *self {
            Dense::I8 {
                weights,
                bias,
                multiplier,
                shift,
                output_zero_point,
            } => {
                io.each_row_in_out(|x, y| {
                    let zp = output_zero_point;
                    dense_i8_widened(weights, bias, multiplier, shift, zp, x, y, scratch)
                });
                Ok(Out::Next)
            }
            Dense::Table(table) => {
                table_i8(table, io.x);
                Ok(Out::InPlace)
            }
            Dense::Softmax(table) => {
                io.each_row(|r| softmax_i8(table, r));
                Ok(Out::InPlace)
            }
            _ => Err(Error::WrongNumericPath),
        }
    }
}
