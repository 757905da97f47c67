//! `RUN/report.json`: the final metrics, the configuration and the cost of training.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::dist::RankCosts;
use crate::error::{Result, TrainError};
use crate::evaluate::{SplitMetrics, TaskMetrics, metrics_table};
use crate::run::{TrainState, write_atomic};

/// The contents of `RUN/report.json`: the final metrics, the configuration and the cost of
/// training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The data folder the run trained on.
    pub data: String,
    /// The model's tasks, in priority order.
    pub tasks: Vec<String>,
    /// The best model's metrics on the validation split, by task name.
    pub valid: BTreeMap<String, TaskMetrics>,
    /// The best model's metrics on the test split, by task name.
    pub test: BTreeMap<String, TaskMetrics>,
    /// The best model's mean AUC over the tasks on the validation split.
    pub valid_mean_auc: f64,
    /// The best model's mean AUC over the tasks on the test split.
    pub test_mean_auc: f64,
    /// Epochs completed when the best validation was taken; `None` before any validation.
    pub best_epoch: Option<usize>,
    /// Epochs completed.
    pub epochs_run: usize,
    /// Optimiser steps taken.
    pub steps: u64,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
    /// The run's configuration.
    pub config: RunConfig,
    /// Wall-clock training time in seconds, summed over resumed calls.
    pub train_seconds: f64,
    /// Training throughput, `rows_seen / train_seconds` in rows/s.
    pub rows_per_second: f64,
    /// On several ranks (`mpirun`): what the steps cost in exchanges between the ranks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributed: Option<RankCosts>,
}

impl Report {
    /// The report of a finished run: the final `valid` and `test` metrics, and the state `s`.
    pub fn new(
        data: &Path,
        cfg: &RunConfig,
        tasks: &[String],
        valid: SplitMetrics,
        test: SplitMetrics,
        s: &TrainState,
    ) -> Self {
        Report {
            data: data.display().to_string(),
            tasks: tasks.to_vec(),
            valid_mean_auc: valid.mean_auc,
            test_mean_auc: test.mean_auc,
            valid: valid.tasks,
            test: test.tasks,
            best_epoch: s.best_epoch,
            epochs_run: s.epochs_done,
            steps: s.step,
            stopped_early: s.stopped_early,
            config: cfg.clone(),
            train_seconds: s.train_seconds,
            rows_per_second: s.rows_seen as f64 / s.train_seconds.max(1e-9),
            distributed: None,
        }
    }

    /// Writes the report to `path` as pretty-printed JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| TrainError::run(path, e.to_string()))?;
        write_atomic(path, &json)
    }

    /// Reads a report that [`Report::write`] wrote.
    pub fn read(path: &Path) -> Result<Report> {
        let bytes =
            std::fs::read(path).map_err(|e| TrainError::run(path, format!("cannot read: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| TrainError::run(path, format!("not a report: {e}")))
    }

    /// The metric tables of valid and test, and the cost line.
    pub fn to_table(&self) -> String {
        let split = |tasks: &BTreeMap<String, TaskMetrics>, mean| SplitMetrics {
            tasks: tasks.clone(),
            mean_auc: mean,
        };
        let mut s = metrics_table(
            "valid (best model)",
            &self.tasks,
            &split(&self.valid, self.valid_mean_auc),
        );
        s.push_str(&metrics_table(
            "test",
            &self.tasks,
            &split(&self.test, self.test_mean_auc),
        ));
        s.push_str(&format!(
            "trained {} epochs ({} steps, best epoch {}{}) in {:.1} s, {:.0} rows/s\n",
            self.epochs_run,
            self.steps,
            self.best_epoch.map_or("-".into(), |e| e.to_string()),
            if self.stopped_early {
                ", stopped early"
            } else {
                ""
            },
            self.train_seconds,
            self.rows_per_second
        ));
        if let Some(d) = &self.distributed {
            s.push_str(&format!(
                "on {} ranks x {} workers, {} tables: {:.0} KiB sent per rank and step, {:.1}% of \
                 the step time in exchanges\n",
                d.ranks,
                d.workers,
                d.tables,
                d.bytes_sent_per_step / 1024.0,
                100.0 * d.comm_share
            ));
        }
        s
    }
}
