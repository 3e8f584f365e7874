//! Trainer (candle) vs runtime, on real data and real exported blobs.

use runtime::{Arena, Model};
use tests::{spec, train};
use trainer::mlp::MlpFamily;

#[test]
fn digits_f32_runtime_matches_trainer_within_1e_4() {
    let t = train(&spec("digits-mlp.toml", 8));
    let model = Model::from_bytes(&t.f32_blob).unwrap();
    let reference = t.mlp.predict(&t.test.features).unwrap();
    let classes = model.output_len();
    let mut arena = Arena::<8192>::new();
    let mut max_diff = 0.0f32;
    for i in 0..t.test.len() {
        let out = model.run_f32(t.test.row(i), arena.as_mut_bytes()).unwrap();
        for (a, b) in out.iter().zip(&reference[i * classes..(i + 1) * classes]) {
            max_diff = max_diff.max((a - b).abs());
        }
    }
    println!(
        "max |trainer - runtime| over {} test vectors: {max_diff:e}",
        t.test.len()
    );
    assert!(max_diff <= 1e-4, "max difference {max_diff}");
}

#[test]
fn digits_int8_accuracy_tracks_f32() {
    let t = train(&spec("digits-mlp.toml", 30));
    let f32_eval = trainer::classifier::evaluate_rows(&t.f32_blob, &t.test)
        .unwrap()
        .metric;
    let int8_eval = trainer::classifier::evaluate_rows(&t.int8_blob, &t.test)
        .unwrap()
        .metric;
    println!(
        "f32 {:.4} int8 {:.4}",
        f32_eval.accuracy, int8_eval.accuracy
    );
    assert!(
        f32_eval.accuracy > 0.9,
        "f32 accuracy {}",
        f32_eval.accuracy
    );
    assert!(
        (f32_eval.accuracy - int8_eval.accuracy).abs() <= 0.02,
        "int8 {} vs f32 {}",
        int8_eval.accuracy,
        f32_eval.accuracy
    );
}

#[test]
fn iris_a_second_csv_dataset_goes_through_train_export_and_runtime() {
    let spec = spec("iris-mlp.toml", 200);
    let dir = tempfile::tempdir().unwrap();
    let report = trainer::family::export(&MlpFamily, &spec, dir.path(), false, false).unwrap();
    assert_eq!(report.name, spec.name);
    let classifier = report.details.classifier();
    assert!(
        classifier.f32_accuracy >= 0.85,
        "iris f32 accuracy {}",
        classifier.f32_accuracy
    );
    assert!(
        classifier.int8_accuracy >= 0.85,
        "iris int8 accuracy {}",
        classifier.int8_accuracy
    );
    // The written blobs load and run in the runtime.
    let blob = std::fs::read(dir.path().join(&spec.name).join("int8.bin")).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!((model.input_len(), model.output_len()), (4, 3));
    let vectors = std::fs::read(dir.path().join(&spec.name).join("int8.vectors")).unwrap();
    let vectors = runtime::TestVectors::from_bytes(&vectors).unwrap();
    assert_eq!(vectors.count as usize, classifier.test_samples);
    let mut arena = Arena::<256>::new();
    for i in 0..vectors.count as usize {
        let out = model
            .run_i8(vectors.input_i8(i), arena.as_mut_bytes())
            .unwrap();
        let expected: &[i8] = &vectors
            .expected_bytes(i)
            .iter()
            .map(|&b| b as i8)
            .collect::<Vec<_>>();
        assert_eq!(out, expected, "vector {i}");
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join(&spec.name))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
