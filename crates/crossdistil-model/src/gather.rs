//! The gather plan: which table rows each batch row used, deduplicated per field.

use candle_core::Result;

use crate::embedding_table::EmbeddingTable;
use crate::memory::AHEAD;

/// How one field's embedding columns of a batch were built.
///
/// `unique` holds the field's distinct ids in the batch, sorted; `inverse[k]` is the position in
/// `unique` of the `k`-th id of the batch (row `r` for a single-valued field; the ids of row `r`
/// are `inverse[offsets[r]..offsets[r + 1]]` for a multi-valued one).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPlan {
    /// First column of the field in the embedding matrix.
    pub column: usize,
    /// The field's embedding size.
    pub dim: usize,
    /// The field's distinct ids in the batch, sorted.
    pub unique: Vec<u32>,
    /// Per id of the batch, its position in `unique`.
    pub inverse: Vec<u32>,
    /// Row offsets into `inverse` for a multi-valued field (mean pooling), `None` for a
    /// single-valued one.
    pub offsets: Option<Vec<u32>>,
}

/// The plans of every embedding field of one batch, in the column order of the embedding
/// matrix `[rows, width]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GatherPlan {
    /// The rows of the batch.
    pub rows: usize,
    /// The columns of the embedding matrix, the sum of the fields' `dim`.
    pub width: usize,
    /// One plan per embedding table, in table order.
    pub fields: Vec<FieldPlan>,
}

/// Sorted distinct `ids` and, for each id, its position among them.
pub(crate) fn dedup(ids: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut unique = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let inverse = ids
        .iter()
        .map(|id| unique.partition_point(|u| u < id) as u32)
        .collect();
    (unique, inverse)
}

impl FieldPlan {
    /// The plan of a field over `ids` (one per row, or all rows' ids with `offsets`), checked
    /// against the table's vocabulary.
    pub fn new(
        table: &EmbeddingTable,
        column: usize,
        ids: &[u32],
        offsets: Option<Vec<u32>>,
    ) -> Result<Self> {
        let (unique, inverse) = dedup(ids);
        if let Some(&max) = unique.last()
            && max as usize >= table.vocab
        {
            candle_core::bail!(
                "{}: id {max} is out of range, the vocabulary has {} ids",
                table.key,
                table.vocab
            );
        }
        Ok(FieldPlan {
            column,
            dim: table.dim,
            unique,
            inverse,
            offsets,
        })
    }

    /// Writes the field's columns of `emb` (`[rows, width]`, row-major): the id's row for a
    /// single-valued field, the mean of the rows of the row's ids for a multi-valued one (zeros
    /// for an empty list).
    pub fn fill(&self, table: &EmbeddingTable, emb: &mut [f32], width: usize) {
        let cols = self.column..self.column + self.dim;
        match &self.offsets {
            None => {
                for (r, (out, &u)) in emb.chunks_exact_mut(width).zip(&self.inverse).enumerate() {
                    if let Some(&next) = self.inverse.get(r + AHEAD) {
                        table.prefetch(self.unique[next as usize]);
                    }
                    out[cols.clone()].copy_from_slice(table.row(self.unique[u as usize]));
                }
            }
            Some(offsets) => {
                for (out, w) in emb.chunks_exact_mut(width).zip(offsets.windows(2)) {
                    let ks = &self.inverse[w[0] as usize..w[1] as usize];
                    let out = &mut out[cols.clone()];
                    for &u in ks {
                        let row = table.row(self.unique[u as usize]);
                        out.iter_mut().zip(row).for_each(|(o, r)| *o += r);
                    }
                    if ks.len() > 1 {
                        let scale = 1.0 / ks.len() as f32;
                        out.iter_mut().for_each(|o| *o *= scale);
                    }
                }
            }
        }
    }

    /// The gradient of each distinct id, `[unique.len(), dim]` row-major, from the gradient of
    /// the embedding matrix `grad` (`[rows, width]`): the sum over the rows that used the id,
    /// each id of a multi-valued row receiving `grad / len` (as often as it occurs in the row).
    pub fn accumulate(&self, grad: &[f32], width: usize) -> Vec<f32> {
        let d = self.dim;
        let cols = self.column..self.column + d;
        let mut acc = vec![0.0f32; self.unique.len() * d];
        let mut add = |u: u32, g: &[f32], scale: f32| {
            let a = &mut acc[u as usize * d..(u as usize + 1) * d];
            a.iter_mut().zip(g).for_each(|(a, g)| *a += scale * g);
        };
        match &self.offsets {
            None => {
                for (g, &u) in grad.chunks_exact(width).zip(&self.inverse) {
                    add(u, &g[cols.clone()], 1.0);
                }
            }
            Some(offsets) => {
                for (g, w) in grad.chunks_exact(width).zip(offsets.windows(2)) {
                    let ks = &self.inverse[w[0] as usize..w[1] as usize];
                    let scale = 1.0 / ks.len().max(1) as f32;
                    for &u in ks {
                        add(u, &g[cols.clone()], scale);
                    }
                }
            }
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_sorts_and_inverts() {
        let (u, inv) = dedup(&[5, 2, 5, 9, 2]);
        assert_eq!(u, [2, 5, 9]);
        assert_eq!(inv, [1, 0, 1, 2, 0]);
        let (u, inv) = dedup(&[]);
        assert!(u.is_empty() && inv.is_empty());
    }
}
