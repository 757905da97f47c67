//! Metrics of a model's predictions on one split, per task.

use std::collections::BTreeMap;

use crossdistil_data::{Dataset, dense_groups};
use crossdistil_metrics as m;
use serde::{Deserialize, Serialize};

use crossdistil_model::MultiTaskModel;

use crate::error::Result;
use crate::predict::{Predictions, predict_all_on};

/// Bins of the expected calibration error.
pub const ECE_BINS: usize = 15;

/// The metrics of one task's predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMetrics {
    /// ROC AUC of the student's probabilities; `None` when the rows hold only one class.
    pub auc: Option<f64>,
    /// Mean binary cross-entropy of the student's probabilities; `None` on no rows.
    pub logloss: Option<f64>,
    /// Per-user AUC weighted by rows; `None` when the data has no user column.
    pub gauc: Option<f64>,
    /// Users left out of the GAUC because all their rows have one label; `None` without a user
    /// column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gauc_users_skipped: Option<u64>,
    /// Mean pairwise AUC over the task's ordered label-combination classes.
    pub multi_auc: Option<f64>,
    /// Expected calibration error over [`ECE_BINS`] equal-width bins; `None` on no rows.
    pub ece: Option<f64>,
    /// Rows with label 1.
    pub positives: usize,
    /// Rows evaluated.
    pub rows: usize,
    /// The teacher head's ranking scores: AUC and Multi-AUC (models with teachers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_auc: Option<f64>,
    /// Multi-AUC of the teacher's ranking scores (models with teachers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_multi_auc: Option<f64>,
    /// The calibrated teacher `sigmoid(P r + Q)`: log loss and ECE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrated_teacher_logloss: Option<f64>,
    /// ECE of the calibrated teacher over [`ECE_BINS`] bins (models with teachers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrated_teacher_ece: Option<f64>,
    /// The calibrated teacher's reliability bins (for reliability diagrams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrated_teacher_bins: Option<Vec<m::Bin>>,
}

/// Metrics of every task on one split, and the mean AUC that early stopping watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitMetrics {
    /// The metrics of each task, by task name.
    pub tasks: BTreeMap<String, TaskMetrics>,
    /// The mean AUC over the tasks (a task without an AUC counts as 0.5).
    pub mean_auc: f64,
}

/// Computes every metric. `probs[t]` holds task `t`'s probabilities for `rows` (in order);
/// `tasks` are the dataset's label indices of the model's tasks, in the model's order (which is
/// the priority order of the graded classes).
pub fn evaluate(
    ds: &Dataset,
    rows: &[u32],
    tasks: &[usize],
    pred: &Predictions,
) -> Result<SplitMetrics, m::MetricError> {
    let labels: Vec<Vec<u8>> = ds
        .labels
        .iter()
        .map(|l| rows.iter().map(|&r| l.values[r as usize]).collect())
        .collect();
    let groups: Option<Vec<u32>> = ds
        .users
        .as_ref()
        .map(|u| dense_groups(rows.iter().map(|&r| u[r as usize] as u64)));
    let names: Vec<String> = ds.labels.iter().map(|l| l.name.clone()).collect();
    metrics_of(&names, tasks, &labels, groups.as_deref(), pred)
}

/// The metrics of predictions `pred` of tasks `tasks` (label indices), given every label
/// column over the predicted rows (`labels[label][row]`, named `names[label]`) and the rows'
/// groups for GAUC when there are users. GAUC sums over the groups in the order of their
/// numbers: groups numbered in order of first appearance
/// ([`dense_groups`](crossdistil_data::dense_groups)) give the same bits however the rows
/// were read.
pub fn metrics_of(
    names: &[String],
    tasks: &[usize],
    labels: &[Vec<u8>],
    groups: Option<&[u32]>,
    pred: &Predictions,
) -> Result<SplitMetrics, m::MetricError> {
    let probs = &pred.student;
    let labels: Vec<&Vec<u8>> = tasks.iter().map(|&t| &labels[t]).collect();
    let label_refs: Vec<&[u8]> = labels.iter().map(|v| v.as_slice()).collect();
    let n_classes = 1u32 << tasks.len();
    let mut out = BTreeMap::new();
    let mut aucs = Vec::new();
    for (k, &t) in tasks.iter().enumerate() {
        let (p, y) = (&probs[k], &labels[k]);
        let auc = m::auc(p, y)?;
        let g = match groups {
            Some(g) => Some(m::gauc(p, y, g)?),
            None => None,
        };
        let classes = m::graded_classes(&label_refs, k)?;
        let metrics = TaskMetrics {
            auc,
            logloss: m::log_loss(p, y)?,
            gauc: g.as_ref().and_then(|g| g.value),
            gauc_users_skipped: g.as_ref().map(|g| g.users_skipped),
            multi_auc: m::multi_auc(p, &classes, n_classes)?.value,
            ece: m::calibration(p, y, ECE_BINS)?.map(|c| c.ece),
            positives: y.iter().map(|&v| v as usize).sum(),
            rows: y.len(),
            teacher_auc: None,
            teacher_multi_auc: None,
            calibrated_teacher_logloss: None,
            calibrated_teacher_ece: None,
            calibrated_teacher_bins: None,
        };
        let mut metrics = metrics;
        if let (Some(scores), Some(cal)) = (&pred.teacher, &pred.calibrated) {
            metrics.teacher_auc = m::auc(&scores[k], y)?;
            metrics.teacher_multi_auc = m::multi_auc(&scores[k], &classes, n_classes)?.value;
            metrics.calibrated_teacher_logloss = m::log_loss(&cal[k], y)?;
            let c = m::calibration(&cal[k], y, ECE_BINS)?;
            metrics.calibrated_teacher_ece = c.as_ref().map(|c| c.ece);
            metrics.calibrated_teacher_bins = c.map(|c| c.bins);
        }
        aucs.push(auc.unwrap_or(0.5));
        out.insert(names[t].clone(), metrics);
    }
    let mean_auc = aucs.iter().sum::<f64>() / aucs.len().max(1) as f64;
    Ok(SplitMetrics {
        tasks: out,
        mean_auc,
    })
}

/// A readable table of one split's metrics, tasks in the given order.
pub fn metrics_table(title: &str, order: &[String], metrics: &SplitMetrics) -> String {
    use std::fmt::Write;
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let w = order.iter().map(|t| t.len()).max().unwrap_or(4).max(4);
    let teachers = metrics.tasks.values().any(|m| m.teacher_auc.is_some());
    let mut s = String::new();
    let _ = writeln!(s, "{title}");
    let _ = write!(
        s,
        "  {:w$}  {:>7}  {:>7}  {:>9}  {:>7}  {:>7}",
        "task", "AUC", "GAUC", "Multi-AUC", "logloss", "ECE"
    );
    if teachers {
        let _ = write!(
            s,
            "  | teacher {:>7}  {:>9}  calibrated: {:>7}  {:>7}",
            "AUC", "Multi-AUC", "logloss", "ECE"
        );
    }
    let _ = writeln!(s);
    for t in order {
        if let Some(m) = metrics.tasks.get(t) {
            let _ = write!(
                s,
                "  {:w$}  {:>7}  {:>7}  {:>9}  {:>7}  {:>7}",
                t,
                f(m.auc),
                f(m.gauc),
                f(m.multi_auc),
                f(m.logloss),
                f(m.ece)
            );
            if teachers {
                let _ = write!(
                    s,
                    "  |         {:>7}  {:>9}              {:>7}  {:>7}",
                    f(m.teacher_auc),
                    f(m.teacher_multi_auc),
                    f(m.calibrated_teacher_logloss),
                    f(m.calibrated_teacher_ece)
                );
            }
            let _ = writeln!(s);
        }
    }
    let _ = writeln!(s, "  mean AUC {:.4}", metrics.mean_auc);
    s
}

/// The model's metrics on `rows`, predicted on `threads` threads.
pub fn evaluate_model(
    model: &MultiTaskModel,
    ds: &Dataset,
    rows: &[u32],
    tasks: &[usize],
    batch_size: usize,
    threads: usize,
) -> Result<SplitMetrics> {
    let pred = predict_all_on(model, ds, rows, batch_size, threads)?;
    Ok(evaluate(ds, rows, tasks, &pred)?)
}
