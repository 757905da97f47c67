//! The report: one row per configuration, over the rounds.

use serde::{Deserialize, Serialize};

use crate::child::PeerVariant;
use crate::measurement::{Measurement, PeerSetup};
use crate::median::median;
use crate::model::BenchModel;
use crate::parity::ParityCheck;
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
    /// The PyTorch peer's setup (its first run's); absent from crossdistil's rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerSetup>,
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
            peer: m.peer.clone(),
            runs,
        }
    }

    /// The PyTorch peer's variant; `None` for crossdistil's rows.
    pub fn variant(&self) -> Option<PeerVariant> {
        self.peer.as_ref().map(|p| p.variant)
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
    /// The parity checks: every model, with and without CrossDistil, against every variant of
    /// the peer that ran.
    pub parity: Vec<ParityCheck>,
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

    /// The PyTorch peer's row of `model` with or without CrossDistil in variant `variant`.
    pub(crate) fn find_peer(
        &self,
        model: BenchModel,
        cd: bool,
        variant: PeerVariant,
    ) -> Option<&Row> {
        self.peers(model, cd)
            .into_iter()
            .find(|x| x.variant() == Some(variant))
    }

    /// The PyTorch peer's rows of `model` with or without CrossDistil, in the report's order.
    pub(crate) fn peers(&self, model: BenchModel, cd: bool) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|x| x.side == "pytorch" && x.model == model && x.crossdistil == cd && !x.sweep)
            .collect()
    }

    /// The peer's variants that ran, in [`PeerVariant::ALL`]'s order.
    pub(crate) fn variants(&self) -> Vec<PeerVariant> {
        PeerVariant::ALL
            .into_iter()
            .filter(|&v| self.rows.iter().any(|x| x.variant() == Some(v)))
            .collect()
    }
}

/// crossdistil's training rows/s against the faster PyTorch variant: of the medians, and round
/// by round against the variant fastest in that round.
#[derive(Debug, Clone)]
pub(crate) struct VsFastest<'a> {
    /// The peer's row with the highest median training rows/s.
    pub fastest: &'a Row,
    /// Our median over the fastest variant's median.
    pub ratio: f64,
    /// The ratios of our run to the fastest peer run of the same round: median, min, max.
    pub per_round: (f64, f64, f64),
    /// The variant fastest in each round, in round order.
    pub round_fastest: Vec<PeerVariant>,
}

/// `ours` against the fastest of `peers` (rows of the same model, with or without
/// CrossDistil, one per variant); `None` without peers.
pub(crate) fn vs_fastest<'a>(ours: &Row, peers: &[&'a Row]) -> Option<VsFastest<'a>> {
    let fastest = peers
        .iter()
        .copied()
        .max_by(|a, b| a.train_rows_per_s.total_cmp(&b.train_rows_per_s))?;
    let mut ratios = Vec::new();
    let mut round_fastest = Vec::new();
    for (i, run) in ours.runs.iter().enumerate() {
        let best = peers
            .iter()
            .filter_map(|p| p.runs.get(i).map(|m| (p, m.train_rows_per_s)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((p, rate)) = best {
            ratios.push(run.train_rows_per_s / rate);
            round_fastest.extend(p.variant());
        }
    }
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(VsFastest {
        fastest,
        ratio: ours.train_rows_per_s / fastest.train_rows_per_s,
        per_round: (median(&ratios), lo, hi),
        round_fastest,
    })
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

/// Hand-made rows for the tests of the report and its tables.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// The row of `side` (`crossdistil`, or the PyTorch peer as `variant`) for MMoE with or
    /// without CrossDistil on `workers` workers, one run per rate in `rates` (one window each,
    /// batches of 1000 rows, peak RSS 100 MiB).
    pub(crate) fn row(
        variant: Option<PeerVariant>,
        cd: bool,
        workers: usize,
        rates: &[f64],
    ) -> Row {
        let runs = rates
            .iter()
            .map(|&r| Measurement {
                side: if variant.is_some() {
                    "pytorch"
                } else {
                    "crossdistil"
                }
                .into(),
                model: BenchModel::Mmoe,
                crossdistil: cd,
                workers,
                first_table_rows: 10,
                windows: vec![r],
                train_rows_per_s: r,
                step_ms: 1e6 / r,
                eval_rows_per_s: 0.0,
                peak_rss_mib: 100.0,
                peer: variant.map(|variant| PeerSetup {
                    variant,
                    dense_adam: "fused".into(),
                    torch: "2.0".into(),
                }),
            })
            .collect();
        Row::of(runs, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rates: &[f64]) -> Row {
        fixtures::row(None, false, 1, rates)
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
        assert_eq!(r.step_ms, 1e6 / 33.0);
    }

    /// Against the faster peer: the variant with the higher median for the ratio of the
    /// medians, and round by round whichever variant was faster in that round.
    #[test]
    fn the_faster_peer_is_chosen_by_median_and_round_by_round() {
        use PeerVariant::{Plain, Tuned};
        let ours = row(&[30.0, 60.0, 33.0]);
        let plain = fixtures::row(Some(Plain), false, 1, &[20.0, 40.0, 30.0]);
        let tuned = fixtures::row(Some(Tuned), false, 1, &[25.0, 30.0, 22.0]);
        // Medians: plain 30, tuned 25; round by round: tuned, plain, plain.
        let v = vs_fastest(&ours, &[&plain, &tuned]).unwrap();
        assert_eq!(v.fastest.variant(), Some(Plain));
        assert_eq!(v.ratio, 33.0 / 30.0);
        assert_eq!(v.per_round, (1.2, 1.1, 1.5));
        assert_eq!(v.round_fastest, [Tuned, Plain, Plain]);
        // The order of the peers does not matter.
        let w = vs_fastest(&ours, &[&tuned, &plain]).unwrap();
        assert_eq!(w.fastest.variant(), Some(Plain));
        assert_eq!((w.ratio, w.per_round), (v.ratio, v.per_round));
        assert_eq!(w.round_fastest, v.round_fastest);
        // A variant faster in every round wins everywhere.
        let fast = fixtures::row(Some(Tuned), false, 1, &[60.0, 60.0, 66.0]);
        let v = vs_fastest(&ours, &[&plain, &fast]).unwrap();
        assert_eq!(v.fastest.variant(), Some(Tuned));
        assert_eq!(v.per_round, (0.5, 0.5, 1.0));
        assert_eq!(v.round_fastest, [Tuned; 3]);
        assert!(vs_fastest(&ours, &[]).is_none());
    }

    /// The peer's rows are found by model, CrossDistil and variant; the variants that ran are
    /// listed in the report's order.
    #[test]
    fn peer_rows_are_found_by_variant() {
        use PeerVariant::{Compiled, Plain};
        let report = Report {
            shape: Shape::QUICK,
            cores: 2,
            rows: vec![
                row(&[30.0]),
                fixtures::row(Some(Compiled), true, 1, &[10.0]),
                fixtures::row(Some(Plain), true, 1, &[20.0]),
                fixtures::row(Some(Plain), false, 1, &[40.0]),
            ],
            parity: Vec::new(),
        };
        assert_eq!(report.variants(), [Plain, Compiled]);
        let p = report.find_peer(BenchModel::Mmoe, true, Plain).unwrap();
        assert_eq!(p.train_rows_per_s, 20.0);
        assert!(
            report
                .find_peer(BenchModel::Mmoe, false, Compiled)
                .is_none()
        );
        assert!(report.find_peer(BenchModel::Ple, true, Plain).is_none());
        assert_eq!(report.peers(BenchModel::Mmoe, true).len(), 2);
        assert_eq!(
            report
                .find("crossdistil", BenchModel::Mmoe, false, 1)
                .unwrap()
                .train_rows_per_s,
            30.0
        );
    }
}
