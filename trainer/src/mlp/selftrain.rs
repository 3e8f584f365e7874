//! Self-training (semi-supervised): train the spec's MLP on a small labelled
//! share of the training split, label the rest with its confident predictions
//! (pseudo-labels), retrain from scratch on both, and repeat.
//!
//! The report compares test accuracy (runtime, f32 blob) of the model trained
//! on the labelled share alone with the final self-trained one; the exported
//! blobs (f32 and int8) are the self-trained model's.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::classifier::Classifier;
use crate::dataset::{table::split_stratified, Dataset, Normalization};
use crate::dense::Mlp;
use crate::mlp::spec::{MlpSpec, SelfTrainingSpec};
use crate::mlp::train::classifier;
use crate::report::{Blobs, Details, Kind};
use crate::spec::Spec;

/// Outcome of self-training.
#[derive(Debug, Clone)]
pub struct SelfTrained {
    /// The model of the last round.
    pub model: Mlp,
    /// The model trained on the labelled share alone.
    pub baseline: Mlp,
    /// Rows that kept their label.
    pub labelled: usize,
    /// Pseudo-labelled rows used in the last round.
    pub pseudo: usize,
    /// How many of those were right.
    pub pseudo_correct: usize,
    /// Per round.
    pub rounds: Vec<Round>,
}

/// One pseudo-labelling round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// 1-based.
    pub round: usize,
    /// Rows pseudo-labelled in this round.
    pub pseudo_labels: usize,
    /// How many of them were right.
    pub pseudo_labels_correct: usize,
}

/// Run self-training on `train` (labels of the unlabelled share are used only
/// to report pseudo-label accuracy), watching `test`.
pub fn self_train(
    spec: &Spec<MlpSpec>,
    st: &SelfTrainingSpec,
    train: &Dataset,
    test: &Dataset,
) -> Result<SelfTrained> {
    let (training, seed) = (spec.training()?, spec.dataset()?.seed);
    // split_stratified keeps `fraction` of each class in its second half.
    let (unlabelled, labelled) = split_stratified(train, st.labelled_fraction, seed ^ 0x5e1f);
    // Inputs of every training row are known: normalize with all of them.
    let normalization = Normalization::per_feature(train);
    let fit = |set: &Dataset| {
        classifier(
            &spec.family.layers,
            training,
            normalization.clone(),
            set,
            test,
            false,
        )
        .map(|(m, _)| m)
    };
    let baseline = fit(&labelled)?;
    let mut model = baseline.clone();
    let classes = train.class_count();
    let mut rounds = Vec::new();
    let (mut pseudo, mut pseudo_correct) = (0, 0);
    for round in 0..st.rounds {
        let probs = model.predict(&unlabelled.features)?;
        let mut picked = Vec::new();
        let mut guesses = Vec::new();
        for (i, p) in probs.chunks_exact(classes).enumerate() {
            let best = runtime::argmax(p);
            if p[best] >= st.confidence {
                picked.push(i);
                guesses.push(best);
            }
        }
        let mut extra = unlabelled.subset(&picked);
        pseudo_correct = extra
            .labels
            .iter()
            .zip(&guesses)
            .filter(|(a, b)| a == b)
            .count();
        pseudo = picked.len();
        extra.labels = guesses;
        let mut combined = labelled.clone();
        combined.features.extend_from_slice(&extra.features);
        combined.labels.extend_from_slice(&extra.labels);
        model = fit(&combined)?;
        rounds.push(Round {
            round: round + 1,
            pseudo_labels: pseudo,
            pseudo_labels_correct: pseudo_correct,
        });
    }
    Ok(SelfTrained {
        model,
        baseline,
        labelled: labelled.len(),
        pseudo,
        pseudo_correct,
        rounds,
    })
}

/// A self-training report: the classifier's figures (of the self-trained
/// model), and how the labels spread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfTrainingReport {
    /// `kind = "self-training"`, runs f32 and int8.
    #[serde(flatten)]
    pub kind: Kind,
    /// The exported (self-trained) model's figures.
    #[serde(flatten)]
    pub classifier: Classifier,
    /// How the labels spread.
    pub self_training: Figures,
}

/// The `self_training` object of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// As in the spec.
    pub labelled_fraction: f64,
    /// Rows that kept their label.
    pub labelled_rows: usize,
    /// As in the spec.
    pub confidence: f64,
    /// Per round.
    pub rounds: Vec<Round>,
    /// Test accuracy (f32 blob) of the model trained on the labelled rows alone.
    pub labelled_only_accuracy: f64,
    /// Test accuracy (f32 blob) of the self-trained model.
    pub self_trained_accuracy: f64,
    /// Pseudo-labels of the last round.
    pub pseudo_labels: usize,
    /// How many of them were right.
    pub pseudo_labels_correct: usize,
}

impl Details for SelfTrainingReport {
    fn label(&self) -> Option<&str> {
        Some(&self.kind.kind)
    }

    fn summary(&self, _: Blobs<'_>) -> String {
        let st = &self.self_training;
        format!(
            "{:.2}% with pseudo-labels, {:.2}% on the labelled {:.0}% alone; int8 {:.2}%",
            100.0 * st.self_trained_accuracy,
            100.0 * st.labelled_only_accuracy,
            100.0 * st.labelled_fraction,
            100.0 * self.classifier.int8_accuracy,
        )
    }
}
