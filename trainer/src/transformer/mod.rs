//! Small transformer models: classifiers (mean pooling or a class token)
//! and a causal next-value forecaster, trained with candle and exported as
//! f32 and int8 blobs of the runtime's transformer layers (format v3).
//!
//! | module | concern |
//! | --- | --- |
//! | [`spec`] | the `kind = "transformer"` spec and its validation |
//! | [`model`] | parameters, initialisation and the candle forward pass (the math contract) |
//! | [`train`] | the training loop (Adam, cosine learning rate, deterministic) |
//! | [`quantize`] | post-training int8 quantization to the runtime's integer layers |
//! | [`blob`] | owned layer definitions and the f32 blob |
//! | [`export`] | data loading, evaluation through the runtime, reports and vectors |
//!
//! A blob is `Tokens`, the token projection (`DenseF32/I8` per row) or an
//! `Embedding`, an optional `ClassToken` and `AddTable` (sinusoidal
//! positions), per block `SaveSkip, LayerNorm, Attention, AddSkip, SaveSkip,
//! LayerNorm, Dense, GELU, Dense, AddSkip`, a final `LayerNorm`, then
//! `Pool` + dense head + softmax (classifiers) or a dense head per row
//! (causal forecaster). Reported accuracies and errors always come from
//! running the exported blobs through the runtime.

pub mod blob;
pub mod export;
pub mod model;
pub mod quantize;
pub mod spec;
pub mod train;

pub use export::{export_spec, summary};
pub use model::{Config, Transformer};
pub use spec::TransformerSpec;
