//! Turning trained models into blobs, test vectors and reports, and
//! evaluating every blob with the runtime itself.
//!
//! Files written per model, into `<out>/<name>/`, as one folder that
//! replaces the previous export whole ([`write_model`], [`crate::io::ExportDir`]):
//! `f32.bin`, `int8.bin` (model blobs), `f32.vectors`, `int8.vectors` (test
//! inputs with the host runtime's outputs and the labels, see
//! [`runtime::TestVectors`]), `report.json`, and the plots `loss.png`,
//! `confusion.png`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Result};
use runtime::format::{self, Activation, LayerDef, ModelHeader, Numeric};
use runtime::{Model, TestVectors};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::data::{self, Dataset};
use crate::io::{self, ExportDir};
use crate::plot;
use crate::quantize::{quantize_mlp, QLayer, QuantizedMlp};
use crate::spec::{self, LayerSpec, ModelSpec};
use crate::train::{self, Layer, Mlp};

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn i32_bytes(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn i8_bytes(values: &[i8]) -> Vec<u8> {
    values.iter().map(|&v| v as u8).collect()
}

/// Encode header and layers with the runtime's own encoder.
fn encode(header: ModelHeader<'_>, layers: &[LayerDef<'_>]) -> Result<Vec<u8>> {
    let mut out = vec![
        0u8;
        runtime::encoded_len(header, layers)
            .map_err(|e| anyhow!("encoding the model: {e}"))?
    ];
    let len = runtime::encode(header, layers, &mut out)
        .map_err(|e| anyhow!("encoding the model: {e}"))?;
    out.truncate(len);
    Ok(out)
}

/// The f32 blob of a trained MLP.
pub fn f32_blob(mlp: &Mlp) -> Result<Vec<u8>> {
    let offset = f32_bytes(&mlp.normalization.offset);
    let scale = f32_bytes(&mlp.normalization.scale);
    let params: Vec<(Vec<u8>, Vec<u8>)> = mlp
        .layers
        .iter()
        .map(|l| match l {
            Layer::Dense { weights, bias, .. } => (f32_bytes(weights), f32_bytes(bias)),
            Layer::Op(_) => (Vec::new(), Vec::new()),
        })
        .collect();
    let mut layers = Vec::new();
    for (layer, (w, b)) in mlp.layers.iter().zip(&params) {
        layers.push(match layer {
            Layer::Dense {
                inputs, outputs, ..
            } => LayerDef::DenseF32 {
                inputs: *inputs as u32,
                outputs: *outputs as u32,
                weights: w,
                bias: b,
            },
            Layer::Op(op) => match *op {
                LayerSpec::Relu => LayerDef::ActivationF32(Activation::Relu),
                LayerSpec::LeakyRelu { alpha } => {
                    LayerDef::ActivationF32(Activation::LeakyRelu { alpha })
                }
                LayerSpec::Sigmoid => LayerDef::ActivationF32(Activation::Sigmoid),
                LayerSpec::Tanh => LayerDef::ActivationF32(Activation::Tanh),
                LayerSpec::Gelu => LayerDef::ActivationF32(Activation::Gelu),
                LayerSpec::Softmax => LayerDef::ActivationF32(Activation::Softmax),
                LayerSpec::Save { slot } => LayerDef::SaveSkip { slot },
                LayerSpec::Add { slot } => LayerDef::AddSkipF32 { slot },
                LayerSpec::Dense { .. } => return Err(anyhow!("dense layer without parameters")),
                LayerSpec::Recurrent { .. } => {
                    return Err(anyhow!("recurrent layers need a sequence (.ts) dataset"))
                }
            },
        });
    }
    let header = ModelHeader {
        numeric: Numeric::F32,
        input_len: mlp.input_len as u32,
        output_len: mlp.output_len() as u32,
        arena_bytes: 0,
        layer_count: 0,
        input_offset: &offset,
        input_scale: &scale,
        input_quant: None,
        output_quant: None,
    };
    encode(header, &layers)
}

/// The int8 blob of a quantized MLP (normalization taken from `mlp`).
pub fn int8_blob(q: &QuantizedMlp, mlp: &Mlp) -> Result<Vec<u8>> {
    let offset = f32_bytes(&mlp.normalization.offset);
    let scale = f32_bytes(&mlp.normalization.scale);
    type Arrays = [Vec<u8>; 4];
    let params: Vec<Arrays> = q
        .layers
        .iter()
        .map(|l| match l {
            QLayer::Dense {
                weights,
                bias,
                multiplier,
                shift,
                ..
            } => [
                i8_bytes(weights),
                i32_bytes(bias),
                i32_bytes(multiplier),
                shift.clone(),
            ],
            QLayer::Table(t) => [i8_bytes(t), vec![], vec![], vec![]],
            QLayer::Softmax(t) => [
                t.iter().flat_map(|v| v.to_le_bytes()).collect(),
                vec![],
                vec![],
                vec![],
            ],
            _ => Default::default(),
        })
        .collect();
    let layers: Vec<LayerDef> = q
        .layers
        .iter()
        .zip(&params)
        .map(|(l, [a, b, c, d])| match *l {
            QLayer::Dense {
                inputs,
                outputs,
                output_zero_point,
                ..
            } => LayerDef::DenseI8 {
                inputs: inputs as u32,
                outputs: outputs as u32,
                weights: a,
                bias: b,
                multiplier: c,
                shift: d,
                output_zero_point,
            },
            QLayer::Table(_) => LayerDef::TableI8 { table: a },
            QLayer::Softmax(_) => LayerDef::SoftmaxI8 { exp_table: a },
            QLayer::Save(slot) => LayerDef::SaveSkip { slot },
            QLayer::Add {
                slot,
                input,
                skip,
                output_zero_point,
            } => LayerDef::AddSkipI8 {
                slot,
                input,
                skip,
                output_zero_point,
            },
        })
        .collect();
    let header = ModelHeader {
        numeric: Numeric::Int8,
        input_len: mlp.input_len as u32,
        output_len: mlp.output_len() as u32,
        arena_bytes: 0,
        layer_count: 0,
        input_offset: &offset,
        input_scale: &scale,
        input_quant: Some(q.input_quant),
        output_quant: Some(q.output_quant),
    };
    encode(header, &layers)
}

/// A blob run over a dataset by the runtime.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Fraction of rows whose argmax is the label.
    pub accuracy: f64,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    /// Test vectors: inputs as the chip takes them, the runtime's outputs, labels.
    pub vectors: Vec<u8>,
}

/// Run `blob` with the runtime over every row of `data`.
pub fn evaluate(blob: &[u8], data: &Dataset) -> Result<Evaluation> {
    let model =
        Model::from_bytes(blob).map_err(|e| anyhow!("the exported blob does not load: {e}"))?;
    let classes = data.class_count();
    let mut arena = vec![0u32; model.arena_bytes().div_ceil(4)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena); // 4-byte aligned for f32
    let mut confusion = vec![vec![0usize; classes]; classes];
    let (mut inputs, mut expected, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    let mut correct = 0;
    for i in 0..data.len() {
        let row = data.row(i);
        let predicted = match model.numeric() {
            Numeric::F32 => {
                let out = model
                    .run_f32(row, arena)
                    .map_err(|e| anyhow!("row {i}: {e}"))?;
                inputs.extend(f32_bytes(row));
                expected.extend(f32_bytes(out));
                runtime::argmax(out)
            }
            Numeric::Int8 => {
                let mut q = vec![0i8; row.len()];
                model
                    .quantize_input(row, &mut q)
                    .map_err(|e| anyhow!("row {i}: {e}"))?;
                let out = model
                    .run_i8(&q, arena)
                    .map_err(|e| anyhow!("row {i}: {e}"))?;
                inputs.extend(i8_bytes(&q));
                expected.extend(i8_bytes(out));
                runtime::argmax(out)
            }
        };
        let label = data.labels[i];
        labels.extend((label as u16).to_le_bytes());
        if predicted == label {
            correct += 1;
        }
        if let Some(cell) = confusion.get_mut(label).and_then(|r| r.get_mut(predicted)) {
            *cell += 1;
        }
    }
    let vectors = TestVectors {
        numeric: model.numeric(),
        count: data.len() as u32,
        input_len: model.input_len() as u32,
        output_len: model.output_len() as u32,
        inputs: &inputs,
        expected: &expected,
        labels: &labels,
        steps: None,
    };
    Ok(Evaluation {
        accuracy: correct as f64 / data.len().max(1) as f64,
        confusion,
        vectors: postcard::to_stdvec(&vectors)?,
    })
}

/// Size and cost of one blob, for reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlobReport {
    /// Blob size (what goes to flash).
    pub blob_bytes: usize,
    /// Working memory inference needs.
    pub arena_bytes: usize,
    /// Weights and biases.
    pub parameters: usize,
    /// Multiply-accumulates per inference.
    pub macs: usize,
    /// Test accuracy, computed by the runtime on the host.
    pub accuracy: f64,
}

/// Everything `export` learned about one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Model name from the spec.
    pub name: String,
    /// Dataset path as given in the spec.
    pub dataset: String,
    /// Class names.
    pub classes: Vec<String>,
    /// Rows used for training.
    pub train_samples: usize,
    /// Rows used for testing (and test vectors).
    pub test_samples: usize,
    /// f32 test accuracy (runtime on the host).
    pub f32_accuracy: f64,
    /// int8 test accuracy (runtime on the host).
    pub int8_accuracy: f64,
    /// f32 blob figures.
    pub f32: BlobReport,
    /// int8 blob figures.
    pub int8: BlobReport,
    /// Mean training loss per epoch.
    pub train_loss: Vec<f32>,
    /// Seconds spent training.
    pub training_seconds: f64,
    /// Identifies the inputs (spec, dataset, format version) this export came from.
    pub fingerprint: String,
}

/// One line summarising a classifier report.
pub fn summary(r: &Report) -> String {
    format!(
        "{}: f32 {:.2}%  int8 {:.2}%  (test {} rows, train {} rows)  blobs {} B f32 / {} B int8, arena {} B f32 / {} B int8",
        r.name,
        100.0 * r.f32_accuracy,
        100.0 * r.int8_accuracy,
        r.test_samples,
        r.train_samples,
        r.f32.blob_bytes,
        r.int8.blob_bytes,
        r.f32.arena_bytes,
        r.int8.arena_bytes
    )
}

/// Size and cost figures of a blob, with its test accuracy.
pub fn blob_report(blob: &[u8], accuracy: f64) -> Result<BlobReport> {
    let model = Model::from_bytes(blob).map_err(|e| anyhow!("{e}"))?;
    let stats = model.stats();
    Ok(BlobReport {
        blob_bytes: blob.len(),
        arena_bytes: model.arena_bytes(),
        parameters: stats.parameters,
        macs: stats.macs,
        accuracy,
    })
}

/// What the plots of a classifier export show.
pub struct Plots<'a> {
    /// Model name, the loss plot's title.
    pub title: &'a str,
    /// Training loss and test accuracy per epoch.
    pub history: &'a train::History,
    /// Class names for the confusion matrix (of the int8 model).
    pub class_names: &'a [String],
}

/// Export one model into `out_root/<name>/`, all or nothing: the one path
/// every family's export takes. First undo what a killed export left
/// ([`io::recover`]); with `reuse` (the files a complete export has), keep an
/// export whose report carries `fingerprint`; otherwise `build` trains and
/// writes the files into a staging [`ExportDir`], this writes the report it
/// returns last, and the folder is swapped into place.
pub fn write_model<R: Serialize + DeserializeOwned>(
    out_root: &Path,
    name: &str,
    fingerprint: &str,
    reuse: Option<&[&str]>,
    build: impl FnOnce(&ExportDir) -> Result<R>,
) -> Result<R> {
    io::recover(out_root, name)?;
    if let Some(files) = reuse {
        if let Some(old) = up_to_date_report(&model_dir(out_root, name), fingerprint, files) {
            return Ok(old);
        }
    }
    let dir = ExportDir::create(out_root, name)?;
    let report = build(&dir)?;
    dir.write(
        "report.json",
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    dir.commit()?;
    Ok(report)
}

/// Draw `file` of an export with `draw`; a plot that cannot be drawn is a
/// warning, not an error.
pub fn plot(dir: &ExportDir, file: &str, draw: impl FnOnce(&Path) -> Result<()>) {
    if let Err(e) = dir.render(file, draw) {
        eprintln!("warning: plot skipped: {e:#}");
    }
}

/// Write a classifier export's files into `dir`: both blobs, both
/// test-vector files and the plots (the report is written by [`write_model`]).
pub fn write_export(
    dir: &ExportDir,
    (f32_blob, f32_eval): (&[u8], &Evaluation),
    (int8_blob, int8_eval): (&[u8], &Evaluation),
    plots: Option<Plots<'_>>,
) -> Result<()> {
    dir.write("f32.bin", f32_blob)?;
    dir.write("int8.bin", int8_blob)?;
    dir.write("f32.vectors", &f32_eval.vectors)?;
    dir.write("int8.vectors", &int8_eval.vectors)?;
    if let Some(p) = plots {
        plot(dir, "loss.png", |path| {
            plot::loss_curve(
                path,
                p.title,
                &p.history.train_loss,
                &p.history.test_accuracy,
            )
        });
        plot(dir, "confusion.png", |path| {
            plot::confusion_matrix(
                path,
                &format!("{} int8, test split", p.title),
                p.class_names,
                &int8_eval.confusion,
            )
        });
    }
    Ok(())
}

/// Class names and row counts of a classifier's train/test split, for its report.
pub struct Split<'a> {
    /// Class names (index = class id).
    pub class_names: &'a [String],
    /// Training rows or series.
    pub train_samples: usize,
    /// Test rows or series (and test vectors).
    pub test_samples: usize,
}

/// The last step of every classifier export (MLP, recurrent, transformer):
/// build the report from both evaluated blobs and write the files with
/// [`write_export`]; returns the report for [`write_model`] to write.
#[allow(clippy::too_many_arguments)]
pub fn finish_classifier_export(
    spec: &ModelSpec,
    dir: &ExportDir,
    split: Split<'_>,
    (f32_model, f32_eval): (&[u8], &Evaluation),
    (int8_model, int8_eval): (&[u8], &Evaluation),
    history: &train::History,
    training_seconds: f64,
    fingerprint: String,
) -> Result<Report> {
    let report = Report {
        name: spec.name.clone(),
        dataset: spec.dataset.path.display().to_string(),
        classes: split.class_names.to_vec(),
        train_samples: split.train_samples,
        test_samples: split.test_samples,
        f32_accuracy: f32_eval.accuracy,
        int8_accuracy: int8_eval.accuracy,
        f32: blob_report(f32_model, f32_eval.accuracy)?,
        int8: blob_report(int8_model, int8_eval.accuracy)?,
        train_loss: history.train_loss.clone(),
        training_seconds,
        fingerprint,
    };
    write_export(
        dir,
        (f32_model, f32_eval),
        (int8_model, int8_eval),
        Some(Plots {
            title: &spec.name,
            history,
            class_names: split.class_names,
        }),
    )?;
    Ok(report)
}

/// The report of the export in `dir` if it is complete (`report.json` and
/// every file in `files`) and was made from inputs with this `fingerprint`;
/// `None` means the model must be exported again.
pub fn up_to_date_report<R: serde::de::DeserializeOwned>(
    dir: &Path,
    fingerprint: &str,
    files: &[&str],
) -> Option<R> {
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).ok()?).ok()?;
    let complete = files.iter().all(|f| dir.join(f).is_file());
    if value["fingerprint"] == fingerprint && complete {
        serde_json::from_value(value).ok()
    } else {
        None
    }
}

/// The files of a classifier export besides its report.
pub const CLASSIFIER_FILES: [&str; 4] = ["f32.bin", "int8.bin", "f32.vectors", "int8.vectors"];

/// Identifies what an export was made from: the spec, its data files, the
/// format version and the trainer's and runtime's source (see `build.rs`).
/// Every family's fingerprint.
pub fn fingerprint(spec_path: &Path, data_files: &[PathBuf]) -> Result<String> {
    let mut digest = runtime::format::CRC32.digest();
    digest.update(&io::read(spec_path, "spec")?);
    for file in data_files {
        digest.update(&io::read(file, "dataset")?);
    }
    digest.update(&format::FORMAT_VERSION.to_le_bytes());
    digest.update(env!("TRAINER_SOURCE_FINGERPRINT").as_bytes());
    Ok(format!("{:08x}", digest.finalize()))
}

/// Files of one exported model.
pub fn model_dir(out_root: &Path, name: &str) -> PathBuf {
    out_root.join(name)
}

/// Load the spec's dataset and split it as the spec says.
pub fn load_split(spec: &ModelSpec) -> Result<(Dataset, Dataset)> {
    let path = spec.dataset_path();
    let all = data::load_csv(&path, &spec.csv_options())?;
    crate::limits::check_data(
        &path,
        &[
            ("input width", all.feature_count),
            ("class count", all.class_count()),
        ],
    )?;
    let (train, test) = data::split_stratified(&all, spec.dataset.test_fraction, spec.dataset.seed);
    if train.is_empty() || test.is_empty() {
        return Err(anyhow!(
            "the dataset is too small to split into train and test"
        ));
    }
    Ok((train, test))
}

/// Train, quantize, evaluate and write everything for one spec. With
/// `reuse`, an export whose fingerprint matches is kept as it is.
pub fn export_spec(
    spec_path: &Path,
    out_root: &Path,
    reuse: bool,
    progress: bool,
) -> Result<Report> {
    let spec = spec::load_spec(spec_path)?;
    if crate::recurrent::is_sequence_spec(&spec) {
        return crate::recurrent::export_sequence_spec(spec_path, &spec, out_root, reuse, progress);
    }
    let fingerprint = fingerprint(spec_path, &spec.data_files())?;
    write_model(
        out_root,
        &spec.name,
        &fingerprint.clone(),
        reuse.then_some(&CLASSIFIER_FILES[..]),
        |dir| {
            let (train_set, test_set) = load_split(&spec)?;
            let normalization = data::fit_normalization(&train_set);
            let started = Instant::now();
            let (mlp, history) = train::train(
                &spec.model,
                &spec.training,
                normalization,
                &train_set,
                &test_set,
                progress,
            )?;
            let training_seconds = started.elapsed().as_secs_f64();

            let calibration_rows = spec.quantization.calibration_samples.min(train_set.len());
            let calibration =
                mlp.normalize(&train_set.features[..calibration_rows * train_set.feature_count]);
            let quantized = quantize_mlp(&mlp, &calibration)?;

            let f32_model = f32_blob(&mlp)?;
            let int8_model = int8_blob(&quantized, &mlp)?;
            let f32_eval = evaluate(&f32_model, &test_set)?;
            let int8_eval = evaluate(&int8_model, &test_set)?;

            finish_classifier_export(
                &spec,
                dir,
                Split {
                    class_names: &train_set.class_names,
                    train_samples: train_set.len(),
                    test_samples: test_set.len(),
                },
                (&f32_model, &f32_eval),
                (&int8_model, &int8_eval),
                &history,
                training_seconds,
                fingerprint,
            )
        },
    )
}
