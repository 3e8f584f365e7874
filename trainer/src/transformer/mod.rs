//! The transformer family: small transformers, classifiers (mean pooling
//! or a class token) and a causal next-value forecaster, trained with
//! candle and exported as f32 and int8 blobs of the runtime's transformer
//! layers (format v3).
//!
//! | module | concern |
//! | --- | --- |
//! | [`spec`] | the `[transformer]` table and its validation |
//! | [`model`] | parameters, initialisation and the candle forward pass (the math contract) |
//! | [`train`] | examples and targets on the shared loop (Adam) |
//! | [`quantize`] | post-training int8 quantization to the runtime's integer layers |
//! | [`export`] | the f32 blob, a classifier's data |
//! | [`forecast`] | the causal forecaster: data, stream run, errors and report |
//!
//! Classifiers end like every classifier ([`crate::classifier`]); reported
//! accuracies and errors always come from running the exported blobs
//! through the runtime.

pub mod export;
pub mod forecast;
pub mod model;
pub mod quantize;
pub mod spec;
pub mod train;

use std::fmt;

use anyhow::Result;
use runtime::Numeric;
use serde::{Deserialize, Serialize};

use crate::blob::Blob;
use crate::classifier::{self, Accuracy, Classifier};
use crate::family::{f32_and_int8, BlobRun, Family, Trained};
use crate::io::ExportDir;
use crate::quantize::spread_rows;
use crate::report::{Blobs, Details, Evaluation, Metric};
use crate::spec::{Spec, SpecError, Tables};

pub use export::ClassifierData;
pub use forecast::{Forecast, ForecastData, ForecasterReport};
pub use model::{Config, Transformer};
pub use spec::{PoolKind, PositionKind, TransformerSpec};
use train::{Examples, Targets};

/// The transformer family (kind `transformer`).
#[derive(Debug, Clone, Copy)]
pub struct TransformerFamily;

/// A transformer's data: rows to classify, or a series to forecast.
#[derive(Debug, Clone)]
pub enum TransformerData {
    /// `pool = "mean"` or `"cls"`.
    Classifier(ClassifierData),
    /// `pool = "causal"`.
    Forecaster(ForecastData),
}

/// What a transformer blob measures.
#[derive(Debug, Clone)]
pub enum TransformerMetric {
    /// A classifier's test accuracy.
    Accuracy(Accuracy),
    /// A forecaster's stream.
    Forecast(Forecast),
}

impl Metric for TransformerMetric {
    fn blob_figure(&self) -> f64 {
        match self {
            TransformerMetric::Accuracy(a) => a.blob_figure(),
            TransformerMetric::Forecast(f) => f.blob_figure(),
        }
    }
}

impl fmt::Display for TransformerMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransformerMetric::Accuracy(a) => a.fmt(f),
            TransformerMetric::Forecast(x) => x.fmt(f),
        }
    }
}

/// The transformer family's report part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TransformerReport {
    /// A classifier's.
    Classifier(Classifier),
    /// The forecaster's (boxed: it is much the larger).
    Forecaster(Box<ForecasterReport>),
}

impl Details for TransformerReport {
    fn label(&self) -> Option<&str> {
        match self {
            TransformerReport::Classifier(_) => Some("transformer"),
            TransformerReport::Forecaster(r) => r.label(),
        }
    }

    fn summary(&self, blobs: Blobs<'_>) -> String {
        match self {
            TransformerReport::Classifier(c) => c.summary(blobs),
            TransformerReport::Forecaster(r) => r.summary(blobs),
        }
    }
}

impl Family for TransformerFamily {
    const KINDS: &'static [&'static str] = &["transformer"];
    type Spec = TransformerSpec;
    type Data = TransformerData;
    type Model = Transformer;
    type Metric = TransformerMetric;
    type Details = TransformerReport;

    fn parse(&self, spec: &Spec, tables: &mut Tables) -> Result<TransformerSpec, SpecError> {
        spec::parse(spec, tables)
    }

    fn load(&self, spec: &Spec<TransformerSpec>) -> Result<TransformerData> {
        Ok(match spec.family.pool {
            PoolKind::Causal => TransformerData::Forecaster(ForecastData::load(spec)?),
            _ => TransformerData::Classifier(export::classifier_data(spec)?),
        })
    }

    fn train(
        &self,
        spec: &Spec<TransformerSpec>,
        data: &TransformerData,
        progress: bool,
    ) -> Result<Trained<Transformer>> {
        let (t, training) = (&spec.family, spec.training()?);
        let (model, history) = match data {
            TransformerData::Classifier(d) => {
                let config = Config::new(t, d.train.feature_count, d.train.class_count())?;
                let init = Transformer::init(config, d.normalization.clone(), training.seed);
                fn examples(set: &crate::dataset::Dataset) -> Examples<'_> {
                    Examples {
                        inputs: &set.features,
                        targets: Targets::Classes(&set.labels),
                    }
                }
                train::train(
                    &init,
                    examples(&d.train),
                    examples(&d.test),
                    training,
                    progress,
                )?
            }
            TransformerData::Forecaster(d) => {
                let config = Config::new(t, t.tokens, 1)?;
                let mut init = Transformer::init(config, d.normalization.clone(), training.seed);
                let (inputs, targets) = &d.windows;
                // Start the head at the mean next value.
                init.head_bias[0] = targets.iter().sum::<f32>() / targets.len().max(1) as f32;
                let (test_inputs, test_targets) = &d.test_windows;
                train::train(
                    &init,
                    Examples {
                        inputs,
                        targets: Targets::Next(targets),
                    },
                    Examples {
                        inputs: test_inputs,
                        targets: Targets::Next(test_targets),
                    },
                    training,
                    progress,
                )?
            }
        };
        Ok(Trained { model, history })
    }

    fn blob(
        &self,
        spec: &Spec<TransformerSpec>,
        data: &TransformerData,
        model: &Transformer,
        numeric: Numeric,
    ) -> Result<Blob> {
        if numeric == Numeric::F32 {
            return Ok(export::f32_blob(model));
        }
        let n = spec.quantization.calibration_samples;
        let calibration = match data {
            TransformerData::Classifier(d) => {
                spread_rows(&d.train.features, d.train.feature_count, n)
            }
            TransformerData::Forecaster(d) => spread_rows(&d.windows.0, d.tokens, n),
        };
        Ok(quantize::quantize(model, &calibration)?.blob(model))
    }

    fn evaluate(
        &self,
        _: &Spec<TransformerSpec>,
        data: &TransformerData,
        blob: &[u8],
    ) -> Result<Evaluation<TransformerMetric>> {
        Ok(match data {
            TransformerData::Classifier(d) => {
                let e = classifier::evaluate_rows(blob, &d.test)?;
                Evaluation {
                    metric: TransformerMetric::Accuracy(e.metric),
                    vectors: e.vectors,
                }
            }
            TransformerData::Forecaster(d) => {
                let forecast = forecast::run_forecast(blob, d)?;
                Evaluation {
                    vectors: forecast.run.vectors.clone(),
                    metric: TransformerMetric::Forecast(forecast),
                }
            }
        })
    }

    fn extra_files(&self, spec: &Spec<TransformerSpec>) -> &'static [&'static str] {
        match spec.family.pool {
            PoolKind::Causal => &["errors.csv"],
            _ => &[],
        }
    }

    fn finish(
        &self,
        spec: &Spec<TransformerSpec>,
        data: &TransformerData,
        trained: &Trained<Transformer>,
        runs: &[BlobRun<TransformerMetric>],
        dir: &ExportDir,
    ) -> Result<TransformerReport> {
        Ok(match (data, f32_and_int8(runs)?) {
            (
                TransformerData::Classifier(d),
                (TransformerMetric::Accuracy(f32), TransformerMetric::Accuracy(int8)),
            ) => TransformerReport::Classifier(classifier::finish(
                spec,
                (&d.train, &d.test),
                (f32, int8),
                &trained.history,
                Some(dir),
            )?),
            (
                TransformerData::Forecaster(d),
                (TransformerMetric::Forecast(f32), TransformerMetric::Forecast(int8)),
            ) => TransformerReport::Forecaster(Box::new(forecast::finish(
                spec,
                d,
                &trained.model,
                &trained.history,
                (f32, int8),
                dir,
            )?)),
            _ => anyhow::bail!("a classifier's and a forecaster's runs mixed"),
        })
    }
}
