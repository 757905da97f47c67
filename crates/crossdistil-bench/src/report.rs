//! The report: one row per configuration, over the rounds.

use serde::{Deserialize, Serialize};

use crate::measurement::Measurement;
use crate::median::median;
use crate::model::BenchModel;
use crate::parity::Parity;
use crate::shape::Shape;

/// One row of the report: a configuration and its measurements over the rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// `crossdistil` or `pytorch`.
    pub side: String,
    /// The model.
    pub model: BenchModel,
    /// With CrossDistil.
    pub crossdistil: bool,
    /// Data-parallel workers.
    pub workers: usize,
    /// Rows of the first field's table.
    pub first_table_rows: usize,
    /// A run of the table-size sweep.
    pub sweep: bool,
    /// The measurement of each round, in order.
    pub runs: Vec<Measurement>,
    /// Median over the runs of each run's median window.
    pub train_rows_per_s: f64,
    /// The slowest window over every run.
    pub train_min: f64,
    /// The fastest window over every run.
    pub train_max: f64,
    /// Median over the runs of the step time, ms.
    pub step_ms: f64,
    /// Median over the runs of the evaluation rows/s.
    pub eval_rows_per_s: f64,
    /// The largest peak RSS of the runs, MiB.
    pub peak_rss_mib: f64,
}

impl Row {
    /// The row of one configuration's `runs` (one per round, at least one; the configuration
    /// is the first run's).
    pub fn of(runs: Vec<Measurement>, sweep: bool) -> Row {
        let m = &runs[0];
        let all: Vec<f64> = runs.iter().flat_map(|r| r.windows.clone()).collect();
        let train = median(&runs.iter().map(|r| r.train_rows_per_s).collect::<Vec<_>>());
        Row {
            side: m.side.clone(),
            model: m.model,
            crossdistil: m.crossdistil,
            workers: m.workers,
            first_table_rows: m.first_table_rows,
            sweep,
            train_rows_per_s: train,
            train_min: all.iter().copied().fold(f64::INFINITY, f64::min),
            train_max: all.iter().copied().fold(0.0, f64::max),
            step_ms: median(&runs.iter().map(|r| r.step_ms).collect::<Vec<_>>()),
            eval_rows_per_s: median(&runs.iter().map(|r| r.eval_rows_per_s).collect::<Vec<_>>()),
            peak_rss_mib: runs.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
            runs,
        }
    }
}

/// Everything `bench.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The shape measured.
    pub shape: Shape,
    /// Cores of the machine.
    pub cores: usize,
    /// One row per configuration, the table-size sweep last.
    pub rows: Vec<Row>,
    /// Per model of the parity check: crossdistil's losses, then the peer's.
    pub parity: Vec<(BenchModel, Parity, Parity)>,
}

impl Report {
    /// The row of a configuration outside the table-size sweep.
    pub(crate) fn find(
        &self,
        side: &str,
        model: BenchModel,
        cd: bool,
        workers: usize,
    ) -> Option<&Row> {
        self.rows.iter().find(|x| {
            x.side == side
                && x.model == model
                && x.crossdistil == cd
                && x.workers == workers
                && !x.sweep
        })
    }
}

/// The ratios `f(a) / f(b)` of the runs of `a` and `b` in the same round: their median, minimum
/// and maximum. The rounds run every configuration in turn, so a round's two runs are minutes
/// apart, while the machine's speed can drift between rounds.
pub(crate) fn per_round(a: &Row, b: &Row, f: impl Fn(&Measurement) -> f64) -> (f64, f64, f64) {
    let ratios: Vec<f64> = a
        .runs
        .iter()
        .zip(&b.runs)
        .map(|(x, y)| f(x) / f(y))
        .collect();
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(&ratios), lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rates: &[f64]) -> Row {
        let runs = rates
            .iter()
            .map(|&r| Measurement {
                side: "crossdistil".into(),
                model: BenchModel::Mmoe,
                crossdistil: false,
                workers: 1,
                first_table_rows: 10,
                windows: vec![r],
                train_rows_per_s: r,
                step_ms: 1e3 / r,
                eval_rows_per_s: 0.0,
                peak_rss_mib: 0.0,
            })
            .collect();
        Row::of(runs, false)
    }

    /// Per-round ratios pair the runs of the same round: a machine twice as fast in round two
    /// leaves them alone, while the ratio of the medians moves.
    #[test]
    fn per_round_ratios_pair_runs_of_the_same_round() {
        let ours = row(&[30.0, 60.0, 33.0]);
        let theirs = row(&[20.0, 40.0, 30.0]);
        let (mid, lo, hi) = per_round(&ours, &theirs, |m| m.train_rows_per_s);
        assert_eq!((mid, lo, hi), (1.5, 1.1, 1.5));
        assert_eq!(ours.train_rows_per_s / theirs.train_rows_per_s, 33.0 / 30.0);
        let (mid, _, _) = per_round(&ours, &theirs, |m| m.step_ms);
        assert!((mid - 1.0 / 1.5).abs() < 1e-12);
    }

    /// A row's figures: medians over the runs, the extreme windows, the largest peak RSS.
    #[test]
    fn a_row_takes_medians_over_its_runs() {
        let r = row(&[30.0, 60.0, 33.0]);
        assert_eq!(r.train_rows_per_s, 33.0);
        assert_eq!((r.train_min, r.train_max), (30.0, 60.0));
        assert_eq!(r.step_ms, 1e3 / 33.0);
    }
}
