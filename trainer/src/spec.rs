//! Model specs: a TOML file naming the model, its data, how to train and
//! quantize it, and the family's own tables.
//!
//! ```toml
//! name = "digits-mlp"      # letters, digits, '-', '_', '.'; names the output folder
//! kind = "mlp"             # which family reads the rest; see below
//! [dataset]                # or [series]: the data (crate::dataset)
//! path = "../datasets/digits/digits.csv.gz"
//! [training]               # candle families; every key (and the table) has a default
//! optimizer = { kind = "adam", learning_rate = 0.003 }   # or { kind = "sgd", learning_rate = 0.1, momentum = 0.9 }
//! epochs = 200             # the most; early stopping usually ends sooner
//! batch_size = 16
//! seed = 1                 # default 0
//! validation_fraction = 0.2  # held out of the training data; 0: none
//! patience = 20            # early stopping on the validation loss; 0: never
//! restore_best = true      # keep the best validation epoch's weights
//! schedule = "plateau"     # "constant" | "cosine" | "plateau" | { kind = "plateau", factor = 0.5, patience = 5 }
//! clip_grad_norm = 1.0     # global gradient norm limit; 0: off
//! weight_decay = 0.0       # decoupled (AdamW)
//! [quantization]           # optional, families with an int8 blob
//! calibration_samples = 512
//! [model]                  # the family's own tables ([model], [transformer], [kmeans], ...)
//! layers = ["dense 32", "relu", "dense 10", "softmax"]
//! ```
//!
//! ## Contract
//! A spec is read and parsed once ([`read`], [`parse`]): the tables every
//! family shares are typed and validated here ([`Spec`]), `kind` is read
//! here and nowhere else, and the family that registered the kind parses
//! its own tables from the rest ([`Tables`]), checking them against the
//! runtime's limits before any data is read. A spec without `kind` predates
//! kinds: it is `"recurrent"` when a layer of `[model]` is a recurrent cell,
//! else `"mlp"`.
//!
//! Every rejection is one [`SpecError`] line starting with the spec's path.
//! Unknown keys are errors (a typo must not silently fall back to a default).

use std::path::{Path, PathBuf};

use runtime::format::Cell;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::dataset::{DatasetSpec, SeriesSpec};

/// A parsed spec: the tables every family shares, and the family's own
/// part `F` (`()` before the family has parsed it).
#[derive(Debug, Clone, PartialEq)]
pub struct Spec<F = ()> {
    /// Model name; safe to use as a folder name.
    pub name: String,
    /// The family kind (see the module docs for a spec without one).
    pub kind: String,
    /// The spec file.
    pub file: PathBuf,
    /// Folder of the spec file; relative paths in the spec start here.
    pub dir: PathBuf,
    /// `[dataset]`: labelled rows or sequences.
    pub dataset: Option<DatasetSpec>,
    /// `[series]`: a series with a labelled anomaly.
    pub series: Option<SeriesSpec>,
    /// `[training]`: optimizer and schedule of candle families.
    pub training: Option<TrainingSpec>,
    /// `[quantization]`: int8 calibration (defaults when absent).
    pub quantization: QuantizationSpec,
    /// The family's own tables.
    pub family: F,
}

/// The `[training]` table: the shared loop's settings ([`crate::train`]).
/// Every field has a default, and so has the table: a spec with only its
/// data and its layers trains with the recipe below, chosen to work on data
/// nobody tuned for (a validation split, early stopping with restore of the
/// best epoch, a rate halved on plateaus, clipped gradients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    /// Optimizer and its settings (default Adam at 0.003).
    #[serde(default = "default_optimizer")]
    pub optimizer: OptimizerSpec,
    /// Most passes over the training set (default 200); early stopping
    /// usually ends sooner. At least 1.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Examples per gradient step (default 16); at least 1.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Seed for weight init, the validation split and batch shuffling.
    #[serde(default)]
    pub seed: u64,
    /// Share of the training examples held out (per class for classifiers)
    /// to watch generalisation: early stopping, the restored epoch and the
    /// plateau schedule read its loss. In [0, 0.5]; 0 trains on all of
    /// them for every epoch, keeping the last (default 0.2).
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// Stop after this many epochs without a lower validation loss
    /// (default 20); 0 never stops early.
    #[serde(default = "default_patience")]
    pub patience: usize,
    /// Keep the weights of the epoch with the lowest validation loss rather
    /// than the last epoch's (default true).
    #[serde(default = "yes")]
    pub restore_best: bool,
    /// The learning rate over the run (default: halved on plateaus).
    #[serde(default)]
    pub schedule: Schedule,
    /// Scale each step's gradients down to at most this global L2 norm
    /// (default 1.0); 0 turns clipping off.
    #[serde(default = "default_clip_grad_norm")]
    pub clip_grad_norm: f64,
    /// Weight decay per step, times the learning rate (decoupled, AdamW; an
    /// L2 term for SGD); default 0.
    #[serde(default)]
    pub weight_decay: f64,
}

impl Default for TrainingSpec {
    fn default() -> Self {
        TrainingSpec {
            optimizer: default_optimizer(),
            epochs: default_epochs(),
            batch_size: default_batch_size(),
            seed: 0,
            validation_fraction: default_validation_fraction(),
            patience: default_patience(),
            restore_best: true,
            schedule: Schedule::default(),
            clip_grad_norm: default_clip_grad_norm(),
            weight_decay: 0.0,
        }
    }
}

fn default_optimizer() -> OptimizerSpec {
    OptimizerSpec::Adam {
        learning_rate: 0.003,
    }
}

fn default_epochs() -> usize {
    200
}

fn default_batch_size() -> usize {
    16
}

fn default_validation_fraction() -> f64 {
    0.2
}

fn default_patience() -> usize {
    20
}

fn yes() -> bool {
    true
}

fn default_clip_grad_norm() -> f64 {
    1.0
}

/// How the learning rate moves over a run: `schedule = "constant"`,
/// `"cosine"`, `"plateau"` (each with its defaults), or a table naming the
/// kind and its settings, `{ kind = "cosine", floor = 0.1 }`,
/// `{ kind = "plateau", factor = 0.5, patience = 5 }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Schedule {
    /// The optimizer's rate throughout.
    Constant,
    /// A cosine from the optimizer's rate down to `floor` times it over all
    /// `epochs`, set before every step.
    Cosine {
        /// The last step's share of the rate, in [0, 1] (default 0.1).
        floor: f64,
    },
    /// The rate times `factor` whenever the monitored loss (validation,
    /// else training) has not improved for `patience` epochs, down to a
    /// thousandth of the optimizer's rate (Keras' `ReduceLROnPlateau`).
    Plateau {
        /// In (0, 1) (default 0.5).
        factor: f64,
        /// Epochs without improvement before a cut; at least 1 (default 5).
        patience: usize,
    },
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::plateau()
    }
}

impl Schedule {
    /// Cosine with its default floor.
    pub const fn cosine() -> Self {
        Schedule::Cosine { floor: 0.1 }
    }

    /// Plateau with its default factor and patience.
    pub const fn plateau() -> Self {
        Schedule::Plateau {
            factor: 0.5,
            patience: 5,
        }
    }
}

/// The table form of [`Schedule`], each setting defaulted.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum ScheduleTable {
    Constant,
    Cosine {
        #[serde(default = "default_floor")]
        floor: f64,
    },
    Plateau {
        #[serde(default = "default_factor")]
        factor: f64,
        #[serde(default = "default_plateau_patience")]
        patience: usize,
    },
}

fn default_floor() -> f64 {
    0.1
}

fn default_factor() -> f64 {
    0.5
}

fn default_plateau_patience() -> usize {
    5
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScheduleVisitor;

        impl<'de> serde::de::Visitor<'de> for ScheduleVisitor {
            type Value = Schedule;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#""constant", "cosine", "plateau" or a table with `kind`"#)
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Schedule, E> {
                match v {
                    "constant" => Ok(Schedule::Constant),
                    "cosine" => Ok(Schedule::cosine()),
                    "plateau" => Ok(Schedule::plateau()),
                    other => Err(E::unknown_variant(
                        other,
                        &["constant", "cosine", "plateau"],
                    )),
                }
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Schedule, A::Error> {
                let table =
                    ScheduleTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(match table {
                    ScheduleTable::Constant => Schedule::Constant,
                    ScheduleTable::Cosine { floor } => Schedule::Cosine { floor },
                    ScheduleTable::Plateau { factor, patience } => {
                        Schedule::Plateau { factor, patience }
                    }
                })
            }
        }

        d.deserialize_any(ScheduleVisitor)
    }
}

/// `optimizer = { kind = "adam", ... }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerSpec {
    /// Adam.
    Adam { learning_rate: f64 },
    /// Stochastic gradient descent with optional momentum (default 0).
    Sgd {
        learning_rate: f64,
        #[serde(default)]
        momentum: f64,
    },
}

/// The optional `[quantization]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizationSpec {
    /// Training rows (or series, windows) used to measure activation ranges; at least 1.
    #[serde(default = "default_calibration_samples")]
    pub calibration_samples: usize,
}

fn default_calibration_samples() -> usize {
    512
}

impl Default for QuantizationSpec {
    fn default() -> Self {
        QuantizationSpec {
            calibration_samples: default_calibration_samples(),
        }
    }
}

/// Why a spec was rejected. Each message is a single line starting with the
/// spec's path.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The spec file does not exist.
    #[error("spec not found: {}", path.display())]
    NotFound { path: PathBuf },
    /// Any other I/O failure.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not valid TOML, a missing or unknown key, or a value of the wrong type.
    #[error("{}: {}{message}", path.display(), line.map_or(String::new(), |l| format!("line {l}: ")))]
    Syntax {
        path: PathBuf,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        message: String,
    },
    /// A `kind` no family reads.
    #[error("{}: unknown kind {kind:?} (known: {})", path.display(), known.join(", "))]
    UnknownKind {
        path: PathBuf,
        kind: String,
        known: Vec<&'static str>,
    },
    /// A layer keyword that is not known.
    #[error("{}: layer {index}: unknown layer {keyword:?} (known: {known})", path.display())]
    UnknownLayer {
        path: PathBuf,
        index: usize,
        keyword: String,
        known: &'static str,
    },
    /// A known layer with wrong arguments, such as `dense 0`.
    #[error("{}: layer {index}: {text:?}: {problem}", path.display())]
    BadLayerArguments {
        path: PathBuf,
        index: usize,
        text: String,
        problem: String,
    },
    /// `add N` without an earlier `save N`.
    #[error("{}: layer {index}: \"add {slot}\" has no earlier \"save {slot}\"", path.display())]
    AddWithoutSave {
        path: PathBuf,
        index: usize,
        slot: u8,
    },
    /// `add N` joins tensors of different widths.
    #[error("{}: layer {index}: \"add {slot}\" adds width {width} to width {saved_width} saved at layer {saved_at}", path.display())]
    AddWidthMismatch {
        path: PathBuf,
        index: usize,
        slot: u8,
        width: usize,
        saved_width: usize,
        saved_at: usize,
    },
    /// The model has no dense layer, so nothing to train.
    #[error("{}: model.layers has no dense layer", path.display())]
    NoDenseLayer { path: PathBuf },
    /// A value out of its allowed range.
    #[error("{}: {field} {problem}", path.display())]
    InvalidValue {
        path: PathBuf,
        field: String,
        problem: String,
    },
    /// Something the runtime would refuse, such as a width above its limit
    /// (see [`crate::limits`]); `field` names the layer or key.
    #[error("{}: {field}: {problem}", path.display())]
    AboveLimit {
        path: PathBuf,
        field: String,
        problem: String,
    },
}

/// The file as written: the shared tables typed (so their errors have line
/// numbers), the family's tables kept aside.
#[derive(Deserialize)]
struct SpecFile {
    name: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    dataset: Option<DatasetSpec>,
    #[serde(default)]
    series: Option<SeriesSpec>,
    #[serde(default)]
    training: Option<TrainingSpec>,
    #[serde(default)]
    quantization: Option<QuantizationSpec>,
    #[serde(flatten)]
    rest: toml::Table,
}

/// The tables of a spec that are the family's own, for its parser to take
/// one by one; a table nobody takes is an unknown key.
#[derive(Debug)]
pub struct Tables {
    path: PathBuf,
    text: String,
    rest: toml::Table,
    /// Shared tables present in the file.
    shared: Vec<&'static str>,
}

impl Tables {
    /// Take table (or key) `name` as a `T`, if the spec has it.
    pub fn take<T: DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>, SpecError> {
        let Some(value) = self.rest.remove(name) else {
            return Ok(None);
        };
        value.try_into().map(Some).map_err(|e: toml::de::Error| {
            self.syntax(Some(name), format!("{name}: {}", one_line(e.message())))
        })
    }

    /// [`Tables::take`] of a table the family cannot do without.
    pub fn require<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, SpecError> {
        self.take(name)?
            .ok_or_else(|| self.syntax(None, format!("missing field `{name}`")))
    }

    /// Refuse the shared tables among `names` that this family does not read.
    pub fn unused(&self, names: &[&str]) -> Result<(), SpecError> {
        match names.iter().find(|n| self.shared.contains(n)) {
            Some(name) => Err(self.syntax(Some(name), format!("unknown field `{name}`"))),
            None => Ok(()),
        }
    }

    /// Whether the spec has table `name` that nobody took yet.
    pub fn has(&self, name: &str) -> bool {
        self.rest.contains_key(name)
    }

    /// After the family's parser: anything left is unknown.
    pub fn finish(self) -> Result<(), SpecError> {
        match self.rest.keys().next() {
            Some(key) => Err(self.syntax(Some(key), format!("unknown field `{key}`"))),
            None => Ok(()),
        }
    }

    /// A syntax error, at the line that starts key or table `key` if any.
    fn syntax(&self, key: Option<&str>, message: String) -> SpecError {
        SpecError::Syntax {
            path: self.path.clone(),
            line: key.and_then(|k| line_of_key(&self.text, k)),
            message,
        }
    }
}

/// Read, parse and validate the shared part of a spec file.
pub fn read(path: &Path) -> Result<(Spec, Tables), SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SpecError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            SpecError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    parse(&text, path)
}

/// Parse and validate the shared part of spec text; `path` names the file
/// in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<(Spec, Tables), SpecError> {
    let file: SpecFile = toml::from_str(text).map_err(|e| syntax_error(path, text, &e))?;
    let invalid = |field: &str, problem: String| SpecError::InvalidValue {
        path: path.to_path_buf(),
        field: field.to_string(),
        problem,
    };
    if file.name.is_empty()
        || file.name.starts_with('.')
        || !file
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        // The name becomes an output folder, so no separators or hidden names.
        return Err(invalid(
            "name",
            format!("{:?} must be non-empty ASCII letters, digits, '-', '_' or '.', not starting with '.'", file.name),
        ));
    }
    if let Some(dataset) = &file.dataset {
        let fraction = dataset.test_fraction;
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(invalid(
                "dataset.test_fraction",
                format!("must be between 0 and 1 (exclusive), got {fraction}"),
            ));
        }
        dataset
            .delimiter_byte()
            .map_err(|problem| invalid("dataset.delimiter", problem))?;
    }
    if let Some(series) = &file.series {
        if series.train_stride == 0 {
            return Err(invalid("series.train_stride", "must be at least 1".into()));
        }
    }
    if let Some(training) = &file.training {
        check_training(training).map_err(|(field, problem)| invalid(field, problem))?;
    }
    if let Some(q) = &file.quantization {
        if q.calibration_samples == 0 {
            return Err(invalid(
                "quantization.calibration_samples",
                "must be at least 1".into(),
            ));
        }
    }
    let kind = file.kind.clone().unwrap_or_else(|| legacy_kind(&file.rest));
    let present = [
        ("dataset", file.dataset.is_some()),
        ("series", file.series.is_some()),
        ("training", file.training.is_some()),
        ("quantization", file.quantization.is_some()),
    ];
    let tables = Tables {
        path: path.to_path_buf(),
        text: text.to_string(),
        shared: present.iter().filter(|p| p.1).map(|p| p.0).collect(),
        rest: file.rest,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let spec = Spec {
        name: file.name,
        kind,
        file: path.to_path_buf(),
        dir,
        dataset: file.dataset,
        series: file.series,
        training: file.training,
        quantization: file.quantization.unwrap_or_default(),
        family: (),
    };
    Ok((spec, tables))
}

/// `(field, problem)` of the first invalid `[training]` value.
fn check_training(t: &TrainingSpec) -> Result<(), (&'static str, String)> {
    if t.epochs == 0 {
        return Err(("training.epochs", "must be at least 1".into()));
    }
    if t.batch_size == 0 {
        return Err(("training.batch_size", "must be at least 1".into()));
    }
    let (learning_rate, momentum) = match t.optimizer {
        OptimizerSpec::Adam { learning_rate } => (learning_rate, 0.0),
        OptimizerSpec::Sgd {
            learning_rate,
            momentum,
        } => (learning_rate, momentum),
    };
    if !(learning_rate > 0.0 && learning_rate.is_finite()) {
        return Err((
            "training.optimizer.learning_rate",
            format!("must be a positive number, got {learning_rate}"),
        ));
    }
    if !(0.0..1.0).contains(&momentum) {
        return Err((
            "training.optimizer.momentum",
            format!("must be in [0, 1), got {momentum}"),
        ));
    }
    if !(0.0..=0.5).contains(&t.validation_fraction) {
        return Err((
            "training.validation_fraction",
            format!(
                "must be in [0, 0.5] (0: no validation split), got {}",
                t.validation_fraction
            ),
        ));
    }
    if !(t.clip_grad_norm >= 0.0 && t.clip_grad_norm.is_finite()) {
        return Err((
            "training.clip_grad_norm",
            format!(
                "must be a positive number (0: no clipping), got {}",
                t.clip_grad_norm
            ),
        ));
    }
    if !(0.0..1.0).contains(&t.weight_decay) {
        return Err((
            "training.weight_decay",
            format!(
                "must be in [0, 1) (a share of the weights per step, times the rate), got {}",
                t.weight_decay
            ),
        ));
    }
    match t.schedule {
        Schedule::Constant => {}
        Schedule::Cosine { floor } if !(0.0..=1.0).contains(&floor) => {
            return Err((
                "training.schedule.floor",
                format!("must be in [0, 1] (the last step's share of the rate), got {floor}"),
            ));
        }
        Schedule::Cosine { .. } => {}
        Schedule::Plateau { factor, .. } if !(factor > 0.0 && factor < 1.0) => {
            return Err((
                "training.schedule.factor",
                format!("must be in (0, 1) (the rate is multiplied by it), got {factor}"),
            ));
        }
        Schedule::Plateau { patience: 0, .. } => {
            return Err((
                "training.schedule.patience",
                "must be at least 1 epoch".into(),
            ));
        }
        Schedule::Plateau { .. } => {}
    }
    Ok(())
}

/// The kind of a spec written before kinds: recurrent when a `[model]`
/// layer is a cell (`rnn 8`, `lstm 8`, `gru 8`), else an MLP.
fn legacy_kind(rest: &toml::Table) -> String {
    let cells = [Cell::Rnn, Cell::Lstm, Cell::Gru].map(Cell::name);
    let layers = rest
        .get("model")
        .and_then(|m| m.get("layers"))
        .and_then(toml::Value::as_array);
    let recurrent = layers.is_some_and(|layers| {
        layers.iter().filter_map(toml::Value::as_str).any(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| cells.contains(&w))
        })
    });
    if recurrent { "recurrent" } else { "mlp" }.to_string()
}

impl<F> Spec<F> {
    /// This spec with the family's part.
    pub fn with<G>(self, family: G) -> Spec<G> {
        Spec {
            name: self.name,
            kind: self.kind,
            file: self.file,
            dir: self.dir,
            dataset: self.dataset,
            series: self.series,
            training: self.training,
            quantization: self.quantization,
            family,
        }
    }

    /// The `[dataset]` table (an error names it when the spec has none).
    pub fn dataset(&self) -> Result<&DatasetSpec, SpecError> {
        self.dataset.as_ref().ok_or_else(|| self.missing("dataset"))
    }

    /// The `[series]` table.
    pub fn series(&self) -> Result<&SeriesSpec, SpecError> {
        self.series.as_ref().ok_or_else(|| self.missing("series"))
    }

    /// The `[training]` table, or its defaults when the spec has none.
    pub fn training(&self) -> Result<&TrainingSpec, SpecError> {
        static DEFAULT: std::sync::LazyLock<TrainingSpec> =
            std::sync::LazyLock::new(TrainingSpec::default);
        Ok(self.training.as_ref().unwrap_or(&DEFAULT))
    }

    /// The data files the export depends on: the dataset (and its test
    /// file) or the series, resolved against the spec's folder.
    pub fn data_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Some(d) = &self.dataset {
            files.push(self.dir.join(&d.path));
            files.extend(d.test_path.iter().map(|t| self.dir.join(t)));
        }
        if let Some(s) = &self.series {
            files.push(self.dir.join(&s.train));
            files.push(self.dir.join(&s.test));
        }
        files
    }

    /// A value error about `field` of this spec.
    pub fn invalid(&self, field: &str, problem: impl Into<String>) -> SpecError {
        SpecError::InvalidValue {
            path: self.file.clone(),
            field: field.to_string(),
            problem: problem.into(),
        }
    }

    /// `field` above one of the runtime's limits (`problem` from
    /// [`crate::limits::Limit::check`]).
    pub fn above(&self, field: &str, problem: String) -> SpecError {
        SpecError::AboveLimit {
            path: self.file.clone(),
            field: field.to_string(),
            problem,
        }
    }

    fn missing(&self, table: &str) -> SpecError {
        SpecError::Syntax {
            path: self.file.clone(),
            line: None,
            message: format!("missing field `{table}`"),
        }
    }
}

/// One line from a TOML error: its message and the line it points at (toml's
/// own Display is a multi-line snippet).
fn syntax_error(path: &Path, text: &str, error: &toml::de::Error) -> SpecError {
    let line = error.span().map_or(1, |span| {
        text[..span.start.min(text.len())].matches('\n').count() + 1
    });
    SpecError::Syntax {
        path: path.to_path_buf(),
        line: Some(line),
        message: one_line(error.message()),
    }
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The 1-based line where top-level key `key` (`key = ...`, before the
/// first table) or table `[key]` starts.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let mut top_level = true;
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            if let Some(table) = line.strip_prefix('[') {
                top_level = false;
                let name = table.trim_start_matches('[').trim_start();
                return name
                    .strip_prefix(key)
                    .is_some_and(|t| t.trim_start().starts_with([']', '.']));
            }
            top_level
                && line
                    .strip_prefix(key)
                    .is_some_and(|t| t.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

impl OptimizerSpec {
    /// The (peak) learning rate.
    pub fn learning_rate(&self) -> f64 {
        match *self {
            OptimizerSpec::Adam { learning_rate } | OptimizerSpec::Sgd { learning_rate, .. } => {
                learning_rate
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod fixture {
    /// A good MLP spec, as `specs/test.toml`.
    pub(crate) const GOOD: &str = r#"
name = "digits-mlp"
[dataset]
path = "../datasets/digits/digits.csv.gz"
label_column = "last"
test_fraction = 0.2
seed = 7
[model]
layers = ["dense 32", "relu", "save 0", "dense 32", "relu", "dense 32", "add 0", "relu", "dense 10", "softmax"]
[training]
optimizer = { kind = "adam", learning_rate = 0.003 }
epochs = 60
batch_size = 32
seed = 1
"#;

    /// GOOD with one line replaced.
    pub(crate) fn with(old: &str, new: &str) -> String {
        assert!(GOOD.contains(old), "{old}");
        GOOD.replacen(old, new, 1)
    }

    /// The message of a rejected spec, checked to be one line naming the file.
    pub(crate) fn one_line_error<T: std::fmt::Debug, E: std::fmt::Display>(
        result: Result<T, E>,
    ) -> String {
        let message = result.unwrap_err().to_string();
        assert!(!message.contains('\n'), "error must be one line: {message}");
        assert!(
            message.starts_with("specs/test.toml"),
            "error must name the file: {message}"
        );
        message
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{one_line_error, with, GOOD};
    use super::*;

    fn parse_good(text: &str) -> Result<(Spec, Tables), SpecError> {
        parse(text, Path::new("specs/test.toml"))
    }

    fn error_of(text: &str) -> String {
        one_line_error(parse_good(text))
    }

    #[test]
    fn shared_tables_parse() {
        let (spec, tables) = parse_good(GOOD).unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.kind.as_str()),
            ("digits-mlp", "mlp")
        );
        assert_eq!(spec.dir, Path::new("specs"));
        assert_eq!(
            spec.data_files(),
            [Path::new("specs/../datasets/digits/digits.csv.gz")]
        );
        let dataset = spec.dataset().unwrap();
        assert_eq!((dataset.test_fraction, dataset.seed), (0.2, 7));
        let training = spec.training().unwrap();
        assert_eq!(
            training.optimizer,
            OptimizerSpec::Adam {
                learning_rate: 0.003
            }
        );
        assert_eq!(
            (training.epochs, training.batch_size, training.seed),
            (60, 32, 1)
        );
        assert_eq!(spec.quantization.calibration_samples, 512);
        assert!(tables.has("model"));
        assert!(tables.unused(&["training"]).is_err());
        assert!(tables.unused(&["series"]).is_ok());
    }

    #[test]
    fn kind_is_read_once_and_inferred_for_old_specs() {
        let kind = |text: &str| parse_good(text).unwrap().0.kind;
        assert_eq!(kind(GOOD), "mlp");
        assert_eq!(
            kind(&with(
                r#""dense 32", "relu", "save 0""#,
                r#""lstm 8", "relu", "save 0""#
            )),
            "recurrent"
        );
        assert_eq!(
            kind(&with(
                "name = \"digits-mlp\"",
                "name = \"x\"\nkind = \"pca\""
            )),
            "pca"
        );
        let message = error_of(&with("name = \"digits-mlp\"", "name = \"x\"\nkind = 3"));
        assert!(message.contains("line 3: invalid type"), "{message}");
    }

    #[test]
    fn optional_settings_and_sgd() {
        let text = r#"
name = "iris"
[dataset]
path = "/data/iris.csv"
label_column = "species"
header = true
[training]
optimizer = { kind = "sgd", learning_rate = 0.1, momentum = 0.9 }
epochs = 1
batch_size = 1
[quantization]
calibration_samples = 64
"#;
        let (spec, _) = parse_good(text).unwrap();
        let dataset = spec.dataset().unwrap();
        assert_eq!(spec.data_files(), [Path::new("/data/iris.csv")]);
        assert_eq!(
            dataset.csv_options(),
            crate::dataset::CsvOptions {
                label_column: crate::dataset::LabelColumn::Name("species".into()),
                header: Some(true),
                ..Default::default()
            }
        );
        assert_eq!(dataset.test_fraction, 0.2);
        let training = spec.training().unwrap();
        assert_eq!(
            training.optimizer,
            OptimizerSpec::Sgd {
                learning_rate: 0.1,
                momentum: 0.9
            }
        );
        assert_eq!(spec.quantization.calibration_samples, 64);
        assert_eq!(training.seed, 0);
    }

    #[test]
    fn out_of_range_values() {
        let cases = [
            (
                "test_fraction = 0.2",
                "test_fraction = 0.0",
                "dataset.test_fraction must be between 0 and 1",
            ),
            (
                "test_fraction = 0.2",
                "test_fraction = 1.0",
                "dataset.test_fraction must be between 0 and 1",
            ),
            (
                "test_fraction = 0.2",
                "test_fraction = nan",
                "dataset.test_fraction must be between 0 and 1",
            ),
            (
                "epochs = 60",
                "epochs = 0",
                "training.epochs must be at least 1",
            ),
            (
                "batch_size = 32",
                "batch_size = 0",
                "training.batch_size must be at least 1",
            ),
            (
                "learning_rate = 0.003",
                "learning_rate = -1.0",
                "learning_rate must be a positive number",
            ),
            (
                "name = \"digits-mlp\"",
                "name = \"../evil\"",
                "name \"../evil\" must be",
            ),
            (
                "seed = 1\n",
                "seed = 1\n[quantization]\ncalibration_samples = 0\n",
                "quantization.calibration_samples must be at least 1",
            ),
        ];
        for (old, new, expected) in cases {
            let message = error_of(&with(old, new));
            assert!(message.contains(expected), "{new}: {message}");
        }
    }

    #[test]
    fn unknown_and_missing_keys_name_their_line() {
        let message = error_of(&with("epochs = 60", "epochs = 60\nepoch = 61"));
        assert!(
            message.contains("line 13: unknown field `epoch`"),
            "{message}"
        );
        let message = error_of(&with("kind = \"adam\"", "kind = \"adamw\""));
        assert!(
            message.contains("line 11: unknown variant `adamw`"),
            "{message}"
        );
        // A missing [training] key takes its default.
        let (spec, _) = parse_good(&with("batch_size = 32\n", "")).unwrap();
        assert_eq!(spec.training().unwrap().batch_size, 16);
        let message = error_of(&with(
            "learning_rate = 0.003",
            "learning_rate = 0.003, beta = 0.9",
        ));
        assert!(message.contains("unknown field `beta`"), "{message}");
        let message = error_of(&with("epochs = 60", "epochs = \"sixty\""));
        assert!(message.contains("line 12: invalid type"), "{message}");
        // A table no family reads is unknown too, at its line.
        let (_, tables) = parse_good(&with("seed = 1\n", "seed = 1\n[extra]\nx = 1\n")).unwrap();
        let message = tables.finish().unwrap_err().to_string();
        assert!(
            message.contains("line 15: unknown field `extra`"),
            "{message}"
        );
    }

    #[test]
    fn a_spec_without_training_gets_the_recipe_defaults() {
        let start = GOOD.find("[training]").unwrap();
        let (spec, _) = parse_good(&GOOD[..start]).unwrap();
        let t = spec.training().unwrap();
        assert_eq!(t, &TrainingSpec::default());
        assert_eq!(t.epochs, 200);
        assert_eq!(t.batch_size, 16);
        assert_eq!(t.validation_fraction, 0.2);
        assert_eq!(t.patience, 20);
        assert!(t.restore_best);
        assert_eq!(
            t.schedule,
            Schedule::Plateau {
                factor: 0.5,
                patience: 5
            }
        );
        assert_eq!(t.clip_grad_norm, 1.0);
        assert_eq!(t.weight_decay, 0.0);
    }

    #[test]
    fn recipe_keys_parse_as_words_or_tables() {
        let recipe = "seed = 1\nvalidation_fraction = 0\npatience = 0\nrestore_best = false\nclip_grad_norm = 0\nweight_decay = 0.01\n";
        for (schedule, expected) in [
            ("\"constant\"", Schedule::Constant),
            ("\"cosine\"", Schedule::Cosine { floor: 0.1 }),
            (
                "{ kind = \"cosine\", floor = 0.25 }",
                Schedule::Cosine { floor: 0.25 },
            ),
            (
                "{ kind = \"plateau\", patience = 3 }",
                Schedule::Plateau {
                    factor: 0.5,
                    patience: 3,
                },
            ),
        ] {
            let text = with("seed = 1\n", &format!("{recipe}schedule = {schedule}\n"));
            let (spec, _) = parse_good(&text).unwrap();
            let t = spec.training().unwrap();
            assert_eq!(t.schedule, expected, "{schedule}");
            assert_eq!(t.validation_fraction, 0.0);
            assert_eq!(t.patience, 0);
            assert!(!t.restore_best);
            assert_eq!(t.clip_grad_norm, 0.0);
            assert_eq!(t.weight_decay, 0.01);
        }
    }

    #[test]
    fn bad_recipe_values_name_their_field() {
        for (line, field) in [
            ("validation_fraction = 0.6", "training.validation_fraction"),
            ("validation_fraction = -0.1", "training.validation_fraction"),
            ("clip_grad_norm = -1.0", "training.clip_grad_norm"),
            ("weight_decay = 1.5", "training.weight_decay"),
            (
                "schedule = { kind = \"cosine\", floor = 2.0 }",
                "training.schedule.floor",
            ),
            (
                "schedule = { kind = \"plateau\", factor = 1.0 }",
                "training.schedule.factor",
            ),
            (
                "schedule = { kind = \"plateau\", patience = 0 }",
                "training.schedule.patience",
            ),
        ] {
            let message = error_of(&with("seed = 1\n", &format!("seed = 1\n{line}\n")));
            assert!(message.contains(field), "{line}: {message}");
        }
        let message = error_of(&with("seed = 1\n", "seed = 1\nschedule = \"linear\"\n"));
        assert!(message.contains("unknown variant `linear`"), "{message}");
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.toml");
        let message = read(&path).unwrap_err().to_string();
        assert_eq!(message, format!("spec not found: {}", path.display()));
    }
}
