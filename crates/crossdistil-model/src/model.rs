//! The multi-task ranking model: feature input, backbone, one tower per task.

use std::collections::{BTreeMap, HashMap};

use candle_core::{Device, Result, Tensor, Var};
use crossdistil_core::Batch;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backbone::{Backbone, BackboneConfig};
use crate::config::{ConfigError, non_negative, positive, rate, to_candle};
use crate::device::ensure_cpu;
use crate::dropout::dropout;
use crate::init::Init;
use crate::input::{FeatureInput, Gathered};
use crate::mlp::MlpConfig;
use crate::mode::Mode;
use crate::params::ParamStore;
use crate::teacher::{Calibrator, TeacherConfig, TeacherHead};
use crate::tower::Tower;
use crossdistil_core::InputSchema;

/// The `[model]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Embedding size of every categorical field (16).
    pub embedding_dim: usize,
    /// Per-field overrides of `embedding_dim`, by feature name.
    pub field_dims: BTreeMap<String, usize>,
    /// Standard deviation of the `N(0, std^2)` initialisation of the embedding tables (0.01).
    pub embedding_init_std: f32,
    /// Shared-Bottom `[256, 128]` by default.
    pub backbone: BackboneConfig,
    /// Hidden layers of every task's tower before its logit (`[64]`).
    pub tower: MlpConfig,
    /// Dropout on the input `x = [emb | dense]` in training (0: off). Each MLP has its own rate.
    pub dropout: f32,
    /// The teacher heads, built by [`MultiTaskModel::with_teachers`] when the objective needs
    /// them (a linear head on each task's representation by default).
    pub teacher: TeacherConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            embedding_dim: 16,
            field_dims: BTreeMap::new(),
            embedding_init_std: 0.01,
            backbone: BackboneConfig::default(),
            tower: MlpConfig::new(vec![64]),
            dropout: 0.0,
            teacher: TeacherConfig::default(),
        }
    }
}

impl ModelConfig {
    /// Checks every value; the error names the key ("model.backbone.experts must be > 0").
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        let check = || -> std::result::Result<(), ConfigError> {
            positive("embedding_dim", self.embedding_dim)?;
            for (name, &d) in &self.field_dims {
                positive(&format!("field_dims.{name}"), d)?;
            }
            non_negative("embedding_init_std", self.embedding_init_std as f64)?;
            self.backbone.validate().map_err(|e| e.within("backbone"))?;
            self.tower.validate().map_err(|e| e.within("tower"))?;
            rate("dropout", self.dropout)?;
            self.teacher.validate().map_err(|e| e.within("teacher"))
        };
        check().map_err(|e| e.within("model"))
    }
}

/// The result of a forward pass.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The batch's input; pass it to [`FeatureInput::apply_grads`] after the backward pass.
    pub gathered: Gathered,
    /// Per task, the backbone's representation `[b, repr_dim]`.
    pub reprs: Vec<Tensor>,
    /// `[b, n_tasks]`.
    pub logits: Tensor,
    /// The teacher heads' ranking scores `[b, n_tasks]`, when the model has teachers.
    pub teacher_scores: Option<Tensor>,
}

/// Feature input, backbone and towers. Dense parameters (backbone and towers) live in the
/// [`ParamStore`] and train with any candle optimiser over `params().vars()`; embedding tables
/// live in the [`FeatureInput`] and train with [`FeatureInput::apply_grads`].
#[derive(Debug, Clone)]
pub struct MultiTaskModel {
    config: ModelConfig,
    input: FeatureInput,
    params: ParamStore,
    backbone: Backbone,
    towers: Vec<Tower>,
    teachers: Vec<TeacherHead>,
    calibrators: Vec<Calibrator>,
    /// `weighting.log_var`, `[T]`: the tasks' log-variances `s_k` of uncertainty weighting.
    task_log_vars: Option<Var>,
    /// `weighting.gradnorm` and `weighting.gradnorm_loss0`, `[T]` each: GradNorm's task weights
    /// and the tasks' losses at the first step.
    gradnorm: Option<(Var, Var)>,
}

impl MultiTaskModel {
    /// A model on the CPU, the one device the model supports; see [`MultiTaskModel::new_on`].
    pub fn new(cfg: &ModelConfig, schema: &InputSchema, n_tasks: usize, seed: u64) -> Result<Self> {
        Self::new_on(cfg, schema, n_tasks, seed, &Device::Cpu)
    }

    /// A model for `n_tasks` tasks over the features of `schema`, initialised from `seed`: the
    /// embedding tables from ChaCha8 stream 1, the dense parameters from stream 2 (so the tables
    /// do not depend on the backbone).
    ///
    /// `device` must be the CPU: the model's fused ops have CPU kernels only, and any other
    /// device is refused here with an error that names it, before anything is built.
    pub fn new_on(
        cfg: &ModelConfig,
        schema: &InputSchema,
        n_tasks: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        Self::new_shard_on(cfg, schema, n_tasks, seed, device, 0, 1)
    }

    /// [`MultiTaskModel::new`] with rank `rank`'s shard of every embedding table of `ranks`
    /// ranks ([`crate::EmbeddingTable::new_shard`]); the dense parameters are the whole model's.
    pub fn new_sharded(
        cfg: &ModelConfig,
        schema: &InputSchema,
        n_tasks: usize,
        seed: u64,
        rank: usize,
        ranks: usize,
    ) -> Result<Self> {
        Self::new_shard_on(cfg, schema, n_tasks, seed, &Device::Cpu, rank, ranks)
    }

    fn new_shard_on(
        cfg: &ModelConfig,
        schema: &InputSchema,
        n_tasks: usize,
        seed: u64,
        device: &Device,
        rank: usize,
        ranks: usize,
    ) -> Result<Self> {
        ensure_cpu(device.location())?;
        cfg.validate().map_err(to_candle)?;
        if n_tasks == 0 {
            candle_core::bail!("the model needs at least one task");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        let input = FeatureInput::new_shard(
            schema,
            cfg.embedding_dim,
            &cfg.field_dims,
            cfg.embedding_init_std,
            &mut rng,
            rank,
            ranks,
        )?
        .with_teacher_dense(schema, &cfg.teacher.inputs)?;
        rng.set_stream(2);
        let mut params = ParamStore::new(device.clone())?;
        let backbone = Backbone::new(
            &cfg.backbone,
            input.in_dim(),
            n_tasks,
            &mut params,
            &mut rng,
        )?;
        let towers = (0..n_tasks)
            .map(|t| {
                let name = format!("tower{t}");
                Tower::new(&cfg.tower, &name, backbone.out_dim(), &mut params, &mut rng)
            })
            .collect::<Result<_>>()?;
        Ok(MultiTaskModel {
            config: cfg.clone(),
            input,
            params,
            backbone,
            towers,
            teachers: Vec::new(),
            calibrators: Vec::new(),
            task_log_vars: None,
            gradnorm: None,
        })
    }

    /// Adds a teacher head (`teacher<t>.*`) and a calibrator (`calibrator<t>.*`) per task,
    /// initialised from stream 3 of `seed`: the student's own parameters are the same as
    /// without teachers, so a model with and one without start from the same point.
    pub fn with_teachers(mut self, cfg: &TeacherConfig, seed: u64) -> Result<Self> {
        cfg.validate()
            .map_err(|e| to_candle(e.within("model.teacher")))?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(3);
        if cfg.inputs != self.config.teacher.inputs {
            candle_core::bail!(
                "model.teacher.inputs: the model was built with {:?}, the teachers ask for {:?}",
                self.config.teacher.inputs,
                cfg.inputs
            );
        }
        let d = self.backbone.out_dim() + self.input.teacher_dim();
        for t in 0..self.towers.len() {
            self.teachers.push(TeacherHead::new(
                cfg,
                &format!("teacher{t}"),
                d,
                &mut self.params,
                &mut rng,
            )?);
            self.calibrators.push(Calibrator::new(
                &format!("calibrator{t}"),
                &mut self.params,
                &mut rng,
            )?);
        }
        Ok(self)
    }

    /// Adds the tasks' log-variances `s_k` (`weighting.log_var`, `[T]`, 0 at first) of
    /// uncertainty weighting (Kendall, Gal and Cipolla, CVPR 2018), trained with the dense
    /// parameters: the objective weighs task `k`'s loss by `exp(-s_k)` and adds `s_k / 2`.
    pub fn with_task_uncertainty(mut self) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let t = self.towers.len();
        let v = self
            .params
            .get_or_init("weighting.log_var", &[t], Init::Zeros, &mut rng)?;
        self.task_log_vars = Some(v);
        Ok(self)
    }

    /// Adds GradNorm's task weights (Chen et al., ICML 2018): `weighting.gradnorm`, `[T]`, 1 at
    /// first, trained by the caller towards balanced gradient norms, and
    /// `weighting.gradnorm_loss0`, `[T]`, each task's loss at the first step (0 until the
    /// caller sets it; it never receives a gradient). Both are saved with the model.
    pub fn with_gradnorm(mut self) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let t = self.towers.len();
        let w = self
            .params
            .get_or_init("weighting.gradnorm", &[t], Init::Const(1.0), &mut rng)?;
        let l0 =
            self.params
                .get_or_init("weighting.gradnorm_loss0", &[t], Init::Zeros, &mut rng)?;
        self.gradnorm = Some((w, l0));
        Ok(self)
    }

    /// GradNorm's task weights `[T]` and the tasks' first losses `[T]`, when the model has them.
    pub fn gradnorm(&self) -> Option<(&Var, &Var)> {
        self.gradnorm.as_ref().map(|(w, l0)| (w, l0))
    }

    /// The tasks' log-variances of uncertainty weighting, `[T]`, when the model has them.
    pub fn task_log_vars(&self) -> Option<&Var> {
        self.task_log_vars.as_ref()
    }

    /// The calibrators, one per task (empty without teachers).
    pub fn calibrators(&self) -> &[Calibrator] {
        &self.calibrators
    }

    /// Whether [`MultiTaskModel::with_teachers`] added teacher heads.
    pub fn has_teachers(&self) -> bool {
        !self.teachers.is_empty()
    }

    /// Gathers `batch`, runs the backbone and the towers.
    pub fn forward(&self, batch: &Batch, mode: Mode<'_>) -> Result<Forward> {
        let mut mode = mode;
        let gathered = self.input.gather(batch, self.params.device())?;
        let x = dropout(&gathered.x, self.config.dropout, &mut mode)?;
        let reprs = self.backbone.forward(&x, &mut mode)?;
        let logits = self
            .towers
            .iter()
            .zip(&reprs)
            .map(|(tower, r)| tower.forward(r, &mut mode))
            .collect::<Result<Vec<_>>>()?;
        let teacher_scores = if self.teachers.is_empty() {
            None
        } else {
            let scores = self
                .teachers
                .iter()
                .zip(&reprs)
                .map(|(t, r)| t.forward(r, gathered.teacher_x.as_ref(), &mut mode))
                .collect::<Result<Vec<_>>>()?;
            Some(Tensor::cat(&scores, 1)?)
        };
        let mut logits = Tensor::cat(&logits, 1)?;
        if self.backbone.chains_tasks() {
            logits = crate::backbone::chain_logits(&logits)?;
        }
        Ok(Forward {
            gathered,
            reprs,
            logits,
            teacher_scores,
        })
    }

    /// `sigmoid(logits)` in evaluation mode, `[b * n_tasks]` row-major.
    pub fn predict_probs(&self, batch: &Batch) -> Result<Vec<f32>> {
        let fwd = self.forward(batch, Mode::Eval)?;
        candle_nn::ops::sigmoid(&fwd.logits)?
            .flatten_all()?
            .to_vec1()
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The dense parameters: backbone, towers, teacher heads and calibrators.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The feature input and its embedding tables.
    pub fn input(&self) -> &FeatureInput {
        &self.input
    }

    /// The feature input, to update its tables ([`FeatureInput::apply_grads`]) or load them.
    pub fn input_mut(&mut self) -> &mut FeatureInput {
        &mut self.input
    }

    /// The backbone.
    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// The number of tasks: one tower (and one teacher head, if any) per task.
    pub fn n_tasks(&self) -> usize {
        self.towers.len()
    }

    /// The size of each task representation.
    pub fn repr_dim(&self) -> usize {
        self.backbone.out_dim()
    }

    /// Dense parameters by name and the input's tables (names under `input.`), copied.
    pub fn save_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = self.params.save_tensors()?;
        out.extend(self.input.save_tensors()?);
        Ok(out)
    }

    /// The dense parameters alone as named tensors: [`MultiTaskModel::save_tensors`] without
    /// the tables, whose buffers [`FeatureInput::table_buffers`] borrows.
    pub fn dense_tensors(&self) -> Result<HashMap<String, Tensor>> {
        self.params.save_tensors()
    }

    /// Restores what [`MultiTaskModel::save_tensors`] wrote. Nothing changes on error.
    pub fn load_tensors(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let (input, dense): (HashMap<_, _>, HashMap<_, _>) = tensors
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .partition(|(n, _)| n.starts_with("input."));
        let staged = self.params.staged(&dense)?;
        self.input.load_tensors(&input)?;
        for (var, t) in staged {
            var.set(&t)?;
        }
        Ok(())
    }
}
