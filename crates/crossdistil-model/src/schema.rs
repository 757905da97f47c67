//! What the model needs to know about a data set's features.

use crossdistil_data::Dataset;
use serde::{Deserialize, Serialize};

/// The features of a data set, in the order of a [`crossdistil_data::Batch`]: single-valued
/// fields `(name, vocab_size)`, multi-valued fields `(name, vocab_size)` and the number of dense
/// features. Vocabulary sizes include the out-of-vocabulary id 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSchema {
    pub sparse: Vec<(String, usize)>,
    pub multi: Vec<(String, usize)>,
    pub n_dense: usize,
}

impl InputSchema {
    pub fn of(ds: &Dataset) -> Self {
        InputSchema {
            sparse: ds
                .sparse
                .iter()
                .map(|c| (c.name.clone(), c.vocab_size))
                .collect(),
            multi: ds
                .multi
                .iter()
                .map(|c| (c.name.clone(), c.vocab_size))
                .collect(),
            n_dense: ds.dense.len(),
        }
    }
}
