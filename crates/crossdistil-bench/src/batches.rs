//! The benchmark's batches: full batches of the train split, the first field's ids optionally
//! spread over a larger table.

use crossdistil_data::{Batches, Dataset, Order, Split};
use crossdistil_train::BatchSource;
use crossdistil_train::BoxedBatches;

/// Spreads id `id` over a table of `rows` rows: `(id * 2654435761 + 12345) mod rows`, the
/// multiplication by an odd constant prime to 10 a bijection modulo any `rows = 2^a 5^b`.
fn spread(id: u32, rows: usize) -> u32 {
    ((id as u64 * 2_654_435_761 + 12_345) % rows as u64) as u32
}

/// Full batches of `batch` rows of the train split, in a seeded order per epoch
/// (`Order::Shuffled(epoch + 7)`; the last, partial batch is dropped), the first field's ids
/// spread over its whole table when the table is enlarged to `first_table_rows`.
pub struct BenchBatches<'a> {
    ds: &'a Dataset,
    rows: Vec<u32>,
    batch: usize,
    first_table_rows: Option<usize>,
}

impl<'a> BenchBatches<'a> {
    /// The batches of `ds`'s train split.
    pub fn new(ds: &'a Dataset, batch: usize, first_table_rows: Option<usize>) -> Self {
        BenchBatches {
            ds,
            rows: ds.split_rows(Split::Train),
            batch,
            first_table_rows,
        }
    }

    /// Rows of the train split.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }
}

impl BatchSource for BenchBatches<'_> {
    fn epoch(&self, epoch: usize) -> crossdistil_train::Result<BoxedBatches<'_>> {
        let (size, big, fields) = (self.batch, self.first_table_rows, self.ds.sparse.len());
        let order = Order::Shuffled(epoch as u64 + 7);
        let batches = Batches::new(self.ds, &self.rows, size, order)
            .filter(move |b| b.size() == size)
            .map(move |mut batch| {
                if let Some(big) = big {
                    for r in 0..batch.size() {
                        batch.sparse[r * fields] = spread(batch.sparse[r * fields], big);
                    }
                }
                Ok(batch)
            });
        Ok(Box::new(batches))
    }
}

#[cfg(test)]
mod tests {
    use super::spread;

    /// The spread is a bijection on tables of 10^4 and 2^4 5^3 rows.
    #[test]
    fn spread_is_a_bijection() {
        for rows in [10_000usize, 2_000] {
            let mut seen = vec![false; rows];
            for id in 0..rows as u32 {
                let s = spread(id, rows) as usize;
                assert!(!seen[s]);
                seen[s] = true;
            }
        }
    }
}
