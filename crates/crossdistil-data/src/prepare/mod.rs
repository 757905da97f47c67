//! Each supported source into the canonical layout, `DIR/data.parquet` plus `DIR/dataset.toml`,
//! with a `row_id` column and a seeded `split` column (see the crate's documentation).
//!
//! One module per source, each with a `prepare` function taking the raw input and the shared
//! [`PrepareOptions`] (output folder, seed, split fractions, `rows_per_file`) and returning what
//! was written ([`Prepared`]); the sources of a fixed layout also have a `spec` function giving
//! the `dataset.toml` they write. Every source honours `rows_per_file: Some(n)`: the data is then
//! written as part files `DIR/data/part-00000.parquet`, ... of at most `n` rows each, listed in
//! `dataset.toml` (`data = "data"` and one `[[part]]` per file, with its rows and checksum).
//!
//! | module | `cargo xtask prepare` | raw input | tasks | memory |
//! |---|---|---|---|---|
//! | [`adult`] | `adult` | the bundled Parquet file | `income`, `never_married` | the table |
//! | [`movielens`] | `movielens-100k` | a RecBole or GroupLens folder | `like`, `above_mean`, `love` | the table |
//! | [`tiktok`] | `tiktok-icme2019` | a tab-separated file or a folder of them | `finish`, `like` | a chunk |
//! | [`aliexpress`] | `aliexpress` | a CSV file or a folder of them | `click`, `conversion` | a chunk |
//! | [`ali_ccp`] | `ali-ccp` | a CSV file or a folder of them | `click`, `purchase` | a chunk |
//! | [`custom`] | `custom` | a TOML naming a CSV/TSV/Parquet file and its columns | yours | a chunk |
//! | [`synthetic`] | `synthetic` | none: [`synthetic::SyntheticOptions`] | `task0`, `task1`, ... | a chunk |
//! | [`simulate`] | `simulate` | none: [`simulate::SimulateOptions`] | yours, or `task0`, `task1`, ... | a chunk (and the test split's labels and probabilities) |
//!
//! "A chunk": the source is read, split and written [`CHUNK_ROWS`] rows at a time, so memory does
//! not grow with the number of rows. Its split is drawn row by row with exact counts (sequential
//! selection sampling, after a counting pass over delimited and Parquet inputs), where Adult and
//! MovieLens, small fixed inputs, keep their split from a seeded permutation of all rows.
//!
//! The sources stay in modules of their own rather than flat at the crate root: their functions
//! share names (`prepare`, `spec`), and each module's documentation describes its raw layout.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::spec::DatasetSpec;
use crate::split::{Split, SplitFractions, assign_splits};
use crate::table::{ColumnData, Table};
use crate::writer::CanonicalWriter;

pub mod adult;
pub mod ali_ccp;
pub mod aliexpress;
pub mod custom;
mod delimited;
mod generate;
pub mod movielens;
mod parquet_chunks;
pub mod simulate;
mod stream;
pub mod synthetic;
pub mod tiktok;

pub use stream::CHUNK_ROWS;

/// What every source shares.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// The output folder.
    pub out: PathBuf,
    /// The seed of the random split.
    pub seed: u64,
    /// The shares of rows that go to validation and test.
    pub fractions: SplitFractions,
    /// `None`: one data file, `DIR/data.parquet`. `Some(n)`: part files
    /// `DIR/data/part-00000.parquet`, ... of at most `n` rows each (`n >= 1`), listed with their
    /// rows and checksums in `dataset.toml`. The rows, their order and their splits are the same
    /// either way.
    pub rows_per_file: Option<usize>,
}

impl PrepareOptions {
    /// Options that write into `out` as one file, split with `seed` and the default fractions.
    pub fn new(out: impl Into<PathBuf>, seed: u64) -> Self {
        PrepareOptions {
            out: out.into(),
            seed,
            fractions: SplitFractions::default(),
            rows_per_file: None,
        }
    }

    /// The same options, writing part files of at most `rows_per_file` rows when it is `Some`.
    pub fn with_rows_per_file(mut self, rows_per_file: Option<usize>) -> Self {
        self.rows_per_file = rows_per_file;
        self
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The prepared folder.
    pub dir: PathBuf,
    /// The number of rows written.
    pub rows: usize,
    /// The `dataset.toml` written.
    pub spec: DatasetSpec,
}

/// The row id and split columns every prepared set carries; returns the splits.
pub(crate) fn add_row_id_and_split(
    table: &mut Table,
    spec: &DatasetSpec,
    opts: &PrepareOptions,
) -> Vec<Split> {
    let n = table.rows();
    let splits = assign_splits(n, opts.fractions, opts.seed);
    table.columns.insert(
        0,
        (
            spec.row_id.clone(),
            ColumnData::RowId((0..n as u64).collect()),
        ),
    );
    table.columns.insert(
        1,
        (
            spec.split.clone(),
            ColumnData::Str(splits.iter().map(|s| s.as_str().to_string()).collect()),
        ),
    );
    splits
}

/// Adds row ids and splits, then writes the table. `source` is the input file (or folder) that
/// the table was read from, named by the error when it has no rows.
pub(crate) fn finish(
    source: &Path,
    mut table: Table,
    spec: DatasetSpec,
    opts: &PrepareOptions,
) -> Result<Prepared> {
    opts.fractions
        .check()
        .map_err(|m| DataError::config(&opts.out, m))?;
    if table.rows() == 0 {
        return Err(DataError::file(
            source,
            "has no data rows (a header alone, or nothing)",
        ));
    }
    add_row_id_and_split(&mut table, &spec, opts);
    write(table, spec, opts)
}

/// Writes a table that already has its row id and split columns, as one file or as part files
/// (`opts.rows_per_file`).
pub(crate) fn write(table: Table, spec: DatasetSpec, opts: &PrepareOptions) -> Result<Prepared> {
    let rows = table.rows();
    let mut writer = CanonicalWriter::create(&opts.out, spec, opts.rows_per_file)?;
    writer.write(&table)?;
    let spec = writer.finish()?;
    tracing::info!(rows, out = %opts.out.display(), "prepared {}", spec.name);
    Ok(Prepared {
        dir: opts.out.clone(),
        rows,
        spec,
    })
}

/// The files of `raw` with one of `extensions`, sorted: `raw` itself when it is a file.
pub(crate) fn input_files(raw: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(raw).map_err(|e| DataError::io(raw, "cannot open", e))?;
    if meta.is_file() {
        return Ok(vec![raw.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(raw)
        .map_err(|e| DataError::io(raw, "cannot list", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| extensions.contains(&e))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::file(
            raw,
            format!("no .{} file in this folder", extensions.join(" or .")),
        ));
    }
    Ok(files)
}

/// Table from named columns.
pub(crate) fn table_of(columns: Vec<(String, ColumnData)>) -> Table {
    let mut t = Table::new();
    for (n, c) in columns {
        t.push(n, c);
    }
    t
}
