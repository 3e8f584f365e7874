//! Self-training (semi-supervised): train the spec's MLP on a small labelled
//! share of the training split, label the rest with its confident predictions
//! (pseudo-labels), retrain from scratch on both, and repeat.
//!
//! The spec is an ordinary MLP spec plus `kind = "self-training"` and
//!
//! ```toml
//! [self_training]
//! labelled_fraction = 0.1   # share of each class of the training split that keeps its label
//! confidence = 0.95         # minimum softmax probability for a pseudo-label
//! rounds = 3                # pseudo-labelling rounds
//! ```
//!
//! The report compares test accuracy (runtime, f32 blob) of the model trained
//! on the labelled share alone with the final self-trained one; the exported
//! blobs (f32 and int8) are the self-trained model's.

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_json::json;

use crate::data::{self, Dataset};
use crate::export::{self, Report};
use crate::quantize::quantize_mlp;
use crate::spec::{self, ModelSpec};
use crate::train::{self, Mlp};

/// `[self_training]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfTrainingSpec {
    #[serde(default = "tenth")]
    pub labelled_fraction: f64,
    #[serde(default = "conf")]
    pub confidence: f32,
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

/// Split the file into the MLP spec and the `[self_training]` table.
pub fn load(path: &Path) -> Result<(ModelSpec, SelfTrainingSpec)> {
    let text = crate::io::read_text(path, "spec")?;
    let mut table: toml::Table = text
        .parse()
        .with_context(|| format!("{}: not valid TOML", path.display()))?;
    table.remove("kind");
    let st = match table.remove("self_training") {
        Some(v) => v
            .try_into::<SelfTrainingSpec>()
            .map_err(|e| anyhow!("{}: self_training: {}", path.display(), e.message()))?,
        None => bail!(
            "{}: kind \"self-training\" needs a [self_training] table",
            path.display()
        ),
    };
    if !(st.labelled_fraction > 0.0 && st.labelled_fraction < 1.0) {
        bail!(
            "{}: self_training.labelled_fraction must be between 0 and 1",
            path.display()
        );
    }
    let mlp = spec::parse_spec(&toml::to_string(&table)?, path)?;
    Ok((mlp, st))
}

/// Outcome of self-training.
pub struct SelfTrained {
    pub model: Mlp,
    pub baseline: Mlp,
    pub labelled: usize,
    /// Pseudo-labelled rows used in the last round, and how many of them were correct.
    pub pseudo: usize,
    pub pseudo_correct: usize,
    pub rounds: Vec<serde_json::Value>,
}

/// Run self-training on `train` (labels of the unlabelled share are used only
/// to report pseudo-label accuracy), watching `test`.
pub fn self_train(
    spec: &ModelSpec,
    st: &SelfTrainingSpec,
    train: &Dataset,
    test: &Dataset,
) -> Result<SelfTrained> {
    // split_stratified keeps `fraction` of each class in its second half.
    let (unlabelled, labelled) =
        data::split_stratified(train, st.labelled_fraction, spec.dataset.seed ^ 0x5e1f);
    // Inputs of every training row are known: normalize with all of them.
    let normalization = data::fit_normalization(train);
    let fit = |set: &Dataset| {
        train::train(
            &spec.model,
            &spec.training,
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
        rounds.push(json!({"round": round + 1, "pseudo_labels": pseudo, "pseudo_labels_correct": pseudo_correct}));
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

/// Export a self-training spec: the MLP files of the self-trained model, and a
/// report with both accuracies. Reuses an up-to-date export when `reuse`.
pub fn export_self_training(
    spec_path: &Path,
    out_root: &Path,
    reuse: bool,
) -> Result<serde_json::Value> {
    let (spec, st) = load(spec_path)?;
    let fingerprint = export::fingerprint(spec_path, &spec.data_files())?;
    let reuse = reuse.then_some(&export::CLASSIFIER_FILES[..]);
    export::write_model(out_root, &spec.name, &fingerprint.clone(), reuse, |dir| {
        let (train_set, test_set) = export::load_split(&spec)?;
        let started = Instant::now();
        let out = self_train(&spec, &st, &train_set, &test_set)?;
        let seconds = started.elapsed().as_secs_f64();
        let calibration_rows = spec.quantization.calibration_samples.min(train_set.len());
        let calibration = out
            .model
            .normalize(&train_set.features[..calibration_rows * train_set.feature_count]);
        let quantized = quantize_mlp(&out.model, &calibration)?;
        let f32_model = export::f32_blob(&out.model)?;
        let int8_model = export::int8_blob(&quantized, &out.model)?;
        let f32_eval = export::evaluate(&f32_model, &test_set)?;
        let int8_eval = export::evaluate(&int8_model, &test_set)?;
        let baseline_eval = export::evaluate(&export::f32_blob(&out.baseline)?, &test_set)?;
        let report = Report {
            name: spec.name.clone(),
            dataset: spec.dataset.path.display().to_string(),
            classes: train_set.class_names.clone(),
            train_samples: train_set.len(),
            test_samples: test_set.len(),
            f32_accuracy: f32_eval.accuracy,
            int8_accuracy: int8_eval.accuracy,
            f32: export::blob_report(&f32_model, f32_eval.accuracy)?,
            int8: export::blob_report(&int8_model, int8_eval.accuracy)?,
            train_loss: Vec::new(),
            training_seconds: seconds,
            fingerprint,
        };
        let mut value = serde_json::to_value(&report)?;
        value["kind"] = json!("self-training");
        value["runs"] = json!(["f32", "int8"]);
        value["self_training"] = json!({
            "labelled_fraction": st.labelled_fraction,
            "labelled_rows": out.labelled,
            "confidence": st.confidence,
            "rounds": out.rounds,
            "labelled_only_accuracy": baseline_eval.accuracy,
            "self_trained_accuracy": f32_eval.accuracy,
            "pseudo_labels": out.pseudo,
            "pseudo_labels_correct": out.pseudo_correct,
        });
        export::write_export(
            dir,
            (&f32_model, &f32_eval),
            (&int8_model, &int8_eval),
            None,
        )?;
        Ok(value)
    })
}
