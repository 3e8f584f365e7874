//! The sequence-to-sequence family (kind `seq2seq`): a recurrent encoder
//! reads a window of `window` steps, a decoder cell continues its top
//! layer's state and generates `horizon` steps, each fed its own previous
//! output, attending over the encoder's outputs at every step (Luong's
//! dot-product attention). Multi-step forecasting: from the last readings
//! of a sensor, the next ones.
//!
//! | module | concern |
//! | --- | --- |
//! | [`spec`] | the `[seq2seq]` table and its validation |
//! | [`data`] | windows and what follows them, from a series or `.ts` sequences |
//! | [`model`] | parameters and the candle forward pass (the math contract) |
//! | [`train`] | initialisation, teacher forcing with scheduled sampling, the shared loop |
//! | [`export`] | the f32 blob and the calibrated int8 blob |
//! | [`forecast`] | runs over the test windows, baselines, report and plots |
//!
//! Blobs are the runtime's recurrent layers and one `DecoderF32` /
//! `DecoderI8` layer; the runtime forecasts with `Model::forecast_*` (or
//! `encode_*`, then `decode_*` step by step). Every reported error comes
//! from running the exported blobs through the runtime.

pub mod data;
pub mod export;
pub mod forecast;
pub mod model;
pub mod spec;
pub mod train;

use std::path::PathBuf;

use anyhow::Result;
use runtime::Numeric;

use crate::blob::Blob;
use crate::family::{f32_and_int8, BlobRun, Family, Trained};
use crate::io::ExportDir;
use crate::quantize::spread_rows;
use crate::report::Evaluation;
use crate::spec::{Spec, SpecError, Tables};

pub use data::{Seq2SeqData, Windows};
pub use forecast::{Forecasts, Seq2SeqReport};
pub use model::Seq2Seq;
pub use spec::Seq2SeqSpec;

/// The sequence-to-sequence family (kind `seq2seq`).
#[derive(Debug, Clone, Copy)]
pub struct Seq2SeqFamily;

impl Family for Seq2SeqFamily {
    const KINDS: &'static [&'static str] = &["seq2seq"];
    type Spec = Seq2SeqSpec;
    type Data = Seq2SeqData;
    type Model = Seq2Seq;
    type Metric = Forecasts;
    type Details = Seq2SeqReport;

    fn parse(&self, spec: &Spec, tables: &mut Tables) -> Result<Seq2SeqSpec, SpecError> {
        spec::parse(spec, tables)
    }

    fn inputs(&self, spec: &Spec<Seq2SeqSpec>) -> Vec<PathBuf> {
        spec.family.baseline_forecaster.iter().cloned().collect()
    }

    fn load(&self, spec: &Spec<Seq2SeqSpec>) -> Result<Seq2SeqData> {
        Seq2SeqData::load(spec)
    }

    fn train(
        &self,
        spec: &Spec<Seq2SeqSpec>,
        data: &Seq2SeqData,
        progress: bool,
    ) -> Result<Trained<Seq2Seq>> {
        let (model, history) = train::train(&spec.family, spec.training()?, data, progress)?;
        Ok(Trained { model, history })
    }

    fn blob(
        &self,
        spec: &Spec<Seq2SeqSpec>,
        data: &Seq2SeqData,
        model: &Seq2Seq,
        numeric: Numeric,
    ) -> Result<Blob> {
        match numeric {
            Numeric::F32 => Ok(export::f32_blob(model)),
            Numeric::Int8 => {
                let calibration = spread_rows(
                    &data.train.inputs,
                    model.window * model.channels,
                    spec.quantization.calibration_samples,
                );
                export::int8_blob(model, &calibration)
            }
        }
    }

    fn evaluate(
        &self,
        spec: &Spec<Seq2SeqSpec>,
        data: &Seq2SeqData,
        blob: &[u8],
    ) -> Result<Evaluation<Forecasts>> {
        let forecasts = forecast::evaluate(blob, data, &spec.family)?;
        Ok(Evaluation {
            vectors: forecasts.run.vectors.clone(),
            metric: forecasts,
        })
    }

    fn finish(
        &self,
        spec: &Spec<Seq2SeqSpec>,
        data: &Seq2SeqData,
        trained: &Trained<Seq2Seq>,
        runs: &[BlobRun<Forecasts>],
        dir: &ExportDir,
    ) -> Result<Seq2SeqReport> {
        forecast::finish(
            spec,
            data,
            (&trained.model, &trained.history),
            f32_and_int8(runs)?,
            dir,
        )
    }
}
