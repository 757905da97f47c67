//! The thresholds `t_k` that give each task its positive rate, solved on a large seeded sample
//! of the impression distribution.

use rayon::prelude::*;

use super::normal::normal_cdf;

/// Draws summed per block, in parallel, then the blocks in order: the sums do not depend on
/// the number of threads.
const BLOCK: usize = 1 << 14;

/// The most Newton or bisection steps; the solution is found in about ten.
const STEPS: usize = 200;

/// The thresholds `t_k` for `rates[k]`, from `utilities[k][m]`, task `k`'s utility on draw `m`
/// of `M` impressions of the simulated distribution.
///
/// Not nested: `t_k` solves `(1/M) Σ_m Φ((s_km − t)/σ) = r_k`. Nested: with
/// `w_km = Π_{j<k} Φ((s_jm − t_j)/σ)`, `t_k` solves `(1/M) Σ_m w_km Φ((s_km − t)/σ) = r_k`
/// (which needs `r_k` below `r_{k-1}`). The label noise enters through `Φ`, not through draws,
/// so the only error is that of the sample of impressions: the rate at the solved threshold
/// is off by about `sqrt(r(1−r)/M)` (one standard deviation). Each equation is solved by
/// Newton's method kept inside a shrinking bracket (a bisection step where Newton's would leave
/// it): the left side decreases in `t`.
pub(crate) fn solve(utilities: &[Vec<f64>], rates: &[f64], noise: f64, nested: bool) -> Vec<f64> {
    let m = utilities.first().map_or(0, Vec::len);
    let mut weight = vec![1.0f64; m];
    let mut thresholds = Vec::with_capacity(rates.len());
    for (s, &rate) in utilities.iter().zip(rates) {
        let w = if nested {
            Some(weight.as_slice())
        } else {
            None
        };
        let t = solve_one(s, w, rate, noise);
        if nested {
            weight
                .par_iter_mut()
                .zip(s)
                .for_each(|(w, &s)| *w *= normal_cdf((s - t) / noise));
        }
        thresholds.push(t);
    }
    thresholds
}

/// `(1/M) Σ_m w_m Φ((s_m − t)/σ)` (`w_m = 1` when `weight` is `None`), summed in fixed blocks.
#[cfg(test)]
fn rate_at(s: &[f64], weight: Option<&[f64]>, t: f64, noise: f64) -> f64 {
    rate_and_slope(s, weight, t, noise).0
}

/// The rate at `t` and its derivative in `t`, `−(1/(σM)) Σ_m w_m φ((s_m − t)/σ)`.
fn rate_and_slope(s: &[f64], weight: Option<&[f64]>, t: f64, noise: f64) -> (f64, f64) {
    let density = |x: f64| (-0.5 * x * x).exp() / (std::f64::consts::TAU).sqrt();
    let blocks: Vec<(f64, f64)> = s
        .par_chunks(BLOCK)
        .enumerate()
        .map(|(b, block)| {
            let w = weight.map(|w| &w[b * BLOCK..b * BLOCK + block.len()]);
            block
                .iter()
                .enumerate()
                .fold((0.0, 0.0), |(r, d), (i, &s)| {
                    let w = w.map_or(1.0, |w| w[i]);
                    let x = (s - t) / noise;
                    (r + w * normal_cdf(x), d + w * density(x))
                })
        })
        .collect();
    let (r, d) = blocks
        .iter()
        .fold((0.0, 0.0), |(r, d), &(br, bd)| (r + br, d + bd));
    let m = s.len() as f64;
    (r / m, -d / (m * noise))
}

/// The `t` where [`rate_at`] equals `rate`: Newton's method from the `(1 − rate)` quantile of
/// `s` stretched by `sqrt(1 + σ²)` (exact for normal utilities and no weights), inside a
/// bracket that starts below every draw (where the rate is the mean weight) and above every
/// draw (where it is 0) and shrinks with every step.
fn solve_one(s: &[f64], weight: Option<&[f64]>, rate: f64, noise: f64) -> f64 {
    let (min, max) = s
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let (mut lo, mut hi) = (min - 40.0 * noise - 1.0, max + 40.0 * noise + 1.0);
    let mut sorted = s.to_vec();
    let at = (((1.0 - rate) * s.len() as f64) as usize).min(s.len() - 1);
    let (_, q, _) = sorted.select_nth_unstable_by(at, f64::total_cmp);
    let mut t = (*q * (1.0 + noise * noise).sqrt()).clamp(lo, hi);
    for _ in 0..STEPS {
        let (r, slope) = rate_and_slope(s, weight, t, noise);
        let gap = r - rate;
        if gap.abs() <= 1e-13 * rate {
            break;
        }
        if gap > 0.0 {
            lo = t;
        } else {
            hi = t;
        }
        if hi - lo <= 1e-13 * (1.0 + t.abs()) {
            break;
        }
        let newton = t - gap / slope;
        t = if slope < 0.0 && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For standard normal utilities the threshold is `sqrt(1 + σ²) Φ⁻¹(1 − r)`; with draws at
    /// the normal quantiles (a sample with no sampling error) the solved one matches it.
    #[test]
    fn normal_utilities_give_the_closed_form() {
        let m = 200_000;
        // Quantiles of N(0,1) by bisection on Φ.
        let quantile = |p: f64| {
            let (mut lo, mut hi) = (-10.0, 10.0);
            for _ in 0..80 {
                let mid = 0.5 * (lo + hi);
                if normal_cdf(mid) < p {
                    lo = mid
                } else {
                    hi = mid
                }
            }
            0.5 * (lo + hi)
        };
        let s: Vec<f64> = (0..m)
            .map(|i| quantile((i as f64 + 0.5) / m as f64))
            .collect();
        for (rate, noise) in [(0.3, 0.5), (0.02, 1.0), (0.5, 0.1)] {
            let t = solve(std::slice::from_ref(&s), &[rate], noise, false)[0];
            let want = (1.0f64 + noise * noise).sqrt() * quantile(1.0 - rate);
            assert!(
                (t - want).abs() < 2e-3,
                "r {rate} σ {noise}: t {t}, want {want}"
            );
            assert!((rate_at(&s, None, t, noise) - rate).abs() < 1e-9);
        }
    }

    /// Nested: the second task's rate counts only the first task's positives.
    #[test]
    fn nested_rates_are_met() {
        let s0: Vec<f64> = (0..10_000)
            .map(|i| (i as f64 / 10_000.0) * 4.0 - 2.0)
            .collect();
        let s1: Vec<f64> = s0.iter().map(|x| -x).collect();
        let t = solve(&[s0.clone(), s1.clone()], &[0.4, 0.1], 0.5, true);
        let w: Vec<f64> = s0.iter().map(|&s| normal_cdf((s - t[0]) / 0.5)).collect();
        assert!((rate_at(&s0, None, t[0], 0.5) - 0.4).abs() < 1e-9);
        assert!((rate_at(&s1, Some(&w), t[1], 0.5) - 0.1).abs() < 1e-9);
    }
}
