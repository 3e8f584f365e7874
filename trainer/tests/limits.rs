//! Specs the runtime would refuse are refused before any data is read or any
//! training starts (issue #11, item 4): one `error:` line naming the field and
//! the runtime's limit, for every spec kind.
//!
//! Most specs here point at a dataset that does not exist: if the trainer read
//! data (or fingerprinted it) before checking the limits, the error would be
//! about the missing file instead.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Run `trainer train spec.toml` in `dir`; (exit code, stderr, elapsed).
fn train(dir: &Path, spec: &str) -> (Option<i32>, String, Duration) {
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["train", "spec.toml", "--out", "exported"])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

/// The spec fails with exactly one `error:` line containing every needle,
/// quickly (nothing trained) and without writing anything.
fn refused(spec: &str, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr, elapsed) = train(dir.path(), spec);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {stderr:?}");
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    for needle in needles {
        assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
    }
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    assert!(!dir.path().join("exported").exists(), "nothing written");
}

fn mlp(layers: &str, dataset: &str) -> String {
    format!(
        r#"name = "t"
[dataset]
path = "{dataset}"
test_fraction = 0.5
[model]
layers = {layers}
[training]
optimizer = {{ kind = "adam", learning_rate = 0.01 }}
epochs = 2
batch_size = 4
"#
    )
}

const WIDTH: &str = "the runtime's limit of 4096 (runtime::format::MAX_WIDTH)";

#[test]
fn mlp_width_above_the_runtime_limit() {
    refused(
        &mlp(r#"["dense 100000000", "relu", "dense 2"]"#, "missing.csv"),
        &[
            "spec.toml: layer 1 `dense 100000000`: width 100000000 is above ",
            WIDTH,
        ],
    );
    refused(
        &mlp(r#"["dense 8", "relu", "dense 4097"]"#, "missing.csv"),
        &["layer 3 `dense 4097`: width 4097 is above ", WIDTH],
    );
}

#[test]
fn mlp_layer_count_above_the_runtime_limit() {
    let layers: Vec<String> = (0..33).map(|_| "\"dense 2\"".to_string()).collect();
    refused(
        &mlp(&format!("[{}]", layers.join(", ")), "missing.csv"),
        &[
            "model.layers: layer count 33 is above ",
            "the runtime's limit of 32 (runtime::format::MAX_LAYERS)",
        ],
    );
}

#[test]
fn recurrent_width_and_layout_checked_before_the_data() {
    let spec = |layers: &str| {
        mlp(layers, "missing.ts").replace("test_fraction = 0.5", "test_path = \"missing_TEST.ts\"")
    };
    refused(
        &spec(r#"["lstm 5000", "dense 4", "softmax"]"#),
        &["layer 1 `lstm 5000`: width 5000 is above ", WIDTH],
    );
    // The runtime allows no skip connections in a recurrent model.
    refused(
        &spec(r#"["gru 8", "save 0", "dense 8", "add 0", "dense 4"]"#),
        &["model.layers", "save 0"],
    );
}

#[test]
fn self_training_width_checked_before_the_data() {
    let spec = mlp(r#"["dense 9000", "dense 2"]"#, "missing.csv").replace(
        "name = \"t\"",
        "name = \"t\"\nkind = \"self-training\"\n[self_training]\nlabelled_fraction = 0.5",
    );
    refused(
        &spec,
        &["layer 1 `dense 9000`: width 9000 is above ", WIDTH],
    );
}

fn transformer(table: &str) -> String {
    format!(
        r#"name = "t"
kind = "transformer"
[dataset]
path = "missing.csv"
[transformer]
{table}
[training]
optimizer = {{ kind = "adam", learning_rate = 0.01 }}
epochs = 2
batch_size = 4
"#
    )
}

#[test]
fn transformer_limits_checked_before_the_data() {
    let base = |tokens: usize, dim: usize, ff: usize, pool: &str| {
        format!(
            "tokens = {tokens}\ndim = {dim}\nheads = 2\nblocks = 1\nff = {ff}\nposition = \"none\"\npool = \"{pool}\""
        )
    };
    refused(
        &transformer(&base(300, 8, 8, "mean")),
        &[
            "transformer.tokens: token count 300 is above ",
            "the runtime's limit of 256 (runtime::format::MAX_TOKENS)",
        ],
    );
    // Each layer's tensor holds every token: 8 tokens x ff 1000 values.
    refused(
        &transformer(&base(8, 16, 1000, "mean")),
        &["transformer.ff: width 8 x 1000 = 8000 is above ", WIDTH],
    );
    // The class token adds a row.
    refused(
        &transformer(&base(16, 256, 16, "cls")),
        &["transformer.dim: width 17 x 256 = 4352 is above ", WIDTH],
    );
    refused(
        &transformer(&base(8, 8, 8, "mean").replace("blocks = 1", "blocks = 3")),
        &["transformer.blocks", "runtime::format::MAX_LAYERS"],
    );
}

#[test]
fn forecaster_vocab_checked_before_the_data() {
    let spec = transformer(
        "tokens = 8\ndim = 8\nheads = 2\nblocks = 1\nff = 8\nposition = \"relative\"\npool = \"causal\"\nvocab = 200",
    )
    .replace(
        "[dataset]\npath = \"missing.csv\"",
        "[series]\ntrain = \"missing_train.csv\"\ntest = \"missing_test.csv\"",
    );
    refused(
        &spec,
        &["transformer.vocab: vocabulary 200 is above the runtime's limit of 128"],
    );
}

fn classical(kind: &str, table: &str) -> String {
    format!(
        r#"name = "t"
kind = "{kind}"
[series]
train = "missing_train.csv"
test = "missing_test.csv"
window = 16
{table}
"#
    )
}

#[test]
fn classical_limits_checked_before_the_data() {
    refused(
        &classical(
            "autoencoder",
            "[autoencoder]\nhidden = [8, 100000000, 8]\nepochs = 1",
        ),
        &["autoencoder.hidden: width 100000000 is above ", WIDTH],
    );
    let hidden: Vec<String> = (0..20).map(|_| "4".to_string()).collect();
    refused(
        &classical(
            "autoencoder",
            &format!(
                "[autoencoder]\nhidden = [{}]\nepochs = 1",
                hidden.join(", ")
            ),
        ),
        &[
            "autoencoder.hidden: layer count 44 is above ",
            "runtime::format::MAX_LAYERS",
        ],
    );
    refused(
        &classical("pca", "[pca]\ncomponents = 16"),
        &["pca.components", "16"],
    );
    refused(
        &classical(
            "isolation-forest",
            "[isolation_forest]\ntrees = 10\nsample_size = 40000",
        ),
        &[
            "isolation_forest.sample_size: nodes per tree 2 x 40000 - 1 = 79999 is above ",
            "runtime::kernels::classical::LEAF",
        ],
    );
    refused(
        &classical("pca", "[pca]\ncomponents = 4").replace("window = 16", "window = 5000"),
        &["series.window: width 5000 is above ", WIDTH],
    );
}

#[test]
fn dataset_widths_checked_before_training() {
    let dir = tempfile::tempdir().unwrap();
    // 5000 feature columns and a label: the input width comes from the data.
    let row = |label: usize| {
        let mut cells: Vec<String> = (0..5000).map(|i| ((i + label) % 7).to_string()).collect();
        cells.push(label.to_string());
        cells.join(",")
    };
    let csv: Vec<String> = (0..8).map(|i| row(i % 2)).collect();
    std::fs::write(dir.path().join("wide.csv"), csv.join("\n")).unwrap();
    let (code, stderr, elapsed) = train(dir.path(), &mlp(r#"["dense 4", "dense 2"]"#, "wide.csv"));
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains("wide.csv: input width 5000 is above ") && stderr.contains(WIDTH),
        "{stderr}"
    );
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    assert!(!dir.path().join("exported/t/f32.bin").exists());
}
