//! The runtime's capacities, checked by the trainer before it reads data or
//! trains.
//!
//! The runtime has no allocator, so its loader refuses any blob beyond fixed
//! capacities (widths, layers, tokens, ...). A spec beyond them would train
//! for minutes, or until memory runs out, only for its export to fail, so
//! every spec loader checks them when it parses the spec, and every family
//! checks the widths that come from the data ([`check_data`]) as soon as the
//! data is loaded. A failure is one line naming the field and the limit,
//! e.g. `layer 1 \`dense 100000000\`: width 100000000 is above the runtime's
//! limit of 4096 (runtime::format::MAX_WIDTH)`.

use std::path::Path;

use anyhow::{bail, Result};
use runtime::format;

/// One of the runtime's capacities: its value and where the runtime defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The largest allowed value.
    pub value: usize,
    /// The runtime's name for it, quoted in errors.
    pub name: &'static str,
}

/// Largest width of any tensor (a transformer's tensor holds every token).
pub const WIDTH: Limit = Limit {
    value: format::MAX_WIDTH as usize,
    name: "runtime::format::MAX_WIDTH",
};

/// Largest tensor, in values: a model's input, a feature map
/// (`height x width x channels`).
pub const TENSOR: Limit = Limit {
    value: format::MAX_TENSOR as usize,
    name: "runtime::format::MAX_TENSOR",
};

/// Most layers of one blob.
pub const LAYERS: Limit = Limit {
    value: format::MAX_LAYERS,
    name: "runtime::format::MAX_LAYERS",
};

/// Most tokens of a transformer's sequence (class token included).
pub const TOKENS: Limit = Limit {
    value: format::MAX_TOKENS as usize,
    name: "runtime::format::MAX_TOKENS",
};

/// Most attention layers of one blob.
pub const ATTENTION_LAYERS: Limit = Limit {
    value: format::MAX_ATTENTION_LAYERS,
    name: "runtime::format::MAX_ATTENTION_LAYERS",
};

/// Largest vocabulary of an int8 embedding: its ids are the int8 input
/// values, which are non-negative.
pub const INT8_VOCAB: Limit = Limit {
    value: format::MAX_VOCAB_I8 as usize,
    name: "runtime::format::MAX_VOCAB_I8",
};

/// Most nodes of one isolation-forest tree: node indices are `u16` and
/// `LEAF` marks a leaf.
pub const TREE_NODES: Limit = Limit {
    value: runtime::kernels::classical::LEAF as usize,
    name: "runtime::kernels::classical::LEAF",
};

impl Limit {
    /// `Err("{what} {value} is above the runtime's limit of ...")` when
    /// `value` is above the limit. `what` reads naturally before the value,
    /// e.g. `"width"` or `"width 8 x 1000 ="`.
    pub fn check(self, what: &str, value: usize) -> Result<(), String> {
        if value > self.value {
            Err(format!(
                "{what} {value} is above the runtime's limit of {} ({})",
                self.value, self.name
            ))
        } else {
            Ok(())
        }
    }
}

/// Check widths that come from a dataset (`("input width", n)`,
/// `("class count", n)`) against [`WIDTH`]; the error names the file.
pub fn check_data(path: &Path, widths: &[(&str, usize)]) -> Result<()> {
    for &(what, value) in widths {
        if let Err(problem) = WIDTH.check(what, value) {
            bail!("{}: {problem}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::format::{LayerDef, ModelHeader, Numeric, Position, QuantParams};
    use runtime::{Error, Model};

    fn header<'a>(numeric: Numeric, ones: &'a [u8], layers: usize) -> ModelHeader<'a> {
        let quant = QuantParams {
            scale: 1.0,
            zero_point: 0,
        };
        let int8 = numeric == Numeric::Int8;
        ModelHeader {
            numeric,
            input_len: (ones.len() / 4) as u32,
            output_len: (ones.len() / 4) as u32,
            arena_bytes: 0,
            layer_count: layers as u32,
            input_offset: ones,
            input_scale: ones,
            input_quant: int8.then_some(quant),
            output_quant: int8.then_some(quant),
        }
    }

    #[test]
    fn message_names_the_value_and_the_limit() {
        assert_eq!(WIDTH.check("width", 4096), Ok(()));
        assert_eq!(
            WIDTH.check("width", 4097).unwrap_err(),
            "width 4097 is above the runtime's limit of 4096 (runtime::format::MAX_WIDTH)"
        );
    }

    /// The attention limit the trainer repeats is the one the runtime enforces.
    #[test]
    fn attention_layer_limit_is_the_runtimes() {
        let ones = 1.0f32.to_le_bytes().repeat(2);
        // dim 2, one head, no positions: qkv 3x2x2 + 6, out 2x2 + 2 floats.
        let params = vec![0u8; (12 + 6 + 4 + 2) * 4];
        let attention = LayerDef::AttentionF32 {
            dim: 2,
            heads: 1,
            position: Position::None,
            params: &params,
        };
        let model = |count: usize| {
            let mut layers = vec![LayerDef::Tokens {
                tokens: 1,
                causal: false,
            }];
            layers.extend(std::iter::repeat_n(attention, count));
            Model::required_arena_bytes(header(Numeric::F32, &ones, layers.len()), &layers)
        };
        assert!(model(ATTENTION_LAYERS.value).is_ok());
        assert!(matches!(
            model(ATTENTION_LAYERS.value + 1),
            Err(Error::TooManyLayers { max, .. }) if max as usize == ATTENTION_LAYERS.value
        ));
    }

    /// The int8 vocabulary limit the trainer checks is the one the runtime enforces.
    #[test]
    fn int8_vocab_limit_is_the_runtimes() {
        let ones = 1.0f32.to_le_bytes().to_vec();
        let model = |vocab: usize| {
            let table = vec![0u8; vocab];
            let layers = [
                LayerDef::Tokens {
                    tokens: 1,
                    causal: false,
                },
                LayerDef::EmbeddingI8 {
                    vocab: vocab as u32,
                    dim: 1,
                    table: &table,
                },
            ];
            Model::required_arena_bytes(header(Numeric::Int8, &ones, 2), &layers).map(|_| ())
        };
        assert_eq!(model(INT8_VOCAB.value), Ok(()));
        assert!(matches!(
            model(INT8_VOCAB.value + 1),
            Err(Error::DimensionOutOfRange { value, .. }) if value as usize == INT8_VOCAB.value + 1
        ));
    }
}
