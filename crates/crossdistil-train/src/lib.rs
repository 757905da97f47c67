#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
//!
//! # Items
//!
//! - The loop: [`Trainer`] with [`BatchSource`] ([`ShuffledRows`], `Vec<Batch>`, and
//!   [`ExtraPositives`] around another source, [`with_extra_rows`]), [`Hooks`] and
//!   [`Control`]; [`Optimizer`] ([`OptimizerSettings`], the dense [`Adam`]); [`LossParts`] and
//!   [`Gradients`] of one step; [`stream_seed`] and [`worker_rngs`], the seeded random streams.
//! - A run: [`RunConfig`] ([`TrainSettings`]), [`fit`] ([`FitOptions`]) into a run folder
//!   ([`RunDir`], [`TrainState`], [`RunLock`]), the [`Report`]; [`build_model`] and
//!   [`BuiltModel`].
//! - A trained run: [`open_run`] ([`OpenRun`]) for evaluation and scores,
//!   [`evaluate_model`] and [`evaluate`] ([`SplitMetrics`], [`TaskMetrics`]), [`predict`]
//!   ([`Predictions`]).
//! - Guards: [`check_parameters`] (the divergence guard's check of the weights), and the
//!   crash-test points of the run folder's commit protocol ([`ABORT_POINTS`]).
//! - Processes: [`tune_allocator`] and [`peak_rss_bytes`].

mod alloc;
mod checkpoint;
mod config;
pub mod dist;
mod divergence;
mod error;
mod evaluate;
mod extra_rows;
mod fit;
mod gradnorm;
mod lock;
mod manifest;
mod optim;
mod optimizer;
mod output;
mod parallel;
mod predict;
mod prefetch;
mod report;
mod reshard;
mod run;
mod run_data;
mod step;
mod stream;
mod tensorboard;
mod trainer;

pub use alloc::{peak_rss_bytes, tune_allocator};
pub use checkpoint::Checkpoint;
pub use config::{
    MAX_BATCH, MAX_EPOCHS, MAX_READERS, MAX_SHUFFLE_BUFFER, MAX_WORKERS, RunConfig, TableLayout,
    TaskWeighting, TrainSettings,
};
pub use crossdistil_core::{Batch, InputSchema};
pub use divergence::check_parameters;
pub use error::{Result, TrainError};
pub use evaluate::{
    ECE_BINS, SplitMetrics, TaskMetrics, evaluate, evaluate_model, metrics_of, metrics_table,
};
pub use extra_rows::{ExtraPositives, with_extra_rows};
pub use fit::{
    BuiltModel, FitOptions, build_model, build_model_for, build_model_for_rank, fit,
    fit_distributed, load_weights, set_weights,
};
pub use lock::RunLock;
pub use manifest::ABORT_POINTS;
pub use optim::{Adam, AdamParams, OptimizerKind};
pub use optimizer::{Optimizer, OptimizerSettings};
pub use output::{OpenRun, check_scores_path, open_run, open_run_with};
pub use predict::{Predictions, predict, predict_all, predict_all_on};
pub use report::Report;
pub use run::{
    EpochLosses, RunDir, TrainState, WithinEpoch, load_tensors, load_tensors_where,
    load_weights_only, save_tensors,
};
pub use run_data::{RunData, Scored};
pub use step::{Gradients, LossParts, label_rows};
pub use stream::{StreamedRows, read_ahead};
pub use tensorboard::{EventWriter, Scalar, read_scalars};
pub use trainer::{
    BatchSource, BoxedBatches, Control, EpochPosition, Hooks, ShuffledRows, Trainer,
    rank_worker_rngs, ranking_rng, stream_seed, worker_rngs,
};
