//! Extra positives of rare tasks in every batch, for the ranking loss (`distill.extra_positives`).
//!
//! With a task positive in 1% of the rows, a batch of 1,024 holds about ten of its positives, and
//! the ranking loss orders its levels on those few. [`ExtraPositives`] appends to every batch of
//! an inner source `n_k` rows drawn uniformly, with replacement, from the train split's positives
//! of task `k`, for each task with `n_k > 0`. The extra rows weigh 0, and the batch's own rows
//! (`b` of them, weights `w_i`, 1 when the data set has none) are re-weighted to
//! `w_i (b + m) / b` for `m` extra rows, so that every term that averages `w_i l_i` over the rows
//! (the BCEs, the calibration, the distillation) keeps the value it has on the batch alone:
//!
//! ```text
//! 1/(b + m) * sum_{i <= b} w_i (b + m)/b * l_i = 1/b * sum_{i <= b} w_i l_i
//! ```
//!
//! Only the ranking loss, which reads the levels and not the weights, sees them. The draws come
//! from the stream [`stream_seed`]`(seed, epoch, 5)`, in batch order: the same epoch gives the
//! same batches, so a resumed run sees what an uninterrupted one saw.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crossdistil_core::Batch;
use crossdistil_data::{Dataset, GatherBatch};

use crate::error::Result;
use crate::trainer::{BatchSource, BoxedBatches, stream_seed};

/// The batches of `inner`, each followed by extra positives of the rare tasks (module docs).
pub struct ExtraPositives<'a> {
    inner: Box<dyn BatchSource + 'a>,
    ds: &'a Dataset,
    /// Per task with extra rows: the train rows where it is positive, and how many to draw.
    pools: Vec<(Vec<u32>, usize)>,
    seed: u64,
}

impl<'a> ExtraPositives<'a> {
    /// Wraps `inner`, a source of batches of `train` rows of `ds`: `counts[k]` extra rows from
    /// the positives of label column `labels[k]` among `train`. A task with no positive among
    /// them adds none.
    pub fn new(
        inner: Box<dyn BatchSource + 'a>,
        ds: &'a Dataset,
        train: &[u32],
        labels: &[usize],
        counts: &[usize],
        seed: u64,
    ) -> Self {
        let pools = labels
            .iter()
            .zip(counts)
            .filter(|(_, n)| **n > 0)
            .map(|(&label, &n)| {
                let values = &ds.labels[label].values;
                let pool: Vec<u32> = train
                    .iter()
                    .copied()
                    .filter(|&r| values[r as usize] != 0)
                    .collect();
                (pool, n)
            })
            .filter(|(pool, _)| !pool.is_empty())
            .collect();
        ExtraPositives {
            inner,
            ds,
            pools,
            seed,
        }
    }

    /// The rows that follow one batch, drawn from `rng`.
    fn draw(&self, rng: &mut ChaCha8Rng) -> Vec<u32> {
        let mut rows = Vec::new();
        for (pool, n) in &self.pools {
            rows.extend((0..*n).map(|_| pool[rng.random_range(0..pool.len())]));
        }
        rows
    }
}

/// `batch` followed by the rows `extra` of `ds` at weight 0, its own rows re-weighted by
/// `(b + m) / b` (module docs). An empty batch stays empty.
pub fn with_extra_rows(mut batch: Batch, ds: &Dataset, extra: &[u32]) -> Batch {
    let (b, m) = (batch.size(), extra.len());
    if b == 0 || m == 0 {
        return batch;
    }
    let scale = (b + m) as f32 / b as f32;
    match batch.weights.is_empty() {
        true => batch.weights = vec![scale; b],
        false => batch.weights.iter_mut().for_each(|w| *w *= scale),
    }
    let mut more = Batch::gather(ds, extra);
    more.weights = vec![0.0; m];
    batch.append(&more);
    batch
}

impl BatchSource for ExtraPositives<'_> {
    fn epoch(&self, epoch: usize) -> Result<BoxedBatches<'_>> {
        let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(self.seed, epoch, 5));
        Ok(Box::new(self.inner.epoch(epoch)?.map(move |b| {
            let extra = self.draw(&mut rng);
            b.map(|b| with_extra_rows(b, self.ds, &extra))
        })))
    }

    fn batches_per_epoch(&self) -> Option<usize> {
        self.inner.batches_per_epoch()
    }
}
