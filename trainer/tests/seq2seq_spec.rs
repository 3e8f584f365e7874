//! Malformed `[seq2seq]` specs are refused with the field named, never a panic.

use std::path::Path;

use trainer::seq2seq::{Seq2SeqData, Seq2SeqFamily};

const SPEC: &str = r#"name = "s"
kind = "seq2seq"
[series]
train = "../datasets/ucr-anomaly-internal-bleeding-16/135_UCR_Anomaly_InternalBleeding16_TRAIN.csv"
test = "../datasets/ucr-anomaly-internal-bleeding-16/135_UCR_Anomaly_InternalBleeding16_TEST.csv"
[seq2seq]
encoder = ["gru 8"]
attention = 8
window = 16
horizon = 4
[training]
optimizer = { kind = "adam", learning_rate = 0.01 }
epochs = 1
batch_size = 8
seed = 1
"#;

fn path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/specs/s.toml")
}

/// The error of parsing [`SPEC`] with `from` replaced by `to`.
fn parse_error(from: &str, to: &str) -> String {
    assert!(SPEC.contains(from), "{from:?} is not in the spec");
    let text = SPEC.replace(from, to);
    match trainer::family::parse(&Seq2SeqFamily, &text, &path()) {
        Ok(_) => panic!("{to:?} was accepted"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn the_base_spec_parses_and_loads() {
    let spec = trainer::family::parse(&Seq2SeqFamily, SPEC, &path()).unwrap();
    let data = Seq2SeqData::load(&spec).unwrap();
    assert_eq!(data.channels, 1);
    assert!(!data.train.is_empty() && !data.test.is_empty());
}

#[test]
fn malformed_seq2seq_values_name_their_field() {
    for (from, to, field) in [
        ("horizon = 4", "horizon = 0", "seq2seq.horizon"),
        ("window = 16", "window = 0", "seq2seq.window"),
        ("attention = 8", "attention = 0", "seq2seq.attention"),
        (r#"encoder = ["gru 8"]"#, "encoder = []", "seq2seq.encoder"),
        (
            r#"encoder = ["gru 8"]"#,
            r#"encoder = ["dense 8"]"#,
            "seq2seq.encoder",
        ),
        (
            "horizon = 4",
            "horizon = 4\npredict = [0, 0]",
            "seq2seq.predict",
        ),
        (
            "horizon = 4",
            "horizon = 4\nteacher_forcing = { start = 1.5 }",
            "seq2seq.teacher_forcing.start",
        ),
        (
            r#"kind = "adam""#,
            r#"kind = "sgd", momentum = 0.9"#,
            "training.optimizer",
        ),
    ] {
        let e = parse_error(from, to);
        assert!(e.contains(field), "{to:?}: {e}");
    }
}

#[test]
fn a_predicted_channel_past_the_data_is_refused_at_load() {
    let text = SPEC.replace("horizon = 4", "horizon = 4\npredict = [1]");
    let spec = trainer::family::parse(&Seq2SeqFamily, &text, &path()).unwrap();
    let e = format!("{:#}", Seq2SeqData::load(&spec).unwrap_err());
    assert!(
        e.contains("seq2seq.predict") && e.contains("channel 1"),
        "{e}"
    );
}

#[test]
fn a_window_longer_than_the_data_is_refused_at_load() {
    let text = SPEC.replace("window = 16", "window = 100000");
    match trainer::family::parse(&Seq2SeqFamily, &text, &path()) {
        // Past the runtime's step limit: refused at parse, field named.
        Err(e) => assert!(format!("{e:#}").contains("seq2seq.window"), "{e:#}"),
        Ok(spec) => {
            let e = format!("{:#}", Seq2SeqData::load(&spec).unwrap_err());
            assert!(e.contains("seq2seq.window"), "{e}");
        }
    }
}
