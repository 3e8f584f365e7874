//! Transformer layers in the runtime, on hand-built models with random
//! weights: the f32 attention against a naive reference written here, the
//! attention weights (rows sum to 1, masked positions exactly 0), the key/value
//! cache against the full causal pass (bit for bit, f32 and int8), the
//! sliding window past the context, and `ContextFull` for absolute positions.

use runtime::encode;
use runtime::format::{
    f32_to_le_bytes, DenseI8Params, LayerDef, ModelHeader, Numeric, PoolKind, Position,
    QuantParams, Rescale,
};
use runtime::kernels::attention::{attend_f32, KeyValues, Span};
use runtime::{Arena, Error, Model};

/// Deterministic pseudo-random numbers (xorshift), uniform in [-1, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
    fn bytes_i8(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() * 100.0) as i8 as u8).collect()
    }
}

fn le(values: &[f32]) -> Vec<u8> {
    let mut out = vec![0; values.len() * 4];
    f32_to_le_bytes(values, &mut out);
    out
}

fn seal(header: ModelHeader<'_>, layers: &[LayerDef<'_>]) -> Vec<u8> {
    let mut out = vec![0; runtime::encoded_len(header, layers).expect("encodes")];
    let n = encode(header, layers, &mut out).expect("encodes");
    out.truncate(n);
    out
}

const T: usize = 6;
const D: usize = 8;
const HEADS: usize = 2;
const HD: usize = D / HEADS;

struct F32Attention {
    params: Vec<f32>,
    position: Position,
}

impl F32Attention {
    fn random(rng: &mut Rng, position: Position) -> Self {
        let table = match position {
            Position::None => 0,
            Position::RelativeBias => HEADS * (2 * T - 1),
            Position::Rope => T * HD,
        };
        let mut params = rng.vec(4 * D * D + 4 * D, 0.5);
        if position == Position::Rope {
            for p in 0..T {
                for m in 0..HD / 2 {
                    let angle = p as f32 * 10000f32.powf(-2.0 * m as f32 / HD as f32);
                    params.extend([angle.cos(), angle.sin()]);
                }
            }
        } else {
            params.extend(rng.vec(table, 1.0));
        }
        F32Attention { params, position }
    }

    /// Naive reference: every formula of `LayerDef::AttentionF32`, in f64.
    fn reference(&self, x: &[f32], causal: bool) -> Vec<f32> {
        let p: Vec<f64> = self.params.iter().map(|&v| f64::from(v)).collect();
        let (wqkv, rest) = p.split_at(3 * D * D);
        let (bqkv, rest) = rest.split_at(3 * D);
        let (wo, rest) = rest.split_at(D * D);
        let (bo, table) = rest.split_at(D);
        let mut qkv = vec![vec![0.0f64; 3 * D]; T];
        for t in 0..T {
            for o in 0..3 * D {
                qkv[t][o] = bqkv[o]
                    + (0..D)
                        .map(|i| wqkv[o * D + i] * f64::from(x[t * D + i]))
                        .sum::<f64>();
            }
            if self.position == Position::Rope {
                for part in 0..2 {
                    for h in 0..HEADS {
                        for m in 0..HD / 2 {
                            let (c, s) = (table[t * HD + 2 * m], table[t * HD + 2 * m + 1]);
                            let at = part * D + h * HD + 2 * m;
                            let (a, b) = (qkv[t][at], qkv[t][at + 1]);
                            qkv[t][at] = a * c - b * s;
                            qkv[t][at + 1] = a * s + b * c;
                        }
                    }
                }
            }
        }
        let mut y = vec![0.0f32; T * D];
        for i in 0..T {
            let mut ctx = [0.0f64; D];
            for h in 0..HEADS {
                let keys = if causal { i + 1 } else { T };
                let scores: Vec<f64> = (0..keys)
                    .map(|j| {
                        let dot: f64 = (0..HD)
                            .map(|d| qkv[i][h * HD + d] * qkv[j][D + h * HD + d])
                            .sum();
                        let bias = if self.position == Position::RelativeBias {
                            table[h * (2 * T - 1) + i + T - 1 - j]
                        } else {
                            0.0
                        };
                        dot / (HD as f64).sqrt() + bias
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for (j, w) in e.iter().enumerate() {
                    for d in 0..HD {
                        ctx[h * HD + d] += w / sum * qkv[j][2 * D + h * HD + d];
                    }
                }
            }
            for o in 0..D {
                y[i * D + o] = (bo[o] + (0..D).map(|c| wo[o * D + c] * ctx[c]).sum::<f64>()) as f32;
            }
        }
        y
    }
}

fn f32_header(input_len: usize) -> (Vec<u8>, Vec<u8>) {
    (le(&vec![0.0; input_len]), le(&vec![1.0; input_len]))
}

fn attention_only_f32(att: &F32Attention, causal: bool) -> Vec<u8> {
    let (offset, scale) = f32_header(T * D);
    let params = le(&att.params);
    seal(
        ModelHeader {
            numeric: Numeric::F32,
            input_len: (T * D) as u32,
            output_len: (T * D) as u32,
            arena_bytes: 0,
            layer_count: 0,
            input_offset: &offset,
            input_scale: &scale,
            input_quant: None,
            output_quant: None,
        },
        &[
            LayerDef::Tokens {
                tokens: T as u32,
                causal,
            },
            LayerDef::AttentionF32 {
                dim: D as u32,
                heads: HEADS as u32,
                position: att.position,
                params: &params,
            },
        ],
    )
}

const POSITIONS: [Position; 3] = [Position::None, Position::RelativeBias, Position::Rope];

#[test]
fn f32_attention_matches_a_naive_reference() {
    let mut rng = Rng(0x5eed);
    for position in POSITIONS {
        for causal in [false, true] {
            let att = F32Attention::random(&mut rng, position);
            let blob = attention_only_f32(&att, causal);
            let model = Model::from_bytes(&blob).expect("loads");
            let x = rng.vec(T * D, 1.0);
            let mut arena = Arena::<65536>::new();
            let y = model.run_f32(&x, arena.as_mut_bytes()).unwrap().to_vec();
            let want = att.reference(&x, causal);
            let worst = y
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                worst < 1e-5,
                "{position:?} causal={causal}: max diff {worst}"
            );
        }
    }
}

#[test]
fn attention_rows_sum_to_one_and_masked_positions_are_zero() {
    let mut rng = Rng(42);
    let keys = rng.vec(T * D, 3.0);
    let values = rng.vec(T * D, 1.0);
    let bias = le(&rng.vec(2 * T - 1, 2.0));
    for causal in [false, true] {
        for query in 0..T {
            for head in 0..HEADS {
                let q = rng.vec(HD, 3.0);
                let kv = KeyValues {
                    keys: &keys,
                    values: &values,
                    dim: D,
                    tokens: T,
                    head_offset: head * HD,
                };
                let span = Span {
                    query,
                    first: 0,
                    last: if causal { query } else { T - 1 },
                };
                // Garbage in the buffer first: masked entries must be overwritten with 0.
                let mut weights = vec![f32::NAN; T];
                let mut out = vec![0.0; HD];
                attend_f32(&q, &kv, span, Some(&bias), &mut weights, &mut out);
                let sum: f32 = weights.iter().sum();
                assert!((sum - 1.0).abs() <= 1e-5, "row {query}: sum {sum}");
                for (j, &w) in weights.iter().enumerate() {
                    if causal && j > query {
                        assert_eq!(w.to_bits(), 0.0f32.to_bits(), "masked ({query},{j}) = {w}");
                    } else {
                        assert!(w > 0.0 && w <= 1.0, "({query},{j}) = {w}");
                    }
                }
            }
        }
    }
}

/// A small causal int8 model: tokens, embedding, (positions), LayerNorm,
/// attention, a residual, GELU-like table, dense head per token.
fn causal_i8(rng: &mut Rng, position: Position, sinusoidal: bool) -> Vec<u8> {
    let (offset, scale) = f32_header(T);
    let vocab = 16;
    let embedding = rng.bytes_i8(vocab * D);
    let table16: Vec<u8> = (0..T * D)
        .flat_map(|_| ((rng.next() * 40.0) as i16).to_le_bytes())
        .collect();
    let gamma: Vec<i32> = (0..D)
        .map(|_| (4096.0 * 8.0 * (1.0 + rng.next() * 0.5)) as i32)
        .collect();
    let beta: Vec<i32> = (0..D)
        .map(|_| (rng.next() * 16.0 * (1 << 24) as f32) as i32)
        .collect();
    let ln: Vec<u8> = gamma
        .iter()
        .chain(&beta)
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mult = |n: usize| -> Vec<u8> { (0..n).flat_map(|_| (1i32 << 30).to_le_bytes()).collect() };
    let (w_qkv, b_qkv, m_qkv, s_qkv) = (
        rng.bytes_i8(3 * D * D),
        vec![0u8; 3 * D * 4],
        mult(3 * D),
        vec![8u8; 3 * D],
    );
    let (w_out, b_out, m_out, s_out) =
        (rng.bytes_i8(D * D), vec![0u8; D * 4], mult(D), vec![8u8; D]);
    let exp_table: Vec<u8> = (0..256)
        .flat_map(|k| ((32767.0 * (-(k as f64) / 16.0).exp()).round() as u16).to_le_bytes())
        .collect();
    let position_table: Vec<u8> = match position {
        Position::None => vec![],
        Position::RelativeBias => (0..HEADS * (2 * T - 1))
            .flat_map(|_| ((rng.next() * 500.0) as i32).to_le_bytes())
            .collect(),
        Position::Rope => (0..T)
            .flat_map(|p| {
                (0..HD / 2).flat_map(move |m| {
                    let a = p as f64 * 10000f64.powf(-2.0 * m as f64 / HD as f64);
                    [
                        (a.cos() * 16384.0).round() as i16,
                        (a.sin() * 16384.0).round() as i16,
                    ]
                })
            })
            .flat_map(i16::to_le_bytes)
            .collect(),
    };
    let head_w = rng.bytes_i8(D * 2);
    let gelu: Vec<u8> = (0..256).map(|i| ((i - 128).max(-20)) as i8 as u8).collect();
    let half = Rescale {
        zero_point: 0,
        multiplier: 1 << 30,
        shift: 31,
    };
    let mut layers = vec![
        LayerDef::Tokens {
            tokens: T as u32,
            causal: true,
        },
        LayerDef::EmbeddingI8 {
            vocab: vocab as u32,
            dim: D as u32,
            table: &embedding,
        },
    ];
    if sinusoidal {
        layers.push(LayerDef::AddTableI8 {
            input: half,
            table: &table16,
            output_zero_point: 0,
        });
    }
    layers.extend([
        LayerDef::SaveSkip { slot: 0 },
        LayerDef::LayerNormI8 {
            dim: D as u32,
            eps: 10,
            params: &ln,
            output_zero_point: 3,
        },
        LayerDef::AttentionI8 {
            dim: D as u32,
            heads: HEADS as u32,
            position,
            qkv: DenseI8Params {
                weights: &w_qkv,
                bias: &b_qkv,
                multiplier: &m_qkv,
                shift: &s_qkv,
                output_zero_point: 0,
            },
            score: Rescale {
                zero_point: 0,
                multiplier: 1 << 30,
                shift: 36,
            },
            exp_table: &exp_table,
            position_table: &position_table,
            context: Rescale {
                zero_point: 0,
                multiplier: 1 << 30,
                shift: 47,
            },
            out: DenseI8Params {
                weights: &w_out,
                bias: &b_out,
                multiplier: &m_out,
                shift: &s_out,
                output_zero_point: -2,
            },
        },
        LayerDef::AddSkipI8 {
            slot: 0,
            input: half,
            skip: half,
            output_zero_point: 0,
        },
        LayerDef::TableI8 { table: &gelu },
        LayerDef::DenseI8 {
            inputs: D as u32,
            outputs: 2,
            weights: &head_w,
            bias: &[0; 8],
            multiplier: &[0, 0, 0, 64, 0, 0, 0, 64],
            shift: &[38, 38],
            output_zero_point: 0,
        },
    ]);
    seal(
        ModelHeader {
            numeric: Numeric::Int8,
            input_len: T as u32,
            output_len: (2 * T) as u32,
            arena_bytes: 0,
            layer_count: 0,
            input_offset: &offset,
            input_scale: &scale,
            input_quant: Some(QuantParams {
                scale: 1.0,
                zero_point: 0,
            }),
            output_quant: Some(QuantParams {
                scale: 0.1,
                zero_point: 0,
            }),
        },
        &layers,
    )
}

#[test]
fn int8_key_value_cache_equals_the_full_causal_pass() {
    let mut rng = Rng(7);
    for (position, sinusoidal) in [
        (Position::None, false),
        (Position::RelativeBias, false),
        (Position::Rope, false),
        (Position::None, true),
    ] {
        let blob = causal_i8(&mut rng, position, sinusoidal);
        let model = Model::from_bytes(&blob).expect("loads");
        assert!(model.is_causal());
        let tokens: Vec<i8> = (0..T).map(|_| ((rng.next() + 1.0) * 9.0) as i8).collect();
        let mut arena = Arena::<65536>::new();
        let full = model
            .run_i8(&tokens, arena.as_mut_bytes())
            .unwrap()
            .to_vec();
        // Non-trivial output, or the comparison proves nothing.
        assert!(
            full.iter().any(|&v| v != full[0]),
            "{position:?}: constant output {full:?}"
        );
        let mut state = Arena::<4096>::new();
        model.reset(state.as_mut_bytes()).unwrap();
        for (t, &x) in tokens.iter().enumerate() {
            let row = model
                .step_i8(&[x], state.as_mut_bytes(), arena.as_mut_bytes())
                .unwrap();
            assert_eq!(row, &full[2 * t..2 * t + 2], "{position:?} token {t}");
        }
        let next = model.step_i8(&[1], state.as_mut_bytes(), arena.as_mut_bytes());
        match (position, sinusoidal) {
            (Position::Rope, _) | (_, true) => {
                assert_eq!(next.err(), Some(Error::ContextFull { tokens: T }))
            }
            _ => assert!(next.is_ok(), "relative positions slide: {next:?}"),
        }
    }
}

#[test]
fn f32_key_value_cache_equals_the_full_causal_pass_and_slides() {
    let mut rng = Rng(99);
    for position in POSITIONS {
        let att = F32Attention::random(&mut rng, position);
        let blob = attention_only_f32(&att, true);
        let model = Model::from_bytes(&blob).expect("loads");
        // Tokens of D values each, one at a time.
        let xs = rng.vec(3 * T * D, 1.0);
        let mut arena = Arena::<65536>::new();
        let full = model
            .run_f32(&xs[..T * D], arena.as_mut_bytes())
            .unwrap()
            .to_vec();
        let mut state = vec![0u32; model.state_bytes() / 4];
        let state = bytemuck::cast_slice_mut(&mut state);
        model.reset(state).unwrap();
        for t in 0..T {
            let row = model
                .step_f32(&xs[t * D..(t + 1) * D], state, arena.as_mut_bytes())
                .unwrap();
            let bits: Vec<u32> = row.iter().map(|v| v.to_bits()).collect();
            let want: Vec<u32> = full[t * D..(t + 1) * D]
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(bits, want, "{position:?} token {t}");
        }
        if position == Position::Rope {
            let next = model.step_f32(&xs[T * D..(T + 1) * D], state, arena.as_mut_bytes());
            assert_eq!(next.err(), Some(Error::ContextFull { tokens: T }));
            continue;
        }
        // Past the context the window slides: with one attention layer, token
        // t's row equals the last row of a full pass over tokens t-T+1..=t.
        for t in T..3 * T {
            let row = model
                .step_f32(&xs[t * D..(t + 1) * D], state, arena.as_mut_bytes())
                .unwrap()
                .to_vec();
            let window = &xs[(t + 1 - T) * D..(t + 1) * D];
            let full = model.run_f32(window, arena.as_mut_bytes()).unwrap();
            let last = &full[(T - 1) * D..];
            if position == Position::None {
                // No positions: a window pass sees the same keys in a rotated
                // order, so the sums agree to rounding, not bit for bit.
                let worst = row
                    .iter()
                    .zip(last)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(worst < 1e-5, "token {t}: {worst}");
            } else {
                let worst = row
                    .iter()
                    .zip(last)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(worst < 1e-5, "{position:?} token {t}: {worst}");
            }
        }
        assert_eq!(model.state_bytes(), 4 + 2 * T * D * 4);
    }
}

#[test]
fn pooling_and_class_token_values() {
    let mut rng = Rng(3);
    let att = F32Attention::random(&mut rng, Position::Rope);
    let (offset, scale) = f32_header(T * D);
    let cls_values = rng.vec(D, 1.0);
    let cls = le(&cls_values);
    // RoPE table for T + 1 rows (the class token adds one).
    let mut params = att.params[..4 * D * D + 4 * D].to_vec();
    for p in 0..=T {
        for m in 0..HD / 2 {
            let a = p as f32 * 10000f32.powf(-2.0 * m as f32 / HD as f32);
            params.extend([a.cos(), a.sin()]);
        }
    }
    let params = le(&params);
    let header = |output_len: usize| ModelHeader {
        numeric: Numeric::F32,
        input_len: (T * D) as u32,
        output_len: output_len as u32,
        arena_bytes: 0,
        layer_count: 0,
        input_offset: &offset,
        input_scale: &scale,
        input_quant: None,
        output_quant: None,
    };
    let tokens = LayerDef::Tokens {
        tokens: T as u32,
        causal: false,
    };
    let class_token = LayerDef::ClassToken { vector: &cls };
    let attention = LayerDef::AttentionF32 {
        dim: D as u32,
        heads: HEADS as u32,
        position: Position::Rope,
        params: &params,
    };
    let x = rng.vec(T * D, 1.0);
    let mut arena = Arena::<65536>::new();

    // The class token is row 0, the input rows follow.
    let blob = seal(header((T + 1) * D), &[tokens, class_token]);
    let model = Model::from_bytes(&blob).expect("loads");
    let rows = model.run_f32(&x, arena.as_mut_bytes()).unwrap().to_vec();
    assert_eq!(rows, [cls_values.as_slice(), &x].concat());

    // Attention over T + 1 rows, unpooled, as the reference for both pools.
    let blob = seal(header((T + 1) * D), &[tokens, class_token, attention]);
    let model = Model::from_bytes(&blob).expect("loads");
    let rows = model.run_f32(&x, arena.as_mut_bytes()).unwrap().to_vec();
    for kind in [PoolKind::Mean, PoolKind::First] {
        let blob = seal(
            header(D),
            &[tokens, class_token, attention, LayerDef::Pool { kind }],
        );
        let model = Model::from_bytes(&blob).expect("loads");
        assert_eq!(model.tokens(), T);
        assert!(!model.is_causal());
        let y = model.run_f32(&x, arena.as_mut_bytes()).unwrap();
        let want: Vec<f32> = match kind {
            PoolKind::First => rows[..D].to_vec(),
            // Column sums in row order, then one division: the runtime's order.
            PoolKind::Mean => (0..D)
                .map(|c| (0..=T).fold(0.0f32, |a, r| a + rows[r * D + c]) / (T + 1) as f32)
                .collect(),
        };
        assert_eq!(y, want.as_slice(), "{kind:?}");
    }
}

#[test]
fn malformed_transformer_layers_are_rejected_by_name() {
    let mut rng = Rng(11);
    let att = F32Attention::random(&mut rng, Position::Rope);
    let params = le(&att.params);
    let (offset, scale) = f32_header(T * D);
    let header = ModelHeader {
        numeric: Numeric::F32,
        input_len: (T * D) as u32,
        output_len: (T * D) as u32,
        arena_bytes: 0,
        layer_count: 0,
        input_offset: &offset,
        input_scale: &scale,
        input_quant: None,
        output_quant: None,
    };
    let tokens = |causal| LayerDef::Tokens {
        tokens: T as u32,
        causal,
    };
    let attention = |heads: u32, position, params| LayerDef::AttentionF32 {
        dim: D as u32,
        heads,
        position,
        params,
    };
    let check = |layers: &[LayerDef<'_>], header: ModelHeader<'_>| {
        let mut h = header;
        h.layer_count = layers.len() as u32;
        Model::required_arena_bytes(h, layers).err()
    };
    let shape = |layer| Some(Error::ShapeMismatch { layer });
    // Attention without a Tokens layer first, or Tokens later.
    assert_eq!(
        check(&[attention(2, Position::Rope, &params)], header),
        shape(0)
    );
    assert_eq!(
        check(&[LayerDef::SaveSkip { slot: 0 }, tokens(false)], header),
        shape(1)
    );
    // Tokens that do not divide the input.
    let seven = LayerDef::Tokens {
        tokens: 7,
        causal: false,
    };
    assert_eq!(check(&[seven], header), shape(0));
    // Heads that do not divide the width; RoPE with an odd head width.
    assert_eq!(
        check(
            &[tokens(false), attention(3, Position::None, &params)],
            header
        ),
        shape(1)
    );
    let odd_rope = le(&vec![0.0; 4 * D * D + 4 * D + T]);
    assert_eq!(
        check(
            &[tokens(false), attention(8, Position::Rope, &odd_rope)],
            header
        ),
        shape(1)
    );
    // Parameters one value short.
    assert_eq!(
        check(
            &[
                tokens(false),
                attention(2, Position::Rope, &params[..params.len() - 4])
            ],
            header
        ),
        shape(1)
    );
    // A causal model cannot pool.
    let pooled = ModelHeader {
        output_len: D as u32,
        ..header
    };
    assert_eq!(
        check(
            &[
                tokens(true),
                LayerDef::Pool {
                    kind: PoolKind::Mean
                }
            ],
            pooled
        ),
        shape(1)
    );
    // An int8 layer in an f32 model.
    let ln = vec![0u8; 2 * D * 4];
    let norm_i8 = LayerDef::LayerNormI8 {
        dim: D as u32,
        eps: 0,
        params: &ln,
        output_zero_point: 0,
    };
    assert_eq!(
        check(&[tokens(false), norm_i8], header),
        Some(Error::WrongNumericPath)
    );
    // A negative epsilon.
    let norm = LayerDef::LayerNormF32 {
        dim: D as u32,
        eps: -1.0,
        params: &ln,
    };
    assert_eq!(
        check(&[tokens(false), norm], header),
        Some(Error::BadParameter { layer: 1 })
    );

    // Caller errors on a valid model.
    let blob = attention_only_f32(&att, false);
    let model = Model::from_bytes(&blob).unwrap();
    let mut arena = Arena::<65536>::new();
    let mut state = Arena::<1024>::new();
    assert_eq!(
        model
            .step_f32(&[0.0; D], state.as_mut_bytes(), arena.as_mut_bytes())
            .err(),
        Some(Error::NotRecurrent),
        "a non-causal model has no step API"
    );
    let causal = attention_only_f32(&att, true);
    let model = Model::from_bytes(&causal).unwrap();
    model.reset(state.as_mut_bytes()).unwrap();
    assert_eq!(
        model
            .step_f32(&[0.0; D - 1], state.as_mut_bytes(), arena.as_mut_bytes())
            .err(),
        Some(Error::WrongInputLength {
            expected: D,
            given: D - 1
        })
    );
    assert_eq!(
        model
            .step_f32(
                &[0.0; D],
                &mut state.as_mut_bytes()[..8],
                arena.as_mut_bytes()
            )
            .err(),
        Some(Error::StateTooSmall {
            needed: model.state_bytes(),
            given: 8
        })
    );
    assert!(matches!(
        model.step_f32(
            &[0.0; D],
            state.as_mut_bytes(),
            &mut arena.as_mut_bytes()[..16]
        ),
        Err(Error::ArenaTooSmall { .. })
    ));
}

/// The exported forecaster (a trained causal model) on the first context of
/// the real test stream: every step's row equals the full causal pass's,
/// bit for bit, on both numeric paths.
#[test]
fn exported_forecaster_steps_equal_its_full_causal_pass() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/exported/ucr-forecaster");
    let vectors = std::fs::read(dir.join("f32.vectors")).expect("exported forecaster vectors");
    let vectors = runtime::TestVectors::from_bytes(&vectors).unwrap();
    let raw: Vec<f32> = vectors
        .input_bytes(0)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    for file in ["f32.bin", "int8.bin"] {
        let blob = std::fs::read(dir.join(file)).unwrap();
        let model = Model::from_bytes(&blob).unwrap();
        assert!(model.is_causal(), "{file}");
        let t = model.tokens();
        let row = model.output_len() / t;
        let mut arena = vec![0u32; model.arena_bytes().div_ceil(4)];
        let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
        let mut state = vec![0u32; model.state_bytes().div_ceil(4)];
        let state: &mut [u8] = bytemuck::cast_slice_mut(&mut state);
        model.reset(state).unwrap();
        let window = &raw[..t];
        match model.numeric() {
            Numeric::F32 => {
                let full: Vec<u32> = model
                    .run_f32(window, arena)
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                for (i, &x) in window.iter().enumerate() {
                    let step: Vec<u32> = model
                        .step_f32(&[x], state, arena)
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect();
                    assert_eq!(step, full[i * row..(i + 1) * row], "{file} token {i}");
                }
            }
            Numeric::Int8 => {
                let mut q = vec![0i8; t];
                model.quantize_input(window, &mut q).unwrap();
                let full = model.run_i8(&q, arena).unwrap().to_vec();
                for (i, &x) in q.iter().enumerate() {
                    let step = model.step_i8(&[x], state, arena).unwrap();
                    assert_eq!(step, &full[i * row..(i + 1) * row], "{file} token {i}");
                }
            }
        }
    }
}
