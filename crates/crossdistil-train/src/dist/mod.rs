//! Data-parallel training across processes: a group of ranks that exchange bytes
//! ([`Comm`]), the collectives the training step needs on top of it, and the rank's share of
//! the data.
//!
//! A run on `N` ranks trains on global batches of `batch_size` rows; rank `r` holds rows
//! `r * b / N .. (r + 1) * b / N` of each global batch of `b` rows ([`rank_part`]) and splits
//! them further over its `workers` threads. Per step:
//!
//! ```text
//! forward of the rank's rows                    (workers threads)
//! all-gather teacher scores and labels          (T f32 + T f32 per row)
//! ranking loss over the global batch            (the same on every rank)
//! backward of the rank's rows                   (workers threads)
//! all-reduce of the dense gradients             (all-to-all, rank-order sums, all-gather)
//! all-gather of the table gradients             (ids and rows the rank touched)
//! the same update on every rank
//! ```
//!
//! Every sum over ranks adds the ranks' parts in rank order, so a run is deterministic for a
//! fixed `N`, and `N` ranks of one worker compute what one process of `N` workers computes.
//! MPI's own all-reduce does not promise an order ([`all_reduce_in_rank_order`] says how this
//! one keeps it with a ring all-reduce's traffic).
//!
//! Implementations: [`ThreadGroup`] (ranks as threads of one process, for tests and examples)
//! and, with the `mpi` feature, `MpiComm` (processes started by `mpirun`).

mod collective;
mod meter;
#[cfg(feature = "mpi")]
mod mpi_comm;
mod shard;
mod thread_group;

pub use collective::{
    all_gather_f32, all_gather_f64, all_reduce_in_rank_order, broadcast_f32, rank_part,
    sum_sparse_in_rank_order,
};
pub use meter::{Metered, RankCosts, Reading};
#[cfg(feature = "mpi")]
pub use mpi_comm::{MpiComm, launched_by_mpirun};
pub use shard::{Staged, stage, to_owners};
pub use thread_group::ThreadGroup;

use crate::error::Result;

/// A group of `size()` ranks that exchange bytes. Every method is collective: each rank of the
/// group calls it, in the same order, or the group waits for ever.
pub trait Comm: Send + Sync {
    /// This rank, `0..size()`.
    fn rank(&self) -> usize;

    /// The number of ranks.
    fn size(&self) -> usize;

    /// Every rank's `mine`, in rank order (this rank's own included).
    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>>;

    /// Sends `to[r]` to rank `r` (`to.len() == size()`); returns what each rank sent to this
    /// one, in rank order.
    fn all_to_all(&self, to: &[Vec<u8>]) -> Result<Vec<Vec<u8>>>;

    /// Waits until every rank has called it.
    fn barrier(&self) -> Result<()>;
}
