//! The `kind = "transformer"` spec: which data, which transformer, how to train.
//!
//! ```toml
//! name = "digits-transformer"
//! kind = "transformer"
//! [dataset]                 # classifiers: a CSV (split by test_fraction) or a .ts pair
//! path = "../datasets/digits/digits.csv.gz"
//! test_fraction = 0.2
//! seed = 7
//! [transformer]
//! tokens = 8                # each input row is cut into 8 equal consecutive tokens
//! dim = 32                  # model width (rows x dim and rows x ff must fit the runtime's MAX_WIDTH)
//! heads = 2                 # divides dim
//! blocks = 1                # pre-norm encoder blocks (at most 2: the blob holds 32 layers)
//! ff = 64                   # width of each block's feed-forward layer
//! position = "sinusoidal"   # "sinusoidal" | "relative" | "rope" | "none"
//! pool = "mean"             # "mean" | "cls" (learned class token) | "causal" (forecaster)
//! pad_to = 260              # optional: pad each input to 260 time steps (values of a CSV
//!                           # row) by repeating its last one, so it splits into the tokens;
//!                           # or crop_to = 250 to keep its first 250 (not both)
//! [training]                # as for every candle family (adam only)
//! optimizer = { kind = "adam", learning_rate = 0.003 }
//! epochs = 40
//! batch_size = 32
//! seed = 1
//! [quantization]            # optional
//! calibration_samples = 512
//! ```
//!
//! A causal forecaster (`pool = "causal"`) reads one raw value per token from
//! a `[series]` table instead of `[dataset]` and needs `vocab` (2..=128): the
//! input normalization maps a value to a bin coordinate, and the embedding
//! table (`vocab x dim`) is the tokenizer. Its position must be `"relative"`
//! or `"none"`, so the runtime's key/value cache can slide over a stream.
//! It trains on windows of `tokens` values; with one block a sliding stream
//! computes exactly the window's last row, with two blocks the second
//! block's cached keys and values also carry context from before the window
//! (computed when their token was new), so a stream differs slightly from
//! what training saw.
//!
//! ```toml
//! [series]
//! train = "normal_TRAIN.csv"   # timestamp,value,is_anomaly
//! test = "with_anomaly_TEST.csv"
//! train_stride = 1             # step between training windows (default 1)
//! ```
//!
//! Every rejected value gives a one-line error naming the file and the key.

use serde::Deserialize;

use crate::limits;
use crate::spec::{OptimizerSpec, Spec, SpecError, Tables};

/// How positions reach the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionKind {
    /// Fixed sine/cosine table added after the token projection.
    Sinusoidal,
    /// Learned bias per head and relative distance, added to the scores.
    Relative,
    /// Rotary embedding of queries and keys.
    Rope,
    /// No positional information.
    None,
}

/// What the model does with its sequence of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    /// Classifier on the mean of the rows.
    Mean,
    /// Classifier on a learned class token prepended to the rows.
    Cls,
    /// Causal next-value forecaster: one prediction per token, no pooling.
    Causal,
}

/// The `[transformer]` table: the transformer family's part of a spec.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerSpec {
    /// Tokens per input (the context of a causal model).
    pub tokens: usize,
    /// Model width.
    pub dim: usize,
    /// Attention heads; divides `dim`.
    pub heads: usize,
    /// Encoder blocks.
    pub blocks: usize,
    /// Feed-forward width.
    pub ff: usize,
    /// Positional encoding.
    pub position: PositionKind,
    /// Pooling (classifiers) or causal forecasting.
    pub pool: PoolKind,
    /// Embedding bins of a causal forecaster.
    #[serde(default)]
    pub vocab: Option<usize>,
    /// Pad every input to this many time steps (values of a CSV row) by
    /// repeating its last one, so that it splits into `tokens`.
    #[serde(default)]
    pub pad_to: Option<usize>,
    /// Keep the first this many time steps (values of a CSV row) of every
    /// input, so that it splits into `tokens`.
    #[serde(default)]
    pub crop_to: Option<usize>,
}

impl TransformerSpec {
    /// The input length `pad_to` or `crop_to` asks for.
    pub fn resize(&self) -> Option<crate::dataset::Resize> {
        use crate::dataset::Resize;
        self.pad_to
            .map(Resize::Pad)
            .or(self.crop_to.map(Resize::Crop))
    }
}

/// Blob layers of one encoder block: save, norm, attention, add, save, norm,
/// dense, GELU, dense, add.
const LAYERS_PER_BLOCK: usize = 10;

/// Layers a blob of this architecture holds (must fit `MAX_LAYERS`).
pub fn layer_count(t: &TransformerSpec) -> usize {
    let positional = usize::from(t.position == PositionKind::Sinusoidal);
    let (cls, pool, softmax) = match t.pool {
        PoolKind::Mean => (0, 1, 1),
        PoolKind::Cls => (1, 1, 1),
        PoolKind::Causal => (0, 0, 0),
    };
    // tokens + input + [cls] + [positions] + per block + final norm + [pool] + head + [softmax]
    2 + cls + positional + LAYERS_PER_BLOCK * t.blocks + 1 + pool + 1 + softmax
}

/// Parse and check the `[transformer]` table and which data it reads.
pub fn parse(spec: &Spec, tables: &mut Tables) -> Result<TransformerSpec, SpecError> {
    let training = spec.training()?;
    let t: TransformerSpec = tables.require("transformer")?;
    let invalid = |field: &str, problem: &str| spec.invalid(field, problem);
    let above = |field: &str, check: Result<(), String>| check.map_err(|p| spec.above(field, p));
    if t.tokens == 0 {
        return Err(invalid("transformer.tokens", "must be at least 1"));
    }
    // Every tensor holds all rows (tokens and the class token), and the
    // runtime's width limit applies to the whole tensor.
    let rows = t.tokens + usize::from(t.pool == PoolKind::Cls);
    above(
        "transformer.tokens",
        limits::TOKENS.check("token count", rows),
    )?;
    if t.dim == 0 {
        return Err(invalid("transformer.dim", "must be at least 1"));
    }
    above(
        "transformer.dim",
        limits::WIDTH.check(&format!("width {rows} x {} =", t.dim), rows * t.dim),
    )?;
    // The q, k, v projection is one `3 dim` wide product per row.
    above(
        "transformer.dim",
        limits::WIDTH.check(&format!("q, k, v width 3 x {} =", t.dim), 3 * t.dim),
    )?;
    if t.heads == 0 || !t.dim.is_multiple_of(t.heads) {
        return Err(invalid(
            "transformer.heads",
            &format!("must divide dim {} exactly, got {}", t.dim, t.heads),
        ));
    }
    if t.position == PositionKind::Rope && !(t.dim / t.heads).is_multiple_of(2) {
        return Err(invalid(
            "transformer.position",
            &format!(
                "\"rope\" rotates pairs: dim / heads must be even, got {}",
                t.dim / t.heads
            ),
        ));
    }
    if t.ff == 0 {
        return Err(invalid("transformer.ff", "must be at least 1"));
    }
    above(
        "transformer.ff",
        limits::WIDTH.check(&format!("width {rows} x {} =", t.ff), rows * t.ff),
    )?;
    if t.blocks == 0 {
        return Err(invalid("transformer.blocks", "must be at least 1"));
    }
    above(
        "transformer.blocks",
        limits::ATTENTION_LAYERS.check("attention layer count (one per block)", t.blocks),
    )?;
    let layers = layer_count(&t);
    if let Err(problem) = limits::LAYERS.check("layer count", layers) {
        let fixed = layers - LAYERS_PER_BLOCK * t.blocks;
        let most = limits::LAYERS.value.saturating_sub(fixed) / LAYERS_PER_BLOCK;
        return Err(spec.above(
            "transformer.blocks",
            format!("{} blocks: {problem}; use at most {most} blocks", t.blocks),
        ));
    }
    match (t.pool, t.vocab) {
        (PoolKind::Causal, Some(v)) if v >= 2 => above(
            "transformer.vocab",
            limits::INT8_VOCAB.check("vocabulary", v),
        )?,
        (PoolKind::Causal, Some(v)) => {
            return Err(invalid(
                "transformer.vocab",
                &format!("must be at least 2, got {v}"),
            ))
        }
        (PoolKind::Causal, None) => {
            return Err(invalid(
                "transformer.vocab",
                "is required when pool = \"causal\"",
            ))
        }
        (_, Some(_)) => {
            return Err(invalid(
                "transformer.vocab",
                "is only for pool = \"causal\"",
            ))
        }
        (_, None) => {}
    }
    match (t.pad_to, t.crop_to) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "transformer.pad_to",
                "and transformer.crop_to cannot both be set",
            ))
        }
        (Some(0), _) => return Err(invalid("transformer.pad_to", "must be at least 1")),
        (_, Some(0)) => return Err(invalid("transformer.crop_to", "must be at least 1")),
        (Some(_), _) | (_, Some(_)) if t.pool == PoolKind::Causal => {
            return Err(invalid(
                if t.pad_to.is_some() {
                    "transformer.pad_to"
                } else {
                    "transformer.crop_to"
                },
                "is not read by a forecaster (its input is one value per token)",
            ))
        }
        _ => {}
    }
    if t.pool == PoolKind::Causal
        && !matches!(t.position, PositionKind::Relative | PositionKind::None)
    {
        return Err(invalid(
            "transformer.position",
            "must be \"relative\" or \"none\" for a causal model (its cache slides over a stream)",
        ));
    }
    match (t.pool, &spec.dataset, &spec.series) {
        (PoolKind::Causal, None, Some(s)) => {
            // The forecaster's window is its context.
            for (field, set) in [
                ("series.window", s.window.is_some()),
                ("series.test_stride", s.test_stride.is_some()),
                ("series.test_from", s.test_from.is_some()),
            ] {
                if set {
                    return Err(invalid(
                        field,
                        "is not read by a forecaster (its window is transformer.tokens)",
                    ));
                }
            }
        }
        (PoolKind::Causal, _, _) => {
            return Err(invalid(
                "[series]",
                "is required (and [dataset] not allowed) when pool = \"causal\"",
            ))
        }
        (_, Some(_), None) => {}
        _ => return Err(invalid(
            "[dataset]",
            "is required (and [series] not allowed) for a classifier (pool = \"mean\" or \"cls\")",
        )),
    }
    if !matches!(training.optimizer, OptimizerSpec::Adam { .. }) {
        return Err(invalid(
            "training.optimizer",
            "must be adam for transformers",
        ));
    }
    Ok(t)
}
