//! The disk a size of the scale benchmark needs, estimated from a measured one.

use serde::{Deserialize, Serialize};

use super::shape::SplitRows;

/// Disk use measured on one size, to extrapolate to others: the prepared data grows with the
/// rows, the scores file with the test rows, and the rest of a run folder (configuration,
/// encoders, checkpoints of the fixed model) not at all.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiskEstimate {
    /// Bytes of prepared data per row.
    pub data_bytes_per_row: f64,
    /// Bytes of the scores file per test row.
    pub scores_bytes_per_row: f64,
    /// Bytes of a run folder without its scores file.
    pub run_bytes: u64,
}

impl DiskEstimate {
    /// The estimate from a size of `rows` rows whose data took `data_bytes` and whose run
    /// folder took `run_bytes`, `scores_bytes` of them the scores of its test split.
    pub fn measured(rows: usize, data_bytes: u64, run_bytes: u64, scores_bytes: u64) -> Self {
        let test = SplitRows::of(rows).test.max(1);
        DiskEstimate {
            data_bytes_per_row: data_bytes as f64 / rows.max(1) as f64,
            scores_bytes_per_row: scores_bytes as f64 / test as f64,
            run_bytes: run_bytes.saturating_sub(scores_bytes),
        }
    }

    /// Bytes that a size of `rows` rows holds at once: its data and one run folder.
    pub fn of_size(&self, rows: usize) -> u64 {
        let test = SplitRows::of(rows).test;
        (self.data_bytes_per_row * rows as f64 + self.scores_bytes_per_row * test as f64).ceil()
            as u64
            + self.run_bytes
    }

    /// Bytes the sizes need at the peak: the largest one when each is deleted after it is
    /// measured, all of them when they are kept.
    ///
    /// ```
    /// use crossdistil_bench::DiskEstimate;
    /// let e = DiskEstimate::measured(1_000, 50_000, 1_200, 200);
    /// assert_eq!(e.of_size(10_000), 500_000 + 2_000 + 1_000);
    /// assert_eq!(e.needs(&[1_000, 10_000], false), 503_000);
    /// assert_eq!(e.needs(&[1_000, 10_000], true), 503_000 + 51_200);
    /// ```
    pub fn needs(&self, sizes: &[usize], keep: bool) -> u64 {
        let each = sizes.iter().map(|&r| self.of_size(r));
        if keep {
            each.sum()
        } else {
            each.max().unwrap_or(0)
        }
    }
}
