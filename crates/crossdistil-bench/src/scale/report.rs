//! What `scale.json` holds: one row per size (and the in-memory comparison), each with its
//! prepare, train and predict phases.

use serde::{Deserialize, Serialize};

use super::shape::ScaleShape;

/// One measured child process: `rows` handled in `seconds` of wall time, at its peak resident
/// memory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Rows the phase handled: all rows (prepare), the train split (train, one epoch), the
    /// test split (predict).
    pub rows: usize,
    /// Wall seconds of the child, from start to exit.
    pub seconds: f64,
    /// `rows / seconds`.
    pub rows_per_s: f64,
    /// Peak resident memory of the child (`ru_maxrss`), bytes.
    pub peak_rss_bytes: u64,
}

impl Phase {
    /// A phase of `rows` rows that took `seconds` at a peak of `peak_rss_bytes`.
    pub fn new(rows: usize, seconds: f64, peak_rss_bytes: u64) -> Phase {
        Phase {
            rows,
            seconds,
            rows_per_s: rows as f64 / seconds.max(1e-9),
            peak_rss_bytes,
        }
    }
}

/// One size of the scale benchmark, streamed or in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleRow {
    /// Rows of the data set (train, valid and test together).
    pub rows: usize,
    /// Whether train and predict read the data as a stream (`train.stream = true`).
    pub stream: bool,
    /// Bytes of the prepared data set on disk.
    pub disk_bytes: u64,
    /// Preparing the data; `None` where the row reuses another row's data (the in-memory
    /// comparison).
    pub prepare: Option<Phase>,
    /// `crossdistil train`, one epoch: the whole child (loading, the epoch, validation and
    /// the test evaluation at its end).
    pub train: Phase,
    /// The training loop's own rate, from the run's `report.json` (`rows_per_second`).
    pub train_loop_rows_per_s: f64,
    /// `crossdistil predict --split test`.
    pub predict: Phase,
    /// Parameters of the trained model, embedding tables included (from its checkpoint).
    pub parameters: u64,
}

/// The scale benchmark's report (`scale.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleReport {
    /// The data and model shape, the same at every size.
    pub shape: ScaleShape,
    /// Cores of the machine.
    pub cores: usize,
    /// Whether the data was written as part files of `shape.rows_per_file` rows.
    pub part_files: bool,
    /// The sizes in ascending order, then the in-memory comparison at the smallest size when
    /// the sizes were streamed.
    pub rows: Vec<ScaleRow>,
}

impl ScaleReport {
    /// Whether every row trained a model of the same parameter count: the same model and
    /// tables at every size.
    pub fn same_model(&self) -> bool {
        self.rows
            .windows(2)
            .all(|w| w[0].parameters == w[1].parameters)
    }
}
