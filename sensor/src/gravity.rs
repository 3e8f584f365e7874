//! Gravity in the accelerometer channels.
//!
//! BasicMotions' accelerometer channels are gravity-free (standing still they
//! average 0.1-0.3 m/s² on every axis, not 9.8 m/s² on one; see the crate
//! docs): the watch reported linear acceleration. An MPU-6050 measures
//! specific force, gravity included, so a board that feeds it raw shifts the
//! accelerometer channels by up to 9.8 m/s², one to two of the training
//! data's standard deviations, depending on how the board is held.
//!
//! [`GravityFilter`] is the simplest correction: a running estimate of
//! gravity per axis (an exponential moving average), subtracted. It is an
//! approximation of what the watch did (its gravity came from sensor fusion,
//! with the gyroscope): it also takes out acceleration that stays constant
//! for several seconds, such as the mean centripetal pull of a swinging arm
//! that shows as a non-zero mean in the Running series, and while the board
//! turns, the estimate lags behind gravity's direction.
//!
//! What it costs, measured (`sensor/tests/replay.rs`, figures printed with
//! `--nocapture`): the 40 BasicMotions test series with a constant 1 g added,
//! played through the pipeline to the LSTM (int8 and f32 alike), classify
//! 25/40 with gravity left in, 35/40 with it subtracted over 6 samples, and
//! 40/40 on the gravity-free data. Averaging over 2, 4, 10, 20, 50, 100 or
//! 1000 samples gave 21 to 34/40, whatever the direction of the added 1 g
//! (the filter is linear and seeded from the first sample). A board held
//! still while it turns is not simulated; a gyro-aided (fusion) estimate,
//! as the watch had, would do better than any of these.
//!
//! The arithmetic, exactly (so a test can repeat it bit for bit): on the
//! first sample after a reset `estimate = accel`; after that
//! `estimate = estimate + k * (accel - estimate)` per axis with
//! `k = 1 / samples` (rounded to f32 once); the output is
//! `accel - estimate`. Plain f32 multiply/add/subtract, no `libm`, the same
//! on every target.

use core::num::NonZeroU16;

/// What the pipeline does about gravity in the accelerometer channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Gravity {
    /// Feed the accelerometer as measured: for data that is already
    /// gravity-free (a replayed dataset, a sensor hub's linear acceleration).
    AsMeasured,
    /// Subtract a running estimate ([`GravityFilter`]) that averages over
    /// about `samples` samples.
    Subtract {
        /// Averaging length in samples (`k = 1 / samples`).
        samples: NonZeroU16,
    },
}

/// A running gravity estimate per accelerometer axis (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GravityFilter {
    smoothing: f32,
    estimate: Option<[f32; 3]>,
}

impl GravityFilter {
    /// A filter averaging over about `samples` samples, empty until the first one.
    pub fn new(samples: NonZeroU16) -> Self {
        GravityFilter {
            smoothing: 1.0 / f32::from(samples.get()),
            estimate: None,
        }
    }

    /// Update the estimate with `accel` (m/s²) and return `accel` minus it.
    pub fn apply(&mut self, accel: [f32; 3]) -> [f32; 3] {
        let estimate = match self.estimate {
            None => accel,
            Some(mut e) => {
                for (e, a) in e.iter_mut().zip(accel) {
                    *e += self.smoothing * (a - *e);
                }
                e
            }
        };
        self.estimate = Some(estimate);
        let [ax, ay, az] = accel;
        let [ex, ey, ez] = estimate;
        [ax - ex, ay - ey, az - ez]
    }

    /// The current estimate (`None` before the first sample).
    pub fn estimate(&self) -> Option<[f32; 3]> {
        self.estimate
    }

    /// Forget the estimate: the next sample seeds it again.
    pub fn reset(&mut self) {
        self.estimate = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(samples: u16) -> GravityFilter {
        GravityFilter::new(NonZeroU16::new(samples).unwrap())
    }

    #[test]
    fn constant_gravity_is_removed_from_the_first_sample() {
        let mut f = filter(6);
        let g = [0.3, -1.2, 9.6];
        for _ in 0..50 {
            assert_eq!(f.apply(g), [0.0; 3]);
        }
    }

    #[test]
    fn a_step_passes_then_decays_by_one_minus_k_per_sample() {
        let mut f = filter(4);
        f.apply([0.0, 0.0, 9.8]);
        // A 2 m/s² step on x: the first output is (1 - k) of it, then (1 - k)^n.
        let mut expected = 2.0f64;
        for _ in 0..20 {
            expected *= 0.75;
            let [x, y, z] = f.apply([2.0, 0.0, 9.8]);
            assert!((f64::from(x) - expected).abs() < 1e-6, "{x} vs {expected}");
            assert_eq!((y, z), (0.0, 0.0));
        }
    }

    #[test]
    fn reset_reseeds() {
        let mut f = filter(10);
        f.apply([1.0, 2.0, 3.0]);
        f.apply([5.0, 5.0, 5.0]);
        f.reset();
        assert_eq!(f.estimate(), None);
        assert_eq!(f.apply([7.0, 8.0, 9.0]), [0.0; 3]);
        assert_eq!(f.estimate(), Some([7.0, 8.0, 9.0]));
    }
}
