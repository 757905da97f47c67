//! The fixed shape of the scale benchmark: the synthetic data, the model and its run
//! configuration, identical at every size but for the number of rows.

use std::path::Path;

use crossdistil_data::prepare::synthetic::SyntheticOptions;
use crossdistil_data::{DatasetSpec, SplitFractions};
use serde::{Deserialize, Serialize};

use crate::model::BenchModel;

/// The shape of the scale benchmark. Every categorical field is hashed into `hash_buckets`
/// ids ([`hash_tables`]), so each embedding table has `hash_buckets + 1` rows (id 0 is
/// out-of-vocabulary) whatever the number of rows: the same model and tables at every size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScaleShape {
    /// Sparse fields of the synthetic data (the first two are user and item).
    pub fields: usize,
    /// Values per sparse field in the generated data.
    pub vocab: usize,
    /// Ids each sparse field is hashed into (the tables' rows, less the OOV row).
    pub hash_buckets: u32,
    /// Tasks of the synthetic data.
    pub tasks: usize,
    /// Dense features of the synthetic data.
    pub dense: usize,
    /// Embedding dimension of every table.
    pub embedding_dim: usize,
    /// The model (its backbone as in the speed benchmark, towers of 64).
    pub model: BenchModel,
    /// Rows per training step.
    pub batch: usize,
    /// Rows per Parquet part file, where `prepare` writes part files.
    pub rows_per_file: usize,
    /// Streaming: rows of the shuffle buffer (`train.shuffle_buffer`).
    pub shuffle_buffer: usize,
    /// Streaming: reader threads (`train.readers`).
    pub readers: usize,
    /// Seed of the data and of its split.
    pub seed: u64,
}

impl ScaleShape {
    /// 8 sparse fields of 10^6 values hashed into 2^20 buckets, 2 tasks, 4 dense features,
    /// embeddings of 16 (8 tables of 1,048,577 x 16), Shared-Bottom 256-128, batches of 2048,
    /// part files of 10^6 rows, the streaming defaults (a shuffle buffer of 10^6 rows, 2
    /// readers), seed 7.
    pub const DEFAULT: ScaleShape = ScaleShape {
        fields: 8,
        vocab: 1_000_000,
        hash_buckets: 1 << 20,
        tasks: 2,
        dense: 4,
        embedding_dim: 16,
        model: BenchModel::SharedBottom,
        batch: 2048,
        rows_per_file: 1_000_000,
        shuffle_buffer: 1_000_000,
        readers: 2,
        seed: 7,
    };

    /// The synthetic data of this shape with `rows` rows.
    pub fn synthetic(&self, rows: usize) -> SyntheticOptions {
        SyntheticOptions {
            rows,
            fields: self.fields,
            vocab: self.vocab,
            tasks: self.tasks,
            dense: self.dense,
            ..Default::default()
        }
    }

    /// Parameters of the embedding tables: `fields * (hash_buckets + 1) * embedding_dim`.
    pub fn table_parameters(&self) -> u64 {
        self.fields as u64 * (u64::from(self.hash_buckets) + 1) * self.embedding_dim as u64
    }
}

/// Rows of each split of a prepared set of `rows` rows with the default fractions: exactly
/// `round(rows * 0.1)` test and valid rows, the rest train (as `prepare` assigns them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRows {
    /// Train rows: one epoch trains on each once.
    pub train: usize,
    /// Validation rows.
    pub valid: usize,
    /// Test rows: what `predict --split test` scores.
    pub test: usize,
}

impl SplitRows {
    /// The split of `rows` rows.
    ///
    /// ```
    /// use crossdistil_bench::SplitRows;
    /// let s = SplitRows::of(1_000_005);
    /// assert_eq!((s.train, s.valid, s.test), (800_003, 100_001, 100_001));
    /// ```
    pub fn of(rows: usize) -> SplitRows {
        let f = SplitFractions::default();
        let test = (rows as f64 * f.test).round() as usize;
        let valid = (rows as f64 * f.valid).round() as usize;
        SplitRows {
            train: rows - test - valid,
            valid,
            test,
        }
    }
}

/// Rewrites `dir/dataset.toml` so that every sparse field is hashed into `buckets` ids
/// (`hash_buckets`, no fitted vocabulary): the tables no longer depend on the data.
pub fn hash_tables(dir: &Path, buckets: u32) -> crossdistil_data::Result<()> {
    let mut spec = DatasetSpec::read(dir)?;
    for s in &mut spec.sparse {
        s.min_count = 1;
        s.max_size = None;
        s.hash_buckets = Some(buckets);
    }
    spec.write(dir)
}

/// The run configuration (TOML) of the scale benchmark: one epoch, validation only at its end
/// (`eval_every = 0`, `patience = 0`), Adam at 0.001, seed 1, CrossDistil off. With `stream`,
/// also `train.stream = true` with the shape's `shuffle_buffer` and `readers`; without it the
/// data is loaded in memory.
///
/// ```
/// use crossdistil_bench::{ScaleShape, scale_config};
/// let text = scale_config(&ScaleShape::DEFAULT, false);
/// let cfg = crossdistil_train::RunConfig::from_toml(&text).unwrap();
/// assert_eq!((cfg.train.epochs, cfg.train.batch_size), (1, 2048));
/// assert!(scale_config(&ScaleShape::DEFAULT, true).contains("stream = true"));
/// ```
pub fn scale_config(shape: &ScaleShape, stream: bool) -> String {
    let streaming = if stream {
        format!(
            "stream = true\nshuffle_buffer = {}\nreaders = {}\n",
            shape.shuffle_buffer, shape.readers
        )
    } else {
        String::new()
    };
    format!(
        "[model]\nembedding_dim = {}\n\n[model.backbone]\n{}\n\n[model.tower]\nhidden = [64]\n\n\
         [train]\nepochs = 1\nbatch_size = {}\nlr = 0.001\nseed = 1\npatience = 0\n\
         eval_every = 0\n{streaming}\n[distill]\nmode = \"off\"\n",
        shape.embedding_dim,
        shape.model.backbone_toml(),
        shape.batch,
    )
}

/// Whether this build's run configuration knows `train.stream` (the streaming reader): the
/// `crossdistil` binary of the same workspace then trains and predicts as a stream.
pub fn streaming_supported(shape: &ScaleShape) -> bool {
    crossdistil_train::RunConfig::from_toml(&scale_config(shape, true)).is_ok()
}
