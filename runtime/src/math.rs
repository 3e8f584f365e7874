//! Float functions used by the f32 path.
//!
//! By default these are `libm`, the same code on host and target, so results
//! agree bit for bit. The `fast-math` feature swaps in `micromath`'s
//! approximations: smaller and faster on a Cortex-M, but no longer identical to
//! the trainer's reference within 1e-4.

#[cfg(not(feature = "fast-math"))]
mod imp {
    /// `e^x`.
    #[inline]
    pub fn exp(x: f32) -> f32 {
        libm::expf(x)
    }
    /// Hyperbolic tangent.
    #[inline]
    pub fn tanh(x: f32) -> f32 {
        libm::tanhf(x)
    }
    /// Error function.
    #[inline]
    pub fn erf(x: f32) -> f32 {
        libm::erff(x)
    }
    /// Square root.
    #[inline]
    pub fn sqrt(x: f32) -> f32 {
        libm::sqrtf(x)
    }
}

#[cfg(feature = "fast-math")]
mod imp {
    use micromath::F32Ext;
    /// `e^x`.
    #[inline]
    pub fn exp(x: f32) -> f32 {
        x.exp()
    }
    /// Hyperbolic tangent.
    #[inline]
    pub fn tanh(x: f32) -> f32 {
        // tanh(x) = 1 - 2 / (exp(2x) + 1); clamp keeps exp finite.
        let x = x.clamp(-15.0, 15.0);
        1.0 - 2.0 / ((2.0 * x).exp() + 1.0)
    }
    /// Square root.
    #[inline]
    pub fn sqrt(x: f32) -> f32 {
        x.sqrt()
    }
    /// Error function.
    #[inline]
    pub fn erf(x: f32) -> f32 {
        // Abramowitz-Stegun 7.1.26, |error| < 1.5e-7.
        let sign = if x < 0.0 { -1.0 } else { 1.0 };
        let x = x.abs();
        let t = 1.0 / (1.0 + 0.327_591_1 * x);
        let poly = t
            * (0.254_829_6
                + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
        sign * (1.0 - poly * (-x * x).exp())
    }
}

pub use imp::{erf, exp, sqrt, tanh};

/// Index of the first largest element; NaN never wins. 0 for an empty slice.
pub fn argmax<T: PartialOrd + Copy>(values: &[T]) -> usize {
    let mut best = 0;
    let mut best_value: Option<T> = None;
    for (i, &v) in values.iter().enumerate() {
        let better = match best_value {
            None => v.partial_cmp(&v).is_some(), // false only for NaN
            Some(b) => v > b,
        };
        if better {
            best = i;
            best_value = Some(v);
        }
    }
    best
}
