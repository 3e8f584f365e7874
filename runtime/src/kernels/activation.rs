//! Elementwise and row-wise functions of the dense family: f32 activations
//! by `libm`, int8 ones by lookup table, and the integer softmax.

use crate::format::Activation;
use crate::math;
use crate::quant::saturate_i8;

/// Apply an f32 activation in place (softmax over the whole slice).
pub fn activate_f32(a: Activation, x: &mut [f32]) {
    match a {
        // `< 0.0` rather than `max`, so NaN passes through like every other layer.
        Activation::Relu => x.iter_mut().for_each(|v| {
            if *v < 0.0 {
                *v = 0.0
            }
        }),
        // `clamp` passes NaN through, as ReLU does.
        Activation::Relu6 => x.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0)),
        Activation::LeakyRelu { alpha } => x.iter_mut().for_each(|v| {
            if *v < 0.0 {
                *v *= alpha
            }
        }),
        Activation::Sigmoid => x.iter_mut().for_each(|v| *v = 1.0 / (1.0 + math::exp(-*v))),
        Activation::Tanh => x.iter_mut().for_each(|v| *v = math::tanh(*v)),
        Activation::Gelu => x
            .iter_mut()
            .for_each(|v| *v = 0.5 * *v * (1.0 + math::erf(*v * core::f32::consts::FRAC_1_SQRT_2))),
        Activation::Softmax => {
            let max = x
                .iter()
                .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
            let mut sum = 0.0f32;
            for v in x.iter_mut() {
                *v = math::exp(*v - max);
                sum += *v;
            }
            for v in x.iter_mut() {
                *v /= sum;
            }
        }
    }
}

/// `y = table[x + 128]`, in place: any int8 elementwise function.
pub fn table_i8(table: &[u8; 256], x: &mut [i8]) {
    for v in x.iter_mut() {
        *v = table[usize::from(*v as u8 ^ 0x80)] as i8;
    }
}

/// Integer softmax: `y = round(256 * e[max - x] / sum(e)) - 128`, saturated.
pub fn softmax_i8(exp_table: &[u8; 512], x: &mut [i8]) {
    let max = x.iter().copied().max().unwrap_or(0);
    let exp_of = |v: i8| -> u32 {
        let d = (i32::from(max) - i32::from(v)) as usize & 0xff; // 0..=255 since max >= v
        u32::from(u16::from_le_bytes([exp_table[2 * d], exp_table[2 * d + 1]]))
    };
    let sum: u32 = x.iter().map(|&v| exp_of(v)).sum();
    for v in x.iter_mut() {
        let e = exp_of(*v);
        let p = ((e << 8) + sum / 2).checked_div(sum).unwrap_or(0) as i32;
        *v = saturate_i8(p - 128);
    }
}
