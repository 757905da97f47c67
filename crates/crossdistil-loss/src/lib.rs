#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod bce;
mod calibration;
mod config;
mod error_correction;
mod fast_math;
mod kd;
mod levels;
mod objective;
mod pairwise;
mod ranking;
mod stable;

pub use bce::{bce_with_logits, per_task_bce, weighted_bce_with_logits};
pub use calibration::{MIN_SLOPE, calibrated_logit, calibration_loss, fit_platt, inverse_softplus};
pub use config::{CalibratorFit, DistillConfig, DistillMode};
pub use error_correction::{ErrorCorrection, correct};
pub use kd::{KdSchedule, distill_loss, tempered_distill_loss};
pub use levels::{graded_levels, graded_levels_in_order};
pub use objective::{
    ObjectiveInput, ObjectiveLoss, PlattParams, objective, objective_without_ranking,
    ranking_gradient,
};
pub use ranking::{LevelPairs, RankingConfig, RankingKind, ranking_loss};
