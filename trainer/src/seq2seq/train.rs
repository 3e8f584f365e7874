//! Training an encoder-decoder: PyTorch's initialisation for the cells
//! ([`CellTensors::init`]), Glorot for the attentional and output layers,
//! then the shared loop ([`crate::train`], cosine learning rate) on the mean
//! squared error of all `horizon` steps (normalized units), watching the R²
//! of free-running forecasts on the test windows.
//!
//! Teacher forcing with scheduled sampling: after its first step the
//! decoder is fed the true previous value with the probability the spec's
//! `teacher_forcing` gives for the current batch (per window and step),
//! else its own previous output (gradients flow through it). The weights
//! and the batches come from one generator seeded from the spec, the
//! sampling masks from a second one, so runs are reproducible.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::recurrent::model::CellTensors;
use crate::seq2seq::data::{Seq2SeqData, Windows};
use crate::seq2seq::model::{predict_index, Net, Seq2Seq, TeacherInput};
use crate::seq2seq::spec::Seq2SeqSpec;
use crate::spec::TrainingSpec;
use crate::train::{self, History, Schedule, Settings};

/// Glorot-uniform weights (`outputs x inputs`) and zero biases, as variables.
fn dense(
    inputs: usize,
    outputs: usize,
    rng: &mut ChaCha8Rng,
    vars: &mut Vec<Var>,
) -> Result<(Tensor, Tensor)> {
    let bound = (6.0 / (inputs + outputs) as f32).sqrt();
    let w: Vec<f32> = (0..inputs * outputs)
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    let weights = Var::from_tensor(&Tensor::from_vec(w, (outputs, inputs), &Device::Cpu)?)?;
    let bias = Var::from_tensor(&Tensor::zeros(outputs, DType::F32, &Device::Cpu)?)?;
    let pair = (weights.as_tensor().clone(), bias.as_tensor().clone());
    vars.extend([weights, bias]);
    Ok(pair)
}

/// Normalized inputs and targets of windows, for batches.
struct Examples {
    /// `n x window x channels`.
    inputs: Vec<f32>,
    /// `n x horizon x outputs`.
    targets: Vec<f32>,
    input_len: usize,
    target_len: usize,
}

impl Examples {
    fn new(windows: &Windows, data: &Seq2SeqData, spec: &Seq2SeqSpec) -> Examples {
        let norm = &data.normalization;
        let inputs = norm.rows(&windows.inputs);
        // Targets in the normalized units of their channels.
        let o = spec.predict.len();
        let targets = windows
            .targets
            .chunks_exact(o)
            .flat_map(|step| {
                step.iter()
                    .zip(&spec.predict)
                    .map(|(&v, &c)| (v - norm.offset[c]) * norm.scale[c])
            })
            .collect();
        Examples {
            inputs,
            targets,
            input_len: spec.window * data.channels,
            target_len: spec.horizon * o,
        }
    }

    /// `(x, targets)` of the examples at `indices`.
    fn batch(
        &self,
        indices: &[usize],
        spec: &Seq2SeqSpec,
        channels: usize,
    ) -> Result<(Tensor, Tensor)> {
        let gather = |values: &[f32], len: usize| -> Vec<f32> {
            indices
                .iter()
                .flat_map(|&i| values[i * len..(i + 1) * len].iter().copied())
                .collect()
        };
        let n = indices.len();
        Ok((
            Tensor::from_vec(
                gather(&self.inputs, self.input_len),
                (n, spec.window, channels),
                &Device::Cpu,
            )?,
            Tensor::from_vec(
                gather(&self.targets, self.target_len),
                (n, spec.horizon, spec.predict.len()),
                &Device::Cpu,
            )?,
        ))
    }

    fn len(&self) -> usize {
        self.inputs.len() / self.input_len.max(1)
    }
}

/// Train on the training windows (the test windows are only watched).
pub fn train(
    spec: &Seq2SeqSpec,
    training: &TrainingSpec,
    data: &Seq2SeqData,
    progress: bool,
) -> Result<(Seq2Seq, History)> {
    let channels = data.channels;
    let mut rng = ChaCha8Rng::seed_from_u64(training.seed);
    // Masks have their own generator: the weights and the batch order do
    // not depend on the teacher forcing.
    let mut sampling = ChaCha8Rng::seed_from_u64(training.seed ^ 0x5eed_5eed_5eed_5eed);
    let mut vars = Vec::new();
    let mut encoder = Vec::new();
    let mut width = channels;
    for &(cell, hidden) in &spec.encoder {
        encoder.push(CellTensors::init(cell, width, hidden, &mut rng, &mut vars)?);
        width = hidden;
    }
    let (cell, hidden) = spec.top();
    let outputs = spec.predict.len();
    let decoder = CellTensors::init(cell, outputs, hidden, &mut rng, &mut vars)?;
    let (combine_weight, combine_bias) = dense(2 * hidden, spec.attention, &mut rng, &mut vars)?;
    let (out_weight, out_bias) = dense(spec.attention, outputs, &mut rng, &mut vars)?;
    let net = Net {
        encoder,
        decoder,
        combine_weight,
        combine_bias,
        out_weight,
        out_bias,
        predict: predict_index(&spec.predict)?,
    };

    let train_set = Examples::new(&data.train, data, spec);
    let test_set = Examples::new(&data.test, data, spec);
    let all_test: Vec<usize> = (0..test_set.len()).collect();
    let (test_x, test_y) = test_set.batch(&all_test, spec, channels)?;
    let test_y = test_y.flatten_all()?.to_vec1::<f32>()?;
    let test_mean = test_y.iter().map(|&v| f64::from(v)).sum::<f64>() / test_y.len().max(1) as f64;
    let test_variance = test_y
        .iter()
        .map(|&v| (f64::from(v) - test_mean).powi(2))
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);

    let settings = Settings {
        schedule: Schedule::Cosine { floor: 0.1 },
        ..Settings::new(training, progress.then_some("test R²"))
    };
    let batch_size = training.batch_size.max(1);
    let total = (training.epochs * train_set.len().div_ceil(batch_size)).max(1);
    let mut done = 0usize;
    let history = train::run(
        vars,
        &settings,
        &mut rng,
        train_set.len(),
        |batch| {
            let (x, targets) = train_set.batch(batch, spec, channels)?;
            let share = spec
                .teacher_forcing
                .at(done as f64 / (total - 1).max(1) as f64);
            done += 1;
            let masks: Vec<Tensor> = if share < 1.0 {
                (1..spec.horizon)
                    .map(|_| {
                        let m: Vec<f32> = (0..batch.len())
                            .map(|_| f32::from(u8::from(sampling.random_bool(share))))
                            .collect();
                        Tensor::from_vec(m, (batch.len(), 1), &Device::Cpu)
                    })
                    .collect::<candle_core::Result<_>>()?
            } else {
                Vec::new()
            };
            let teacher = TeacherInput {
                targets: &targets,
                masks: (share < 1.0).then_some(&masks[..]),
            };
            let y = net.forward(&x, spec.horizon, Some(&teacher), None)?;
            Ok((y - &targets)?.sqr()?.mean_all()?)
        },
        || {
            let y = net.forward(&test_x, spec.horizon, None, None)?;
            let y = y.flatten_all()?.to_vec1::<f32>()?;
            let error: f64 = y
                .iter()
                .zip(&test_y)
                .map(|(&p, &t)| (f64::from(p) - f64::from(t)).powi(2))
                .sum();
            Ok(Some((1.0 - error / test_variance) as f32))
        },
    )?;
    let model = net.to_params(
        (channels, spec.window, spec.horizon),
        &spec.predict,
        data.normalization.clone(),
    )?;
    Ok((model, history))
}
