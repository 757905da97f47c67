//! Resuming a run on another number of ranks: the tables of the last checkpoint, written whole
//! (one process, or replicated tables) or as `M` shards, cut into this rank's shard of `N`
//! (`id % N == rank`, row `id / N`), or put back whole. Row `i` of shard `m` of `M` holds id
//! `i * M + m`; a whole table is the one shard of `M = 1`. The sources are read one at a time,
//! so memory holds one source shard beside the rank's own.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use crossdistil_model::{EmbeddingTable, shard_rows};

use crate::error::{Result, TrainError};

/// A table the resumed model holds: its key, its rows on this rank and its dimension.
pub(crate) struct Target {
    pub key: String,
    pub rows: usize,
    pub dim: usize,
}

impl Target {
    /// The targets of a model's tables.
    pub fn of(tables: &[EmbeddingTable]) -> Vec<Target> {
        tables
            .iter()
            .map(|t| Target {
                key: t.key.clone(),
                rows: t.vocab,
                dim: t.dim,
            })
            .collect()
    }
}

/// The table and suffix of a checkpoint tensor's name, when it is one of `targets`' buffers.
fn table_of<'a>(name: &str, targets: &'a [Target]) -> Option<&'a Target> {
    let (key, suffix) = name.rsplit_once('.')?;
    if !EmbeddingTable::SUFFIXES.contains(&suffix) {
        return None;
    }
    targets.iter().find(|t| t.key == key)
}

/// Rank `rank`'s shard of `ranks` (`ranks = 1`: the whole tables) of every table buffer in the
/// `sources` shards (in shard order; `load` reads one), and every other tensor of the first
/// source (the dense part, when the tables were written whole).
pub(crate) fn reshard(
    sources: usize,
    load: impl Fn(usize) -> Result<HashMap<String, Tensor>>,
    targets: &[Target],
    rank: usize,
    ranks: usize,
) -> Result<HashMap<String, Tensor>> {
    let mut out: HashMap<String, Tensor> = HashMap::new();
    let mut buffers: HashMap<String, (Vec<f32>, usize, usize)> = HashMap::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in 0..sources {
        for (name, tensor) in load(m)? {
            let Some(target) = table_of(&name, targets) else {
                if m == 0 {
                    out.insert(name, tensor);
                }
                continue;
            };
            let (rows, dim) = tensor.dims2()?;
            if dim != target.dim {
                return Err(TrainError::Distributed(format!(
                    "{name}: {dim} columns in the checkpoint, {} in the model",
                    target.dim
                )));
            }
            *seen.entry(name.clone()).or_default() += rows;
            let data = tensor.flatten_all()?.to_vec1::<f32>()?;
            let (dst, _, _) = buffers
                .entry(name)
                .or_insert_with(|| (vec![0.0; target.rows * dim], target.rows, dim));
            for i in 0..rows {
                let id = i * sources + m;
                if id % ranks != rank {
                    continue;
                }
                let row = id / ranks;
                let to = dst.get_mut(row * dim..(row + 1) * dim).ok_or_else(|| {
                    TrainError::Distributed(format!(
                        "{}: the checkpoint has more rows than the model's {} on rank {rank}",
                        target.key, target.rows
                    ))
                })?;
                to.copy_from_slice(&data[i * dim..(i + 1) * dim]);
            }
        }
    }
    for (name, (data, rows, dim)) in buffers {
        let total = seen[&name];
        if shard_rows(total, rank, ranks) != rows {
            return Err(TrainError::Distributed(format!(
                "{name}: {total} rows in the checkpoint do not make the model's {rows} on rank \
                 {rank} of {ranks}"
            )));
        }
        out.insert(name, Tensor::from_vec(data, (rows, dim), &Device::Cpu)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of `v` rows of 2 columns whose row `id` is `[id, -id]`, as `m` shards.
    fn shards(v: usize, m: usize) -> Vec<HashMap<String, Tensor>> {
        (0..m)
            .map(|s| {
                let rows = shard_rows(v, s, m);
                let data: Vec<f32> = (0..rows)
                    .flat_map(|i| {
                        let id = (i * m + s) as f32;
                        [id, -id]
                    })
                    .collect();
                let mut t = HashMap::new();
                t.insert(
                    "input.sparse.f.weight".to_string(),
                    Tensor::from_vec(data, (rows, 2), &Device::Cpu).unwrap(),
                );
                if s == 0 {
                    t.insert(
                        "dense.w".into(),
                        Tensor::ones(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
                    );
                }
                t
            })
            .collect()
    }

    #[test]
    fn any_number_of_shards_reshards_to_any_other() {
        let v = 11;
        for m in 1..5 {
            let src = shards(v, m);
            for n in 1..5 {
                for r in 0..n {
                    let rows = shard_rows(v, r, n);
                    let targets = [Target {
                        key: "input.sparse.f".into(),
                        rows,
                        dim: 2,
                    }];
                    let got = reshard(m, |s| Ok(src[s].clone()), &targets, r, n).unwrap();
                    let want: Vec<f32> = (0..rows)
                        .flat_map(|i| {
                            let id = (i * n + r) as f32;
                            [id, -id]
                        })
                        .collect();
                    let w = got["input.sparse.f.weight"]
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap();
                    assert_eq!(w, want, "{m} shards to {n} ranks, rank {r}");
                    assert!(got.contains_key("dense.w"));
                }
            }
        }
        // A model whose table has another size is refused.
        let src = shards(v, 2);
        let targets = [Target {
            key: "input.sparse.f".into(),
            rows: 3,
            dim: 2,
        }];
        assert!(reshard(2, |s| Ok(src[s].clone()), &targets, 0, 2).is_err());
    }
}
