//! The encoders beside the model (`OUT.encoders.json`): how a service turns raw values into the
//! graph's inputs. The form is documented in the crate's README ("The encoders file").

use std::collections::BTreeMap;
use std::path::Path;

use crossdistil_data::{Encoders, Norm, NormStats, OOV, Vocab, VocabKeys};
use serde::Serialize;

use crate::error::{ExportError, Result};
use crate::files::write_bytes;
use crate::input::{DENSE_INPUT, InputKind, InputSpec, MULTI_PREFIX, PAD_ID, SPARSE_INPUT};

/// The version of the form, the file's `format`.
pub const ENCODERS_FORMAT: &str = "crossdistil-encoders/1";

/// The encoders file: the inputs, then per feature where it goes and how its raw value is
/// encoded.
#[derive(Debug, Clone, Serialize)]
pub struct EncodersFile {
    /// [`ENCODERS_FORMAT`].
    pub format: &'static str,
    /// The graph's inputs, in order.
    pub inputs: Vec<InputSpec>,
    /// The single-valued categorical fields, in the column order of `sparse`.
    pub sparse: Vec<CategoricalEncoder>,
    /// The multi-valued categorical fields, each the input `multi_<field>`.
    pub multi: Vec<CategoricalEncoder>,
    /// The dense features, in the column order of `dense`.
    pub dense: Vec<DenseEncoder>,
}

/// How a categorical value becomes an id.
#[derive(Debug, Clone, Serialize)]
pub struct CategoricalEncoder {
    /// The feature's name.
    pub field: String,
    /// The input that carries its ids.
    pub input: String,
    /// Its column in `input` (single-valued fields); a multi-valued field's items fill the
    /// row of its own input, padded with `pad_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// The pad id of a multi-valued input ([`PAD_ID`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pad_id: Option<i64>,
    /// The number of ids (the rows of the field's table); every id is below it.
    pub size: usize,
    /// How ids are given.
    pub vocabulary: VocabularyDoc,
}

/// A vocabulary fitted on the train split or a hashed one.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum VocabularyDoc {
    /// `id = ids[value]` for a kept value, `oov_id` (0) for any other, `null_id` for null
    /// (`oov_id` when null has no id).
    Fitted {
        /// `str` or `int`: the kind of the values (integers are keyed by their decimal text).
        value_type: &'static str,
        /// The kept values and their ids.
        ids: BTreeMap<String, u32>,
        /// The id of every value not in `ids`.
        oov_id: u32,
        /// The id of null, or `None` when null takes `oov_id`.
        null_id: Option<u32>,
    },
    /// `id = 1 + XXH64(bytes, seed 0) mod buckets`, `bytes` the value's UTF-8 text (an integer
    /// as its decimal text, `-` then digits); null has the id `buckets + 1`.
    Hashed {
        /// The number of buckets.
        buckets: u32,
        /// `buckets + 1`.
        null_id: u32,
        /// The rule, in words.
        rule: &'static str,
    },
}

/// How a raw number becomes a dense input value.
#[derive(Debug, Clone, Serialize)]
pub struct DenseEncoder {
    /// The feature's name.
    pub feature: String,
    /// The input that carries it, `dense`.
    pub input: &'static str,
    /// Its column in `dense`.
    pub column: usize,
    /// `standard`, `log-standard`, `min-max` or `none`.
    pub norm: Norm,
    /// The formula, with `mean`, `std`, `min` and `max` below.
    pub formula: &'static str,
    /// The statistics, fitted on the train split (f64, applied in f64 and rounded to f32).
    pub mean: f64,
    /// See `mean`.
    pub std: f64,
    /// See `mean`.
    pub min: f64,
    /// See `mean`.
    pub max: f64,
}

fn vocabulary(v: &Vocab) -> VocabularyDoc {
    if let Some(buckets) = v.hash_buckets() {
        return VocabularyDoc::Hashed {
            buckets,
            null_id: buckets + 1,
            rule: "id = 1 + xxh64(seed 0, UTF-8 bytes of the value; an integer as its decimal \
                   text) mod buckets; null: buckets + 1",
        };
    }
    let (value_type, keys): (_, Vec<String>) = match v.keys() {
        VocabKeys::Str(k) => ("str", k.clone()),
        VocabKeys::Int(k) => ("int", k.iter().map(i64::to_string).collect()),
    };
    VocabularyDoc::Fitted {
        value_type,
        ids: keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, i as u32 + 1))
            .collect(),
        oov_id: OOV,
        null_id: v.null_id(),
    }
}

fn formula(norm: Norm) -> &'static str {
    match norm {
        Norm::Standard => "(x - mean) / std",
        Norm::LogStandard => "(sign(x) ln(1 + |x|) - mean) / std",
        Norm::MinMax => "clamp((x - min) / (max - min), 0, 1), 0 when max = min",
        Norm::None => "x",
    }
}

fn dense(feature: &str, column: usize, s: &NormStats) -> DenseEncoder {
    DenseEncoder {
        feature: feature.to_string(),
        input: DENSE_INPUT,
        column,
        norm: s.norm,
        formula: formula(s.norm),
        mean: s.mean,
        std: s.std,
        min: s.min,
        max: s.max,
    }
}

impl EncodersFile {
    /// The encoders of a run (its fitted `encoders`, with the features' names) for the graph's
    /// `inputs`.
    pub fn new(encoders: &Encoders, inputs: &[InputSpec]) -> Result<Self> {
        let names = &encoders.names;
        if names.sparse.len() != encoders.sparse.len()
            || names.multi.len() != encoders.multi.len()
            || names.dense.len() != encoders.dense.len()
        {
            return Err(ExportError::Model(
                "the run's encoders do not name their features (encoders written by an older \
                 version); train the run again"
                    .to_string(),
            ));
        }
        let sparse = names
            .sparse
            .iter()
            .zip(&encoders.sparse)
            .enumerate()
            .map(|(j, (name, v))| CategoricalEncoder {
                field: name.clone(),
                input: SPARSE_INPUT.to_string(),
                column: Some(j),
                pad_id: None,
                size: v.size(),
                vocabulary: vocabulary(v),
            })
            .collect();
        let multi = names
            .multi
            .iter()
            .zip(&encoders.multi)
            .map(|(name, v)| CategoricalEncoder {
                field: name.clone(),
                input: format!("{MULTI_PREFIX}{name}"),
                column: None,
                pad_id: Some(PAD_ID),
                size: v.size(),
                vocabulary: vocabulary(v),
            })
            .collect();
        // The graph's `dense` columns: the features the served students read (teacher-only
        // features are not among them).
        let served: &[String] = inputs
            .iter()
            .find_map(|i| match &i.kind {
                InputKind::Dense { features } => Some(&features[..]),
                _ => None,
            })
            .unwrap_or(&[]);
        let dense = names
            .dense
            .iter()
            .zip(&encoders.dense)
            .filter_map(|(name, s)| {
                let j = served.iter().position(|f| f == name)?;
                Some(dense(name, j, s))
            })
            .collect();
        Ok(EncodersFile {
            format: ENCODERS_FORMAT,
            inputs: inputs.to_vec(),
            sparse,
            multi,
            dense,
        })
    }

    /// Writes the file as pretty JSON to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| ExportError::file(path, format!("cannot encode: {e}")))?;
        write_bytes(path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossdistil_data::FeatureNames;

    #[test]
    fn documents_fitted_and_hashed_vocabularies_and_norms() {
        let enc = Encoders {
            sparse: vec![
                Vocab::new(VocabKeys::Str(vec!["b".into(), "a".into()]), true),
                Vocab::hashed(8),
            ],
            multi: vec![Vocab::new(VocabKeys::Int(vec![7, -3]), false)],
            dense: vec![NormStats {
                norm: Norm::LogStandard,
                mean: 1.5,
                std: 2.0,
                min: 0.0,
                max: 9.0,
            }],
            names: FeatureNames {
                sparse: vec!["s0".into(), "s1".into()],
                multi: vec!["tags".into()],
                dense: vec!["d".into()],
            },
        };
        let dense_input = InputSpec {
            name: DENSE_INPUT.into(),
            kind: InputKind::Dense {
                features: vec!["d".into()],
            },
            columns: Some(1),
        };
        let v = serde_json::to_value(
            EncodersFile::new(&enc, std::slice::from_ref(&dense_input)).unwrap(),
        )
        .unwrap();
        let s0 = &v["sparse"][0];
        assert_eq!(s0["column"], 0);
        assert_eq!(s0["size"], 4);
        assert_eq!(s0["vocabulary"]["type"], "fitted");
        assert_eq!(s0["vocabulary"]["ids"]["b"], 1);
        assert_eq!(s0["vocabulary"]["ids"]["a"], 2);
        assert_eq!(s0["vocabulary"]["null_id"], 3);
        let s1 = &v["sparse"][1]["vocabulary"];
        assert_eq!(
            (&s1["type"], &s1["buckets"], &s1["null_id"]),
            (&"hashed".into(), &8.into(), &9.into())
        );
        let m = &v["multi"][0];
        assert_eq!(m["input"], "multi_tags");
        assert_eq!(m["pad_id"], -1);
        assert_eq!(m["vocabulary"]["ids"]["-3"], 2);
        assert!(m["vocabulary"]["null_id"].is_null());
        let d = &v["dense"][0];
        assert_eq!(d["norm"], "log-standard");
        assert_eq!(d["mean"], 1.5);
        assert_eq!(d["formula"], "(sign(x) ln(1 + |x|) - mean) / std");
        // A dense feature the graph does not read (a teacher's own) is left out.
        let v = serde_json::to_value(EncodersFile::new(&enc, &[]).unwrap()).unwrap();
        assert_eq!(v["dense"].as_array().unwrap().len(), 0);
    }
}
