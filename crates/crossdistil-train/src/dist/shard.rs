//! Embedding tables sharded by row over the ranks: rank `r` of `N` holds the rows of the ids
//! `id % N == r` (row `id / N` of its shard) and their optimiser state.
//!
//! Per step ([`stage`], then [`to_owners`]):
//!
//! ```text
//! distinct ids of the rank's rows, per table
//! all-to-all of the ids to their owners          (4 bytes an id)
//! all-to-all of the rows back                    (4 dim bytes an id)
//! forward and backward on the staged rows        (batch ids renumbered 0..distinct)
//! all-to-all of the gradient rows to the owners  (4 + 4 dim bytes an id)
//! each owner adds the ranks' rows in rank order and updates its shard
//! ```
//!
//! The sums are those of replicated tables ([`super::sum_sparse_in_rank_order`]) restricted to
//! the owner's ids, so sharded and replicated tables train the same rows to the same bits.

use crossdistil_data::{Batch, MultiBatch};
use crossdistil_model::{EmbeddingTable, FieldGrad, SparseGrads};

use super::Comm;
use super::collective::{bytes_f32, bytes_sparse, f32_bytes, sparse_bytes};
use crate::error::{Result, TrainError};

/// A rank's batch with the table rows it needs, fetched from their owners.
pub struct Staged {
    /// The batch, every id replaced by its position in `ids` of its field.
    pub batch: Batch,
    /// One table per field: row `i` is the row of id `ids[f][i]`.
    pub tables: Vec<EmbeddingTable>,
    /// Per field, the distinct ids of the batch, sorted.
    pub ids: Vec<Vec<u32>>,
}

fn distinct(ids: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut v: Vec<u32> = ids.collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Reads `n` u32 at `*at` of `b`.
fn take_u32(b: &[u8], at: &mut usize, n: usize) -> Result<Vec<u32>> {
    let s = b
        .get(*at..*at + 4 * n)
        .ok_or_else(|| TrainError::Distributed("a malformed id request between ranks".into()))?;
    *at += 4 * n;
    Ok(s.chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect())
}

/// The position of every id of `ids` in `sorted` (which holds them all).
fn renumber(ids: &[u32], sorted: &[u32]) -> Vec<u32> {
    ids.iter()
        .map(|id| {
            sorted
                .binary_search(id)
                .expect("a distinct id of the batch") as u32
        })
        .collect()
}

/// Fetches the rows `batch` needs from the shards of the ranks (`shard` is this rank's, in
/// the input's table order: `n_sparse` single-valued fields, then the multi-valued ones).
/// Collective: every rank calls it, with an empty batch when it has no rows.
pub fn stage(
    comm: &dyn Comm,
    shard: &[EmbeddingTable],
    n_sparse: usize,
    batch: &Batch,
) -> Result<Staged> {
    let n = comm.size();
    let b = batch.size();
    let ids: Vec<Vec<u32>> = (0..shard.len())
        .map(|f| {
            if b == 0 {
                Vec::new()
            } else if f < n_sparse {
                distinct(batch.sparse.iter().skip(f).step_by(n_sparse).copied())
            } else {
                distinct(batch.multi[f - n_sparse].ids.iter().copied())
            }
        })
        .collect();
    // To each owner, per field: the count, then the ids it owns.
    let requests: Vec<Vec<u8>> = (0..n)
        .map(|o| {
            let mut out = Vec::new();
            for f in &ids {
                let mine: Vec<u32> = f
                    .iter()
                    .copied()
                    .filter(|&id| id as usize % n == o)
                    .collect();
                out.extend((mine.len() as u32).to_le_bytes());
                out.extend(u32_bytes(&mine));
            }
            out
        })
        .collect();
    let asked = comm.all_to_all(&requests)?;
    // The rows each rank asked for, in its order.
    let replies = asked
        .iter()
        .map(|req| {
            let mut at = 0;
            let mut out = Vec::new();
            for table in shard {
                let count = take_u32(req, &mut at, 1)?[0] as usize;
                for id in take_u32(req, &mut at, count)? {
                    let row = id as usize / n;
                    if id as usize % n != comm.rank() || row >= table.vocab {
                        return Err(TrainError::Distributed(format!(
                            "rank {}: {}: id {id} is not in this rank's shard",
                            comm.rank(),
                            table.key
                        )));
                    }
                    out.extend(f32_bytes(table.row(row as u32)));
                }
            }
            Ok(out)
        })
        .collect::<Result<Vec<_>>>()?;
    let rows: Vec<Vec<f32>> = comm
        .all_to_all(&replies)?
        .iter()
        .map(|r| bytes_f32(r))
        .collect();
    // Each owner's rows come field after field, in the order of the ids asked of it.
    let mut cursor = vec![0usize; n];
    let tables = shard
        .iter()
        .zip(&ids)
        .map(|(table, f)| {
            let d = table.dim;
            let mut weight = Vec::with_capacity(f.len() * d);
            for &id in f {
                let o = id as usize % n;
                let r = rows[o].get(cursor[o]..cursor[o] + d).ok_or_else(|| {
                    TrainError::Distributed(format!("rank {o} sent too few rows of {}", table.key))
                })?;
                weight.extend_from_slice(r);
                cursor[o] += d;
            }
            Ok(EmbeddingTable {
                key: table.key.clone(),
                vocab: f.len(),
                dim: d,
                weight,
                state: Default::default(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let batch = if b == 0 {
        Batch::default()
    } else {
        let sparse = (0..b)
            .flat_map(|r| (0..n_sparse).map(move |f| (r, f)))
            .map(|(r, f)| {
                let id = batch.sparse[r * n_sparse + f];
                ids[f]
                    .binary_search(&id)
                    .expect("a distinct id of the batch") as u32
            })
            .collect();
        Batch {
            rows: batch.rows.clone(),
            sparse,
            multi: batch
                .multi
                .iter()
                .enumerate()
                .map(|(m, mb)| MultiBatch {
                    offsets: mb.offsets.clone(),
                    ids: renumber(&mb.ids, &ids[n_sparse + m]),
                })
                .collect(),
            dense: batch.dense.clone(),
            labels: batch.labels.clone(),
            weights: batch.weights.clone(),
        }
    };
    Ok(Staged { batch, tables, ids })
}

/// Sends the gradient rows of the staged rows (`grads`, ids as [`Staged::batch`] numbers them)
/// to their owners, and returns the gradient of this rank's shard: the ranks' rows of each
/// owned id added in rank order, ids renumbered to rows of the shard (`id / ranks`).
/// Collective.
pub fn to_owners(
    comm: &dyn Comm,
    staged_ids: &[Vec<u32>],
    grads: SparseGrads,
) -> Result<SparseGrads> {
    let n = comm.size();
    let dims: Vec<usize> = grads.fields.iter().map(|f| f.dim).collect();
    // Back to the tables' ids: a monotone map, so the ids stay sorted.
    let global: Vec<FieldGrad> = grads
        .fields
        .into_iter()
        .zip(staged_ids)
        .map(|(f, ids)| FieldGrad {
            ids: f.ids.iter().map(|&i| ids[i as usize]).collect(),
            dim: f.dim,
            grad: f.grad,
        })
        .collect();
    let to: Vec<Vec<u8>> = (0..n)
        .map(|o| {
            let part = SparseGrads {
                fields: global
                    .iter()
                    .map(|f| {
                        let mut ids = Vec::new();
                        let mut grad = Vec::new();
                        for (k, &id) in f.ids.iter().enumerate() {
                            if id as usize % n == o {
                                ids.push(id);
                                grad.extend_from_slice(&f.grad[k * f.dim..(k + 1) * f.dim]);
                            }
                        }
                        FieldGrad {
                            ids,
                            dim: f.dim,
                            grad,
                        }
                    })
                    .collect(),
            };
            sparse_bytes(&part)
        })
        .collect();
    let parts = comm
        .all_to_all(&to)?
        .iter()
        .map(|b| bytes_sparse(b, dims.len()))
        .collect::<Result<Vec<_>>>()?;
    let mut sum = SparseGrads::sum(parts);
    for f in &mut sum.fields {
        for id in &mut f.ids {
            *id /= n as u32;
        }
    }
    Ok(sum)
}
