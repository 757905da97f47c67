//! What `mpi.json` holds: every run, and one row per configuration (ranks and table layout)
//! with the medians over the rounds.

use serde::{Deserialize, Serialize};

use super::config::MpiLayout;
use crate::median::median;
use crate::scale::ScaleShape;

/// One `mpirun` of one configuration in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MpiRun {
    /// The round, from 0.
    pub round: usize,
    /// Processes of the job.
    pub ranks: usize,
    /// How the tables were laid out.
    pub layout: MpiLayout,
    /// Worker threads per rank.
    pub workers: usize,
    /// The run's `rows_per_second`: train rows of the epoch over its `train_seconds` (the
    /// epoch and the validation at its end, on rank 0).
    pub rows_per_s: f64,
    /// The run's `train_seconds`.
    pub train_seconds: f64,
    /// Bytes a rank sent per step, the mean over the ranks (0 on one rank).
    pub bytes_sent_per_step: f64,
    /// Bytes a rank received per step, the mean over the ranks (0 on one rank).
    pub bytes_received_per_step: f64,
    /// The share of a step spent in exchanges, waiting included, the mean over the ranks (0
    /// on one rank).
    pub comm_share: f64,
    /// Seconds per training step: the ranks' mean from the report on several ranks; on one,
    /// `batch / rows_per_s` (which counts the validation too).
    pub step_seconds: f64,
    /// Peak resident memory of the largest process of the job, bytes: `ru_maxrss` of
    /// `mpirun`, which Linux gives as the largest of it and the ranks it reaped.
    pub peak_rss_bytes: u64,
    /// Wall seconds of the whole `mpirun`: start-up, loading, the epoch, validation, test and
    /// checkpoints.
    pub wall_seconds: f64,
}

/// One configuration: the medians of its runs over the rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MpiRow {
    /// Processes of the job.
    pub ranks: usize,
    /// Worker threads per rank.
    pub workers: usize,
    /// How the tables were laid out.
    pub layout: MpiLayout,
    /// Median rows/s ([`MpiRun::rows_per_s`]).
    pub rows_per_s: f64,
    /// `rows_per_s` over the one-rank configuration's, where it was measured.
    pub ratio_to_one_rank: Option<f64>,
    /// Median bytes sent per step by a rank.
    pub bytes_sent_per_step: f64,
    /// Median bytes received per step by a rank.
    pub bytes_received_per_step: f64,
    /// Median share of a step spent communicating, in `[0, 1]`.
    pub comm_share: f64,
    /// Median seconds per step.
    pub step_seconds: f64,
    /// The largest peak RSS over the rounds, bytes.
    pub peak_rss_bytes: u64,
    /// Median wall seconds of `mpirun`.
    pub wall_seconds: f64,
    /// Rounds measured.
    pub rounds: usize,
}

impl MpiRow {
    /// The row of the runs of one configuration (`runs` not empty, all of the same ranks and
    /// layout), without its ratio to one rank (see [`MpiRow::all`]).
    pub fn of(runs: &[&MpiRun]) -> MpiRow {
        let m = |f: fn(&MpiRun) -> f64| median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>());
        let first = runs[0];
        MpiRow {
            ranks: first.ranks,
            workers: first.workers,
            layout: first.layout,
            rows_per_s: m(|r| r.rows_per_s),
            ratio_to_one_rank: None,
            bytes_sent_per_step: m(|r| r.bytes_sent_per_step),
            bytes_received_per_step: m(|r| r.bytes_received_per_step),
            comm_share: m(|r| r.comm_share),
            step_seconds: m(|r| r.step_seconds),
            peak_rss_bytes: runs.iter().map(|r| r.peak_rss_bytes).max().unwrap_or(0),
            wall_seconds: m(|r| r.wall_seconds),
            rounds: runs.len(),
        }
    }

    /// The rows of `runs`, one per (ranks, layout) in the order of first appearance, each with
    /// its ratio to the one-rank row where there is one.
    pub fn all(runs: &[MpiRun]) -> Vec<MpiRow> {
        let mut keys: Vec<(usize, MpiLayout)> = Vec::new();
        for r in runs {
            if !keys.contains(&(r.ranks, r.layout)) {
                keys.push((r.ranks, r.layout));
            }
        }
        let mut rows: Vec<MpiRow> = keys
            .iter()
            .map(|&(n, l)| {
                let of: Vec<&MpiRun> = runs
                    .iter()
                    .filter(|r| r.ranks == n && r.layout == l)
                    .collect();
                MpiRow::of(&of)
            })
            .collect();
        let one = rows.iter().find(|r| r.ranks == 1).map(|r| r.rows_per_s);
        if let Some(one) = one.filter(|&x| x > 0.0) {
            for r in &mut rows {
                r.ratio_to_one_rank = Some(r.rows_per_s / one);
            }
        }
        rows
    }
}

/// The MPI benchmark's report (`mpi.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MpiReport {
    /// The data and model (`shape.batch` is the global batch of every configuration).
    pub shape: ScaleShape,
    /// Rows of the synthetic data set (train, valid and test together).
    pub data_rows: usize,
    /// Train rows: one epoch trains on each once.
    pub train_rows: usize,
    /// Cores of the machine.
    pub cores: usize,
    /// Rounds over the configurations.
    pub rounds: usize,
    /// The `mpirun` options every job ran with.
    pub mpirun_options: Vec<String>,
    /// The command line that reproduces this report.
    pub command: String,
    /// One row per configuration, in the order measured (ranks ascending, sharded before
    /// replicated): [`MpiRow::all`] of `runs`.
    pub rows: Vec<MpiRow>,
    /// Every run, round by round.
    pub runs: Vec<MpiRun>,
}
