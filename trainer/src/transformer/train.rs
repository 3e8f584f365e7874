//! Training a [`Transformer`] on the shared loop ([`crate::train`]) with Adam.
//!
//! Classifiers minimise cross-entropy on the logits; a forecaster minimises
//! the mean squared error of every token's next-value prediction (in bin
//! coordinates, divided by the targets' variance so the loss starts near 1).
//! Runs are deterministic: weights come from [`Transformer::init`] with the
//! spec's seed, batches from a ChaCha generator seeded from it too. The
//! recipe (schedule, validation split, early stopping, ...) is the
//! `[training]` table's, as for every family.

use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::metrics::accuracy;
use crate::spec::TrainingSpec;
use crate::train::{self, History, Settings};
use crate::transformer::model::{Net, Transformer};

/// What the model should produce for each input.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// A class id per input (classifier).
    Classes(&'a [usize]),
    /// `tokens` values per input: the next value after each token, in the
    /// normalized (bin) coordinates (forecaster).
    Next(&'a [f32]),
}

/// Raw inputs (`n x input_len`) with their targets.
#[derive(Debug, Clone, Copy)]
pub struct Examples<'a> {
    /// Raw values, row-major.
    pub inputs: &'a [f32],
    /// One target per input (or per token).
    pub targets: Targets<'a>,
}

/// Train a copy of `model`; `test` is only watched (its accuracy, or for a
/// forecaster `1 - normalized MSE`, goes into the history). Batches (and
/// the validation split) are drawn with the spec's seed + 1 (the weights
/// came from the seed).
pub fn train(
    model: &Transformer,
    train_set: Examples<'_>,
    test_set: Examples<'_>,
    training: &TrainingSpec,
    progress: bool,
) -> Result<(Transformer, History)> {
    let mut vars = Vec::new();
    let net = Net::build(model, &mut |v, shape| {
        let var = Var::from_tensor(&Tensor::from_slice(v, shape, &Device::Cpu)?)?;
        vars.push(var.clone());
        Ok(var.as_tensor().clone())
    })?;
    let input_len = model.config.input_len();
    let tokens = model.config.tokens;
    let n = train_set.inputs.len() / input_len;
    let normalized = model.normalize(train_set.inputs);
    let target_variance = match train_set.targets {
        Targets::Next(values) => {
            let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64;
            let var = values
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / values.len() as f64;
            var.max(1e-12)
        }
        Targets::Classes(_) => 1.0,
    };
    let test_x = net.input(&model.normalize(test_set.inputs))?;
    let watched = match test_set.targets {
        Targets::Classes(_) => "test acc",
        Targets::Next(_) => "test R2",
    };
    let settings = Settings::new(training, progress.then_some(watched));
    let mut rng = ChaCha8Rng::seed_from_u64(training.seed.wrapping_add(1));
    let outputs = |chunk: &[usize]| -> Result<Tensor> {
        let mut xs = Vec::with_capacity(chunk.len() * input_len);
        for &i in chunk {
            xs.extend_from_slice(&normalized[i * input_len..(i + 1) * input_len]);
        }
        net.forward(&net.input(&xs)?, true, None)
    };
    let test_score = || {
        let out = net.forward(&test_x, false, None)?;
        let out = out.flatten_all()?.to_vec1::<f32>()?;
        Ok(Some(match test_set.targets {
            Targets::Classes(labels) => accuracy(&out, model.config.outputs, labels),
            Targets::Next(values) => {
                let mse = out
                    .iter()
                    .zip(values)
                    .map(|(&a, &b)| f64::from(a - b).powi(2))
                    .sum::<f64>()
                    / values.len().max(1) as f64;
                (1.0 - mse / target_variance) as f32
            }
        }))
    };
    let history = match train_set.targets {
        Targets::Classes(labels) => {
            train::run_classifier(vars, &settings, &mut rng, labels, outputs, test_score)?
        }
        Targets::Next(values) => train::run(
            vars,
            &settings,
            &mut rng,
            n,
            |chunk| {
                let mut ys = Vec::with_capacity(chunk.len() * tokens);
                for &i in chunk {
                    ys.extend_from_slice(&values[i * tokens..(i + 1) * tokens]);
                }
                let y = Tensor::from_vec(ys, (chunk.len(), tokens), &Device::Cpu)?;
                Ok(((outputs(chunk)? - y)?.sqr()?.mean_all()? / target_variance)?)
            },
            test_score,
        )?,
    };
    Ok((net.to_params(model.normalization.clone())?, history))
}
