//! `RUN/report.json`: the final metrics, the configuration and the cost of training.

use std::collections::BTreeMap;
use std::path::Path;

use crossdistil_data::Dataset;
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::evaluate::{SplitMetrics, TaskMetrics, metrics_table};
use crate::run::{TrainState, write_atomic};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub data: String,
    pub tasks: Vec<String>,
    pub valid: BTreeMap<String, TaskMetrics>,
    pub test: BTreeMap<String, TaskMetrics>,
    pub valid_mean_auc: f64,
    pub test_mean_auc: f64,
    pub best_epoch: Option<usize>,
    pub epochs_run: usize,
    pub steps: u64,
    pub stopped_early: bool,
    pub config: RunConfig,
    pub train_seconds: f64,
    pub rows_per_second: f64,
}

impl Report {
    pub fn new(
        ds: &Dataset,
        cfg: &RunConfig,
        tasks: &[String],
        valid: SplitMetrics,
        test: SplitMetrics,
        s: &TrainState,
    ) -> Self {
        Report {
            data: ds.dir.display().to_string(),
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
        }
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| TrainError::run(path, e.to_string()))?;
        write_atomic(path, &json)
    }

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
        s
    }
}
