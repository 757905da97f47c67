//! The training loop of the workspace: a model, its [`Optimizer`], the objective, batches from a
//! [`BatchSource`], and [`Hooks`] for everything around the steps (validation, checkpoints,
//! logs, progress, measurement).
//!
//! ```text
//! for epoch in epochs:
//!     hooks.before_epoch
//!     for batch in source.epoch(epoch):       (assembled on a second thread)
//!         loss = step(batch)                  (forward, backward on `workers` threads, update)
//!         hooks.after_step                    (may stop)
//!     hooks.after_epoch                       (may stop)
//! ```
//!
//! `fit` (the run folder, early stopping, resume) and the benchmark are both hooks on this loop.

use std::collections::HashMap;
use std::ops::Range;

use candle_core::Tensor;
use crossdistil_data::{Batch, Batches, Dataset, Order};
use crossdistil_model::MultiTaskModel;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::Checkpoint;
use crate::config::RunConfig;
use crate::error::Result;
use crate::optimizer::{Optimizer, OptimizerSettings, model_tensors};
use crate::prefetch::for_each_prefetched;
use crate::step::{Gradients, LossParts, StepSetup, flat_gradients, gradients};

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// End the loop after this step or epoch.
    Stop,
}

/// Where the batches of each epoch come from.
pub trait BatchSource: Sync {
    /// The batches of epoch `epoch` (from 0), in training order. The same epoch gives the same
    /// batches, so a resumed run sees what an uninterrupted one saw.
    fn epoch(&self, epoch: usize) -> Result<BoxedBatches<'_>>;

    /// The number of batches of an epoch, when known in advance (for progress bars).
    fn batches_per_epoch(&self) -> Option<usize> {
        None
    }
}

/// The batches of one epoch, as a [`BatchSource`] gives them.
pub type BoxedBatches<'a> = Box<dyn Iterator<Item = Result<Batch>> + Send + 'a>;

/// Rows of an in-memory [`Dataset`] in mini-batches, shuffled per epoch by a seeded stream
/// ([`stream_seed`]`(seed, epoch, 1)`); the last batch of an epoch may be smaller.
pub struct ShuffledRows<'a> {
    ds: &'a Dataset,
    rows: Vec<u32>,
    batch_size: usize,
    seed: u64,
}

impl<'a> ShuffledRows<'a> {
    /// Batches of `batch_size` rows out of `rows` of `ds`.
    pub fn new(ds: &'a Dataset, rows: Vec<u32>, batch_size: usize, seed: u64) -> Self {
        ShuffledRows {
            ds,
            rows,
            batch_size,
            seed,
        }
    }
}

impl BatchSource for ShuffledRows<'_> {
    fn epoch(&self, epoch: usize) -> Result<BoxedBatches<'_>> {
        let order = Order::Shuffled(stream_seed(self.seed, epoch, 1));
        Ok(Box::new(
            Batches::new(self.ds, &self.rows, self.batch_size, order).map(Ok),
        ))
    }

    fn batches_per_epoch(&self) -> Option<usize> {
        Some(self.rows.len().div_ceil(self.batch_size.max(1)))
    }
}

/// The same batches every epoch, in order: data already in memory, tests, examples.
impl BatchSource for Vec<Batch> {
    fn epoch(&self, _epoch: usize) -> Result<BoxedBatches<'_>> {
        Ok(Box::new(self.iter().cloned().map(Ok)))
    }

    fn batches_per_epoch(&self) -> Option<usize> {
        Some(self.len())
    }
}

/// What runs around the steps. Every method does nothing by default.
pub trait Hooks {
    /// Before the first step of epoch `epoch`.
    fn before_epoch(&mut self, _trainer: &Trainer, _epoch: usize) -> Result<()> {
        Ok(())
    }

    /// After every step, with its batch and loss ([`Trainer::step_count`] counts it already).
    fn after_step(
        &mut self,
        _trainer: &mut Trainer,
        _batch: &Batch,
        _loss: &LossParts,
    ) -> Result<Control> {
        Ok(Control::Continue)
    }

    /// After the last step of epoch `epoch`.
    fn after_epoch(&mut self, _trainer: &mut Trainer, _epoch: usize) -> Result<Control> {
        Ok(Control::Continue)
    }
}

/// No hooks: the steps alone.
impl Hooks for () {}

/// A seed per (run seed, epoch, purpose): shuffles and dropout of each epoch come from their own
/// streams, so a resumed run sees the same ones.
pub fn stream_seed(seed: u64, epoch: usize, purpose: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (epoch as u64 + 1).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ purpose
}

/// The random streams of an epoch's workers: worker 0 draws from the epoch's stream (so one
/// worker is the plain loop), worker `k` from ChaCha8 stream `k` of the same seed.
pub fn worker_rngs(seed: u64, epoch: usize, workers: usize) -> Vec<ChaCha8Rng> {
    (0..workers.max(1))
        .map(|k| {
            let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, epoch, 2));
            if k > 0 {
                rng.set_stream(k as u64);
            }
            rng
        })
        .collect()
}

/// A model in training: the model, its optimiser, the objective of a run configuration, and the
/// workers' random streams of the current epoch.
pub struct Trainer {
    model: MultiTaskModel,
    optimizer: Optimizer,
    cfg: RunConfig,
    /// The batches' label columns that are the model's tasks, in task order.
    tasks: Vec<usize>,
    /// The number of label columns of a batch.
    n_labels: usize,
    weights: Vec<f32>,
    rngs: Vec<ChaCha8Rng>,
    /// Where the next epoch resumes, when a run is resumed inside an epoch.
    resume: Option<EpochPosition>,
}

/// A place inside an epoch: the batches already trained, and the position of each worker's
/// random stream after them (ChaCha8 word positions, as two halves `[high, low]`). A run
/// resumed there skips those batches and continues the streams where they were, so it trains
/// what the uninterrupted run trained.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EpochPosition {
    /// Batches of the epoch already trained.
    pub batches: u64,
    /// Each worker's random stream position, `[high 64 bits, low 64 bits]` of the word position.
    pub rng_words: Vec<[u64; 2]>,
}

impl Trainer {
    /// A trainer of `model` with the objective (`[distill]`, task weights) and the optimiser
    /// (`[train]`) of `cfg`. The batches hold `n_labels` label columns, of which `tasks` are the
    /// model's tasks in order. The first epoch's random streams are drawn.
    pub fn new(model: MultiTaskModel, cfg: &RunConfig, tasks: Vec<usize>, n_labels: usize) -> Self {
        let optimizer = Optimizer::new(&model, OptimizerSettings::of(cfg));
        Trainer {
            model,
            optimizer,
            weights: cfg.task_weights(tasks.len()),
            rngs: worker_rngs(cfg.train.seed, 0, cfg.train.workers),
            cfg: cfg.clone(),
            tasks,
            n_labels,
            resume: None,
        }
    }

    /// Where the trainer stands after `batches` batches of the current epoch.
    pub fn position(&self, batches: u64) -> EpochPosition {
        EpochPosition {
            batches,
            rng_words: self
                .rngs
                .iter()
                .map(|r| {
                    let w = r.get_word_pos();
                    [(w >> 64) as u64, w as u64]
                })
                .collect(),
        }
    }

    /// Makes the next epoch [`Trainer::run_epoch`] runs start at `position` (taken by
    /// [`Trainer::position`] in the same epoch of an earlier run): its first batches are skipped
    /// and the workers' random streams continue from where they were.
    pub fn resume_within_epoch(&mut self, position: EpochPosition) {
        self.resume = Some(position);
    }

    /// The model.
    pub fn model(&self) -> &MultiTaskModel {
        &self.model
    }

    /// The model, to change its weights (for instance to refit its calibrators).
    pub fn model_mut(&mut self) -> &mut MultiTaskModel {
        &mut self.model
    }

    /// The model, with the optimiser dropped.
    pub fn into_model(self) -> MultiTaskModel {
        self.model
    }

    /// The optimiser.
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// The configuration the trainer was built with.
    pub fn config(&self) -> &RunConfig {
        &self.cfg
    }

    /// The number of steps taken (by this trainer, and before it when restored).
    pub fn step_count(&self) -> u64 {
        self.optimizer.step_count()
    }

    /// Draws the workers' random streams (dropout, the ranking loss's pair sampling) of epoch
    /// `epoch`; [`Trainer::fit`] does it at the start of every epoch.
    pub fn start_epoch(&mut self, epoch: usize) {
        self.rngs = worker_rngs(self.cfg.train.seed, epoch, self.cfg.train.workers);
    }

    fn setup(&self) -> StepSetup<'_> {
        StepSetup {
            cfg: &self.cfg,
            tasks: &self.tasks,
            n_labels: self.n_labels,
            weights: &self.weights,
        }
    }

    /// One optimiser step on `batch`: forward and backward on the workers' threads (each on a
    /// contiguous shard), the gradients summed in worker order, then the update of the dense
    /// parameters and the touched table rows. Returns the loss and its parts.
    pub fn step(&mut self, batch: &Batch) -> Result<LossParts> {
        let step = self.step_count() + 1;
        let threads = self.rngs.len();
        let mut rngs = std::mem::take(&mut self.rngs);
        let grads = flat_gradients(&self.model, batch, &self.setup(), step, &mut rngs);
        self.rngs = rngs;
        let grads = grads?;
        self.optimizer
            .step(&mut self.model, grads.dense, grads.sparse, threads)?;
        Ok(grads.parts)
    }

    /// The gradient of the loss of `batch` at the current weights, as the next step would
    /// compute it, without an update.
    pub fn gradients(&mut self, batch: &Batch) -> Result<Gradients> {
        let step = self.step_count() + 1;
        let mut rngs = std::mem::take(&mut self.rngs);
        let grads = gradients(&self.model, batch, &self.setup(), step, &mut rngs);
        self.rngs = rngs;
        grads
    }

    /// One epoch: every batch of `source.epoch(epoch)`, each assembled on a second thread while
    /// the previous one trains, with the hooks around them (after
    /// [`Trainer::resume_within_epoch`], from the position it was given).
    pub fn run_epoch(
        &mut self,
        source: &dyn BatchSource,
        epoch: usize,
        hooks: &mut dyn Hooks,
    ) -> Result<Control> {
        self.start_epoch(epoch);
        let mut skip = 0;
        if let Some(p) = self.resume.take() {
            for (rng, w) in self.rngs.iter_mut().zip(&p.rng_words) {
                rng.set_word_pos((u128::from(w[0]) << 64) | u128::from(w[1]));
            }
            skip = p.batches as usize;
        }
        hooks.before_epoch(self, epoch)?;
        let mut control = Control::Continue;
        for_each_prefetched(source.epoch(epoch)?.skip(skip), |batch| {
            let loss = self.step(&batch)?;
            control = hooks.after_step(self, &batch, &loss)?;
            Ok(control == Control::Continue)
        })?;
        if control == Control::Stop {
            return Ok(Control::Stop);
        }
        hooks.after_epoch(self, epoch)
    }

    /// The epochs `epochs` of `source`, until they end or a hook stops the loop.
    pub fn fit(
        &mut self,
        source: &dyn BatchSource,
        epochs: Range<usize>,
        hooks: &mut dyn Hooks,
    ) -> Result<Control> {
        for epoch in epochs {
            if self.run_epoch(source, epoch, hooks)? == Control::Stop {
                return Ok(Control::Stop);
            }
        }
        Ok(Control::Continue)
    }

    /// The model's tensors and the optimiser's, as one checkpoint, the tables borrowed: what a
    /// run folder writes, with no copy of the tables.
    pub fn checkpoint_view(&self) -> Result<Checkpoint<'_>> {
        let mut tensors = self.model.dense_tensors()?;
        tensors.extend(self.optimizer.save_tensors()?);
        Ok(Checkpoint {
            tensors,
            buffers: self.model.input().table_buffers(),
        })
    }

    /// The model's tensors and the optimiser's, as one checkpoint of owned tensors (the tables
    /// copied; see [`Trainer::checkpoint_view`]).
    pub fn checkpoint(&self) -> Result<HashMap<String, Tensor>> {
        self.checkpoint_view()?.to_tensors()
    }

    /// Restores a [`Trainer::checkpoint`] taken after `step` steps.
    pub fn restore(&mut self, tensors: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        self.model.load_tensors(&model_tensors(tensors))?;
        self.optimizer.load_tensors(tensors, step)
    }
}
