//! Encoder-decoder models in the runtime, on hand-built models with random
//! weights: the f32 decoder against a reference written here from the
//! format's equations (in f64, within 1e-5); the one-call forecast equals
//! encode-then-decode bit for bit on both paths; any state bytes give a
//! result or a named error; and every malformed decoder or bad call has its
//! named error.

use proptest::prelude::*;
use runtime::format::{
    f32_to_le_bytes, Cell, DenseI8Params, LayerDef, ModelHeader, Numeric, QuantParams, Rescale,
};
use runtime::quant::quantize_multiplier;
use runtime::{Error, Model};

/// Deterministic pseudo-random numbers (splitmix64).
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.unit() * scale).collect()
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

fn le(values: &[f32]) -> Vec<u8> {
    let mut out = vec![0; values.len() * 4];
    f32_to_le_bytes(values, &mut out);
    out
}

fn le_i32(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn seal(header: ModelHeader<'_>, layers: &[LayerDef<'_>]) -> Result<Vec<u8>, Error> {
    let mut out = vec![0; runtime::encoded_len(header, layers)?];
    let n = runtime::encode(header, layers, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// A 4-byte aligned buffer of `len` bytes.
fn aligned(len: usize) -> Vec<u32> {
    vec![0u32; len.div_ceil(4)]
}

fn bytes(words: &mut [u32]) -> &mut [u8] {
    bytemuck::cast_slice_mut(words)
}

/// The shape of a test model: `channels` in, an encoder of `cell` layers of
/// `hidden` units, a decoder of `outputs` values fed back from `feedback`.
#[derive(Debug, Clone)]
struct Shape {
    cell: Cell,
    channels: usize,
    hidden: usize,
    layers: usize,
    window: usize,
    horizon: usize,
    outputs: usize,
    attention: usize,
    feedback: Vec<u16>,
}

impl Shape {
    fn small(cell: Cell) -> Self {
        Shape {
            cell,
            channels: 3,
            hidden: 6,
            layers: 2,
            window: 7,
            horizon: 5,
            outputs: 2,
            attention: 5,
            feedback: vec![2, 0],
        }
    }
    fn feedback_bytes(&self) -> Vec<u8> {
        self.feedback.iter().flat_map(|c| c.to_le_bytes()).collect()
    }
}

/// f32 parameters of a test model.
struct F32Model {
    shape: Shape,
    offset: Vec<f32>,
    scale: Vec<f32>,
    /// One recurrent parameter block per encoder layer, then the decoder cell's.
    cells: Vec<Vec<f32>>,
    combine_w: Vec<f32>,
    combine_b: Vec<f32>,
    out_w: Vec<f32>,
    out_b: Vec<f32>,
}

fn cell_params(rng: &mut Rng, cell: Cell, inputs: usize, hidden: usize) -> Vec<f32> {
    let r = cell.gates() * hidden;
    rng.vec(r * inputs + r * hidden + 2 * r, 0.6)
}

impl F32Model {
    fn random(shape: Shape, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let (c, h, o, a) = (shape.channels, shape.hidden, shape.outputs, shape.attention);
        let mut cells = Vec::new();
        for l in 0..shape.layers {
            cells.push(cell_params(
                &mut rng,
                shape.cell,
                if l == 0 { c } else { h },
                h,
            ));
        }
        cells.push(cell_params(&mut rng, shape.cell, o, h));
        F32Model {
            offset: rng.vec(c, 1.0),
            scale: (0..c).map(|_| 0.5 + rng.unit().abs()).collect(),
            cells,
            combine_w: rng.vec(a * 2 * h, 0.5),
            combine_b: rng.vec(a, 0.2),
            out_w: rng.vec(o * a, 0.7),
            out_b: rng.vec(o, 0.2),
            shape,
        }
    }

    fn blob(&self) -> Result<Vec<u8>, Error> {
        let s = &self.shape;
        let (offset, scale) = (le(&self.offset), le(&self.scale));
        let cells: Vec<Vec<u8>> = self.cells.iter().map(|p| le(p)).collect();
        let mut decoder = cells[s.layers].clone();
        for part in [&self.combine_w, &self.combine_b, &self.out_w, &self.out_b] {
            decoder.extend(le(part));
        }
        let feedback = s.feedback_bytes();
        let mut layers: Vec<LayerDef> = (0..s.layers)
            .map(|l| LayerDef::RecurrentF32 {
                cell: s.cell,
                inputs: if l == 0 { s.channels } else { s.hidden } as u32,
                hidden: s.hidden as u32,
                params: &cells[l],
            })
            .collect();
        layers.push(LayerDef::DecoderF32 {
            window: s.window as u32,
            horizon: s.horizon as u32,
            cell: s.cell,
            outputs: s.outputs as u32,
            hidden: s.hidden as u32,
            attention: s.attention as u32,
            feedback: &feedback,
            params: &decoder,
        });
        let header = ModelHeader {
            numeric: Numeric::F32,
            input_len: s.channels as u32,
            output_len: s.outputs as u32,
            arena_bytes: 0,
            layer_count: 0,
            input_offset: &offset,
            input_scale: &scale,
            input_quant: None,
            output_quant: None,
        };
        seal(header, &layers)
    }

    /// The format's equations in f64: `horizon` steps of `outputs` values.
    fn reference(&self, window: &[f32]) -> Vec<f64> {
        let s = &self.shape;
        let (c, h, o) = (s.channels, s.hidden, s.outputs);
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let dense = |w: &[f32], b: &[f32], x: &[f64]| -> Vec<f64> {
            b.iter()
                .enumerate()
                .map(|(k, &bk)| {
                    let row = &w[k * x.len()..(k + 1) * x.len()];
                    f64::from(bk)
                        + row
                            .iter()
                            .zip(x)
                            .map(|(&w, &x)| f64::from(w) * x)
                            .sum::<f64>()
                })
                .collect()
        };
        let step = |p: &[f32], x: &[f64], hs: &mut Vec<f64>, cs: &mut Vec<f64>| {
            let r = s.cell.gates() * h;
            let i = x.len();
            let (wi, rest) = p.split_at(r * i);
            let (wh, rest) = rest.split_at(r * h);
            let (bi, bh) = rest.split_at(r);
            let gx = dense(wi, bi, x);
            let gh = dense(wh, bh, hs);
            for j in 0..h {
                let g = |k: usize| gx[k * h + j] + gh[k * h + j];
                match s.cell {
                    Cell::Rnn => hs[j] = g(0).tanh(),
                    Cell::Lstm => {
                        cs[j] = sigmoid(g(1)) * cs[j] + sigmoid(g(0)) * g(2).tanh();
                        hs[j] = sigmoid(g(3)) * cs[j].tanh();
                    }
                    Cell::Gru => {
                        let (rr, z) = (sigmoid(g(0)), sigmoid(g(1)));
                        let n = (gx[2 * h + j] + rr * gh[2 * h + j]).tanh();
                        hs[j] = (1.0 - z) * n + z * hs[j];
                    }
                }
            }
        };
        let mut states = vec![(vec![0.0; h], vec![0.0; h]); s.layers];
        let mut encoder = Vec::new();
        let mut last = Vec::new();
        for x_t in window.chunks(c) {
            let mut x: Vec<f64> = x_t
                .iter()
                .zip(self.offset.iter().zip(&self.scale))
                .map(|(&x, (&o, &sc))| f64::from((x - o) * sc))
                .collect();
            last = x.clone();
            for (l, (hs, cs)) in states.iter_mut().enumerate() {
                step(&self.cells[l], &x, hs, cs);
                x = hs.clone();
            }
            encoder.push(x);
        }
        let (mut hs, mut cs) = states[s.layers - 1].clone();
        let mut y: Vec<f64> = s.feedback.iter().map(|&ch| last[usize::from(ch)]).collect();
        let mut out = Vec::new();
        for _ in 0..s.horizon {
            step(&self.cells[s.layers], &y, &mut hs, &mut cs);
            let scores: Vec<f64> = encoder
                .iter()
                .map(|e| e.iter().zip(&hs).map(|(a, b)| a * b).sum::<f64>() / (h as f64).sqrt())
                .collect();
            let max = scores.iter().cloned().fold(f64::MIN, f64::max);
            let p: Vec<f64> = scores.iter().map(|v| (v - max).exp()).collect();
            let sum: f64 = p.iter().sum();
            let mut joined: Vec<f64> = (0..h)
                .map(|j| encoder.iter().zip(&p).map(|(e, w)| e[j] * w / sum).sum())
                .collect();
            joined.extend(&hs);
            let a: Vec<f64> = dense(&self.combine_w, &self.combine_b, &joined)
                .into_iter()
                .map(f64::tanh)
                .collect();
            y = dense(&self.out_w, &self.out_b, &a);
            assert_eq!(y.len(), o);
            out.extend(&y);
        }
        out
    }
}

/// A window of raw inputs.
fn window(shape: &Shape, seed: u64) -> Vec<f32> {
    Rng(seed).vec(shape.window * shape.channels, 2.0)
}

#[test]
fn the_f32_decoder_follows_the_formats_equations() {
    for (k, cell) in [Cell::Lstm, Cell::Gru, Cell::Rnn].into_iter().enumerate() {
        let mut shape = Shape::small(cell);
        shape.layers = 1 + k % 2;
        let m = F32Model::random(shape.clone(), 11 + k as u64);
        let blob = m.blob().unwrap();
        let model = Model::from_bytes(&blob).unwrap();
        assert!(model.is_seq2seq() && model.is_recurrent());
        assert_eq!(
            (model.window(), model.horizon()),
            (shape.window, shape.horizon)
        );
        let x = window(&shape, 99 + k as u64);
        let mut state = aligned(model.state_bytes());
        let mut arena = aligned(model.arena_bytes());
        let mut out = vec![0.0f32; shape.horizon * shape.outputs];
        model
            .forecast_f32(
                &x,
                shape.horizon,
                bytes(&mut state),
                bytes(&mut arena),
                &mut out,
            )
            .unwrap();
        let want = m.reference(&x);
        let spread = want.iter().cloned().fold(0.0f64, |a, v| a.max(v.abs()));
        assert!(spread > 0.05, "{cell:?}: outputs all near 0 ({spread})");
        for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
            assert!(
                (f64::from(got) - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{cell:?} value {i}: {got} vs {want}"
            );
        }
    }
}

/// Decoding fewer steps by hand equals the same prefix of the one call, bit for bit.
fn assert_step_api_equals_forecast<T: Copy + PartialEq + std::fmt::Debug + Default>(
    model: &Model,
    x: &[T],
    forecast: impl Fn(&Model, &[T], usize, &mut [u8], &mut [u8], &mut [T]) -> Result<(), Error>,
    encode: impl Fn(&Model, &[T], &mut [u8], &mut [u8]) -> Result<(), Error>,
    decode: impl Fn(&Model, &mut [u8], &mut [u8]) -> Result<Vec<T>, Error>,
) {
    let (horizon, o) = (model.horizon(), model.output_len());
    let mut state = aligned(model.state_bytes());
    let mut arena = aligned(model.arena_bytes());
    let mut whole = vec![T::default(); horizon * o];
    forecast(
        model,
        x,
        horizon,
        bytes(&mut state),
        bytes(&mut arena),
        &mut whole,
    )
    .unwrap();
    // Garbage in both buffers first: encode must not depend on them.
    let mut state = vec![0xA5A5_A5A5u32; model.state_bytes().div_ceil(4)];
    let mut arena = vec![0x5A5A_5A5Au32; model.arena_bytes().div_ceil(4)];
    encode(model, x, bytes(&mut state), bytes(&mut arena)).unwrap();
    let mut stepped = Vec::new();
    for _ in 0..horizon {
        stepped.extend(decode(model, bytes(&mut state), bytes(&mut arena)).unwrap());
    }
    assert_eq!(stepped, whole);
    assert_eq!(
        decode(model, bytes(&mut state), bytes(&mut arena)).err(),
        Some(Error::HorizonOutOfRange {
            max: horizon,
            given: horizon + 1
        })
    );
    // A shorter forecast is the prefix.
    let mut short = vec![T::default(); 2 * o];
    forecast(
        model,
        x,
        2,
        bytes(&mut state),
        bytes(&mut arena),
        &mut short,
    )
    .unwrap();
    assert_eq!(short, whole[..2 * o]);
}

#[test]
fn the_step_api_equals_the_one_call_f32() {
    let m = F32Model::random(Shape::small(Cell::Gru), 5);
    let blob = m.blob().unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    let x = window(&m.shape, 6);
    assert_step_api_equals_forecast(
        &model,
        &x,
        |m, x, n, s, a, o| m.forecast_f32(x, n, s, a, o),
        |m, x, s, a| m.encode_f32(x, s, a),
        |m, s, a| m.decode_f32(s, a).map(<[f32]>::to_vec),
    );
}

/// An int8 model with random weights and plausible fixed-point ratios.
fn int8_blob(shape: &Shape, seed: u64) -> Result<Vec<u8>, Error> {
    int8_blob_with(shape, seed, |_| {})
}

fn ratio(r: f64) -> (i32, u8) {
    quantize_multiplier(r).expect("a representable ratio")
}

fn rescale(r: f64, zero_point: i8) -> Rescale {
    let (multiplier, shift) = ratio(r);
    Rescale {
        zero_point,
        multiplier,
        shift,
    }
}

/// Raw int8 cell parameters: weights, biases, multipliers to Q12, shifts.
fn cell_i8(rng: &mut Rng, cell: Cell, inputs: usize, hidden: usize) -> Vec<u8> {
    let r = cell.gates() * hidden;
    let mut p = rng.bytes(r * inputs + r * hidden);
    let bias: Vec<i32> = (0..2 * r).map(|_| (rng.unit() * 2000.0) as i32).collect();
    p.extend(le_i32(&bias));
    // Input part: int8 x int8 sums to Q12; hidden part: int8 x Q15 sums to Q12.
    let (mi, si) = ratio(4096.0 / (64.0 * 64.0 * inputs as f64).sqrt() / 64.0);
    let (mh, sh) = ratio(4096.0 / (64.0 * 32768.0) / (hidden as f64).sqrt());
    p.extend(le_i32(&vec![mi; r]));
    p.extend(le_i32(&vec![mh; r]));
    p.extend(vec![si; r]);
    p.extend(vec![sh; r]);
    p
}

fn dense_i8(rng: &mut Rng, inputs: usize, outputs: usize) -> [Vec<u8>; 4] {
    let (m, s) = ratio(1.0 / (40.0 * (inputs as f64).sqrt()));
    [
        rng.bytes(inputs * outputs),
        le_i32(
            &(0..outputs)
                .map(|_| (rng.unit() * 500.0) as i32)
                .collect::<Vec<_>>(),
        ),
        le_i32(&vec![m; outputs]),
        vec![s; outputs],
    ]
}

fn exp_table(scale: f64) -> Vec<u8> {
    (0..256)
        .flat_map(|d| ((32767.0 * (-scale * f64::from(d)).exp()).round() as u16).to_le_bytes())
        .collect()
}

fn tanh_table(scale: f64) -> Vec<u8> {
    (0..256)
        .map(|i| {
            let x = (i as f64 - 128.0) * scale;
            ((x.tanh() * 127.0).round() as i8) as u8
        })
        .collect()
}

/// [`int8_blob`] after `edit` changes the decoder's definition.
fn int8_blob_with(
    shape: &Shape,
    seed: u64,
    edit: impl FnOnce(&mut LayerDef<'_>),
) -> Result<Vec<u8>, Error> {
    let mut rng = Rng(seed);
    let (c, h, o, a) = (shape.channels, shape.hidden, shape.outputs, shape.attention);
    let offset = le(&vec![0.0; c]);
    let scale = le(&vec![1.0; c]);
    let cells: Vec<Vec<u8>> = (0..shape.layers)
        .map(|l| cell_i8(&mut rng, shape.cell, if l == 0 { c } else { h }, h))
        .collect();
    let decoder_cell = cell_i8(&mut rng, shape.cell, o, h);
    let combine = dense_i8(&mut rng, 2 * h, a);
    let out = dense_i8(&mut rng, a, o);
    let feedback = shape.feedback_bytes();
    let (exp, tanh) = (exp_table(0.05), tanh_table(1.0 / 32.0));
    // h (Q15) to int8 steps of 1/64.
    let to_int8 = rescale(64.0 / 32768.0, 0);
    let mut layers: Vec<LayerDef> = cells
        .iter()
        .enumerate()
        .map(|(l, params)| LayerDef::RecurrentI8 {
            cell: shape.cell,
            inputs: if l == 0 { c } else { h } as u32,
            hidden: h as u32,
            params,
            output: to_int8,
            output_zero_point: 0,
        })
        .collect();
    fn dense(d: &[Vec<u8>; 4], zp: i8) -> DenseI8Params<'_> {
        let [weights, bias, multiplier, shift] = d;
        DenseI8Params {
            weights,
            bias,
            multiplier,
            shift,
            output_zero_point: zp,
        }
    }
    let mut decoder = LayerDef::DecoderI8 {
        window: shape.window as u32,
        horizon: shape.horizon as u32,
        cell: shape.cell,
        outputs: o as u32,
        hidden: h as u32,
        attention: a as u32,
        feedback: &feedback,
        start: rescale(0.75, -2),
        params: &decoder_cell,
        query: to_int8,
        score: rescale(1.0 / 64.0, 0),
        exp_table: &exp,
        context: rescale(1.0 / 2.0, 0),
        combine: dense(&combine, 0),
        tanh: &tanh,
        out: dense(&out, 3),
    };
    edit(&mut decoder);
    layers.push(decoder);
    let q = QuantParams {
        scale: 1.0 / 32.0,
        zero_point: -2,
    };
    let header = ModelHeader {
        numeric: Numeric::Int8,
        input_len: c as u32,
        output_len: o as u32,
        arena_bytes: 0,
        layer_count: 0,
        input_offset: &offset,
        input_scale: &scale,
        input_quant: Some(q),
        output_quant: Some(QuantParams {
            scale: 1.0 / 24.0,
            zero_point: 3,
        }),
    };
    seal(header, &layers)
}

fn window_i8(shape: &Shape, seed: u64) -> Vec<i8> {
    Rng(seed)
        .bytes(shape.window * shape.channels)
        .into_iter()
        .map(|b| b as i8)
        .collect()
}

#[test]
fn the_step_api_equals_the_one_call_int8() {
    for cell in [Cell::Lstm, Cell::Gru, Cell::Rnn] {
        let shape = Shape::small(cell);
        let blob = int8_blob(&shape, 21).unwrap();
        let model = Model::from_bytes(&blob).unwrap();
        let x = window_i8(&shape, 22);
        assert_step_api_equals_forecast(
            &model,
            &x,
            |m, x, n, s, a, o| m.forecast_i8(x, n, s, a, o),
            |m, x, s, a| m.encode_i8(x, s, a),
            |m, s, a| m.decode_i8(s, a).map(<[i8]>::to_vec),
        );
        // The decoder's output depends on the window (not a constant).
        let mut state = aligned(model.state_bytes());
        let mut arena = aligned(model.arena_bytes());
        let mut outs = std::collections::BTreeSet::new();
        for seed in 0..8 {
            let mut out = vec![0i8; shape.horizon * shape.outputs];
            let x = window_i8(&shape, seed);
            model
                .forecast_i8(
                    &x,
                    shape.horizon,
                    bytes(&mut state),
                    bytes(&mut arena),
                    &mut out,
                )
                .unwrap();
            outs.insert(out);
        }
        assert!(
            outs.len() > 4,
            "{cell:?}: {} distinct forecasts of 8",
            outs.len()
        );
    }
}

#[test]
fn arena_and_state_are_exact() {
    let shape = Shape::small(Cell::Lstm);
    let (h, n, o, a) = (shape.hidden, shape.window, shape.outputs, shape.attention);
    let blob = int8_blob(&shape, 1).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    // LSTM state: 2 layers (the decoder continues the last), h and c in int16; then the
    // previous output (rounded to 4) and the step count.
    assert_eq!(model.state_bytes(), 2 * 2 * h * 2 + o.div_ceil(4) * 4 + 4);
    // Work buffers (2 x widest tensor, 4-byte rounded), gate scratch
    // (2 x 4h i32 + h widened to 16-bit pairs), then the encoder outputs,
    // the scores and the int8 path's accumulators, [ctx; q] and a.
    let work = (2 * h).div_ceil(4) * 4;
    let gates = 2 * 4 * h * 4 + 2 * h.div_ceil(4) * 4;
    let decoder =
        (n * h).div_ceil(4) * 4 + 4 * (n + h) + (2 * h).div_ceil(4) * 4 + a.div_ceil(4) * 4;
    assert_eq!(model.arena_bytes(), work + gates + decoder);
    let mut state = aligned(model.state_bytes());
    let mut arena = aligned(model.arena_bytes());
    let x = window_i8(&shape, 2);
    let mut out = vec![0i8; shape.horizon * o];
    let arena = bytes(&mut arena);
    let short = arena.len() - 1;
    assert_eq!(
        model.forecast_i8(&x, 1, bytes(&mut state), &mut arena[..short], &mut out),
        Err(Error::ArenaTooSmall {
            needed: model.arena_bytes(),
            given: short
        })
    );
    let short = model.state_bytes() - 1;
    assert_eq!(
        model.forecast_i8(&x, 1, &mut bytes(&mut state)[..short], arena, &mut out),
        Err(Error::StateTooSmall {
            needed: model.state_bytes(),
            given: short
        })
    );
}

#[test]
fn bad_calls_have_named_errors() {
    let shape = Shape::small(Cell::Gru);
    let m = F32Model::random(shape.clone(), 3);
    let blob = m.blob().unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    let mut state = aligned(model.state_bytes());
    let mut arena = aligned(model.arena_bytes());
    let (s, a) = (bytes(&mut state), bytes(&mut arena));
    let x = window(&shape, 1);
    let mut out = vec![0.0; shape.horizon * shape.outputs];
    let range = |given| {
        Err(Error::HorizonOutOfRange {
            max: shape.horizon,
            given,
        })
    };
    assert_eq!(model.forecast_f32(&x, 0, s, a, &mut out), range(0));
    assert_eq!(
        model.forecast_f32(&x, shape.horizon + 1, s, a, &mut out),
        range(shape.horizon + 1)
    );
    assert_eq!(
        model.forecast_f32(&x, shape.horizon, s, a, &mut out[1..]),
        Err(Error::OutputTooSmall {
            needed: shape.horizon * shape.outputs,
            given: shape.horizon * shape.outputs - 1
        })
    );
    assert_eq!(
        model.forecast_f32(&x[1..], 1, s, a, &mut out),
        Err(Error::WrongInputLength {
            expected: x.len(),
            given: x.len() - 1
        })
    );
    let mut q = vec![0i8; x.len()];
    assert_eq!(
        model.forecast_i8(&q, 1, s, a, &mut q.clone()),
        Err(Error::WrongNumericPath)
    );
    q.clear();
    // The recurrent API's answer step is not the decoder's.
    assert_eq!(model.finish_f32(s, a).err(), Some(Error::Seq2Seq));
    assert_eq!(model.run_f32(&x[..3], a).err(), Some(Error::Recurrent));
    // Models without a decoder, and no model at all.
    assert_eq!(
        Model::empty().forecast_f32(&x, 1, s, a, &mut out),
        Err(Error::NotLoaded)
    );
    assert_eq!(Model::empty().horizon(), 0);
}

#[test]
fn a_model_without_decoder_is_not_seq2seq() {
    let shape = Shape::small(Cell::Lstm);
    let m = F32Model::random(shape.clone(), 4);
    let cells = le(&m.cells[0]);
    let (offset, scale) = (le(&m.offset), le(&m.scale));
    let header = ModelHeader {
        numeric: Numeric::F32,
        input_len: 3,
        output_len: shape.hidden as u32,
        arena_bytes: 0,
        layer_count: 0,
        input_offset: &offset,
        input_scale: &scale,
        input_quant: None,
        output_quant: None,
    };
    let layers = [LayerDef::RecurrentF32 {
        cell: Cell::Lstm,
        inputs: 3,
        hidden: shape.hidden as u32,
        params: &cells,
    }];
    let blob = seal(header, &layers).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    assert!(!model.is_seq2seq());
    let mut state = aligned(model.state_bytes());
    let mut arena = aligned(model.arena_bytes());
    let (s, a) = (bytes(&mut state), bytes(&mut arena));
    assert_eq!(model.encode_f32(&[0.0; 3], s, a), Err(Error::NotSeq2Seq));
    assert_eq!(model.decode_f32(s, a).err(), Some(Error::NotSeq2Seq));
    assert_eq!((model.window(), model.horizon()), (0, 0));
}

/// Build with `edit` applied to the decoder and expect `error` at load.
fn rejects(shape: &Shape, edit: impl FnOnce(&mut LayerDef<'_>), error: Error) {
    assert_eq!(int8_blob_with(shape, 7, edit).err(), Some(error));
}

#[test]
fn malformed_decoders_have_named_errors() {
    let shape = Shape::small(Cell::Lstm);
    let at = shape.layers as u32;
    let set = |f: fn(&mut u32, &mut u32, &mut u32, &mut Cell)| {
        move |d: &mut LayerDef<'_>| {
            if let LayerDef::DecoderI8 {
                horizon,
                hidden,
                attention,
                cell,
                ..
            } = d
            {
                f(horizon, hidden, attention, cell);
            }
        }
    };
    // A decoder width that does not match the encoder.
    rejects(
        &shape,
        set(|_, h, _, _| *h += 1),
        Error::DecoderMismatch { layer: at },
    );
    // Another cell kind than the encoder's.
    rejects(
        &shape,
        set(|_, _, _, c| *c = Cell::Gru),
        Error::DecoderMismatch { layer: at },
    );
    // An attention width that does not match the combine layer.
    rejects(
        &shape,
        set(|_, _, a, _| *a += 1),
        Error::AttentionMismatch { layer: at },
    );
    // A horizon of 0.
    rejects(
        &shape,
        set(|n, _, _, _| *n = 0),
        Error::DimensionOutOfRange {
            layer: at,
            value: 0,
        },
    );
    // A feedback channel past the input.
    rejects(
        &shape,
        |d| {
            if let LayerDef::DecoderI8 { feedback, .. } = d {
                *feedback = &[3, 0, 0, 0];
            }
        },
        Error::ShapeMismatch { layer: at },
    );
    // Keys with a zero point (the encoder's last output is not symmetric).
    rejects(
        &shape,
        |d| {
            if let LayerDef::DecoderI8 { context, .. } = d {
                context.zero_point = 1;
            }
        },
        Error::AttentionMismatch { layer: at },
    );
}

#[test]
fn a_decoder_in_the_wrong_place_is_a_mismatch() {
    let m = F32Model::random(Shape::small(Cell::Rnn), 8);
    let blob = m.blob().unwrap();
    let (header, layers) = {
        let envelope: runtime::format::Envelope = postcard::from_bytes(&blob).unwrap();
        let (header, mut rest) =
            postcard::take_from_bytes::<ModelHeader>(envelope.payload).unwrap();
        let mut layers = Vec::new();
        while !rest.is_empty() {
            let (l, tail) = postcard::take_from_bytes::<LayerDef>(rest).unwrap();
            layers.push(l);
            rest = tail;
        }
        (header, layers)
    };
    let decoder = *layers.last().unwrap();
    // No encoder at all.
    let mut h = header;
    h.layer_count = 1;
    h.input_len = m.shape.hidden as u32;
    let offset = le(&vec![0.0; m.shape.hidden]);
    h.input_offset = &offset;
    h.input_scale = &offset;
    assert_eq!(
        seal(h, &[decoder]).err(),
        Some(Error::DecoderMismatch { layer: 0 })
    );
    // A layer after the decoder.
    let mut more = layers.clone();
    more.push(LayerDef::ActivationF32(runtime::format::Activation::Relu));
    assert_eq!(
        seal(header, &more).err(),
        Some(Error::DecoderMismatch {
            layer: m.shape.layers as u32
        })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any state bytes (stale, garbage, a step count anywhere): decoding
    /// answers with values or a named error, never a panic.
    #[test]
    fn any_state_decodes_or_says_why(state in prop::collection::vec(any::<u32>(), 64), f32_path in any::<bool>()) {
        let shape = Shape::small(Cell::Lstm);
        let blob = if f32_path {
            F32Model::random(shape.clone(), 9).blob().unwrap()
        } else {
            int8_blob(&shape, 9).unwrap()
        };
        let model = Model::from_bytes(&blob).unwrap();
        prop_assume!(state.len() * 4 >= model.state_bytes());
        let mut state = state;
        let mut arena = aligned(model.arena_bytes());
        for _ in 0..3 {
            let r = if f32_path {
                model.decode_f32(bytes(&mut state), bytes(&mut arena)).map(|_| ())
            } else {
                model.decode_i8(bytes(&mut state), bytes(&mut arena)).map(|_| ())
            };
            match r {
                Ok(()) | Err(Error::HorizonOutOfRange { .. }) => {}
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
