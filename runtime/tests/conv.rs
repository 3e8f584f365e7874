//! Convolution layers in the runtime, on hand-built models with random
//! weights: f32 convolution (standard, depthwise, 1-D, strides, dilation,
//! same/valid padding) and pooling against a naive reference written here
//! (in f64, within a stated tolerance); the int8 im2col path against the
//! direct integer definition, bit for bit; residual blocks over feature
//! maps; and the named error of every malformed convolution.

use proptest::prelude::*;
use runtime::format::{
    f32_to_le_bytes, FeatureMap, LayerDef, ModelHeader, Numeric, Padding, Pool2dKind, QuantParams,
    Window,
};
use runtime::kernels::conv::{conv_i8, conv_i8_reference, Geometry};
use runtime::{Error, Model};

/// Deterministic pseudo-random numbers (splitmix64).
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.unit()).collect()
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

fn le(values: &[f32]) -> Vec<u8> {
    let mut out = vec![0; values.len() * 4];
    f32_to_le_bytes(values, &mut out);
    out
}

fn seal(header: ModelHeader<'_>, layers: &[LayerDef<'_>]) -> Result<Vec<u8>, Error> {
    let mut out = vec![0; runtime::encoded_len(header, layers)?];
    let n = runtime::encode(header, layers, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// An f32 header with identity normalization.
fn header<'a>(numeric: Numeric, ones: &'a [u8], zeros: &'a [u8], out: usize) -> ModelHeader<'a> {
    let q = (numeric == Numeric::Int8).then_some(QuantParams {
        scale: 1.0 / 64.0,
        zero_point: 0,
    });
    ModelHeader {
        numeric,
        input_len: (ones.len() / 4) as u32,
        output_len: out as u32,
        arena_bytes: 0,
        layer_count: 0,
        input_offset: zeros,
        input_scale: ones,
        input_quant: q,
        output_quant: q,
    }
}

/// One random convolution or pooling problem.
#[derive(Debug, Clone)]
struct Case {
    map: FeatureMap,
    filters: u32,
    window: Window,
    depthwise: bool,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1u32..=6, 1u32..=9, 1u32..=5),
        1u32..=6,
        (1u32..=4, 1u32..=4, 1u32..=3, 1u32..=3, 1u32..=2, 1u32..=2),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_filter_map(
            "window must fit",
            |((h, w, c), filters, (kh, kw, sh, sw, dh, dw), same, depthwise, one_d, seed)| {
                let h = if one_d { 1 } else { h };
                let window = Window {
                    kernel_h: if one_d { 1 } else { kh },
                    kernel_w: kw,
                    stride_h: if one_d { 1 } else { sh },
                    stride_w: sw,
                    dilation_h: if one_d { 1 } else { dh },
                    dilation_w: dw,
                    padding: if same { Padding::Same } else { Padding::Valid },
                };
                let map = FeatureMap {
                    height: h,
                    width: w,
                    channels: c,
                };
                window.output(&map)?;
                Some(Case {
                    map,
                    filters: if depthwise { c } else { filters },
                    window,
                    depthwise,
                    seed,
                })
            },
        )
}

/// `(out_h, out_w, pad_top, pad_left)` of a case.
fn out(c: &Case) -> (usize, usize, usize, usize) {
    let (a, b, p, q) = c.window.output(&c.map).unwrap();
    (a as usize, b as usize, p as usize, q as usize)
}

/// The input cell of tap (ky, kx) at output (oy, ox), as the format defines it.
fn cell(c: &Case, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
    let (_, _, pt, pl) = out(c);
    let w = &c.window;
    let iy = (oy * w.stride_h as usize + ky * w.dilation_h as usize).checked_sub(pt)?;
    let ix = (ox * w.stride_w as usize + kx * w.dilation_w as usize).checked_sub(pl)?;
    (iy < c.map.height as usize && ix < c.map.width as usize)
        .then_some(iy * c.map.width as usize + ix)
}

/// Naive f64 convolution of the format's definition.
fn reference_conv(c: &Case, weights: &[f32], bias: &[f32], x: &[f32]) -> Vec<f64> {
    let (oh, ow, _, _) = out(c);
    let (cin, cout) = (c.map.channels as usize, c.filters as usize);
    let (kh, kw) = (c.window.kernel_h as usize, c.window.kernel_w as usize);
    let mut y = vec![0.0; oh * ow * cout];
    for oy in 0..oh {
        for ox in 0..ow {
            for o in 0..cout {
                let mut acc = f64::from(bias[o]);
                for ky in 0..kh {
                    for kx in 0..kw {
                        let Some(cell) = cell(c, oy, ox, ky, kx) else {
                            continue;
                        };
                        if c.depthwise {
                            acc += f64::from(weights[(ky * kw + kx) * cin + o])
                                * f64::from(x[cell * cin + o]);
                        } else {
                            for ch in 0..cin {
                                acc += f64::from(weights[((o * kh + ky) * kw + kx) * cin + ch])
                                    * f64::from(x[cell * cin + ch]);
                            }
                        }
                    }
                }
                y[(oy * ow + ox) * cout + o] = acc;
            }
        }
    }
    y
}

/// Naive pooling of the format's definition.
fn reference_pool(c: &Case, kind: Pool2dKind, x: &[f32]) -> Vec<f64> {
    let (oh, ow, _, _) = out(c);
    let ch = c.map.channels as usize;
    let mut y = Vec::new();
    for oy in 0..oh {
        for ox in 0..ow {
            for k in 0..ch {
                let cells: Vec<f64> = (0..c.window.kernel_h as usize)
                    .flat_map(|ky| (0..c.window.kernel_w as usize).map(move |kx| (ky, kx)))
                    .filter_map(|(ky, kx)| cell(c, oy, ox, ky, kx))
                    .map(|cell| f64::from(x[cell * ch + k]))
                    .collect();
                y.push(match kind {
                    Pool2dKind::Max => cells.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    Pool2dKind::Average => cells.iter().sum::<f64>() / cells.len() as f64,
                });
            }
        }
    }
    y
}

fn weight_count(c: &Case) -> usize {
    let k = (c.window.kernel_h * c.window.kernel_w) as usize;
    if c.depthwise {
        k * c.map.channels as usize
    } else {
        c.filters as usize * k * c.map.channels as usize
    }
}

proptest! {
    /// The f32 convolution equals the naive definition within 1e-5
    /// (relative to the sum of the products' magnitudes).
    #[test]
    fn f32_convolution_is_the_definition(c in case()) {
        let mut rng = Rng(c.seed);
        let input_len = c.map.len().unwrap() as usize;
        let (weights, bias, x) = (rng.vec(weight_count(&c)), rng.vec(c.filters as usize), rng.vec(input_len));
        let (wb, bb) = (le(&weights), le(&bias));
        let (oh, ow, _, _) = out(&c);
        let output = oh * ow * c.filters as usize;
        let (ones, zeros) = (le(&vec![1.0; input_len]), le(&vec![0.0; input_len]));
        let layer = LayerDef::Conv2dF32 {
            input: c.map, filters: c.filters, window: c.window, depthwise: c.depthwise,
            weights: &wb, bias: &bb,
        };
        let blob = seal(header(Numeric::F32, &ones, &zeros, output), &[layer]).unwrap();
        let model = Model::from_bytes(&blob).unwrap();
        let mut arena = vec![0u32; model.arena_bytes().div_ceil(4)];
        let y = model.run_f32(&x, bytemuck::cast_slice_mut(&mut arena)).unwrap();
        let want = reference_conv(&c, &weights, &bias, &x);
        let taps = (weight_count(&c) / c.filters.max(1) as usize + 1) as f64;
        for (i, (&a, &b)) in y.iter().zip(&want).enumerate() {
            prop_assert!((f64::from(a) - b).abs() <= 1e-5 * taps, "{i}: {a} vs {b} ({c:?})");
        }
    }

    /// Max and average pooling equal the definition (max exactly, the mean
    /// within 1e-6).
    #[test]
    fn f32_pooling_is_the_definition(c in case(), max in any::<bool>()) {
        let mut c = c;
        c.window.dilation_h = 1;
        c.window.dilation_w = 1;
        prop_assume!(c.window.output(&c.map).is_some());
        let kind = if max { Pool2dKind::Max } else { Pool2dKind::Average };
        let mut rng = Rng(c.seed);
        let input_len = c.map.len().unwrap() as usize;
        let x = rng.vec(input_len);
        let (oh, ow, _, _) = out(&c);
        let (ones, zeros) = (le(&vec![1.0; input_len]), le(&vec![0.0; input_len]));
        let layer = LayerDef::Pool2d { input: c.map, kind, window: c.window };
        let blob = seal(header(Numeric::F32, &ones, &zeros, oh * ow * c.map.channels as usize), &[layer]).unwrap();
        let model = Model::from_bytes(&blob).unwrap();
        let mut arena = vec![0u32; model.arena_bytes().div_ceil(4)];
        let y = model.run_f32(&x, bytemuck::cast_slice_mut(&mut arena)).unwrap();
        for (&a, &b) in y.iter().zip(&reference_pool(&c, kind, &x)) {
            prop_assert!((f64::from(a) - b).abs() <= 1e-6, "{a} vs {b}");
        }
    }

    /// The int8 convolution (im2col + the dense kernel) equals the direct
    /// integer sum with padded taps at the input zero point, bit for bit.
    #[test]
    fn int8_im2col_is_the_direct_sum(c in case(), zps in any::<(i8, i8)>()) {
        prop_assume!(!c.depthwise);
        let mut rng = Rng(c.seed);
        let (oh, ow, pt, pl) = out(&c);
        let g = Geometry {
            in_h: c.map.height as u16, in_w: c.map.width as u16, in_c: c.map.channels as u16,
            out_h: oh as u16, out_w: ow as u16, out_c: c.filters as u16,
            k_h: c.window.kernel_h as u16, k_w: c.window.kernel_w as u16,
            s_h: c.window.stride_h as u16, s_w: c.window.stride_w as u16,
            d_h: c.window.dilation_h as u16, d_w: c.window.dilation_w as u16,
            pad_top: pt as u16, pad_left: pl as u16,
        };
        let weights = rng.bytes(weight_count(&c));
        let n = c.filters as usize;
        let bias: Vec<u8> = (0..n).flat_map(|_| ((rng.next_u64() as i32) >> 12).to_le_bytes()).collect();
        let mult: Vec<u8> = (0..n).flat_map(|_| ((1 << 30) | (rng.next_u64() as i32 & 0x3fff_ffff)).to_le_bytes()).collect();
        let shift: Vec<u8> = (0..n).map(|_| 8 + (rng.next_u64() % 12) as u8).collect();
        let x: Vec<i8> = rng.bytes(c.map.len().unwrap() as usize).into_iter().map(|b| b as i8).collect();
        let (mut fast, mut direct) = (vec![0i8; oh * ow * n], vec![0i8; oh * ow * n]);
        let mut column = vec![0u32; 2 * g.taps()];
        conv_i8(&g, &weights, &bias, &mult, &shift, zps, &x, &mut fast, bytemuck::cast_slice_mut(&mut column));
        conv_i8_reference(&g, &weights, &bias, &mult, &shift, zps, &x, &mut direct);
        prop_assert_eq!(fast, direct);
    }
}

fn window(k: u32, stride: u32, padding: Padding) -> Window {
    Window {
        kernel_h: k,
        kernel_w: k,
        stride_h: stride,
        stride_w: stride,
        dilation_h: 1,
        dilation_w: 1,
        padding,
    }
}

const MAP: FeatureMap = FeatureMap {
    height: 4,
    width: 4,
    channels: 2,
};

/// A residual block over feature maps: `save 0, conv 3x3 same, add 0` runs
/// and equals `x + conv(x)` on the f32 path.
#[test]
fn a_residual_block_adds_feature_maps() {
    let mut rng = Rng(7);
    let c = Case {
        map: MAP,
        filters: 2,
        window: window(3, 1, Padding::Same),
        depthwise: false,
        seed: 7,
    };
    let (weights, bias, x) = (rng.vec(weight_count(&c)), rng.vec(2), rng.vec(32));
    let (wb, bb, ones, zeros) = (le(&weights), le(&bias), le(&[1.0; 32]), le(&[0.0; 32]));
    let layers = [
        LayerDef::SaveSkip { slot: 0 },
        LayerDef::Conv2dF32 {
            input: MAP,
            filters: 2,
            window: c.window,
            depthwise: false,
            weights: &wb,
            bias: &bb,
        },
        LayerDef::AddSkipF32 { slot: 0 },
    ];
    let blob = seal(header(Numeric::F32, &ones, &zeros, 32), &layers).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    let mut arena = vec![0u32; model.arena_bytes().div_ceil(4)];
    let y = model
        .run_f32(&x, bytemuck::cast_slice_mut(&mut arena))
        .unwrap();
    for ((&a, &b), &xv) in y
        .iter()
        .zip(&reference_conv(&c, &weights, &bias, &x))
        .zip(&x)
    {
        assert!((f64::from(a) - (b + f64::from(xv))).abs() < 1e-5);
    }
}

/// Every malformed convolution is its named error.
#[test]
fn bad_convolutions_are_named() {
    let (ones, zeros) = (le(&[1.0; 32]), le(&[0.0; 32]));
    let check = |layers: &[LayerDef<'_>], out: usize| {
        let h = header(Numeric::F32, &ones, &zeros, out);
        Model::required_arena_bytes(
            ModelHeader {
                layer_count: layers.len() as u32,
                ..h
            },
            layers,
        )
        .err()
    };
    let w18 = le(&[0.5; 2 * 9 * 2]);
    let b2 = le(&[0.0; 2]);
    let conv = |window: Window, weights, bias| LayerDef::Conv2dF32 {
        input: MAP,
        filters: 2,
        window,
        depthwise: false,
        weights,
        bias,
    };
    // A kernel larger than the padded input (5x5 valid over 4x4).
    let w50 = le(&[0.5; 2 * 25 * 2]);
    assert_eq!(
        check(&[conv(window(5, 1, Padding::Valid), &w50, &b2)], 2),
        Some(Error::ShapeMismatch { layer: 0 })
    );
    // Stride 0.
    assert_eq!(
        check(&[conv(window(3, 0, Padding::Same), &w18, &b2)], 32),
        Some(Error::BadParameter { layer: 0 })
    );
    // Channel counts that do not chain: the second convolution declares
    // 8 x 2 x 2 (32 values, as many as the first one's 4 x 4 x 2 output).
    let other = FeatureMap {
        height: 8,
        width: 2,
        channels: 2,
    };
    let second = LayerDef::Conv2dF32 {
        input: other,
        filters: 2,
        window: window(1, 1, Padding::Valid),
        depthwise: false,
        weights: &b2[..0],
        bias: &b2,
    };
    assert_eq!(
        check(&[conv(window(3, 1, Padding::Same), &w18, &b2), second], 32),
        Some(Error::ShapeMismatch { layer: 1 })
    );
    // A pooling window of 0.
    let pool = LayerDef::Pool2d {
        input: MAP,
        kind: Pool2dKind::Max,
        window: window(0, 1, Padding::Valid),
    };
    assert_eq!(check(&[pool], 32), Some(Error::BadParameter { layer: 0 }));
    // A folded batch norm of the wrong length: one bias too few.
    assert_eq!(
        check(&[conv(window(3, 1, Padding::Same), &w18, &b2[..4])], 32),
        Some(Error::ShapeMismatch { layer: 0 })
    );
    // A depthwise layer with more filters than channels.
    let depthwise = LayerDef::Conv2dF32 {
        input: MAP,
        filters: 4,
        window: window(3, 1, Padding::Same),
        depthwise: true,
        weights: &w18,
        bias: &b2,
    };
    assert_eq!(
        check(&[depthwise], 64),
        Some(Error::ShapeMismatch { layer: 0 })
    );
    // An input map that is not the tensor: 4 x 4 x 2 after 33 inputs.
    let ones33 = le(&[1.0; 33]);
    let zeros33 = le(&[0.0; 33]);
    let h = header(Numeric::F32, &ones33, &zeros33, 32);
    let layers = [conv(window(3, 1, Padding::Same), &w18, &b2)];
    assert_eq!(
        Model::required_arena_bytes(
            ModelHeader {
                layer_count: 1,
                ..h
            },
            &layers
        )
        .err(),
        Some(Error::ShapeMismatch { layer: 0 })
    );
}
