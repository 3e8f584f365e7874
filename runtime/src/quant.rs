//! Integer arithmetic of the int8 path, and the host-side helpers that derive
//! its parameters.
//!
//! Everything used during inference here is integer-only and runs on cores
//! without an FPU. [`quantize_multiplier`] is for exporters (it uses floats).

/// Rescale an int32 value by the fixed-point ratio `multiplier / 2^shift`,
/// rounding half up. `shift` must be in `1..=62` and `multiplier` in
/// `[0, 2^31)` (the loader checks both); the result saturates to `i32`.
#[inline]
pub fn rescale(value: i32, multiplier: i32, shift: u8) -> i32 {
    let product = i64::from(value) * i64::from(multiplier);
    if shift >= 33 {
        // Same result with 32-bit arithmetic on the product's high word: the
        // rounding constant 2^(shift-1) lies wholly in the high word, and the
        // low word cannot change floor(.. / 2^shift). |high| < 2^30, so
        // neither the add nor the result can overflow. This is the usual case
        // (scale ratios below 1/2) and saves the 64-bit shifts and clamp.
        // Rounding half up by `k = shift - 32` bits as `((h >> (k - 1)) + 1) >> 1`:
        // the same value (the bits below `k - 1` cannot carry into bit `k`)
        // with one variable shift.
        let high = (product >> 32) as i32;
        return ((high >> (shift - 33)) + 1) >> 1;
    }
    let half = 1i64.wrapping_shl(u32::from(shift).wrapping_sub(1));
    let rounded = product.wrapping_add(half).wrapping_shr(u32::from(shift));
    rounded.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Clamp to the int8 range.
#[inline]
pub fn saturate_i8(value: i32) -> i8 {
    value.clamp(-128, 127) as i8
}

/// Whether `(multiplier, shift)` is a valid fixed-point ratio for [`rescale`].
pub fn is_valid_multiplier(multiplier: i32, shift: u8) -> bool {
    (1..=62).contains(&shift) && (multiplier == 0 || multiplier >= 1 << 30)
}

/// The fixed-point form `(multiplier, shift)` of a non-negative real ratio, or
/// `None` if the ratio is negative, not finite, or too large (above 2^30).
/// Ratios below 2^-31 round to zero.
pub fn quantize_multiplier(ratio: f64) -> Option<(i32, u8)> {
    if !ratio.is_finite() || ratio < 0.0 {
        return None;
    }
    if ratio == 0.0 {
        return Some((0, 1));
    }
    let (mantissa, exponent) = libm::frexp(ratio); // ratio = mantissa * 2^exponent, mantissa in [0.5, 1)
    let mut m = libm::round(mantissa * (1u64 << 31) as f64) as i64;
    let mut e = exponent;
    if m == 1 << 31 {
        m /= 2;
        e += 1;
    }
    let shift = 31 - e;
    if shift < 1 {
        return None;
    }
    if shift > 62 {
        return Some((0, 1));
    }
    Some((m as i32, shift as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_round_trips_within_one_part_in_2_pow_30() {
        for &r in &[1e-6, 0.0123, 0.5, 0.75, 1.0, 3.7, 1000.0] {
            let (m, s) = quantize_multiplier(r).unwrap();
            assert!(is_valid_multiplier(m, s));
            let back = m as f64 / (1u64 << s) as f64;
            assert!((back - r).abs() / r < 1e-9, "{r} -> {back}");
        }
        assert_eq!(quantize_multiplier(0.0), Some((0, 1)));
        assert_eq!(quantize_multiplier(-1.0), None);
        assert_eq!(quantize_multiplier(f64::NAN), None);
    }

    /// The 64-bit definition that `rescale` must equal for every shift.
    fn rescale_reference(value: i32, multiplier: i32, shift: u8) -> i32 {
        let product = i64::from(value) * i64::from(multiplier);
        let rounded = (product + (1i64 << (shift - 1))) >> shift;
        rounded.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }

    #[test]
    fn rescale_equals_its_64_bit_definition() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..1_000_000 {
            let r = next();
            let value = match r % 4 {
                0 => i32::MIN,
                1 => i32::MAX,
                _ => r as i32 >> (r >> 59),
            };
            let multiplier = (1 << 30) | ((r >> 32) as i32 & 0x3fff_ffff);
            let shift = 1 + (next() % 62) as u8;
            assert_eq!(
                rescale(value, multiplier, shift),
                rescale_reference(value, multiplier, shift),
                "{value} {multiplier} {shift}"
            );
            assert_eq!(rescale(value, 0, shift), 0);
        }
    }

    #[test]
    fn rescale_rounds_half_up_and_saturates() {
        let (m, s) = quantize_multiplier(0.5).unwrap();
        assert_eq!(rescale(3, m, s), 2); // 1.5 -> 2
        assert_eq!(rescale(-3, m, s), -1); // -1.5 -> -1
        assert_eq!(rescale(4, m, s), 2);
        let (m, s) = quantize_multiplier(1000.0).unwrap();
        assert_eq!(rescale(i32::MAX, m, s), i32::MAX);
        assert_eq!(saturate_i8(300), 127);
        assert_eq!(saturate_i8(-300), -128);
    }
}
