//! Summaries over seeds: mean and sample standard deviation, and the paired t-test.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean, sample standard deviation (`n - 1` in the denominator; 0 for fewer than two values)
/// and the values themselves, in seed order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Arithmetic mean (0 for no values).
    pub mean: f64,
    /// Sample standard deviation.
    pub std: f64,
    /// The values summarised.
    pub values: Vec<f64>,
}

impl Stat {
    /// Summarises `values`.
    pub fn of(values: Vec<f64>) -> Stat {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n.max(1.0);
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Stat {
            mean,
            std: var.sqrt(),
            values,
        }
    }
}

/// The paired difference `a - b` over the same seeds, with a two-sided paired t-test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// Mean of the differences.
    pub mean_diff: f64,
    /// Sample standard deviation of the differences.
    pub std_diff: f64,
    /// `mean_diff / (std_diff / sqrt(n))`; `None` with fewer than two pairs or identical
    /// differences (zero standard deviation).
    pub t: Option<f64>,
    /// Two-sided p-value of `t` under Student's t with `n - 1` degrees of freedom; `None`
    /// when `t` is.
    pub p_value: Option<f64>,
    /// Pairs where `a` is higher than `b`.
    pub wins: usize,
    /// Number of pairs.
    pub n: usize,
}

/// Paired t-test of `a - b`: the same seeds in the same order. Extra values of the longer
/// slice are ignored.
pub fn paired(a: &[f64], b: &[f64]) -> Paired {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len();
    let wins = d.iter().filter(|&&x| x > 0.0).count();
    let s = Stat::of(d);
    let (t, p) = if n >= 2 && s.std > 0.0 {
        let t = s.mean / (s.std / (n as f64).sqrt());
        let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).expect("n - 1 >= 1 degrees of freedom");
        (Some(t), Some(2.0 * (1.0 - dist.cdf(t.abs()))))
    } else {
        (None, None)
    };
    Paired {
        mean_diff: s.mean,
        std_diff: s.std,
        t,
        p_value: p,
        wins,
        n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_by_hand() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum to 32, sample variance 32 / 7.
        let s = Stat::of(vec![2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!((s.mean - 5.0).abs() < 1e-12);
        assert!((s.std - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.values.len(), 8);
        let one = Stat::of(vec![3.5]);
        assert_eq!((one.mean, one.std), (3.5, 0.0));
        let none = Stat::of(Vec::new());
        assert_eq!((none.mean, none.std), (0.0, 0.0));
    }

    #[test]
    fn paired_t_test_by_hand() {
        // Differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641, df 2: p = 0.0742.
        let p = paired(&[2.0, 4.0, 6.0], &[1.0, 2.0, 3.0]);
        assert!((p.mean_diff - 2.0).abs() < 1e-12);
        assert!((p.t.unwrap() - 3.464_101_6).abs() < 1e-6);
        assert!(
            (p.p_value.unwrap() - 0.074_180).abs() < 1e-4,
            "{:?}",
            p.p_value
        );
        // Exactly, with two degrees of freedom: p = 1 - |t| / sqrt(t^2 + 2).
        let t = p.t.unwrap();
        assert!((p.p_value.unwrap() - (1.0 - t / (t * t + 2.0).sqrt())).abs() < 1e-9);
        assert_eq!(p.wins, 3);
        assert!(paired(&[1.0, 1.0], &[1.0, 1.0]).p_value.is_none());
        assert!(paired(&[1.0], &[0.0]).t.is_none());
    }

    #[test]
    fn paired_two_pairs_is_a_cauchy_tail() {
        // With one degree of freedom Student's t is the Cauchy distribution, whose two-sided
        // tail is 1 - 2 atan(|t|) / pi. Differences 1 and 3: mean 2, sd sqrt 2, t = 2.
        let p = paired(&[1.0, 3.0], &[0.0, 0.0]);
        assert!((p.t.unwrap() - 2.0).abs() < 1e-12);
        let want = 1.0 - 2.0 * 2f64.atan() / std::f64::consts::PI;
        assert!(
            (p.p_value.unwrap() - want).abs() < 1e-9,
            "{:?} vs {want}",
            p.p_value
        );
        // Symmetric: swapping the sides negates t and keeps p.
        let q = paired(&[0.0, 0.0], &[1.0, 3.0]);
        assert!((q.t.unwrap() + 2.0).abs() < 1e-12);
        assert!((q.p_value.unwrap() - want).abs() < 1e-9);
        assert_eq!(q.wins, 0);
    }

    #[test]
    fn paired_large_sample_tends_to_the_normal() {
        // Differences alternating 1 and 0 over 2000 pairs: t is large and p is tiny; the same
        // differences centred on zero give t = 0 and p = 1.
        let a: Vec<f64> = (0..2000).map(|i| (i % 2) as f64).collect();
        let zeros = vec![0.0; 2000];
        let p = paired(&a, &zeros);
        assert!(p.p_value.unwrap() < 1e-12);
        assert_eq!(p.wins, 1000);
        let centred: Vec<f64> = a.iter().map(|x| x - 0.5).collect();
        let q = paired(&centred, &zeros);
        assert!(q.t.unwrap().abs() < 1e-12);
        assert!((q.p_value.unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn paired_ignores_the_longer_tail() {
        let p = paired(&[1.0, 2.0, 100.0], &[0.0, 0.0]);
        assert_eq!(p.n, 2);
        assert!((p.mean_diff - 1.5).abs() < 1e-12);
    }
}
