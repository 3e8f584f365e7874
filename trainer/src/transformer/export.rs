//! A transformer's f32 blob, and a classifier's data.
//!
//! A blob is `Tokens`, the token projection (`DenseF32` per row) or an
//! `Embedding`, an optional `ClassToken` and `AddTable` (sinusoidal
//! positions), per block `SaveSkip, LayerNorm, Attention, AddSkip, SaveSkip,
//! LayerNorm, Dense, GELU, Dense, AddSkip`, a final `LayerNorm`, then
//! `Pool` + dense head + softmax (classifiers) or a dense head per row
//! (causal forecaster). The int8 blob has the same layers
//! ([`crate::transformer::quantize`]).

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use runtime::format::{self, Activation, Position};

use crate::blob::{le_bytes, Blob, Layer};
use crate::dataset::{self, Dataset, Normalization};
use crate::limits;
use crate::spec::Spec;
use crate::transformer::model::{rope_table, sinusoidal_table, Config, Transformer, LN_EPS};
use crate::transformer::spec::{PoolKind, PositionKind, TransformerSpec};

impl PositionKind {
    /// The runtime's position mode of an attention layer (sinusoidal
    /// positions are a table added before the blocks instead).
    pub fn runtime(self) -> Position {
        match self {
            PositionKind::Relative => Position::RelativeBias,
            PositionKind::Rope => Position::Rope,
            PositionKind::Sinusoidal | PositionKind::None => Position::None,
        }
    }
}

impl Config {
    /// Output values of the blob: one row per token for a causal model.
    pub fn output_len(&self) -> usize {
        match self.pool {
            PoolKind::Causal => self.tokens * self.outputs,
            _ => self.outputs,
        }
    }
}

/// The f32 blob of a trained transformer.
pub fn f32_blob(t: &Transformer) -> Blob {
    let c = &t.config;
    let (dim, rows) = (c.dim as u32, c.rows());
    let norm = |(g, b): &(Vec<f32>, Vec<f32>)| Layer::LayerNormF32 {
        dim,
        eps: LN_EPS,
        params: le_bytes(&[g.as_slice(), b.as_slice()].concat()),
    };
    let mut layers = vec![Layer::Tokens {
        tokens: c.tokens as u32,
        causal: c.causal(),
    }];
    layers.push(match c.vocab {
        Some(vocab) => Layer::EmbeddingF32 {
            vocab: vocab as u32,
            dim,
            table: le_bytes(&t.input_weight),
        },
        None => Layer::dense_f32(c.token_width, c.dim, &t.input_weight, &t.input_bias),
    });
    if c.pool == PoolKind::Cls {
        layers.push(Layer::ClassToken(le_bytes(&t.class_token)));
    }
    if c.position == PositionKind::Sinusoidal {
        layers.push(Layer::AddTableF32(le_bytes(&sinusoidal_table(rows, c.dim))));
    }
    for b in &t.blocks {
        let position_table = match c.position {
            PositionKind::Relative => b.relative_bias.clone(),
            PositionKind::Rope => rope_table(rows, c.head_dim()),
            _ => Vec::new(),
        };
        let params = [
            b.qkv_weight.as_slice(),
            &b.qkv_bias,
            &b.out_weight,
            &b.out_bias,
            &position_table,
        ]
        .concat();
        layers.extend([
            Layer::SaveSkip(0),
            norm(&b.norm1),
            Layer::AttentionF32 {
                dim,
                heads: c.heads as u32,
                position: c.position.runtime(),
                params: le_bytes(&params),
            },
            Layer::AddSkipF32(0),
            Layer::SaveSkip(0),
            norm(&b.norm2),
            Layer::dense_f32(c.dim, c.ff, &b.ff1_weight, &b.ff1_bias),
            Layer::Activation(Activation::Gelu),
            Layer::dense_f32(c.ff, c.dim, &b.ff2_weight, &b.ff2_bias),
            Layer::AddSkipF32(0),
        ]);
    }
    layers.push(norm(&t.final_norm));
    match c.pool {
        PoolKind::Mean => layers.push(Layer::Pool(format::PoolKind::Mean)),
        PoolKind::Cls => layers.push(Layer::Pool(format::PoolKind::First)),
        PoolKind::Causal => {}
    }
    layers.push(Layer::dense_f32(
        c.dim,
        c.outputs,
        &t.head_weight,
        &t.head_bias,
    ));
    if c.pool != PoolKind::Causal {
        layers.push(Layer::Activation(Activation::Softmax));
    }
    Blob::f32(t.normalization.clone(), c.output_len(), layers)
}

/// A classifier's train and test rows and their normalization.
#[derive(Debug, Clone)]
pub struct ClassifierData {
    /// Training rows (each input row is cut into the tokens).
    pub train: Dataset,
    /// Test rows.
    pub test: Dataset,
    /// One offset and scale for the whole row (a CSV), or per channel
    /// repeated over the time steps (a `.ts` pair).
    pub normalization: Normalization,
}

/// Train and test rows of a classifier spec, with the normalization: every
/// input padded or cropped as `pad_to` / `crop_to` say, and checked to
/// split into the tokens.
pub fn classifier_data(spec: &Spec<TransformerSpec>) -> Result<ClassifierData> {
    let d = spec.dataset()?;
    let path = spec.dir.join(&d.path);
    let t = &spec.family;
    let resize = t.resize();
    let in_file = |path: &Path, e: anyhow::Error| anyhow!("{}: {e}", path.display());
    if d.is_sequences() {
        let (mut train_set, mut test_set) = dataset::load_sequences(d, &spec.dir)?;
        if let Some(resize) = resize {
            let test_path = spec.dir.join(d.test_path.as_deref().unwrap_or(&d.path));
            train_set = train_set.resized(resize).map_err(|e| in_file(&path, e))?;
            test_set = test_set
                .resized(resize)
                .map_err(|e| in_file(&test_path, e))?;
        }
        let channel = Normalization::per_channel(&train_set);
        let (train, test) = (train_set.to_rows()?, test_set.to_rows()?);
        check_widths(&path, &train)?;
        if train.feature_count != test.feature_count {
            bail!("the train and test series differ in length");
        }
        let steps = train.feature_count / train_set.channels.max(1);
        check_tokens(&path, t, steps, train_set.channels, "time steps")?;
        return Ok(ClassifierData {
            train,
            test,
            normalization: channel.repeated(steps),
        });
    }
    let (mut train, mut test) = dataset::load_split(d, &spec.dir)?;
    if let Some(resize) = resize {
        train = train.resized(resize).map_err(|e| in_file(&path, e))?;
        test = test.resized(resize).map_err(|e| in_file(&path, e))?;
    }
    check_tokens(&path, t, train.feature_count, 1, "values")?;
    let normalization = Normalization::global(&train.features, train.feature_count);
    Ok(ClassifierData {
        train,
        test,
        normalization,
    })
}

/// An input of `steps` time steps of `width` values must split into the
/// tokens; if not, the error names the two options that make it, with the
/// nearest lengths that work.
fn check_tokens(
    path: &Path,
    t: &TransformerSpec,
    steps: usize,
    width: usize,
    unit: &str,
) -> Result<()> {
    let splits = |s: usize| (s * width).is_multiple_of(t.tokens);
    if splits(steps) {
        return Ok(());
    }
    let longer = (steps + 1..).find(|&s| splits(s)).unwrap_or(steps);
    let shorter = (1..steps).rev().find(|&s| splits(s));
    let crop = shorter.map_or(String::new(), |s| {
        format!(", or transformer.crop_to = {s} to keep its first {s}")
    });
    let shape = match width {
        1 => String::new(),
        _ => format!(" ({steps} {unit} x {width} channels)"),
    };
    bail!(
        "{}: the input has {} values{shape}, which do not split into {} equal tokens: set transformer.pad_to = {longer} to pad it to {longer} {unit} (repeating its last){crop}",
        path.display(),
        steps * width,
        t.tokens,
    )
}

/// A classifier's data-given widths against the runtime's limit: the
/// input row (every token's values) and the classes.
fn check_widths(path: &Path, rows: &Dataset) -> Result<()> {
    limits::check_data(
        path,
        &[
            ("input width", rows.feature_count),
            ("class count", rows.class_count()),
        ],
    )
}
