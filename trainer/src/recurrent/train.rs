//! Training a recurrent classifier: PyTorch's initialisation for the cells
//! (uniform `+-1/sqrt(H)`, LSTM forget-gate bias 1), Kaiming for the dense
//! head, then the shared loop ([`crate::train`]) on cross-entropy, watching
//! the test accuracy. One generator, seeded from the spec, draws the
//! weights and then the batches.

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::{Normalization, Sequences};
use crate::dense::model::{output_width, Init, Mlp, Net};
use crate::metrics::accuracy;
use crate::recurrent::model::{forward, make_batch, CellTensors, SequenceModel};
use crate::recurrent::spec::RecurrentSpec;
use crate::spec::TrainingSpec;
use crate::train::{self, History, Settings};

/// Mixed into the spec's seed for the generator of `random_roll`.
const ROLL_SEED: u64 = 0x726f_6c6c;

/// `series` (time-major, `channels` values per time step of the file)
/// rotated left by a random whole number of time steps.
fn roll(series: &[f32], channels: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let steps = series.len() / channels.max(1);
    let mut out = series.to_vec();
    if steps > 1 {
        out.rotate_left(rng.random_range(0..steps) * channels.max(1));
    }
    out
}

/// Train on `train_set` (the test set is only watched).
pub fn train(
    model: &RecurrentSpec,
    training: &TrainingSpec,
    normalization: Normalization,
    train_set: &Sequences,
    test_set: &Sequences,
    progress: bool,
) -> Result<(SequenceModel, History)> {
    let classes = train_set.class_count();
    let channels = train_set.channels;
    let mut rng = ChaCha8Rng::seed_from_u64(training.seed);
    let mut vars = Vec::new();
    let mut cells = Vec::new();
    let mut width = channels;
    for &(cell, hidden) in &model.cells {
        cells.push(CellTensors::init(cell, width, hidden, &mut rng, &mut vars)?);
        width = hidden;
    }
    let last_hidden = width;
    let head = Net::init(&model.head, last_hidden, Init::Kaiming, &mut rng, &mut vars)?;
    let outputs = output_width(&model.head, last_hidden);
    if outputs != classes {
        bail!("the model ends with {outputs} outputs but the dataset has {classes} classes: make the last dense layer `dense {classes}`");
    }

    let test_refs: Vec<&[f32]> = test_set.series.iter().map(Vec::as_slice).collect();
    let test_batch = make_batch(&test_refs, channels, &normalization)?;
    let settings = Settings::new(training, progress.then_some("test acc"));
    // Rolls come from their own generator, so that a spec without
    // random_roll trains exactly as before it existed.
    let mut roll_rng = ChaCha8Rng::seed_from_u64(training.seed ^ ROLL_SEED);
    let file_channels = channels / model.patch.max(1);
    let history = train::run_classifier(
        vars,
        &settings,
        &mut rng,
        &train_set.labels,
        |chunk| {
            let rolled: Vec<Vec<f32>>;
            let refs: Vec<&[f32]> = if model.random_roll {
                rolled = chunk
                    .iter()
                    .map(|&i| roll(&train_set.series[i], file_channels, &mut roll_rng))
                    .collect();
                rolled.iter().map(Vec::as_slice).collect()
            } else {
                chunk
                    .iter()
                    .map(|&i| train_set.series[i].as_slice())
                    .collect()
            };
            let batch = make_batch(&refs, channels, &normalization)?;
            let (logits, _, _) = forward(&cells, &head, &batch, true)?;
            Ok(logits)
        },
        || {
            let (out, _, _) = forward(&cells, &head, &test_batch, false)?;
            let out = out.flatten_all()?.to_vec1::<f32>()?;
            Ok(Some(accuracy(&out, classes, &test_set.labels)))
        },
    )?;

    let layers = cells
        .iter()
        .map(CellTensors::to_params)
        .collect::<Result<Vec<_>>>()?;
    let head = Mlp {
        input_len: last_hidden,
        layers: head.to_layers(last_hidden)?,
        normalization: Normalization::identity(last_hidden),
    };
    Ok((
        SequenceModel {
            channels,
            layers,
            head,
            normalization,
        },
        history,
    ))
}
