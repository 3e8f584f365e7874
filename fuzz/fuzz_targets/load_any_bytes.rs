//! Any bytes given to the loader: an error or a model, never a panic; a
//! model that loads must then run on zero input without an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runtime::Model;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = Model::from_bytes(data) {
        let result = runtime_fuzz::run_any(&model, &[]);
        assert!(result.is_ok(), "a model that loads must run: {result:?}");
    }
});
