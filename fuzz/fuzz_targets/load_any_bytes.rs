//! Any bytes given to the loader: an error or a model, never a panic; a
//! model that loads must then run on zero input without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runtime::{Model, Numeric};

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = Model::from_bytes(data) {
        let mut words = vec![0u32; model.arena_bytes().div_ceil(4)];
        let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        let result = match model.numeric() {
            Numeric::F32 => model
                .run_f32(&vec![0.0; model.input_len()], arena)
                .map(|_| ()),
            Numeric::Int8 => model.run_i8(&vec![0; model.input_len()], arena).map(|_| ()),
        };
        assert!(result.is_ok(), "a model that loads must run: {result:?}");
    }
});
