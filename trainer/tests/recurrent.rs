//! Recurrent models end to end on BasicMotions: trainer-vs-runtime f32 parity,
//! streaming == whole sequence (f32 and int8, exact), unequal lengths, and a
//! long int8-vs-f32 stream over the exported models.

use std::path::{Path, PathBuf};

use runtime::format::Cell;
use runtime::Model;
use trainer::dataset::{sequences, Normalization, Sequences};
use trainer::recurrent::{self, RecurrentFamily, SequenceModel};
use trainer::runner::{quantize_series, Buffers};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn data() -> (Sequences, Sequences) {
    let dir = root().join("models/datasets/basic-motions");
    (
        sequences::load(&dir.join("BasicMotions_TRAIN.ts")).unwrap(),
        sequences::load(&dir.join("BasicMotions_TEST.ts")).unwrap(),
    )
}

/// A small model trained for a few epochs (enough for parity checks, fast in CI).
fn tiny(cell: &str, layers: &str, train: &Sequences, test: &Sequences) -> SequenceModel {
    let text = format!(
        r#"name = "tiny-{cell}"
[dataset]
path = "x.ts"
test_path = "y.ts"
[model]
layers = [{layers}]
[training]
optimizer = {{ kind = "adam", learning_rate = 0.02 }}
epochs = 3
batch_size = 10
seed = 3
"#
    );
    let path = root().join("models/specs/tiny.toml");
    let spec = trainer::family::parse(&RecurrentFamily, &text, &path).unwrap();
    let norm = Normalization::per_channel(train);
    let training = spec.training().unwrap();
    recurrent::train::train(&spec.family, training, norm, train, test, false)
        .unwrap()
        .0
}

fn calibration(set: &Sequences) -> Vec<&[f32]> {
    set.series.iter().map(Vec::as_slice).collect()
}

/// Streaming (finish after every step) and whole-sequence runs agree bit for bit.
fn check_streaming(blob: &[u8], series: &[&[f32]]) {
    let model = Model::from_bytes(blob).unwrap();
    let mut whole = Buffers::new(&model);
    let mut live = Buffers::new(&model);
    let c = model.input_len();
    for s in series {
        match model.numeric() {
            runtime::Numeric::F32 => {
                let (state, arena) = whole.split();
                let expected = model.run_sequence_f32(s, state, arena).unwrap().to_vec();
                let (state, arena) = live.split();
                model.reset(state).unwrap();
                let mut last = Vec::new();
                for x in s.chunks_exact(c) {
                    model.step_f32(x, state, arena).unwrap();
                    last = model.finish_f32(state, arena).unwrap().to_vec();
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&last), bits(&expected));
            }
            runtime::Numeric::Int8 => {
                let q = quantize_series(&model, s).unwrap();
                let (state, arena) = whole.split();
                let expected = model.run_sequence_i8(&q, state, arena).unwrap().to_vec();
                let (state, arena) = live.split();
                model.reset(state).unwrap();
                let mut last = Vec::new();
                for x in q.chunks_exact(c) {
                    model.step_i8(x, state, arena).unwrap();
                    last = model.finish_i8(state, arena).unwrap().to_vec();
                }
                assert_eq!(last, expected);
            }
        }
    }
}

#[test]
fn each_cell_matches_the_trainer_and_streams_exactly() {
    let (train, test) = data();
    // Unequal lengths: cut the test series to 40..=79 steps.
    let mut ragged = test.clone();
    for (i, s) in ragged.series.iter_mut().enumerate() {
        s.truncate((40 + i) * ragged.channels);
    }
    for (cell, layers) in [
        ("rnn", r#""rnn 8", "dense 4", "softmax""#),
        ("lstm", r#""lstm 8", "dense 4", "softmax""#),
        ("gru", r#""gru 8", "dense 6", "tanh", "dense 4", "softmax""#),
        ("stacked", r#""gru 6", "lstm 6", "dense 4", "softmax""#),
    ] {
        let model = tiny(cell, layers, &train, &test);
        let f32_blob = recurrent::export::f32_blob(&model)
            .unwrap()
            .encode()
            .unwrap();
        let int8_blob = recurrent::quantize::int8_blob(&model, &calibration(&train))
            .unwrap()
            .encode()
            .unwrap();

        for set in [&test, &ragged] {
            let series = calibration(set);
            let reference = model.predict(&series).unwrap();
            let runtime_model = Model::from_bytes(&f32_blob).unwrap();
            let mut buffers = Buffers::new(&runtime_model);
            let mut worst = 0.0f32;
            for (s, want) in series.iter().zip(&reference) {
                let (state, arena) = buffers.split();
                let got = runtime_model.run_sequence_f32(s, state, arena).unwrap();
                for (a, b) in got.iter().zip(want) {
                    worst = worst.max((a - b).abs());
                }
            }
            println!("{cell}: trainer vs runtime f32, max |difference| {worst:.2e}");
            assert!(
                worst <= 1e-4,
                "{cell}: trainer vs runtime differ by {worst}"
            );
            check_streaming(&f32_blob, &series);
            check_streaming(&int8_blob, &series);
        }
        let f32_eval = trainer::classifier::evaluate_sequences(&f32_blob, &ragged).unwrap();
        let vectors = runtime::TestVectors::from_bytes(&f32_eval.vectors).unwrap();
        assert_eq!(vectors.steps(3), 43);
        assert_eq!(vectors.input_bytes(3).len(), 43 * 6 * 4);
    }
}

#[test]
fn cell_kinds_parse_from_specs() {
    let model = tiny(
        "parse",
        r#""lstm 4", "dense 4", "softmax""#,
        &data().0,
        &data().1,
    );
    assert_eq!(model.layers[0].cell, Cell::Lstm);
    assert_eq!(model.layers[0].hidden, 4);
}

/// The exported int8 and f32 models, fed the BasicMotions series back to back
/// (TEST, TRAIN, TEST: 12,000 samples) with no reset, answering after every
/// sample: the class decisions agree and the int16 hidden state tracks f32.
#[test]
fn long_stream_int8_tracks_f32() {
    let (train, test) = data();
    let stream: Vec<f32> = test
        .series
        .iter()
        .chain(&train.series)
        .chain(&test.series)
        .flatten()
        .copied()
        .collect();
    let mut failures = Vec::new();
    for cell in ["rnn", "lstm", "gru"] {
        let dir = root().join(format!("models/exported/basicmotions-{cell}"));
        let (Ok(f), Ok(i)) = (
            std::fs::read(dir.join("f32.bin")),
            std::fs::read(dir.join("int8.bin")),
        ) else {
            panic!("{} is missing: run `cargo xtask demo`", dir.display());
        };
        let (mf, mi) = (
            Model::from_bytes(&f).unwrap(),
            Model::from_bytes(&i).unwrap(),
        );
        let (mut bf, mut bi) = (Buffers::new(&mf), Buffers::new(&mi));
        let c = mf.input_len();
        let q = quantize_series(&mi, &stream).unwrap();
        {
            let (s, _) = bf.split();
            mf.reset(s).unwrap();
            let (s, _) = bi.split();
            mi.reset(s).unwrap();
        }
        let (mut agree, mut steps, mut max_err, mut sum_err, mut n_err) =
            (0usize, 0usize, 0.0f32, 0.0f64, 0usize);
        let mut per_step_err = Vec::new();
        let mut hf = vec![0.0f32; 64];
        let mut hi = vec![0.0f32; 64];
        for (x, xq) in stream.chunks_exact(c).zip(q.chunks_exact(c)) {
            let (sf, af) = bf.split();
            mf.step_f32(x, sf, af).unwrap();
            let cf = runtime::argmax(mf.finish_f32(sf, af).unwrap());
            let h = mf.hidden_state(sf, &mut hf).unwrap();
            let (si, ai) = bi.split();
            mi.step_i8(xq, si, ai).unwrap();
            let ci = runtime::argmax(mi.finish_i8(si, ai).unwrap());
            mi.hidden_state(si, &mut hi).unwrap();
            let mut step_err = 0.0f64;
            for (a, b) in hf[..h].iter().zip(&hi[..h]) {
                let e = (a - b).abs();
                max_err = max_err.max(e);
                sum_err += f64::from(e);
                step_err += f64::from(e) / h as f64;
                n_err += 1;
            }
            per_step_err.push(step_err);
            agree += usize::from(cf == ci);
            steps += 1;
        }
        let agreement = agree as f64 / steps as f64;
        let mean_err = sum_err / n_err as f64;
        println!(
            "{cell}: {steps} samples, int8 and f32 decisions agree on {:.2}%, hidden-state error max {max_err:.4} mean {mean_err:.5}",
            100.0 * agreement
        );
        // Bounded, no drift: the error over the last 3,000 samples is no
        // larger than over the first 3,000 (plus slack); occasional spikes
        // (a unit near a tanh decision flipping for a few steps) are in the max.
        let window = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        let (early, late) = (
            window(&per_step_err[..3000]),
            window(&per_step_err[steps - 3000..]),
        );
        println!("  mean hidden-state error: first 3000 samples {early:.5}, last 3000 {late:.5}");
        assert!(steps >= 10_000);
        if agreement < 0.99 || mean_err >= 0.05 || late > 2.0 * early + 0.01 {
            failures.push(format!("{cell}: agreement {agreement}, hidden-state error max {max_err} mean {mean_err}, early {early} late {late}"));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}
