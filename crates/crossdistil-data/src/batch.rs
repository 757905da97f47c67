//! Mini-batches: rows gathered from the columnar data set into row-major buffers.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::dataset::Dataset;

/// The ids of one multi-valued field for a batch: row `i` holds `ids[offsets[i]..offsets[i+1]]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MultiBatch {
    pub offsets: Vec<u32>,
    pub ids: Vec<u32>,
}

/// One mini-batch of `size` rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Row indices into the data set, `[size]`.
    pub rows: Vec<u32>,
    /// Sparse ids, row-major `[size, n_sparse]`.
    pub sparse: Vec<u32>,
    /// One entry per multi-valued field.
    pub multi: Vec<MultiBatch>,
    /// Normalised dense values, row-major `[size, n_dense]`.
    pub dense: Vec<f32>,
    /// Labels as 0.0 / 1.0, row-major `[size, n_tasks]`.
    pub labels: Vec<f32>,
}

impl Batch {
    pub fn size(&self) -> usize {
        self.rows.len()
    }

    /// Gathers `rows` of `ds` into a batch.
    pub fn gather(ds: &Dataset, rows: &[u32]) -> Batch {
        let mut b = Batch::default();
        b.fill(ds, rows);
        b
    }

    /// The batch cut into `parts` contiguous shards of rows `[i * n / parts, (i + 1) * n / parts)`
    /// (empty shards are left out), for data-parallel workers.
    pub fn split(&self, parts: usize) -> Vec<Batch> {
        let n = self.size();
        let parts = parts.max(1);
        if parts == 1 {
            return vec![self.clone()];
        }
        let (ns, nd, nt) = (
            self.sparse.len() / n.max(1),
            self.dense.len() / n.max(1),
            self.labels.len() / n.max(1),
        );
        (0..parts)
            .map(|i| (i * n / parts, (i + 1) * n / parts))
            .filter(|(lo, hi)| hi > lo)
            .map(|(lo, hi)| Batch {
                rows: self.rows[lo..hi].to_vec(),
                sparse: self.sparse[lo * ns..hi * ns].to_vec(),
                dense: self.dense[lo * nd..hi * nd].to_vec(),
                labels: self.labels[lo * nt..hi * nt].to_vec(),
                multi: self
                    .multi
                    .iter()
                    .map(|m| {
                        let (a, b) = (m.offsets[lo], m.offsets[hi]);
                        MultiBatch {
                            offsets: m.offsets[lo..=hi].iter().map(|o| o - a).collect(),
                            ids: m.ids[a as usize..b as usize].to_vec(),
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    /// Refills this batch in place, reusing its buffers.
    pub fn fill(&mut self, ds: &Dataset, rows: &[u32]) {
        let (ns, nd, nt) = (ds.sparse.len(), ds.dense.len(), ds.labels.len());
        self.rows.clear();
        self.rows.extend_from_slice(rows);
        self.sparse.clear();
        self.sparse.reserve(rows.len() * ns);
        self.dense.clear();
        self.dense.reserve(rows.len() * nd);
        self.labels.clear();
        self.labels.reserve(rows.len() * nt);
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
        let mut order_rows = rows.to_vec();
        if let Order::Shuffled(seed) = order {
            order_rows.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        }
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
