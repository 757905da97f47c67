//! One error type for everything the data layer can refuse, always naming where the problem is.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a problem was found: the file, and where it applies the column and the row.
///
/// Rows are 1-based data rows (the header of a delimited file is not counted), so that
/// "row 3" is the third record a person sees after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file (or folder) concerned.
    pub file: PathBuf,
    /// The column, when the problem is in one.
    pub column: Option<String>,
    /// The 1-based data row, when the problem is in one.
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
        /// The file or folder.
        path: PathBuf,
        /// What was being done (`cannot open`, `cannot write`, ...).
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The content is wrong at a known place.
    #[error("{at}: {message}")]
    Invalid {
        /// Where.
        at: Location,
        /// What is wrong.
        message: String,
    },
    /// A configuration file (dataset.toml, a custom source's TOML) is malformed.
    #[error("{path}: {message}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong, often the TOML parser's message.
        message: String,
    },
}

/// The result of every fallible function of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// The most characters of a value that an error message echoes.
pub(crate) const ECHO_CHARS: usize = 40;

/// A value as an error message shows it: at most [`ECHO_CHARS`] characters, control characters
/// escaped, and when it is longer, its first characters followed by `...` and its full length.
/// Every message that echoes a value from the data goes through this, so a 10 MB cell never
/// becomes a 10 MB error.
pub(crate) fn echo(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(ECHO_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(ECHO_CHARS).is_some() {
        out.push_str(&format!("... ({} bytes)", value.len()));
    }
    out
}

impl DataError {
    pub(crate) fn io(path: impl AsRef<Path>, action: &'static str, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.as_ref().to_path_buf(),
            action,
            source,
        }
    }

    /// An error about a whole file.
    pub(crate) fn file(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
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
    pub(crate) fn column(path: impl AsRef<Path>, column: &str, message: impl Into<String>) -> Self {
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
    pub(crate) fn cell(
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

    /// An error about one row group of a Parquet file (`group` 1-based, as rows are), and the
    /// column where it is known.
    pub(crate) fn row_group(
        path: impl AsRef<Path>,
        group: usize,
        column: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        DataError::Invalid {
            at: Location {
                file: path.as_ref().to_path_buf(),
                column: column.map(String::from),
                row: None,
            },
            message: format!("row group {group}: {}", message.into()),
        }
    }

    pub(crate) fn config(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        DataError::Config {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }
}

/// The position of the one column named `name` among `names` (`None` when it is absent); a
/// column named more than once is an error naming it: which one is meant would be ambiguous.
/// `place` says where the names come from ("the file", "the header").
pub(crate) fn unique_position<'a>(
    path: &Path,
    names: impl IntoIterator<Item = &'a str>,
    name: &str,
    place: &str,
) -> Result<Option<usize>> {
    let mut at = names
        .into_iter()
        .enumerate()
        .filter(|(_, n)| *n == name)
        .map(|(i, _)| i);
    match (at.next(), at.next()) {
        (Some(_), Some(_)) => Err(DataError::column(
            path,
            name,
            format!("appears more than once in {place}: which one is meant is ambiguous"),
        )),
        (i, _) => Ok(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_caps_long_values_and_escapes_control_characters() {
        assert_eq!(echo("abc"), "abc");
        assert_eq!(echo("a\tb"), "a\\tb");
        let long = "x".repeat(10_000_000);
        let e = echo(&long);
        assert!(e.len() < 80 && e.ends_with("... (10000000 bytes)"), "{e}");
        assert_eq!(echo(&"y".repeat(ECHO_CHARS)), "y".repeat(ECHO_CHARS));
    }
}
