//! Running blobs with the runtime itself, on the host: every figure a report
//! gives comes from here, so it is the chip's. Each run also writes the test
//! vectors the firmware checks against ([`runtime::TestVectors`]): the
//! inputs as the chip takes them (raw f32, or already-quantized int8), the
//! runtime's outputs, and a u16 label per vector.
//!
//! Four ways in: one row per vector ([`run_rows`]), one whole sequence per
//! vector through a recurrent model ([`run_sequences`]; sequence vectors
//! with a step-count trailer), one stream step by step through a causal
//! model's key/value cache ([`run_stream`]; one sequence vector), and one
//! window per vector through an encoder-decoder, forecasting its whole
//! horizon ([`run_forecasts`]). [`roll_out`] runs a causal one-step
//! forecaster over a horizon, fed its own predictions.

use anyhow::{anyhow, bail, Result};
use runtime::{Model, Numeric, TestVectors};

use crate::blob::le_bytes;

/// Load a blob the trainer just wrote.
pub fn load(blob: &[u8]) -> Result<Model<'_>> {
    Model::from_bytes(blob).map_err(|e| anyhow!("the exported blob does not load: {e}"))
}

/// Buffers for running a model: an aligned arena and recurrent state (or a
/// causal model's cache), sized for it.
pub struct Buffers {
    arena: Vec<u32>,
    state: Vec<u32>,
}

impl Buffers {
    /// Sized for `model`.
    pub fn new(model: &Model) -> Self {
        Buffers {
            arena: vec![0; model.arena_bytes().div_ceil(4)],
            state: vec![0; model.state_bytes().div_ceil(4)],
        }
    }

    /// `(state, arena)` byte views.
    pub fn split(&mut self) -> (&mut [u8], &mut [u8]) {
        (
            bytemuck::cast_slice_mut(&mut self.state),
            bytemuck::cast_slice_mut(&mut self.arena),
        )
    }
}

/// Quantize raw values (whole inputs, or `steps x channels` of a sequence)
/// for an int8 model, one input's worth at a time.
pub fn quantize_series(model: &Model, series: &[f32]) -> Result<Vec<i8>> {
    let c = model.input_len();
    let mut q = vec![0i8; series.len()];
    for (src, dst) in series.chunks_exact(c).zip(q.chunks_exact_mut(c)) {
        model.quantize_input(src, dst).map_err(|e| anyhow!("{e}"))?;
    }
    Ok(q)
}

/// What a blob answered for every vector.
#[derive(Debug, Clone)]
pub struct Run {
    /// Outputs, vector after vector: f32, or the int8 outputs dequantized.
    pub outputs: Vec<f32>,
    /// Index of the largest output of each vector (on the raw outputs).
    pub argmax: Vec<usize>,
    /// The test vectors of this run.
    pub vectors: Vec<u8>,
}

/// Inputs, outputs and labels of a run, gathered for its test vectors.
struct Recorder {
    inputs: Vec<u8>,
    expected: Vec<u8>,
    outputs: Vec<f32>,
    argmax: Vec<usize>,
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            inputs: Vec::new(),
            expected: Vec::new(),
            outputs: Vec::new(),
            argmax: Vec::new(),
        }
    }

    /// Run one vector (`input` raw; a whole sequence when `sequence`).
    fn run(
        &mut self,
        model: &Model,
        buffers: &mut Buffers,
        input: &[f32],
        sequence: bool,
    ) -> Result<()> {
        let (state, arena) = buffers.split();
        let err = |e: runtime::Error| anyhow!("{e}");
        match model.numeric() {
            Numeric::F32 => {
                let out = if sequence {
                    model.run_sequence_f32(input, state, arena)
                } else {
                    model.run_f32(input, arena)
                }
                .map_err(err)?;
                self.inputs.extend(le_bytes(input));
                self.expected.extend(le_bytes(out));
                self.argmax.push(runtime::argmax(out));
                self.outputs.extend_from_slice(out);
            }
            Numeric::Int8 => {
                let q = quantize_series(model, input)?;
                let out = if sequence {
                    model.run_sequence_i8(&q, state, arena)
                } else {
                    model.run_i8(&q, arena)
                }
                .map_err(err)?;
                self.inputs.extend(le_bytes(&q));
                self.expected.extend(le_bytes(out));
                self.argmax.push(runtime::argmax(out));
                let mut real = vec![0.0; out.len()];
                model.dequantize_output(out, &mut real).map_err(err)?;
                self.outputs.extend(real);
            }
        }
        Ok(())
    }

    fn finish(self, model: &Model, labels: &[u16], steps: Option<&[u32]>) -> Result<Run> {
        let vectors = vectors(
            TestVectors {
                numeric: model.numeric(),
                count: labels.len() as u32,
                input_len: model.input_len() as u32,
                output_len: model.output_len() as u32,
                inputs: &self.inputs,
                expected: &self.expected,
                labels: &le_bytes(labels),
                steps: None,
            },
            steps,
        )?;
        Ok(Run {
            outputs: self.outputs,
            argmax: self.argmax,
            vectors,
        })
    }
}

/// Run `blob` on every row of `rows` (raw, row-major), one vector per row
/// labelled `labels[i]`.
pub fn run_rows(blob: &[u8], rows: &[f32], labels: &[u16]) -> Result<Run> {
    let model = load(blob)?;
    let mut buffers = Buffers::new(&model);
    let mut recorder = Recorder::new();
    for (i, row) in rows.chunks_exact(model.input_len()).enumerate() {
        recorder
            .run(&model, &mut buffers, row, false)
            .map_err(|e| anyhow!("row {i}: {e:#}"))?;
    }
    recorder.finish(&model, labels, None)
}

/// Run `blob` over whole sequences (each `steps x channels`, raw), one
/// sequence vector each.
pub fn run_sequences(blob: &[u8], series: &[Vec<f32>], labels: &[u16]) -> Result<Run> {
    let model = load(blob)?;
    let mut buffers = Buffers::new(&model);
    let mut recorder = Recorder::new();
    let mut steps = Vec::with_capacity(series.len());
    for (i, s) in series.iter().enumerate() {
        recorder
            .run(&model, &mut buffers, s, true)
            .map_err(|e| anyhow!("series {i}: {e:#}"))?;
        steps.push((s.len() / model.input_len().max(1)) as u32);
    }
    recorder.finish(&model, labels, Some(&steps))
}

/// A causal blob run step by step over a stream of raw values.
#[derive(Debug, Clone)]
pub struct StreamRun {
    /// Prediction after each step (in normalized units, dequantized for int8).
    pub predictions: Vec<f32>,
    /// Test vectors: the stream as one sequence vector with every step's output.
    pub vectors: Vec<u8>,
}

/// Run a causal blob over `values` with the step API (one value per step,
/// the key/value cache sliding once full), from a fresh state; the one test
/// vector is labelled `label`.
pub fn run_stream(blob: &[u8], values: &[f32], label: u16) -> Result<StreamRun> {
    let model = load(blob)?;
    if !model.is_causal() {
        bail!("not a causal model");
    }
    let width = model.input_len();
    let mut buffers = Buffers::new(&model);
    let (state, arena) = buffers.split();
    model.reset(state).map_err(|e| anyhow!("{e}"))?;
    let (mut inputs, mut expected, mut predictions) = (Vec::new(), Vec::new(), Vec::new());
    match model.numeric() {
        Numeric::F32 => {
            for (t, &v) in values.iter().enumerate() {
                let out = model
                    .step_f32(&[v], state, arena)
                    .map_err(|e| anyhow!("step {t}: {e}"))?;
                predictions.push(out[0]);
                expected.extend(le_bytes(out));
            }
            inputs.extend(le_bytes(values));
        }
        Numeric::Int8 => {
            // The input normalization is the same at every position, so a
            // window's quantization serves any step.
            let mut q = Vec::with_capacity(values.len());
            for chunk in values.chunks(width) {
                let mut padded = chunk.to_vec();
                padded.resize(width, chunk[0]);
                let mut out = vec![0i8; width];
                model
                    .quantize_input(&padded, &mut out)
                    .map_err(|e| anyhow!("{e}"))?;
                q.extend_from_slice(&out[..chunk.len()]);
            }
            let mut dequantized = [0.0f32; 1];
            for (t, &v) in q.iter().enumerate() {
                let out = model
                    .step_i8(&[v], state, arena)
                    .map_err(|e| anyhow!("step {t}: {e}"))?;
                model
                    .dequantize_output(&out[..1], &mut dequantized)
                    .map_err(|e| anyhow!("{e}"))?;
                predictions.push(dequantized[0]);
                expected.extend(le_bytes(out));
            }
            inputs.extend(le_bytes(&q));
        }
    }
    let element = match model.numeric() {
        Numeric::F32 => 4,
        Numeric::Int8 => 1,
    };
    let outputs_per_step = expected.len() / values.len().max(1) / element;
    let vectors = vectors(
        TestVectors {
            numeric: model.numeric(),
            count: 1,
            input_len: 1,
            output_len: (values.len() * outputs_per_step) as u32,
            inputs: &inputs,
            expected: &expected,
            labels: &label.to_le_bytes(),
            steps: None,
        },
        Some(&[values.len() as u32]),
    )?;
    Ok(StreamRun {
        predictions,
        vectors,
    })
}

/// An encoder-decoder blob run over windows.
#[derive(Debug, Clone)]
pub struct ForecastRun {
    /// `n x horizon x outputs` forecasts, window after window (normalized
    /// units of their channels, int8 outputs dequantized).
    pub forecasts: Vec<f32>,
    /// Test vectors: one per window, its `window x channels` values in (raw
    /// f32, or quantized int8) and its `horizon x outputs` forecast out.
    pub vectors: Vec<u8>,
}

/// Run an encoder-decoder blob on every window of `windows` (raw,
/// `window() x input_len` values each) with the one-call API
/// ([`Model::forecast_f32`]), forecasting its whole horizon; the test
/// vector of window `i` is labelled `labels[i]`.
pub fn run_forecasts(blob: &[u8], windows: &[f32], labels: &[u16]) -> Result<ForecastRun> {
    let model = load(blob)?;
    if !model.is_seq2seq() {
        bail!("not an encoder-decoder (seq2seq) model");
    }
    let err = |e: runtime::Error| anyhow!("{e}");
    let (len, horizon) = (model.window() * model.input_len(), model.horizon());
    let out_len = horizon * model.output_len();
    if len == 0 || windows.len() != labels.len() * len {
        bail!(
            "{} windows of {len} values expected, got {} values",
            labels.len(),
            windows.len()
        );
    }
    let mut buffers = Buffers::new(&model);
    let (mut inputs, mut expected) = (Vec::new(), Vec::new());
    let mut forecasts = Vec::with_capacity(labels.len() * out_len);
    for (i, window) in windows.chunks_exact(len).enumerate() {
        let (state, arena) = buffers.split();
        let at = |e: runtime::Error| anyhow!("window {i}: {e}");
        match model.numeric() {
            Numeric::F32 => {
                let mut out = vec![0.0f32; out_len];
                model
                    .forecast_f32(window, horizon, state, arena, &mut out)
                    .map_err(at)?;
                inputs.extend(le_bytes(window));
                expected.extend(le_bytes(&out));
                forecasts.extend(out);
            }
            Numeric::Int8 => {
                let q = quantize_series(&model, window)?;
                let mut out = vec![0i8; out_len];
                model
                    .forecast_i8(&q, horizon, state, arena, &mut out)
                    .map_err(at)?;
                let mut real = vec![0.0; out_len];
                model.dequantize_output(&out, &mut real).map_err(err)?;
                inputs.extend(le_bytes(&q));
                expected.extend(le_bytes(&out));
                forecasts.extend(real);
            }
        }
    }
    let vectors = vectors(
        TestVectors {
            numeric: model.numeric(),
            count: labels.len() as u32,
            input_len: len as u32,
            output_len: out_len as u32,
            inputs: &inputs,
            expected: &expected,
            labels: &le_bytes(labels),
            steps: None,
        },
        None,
    )?;
    Ok(ForecastRun { forecasts, vectors })
}

/// A causal one-step forecaster (one raw value per token, predicting the
/// next value in its normalized units) rolled out: for each window of
/// `windows` (raw values, `window` each) from a fresh state, the window's
/// values one step each, then `horizon - 1` of its own predictions fed back
/// as raw values; the `n x horizon` predictions, raw. An int8 blob is fed
/// quantized values and its outputs dequantized.
pub fn roll_out(blob: &[u8], windows: &[f32], window: usize, horizon: usize) -> Result<Vec<f32>> {
    let model = load(blob)?;
    if !model.is_causal() || model.step_width() != 1 || model.output_len() != model.tokens() {
        bail!("not a causal one-step forecaster of one value per step");
    }
    let err = |e: runtime::Error| anyhow!("{e}");
    let (offset, scale) = model
        .input_normalization(0)
        .ok_or_else(|| anyhow!("the forecaster has no input normalization"))?;
    let mut buffers = Buffers::new(&model);
    let mut predictions = Vec::with_capacity(windows.len() / window.max(1) * horizon);
    for values in windows.chunks_exact(window.max(1)) {
        let (state, arena) = buffers.split();
        model.reset(state).map_err(err)?;
        let mut feed = values.to_vec();
        for t in 0..window + horizon - 1 {
            let x = feed[t];
            let next = match model.numeric() {
                Numeric::F32 => model.step_f32(&[x], state, arena).map_err(err)?[0],
                Numeric::Int8 => {
                    let mut q = [0i8; 1];
                    quantize_step(&model, x, &mut q)?;
                    let out = model.step_i8(&q, state, arena).map_err(err)?;
                    let mut real = [0.0f32; 1];
                    model.dequantize_output(&out[..1], &mut real).map_err(err)?;
                    real[0]
                }
            };
            if t + 1 >= window {
                // Normalized units back to raw ones: the next step's input.
                let raw = next / scale + offset;
                predictions.push(raw);
                feed.push(raw);
            }
        }
    }
    Ok(predictions)
}

/// One raw value quantized for a causal int8 model (its input normalization
/// is the same at every position, so a row of copies serves any step).
fn quantize_step(model: &Model, value: f32, out: &mut [i8; 1]) -> Result<()> {
    let row = vec![value; model.input_len()];
    let mut q = vec![0i8; model.input_len()];
    model
        .quantize_input(&row, &mut q)
        .map_err(|e| anyhow!("{e}"))?;
    out[0] = q[0];
    Ok(())
}

/// The bytes of a test-vector file: the encoded struct, then for sequence
/// vectors the step counts. Checked to read back as the runtime's own type.
fn vectors(v: TestVectors<'_>, steps: Option<&[u32]>) -> Result<Vec<u8>> {
    let mut bytes = postcard::to_stdvec(&v)?;
    if let Some(steps) = steps {
        let mut scratch = vec![0u8; 4 * steps.len()];
        let mut trailer = vec![0u8; 4 * steps.len() + 8];
        let n = TestVectors::encode_steps(steps, &mut scratch, &mut trailer)
            .map_err(|e| anyhow!("{e}"))?;
        bytes.extend_from_slice(&trailer[..n]);
    }
    TestVectors::from_bytes(&bytes).map_err(|e| anyhow!("test vectors do not decode: {e}"))?;
    Ok(bytes)
}
