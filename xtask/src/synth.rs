//! Synthetic models with random weights (single dense and convolution
//! layers, and the MLPerf Tiny DS-CNN keyword-spotting network), and their
//! test vectors (expected outputs from the host runtime, labels = host argmax).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use runtime::format::{FeatureMap, LayerDef, ModelHeader, Padding, Pool2dKind, Window};
use runtime::{Model, Numeric, QuantParams, TestVectors};

use crate::cores::numeric_name;

/// Vectors per synthetic model.
const VECTORS: usize = 4;

/// splitmix64: deterministic, dependency-free.
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
    fn int8(&mut self) -> i8 {
        (self.next_u64() >> 56) as u8 as i8
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Paths of a written synthetic model.
pub struct Synthetic {
    pub name: String,
    pub model: PathBuf,
    pub vectors: PathBuf,
}

/// int8 parameters of one layer with `outputs` channels of `fan_in` taps:
/// weights uniform in [-127, 127], small biases, and a requantization that
/// keeps outputs of uniform int8 inputs well inside the int8 range.
struct QuantLayer {
    weights: Vec<u8>,
    bias: Vec<u8>,
    multiplier: Vec<u8>,
    shift: Vec<u8>,
}

impl QuantLayer {
    fn random(rng: &mut Rng, weights: usize, outputs: usize, fan_in: usize) -> Result<Self> {
        let weights = (0..weights)
            .map(|_| rng.int8().max(-127) as u8)
            .collect::<Vec<u8>>();
        let bias = (0..outputs)
            .flat_map(|_| ((rng.unit() * 2000.0) as i32).to_le_bytes())
            .collect::<Vec<u8>>();
        // Uniform int8 inputs and weights: accumulators of std about 5300 * sqrt(fan_in); scale to about 40.
        let ratio = 40.0 / (5300.0 * (fan_in as f64).sqrt());
        let (m, s) = runtime::quant::quantize_multiplier(ratio)
            .ok_or_else(|| anyhow!("bad ratio {ratio}"))?;
        Ok(QuantLayer {
            weights,
            bias,
            multiplier: (0..outputs).flat_map(|_| m.to_le_bytes()).collect(),
            shift: vec![s; outputs],
        })
    }
}

/// Encode `layers` with identity normalization (int8: input scale 1/128,
/// output 1/16, zero points 0), run `VECTORS` random inputs through the host
/// runtime, and write `<dir>/<name>-<numeric>/{model,vectors}.bin`.
fn save(
    dir: &Path,
    name: String,
    numeric: Numeric,
    (input_len, output_len): (usize, usize),
    layers: &[LayerDef<'_>],
    rng: &mut Rng,
) -> Result<Synthetic> {
    save_sequences(dir, name, numeric, (input_len, output_len), layers, 1, rng)
}

/// [`save`] for a model whose vectors are sequences of `steps` steps of
/// `input_len` values (recurrent models; 1: plain vectors).
fn save_sequences(
    dir: &Path,
    name: String,
    numeric: Numeric,
    (input_len, output_len): (usize, usize),
    layers: &[LayerDef<'_>],
    steps: usize,
    rng: &mut Rng,
) -> Result<Synthetic> {
    let offset = f32_bytes(&vec![0.0; input_len]);
    let scale = f32_bytes(&vec![1.0; input_len]);
    let q = |scale| {
        (numeric == Numeric::Int8).then_some(QuantParams {
            scale,
            zero_point: 0,
        })
    };
    let header = ModelHeader {
        numeric,
        input_len: input_len as u32,
        output_len: output_len as u32,
        arena_bytes: 0,
        layer_count: 0,
        input_offset: &offset,
        input_scale: &scale,
        input_quant: q(1.0 / 128.0),
        output_quant: q(1.0 / 16.0),
    };
    let mut out = vec![
        0u8;
        runtime::encoded_len(header, layers)
            .map_err(|e| anyhow!("encoding {name}: {e}"))?
    ];
    let len =
        runtime::encode(header, layers, &mut out).map_err(|e| anyhow!("encoding {name}: {e}"))?;
    out.truncate(len);

    // Inputs, and the host runtime's outputs for them.
    let model = Model::from_bytes(&out).map_err(|e| anyhow!("loading {name}: {e}"))?;
    let mut words = vec![0u32; model.arena_bytes().div_ceil(4)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    let mut state_words = vec![0u32; model.state_bytes().div_ceil(4)];
    let state: &mut [u8] = bytemuck::cast_slice_mut(&mut state_words);
    let sequence = model.is_recurrent();
    let (mut inputs, mut expected, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..VECTORS {
        let n = input_len * steps;
        let label = match numeric {
            Numeric::F32 => {
                let x: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
                let y = if sequence {
                    model.run_sequence_f32(&x, state, arena)
                } else {
                    model.run_f32(&x, arena)
                }
                .map_err(|e| anyhow!("{e}"))?;
                inputs.extend(f32_bytes(&x));
                expected.extend(f32_bytes(y));
                runtime::argmax(y)
            }
            Numeric::Int8 => {
                let x: Vec<i8> = (0..n).map(|_| rng.int8()).collect();
                let y = if sequence {
                    model.run_sequence_i8(&x, state, arena)
                } else {
                    model.run_i8(&x, arena)
                }
                .map_err(|e| anyhow!("{e}"))?;
                inputs.extend(x.iter().map(|&v| v as u8));
                expected.extend(y.iter().map(|&v| v as u8));
                runtime::argmax(y)
            }
        };
        labels.extend((label as u16).to_le_bytes());
    }
    let tv = TestVectors {
        numeric,
        count: VECTORS as u32,
        input_len: input_len as u32,
        output_len: output_len as u32,
        inputs: &inputs,
        expected: &expected,
        labels: &labels,
        steps: None,
    };
    let dir = dir.join(format!("{name}-{}", numeric_name(numeric)));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let model_path = dir.join("model.bin");
    let vectors_path = dir.join("vectors.bin");
    fs::write(&model_path, &out).with_context(|| format!("writing {}", model_path.display()))?;
    let mut vector_bytes = postcard::to_stdvec(&tv)?;
    if sequence {
        // The trailer of sequence vectors: every vector's step count.
        let counts = vec![steps as u32; VECTORS];
        let mut trailer = vec![0u8; 4 * VECTORS + 8];
        let mut scratch = vec![0u8; 4 * VECTORS];
        let n = TestVectors::encode_steps(&counts, &mut scratch, &mut trailer)
            .map_err(|e| anyhow!("{e}"))?;
        vector_bytes.extend(&trailer[..n]);
    }
    fs::write(&vectors_path, vector_bytes)
        .with_context(|| format!("writing {}", vectors_path.display()))?;
    Ok(Synthetic {
        name,
        model: model_path,
        vectors: vectors_path,
    })
}

/// Write `dense-<rows>x<cols>` (`outputs x inputs`) of the given numeric into `dir`.
pub fn dense(dir: &Path, numeric: Numeric, rows: usize, cols: usize) -> Result<Synthetic> {
    let name = format!("dense-{rows}x{cols}");
    let kind = numeric_name(numeric);
    let mut rng = Rng(0x5EED ^ ((rows as u64) << 32) ^ cols as u64 ^ (kind.len() as u64) << 48);
    let (weights, bias, q);
    let layer = match numeric {
        Numeric::F32 => {
            let k = 1.0 / (cols as f32).sqrt();
            weights = f32_bytes(&(0..rows * cols).map(|_| k * rng.unit()).collect::<Vec<_>>());
            bias = f32_bytes(&(0..rows).map(|_| 0.1 * rng.unit()).collect::<Vec<_>>());
            LayerDef::DenseF32 {
                inputs: cols as u32,
                outputs: rows as u32,
                weights: &weights,
                bias: &bias,
            }
        }
        Numeric::Int8 => {
            q = QuantLayer::random(&mut rng, rows * cols, rows, cols)?;
            LayerDef::DenseI8 {
                inputs: cols as u32,
                outputs: rows as u32,
                weights: &q.weights,
                bias: &q.bias,
                multiplier: &q.multiplier,
                shift: &q.shift,
                output_zero_point: 0,
            }
        }
    };
    save(dir, name, numeric, (cols, rows), &[layer], &mut rng)
}

/// One convolution layer's shape (a benchmark or test shape).
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    pub name: &'static str,
    pub input: FeatureMap,
    pub filters: u32,
    pub window: Window,
    pub depthwise: bool,
}

impl ConvShape {
    /// `(outputs, MACs)`: every tap counts, padded ones too (as CMSIS-NN).
    pub fn size(&self) -> Option<(usize, usize)> {
        let (h, w, _, _) = self.window.output(&self.input)?;
        let positions = (h * w) as usize;
        let per_output = (self.window.kernel_h * self.window.kernel_w) as usize
            * if self.depthwise {
                1
            } else {
                self.input.channels as usize
            };
        Some((
            positions * self.filters as usize,
            positions * self.filters as usize * per_output,
        ))
    }
}

/// A square window: `k x k` (or `1 x k` for a 1-D map), stride `s`.
pub const fn window(kernel: (u32, u32), stride: (u32, u32), padding: Padding) -> Window {
    Window {
        kernel_h: kernel.0,
        kernel_w: kernel.1,
        stride_h: stride.0,
        stride_w: stride.1,
        dilation_h: 1,
        dilation_w: 1,
        padding,
    }
}

const fn map(height: u32, width: u32, channels: u32) -> FeatureMap {
    FeatureMap {
        height,
        width,
        channels,
    }
}

/// The convolution shapes CMSIS-NN was measured on (`../shared/CORTEX-M.md`),
/// with its instructions per MAC on the M4.
pub const CONV_BENCH: [(ConvShape, f64); 5] = [
    (
        ConvShape {
            name: "conv-dscnn1-49x10x1-10x4-s2",
            input: map(49, 10, 1),
            filters: 64,
            window: window((10, 4), (2, 2), Padding::Same),
            depthwise: false,
        },
        3.49,
    ),
    (
        ConvShape {
            name: "dwconv-25x5x64-3x3",
            input: map(25, 5, 64),
            filters: 64,
            window: window((3, 3), (1, 1), Padding::Same),
            depthwise: true,
        },
        7.79,
    ),
    (
        ConvShape {
            name: "pwconv-25x5-64to64",
            input: map(25, 5, 64),
            filters: 64,
            window: window((1, 1), (1, 1), Padding::Valid),
            depthwise: false,
        },
        2.09,
    ),
    (
        ConvShape {
            name: "conv-32x32x16-3x3",
            input: map(32, 32, 16),
            filters: 16,
            window: window((3, 3), (1, 1), Padding::Same),
            depthwise: false,
        },
        2.33,
    ),
    (
        ConvShape {
            name: "conv1d-128x6-k5-16",
            input: map(1, 128, 6),
            filters: 16,
            window: window((1, 5), (1, 1), Padding::Valid),
            depthwise: false,
        },
        4.12,
    ),
];

/// Odd shapes for the parity tests: channel counts that leave 1 to 3 over in
/// groups of 4, rows of 3k+1 and 3k+2, strides, dilation, both paddings.
pub const CONV_PARITY: [ConvShape; 4] = [
    ConvShape {
        name: "conv-7x5x3-3x3-s2-same",
        input: map(7, 5, 3),
        filters: 5,
        window: window((3, 3), (2, 2), Padding::Same),
        depthwise: false,
    },
    ConvShape {
        name: "conv1d-33x5-k3-d2",
        input: map(1, 33, 5),
        filters: 7,
        window: Window {
            dilation_w: 2,
            ..window((1, 3), (1, 1), Padding::Valid)
        },
        depthwise: false,
    },
    ConvShape {
        name: "dwconv-6x6x7-3x3-same",
        input: map(6, 6, 7),
        filters: 7,
        window: window((3, 3), (1, 1), Padding::Same),
        depthwise: true,
    },
    ConvShape {
        name: "pwconv-5x3x9-to-10",
        input: map(5, 3, 9),
        filters: 10,
        window: window((1, 1), (1, 1), Padding::Valid),
        depthwise: false,
    },
];

/// Parameters of one convolution layer of `shape`, owned.
enum ConvParams {
    F32 { weights: Vec<u8>, bias: Vec<u8> },
    I8(QuantLayer),
}

impl ConvParams {
    fn random(rng: &mut Rng, numeric: Numeric, s: &ConvShape) -> Result<Self> {
        let taps = (s.window.kernel_h * s.window.kernel_w) as usize;
        let fan_in = taps
            * if s.depthwise {
                1
            } else {
                s.input.channels as usize
            };
        let weights = if s.depthwise {
            taps * s.input.channels as usize
        } else {
            s.filters as usize * fan_in
        };
        Ok(match numeric {
            Numeric::F32 => {
                let k = 1.0 / (fan_in as f32).sqrt();
                ConvParams::F32 {
                    weights: f32_bytes(&(0..weights).map(|_| k * rng.unit()).collect::<Vec<_>>()),
                    bias: f32_bytes(&(0..s.filters).map(|_| 0.1 * rng.unit()).collect::<Vec<_>>()),
                }
            }
            Numeric::Int8 => ConvParams::I8(QuantLayer::random(
                rng,
                weights,
                s.filters as usize,
                fan_in,
            )?),
        })
    }

    fn layer<'a>(&'a self, s: &ConvShape) -> LayerDef<'a> {
        match self {
            ConvParams::F32 { weights, bias } => LayerDef::Conv2dF32 {
                input: s.input,
                filters: s.filters,
                window: s.window,
                depthwise: s.depthwise,
                weights,
                bias,
            },
            ConvParams::I8(q) => LayerDef::Conv2dI8 {
                input: s.input,
                filters: s.filters,
                window: s.window,
                depthwise: s.depthwise,
                weights: &q.weights,
                bias: &q.bias,
                multiplier: &q.multiplier,
                shift: &q.shift,
                input_zero_point: 0,
                output_zero_point: 0,
            },
        }
    }
}

/// Write the single convolution layer `shape` of the given numeric into `dir`.
pub fn conv(dir: &Path, numeric: Numeric, shape: &ConvShape) -> Result<Synthetic> {
    let mut rng = Rng(0xC0DE ^ (shape.name.len() as u64) << 32 ^ shape.filters as u64);
    let (outputs, _) = shape
        .size()
        .ok_or_else(|| anyhow!("{}: the window does not fit", shape.name))?;
    let params = ConvParams::random(&mut rng, numeric, shape)?;
    let input_len = (shape.input.height * shape.input.width * shape.input.channels) as usize;
    save(
        dir,
        shape.name.to_string(),
        numeric,
        (input_len, outputs),
        &[params.layer(shape)],
        &mut rng,
    )
}

/// The MLPerf Tiny DS-CNN keyword-spotting network (about 2.66 million
/// MACs), int8 with random weights: conv 10x4 stride 2 (64 filters) over
/// 49x10 MFCC features, four depthwise-separable blocks (3x3 depthwise +
/// pointwise 64 -> 64, each with ReLU), global average pooling, dense 64 ->
/// 12, softmax.
pub fn ds_cnn(dir: &Path) -> Result<Synthetic> {
    let mut rng = Rng(0xD5C0);
    let maps = map(25, 5, 64);
    let mut shapes = vec![CONV_BENCH[0].0];
    for _ in 0..4 {
        shapes.push(CONV_BENCH[1].0);
        shapes.push(CONV_BENCH[2].0);
    }
    let params = shapes
        .iter()
        .map(|s| ConvParams::random(&mut rng, Numeric::Int8, s))
        .collect::<Result<Vec<_>>>()?;
    // ReLU as the int8 table of max(x, 0) (zero point 0, same scale).
    let relu: Vec<u8> = (0..256)
        .map(|i| (i as u8 ^ 0x80) as i8)
        .map(|v| v.max(0) as u8)
        .collect();
    let head = QuantLayer::random(&mut rng, 64 * 12, 12, 64)?;
    let exp_table: Vec<u8> = (0..256u32)
        .flat_map(|d| ((32767.0 * (-(d as f64) / 16.0).exp()).round() as u16).to_le_bytes())
        .collect();
    let mut layers = Vec::new();
    for (s, p) in shapes.iter().zip(&params) {
        layers.push(p.layer(s));
        layers.push(LayerDef::TableI8 { table: &relu });
    }
    layers.push(LayerDef::Pool2d {
        input: maps,
        kind: Pool2dKind::Average,
        window: window((25, 5), (1, 1), Padding::Valid),
    });
    layers.push(LayerDef::DenseI8 {
        inputs: 64,
        outputs: 12,
        weights: &head.weights,
        bias: &head.bias,
        multiplier: &head.multiplier,
        shift: &head.shift,
        output_zero_point: 0,
    });
    layers.push(LayerDef::SoftmaxI8 {
        exp_table: &exp_table,
    });
    save(
        dir,
        "ds-cnn".into(),
        Numeric::Int8,
        (49 * 10, 12),
        &layers,
        &mut rng,
    )
}

/// Write the synthetic model called `name` (a dense `dense-RxC`, a shape of
/// [`CONV_BENCH`] or [`CONV_PARITY`], or `ds-cnn`) into `target/xtask/synthetic`.
pub fn by_name(name: &str, numeric: &str) -> Result<Synthetic> {
    let dir = crate::workspace_root().join("target/xtask/synthetic");
    let numeric = match numeric {
        "f32" => Numeric::F32,
        "int8" => Numeric::Int8,
        other => anyhow::bail!("numeric must be f32 or int8, not {other}"),
    };
    match name {
        "ds-cnn" => return ds_cnn(&dir),
        "mlperf-ad-autoencoder" => return autoencoder(&dir),
        _ => {}
    }
    if let Some(n) = name.strip_prefix("softmax-").and_then(|n| n.parse().ok()) {
        return softmax(&dir, n);
    }
    if let Some((i, h)) = name
        .strip_prefix("lstm-")
        .and_then(|s| s.split_once('-'))
        .and_then(|(i, h)| Some((i.parse().ok()?, h.parse().ok()?)))
    {
        return lstm(&dir, i, h, 10);
    }
    if let Some((rows, cols)) = name
        .strip_prefix("dense-")
        .and_then(|s| s.split_once('x'))
        .and_then(|(r, c)| Some((r.parse().ok()?, c.parse().ok()?)))
    {
        return dense(&dir, numeric, rows, cols);
    }
    let shape = CONV_BENCH
        .iter()
        .map(|(s, _)| s)
        .chain(&CONV_PARITY)
        .find(|s| s.name == name)
        .ok_or_else(|| anyhow!("no synthetic model called {name}"))?;
    conv(&dir, numeric, shape)
}

/// An int8 softmax over `n` values (the model is only the softmax).
pub fn softmax(dir: &Path, n: usize) -> Result<Synthetic> {
    let mut rng = Rng(0x50F7 ^ n as u64);
    // exp(-d / 8) in Q15 for the input scale of 1/8 per step.
    let exp_table: Vec<u8> = (0..256u32)
        .flat_map(|d| ((32767.0 * (-(d as f64) / 8.0).exp()).round() as u16).to_le_bytes())
        .collect();
    let layer = LayerDef::SoftmaxI8 {
        exp_table: &exp_table,
    };
    save(
        dir,
        format!("softmax-{n}"),
        Numeric::Int8,
        (n, n),
        &[layer],
        &mut rng,
    )
}

/// The MLPerf Tiny anomaly-detection autoencoder (640-128-128-128-128-8-
/// 128-128-128-128-640, 264,192 MACs), int8 with random weights and ReLU
/// between the layers.
pub fn autoencoder(dir: &Path) -> Result<Synthetic> {
    let mut rng = Rng(0xAE00);
    let widths = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640];
    let params = widths
        .windows(2)
        .map(|w| QuantLayer::random(&mut rng, w[0] * w[1], w[1], w[0]))
        .collect::<Result<Vec<_>>>()?;
    let relu: Vec<u8> = (0..256)
        .map(|i| (i as u8 ^ 0x80) as i8)
        .map(|v| v.max(0) as u8)
        .collect();
    let mut layers = Vec::new();
    for (w, q) in widths.windows(2).zip(&params) {
        layers.push(LayerDef::DenseI8 {
            inputs: w[0] as u32,
            outputs: w[1] as u32,
            weights: &q.weights,
            bias: &q.bias,
            multiplier: &q.multiplier,
            shift: &q.shift,
            output_zero_point: 0,
        });
        if w[1] != 640 {
            layers.push(LayerDef::TableI8 { table: &relu });
        }
    }
    save(
        dir,
        "mlperf-ad-autoencoder".into(),
        Numeric::Int8,
        (640, 640),
        &layers,
        &mut rng,
    )
}

/// An int8 LSTM of `inputs` channels and `hidden` units over sequences of
/// `steps` steps (random weights; gates scaled to about one unit of Q12),
/// the shapes CMSIS-NN's `arm_lstm_unidirectional_s8` was measured on.
pub fn lstm(dir: &Path, inputs: usize, hidden: usize, steps: usize) -> Result<Synthetic> {
    let mut rng = Rng(0x157A ^ (inputs as u64) << 16 ^ hidden as u64);
    let rows = 4 * hidden;
    let w_input: Vec<u8> = (0..rows * inputs)
        .map(|_| rng.int8().max(-127) as u8)
        .collect();
    let w_hidden: Vec<u8> = (0..rows * hidden)
        .map(|_| rng.int8().max(-127) as u8)
        .collect();
    let bias = |rng: &mut Rng| -> Vec<u8> {
        (0..rows)
            .flat_map(|_| ((rng.unit() * 1000.0) as i32).to_le_bytes())
            .collect()
    };
    let (bias_input, bias_hidden) = (bias(&mut rng), bias(&mut rng));
    // To Q12: int8 x int8 sums of std about 5300 sqrt(inputs); Q15 x int8
    // about 1.4e6 sqrt(hidden).
    let fixed = |ratio: f64| {
        runtime::quant::quantize_multiplier(ratio).ok_or_else(|| anyhow!("bad ratio {ratio}"))
    };
    let (mi, si) = fixed(4096.0 / (5300.0 * (inputs as f64).sqrt()))?;
    let (mh, sh) = fixed(4096.0 / (1.4e6 * (hidden as f64).sqrt()))?;
    let (mo, so) = fixed(127.0 / 32768.0)?;
    let mut params = Vec::new();
    params.extend(&w_input);
    params.extend(&w_hidden);
    params.extend(&bias_input);
    params.extend(&bias_hidden);
    params.extend((0..rows).flat_map(|_| mi.to_le_bytes()));
    params.extend((0..rows).flat_map(|_| mh.to_le_bytes()));
    params.extend(vec![si; rows]);
    params.extend(vec![sh; rows]);
    let layer = LayerDef::RecurrentI8 {
        cell: runtime::format::Cell::Lstm,
        inputs: inputs as u32,
        hidden: hidden as u32,
        params: &params,
        output: runtime::format::Rescale {
            zero_point: 0,
            multiplier: mo,
            shift: so,
        },
        output_zero_point: 0,
    };
    save_sequences(
        dir,
        format!("lstm-{inputs}-{hidden}"),
        Numeric::Int8,
        (inputs, hidden),
        &[layer],
        steps,
        &mut rng,
    )
}
