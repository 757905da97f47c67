//! The error type shared by every metric, and the input checks that produce it.
//!
//! Errors are reserved for inputs that are *invalid* (slices of different lengths, labels
//! other than 0/1, NaN scores, probabilities outside `[0, 1]`, bad arguments). Inputs that
//! are valid but make a metric undefined (empty input, a single class) are not errors: the
//! metric reports `None` instead.

use std::fmt;

/// Why a metric refused its input.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricError {
    /// Two slices that must have the same length do not.
    LengthMismatch {
        /// Which slice is too short or too long (e.g. `"labels"`).
        what: &'static str,
        /// The length it should have (the length of the scores).
        expected: usize,
        /// The length it has.
        found: usize,
    },
    /// A label is neither 0 nor 1.
    InvalidLabel {
        /// Row of the offending label.
        index: usize,
        /// The label found there.
        value: u8,
    },
    /// A score or probability is NaN.
    NanScore {
        /// Row of the NaN.
        index: usize,
    },
    /// A probability lies outside `[0, 1]`.
    ProbabilityOutOfRange {
        /// Row of the offending probability.
        index: usize,
        /// The value found there.
        value: f32,
    },
    /// A class index is not below `n_classes`.
    ClassOutOfRange {
        /// Row of the offending class.
        index: usize,
        /// The class found there.
        class: u32,
        /// The number of classes declared.
        n_classes: u32,
    },
    /// An argument other than the data is unusable (e.g. zero bins, too many classes).
    InvalidArgument(&'static str),
}

impl fmt::Display for MetricError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LengthMismatch {
                what,
                expected,
                found,
            } => write!(f, "{what} has length {found}, expected {expected}"),
            Self::InvalidLabel { index, value } => {
                write!(f, "label at row {index} is {value}, expected 0 or 1")
            }
            Self::NanScore { index } => write!(f, "score at row {index} is NaN"),
            Self::ProbabilityOutOfRange { index, value } => {
                write!(f, "probability at row {index} is {value}, outside [0, 1]")
            }
            Self::ClassOutOfRange {
                index,
                class,
                n_classes,
            } => write!(
                f,
                "class at row {index} is {class}, expected below {n_classes}"
            ),
            Self::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
        }
    }
}

impl std::error::Error for MetricError {}

/// `Err(LengthMismatch)` unless `found == expected`.
pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    found: usize,
) -> Result<(), MetricError> {
    if expected == found {
        Ok(())
    } else {
        Err(MetricError::LengthMismatch {
            what,
            expected,
            found,
        })
    }
}

/// `Err(InvalidLabel)` at the first label that is not 0 or 1.
pub(crate) fn check_labels(labels: &[u8]) -> Result<(), MetricError> {
    match labels.iter().position(|&y| y > 1) {
        None => Ok(()),
        Some(index) => Err(MetricError::InvalidLabel {
            index,
            value: labels[index],
        }),
    }
}

/// `Err(NanScore)` at the first NaN score. Infinite scores are allowed.
pub(crate) fn check_scores(scores: &[f32]) -> Result<(), MetricError> {
    match scores.iter().position(|s| s.is_nan()) {
        None => Ok(()),
        Some(index) => Err(MetricError::NanScore { index }),
    }
}

/// `Err(NanScore)` or `Err(ProbabilityOutOfRange)` at the first probability not in `[0, 1]`.
pub(crate) fn check_probs(probs: &[f32]) -> Result<(), MetricError> {
    check_scores(probs)?;
    match probs.iter().position(|p| !(0.0..=1.0).contains(p)) {
        None => Ok(()),
        Some(index) => Err(MetricError::ProbabilityOutOfRange {
            index,
            value: probs[index],
        }),
    }
}
