//! The transformer's parameters and its candle forward pass.
//!
//! The forward pass is the reference the runtime must match (the layer
//! contract is in `runtime::format`, `AttentionF32` and friends):
//!
//! ```text
//! tokens:    the normalized input row, cut into `tokens` rows of `token_width`
//! input:     dense token_width -> dim per row, or (forecaster) embedding of
//!            round(x) clamped to [0, vocab)
//! [cls]:     a learned row prepended (pool = "cls"), so L = tokens + 1 rows
//! [pe]:      + sinusoidal table (L x dim): pe[p, 2i] = sin(p w_i),
//!            pe[p, 2i + 1] = cos(p w_i), w_i = 10000^(-2i / dim)
//! blocks:    x += Attn(LN(x)); x += W2 GELU(W1 LN(x) + b1) + b2
//! attention: [q k v] = W_qkv x + b_qkv; RoPE rotates pairs (2m, 2m+1) of each
//!            head's q and k by p * 10000^(-2m / d); s = q.k / sqrt(d)
//!            + bias_h[i - j + L - 1]; causal: j <= i; softmax; ctx = p v;
//!            y = W_out ctx + b_out
//! end:       LN, then mean / first-row pooling and dense head (+ softmax),
//!            or (causal) dense dim -> 1 per row
//! ```
//!
//! LayerNorm uses the biased variance and `eps` [`LN_EPS`]; GELU is the exact
//! erf form. Weights are `outputs x inputs` row-major, as the blob stores them.

use anyhow::{bail, Result};
use candle_core::{Device, Tensor, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::Normalization;
use crate::quantize::Range;
use crate::transformer::spec::{PoolKind, PositionKind, TransformerSpec};

/// LayerNorm epsilon of every norm in the model.
pub const LN_EPS: f32 = 1e-5;

/// The architecture, with the data-dependent widths filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Input tokens (without the class token).
    pub tokens: usize,
    /// Raw values per token (1 for a forecaster).
    pub token_width: usize,
    /// Model width.
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Encoder blocks.
    pub blocks: usize,
    /// Feed-forward width.
    pub ff: usize,
    /// Positional encoding.
    pub position: PositionKind,
    /// Pooling or causal.
    pub pool: PoolKind,
    /// Embedding bins (forecaster) or `None` (token projection).
    pub vocab: Option<usize>,
    /// Classes, or 1 for a forecaster.
    pub outputs: usize,
}

impl Config {
    /// From a spec section and the data's input width and output count.
    pub fn new(t: &TransformerSpec, input_len: usize, outputs: usize) -> Result<Config> {
        if !input_len.is_multiple_of(t.tokens) {
            bail!(
                "the input has {input_len} values, which do not split into {} equal tokens (transformer.pad_to or transformer.crop_to set its length)",
                t.tokens
            );
        }
        Ok(Config {
            tokens: t.tokens,
            token_width: input_len / t.tokens,
            dim: t.dim,
            heads: t.heads,
            blocks: t.blocks,
            ff: t.ff,
            position: t.position,
            pool: t.pool,
            vocab: t.vocab,
            outputs,
        })
    }

    /// Rows the blocks see: tokens, plus the class token.
    pub fn rows(&self) -> usize {
        self.tokens + usize::from(self.pool == PoolKind::Cls)
    }

    /// Width of each head.
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    /// Raw values per input (the blob's `input_len`).
    pub fn input_len(&self) -> usize {
        self.tokens * self.token_width
    }

    /// Whether attention sees only earlier rows.
    pub fn causal(&self) -> bool {
        self.pool == PoolKind::Causal
    }
}

/// One pre-norm encoder block.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// LayerNorm before attention: gamma, beta (`dim` each).
    pub norm1: (Vec<f32>, Vec<f32>),
    /// `3 dim x dim`: rows of q, then k, then v.
    pub qkv_weight: Vec<f32>,
    /// `3 dim`.
    pub qkv_bias: Vec<f32>,
    /// `dim x dim`.
    pub out_weight: Vec<f32>,
    /// `dim`.
    pub out_bias: Vec<f32>,
    /// `heads x (2 rows - 1)` for relative positions, else empty.
    pub relative_bias: Vec<f32>,
    /// LayerNorm before the feed-forward layer.
    pub norm2: (Vec<f32>, Vec<f32>),
    /// `ff x dim`.
    pub ff1_weight: Vec<f32>,
    /// `ff`.
    pub ff1_bias: Vec<f32>,
    /// `dim x ff`.
    pub ff2_weight: Vec<f32>,
    /// `dim`.
    pub ff2_bias: Vec<f32>,
}

/// A transformer's parameters as plain vectors, with its input normalization.
#[derive(Debug, Clone, PartialEq)]
pub struct Transformer {
    /// Architecture.
    pub config: Config,
    /// Raw input to model input (`input_len` entries).
    pub normalization: Normalization,
    /// Token projection `dim x token_width`, or embedding table `vocab x dim`.
    pub input_weight: Vec<f32>,
    /// Token projection bias (`dim`); empty for an embedding.
    pub input_bias: Vec<f32>,
    /// The class token (`dim`), or empty.
    pub class_token: Vec<f32>,
    /// Encoder blocks.
    pub blocks: Vec<Block>,
    /// Final LayerNorm.
    pub final_norm: (Vec<f32>, Vec<f32>),
    /// Head `outputs x dim`.
    pub head_weight: Vec<f32>,
    /// Head bias (`outputs`).
    pub head_bias: Vec<f32>,
}

/// The fixed sinusoidal table, `rows x dim` row-major.
pub fn sinusoidal_table(rows: usize, dim: usize) -> Vec<f32> {
    let mut table = vec![0.0f32; rows * dim];
    for p in 0..rows {
        for c in 0..dim {
            let i = (c / 2) as f64;
            let angle = p as f64 * libm::pow(10000.0, -2.0 * i / dim as f64);
            table[p * dim + c] = if c % 2 == 0 {
                libm::sin(angle)
            } else {
                libm::cos(angle)
            } as f32;
        }
    }
    table
}

/// The RoPE table, `rows x d`: `(cos, sin)` of `p * 10000^(-2m/d)` per
/// position `p` and pair `m`.
pub fn rope_table(rows: usize, d: usize) -> Vec<f32> {
    let mut table = Vec::with_capacity(rows * d);
    for p in 0..rows {
        for m in 0..d / 2 {
            let angle = p as f64 * libm::pow(10000.0, -2.0 * m as f64 / d as f64);
            table.push(libm::cos(angle) as f32);
            table.push(libm::sin(angle) as f32);
        }
    }
    table
}

impl Transformer {
    /// Fresh parameters from `seed`: uniform(+-1/sqrt(fan_in)) weights, zero
    /// biases, unit LayerNorms, small relative biases. A forecaster's
    /// embedding starts as a smooth encoding of the bin (sines and cosines
    /// of the bin index) so bins rare in training still mean "a value near
    /// its neighbours'".
    pub fn init(config: Config, normalization: Normalization, seed: u64) -> Transformer {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uniform = |n: usize, fan_in: usize| -> Vec<f32> {
            let k = 1.0 / (fan_in as f32).sqrt();
            (0..n).map(|_| rng.random_range(-k..k)).collect()
        };
        let (dim, ff, rows) = (config.dim, config.ff, config.rows());
        let (input_weight, input_bias) = match config.vocab {
            Some(vocab) => {
                let mut table = uniform(vocab * dim, dim * 16);
                for (v, row) in table.chunks_exact_mut(dim).enumerate() {
                    for (c, e) in row.iter_mut().enumerate() {
                        let freq = std::f32::consts::PI * (1 + c / 2) as f32 / vocab as f32;
                        let angle = v as f32 * freq;
                        *e += if c % 2 == 0 { angle.sin() } else { angle.cos() };
                    }
                }
                (table, Vec::new())
            }
            None => (
                uniform(dim * config.token_width, config.token_width),
                vec![0.0; dim],
            ),
        };
        let class_token = if config.pool == PoolKind::Cls {
            uniform(dim, dim)
        } else {
            Vec::new()
        };
        let unit = || (vec![1.0f32; dim], vec![0.0f32; dim]);
        let blocks = (0..config.blocks)
            .map(|_| Block {
                norm1: unit(),
                qkv_weight: uniform(3 * dim * dim, dim),
                qkv_bias: vec![0.0; 3 * dim],
                out_weight: uniform(dim * dim, dim),
                out_bias: vec![0.0; dim],
                relative_bias: if config.position == PositionKind::Relative {
                    uniform(config.heads * (2 * rows - 1), 100)
                } else {
                    Vec::new()
                },
                norm2: unit(),
                ff1_weight: uniform(ff * dim, dim),
                ff1_bias: vec![0.0; ff],
                ff2_weight: uniform(dim * ff, ff),
                ff2_bias: vec![0.0; dim],
            })
            .collect();
        let head_weight = uniform(config.outputs * dim, dim);
        Transformer {
            head_bias: vec![0.0; config.outputs],
            config,
            normalization,
            input_weight,
            input_bias,
            class_token,
            blocks,
            final_norm: unit(),
            head_weight,
        }
    }

    /// Normalize raw inputs (`n x input_len`) as the runtime does.
    pub fn normalize(&self, raw: &[f32]) -> Vec<f32> {
        self.normalization.rows(raw)
    }

    /// The candle forward pass on raw inputs (`n x input_len`): `n x outputs`
    /// for a classifier (probabilities), `n x tokens` predictions for a
    /// forecaster. The reference for trainer-vs-runtime parity.
    pub fn predict(&self, raw: &[f32]) -> Result<Vec<f32>> {
        let net = Net::constant(self)?;
        let x = net.input(&self.normalize(raw))?;
        let y = net.forward(&x, false, None)?;
        Ok(y.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Observed ranges of every intermediate tensor over raw inputs (calibration).
    pub fn ranges(&self, raw: &[f32]) -> Result<Ranges> {
        let net = Net::constant(self)?;
        let mut ranges = Ranges::default();
        let len = self.config.input_len();
        // Batches keep the scores tensor (B x heads x L x L) small.
        for chunk in raw.chunks(len * 64) {
            let x = net.input(&self.normalize(chunk))?;
            net.forward(&x, false, Some(&mut ranges))?;
        }
        Ok(ranges)
    }
}

/// Widen `range` to the values of `t`.
fn merge_tensor(range: &mut Range, t: &Tensor) -> candle_core::Result<()> {
    range.merge(&t.flatten_all()?.to_vec1::<f32>()?);
    Ok(())
}

/// Observed ranges inside one block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockRanges {
    /// First LayerNorm output.
    pub norm1: Range,
    /// Queries before and after RoPE.
    pub q: Range,
    /// Keys before and after RoPE.
    pub k: Range,
    /// Values.
    pub v: Range,
    /// Largest `max_j s_j - s_j` over allowed `j` (real score units).
    pub score_spread: f32,
    /// Attention context (before the output projection).
    pub context: Range,
    /// Attention output.
    pub attention: Range,
    /// Residual after attention.
    pub residual1: Range,
    /// Second LayerNorm output.
    pub norm2: Range,
    /// First feed-forward dense output.
    pub ff1: Range,
    /// GELU output.
    pub gelu: Range,
    /// Second feed-forward dense output.
    pub ff2: Range,
    /// Residual after the feed-forward layer (block output).
    pub residual2: Range,
}

/// Observed ranges of every tensor the int8 model stores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ranges {
    /// Normalized input.
    pub input: Range,
    /// Token projection or embedding output (with the class token).
    pub embedded: Range,
    /// After adding the sinusoidal table.
    pub positioned: Range,
    /// Per block.
    pub blocks: Vec<BlockRanges>,
    /// Final LayerNorm output.
    pub final_norm: Range,
    /// Head output (logits or predictions).
    pub head: Range,
}

/// Turns one parameter array and its shape into a tensor (constant or variable).
pub(crate) type MakeTensor<'a> = dyn FnMut(&[f32], &[usize]) -> Result<Tensor> + 'a;

/// Parameters as candle tensors (variables while training).
pub(crate) struct Net {
    pub config: Config,
    pub input_weight: Tensor,
    pub input_bias: Option<Tensor>,
    pub class_token: Option<Tensor>,
    pub blocks: Vec<NetBlock>,
    pub final_norm: (Tensor, Tensor),
    pub head_weight: Tensor,
    pub head_bias: Tensor,
    /// Constant tables: sinusoidal (`L x dim`), RoPE cos and sin (`L x d/2 x 1`
    /// each), relative-bias index (`L*L`, u32), causal mask (`L x L`).
    sinusoidal: Option<Tensor>,
    rope: Option<(Tensor, Tensor)>,
    relative_index: Option<Tensor>,
    causal_mask: Option<Tensor>,
}

pub(crate) struct NetBlock {
    pub norm1: (Tensor, Tensor),
    pub qkv_weight: Tensor,
    pub qkv_bias: Tensor,
    pub out_weight: Tensor,
    pub out_bias: Tensor,
    pub relative_bias: Option<Tensor>,
    pub norm2: (Tensor, Tensor),
    pub ff1_weight: Tensor,
    pub ff1_bias: Tensor,
    pub ff2_weight: Tensor,
    pub ff2_bias: Tensor,
}

fn layer_norm(x: &Tensor, (gamma, beta): &(Tensor, Tensor)) -> candle_core::Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centered.broadcast_div(&(var + f64::from(LN_EPS))?.sqrt()?)?;
    normed.broadcast_mul(gamma)?.broadcast_add(beta)
}

/// `x W^T + b` over the last dimension of a `(B, L, in)` tensor.
fn dense(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_matmul(&w.t()?)?.broadcast_add(b)
}

/// Rotate pairs `(2m, 2m+1)` of a `(B, H, L, d)` tensor.
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, l, d) = x.dims4()?;
    let pairs = x.reshape((b, h, l, d / 2, 2))?;
    let even = pairs.narrow(4, 0, 1)?;
    let odd = pairs.narrow(4, 1, 1)?;
    let new_even = (even.broadcast_mul(cos)? - odd.broadcast_mul(sin)?)?;
    let new_odd = (even.broadcast_mul(sin)? + odd.broadcast_mul(cos)?)?;
    Tensor::cat(&[new_even, new_odd], 4)?.reshape((b, h, l, d))
}

impl Net {
    /// Build from parameters; `make` turns each array (with its shape) into a
    /// tensor (a constant, or a training variable).
    pub fn build(t: &Transformer, make: &mut MakeTensor<'_>) -> Result<Net> {
        let c = &t.config;
        let (dim, ff, rows, d) = (c.dim, c.ff, c.rows(), c.head_dim());
        let mut norm = |(g, b): &(Vec<f32>, Vec<f32>)| -> Result<(Tensor, Tensor)> {
            Ok((make(g, &[dim])?, make(b, &[dim])?))
        };
        let final_norm = norm(&t.final_norm)?;
        let mut blocks = Vec::new();
        for b in &t.blocks {
            let norm1 = (make(&b.norm1.0, &[dim])?, make(&b.norm1.1, &[dim])?);
            let norm2 = (make(&b.norm2.0, &[dim])?, make(&b.norm2.1, &[dim])?);
            blocks.push(NetBlock {
                norm1,
                qkv_weight: make(&b.qkv_weight, &[3 * dim, dim])?,
                qkv_bias: make(&b.qkv_bias, &[3 * dim])?,
                out_weight: make(&b.out_weight, &[dim, dim])?,
                out_bias: make(&b.out_bias, &[dim])?,
                relative_bias: if b.relative_bias.is_empty() {
                    None
                } else {
                    Some(make(&b.relative_bias, &[c.heads, 2 * rows - 1])?)
                },
                norm2,
                ff1_weight: make(&b.ff1_weight, &[ff, dim])?,
                ff1_bias: make(&b.ff1_bias, &[ff])?,
                ff2_weight: make(&b.ff2_weight, &[dim, ff])?,
                ff2_bias: make(&b.ff2_bias, &[dim])?,
            });
        }
        let input_weight = match c.vocab {
            Some(vocab) => make(&t.input_weight, &[vocab, dim])?,
            None => make(&t.input_weight, &[dim, c.token_width])?,
        };
        let input_bias = match c.vocab {
            Some(_) => None,
            None => Some(make(&t.input_bias, &[dim])?),
        };
        let class_token = match c.pool {
            PoolKind::Cls => Some(make(&t.class_token, &[1, 1, dim])?),
            _ => None,
        };
        let head_weight = make(&t.head_weight, &[c.outputs, dim])?;
        let head_bias = make(&t.head_bias, &[c.outputs])?;

        let cpu = &Device::Cpu;
        let sinusoidal = match c.position {
            PositionKind::Sinusoidal => Some(Tensor::from_vec(
                sinusoidal_table(rows, dim),
                (rows, dim),
                cpu,
            )?),
            _ => None,
        };
        let rope = match c.position {
            PositionKind::Rope => {
                let table = rope_table(rows, d);
                let cos: Vec<f32> = table.iter().step_by(2).copied().collect();
                let sin: Vec<f32> = table.iter().skip(1).step_by(2).copied().collect();
                Some((
                    Tensor::from_vec(cos, (rows, d / 2, 1), cpu)?,
                    Tensor::from_vec(sin, (rows, d / 2, 1), cpu)?,
                ))
            }
            _ => None,
        };
        let relative_index = match c.position {
            PositionKind::Relative => {
                let index: Vec<u32> = (0..rows)
                    .flat_map(|i| (0..rows).map(move |j| (i + rows - 1 - j) as u32))
                    .collect();
                Some(Tensor::from_vec(index, rows * rows, cpu)?)
            }
            _ => None,
        };
        let causal_mask = if c.causal() {
            let mask: Vec<f32> = (0..rows)
                .flat_map(|i| (0..rows).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
                .collect();
            Some(Tensor::from_vec(mask, (rows, rows), cpu)?)
        } else {
            None
        };
        Ok(Net {
            config: c.clone(),
            input_weight,
            input_bias,
            class_token,
            blocks,
            final_norm,
            head_weight,
            head_bias,
            sinusoidal,
            rope,
            relative_index,
            causal_mask,
        })
    }

    /// Constant tensors of `t`'s parameters (inference).
    pub fn constant(t: &Transformer) -> Result<Net> {
        Net::build(t, &mut |v, shape| {
            Ok(Tensor::from_slice(v, shape, &Device::Cpu)?)
        })
    }

    /// The model input for normalized rows (`n x input_len`): `(n, tokens,
    /// token_width)` f32, or token ids `(n, tokens)` u32 for an embedding
    /// (`round(x)` clamped to `[0, vocab)`, NaN to 0, as the runtime does).
    pub fn input(&self, normalized: &[f32]) -> Result<Tensor> {
        let c = &self.config;
        let n = normalized.len() / c.input_len();
        Ok(match c.vocab {
            Some(vocab) => {
                let ids: Vec<u32> = normalized
                    .iter()
                    .map(|&x| {
                        if x.is_nan() {
                            0
                        } else {
                            x.round().clamp(0.0, (vocab - 1) as f32) as u32
                        }
                    })
                    .collect();
                Tensor::from_vec(ids, (n, c.tokens), &Device::Cpu)?
            }
            None => Tensor::from_slice(normalized, (n, c.tokens, c.token_width), &Device::Cpu)?,
        })
    }

    /// Forward a batch from [`Net::input`]. `logits_only` skips a
    /// classifier's final softmax (training). `ranges`, when given, widens
    /// with every intermediate tensor.
    pub fn forward(
        &self,
        x: &Tensor,
        logits_only: bool,
        mut ranges: Option<&mut Ranges>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let batch = x.dim(0)?;
        let mut h = match &self.input_bias {
            Some(bias) => {
                if let Some(r) = ranges.as_deref_mut() {
                    merge_tensor(&mut r.input, x)?;
                }
                dense(x, &self.input_weight, bias)?
            }
            None => self
                .input_weight
                .index_select(&x.flatten_all()?, 0)?
                .reshape((batch, c.tokens, c.dim))?,
        };
        if let Some(cls) = &self.class_token {
            let cls = cls.broadcast_as((batch, 1, c.dim))?;
            h = Tensor::cat(&[&cls, &h], 1)?;
        }
        if let Some(r) = ranges.as_deref_mut() {
            merge_tensor(&mut r.embedded, &h)?;
            if let Some(cls) = &self.class_token {
                merge_tensor(&mut r.embedded, cls)?;
            }
            if c.vocab.is_some() {
                // Every table row is a possible output, seen in training or not.
                merge_tensor(&mut r.embedded, &self.input_weight)?;
            }
        }
        if let Some(pe) = &self.sinusoidal {
            h = h.broadcast_add(pe)?;
            if let Some(r) = ranges.as_deref_mut() {
                merge_tensor(&mut r.positioned, &h)?;
            }
        }
        if let Some(r) = ranges.as_deref_mut() {
            r.blocks.resize(self.blocks.len(), BlockRanges::default());
        }
        for (i, block) in self.blocks.iter().enumerate() {
            let block_ranges = ranges.as_deref_mut().map(|r| &mut r.blocks[i]);
            h = self.block(block, &h, block_ranges)?;
        }
        h = layer_norm(&h, &self.final_norm)?;
        if let Some(r) = ranges.as_deref_mut() {
            merge_tensor(&mut r.final_norm, &h)?;
        }
        let pooled = match c.pool {
            PoolKind::Mean => h.mean(1)?,
            PoolKind::Cls => h.narrow(1, 0, 1)?.squeeze(1)?,
            PoolKind::Causal => h,
        };
        let y = pooled
            .broadcast_matmul(&self.head_weight.t()?)?
            .broadcast_add(&self.head_bias)?;
        if let Some(r) = ranges {
            merge_tensor(&mut r.head, &y)?;
        }
        Ok(match c.pool {
            PoolKind::Causal => y.squeeze(D::Minus1)?,
            _ if logits_only => y,
            _ => candle_nn::ops::softmax_last_dim(&y)?,
        })
    }

    fn block(
        &self,
        b: &NetBlock,
        x: &Tensor,
        mut ranges: Option<&mut BlockRanges>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (batch, rows, dim) = x.dims3()?;
        let (heads, d) = (c.heads, c.head_dim());
        let normed = layer_norm(x, &b.norm1)?;
        let qkv = dense(&normed, &b.qkv_weight, &b.qkv_bias)?;
        let split = |start: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(2, start, dim)?
                .reshape((batch, rows, heads, d))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (mut q, mut k, v) = (split(0)?, split(dim)?, split(2 * dim)?);
        if let Some(r) = ranges.as_deref_mut() {
            merge_tensor(&mut r.norm1, &normed)?;
            merge_tensor(&mut r.q, &q)?;
            merge_tensor(&mut r.k, &k)?;
            merge_tensor(&mut r.v, &v)?;
        }
        if let Some((cos, sin)) = &self.rope {
            q = rotate(&q, cos, sin)?;
            k = rotate(&k, cos, sin)?;
            if let Some(r) = ranges.as_deref_mut() {
                merge_tensor(&mut r.q, &q)?;
                merge_tensor(&mut r.k, &k)?;
            }
        }
        let mut scores =
            (q.matmul(&k.transpose(2, 3)?.contiguous()?)? * (1.0 / (d as f64).sqrt()))?;
        if let (Some(bias), Some(index)) = (&b.relative_bias, &self.relative_index) {
            let table = bias
                .index_select(index, 1)?
                .reshape((1, heads, rows, rows))?;
            scores = scores.broadcast_add(&table)?;
        }
        if let Some(mask) = &self.causal_mask {
            scores = scores.broadcast_add(mask)?;
        }
        if let Some(r) = ranges.as_deref_mut() {
            let values = scores.flatten_all()?.to_vec1::<f32>()?;
            for row in values.chunks_exact(rows) {
                let allowed = row.iter().filter(|v| v.is_finite());
                let max = allowed.clone().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let min = allowed.fold(f32::INFINITY, |m, &v| m.min(v));
                r.score_spread = r.score_spread.max(max - min);
            }
        }
        let p = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = p
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch, rows, dim))?;
        let attention = dense(&context, &b.out_weight, &b.out_bias)?;
        let residual1 = (x + &attention)?;
        let normed2 = layer_norm(&residual1, &b.norm2)?;
        let ff1 = dense(&normed2, &b.ff1_weight, &b.ff1_bias)?;
        let gelu = ff1.gelu_erf()?;
        let ff2 = dense(&gelu, &b.ff2_weight, &b.ff2_bias)?;
        let residual2 = (&residual1 + &ff2)?;
        if let Some(r) = ranges {
            merge_tensor(&mut r.context, &context)?;
            merge_tensor(&mut r.attention, &attention)?;
            merge_tensor(&mut r.residual1, &residual1)?;
            merge_tensor(&mut r.norm2, &normed2)?;
            merge_tensor(&mut r.ff1, &ff1)?;
            merge_tensor(&mut r.gelu, &gelu)?;
            merge_tensor(&mut r.ff2, &ff2)?;
            merge_tensor(&mut r.residual2, &residual2)?;
        }
        Ok(residual2)
    }

    /// Read the (trained) tensors back into plain parameters.
    pub fn to_params(&self, normalization: Normalization) -> Result<Transformer> {
        let flat = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
        let pair = |(g, b): &(Tensor, Tensor)| -> Result<(Vec<f32>, Vec<f32>)> {
            Ok((flat(g)?, flat(b)?))
        };
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                Ok(Block {
                    norm1: pair(&b.norm1)?,
                    qkv_weight: flat(&b.qkv_weight)?,
                    qkv_bias: flat(&b.qkv_bias)?,
                    out_weight: flat(&b.out_weight)?,
                    out_bias: flat(&b.out_bias)?,
                    relative_bias: b.relative_bias.as_ref().map_or(Ok(Vec::new()), flat)?,
                    norm2: pair(&b.norm2)?,
                    ff1_weight: flat(&b.ff1_weight)?,
                    ff1_bias: flat(&b.ff1_bias)?,
                    ff2_weight: flat(&b.ff2_weight)?,
                    ff2_bias: flat(&b.ff2_bias)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Transformer {
            config: self.config.clone(),
            normalization,
            input_weight: flat(&self.input_weight)?,
            input_bias: self.input_bias.as_ref().map_or(Ok(Vec::new()), flat)?,
            class_token: self.class_token.as_ref().map_or(Ok(Vec::new()), flat)?,
            blocks,
            final_norm: pair(&self.final_norm)?,
            head_weight: flat(&self.head_weight)?,
            head_bias: flat(&self.head_bias)?,
        })
    }
}
