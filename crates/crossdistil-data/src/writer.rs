//! Writes a prepared data set, with the checksums of `checksum.rs`: a CRC32 per column chunk in
//! each Parquet footer, and each footer's own CRC32 in `dataset.toml`.
//!
//! Two forms:
//!
//! - one file (the default): `DIR/data.parquet` plus `DIR/dataset.toml`;
//! - part files (`rows_per_file = Some(n)`): `DIR/data/part-00000.parquet`,
//!   `part-00001.parquet`, ..., each of at most `n` rows, plus `DIR/dataset.toml` with
//!   `data = "data"` and one `[[part]]` (file, rows, footer CRC32) per file.
//!
//! Either way every file is written under a temporary name ([`atomic::temp_path`]) and fsynced;
//! at [`CanonicalWriter::finish`] the files are renamed into place and `dataset.toml` is written
//! last: it is the commit, and a reader reads only the files it lists. Until then the data set
//! of an earlier prepare into the same folder stays as it was, and a writer dropped without
//! `finish` (an error, a panic) removes its temporary files. After the commit, the part files
//! (and temporary files of part files) that the new `dataset.toml` does not list are removed.
//!
//! Part files keep their names from one prepare to the next, so the renames of `finish` replace
//! those of an earlier part-file set: a crash in the moment between those renames and the
//! commit leaves the earlier `dataset.toml` naming files whose footers no longer match the
//! checksums it lists, which the loader refuses (naming the file) until a prepare is rerun; it
//! never reads them silently.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::atomic;
use crate::checksum;
use crate::error::{DataError, Result};
use crate::spec::{DATA_FILE, DatasetSpec, PartSpec};
use crate::table::Table;

/// Rows per Parquet row group: large enough for fast scans, small enough to read in parallel.
pub(crate) const ROW_GROUP_ROWS: usize = 256 * 1024;

/// The folder that `data` names in a data set written as part files.
pub(crate) const PARTS_DIR: &str = "data";

/// The name of part file `index` (0-based): `part-00000.parquet`, ...
pub(crate) fn part_name(index: usize) -> String {
    format!("part-{index:05}.parquet")
}

/// Whether `name` is a part file name this writer makes (`part-` digits `.parquet`).
fn is_part_name(name: &str) -> bool {
    name.strip_prefix("part-")
        .and_then(|r| r.strip_suffix(".parquet"))
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `name` is the temporary name of a part file (`part-00000.parquet.<pid>.part`).
fn is_part_temp_name(name: &str) -> bool {
    name.strip_suffix(".part")
        .and_then(|r| r.rsplit_once('.'))
        .is_some_and(|(file, pid)| {
            is_part_name(file) && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        })
}

/// The Parquet file being written: under its temporary name until `finish`.
struct OpenFile {
    writer: ArrowWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    rows: usize,
}

/// A closed file waiting, under its temporary name, to be renamed into place.
struct ClosedFile {
    tmp: PathBuf,
    path: PathBuf,
    rows: usize,
    footer_crc32: u32,
}

/// Streams chunks of rows into the data file (or the part files) under temporary names;
/// `finish` renames them into place and then writes `dataset.toml`. Dropped without `finish`, it
/// removes its temporary files.
pub(crate) struct CanonicalWriter {
    dir: PathBuf,
    spec: DatasetSpec,
    rows_per_file: Option<usize>,
    schema: Option<Arc<Schema>>,
    open: Option<OpenFile>,
    closed: Vec<ClosedFile>,
    rows: usize,
}

impl CanonicalWriter {
    /// Creates `dir` if needed and checks the spec; nothing is written until the first chunk.
    /// With `rows_per_file`, the data goes to part files of at most that many rows (at least 1)
    /// and `spec.data` becomes [`PARTS_DIR`]; without, to the one file `spec.data` names.
    pub(crate) fn create(
        dir: &Path,
        mut spec: DatasetSpec,
        rows_per_file: Option<usize>,
    ) -> Result<Self> {
        let toml = dir.join(crate::spec::SPEC_FILE);
        spec.validate().map_err(|m| DataError::config(&toml, m))?;
        if rows_per_file == Some(0) {
            return Err(DataError::config(&toml, "rows_per_file must be at least 1"));
        }
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, "cannot create folder", e))?;
        spec.footer_crc32 = None;
        spec.parts.clear();
        if rows_per_file.is_some() {
            spec.data = PARTS_DIR.to_string();
            let parts = spec.data_path(dir);
            std::fs::create_dir_all(&parts)
                .map_err(|e| DataError::io(&parts, "cannot create folder", e))?;
        }
        Ok(CanonicalWriter {
            dir: dir.to_path_buf(),
            spec,
            rows_per_file,
            schema: None,
            open: None,
            closed: Vec::new(),
            rows: 0,
        })
    }

    /// Appends a chunk. Every chunk must have the same columns of the same types, and together
    /// they must hold every column the spec names.
    pub(crate) fn write(&mut self, table: &Table) -> Result<()> {
        let batch = table.to_record_batch().map_err(|e| {
            DataError::file(
                self.spec.data_path(&self.dir),
                format!("cannot build a record batch: {e}"),
            )
        })?;
        match &self.schema {
            None => {
                self.check_columns(table)?;
                self.schema = Some(batch.schema());
            }
            Some(schema) => self.check_schema(schema, &batch)?,
        }
        if self.rows_per_file.is_none() {
            // One file: every chunk goes whole into it, as one `write` (a chunk of no rows too).
            if self.open.is_none() {
                self.open = Some(self.start_file()?);
            }
            let file = self.open.as_mut().expect("a file was just started");
            file.writer
                .write(&batch)
                .map_err(|e| DataError::file(&file.tmp, format!("cannot write rows: {e}")))?;
            file.rows += batch.num_rows();
            self.rows += batch.num_rows();
            return Ok(());
        }
        let mut at = 0;
        while at < batch.num_rows() {
            let per_file = self.rows_per_file.expect("one file is handled above");
            let room = per_file - self.open.as_ref().map_or(0, |f| f.rows);
            let len = room.min(batch.num_rows() - at);
            if self.open.is_none() {
                self.open = Some(self.start_file()?);
            }
            let file = self.open.as_mut().expect("a file was just started");
            file.writer
                .write(&batch.slice(at, len))
                .map_err(|e| DataError::file(&file.tmp, format!("cannot write rows: {e}")))?;
            file.rows += len;
            self.rows += len;
            at += len;
            if file.rows >= per_file {
                self.close_open()?;
            }
        }
        Ok(())
    }

    /// Every column the spec names is in the first chunk.
    fn check_columns(&self, table: &Table) -> Result<()> {
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
        Ok(())
    }

    /// A later chunk has the columns and types of the first: every file gets one schema.
    fn check_schema(&self, schema: &Schema, batch: &RecordBatch) -> Result<()> {
        if schema == batch.schema().as_ref() {
            return Ok(());
        }
        let at = self.spec.data_path(&self.dir);
        let theirs = batch.schema();
        for (a, b) in schema.fields().iter().zip(theirs.fields()) {
            if a != b {
                return Err(DataError::column(
                    &at,
                    a.name(),
                    format!(
                        "a later chunk of rows has it as {} `{}`, the first as {} `{}`",
                        b.data_type(),
                        b.name(),
                        a.data_type(),
                        a.name()
                    ),
                ));
            }
        }
        Err(DataError::file(
            &at,
            format!(
                "a later chunk of rows has {} columns, the first {}",
                theirs.fields().len(),
                schema.fields().len()
            ),
        ))
    }

    /// Opens the next file under its temporary name.
    fn start_file(&self) -> Result<OpenFile> {
        let path = match self.rows_per_file {
            Some(_) => self
                .spec
                .data_path(&self.dir)
                .join(part_name(self.closed.len())),
            None => self.spec.data_path(&self.dir),
        };
        let tmp = atomic::temp_path(&path);
        let file = File::create(&tmp).map_err(|e| DataError::io(&tmp, "cannot create", e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let schema = self
            .schema
            .clone()
            .expect("the schema is set by the first chunk");
        let writer = ArrowWriter::try_new(file, schema, Some(props))
            .map_err(|e| DataError::file(&tmp, format!("cannot start Parquet writer: {e}")))?;
        Ok(OpenFile {
            writer,
            tmp,
            path,
            rows: 0,
        })
    }

    /// Closes the open file (checksums in its footer, fsynced) and keeps it for `finish`.
    fn close_open(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let OpenFile {
            writer,
            tmp,
            path,
            rows,
        } = open;
        // Registered first, so that a failure below still removes the temporary file.
        self.closed.push(ClosedFile {
            tmp: tmp.clone(),
            path,
            rows,
            footer_crc32: 0,
        });
        let crc = close_with_checksums(writer, &tmp)?;
        self.closed.last_mut().expect("just pushed").footer_crc32 = crc;
        if self.rows_per_file.is_some() {
            tracing::info!(
                rows = self.rows,
                "wrote part {} ({rows} rows)",
                self.closed.len()
            );
        }
        Ok(())
    }

    /// Closes the last file, renames every file into place and writes `dataset.toml` with the
    /// footer checksums; then removes the part files of an earlier prepare that it does not
    /// list. Returns the `dataset.toml` written.
    pub(crate) fn finish(mut self) -> Result<DatasetSpec> {
        if self.open.is_none() && self.closed.is_empty() {
            return Err(DataError::file(
                self.spec.data_path(&self.dir),
                "no rows were written",
            ));
        }
        self.close_open()?;
        for f in &self.closed {
            atomic::rename_into_place(&f.tmp, &f.path)?;
        }
        let data = self.spec.data_path(&self.dir);
        if self.rows_per_file.is_some() {
            self.spec.parts = self
                .closed
                .iter()
                .enumerate()
                .map(|(i, f)| PartSpec {
                    file: part_name(i),
                    rows: f.rows as u64,
                    footer_crc32: Some(f.footer_crc32),
                })
                .collect();
            // The renames reach the disk before the commit that names them.
            if let Ok(d) = File::open(&data) {
                let _ = d.sync_all();
            }
        } else {
            self.spec.footer_crc32 = Some(self.closed[0].footer_crc32);
        }
        self.closed.clear();
        self.spec.write(&self.dir)?;
        self.remove_unlisted();
        Ok(self.spec.clone())
    }

    /// After the commit: the part files (and their temporary files, left by a prepare that was
    /// killed) in the part folder that `dataset.toml` does not list; written as one file, the
    /// whole part folder's part files, and the folder when it is then empty. Written as parts,
    /// an earlier one-file `data.parquet` is removed too. Failures are logged, not fatal: the
    /// new data set is complete.
    fn remove_unlisted(&self) {
        let parts_dir = self.dir.join(PARTS_DIR);
        let listed: Vec<&str> = self.spec.parts.iter().map(|p| p.file.as_str()).collect();
        if let Ok(entries) = std::fs::read_dir(&parts_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let stale =
                    (is_part_name(name) && !listed.contains(&name)) || is_part_temp_name(name);
                if stale && let Err(e) = std::fs::remove_file(entry.path()) {
                    tracing::warn!("cannot remove {}: {e}", entry.path().display());
                }
            }
        }
        if self.rows_per_file.is_none() {
            // Only succeeds when empty: a folder holding anything else stays.
            let _ = std::fs::remove_dir(&parts_dir);
        } else {
            let single = self.dir.join(DATA_FILE);
            if single.is_file()
                && let Err(e) = std::fs::remove_file(&single)
            {
                tracing::warn!("cannot remove {}: {e}", single.display());
            }
        }
    }
}

/// Flushes `writer`, reads its column chunks back for their CRC32s, stores them in the footer,
/// closes and fsyncs the file; returns the footer's CRC32.
fn close_with_checksums(mut writer: ArrowWriter<File>, tmp: &Path) -> Result<u32> {
    let cannot = |e: &dyn std::fmt::Display| {
        DataError::file(tmp, format!("cannot finish Parquet file: {e}"))
    };
    writer.flush().map_err(|e| cannot(&e))?;
    writer.sync().map_err(|e| cannot(&e))?;
    // The chunks are in the file now; read them back for their checksums.
    let mut back = File::open(tmp).map_err(|e| DataError::io(tmp, "cannot reopen", e))?;
    let crcs = checksum::chunk_crcs(&mut back, writer.flushed_row_groups())
        .map_err(|e| DataError::io(tmp, "cannot read back", e))?;
    writer.append_key_value_metadata(KeyValue::new(
        checksum::CHUNK_CRC_KEY.to_string(),
        checksum::encode(&crcs),
    ));
    let file = writer.into_inner().map_err(|e| cannot(&e))?;
    file.sync_all()
        .map_err(|e| DataError::io(tmp, "cannot sync", e))?;
    drop(file);
    checksum::footer_crc(tmp).map_err(|e| cannot(&format!("{e:?}")))
}

impl Drop for CanonicalWriter {
    fn drop(&mut self) {
        let open = self.open.take().map(|f| f.tmp);
        for tmp in open.iter().chain(self.closed.iter().map(|f| &f.tmp)) {
            if tmp.exists() {
                let _ = std::fs::remove_file(tmp);
            }
        }
    }
}

/// Writes a whole table in one go, as one file (`rows_per_file = None`) or as part files of at
/// most `rows_per_file` rows; returns the data path (the file, or the folder of part files).
pub fn write_dataset(dir: &Path, spec: DatasetSpec, table: &Table) -> Result<PathBuf> {
    write_dataset_parts(dir, spec, table, None)
}

/// As [`write_dataset`], as part files of at most `rows_per_file` rows when it is `Some`: files
/// `DIR/data/part-00000.parquet`, ... listed in `dataset.toml` with their row counts and footer
/// checksums.
pub fn write_dataset_parts(
    dir: &Path,
    spec: DatasetSpec,
    table: &Table,
    rows_per_file: Option<usize>,
) -> Result<PathBuf> {
    let mut w = CanonicalWriter::create(dir, spec, rows_per_file)?;
    w.write(table)?;
    Ok(w.finish()?.data_path(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::ColumnData;

    fn spec() -> DatasetSpec {
        toml::from_str(
            r#"
            name = "t"
            [[label]]
            name = "y"
            [[dense]]
            name = "x"
            "#,
        )
        .unwrap()
    }

    fn table(start: u64, n: usize) -> Table {
        let mut t = Table::new();
        t.push(
            "row_id",
            ColumnData::RowId((start..start + n as u64).collect()),
        );
        t.push("split", ColumnData::Str(vec!["train".to_string(); n]));
        t.push(
            "y",
            ColumnData::Label((0..n).map(|i| (i % 2) as u8).collect()),
        );
        t.push("x", ColumnData::Float((0..n).map(|i| i as f32).collect()));
        t
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn part_names_and_their_temporary_names_are_recognised() {
        assert!(is_part_name("part-00000.parquet") && is_part_name("part-123456.parquet"));
        assert!(!is_part_name("part-.parquet") && !is_part_name("part-0001-abc.parquet"));
        assert!(is_part_temp_name("part-00003.parquet.4242.part"));
        assert!(!is_part_temp_name("part-00003.parquet") && !is_part_temp_name("x.parquet.1.part"));
        assert_eq!(
            atomic::temp_path(Path::new("part-00003.parquet"))
                .to_str()
                .map(is_part_temp_name),
            Some(true)
        );
    }

    #[test]
    fn a_writer_dropped_midway_leaves_the_previous_parts_and_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let first = write_dataset_parts(dir, spec(), &table(0, 10), Some(4)).unwrap();
        let parts = dir.join(PARTS_DIR);
        assert_eq!(first, parts);
        let before: Vec<(String, Vec<u8>)> = names(&parts)
            .into_iter()
            .map(|n| (n.clone(), std::fs::read(parts.join(&n)).unwrap()))
            .collect();
        let toml = std::fs::read(dir.join(crate::spec::SPEC_FILE)).unwrap();
        assert_eq!(before.len(), 3);
        {
            // Other rows: two parts are closed, a third is open, when it is dropped.
            let mut w = CanonicalWriter::create(dir, spec(), Some(4)).unwrap();
            w.write(&table(100, 9)).unwrap();
            assert_eq!(w.closed.len(), 2);
            assert!(w.open.is_some());
            assert!(names(&parts).iter().any(|n| n.ends_with(".part")));
        }
        let after: Vec<(String, Vec<u8>)> = names(&parts)
            .into_iter()
            .map(|n| (n.clone(), std::fs::read(parts.join(&n)).unwrap()))
            .collect();
        assert_eq!(
            after, before,
            "the earlier parts are untouched, no temporary file is left"
        );
        assert_eq!(
            std::fs::read(dir.join(crate::spec::SPEC_FILE)).unwrap(),
            toml
        );
        let spec = DatasetSpec::read(dir).unwrap();
        for f in spec.data_files(dir).unwrap() {
            checksum::check_footer(&f.path, f.footer_crc32.unwrap()).unwrap();
        }

        // A prepare killed outright leaves its temporary files; the next one that succeeds
        // removes them, and the parts it no longer writes.
        std::fs::write(parts.join("part-00001.parquet.999999.part"), b"partial").unwrap();
        write_dataset_parts(dir, spec.clone(), &table(0, 6), Some(4)).unwrap();
        assert_eq!(names(&parts), ["part-00000.parquet", "part-00001.parquet"]);
        let spec = DatasetSpec::read(dir).unwrap();
        assert_eq!(spec.data, PARTS_DIR);
        assert_eq!(
            spec.parts.iter().map(|p| p.rows).collect::<Vec<_>>(),
            [4, 2]
        );
        assert!(spec.footer_crc32.is_none());
        for f in spec.data_files(dir).unwrap() {
            checksum::check_footer(&f.path, f.footer_crc32.unwrap()).unwrap();
        }

        // Back to one file: the part folder goes; to parts again: the one file goes.
        write_dataset(dir, self::spec(), &table(0, 6)).unwrap();
        assert_eq!(names(dir), ["data.parquet", "dataset.toml"]);
        write_dataset_parts(dir, self::spec(), &table(0, 6), Some(6)).unwrap();
        assert_eq!(names(dir), ["data", "dataset.toml"]);
        assert_eq!(names(&parts), ["part-00000.parquet"]);
    }

    #[test]
    fn chunks_of_another_schema_and_zero_rows_per_file_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(CanonicalWriter::create(tmp.path(), spec(), Some(0)).is_err());
        let mut w = CanonicalWriter::create(tmp.path(), spec(), Some(3)).unwrap();
        w.write(&table(0, 5)).unwrap();
        let mut other = table(5, 2);
        other.columns[3].1 = ColumnData::Int(vec![1, 2]);
        let e = w.write(&other).unwrap_err().to_string();
        assert!(e.contains("`x`") && e.contains("Int64"), "{e}");
        drop(w);
        assert!(names(&tmp.path().join(PARTS_DIR)).is_empty());
        assert!(!tmp.path().join(crate::spec::SPEC_FILE).exists());
    }
}
