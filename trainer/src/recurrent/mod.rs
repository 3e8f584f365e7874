//! The recurrent family: Elman RNN, LSTM and GRU layers (stackable) and a
//! dense head, classifying labelled sequences (`.ts` files).
//!
//! | module | concern |
//! | --- | --- |
//! | [`spec`] | `[model] layers`: cells first, then the head |
//! | [`model`] | parameters and the candle forward pass (the math contract) |
//! | [`train`] | initialisation and the shared loop |
//! | [`quantize`] | int8 cells with int16 state, and the head |
//! | [`export`] | the f32 blob |
//!
//! Blobs run whole sequences or one step at a time with caller-owned
//! state; test vectors are sequence vectors (one per test series, each at
//! its own length). With `[model] patch = k` the data is patched when it
//! is loaded ([`crate::dataset::Sequences::patched`]): a blob's step, its
//! normalization and its test vectors are `k` time steps of the file. Data, the loop, evaluation, report and plots are shared
//! ([`crate::classifier`]).

pub mod export;
pub mod model;
pub mod quantize;
pub mod spec;
pub mod train;

use anyhow::Result;
use runtime::Numeric;

use crate::blob::Blob;
use crate::classifier::{self, Accuracy, Classifier};
use crate::dataset::{self, Normalization, Sequences};
use crate::family::{f32_and_int8, BlobRun, Family, Trained};
use crate::io::ExportDir;
use crate::limits;
use crate::report::Evaluation;
use crate::spec::{Spec, SpecError, Tables};

pub use model::{RecurrentParams, SequenceModel};
pub use spec::RecurrentSpec;

/// The recurrent family (kind `recurrent`, and specs without a kind whose
/// layers start with a cell).
#[derive(Debug, Clone, Copy)]
pub struct RecurrentFamily;

/// The train and test sequences.
#[derive(Debug, Clone)]
pub struct RecurrentData {
    /// Training sequences.
    pub train: Sequences,
    /// Test sequences (and test vectors).
    pub test: Sequences,
}

impl Family for RecurrentFamily {
    const KINDS: &'static [&'static str] = &["recurrent"];
    type Spec = RecurrentSpec;
    type Data = RecurrentData;
    type Model = SequenceModel;
    type Metric = Accuracy;
    type Details = Classifier;

    fn parse(&self, spec: &Spec, tables: &mut Tables) -> Result<RecurrentSpec, SpecError> {
        spec::parse(spec, tables)
    }

    fn load(&self, spec: &Spec<RecurrentSpec>) -> Result<RecurrentData> {
        let d = spec.dataset()?;
        let (train, test) = dataset::load_sequences(d, &spec.dir)?;
        let patch = spec.family.patch;
        let in_file = |path: &std::path::Path, e: anyhow::Error| {
            anyhow::anyhow!("{}: model.patch = {patch}: {e}", path.display())
        };
        let train = train
            .patched(patch)
            .map_err(|e| in_file(&spec.dir.join(&d.path), e))?;
        let test_path = d.test_path.as_deref().unwrap_or(&d.path);
        let test = test
            .patched(patch)
            .map_err(|e| in_file(&spec.dir.join(test_path), e))?;
        limits::check_data(
            &spec.dir.join(&d.path),
            &[("input width (channels)", train.channels)],
        )?;
        Ok(RecurrentData { train, test })
    }

    fn train(
        &self,
        spec: &Spec<RecurrentSpec>,
        data: &RecurrentData,
        progress: bool,
    ) -> Result<Trained<SequenceModel>> {
        let (model, history) = train::train(
            &spec.family,
            spec.training()?,
            Normalization::per_channel(&data.train),
            &data.train,
            &data.test,
            progress,
        )?;
        Ok(Trained { model, history })
    }

    fn blob(
        &self,
        spec: &Spec<RecurrentSpec>,
        data: &RecurrentData,
        model: &SequenceModel,
        numeric: Numeric,
    ) -> Result<Blob> {
        match numeric {
            Numeric::F32 => export::f32_blob(model),
            Numeric::Int8 => {
                let calibration: Vec<&[f32]> = data
                    .train
                    .series
                    .iter()
                    .take(spec.quantization.calibration_samples)
                    .map(Vec::as_slice)
                    .collect();
                quantize::int8_blob(model, &calibration)
            }
        }
    }

    fn evaluate(
        &self,
        _: &Spec<RecurrentSpec>,
        data: &RecurrentData,
        blob: &[u8],
    ) -> Result<Evaluation<Accuracy>> {
        classifier::evaluate_sequences(blob, &data.test)
    }

    fn finish(
        &self,
        spec: &Spec<RecurrentSpec>,
        data: &RecurrentData,
        trained: &Trained<SequenceModel>,
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
