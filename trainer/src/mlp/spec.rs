//! The MLP family's tables: `[model] layers` (the dense stack, see
//! [`crate::dense::spec`]) and, for `kind = "self-training"`, the
//! `[self_training]` table:
//!
//! ```toml
//! [self_training]
//! labelled_fraction = 0.1   # share of each class of the training split that keeps its label
//! confidence = 0.95         # minimum softmax probability for a pseudo-label
//! rounds = 3                # pseudo-labelling rounds
//! ```
//!
//! Both kinds read a CSV `[dataset]` and `[training]`.

use serde::Deserialize;

use crate::dense::spec::{parse_layers, LayerSpec};
use crate::spec::{Spec, SpecError, Tables};

/// The MLP family's part of a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpSpec {
    /// Layers in order.
    pub layers: Vec<LayerSpec>,
    /// `kind = "self-training"`: how labels are propagated.
    pub self_training: Option<SelfTrainingSpec>,
}

/// `[model]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSection {
    layers: Vec<String>,
}

/// `[self_training]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfTrainingSpec {
    /// Share of each class of the training split that keeps its label.
    #[serde(default = "tenth")]
    pub labelled_fraction: f64,
    /// Minimum softmax probability for a pseudo-label.
    #[serde(default = "conf")]
    pub confidence: f32,
    /// Pseudo-labelling rounds.
    #[serde(default = "three")]
    pub rounds: usize,
}

fn tenth() -> f64 {
    0.1
}
fn conf() -> f32 {
    0.95
}
fn three() -> usize {
    3
}

/// Parse and check the MLP family's tables.
pub fn parse(spec: &Spec, tables: &mut Tables) -> Result<MlpSpec, SpecError> {
    tables.unused(&["series"])?;
    spec.dataset()?;
    spec.training()?;
    let model: ModelSection = tables.require("model")?;
    let layers = parse_layers(&spec.file, &model.layers)?;
    if let Some(cell) = layers
        .iter()
        .find(|l| matches!(l, LayerSpec::Recurrent { .. }))
    {
        return Err(spec.invalid(
            "model.layers",
            format!("`{cell}`: a recurrent layer makes a recurrent model (kind = \"recurrent\", on a .ts dataset)"),
        ));
    }
    let self_training = if spec.kind == "self-training" {
        let Some(st) = tables.take::<SelfTrainingSpec>("self_training")? else {
            return Err(spec.invalid("kind", "\"self-training\" needs a [self_training] table"));
        };
        if !(st.labelled_fraction > 0.0 && st.labelled_fraction < 1.0) {
            return Err(spec.invalid("self_training.labelled_fraction", "must be between 0 and 1"));
        }
        Some(st)
    } else {
        None
    };
    Ok(MlpSpec {
        layers,
        self_training,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{CsvOptions, LabelColumn};
    use crate::family::parse as parse_spec;
    use crate::mlp::MlpFamily;
    use crate::spec::fixture::{one_line_error, with, GOOD};
    use std::path::Path;

    fn parse(text: &str) -> anyhow::Result<Spec<MlpSpec>> {
        parse_spec(&MlpFamily, text, Path::new("specs/test.toml"))
    }

    fn error_of(text: &str) -> String {
        one_line_error(parse(text))
    }

    #[test]
    fn good_spec_parses() {
        let spec = parse(GOOD).unwrap();
        assert_eq!(spec.name, "digits-mlp");
        assert_eq!(
            spec.data_files(),
            [Path::new("specs/../datasets/digits/digits.csv.gz")]
        );
        let dataset = spec.dataset().unwrap();
        assert_eq!(
            dataset.csv_options(),
            CsvOptions {
                label_column: LabelColumn::Last,
                header: None,
                ..CsvOptions::default()
            }
        );
        assert_eq!(dataset.test_fraction, 0.2);
        assert_eq!(dataset.seed, 7);
        use LayerSpec::*;
        assert_eq!(
            spec.family.layers,
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
        // The shared tables' values: `spec::tests::shared_tables_parse`.
        assert!(spec.training.is_some() && spec.family.self_training.is_none());
    }

    #[test]
    fn unknown_layer_lists_known_ones() {
        let message = error_of(&with(r#""save 0", "dense 32""#, r#""save 0", "densse 32""#));
        assert!(
            message.contains(r#"layer 4: unknown layer "densse""#),
            "{message}"
        );
        assert!(
            message.contains("dense N, relu, relu6, leaky_relu ALPHA"),
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
    fn shipped_specs_load_and_point_at_real_datasets() {
        let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/specs");
        for (file, classes) in [("digits-mlp.toml", 10), ("iris-mlp.toml", 3)] {
            let spec = crate::family::load(&MlpFamily, &specs.join(file)).unwrap();
            let data = &spec.data_files()[0];
            assert!(data.is_file(), "{}", data.display());
            assert_eq!(
                spec.family.layers.iter().rev().find_map(|l| match l {
                    LayerSpec::Dense { units } => Some(*units),
                    _ => None,
                }),
                Some(classes),
                "{file}: last dense width must be the class count"
            );
        }
    }

    #[test]
    fn self_training_needs_its_table_and_a_fraction() {
        let kind = |table: &str| {
            with(
                "name = \"digits-mlp\"",
                "name = \"st\"\nkind = \"self-training\"",
            ) + table
        };
        let message = error_of(&kind(""));
        assert!(
            message.ends_with("kind \"self-training\" needs a [self_training] table"),
            "{message}"
        );
        let message = error_of(&kind("[self_training]\nlabelled_fraction = 1.5\n"));
        assert!(
            message.ends_with("self_training.labelled_fraction must be between 0 and 1"),
            "{message}"
        );
        let spec = parse(&kind("[self_training]\nrounds = 2\n")).unwrap();
        let st = spec.family.self_training.unwrap();
        assert_eq!((st.labelled_fraction, st.rounds), (0.1, 2));
        // An MLP spec has no [self_training] table.
        let message = error_of(&(GOOD.to_string() + "[self_training]\nrounds = 2\n"));
        assert!(
            message.contains("unknown field `self_training`"),
            "{message}"
        );
    }
}
