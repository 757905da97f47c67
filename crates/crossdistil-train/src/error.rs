//! Errors of training, evaluation and prediction.

use std::path::PathBuf;

/// An error of training, evaluation or prediction.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// An invalid or unreadable run configuration; the message names the key or the file.
    #[error("config: {0}")]
    Config(String),
    /// Reading, encoding or writing data failed.
    #[error(transparent)]
    Data(#[from] crossdistil_data::DataError),
    /// A tensor operation failed.
    #[error("tensor: {0}")]
    Candle(#[from] candle_core::Error),
    /// A metric could not be computed (invalid labels, NaN scores, ...).
    #[error("metrics: {0}")]
    Metric(#[from] crossdistil_metrics::MetricError),
    /// A file or folder of a run is missing, unreadable, invalid or in use.
    #[error("{path}: {message}")]
    Run {
        /// The file or folder concerned.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Training diverged (a non-finite or exploding loss, non-finite scores, a worker panic); the
    /// message says where.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// A collective operation between the ranks of a distributed run failed, or the ranks
    /// disagree; the message names the rank.
    #[error("distributed: {0}")]
    Distributed(String),
}

/// The result of this crate's fallible functions, with [`TrainError`] by default.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    /// A [`TrainError::Run`] about `path`, which `message` explains.
    pub fn run(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TrainError::Run {
            path: path.into(),
            message: message.into(),
        }
    }
}
