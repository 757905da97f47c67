//! What several of the train crate's integration tests share.

use std::path::Path;

use crossdistil_data::prepare::{PrepareOptions, synthetic};

/// A small generated data set of `rows` rows in `dir`: 4 sparse fields of vocabulary 200,
/// 3 dense features, 2 tasks, data seed 11.
pub fn synthetic_set(dir: &Path, rows: usize) {
    let o = synthetic::SyntheticOptions {
        rows,
        fields: 4,
        vocab: 200,
        tasks: 2,
        dense: 3,
        ..Default::default()
    };
    synthetic::prepare(&o, &PrepareOptions::new(dir, 11), &|_| {}).unwrap();
}
