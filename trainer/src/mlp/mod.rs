//! The MLP family: a dense stack ([`crate::dense`]: dense layers,
//! activations, residual blocks) classifying the rows of a CSV.
//!
//! | module | concern |
//! | --- | --- |
//! | [`spec`] | `[model]` and `[self_training]` |
//! | [`train`] | supervised training of the stack on the shared loop |
//! | [`selftrain`] | `kind = "self-training"`: pseudo-label rounds and their report |
//!
//! Model, quantization and blob layers are the dense stack's; data, the
//! loop, evaluation, report and plots are shared ([`crate::classifier`]).
//! Both blobs are f32 and int8; int8 is calibrated on the first
//! `quantization.calibration_samples` training rows.

pub mod selftrain;
pub mod spec;
pub mod train;

use anyhow::Result;
use runtime::Numeric;
use serde::{Deserialize, Serialize};

use crate::blob::Blob;
use crate::classifier::{self, Accuracy, Classifier};
use crate::dataset::{self, Dataset, Normalization};
use crate::dense::{quantize, Mlp};
use crate::family::{f32_and_int8, BlobRun, Family, Trained, F32_AND_INT8};
use crate::io::ExportDir;
use crate::report::{Blobs, Details, Evaluation, Kind};
use crate::spec::{Spec, SpecError, Tables};

pub use selftrain::{SelfTrained, SelfTrainingReport};
pub use spec::{MlpSpec, SelfTrainingSpec};

/// The MLP family (kinds `mlp` and `self-training`).
#[derive(Debug, Clone, Copy)]
pub struct MlpFamily;

/// The train and test rows of a CSV `[dataset]`.
#[derive(Debug, Clone)]
pub struct MlpData {
    /// Training rows.
    pub train: Dataset,
    /// Test rows (and test vectors).
    pub test: Dataset,
}

/// A trained MLP, and for self-training how it came about.
#[derive(Debug, Clone)]
pub struct MlpModel {
    /// The exported model.
    pub mlp: Mlp,
    /// `kind = "self-training"`.
    pub self_trained: Option<SelfTrained>,
}

/// The MLP family's report part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MlpReport {
    /// `kind = "self-training"` (first: its fields include a classifier's).
    SelfTraining(SelfTrainingReport),
    /// `kind = "mlp"`.
    Classifier(Classifier),
}

impl MlpReport {
    /// The classifier figures (of the self-trained model for self-training).
    pub fn classifier(&self) -> &Classifier {
        match self {
            MlpReport::SelfTraining(r) => &r.classifier,
            MlpReport::Classifier(c) => c,
        }
    }
}

impl Details for MlpReport {
    fn label(&self) -> Option<&str> {
        match self {
            MlpReport::SelfTraining(r) => r.label(),
            MlpReport::Classifier(c) => c.label(),
        }
    }

    fn summary(&self, blobs: Blobs<'_>) -> String {
        match self {
            MlpReport::SelfTraining(r) => r.summary(blobs),
            MlpReport::Classifier(c) => c.summary(blobs),
        }
    }
}

impl Family for MlpFamily {
    const KINDS: &'static [&'static str] = &["mlp", "self-training"];
    type Spec = MlpSpec;
    type Data = MlpData;
    type Model = MlpModel;
    type Metric = Accuracy;
    type Details = MlpReport;

    fn parse(&self, spec: &Spec, tables: &mut Tables) -> Result<MlpSpec, SpecError> {
        spec::parse(spec, tables)
    }

    fn load(&self, spec: &Spec<MlpSpec>) -> Result<MlpData> {
        let (train, test) = dataset::load_split(spec.dataset()?, &spec.dir)?;
        Ok(MlpData { train, test })
    }

    fn train(
        &self,
        spec: &Spec<MlpSpec>,
        data: &MlpData,
        progress: bool,
    ) -> Result<Trained<MlpModel>> {
        if let Some(st) = &spec.family.self_training {
            let out = selftrain::self_train(spec, st, &data.train, &data.test)?;
            return Ok(Trained::fitted(MlpModel {
                mlp: out.model.clone(),
                self_trained: Some(out),
            }));
        }
        let (mlp, history) = train::classifier(
            &spec.family.layers,
            spec.training()?,
            Normalization::per_feature(&data.train),
            &data.train,
            &data.test,
            progress,
        )?;
        Ok(Trained {
            model: MlpModel {
                mlp,
                self_trained: None,
            },
            history,
        })
    }

    fn blob(
        &self,
        spec: &Spec<MlpSpec>,
        data: &MlpData,
        model: &MlpModel,
        numeric: Numeric,
    ) -> Result<Blob> {
        let mlp = &model.mlp;
        match numeric {
            Numeric::F32 => mlp.f32_blob(),
            Numeric::Int8 => {
                let train = &data.train;
                let rows = spec.quantization.calibration_samples.min(train.len());
                let calibration = mlp.normalize(&train.features[..rows * train.feature_count]);
                Ok(quantize::quantize(mlp, &calibration)?.blob(mlp))
            }
        }
    }

    fn evaluate(
        &self,
        _: &Spec<MlpSpec>,
        data: &MlpData,
        blob: &[u8],
    ) -> Result<Evaluation<Accuracy>> {
        classifier::evaluate_rows(blob, &data.test)
    }

    fn finish(
        &self,
        spec: &Spec<MlpSpec>,
        data: &MlpData,
        trained: &Trained<MlpModel>,
        runs: &[BlobRun<Accuracy>],
        dir: &ExportDir,
    ) -> Result<MlpReport> {
        let split = (&data.train, &data.test);
        let accuracies = f32_and_int8(runs)?;
        let Some(out) = &trained.model.self_trained else {
            let report = classifier::finish(spec, split, accuracies, &trained.history, Some(dir))?;
            return Ok(MlpReport::Classifier(report));
        };
        let Some(st) = &spec.family.self_training else {
            anyhow::bail!("a self-trained model without [self_training]");
        };
        let classifier = classifier::finish(spec, split, accuracies, &trained.history, None)?;
        let baseline = out.baseline.f32_blob()?.encode()?;
        let baseline = classifier::evaluate_rows(&baseline, &data.test)?.metric;
        let self_trained_accuracy = accuracies.0.accuracy;
        Ok(MlpReport::SelfTraining(SelfTrainingReport {
            kind: Kind::new(&spec.kind, F32_AND_INT8),
            classifier,
            self_training: selftrain::Figures {
                labelled_fraction: st.labelled_fraction,
                labelled_rows: out.labelled,
                confidence: f64::from(st.confidence),
                rounds: out.rounds.clone(),
                labelled_only_accuracy: baseline.accuracy,
                self_trained_accuracy,
                pseudo_labels: out.pseudo,
                pseudo_labels_correct: out.pseudo_correct,
            },
        }))
    }
}
