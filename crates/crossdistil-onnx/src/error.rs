//! The one error type of the export.

use std::path::{Path, PathBuf};

/// What can go wrong in an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The model cannot be exported as it is (a missing or non-finite parameter, tasks that do
    /// not match it, names that collide in the graph).
    #[error("cannot export the model: {0}")]
    Model(String),
    /// A tensor operation of the model failed.
    #[error("cannot export the model: {0}")]
    Tensor(#[from] candle_core::Error),
    /// A file cannot be written (or exists and may not be replaced).
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The sample's rows cannot be read.
    #[error("cannot build the sample: {0}")]
    Sample(String),
}

impl ExportError {
    /// An error about the file `path`.
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        ExportError::File {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// The result of the export's functions.
pub type Result<T> = std::result::Result<T, ExportError>;
