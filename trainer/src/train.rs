//! The training loop every candle family uses: epochs of shuffled
//! mini-batches, one optimizer step per batch, an optional test score after
//! each epoch, a progress bar.
//!
//! A family brings its parameters (candle [`Var`]s), a seeded generator and
//! two closures: the loss of a batch (given the indices of its examples) and
//! the test score. The loop owns what is the same for every model, so
//! settings of the `[training]` table that apply to every model belong here:
//! the optimizer ([`OptimizerSpec`]) and the learning-rate [`Schedule`].
//!
//! Runs are deterministic: the order of the examples comes only from the
//! generator, which the family seeds from its spec (and may have used for
//! its initial weights first).

use anyhow::{Context, Result};
use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer as _, ParamsAdamW};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::spec::{OptimizerSpec, TrainingSpec};

/// How the learning rate moves over the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// The optimizer's rate throughout.
    Constant,
    /// A cosine from the optimizer's rate down to `floor` times it, set
    /// before every step.
    Cosine {
        /// The last step's share of the rate.
        floor: f64,
    },
}

/// What a run does, beyond the model.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// Passes over the examples.
    pub epochs: usize,
    /// Examples per step (at least 1 is used).
    pub batch_size: usize,
    /// Optimizer and its rate.
    pub optimizer: OptimizerSpec,
    /// Learning rate over the run.
    pub schedule: Schedule,
    /// Show a progress bar, naming the test score so (e.g. `"test acc"`).
    pub progress: Option<&'a str>,
}

impl<'a> Settings<'a> {
    /// The `[training]` table's settings at a constant learning rate, with
    /// a progress bar naming the test score `progress` when given.
    pub fn new(training: &TrainingSpec, progress: Option<&'a str>) -> Self {
        Settings {
            epochs: training.epochs,
            batch_size: training.batch_size,
            optimizer: training.optimizer,
            schedule: Schedule::Constant,
            progress,
        }
    }
}

/// What training produced besides the model.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Mean training loss per epoch.
    pub train_loss: Vec<f32>,
    /// The test score after each epoch (accuracy for classifiers, R² for a
    /// forecaster), when the family watches one.
    pub test_score: Vec<f32>,
}

/// Train `vars` for `examples` examples: `loss(batch)` is the loss of the
/// examples at those indices, `score()` the test score after an epoch
/// (`None`: not watched).
pub fn run(
    vars: Vec<Var>,
    settings: &Settings<'_>,
    rng: &mut ChaCha8Rng,
    examples: usize,
    mut loss: impl FnMut(&[usize]) -> Result<Tensor>,
    mut score: impl FnMut() -> Result<Option<f32>>,
) -> Result<History> {
    let mut optimizer = Optimizer::new(vars, settings.optimizer)?;
    let base_rate = settings.optimizer.learning_rate();
    let batch_size = settings.batch_size.max(1);
    let total_steps = (settings.epochs * examples.div_ceil(batch_size).max(1)) as f64;
    let bar = match settings.progress {
        Some(_) => ProgressBar::new(settings.epochs as u64),
        None => ProgressBar::hidden(),
    };
    bar.set_style(
        ProgressStyle::with_template("  training {bar:30} {pos}/{len} epochs  {msg}")
            .context("progress template")?,
    );
    let mut history = History::default();
    let mut order: Vec<usize> = (0..examples).collect();
    let mut step = 0usize;
    for _epoch in 0..settings.epochs {
        order.shuffle(rng);
        let (mut loss_sum, mut batches) = (0.0f32, 0usize);
        for batch in order.chunks(batch_size) {
            if let Schedule::Cosine { floor } = settings.schedule {
                let progress = step as f64 / total_steps;
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                optimizer.set_learning_rate(base_rate * (floor + (1.0 - floor) * cosine));
            }
            step += 1;
            let loss = loss(batch)?;
            optimizer.backward_step(&loss)?;
            loss_sum += loss.to_scalar::<f32>()?;
            batches += 1;
        }
        let mean = loss_sum / batches.max(1) as f32;
        history.train_loss.push(mean);
        let message = match score()? {
            Some(score) => {
                history.test_score.push(score);
                let what = settings.progress.unwrap_or("test score");
                format!("loss {mean:.4}  {what} {:.2}%", 100.0 * score)
            }
            None => format!("loss {mean:.4}"),
        };
        bar.set_message(message);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(history)
}

/// The optimizers a spec can name.
enum Optimizer {
    Adam(AdamW),
    Sgd(SgdMomentum),
}

impl Optimizer {
    fn new(vars: Vec<Var>, spec: OptimizerSpec) -> Result<Self> {
        Ok(match spec {
            OptimizerSpec::Adam { learning_rate } => Optimizer::Adam(AdamW::new(
                vars,
                ParamsAdamW {
                    lr: learning_rate,
                    weight_decay: 0.0,
                    ..Default::default()
                },
            )?),
            OptimizerSpec::Sgd {
                learning_rate,
                momentum,
            } => Optimizer::Sgd(SgdMomentum::new(vars, learning_rate, momentum)?),
        })
    }

    fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        match self {
            Optimizer::Adam(o) => Ok(o.backward_step(loss)?),
            Optimizer::Sgd(o) => o.backward_step(loss),
        }
    }

    fn set_learning_rate(&mut self, rate: f64) {
        match self {
            Optimizer::Adam(o) => o.set_learning_rate(rate),
            Optimizer::Sgd(o) => o.learning_rate = rate,
        }
    }
}

/// SGD with (heavy-ball) momentum: `v = momentum * v + g; p -= lr * v`.
struct SgdMomentum {
    vars: Vec<(Var, Tensor)>,
    learning_rate: f64,
    momentum: f64,
}

impl SgdMomentum {
    fn new(vars: Vec<Var>, learning_rate: f64, momentum: f64) -> Result<Self> {
        let vars = vars
            .into_iter()
            .map(|v| {
                let zeros = v.as_tensor().zeros_like()?;
                Ok((v, zeros))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            vars,
            learning_rate,
            momentum,
        })
    }

    fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        for (var, velocity) in self.vars.iter_mut() {
            if let Some(g) = grads.get(var.as_tensor()) {
                *velocity = ((&*velocity * self.momentum)? + g)?;
                var.set(&(var.as_tensor() - (&*velocity * self.learning_rate)?)?)?;
            }
        }
        Ok(())
    }
}
