//! Ali-CCP (Alibaba click and conversion prediction), the public pre-encoded CSV layout:
//! `click, purchase`, then the sparse feature ids named by their field number (`101` is the user
//! id, `109_14`, ...), then dense features whose names start with `D`. Tasks: `click`,
//! `purchase`; `101` groups rows by user for GAUC.
//!
//! Streamed: a counting pass, then the files are read, split and written in chunks of
//! [`CHUNK_ROWS`](super::CHUNK_ROWS) rows, so memory does not grow with the number of rows. This
//! layout has the common features (the user's and the context's, `101` to `301` and the `D`
//! columns) already joined into every row, so no dictionary is held: were the raw Taobao layout
//! (a `common_features` file keyed by `common_feature_index`) read instead, the join would hold
//! that dictionary only, its memory proportional to the distinct common feature sets and not to
//! the rows.

use std::path::Path;

use super::delimited::{Field, Layout, Parse};
use super::stream::prepare_delimited;
use super::{PrepareOptions, Prepared, input_files};
use crate::error::{DataError, Result};
use crate::spec::{DatasetSpec, DenseSpec, LabelSpec, Norm, SparseSpec};

/// The label columns, which are also the tasks, in priority order.
pub const LABELS: [&str; 2] = ["click", "purchase"];
/// The user id field, the grouping column for GAUC.
pub const USER: &str = "101";

/// The schema for a file with this header.
pub(crate) fn spec_for_header(file: &Path, header: &[String]) -> Result<DatasetSpec> {
    for l in LABELS.iter().chain([&USER]) {
        if !header.iter().any(|h| h == l) {
            return Err(DataError::column(file, l, "missing from the header"));
        }
    }
    let features: Vec<&String> = header
        .iter()
        .filter(|h| !LABELS.contains(&h.as_str()))
        .collect();
    Ok(DatasetSpec {
        name: "ali-ccp".into(),
        source: "ali-ccp".into(),
        data: crate::spec::DATA_FILE.into(),
        row_id: "row_id".into(),
        split: "split".into(),
        user: Some(USER.into()),
        labels: vec![
            LabelSpec {
                name: "click".into(),
                description: "the impression was clicked".into(),
            },
            LabelSpec {
                name: "purchase".into(),
                description: "the click led to a purchase".into(),
            },
        ],
        sparse: features
            .iter()
            .filter(|h| !h.starts_with('D'))
            .map(|h| SparseSpec {
                name: h.to_string(),
                min_count: 1,
                max_size: None,
                hash_buckets: None,
            })
            .collect(),
        multi: vec![],
        dense: features
            .iter()
            .filter(|h| h.starts_with('D'))
            .map(|h| DenseSpec {
                name: h.to_string(),
                norm: Norm::Standard,
            })
            .collect(),
        extra: vec![],
        weight: None,
        footer_crc32: None,
        parts: vec![],
    })
}

fn header(file: &Path) -> Result<Vec<String>> {
    let mut rdr = csv::ReaderBuilder::new()
        .from_path(file)
        .map_err(|e| DataError::file(file, format!("cannot open: {e}")))?;
    let h = rdr
        .headers()
        .map_err(|e| DataError::file(file, format!("cannot read the header: {e}")))?;
    Ok(h.iter().map(|s| s.trim().to_string()).collect())
}

/// `raw`: one CSV file, or a folder whose `.csv` files (train, val, test) are all read.
pub fn prepare(raw: &Path, opts: &PrepareOptions) -> Result<Prepared> {
    let files = input_files(raw, &["csv"])?;
    let s = spec_for_header(&files[0], &header(&files[0])?)?;
    let mut fields: Vec<Field> = s
        .sparse
        .iter()
        .map(|c| Field::same(&c.name, Parse::Cat))
        .collect();
    fields.extend(s.dense.iter().map(|c| Field::same(&c.name, Parse::Float)));
    fields.extend(s.labels.iter().map(|c| Field::same(&c.name, Parse::Label)));
    prepare_delimited(raw, &files, Layout::csv(), &fields, s, opts)
}
