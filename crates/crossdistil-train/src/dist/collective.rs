//! The collectives of a data-parallel step, on the bytes of a [`Comm`]: typed all-gathers, the
//! rank-ordered all-reduce of the dense gradients and the rank-ordered sum of the tables'
//! gradient rows.

use crossdistil_data::Batch;
use crossdistil_model::{FieldGrad, SparseGrads};

use super::Comm;
use crate::error::{Result, TrainError};

pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn bytes_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Every rank's `mine`, in rank order.
pub fn all_gather_f32(comm: &dyn Comm, mine: &[f32]) -> Result<Vec<Vec<f32>>> {
    Ok(comm
        .all_gather(&f32_bytes(mine))?
        .iter()
        .map(|b| bytes_f32(b))
        .collect())
}

/// Every rank's `mine`, in rank order.
pub fn all_gather_f64(comm: &dyn Comm, mine: &[f64]) -> Result<Vec<Vec<f64>>> {
    let bytes: Vec<u8> = mine.iter().flat_map(|x| x.to_le_bytes()).collect();
    Ok(comm
        .all_gather(&bytes)?
        .iter()
        .map(|b| {
            b.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect()
        })
        .collect())
}

/// Overwrites `buf` on every rank with rank 0's `buf` (the lengths must agree).
pub fn broadcast_f32(comm: &dyn Comm, buf: &mut [f32]) -> Result<()> {
    let mine = if comm.rank() == 0 {
        f32_bytes(buf)
    } else {
        Vec::new()
    };
    let got = bytes_f32(&comm.all_gather(&mine)?[0]);
    if got.len() != buf.len() {
        return Err(TrainError::Distributed(format!(
            "rank {}: a broadcast of {} values into {}",
            comm.rank(),
            got.len(),
            buf.len()
        )));
    }
    buf.copy_from_slice(&got);
    Ok(())
}

/// Replaces `buf` on every rank by the sum over the ranks of their `buf` (same length
/// everywhere), added in rank order: `((b_0 + b_1) + b_2) + ...`, element by element.
///
/// MPI's all-reduce may add in any order (Open MPI 4.1 with 4 ranks differs from the rank-order
/// sum in about a quarter of the values), which breaks "the same configuration gives the same
/// bits". Here chunk `c` of `N` (`[c * n / N, (c + 1) * n / N)`) goes to rank `c` (an
/// all-to-all), which adds the ranks' chunks in rank order, and an all-gather hands the summed
/// chunks to everyone: `2 (N - 1) / N` of the buffer sent and received per rank, a ring
/// all-reduce's traffic.
pub fn all_reduce_in_rank_order(comm: &dyn Comm, buf: &mut [f32]) -> Result<()> {
    let n = comm.size();
    if n == 1 {
        return Ok(());
    }
    let len = buf.len();
    let bounds = |c: usize| c * len / n..(c + 1) * len / n;
    let to: Vec<Vec<u8>> = (0..n).map(|c| f32_bytes(&buf[bounds(c)])).collect();
    let parts = comm.all_to_all(&to)?;
    let mine = bounds(comm.rank());
    let mut sum = bytes_f32(&parts[0]);
    for (r, p) in parts.iter().enumerate().skip(1) {
        let p = bytes_f32(p);
        if p.len() != sum.len() {
            return Err(TrainError::Distributed(format!(
                "rank {r} sent {} gradient values where {} were expected: the ranks' models differ",
                p.len(),
                mine.len()
            )));
        }
        sum.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
    }
    for (c, chunk) in comm.all_gather(&f32_bytes(&sum))?.iter().enumerate() {
        let chunk = bytes_f32(chunk);
        let at = bounds(c);
        if chunk.len() != at.len() {
            return Err(TrainError::Distributed(format!(
                "rank {c} returned {} summed values where {} were expected",
                chunk.len(),
                at.len()
            )));
        }
        buf[at].copy_from_slice(&chunk);
    }
    Ok(())
}

/// `g` as bytes: per field, the number of ids and the dimension (`u32` each), the ids, the rows.
pub(crate) fn sparse_bytes(g: &SparseGrads) -> Vec<u8> {
    let mut out = Vec::new();
    for f in &g.fields {
        out.extend((f.ids.len() as u32).to_le_bytes());
        out.extend((f.dim as u32).to_le_bytes());
        out.extend(f.ids.iter().flat_map(|i| i.to_le_bytes()));
        out.extend(f32_bytes(&f.grad));
    }
    out
}

pub(crate) fn bytes_sparse(b: &[u8], fields: usize) -> Result<SparseGrads> {
    let bad = || TrainError::Distributed("a malformed table gradient message".into());
    let mut at = 0;
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = b.get(at..at + n).ok_or_else(bad)?;
        at += n;
        Ok(s)
    };
    let mut out = SparseGrads::default();
    for _ in 0..fields {
        let n = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        let dim = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        let ids = take(4 * n)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let grad = bytes_f32(take(4 * n * dim)?);
        out.fields.push(FieldGrad { ids, dim, grad });
    }
    Ok(out)
}

/// The tables' gradient of the global batch on every rank: each rank's rows (`mine`, summed
/// over its workers) gathered and added in rank order ([`SparseGrads::sum`]).
pub fn sum_sparse_in_rank_order(comm: &dyn Comm, mine: SparseGrads) -> Result<SparseGrads> {
    if comm.size() == 1 {
        return Ok(mine);
    }
    let fields = mine.fields.len();
    let parts = comm
        .all_gather(&sparse_bytes(&mine))?
        .iter()
        .map(|b| bytes_sparse(b, fields))
        .collect::<Result<Vec<_>>>()?;
    Ok(SparseGrads::sum(parts))
}

/// Rank `rank`'s rows of a global batch on `size` ranks: rows
/// `[rank * b / size, (rank + 1) * b / size)`, as [`Batch::split`] gives to workers.
pub fn rank_part(batch: &Batch, rank: usize, size: usize) -> Batch {
    if size <= 1 {
        return batch.clone();
    }
    batch.part(rank, size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::ThreadGroup;

    fn on_ranks<T: Send>(n: usize, f: impl Fn(&dyn Comm) -> T + Sync) -> Vec<T> {
        let group = ThreadGroup::new(n);
        std::thread::scope(|s| {
            let handles: Vec<_> = group.iter().map(|c| s.spawn(|| f(c))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn the_all_reduce_adds_in_rank_order_on_every_rank() {
        for n in 1..5 {
            for len in [0, 1, 3, 7, 100] {
                // Values whose sum depends on the order of the additions.
                let value = |r: usize, i: usize| {
                    ((r * 31 + i * 7) % 13) as f32 * 1e-3 + 1e7 * (r % 2) as f32
                };
                let got = on_ranks(n, |c| {
                    let mut buf: Vec<f32> = (0..len).map(|i| value(c.rank(), i)).collect();
                    all_reduce_in_rank_order(c, &mut buf).unwrap();
                    buf
                });
                let want: Vec<f32> = (0..len)
                    .map(|i| (1..n).fold(value(0, i), |acc, r| acc + value(r, i)))
                    .collect();
                for g in got {
                    assert_eq!(
                        g.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        "{n} ranks, {len} values"
                    );
                }
            }
        }
    }

    #[test]
    fn table_gradients_sum_like_the_workers_sum() {
        let grads = |r: u32| SparseGrads {
            fields: vec![
                FieldGrad {
                    ids: vec![r, 5, 9 + r],
                    dim: 2,
                    grad: (0..6)
                        .map(|i| (i as f32 + 0.1) * (r as f32 + 1.0))
                        .collect(),
                },
                FieldGrad {
                    ids: vec![],
                    dim: 3,
                    grad: vec![],
                },
            ],
        };
        for n in 1..4u32 {
            let got = on_ranks(n as usize, |c| {
                sum_sparse_in_rank_order(c, grads(c.rank() as u32)).unwrap()
            });
            let want = SparseGrads::sum((0..n).map(grads).collect());
            for g in got {
                assert_eq!(g, want);
            }
        }
    }

    #[test]
    fn broadcast_and_gathers_carry_rank_0s_values() {
        let got = on_ranks(3, |c| {
            let mut b = vec![c.rank() as f32; 4];
            broadcast_f32(c, &mut b).unwrap();
            (b, all_gather_f64(c, &[c.rank() as f64 * 0.5]).unwrap())
        });
        for (b, g) in got {
            assert_eq!(b, vec![0.0; 4]);
            assert_eq!(g, vec![vec![0.0], vec![0.5], vec![1.0]]);
        }
    }

    #[test]
    fn rank_parts_cover_the_batch_in_order() {
        let b = Batch {
            rows: (0..5).collect(),
            sparse: (0..10).collect(),
            labels: vec![0.0; 5],
            ..Default::default()
        };
        for n in 1..8 {
            let rows: Vec<u32> = (0..n).flat_map(|r| rank_part(&b, r, n).rows).collect();
            assert_eq!(rows, b.rows, "{n} ranks");
        }
        assert_eq!(rank_part(&b, 1, 2).sparse, vec![4, 5, 6, 7, 8, 9]);
    }
}
