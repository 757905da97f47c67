//! Reading a Parquet file's columns into Arrow record batches, row groups in parallel, with the
//! checksums of the canonical writer verified (`checksum.rs`).
//!
//! Bad input never panics past this boundary: parquet-rs can panic on some corrupt files (a
//! footer or page header whose sizes make no sense), so parsing the footer and decoding each row
//! group run under `catch_unwind`, and a panic becomes an error naming the file (and the row
//! group).

use std::collections::HashSet;
use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use rayon::prelude::*;

use crate::checksum::{self, CHUNK_CRC_KEY};
use crate::error::{DataError, Result, unique_position};

/// Reads the named columns of every row of the Parquet file at `path`, in file order, as Arrow
/// record batches. Each row group is decoded on its own rayon task, after the CRC32
/// of each of its column chunks is checked against the one the canonical writer stored (when the
/// file has them). A missing or duplicated column is an error naming it; a truncated or corrupt
/// file is an error naming the file, and where known the row group and the column.
pub fn read_columns(path: &Path, columns: &[&str]) -> Result<Vec<RecordBatch>> {
    read_columns_named(path, columns, "")
}

/// Reads the named columns of every row, in file order. Each row group is decoded on its own
/// rayon task, after the CRC32 of each of its column chunks is checked against the one the
/// canonical writer stored (when the file has them). `named_in` says where the column names come
/// from (`dataset.toml`, a custom source's TOML), for the error about a missing column. A missing
/// or duplicated column is an error naming it; a truncated or corrupt file is an error naming the
/// file, and where known the row group and the column.
pub(crate) fn read_columns_named(
    path: &Path,
    columns: &[&str],
    named_in: &str,
) -> Result<Vec<RecordBatch>> {
    let file = ParquetFile::open(path, columns, named_in)?;
    let parts: Vec<Result<Vec<RecordBatch>>> = (0..file.row_groups())
        .into_par_iter()
        .map(|g| file.read_group(g))
        .collect();
    let mut batches = Vec::new();
    for p in parts {
        batches.extend(p?);
    }
    Ok(batches)
}

/// A Parquet file opened for reading some of its columns row group by row group: its parsed
/// footer, the projection of the columns, and the canonical writer's checksums when it has them.
#[derive(Clone)]
pub(crate) struct ParquetFile {
    pub(crate) path: PathBuf,
    meta: ArrowReaderMetadata,
    roots: Vec<usize>,
    mask: ProjectionMask,
    crcs: Option<Vec<Vec<u32>>>,
}

impl ParquetFile {
    /// Parses the footer of `path` and finds `columns` in it (see [`read_columns_named`] for
    /// `named_in` and the errors).
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
        let roots = root_indices(path, &meta, columns, named_in)?;
        let crcs = stored_crcs(path, &meta)?;
        let mask = ProjectionMask::roots(meta.parquet_schema(), roots.iter().copied());
        Ok(ParquetFile {
            path: path.to_path_buf(),
            meta,
            roots,
            mask,
            crcs,
        })
    }

    /// The number of row groups.
    pub(crate) fn row_groups(&self) -> usize {
        self.meta.metadata().num_row_groups()
    }

    /// The number of rows of row group `g`.
    pub(crate) fn group_rows(&self, g: usize) -> usize {
        self.meta.metadata().row_group(g).num_rows() as usize
    }

    /// The Arrow type of every projected column, by name, in the order asked for.
    pub(crate) fn column_types(&self) -> Vec<(String, arrow_schema::DataType)> {
        self.roots
            .iter()
            .map(|&r| {
                let f = self.meta.schema().field(r);
                (f.name().clone(), f.data_type().clone())
            })
            .collect()
    }

    /// The projected columns of row group `g`, after its checksums are verified (when the file
    /// has them). A panic of the reader on corrupt data becomes an error naming the row group.
    pub(crate) fn read_group(&self, g: usize) -> Result<Vec<RecordBatch>> {
        let path = self.path.as_path();
        if let Some(crcs) = &self.crcs {
            verify_group(path, &self.meta, &self.roots, g, &crcs[g])?;
        }
        guard(path, Some(g), || {
            decode_group(path, &self.meta, &self.mask, g)
        })
    }
}

/// Runs `f`, turning a panic into an error naming the file (and the 0-based row group `group`).
pub(crate) fn guard<T>(
    path: &Path,
    group: Option<usize>,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        let message = format!("the Parquet reader failed on corrupt data ({why})");
        Err(match group {
            Some(g) => DataError::row_group(path, g + 1, None, message),
            None => DataError::file(path, message),
        })
    })
}

/// The root (top-level) index of every requested column. A column missing from the file, or
/// present under the same name more than once, is an error naming it.
fn root_indices(
    path: &Path,
    meta: &ArrowReaderMetadata,
    columns: &[&str],
    named_in: &str,
) -> Result<Vec<usize>> {
    let fields = meta.schema().fields();
    columns
        .iter()
        .map(|&name| {
            let names = fields.iter().map(|f| f.name().as_str());
            match unique_position(path, names, name, "the file")? {
                Some(i) => Ok(i),
                None if named_in.is_empty() => {
                    Err(DataError::column(path, name, "missing from the file"))
                }
                None => Err(DataError::column(
                    path,
                    name,
                    format!("named in {named_in} but missing from the file"),
                )),
            }
        })
        .collect()
}

/// The column chunk checksums of the canonical writer, `None` for a file without them. A list
/// that is unreadable or does not fit the file's row groups and columns is an error.
pub(crate) fn stored_crcs(
    path: &Path,
    meta: &ArrowReaderMetadata,
) -> Result<Option<Vec<Vec<u32>>>> {
    let md = meta.metadata();
    let Some(text) = md
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == CHUNK_CRC_KEY))
        .map(|e| e.value.as_deref().unwrap_or(""))
    else {
        return Ok(None);
    };
    let bad = || {
        DataError::file(
            path,
            format!("the column checksums in the footer (`{CHUNK_CRC_KEY}`) are corrupt"),
        )
    };
    let crcs = checksum::decode(text).ok_or_else(bad)?;
    let fits = crcs.len() == md.num_row_groups()
        && crcs
            .iter()
            .zip(md.row_groups())
            .all(|(c, g)| c.len() == g.num_columns());
    if !fits {
        return Err(bad());
    }
    Ok(Some(crcs))
}

/// Checks the CRC32 of every column chunk of row group `g` that belongs to one of `roots`.
fn verify_group(
    path: &Path,
    meta: &ArrowReaderMetadata,
    roots: &[usize],
    g: usize,
    expected: &[u32],
) -> Result<()> {
    let group = meta.metadata().row_group(g);
    let schema = meta.parquet_schema();
    let wanted: HashSet<usize> = roots.iter().copied().collect();
    let mut file = File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
    for (leaf, chunk) in group.columns().iter().enumerate() {
        let root = schema.get_column_root_idx(leaf);
        if !wanted.contains(&root) {
            continue;
        }
        let name = meta.schema().field(root).name();
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

/// Decodes the projected columns of row group `g`.
fn decode_group(
    path: &Path,
    meta: &ArrowReaderMetadata,
    mask: &ProjectionMask,
    g: usize,
) -> Result<Vec<RecordBatch>> {
    // A fresh open per task: cloned handles share one file offset, and parallel seeks on it
    // would race.
    let f = File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(f, meta.clone())
        .with_projection(mask.clone())
        .with_row_groups(vec![g])
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| DataError::row_group(path, g + 1, None, format!("cannot read: {e}")))?;
    let expected_rows = meta.metadata().row_group(g).num_rows() as usize;
    let batches = reader
        .map(|b| {
            b.map_err(|e| {
                DataError::row_group(
                    path,
                    g + 1,
                    None,
                    format!("cannot decode (truncated or corrupt?): {e}"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows != expected_rows {
        return Err(DataError::row_group(
            path,
            g + 1,
            None,
            format!("decoded {rows} rows where the footer says {expected_rows} (corrupt?)"),
        ));
    }
    Ok(batches)
}
