//! Encoder-decoders (seq2seq) end to end: trainer (candle) vs runtime f32
//! on every decoded step, and on the exported blobs the step API
//! (`encode_*`, then `decode_*` step by step) against the one call
//! (`forecast_*`) and the committed test vectors, bit for bit.

use std::path::PathBuf;

use runtime::{Error, Model, Numeric, TestVectors};
use trainer::runner::{run_forecasts, Buffers};
use trainer::seq2seq::{export, Seq2SeqData, Seq2SeqFamily};

/// The exported encoder-decoders the demo runs.
const EXPORTED: [&str; 2] = ["ucr-seq2seq", "basicmotions-seq2seq"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Train `ucr-seq2seq`'s spec with `encoder` as its encoder, for 2 epochs on
/// its first 160 training windows (enough for parity, fast), and compare the
/// candle forward pass with the runtime's f32 forecasts of every test window.
fn trainer_matches_runtime(encoder: &str) {
    let path = root().join("models/specs/ucr-seq2seq.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(r#"encoder = ["gru 32"]"#, &format!("encoder = [{encoder}]"));
    assert!(text.contains(encoder), "the spec's encoder line changed");
    let mut spec = trainer::family::parse(&Seq2SeqFamily, &text, &path).unwrap();
    spec.training.as_mut().unwrap().epochs = 2;
    let mut data = Seq2SeqData::load(&spec).unwrap();
    let keep = 160;
    let t = &mut data.train;
    t.inputs.truncate(keep * spec.family.window);
    t.targets.truncate(keep * spec.family.horizon);
    t.labels.truncate(keep);
    t.starts.truncate(keep);
    let (model, _) =
        trainer::seq2seq::train::train(&spec.family, spec.training().unwrap(), &data, false)
            .unwrap();
    let blob = export::f32_blob(&model).encode().unwrap();
    let runtime = run_forecasts(&blob, &data.test.inputs, &data.test.labels).unwrap();
    let reference = model.predict(&data.test.inputs).unwrap();
    assert_eq!(
        reference.len(),
        data.test.len() * spec.family.horizon,
        "one value per step per window"
    );
    assert_eq!(reference.len(), runtime.forecasts.len());
    let h = spec.family.horizon;
    let mut per_step = vec![0.0f32; h];
    for (i, (a, b)) in reference.iter().zip(&runtime.forecasts).enumerate() {
        per_step[i % h] = per_step[i % h].max((a - b).abs());
    }
    println!("{encoder}: max |trainer - runtime| per step {per_step:?}");
    for (step, diff) in per_step.iter().enumerate() {
        assert!(
            *diff <= 1e-4,
            "{encoder}: step {} differs by {diff}",
            step + 1
        );
    }
}

#[test]
fn gru_encoder_decoder_f32_runtime_matches_trainer_within_1e_4_on_every_step() {
    trainer_matches_runtime(r#""gru 32""#);
}

#[test]
fn stacked_lstm_encoder_decoder_f32_runtime_matches_trainer_within_1e_4_on_every_step() {
    trainer_matches_runtime(r#""lstm 16", "lstm 16""#);
}

/// Every window of `name`'s `numeric` vectors through the one call and the
/// step API; both must give the committed expected bytes.
fn step_api_equals_one_call(name: &str, numeric: &str) {
    let dir = root().join("models/exported").join(name);
    let blob = std::fs::read(dir.join(format!("{numeric}.bin"))).unwrap();
    let vector_bytes = std::fs::read(dir.join(format!("{numeric}.vectors"))).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    let vectors = TestVectors::from_bytes(&vector_bytes).unwrap();
    assert!(model.is_seq2seq());
    let (h, o) = (model.horizon(), model.output_len());
    assert_eq!(vectors.output_len as usize, h * o);
    assert!(vectors.count > 0);
    let mut buffers = Buffers::new(&model);
    for i in 0..vectors.count as usize {
        let expected = vectors.expected_bytes(i);
        let (state, arena) = buffers.split();
        let (one_call, steps): (Vec<u8>, Vec<u8>) = match model.numeric() {
            Numeric::F32 => {
                let mut window = vec![0.0f32; vectors.input_len as usize];
                vectors.input_f32(i, &mut window);
                let mut out = vec![0.0f32; h * o];
                model
                    .forecast_f32(&window, h, state, arena, &mut out)
                    .unwrap();
                let one: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
                model.encode_f32(&window, state, arena).unwrap();
                let mut stepped = Vec::new();
                for _ in 0..h {
                    let y = model.decode_f32(state, arena).unwrap();
                    stepped.extend(y.iter().flat_map(|v| v.to_le_bytes()));
                }
                (one, stepped)
            }
            Numeric::Int8 => {
                let window = vectors.input_i8(i);
                let mut out = vec![0i8; h * o];
                model
                    .forecast_i8(window, h, state, arena, &mut out)
                    .unwrap();
                let one: Vec<u8> = out.iter().map(|&v| v as u8).collect();
                model.encode_i8(window, state, arena).unwrap();
                let mut stepped = Vec::new();
                for _ in 0..h {
                    let y = model.decode_i8(state, arena).unwrap();
                    stepped.extend(y.iter().map(|&v| v as u8));
                }
                (one, stepped)
            }
        };
        assert_eq!(
            one_call, expected,
            "{name} {numeric} window {i}: forecast vs vectors"
        );
        assert_eq!(
            steps, expected,
            "{name} {numeric} window {i}: step API vs vectors"
        );
        // One step past the horizon is refused, not decoded.
        let (state, arena) = buffers.split();
        let past = match model.numeric() {
            Numeric::F32 => model.decode_f32(state, arena).map(|_| ()),
            Numeric::Int8 => model.decode_i8(state, arena).map(|_| ()),
        };
        assert!(
            matches!(past, Err(Error::HorizonOutOfRange { max, .. }) if max == h),
            "{name} {numeric} window {i}: decoding past the horizon gave {past:?}"
        );
    }
}

#[test]
fn exported_encoder_decoders_step_api_equals_one_call_bit_for_bit() {
    for name in EXPORTED {
        for numeric in ["f32", "int8"] {
            step_api_equals_one_call(name, numeric);
        }
    }
}

/// The committed report of `ucr-seq2seq` meets the issue's targets: f32 at
/// least 20% below persistence over the 16 steps, int8 within 5% of f32.
#[test]
fn ucr_seq2seq_report_meets_the_targets() {
    let path = root().join("models/exported/ucr-seq2seq/report.json");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let m = &report["mean_abs_error"];
    let (f32_mae, int8_mae, persistence) = (
        m["f32"].as_f64().unwrap(),
        m["int8"].as_f64().unwrap(),
        m["persistence"].as_f64().unwrap(),
    );
    assert!(
        m["forecaster"].as_f64().is_some(),
        "the rolled forecaster is reported"
    );
    assert_eq!(
        report["mean_abs_error_per_step"]["f32"]
            .as_array()
            .unwrap()
            .len(),
        16
    );
    assert!(
        f32_mae <= 0.8 * persistence,
        "f32 {f32_mae} vs persistence {persistence}"
    );
    assert!(
        int8_mae <= 1.05 * f32_mae,
        "int8 {int8_mae} vs f32 {f32_mae}"
    );
    let diff = report["trainer_vs_runtime_f32_max_abs_diff"]
        .as_f64()
        .unwrap();
    assert!(diff <= 1e-4, "trainer vs runtime {diff}");
}
