//! The run configuration, one TOML file: which tasks, the model, and how to train it.
//!
//! ```toml
//! tasks = ["income", "never_married"]   # default: every task of the data, in priority order
//!
//! [model]                               # crossdistil-model's ModelConfig
//! embedding_dim = 16
//! [model.backbone]
//! type = "mmoe"
//! [model.teacher]                       # the teacher heads, when [distill] needs them
//! hidden = [64]
//!
//! [train]
//! epochs = 10
//! batch_size = 1024
//! lr = 0.001
//!
//! [distill]                             # crossdistil-loss's DistillConfig
//! mode = "crossdistil"
//! ```

use std::path::Path;

use crossdistil_core::ConfigError;
use crossdistil_data::DatasetSpec;
use crossdistil_loss::DistillConfig;
use crossdistil_model::{ModelConfig, SparseOptimConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::optim::OptimizerKind;

/// Everything a run needs besides the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The tasks to train, in priority order; empty means every task of the data set.
    #[serde(default)]
    pub tasks: Vec<String>,
    /// The model: embeddings, backbone, task heads and teachers (`[model]`).
    #[serde(default)]
    pub model: ModelConfig,
    /// The training loop's settings (`[train]`).
    #[serde(default)]
    pub train: TrainSettings,
    /// CrossDistil and its baselines; off by default (the backbone alone).
    #[serde(default)]
    pub distill: DistillConfig,
}

/// The training loop's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSettings {
    /// Passes over the train split (at most; early stopping may end sooner).
    pub epochs: usize,
    /// Rows per training step (cut into `workers` shards).
    pub batch_size: usize,
    /// Batch size of evaluation passes (1024). Larger batches score more slowly on a CPU: their
    /// hidden activations no longer fit the caches (docs/performance.md).
    pub eval_batch_size: usize,
    /// Learning rate of the dense parameters (and of the embeddings unless `embedding_lr`).
    pub lr: f64,
    /// Learning rate of the embedding tables; default `lr`.
    pub embedding_lr: Option<f64>,
    /// `adam` (L2 in the gradient) or `adamw` (decoupled decay).
    pub optimizer: OptimizerKind,
    /// Weight decay `wd` of the dense parameters, applied as `optimizer` says; 0 turns it off.
    pub weight_decay: f64,
    /// Adam's decay `b1` of the first moment.
    pub beta1: f64,
    /// Adam's decay `b2` of the second moment.
    pub beta2: f64,
    /// Adam's `eps`, added to the denominator `sqrt(v_hat) + eps`.
    pub eps: f64,
    /// The row-wise optimiser of the embedding tables.
    pub sparse_optimizer: SparseOptimConfig,
    /// Clip the global gradient norm to this; 0 turns clipping off.
    pub grad_clip: f64,
    /// Weight of each task's loss, in task order; empty means 1 for every task.
    pub task_weights: Vec<f32>,
    /// `fixed` (the `task_weights`); `uncertainty`: each task's BCE also weighted by
    /// `exp(-s_k)`, plus `s_k / 2`, with the log-variances `s_k` learned (Kendall et al. 2018);
    /// or `gradnorm`: each task's BCE also weighted by a learned `w_k` that balances the tasks'
    /// gradient norms (Chen et al. 2018, see `crate::gradnorm`).
    pub task_weighting: TaskWeighting,
    /// GradNorm's asymmetry `alpha >= 0`: how strongly a task that trains more slowly than the
    /// others (its loss ratio `L_k(t) / L_k(0)` higher) is given a larger gradient norm; 0 only
    /// equalises the norms. Read with `task_weighting = "gradnorm"`.
    pub gradnorm_alpha: f64,
    /// The learning rate of GradNorm's task weights `w_k` (Adam, with the dense parameters);
    /// default `lr`.
    pub gradnorm_lr: Option<f64>,
    /// Seeds initialisation, shuffling and dropout.
    pub seed: u64,
    /// Stop after this many validations without a better mean validation AUC; 0 never stops early.
    pub patience: usize,
    /// Also validate every this many steps; 0 validates once per epoch only.
    pub eval_every: usize,
    /// Data-parallel worker threads: each step's batch is cut into this many shards trained on
    /// their own cores, their gradients summed before one update (see `crate::step`). Results
    /// are deterministic for a fixed number of workers. At most `batch_size` and
    /// [`MAX_WORKERS`].
    pub workers: usize,
    /// Stop the run as diverged when the mean loss of recent steps exceeds this factor times
    /// the mean loss of the first steps (see `crate::divergence`); 0 turns the check off.
    pub divergence_factor: f64,
    /// Read the data a row group at a time instead of loading it (see `crate::stream`):
    /// memory is set by `shuffle_buffer`, not by the number of rows.
    pub stream: bool,
    /// With `stream`: rows of the train split shuffled together. Each epoch fills the buffer
    /// with row groups in a seeded order, shuffles it and trains on it, then fills it again;
    /// a buffer at least as large as the train split gives the batches of the in-memory path.
    pub shuffle_buffer: usize,
    /// With `stream`: threads that read and decode row groups ahead of training.
    pub readers: usize,
    /// Also commit a checkpoint every this many steps inside an epoch (the position in the
    /// epoch is part of it, so a resumed run continues exactly); 0 commits at the end of each
    /// epoch only. For long epochs, streamed ones above all.
    pub checkpoint_every: usize,
    /// On several ranks (`mpirun`): `sharded` (each rank holds the rows of the ids `id % ranks
    /// == rank` and their optimiser state, fetched and updated per step) or `replicated`
    /// (every rank holds every table). One process ignores it.
    pub tables: TableLayout,
}

/// How the tasks' losses are weighted (`[train] task_weighting`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskWeighting {
    /// `task_weights` as given.
    #[default]
    Fixed,
    /// Uncertainty weighting: learned log-variances per task (`weighting.log_var`).
    Uncertainty,
    /// GradNorm: learned task weights (`weighting.gradnorm`) that balance the tasks' gradient
    /// norms at the shared embeddings.
    Gradnorm,
}

/// How the embedding tables are laid out over the ranks of a distributed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableLayout {
    /// Each rank holds its shard of every table (see [`crate::dist`]).
    #[default]
    Sharded,
    /// Each rank holds every table.
    Replicated,
}

/// The most data-parallel workers a run accepts.
pub const MAX_WORKERS: usize = 1024;
/// The largest `batch_size` and `eval_batch_size` a run accepts.
pub const MAX_BATCH: usize = 1 << 24;
/// The most `epochs` a run accepts.
pub const MAX_EPOCHS: usize = 1_000_000;
/// The largest `shuffle_buffer` a run accepts, in rows.
pub const MAX_SHUFFLE_BUFFER: usize = 1 << 32;
/// The most `readers` a run accepts.
pub const MAX_READERS: usize = 64;

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            epochs: 10,
            batch_size: 1024,
            eval_batch_size: 1024,
            lr: 1e-3,
            embedding_lr: None,
            optimizer: OptimizerKind::Adam,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            sparse_optimizer: SparseOptimConfig::default(),
            grad_clip: 0.0,
            task_weights: Vec::new(),
            task_weighting: TaskWeighting::Fixed,
            gradnorm_alpha: 1.5,
            gradnorm_lr: None,
            seed: 42,
            patience: 2,
            eval_every: 0,
            workers: 1,
            divergence_factor: 10.0,
            stream: false,
            shuffle_buffer: 1_000_000,
            readers: 2,
            checkpoint_every: 0,
            tables: TableLayout::Sharded,
        }
    }
}

/// Appends the differing keys below `prefix` of `a` and `b` to `out`.
fn diff_values(prefix: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match (a, b) {
        (toml::Value::Table(ta), toml::Value::Table(tb)) => {
            let keys: std::collections::BTreeSet<&String> = ta.keys().chain(tb.keys()).collect();
            for k in keys {
                match (ta.get(k), tb.get(k)) {
                    (Some(va), Some(vb)) => diff_values(&key(k), va, vb, out),
                    (va, vb) => out.push(format!(
                        "{}: run has {}, given {}",
                        key(k),
                        show(va),
                        show(vb)
                    )),
                }
            }
        }
        _ if a != b => out.push(format!(
            "{prefix}: run has {}, given {}",
            show(Some(a)),
            show(Some(b))
        )),
        _ => {}
    }
}

/// A value as TOML writes it inline, capped to a few dozen characters.
fn show(v: Option<&toml::Value>) -> String {
    let Some(v) = v else {
        return "no value".into();
    };
    let text = v.to_string();
    if text.chars().count() > 48 {
        format!("{}...", text.chars().take(45).collect::<String>())
    } else {
        text
    }
}

fn bad(key: &str, problem: impl std::fmt::Display) -> TrainError {
    TrainError::Config(format!("{key} {problem}"))
}

/// `0 < v <= max`.
fn count(key: &str, v: usize, max: usize) -> std::result::Result<(), ConfigError> {
    if v == 0 {
        Err(ConfigError::new(key, "must be > 0"))
    } else if v > max {
        Err(ConfigError::new(
            key,
            format!("must be at most {max} (got {v})"),
        ))
    } else {
        Ok(())
    }
}

/// A finite `v > 0`.
fn rate(key: &str, v: f64) -> std::result::Result<(), ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("must be a positive number (got {v})"),
        ))
    }
}

impl TrainSettings {
    /// Checks every value that serde cannot; the error names the key relative to the `[train]`
    /// table (`lr`).
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        count("epochs", self.epochs, MAX_EPOCHS)?;
        count("batch_size", self.batch_size, MAX_BATCH)?;
        count("eval_batch_size", self.eval_batch_size, MAX_BATCH)?;
        count("workers", self.workers, MAX_WORKERS.min(self.batch_size)).map_err(|e| {
            ConfigError::new(
                e.key,
                format!("{}; each worker needs rows of a batch", e.problem),
            )
        })?;
        count("shuffle_buffer", self.shuffle_buffer, MAX_SHUFFLE_BUFFER)?;
        count("readers", self.readers, MAX_READERS)?;
        rate("lr", self.lr)?;
        if let Some(lr) = self.embedding_lr {
            rate("embedding_lr", lr)?;
        }
        rate("eps", self.eps)?;
        if let Some(lr) = self.gradnorm_lr {
            rate("gradnorm_lr", lr)?;
        }
        if !(self.gradnorm_alpha >= 0.0 && self.gradnorm_alpha.is_finite()) {
            return Err(ConfigError::new(
                "gradnorm_alpha",
                format!("must be a finite number >= 0 (got {})", self.gradnorm_alpha),
            ));
        }
        for (key, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(ConfigError::new(
                    key,
                    format!("must be in [0, 1) (got {b})"),
                ));
            }
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(ConfigError::new("weight_decay", "must be >= 0"));
        }
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            return Err(ConfigError::new(
                "grad_clip",
                "must be >= 0 (0 turns clipping off)",
            ));
        }
        let w = &self.task_weights;
        if w.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(ConfigError::new(
                "task_weights",
                "must all be finite and >= 0",
            ));
        }
        if !w.is_empty() && w.iter().all(|&w| w == 0.0) {
            return Err(ConfigError::new("task_weights", "must not all be 0"));
        }
        let f = self.divergence_factor;
        if !(f.is_finite() && (f == 0.0 || f > 1.0)) {
            return Err(ConfigError::new(
                "divergence_factor",
                format!("must be > 1, or 0 to turn the check off (got {f})"),
            ));
        }
        self.sparse_optimizer
            .validate()
            .map_err(|e| e.within("sparse_optimizer"))
    }
}

/// A list of one value per task, `key` (`len` of them, empty meaning the default for every
/// task), checked against the `tasks` of the run.
fn per_task(key: &str, what: &str, len: usize, tasks: usize) -> Result<()> {
    if len == 0 || len == tasks {
        return Ok(());
    }
    Err(bad(
        key,
        format!("has {len} {what} for {tasks} tasks (one per task, in task order)"),
    ))
}

impl RunConfig {
    /// Reads and checks a TOML file; unknown keys, unknown backbones and bad values are refused
    /// with a message naming the key.
    pub fn from_file(path: &Path) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TrainError::Config(format!("{}: cannot read: {e}", path.display())))?;
        RunConfig::from_toml(&text).map_err(|e| match e {
            TrainError::Config(m) => TrainError::Config(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Parses and checks a configuration from TOML text, as [`RunConfig::from_file`] does.
    pub fn from_toml(text: &str) -> Result<RunConfig> {
        let cfg: RunConfig = toml::from_str(text).map_err(|e| TrainError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value that serde cannot; the message names the full key
    /// (`train.lr must be a positive number (got 0)`).
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(|e| TrainError::Config(e.to_string()))
    }

    /// [`RunConfig::validate`]'s checks, section by section.
    fn check(&self) -> std::result::Result<(), ConfigError> {
        self.model.validate()?;
        self.train.validate().map_err(|e| e.within("train"))?;
        let n_weights = self.train.task_weights.len();
        if !self.tasks.is_empty() && n_weights != 0 && n_weights != self.tasks.len() {
            return Err(ConfigError::new(
                "train.task_weights",
                format!("has {n_weights} weights for {} tasks", self.tasks.len()),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for name in &self.tasks {
            if !seen.insert(name) {
                return Err(ConfigError::new("tasks", format!("names `{name}` twice")));
            }
        }
        self.distill.validate().map_err(|e| e.within("distill"))?;
        if self.train.stream && self.distill.extra_positives.iter().any(|&n| n > 0) {
            return Err(ConfigError::new(
                "distill.extra_positives",
                "draws from the positives of the whole train split, which a streamed run does not hold: set train.stream = false, or remove extra_positives",
            ));
        }
        Ok(())
    }

    /// The keys whose values differ between this (a run's saved, resolved configuration) and
    /// `given`, each as `key: run has A, given B`; empty when they agree. An empty `tasks` in
    /// `given` means "the run's tasks" and agrees with any.
    pub fn differences(&self, given: &RunConfig) -> Vec<String> {
        let mut given = given.clone();
        if given.tasks.is_empty() {
            given.tasks = self.tasks.clone();
        }
        let (Ok(a), Ok(b)) = (toml::Value::try_from(self), toml::Value::try_from(&given)) else {
            return vec!["(the configurations cannot be compared)".into()];
        };
        let mut out = Vec::new();
        diff_values("", &a, &b, &mut out);
        out
    }

    /// The data set's label indices of the configured tasks, in order.
    pub fn task_indices(&self, spec: &DatasetSpec) -> Result<Vec<usize>> {
        let names = spec.task_names();
        let idx: Vec<usize> = if self.tasks.is_empty() {
            (0..names.len()).collect()
        } else {
            self.tasks
                .iter()
                .map(|t| {
                    names.iter().position(|n| n == t).ok_or_else(|| {
                        bad(
                            "tasks",
                            format!(
                                "names `{t}`, which data set `{}` lacks (its tasks: {})",
                                spec.name,
                                names.join(", ")
                            ),
                        )
                    })
                })
                .collect::<Result<_>>()?
        };
        per_task(
            "train.task_weights",
            "weights",
            self.train.task_weights.len(),
            idx.len(),
        )?;
        per_task(
            "distill.task_alpha",
            "factors",
            self.distill.task_alpha.len(),
            idx.len(),
        )?;
        per_task(
            "distill.extra_positives",
            "counts",
            self.distill.extra_positives.len(),
            idx.len(),
        )?;
        Ok(idx)
    }

    /// The loss weight of each task.
    pub fn task_weights(&self, n_tasks: usize) -> Vec<f32> {
        if self.train.task_weights.is_empty() {
            vec![1.0; n_tasks]
        } else {
            self.train.task_weights.clone()
        }
    }
}
