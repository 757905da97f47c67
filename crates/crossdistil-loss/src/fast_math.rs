//! Branch-free `f32` versions of `exp` and `ln_1p` for the pair loss's inner loop.
//!
//! The pair loss evaluates `softplus(-d)` and `sigmoid(-d)` for every pair of rows, a million
//! pairs per batch; through libm's scalar `expf` and `log1pf` that was the largest cost of
//! CrossDistil (docs/performance.md). These are plain polynomials with no branches and no
//! calls, so a loop over them vectorises; both are within a few units in the last place of
//! libm (the tests below bound them).

/// `1.5 * 2^23`: adding it rounds an `f32` of magnitude below `2^22` to an integer, which then
/// sits in the low bits of the sum's mantissa.
const ROUND: f32 = 12_582_912.0;

/// `e^{-a}` for `a >= 0` (and NaN for NaN); `a` beyond 87 gives `e^{-87}`, about `1.6e-38`.
///
/// Cody-Waite reduction `-a = n ln 2 + r` with `|r| <= ln 2 / 2`, the minimax polynomial of
/// Cephes' `expf` for `e^r`, and `2^n` built in the exponent bits.
#[inline(always)]
pub(crate) fn exp_neg(a: f32) -> f32 {
    let x = -a;
    let x = if x < -87.0 { -87.0 } else { x };
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let n_bits = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let er = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n_bits + 127) as u32) << 23);
    er * scale
}

/// `ln(1 + e)` for `0 <= e <= 1`.
///
/// `ln(1 + e) = 2 atanh(s)` with `s = e / (2 + e)` in `[0, 1/3]`, summed to `s^13`; forming `s`
/// this way keeps full relative precision for tiny `e`, where `1 + e` would round to 1.
#[inline(always)]
pub(crate) fn ln_1p_unit(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let z = s * s;
    let p = ((((((1.0 / 13.0) * z + 1.0 / 11.0) * z + 1.0 / 9.0) * z + 1.0 / 7.0) * z + 1.0 / 5.0)
        * z
        + 1.0 / 3.0)
        * z
        + 1.0;
    2.0 * s * p
}

/// `(softplus(-d), sigmoid(-d))`, the BPR pair loss of a difference `d` and minus its
/// derivative: `softplus(-d) = max(-d, 0) + ln(1 + e^{-|d|})`, and `sigmoid(-d)` from the same
/// `e^{-|d|}`.
#[inline(always)]
pub(crate) fn bpr(d: f32) -> (f32, f32) {
    let e = exp_neg(d.abs());
    let relu = if -d > 0.0 { -d } else { 0.0 };
    let inv = 1.0 / (1.0 + e);
    let sig = if d >= 0.0 { e * inv } else { inv };
    (relu + ln_1p_unit(e), sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f32, b: f64) -> f64 {
        ((a as f64 - b) / b.abs().max(f64::MIN_POSITIVE)).abs()
    }

    #[test]
    fn exp_neg_is_within_a_few_ulps() {
        let mut worst = 0.0f64;
        for i in 0..=870_000 {
            let a = i as f32 * 1e-4;
            worst = worst.max(rel(exp_neg(a), (-(a as f64)).exp()));
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_neg(0.0), 1.0);
        assert!(exp_neg(1e6) > 0.0 && exp_neg(1e6) < 2e-38);
        assert!(exp_neg(f32::INFINITY) < 2e-38);
        assert!(exp_neg(f32::NAN).is_nan());
    }

    #[test]
    fn ln_1p_is_within_a_few_ulps_down_to_tiny_arguments() {
        let mut worst = 0.0f64;
        for i in 0..=1_000_000 {
            let e = i as f32 * 1e-6;
            if e > 0.0 {
                worst = worst.max(rel(ln_1p_unit(e), (e as f64).ln_1p()));
            }
        }
        for p in 1..38 {
            let e = 10f32.powi(-p);
            worst = worst.max(rel(ln_1p_unit(e), (e as f64).ln_1p()));
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(ln_1p_unit(0.0), 0.0);
    }

    #[test]
    fn bpr_matches_the_f64_formulas() {
        for i in -20_000..=20_000 {
            let d = i as f32 * 5e-3;
            let (f, s) = bpr(d);
            let d64 = d as f64;
            let want_f = (-d64).max(0.0) + (-d64.abs()).exp().ln_1p();
            let want_s = 1.0 / (1.0 + d64.exp());
            assert!(
                (f as f64 - want_f).abs() <= 4e-7 * want_f.max(1.0),
                "softplus({d})"
            );
            // Below e^{-87} the clamp of `exp_neg` answers e^{-87}: harmless, and absolute.
            assert!(
                (s as f64 - want_s).abs() <= 4e-7 * want_s + 2e-38,
                "sigmoid({d})"
            );
        }
        let (f, s) = bpr(1000.0);
        assert!(f < 1e-30 && s < 1e-30);
        let (f, s) = bpr(-1000.0);
        assert_eq!((f, s), (1000.0, 1.0));
    }
}
