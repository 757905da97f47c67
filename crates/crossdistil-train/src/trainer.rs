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
use crossdistil_model::{EmbeddingTable, MultiTaskModel};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::Checkpoint;
use crate::config::RunConfig;
use crate::config::TableLayout;
use crate::dist::{Comm, Metered, RankCosts, Reading, all_gather_f64, stage, to_owners};
use crate::error::Result;
use crate::error::TrainError;
use crate::manifest::FileEntry;
use crate::optimizer::{Optimizer, OptimizerSettings, model_tensors};
use crate::prefetch::for_each_prefetched;
use crate::run::{shard_name, write_tensors};
use crate::step::{Gradients, LossParts, Placement, StepSetup, flat_gradients, gradients};

/// Rank 0's requests to the other ranks during its hooks: the loop's decision (ends the
/// requests), the tables for a validation, a shard of a checkpoint.
const CMD_DONE: u8 = 0;
const CMD_TABLES: u8 = 1;
const CMD_SHARD: u8 = 2;
const CMD_WORDS: u8 = 3;

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
    rank_worker_rngs(seed, epoch, workers, 0)
}

/// The random streams of the workers of rank `rank` of a run with `workers` workers per rank:
/// worker `k` of rank `r` draws from ChaCha8 stream `r * workers + k` of the epoch's seed, so
/// `N` ranks of one worker draw what one process of `N` workers draws.
pub fn rank_worker_rngs(seed: u64, epoch: usize, workers: usize, rank: usize) -> Vec<ChaCha8Rng> {
    let workers = workers.max(1);
    (rank * workers..(rank + 1) * workers)
        .map(|k| {
            let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, epoch, 2));
            if k > 0 {
                rng.set_stream(k as u64);
            }
            rng
        })
        .collect()
}

/// The stream that draws the ranking loss's pairs of epoch `epoch` when a batch is in more
/// than one part (threads or ranks): the same on every rank.
pub fn ranking_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(stream_seed(seed, epoch, 4))
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
    /// The ranking loss's pair stream of a batch in several parts ([`ranking_rng`]).
    ranking: std::sync::Mutex<ChaCha8Rng>,
    /// The ranks, in a distributed run.
    comm: Option<std::sync::Arc<dyn Comm>>,
    /// The same, counting what the exchanges cost.
    meter: Option<std::sync::Arc<Metered>>,
    /// Steps taken by this trainer on ranks, their seconds and their exchanges.
    costs: (u64, f64, Reading),
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
    /// The ranking loss's pair stream position ([`ranking_rng`]), as `rng_words`.
    #[serde(default)]
    pub ranking_words: [u64; 2],
}

impl Trainer {
    /// A trainer of `model` with the objective (`[distill]`, task weights) and the optimiser
    /// (`[train]`) of `cfg`. The batches hold `n_labels` label columns, of which `tasks` are the
    /// model's tasks in order. The first epoch's random streams are drawn.
    pub fn new(model: MultiTaskModel, cfg: &RunConfig, tasks: Vec<usize>, n_labels: usize) -> Self {
        let threads = candle_core::utils::get_num_threads();
        if cfg.train.workers > 1 && threads > 1 {
            // Each worker keeps its own products on its thread, but candle's element-wise ops
            // still use a pool of `threads` that competes with the workers for the cores.
            tracing::warn!(
                "{} workers with candle on {threads} threads: set RAYON_NUM_THREADS=1 (as \
                 `crossdistil train` does), or candle's thread pool competes with the workers \
                 and several workers can train more slowly than one",
                cfg.train.workers
            );
        }
        let optimizer = Optimizer::new(&model, OptimizerSettings::of(cfg));
        Trainer {
            model,
            optimizer,
            weights: cfg.task_weights(tasks.len()),
            rngs: worker_rngs(cfg.train.seed, 0, cfg.train.workers),
            ranking: std::sync::Mutex::new(ranking_rng(cfg.train.seed, 0)),
            comm: None,
            meter: None,
            costs: (0, 0.0, Reading::default()),
            cfg: cfg.clone(),
            tasks,
            n_labels,
            resume: None,
        }
    }

    /// The trainer of one rank of a distributed run: each batch it is given is the rank's part
    /// of a global batch ([`crate::dist::rank_part`]), the gradients are summed over the ranks
    /// and every rank makes the same update.
    pub fn with_comm(mut self, comm: std::sync::Arc<dyn Comm>) -> Self {
        let meter = std::sync::Arc::new(Metered::new(comm));
        self.meter = Some(meter.clone());
        self.comm = Some(meter);
        self.start_epoch(0);
        self
    }

    /// The ranks of a distributed run, if any.
    pub fn comm(&self) -> Option<&dyn Comm> {
        self.comm.as_deref()
    }

    fn words(rng: &ChaCha8Rng) -> [u64; 2] {
        let w = rng.get_word_pos();
        [(w >> 64) as u64, w as u64]
    }

    /// Where the trainer stands after `batches` batches of the current epoch. On rank 0 of a
    /// distributed run, the streams of every rank's workers, rank after rank (the other ranks
    /// send theirs).
    pub fn position(&self, batches: u64) -> Result<EpochPosition> {
        let mut rng_words: Vec<[u64; 2]> = self.rngs.iter().map(Self::words).collect();
        if let Some(comm) = self
            .comm
            .as_deref()
            .filter(|c| c.size() > 1 && c.rank() == 0)
        {
            self.send(&[CMD_WORDS])?;
            rng_words = self.all_words(comm)?;
        }
        Ok(EpochPosition {
            batches,
            rng_words,
            ranking_words: Self::words(&self.ranking.lock().unwrap_or_else(|p| p.into_inner())),
        })
    }

    /// Every rank's workers' stream positions, rank after rank (collective).
    fn all_words(&self, comm: &dyn Comm) -> Result<Vec<[u64; 2]>> {
        let mine: Vec<u8> = self
            .rngs
            .iter()
            .flat_map(|r| Self::words(r).into_iter().flat_map(u64::to_le_bytes))
            .collect();
        Ok(comm
            .all_gather(&mine)?
            .concat()
            .chunks_exact(16)
            .map(|c| {
                let w = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
                [w(&c[..8]), w(&c[8..])]
            })
            .collect())
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
        let rank = self.comm.as_ref().map_or(0, |c| c.rank());
        self.rngs = rank_worker_rngs(self.cfg.train.seed, epoch, self.cfg.train.workers, rank);
        self.ranking = std::sync::Mutex::new(ranking_rng(self.cfg.train.seed, epoch));
    }

    fn placement(&self) -> Placement<'_> {
        Placement {
            comm: self.comm.as_deref(),
            ranking_rng: Some(&self.ranking),
            sharded: self.sharded().is_some(),
        }
    }

    /// The ranks, when the model holds this rank's shard of every table.
    pub fn sharded(&self) -> Option<&dyn Comm> {
        self.comm
            .as_deref()
            .filter(|c| c.size() > 1 && self.cfg.train.tables == TableLayout::Sharded)
    }

    /// One step with sharded tables: the rows the rank's part needs are fetched from their
    /// owners and swapped in for the forward and backward passes, the gradient rows go back to
    /// their owners, and each rank updates its shard.
    fn sharded_step(&mut self, comm: &dyn Comm, batch: &Batch) -> Result<LossParts> {
        let step = self.step_count() + 1;
        let threads = self.rngs.len();
        let input = self.model.input();
        let staged = stage(comm, input.tables(), input.n_sparse(), batch)?;
        let shard = self.model.input_mut().swap_tables(staged.tables)?;
        let mut rngs = std::mem::take(&mut self.rngs);
        let grads = flat_gradients(
            &self.model,
            &staged.batch,
            &self.setup(),
            step,
            &mut rngs,
            self.placement(),
        );
        self.rngs = rngs;
        // The shard goes back in place before anything can fail.
        self.model.input_mut().swap_tables(shard)?;
        let grads = grads?;
        if grads.parts.rows == 0 {
            return Ok(grads.parts);
        }
        let owned = to_owners(comm, &staged.ids, grads.sparse)?;
        // Clipping needs the norm of every shard's rows; without it, no exchange.
        let table_norm: f64 = if self.optimizer.settings().grad_clip > 0.0 {
            all_gather_f64(comm, &[owned.sq_norm()])?
                .iter()
                .map(|v| v[0])
                .sum()
        } else {
            0.0
        };
        self.optimizer.step_with_table_norm(
            &mut self.model,
            grads.dense,
            owned,
            threads,
            table_norm,
        )?;
        Ok(grads.parts)
    }

    fn setup(&self) -> StepSetup<'_> {
        StepSetup {
            cfg: &self.cfg,
            tasks: &self.tasks,
            n_labels: self.n_labels,
            weights: &self.weights,
            fixed_weights: &self.weights,
        }
    }

    /// One optimiser step on `batch`: forward and backward on the workers' threads (each on a
    /// contiguous shard), the gradients summed in worker order, then the update of the dense
    /// parameters and the touched table rows. Returns the loss and its parts.
    pub fn step(&mut self, batch: &Batch) -> Result<LossParts> {
        let Some(meter) = self.meter.clone() else {
            return self.plain_step(batch);
        };
        let (start, before) = (std::time::Instant::now(), meter.reading());
        let parts = match self.sharded().is_some() {
            true => self.sharded_step(meter.as_ref(), batch)?,
            false => self.plain_step(batch)?,
        };
        if parts.rows > 0 {
            let c = &mut self.costs;
            c.0 += 1;
            c.1 += start.elapsed().as_secs_f64();
            let d = meter.reading() - before;
            c.2.sent += d.sent;
            c.2.received += d.received;
            c.2.seconds += d.seconds;
        }
        Ok(parts)
    }

    /// What the steps of this trainer cost on the ranks, the means over the ranks; `None`
    /// without ranks. Collective.
    pub fn rank_costs(&self) -> Result<Option<RankCosts>> {
        let Some(comm) = self.comm.as_deref() else {
            return Ok(None);
        };
        let (steps, seconds, r) = self.costs;
        let all = all_gather_f64(
            comm,
            &[
                steps as f64,
                seconds,
                r.sent as f64,
                r.received as f64,
                r.seconds,
            ],
        )?;
        let n = all.len() as f64;
        let mean = |i: usize| all.iter().map(|v| v[i]).sum::<f64>() / n;
        let per_step = |i: usize| mean(i) / mean(0).max(1.0);
        Ok(Some(RankCosts {
            ranks: comm.size(),
            workers: self.rngs.len(),
            tables: match self.sharded() {
                Some(_) => "sharded",
                None => "replicated",
            }
            .to_string(),
            steps,
            bytes_sent_per_step: per_step(2),
            bytes_received_per_step: per_step(3),
            step_seconds: per_step(1),
            comm_share: all.iter().map(|v| v[4] / v[1].max(1e-12)).sum::<f64>() / n,
        }))
    }

    fn plain_step(&mut self, batch: &Batch) -> Result<LossParts> {
        let step = self.step_count() + 1;
        let threads = self.rngs.len();
        let mut rngs = std::mem::take(&mut self.rngs);
        let grads = flat_gradients(
            &self.model,
            batch,
            &self.setup(),
            step,
            &mut rngs,
            self.placement(),
        );
        self.rngs = rngs;
        let grads = grads?;
        if grads.parts.rows == 0 {
            // An empty global batch (every rank out of rows): no step.
            return Ok(grads.parts);
        }
        self.optimizer
            .step(&mut self.model, grads.dense, grads.sparse, threads)?;
        Ok(grads.parts)
    }

    /// The gradient of the loss of `batch` at the current weights, as the next step would
    /// compute it, without an update.
    pub fn gradients(&mut self, batch: &Batch) -> Result<Gradients> {
        let step = self.step_count() + 1;
        let mut rngs = std::mem::take(&mut self.rngs);
        let grads = gradients(
            &self.model,
            batch,
            &self.setup(),
            step,
            &mut rngs,
            self.placement(),
        );
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
            let pos = |w: &[u64; 2]| (u128::from(w[0]) << 64) | u128::from(w[1]);
            // A distributed run's position holds every rank's streams, rank after rank.
            let rank = self.comm.as_ref().map_or(0, |c| c.rank());
            let mine = p.rng_words.iter().skip(rank * self.rngs.len());
            for (rng, w) in self.rngs.iter_mut().zip(mine) {
                rng.set_word_pos(pos(w));
            }
            self.ranking
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .set_word_pos(pos(&p.ranking_words));
            skip = p.batches as usize;
        }
        hooks.before_epoch(self, epoch)?;
        let mut control = Control::Continue;
        if self.comm.as_ref().is_some_and(|c| c.size() > 1) {
            // A rank may run out of rows before the others (streamed shares differ in size): it
            // goes on with empty parts until the global batch is empty on every rank.
            let batches = source
                .epoch(epoch)?
                .skip(skip)
                .chain(std::iter::repeat_with(|| Ok(Batch::default())));
            for_each_prefetched(batches, |batch| {
                let loss = self.step(&batch)?;
                if loss.rows == 0 {
                    return Ok(false);
                }
                control = hooks.after_step(self, &batch, &loss)?;
                control = self.agree(control)?;
                Ok(control == Control::Continue)
            })?;
        } else {
            for_each_prefetched(source.epoch(epoch)?.skip(skip), |batch| {
                let loss = self.step(&batch)?;
                control = hooks.after_step(self, &batch, &loss)?;
                Ok(control == Control::Continue)
            })?;
        }
        if control == Control::Stop {
            return Ok(Control::Stop);
        }
        let control = hooks.after_epoch(self, epoch)?;
        if self.comm.as_ref().is_some_and(|c| c.size() > 1) {
            let control = self.agree(control)?;
            self.share_calibrators()?;
            return Ok(control);
        }
        Ok(control)
    }

    /// Rank 0's decision, on every rank (rank 0 runs the validations that decide). The other
    /// ranks serve rank 0's requests until then ([`Trainer::serve`]).
    fn agree(&mut self, control: Control) -> Result<Control> {
        let Some(comm) = self.comm.clone() else {
            return Ok(control);
        };
        if comm.rank() == 0 {
            self.send(&[CMD_DONE, u8::from(control == Control::Stop)])?;
            return Ok(control);
        }
        self.serve()
    }

    /// Rank 0 sends a request to the other ranks, which are in [`Trainer::serve`].
    fn send(&self, message: &[u8]) -> Result<()> {
        if let Some(comm) = self.comm.as_deref() {
            comm.all_gather(message)?;
        }
        Ok(())
    }

    /// A rank other than 0, after a step or an epoch: serves rank 0's requests (the tables for
    /// a validation, a shard of a checkpoint) until rank 0 says whether the loop goes on.
    fn serve(&mut self) -> Result<Control> {
        let comm = self.comm.clone().expect("a distributed trainer");
        loop {
            let message = comm.all_gather(&[])?.swap_remove(0);
            match message.split_first() {
                Some((&CMD_DONE, rest)) => {
                    return Ok(if rest.first() == Some(&1) {
                        Control::Stop
                    } else {
                        Control::Continue
                    });
                }
                Some((&CMD_WORDS, _)) => {
                    self.all_words(comm.as_ref())?;
                }
                Some((&CMD_TABLES, _)) => {
                    self.tables_to_root(comm.as_ref())?;
                }
                Some((&CMD_SHARD, rest)) if rest.len() >= 8 => {
                    let generation = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
                    let dir =
                        std::path::PathBuf::from(String::from_utf8_lossy(&rest[8..]).as_ref());
                    self.write_own_shard(comm.as_ref(), &dir, generation)?;
                }
                _ => {
                    return Err(TrainError::Distributed(format!(
                        "rank {}: an unknown request from rank 0",
                        comm.rank()
                    )));
                }
            }
        }
    }

    /// Every rank's shard of the tables (the weights, no optimiser state), sent to rank 0 one
    /// table at a time; rank 0 gets the whole tables back, others `None`. Rank 0's memory holds
    /// the whole tables being built and one table's shards in flight, no other copy.
    fn tables_to_root(&self, comm: &dyn Comm) -> Result<Option<Vec<EmbeddingTable>>> {
        let n = comm.size();
        let shard = self.model.input().tables();
        let mut full = Vec::with_capacity(shard.len());
        for table in shard {
            let d = table.dim;
            let mut to = vec![Vec::new(); n];
            if comm.rank() != 0 {
                // The row count, then the rows.
                let mut mine = Vec::with_capacity(8 + 4 * table.weight.len());
                mine.extend((table.vocab as u64).to_le_bytes());
                mine.extend(table.weight.iter().flat_map(|x| x.to_le_bytes()));
                to[0] = mine;
            }
            let got = comm.all_to_all(&to)?;
            drop(to);
            if comm.rank() != 0 {
                continue;
            }
            let mut rows = vec![table.vocab; n];
            for (r, b) in got.iter().enumerate().skip(1) {
                let head = b.get(..8).ok_or_else(|| {
                    TrainError::Distributed(format!(
                        "rank {r} sent a malformed shard of {}",
                        table.key
                    ))
                })?;
                rows[r] = u64::from_le_bytes(head.try_into().expect("8 bytes")) as usize;
                if b.len() != 8 + 4 * d * rows[r] {
                    return Err(TrainError::Distributed(format!(
                        "rank {r} sent {} bytes for {} rows of {}",
                        b.len(),
                        rows[r],
                        table.key
                    )));
                }
            }
            let total: usize = rows.iter().sum();
            let mut weight = vec![0f32; total * d];
            for (id, row) in weight.chunks_exact_mut(d).enumerate() {
                let (r, local) = (id % n, id / n);
                if r == 0 {
                    row.copy_from_slice(table.row(local as u32));
                } else {
                    let at = 8 + 4 * d * local;
                    for (x, c) in row.iter_mut().zip(got[r][at..at + 4 * d].chunks_exact(4)) {
                        *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    }
                }
            }
            full.push(EmbeddingTable {
                key: table.key.clone(),
                vocab: total,
                dim: d,
                weight,
                state: Default::default(),
            });
        }
        Ok((comm.rank() == 0).then_some(full))
    }

    /// Runs `f` with the whole tables in the model, on rank 0 of a run with sharded tables (the
    /// other ranks send their shards; they serve it between steps); `f` as it is
    /// otherwise. The shard is back in place afterwards. Rank 0 holds the tables' weights (not
    /// their optimiser state) for the time of `f`: validations and the best checkpoint.
    pub fn with_full_tables<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        let Some(comm) = self.sharded().map(|_| self.comm.clone().expect("sharded")) else {
            return f(self);
        };
        if comm.rank() != 0 {
            return f(self);
        }
        self.send(&[CMD_TABLES])?;
        let full = self.tables_to_root(comm.as_ref())?.expect("rank 0");
        let shard = self.model.input_mut().swap_tables(full)?;
        let out = f(self);
        self.model.input_mut().swap_tables(shard)?;
        out
    }

    /// Writes this rank's shard of the tables with their optimiser state into `dir`
    /// ([`shard_name`] of `generation`), and sends its entry to rank 0; returns every rank's.
    fn write_own_shard(
        &self,
        comm: &dyn Comm,
        dir: &std::path::Path,
        generation: u64,
    ) -> Result<Vec<FileEntry>> {
        let name = shard_name(generation, comm.rank(), comm.size());
        let checkpoint = Checkpoint {
            tensors: HashMap::new(),
            buffers: self.model.input().table_buffers(),
        };
        let written = write_tensors(dir, &name, &checkpoint, "shard");
        // Every rank answers, failed or not, so that rank 0 can name the rank that failed.
        let text = match &written {
            Ok(e) => serde_json::to_string(e).unwrap_or_default(),
            Err(e) => format!("error: {e}"),
        };
        let all = comm.all_gather(text.as_bytes())?;
        written?;
        all.iter()
            .enumerate()
            .map(|(r, b)| {
                let text = String::from_utf8_lossy(b);
                serde_json::from_str(&text).map_err(|_| {
                    TrainError::Distributed(format!("rank {r} could not write its shard: {text}"))
                })
            })
            .collect()
    }

    /// On rank 0 of a run with sharded tables: every rank writes its shard of the tables and
    /// their optimiser state into `dir` (`last-<generation>.shard-<rank>-of-<N>.safetensors`); returns the entries in
    /// rank order once all are on disk.
    pub fn write_shards(&self, dir: &std::path::Path, generation: u64) -> Result<Vec<FileEntry>> {
        let comm = self.comm.clone().expect("a distributed trainer");
        let mut message = vec![CMD_SHARD];
        message.extend(generation.to_le_bytes());
        message.extend(dir.to_string_lossy().as_bytes());
        self.send(&message)?;
        self.write_own_shard(comm.as_ref(), dir, generation)
    }

    /// The dense parameters and their optimiser state, without the tables: the `last` file of
    /// a run with sharded tables.
    pub fn dense_checkpoint_view(&self) -> Result<Checkpoint<'_>> {
        let mut tensors = self.model.dense_tensors()?;
        tensors.extend(self.optimizer.save_tensors()?);
        Ok(Checkpoint {
            tensors,
            buffers: Vec::new(),
        })
    }

    /// Rank 0's calibrators on every rank: rank 0 may refit them on the validation rows after
    /// an epoch.
    fn share_calibrators(&mut self) -> Result<()> {
        let Some(comm) = self.comm.as_deref() else {
            return Ok(());
        };
        let vars: Vec<&candle_core::Var> = self
            .model
            .calibrators()
            .iter()
            .flat_map(|c| [&c.rho, &c.q])
            .collect();
        let mut values = Vec::new();
        for v in &vars {
            values.extend(
                v.as_tensor()
                    .to_dtype(candle_core::DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            );
        }
        crate::dist::broadcast_f32(comm, &mut values)?;
        let mut at = 0;
        for v in vars {
            let n = v.elem_count();
            let t = Tensor::from_slice(&values[at..at + n], v.shape(), v.device())?
                .to_dtype(v.dtype())?;
            v.set(&t)?;
            at += n;
        }
        Ok(())
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
