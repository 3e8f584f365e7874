//! The trainer binary on data as a new user brings it: CSV options
//! (`skip_rows`, `header`, `delimiter`) and the error that suggests them,
//! the transformer's `pad_to` / `crop_to` and the error that names them,
//! and progress when stderr is not a terminal (lines, or none with
//! `--quiet`).

use std::path::Path;
use std::process::Command;

struct Outcome {
    code: Option<i32>,
    stderr: String,
}

/// Write `data.csv` and `spec.toml` into `dir` and run `trainer train`
/// with `extra` arguments; stderr is a pipe, never a terminal.
fn train(dir: &Path, spec: &str, csv: &str, extra: &[&str]) -> Outcome {
    std::fs::write(dir.join("data.csv"), csv).unwrap();
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["train", "spec.toml", "--out", "exported"])
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap();
    Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The single `error:` line of a failed run (no model written).
fn error_line<'a>(o: &'a Outcome, dir: &Path) -> &'a str {
    assert_eq!(o.code, Some(1), "stderr: {}", o.stderr);
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {:?}", o.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(!dir.join("exported/t/f32.bin").exists(), "no model written");
    lines[0]
}

fn assert_exported(o: &Outcome, dir: &Path) {
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    for f in ["f32.bin", "int8.bin", "report.json"] {
        assert!(dir.join("exported/t").join(f).is_file(), "{f}");
    }
}

/// An MLP spec reading `data.csv` with `dataset` extra lines in
/// `[dataset]` and `training` extra lines in `[training]`.
fn mlp_spec(dataset: &str, training: &str) -> String {
    format!(
        r#"name = "t"
[dataset]
path = "data.csv"
test_fraction = 0.25
seed = 1
{dataset}
[model]
layers = ["dense 4", "relu", "dense 2", "softmax"]
[training]
optimizer = {{ kind = "adam", learning_rate = 0.01 }}
epochs = 2
batch_size = 4
seed = 1
{training}
"#
    )
}

/// `rows` rows of two features and a label in {0, 1}, cells joined by
/// `delimiter`.
fn rows(rows: usize, delimiter: &str) -> String {
    (0..rows)
        .map(|i| {
            let class = i % 2;
            let (a, b) = (1 + i % 5 + 5 * class, 10 - i % 5 - 5 * class);
            format!("{a}{delimiter}{b}{delimiter}{class}\n")
        })
        .collect()
}

#[test]
fn a_count_line_on_line_1_is_named_and_skip_rows_suggested() {
    let dir = tempfile::tempdir().unwrap();
    // scikit-learn's CSVs start with `n_samples,n_features,class names...`.
    let csv = format!("12,2,class_0,class_1\n{}", rows(12, ","));
    let o = train(dir.path(), &mlp_spec("", ""), &csv, &[]);
    let line = error_line(&o, dir.path());
    assert!(line.contains("line 1 has 4 columns"), "{line}");
    assert!(line.contains("rows after it have 3"), "{line}");
    assert!(line.contains("skip_rows = 1"), "{line}");

    let o = train(dir.path(), &mlp_spec("skip_rows = 1", ""), &csv, &[]);
    assert_exported(&o, dir.path());
}

#[test]
fn a_ragged_row_later_is_still_named_by_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let csv = format!("{}1,2\n{}", rows(4, ","), rows(4, ","));
    let o = train(dir.path(), &mlp_spec("", ""), &csv, &[]);
    let line = error_line(&o, dir.path());
    assert!(
        line.contains("line 5: expected 3 columns, found 2"),
        "{line}"
    );
    assert!(!line.contains("skip_rows"), "{line}");
}

#[test]
fn skip_rows_header_and_delimiter_read_a_semicolon_file() {
    let dir = tempfile::tempdir().unwrap();
    let csv = format!(
        "exported by some tool\nwidth;height;kind\n{}",
        rows(12, ";")
    );
    let spec = mlp_spec(
        "skip_rows = 1\nheader = true\ndelimiter = \";\"\nlabel_column = \"kind\"",
        "",
    );
    let o = train(dir.path(), &spec, &csv, &[]);
    assert_exported(&o, dir.path());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("exported/t/report.json")).unwrap())
            .unwrap();
    // 12 rows read (not the skipped line nor the header): a quarter of
    // each class's 6, rounded, held out: 2 + 2.
    assert_eq!(report["test_samples"].as_u64(), Some(4), "{report}");
}

#[test]
fn a_tab_delimiter_reads_a_tsv_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(
        dir.path(),
        &mlp_spec("delimiter = \"\\t\"", ""),
        &rows(12, "\t"),
        &[],
    );
    assert_exported(&o, dir.path());
}

#[test]
fn a_delimiter_of_two_characters_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(
        dir.path(),
        &mlp_spec("delimiter = \";;\"", ""),
        &rows(12, ","),
        &[],
    );
    let line = error_line(&o, dir.path());
    assert!(line.contains("dataset.delimiter"), "{line}");
    assert!(line.contains("one ASCII character"), "{line}");
}

/// A transformer of `tokens` tokens over `data.csv` rows, with `resize`
/// (`pad_to = ...`, `crop_to = ...` or nothing) in `[transformer]`.
fn transformer_spec(tokens: usize, resize: &str) -> String {
    format!(
        r#"name = "t"
kind = "transformer"
[dataset]
path = "data.csv"
test_fraction = 0.25
seed = 1
[transformer]
tokens = {tokens}
dim = 8
heads = 1
blocks = 1
ff = 8
position = "sinusoidal"
pool = "mean"
{resize}
[training]
epochs = 2
batch_size = 4
seed = 1
"#
    )
}

/// `rows` rows of 7 features (a prime count) and a label in {0, 1}.
fn seven_features(rows: usize) -> String {
    (0..rows)
        .map(|i| {
            let class = i % 2;
            let values: Vec<String> = (0..7)
                .map(|j| format!("{}", (i + j) % 3 + 5 * class))
                .collect();
            format!("{},{class}\n", values.join(","))
        })
        .collect()
}

#[test]
fn an_input_that_does_not_split_names_pad_to_and_crop_to() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(
        dir.path(),
        &transformer_spec(2, ""),
        &seven_features(12),
        &[],
    );
    let line = error_line(&o, dir.path());
    assert!(
        line.contains("the input has 7 values, which do not split into 2 equal tokens"),
        "{line}"
    );
    assert!(line.contains("transformer.pad_to = 8"), "{line}");
    assert!(line.contains("transformer.crop_to = 6"), "{line}");
}

#[test]
fn pad_to_and_crop_to_make_the_input_split() {
    for resize in ["pad_to = 8", "crop_to = 6"] {
        let dir = tempfile::tempdir().unwrap();
        let o = train(
            dir.path(),
            &transformer_spec(2, resize),
            &seven_features(12),
            &[],
        );
        assert_exported(&o, dir.path());
    }
}

#[test]
fn pad_to_shorter_than_the_input_is_an_error_naming_crop_to() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(
        dir.path(),
        &transformer_spec(2, "pad_to = 4"),
        &seven_features(12),
        &[],
    );
    let line = error_line(&o, dir.path());
    assert!(line.contains("7 features, more than pad_to = 4"), "{line}");
    assert!(line.contains("crop_to"), "{line}");
}

#[test]
fn pad_to_and_crop_to_together_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(
        dir.path(),
        &transformer_spec(2, "pad_to = 8\ncrop_to = 6"),
        &seven_features(12),
        &[],
    );
    let line = error_line(&o, dir.path());
    assert!(line.contains("transformer.pad_to"), "{line}");
    assert!(line.contains("cannot both be set"), "{line}");
}

/// Training without a terminal for 40 epochs with a validation split.
const FORTY_EPOCHS: &str =
    "epochs = 40\nvalidation_fraction = 0.25\npatience = 0\nrestore_best = false";

#[test]
fn without_a_terminal_progress_is_a_line_every_few_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let spec = mlp_spec("", FORTY_EPOCHS).replace("epochs = 2\n", "");
    let o = train(dir.path(), &spec, &rows(24, ","), &[]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let lines: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("epoch"))
        .collect();
    // Every ceil(40 / 20) = 2 epochs, and the first: 1, 2, 4, ..., 40.
    let expected: Vec<usize> = std::iter::once(1).chain((2..=40).step_by(2)).collect();
    assert_eq!(lines.len(), expected.len(), "{}", o.stderr);
    for (line, epoch) in lines.iter().zip(&expected) {
        assert!(
            line.trim_start()
                .starts_with(&format!("epoch {epoch:>2}/40 ")),
            "{line}"
        );
        for part in [
            "loss ",
            "train acc ",
            "val loss ",
            "val acc ",
            "test acc ",
            " s",
        ] {
            assert!(line.contains(part), "{line:?} lacks {part:?}");
        }
        let seconds: f64 = line
            .trim_end()
            .strip_suffix(" s")
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no elapsed seconds in {line:?}"));
        assert!(seconds >= 0.0, "{line}");
    }
}

#[test]
fn quiet_prints_no_progress() {
    let dir = tempfile::tempdir().unwrap();
    let spec = mlp_spec("", FORTY_EPOCHS).replace("epochs = 2\n", "");
    let o = train(dir.path(), &spec, &rows(24, ","), &["--quiet"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_eq!(o.stderr, "", "nothing on stderr");
}

#[test]
fn early_stopping_ends_the_run_and_says_which_epoch_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let spec = mlp_spec("", "epochs = 400\nvalidation_fraction = 0.25\npatience = 3")
        .replace("epochs = 2\n", "");
    // Labels unrelated to the features: the validation loss soon climbs.
    let noise: String = (0..24)
        .map(|i| format!("{},{},{}\n", i % 5, i % 7, (i * i / 3) % 2))
        .collect();
    let o = train(dir.path(), &spec, &noise, &[]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let last = o.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("no lower val loss for 3 epochs; restored epoch"),
        "{}",
        o.stderr
    );
}
