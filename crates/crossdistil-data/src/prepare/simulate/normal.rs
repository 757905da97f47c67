//! The standard normal distribution function, for the Bayes probabilities and the thresholds.

/// `Φ(x) = P(Z <= x)` for `Z ~ N(0, 1)`, as `erfc(-x / √2) / 2`, with the Chebyshev fit of
/// `erfc` of Numerical Recipes (§6.2, `erfcc`): relative error below 1.2e-7 everywhere, tails
/// included (so `Φ(-8) ≈ 6.2e-16` keeps its digits).
pub(crate) fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function, relative error below 1.2e-7.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::normal_cdf;

    #[test]
    fn known_values() {
        // Φ at a few points, from tables (15 digits).
        for (x, want) in [
            (0.0, 0.5),
            (1.0, 0.841_344_746_068_543),
            (-1.0, 0.158_655_253_931_457),
            (1.959_963_984_540_054, 0.975),
            (-3.0, 0.001_349_898_031_630_1),
            (-6.0, 9.865_876_450_377e-10),
        ] {
            let got = normal_cdf(x);
            assert!(
                ((got - want) / want).abs() < 2e-7,
                "Φ({x}) = {got}, want {want}"
            );
        }
        assert_eq!(normal_cdf(f64::INFINITY), 1.0);
        assert_eq!(normal_cdf(f64::NEG_INFINITY), 0.0);
    }
}
