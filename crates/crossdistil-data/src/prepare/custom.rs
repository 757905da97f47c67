//! A team's own logs: any CSV/TSV or Parquet file plus a TOML that names its columns.
//!
//! ```toml
//! name = "my-logs"
//! input = "logs.csv"          # relative to this TOML; .csv, .tsv/.txt or .parquet
//! # delimiter = ","           # delimited files: default from the extension
//! # header = true             # delimited files: whether the first line names the columns
//! user = "user_id"            # optional: the grouping column for GAUC
//!
//! [[sparse]]
//! name = "item_id"
//! min_count = 2
//!
//! [[multi]]
//! name = "tags"
//! separator = "|"             # delimited files; a Parquet list column needs none
//!
//! [[dense]]
//! name = "price"
//! norm = "log-standard"
//!
//! # weight = "importance"     # optional: a per-row sample weight (finite, >= 0)
//!
//! [[label]]                   # the tasks, in priority order
//! name = "click"              # a column that is already 0/1 (or true/false)
//!
//! [[label]]
//! name = "long_watch"
//! column = "watch_seconds"    # derived: 1 when watch_seconds >= 30
//! threshold = 30.0
//! ```
//!
//! Streamed: a counting pass (for a Parquet input, the footer's row count and a pass over the
//! categorical columns, to learn whether each is integers or text and has nulls), then the
//! input is read, split and written in chunks of [`CHUNK_ROWS`] rows, so memory does not grow
//! with the number of rows.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use arrow_array::RecordBatch;

use super::delimited::{self, Field, Layout, Parse};
use super::parquet_chunks::{ParquetChunks, shift_row};
use super::stream::{CHUNK_ROWS, Sink, prepare_delimited};
use super::{PrepareOptions, Prepared, table_of};
use crate::column::{Chunks, KeyArray, KeyRef};
use crate::error::{DataError, Result, echo};
use crate::spec::{DatasetSpec, DenseSpec, LabelSpec, MultiSpec, Norm, SparseSpec};
use crate::table::ColumnData;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomConfig {
    pub name: String,
    pub input: PathBuf,
    #[serde(default)]
    pub delimiter: Option<String>,
    #[serde(default = "yes")]
    pub header: bool,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub sparse: Vec<SparseSpec>,
    #[serde(default)]
    pub multi: Vec<CustomMulti>,
    #[serde(default)]
    pub dense: Vec<CustomDense>,
    #[serde(rename = "label")]
    pub labels: Vec<CustomLabel>,
    /// The per-row sample weight column, copied as a number.
    #[serde(default)]
    pub weight: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomMulti {
    pub name: String,
    #[serde(default = "one")]
    pub min_count: u32,
    #[serde(default = "bar")]
    pub separator: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomDense {
    pub name: String,
    #[serde(default)]
    pub norm: Norm,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomLabel {
    /// The task's name.
    pub name: String,
    /// The source column (default: `name`).
    #[serde(default)]
    pub column: Option<String>,
    /// When set, the label is `column >= threshold`; otherwise the column must be 0/1.
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub description: String,
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn bar() -> String {
    "|".into()
}

impl CustomConfig {
    pub(crate) fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| DataError::io(path, "cannot read", e))?;
        let mut cfg: CustomConfig =
            toml::from_str(&text).map_err(|e| DataError::config(path, e.to_string()))?;
        if cfg.input.is_relative() {
            cfg.input = path.parent().unwrap_or(Path::new(".")).join(&cfg.input);
        }
        Ok(cfg)
    }

    fn spec(&self) -> DatasetSpec {
        DatasetSpec {
            name: self.name.clone(),
            source: "custom".into(),
            data: crate::spec::DATA_FILE.into(),
            row_id: "row_id".into(),
            split: "split".into(),
            user: self.user.clone(),
            labels: self
                .labels
                .iter()
                .map(|l| LabelSpec {
                    name: l.name.clone(),
                    description: if !l.description.is_empty() {
                        l.description.clone()
                    } else if let Some(t) = l.threshold {
                        format!("{} >= {t}", l.column.as_deref().unwrap_or(&l.name))
                    } else {
                        String::new()
                    },
                })
                .collect(),
            sparse: self.sparse.clone(),
            multi: self
                .multi
                .iter()
                .map(|m| MultiSpec {
                    name: m.name.clone(),
                    min_count: m.min_count,
                    max_size: None,
                    hash_buckets: None,
                })
                .collect(),
            dense: self
                .dense
                .iter()
                .map(|d| DenseSpec {
                    name: d.name.clone(),
                    norm: d.norm,
                })
                .collect(),
            extra: vec![],
            weight: self.weight.clone(),
            footer_crc32: None,
            parts: vec![],
        }
    }
}

/// `config`: the TOML described above.
pub fn prepare(config: &Path, opts: &PrepareOptions) -> Result<Prepared> {
    let cfg = CustomConfig::read(config)?;
    let spec = cfg.spec();
    spec.validate().map_err(|m| DataError::config(config, m))?;
    let ext = cfg
        .input
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext == "parquet" {
        return prepare_parquet(&cfg, config, spec, opts);
    }
    let delimiter = match (&cfg.delimiter, ext.as_str()) {
        (Some(d), _) if d == "\\t" || d == "tab" => b'\t',
        (Some(d), _) if d.len() == 1 => d.as_bytes()[0],
        (Some(d), _) => {
            return Err(DataError::config(
                config,
                format!("delimiter `{}` is not one byte", echo(d)),
            ));
        }
        (None, "tsv" | "txt") => b'\t',
        (None, _) => b',',
    };
    let layout = Layout {
        delimiter,
        header: cfg.header,
        quoting: true,
    };
    let fields = fields(&cfg);
    if layout.header {
        check_header(&cfg.input, layout, &fields, config)?;
    }
    let files = [cfg.input.clone()];
    prepare_delimited(&cfg.input, &files, layout, &fields, spec, opts)
}

/// Every field the TOML names is in the header of its delimited input; a missing one is an
/// error naming the input, the column and `config`, where the name comes from.
fn check_header(input: &Path, layout: Layout, fields: &[Field], config: &Path) -> Result<()> {
    let names = delimited::header_names(input, layout)?;
    match fields.iter().find(|f| !names.contains(&f.source)) {
        Some(f) => Err(DataError::column(
            input,
            &f.source,
            format!(
                "named in {} but missing from the header ({} columns)",
                config.display(),
                names.len()
            ),
        )),
        None => Ok(()),
    }
}

fn fields(cfg: &CustomConfig) -> Vec<Field> {
    let mut f = Vec::new();
    if let Some(u) = &cfg.user
        && !cfg.sparse.iter().any(|s| &s.name == u)
    {
        f.push(Field::same(u, Parse::Cat));
    }
    f.extend(cfg.sparse.iter().map(|s| Field::same(&s.name, Parse::Cat)));
    f.extend(
        cfg.multi
            .iter()
            .map(|m| Field::same(&m.name, Parse::List(m.separator.clone()))),
    );
    f.extend(cfg.dense.iter().map(|d| Field::same(&d.name, Parse::Float)));
    f.extend(cfg.weight.iter().map(|w| Field::same(w, Parse::Float)));
    f.extend(cfg.labels.iter().map(|l| {
        let parse = l.threshold.map_or(Parse::Label, Parse::Threshold);
        Field::new(
            l.column.clone().unwrap_or_else(|| l.name.clone()),
            &l.name,
            parse,
        )
    }));
    f
}

/// Prepares the columns `cfg` names from its Parquet input, streamed: a column missing from the
/// file is an error that names `config`, where the name comes from.
fn prepare_parquet(
    cfg: &CustomConfig,
    config: &Path,
    spec: DatasetSpec,
    opts: &PrepareOptions,
) -> Result<Prepared> {
    opts.fractions
        .check()
        .map_err(|m| DataError::config(&opts.out, m))?;
    let file = cfg.input.as_path();
    let wanted = fields(cfg);
    let named_in = config.display().to_string();
    let mut names: Vec<&str> = wanted.iter().map(|f| f.source.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let input = ParquetChunks::open(file, &names, &named_in)?;
    let kinds = categorical_kinds(file, &wanted, &named_in)?;
    let mut sink = Sink::create(file, spec, input.rows(), opts)?;
    input.for_each_batch(CHUNK_ROWS, &mut |first_row, batch| {
        let columns =
            convert(file, &names, &wanted, &kinds, &batch).map_err(|e| shift_row(e, first_row))?;
        sink.push(table_of(columns))
    })?;
    sink.finish()
}

/// What the whole of a categorical column holds, decided before streaming so that every chunk
/// is written with one type: integers while every value is one, and whether it has nulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CatKind {
    all_int: bool,
    nulls: bool,
}

/// The [`CatKind`] of every categorical field of `wanted` (`None` for the others), from a pass
/// over those columns only, a batch at a time.
fn categorical_kinds(
    file: &Path,
    wanted: &[Field],
    named_in: &str,
) -> Result<Vec<Option<CatKind>>> {
    let is_cat = |f: &Field| matches!(f.parse, Parse::Cat | Parse::Text);
    let mut names: Vec<&str> = wanted
        .iter()
        .filter(|f| is_cat(f))
        .map(|f| f.source.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut kinds: Vec<Option<CatKind>> = wanted
        .iter()
        .map(|f| {
            is_cat(f).then_some(CatKind {
                all_int: true,
                nulls: false,
            })
        })
        .collect();
    if names.is_empty() {
        return Ok(kinds);
    }
    let input = ParquetChunks::open(file, &names, named_in)?;
    input.for_each_batch(CHUNK_ROWS, &mut |first_row, batch| {
        for (f, kind) in wanted.iter().zip(kinds.iter_mut()) {
            let Some(kind) = kind else { continue };
            let c = chunk_of(file, &names, &batch, &f.source);
            c.for_each_key(|_, k| match k {
                None => kind.nulls = true,
                Some(KeyRef::Str(_)) => kind.all_int = false,
                Some(KeyRef::Int(_)) => {}
            })
            .map_err(|e| shift_row(e, first_row))?;
        }
        Ok(())
    })?;
    Ok(kinds)
}

/// The column `name` of `batch`, as typed access names it.
fn chunk_of<'a>(
    file: &'a Path,
    names: &[&'a str],
    batch: &'a RecordBatch,
    name: &str,
) -> Chunks<'a> {
    Chunks {
        file,
        // Rows in errors count from the batch; the caller moves them on to the file's row.
        first_row: 0,
        name: names.iter().find(|n| **n == name).copied().unwrap_or("?"),
        arrays: vec![batch.column_by_name(name).expect("projected").as_ref()],
    }
}

/// The output columns of one batch of the Parquet input; rows in errors count from the batch.
fn convert(
    file: &Path,
    names: &[&str],
    wanted: &[Field],
    kinds: &[Option<CatKind>],
    batch: &RecordBatch,
) -> Result<Vec<(String, ColumnData)>> {
    let mut out = Vec::new();
    for (f, kind) in wanted.iter().zip(kinds) {
        let c = chunk_of(file, names, batch, &f.source);
        let data = match &f.parse {
            Parse::Cat | Parse::Text => categorical(&c, kind.expect("a categorical field"))?,
            Parse::Float => ColumnData::Float(c.dense()?),
            Parse::Label => ColumnData::Label(c.labels()?),
            Parse::Threshold(t) => {
                let mut v = Vec::with_capacity(c.len());
                c.for_each_f64(|row, x| {
                    if x.is_nan() {
                        return Err(DataError::cell(file, c.name, row + 1, "value is NaN"));
                    }
                    v.push(u8::from(x >= *t));
                    Ok(())
                })?;
                ColumnData::Label(v)
            }
            Parse::List(sep) => list(&c, sep)?,
        };
        out.push((f.name.clone(), data));
    }
    Ok(out)
}

fn key_string(k: Option<KeyRef<'_>>) -> String {
    match k {
        Some(KeyRef::Str(s)) => s.to_string(),
        Some(KeyRef::Int(i)) => i.to_string(),
        None => String::new(),
    }
}

/// A categorical column: integers while every value of the whole column is one, text otherwise;
/// with nulls anywhere in it, the nullable form of either, so that a null stays null (the null
/// category) and never becomes an empty string. `kind` is what the whole column holds.
fn categorical(c: &Chunks<'_>, kind: CatKind) -> Result<ColumnData> {
    let mut keys: Vec<Option<KeyRef<'_>>> = Vec::with_capacity(c.len());
    c.for_each_key(|_, k| keys.push(k))?;
    let int = |k: &Option<KeyRef<'_>>| match k {
        Some(KeyRef::Int(i)) => Some(*i),
        _ => None,
    };
    let text = |k: &Option<KeyRef<'_>>| k.map(|k| key_string(Some(k)));
    Ok(match (kind.all_int, kind.nulls) {
        (true, false) => ColumnData::Int(keys.iter().filter_map(int).collect()),
        (true, true) => ColumnData::OptInt(keys.iter().map(int).collect()),
        (false, false) => ColumnData::Str(keys.iter().filter_map(text).collect()),
        (false, true) => ColumnData::OptStr(keys.iter().map(text).collect()),
    })
}

/// A multi-valued column: a text column split at `sep`, or a Parquet list column. A null list
/// is an empty list, and null items are dropped, as empty items of a delimited file are.
fn list(c: &Chunks<'_>, sep: &str) -> Result<ColumnData> {
    let mut out = Vec::with_capacity(c.len());
    if c.key_kind().is_ok() {
        // A text column with separators, as in a delimited file.
        c.for_each_key(|_, k| {
            let s = key_string(k);
            out.push(
                s.split(sep)
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect(),
            );
        })?;
    } else {
        c.for_each_list(|_, keys: &KeyArray<'_>, range| {
            out.push(
                range
                    .filter_map(|j| keys.get(j).map(|k| key_string(Some(k))))
                    .collect(),
            );
        })?;
    }
    Ok(ColumnData::List(out))
}
