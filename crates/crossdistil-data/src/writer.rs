//! Writes a prepared data set: `DIR/data.parquet` plus `DIR/dataset.toml`, both atomically, with
//! the checksums of `checksum.rs`: a CRC32 per column chunk in the Parquet footer, and the
//! footer's own CRC32 in `dataset.toml`.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::atomic;
use crate::checksum;
use crate::error::{DataError, Result};
use crate::spec::DatasetSpec;
use crate::table::Table;

/// Rows per Parquet row group: large enough for fast scans, small enough to read in parallel.
pub(crate) const ROW_GROUP_ROWS: usize = 256 * 1024;

/// Streams chunks of rows into `data.parquet` under a temporary name; `finish` renames it into
/// place and then writes `dataset.toml`. Dropped without `finish`, it removes its temporary file.
pub(crate) struct CanonicalWriter {
    dir: PathBuf,
    spec: DatasetSpec,
    tmp: PathBuf,
    writer: Option<ArrowWriter<File>>,
    rows: usize,
}

impl CanonicalWriter {
    /// Creates `dir` if needed and checks the spec; nothing is written until the first chunk.
    pub(crate) fn create(dir: &Path, spec: DatasetSpec) -> Result<Self> {
        spec.validate()
            .map_err(|m| DataError::config(dir.join(crate::spec::SPEC_FILE), m))?;
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, "cannot create folder", e))?;
        let tmp = atomic::temp_path(&spec.data_path(dir));
        Ok(CanonicalWriter {
            dir: dir.to_path_buf(),
            spec,
            tmp,
            writer: None,
            rows: 0,
        })
    }

    /// Appends a chunk. Every chunk must have the same columns of the same types, and together
    /// they must hold every column the spec names.
    pub(crate) fn write(&mut self, table: &Table) -> Result<()> {
        let batch = table
            .to_record_batch()
            .map_err(|e| DataError::file(&self.tmp, format!("cannot build a record batch: {e}")))?;
        if self.writer.is_none() {
            for col in self
                .spec
                .input_columns()
                .into_iter()
                .chain(self.spec.extra.iter().map(String::as_str))
            {
                if table.get(col).is_none() {
                    return Err(DataError::column(
                        self.spec.data_path(&self.dir),
                        col,
                        "named in dataset.toml but not produced by the source",
                    ));
                }
            }
            let file = File::create(&self.tmp)
                .map_err(|e| DataError::io(&self.tmp, "cannot create", e))?;
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .build();
            let writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| {
                DataError::file(&self.tmp, format!("cannot start Parquet writer: {e}"))
            })?;
            self.writer = Some(writer);
        }
        let writer = self.writer.as_mut().expect("writer was just created");
        writer
            .write(&batch)
            .map_err(|e| DataError::file(&self.tmp, format!("cannot write rows: {e}")))?;
        self.rows += table.rows();
        Ok(())
    }

    /// Closes the Parquet file with the column chunk checksums in its footer, renames it into
    /// place and writes `dataset.toml` with the footer's checksum.
    pub(crate) fn finish(mut self) -> Result<PathBuf> {
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| DataError::file(&self.tmp, "no rows were written"))?;
        let cannot = |e: &dyn std::fmt::Display| {
            DataError::file(&self.tmp, format!("cannot finish Parquet file: {e}"))
        };
        writer.flush().map_err(|e| cannot(&e))?;
        writer.sync().map_err(|e| cannot(&e))?;
        // The chunks are in the file now; read them back for their checksums.
        let mut back =
            File::open(&self.tmp).map_err(|e| DataError::io(&self.tmp, "cannot reopen", e))?;
        let crcs = checksum::chunk_crcs(&mut back, writer.flushed_row_groups())
            .map_err(|e| DataError::io(&self.tmp, "cannot read back", e))?;
        writer.append_key_value_metadata(KeyValue::new(
            checksum::CHUNK_CRC_KEY.to_string(),
            checksum::encode(&crcs),
        ));
        let file = writer.into_inner().map_err(|e| cannot(&e))?;
        file.sync_all()
            .map_err(|e| DataError::io(&self.tmp, "cannot sync", e))?;
        drop(file);
        let footer = checksum::footer_crc(&self.tmp).map_err(|e| cannot(&format!("{e:?}")))?;
        self.spec.footer_crc32 = Some(footer);
        let data = self.spec.data_path(&self.dir);
        atomic::rename_into_place(&self.tmp, &data)?;
        self.spec.write(&self.dir)?;
        Ok(data)
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }
}

impl Drop for CanonicalWriter {
    fn drop(&mut self) {
        if self.tmp.exists() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a whole table in one go.
pub fn write_dataset(dir: &Path, spec: DatasetSpec, table: &Table) -> Result<PathBuf> {
    let mut w = CanonicalWriter::create(dir, spec)?;
    w.write(table)?;
    w.finish()
}
