//! The CNN family (kind `cnn`): convolutional classifiers over images
//! (rows of a CSV read as `height x width x channels` maps) and over
//! multichannel series (`.ts` files read as `1 x steps x channels` maps):
//! standard, depthwise, 1-D and pointwise convolutions, batch norm (folded
//! at export), max, average and global average pooling, residual blocks,
//! then a dense head; exported to the runtime's convolution layers
//! (format v4, feature `conv`), f32 and integer-only int8.
//!
//! | module | concern |
//! | --- | --- |
//! | [`spec`] | `[model] input` and `layers`, every shape checked before training |
//! | [`model`] | parameters, the candle forward pass (the math contract), the f32 blob |
//! | [`train`] | initialisation, batch norm and its folding, the shared loop |
//! | [`quantize`] | calibrated int8 layers |
//!
//! Data, evaluation, report and plots are the classifiers' ([`crate::classifier`]);
//! int8 is calibrated on `quantization.calibration_samples` training rows
//! spread over the training split.

pub mod model;
pub mod quantize;
pub mod spec;
pub mod train;

use anyhow::{bail, Result};
use runtime::Numeric;

use crate::blob::Blob;
use crate::classifier::{self, Accuracy, Classifier};
use crate::dataset::{self, Dataset, Normalization};
use crate::family::{f32_and_int8, BlobRun, Family, Trained};
use crate::io::ExportDir;
use crate::report::Evaluation;
use crate::spec::{Spec, SpecError, Tables};

pub use model::Cnn;
pub use spec::CnnSpec;

/// The CNN family (kind `cnn`).
#[derive(Debug, Clone, Copy)]
pub struct CnnFamily;

/// Train and test rows (each one input map, channels last) and their
/// normalization.
#[derive(Debug, Clone)]
pub struct CnnData {
    /// Training rows.
    pub train: Dataset,
    /// Test rows (and test vectors).
    pub test: Dataset,
    /// Per channel, fitted on the training rows, the same at every position.
    pub normalization: Normalization,
}

/// The rows of a CNN spec's `[dataset]`: a CSV split by `test_fraction`,
/// or a `.ts` TRAIN/TEST pair whose series are `steps x channels` rows;
/// either must hold exactly `model.input` values per row.
pub fn load_data(spec: &Spec<CnnSpec>) -> Result<CnnData> {
    let d = spec.dataset()?;
    let path = spec.dir.join(&d.path);
    let input = spec.family.input;
    let (train, test) = if d.is_sequences() {
        let (train, test) = dataset::load_sequences(d, &spec.dir)?;
        if train.channels != input.channels as usize {
            bail!(
                "{}: the series have {} channels but model.input has {}",
                path.display(),
                train.channels,
                input.channels
            );
        }
        (train.to_rows()?, test.to_rows()?)
    } else {
        dataset::load_split(d, &spec.dir)?
    };
    let expected = input.len().unwrap_or(0) as usize;
    for (set, which) in [(&train, "training"), (&test, "test")] {
        if set.feature_count != expected {
            bail!(
                "{}: the {which} inputs have {} values, but model.input = {} holds {expected}{}",
                path.display(),
                set.feature_count,
                spec::show(&input),
                if d.is_sequences() {
                    " (steps x channels)"
                } else {
                    ""
                }
            );
        }
    }
    crate::limits::check_data(&path, &[("class count", train.class_count())])?;
    let channels = input.channels as usize;
    let positions = expected / channels.max(1);
    let normalization = Normalization::per_map_channel(&train.features, channels, positions);
    Ok(CnnData {
        train,
        test,
        normalization,
    })
}

impl Family for CnnFamily {
    const KINDS: &'static [&'static str] = &["cnn"];
    type Spec = CnnSpec;
    type Data = CnnData;
    type Model = Cnn;
    type Metric = Accuracy;
    type Details = Classifier;

    fn parse(&self, spec: &Spec, tables: &mut Tables) -> Result<CnnSpec, SpecError> {
        spec::parse(spec, tables)
    }

    fn load(&self, spec: &Spec<CnnSpec>) -> Result<CnnData> {
        load_data(spec)
    }

    fn train(&self, spec: &Spec<CnnSpec>, data: &CnnData, progress: bool) -> Result<Trained<Cnn>> {
        let (model, history) = train::train(
            &spec.family,
            spec.training()?,
            data.normalization.clone(),
            &data.train,
            &data.test,
            progress,
        )?;
        Ok(Trained { model, history })
    }

    fn blob(
        &self,
        spec: &Spec<CnnSpec>,
        data: &CnnData,
        model: &Cnn,
        numeric: Numeric,
    ) -> Result<Blob> {
        match numeric {
            Numeric::F32 => model.f32_blob(),
            Numeric::Int8 => {
                let rows = dataset::spread_rows(
                    &data.train.features,
                    data.train.feature_count,
                    spec.quantization.calibration_samples,
                );
                quantize::int8_blob(model, &model.normalization.rows(&rows))
            }
        }
    }

    fn evaluate(
        &self,
        _: &Spec<CnnSpec>,
        data: &CnnData,
        blob: &[u8],
    ) -> Result<Evaluation<Accuracy>> {
        classifier::evaluate_rows(blob, &data.test)
    }

    fn finish(
        &self,
        spec: &Spec<CnnSpec>,
        data: &CnnData,
        trained: &Trained<Cnn>,
        runs: &[BlobRun<Accuracy>],
        dir: &ExportDir,
    ) -> Result<Classifier> {
        classifier::finish(
            spec,
            (&data.train, &data.test),
            f32_and_int8(runs)?,
            &trained.history,
            Some(dir),
        )
    }
}
