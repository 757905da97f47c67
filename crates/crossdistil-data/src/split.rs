//! The train / valid / test split of every row, fixed once by `prepare` so that every model is
//! evaluated on the same rows.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The part of the data a row belongs to: fitting, model selection or the final report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Rows the model and the encoders are fitted on.
    Train,
    /// Rows for early stopping and model selection.
    Valid,
    /// Held-out rows for the final report.
    Test,
}

impl Split {
    /// The three splits, in this order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Valid, Split::Test];

    /// The name as written in the split column: `train`, `valid` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }

    /// The split of a name written by [`Split::as_str`]; `None` for any other text.
    pub fn parse(s: &str) -> Option<Split> {
        match s {
            "train" => Some(Split::Train),
            "valid" => Some(Split::Valid),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Split::parse(s).ok_or_else(|| {
            format!(
                "`{}` is not a split (train, valid, test)",
                crate::error::echo(s)
            )
        })
    }
}

/// The fractions of rows that go to validation and test; the rest is train.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitFractions {
    /// The share of rows for validation, in `(0, 1)`.
    pub valid: f64,
    /// The share of rows for test, in `(0, 1)`; `valid + test < 1`.
    pub test: f64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        SplitFractions {
            valid: 0.1,
            test: 0.1,
        }
    }
}

impl SplitFractions {
    /// Refuses fractions outside `(0, 1)` or leaving no rows for train; the message says why.
    pub fn check(&self) -> Result<(), String> {
        let ok = |f: f64| f.is_finite() && f > 0.0 && f < 1.0;
        if !ok(self.valid) || !ok(self.test) || self.valid + self.test >= 1.0 {
            return Err(format!(
                "split fractions valid={} test={} must be in (0, 1) and leave rows for train",
                self.valid, self.test
            ));
        }
        Ok(())
    }
}

/// Assigns each of `n` rows to a split at random: exactly `round(n * test)` test rows and
/// `round(n * valid)` validation rows, chosen by a seeded permutation (ChaCha8), the rest train.
/// The same `n`, fractions and seed always give the same assignment.
pub(crate) fn assign_splits(n: usize, fractions: SplitFractions, seed: u64) -> Vec<Split> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_test = (n as f64 * fractions.test).round() as usize;
    let n_valid = (n as f64 * fractions.valid).round() as usize;
    let mut out = vec![Split::Train; n];
    for (rank, &row) in order.iter().enumerate() {
        if rank < n_test {
            out[row as usize] = Split::Test;
        } else if rank < n_test + n_valid {
            out[row as usize] = Split::Valid;
        }
    }
    out
}

/// The split of `n` rows drawn one row at a time, in O(1) memory, for sources streamed in chunks:
/// exactly `round(n * test)` test rows and `round(n * valid)` validation rows, as
/// [`assign_splits`] gives, but by sequential selection sampling (Knuth's Algorithm S, with three
/// outcomes): with `r` rows left, of which `t` must still go to test and `v` to validation, one
/// seeded draw `u` uniform in `0..r` sends the row to test when `u < t`, to validation when
/// `t <= u < t + v`, and to train otherwise. Every assignment with those counts is equally
/// likely, the counts are exact (when `t = r` every remaining row goes to test), and the same
/// `n`, fractions and seed always give the same sequence, whatever the chunking.
#[derive(Debug, Clone)]
pub(crate) struct SplitSampler {
    rng: ChaCha8Rng,
    rows_left: u64,
    test_left: u64,
    valid_left: u64,
}

impl SplitSampler {
    /// The sampler of `n` rows with these fractions and this seed.
    pub(crate) fn new(n: u64, fractions: SplitFractions, seed: u64) -> Self {
        let n_test = (n as f64 * fractions.test).round() as u64;
        let n_valid = (n as f64 * fractions.valid).round() as u64;
        SplitSampler {
            rng: ChaCha8Rng::seed_from_u64(seed),
            rows_left: n,
            test_left: n_test.min(n),
            valid_left: n_valid.min(n - n_test.min(n)),
        }
    }

    /// The rows not drawn yet.
    pub(crate) fn rows_left(&self) -> u64 {
        self.rows_left
    }

    /// The split of the next row; `None` once all `n` rows are drawn.
    pub(crate) fn next_split(&mut self) -> Option<Split> {
        if self.rows_left == 0 {
            return None;
        }
        let u = self.rng.random_range(0..self.rows_left);
        self.rows_left -= 1;
        Some(if u < self.test_left {
            self.test_left -= 1;
            Split::Test
        } else if u < self.test_left + self.valid_left {
            self.valid_left -= 1;
            Split::Valid
        } else {
            Split::Train
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_counts_and_reproducible() {
        let a = assign_splits(1000, SplitFractions::default(), 7);
        let count = |s| a.iter().filter(|&&x| x == s).count();
        assert_eq!(
            (count(Split::Train), count(Split::Valid), count(Split::Test)),
            (800, 100, 100)
        );
        assert_eq!(a, assign_splits(1000, SplitFractions::default(), 7));
        assert_ne!(a, assign_splits(1000, SplitFractions::default(), 8));
    }

    fn sampled(n: u64, f: SplitFractions, seed: u64) -> Vec<Split> {
        let mut s = SplitSampler::new(n, f, seed);
        let out: Vec<Split> = std::iter::from_fn(|| s.next_split()).collect();
        assert_eq!(s.rows_left(), 0);
        out
    }

    #[test]
    fn the_sampler_gives_exact_counts_and_is_reproducible() {
        let f = SplitFractions {
            valid: 0.15,
            test: 0.05,
        };
        for n in [0u64, 1, 2, 3, 10, 999, 1000, 12_345] {
            for seed in 0..5 {
                let a = sampled(n, f, seed);
                assert_eq!(a.len() as u64, n);
                let count = |s| a.iter().filter(|&&x| x == s).count() as u64;
                let (t, v) = (
                    (n as f64 * 0.05).round() as u64,
                    (n as f64 * 0.15).round() as u64,
                );
                assert_eq!((count(Split::Test), count(Split::Valid)), (t, v), "n={n}");
                assert_eq!(count(Split::Train), n - t - v);
                assert_eq!(a, sampled(n, f, seed));
            }
        }
        assert_ne!(
            sampled(1000, SplitFractions::default(), 1),
            sampled(1000, SplitFractions::default(), 2)
        );
    }

    #[test]
    fn the_sampler_spreads_each_split_evenly() {
        // Each row is test with probability 0.1: over 2000 seeds the share of test among the
        // first and the last ten rows of 100 is near 0.1 (and no position is favoured).
        let (mut first, mut last) = (0usize, 0usize);
        for seed in 0..2000 {
            let a = sampled(100, SplitFractions::default(), seed);
            first += a[..10].iter().filter(|&&s| s == Split::Test).count();
            last += a[90..].iter().filter(|&&s| s == Split::Test).count();
        }
        for c in [first, last] {
            let share = c as f64 / 20_000.0;
            assert!((share - 0.1).abs() < 0.01, "{share}");
        }
    }

    #[test]
    fn fractions_are_checked() {
        assert!(
            SplitFractions {
                valid: 0.5,
                test: 0.5
            }
            .check()
            .is_err()
        );
        assert!(
            SplitFractions {
                valid: 0.0,
                test: 0.1
            }
            .check()
            .is_err()
        );
        assert!(SplitFractions::default().check().is_ok());
    }
}
