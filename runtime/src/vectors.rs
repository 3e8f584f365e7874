//! Test vectors: inputs, the host runtime's outputs and true labels, in the
//! layout the firmware embeds and checks against.
//!
//! Encoded with postcard, like models. For f32 models inputs are raw f32 (LE)
//! and outputs f32; for int8 models inputs are already-quantized i8 (so the
//! chip does integer work only) and outputs i8.
//!
//! **Sequence vectors** (recurrent models) have `input_len` = channels per
//! step and, after the encoded struct, a postcard byte string of `count` u32
//! (LE) step counts ([`TestVectors::steps`]); `inputs` then holds vector after
//! vector, `steps(i) * input_len` elements each. Files without the trailer are
//! one step per vector, as before. Encode with [`TestVectors::encode_steps`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::Numeric;
use crate::kernels::le_f32;

/// A borrowed set of test vectors.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct TestVectors<'a> {
    /// Element type of `inputs` and `expected`.
    pub numeric: Numeric,
    /// Number of vectors.
    pub count: u32,
    /// Values per input.
    pub input_len: u32,
    /// Values per output.
    pub output_len: u32,
    /// `count * input_len` elements.
    #[serde(borrow)]
    pub inputs: &'a [u8],
    /// `count * output_len` elements: what the host runtime produced.
    #[serde(borrow)]
    pub expected: &'a [u8],
    /// `count` true class labels (u16 LE).
    #[serde(borrow)]
    pub labels: &'a [u8],
    /// Sequence vectors: `count` step counts (u32 LE), encoded after the struct.
    #[serde(skip)]
    pub steps: Option<&'a [u8]>,
}

impl<'a> TestVectors<'a> {
    fn element_bytes(&self) -> usize {
        match self.numeric {
            Numeric::F32 => 4,
            Numeric::Int8 => 1,
        }
    }

    /// Decode and check that every array has the length the counts imply.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        let (mut v, rest): (Self, _) = postcard::take_from_bytes(bytes)?;
        let rest = if rest.is_empty() {
            rest
        } else {
            let (steps, tail): (&'a [u8], _) = postcard::take_from_bytes(rest)?;
            v.steps = Some(steps);
            tail
        };
        let e = v.element_bytes();
        let (n, i, o) = (
            v.count as usize,
            v.input_len as usize,
            v.output_len as usize,
        );
        let total_steps = match v.steps {
            None => Some(n),
            Some(s) if s.len() == n.saturating_mul(4) => {
                s.chunks_exact(4).try_fold(0usize, |acc, c| {
                    acc.checked_add(crate::kernels::le_u32(c) as usize)
                })
            }
            Some(_) => None,
        };
        let Some(total_steps) = total_steps else {
            return Err(Error::Malformed);
        };
        let ok = rest.is_empty()
            && v.inputs.len() == total_steps.saturating_mul(i).saturating_mul(e)
            && v.expected.len() == n.saturating_mul(o).saturating_mul(e)
            && v.labels.len() == n.saturating_mul(2);
        if ok {
            Ok(v)
        } else {
            Err(Error::Malformed)
        }
    }

    /// Time steps of vector `index` (1 unless these are sequence vectors).
    pub fn steps(&self, index: usize) -> usize {
        match self.steps {
            None => 1,
            Some(s) => s
                .get(4 * index..4 * index + 4)
                .map_or(0, |c| crate::kernels::le_u32(c) as usize),
        }
    }

    /// Bytes of input `index` (all its steps).
    pub fn input_bytes(&self, index: usize) -> &'a [u8] {
        let len = self.input_len as usize * self.element_bytes();
        let start = match self.steps {
            None => index,
            Some(_) => (0..index).map(|i| self.steps(i)).sum(),
        };
        self.inputs
            .get(start * len..(start + self.steps(index)) * len)
            .unwrap_or(&[])
    }

    /// The trailer of sequence vectors: `steps` as a postcard byte string of
    /// u32 LE, written into `out` (append it after the encoded struct).
    /// Returns the bytes written; `scratch` must hold `4 * steps.len()` bytes.
    pub fn encode_steps(steps: &[u32], scratch: &mut [u8], out: &mut [u8]) -> Result<usize> {
        let bytes = scratch.get_mut(..4 * steps.len()).ok_or(Error::Truncated)?;
        for (c, s) in bytes.chunks_exact_mut(4).zip(steps) {
            c.copy_from_slice(&s.to_le_bytes());
        }
        let bytes: &[u8] = bytes;
        Ok(postcard::to_slice(&bytes, out)?.len())
    }

    /// Bytes of expected output `index`.
    pub fn expected_bytes(&self, index: usize) -> &'a [u8] {
        let len = self.output_len as usize * self.element_bytes();
        self.expected
            .get(index * len..(index + 1) * len)
            .unwrap_or(&[])
    }

    /// Label of vector `index`.
    pub fn label(&self, index: usize) -> u16 {
        match self.labels.get(2 * index..2 * index + 2) {
            Some(&[a, b]) => u16::from_le_bytes([a, b]),
            _ => 0,
        }
    }

    /// Decode f32 input `index` into `out` (which must hold `input_len` values).
    pub fn input_f32(&self, index: usize, out: &mut [f32]) {
        for (dst, c) in out.iter_mut().zip(self.input_bytes(index).chunks_exact(4)) {
            *dst = le_f32(c);
        }
    }

    /// int8 input `index`.
    pub fn input_i8(&self, index: usize) -> &'a [i8] {
        bytemuck::cast_slice(self.input_bytes(index))
    }
}
