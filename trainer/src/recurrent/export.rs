//! The f32 blob of a recurrent model: its `RecurrentF32` layers (params
//! `W_input, W_hidden, bias_input, bias_hidden`, f32 LE), then the dense
//! head's layers.

use anyhow::Result;

use crate::blob::{self, Blob};
use crate::recurrent::model::SequenceModel;

/// The f32 blob.
pub fn f32_blob(model: &SequenceModel) -> Result<Blob> {
    let mut layers: Vec<blob::Layer> = model.layers.iter().map(|p| p.f32_layer()).collect();
    layers.extend(model.head.f32_layers()?);
    Ok(Blob::f32(
        model.normalization.clone(),
        model.output_len(),
        layers,
    ))
}
