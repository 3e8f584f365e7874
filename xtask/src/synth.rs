//! Synthetic single-dense-layer models with random weights, and their test
//! vectors (expected outputs from the host runtime, labels = host argmax).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use runtime::format::{LayerDef, ModelHeader};
use runtime::{Arena, Model, Numeric, QuantParams, TestVectors};

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

/// Write `dense-<rows>x<cols>` (`outputs x inputs`) of the given numeric into `dir`.
pub fn dense(dir: &Path, numeric: Numeric, rows: usize, cols: usize) -> Result<Synthetic> {
    let name = format!("dense-{rows}x{cols}");
    let kind = crate::chip::numeric_name(numeric);
    let mut rng = Rng(0x5EED ^ ((rows as u64) << 32) ^ cols as u64 ^ (kind.len() as u64) << 48);
    let offset = f32_bytes(&vec![0.0; cols]);
    let scale = f32_bytes(&vec![1.0; cols]);
    let header = |input_quant, output_quant| ModelHeader {
        numeric,
        input_len: cols as u32,
        output_len: rows as u32,
        arena_bytes: 0,
        layer_count: 0,
        input_offset: &offset,
        input_scale: &scale,
        input_quant,
        output_quant,
    };

    let (weights, bias, multiplier, shift);
    let (hdr, layer) = match numeric {
        Numeric::F32 => {
            let k = 1.0 / (cols as f32).sqrt();
            weights = f32_bytes(&(0..rows * cols).map(|_| k * rng.unit()).collect::<Vec<_>>());
            bias = f32_bytes(&(0..rows).map(|_| 0.1 * rng.unit()).collect::<Vec<_>>());
            let layer = LayerDef::DenseF32 {
                inputs: cols as u32,
                outputs: rows as u32,
                weights: &weights,
                bias: &bias,
            };
            (header(None, None), layer)
        }
        Numeric::Int8 => {
            weights = (0..rows * cols)
                .map(|_| rng.int8().max(-127) as u8)
                .collect::<Vec<u8>>();
            bias = (0..rows)
                .flat_map(|_| ((rng.unit() * 2000.0) as i32).to_le_bytes())
                .collect::<Vec<u8>>();
            // Uniform int8 inputs and weights: accumulators of std about 5300 * sqrt(cols); scale to about 40.
            let ratio = 40.0 / (5300.0 * (cols as f64).sqrt());
            let (m, s) = runtime::quant::quantize_multiplier(ratio)
                .ok_or_else(|| anyhow!("bad ratio {ratio}"))?;
            multiplier = (0..rows).flat_map(|_| m.to_le_bytes()).collect::<Vec<u8>>();
            shift = vec![s; rows];
            let layer = LayerDef::DenseI8 {
                inputs: cols as u32,
                outputs: rows as u32,
                weights: &weights,
                bias: &bias,
                multiplier: &multiplier,
                shift: &shift,
                output_zero_point: 0,
            };
            let q = |scale| {
                Some(QuantParams {
                    scale,
                    zero_point: 0,
                })
            };
            (header(q(1.0 / 128.0), q(1.0 / 16.0)), layer)
        }
    };
    let mut out = vec![
        0u8;
        runtime::encoded_len(hdr, &[layer])
            .map_err(|e| anyhow!("encoding {name}: {e}"))?
    ];
    let len =
        runtime::encode(hdr, &[layer], &mut out).map_err(|e| anyhow!("encoding {name}: {e}"))?;
    out.truncate(len);

    // Inputs, and the host runtime's outputs for them.
    let model = Model::from_bytes(&out).map_err(|e| anyhow!("loading {name}: {e}"))?;
    let mut arena = Box::new(Arena::<65536>::new());
    let (mut inputs, mut expected, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..VECTORS {
        let label = match numeric {
            Numeric::F32 => {
                let x: Vec<f32> = (0..cols).map(|_| rng.unit()).collect();
                let y = model
                    .run_f32(&x, arena.as_mut_bytes())
                    .map_err(|e| anyhow!("{e}"))?;
                inputs.extend(f32_bytes(&x));
                expected.extend(f32_bytes(y));
                runtime::argmax(y)
            }
            Numeric::Int8 => {
                let x: Vec<i8> = (0..cols).map(|_| rng.int8()).collect();
                let y = model
                    .run_i8(&x, arena.as_mut_bytes())
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
        input_len: cols as u32,
        output_len: rows as u32,
        inputs: &inputs,
        expected: &expected,
        labels: &labels,
        steps: None,
    };
    let dir = dir.join(format!("{name}-{kind}"));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let model_path = dir.join("model.bin");
    let vectors_path = dir.join("vectors.bin");
    fs::write(&model_path, &out)?;
    fs::write(&vectors_path, postcard::to_stdvec(&tv)?)?;
    Ok(Synthetic {
        name,
        model: model_path,
        vectors: vectors_path,
    })
}
