//! Clamping and local differential-privacy noise.
//!
//! A contributing node clamps each bandwidth figure to `[0, cap]` and adds
//! Laplace noise of scale `cap / epsilon` before the value leaves the node
//! (local DP): one node can move a published total by at most `cap`, so
//! `cap` is the sensitivity. Receivers never re-noise, which keeps the CRDT
//! convergent.

use rand_core::RngCore;

/// Largest bandwidth figure a contribution may carry (2^53, exactly
/// representable as f64). Noised values are clamped to it and decoders
/// reject larger ones, so one entry cannot overflow a total on its own.
pub const MAX_REPORTED_BANDWIDTH: u64 = 1 << 53;

/// `v` bounded to `[0, cap]`.
pub fn clamp(v: u64, cap: u64) -> u64 {
    v.min(cap)
}

/// A uniform f64 in `[0, 1)` from the top 53 bits of one `next_u64`.
fn uniform<R: RngCore + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// One sample of Laplace(0, `scale`) by inverse CDF:
/// `−scale · sgn(u) · ln(1 − 2|u|)` with `u` uniform in `(−½, ½)`.
/// Returns 0 for a non-positive or non-finite scale.
pub fn laplace<R: RngCore + ?Sized>(rng: &mut R, scale: f64) -> f64 {
    if !(scale > 0.0 && scale.is_finite()) {
        return 0.0;
    }
    // u = −½ exactly (probability 2^−53) would give ln(0); draw again. Four
    // straight hits have probability 2^−212; fall back to no noise then.
    for _ in 0..4 {
        let u = uniform(rng) - 0.5;
        if u > -0.5 {
            return -scale * u.signum() * (1.0 - 2.0 * u.abs()).ln();
        }
    }
    0.0
}

/// Clamps `value` to `[0, cap]`, adds Laplace noise of scale `cap/epsilon`
/// when `epsilon > 0`, rounds to the nearest integer and bounds the result
/// to `[0, MAX_REPORTED_BANDWIDTH]`.
pub fn noisy_bandwidth<R: RngCore + ?Sized>(
    rng: &mut R,
    value: u64,
    cap: u64,
    epsilon: f64,
) -> u64 {
    let clamped = clamp(value, cap).min(MAX_REPORTED_BANDWIDTH);
    if !(epsilon > 0.0 && epsilon.is_finite()) || cap == 0 {
        return clamped;
    }
    let noisy = clamped as f64 + laplace(rng, cap as f64 / epsilon);
    // `as u64` saturates (negative → 0, NaN → 0).
    (noisy.round() as u64).min(MAX_REPORTED_BANDWIDTH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn clamp_bounds() {
        assert_eq!(clamp(5, 10), 5);
        assert_eq!(clamp(50, 10), 10);
        assert_eq!(clamp(50, 0), 0);
    }

    #[test]
    fn no_noise_when_epsilon_is_not_positive() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for eps in [0.0, -1.0, f64::NAN] {
            assert_eq!(noisy_bandwidth(&mut rng, 1234, 1 << 20, eps), 1234);
            assert_eq!(noisy_bandwidth(&mut rng, u64::MAX, 1 << 20, eps), 1 << 20);
        }
    }

    #[test]
    fn noise_perturbs_values() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let differing = (0..50)
            .filter(|_| noisy_bandwidth(&mut rng, 1000, 1 << 20, 0.5) != 1000)
            .count();
        assert!(differing >= 45, "{differing}");
    }

    #[test]
    fn laplace_has_zero_mean_and_scale_mean_absolute_deviation() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let n = 40_000;
        let scale = 10.0;
        let samples: Vec<f64> = (0..n).map(|_| laplace(&mut rng, scale)).collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let mad = samples.iter().map(|x| x.abs()).sum::<f64>() / n as f64;
        // Var = 2·scale², so the std error of the mean is ≈ 0.07; E|X| = scale.
        assert!(mean.abs() < 0.3, "mean {mean}");
        assert!((mad - scale).abs() < 0.3, "mean abs deviation {mad}");
        assert!(samples.iter().any(|&x| x < 0.0) && samples.iter().any(|&x| x > 0.0));
    }

    #[test]
    fn noisy_values_are_floored_at_zero_and_capped() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let mut zeros = 0;
        for _ in 0..200 {
            let v = noisy_bandwidth(&mut rng, 0, 1 << 30, 1.0);
            assert!(v <= MAX_REPORTED_BANDWIDTH);
            if v == 0 {
                zeros += 1;
            }
        }
        // Half of the draws are negative and must floor at zero.
        assert!((60..=140).contains(&zeros), "{zeros}");
    }
}
