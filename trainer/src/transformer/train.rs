//! Training a [`Transformer`] with candle and Adam.
//!
//! Classifiers minimise cross-entropy on the logits; a forecaster minimises
//! the mean squared error of every token's next-value prediction (in bin
//! coordinates, divided by the targets' variance so the loss starts near 1).
//! Runs are deterministic: weights come from [`Transformer::init`] with the
//! spec's seed, batches from a ChaCha generator seeded from it too. The
//! learning rate follows a cosine from the spec's value down to a tenth.

use anyhow::{Context, Result};
use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::train::{accuracy, History};
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

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Passes over the training examples.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Shuffling seed.
    pub seed: u64,
}

/// Train `model` in place of a copy; `test` is only watched (its accuracy,
/// or for a forecaster `1 - normalized MSE`, goes into the history).
pub fn train(
    model: &Transformer,
    train_set: Examples<'_>,
    test_set: Examples<'_>,
    schedule: Schedule,
    progress: bool,
) -> Result<(Transformer, History)> {
    let mut vars = Vec::new();
    let net = Net::build(model, &mut |v, shape| {
        let var = Var::from_tensor(&Tensor::from_slice(v, shape, &Device::Cpu)?)?;
        vars.push(var.clone());
        Ok(var.as_tensor().clone())
    })?;
    let mut optimizer = AdamW::new(
        vars,
        ParamsAdamW {
            lr: schedule.learning_rate,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
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

    let bar = if progress {
        ProgressBar::new(schedule.epochs as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("  training {bar:30} {pos}/{len} epochs  {msg}")
            .context("progress template")?,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(schedule.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut history = History::default();
    let steps_per_epoch = n.div_ceil(schedule.batch_size).max(1);
    let total_steps = (schedule.epochs * steps_per_epoch) as f64;
    let mut step = 0usize;
    for _ in 0..schedule.epochs {
        order.shuffle(&mut rng);
        let (mut loss_sum, mut batches) = (0.0f32, 0usize);
        for chunk in order.chunks(schedule.batch_size) {
            let progress = step as f64 / total_steps;
            let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
            optimizer.set_learning_rate(schedule.learning_rate * (0.1 + 0.9 * cosine));
            step += 1;
            let mut xs = Vec::with_capacity(chunk.len() * input_len);
            for &i in chunk {
                xs.extend_from_slice(&normalized[i * input_len..(i + 1) * input_len]);
            }
            let x = net.input(&xs)?;
            let out = net.forward(&x, true, None)?;
            let loss = match train_set.targets {
                Targets::Classes(labels) => {
                    let ys: Vec<u32> = chunk.iter().map(|&i| labels[i] as u32).collect();
                    let y = Tensor::from_vec(ys, chunk.len(), &Device::Cpu)?;
                    candle_nn::loss::cross_entropy(&out, &y)?
                }
                Targets::Next(values) => {
                    let mut ys = Vec::with_capacity(chunk.len() * tokens);
                    for &i in chunk {
                        ys.extend_from_slice(&values[i * tokens..(i + 1) * tokens]);
                    }
                    let y = Tensor::from_vec(ys, (chunk.len(), tokens), &Device::Cpu)?;
                    ((out - y)?.sqr()?.mean_all()? / target_variance)?
                }
            };
            optimizer.backward_step(&loss)?;
            loss_sum += loss.to_scalar::<f32>()?;
            batches += 1;
        }
        let out = net.forward(&test_x, false, None)?;
        let out = out.flatten_all()?.to_vec1::<f32>()?;
        let score = match test_set.targets {
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
        };
        let mean = loss_sum / batches.max(1) as f32;
        history.train_loss.push(mean);
        history.test_accuracy.push(score);
        let what = match test_set.targets {
            Targets::Classes(_) => "test acc",
            Targets::Next(_) => "test R2",
        };
        bar.set_message(format!("loss {mean:.4}  {what} {:.2}%", 100.0 * score));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((net.to_params(model.normalization.clone())?, history))
}
