//! What every classifier family (MLP, recurrent, transformer) shares at its
//! end: the accuracy metric with its confusion matrix, running rows or
//! sequences through the runtime for it, the classifier part of
//! `report.json`, and the plots (`loss.png`: training and validation loss,
//! the restored epoch and test accuracy; `confusion.png`).

use std::fmt;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, Labelled, Sequences};
use crate::export::plot;
use crate::io::ExportDir;
use crate::metrics::confusion;
use crate::report::{Blobs, Details, Evaluation, Metric};
use crate::runner::{self, Run};
use crate::spec::Spec;
use crate::train::History;

/// Test accuracy of a classifier blob, computed by the runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct Accuracy {
    /// Share of test rows (or series) classified right.
    pub accuracy: f64,
    /// Test rows or series.
    pub rows: usize,
    /// Class names (index = class id).
    pub class_names: Vec<String>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
}

impl Metric for Accuracy {
    fn blob_figure(&self) -> f64 {
        self.accuracy
    }
}

impl fmt::Display for Accuracy {
    /// The accuracy, then the confusion matrix, one line per true class.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accuracy {:.2}% on {} test rows",
            100.0 * self.accuracy,
            self.rows
        )?;
        write!(f, "\nconfusion (rows = true class, columns = predicted):")?;
        for (name, row) in self.class_names.iter().zip(&self.confusion) {
            let cells: String = row.iter().map(|c| format!("{c:4}")).collect();
            write!(f, "\n  {name:>12} {cells}")?;
        }
        Ok(())
    }
}

/// The accuracy of a run over inputs with these labels.
fn accuracy(run: Run, labels: &[usize], class_names: &[String]) -> Evaluation<Accuracy> {
    let correct = run
        .argmax
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    Evaluation {
        metric: Accuracy {
            accuracy: correct as f64 / labels.len().max(1) as f64,
            rows: labels.len(),
            class_names: class_names.to_vec(),
            confusion: confusion(class_names.len(), labels, &run.argmax),
        },
        vectors: run.vectors,
    }
}

fn u16_labels(labels: &[usize]) -> Vec<u16> {
    labels.iter().map(|&l| l as u16).collect()
}

/// Run `blob` over every row of `data`, one test vector per row.
pub fn evaluate_rows(blob: &[u8], data: &Dataset) -> Result<Evaluation<Accuracy>> {
    let run = runner::run_rows(blob, &data.features, &u16_labels(&data.labels))?;
    Ok(accuracy(run, &data.labels, &data.class_names))
}

/// Run `blob` over every sequence of `data` (whole sequences), one sequence
/// vector each.
pub fn evaluate_sequences(blob: &[u8], data: &Sequences) -> Result<Evaluation<Accuracy>> {
    let run = runner::run_sequences(blob, &data.series, &u16_labels(&data.labels))?;
    Ok(accuracy(run, &data.labels, &data.class_names))
}

/// A classifier's part of `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classifier {
    /// Dataset path as given in the spec.
    pub dataset: String,
    /// Class names.
    pub classes: Vec<String>,
    /// Rows (or series) used for training.
    pub train_samples: usize,
    /// Rows (or series) used for testing (and test vectors).
    pub test_samples: usize,
    /// f32 test accuracy (runtime on the host).
    pub f32_accuracy: f64,
    /// int8 test accuracy (runtime on the host).
    pub int8_accuracy: f64,
    /// Mean training loss per epoch.
    pub train_loss: Vec<f32>,
    /// Validation loss per epoch (absent without a validation split).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_loss: Vec<f32>,
    /// The epoch (1-based) whose weights were kept, when not the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_epoch: Option<usize>,
}

impl Details for Classifier {
    fn summary(&self, blobs: Blobs<'_>) -> String {
        format!(
            "f32 {:.2}%  int8 {:.2}%  (test {} rows, train {} rows)  {blobs}",
            100.0 * self.f32_accuracy,
            100.0 * self.int8_accuracy,
            self.test_samples,
            self.train_samples,
        )
    }
}

/// A classifier's report part from its train/test split and what its f32
/// and int8 blobs measured; with `dir`, draws `loss.png` (training loss and
/// test accuracy per epoch) and `confusion.png` (int8) there.
pub fn finish<S>(
    spec: &Spec<S>,
    (train, test): (&impl Labelled, &impl Labelled),
    (f32, int8): (&Accuracy, &Accuracy),
    history: &History,
    plots: Option<&ExportDir>,
) -> Result<Classifier> {
    let class_names = train.class_names();
    if let Some(dir) = plots {
        let title = &spec.name;
        plot(dir, "loss.png", |path| {
            crate::plot::loss_curve(path, title, &history.curves("test accuracy (%)"))
        });
        plot(dir, "confusion.png", |path| {
            crate::plot::confusion_matrix(
                path,
                &format!("{title} int8, test split"),
                class_names,
                &int8.confusion,
            )
        });
    }
    Ok(Classifier {
        dataset: spec.dataset()?.path.display().to_string(),
        classes: class_names.to_vec(),
        train_samples: train.count(),
        test_samples: test.count(),
        f32_accuracy: f32.accuracy,
        int8_accuracy: int8.accuracy,
        train_loss: history.train_loss.clone(),
        validation_loss: history.validation_loss.clone(),
        restored_epoch: history.restored_epoch,
    })
}
