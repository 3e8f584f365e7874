//! `trainer eval BLOB --spec S` works for every spec kind the export path
//! supports (issue #11, item 6): each kind is exported with a small spec on
//! the vendored data, then every exported blob is evaluated through the CLI,
//! and the printed figure must equal the one in the export's `report.json`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/datasets")
}

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trainer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Export `spec` (text) in a fresh folder; (folder, report).
fn export(spec: &str) -> (tempfile::TempDir, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec.replace("DATA", &datasets().display().to_string());
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    run(dir.path(), &["train", "spec.toml", "--out", "out"]);
    let report = std::fs::read(dir.path().join("out/m/report.json")).unwrap();
    (dir, serde_json::from_slice(&report).unwrap())
}

/// The first line `trainer eval out/m/<numeric>.bin --spec spec.toml` prints.
fn eval(dir: &Path, numeric: &str) -> String {
    let blob = format!("out/m/{numeric}.bin");
    let stdout = run(dir, &["eval", &blob, "--spec", "spec.toml"]);
    stdout.lines().next().unwrap_or_default().to_string()
}

/// A report's anomaly rank as `eval` prints it.
fn rank(value: &serde_json::Value) -> String {
    value.as_u64().map_or("none".into(), |r| r.to_string())
}

/// `eval` prints each blob's test accuracy as the report has it.
fn check_accuracy(dir: &Path, report: &serde_json::Value, rows: usize) {
    for numeric in ["f32", "int8"] {
        let accuracy = report[format!("{numeric}_accuracy")].as_f64().unwrap();
        let expected = format!(
            "out/m/{numeric}.bin: accuracy {:.2}% on {rows} test rows",
            100.0 * accuracy
        );
        assert_eq!(eval(dir, numeric), expected);
    }
}

const TRAINING: &str = r#"[training]
optimizer = { kind = "adam", learning_rate = 0.02 }
epochs = 2
batch_size = 8
seed = 1
"#;

#[test]
fn recurrent_ts_spec() {
    let (dir, report) = export(&format!(
        r#"name = "m"
[dataset]
path = "DATA/basic-motions/BasicMotions_TRAIN.ts"
test_path = "DATA/basic-motions/BasicMotions_TEST.ts"
[model]
layers = ["gru 4", "dense 4", "softmax"]
{TRAINING}"#
    ));
    check_accuracy(dir.path(), &report, 40);
}

#[test]
fn mlp_csv_spec() {
    let (dir, report) = export(&format!(
        r#"name = "m"
[dataset]
path = "DATA/iris/iris.csv"
test_fraction = 0.3
seed = 2
[model]
layers = ["dense 8", "relu", "dense 3", "softmax"]
{TRAINING}"#
    ));
    let rows = report["test_samples"].as_u64().unwrap() as usize;
    check_accuracy(dir.path(), &report, rows);
}

#[test]
fn self_training_spec() {
    let (dir, report) = export(&format!(
        r#"name = "m"
kind = "self-training"
[dataset]
path = "DATA/iris/iris.csv"
test_fraction = 0.3
[model]
layers = ["dense 8", "relu", "dense 3", "softmax"]
{TRAINING}
[self_training]
labelled_fraction = 0.5
rounds = 1
"#
    ));
    let rows = report["test_samples"].as_u64().unwrap() as usize;
    check_accuracy(dir.path(), &report, rows);
}

#[test]
fn transformer_classifier_specs() {
    // A CSV split into tokens, and a `.ts` pair.
    for (data, tokens, rows) in [
        (
            "path = \"DATA/iris/iris.csv\"\ntest_fraction = 0.3",
            2,
            None,
        ),
        (
            "path = \"DATA/basic-motions/BasicMotions_TRAIN.ts\"\ntest_path = \"DATA/basic-motions/BasicMotions_TEST.ts\"",
            10,
            Some(40),
        ),
    ] {
        let (dir, report) = export(&format!(
            r#"name = "m"
kind = "transformer"
[dataset]
{data}
[transformer]
tokens = {tokens}
dim = 8
heads = 2
blocks = 1
ff = 8
position = "none"
pool = "mean"
{TRAINING}"#
        ));
        let rows = rows.unwrap_or(report["test_samples"].as_u64().unwrap() as usize);
        check_accuracy(dir.path(), &report, rows);
        // Written from the classifier `Report` itself, like the other
        // classifiers' (f32 losses as f32, not widened through a JSON value).
        let text = std::fs::read_to_string(dir.path().join("out/m/report.json")).unwrap();
        // Read as a JSON value, not the typed (untagged) report: the workspace
        // build turns on serde_json's `arbitrary_precision` (through another
        // member's dependencies), under which untagged enums do not parse
        // numbers. A loss written as f32 is f32's shortest text.
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(value["classes"].is_array(), "not a classifier report: {text}");
        let losses = value["train_loss"].as_array().expect("train_loss");
        assert!(!losses.is_empty());
        for loss in losses {
            let written = loss.to_string();
            let as_f32: f32 = written.parse().unwrap();
            assert_eq!(as_f32.to_string(), written, "loss widened beyond f32");
        }
    }
}

const UCR: &str = r#"[series]
train = "DATA/ucr-anomaly-internal-bleeding-16/135_UCR_Anomaly_InternalBleeding16_TRAIN.csv"
test = "DATA/ucr-anomaly-internal-bleeding-16/135_UCR_Anomaly_InternalBleeding16_TEST.csv""#;

#[test]
fn transformer_forecaster_spec() {
    let (dir, report) = export(&format!(
        r#"name = "m"
kind = "transformer"
{UCR}
train_stride = 8
[transformer]
tokens = 8
dim = 8
heads = 2
blocks = 1
ff = 8
position = "relative"
pool = "causal"
vocab = 16
[training]
optimizer = {{ kind = "adam", learning_rate = 0.01 }}
epochs = 1
batch_size = 32
"#
    ));
    for numeric in ["f32", "int8"] {
        let stream = &report[format!("{numeric}_stream")];
        let expected = format!(
            "out/m/{numeric}.bin: anomaly rank {} among the error peaks, mean abs error {:.4} over {} points",
            rank(&stream["anomaly_rank"]),
            stream["mean_abs_error"].as_f64().unwrap(),
            report["series"]["test_points"].as_u64().unwrap()
                - report["series"]["scored_from"].as_u64().unwrap(),
        );
        assert_eq!(eval(dir.path(), numeric), expected);
    }
}

#[test]
fn classical_specs() {
    let kmeans = r#"name = "m"
kind = "kmeans"
[dataset]
path = "DATA/iris/iris.csv"
test_fraction = 0.3
[kmeans]
k = 3
k_range = [2, 3]
"#;
    let (dir, report) = export(kmeans);
    let expected = format!(
        "out/m/f32.bin: purity {:.2}% on {} test rows",
        100.0 * report["metric"]["host"].as_f64().unwrap(),
        report["test_samples"]
    );
    assert_eq!(eval(dir.path(), "f32"), expected);

    for (kind, table) in [
        ("pca", "[pca]\ncomponents = 4"),
        (
            "isolation-forest",
            "[isolation_forest]\ntrees = 5\nsample_size = 64",
        ),
    ] {
        let (dir, report) = export(&format!(
            "name = \"m\"\nkind = \"{kind}\"\n{UCR}\nwindow = 16\ntest_stride = 16\n{table}\n"
        ));
        let expected = format!(
            "out/m/f32.bin: anomaly rank {} among the score peaks over {} test windows",
            rank(&report["metric"]["host"]),
            report["test_samples"]
        );
        assert_eq!(eval(dir.path(), "f32"), expected, "{kind}");
    }
}
