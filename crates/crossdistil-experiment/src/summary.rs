//! The results of a cell over its seeds, read from the runs' reports, and the paired
//! differences of every variant from the baseline.

use std::collections::BTreeMap;

use crossdistil_train::Report;
use crossdistil_train::TaskMetrics;
use serde::{Deserialize, Serialize};

use crate::error::{ExperimentError, Result};
use crate::grid::Cell;
use crate::stats::{Paired, Stat, paired};

/// split -> task -> metric -> value.
pub type MetricTree<T> = BTreeMap<String, BTreeMap<String, BTreeMap<String, T>>>;

/// The results of one cell (a config and a variant) over the seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// The configuration's name (its file stem).
    pub config: String,
    /// The variant's name.
    pub variant: String,
    /// The seeds, in the order of every [`Stat::values`].
    pub seeds: Vec<u64>,
    /// split (`valid`, `test`) -> task -> metric ([`METRICS`]) -> summary over seeds. A metric
    /// is present when every seed's report has it.
    pub metrics: MetricTree<Stat>,
    /// The mean validation AUC over tasks, per seed.
    pub valid_mean_auc: Stat,
    /// The mean test AUC over tasks, per seed.
    pub test_mean_auc: Stat,
    /// Training time in seconds.
    pub train_seconds: Stat,
    /// Epochs run (early stopping included).
    pub epochs_run: Stat,
    /// split -> task -> metric ([`PAIRED_METRICS`]) -> paired difference from the baseline
    /// variant of the same config; empty for the baseline and without one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vs_baseline: MetricTree<Paired>,
}

type Getter = fn(&TaskMetrics) -> Option<f64>;

const GETTERS: [(&str, Getter); 9] = [
    ("auc", |m| m.auc),
    ("gauc", |m| m.gauc),
    ("multi_auc", |m| m.multi_auc),
    ("logloss", |m| m.logloss),
    ("ece", |m| m.ece),
    ("teacher_auc", |m| m.teacher_auc),
    ("teacher_multi_auc", |m| m.teacher_multi_auc),
    ("cal_teacher_logloss", |m| m.calibrated_teacher_logloss),
    ("cal_teacher_ece", |m| m.calibrated_teacher_ece),
];

/// The metrics a [`CellResult`] summarises, by the names its maps use.
pub const METRICS: [&str; 9] = [
    "auc",
    "gauc",
    "multi_auc",
    "logloss",
    "ece",
    "teacher_auc",
    "teacher_multi_auc",
    "cal_teacher_logloss",
    "cal_teacher_ece",
];

/// The metrics compared with the baseline by [`add_paired`].
pub const PAIRED_METRICS: [&str; 4] = ["auc", "multi_auc", "gauc", "logloss"];

/// Summarises the reports of one cell, one per seed in `seeds` order (at least one).
pub fn summarise(
    config: &str,
    variant: &str,
    seeds: &[u64],
    reports: &[Report],
) -> Result<CellResult> {
    let Some(first) = reports.first() else {
        return Err(ExperimentError::Invalid(format!(
            "{config}/{variant}: no reports to summarise"
        )));
    };
    if reports.len() != seeds.len() {
        return Err(ExperimentError::Invalid(format!(
            "{config}/{variant}: {} reports for {} seeds",
            reports.len(),
            seeds.len()
        )));
    }
    let mut metrics = BTreeMap::new();
    for split in ["valid", "test"] {
        let mut per_task = BTreeMap::new();
        for task in &first.tasks {
            let mut per_metric = BTreeMap::new();
            for (name, get) in GETTERS {
                let values: Vec<f64> = reports
                    .iter()
                    .filter_map(|r| {
                        let by_task = if split == "valid" { &r.valid } else { &r.test };
                        by_task.get(task).and_then(get)
                    })
                    .collect();
                if values.len() == reports.len() {
                    per_metric.insert(name.to_string(), Stat::of(values));
                }
            }
            per_task.insert(task.clone(), per_metric);
        }
        metrics.insert(split.to_string(), per_task);
    }
    Ok(CellResult {
        config: config.to_string(),
        variant: variant.to_string(),
        seeds: seeds.to_vec(),
        metrics,
        valid_mean_auc: Stat::of(reports.iter().map(|r| r.valid_mean_auc).collect()),
        test_mean_auc: Stat::of(reports.iter().map(|r| r.test_mean_auc).collect()),
        train_seconds: Stat::of(reports.iter().map(|r| r.train_seconds).collect()),
        epochs_run: Stat::of(reports.iter().map(|r| r.epochs_run as f64).collect()),
        vs_baseline: BTreeMap::new(),
    })
}

/// Reads the reports of a cell's runs (`<dir>/seed-<s>/report.json`) and summarises them.
pub fn summarise_cell(cell: &Cell, seeds: &[u64]) -> Result<CellResult> {
    let reports = seeds
        .iter()
        .map(|&s| Ok(Report::read(&cell.run_dir(s).join("report.json"))?))
        .collect::<Result<Vec<_>>>()?;
    summarise(&cell.config_name(), &cell.variant, seeds, &reports)
}

/// Fills [`CellResult::vs_baseline`] of every result whose variant is not `baseline`, from the
/// result of the same config with the baseline variant (results without one are left as they
/// are), over [`PAIRED_METRICS`].
pub fn add_paired(results: &mut [CellResult], baseline: &str) {
    let base: BTreeMap<String, CellResult> = results
        .iter()
        .filter(|r| r.variant == baseline)
        .map(|r| (r.config.clone(), r.clone()))
        .collect();
    for r in results.iter_mut().filter(|r| r.variant != baseline) {
        let Some(b) = base.get(&r.config) else {
            continue;
        };
        for (split, tasks) in &r.metrics {
            for (task, ms) in tasks {
                for m in PAIRED_METRICS {
                    let theirs = b
                        .metrics
                        .get(split)
                        .and_then(|t| t.get(task))
                        .and_then(|t| t.get(m));
                    if let (Some(x), Some(y)) = (ms.get(m), theirs) {
                        r.vs_baseline
                            .entry(split.clone())
                            .or_default()
                            .entry(task.clone())
                            .or_default()
                            .insert(m.to_string(), paired(&x.values, &y.values));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A result with one test AUC per seed for task `t`.
    pub(crate) fn result(config: &str, variant: &str, aucs: &[f64]) -> CellResult {
        let mut ms = BTreeMap::new();
        ms.insert("auc".to_string(), Stat::of(aucs.to_vec()));
        let mut tasks = BTreeMap::new();
        tasks.insert("t".to_string(), ms);
        let mut metrics = BTreeMap::new();
        metrics.insert("test".to_string(), tasks);
        let s = |v: f64| Stat::of(vec![v; aucs.len()]);
        CellResult {
            config: config.into(),
            variant: variant.into(),
            seeds: (1..=aucs.len() as u64).collect(),
            metrics,
            valid_mean_auc: Stat::of(aucs.to_vec()),
            test_mean_auc: Stat::of(aucs.to_vec()),
            train_seconds: s(1.0),
            epochs_run: s(2.0),
            vs_baseline: BTreeMap::new(),
        }
    }

    #[test]
    fn paired_against_the_baseline_of_the_same_config() {
        let mut rs = vec![
            result("a", "base", &[0.70, 0.71, 0.72]),
            result("a", "new", &[0.72, 0.72, 0.75]),
            result("b", "new", &[0.9, 0.9, 0.9]),
        ];
        add_paired(&mut rs, "base");
        assert!(rs[0].vs_baseline.is_empty());
        // Brute force: the differences 0.02, 0.01, 0.03 summarised and tested by hand.
        let p = &rs[1].vs_baseline["test"]["t"]["auc"];
        assert_eq!(*p, paired(&[0.72, 0.72, 0.75], &[0.70, 0.71, 0.72]));
        assert!((p.mean_diff - 0.02).abs() < 1e-12);
        assert_eq!((p.wins, p.n), (3, 3));
        // Config `b` has no baseline cell: left alone.
        assert!(rs[2].vs_baseline.is_empty());
    }

    #[test]
    fn results_round_trip_through_json() {
        let mut rs = vec![
            result("a", "base", &[0.5, 0.6]),
            result("a", "x", &[0.6, 0.6]),
        ];
        add_paired(&mut rs, "base");
        let text = serde_json::to_string(&rs).unwrap();
        assert!(
            !text.contains("\"vs_baseline\":{}"),
            "empty maps are left out"
        );
        let back: Vec<CellResult> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, rs);
    }
}
