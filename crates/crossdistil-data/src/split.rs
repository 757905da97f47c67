//! The train / valid / test split of every row, fixed once by `prepare` so that every model is
//! evaluated on the same rows.

use rand::SeedableRng;
use rand::seq::SliceRandom;
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
