//! TikTok (ByteDance) ICME 2019 short-video challenge: tab-separated, no header, twelve fields
//! `uid user_city item_id author_id item_city channel finish like music_id device time
//! duration_time`. Tasks: `finish`, `like`. The grouping column for GAUC is `uid`.
//!
//! Streamed: a counting pass, then the files are read, split and written in chunks of
//! [`CHUNK_ROWS`](super::CHUNK_ROWS) rows, so memory does not grow with the number of rows.

use std::path::Path;

use super::delimited::{Field, Layout, Parse};
use super::stream::prepare_delimited;
use super::{PrepareOptions, Prepared, input_files};
use crate::error::Result;
use crate::spec::{DatasetSpec, DenseSpec, LabelSpec, Norm, SparseSpec};

/// The twelve fields in file order.
pub const FIELDS: [&str; 12] = [
    "uid",
    "user_city",
    "item_id",
    "author_id",
    "item_city",
    "channel",
    "finish",
    "like",
    "music_id",
    "device",
    "time",
    "duration_time",
];

const SPARSE: [&str; 8] = [
    "uid",
    "user_city",
    "item_id",
    "author_id",
    "item_city",
    "channel",
    "music_id",
    "device",
];

/// The schema of the prepared set.
pub fn spec() -> DatasetSpec {
    DatasetSpec {
        name: "tiktok-icme2019".into(),
        source: "tiktok-icme2019".into(),
        data: crate::spec::DATA_FILE.into(),
        row_id: "row_id".into(),
        split: "split".into(),
        user: Some("uid".into()),
        labels: vec![
            LabelSpec {
                name: "finish".into(),
                description: "the video was watched to the end".into(),
            },
            LabelSpec {
                name: "like".into(),
                description: "the user liked the video".into(),
            },
        ],
        sparse: SPARSE
            .iter()
            .map(|n| SparseSpec {
                name: n.to_string(),
                min_count: 1,
                max_size: None,
                hash_buckets: None,
            })
            .collect(),
        multi: vec![],
        dense: vec![DenseSpec {
            name: "duration_time".into(),
            norm: Norm::LogStandard,
        }],
        extra: vec![],
        weight: None,
        footer_crc32: None,
        parts: vec![],
    }
}

/// `raw`: the challenge's file, or a folder of `.txt` files in that format.
pub fn prepare(raw: &Path, opts: &PrepareOptions) -> Result<Prepared> {
    let index = |name: &str| {
        format!(
            "#{}",
            FIELDS.iter().position(|f| *f == name).expect("known field")
        )
    };
    let mut fields: Vec<Field> = SPARSE
        .iter()
        .map(|n| Field::new(index(n), *n, Parse::Cat))
        .collect();
    fields.push(Field::new(
        index("duration_time"),
        "duration_time",
        Parse::Float,
    ));
    fields.push(Field::new(index("finish"), "finish", Parse::Label));
    fields.push(Field::new(index("like"), "like", Parse::Label));
    let files = input_files(raw, &["txt", "tsv"])?;
    prepare_delimited(raw, &files, Layout::tsv(false), &fields, spec(), opts)
}
