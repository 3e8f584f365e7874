//! Training a dense stack as a classifier: Kaiming-uniform weights and zero
//! biases from the spec's seed, then the shared loop ([`crate::train`]) on
//! cross-entropy with the spec's recipe, watching the test accuracy.

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::{Dataset, Normalization};
use crate::dense::model::{output_width, Init, Mlp, Net};
use crate::dense::spec::LayerSpec;
use crate::metrics::accuracy;
use crate::spec::TrainingSpec;
use crate::train::{self, History, Settings};

/// Train a classifier on normalized copies of `train`; `test` is only watched.
pub fn classifier(
    layers: &[LayerSpec],
    training: &TrainingSpec,
    normalization: Normalization,
    train: &Dataset,
    test: &Dataset,
    progress: bool,
) -> Result<(Mlp, History)> {
    let input_len = train.feature_count;
    let classes = train.class_count();
    let out_width = output_width(layers, input_len);
    if out_width != classes {
        bail!("the model ends with {out_width} outputs but the dataset has {classes} classes: make the last dense layer `dense {classes}`");
    }
    if train.is_empty() {
        bail!("the training split is empty");
    }
    let device = Device::Cpu;
    // Our own seeded generator draws the weights and then the batches, so a
    // run reproduces exactly.
    let mut rng = ChaCha8Rng::seed_from_u64(training.seed);
    let mut vars = Vec::new();
    let net = Net::init(layers, input_len, Init::Kaiming, &mut rng, &mut vars)?;

    let train_x = normalization.rows(&train.features);
    let test_x = Tensor::from_vec(
        normalization.rows(&test.features),
        (test.len(), input_len),
        &device,
    )?;
    let settings = Settings::new(training, progress.then_some("test acc"));
    let history = train::run_classifier(
        vars,
        &settings,
        &mut rng,
        &train.labels,
        |batch| {
            let mut xs = Vec::with_capacity(batch.len() * input_len);
            for &i in batch {
                xs.extend_from_slice(&train_x[i * input_len..(i + 1) * input_len]);
            }
            let x = Tensor::from_vec(xs, (batch.len(), input_len), &device)?;
            Ok(net.forward(&x, true, None)?)
        },
        || {
            let out = net.forward(&test_x, false, None)?;
            let out = out.flatten_all()?.to_vec1::<f32>()?;
            Ok(Some(accuracy(&out, classes, &test.labels)))
        },
    )?;
    Ok((
        Mlp {
            input_len,
            layers: net.to_layers(input_len)?,
            normalization,
        },
        history,
    ))
}
