//! Losses for multi-task recommendation, on candle tensors.
//!
//! - [`bce`]: binary cross-entropy on logits, stable for any logit, hard or soft targets.
//!
//! Every loss is written with the stable primitives of [`stable`] so that no logit, however
//! large, gives an infinite loss or a NaN gradient.

pub mod bce;
pub mod stable;

pub use bce::{bce_with_logits, weighted_bce_with_logits};
