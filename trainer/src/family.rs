//! The one place that tells spec kinds apart for the commands: `train` and
//! `export` ([`export`]) and `eval` ([`evaluate`]) dispatch here, so every
//! kind a spec can name is handled by both.

use std::path::Path;

use anyhow::Result;

use crate::classical::{self, export as classical_export, selftrain, ClassicalSpec};
use crate::transformer::{self, export as transformer_export, TransformerSpec};
use crate::{export, recurrent, spec};

/// Which family's code reads a spec, from its `kind` key.
enum Family {
    /// No `kind` (or `"mlp"`): MLP on a CSV, or recurrent on a `.ts` pair.
    Mlp,
    Transformer,
    SelfTraining,
    /// The other classical kinds ([`classical::KINDS`]); an unknown kind is
    /// refused by their loader.
    Classical,
}

fn family(spec: &Path) -> Result<Family> {
    Ok(match classical::spec_kind(spec)?.as_str() {
        "mlp" => Family::Mlp,
        "transformer" => Family::Transformer,
        "self-training" => Family::SelfTraining,
        _ => Family::Classical,
    })
}

/// Train and export one spec into `out_root/<name>/`, or with `reuse` keep
/// an export that is up to date; returns the one-line summary.
pub fn export(spec: &Path, out_root: &Path, reuse: bool) -> Result<String> {
    Ok(match family(spec)? {
        Family::Mlp => export::summary(&export::export_spec(spec, out_root, reuse, true)?),
        Family::Transformer => {
            transformer::summary(&transformer::export_spec(spec, out_root, reuse, true)?)
        }
        Family::SelfTraining | Family::Classical => {
            classical::summary(&classical::export_spec(spec, out_root, reuse)?)
        }
    })
}

/// What a blob measured on its spec's test data, the same figure its
/// export's report holds.
#[derive(Debug, Clone, PartialEq)]
pub enum BlobEval {
    /// A classifier (MLP, recurrent, transformer, self-training).
    Accuracy {
        /// Share of test rows (or series) classified right.
        accuracy: f64,
        /// Test rows or series.
        rows: usize,
        /// Class names (index = class id).
        class_names: Vec<String>,
        /// `confusion[true][predicted]`.
        confusion: Vec<Vec<usize>>,
    },
    /// k-means or hierarchical clustering.
    Purity {
        /// Cluster purity of the test rows.
        purity: f64,
        /// Test rows.
        rows: usize,
    },
    /// An anomaly detector over windows of the test series.
    AnomalyRank {
        /// Rank of the labelled anomaly among the score peaks.
        rank: Option<usize>,
        /// Scored test windows.
        windows: usize,
    },
    /// A causal forecaster over the test stream.
    Forecast {
        /// Rank of the labelled anomaly among the error peaks.
        rank: Option<usize>,
        /// Mean absolute next-value error, raw units.
        mean_abs_error: f64,
        /// Scored points.
        points: usize,
    },
}

fn accuracy(eval: export::Evaluation, rows: usize, class_names: &[String]) -> BlobEval {
    BlobEval::Accuracy {
        accuracy: eval.accuracy,
        rows,
        class_names: class_names.to_vec(),
        confusion: eval.confusion,
    }
}

/// Run `blob` with the runtime over the test data of `spec` (its split, test
/// series or stream), as its export did.
pub fn evaluate(spec_path: &Path, blob: &[u8]) -> Result<BlobEval> {
    Ok(match family(spec_path)? {
        Family::Mlp => {
            let spec = spec::load_spec(spec_path)?;
            if recurrent::is_sequence_spec(&spec) {
                let (_, test) = recurrent::load_sequences(&spec)?;
                accuracy(
                    recurrent::evaluate(blob, &test)?,
                    test.len(),
                    &test.class_names,
                )
            } else {
                let (_, test) = export::load_split(&spec)?;
                accuracy(
                    export::evaluate(blob, &test)?,
                    test.len(),
                    &test.class_names,
                )
            }
        }
        Family::SelfTraining => {
            let (spec, _) = selftrain::load(spec_path)?;
            let (_, test) = export::load_split(&spec)?;
            accuracy(
                export::evaluate(blob, &test)?,
                test.len(),
                &test.class_names,
            )
        }
        Family::Transformer => {
            let spec = TransformerSpec::load(spec_path)?;
            if spec.series.is_some() {
                let data = transformer_export::ForecastData::load(&spec)?;
                let (_, errors, figures) = transformer_export::run_forecast(blob, &data)?;
                BlobEval::Forecast {
                    rank: figures["anomaly_rank"].as_u64().map(|r| r as usize),
                    mean_abs_error: figures["mean_abs_error"].as_f64().unwrap_or(f64::NAN),
                    points: errors.len(),
                }
            } else {
                let (_, test, _) = transformer_export::classifier_data(&spec)?;
                accuracy(
                    export::evaluate(blob, &test)?,
                    test.len(),
                    &test.class_names,
                )
            }
        }
        Family::Classical => {
            let spec = ClassicalSpec::load(spec_path)?;
            if spec.dataset.is_some() {
                let (_, test) = classical_export::clustering_split(&spec)?;
                BlobEval::Purity {
                    purity: classical_export::run_clustering(blob, &test)?.purity,
                    rows: test.len(),
                }
            } else {
                let data = classical_export::DetectorData::load(&spec)?;
                BlobEval::AnomalyRank {
                    rank: classical_export::run_detector(blob, &data)?.rank,
                    windows: data.starts.len(),
                }
            }
        }
    })
}
