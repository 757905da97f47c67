//! Mini-batches as plain row-major buffers.

/// The ids of one multi-valued field for a batch: row `i` holds `ids[offsets[i]..offsets[i+1]]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MultiBatch {
    /// Row boundaries into `ids`, `[size + 1]`, non-decreasing.
    pub offsets: Vec<u32>,
    /// The ids of every row, concatenated in row order.
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
    /// The rows' sample weights `[size]` (the data set's `weight` column), or empty when every
    /// row weighs 1.
    pub weights: Vec<f32>,
}

impl Batch {
    /// The number of rows.
    pub fn size(&self) -> usize {
        self.rows.len()
    }

    /// Appends the rows of `other` (a batch of the same fields and tasks) after this batch's.
    /// When one of the two has sample weights and the other not, the other's rows weigh 1.
    pub fn append(&mut self, other: &Batch) {
        let (n, m) = (self.size(), other.size());
        if !self.weights.is_empty() || !other.weights.is_empty() {
            self.weights.resize(n, 1.0);
            match other.weights.is_empty() {
                true => self.weights.extend(std::iter::repeat_n(1.0, m)),
                false => self.weights.extend_from_slice(&other.weights),
            }
        }
        self.rows.extend_from_slice(&other.rows);
        self.sparse.extend_from_slice(&other.sparse);
        self.dense.extend_from_slice(&other.dense);
        self.labels.extend_from_slice(&other.labels);
        if self.multi.is_empty() && n == 0 {
            self.multi = vec![
                MultiBatch {
                    offsets: vec![0],
                    ids: Vec::new()
                };
                other.multi.len()
            ];
        }
        for (mine, theirs) in self.multi.iter_mut().zip(&other.multi) {
            if mine.offsets.is_empty() {
                mine.offsets.push(0);
            }
            let base = mine.ids.len() as u32;
            mine.offsets
                .extend(theirs.offsets.iter().skip(1).map(|o| base + o));
            mine.ids.extend_from_slice(&theirs.ids);
        }
    }

    /// The batch cut into `parts` contiguous shards of rows `[i * n / parts, (i + 1) * n / parts)`
    /// (empty shards are left out), for data-parallel workers.
    pub fn split(&self, parts: usize) -> Vec<Batch> {
        let parts = parts.max(1);
        if parts == 1 {
            return vec![self.clone()];
        }
        (0..parts)
            .map(|i| self.part(i, parts))
            .filter(|b| b.size() > 0)
            .collect()
    }

    /// Shard `i` of [`Batch::split`]`(parts)`: rows `[i * n / parts, (i + 1) * n / parts)`, which
    /// may be empty (then with an empty offset list per multi-valued field, `[0]`).
    pub fn part(&self, i: usize, parts: usize) -> Batch {
        let n = self.size();
        let parts = parts.max(1);
        let (ns, nd, nt) = (
            self.sparse.len() / n.max(1),
            self.dense.len() / n.max(1),
            self.labels.len() / n.max(1),
        );
        let (lo, hi) = (i * n / parts, ((i + 1) * n / parts).max(i * n / parts));
        Batch {
            rows: self.rows[lo..hi].to_vec(),
            sparse: self.sparse[lo * ns..hi * ns].to_vec(),
            dense: self.dense[lo * nd..hi * nd].to_vec(),
            labels: self.labels[lo * nt..hi * nt].to_vec(),
            weights: match self.weights.is_empty() {
                true => Vec::new(),
                false => self.weights[lo..hi].to_vec(),
            },
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_rows_and_rebases_the_multi_offsets() {
        let b = Batch {
            rows: vec![7, 8, 9],
            sparse: vec![1, 2, 3],
            multi: vec![MultiBatch {
                offsets: vec![0, 2, 2, 3],
                ids: vec![4, 5, 6],
            }],
            dense: vec![0.5, 1.5, 2.5],
            labels: vec![1.0, 0.0, 1.0],
            weights: vec![0.5, 2.0, 1.0],
        };
        let parts = b.split(2);
        assert_eq!(parts[0].weights, [0.5]);
        assert_eq!(parts[1].weights, [2.0, 1.0]);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].rows, [7]);
        assert_eq!(parts[1].rows, [8, 9]);
        assert_eq!(parts[1].multi[0].offsets, [0, 0, 1]);
        assert_eq!(parts[1].multi[0].ids, [6]);
        assert_eq!(b.split(1), vec![b.clone()]);
        assert_eq!(b.split(5).len(), 3);
    }

    #[test]
    fn append_then_split_gives_back_both_batches() {
        let a = Batch {
            rows: vec![1, 2],
            sparse: vec![10, 20],
            multi: vec![MultiBatch {
                offsets: vec![0, 1, 3],
                ids: vec![4, 5, 6],
            }],
            dense: vec![0.1, 0.2],
            labels: vec![0.0, 1.0],
            weights: Vec::new(),
        };
        let b = Batch {
            rows: vec![9],
            sparse: vec![90],
            multi: vec![MultiBatch {
                offsets: vec![0, 2],
                ids: vec![7, 8],
            }],
            dense: vec![0.9],
            labels: vec![1.0],
            weights: vec![0.0],
        };
        let mut ab = a.clone();
        ab.append(&b);
        assert_eq!(ab.size(), 3);
        // The first batch had no weights: its rows weigh 1.
        assert_eq!(ab.weights, [1.0, 1.0, 0.0]);
        assert_eq!(ab.multi[0].offsets, [0, 1, 3, 5]);
        assert_eq!(ab.multi[0].ids, [4, 5, 6, 7, 8]);
        let back = ab.split(3);
        assert_eq!(back[2].rows, b.rows);
        assert_eq!(back[2].multi, b.multi);
        assert_eq!(back[2].weights, b.weights);
        // Without weights on either side, none appear.
        let mut aa = a.clone();
        aa.append(&a);
        assert!(aa.weights.is_empty());
        assert_eq!(aa.part(1, 2).multi, a.multi);
        assert_eq!(aa.part(1, 2).labels, a.labels);
    }
}
