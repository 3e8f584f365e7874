//! An encoder-decoder's data: windows of `window` steps and the `horizon`
//! steps after each, cut from a univariate series (`[series]`: training
//! windows from the normal training series, test windows from the test part
//! of the test series) or from every sequence of a `.ts` pair (`[dataset]`).
//! The input normalization is fitted per channel on the training data only.

use std::path::Path;

use anyhow::{bail, Result};

use crate::dataset::{self, Normalization, Sequences};
use crate::limits;
use crate::seq2seq::spec::Seq2SeqSpec;
use crate::spec::Spec;

/// Windows and what follows them, raw values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Windows {
    /// `n x window x channels`, step after step.
    pub inputs: Vec<f32>,
    /// `n x horizon x outputs`: the true next values of the predicted channels.
    pub targets: Vec<f32>,
    /// Per window: the class of its sequence, or for a series 1 when a
    /// forecast point is labelled anomalous (0 otherwise).
    pub labels: Vec<u16>,
    /// Per window: its sequence and the step it starts at (a series is
    /// sequence 0, steps counted in the whole test series).
    pub starts: Vec<(usize, usize)>,
}

impl Windows {
    /// Number of windows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no window.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Windows `starting at step from, from + stride, ...` of one sequence
    /// (`steps x channels`), labelled by `label(first forecast step)`.
    fn cut(
        &mut self,
        sequence: &[f32],
        (channels, window, horizon, stride): (usize, usize, usize, usize),
        (index, first): (usize, usize),
        predict: &[usize],
        label: impl Fn(usize) -> u16,
    ) {
        let steps = sequence.len() / channels;
        let mut s = first;
        while s + window + horizon <= steps {
            self.inputs
                .extend_from_slice(&sequence[s * channels..(s + window) * channels]);
            for t in s + window..s + window + horizon {
                self.targets
                    .extend(predict.iter().map(|&c| sequence[t * channels + c]));
            }
            self.labels.push(label(s + window));
            self.starts.push((index, s));
            s += stride;
        }
    }
}

/// An encoder-decoder's data.
#[derive(Debug, Clone)]
pub struct Seq2SeqData {
    /// Channels per step.
    pub channels: usize,
    /// Per-channel normalization, fitted on the training data.
    pub normalization: Normalization,
    /// Training windows.
    pub train: Windows,
    /// Test windows.
    pub test: Windows,
    /// The test sequences (a series: one), raw, for plots.
    pub test_sequences: Vec<Vec<f32>>,
}

impl Seq2SeqData {
    /// Load the spec's data and cut it into windows.
    pub fn load(spec: &Spec<Seq2SeqSpec>) -> Result<Seq2SeqData> {
        let s = &spec.family;
        let (w, h) = (s.window, s.horizon);
        if let Some(series) = &spec.series {
            let (train, test, _) = dataset::load_series(series, &spec.dir)?;
            let path = spec.dir.join(&series.test);
            check_predict(&path, 1, &s.predict)?;
            // The test series may begin with the training part: test windows
            // start after it.
            let from = if test.values.starts_with(&train.values) {
                train.values.len()
            } else {
                0
            };
            let mut data = Seq2SeqData {
                channels: 1,
                normalization: Normalization::global(&train.values, 1),
                train: Windows::default(),
                test: Windows::default(),
                test_sequences: vec![test.values.clone()],
            };
            data.train.cut(
                &train.values,
                (1, w, h, s.train_stride),
                (0, 0),
                &s.predict,
                |_| 0,
            );
            let anomalous = |at: usize| u16::from(test.anomalous[at..at + h].iter().any(|&a| a));
            data.test.cut(
                &test.values,
                (1, w, h, s.test_stride),
                (0, from),
                &s.predict,
                anomalous,
            );
            check_windows(&spec.dir.join(&series.train), &data.train, s)?;
            check_windows(&path, &data.test, s)?;
            return Ok(data);
        }
        let d = spec.dataset()?;
        let (train, test) = dataset::load_sequences(d, &spec.dir)?;
        let path = spec.dir.join(&d.path);
        limits::check_data(&path, &[("input width (channels)", train.channels)])?;
        check_predict(&path, train.channels, &s.predict)?;
        let c = train.channels;
        let windows = |set: &Sequences, stride| {
            let mut all = Windows::default();
            for (i, (series, &label)) in set.series.iter().zip(&set.labels).enumerate() {
                all.cut(series, (c, w, h, stride), (i, 0), &s.predict, |_| {
                    label as u16
                });
            }
            all
        };
        let data = Seq2SeqData {
            channels: c,
            normalization: Normalization::per_channel(&train),
            train: windows(&train, s.train_stride),
            test: windows(&test, s.test_stride),
            test_sequences: test.series.clone(),
        };
        check_windows(&path, &data.train, s)?;
        let test_path = d.test_path.as_ref().map(|t| spec.dir.join(t));
        check_windows(test_path.as_deref().unwrap_or(&path), &data.test, s)?;
        Ok(data)
    }
}

/// Every predicted channel is one of the data's `channels`.
fn check_predict(path: &Path, channels: usize, predict: &[usize]) -> Result<()> {
    if let Some(c) = predict.iter().find(|&&c| c >= channels) {
        bail!(
            "seq2seq.predict: channel {c} is past the {channels} channel(s) of {}",
            path.display()
        );
    }
    Ok(())
}

/// The data gave at least one window.
fn check_windows(path: &Path, windows: &Windows, s: &Seq2SeqSpec) -> Result<()> {
    if windows.is_empty() {
        bail!(
            "{}: no window of seq2seq.window {} + seq2seq.horizon {} = {} steps fits in the data",
            path.display(),
            s.window,
            s.horizon,
            s.window + s.horizon
        );
    }
    Ok(())
}
