//! The one error of the experiment runner: every message names the file, the grid key or the
//! run it is about.

use std::path::{Path, PathBuf};

use crossdistil_data::DataError;
use crossdistil_train::TrainError;

/// What can go wrong in an experiment.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// A file or folder could not be read, created or started.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        /// What was tried: "read", "create", "start".
        action: &'static str,
        /// The file, folder or program.
        path: PathBuf,
        /// The operating system's error (part of the message, so not repeated as its source).
        error: std::io::Error,
    },
    /// The grid, its options or one of its configurations is invalid; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// A merged configuration is not a valid run configuration.
    #[error("variant `{variant}` of {}: {error}", config.display())]
    Config {
        /// The grid's configuration file.
        config: PathBuf,
        /// The variant merged into it.
        variant: String,
        /// Why the run configuration was refused (part of the message).
        error: Box<TrainError>,
    },
    /// A run's report could not be read.
    #[error(transparent)]
    Train(Box<TrainError>),
    /// A results file could not be written.
    #[error(transparent)]
    Data(Box<DataError>),
    /// Runs failed; each line names the run and its log.
    #[error("{} runs failed:\n{}", .0.len(), .0.join("\n"))]
    Runs(Vec<String>),
    /// A plot could not be drawn (a missing font, for instance).
    #[error("plot: {0}")]
    Plot(String),
}

/// The result of the experiment runner's functions.
pub type Result<T> = std::result::Result<T, ExperimentError>;

/// The [`ExperimentError::Io`] of `action` on `path`, for `map_err`.
pub(crate) fn io(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> ExperimentError {
    let path = path.to_path_buf();
    move |error| ExperimentError::Io {
        action,
        path,
        error,
    }
}

impl From<TrainError> for ExperimentError {
    fn from(e: TrainError) -> Self {
        ExperimentError::Train(Box::new(e))
    }
}

impl From<DataError> for ExperimentError {
    fn from(e: DataError) -> Self {
        ExperimentError::Data(Box::new(e))
    }
}

impl<E: std::error::Error + Send + Sync> From<plotters::drawing::DrawingAreaErrorKind<E>>
    for ExperimentError
{
    fn from(e: plotters::drawing::DrawingAreaErrorKind<E>) -> Self {
        ExperimentError::Plot(e.to_string())
    }
}
