//! One error type for everything the data layer can refuse, always naming where the problem is.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a problem was found: the file, and where it applies the column and the row.
///
/// Rows are 1-based data rows (the header of a delimited file is not counted), so that
/// "row 3" is the third record a person sees after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub column: Option<String>,
    pub row: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(column) = &self.column {
            write!(f, ", column `{column}`")?;
        }
        if let Some(row) = self.row {
            write!(f, ", row {row}")?;
        }
        Ok(())
    }
}

/// Every failure of ingestion, preparation or loading.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened, read or written.
    #[error("{path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The content is wrong at a known place.
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
    /// A configuration file (dataset.toml, a custom source's TOML) is malformed.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    pub fn io(path: impl AsRef<Path>, action: &'static str, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.as_ref().to_path_buf(),
            action,
            source,
        }
    }

    /// An error about a whole file.
    pub fn file(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        DataError::Invalid {
            at: Location {
                file: path.as_ref().to_path_buf(),
                column: None,
                row: None,
            },
            message: message.into(),
        }
    }

    /// An error about one column of a file.
    pub fn column(path: impl AsRef<Path>, column: &str, message: impl Into<String>) -> Self {
        DataError::Invalid {
            at: Location {
                file: path.as_ref().to_path_buf(),
                column: Some(column.to_string()),
                row: None,
            },
            message: message.into(),
        }
    }

    /// An error about one cell: file, column and 1-based row.
    pub fn cell(
        path: impl AsRef<Path>,
        column: &str,
        row: usize,
        message: impl Into<String>,
    ) -> Self {
        DataError::Invalid {
            at: Location {
                file: path.as_ref().to_path_buf(),
                column: Some(column.to_string()),
                row: Some(row),
            },
            message: message.into(),
        }
    }

    pub fn config(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        DataError::Config {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }
}
