//! Errors of training, evaluation and prediction.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("config: {0}")]
    Config(String),
    #[error(transparent)]
    Data(#[from] crossdistil_data::DataError),
    #[error("tensor: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("metrics: {0}")]
    Metric(#[from] crossdistil_metrics::MetricError),
    #[error("{path}: {message}")]
    Run { path: PathBuf, message: String },
    #[error("training diverged: {0}")]
    Diverged(String),
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    pub fn run(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TrainError::Run {
            path: path.into(),
            message: message.into(),
        }
    }
}
