//! CNNs end to end on real data: trainer (candle) vs runtime f32 within
//! 1e-4 for the two demo specs and for a model with every layer kind, the
//! int8 blob close to f32, batch norm folded away, and every exported
//! blob's shapes as `trainer inspect` shows them.

use std::path::{Path, PathBuf};

use runtime::format::FeatureMap;
use runtime::Model;
use trainer::cnn::{self, Cnn, CnnData, CnnFamily, CnnSpec};
use trainer::spec::Spec;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A spec of `models/specs/` with its epochs cut to `epochs`.
fn demo_spec(name: &str, epochs: usize) -> Spec<CnnSpec> {
    let path = root().join("models/specs").join(name);
    let mut spec = trainer::family::load(&CnnFamily, &path).unwrap();
    spec.training.as_mut().unwrap().epochs = epochs;
    spec
}

fn train(spec: &Spec<CnnSpec>) -> (Cnn, CnnData) {
    let data = cnn::load_data(spec).unwrap();
    let (model, _) = cnn::train::train(
        &spec.family,
        spec.training().unwrap(),
        data.normalization.clone(),
        &data.train,
        &data.test,
        false,
    )
    .unwrap();
    (model, data)
}

/// Max |runtime f32 - trainer| over the test rows.
fn f32_difference(model: &Cnn, blob: &[u8], rows: &[f32]) -> f32 {
    let runtime_model = Model::from_bytes(blob).unwrap();
    let reference = model.predict(rows).unwrap();
    let outputs = runtime_model.output_len();
    let mut arena = vec![0u32; runtime_model.arena_bytes().div_ceil(4)];
    let mut worst = 0.0f32;
    for (row, want) in rows
        .chunks_exact(runtime_model.input_len())
        .zip(reference.chunks_exact(outputs))
    {
        let got = runtime_model
            .run_f32(row, bytemuck::cast_slice_mut(&mut arena))
            .unwrap();
        for (a, b) in got.iter().zip(want) {
            worst = worst.max((a - b).abs());
        }
    }
    worst
}

/// Mean |int8 (dequantized) - f32| of the outputs, and the share of rows
/// whose class agrees.
fn int8_closeness(f32_blob: &[u8], int8_blob: &[u8], data: &CnnData) -> (f64, f64) {
    let labels: Vec<u16> = data.test.labels.iter().map(|&l| l as u16).collect();
    let f = trainer::runner::run_rows(f32_blob, &data.test.features, &labels).unwrap();
    let q = trainer::runner::run_rows(int8_blob, &data.test.features, &labels).unwrap();
    let mean = f
        .outputs
        .iter()
        .zip(&q.outputs)
        .map(|(a, b)| f64::from((a - b).abs()))
        .sum::<f64>()
        / f.outputs.len() as f64;
    let agree = f
        .argmax
        .iter()
        .zip(&q.argmax)
        .filter(|(a, b)| a == b)
        .count();
    (mean, agree as f64 / f.argmax.len() as f64)
}

fn check(spec: &Spec<CnnSpec>, name: &str) {
    let (model, data) = train(spec);
    assert!(
        model
            .front
            .iter()
            .all(|t| t.layer.kind != cnn::spec::FrontKind::BatchNorm),
        "{name}: batch norm is folded"
    );
    let f32_blob = model.f32_blob().unwrap().encode().unwrap();
    let worst = f32_difference(&model, &f32_blob, &data.test.features);
    println!("{name}: trainer vs runtime f32, max |difference| {worst:.2e}");
    assert!(
        worst <= 1e-4,
        "{name}: trainer vs runtime differ by {worst}"
    );
    let calibration = model.normalization.rows(&data.train.features);
    let int8_blob = cnn::quantize::int8_blob(&model, &calibration)
        .unwrap()
        .encode()
        .unwrap();
    let (mean, agree) = int8_closeness(&f32_blob, &int8_blob, &data);
    println!("{name}: int8 vs f32 mean |difference| {mean:.4}, classes agree on {agree:.3}");
    assert!(
        mean < 0.03,
        "{name}: int8 outputs are {mean} from f32 on average"
    );
    assert!(agree >= 0.95, "{name}: int8 and f32 agree on only {agree}");
}

#[test]
fn digits_cnn_runtime_matches_the_trainer() {
    check(&demo_spec("digits-cnn.toml", 2), "digits-cnn");
}

#[test]
fn basicmotions_cnn1d_runtime_matches_the_trainer() {
    check(
        &demo_spec("basicmotions-cnn1d.toml", 4),
        "basicmotions-cnn1d",
    );
}

/// Every layer kind and window rule on digits: depthwise and pointwise,
/// strides and `same` padding that split unevenly, a dilation, average and
/// max pooling with padding, ReLU6, LeakyReLU, tanh, a residual add, a
/// flatten into a two-layer head.
#[test]
fn every_layer_kind_matches_the_trainer() {
    let text = r#"name = "cnn-all"
kind = "cnn"
[dataset]
path = "../datasets/digits/digits.csv.gz"
label_column = "last"
test_fraction = 0.2
seed = 7
[model]
input = [8, 8, 1]
layers = [
  "conv2d 8 3x2 stride 2 pad same", "batchnorm", "relu6",
  "save 0", "dwconv2d 3 pad same", "batchnorm", "leaky_relu 0.1", "conv2d 8 1", "add 0",
  "avgpool 3 stride 2 pad same", "conv2d 12 2 dilation 2 pad same", "tanh",
  "maxpool 3x2 stride 1 pad same", "relu",
  "flatten", "dense 16", "relu", "dense 10", "softmax",
]
[training]
optimizer = { kind = "adam", learning_rate = 0.01 }
epochs = 3
batch_size = 32
seed = 2
"#;
    let spec = trainer::family::parse(&CnnFamily, text, &root().join("models/specs/cnn-all.toml"))
        .unwrap();
    let shapes: Vec<FeatureMap> = spec.family.front.iter().map(|l| l.output).collect();
    // 8x8 stride 2 same: 4x4; avgpool 3 stride 2 same over 4x4: 2x2.
    assert_eq!(
        shapes[0],
        FeatureMap {
            height: 4,
            width: 4,
            channels: 8
        }
    );
    assert_eq!(
        shapes[9],
        FeatureMap {
            height: 2,
            width: 2,
            channels: 8
        }
    );
    check(&spec, "every layer kind");
}

/// `trainer inspect` shows each exported CNN layer's output map and MACs.
#[test]
fn inspect_shows_shapes_and_macs() {
    for (blob, lines) in [
        (
            "digits-cnn/int8.bin",
            &[
                "conv2d int8            8x8x16           9216",
                "global average pool    1x1x32",
                r#"features = ["int8", "conv"] }"#,
            ][..],
        ),
        (
            "basicmotions-cnn1d/f32.bin",
            &[
                "conv1d f32             1x100x16         48000",
                "max pool               1x50x16",
                r#"features = ["f32", "conv"] }"#,
            ][..],
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
            .arg("inspect")
            .arg(root().join("models/exported").join(blob))
            .output()
            .unwrap();
        assert!(out.status.success(), "{blob}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in lines {
            assert!(stdout.contains(line), "{blob}: no {line:?} in\n{stdout}");
        }
    }
}
