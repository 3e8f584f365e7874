//! The recurrent family's tables: `[model] layers` (the grammar of
//! [`crate::dense::spec`]) starting with recurrent cells (`rnn N`, `lstm N`,
//! `gru N`, stackable), then a dense head of dense layers and activations,
//! on a `.ts` `[dataset]` (TRAIN and TEST files); `[training]` with Adam.
//! `[model] patch = k` (1..=64, default 1) feeds every `k` consecutive time
//! steps as one step of `k x channels` values: the model (and the chip)
//! then steps `k` times less often over the same values, which is what
//! lets a recurrent cell learn from long univariate series.
//! `[model] random_roll = true` (default false) trains on every series
//! rolled (rotated) by a fresh random number of time steps each time it is
//! drawn: for series whose start point is arbitrary, such as outlines
//! traced from anywhere or cycles, the model learns to ignore it.

use runtime::format::Cell;
use serde::Deserialize;

use crate::dense::spec::{parse_layers, LayerSpec};
use crate::spec::{OptimizerSpec, Spec, SpecError, Tables};

/// The recurrent family's part of a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentSpec {
    /// `(cell, hidden units)` of each recurrent layer, first to last.
    pub cells: Vec<(Cell, usize)>,
    /// The head's layers, run on the last cell's final hidden state.
    pub head: Vec<LayerSpec>,
    /// Consecutive time steps fed as one step (`[model] patch`, default 1).
    pub patch: usize,
    /// Train on randomly rolled copies of the series (`[model]
    /// random_roll`, default false).
    pub random_roll: bool,
}

/// `[model]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSection {
    layers: Vec<String>,
    /// `patch = k`: every k consecutive time steps are one step of k times
    /// the channels (long univariate series: 427 steps become 53 of 8).
    #[serde(default = "one")]
    patch: usize,
    /// `random_roll = true`: each drawn series rotated by a random number
    /// of time steps (outlines and cycles start anywhere).
    #[serde(default)]
    random_roll: bool,
}

fn one() -> usize {
    1
}

/// The most time steps one patch may hold.
pub const MAX_PATCH: usize = 64;

/// Parse and check the recurrent family's tables.
pub fn parse(spec: &Spec, tables: &mut Tables) -> Result<RecurrentSpec, SpecError> {
    tables.unused(&["series"])?;
    spec.dataset()?;
    if !matches!(spec.training()?.optimizer, OptimizerSpec::Adam { .. }) {
        return Err(spec.invalid("training.optimizer", "must be adam for recurrent models"));
    }
    let model: ModelSection = tables.require("model")?;
    if !(1..=MAX_PATCH).contains(&model.patch) {
        return Err(spec.invalid(
            "model.patch",
            format!(
                "must be between 1 and {MAX_PATCH} time steps per step, got {}",
                model.patch
            ),
        ));
    }
    let layers = parse_layers(&spec.file, &model.layers)?;
    let mut parsed = split(&layers).map_err(|problem| spec.above("model.layers", problem))?;
    parsed.patch = model.patch;
    parsed.random_roll = model.random_roll;
    Ok(parsed)
}

/// A recurrent model's layers as the runtime accepts them: the leading
/// recurrent layers, then a head of dense layers and activations (no skip
/// connections, no later recurrent layer).
pub fn split(layers: &[LayerSpec]) -> Result<RecurrentSpec, String> {
    let cells: Vec<_> = layers
        .iter()
        .map_while(|l| match l {
            LayerSpec::Recurrent { cell, units } => Some((*cell, *units)),
            _ => None,
        })
        .collect();
    if cells.is_empty() {
        return Err("a sequence model starts with rnn/lstm/gru layers".into());
    }
    let head = layers[cells.len()..].to_vec();
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
    Ok(RecurrentSpec {
        cells,
        head,
        patch: 1,
        random_roll: false,
    })
}
