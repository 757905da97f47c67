//! Ali-CCP (Alibaba click and conversion prediction), the public pre-encoded CSV layout:
//! `click, purchase`, then the sparse feature ids named by their field number (`101` is the user
//! id, `109_14`, ...), then dense features whose names start with `D`. Tasks: `click`,
//! `purchase`; `101` groups rows by user for GAUC.

use std::path::Path;

use super::delimited::{self, Field, Layout, Parse};
use super::{PrepareOptions, Prepared, concat_columns, finish, input_files, table_of};
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
    let layout = Layout::csv();
    let mut columns = Vec::new();
    for file in &files {
        concat_columns(&mut columns, delimited::read(file, layout, &fields)?, file)?;
    }
    finish(raw, table_of(columns), s, opts)
}
