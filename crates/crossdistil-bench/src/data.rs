//! The benchmark's synthetic data set, prepared once per shape.

use std::path::{Path, PathBuf};

use crossdistil_data::prepare::PrepareOptions;
use crossdistil_data::prepare::synthetic::{self, SyntheticOptions};

use crate::shape::{DENSE, FIELDS, Shape, TASKS};

/// The benchmark data of `shape` in `cache/synthetic-<rows>-<vocab>`, prepared there (synthetic
/// data, seed 7, the default split) unless it already holds a `dataset.toml`. Returns the
/// folder.
pub fn bench_data(cache: &Path, shape: &Shape) -> anyhow::Result<PathBuf> {
    let dir = cache.join(format!("synthetic-{}-{}", shape.rows, shape.vocab));
    if dir.join("dataset.toml").exists() {
        return Ok(dir);
    }
    tracing::info!(dir = %dir.display(), "preparing the benchmark data");
    let o = SyntheticOptions {
        rows: shape.rows,
        fields: FIELDS,
        vocab: shape.vocab,
        tasks: TASKS,
        dense: DENSE,
        ..Default::default()
    };
    let opts = PrepareOptions::new(dir.clone(), 7);
    synthetic::prepare(&o, &opts, &|_| {})?;
    Ok(dir)
}
