//! Reads the named columns of a Parquet source a batch of rows at a time, in file order, so that
//! a prepare holds one batch, never the whole file.
//!
//! As the loader's reader does: the column chunk checksums of the canonical writer are checked
//! (when the file has them) before a row group is decoded, and a panic of the Parquet reader on
//! corrupt bytes becomes an error naming the file (and the row group).

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};

use crate::checksum;
use crate::error::{DataError, Result, unique_position};
use crate::parquet_io::{guard, stored_crcs};

/// A Parquet file opened for reading some of its columns in batches.
pub(crate) struct ParquetChunks {
    path: PathBuf,
    meta: ArrowReaderMetadata,
    roots: Vec<usize>,
    crcs: Option<Vec<Vec<u32>>>,
}

impl ParquetChunks {
    /// Opens `path` and finds `columns` in it: a column missing from the file is an error naming
    /// it and `named_in` (where the names come from); one present twice is an error naming it.
    pub(crate) fn open(path: &Path, columns: &[&str], named_in: &str) -> Result<Self> {
        let file = File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
        let meta = guard(path, None, || {
            ArrowReaderMetadata::load(&file, ArrowReaderOptions::default()).map_err(|e| {
                DataError::file(
                    path,
                    format!("not a readable Parquet file (truncated or corrupt?): {e}"),
                )
            })
        })?;
        let fields = meta.schema().fields();
        let roots = columns
            .iter()
            .map(|&name| {
                let names = fields.iter().map(|f| f.name().as_str());
                unique_position(path, names, name, "the file")?.ok_or_else(|| {
                    DataError::column(
                        path,
                        name,
                        format!("named in {named_in} but missing from the file"),
                    )
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        let crcs = stored_crcs(path, &meta)?;
        Ok(ParquetChunks {
            path: path.to_path_buf(),
            meta,
            roots,
            crcs,
        })
    }

    /// The number of rows, from the footer.
    pub(crate) fn rows(&self) -> u64 {
        self.meta.metadata().file_metadata().num_rows().max(0) as u64
    }

    /// Calls `each(first_row, batch)` on batches of at most `batch_rows` rows of the columns
    /// asked for, in file order (`first_row` 0-based, from the start of the file); a batch's
    /// columns are found by name.
    pub(crate) fn for_each_batch(
        &self,
        batch_rows: usize,
        each: &mut dyn FnMut(usize, RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let path = self.path.as_path();
        let mask = ProjectionMask::roots(self.meta.parquet_schema(), self.roots.iter().copied());
        let mut first_row = 0;
        for g in 0..self.meta.metadata().num_row_groups() {
            if let Some(crcs) = &self.crcs {
                self.verify_group(g, &crcs[g])?;
            }
            let f = File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(f, self.meta.clone())
                .with_projection(mask.clone())
                .with_row_groups(vec![g])
                .with_batch_size(batch_rows.max(1))
                .build()
                .map_err(|e| {
                    DataError::row_group(path, g + 1, None, format!("cannot read: {e}"))
                })?;
            let mut batches = reader.into_iter();
            loop {
                let next = guard(path, Some(g), || {
                    batches.next().transpose().map_err(|e| {
                        DataError::row_group(
                            path,
                            g + 1,
                            None,
                            format!("cannot decode (truncated or corrupt?): {e}"),
                        )
                    })
                })?;
                let Some(batch) = next else { break };
                let n = batch.num_rows();
                each(first_row, batch)?;
                first_row += n;
            }
        }
        Ok(())
    }

    /// Checks the CRC32 of every column chunk of row group `g` that is read.
    fn verify_group(&self, g: usize, expected: &[u32]) -> Result<()> {
        let path = self.path.as_path();
        let group = self.meta.metadata().row_group(g);
        let schema = self.meta.parquet_schema();
        let wanted: HashSet<usize> = self.roots.iter().copied().collect();
        let mut file = File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
        for (leaf, chunk) in group.columns().iter().enumerate() {
            let root = schema.get_column_root_idx(leaf);
            if !wanted.contains(&root) {
                continue;
            }
            let name = self.meta.schema().field(root).name();
            let (start, len) = chunk.byte_range();
            let found = checksum::range_crc(&mut file, start, len).map_err(|e| {
                DataError::row_group(path, g + 1, Some(name), format!("cannot read: {e}"))
            })?;
            if found != expected[leaf] {
                return Err(DataError::row_group(
                    path,
                    g + 1,
                    Some(name),
                    format!(
                        "the data is corrupt: its CRC32 is {found:08x}, the writer stored {:08x}",
                        expected[leaf]
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `e` with its row moved on by `base` rows: a row counted within a batch becomes a row of the
/// file.
pub(crate) fn shift_row(mut e: DataError, base: usize) -> DataError {
    if let DataError::Invalid { at, .. } = &mut e
        && let Some(row) = &mut at.row
    {
        *row += base;
    }
    e
}
