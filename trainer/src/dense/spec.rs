//! The `[model] layers` grammar: a stack of short layer strings, read by the
//! MLP family (and self-training) and by the recurrent family (cells, then
//! a dense head).
//!
//! Layers are `dense N`, `relu`, `relu6`, `leaky_relu ALPHA`, `sigmoid`,
//! `tanh`, `gelu`, `softmax`, `save SLOT` and `add SLOT` (residual: add the tensor
//! saved in `SLOT`; slots are below [`MAX_SKIP_SLOTS`]), and the recurrent
//! cells `rnn N`, `lstm N`, `gru N`. [`parse_layers`] names the 1-based
//! position of a bad layer in its one-line [`SpecError`]. What needs the
//! data (the input width, the last layer's width matching the class count)
//! is checked when the model is trained.

use std::fmt;
use std::path::Path;

pub use runtime::format::MAX_SKIP_SLOTS;

use crate::limits;
use crate::spec::SpecError;

/// One layer of the model, written in the spec as a short string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerSpec {
    /// Fully connected layer with `units` outputs (`dense 32`).
    Dense { units: usize },
    /// `relu`
    Relu,
    /// `relu6`: `min(max(x, 0), 6)`
    Relu6,
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
    /// `crate::recurrent`, which reads models that start with them (the
    /// layers after the last one are the head, run on its final hidden state).
    Recurrent {
        cell: runtime::format::Cell,
        units: usize,
    },
}

/// Layer keywords, for error messages.
pub const KNOWN_LAYERS: &str =
    "dense N, relu, relu6, leaky_relu ALPHA, sigmoid, tanh, gelu, softmax, save SLOT, add SLOT, rnn N, lstm N, gru N";

impl fmt::Display for LayerSpec {
    /// The spec's own syntax, so a displayed layer parses back to itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerSpec::Dense { units } => write!(f, "dense {units}"),
            LayerSpec::Relu => f.write_str("relu"),
            LayerSpec::Relu6 => f.write_str("relu6"),
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
pub(crate) enum LayerProblem {
    Unknown(String),
    BadArguments(String),
}

impl LayerSpec {
    /// Parse one layer string such as `"dense 32"`.
    pub(crate) fn parse(text: &str) -> Result<LayerSpec, LayerProblem> {
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
            "relu6" => no_args(LayerSpec::Relu6),
            "sigmoid" => no_args(LayerSpec::Sigmoid),
            "tanh" => no_args(LayerSpec::Tanh),
            "gelu" => no_args(LayerSpec::Gelu),
            "softmax" => no_args(LayerSpec::Softmax),
            other => Err(LayerProblem::Unknown(other.to_string())),
        }
    }
}

/// Parse `model.layers` (1-based positions in errors), check the residual
/// wiring, that there is a dense layer, and the runtime's width and layer
/// limits (every spec layer becomes one blob layer, on both numeric paths).
pub fn parse_layers(path: &Path, texts: &[String]) -> Result<Vec<LayerSpec>, SpecError> {
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
                known: KNOWN_LAYERS,
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
    Ok(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_kind_parses_and_displays_back() {
        let texts = [
            "save 3",
            "dense 8",
            "relu6",
            "leaky_relu 0.1",
            "sigmoid",
            "tanh",
            "gelu",
            "add 3",
            "dense  2",
            "softmax",
        ]
        .map(String::from);
        let layers = parse_layers(Path::new("specs/test.toml"), &texts).unwrap();
        assert_eq!(layers[2], LayerSpec::Relu6);
        assert_eq!(layers[3], LayerSpec::LeakyRelu { alpha: 0.1 });
        let shown: Vec<String> = layers.iter().map(|l| l.to_string()).collect();
        assert_eq!(
            shown,
            [
                "save 3",
                "dense 8",
                "relu6",
                "leaky_relu 0.1",
                "sigmoid",
                "tanh",
                "gelu",
                "add 3",
                "dense 2",
                "softmax"
            ]
        );
        for (layer, text) in layers.iter().zip(&shown) {
            assert!(matches!(LayerSpec::parse(text), Ok(l) if l == *layer));
        }
    }

    #[test]
    fn recurrent_cells_parse_with_their_units() {
        let texts = ["lstm 8", "gru 4", "rnn 2", "dense 3"].map(String::from);
        let layers = parse_layers(Path::new("s.toml"), &texts).unwrap();
        assert_eq!(
            layers[0],
            LayerSpec::Recurrent {
                cell: runtime::format::Cell::Lstm,
                units: 8
            }
        );
        assert_eq!(layers[2].to_string(), "rnn 2");
    }
}
