//! What a simulated set turned out to be: realised positive rates, the correlation of the
//! tasks' labels and utilities, and the AUC that the Bayes-optimal probabilities reach on the
//! test split: the ceiling of any model of the same features.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SimulateOptions;
use crate::error::{DataError, Result};
use crate::split::Split;

/// The file beside `dataset.toml` that holds a simulated set's [`SimulationSummary`].
pub const SUMMARY_FILE: &str = "simulation.json";

/// One task of a [`SimulationSummary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// The label column.
    pub name: String,
    /// The positive rate asked for.
    pub requested_rate: f64,
    /// The threshold `t_k` solved for it.
    pub threshold: f64,
    /// The share of positives over all rows.
    pub rate: f64,
    /// The share of positives on the test split.
    pub test_rate: f64,
    /// The mean Bayes probability `p_k` over all rows (the rate expected given the impressions).
    pub mean_p: f64,
    /// The ROC AUC of `p_k` for the task's label on the test split: the best any model of the
    /// user, the item and the noise fields can reach there. `None` when the test split holds
    /// one class only.
    pub bayes_auc: Option<f64>,
    /// The Multi-AUC of `p_k` on the test split over the graded classes of the task (its label
    /// first, the other tasks after in order): a reference point, not a proven ceiling (the
    /// Bayes-optimal ranking of graded classes need not be `p_k`'s).
    pub multi_auc_of_p: Option<f64>,
}

/// The statistics of a simulated set, written as [`SUMMARY_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulationSummary {
    /// The options the set was generated with.
    pub options: SimulateOptions,
    /// The seed.
    pub seed: u64,
    /// Rows written.
    pub rows: u64,
    /// Rows of the test split.
    pub test_rows: u64,
    /// Impressions drawn to solve the thresholds.
    pub threshold_draws: u64,
    /// Per task, in order.
    pub tasks: Vec<TaskSummary>,
    /// `K x K` Pearson (phi) correlation of the tasks' labels over all rows; `None` where a
    /// label is constant.
    pub label_correlation: Vec<Vec<Option<f64>>>,
    /// `K x K` Pearson correlation of the tasks' utilities `s_k` over all rows (expected:
    /// the correlation option off the diagonal).
    pub utility_correlation: Vec<Vec<Option<f64>>>,
}

impl SimulationSummary {
    /// Reads `DIR/simulation.json` of a simulated set.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(SUMMARY_FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, "cannot read", e))?;
        serde_json::from_str(&text).map_err(|e| DataError::file(&path, e.to_string()))
    }

    /// A few lines for a terminal: one row per task, then the label correlations.
    pub fn to_text(&self) -> String {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
        let mut s = format!(
            "simulated {} rows ({} test): requested rate, realised rate (all, test), threshold, Bayes-optimal test AUC, Multi-AUC of p\n",
            self.rows, self.test_rows
        );
        for t in &self.tasks {
            s.push_str(&format!(
                "  {:<12} {:.4}  {:.4} {:.4}  t={:+.4}  AUC {}  Multi-AUC {}\n",
                t.name,
                t.requested_rate,
                t.rate,
                t.test_rate,
                t.threshold,
                opt(t.bayes_auc),
                opt(t.multi_auc_of_p)
            ));
        }
        let k = self.tasks.len();
        for a in 0..k {
            for b in a + 1..k {
                s.push_str(&format!(
                    "  {} ~ {}: label correlation {}, utility correlation {}\n",
                    self.tasks[a].name,
                    self.tasks[b].name,
                    opt(self.label_correlation[a][b]),
                    opt(self.utility_correlation[a][b])
                ));
            }
        }
        s
    }
}

/// The sums of the `K` utilities of a run of rows: `Σ s_k` and `Σ s_j s_k`.
#[derive(Debug, Clone)]
pub(crate) struct Moments {
    pub(crate) n: u64,
    pub(crate) sum: Vec<f64>,
    pub(crate) cross: Vec<f64>,
}

impl Moments {
    pub(crate) fn new(k: usize) -> Self {
        Moments {
            n: 0,
            sum: vec![0.0; k],
            cross: vec![0.0; k * k],
        }
    }

    /// Adds one row's utilities.
    pub(crate) fn add(&mut self, s: &[f64]) {
        let k = s.len();
        self.n += 1;
        for a in 0..k {
            self.sum[a] += s[a];
            for b in 0..k {
                self.cross[a * k + b] += s[a] * s[b];
            }
        }
    }

    fn merge(&mut self, other: &Moments) {
        self.n += other.n;
        for (a, b) in self.sum.iter_mut().zip(&other.sum) {
            *a += b;
        }
        for (a, b) in self.cross.iter_mut().zip(&other.cross) {
            *a += b;
        }
    }

    /// The `K x K` Pearson correlations, `None` where a column is constant.
    fn correlation(&self) -> Vec<Vec<Option<f64>>> {
        let k = self.sum.len();
        let n = self.n.max(1) as f64;
        let cov =
            |a: usize, b: usize| self.cross[a * k + b] / n - self.sum[a] * self.sum[b] / n / n;
        (0..k)
            .map(|a| {
                (0..k)
                    .map(|b| {
                        let r = cov(a, b) / (cov(a, a) * cov(b, b)).sqrt();
                        r.is_finite().then_some(r)
                    })
                    .collect()
            })
            .collect()
    }
}

/// The running statistics of a simulated set: fed every chunk as it is written.
pub(crate) struct Tally {
    utilities: Moments,
    labels: Moments,
    sum_p: Vec<f64>,
    test_labels: Vec<Vec<u8>>,
    test_p: Vec<Vec<f32>>,
}

impl Tally {
    pub(crate) fn new(k: usize) -> Self {
        Tally {
            utilities: Moments::new(k),
            labels: Moments::new(k),
            sum_p: vec![0.0; k],
            test_labels: vec![vec![]; k],
            test_p: vec![vec![]; k],
        }
    }

    /// Adds a chunk: its utilities' moments, its labels `y[k][row]`, probabilities `p[k][row]`
    /// and the split of each row.
    pub(crate) fn add(&mut self, moments: &Moments, y: &[&[u8]], p: &[&[f32]], splits: &[Split]) {
        self.utilities.merge(moments);
        let k = y.len();
        let mut row = vec![0.0; k];
        for (i, split) in splits.iter().enumerate() {
            for (r, y) in row.iter_mut().zip(y) {
                *r = f64::from(y[i]);
            }
            self.labels.add(&row);
            if *split == Split::Test {
                for t in 0..k {
                    self.test_labels[t].push(y[t][i]);
                    self.test_p[t].push(p[t][i]);
                }
            }
        }
        for (s, p) in self.sum_p.iter_mut().zip(p) {
            *s += p.iter().map(|&x| f64::from(x)).sum::<f64>();
        }
    }

    /// The summary, with the Bayes AUCs of the test split.
    pub(crate) fn finish(
        self,
        options: &SimulateOptions,
        seed: u64,
        thresholds: &[f64],
        threshold_draws: usize,
    ) -> SimulationSummary {
        let names = options.task_names();
        let n = self.labels.n.max(1) as f64;
        let test_rows = self.test_labels.first().map_or(0, Vec::len);
        let labels: Vec<&[u8]> = self.test_labels.iter().map(Vec::as_slice).collect();
        let tasks = names
            .into_iter()
            .enumerate()
            .map(|(k, name)| {
                let test_rate = self.test_labels[k]
                    .iter()
                    .map(|&y| f64::from(y))
                    .sum::<f64>()
                    / test_rows.max(1) as f64;
                let bayes_auc = crossdistil_metrics::auc(&self.test_p[k], &self.test_labels[k])
                    .ok()
                    .flatten();
                let multi_auc_of_p = crossdistil_metrics::graded_classes(&labels, k)
                    .and_then(|c| {
                        crossdistil_metrics::multi_auc(&self.test_p[k], &c, 1 << labels.len())
                    })
                    .ok()
                    .and_then(|m| m.value);
                TaskSummary {
                    name,
                    requested_rate: options.positive_rates[k],
                    threshold: thresholds[k],
                    rate: self.labels.sum[k] / n,
                    test_rate,
                    mean_p: self.sum_p[k] / n,
                    bayes_auc,
                    multi_auc_of_p,
                }
            })
            .collect();
        SimulationSummary {
            options: options.clone(),
            seed,
            rows: self.labels.n,
            test_rows: test_rows as u64,
            threshold_draws: threshold_draws as u64,
            tasks,
            label_correlation: self.labels.correlation(),
            utility_correlation: self.utilities.correlation(),
        }
    }
}
