//! The training loop every candle family uses: epochs of shuffled
//! mini-batches, one optimizer step per batch, and the recipe of the
//! `[training]` table around them.
//!
//! A family brings its parameters (candle [`Var`]s), a seeded generator and
//! closures: the loss of a batch given the indices of its examples ([`run`];
//! a classifier gives its logits and labels instead, [`run_classifier`]) and
//! the test score it watches. The loop owns what is the same for every
//! model, so settings of the `[training]` table that apply to every model
//! belong here ([`Settings`]):
//!
//! - the optimizer ([`OptimizerSpec`], with `weight_decay`) and the
//!   learning-rate [`Schedule`] (constant, cosine, or cut on plateaus);
//! - gradient clipping to a global L2 norm (`clip_grad_norm`);
//! - a validation split carved from the training examples
//!   (`validation_fraction`, per class for a classifier), early stopping
//!   on its loss (`patience`) and the restore of the best epoch's weights
//!   (`restore_best`);
//! - progress on standard error: an indicatif bar on a terminal, else one
//!   line every few epochs ([`ProgressLines`]), nothing when quiet.
//!
//! Runs are deterministic: the validation split and the order of the
//! examples come only from the generator, which the family seeds from its
//! spec (and may have used for its initial weights first). With no
//! validation split, a constant rate, no clipping and no weight decay a run
//! is exactly the plain loop: the same draws, the same steps.

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var, D};
use candle_nn::{AdamW, Optimizer as _, ParamsAdamW};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

pub use crate::spec::Schedule;
use crate::spec::{OptimizerSpec, TrainingSpec};

/// Validation examples per forward pass (bounds the memory of a pass).
const VALIDATION_CHUNK: usize = 256;
/// A plateau cut never takes the rate below this share of the optimizer's.
const PLATEAU_FLOOR: f64 = 1e-3;
/// A plateau is a monitored loss that has not fallen by this much.
const PLATEAU_MIN_DELTA: f32 = 1e-4;

/// What a run does, beyond the model.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// Most passes over the examples.
    pub epochs: usize,
    /// Examples per step (at least 1 is used).
    pub batch_size: usize,
    /// Optimizer and its rate.
    pub optimizer: OptimizerSpec,
    /// Learning rate over the run.
    pub schedule: Schedule,
    /// Show progress, naming the test score so (e.g. `"test acc"`).
    pub progress: Option<&'a str>,
    /// Share of the examples held out for validation (0: none).
    pub validation_fraction: f64,
    /// Epochs without a lower validation loss before stopping (0: never).
    pub patience: usize,
    /// Restore the weights of the best validation epoch at the end.
    pub restore_best: bool,
    /// Global L2 norm the gradients are clipped to (`None`: no clipping).
    pub clip_grad_norm: Option<f64>,
    /// Decoupled weight decay (AdamW) or L2 term (SGD).
    pub weight_decay: f64,
}

impl<'a> Settings<'a> {
    /// The `[training]` table's settings, with progress naming the test
    /// score `progress` when given.
    pub fn new(training: &TrainingSpec, progress: Option<&'a str>) -> Self {
        Settings {
            epochs: training.epochs,
            batch_size: training.batch_size,
            optimizer: training.optimizer,
            schedule: training.schedule,
            progress,
            validation_fraction: training.validation_fraction,
            patience: training.patience,
            restore_best: training.restore_best,
            clip_grad_norm: (training.clip_grad_norm > 0.0).then_some(training.clip_grad_norm),
            weight_decay: training.weight_decay,
        }
    }

    /// The plain loop: `epochs` passes at a constant `optimizer` rate over
    /// every example, keeping the last weights, no clipping, no decay.
    pub fn plain(epochs: usize, batch_size: usize, optimizer: OptimizerSpec) -> Self {
        Settings {
            epochs,
            batch_size,
            optimizer,
            schedule: Schedule::Constant,
            progress: None,
            validation_fraction: 0.0,
            patience: 0,
            restore_best: false,
            clip_grad_norm: None,
            weight_decay: 0.0,
        }
    }
}

/// What training produced besides the model; one entry per epoch run.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Mean training loss per epoch.
    pub train_loss: Vec<f32>,
    /// The test score after each epoch (accuracy for classifiers, R² for a
    /// forecaster), when the family watches one.
    pub test_score: Vec<f32>,
    /// Accuracy over the epoch's training batches, as they were stepped
    /// (classifiers).
    pub train_accuracy: Vec<f32>,
    /// Validation loss after each epoch (empty without a validation split).
    pub validation_loss: Vec<f32>,
    /// Validation accuracy after each epoch (classifiers with a split).
    pub validation_accuracy: Vec<f32>,
    /// The learning rate at the end of each epoch.
    pub learning_rate: Vec<f64>,
    /// The 1-based epoch whose weights the model has, when they were
    /// restored (the lowest validation loss).
    pub restored_epoch: Option<usize>,
    /// Training examples stepped on, and validation examples held out.
    pub split: (usize, usize),
}

impl History {
    /// Epochs run (fewer than `epochs` after an early stop).
    pub fn epochs(&self) -> usize {
        self.train_loss.len()
    }

    /// The curves of `loss.png`, the test score labelled `metric_label`.
    pub fn curves<'a>(&'a self, metric_label: &'a str) -> crate::plot::Curves<'a> {
        crate::plot::Curves {
            train_loss: &self.train_loss,
            validation_loss: &self.validation_loss,
            metric: &self.test_score,
            metric_label,
            restored_epoch: self.restored_epoch,
        }
    }
}

/// Train `vars` for `examples` examples: `loss(batch)` is the loss of the
/// examples at those indices (also run, without a step, on the validation
/// examples), `score()` the test score after an epoch (`None`: not watched).
pub fn run(
    vars: Vec<Var>,
    settings: &Settings<'_>,
    rng: &mut ChaCha8Rng,
    examples: usize,
    mut loss: impl FnMut(&[usize]) -> Result<Tensor>,
    score: impl FnMut() -> Result<Option<f32>>,
) -> Result<History> {
    let all: Vec<usize> = (0..examples).collect();
    let (train, validation) = split(&all, None, settings.validation_fraction, rng);
    fit(
        vars,
        settings,
        rng,
        (train, validation),
        |batch| Ok((loss(batch)?, None)),
        score,
    )
}

/// Train a classifier of `labels.len()` examples: `logits(batch)` are its
/// outputs before the softmax for the examples at those indices, trained
/// on cross-entropy against `labels`; the validation split keeps each
/// class's share, and training and validation accuracy are recorded.
pub fn run_classifier(
    vars: Vec<Var>,
    settings: &Settings<'_>,
    rng: &mut ChaCha8Rng,
    labels: &[usize],
    mut logits: impl FnMut(&[usize]) -> Result<Tensor>,
    score: impl FnMut() -> Result<Option<f32>>,
) -> Result<History> {
    let all: Vec<usize> = (0..labels.len()).collect();
    let (train, validation) = split(&all, Some(labels), settings.validation_fraction, rng);
    fit(
        vars,
        settings,
        rng,
        (train, validation),
        |batch| {
            let out = logits(batch)?;
            let ys: Vec<u32> = batch.iter().map(|&i| labels[i] as u32).collect();
            let y = Tensor::from_vec(ys, batch.len(), out.device())?;
            let predicted = out.argmax(D::Minus1)?.to_vec1::<u32>()?;
            let correct = predicted
                .iter()
                .zip(batch)
                .filter(|(&p, &i)| p as usize == labels[i])
                .count();
            Ok((candle_nn::loss::cross_entropy(&out, &y)?, Some(correct)))
        },
        score,
    )
}

/// `(train, validation)` indices of `examples`: `fraction` of them held out
/// at random, per class when `labels` are given (each class keeps at least
/// one training example). Both keep the examples' order. No draw is made
/// when `fraction` is 0.
fn split(
    examples: &[usize],
    labels: Option<&[usize]>,
    fraction: f64,
    rng: &mut ChaCha8Rng,
) -> (Vec<usize>, Vec<usize>) {
    if fraction <= 0.0 {
        return (examples.to_vec(), Vec::new());
    }
    let strata = labels.map_or_else(|| vec![0; examples.len()], <[usize]>::to_vec);
    let held = crate::dataset::table::stratified_holdout(&strata, fraction, rng);
    examples.iter().partition(|&&i| !held[i])
}

/// The loop proper: `objective(batch)` gives a batch's loss and, for a
/// classifier, how many of its examples it got right.
fn fit(
    vars: Vec<Var>,
    settings: &Settings<'_>,
    rng: &mut ChaCha8Rng,
    (mut order, validation): (Vec<usize>, Vec<usize>),
    mut objective: impl FnMut(&[usize]) -> Result<(Tensor, Option<usize>)>,
    mut score: impl FnMut() -> Result<Option<f32>>,
) -> Result<History> {
    let base_rate = settings.optimizer.learning_rate();
    let mut optimizer = Optimizer::new(vars.clone(), settings.optimizer, settings.weight_decay)?;
    let batch_size = settings.batch_size.max(1);
    let total_steps = (settings.epochs * order.len().div_ceil(batch_size).max(1)) as f64;
    let mut progress = Progress::new(settings)?;
    let mut history = History {
        split: (order.len(), validation.len()),
        ..History::default()
    };
    let mut rate = base_rate;
    let mut plateau = Best::default();
    let mut best = Best::default();
    let mut best_weights: Option<Vec<Tensor>> = None;
    let mut step = 0usize;
    for epoch in 1..=settings.epochs {
        order.shuffle(rng);
        let (mut loss_sum, mut batches, mut correct) = (0.0f32, 0usize, None::<usize>);
        for batch in order.chunks(batch_size) {
            if let Schedule::Cosine { floor } = settings.schedule {
                let progress = step as f64 / total_steps;
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                rate = base_rate * (floor + (1.0 - floor) * cosine);
                optimizer.set_learning_rate(rate);
            }
            step += 1;
            let (loss, right) = objective(batch)?;
            let mut grads = loss.backward()?;
            if let Some(limit) = settings.clip_grad_norm {
                clip(&mut grads, &vars, limit)?;
            }
            optimizer.step(&grads)?;
            loss_sum += loss.to_scalar::<f32>()?;
            batches += 1;
            if let Some(right) = right {
                *correct.get_or_insert(0) += right;
            }
        }
        let mean = loss_sum / batches.max(1) as f32;
        history.train_loss.push(mean);
        if let Some(correct) = correct {
            history
                .train_accuracy
                .push(correct as f32 / order.len().max(1) as f32);
        }
        let monitored = if validation.is_empty() {
            mean
        } else {
            let (loss, accuracy) = measure(&validation, &mut objective)?;
            history.validation_loss.push(loss);
            if let Some(accuracy) = accuracy {
                history.validation_accuracy.push(accuracy);
            }
            if best.improved(epoch, loss, 0.0) && settings.restore_best {
                best_weights = Some(snapshot(&vars)?);
            }
            loss
        };
        if let Some(score) = score()? {
            history.test_score.push(score);
        }
        if let Schedule::Plateau { factor, patience } = settings.schedule {
            if !plateau.improved(epoch, monitored, PLATEAU_MIN_DELTA)
                && epoch - plateau.epoch >= patience
            {
                rate = (rate * factor).max(base_rate * PLATEAU_FLOOR);
                optimizer.set_learning_rate(rate);
                // Wait another `patience` epochs before the next cut.
                plateau.epoch = epoch;
            }
        }
        history.learning_rate.push(rate);
        let stop = !validation.is_empty()
            && settings.patience > 0
            && epoch - best.epoch >= settings.patience;
        progress.epoch(epoch, &history, stop || epoch == settings.epochs);
        if stop {
            break;
        }
    }
    if let Some(weights) = best_weights.filter(|_| best.epoch < history.epochs()) {
        for (var, value) in vars.iter().zip(&weights) {
            var.set(value)?;
        }
        history.restored_epoch = Some(best.epoch);
    }
    progress.finish(&history, settings, best.value);
    Ok(history)
}

/// The lowest value seen so far of a monitored loss, and its epoch.
#[derive(Debug, Clone, Copy)]
struct Best {
    value: f32,
    epoch: usize,
}

impl Default for Best {
    fn default() -> Self {
        Best {
            value: f32::INFINITY,
            epoch: 0,
        }
    }
}

impl Best {
    /// Record `value` of `epoch` if it is lower than the best by more than
    /// `min_delta`; whether it was. A NaN loss never improves.
    fn improved(&mut self, epoch: usize, value: f32, min_delta: f32) -> bool {
        let better = value < self.value - min_delta;
        if better {
            *self = Best { value, epoch };
        }
        better
    }
}

/// Mean loss and accuracy (`None`: not a classifier) of `examples`, in
/// chunks, without a step.
fn measure(
    examples: &[usize],
    objective: &mut impl FnMut(&[usize]) -> Result<(Tensor, Option<usize>)>,
) -> Result<(f32, Option<f32>)> {
    let (mut loss, mut correct) = (0.0f64, None::<usize>);
    for chunk in examples.chunks(VALIDATION_CHUNK) {
        let (l, right) = objective(chunk)?;
        loss += f64::from(l.to_scalar::<f32>()?) * chunk.len() as f64;
        if let Some(right) = right {
            *correct.get_or_insert(0) += right;
        }
    }
    let n = examples.len().max(1) as f64;
    Ok(((loss / n) as f32, correct.map(|c| (c as f64 / n) as f32)))
}

/// Copies of the variables' values.
fn snapshot(vars: &[Var]) -> Result<Vec<Tensor>> {
    Ok(vars
        .iter()
        .map(|v| v.as_tensor().copy())
        .collect::<candle_core::Result<_>>()?)
}

/// Scale the gradients of `vars` so their global L2 norm is at most `limit`.
fn clip(grads: &mut GradStore, vars: &[Var], limit: f64) -> Result<()> {
    let mut squares = 0.0f64;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            squares += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    let norm = squares.sqrt();
    if norm > limit {
        let factor = limit / norm;
        for var in vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g * factor)?);
            }
        }
    }
    Ok(())
}

/// Where progress goes: a bar on a terminal, lines otherwise, or nowhere.
enum Progress<'a> {
    Quiet,
    Bar(ProgressBar, &'a str),
    Lines(ProgressLines<'a>),
}

impl<'a> Progress<'a> {
    fn new(settings: &Settings<'a>) -> Result<Self> {
        let Some(watched) = settings.progress else {
            return Ok(Progress::Quiet);
        };
        if !std::io::stderr().is_terminal() {
            return Ok(Progress::Lines(ProgressLines::new(
                settings.epochs,
                watched,
            )));
        }
        let bar = ProgressBar::new(settings.epochs as u64);
        bar.set_style(
            ProgressStyle::with_template("  training {bar:30} {pos}/{len} epochs  {msg}")
                .context("progress template")?,
        );
        Ok(Progress::Bar(bar, watched))
    }

    fn epoch(&mut self, epoch: usize, history: &History, last: bool) {
        match self {
            Progress::Quiet => {}
            Progress::Bar(bar, watched) => {
                bar.set_message(figures(history, watched));
                bar.set_position(epoch as u64);
            }
            Progress::Lines(lines) => {
                if let Some(line) = lines.line(epoch, history, last) {
                    eprintln!("{line}");
                }
            }
        }
    }

    fn finish(self, history: &History, settings: &Settings<'_>, best_loss: f32) {
        let end = ending(history, settings, best_loss);
        match self {
            Progress::Quiet => {}
            Progress::Bar(bar, _) => {
                bar.finish_and_clear();
                if let Some(end) = end {
                    eprintln!("{end}");
                }
            }
            Progress::Lines(_) => {
                if let Some(end) = end {
                    eprintln!("{end}");
                }
            }
        }
    }
}

/// Progress where no terminal shows a bar (a script, CI, a pipe): one line
/// every few epochs, like Keras' `verbose=2`, plus the first and the last
/// epoch run:
///
/// ```text
///   epoch  10/200  loss 0.4123  train acc 85.00%  val loss 0.5012  val acc 80.00%  test acc 79.50%  lr 3.0e-3  4.2 s
/// ```
///
/// Lines come every `ceil(epochs / 20)` epochs, so a full run prints at
/// most 21 (and an early stop one more, saying so).
#[derive(Debug, Clone)]
pub struct ProgressLines<'a> {
    every: usize,
    epochs: usize,
    watched: &'a str,
    started: Instant,
}

impl<'a> ProgressLines<'a> {
    /// Lines for a run of at most `epochs`, naming the test score `watched`.
    pub fn new(epochs: usize, watched: &'a str) -> Self {
        ProgressLines {
            every: epochs.div_ceil(20).max(1),
            epochs,
            watched,
            started: Instant::now(),
        }
    }

    /// The line after `epoch` (1-based), if one is due; `last`: the run
    /// ends with it.
    pub fn line(&self, epoch: usize, history: &History, last: bool) -> Option<String> {
        if !(epoch == 1 || last || epoch.is_multiple_of(self.every)) {
            return None;
        }
        let width = self.epochs.to_string().len();
        Some(format!(
            "  epoch {epoch:>width$}/{}  {}  lr {:.1e}  {:.1} s",
            self.epochs,
            figures(history, self.watched),
            history.learning_rate.last().copied().unwrap_or(0.0),
            self.started.elapsed().as_secs_f64(),
        ))
    }
}

/// The latest epoch's figures: loss, training and validation accuracy and
/// loss, the watched test score.
fn figures(history: &History, watched: &str) -> String {
    let percent = |v: &[f32]| v.last().map(|a| format!("{:.2}%", 100.0 * a));
    let mut parts = Vec::new();
    if let Some(loss) = history.train_loss.last() {
        parts.push(format!("loss {loss:.4}"));
    }
    if let Some(a) = percent(&history.train_accuracy) {
        parts.push(format!("train acc {a}"));
    }
    if let Some(loss) = history.validation_loss.last() {
        parts.push(format!("val loss {loss:.4}"));
    }
    if let Some(a) = percent(&history.validation_accuracy) {
        parts.push(format!("val acc {a}"));
    }
    if let Some(a) = percent(&history.test_score) {
        parts.push(format!("{watched} {a}"));
    }
    parts.join("  ")
}

/// The closing line of a run that restored an earlier epoch's weights,
/// saying whether it stopped early.
fn ending(history: &History, settings: &Settings<'_>, best_loss: f32) -> Option<String> {
    let restored = history.restored_epoch?;
    let run = history.epochs();
    let why = if run < settings.epochs {
        format!(
            "stopped after epoch {run}: no lower val loss for {} epochs",
            settings.patience
        )
    } else {
        format!("ran all {run} epochs")
    };
    Some(format!(
        "  {why}; restored epoch {restored} (val loss {best_loss:.4})"
    ))
}

/// The optimizers a spec can name.
enum Optimizer {
    Adam(AdamW),
    Sgd(SgdMomentum),
}

impl Optimizer {
    fn new(vars: Vec<Var>, spec: OptimizerSpec, weight_decay: f64) -> Result<Self> {
        Ok(match spec {
            OptimizerSpec::Adam { learning_rate } => Optimizer::Adam(AdamW::new(
                vars,
                ParamsAdamW {
                    lr: learning_rate,
                    weight_decay,
                    ..Default::default()
                },
            )?),
            OptimizerSpec::Sgd {
                learning_rate,
                momentum,
            } => Optimizer::Sgd(SgdMomentum::new(
                vars,
                learning_rate,
                momentum,
                weight_decay,
            )?),
        })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        match self {
            Optimizer::Adam(o) => Ok(o.step(grads)?),
            Optimizer::Sgd(o) => o.step(grads),
        }
    }

    fn set_learning_rate(&mut self, rate: f64) {
        match self {
            Optimizer::Adam(o) => o.set_learning_rate(rate),
            Optimizer::Sgd(o) => o.learning_rate = rate,
        }
    }
}

/// SGD with (heavy-ball) momentum and an optional L2 term:
/// `v = momentum * v + g + decay * p; p -= lr * v`.
struct SgdMomentum {
    vars: Vec<(Var, Tensor)>,
    learning_rate: f64,
    momentum: f64,
    weight_decay: f64,
}

impl SgdMomentum {
    fn new(vars: Vec<Var>, learning_rate: f64, momentum: f64, weight_decay: f64) -> Result<Self> {
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
            weight_decay,
        })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        for (var, velocity) in self.vars.iter_mut() {
            if let Some(g) = grads.get(var.as_tensor()) {
                let g = if self.weight_decay > 0.0 {
                    (g + (var.as_tensor() * self.weight_decay)?)?
                } else {
                    g.clone()
                };
                *velocity = ((&*velocity * self.momentum)? + g)?;
                var.set(&(var.as_tensor() - (&*velocity * self.learning_rate)?)?)?;
            }
        }
        Ok(())
    }
}
