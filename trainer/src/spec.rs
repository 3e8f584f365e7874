//! Model specs: a TOML file saying which data to use, which model to build and
//! how to train and quantize it.
//!
//! ## Format
//! ```toml
//! name = "digits-mlp"                 # letters, digits, '-', '_', '.'; names the output folder
//! [dataset]
//! path = "../datasets/digits/digits.csv.gz"   # relative to this file
//! label_column = "last"               # "last" (default), "first", 0-based index, or header name
//! # header = true                     # default: auto-detect
//! test_fraction = 0.2                 # default 0.2, must be in (0, 1)
//! seed = 7                            # split seed, default 0
//! [model]
//! layers = ["dense 32", "relu", "save 0", "dense 32", "add 0", "relu", "dense 10", "softmax"]
//! [training]
//! optimizer = { kind = "adam", learning_rate = 0.003 }   # or { kind = "sgd", learning_rate = 0.1, momentum = 0.9 }
//! epochs = 60
//! batch_size = 32
//! seed = 1                            # default 0
//! [quantization]                      # optional
//! calibration_samples = 512           # default 512
//! ```
//!
//! Layers are `dense N`, `relu`, `leaky_relu ALPHA`, `sigmoid`, `tanh`,
//! `gelu`, `softmax`, `save SLOT` and `add SLOT` (residual: add the tensor
//! saved in `SLOT`); slots are below [`MAX_SKIP_SLOTS`].
//!
//! ## Contract
//! [`load_spec`] rejects anything the trainer could not build, each with a
//! one-line [`SpecError`] naming the file and, for layers, the 1-based
//! position in `model.layers`. Unknown keys are errors (a typo must not
//! silently fall back to a default). What needs the data — the input width and
//! the last layer's width matching the class count — is checked by the trainer.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{CsvOptions, LabelColumn};
use crate::limits;

pub use runtime::format::MAX_SKIP_SLOTS;

/// A validated model spec.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Model name; safe to use as a folder name.
    pub name: String,
    /// Where the data comes from and how it is split.
    pub dataset: DatasetSpec,
    /// Layers in order.
    pub model: Vec<LayerSpec>,
    /// Optimizer and schedule.
    pub training: TrainingSpec,
    /// int8 calibration settings.
    pub quantization: QuantizationSpec,
    /// Folder of the spec file; relative paths in the spec are relative to it.
    pub spec_dir: PathBuf,
}

/// The `[dataset]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// CSV or gzip CSV file, relative to the spec file (or absolute).
    pub path: PathBuf,
    /// Which column holds the label.
    #[serde(default)]
    pub label_column: LabelColumn,
    /// Whether the first row is a header; `None` auto-detects.
    #[serde(default)]
    pub header: Option<bool>,
    /// Share of each class held out for testing, in (0, 1).
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Seed of the train/test split.
    #[serde(default)]
    pub seed: u64,
    /// A separate test file (relative to the spec file), used as the test
    /// split instead of `test_fraction`; `.ts` datasets come as TRAIN/TEST pairs.
    #[serde(default)]
    pub test_path: Option<PathBuf>,
}

fn default_test_fraction() -> f64 {
    0.2
}

/// One layer of the model, written in the spec as a short string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerSpec {
    /// Fully connected layer with `units` outputs (`dense 32`).
    Dense { units: usize },
    /// `relu`
    Relu,
    /// `leaky_relu 0.01`: slope `alpha` for negative inputs.
    LeakyRelu { alpha: f32 },
    /// `sigmoid`
    Sigmoid,
    /// `tanh`
    Tanh,
    /// `gelu` (exact, erf-based)
    Gelu,
    /// `softmax`
    Softmax,
    /// `save 0`: remember the current tensor for a later `add 0`.
    Save { slot: u8 },
    /// `add 0`: add the tensor saved in slot 0 (a residual connection).
    Add { slot: u8 },
    /// `rnn 24`, `lstm 24`, `gru 24`: a recurrent layer with `units` hidden
    /// values, run once per time step of a sequence dataset (`.ts`); see
    /// `crate::recurrent`. Recurrent layers come first; the layers after the
    /// last one are the head, run on its final hidden state.
    Recurrent {
        cell: runtime::format::Cell,
        units: usize,
    },
}

/// Layer keywords, for error messages.
const KNOWN_LAYERS: &str =
    "dense N, relu, leaky_relu ALPHA, sigmoid, tanh, gelu, softmax, save SLOT, add SLOT, rnn N, lstm N, gru N";

impl fmt::Display for LayerSpec {
    /// The spec's own syntax, so a displayed layer parses back to itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerSpec::Dense { units } => write!(f, "dense {units}"),
            LayerSpec::Relu => f.write_str("relu"),
            LayerSpec::LeakyRelu { alpha } => write!(f, "leaky_relu {alpha}"),
            LayerSpec::Sigmoid => f.write_str("sigmoid"),
            LayerSpec::Tanh => f.write_str("tanh"),
            LayerSpec::Gelu => f.write_str("gelu"),
            LayerSpec::Softmax => f.write_str("softmax"),
            LayerSpec::Save { slot } => write!(f, "save {slot}"),
            LayerSpec::Add { slot } => write!(f, "add {slot}"),
            LayerSpec::Recurrent { cell, units } => write!(f, "{} {units}", cell.name()),
        }
    }
}

/// Why one layer string is wrong (before the file and position are attached).
enum LayerProblem {
    Unknown(String),
    BadArguments(String),
}

impl LayerSpec {
    /// Parse one layer string such as `"dense 32"`.
    fn parse(text: &str) -> Result<LayerSpec, LayerProblem> {
        let mut words = text.split_whitespace();
        let keyword = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        let no_args = |layer: LayerSpec| {
            if args.is_empty() {
                Ok(layer)
            } else {
                Err(LayerProblem::BadArguments(format!(
                    "{keyword} takes no arguments"
                )))
            }
        };
        let one_arg = || match args.as_slice() {
            [arg] => Ok(*arg),
            _ => Err(LayerProblem::BadArguments(format!(
                "{keyword} takes exactly one argument"
            ))),
        };
        let slot = || -> Result<u8, LayerProblem> {
            let arg = one_arg()?;
            match arg.parse::<u8>() {
                Ok(slot) if usize::from(slot) < MAX_SKIP_SLOTS => Ok(slot),
                _ => Err(LayerProblem::BadArguments(format!(
                    "slot must be an integer from 0 to {}, got {arg:?}",
                    MAX_SKIP_SLOTS - 1
                ))),
            }
        };
        match keyword {
            "dense" => {
                let arg = one_arg()?;
                match arg.parse::<usize>() {
                    Ok(units) if units > 0 => Ok(LayerSpec::Dense { units }),
                    _ => Err(LayerProblem::BadArguments(format!(
                        "units must be a positive integer, got {arg:?}"
                    ))),
                }
            }
            "leaky_relu" => {
                let arg = one_arg()?;
                match arg.parse::<f32>() {
                    Ok(alpha) if alpha.is_finite() => Ok(LayerSpec::LeakyRelu { alpha }),
                    _ => Err(LayerProblem::BadArguments(format!(
                        "alpha must be a finite number, got {arg:?}"
                    ))),
                }
            }
            "rnn" | "lstm" | "gru" => {
                let cell = match keyword {
                    "rnn" => runtime::format::Cell::Rnn,
                    "lstm" => runtime::format::Cell::Lstm,
                    _ => runtime::format::Cell::Gru,
                };
                let arg = one_arg()?;
                match arg.parse::<usize>() {
                    Ok(units) if units > 0 => Ok(LayerSpec::Recurrent { cell, units }),
                    _ => Err(LayerProblem::BadArguments(format!(
                        "units must be a positive integer, got {arg:?}"
                    ))),
                }
            }
            "save" => Ok(LayerSpec::Save { slot: slot()? }),
            "add" => Ok(LayerSpec::Add { slot: slot()? }),
            "relu" => no_args(LayerSpec::Relu),
            "sigmoid" => no_args(LayerSpec::Sigmoid),
            "tanh" => no_args(LayerSpec::Tanh),
            "gelu" => no_args(LayerSpec::Gelu),
            "softmax" => no_args(LayerSpec::Softmax),
            other => Err(LayerProblem::Unknown(other.to_string())),
        }
    }
}

/// The `[training]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    /// Optimizer and its settings.
    pub optimizer: OptimizerSpec,
    /// Passes over the training set; at least 1.
    pub epochs: usize,
    /// Rows per gradient step; at least 1.
    pub batch_size: usize,
    /// Seed for weight init and batch shuffling.
    #[serde(default)]
    pub seed: u64,
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
    /// Training rows used to measure activation ranges; at least 1.
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

/// The file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: String,
    dataset: DatasetSpec,
    model: ModelSection,
    training: TrainingSpec,
    #[serde(default)]
    quantization: QuantizationSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSection {
    layers: Vec<String>,
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
    #[error("{}: line {line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A layer keyword that is not known.
    #[error("{}: layer {index}: unknown layer {keyword:?} (known: {KNOWN_LAYERS})", path.display())]
    UnknownLayer {
        path: PathBuf,
        index: usize,
        keyword: String,
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
        field: &'static str,
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

/// Read, parse and validate a spec file.
pub fn load_spec(path: &Path) -> Result<ModelSpec, SpecError> {
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
    parse_spec(&text, path)
}

/// Parse and validate spec text; `path` names the file in errors and anchors
/// relative paths.
pub fn parse_spec(text: &str, path: &Path) -> Result<ModelSpec, SpecError> {
    let file: SpecFile = toml::from_str(text).map_err(|e| syntax_error(path, text, &e))?;
    let invalid = |field: &'static str, problem: String| SpecError::InvalidValue {
        path: path.to_path_buf(),
        field,
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
    let fraction = file.dataset.test_fraction;
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(invalid(
            "dataset.test_fraction",
            format!("must be between 0 and 1 (exclusive), got {fraction}"),
        ));
    }
    if file.training.epochs == 0 {
        return Err(invalid("training.epochs", "must be at least 1".to_string()));
    }
    if file.training.batch_size == 0 {
        return Err(invalid(
            "training.batch_size",
            "must be at least 1".to_string(),
        ));
    }
    let (learning_rate, momentum) = match file.training.optimizer {
        OptimizerSpec::Adam { learning_rate } => (learning_rate, 0.0),
        OptimizerSpec::Sgd {
            learning_rate,
            momentum,
        } => (learning_rate, momentum),
    };
    if !(learning_rate > 0.0 && learning_rate.is_finite()) {
        return Err(invalid(
            "training.optimizer.learning_rate",
            format!("must be a positive number, got {learning_rate}"),
        ));
    }
    if !(0.0..1.0).contains(&momentum) {
        return Err(invalid(
            "training.optimizer.momentum",
            format!("must be in [0, 1), got {momentum}"),
        ));
    }
    if file.quantization.calibration_samples == 0 {
        return Err(invalid(
            "quantization.calibration_samples",
            "must be at least 1".to_string(),
        ));
    }

    let model = parse_layers(path, &file.model.layers)?;
    let spec_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(ModelSpec {
        name: file.name,
        dataset: file.dataset,
        model,
        training: file.training,
        quantization: file.quantization,
        spec_dir,
    })
}

/// Parse the layer strings and check the residual wiring.
fn parse_layers(path: &Path, texts: &[String]) -> Result<Vec<LayerSpec>, SpecError> {
    let mut layers = Vec::with_capacity(texts.len());
    // Per slot: (1-based layer index of the save, width saved if known).
    let mut saved: [Option<(usize, Option<usize>)>; MAX_SKIP_SLOTS] = [None; MAX_SKIP_SLOTS];
    // Width of the current tensor; unknown until the first dense layer
    // because the input width comes from the data.
    let mut width: Option<usize> = None;
    for (i, text) in texts.iter().enumerate() {
        let index = i + 1;
        let layer = LayerSpec::parse(text).map_err(|problem| match problem {
            LayerProblem::Unknown(keyword) => SpecError::UnknownLayer {
                path: path.to_path_buf(),
                index,
                keyword,
            },
            LayerProblem::BadArguments(problem) => SpecError::BadLayerArguments {
                path: path.to_path_buf(),
                index,
                text: text.clone(),
                problem,
            },
        })?;
        match layer {
            LayerSpec::Dense { units } | LayerSpec::Recurrent { units, .. } => {
                limits::WIDTH
                    .check("width", units)
                    .map_err(|problem| SpecError::AboveLimit {
                        path: path.to_path_buf(),
                        field: format!("layer {index} `{text}`"),
                        problem,
                    })?;
                width = Some(units);
            }
            LayerSpec::Save { slot } => saved[usize::from(slot)] = Some((index, width)),
            LayerSpec::Add { slot } => match saved[usize::from(slot)] {
                None => {
                    return Err(SpecError::AddWithoutSave {
                        path: path.to_path_buf(),
                        index,
                        slot,
                    })
                }
                Some((saved_at, Some(saved_width))) => {
                    if let Some(width) = width.filter(|&w| w != saved_width) {
                        return Err(SpecError::AddWidthMismatch {
                            path: path.to_path_buf(),
                            index,
                            slot,
                            width,
                            saved_width,
                            saved_at,
                        });
                    }
                }
                Some((_, None)) => {}
            },
            _ => {}
        }
        layers.push(layer);
    }
    if !layers.iter().any(|l| matches!(l, LayerSpec::Dense { .. })) {
        return Err(SpecError::NoDenseLayer {
            path: path.to_path_buf(),
        });
    }
    let above = |problem| SpecError::AboveLimit {
        path: path.to_path_buf(),
        field: "model.layers".into(),
        problem,
    };
    // Every spec layer becomes one blob layer, on both numeric paths.
    limits::LAYERS
        .check("layer count", layers.len())
        .map_err(above)?;
    if layers
        .iter()
        .any(|l| matches!(l, LayerSpec::Recurrent { .. }))
    {
        split_recurrent(&layers).map_err(above)?;
    }
    Ok(layers)
}

/// `(cell, units)` of each recurrent layer, and the head's layers.
pub type RecurrentSplit = (Vec<(runtime::format::Cell, usize)>, Vec<LayerSpec>);

/// A recurrent model's layers as the runtime accepts them: `(cell, units)`
/// of the leading recurrent layers, then a head of dense layers and
/// activations (no skip connections, no later recurrent layer).
pub fn split_recurrent(layers: &[LayerSpec]) -> Result<RecurrentSplit, String> {
    let rec: Vec<_> = layers
        .iter()
        .map_while(|l| match l {
            LayerSpec::Recurrent { cell, units } => Some((*cell, *units)),
            _ => None,
        })
        .collect();
    if rec.is_empty() {
        return Err("a sequence model starts with rnn/lstm/gru layers".into());
    }
    let head = layers[rec.len()..].to_vec();
    if let Some(l) = head.iter().find(|l| {
        matches!(
            l,
            LayerSpec::Recurrent { .. } | LayerSpec::Save { .. } | LayerSpec::Add { .. }
        )
    }) {
        return Err(format!(
            "layer `{l}`: after the recurrent layers only dense layers and activations may follow (the runtime runs no skip connections in a recurrent model)"
        ));
    }
    Ok((rec, head))
}

/// One line from a TOML error: its message and the line it points at (toml's
/// own Display is a multi-line snippet).
fn syntax_error(path: &Path, text: &str, error: &toml::de::Error) -> SpecError {
    let line = error.span().map_or(1, |span| {
        text[..span.start.min(text.len())].matches('\n').count() + 1
    });
    let message = error
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    SpecError::Syntax {
        path: path.to_path_buf(),
        line,
        message,
    }
}

impl ModelSpec {
    /// The dataset file, resolved against the spec's folder.
    pub fn dataset_path(&self) -> PathBuf {
        self.spec_dir.join(&self.dataset.path)
    }

    /// The data files the export depends on: the dataset, and the test
    /// file when there is one.
    pub fn data_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.dataset_path()];
        files.extend(self.dataset.test_path.iter().map(|t| self.spec_dir.join(t)));
        files
    }

    /// How to read the dataset.
    pub fn csv_options(&self) -> CsvOptions {
        CsvOptions {
            label_column: self.dataset.label_column.clone(),
            header: self.dataset.header,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
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

    fn parse(text: &str) -> Result<ModelSpec, SpecError> {
        parse_spec(text, Path::new("specs/test.toml"))
    }

    /// GOOD with one line replaced.
    fn with(old: &str, new: &str) -> String {
        assert!(GOOD.contains(old), "{old}");
        GOOD.replacen(old, new, 1)
    }

    fn error_of(text: &str) -> String {
        let message = parse(text).unwrap_err().to_string();
        assert!(!message.contains('\n'), "error must be one line: {message}");
        assert!(
            message.starts_with("specs/test.toml"),
            "error must name the file: {message}"
        );
        message
    }

    #[test]
    fn good_spec_parses() {
        let spec = parse(GOOD).unwrap();
        assert_eq!(spec.name, "digits-mlp");
        assert_eq!(
            spec.dataset_path(),
            Path::new("specs/../datasets/digits/digits.csv.gz")
        );
        assert_eq!(
            spec.csv_options(),
            CsvOptions {
                label_column: LabelColumn::Last,
                header: None
            }
        );
        assert_eq!(spec.dataset.test_fraction, 0.2);
        assert_eq!(spec.dataset.seed, 7);
        use LayerSpec::*;
        assert_eq!(
            spec.model,
            [
                Dense { units: 32 },
                Relu,
                Save { slot: 0 },
                Dense { units: 32 },
                Relu,
                Dense { units: 32 },
                Add { slot: 0 },
                Relu,
                Dense { units: 10 },
                Softmax
            ]
        );
        assert_eq!(
            spec.training.optimizer,
            OptimizerSpec::Adam {
                learning_rate: 0.003
            }
        );
        assert_eq!(
            (
                spec.training.epochs,
                spec.training.batch_size,
                spec.training.seed
            ),
            (60, 32, 1)
        );
        assert_eq!(spec.quantization.calibration_samples, 512);
    }

    #[test]
    fn every_layer_kind_parses_and_displays_back() {
        let text = with(
            r#"layers = ["dense 32", "relu", "save 0", "dense 32", "relu", "dense 32", "add 0", "relu", "dense 10", "softmax"]"#,
            r#"layers = ["save 3", "dense 8", "leaky_relu 0.1", "sigmoid", "tanh", "gelu", "add 3", "dense  2", "softmax"]"#,
        );
        let spec = parse(&text).unwrap();
        assert_eq!(spec.model[2], LayerSpec::LeakyRelu { alpha: 0.1 });
        let shown: Vec<String> = spec.model.iter().map(|l| l.to_string()).collect();
        assert_eq!(
            shown,
            [
                "save 3",
                "dense 8",
                "leaky_relu 0.1",
                "sigmoid",
                "tanh",
                "gelu",
                "add 3",
                "dense 2",
                "softmax"
            ]
        );
        for (layer, text) in spec.model.iter().zip(&shown) {
            assert!(matches!(LayerSpec::parse(text), Ok(l) if l == *layer));
        }
    }

    #[test]
    fn optional_settings_and_sgd() {
        let text = r#"
name = "iris"
[dataset]
path = "/data/iris.csv"
label_column = "species"
header = true
[model]
layers = ["dense 3", "softmax"]
[training]
optimizer = { kind = "sgd", learning_rate = 0.1, momentum = 0.9 }
epochs = 1
batch_size = 1
[quantization]
calibration_samples = 64
"#;
        let spec = parse(text).unwrap();
        assert_eq!(spec.dataset_path(), Path::new("/data/iris.csv"));
        assert_eq!(
            spec.csv_options(),
            CsvOptions {
                label_column: LabelColumn::Name("species".into()),
                header: Some(true)
            }
        );
        assert_eq!(spec.dataset.test_fraction, 0.2);
        assert_eq!(
            spec.training.optimizer,
            OptimizerSpec::Sgd {
                learning_rate: 0.1,
                momentum: 0.9
            }
        );
        assert_eq!(spec.quantization.calibration_samples, 64);
        assert_eq!(spec.training.seed, 0);
    }

    #[test]
    fn unknown_layer_lists_known_ones() {
        let message = error_of(&with(r#""save 0", "dense 32""#, r#""save 0", "densse 32""#));
        assert!(
            message.contains(r#"layer 4: unknown layer "densse""#),
            "{message}"
        );
        assert!(
            message.contains("dense N, relu, leaky_relu ALPHA"),
            "{message}"
        );
    }

    #[test]
    fn bad_layer_arguments() {
        let cases = [
            (
                r#""dense 10""#,
                r#""dense 0""#,
                r#"layer 9: "dense 0": units must be a positive integer"#,
            ),
            (
                r#""dense 10""#,
                r#""dense""#,
                r#"layer 9: "dense": dense takes exactly one argument"#,
            ),
            (
                r#""dense 10""#,
                r#""dense ten""#,
                r#"layer 9: "dense ten": units must be a positive integer"#,
            ),
            (
                r#""relu", "save 0""#,
                r#""relu 2", "save 0""#,
                r#"layer 2: "relu 2": relu takes no arguments"#,
            ),
            (
                r#""relu", "save 0""#,
                r#""leaky_relu nan", "save 0""#,
                "alpha must be a finite number",
            ),
            (
                r#""save 0""#,
                r#""save -1""#,
                "slot must be an integer from 0 to 3",
            ),
        ];
        for (old, new, expected) in cases {
            let message = error_of(&with(old, new));
            assert!(message.contains(expected), "{new}: {message}");
        }
    }

    #[test]
    fn slot_out_of_range() {
        let message = error_of(&with(r#""save 0""#, r#""save 4""#));
        assert!(
            message.contains(r#"layer 3: "save 4": slot must be an integer from 0 to 3, got "4""#),
            "{message}"
        );
    }

    #[test]
    fn add_needs_an_earlier_save() {
        let message = error_of(&with(r#""add 0""#, r#""add 1""#));
        assert!(
            message.contains(r#"layer 7: "add 1" has no earlier "save 1""#),
            "{message}"
        );
        // The save must come before the add, not after.
        let message = error_of(&with(
            r#""save 0", "dense 32", "relu", "dense 32", "add 0""#,
            r#""add 0", "dense 32", "relu", "dense 32", "save 0""#,
        ));
        assert!(
            message.contains(r#"layer 3: "add 0" has no earlier "save 0""#),
            "{message}"
        );
    }

    #[test]
    fn add_of_different_widths_is_rejected() {
        let message = error_of(&with(r#""dense 32", "add 0""#, r#""dense 16", "add 0""#));
        assert!(
            message.contains(r#"layer 7: "add 0" adds width 16 to width 32 saved at layer 3"#),
            "{message}"
        );
    }

    #[test]
    fn no_dense_layer() {
        let message = error_of(&with(
            r#"layers = ["dense 32", "relu", "save 0", "dense 32", "relu", "dense 32", "add 0", "relu", "dense 10", "softmax"]"#,
            r#"layers = ["relu", "softmax"]"#,
        ));
        assert!(
            message.ends_with("model.layers has no dense layer"),
            "{message}"
        );
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
        let message = error_of(&with("batch_size = 32\n", ""));
        assert!(message.contains("missing field `batch_size`"), "{message}");
        let message = error_of(&with(
            "learning_rate = 0.003",
            "learning_rate = 0.003, beta = 0.9",
        ));
        assert!(message.contains("unknown field `beta`"), "{message}");
        let message = error_of(&with("epochs = 60", "epochs = \"sixty\""));
        assert!(message.contains("line 12: invalid type"), "{message}");
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.toml");
        let message = load_spec(&path).unwrap_err().to_string();
        assert_eq!(message, format!("spec not found: {}", path.display()));
    }

    #[test]
    fn shipped_specs_load_and_point_at_real_datasets() {
        let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/specs");
        for (file, classes) in [("digits-mlp.toml", 10), ("iris-mlp.toml", 3)] {
            let spec = load_spec(&specs.join(file)).unwrap();
            assert!(
                spec.dataset_path().is_file(),
                "{}",
                spec.dataset_path().display()
            );
            assert_eq!(
                spec.model.iter().rev().find_map(|l| match l {
                    LayerSpec::Dense { units } => Some(*units),
                    _ => None,
                }),
                Some(classes),
                "{file}: last dense width must be the class count"
            );
        }
    }
}
