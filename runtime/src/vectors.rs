//! Test vectors: inputs, the host runtime's outputs and true labels, in the
//! layout the firmware embeds and checks against.
//!
//! Encoded with postcard, like models. For f32 models inputs are raw f32 (LE)
//! and outputs f32; for int8 models inputs are already-quantized i8 (so the
//! chip does integer work only) and outputs i8.

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
        let (v, rest): (Self, _) = postcard::take_from_bytes(bytes)?;
        let e = v.element_bytes();
        let (n, i, o) = (
            v.count as usize,
            v.input_len as usize,
            v.output_len as usize,
        );
        let ok = rest.is_empty()
            && v.inputs.len() == n.saturating_mul(i).saturating_mul(e)
            && v.expected.len() == n.saturating_mul(o).saturating_mul(e)
            && v.labels.len() == n.saturating_mul(2);
        if ok {
            Ok(v)
        } else {
            Err(Error::Malformed)
        }
    }

    /// Bytes of input `index`.
    pub fn input_bytes(&self, index: usize) -> &'a [u8] {
        let len = self.input_len as usize * self.element_bytes();
        self.inputs
            .get(index * len..(index + 1) * len)
            .unwrap_or(&[])
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
