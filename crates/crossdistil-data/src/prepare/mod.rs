//! Each supported source into the canonical layout, `DIR/data.parquet` plus `DIR/dataset.toml`,
//! with a `row_id` column and a seeded `split` column (see the crate's documentation).
//!
//! One module per source, each with a `prepare` function taking the raw input and the shared
//! [`PrepareOptions`] (output folder, seed, split fractions) and returning what was written
//! ([`Prepared`]); the sources of a fixed layout also have a `spec` function giving the
//! `dataset.toml` they write:
//!
//! | module | `cargo xtask prepare` | raw input | tasks |
//! |---|---|---|---|
//! | [`adult`] | `adult` | the bundled Parquet file | `income`, `never_married` |
//! | [`movielens`] | `movielens-100k` | a RecBole or GroupLens folder | `like`, `above_mean`, `love` |
//! | [`tiktok`] | `tiktok-icme2019` | a tab-separated file or a folder of them | `finish`, `like` |
//! | [`aliexpress`] | `aliexpress` | a CSV file or a folder of them | `click`, `conversion` |
//! | [`ali_ccp`] | `ali-ccp` | a CSV file or a folder of them | `click`, `purchase` |
//! | [`custom`] | `custom` | a TOML naming a CSV/TSV/Parquet file and its columns | yours |
//! | [`synthetic`] | `synthetic` | none: [`synthetic::SyntheticOptions`] | `task0`, `task1`, ... |
//!
//! The sources stay in modules of their own rather than flat at the crate root: their functions
//! share names (`prepare`, `spec`), and each module's documentation describes its raw layout.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::spec::DatasetSpec;
use crate::split::{Split, SplitFractions, assign_splits};
use crate::table::{ColumnData, Table};
use crate::writer::write_dataset;

pub mod adult;
pub mod ali_ccp;
pub mod aliexpress;
pub mod custom;
mod delimited;
pub mod movielens;
pub mod synthetic;
pub mod tiktok;

/// What every source shares.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// The output folder.
    pub out: PathBuf,
    /// The seed of the random split.
    pub seed: u64,
    /// The shares of rows that go to validation and test.
    pub fractions: SplitFractions,
}

impl PrepareOptions {
    /// Options that write into `out`, split with `seed` and the default fractions.
    pub fn new(out: impl Into<PathBuf>, seed: u64) -> Self {
        PrepareOptions {
            out: out.into(),
            seed,
            fractions: SplitFractions::default(),
        }
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

/// Writes a table that already has its row id and split columns.
pub(crate) fn write(table: Table, spec: DatasetSpec, opts: &PrepareOptions) -> Result<Prepared> {
    let rows = table.rows();
    write_dataset(&opts.out, spec.clone(), &table)?;
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

/// Appends the columns of `more` to those of `acc` (same names, same kinds).
pub(crate) fn concat_columns(
    acc: &mut Vec<(String, ColumnData)>,
    more: Vec<(String, ColumnData)>,
    file: &Path,
) -> Result<()> {
    if acc.is_empty() {
        *acc = more;
        return Ok(());
    }
    for ((name, a), (_, b)) in acc.iter_mut().zip(more) {
        match (a, b) {
            (ColumnData::Str(x), ColumnData::Str(y)) => x.extend(y),
            (ColumnData::Int(x), ColumnData::Int(y)) => x.extend(y),
            (ColumnData::Float(x), ColumnData::Float(y)) => x.extend(y),
            (ColumnData::Label(x), ColumnData::Label(y)) => x.extend(y),
            (ColumnData::List(x), ColumnData::List(y)) => x.extend(y),
            (a @ ColumnData::Int(_), ColumnData::Str(y)) => {
                let ColumnData::Int(x) = a else {
                    unreachable!()
                };
                let mut s: Vec<String> = x.iter().map(i64::to_string).collect();
                s.extend(y);
                *a = ColumnData::Str(s);
            }
            (ColumnData::Str(x), ColumnData::Int(y)) => x.extend(y.iter().map(i64::to_string)),
            _ => {
                return Err(DataError::column(
                    file,
                    name,
                    "holds a different kind of value than in the files before it",
                ));
            }
        }
    }
    Ok(())
}

/// Table from named columns.
pub(crate) fn table_of(columns: Vec<(String, ColumnData)>) -> Table {
    let mut t = Table::new();
    for (n, c) in columns {
        t.push(n, c);
    }
    t
}
