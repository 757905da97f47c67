//! Matching a data set's features to encoders fitted earlier, by name.
//!
//! A model's encoders (`encoders.json` of a run) list each feature's name beside its vocabulary
//! or statistics. Data loaded for that model must have the same features, of the same kinds;
//! their order in `dataset.toml` does not matter: the loader puts them in the encoders' order,
//! which is the order of the model's inputs.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::spec::DatasetSpec;

/// The names of the features of fitted encoders, in the order of their vocabularies and
/// statistics. Empty in encoders saved before names were stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureNames {
    /// The single-valued categorical features.
    pub sparse: Vec<String>,
    /// The multi-valued categorical features.
    pub multi: Vec<String>,
    /// The dense features.
    pub dense: Vec<String>,
}

impl FeatureNames {
    /// The names of the features of `spec`, in its order.
    pub fn of(spec: &DatasetSpec) -> Self {
        FeatureNames {
            sparse: spec.sparse.iter().map(|c| c.name.clone()).collect(),
            multi: spec.multi.iter().map(|c| c.name.clone()).collect(),
            dense: spec.dense.iter().map(|c| c.name.clone()).collect(),
        }
    }

    /// Whether no feature is named (encoders saved before names were stored).
    pub fn is_empty(&self) -> bool {
        self.sparse.is_empty() && self.multi.is_empty() && self.dense.is_empty()
    }

    /// The kind (`sparse`, `multi` or `dense`) of the feature called `name`.
    fn kind_of(&self, name: &str) -> Option<&'static str> {
        [
            ("sparse", &self.sparse),
            ("multi", &self.multi),
            ("dense", &self.dense),
        ]
        .into_iter()
        .find(|(_, names)| names.iter().any(|n| n == name))
        .map(|(kind, _)| kind)
    }
}

/// Puts the features of `spec` (read from `spec_path`) in the order of `fitted`, refusing a
/// feature that the encoders lack, one that they have and `spec` lacks, and one of another kind;
/// each error names the column. Encoders without names (saved before names were stored) can only
/// be checked by count: a warning says so, and the features are taken in the order of `spec`.
pub(crate) fn align(
    spec: &mut DatasetSpec,
    fitted: &FeatureNames,
    counts: [usize; 3],
    spec_path: &Path,
) -> Result<()> {
    if fitted.is_empty() {
        if counts != [spec.sparse.len(), spec.multi.len(), spec.dense.len()] {
            return Err(DataError::config(
                spec_path,
                "the data set's features differ from those the encoders were fitted on",
            ));
        }
        tracing::warn!(
            "the encoders carry no feature names (saved by an older version): the features of {} \
             are matched by position only",
            spec_path.display()
        );
        return Ok(());
    }
    let ours = FeatureNames::of(spec);
    for (kind, names) in [
        ("sparse", &ours.sparse),
        ("multi", &ours.multi),
        ("dense", &ours.dense),
    ] {
        for name in names {
            match fitted.kind_of(name) {
                Some(k) if k == kind => {}
                Some(k) => {
                    return Err(DataError::column(
                        spec_path,
                        name,
                        format!("is {kind} here but {k} in the encoders the model was fitted with"),
                    ));
                }
                None => {
                    return Err(DataError::column(
                        spec_path,
                        name,
                        format!(
                            "is a {kind} feature here but not one of the encoders the model \
                             was fitted with"
                        ),
                    ));
                }
            }
        }
    }
    for (kind, names) in [
        ("sparse", &fitted.sparse),
        ("multi", &fitted.multi),
        ("dense", &fitted.dense),
    ] {
        if let Some(name) = names.iter().find(|n| ours.kind_of(n).is_none()) {
            return Err(DataError::column(
                spec_path,
                name,
                format!(
                    "is a {kind} feature of the encoders the model was fitted with, but missing \
                     here"
                ),
            ));
        }
    }
    reorder(&mut spec.sparse, &fitted.sparse, |c| &c.name);
    reorder(&mut spec.multi, &fitted.multi, |c| &c.name);
    reorder(&mut spec.dense, &fitted.dense, |c| &c.name);
    Ok(())
}

/// Sorts `items` into the order of `names` (every item's name is in `names`).
fn reorder<T>(items: &mut [T], names: &[String], name: impl Fn(&T) -> &String) {
    items.sort_by_key(|c| names.iter().position(|n| n == name(c)));
}
