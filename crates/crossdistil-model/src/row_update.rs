//! Row-update kernels, for authors of optimisers.
//!
//! The optimisers of the embedding tables update one row at a time, in place, on plain `f32`
//! slices; an optimiser of dense parameters that updates a whole tensor in one pass can use the
//! same kernels. A model trained through [`FeatureInput::update`](crate::FeatureInput::update)
//! needs none of them: they are here for code that writes its own update loop.
//!
//! - [`AdamStep`]: the constants of one Adam step, bias corrections included, computed once;
//!   [`AdamStep::apply`] then updates a row, its moments and its gradient in one pass.
//! - [`adagrad_row`]: one Adagrad step on a row and its sum of squared gradients.
//! - [`with_rows`]: the row-major `f32` data of a CPU tensor (a gradient, say) as a slice.
//!
//! The formulas are those of [`SparseOptimConfig`](crate::SparseOptimConfig): weight decay is
//! L2 added to the gradient, `g' = g + wd * w`.

pub use crate::cpu_data::with_rows;
pub use crate::sparse_optim::{AdamStep, adagrad_row};
