//! Stale, garbage and hostile state, and a model used before it loaded: the
//! step APIs answer with a result or a named error, never a panic, and no
//! position overflows however long a stream runs (this file also runs on a
//! 32-bit target with overflow checks, in `cargo xtask test`).

use proptest::prelude::*;
use runtime::{Error, Model, Numeric};

mod common;
use common::{exported, exported_blobs};

/// A 4-byte aligned buffer of `len` bytes.
fn aligned(len: usize) -> Vec<u32> {
    vec![0u32; len.div_ceil(4)]
}

fn as_bytes(words: &mut [u32]) -> &mut [u8] {
    bytemuck::cast_slice_mut(words)
}

/// One step of `model` on a zero input, in whichever numeric path it has.
fn step(model: &Model, state: &mut [u8]) -> Result<Vec<u8>, Error> {
    let mut arena = aligned(model.arena_bytes());
    let arena = as_bytes(&mut arena);
    match model.numeric() {
        Numeric::F32 => model
            .step_f32(&vec![0.0; model.step_width()], state, arena)
            .map(|y| y.iter().flat_map(|v| v.to_le_bytes()).collect()),
        Numeric::Int8 => model
            .step_i8(&vec![0; model.step_width()], state, arena)
            .map(|y| y.iter().map(|&v| v as u8).collect()),
    }
}

/// The forecaster (causal, relative positions) stepped at a position word
/// near `u32::MAX`: before the fix, `i + tokens - 1` overflowed in the
/// relative-bias index on a 32-bit target. Now every position past the
/// context is the same as its wrapped one (`tokens + (p - tokens) % tokens`),
/// bit for bit, and the stored position stays below `2 tokens`.
#[test]
fn causal_positions_near_u32_max_wrap_and_never_overflow() {
    for file in ["f32.bin", "int8.bin"] {
        let blob = exported("ucr-forecaster", file);
        let model = Model::from_bytes(&blob).unwrap();
        let t = model.tokens() as u32;
        let mut state = aligned(model.state_bytes());
        // A cache with something in it: a few real steps first.
        model.reset(as_bytes(&mut state)).unwrap();
        for _ in 0..5 {
            step(&model, as_bytes(&mut state)).unwrap();
        }
        for p in [u32::MAX - 1, u32::MAX, 1 << 31, 7 * t + 3, 2 * t, t] {
            let wrapped = t + (p - t) % t;
            let mut at_p = state.clone();
            as_bytes(&mut at_p)[..4].copy_from_slice(&p.to_le_bytes());
            let mut at_wrapped = state.clone();
            as_bytes(&mut at_wrapped)[..4].copy_from_slice(&wrapped.to_le_bytes());
            let a = step(&model, as_bytes(&mut at_p)).unwrap();
            let b = step(&model, as_bytes(&mut at_wrapped)).unwrap();
            assert_eq!(a, b, "{file}: position {p} vs {wrapped}");
            assert_eq!(at_p, at_wrapped, "{file}: same state after the step");
            let stored = u32::from_le_bytes(as_bytes(&mut at_p)[..4].try_into().unwrap());
            assert_eq!(stored, wrapped + 1, "{file}: position {p}");
            assert!(stored < 2 * t + 1);
        }
    }
}

/// Before the fix `run_sequence_*` on an empty model divided by zero and
/// `run_f32(&[])` answered `Ok(&[])`; every call now says `NotLoaded`.
#[test]
fn an_empty_model_answers_not_loaded_everywhere() {
    let model = Model::empty();
    let mut arena = aligned(64);
    let mut state = aligned(64);
    let (arena, state) = (as_bytes(&mut arena), as_bytes(&mut state));
    assert!(!model.is_loaded());
    assert_eq!(
        model.run_sequence_f32(&[1.0], state, arena).err(),
        Some(Error::NotLoaded)
    );
    assert_eq!(
        model.run_sequence_i8(&[1], state, arena).err(),
        Some(Error::NotLoaded)
    );
    assert_eq!(model.run_f32(&[], arena).err(), Some(Error::NotLoaded));
    assert_eq!(model.run_i8(&[], arena).err(), Some(Error::NotLoaded));
    assert_eq!(
        model.step_f32(&[], state, arena).err(),
        Some(Error::NotLoaded)
    );
    assert_eq!(
        model.step_i8(&[], state, arena).err(),
        Some(Error::NotLoaded)
    );
    assert_eq!(model.finish_f32(state, arena).err(), Some(Error::NotLoaded));
    assert_eq!(model.finish_i8(state, arena).err(), Some(Error::NotLoaded));
    assert_eq!(model.reset(state).err(), Some(Error::NotLoaded));
    assert_eq!(
        model.quantize_input(&[], &mut []).err(),
        Some(Error::NotLoaded)
    );
    assert_eq!(model.input_normalization(0), None);
}

/// A failed load leaves the model empty, with the same answers.
#[test]
fn a_failed_load_leaves_the_model_not_loaded() {
    let good = exported("basicmotions-lstm", "f32.bin");
    let mut bad = good.clone();
    bad[20] ^= 0x40; // breaks the CRC
    let mut model = Model::from_bytes(&good).unwrap();
    assert!(model.load(&bad).is_err());
    let mut arena = aligned(4096);
    let mut state = aligned(4096);
    assert_eq!(
        model
            .run_sequence_f32(&[1.0; 12], as_bytes(&mut state), as_bytes(&mut arena))
            .err(),
        Some(Error::NotLoaded)
    );
}

/// Before the fix `index * 4 + 4` overflowed for huge indices.
#[test]
fn input_normalization_of_huge_indices_is_none() {
    let blob = exported("iris-mlp", "f32.bin");
    let model = Model::from_bytes(&blob).unwrap();
    assert!(model.input_normalization(3).is_some());
    for index in [4, usize::MAX / 4, usize::MAX / 4 + 1, usize::MAX] {
        assert_eq!(model.input_normalization(index), None, "{index}");
    }
}

/// The exported models that keep state (recurrent, causal), loaded once.
fn stateful() -> Vec<Model<'static>> {
    exported_blobs()
        .into_iter()
        .map(|(_, blob)| Model::from_bytes(Box::leak(blob.into_boxed_slice())).unwrap())
        // Encoder-decoders decode rather than step; their any-state test is
        // in `seq2seq.rs`.
        .filter(|m| (m.is_recurrent() || m.is_causal()) && !m.is_seq2seq())
        .collect()
}

fn models() -> &'static [Model<'static>] {
    static MODELS: std::sync::OnceLock<Vec<Model<'static>>> = std::sync::OnceLock::new();
    MODELS.get_or_init(stateful)
}

/// State bytes a stale buffer, a garbage one or a hostile caller could hold.
fn any_state() -> impl Strategy<Value = (usize, Vec<u8>)> {
    let filler = prop_oneof![
        Just(0xffu8).prop_map(|b| vec![b; 8192]),
        prop::collection::vec(any::<u8>(), 8192),
    ];
    let position = prop_oneof![
        Just(None),
        (0u32..64).prop_map(|d| Some(u32::MAX - d)),
        any::<u32>().prop_map(Some),
    ];
    (
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        filler,
        position,
    )
        .prop_map(|(which, other, mut bytes, position)| {
            let models = models();
            let model = which.index(models.len());
            if let Some(p) = position {
                bytes[..4].copy_from_slice(&p.to_le_bytes());
            }
            // Half the time: another model's state, of the right size.
            if other.index(2) == 0 {
                let donor = &models[other.index(models.len())];
                let mut state = aligned(donor.state_bytes());
                let _ = donor.reset(as_bytes(&mut state));
                let _ = step(donor, as_bytes(&mut state));
                let donor_bytes = bytemuck::cast_slice::<u32, u8>(&state);
                for (b, d) in bytes.iter_mut().zip(donor_bytes.iter().cycle()) {
                    *b = *d;
                }
            }
            (model, bytes)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any state bytes: a step is `Ok` (recurrent models, and causal ones
    /// with relative positions) or `ContextFull` (absolute positions past
    /// the context); a few more steps never panic either.
    #[test]
    fn steps_survive_any_state((which, state_bytes) in any_state()) {
        let model = &models()[which];
        let mut state = aligned(model.state_bytes());
        let len = model.state_bytes();
        as_bytes(&mut state)[..len].copy_from_slice(&state_bytes[..len]);
        for _ in 0..3 {
            match step(model, as_bytes(&mut state)) {
                Ok(_) => {}
                Err(Error::ContextFull { tokens }) => {
                    prop_assert!(model.is_causal());
                    prop_assert_eq!(tokens, model.tokens());
                    break;
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
        if model.is_recurrent() {
            let mut arena = aligned(model.arena_bytes());
            let arena = as_bytes(&mut arena);
            let answer = match model.numeric() {
                Numeric::F32 => model.finish_f32(as_bytes(&mut state), arena).map(|_| ()),
                Numeric::Int8 => model.finish_i8(as_bytes(&mut state), arena).map(|_| ()),
            };
            prop_assert_eq!(answer, Ok(()));
        }
    }
}
