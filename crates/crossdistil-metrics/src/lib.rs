#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
//!
//! # Metrics
//!
//! With `n` rows, scores `s_i`, labels `y_i`, `P` positives and `N` negatives:
//!
//! - [`auc()`]: exact ROC AUC, the Mann-Whitney statistic with ties counted one half,
//!   `AUC = (#{y_i=1, y_j=0, s_i>s_j} + ½ #{y_i=1, y_j=0, s_i=s_j}) / (P·N)`;
//!   `None` when `P = 0` or `N = 0`. One sort, `O(n log n)`.
//! - [`log_loss()`]: mean binary cross-entropy
//!   `-(1/n) Σ [y_i ln p̂_i + (1-y_i) ln(1-p̂_i)]` with `p̂_i = clamp(p_i, 1e-7, 1-1e-7)`
//!   ([`LOG_LOSS_EPS`]); `None` on empty input.
//! - [`gauc()`]: group (per-user) AUC, `Σ_u n_u·AUC_u / Σ_u n_u` over the users `u` having
//!   both classes, `n_u` their row counts; single-class users are left out and counted.
//!   One sort by `(user, score)`.
//! - [`multi_auc()`]: graded AUC over ranked classes (a larger class index is better): the
//!   mean over class pairs `h > l`, both non-empty, of
//!   `P(s_h > s_l) + ½ P(s_h = s_l)`. Equals [`auc()`] with two classes. One sort of all
//!   scores and one pass over tie groups. [`graded_classes()`] builds the classes of one
//!   task from several binary label columns (the task's label is the most significant bit,
//!   the other tasks follow in priority order).
//! - [`calibration()`]: `n_bins` equal-width bins over `[0, 1]` (1.0 in the last bin) with
//!   count, mean prediction and fraction of positives, for reliability diagrams, and
//!   `ECE = Σ_b (n_b/n)·|mean_pred_b - frac_pos_b|` over non-empty bins; `None` on empty input.
//!
//! All result structs derive `Debug`, `Clone`, `PartialEq` and serde's `Serialize` /
//! `Deserialize`.

mod auc;
mod ece;
mod error;
mod gauc;
mod graded;
mod logloss;
mod multi_auc;
mod order;

pub use auc::auc;
pub use ece::{Bin, Calibration, MAX_BINS, calibration};
pub use error::MetricError;
pub use gauc::{Gauc, gauc};
pub use graded::graded_classes;
pub use logloss::{LOG_LOSS_EPS, log_loss};
pub use multi_auc::{MAX_CLASSES, MultiAuc, PairAuc, multi_auc};
