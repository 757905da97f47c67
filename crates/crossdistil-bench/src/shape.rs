//! The shape of the benchmark: data size, batch, and how many steps are timed.

use serde::Serialize;

/// The shape of the benchmark data and of its timing: the full one or the `--quick` smoke run.
///
/// The data always has [`FIELDS`] sparse fields, [`DENSE`] dense features and [`TASKS`] tasks;
/// the models embed each field in [`EMBEDDING_DIM`] dimensions.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Shape {
    /// Rows of the synthetic data (train, valid and test together).
    pub rows: usize,
    /// Values per sparse field, and rows of every table.
    pub vocab: usize,
    /// Rows per training batch.
    pub batch: usize,
    /// Untimed steps before the first window.
    pub warmup_steps: usize,
    /// Steps per timed window.
    pub window_steps: usize,
    /// Timed windows per measurement.
    pub windows: usize,
    /// Held-out rows of each of the three evaluation passes.
    pub eval_rows: usize,
    /// Rows per evaluation batch, on both sides (crossdistil's default `train.eval_batch_size`).
    pub eval_batch: usize,
    /// Rounds over all configurations; the report takes the median.
    pub rounds: usize,
    /// Rows of the first field's table in the table-size sweep.
    pub table_sweep: &'static [usize],
}

/// Sparse fields of the benchmark data (the first two are user and item).
pub const FIELDS: usize = 10;
/// Dense features of the benchmark data.
pub const DENSE: usize = 8;
/// Tasks of the benchmark data.
pub const TASKS: usize = 2;
/// Embedding dimension of every table.
pub const EMBEDDING_DIM: usize = 16;

impl Shape {
    /// The full benchmark: 200,000 rows of vocabulary 100,000, 7 windows of 20 steps after 10
    /// warm-up steps, three rounds, tables of 10^4, 10^6 and 10^7 rows in the sweep.
    pub const FULL: Shape = Shape {
        rows: 200_000,
        vocab: 100_000,
        batch: 1024,
        warmup_steps: 10,
        window_steps: 20,
        windows: 7,
        eval_rows: 40_000,
        eval_batch: 1024,
        rounds: 3,
        table_sweep: &[10_000, 1_000_000, 10_000_000],
    };

    /// The smoke run of the whole harness (`--quick`): a small shape and few steps.
    pub const QUICK: Shape = Shape {
        rows: 20_000,
        vocab: 10_000,
        batch: 1024,
        warmup_steps: 2,
        window_steps: 3,
        windows: 2,
        eval_rows: 4_000,
        eval_batch: 1024,
        rounds: 1,
        table_sweep: &[10_000, 100_000],
    };
}
