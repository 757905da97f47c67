//! One optimiser for a whole model: Adam/AdamW over the dense parameters ([`Adam`]), the
//! row-wise optimiser of the embedding tables ([`SparseOptimConfig`]: lazy Adam or Adagrad), the
//! learning rates of the parameter groups, and gradient clipping over both together.
//!
//! A step, for the summed gradient `g = (g_dense, g_tables)` of one batch:
//!
//! ```text
//! s = min(1, grad_clip / ||g||)            (1 when grad_clip = 0)
//! dense:  Adam(w, s g_dense, lr)           calibrators at distill.calibrator_lr
//! tables: row update of the touched rows with s g_tables at embedding_lr (default lr)
//! ```
//!
//! The tables keep their rows' optimiser state beside the rows (in the model crate's
//! `EmbeddingTable`, as fused embedding optimisers do), so a table and its state move together;
//! the dense moments live here. [`Optimizer::save_tensors`] and [`Optimizer::load_tensors`] read
//! and write the dense moments; the model's own tensors hold the tables and their state.

use std::collections::{HashMap, HashSet};

use candle_core::{Tensor, TensorId};
use crossdistil_model::{MultiTaskModel, SparseGrads, SparseOptimConfig};

use crate::config::RunConfig;
use crate::error::Result;
use crate::optim::{Adam, AdamParams, clip_factor, flat_sq_norm};

/// The prefix of the dense optimiser's tensors in a checkpoint; every other tensor is the
/// model's.
pub const OPTIMIZER_PREFIX: &str = "adam.";

/// Learning rates and clipping of one model's optimiser.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerSettings {
    /// The dense optimiser's kind and hyper-parameters.
    pub dense: AdamParams,
    /// The tables' row-wise optimiser.
    pub sparse: SparseOptimConfig,
    /// Learning rate of the dense parameters.
    pub lr: f64,
    /// Learning rate of the embedding tables.
    pub embedding_lr: f64,
    /// Learning rate of the calibrators' parameters (CrossDistil's Platt scalars).
    pub calibrator_lr: f64,
    /// Learning rate of GradNorm's task weights.
    pub gradnorm_lr: f64,
    /// Clip the global gradient norm to this; 0 turns clipping off.
    pub grad_clip: f64,
}

impl OptimizerSettings {
    /// The settings of a run configuration (`[train]`, and `distill.calibrator_lr`).
    pub fn of(cfg: &RunConfig) -> Self {
        let t = &cfg.train;
        OptimizerSettings {
            dense: AdamParams {
                kind: t.optimizer,
                beta1: t.beta1,
                beta2: t.beta2,
                eps: t.eps,
                weight_decay: t.weight_decay,
            },
            sparse: t.sparse_optimizer.clone(),
            lr: t.lr,
            embedding_lr: t.embedding_lr.unwrap_or(t.lr),
            calibrator_lr: cfg.distill.calibrator_lr,
            gradnorm_lr: t.gradnorm_lr.unwrap_or(t.lr),
            grad_clip: t.grad_clip,
        }
    }
}

/// The optimiser of one model: dense moments, the step count, and the settings.
#[derive(Debug)]
pub struct Optimizer {
    settings: OptimizerSettings,
    dense: Adam,
    /// The learning rate of each of the model's parameters, in `model.params().vars()` order:
    /// `calibrator_lr` for the calibrators', `gradnorm_lr` for GradNorm's task weights, `lr` for
    /// the others.
    lrs: Vec<f64>,
}

impl Optimizer {
    /// A fresh optimiser (step 0, no moments) for `model`, whose parameters must not change
    /// afterwards (build teacher heads first).
    pub fn new(model: &MultiTaskModel, settings: OptimizerSettings) -> Self {
        let calibrators: HashSet<TensorId> = model
            .calibrators()
            .iter()
            .flat_map(|c| [c.rho.as_tensor().id(), c.q.as_tensor().id()])
            .collect();
        let lrs = model
            .params()
            .vars()
            .iter()
            .map(|(_, v)| {
                if calibrators.contains(&v.as_tensor().id()) {
                    settings.calibrator_lr
                } else if model
                    .gradnorm()
                    .is_some_and(|(w, _)| w.as_tensor().id() == v.as_tensor().id())
                {
                    settings.gradnorm_lr
                } else {
                    settings.lr
                }
            })
            .collect();
        Optimizer {
            dense: Adam::new(settings.dense),
            settings,
            lrs,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &OptimizerSettings {
        &self.settings
    }

    /// The number of steps taken.
    pub fn step_count(&self) -> u64 {
        self.dense.step
    }

    /// One step: `dense[i]` is the flat gradient of `model.params().vars()[i]` (`None`: no
    /// gradient), `sparse` the tables' gradient rows. Clipping scales both by one factor; the
    /// dense update and the table update are each split over `threads` threads, with the same
    /// result for any `threads`.
    pub fn step(
        &mut self,
        model: &mut MultiTaskModel,
        dense: Vec<Option<Vec<f32>>>,
        sparse: SparseGrads,
        threads: usize,
    ) -> Result<()> {
        let norm = sparse.sq_norm();
        self.step_with_table_norm(model, dense, sparse, threads, norm)
    }

    /// [`Optimizer::step`] where the tables' part of the squared gradient norm is
    /// `table_sq_norm` (a rank of sharded tables holds only its shard's rows of the gradient;
    /// clipping needs the norm of all of them).
    pub fn step_with_table_norm(
        &mut self,
        model: &mut MultiTaskModel,
        dense: Vec<Option<Vec<f32>>>,
        mut sparse: SparseGrads,
        threads: usize,
        table_sq_norm: f64,
    ) -> Result<()> {
        let s = &self.settings;
        let mut scale = 1.0;
        if s.grad_clip > 0.0 {
            scale = clip_factor(flat_sq_norm(&dense) + table_sq_norm, s.grad_clip) as f32;
            if scale != 1.0 {
                sparse.scale(scale);
            }
        }
        let vars = model.params().vars();
        self.dense
            .step_flat(&vars, dense, scale, &self.lrs, threads)?;
        let step = self.dense.step;
        model
            .input_mut()
            .update_on(&sparse, &s.sparse, s.embedding_lr, step, threads)?;
        Ok(())
    }

    /// The dense moments as named tensors (`adam.m.<name>`, `adam.v.<name>`).
    pub fn save_tensors(&self) -> Result<HashMap<String, Tensor>> {
        Ok(self.dense.save_tensors()?)
    }

    /// Restores the dense moments from a checkpoint's tensors (the model's are ignored) and sets
    /// the step count to `step`.
    pub fn load_tensors(&mut self, tensors: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        Ok(self.dense.load_tensors(tensors, step)?)
    }
}

/// The model's tensors of a checkpoint: all but the optimiser's.
pub fn model_tensors(tensors: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    tensors
        .iter()
        .filter(|(k, _)| !k.starts_with(OPTIMIZER_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
