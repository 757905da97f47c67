//! One embedding table in plain memory, outside candle's autograd.

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::init::Init;
use crate::memory::{AHEAD, large_buffer, prefetch_row};
use crate::sparse_optim::{AdamStep, OptimState, SparseOptimConfig, adagrad_row};

/// The rows of rank `rank`'s shard of a table of `vocab` rows on `ranks` ranks
/// ([`EmbeddingTable::new_shard`]): the ids `rank, rank + ranks, ...` below `vocab`.
pub fn shard_rows(vocab: usize, rank: usize, ranks: usize) -> usize {
    vocab.saturating_sub(rank).div_ceil(ranks.max(1))
}

/// A table `[vocab, dim]`, row-major, with its optimiser state. Id 0 (out of vocabulary) is an
/// ordinary row.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingTable {
    /// The checkpoint prefix of the table, `input.sparse.<field>` or `input.multi.<field>`.
    pub key: String,
    /// The number of rows (ids `0..vocab`).
    pub vocab: usize,
    /// The embedding size, the number of columns.
    pub dim: usize,
    /// The table `[vocab, dim]`, row-major.
    pub weight: Vec<f32>,
    /// The optimiser state of the table, allocated at its first update.
    pub state: OptimState,
}

impl EmbeddingTable {
    /// A table initialised `N(0, std^2)` from `rng`.
    pub fn new(
        key: String,
        vocab: usize,
        dim: usize,
        std: f32,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let mut weight = large_buffer(vocab * dim);
        Init::Normal { std }.sample_into(&[vocab, dim], rng, &mut weight)?;
        Ok(EmbeddingTable {
            key,
            vocab,
            dim,
            weight,
            state: OptimState::Empty,
        })
    }

    /// Rank `rank`'s shard of the table [`EmbeddingTable::new`] draws, of `ranks` ranks: the rows
    /// of the ids `id` with `id % ranks == rank`, row `id / ranks` of the shard holding id `id`
    /// (ids come in frequency order from the vocabularies or uniform from hashing, so the
    /// round robin balances both rows and traffic). The whole table's stream is drawn, a row at
    /// a time, and only the shard's rows are kept: the shards of all ranks together are the
    /// table `new` draws, and memory never holds more than the shard.
    pub fn new_shard(
        key: String,
        vocab: usize,
        dim: usize,
        std: f32,
        rng: &mut ChaCha8Rng,
        rank: usize,
        ranks: usize,
    ) -> Result<Self> {
        let ranks = ranks.max(1);
        if rank >= ranks {
            candle_core::bail!("table shard {rank} of {ranks} ranks");
        }
        let rows = shard_rows(vocab, rank, ranks);
        let mut weight = large_buffer(rows * dim);
        weight.clear();
        let mut row = Vec::with_capacity(dim);
        for id in 0..vocab {
            row.clear();
            Init::Normal { std }.sample_into(&[1, dim], rng, &mut row)?;
            if id % ranks == rank {
                weight.extend_from_slice(&row);
            }
        }
        Ok(EmbeddingTable {
            key,
            vocab: rows,
            dim,
            weight,
            state: OptimState::Empty,
        })
    }

    /// Row `id`, `[dim]`. The caller has checked `id < vocab`.
    #[inline]
    pub fn row(&self, id: u32) -> &[f32] {
        let start = id as usize * self.dim;
        &self.weight[start..start + self.dim]
    }

    /// Hints that row `id` will be read soon (a prefetch on x86-64, nothing elsewhere).
    #[inline(always)]
    pub fn prefetch(&self, id: u32) {
        prefetch_row(&self.weight, id as usize * self.dim, self.dim);
    }

    /// Updates rows `ids` (distinct) with their gradients `grads` (`[ids.len(), dim]`, row-major)
    /// at global step `step >= 1`. Other rows and their optimiser state do not change.
    pub fn update_rows(
        &mut self,
        ids: &[u32],
        grads: &[f32],
        opt: &SparseOptimConfig,
        lr: f64,
        step: u64,
    ) -> Result<()> {
        if matches!(self.state, OptimState::Empty) {
            self.state = OptimState::new(opt, self.weight.len());
        }
        let d = self.dim;
        let rows = ids.iter().zip(grads.chunks_exact(d));
        match (opt, &mut self.state) {
            (SparseOptimConfig::Adam(cfg), OptimState::Adam { m, v }) => {
                let adam = AdamStep::new(cfg, lr, step);
                for (i, (&id, g)) in rows.enumerate() {
                    if let Some(&next) = ids.get(i + AHEAD) {
                        let at = next as usize * d;
                        prefetch_row(&self.weight, at, d);
                        prefetch_row(m, at, d);
                        prefetch_row(v, at, d);
                    }
                    let r = id as usize * d..(id as usize + 1) * d;
                    adam.apply(&mut self.weight[r.clone()], &mut m[r.clone()], &mut v[r], g);
                }
            }
            (SparseOptimConfig::Adagrad(cfg), OptimState::Adagrad { sum }) => {
                for (&id, g) in rows {
                    let r = id as usize * d..(id as usize + 1) * d;
                    adagrad_row(cfg, lr, &mut self.weight[r.clone()], &mut sum[r], g);
                }
            }
            (opt, state) => candle_core::bail!(
                "embedding table {} holds {} state but the optimiser is {}",
                self.key,
                state.kind(),
                opt.kind()
            ),
        }
        Ok(())
    }

    /// The table and its optimiser state as CPU tensors `[vocab, dim]`: `<key>.weight` and
    /// `<key>.adam_m`, `<key>.adam_v` or `<key>.adagrad_sum` (copies; [`EmbeddingTable::buffers`]
    /// borrows them instead).
    pub fn save_tensors(&self, out: &mut HashMap<String, Tensor>) -> Result<()> {
        for (name, data) in self.buffers() {
            let t = Tensor::from_slice(data, (self.vocab, self.dim), &Device::Cpu)?;
            out.insert(name, t);
        }
        Ok(())
    }

    /// The buffers [`EmbeddingTable::save_tensors`] saves, borrowed, under the same names: each
    /// `[vocab, dim]` row-major, for a writer that streams them to a file without a copy.
    pub fn buffers(&self) -> Vec<(String, &[f32])> {
        let name = |suffix: &str| format!("{}.{suffix}", self.key);
        let mut out = vec![(name("weight"), self.weight.as_ref())];
        match &self.state {
            OptimState::Empty => {}
            OptimState::Adam { m, v } => {
                out.push((name("adam_m"), m.as_ref()));
                out.push((name("adam_v"), v.as_ref()));
            }
            OptimState::Adagrad { sum } => out.push((name("adagrad_sum"), sum.as_ref())),
        }
        out
    }

    /// The names, after `<key>.`, of the tensors a table may be saved as.
    pub const SUFFIXES: [&str; 4] = ["weight", "adam_m", "adam_v", "adagrad_sum"];

    /// The table (required) and its optimiser state (if saved) read from `tensors`, checked
    /// against this table's shape.
    pub fn read_tensors(
        &self,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<(Vec<f32>, OptimState)> {
        let get = |suffix: &str| -> Result<Option<Vec<f32>>> {
            let name = format!("{}.{suffix}", self.key);
            let Some(t) = tensors.get(&name) else {
                return Ok(None);
            };
            if t.dims() != [self.vocab, self.dim] {
                candle_core::bail!(
                    "tensor {name} has shape {:?}, the model expects {:?}",
                    t.dims(),
                    [self.vocab, self.dim]
                );
            }
            Ok(Some(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?))
        };
        let Some(weight) = get("weight")? else {
            candle_core::bail!("missing tensor {}.weight", self.key);
        };
        let state = match (get("adam_m")?, get("adam_v")?, get("adagrad_sum")?) {
            (None, None, None) => OptimState::Empty,
            (Some(m), Some(v), None) => OptimState::Adam { m, v },
            (None, None, Some(sum)) => OptimState::Adagrad { sum },
            _ => candle_core::bail!(
                "tensors {}.*: expected adam_m with adam_v, or adagrad_sum alone",
                self.key
            ),
        };
        Ok((weight, state))
    }
}
