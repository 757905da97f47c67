//! AliExpress search logs (the public CSV layout): `search_id, categorical_1..16,
//! numerical_1..63, click, conversion`. Tasks: `click`, `conversion`. Rows are grouped by
//! `search_id` for GAUC (the data carries no user id).
//!
//! Streamed: a counting pass, then the files are read, split and written in chunks of
//! [`CHUNK_ROWS`](super::CHUNK_ROWS) rows, so memory does not grow with the number of rows.

use std::path::Path;

use super::delimited::{Field, Layout, Parse};
use super::stream::prepare_delimited;
use super::{PrepareOptions, Prepared, input_files};
use crate::error::Result;
use crate::spec::{DatasetSpec, DenseSpec, LabelSpec, Norm, SparseSpec};

/// The categorical columns `categorical_1..=16`.
pub const N_CATEGORICAL: usize = 16;
/// The numeric columns `numerical_1..=63`.
pub const N_NUMERICAL: usize = 63;

/// The `dataset.toml` this source writes: the inputs and the two tasks.
pub fn spec() -> DatasetSpec {
    DatasetSpec {
        name: "aliexpress".into(),
        source: "aliexpress".into(),
        data: crate::spec::DATA_FILE.into(),
        row_id: "row_id".into(),
        split: "split".into(),
        user: Some("search_id".into()),
        labels: vec![
            LabelSpec {
                name: "click".into(),
                description: "the item was clicked".into(),
            },
            LabelSpec {
                name: "conversion".into(),
                description: "the item was bought".into(),
            },
        ],
        sparse: (1..=N_CATEGORICAL)
            .map(|i| SparseSpec {
                name: format!("categorical_{i}"),
                min_count: 1,
                max_size: None,
                hash_buckets: None,
            })
            .collect(),
        multi: vec![],
        dense: (1..=N_NUMERICAL)
            .map(|i| DenseSpec {
                name: format!("numerical_{i}"),
                norm: Norm::Standard,
            })
            .collect(),
        extra: vec![],
        weight: None,
        footer_crc32: None,
        parts: vec![],
    }
}

/// `raw`: one CSV file, or a folder whose `.csv` files (train, test, ...) are all read.
pub fn prepare(raw: &Path, opts: &PrepareOptions) -> Result<Prepared> {
    let s = spec();
    let mut fields = vec![Field::same("search_id", Parse::Cat)];
    fields.extend(s.sparse.iter().map(|c| Field::same(&c.name, Parse::Cat)));
    fields.extend(s.dense.iter().map(|c| Field::same(&c.name, Parse::Float)));
    fields.extend(s.labels.iter().map(|c| Field::same(&c.name, Parse::Label)));
    let files = input_files(raw, &["csv"])?;
    prepare_delimited(raw, &files, Layout::csv(), &fields, s, opts)
}
