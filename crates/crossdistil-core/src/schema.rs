//! What a model needs to know about a data set's features.

use serde::{Deserialize, Serialize};

/// The features of a data set, in the order of a [`Batch`](crate::Batch): single-valued
/// fields `(name, vocab_size)`, multi-valued fields `(name, vocab_size)` and the number of dense
/// features. Vocabulary sizes include the out-of-vocabulary id 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSchema {
    /// Single-valued fields `(name, vocab_size)`, in the column order of `Batch::sparse`.
    pub sparse: Vec<(String, usize)>,
    /// Multi-valued fields `(name, vocab_size)`, in the order of `Batch::multi`.
    pub multi: Vec<(String, usize)>,
    /// The number of dense features (columns of `Batch::dense`).
    pub n_dense: usize,
    /// The dense features' names, in column order: `n_dense` of them, or none where they are not
    /// known (a model then cannot name teacher-only inputs, `model.teacher.inputs`).
    #[serde(default)]
    pub dense_names: Vec<String>,
}
