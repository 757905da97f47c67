//! Training and evaluation of crossdistil models.
//!
//! - [`config`]: the run's TOML configuration; its `[distill]` section and the loss of one batch
//!   (BCE, ranking, calibration, distillation) are `crossdistil-loss`'s.
//! - [`fit`]: the training loop, checkpoints and `--resume`; [`step`]: one optimiser step, on
//!   one core or data-parallel over several; [`prefetch`]: batch assembly on a second thread.
//! - [`divergence`]: the guard that stops a run whose loss or parameters leave the sane range.
//! - [`optim`]: Adam/AdamW for the dense parameters, gradient clipping.
//! - [`evaluate`]: AUC, GAUC, Multi-AUC, log loss and ECE per task.
//! - [`predict`], [`output`]: predictions and the scores file.
//! - [`run`], [`report`]: the run folder and `report.json`; [`manifest`]: its commit point;
//!   [`lock`]: one training process per folder.
//! - [`parallel`]: work split over the workers' threads by size.
//! - [`alloc`]: allocator thresholds for training processes, peak RSS.

pub mod alloc;
pub mod config;
pub mod divergence;
pub mod error;
pub mod evaluate;
pub mod fit;
pub mod lock;
pub mod manifest;
pub mod optim;
pub mod optimizer;
pub mod output;
pub mod parallel;
pub mod predict;
pub mod prefetch;
pub mod report;
pub mod run;
pub mod step;
pub mod trainer;

pub use config::RunConfig;
pub use error::{Result, TrainError};
pub use fit::{FitOptions, fit};
pub use optimizer::{Optimizer, OptimizerSettings};
pub use report::Report;
pub use trainer::{BatchSource, Control, Hooks, ShuffledRows, Trainer};
