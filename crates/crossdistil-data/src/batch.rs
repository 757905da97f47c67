//! Mini-batches: rows gathered from the columnar data set into the row-major buffers of a
//! [`Batch`] (the type lives in `crossdistil-core`, shared with the model crate).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

pub use crossdistil_core::{Batch, MultiBatch};

use crate::dataset::Dataset;

/// Filling a [`Batch`] from a [`Dataset`]: `Batch::gather(&ds, rows)` and `batch.fill(&ds, rows)`
/// with this trait in scope.
pub trait GatherBatch {
    /// Gathers `rows` of `ds` into a batch.
    fn gather(ds: &Dataset, rows: &[u32]) -> Self;

    /// Refills this batch in place, reusing its buffers.
    fn fill(&mut self, ds: &Dataset, rows: &[u32]);
}

impl GatherBatch for Batch {
    fn gather(ds: &Dataset, rows: &[u32]) -> Batch {
        let mut b = Batch::default();
        b.fill(ds, rows);
        b
    }

    fn fill(&mut self, ds: &Dataset, rows: &[u32]) {
        let (ns, nd, nt) = (ds.sparse.len(), ds.dense.len(), ds.labels.len());
        self.rows.clear();
        self.rows.extend_from_slice(rows);
        self.sparse.clear();
        self.sparse.reserve(rows.len() * ns);
        self.dense.clear();
        self.dense.reserve(rows.len() * nd);
        self.labels.clear();
        self.labels.reserve(rows.len() * nt);
        self.weights.clear();
        if let Some(w) = &ds.weights {
            self.weights.extend(rows.iter().map(|&r| w[r as usize]));
        }
        for &r in rows {
            let r = r as usize;
            self.sparse.extend(ds.sparse.iter().map(|c| c.ids[r]));
            self.dense.extend(ds.dense.iter().map(|c| c.values[r]));
            self.labels
                .extend(ds.labels.iter().map(|c| c.values[r] as f32));
        }
        self.multi.resize_with(ds.multi.len(), MultiBatch::default);
        for (mb, col) in self.multi.iter_mut().zip(&ds.multi) {
            mb.offsets.clear();
            mb.ids.clear();
            mb.offsets.push(0);
            for &r in rows {
                let (lo, hi) = (
                    col.offsets[r as usize] as usize,
                    col.offsets[r as usize + 1] as usize,
                );
                mb.ids.extend_from_slice(&col.ids[lo..hi]);
                mb.offsets.push(mb.ids.len() as u32);
            }
        }
    }
}

/// The order in which an epoch visits its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// File order (evaluation).
    Sequential,
    /// A ChaCha8 permutation from this seed: the same seed gives the same batches.
    Shuffled(u64),
}

/// `rows` in the order of a seeded ChaCha8 shuffle: what [`Order::Shuffled`]`(seed)` visits. The
/// permutation depends on the seed and the number of rows only, not on their values.
pub fn shuffled(rows: &[u32], seed: u64) -> Vec<u32> {
    let mut order = rows.to_vec();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    order
}

/// The batches of one pass over `rows`: an iterator of `Batch`.
pub struct Batches<'a> {
    ds: &'a Dataset,
    order: Vec<u32>,
    batch_size: usize,
    pos: usize,
}

impl<'a> Batches<'a> {
    /// Batches of `batch_size` rows (the last one may be smaller).
    pub fn new(ds: &'a Dataset, rows: &[u32], batch_size: usize, order: Order) -> Self {
        let order_rows = match order {
            Order::Sequential => rows.to_vec(),
            Order::Shuffled(seed) => shuffled(rows, seed),
        };
        Batches {
            ds,
            order: order_rows,
            batch_size: batch_size.max(1),
            pos: 0,
        }
    }

    /// The number of batches in the pass.
    pub fn len(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// Whether the pass has no rows (and so no batch).
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The row indices of the next batch without gathering it.
    pub fn next_rows(&mut self) -> Option<&[u32]> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let rows = &self.order[self.pos..end];
        self.pos = end;
        Some(rows)
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let ds = self.ds;
        self.next_rows().map(|rows| Batch::gather(ds, rows))
    }
}
