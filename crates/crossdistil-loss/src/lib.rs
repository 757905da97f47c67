//! Losses for multi-task recommendation and Cross-Task Knowledge Distillation (CrossDistil, Yang
//! et al., AAAI 2022), on candle tensors.
//!
//! - [`bce`]: binary cross-entropy on logits, stable for any logit, hard or soft targets.
//! - [`levels`]: graded labels, task k's label first and the other tasks' labels as tie-breaks.
//! - [`quadruplet`]: the auxiliary ranking loss (BPR or hinge) over the graded levels present in a
//!   batch, adjacent or all level pairs, optionally sampled.
//! - [`calibration`]: the Platt calibrator `sigmoid(softplus(rho) r + Q)`, its loss on the detached
//!   teacher score, and an offline Newton fit.
//! - [`error_correction`]: the correction of the teacher's target where it contradicts the label.
//! - [`distill`]: the distillation loss on a detached target, with an optional temperature, and
//!   the warm-up schedule of its weight.
//! - [`config`]: the error every config's `validate()` returns.
//!
//! Gradient flow: the ranking loss trains the teacher; the calibration loss trains the calibrator
//! only (score detached); the distillation loss trains the student only (target detached).
//!
//! Every loss is written with the stable primitives of [`stable`] so that no logit, however
//! large, gives an infinite loss or a NaN gradient.

pub mod bce;
pub mod calibration;
pub mod config;
pub mod distill;
pub mod error_correction;
pub mod fast_math;
pub mod levels;
pub mod pairwise;
pub mod quadruplet;
pub mod stable;

pub use bce::{bce_with_logits, weighted_bce_with_logits};
pub use calibration::{calibrated_logit, calibration_loss, fit_platt, inverse_softplus};
pub use config::ConfigError;
pub use distill::{KdSchedule, distill_loss, distill_loss_with_logits};
pub use error_correction::{ErrorCorrection, correct};
pub use levels::{graded_levels, graded_levels_in_order};
pub use quadruplet::{LevelPairs, RankingConfig, RankingKind, ranking_loss};
