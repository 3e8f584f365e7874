//! The trainer binary on bad input: one clear `error:` line, a failure exit
//! code, and no model files (or temporary files) left behind.

use std::path::Path;
use std::process::Command;

struct Outcome {
    code: Option<i32>,
    stderr: String,
}

fn train(dir: &Path, spec: &str, csv: &str) -> Outcome {
    std::fs::write(dir.join("data.csv"), csv).unwrap();
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["train", "spec.toml", "--out", "exported"])
        .current_dir(dir)
        .output()
        .unwrap();
    Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn spec(layers: &str, label_column: &str) -> String {
    format!(
        r#"name = "t"
[dataset]
path = "data.csv"
label_column = {label_column}
test_fraction = 0.5
seed = 1
[model]
layers = {layers}
[training]
optimizer = {{ kind = "adam", learning_rate = 0.01 }}
epochs = 2
batch_size = 4
seed = 1
"#
    )
}

const GOOD_CSV: &str = "1,2,0\n2,1,1\n1,3,0\n3,1,1\n1,4,0\n4,1,1\n";

fn assert_one_error_line(o: &Outcome, needle: &str, dir: &Path) {
    assert_eq!(o.code, Some(1), "stderr: {}", o.stderr);
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {:?}", o.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(
        lines[0].contains(needle),
        "{:?} does not mention {needle:?}",
        lines[0]
    );
    assert!(!dir.join("exported/t/f32.bin").exists(), "no model written");
    let leftovers: Vec<_> = walk(&dir.join("exported"))
        .into_iter()
        .filter(|p| p.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}

#[test]
fn good_input_trains_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(
        dir.path(),
        &spec(r#"["dense 4", "relu", "dense 2", "softmax"]"#, "\"last\""),
        GOOD_CSV,
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    for f in [
        "f32.bin",
        "int8.bin",
        "f32.vectors",
        "int8.vectors",
        "report.json",
    ] {
        assert!(dir.path().join("exported/t").join(f).is_file(), "{f}");
    }
}

#[test]
fn unknown_layer() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(
        dir.path(),
        &spec(r#"["dense 4", "relu", "densse 2"]"#, "\"last\""),
        GOOD_CSV,
    );
    assert_one_error_line(&o, "densse", dir.path());
}

#[test]
fn impossible_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(
        dir.path(),
        &spec(r#"["dense 4", "relu", "dense 7", "softmax"]"#, "\"last\""),
        GOOD_CSV,
    );
    assert_one_error_line(&o, "2 classes", dir.path());
}

#[test]
fn empty_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(
        dir.path(),
        &spec(r#"["dense 2", "softmax"]"#, "\"last\""),
        "",
    );
    assert_one_error_line(&o, "no data rows", dir.path());
}

#[test]
fn label_column_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(
        dir.path(),
        &spec(r#"["dense 2", "softmax"]"#, "7"),
        GOOD_CSV,
    );
    assert_one_error_line(&o, "label column 7 is out of range", dir.path());
}

#[test]
fn missing_dataset() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        spec(r#"["dense 2", "softmax"]"#, "\"last\""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["train", "spec.toml", "--out", "exported"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let o = Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_one_error_line(&o, "dataset not found", dir.path());
    assert_one_error_line(&o, "data.csv", dir.path());
}

#[test]
fn malformed_row_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(
        dir.path(),
        &spec(r#"["dense 2", "softmax"]"#, "\"last\""),
        "1,2,0\n2,1,1\n1,x,0\n",
    );
    assert_one_error_line(&o, "line 3", dir.path());
}

/// Run `trainer train spec.toml --out <out>` on a good spec and dataset.
fn train_to(dir: &Path, out: &str) -> Outcome {
    std::fs::write(dir.join("data.csv"), GOOD_CSV).unwrap();
    std::fs::write(
        dir.join("spec.toml"),
        spec(r#"["dense 4", "relu", "dense 2", "softmax"]"#, "\"last\""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["train", "spec.toml", "--out", out])
        .current_dir(dir)
        .output()
        .unwrap();
    Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The single `error:` line of a failed run.
fn error_line(o: &Outcome) -> &str {
    assert_eq!(o.code, Some(1), "stderr: {}", o.stderr);
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {:?}", o.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    lines[0]
}

#[test]
fn out_folder_that_is_a_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("taken"), b"not a folder").unwrap();
    let o = train_to(dir.path(), "taken");
    let line = error_line(&o);
    assert!(line.contains("taken"), "{line:?} does not name the path");
    assert_eq!(
        std::fs::read(dir.path().join("taken")).unwrap(),
        b"not a folder"
    );
}

#[test]
fn model_folder_that_is_a_file_is_named_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("exported")).unwrap();
    std::fs::write(dir.path().join("exported/t"), b"mine").unwrap();
    let o = train_to(dir.path(), "exported");
    let line = error_line(&o);
    assert!(
        line.contains("exported/t"),
        "{line:?} does not name the path"
    );
    assert_eq!(
        std::fs::read(dir.path().join("exported/t")).unwrap(),
        b"mine"
    );
    assert_eq!(
        walk(&dir.path().join("exported")).len(),
        1,
        "nothing else written"
    );
}

#[test]
fn unreadable_dataset_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // A folder where the dataset should be: it exists, but cannot be read.
    std::fs::create_dir(dir.path().join("data.csv")).unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        spec(r#"["dense 2", "softmax"]"#, "\"last\""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["train", "spec.toml", "--out", "exported"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let o = Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let line = error_line(&o);
    assert!(line.contains("data.csv"), "{line:?} does not name the path");
    assert!(
        line.contains("cannot read dataset") && !line.contains("not found"),
        "{line:?}: the dataset exists, it cannot be read"
    );
}

#[test]
fn closed_stdout_is_an_error_line_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let o = train_to(dir.path(), "exported");
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    // A reader that has gone away, like `trainer inspect ... | head -1` after one line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["inspect", "exported/t/int8.bin"])
        .current_dir(dir.path())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let o = Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let line = error_line(&o);
    assert!(line.contains("standard output"), "{line:?}");
}

/// `inspect` names the smallest runtime build of a blob, as a line to paste
/// into a firmware's Cargo.toml.
#[test]
fn inspect_prints_the_runtime_dependency_with_the_models_features() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (blob, features) in [
        ("iris-mlp/int8.bin", r#"features = ["int8"]"#),
        ("iris-mlp/f32.bin", r#"features = ["f32"]"#),
        (
            "basicmotions-lstm/int8.bin",
            r#"features = ["int8", "recurrent"]"#,
        ),
        (
            "digits-transformer/f32.bin",
            r#"features = ["f32", "attention"]"#,
        ),
        (
            "ucr-isolation-forest/f32.bin",
            r#"features = ["f32", "classical"]"#,
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
            .arg("inspect")
            .arg(root.join("models/exported").join(blob))
            .output()
            .unwrap();
        assert!(out.status.success(), "{blob}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("runtime = { path = "))
            .unwrap_or_else(|| panic!("{blob}: no dependency line in {stdout}"));
        assert!(line.contains("default-features = false"), "{line}");
        assert!(line.ends_with(&format!("{features} }}")), "{blob}: {line}");
        let path = line.split('"').nth(1).unwrap();
        assert!(
            Path::new(path).join("Cargo.toml").is_file(),
            "{blob}: {path} is the runtime crate"
        );
    }
}
