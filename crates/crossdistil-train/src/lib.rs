//! Training and evaluation of crossdistil models.
//!
//! - [`config`]: the run's TOML configuration; [`distill`]: its CrossDistil section.
//! - [`objective`]: the loss of one batch (BCE, ranking, calibration, distillation).
//! - [`fit`]: the training loop, checkpoints and `--resume`.
//! - [`optim`]: Adam/AdamW for the dense parameters, gradient clipping.
//! - [`evaluate`]: AUC, GAUC, Multi-AUC, log loss and ECE per task.
//! - [`predict`], [`output`]: predictions and the scores file.
//! - [`run`], [`report`]: the run folder and `report.json`.

pub mod config;
pub mod distill;
pub mod error;
pub mod evaluate;
pub mod fit;
pub mod objective;
pub mod optim;
pub mod output;
pub mod predict;
pub mod report;
pub mod run;

pub use config::RunConfig;
pub use error::{Result, TrainError};
pub use fit::{FitOptions, fit};
pub use report::Report;
