//! The `kind = "seq2seq"` spec: which data, which encoder-decoder, how to
//! train it.
//!
//! ```toml
//! name = "ucr-seq2seq"
//! kind = "seq2seq"
//! [series]                    # a univariate series (train_stride must stay 1) ...
//! train = "normal_TRAIN.csv"
//! test = "with_anomaly_TEST.csv"
//! # [dataset]                 # ... or a .ts pair: windows are cut from every sequence
//! # path = "X_TRAIN.ts"
//! # test_path = "X_TEST.ts"
//! [seq2seq]
//! encoder = ["gru 32"]        # rnn N / lstm N / gru N, stackable; the decoder is one
//!                             # cell of the last one's kind and width
//! attention = 32              # width of the attentional state a = tanh(W_c [ctx; h] + b_c)
//! window = 64                 # encoder steps (1..=256)
//! horizon = 16                # decoder steps (1..=256)
//! predict = [0]               # channels predicted and fed back (default [0])
//! train_stride = 1            # step between training windows (default 1)
//! test_stride = 16            # step between test windows (default: horizon)
//! teacher_forcing = { start = 1.0, end = 0.0 }  # share of decoder steps fed the
//!                             # truth, first to last batch (default 1.0 throughout)
//! baseline_forecaster = "../exported/ucr-forecaster/f32.bin"  # optional: a causal
//!                             # one-step blob of the same series, rolled out as a baseline
//! [training]                  # as for every candle family (adam only)
//! optimizer = { kind = "adam", learning_rate = 0.003 }
//! epochs = 40
//! batch_size = 32
//! seed = 1
//! [quantization]              # optional
//! calibration_samples = 256   # training windows the int8 ranges are measured on
//! ```
//!
//! Every value the spec alone decides is checked here, before any data is
//! read (one-line errors naming the file and the key); what the data
//! decides (a `predict` channel past the input, a window and horizon longer
//! than the series) is checked when the data is loaded.

use std::path::PathBuf;

use runtime::format::Cell;
use serde::Deserialize;

use crate::dense::spec::{parse_layer, LayerSpec};
use crate::limits;
use crate::spec::{OptimizerSpec, Spec, SpecError, Tables};

/// The `[seq2seq]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seq2SeqTable {
    encoder: Vec<String>,
    attention: usize,
    window: usize,
    horizon: usize,
    #[serde(default = "first_channel")]
    predict: Vec<usize>,
    #[serde(default = "one")]
    train_stride: usize,
    #[serde(default)]
    test_stride: Option<usize>,
    #[serde(default)]
    teacher_forcing: TeacherForcing,
    #[serde(default)]
    baseline_forecaster: Option<PathBuf>,
}

fn first_channel() -> Vec<usize> {
    vec![0]
}

fn one() -> usize {
    1
}

/// Teacher forcing with scheduled sampling: the share of decoder steps fed
/// the true previous value (the rest are fed the model's own prediction),
/// moving linearly from `start` at the first batch to `end` at the last.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherForcing {
    /// Share at the first batch, in `[0, 1]`.
    #[serde(default = "all")]
    pub start: f64,
    /// Share at the last batch, in `[0, 1]` (default: `start`).
    #[serde(default)]
    pub end: Option<f64>,
}

fn all() -> f64 {
    1.0
}

impl Default for TeacherForcing {
    fn default() -> Self {
        TeacherForcing {
            start: 1.0,
            end: None,
        }
    }
}

impl TeacherForcing {
    /// The share after `progress` (0 at the first batch, 1 at the last) of the run.
    pub fn at(&self, progress: f64) -> f64 {
        let end = self.end.unwrap_or(self.start);
        self.start + (end - self.start) * progress.clamp(0.0, 1.0)
    }
}

/// The seq2seq family's part of a spec, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Seq2SeqSpec {
    /// `(cell, hidden units)` of each encoder layer, first to last.
    pub encoder: Vec<(Cell, usize)>,
    /// Width of the attentional state.
    pub attention: usize,
    /// Encoder steps.
    pub window: usize,
    /// Decoder steps.
    pub horizon: usize,
    /// Channels predicted (and fed back), one decoder output each.
    pub predict: Vec<usize>,
    /// Step between training windows.
    pub train_stride: usize,
    /// Step between test windows.
    pub test_stride: usize,
    /// Teacher forcing over the run.
    pub teacher_forcing: TeacherForcing,
    /// A causal one-step forecaster blob to roll out as a baseline,
    /// resolved against the spec's folder.
    pub baseline_forecaster: Option<PathBuf>,
}

impl Seq2SeqSpec {
    /// The decoder's cell kind and width: the encoder's last layer's.
    pub fn top(&self) -> (Cell, usize) {
        // Never empty: `parse` refuses an empty encoder.
        self.encoder.last().copied().unwrap_or((Cell::Gru, 1))
    }
}

/// Parse and check the `[seq2seq]` table and which data it reads.
pub fn parse(spec: &Spec, tables: &mut Tables) -> Result<Seq2SeqSpec, SpecError> {
    let training = spec.training()?;
    if !matches!(training.optimizer, OptimizerSpec::Adam { .. }) {
        return Err(spec.invalid("training.optimizer", "must be adam for seq2seq models"));
    }
    let t: Seq2SeqTable = tables.require("seq2seq")?;
    let invalid = |field: &str, problem: String| spec.invalid(field, problem);
    let above = |field: &str, check: Result<(), String>| check.map_err(|p| spec.above(field, p));
    if t.encoder.is_empty() {
        return Err(invalid(
            "seq2seq.encoder",
            "needs at least one recurrent layer (rnn N, lstm N or gru N)".into(),
        ));
    }
    let mut encoder = Vec::with_capacity(t.encoder.len());
    for (i, text) in t.encoder.iter().enumerate() {
        match parse_layer(&spec.file, i + 1, text)? {
            LayerSpec::Recurrent { cell, units } => encoder.push((cell, units)),
            other => {
                return Err(invalid(
                    "seq2seq.encoder",
                    format!(
                        "layer {} `{other}` is not a recurrent layer (rnn N, lstm N or gru N)",
                        i + 1
                    ),
                ))
            }
        }
    }
    // The encoder's layers and the decoder.
    above(
        "seq2seq.encoder",
        limits::LAYERS.check("layer count (encoder + decoder)", encoder.len() + 1),
    )?;
    if t.attention == 0 {
        return Err(invalid("seq2seq.attention", "must be at least 1".into()));
    }
    above(
        "seq2seq.attention",
        limits::WIDTH.check("width", t.attention),
    )?;
    for (field, steps) in [("seq2seq.window", t.window), ("seq2seq.horizon", t.horizon)] {
        if steps == 0 {
            return Err(invalid(field, "must be at least 1".into()));
        }
        above(field, limits::TOKENS.check("steps", steps))?;
    }
    if t.predict.is_empty() {
        return Err(invalid(
            "seq2seq.predict",
            "needs at least one channel".into(),
        ));
    }
    if let Some(c) = t
        .predict
        .iter()
        .enumerate()
        .find_map(|(i, c)| t.predict[..i].contains(c).then_some(c))
    {
        return Err(invalid(
            "seq2seq.predict",
            format!("names channel {c} twice"),
        ));
    }
    above(
        "seq2seq.predict",
        limits::WIDTH.check("output width", t.predict.len()),
    )?;
    if t.train_stride == 0 {
        return Err(invalid("seq2seq.train_stride", "must be at least 1".into()));
    }
    let test_stride = t.test_stride.unwrap_or(t.horizon);
    if test_stride == 0 {
        return Err(invalid("seq2seq.test_stride", "must be at least 1".into()));
    }
    let tf = t.teacher_forcing;
    for (field, share) in [
        ("seq2seq.teacher_forcing.start", Some(tf.start)),
        ("seq2seq.teacher_forcing.end", tf.end),
    ] {
        if share.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
            return Err(invalid(field, "must be between 0 and 1".into()));
        }
    }
    match (&spec.dataset, &spec.series) {
        (Some(d), None) if d.is_sequences() => {}
        (Some(_), None) => {
            return Err(invalid(
                "dataset.path",
                "must be a .ts file (multichannel sequences) for a seq2seq model".into(),
            ))
        }
        (None, Some(s)) => {
            for (field, set) in [
                ("series.window", s.window.is_some()),
                ("series.test_stride", s.test_stride.is_some()),
                ("series.test_from", s.test_from.is_some()),
                ("series.train_stride", s.train_stride != 1),
            ] {
                if set {
                    return Err(invalid(
                        field,
                        "is not read by a seq2seq model (its windows are set in [seq2seq])".into(),
                    ));
                }
            }
        }
        _ => {
            return Err(invalid(
                "[series]",
                "or [dataset] is required, not both".into(),
            ))
        }
    }
    Ok(Seq2SeqSpec {
        encoder,
        attention: t.attention,
        window: t.window,
        horizon: t.horizon,
        predict: t.predict,
        train_stride: t.train_stride,
        test_stride,
        teacher_forcing: tf,
        baseline_forecaster: t.baseline_forecaster.map(|p| spec.dir.join(p)),
    })
}
