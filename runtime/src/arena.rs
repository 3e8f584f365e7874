//! Working memory for inference, sized by the caller.

/// `N` bytes of 4-byte-aligned working memory, the size a model's exporter
/// wrote as its arena constant. Put one in a `static` (or on the stack) and
/// pass [`Arena::as_mut_bytes`] to `run_f32` / `run_i8`.
#[repr(C, align(4))]
#[derive(Debug)]
pub struct Arena<const N: usize>([u8; N]);

impl<const N: usize> Arena<N> {
    /// A zeroed arena (usable in `static` initialisers).
    pub const fn new() -> Self {
        Arena([0; N])
    }

    /// The arena's bytes, as the `run_*` functions take them.
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}
