//! The end of every streamed source: chunks of rows in, row ids and splits added, written.
//!
//! A streamed source knows its row count `n` before its first chunk (synthetic from its options,
//! the delimited and Parquet sources from a counting pass), so the split of each row is drawn as
//! it passes by [`SplitSampler`] (exact counts, O(1) memory), and the memory of a prepare is that
//! of one chunk plus the writer's row group, whatever `n`.

use std::path::{Path, PathBuf};

use super::delimited::{self, Field, Layout};
use super::{PrepareOptions, Prepared, table_of};
use crate::error::{DataError, Result};
use crate::spec::DatasetSpec;
use crate::split::{Split, SplitSampler};
use crate::table::{ColumnData, Table};
use crate::writer::CanonicalWriter;

/// The rows a streamed source reads, splits and writes at a time.
pub const CHUNK_ROWS: usize = 256 * 1024;

/// How often (in rows) a streamed prepare logs its progress.
const LOG_EVERY: u64 = 4 * CHUNK_ROWS as u64;

/// Takes the chunks of a streamed source, in order, and writes them with their row ids
/// (`0..n`) and splits.
pub(crate) struct Sink {
    writer: CanonicalWriter,
    sampler: SplitSampler,
    source: PathBuf,
    out: PathBuf,
    row_id: String,
    split: String,
    rows: u64,
    total: u64,
    logged: u64,
}

impl Sink {
    /// A sink for the `rows` rows of `source` (the input named by errors), written with `spec`
    /// as `opts` says. Zero rows is an error naming `source`; so are bad split fractions.
    pub(crate) fn create(
        source: &Path,
        spec: DatasetSpec,
        rows: u64,
        opts: &PrepareOptions,
    ) -> Result<Self> {
        opts.fractions
            .check()
            .map_err(|m| DataError::config(&opts.out, m))?;
        if rows == 0 {
            return Err(DataError::file(
                source,
                "has no data rows (a header alone, or nothing)",
            ));
        }
        let (row_id, split) = (spec.row_id.clone(), spec.split.clone());
        Ok(Sink {
            writer: CanonicalWriter::create(&opts.out, spec, opts.rows_per_file)?,
            sampler: SplitSampler::new(rows, opts.fractions, opts.seed),
            source: source.to_path_buf(),
            out: opts.out.clone(),
            row_id,
            split,
            rows: 0,
            total: rows,
            logged: 0,
        })
    }

    /// Writes the next chunk, its row id column inserted first and its split column second.
    pub(crate) fn push(&mut self, table: Table) -> Result<()> {
        self.push_split(table).map(drop)
    }

    /// [`Sink::push`], returning the splits drawn for the chunk's rows, in order.
    pub(crate) fn push_split(&mut self, mut table: Table) -> Result<Vec<Split>> {
        let n = table.rows() as u64;
        if n > self.sampler.rows_left() {
            return Err(self.changed());
        }
        let splits: Vec<Split> = (0..n)
            .map(|_| self.sampler.next_split().expect("rows are left"))
            .collect();
        let names: Vec<String> = splits.iter().map(|s| s.as_str().to_string()).collect();
        let ids: Vec<u64> = (self.rows..self.rows + n).collect();
        table
            .columns
            .insert(0, (self.row_id.clone(), ColumnData::RowId(ids)));
        table
            .columns
            .insert(1, (self.split.clone(), ColumnData::Str(names)));
        self.writer.write(&table)?;
        self.rows += n;
        if self.rows - self.logged >= LOG_EVERY {
            self.logged = self.rows;
            tracing::info!("{} of {} rows written", self.rows, self.total);
        }
        Ok(splits)
    }

    /// Commits the data set; every one of the announced rows must have been pushed.
    pub(crate) fn finish(self) -> Result<Prepared> {
        if self.rows != self.total {
            return Err(self.changed());
        }
        let spec = self.writer.finish()?;
        tracing::info!(rows = self.rows, out = %self.out.display(), "prepared {}", spec.name);
        Ok(Prepared {
            dir: self.out,
            rows: self.rows as usize,
            spec,
        })
    }

    fn changed(&self) -> DataError {
        DataError::file(
            &self.source,
            format!(
                "changed while it was read: the counting pass found {} rows, the reading pass more \
                 or fewer",
                self.total
            ),
        )
    }
}

/// Prepares the delimited `files` of a source (`source`, the input named by errors) in two
/// passes: [`delimited::scan`] counts the rows and finds which categorical fields are text, then
/// the files are read again [`CHUNK_ROWS`] rows at a time into a [`Sink`].
pub(crate) fn prepare_delimited(
    source: &Path,
    files: &[PathBuf],
    layout: Layout,
    fields: &[Field],
    spec: DatasetSpec,
    opts: &PrepareOptions,
) -> Result<Prepared> {
    opts.fractions
        .check()
        .map_err(|m| DataError::config(&opts.out, m))?;
    let scan = delimited::scan(files, layout, fields)?;
    tracing::info!(
        "{} rows in {} file(s) of {}",
        scan.rows,
        files.len(),
        source.display()
    );
    let mut sink = Sink::create(source, spec, scan.rows, opts)?;
    for file in files {
        delimited::read_chunks(
            file,
            layout,
            fields,
            Some(&scan.text),
            CHUNK_ROWS,
            &mut |columns| {
                let table = table_of(columns);
                if table.rows() == 0 {
                    return Ok(());
                }
                sink.push(table)
            },
        )?;
    }
    sink.finish()
}
