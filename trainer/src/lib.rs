//! Trainer: fit models on real data, quantize them and export blobs for the
//! runtime.
//!
//! Imports run one way, from the bottom up:
//!
//! 1. [`io`], [`limits`], [`metrics`], [`plot`]: files, the runtime's
//!    capacities, figures, pictures;
//! 2. [`dataset`] (reading and splitting data, the input normalization),
//!    [`quantize`] (the affine int8 arithmetic), [`blob`] (owned layers and
//!    the one blob writer), [`runner`] (running blobs with the runtime:
//!    every reported figure is the chip's), [`train`] (the candle training
//!    loop), [`spec`] (a spec file parsed once), [`report`] (what an export
//!    reports), [`export`] (writing an export all or nothing);
//! 3. [`family`] (the [`Family`](family::Family) trait and the one pipeline
//!    every family goes through), [`classifier`] and [`dense`] (what several
//!    families build on: the classifier's end, the dense stack);
//! 4. the families, one folder each, registered in [`FAMILIES`];
//! 5. the command line (`main.rs`), through [`export_spec`] and
//!    [`evaluate_spec`].

pub mod blob;
pub mod classifier;
pub mod dataset;
pub mod dense;
pub mod export;
pub mod family;
pub mod io;
pub mod limits;
pub mod metrics;
pub mod plot;
pub mod quantize;
pub mod report;
pub mod runner;
pub mod spec;
pub mod train;

use std::path::Path;

use anyhow::Result;

// The families, one folder each.
pub mod classical;
pub mod cnn;
pub mod mlp;
pub mod recurrent;
pub mod seq2seq;
pub mod transformer;

/// Every model family, each plugged in through [`family::Family`]: adding
/// one is its folder (declared above) and its line here.
pub static FAMILIES: &[&dyn family::Plugin] = &[
    // Dense stacks on tabular data (kinds `mlp`, `self-training`).
    &mlp::MlpFamily,
    // RNN, LSTM and GRU classifiers of sequences (kind `recurrent`).
    &recurrent::RecurrentFamily,
    // Transformer classifiers and a causal forecaster (kind `transformer`).
    &transformer::TransformerFamily,
    // Convolutional classifiers of images and series (kind `cnn`).
    &cnn::CnnFamily,
    // Recurrent encoder-decoders with attention, multi-step forecasters
    // (kind `seq2seq`).
    &seq2seq::Seq2SeqFamily,
    // Clustering and anomaly detectors (kinds `kmeans`, `hierarchical`,
    // `pca`, `autoencoder`, `isolation-forest`).
    &classical::ClassicalFamily,
];

/// Train and export the spec at `spec` into `out_root/<name>/` (with
/// progress), or with `reuse` keep an export that is up to date; the
/// one-line summary.
pub fn export_spec(spec: &Path, out_root: &Path, reuse: bool) -> Result<String> {
    export_spec_with(spec, out_root, reuse, false)
}

/// [`export_spec`], silent while training when `quiet`.
pub fn export_spec_with(spec: &Path, out_root: &Path, reuse: bool, quiet: bool) -> Result<String> {
    let (parsed, tables) = spec::read(spec)?;
    family::find(FAMILIES, &parsed)?.export(parsed, tables, out_root, reuse, quiet)
}

/// Run `blob` with the runtime over the test data of the spec at `spec`;
/// what it measured, as `trainer eval` prints it after the blob's name.
pub fn evaluate_spec(spec: &Path, blob: &[u8]) -> Result<String> {
    let (parsed, tables) = spec::read(spec)?;
    family::find(FAMILIES, &parsed)?.evaluate(parsed, tables, blob)
}
