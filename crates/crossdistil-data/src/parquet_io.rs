//! Reading a Parquet file's columns into Arrow record batches, row groups in parallel.

use std::fs::File;
use std::path::Path;

use arrow_array::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use rayon::prelude::*;

use crate::error::{DataError, Result};

/// Reads the named columns of every row, in file order. Each row group is decoded on its own
/// rayon task. A missing column is an error naming it; a truncated or corrupt file is an error
/// naming the file.
pub fn read_columns(path: &Path, columns: &[&str]) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::default()).map_err(|e| {
        DataError::file(
            path,
            format!("not a readable Parquet file (truncated or corrupt?): {e}"),
        )
    })?;
    let schema = meta.schema().clone();
    let mut roots = Vec::with_capacity(columns.len());
    for &name in columns {
        match schema.index_of(name) {
            Ok(i) => roots.push(i),
            Err(_) => {
                return Err(DataError::column(
                    path,
                    name,
                    "named in dataset.toml but missing from the file",
                ));
            }
        }
    }
    let mask = ProjectionMask::roots(meta.parquet_schema(), roots);
    let groups = meta.metadata().num_row_groups();
    let parts: Vec<Result<Vec<RecordBatch>>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            // A fresh open per task: cloned handles share one file offset, and parallel seeks on it
            // would race.
            let f = File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(f, meta.clone())
                .with_projection(mask.clone())
                .with_row_groups(vec![g])
                .with_batch_size(64 * 1024)
                .build()
                .map_err(|e| DataError::file(path, format!("cannot read row group {g}: {e}")))?;
            reader
                .map(|b| {
                    b.map_err(|e| {
                        DataError::file(
                            path,
                            format!("cannot decode row group {g} (truncated or corrupt?): {e}"),
                        )
                    })
                })
                .collect()
        })
        .collect();
    let mut batches = Vec::new();
    for p in parts {
        batches.extend(p?);
    }
    Ok(batches)
}
