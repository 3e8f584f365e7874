//! Classical kinds (issue 6): the loader's named errors for bad parameters,
//! trainer-vs-runtime parity of each on-chip kind within a stated tolerance,
//! and the isolation forest's runtime scores against a direct f64 walk of the
//! fitted trees.

use runtime::format::{self, Envelope, LayerDef, ModelHeader, Numeric, FORMAT_VERSION, MAGIC};
use runtime::{Arena, Error, Model};
use trainer::classical::clustering::centroid_blob;
use trainer::classical::detector::{self, forest_blob};
use trainer::classical::{clustering, iforest, ClassicalFamily, ClassicalSpec, DetectorSpec, Fit};
use trainer::dataset::series::{windows, Series};
use trainer::runner::run_rows;
use trainer::spec::Spec;

/// Run an f32 blob over raw rows: its outputs.
fn run_blob(blob: &[u8], rows: &[f32], labels: &[u16]) -> Vec<f32> {
    run_rows(blob, rows, labels).unwrap().outputs
}

/// A detector spec's detector part.
fn detector_spec(spec: &Spec<ClassicalSpec>) -> &DetectorSpec {
    match &spec.family {
        ClassicalSpec::Detector(d) => d,
        other => panic!("not a detector: {other:?}"),
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Seal a header and layers without validating them (a hostile writer).
fn seal_raw(input_len: u32, output_len: u32, numeric: Numeric, layers: &[LayerDef]) -> Vec<u8> {
    let ones = f32_bytes(&vec![1.0; input_len as usize]);
    let zeros = f32_bytes(&vec![0.0; input_len as usize]);
    let q = runtime::QuantParams {
        scale: 0.1,
        zero_point: 0,
    };
    let header = ModelHeader {
        numeric,
        input_len,
        output_len,
        arena_bytes: 0,
        layer_count: layers.len() as u32,
        input_offset: &zeros,
        input_scale: &ones,
        input_quant: (numeric == Numeric::Int8).then_some(q),
        output_quant: (numeric == Numeric::Int8).then_some(q),
    };
    let mut payload = postcard::to_stdvec(&header).unwrap();
    for l in layers {
        payload.extend(postcard::to_stdvec(l).unwrap());
    }
    let envelope = Envelope {
        magic: MAGIC,
        version: FORMAT_VERSION,
        crc: format::checksum(&payload),
        payload: &payload,
    };
    postcard::to_stdvec(&envelope).unwrap()
}

fn load_err(input_len: u32, output_len: u32, layers: &[LayerDef]) -> Option<Error> {
    Model::from_bytes(&seal_raw(input_len, output_len, Numeric::F32, layers)).err()
}

/// One 10-byte isolation-forest node.
fn node(feature: u16, left: u16, right: u16, value: f32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(feature.to_le_bytes());
    b.extend(left.to_le_bytes());
    b.extend(right.to_le_bytes());
    b.extend(value.to_le_bytes());
    b
}

/// A valid 3-node tree on 2 inputs: split x[1] < 0.5, two leaves.
fn tree() -> Vec<u8> {
    [
        node(1, 1, 2, 0.5),
        node(0xFFFF, 0, 0, 1.0),
        node(0xFFFF, 0, 0, 2.0),
    ]
    .concat()
}

fn forest<'a>(roots: &'a [u8], nodes: &'a [u8], sample_size: u32) -> LayerDef<'a> {
    LayerDef::IsolationForestF32 {
        inputs: 2,
        sample_size,
        roots,
        nodes,
    }
}

#[test]
fn a_hand_built_forest_loads_and_scores_by_the_formula() {
    let nodes = tree();
    let roots = 0u32.to_le_bytes();
    let blob = seal_raw(2, 1, Numeric::F32, &[forest(&roots, &nodes, 4)]);
    // Envelope's arena size must be right: use the encoder instead.
    let ones = f32_bytes(&[1.0, 1.0]);
    let zeros = f32_bytes(&[0.0, 0.0]);
    let header = ModelHeader {
        numeric: Numeric::F32,
        input_len: 2,
        output_len: 1,
        arena_bytes: 0,
        layer_count: 0,
        input_offset: &zeros,
        input_scale: &ones,
        input_quant: None,
        output_quant: None,
    };
    let layers = [forest(&roots, &nodes, 4)];
    let mut out = vec![0u8; runtime::encoded_len(header, &layers).unwrap()];
    let n = runtime::encode(header, &layers, &mut out).unwrap();
    assert!(blob.len() > 10);
    let model = Model::from_bytes(&out[..n]).unwrap();
    let mut arena = Arena::<64>::new();
    let c4 = 2.0 * (3.0f64.ln() + 0.577_215_664_901_532_9) - 2.0 * 3.0 / 4.0;
    for (x, h) in [([0.0f32, 0.0], 1.0f64), ([0.0, 1.0], 2.0)] {
        let s = model.run_f32(&x, arena.as_mut_bytes()).unwrap()[0];
        let expected = (-h / c4).exp2();
        assert!((f64::from(s) - expected).abs() < 1e-6, "{s} vs {expected}");
    }
}

#[test]
fn bad_forests_are_named_errors() {
    let roots = 0u32.to_le_bytes();
    let good = tree();
    let cases: Vec<(Vec<u8>, Vec<u8>, u32, Error)> = vec![
        // right child beyond the tree
        (
            [
                node(1, 1, 3, 0.5),
                node(0xFFFF, 0, 0, 1.0),
                node(0xFFFF, 0, 0, 2.0),
            ]
            .concat(),
            roots.to_vec(),
            4,
            Error::BadTreeNode { layer: 0, node: 0 },
        ),
        // a child pointing back at its parent (a loop)
        (
            [
                node(1, 0, 2, 0.5),
                node(0xFFFF, 0, 0, 1.0),
                node(0xFFFF, 0, 0, 2.0),
            ]
            .concat(),
            roots.to_vec(),
            4,
            Error::BadTreeNode { layer: 0, node: 0 },
        ),
        // split on a feature beyond the input width
        (
            [
                node(2, 1, 2, 0.5),
                node(0xFFFF, 0, 0, 1.0),
                node(0xFFFF, 0, 0, 2.0),
            ]
            .concat(),
            roots.to_vec(),
            4,
            Error::BadTreeNode { layer: 0, node: 0 },
        ),
        // a NaN leaf value
        (
            [
                node(1, 1, 2, 0.5),
                node(0xFFFF, 0, 0, f32::NAN),
                node(0xFFFF, 0, 0, 2.0),
            ]
            .concat(),
            roots.to_vec(),
            4,
            Error::BadTreeNode { layer: 0, node: 1 },
        ),
        // node array not a whole number of 10-byte records
        (
            good[..good.len() - 1].to_vec(),
            roots.to_vec(),
            4,
            Error::ShapeMismatch { layer: 0 },
        ),
        // roots not a whole number of u32
        (
            good.clone(),
            vec![0, 0, 0],
            4,
            Error::ShapeMismatch { layer: 0 },
        ),
        // second tree starting inside the first (trees must tile the nodes)
        (
            good.clone(),
            [0u32.to_le_bytes(), 1u32.to_le_bytes()].concat(),
            4,
            // tree 0 is then node 0 alone, whose children fall outside it
            Error::BadTreeNode { layer: 0, node: 0 },
        ),
        // the first tree does not start at node 0
        (
            good.clone(),
            1u32.to_le_bytes().to_vec(),
            4,
            Error::BadTreeNode { layer: 0, node: 0 },
        ),
        // sample size below 2 has no normaliser
        (
            good.clone(),
            roots.to_vec(),
            1,
            Error::BadParameter { layer: 0 },
        ),
    ];
    for (i, (nodes, roots, psi, expected)) in cases.iter().enumerate() {
        assert_eq!(
            load_err(2, 1, &[forest(roots, nodes, *psi)]),
            Some(*expected),
            "case {i}"
        );
    }
}

#[test]
fn bad_centroid_error_and_threshold_layers_are_named_errors() {
    let c = f32_bytes(&[0.0; 6]);
    let centroid = |dim, k, centroids| LayerDef::NearestCentroidF32 { dim, k, centroids };
    assert_eq!(
        load_err(2, 2, &[centroid(2, 3, &c[..20])]),
        Some(Error::ShapeMismatch { layer: 0 })
    );
    assert_eq!(
        load_err(3, 2, &[centroid(2, 3, &c)]),
        Some(Error::ShapeMismatch { layer: 0 })
    );
    assert_eq!(
        load_err(2, 2, &[centroid(2, 0, &[])]),
        Some(Error::DimensionOutOfRange { layer: 0, value: 0 })
    );
    // squared error against a slot never saved, or saved at another width
    assert_eq!(
        load_err(2, 1, &[LayerDef::SquaredErrorF32 { slot: 0 }]),
        Some(Error::BadSkipSlot { layer: 0 })
    );
    let w = f32_bytes(&[0.0; 6]);
    let b = f32_bytes(&[0.0; 3]);
    let dense = LayerDef::DenseF32 {
        inputs: 2,
        outputs: 3,
        weights: &w,
        bias: &b,
    };
    assert_eq!(
        load_err(
            2,
            1,
            &[
                LayerDef::SaveSkip { slot: 0 },
                dense,
                LayerDef::SquaredErrorF32 { slot: 0 }
            ]
        ),
        Some(Error::BadSkipSlot { layer: 2 })
    );
    // a threshold needs a one-value score and a number
    assert_eq!(
        load_err(2, 2, &[LayerDef::ThresholdF32 { value: 0.5 }]),
        Some(Error::ShapeMismatch { layer: 0 })
    );
    assert_eq!(
        load_err(
            2,
            2,
            &[
                LayerDef::SaveSkip { slot: 0 },
                LayerDef::SquaredErrorF32 { slot: 0 },
                LayerDef::ThresholdF32 { value: f32::NAN }
            ]
        ),
        Some(Error::BadParameter { layer: 2 })
    );
    // classical layers are f32: not allowed in an int8 model
    assert_eq!(
        Model::from_bytes(&seal_raw(2, 2, Numeric::Int8, &[centroid(2, 3, &c)])).err(),
        Some(Error::WrongNumericPath)
    );
}

fn shipped(name: &str) -> Spec<ClassicalSpec> {
    let path = tests::repo_root().join("models/specs").join(name);
    trainer::family::load(&ClassicalFamily, &path).unwrap()
}

/// Training windows and a few hundred test windows of a shipped detector spec.
fn ucr_windows(spec: &Spec<ClassicalSpec>) -> (Vec<f32>, Vec<f32>, usize) {
    let s = spec.series.as_ref().unwrap();
    let window = detector_spec(spec).window;
    let train = Series::load(&spec.dir.join(&s.train)).unwrap();
    let test = Series::load(&spec.dir.join(&s.test)).unwrap();
    let (train_rows, _) = windows(&train.values, window, s.train_stride, 0);
    let (test_rows, _) = windows(&test.values, window, 16, train.values.len());
    (train_rows, test_rows, window)
}

/// Runtime score vs the trainer's f64 reference: |a - b| <= 1e-6 + 1e-4 |b|.
fn detector_parity(name: &str, tweak: impl FnOnce(&mut Spec<ClassicalSpec>)) {
    let mut spec = shipped(name);
    tweak(&mut spec);
    let (train_rows, test_rows, window) = ucr_windows(&spec);
    let fitted = detector::fit(detector_spec(&spec), &train_rows).unwrap();
    let (blob, threshold) = (fitted.blob.encode().unwrap(), fitted.threshold);
    let labels = vec![0u16; test_rows.len() / window];
    let outputs = run_blob(&blob, &test_rows, &labels);
    let reference = fitted.reference.scores(&test_rows).unwrap();
    let mut worst = 0.0f64;
    for (o, r) in outputs.chunks_exact(2).zip(&reference) {
        let diff = (f64::from(o[0]) - r).abs();
        worst = worst.max(diff / (1e-6 + 1e-4 * r.abs()));
        assert_eq!(o[1], if o[0] > threshold { 1.0 } else { 0.0 });
    }
    println!(
        "{name}: worst |runtime - trainer| / (1e-6 + 1e-4 |trainer|) = {worst:.3} over {} windows",
        reference.len()
    );
    assert!(worst <= 1.0, "{name}: parity ratio {worst}");
}

#[test]
fn pca_runtime_matches_trainer() {
    detector_parity("ucr-pca.toml", |_| {});
}

#[test]
fn autoencoder_runtime_matches_trainer() {
    detector_parity("ucr-autoencoder.toml", |s| {
        let ClassicalSpec::Detector(DetectorSpec {
            fit: Fit::Autoencoder(a),
            ..
        }) = &mut s.family
        else {
            panic!("not an autoencoder");
        };
        a.epochs = 3;
    });
}

#[test]
fn isolation_forest_runtime_matches_a_direct_walk_of_the_fitted_trees() {
    // The runtime sums f32 leaf values; the direct walk (iforest::IsolationForest::score)
    // uses the fitted f64 path lengths: scores agree within 1e-6 absolute.
    let spec = shipped("ucr-isolation-forest.toml");
    let (train_rows, test_rows, window) = ucr_windows(&spec);
    let Fit::IsolationForest(f) = &detector_spec(&spec).fit else {
        panic!("not an isolation forest");
    };
    let fitted = iforest::fit(&train_rows, window, f.trees, f.sample_size, f.seed);
    let blob = forest_blob(&fitted, None).unwrap().encode().unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    let mut arena = vec![0u32; model.arena_bytes() / 4];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
    let mut worst = 0.0f64;
    for x in test_rows
        .chunks_exact(window)
        .chain(train_rows.chunks_exact(window).step_by(50))
    {
        let s = model.run_f32(x, arena).unwrap()[0];
        worst = worst.max((f64::from(s) - fitted.score(x)).abs());
    }
    println!("isolation forest: max |runtime - direct| = {worst:e}");
    assert!(worst <= 1e-6, "{worst}");
    detector_parity("ucr-isolation-forest.toml", |_| {});
}

#[test]
fn clustering_runtime_matches_trainer() {
    // Same nearest centroid for every test row and squared distances within a
    // relative 1e-5 (runtime f32 sums vs trainer f64).
    for name in ["digits-kmeans.toml", "digits-hierarchical.toml"] {
        let spec = shipped(name);
        let ds = spec.dataset.as_ref().unwrap();
        let all =
            trainer::dataset::table::load_csv(&spec.dir.join(&ds.path), &ds.csv_options()).unwrap();
        let (train, test) =
            trainer::dataset::table::split_stratified(&all, ds.test_fraction, ds.seed);
        let c = if name.contains("kmeans") {
            clustering::kmeans(&train.features, 64, 10, 1).unwrap()
        } else {
            clustering::hierarchical(&train.features, 64, 10).unwrap()
        };
        let blob = centroid_blob(&c).encode().unwrap();
        let outputs = run_blob(&blob, &test.features, &vec![0; test.len()]);
        for (i, o) in outputs.chunks_exact(2).enumerate() {
            let (k, d) = c.assign(test.row(i));
            assert_eq!(o[0] as usize, k, "{name} row {i}");
            assert!(
                (f64::from(o[1]) - d).abs() <= 1e-5 * d.max(1.0),
                "{name} row {i}: {} vs {d}",
                o[1]
            );
        }
    }
}
