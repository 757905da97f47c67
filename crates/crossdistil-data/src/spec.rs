//! `dataset.toml`: the roles of the columns of a prepared `data.parquet`.
//!
//! ```toml
//! name = "adult"
//! source = "adult"
//! data = "data.parquet"
//! row_id = "row_id"
//! split = "split"
//! user = "user_id"            # optional: the grouping column for GAUC
//! footer_crc32 = 1234567890   # written by prepare: the checksum of data.parquet's footer
//!
//! # Data in part files instead: `data` names a folder of Parquet files with one schema
//! # (Spark, DataFusion or Polars write such folders), read in file-name order. `prepare
//! # --rows-per-file N` writes one and lists its files, with their checksums:
//! # data = "data"
//! # [[part]]
//! # file = "part-00000.parquet"
//! # rows = 1000000
//! # footer_crc32 = 1234567890
//!
//! [[label]]                   # the tasks, in priority order
//! name = "income"
//! description = "income > 50K"
//!
//! [[sparse]]
//! name = "workclass"
//! min_count = 1               # values seen fewer times in train map to the OOV id 0
//! # max_size = 1000000        # optional: keep at most this many values, the most frequent
//! # hash_buckets = 1048576    # optional, instead of a vocabulary: ids from a hash of the value
//!
//! [[multi]]
//! name = "genres"
//! min_count = 1
//!
//! [[dense]]
//! name = "age"
//! norm = "standard"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// The name of the schema file inside a prepared data set folder.
pub const SPEC_FILE: &str = "dataset.toml";
/// The default name of the data file inside a prepared data set folder.
pub const DATA_FILE: &str = "data.parquet";

/// How a dense feature is normalised; the statistics are fitted on the train split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Norm {
    /// `(x - mean) / std`.
    #[default]
    Standard,
    /// `(s(x) - mean) / std` with `s(x) = sign(x) ln(1 + |x|)`: for heavy-tailed counts.
    LogStandard,
    /// `(x - min) / (max - min)`, clipped to `[0, 1]` outside the train range.
    MinMax,
    /// The value as it is.
    None,
}

/// A single-valued categorical feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseSpec {
    /// The column name.
    pub name: String,
    /// Values seen fewer times than this in the train split map to the out-of-vocabulary id 0.
    #[serde(default = "one")]
    pub min_count: u32,
    /// At most this many values are kept, the most frequent in train (see `vocab.rs` for how
    /// a streaming fit counts with bounded memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<usize>,
    /// Instead of a fitted vocabulary: the id of a value is `1 + hash(value) mod
    /// hash_buckets`, with no fitting pass and collisions allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_buckets: Option<u32>,
}

/// A multi-valued categorical feature (a list of values per row, mean-pooled by the model).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiSpec {
    /// The column name (a list column in the file).
    pub name: String,
    /// Items seen fewer times than this in the train split map to the out-of-vocabulary id 0.
    #[serde(default = "one")]
    pub min_count: u32,
    /// At most this many items are kept, the most frequent in train.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<usize>,
    /// Instead of a fitted vocabulary: ids from a hash of the item (see [`SparseSpec`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_buckets: Option<u32>,
}

/// One Parquet file of a data set stored as part files (`[[part]]` in `dataset.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartSpec {
    /// The file name, inside the folder that `data` names.
    pub file: String,
    /// Its number of rows.
    pub rows: u64,
    /// The CRC32 of its Parquet footer, checked by every reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer_crc32: Option<u32>,
}

/// One Parquet file of a data set, as readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Its path.
    pub path: PathBuf,
    /// The CRC32 of its footer, when `prepare` recorded it.
    pub footer_crc32: Option<u32>,
}

/// A numeric feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseSpec {
    /// The column name.
    pub name: String,
    /// The normalisation, fitted on the train split.
    #[serde(default)]
    pub norm: Norm,
}

/// A binary label column: one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// The column name, which is the task's name.
    pub name: String,
    /// How the label was derived from the source, for people reading the schema.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn one() -> u32 {
    1
}

fn default_row_id() -> String {
    "row_id".to_string()
}

fn default_split() -> String {
    "split".to_string()
}

fn default_data() -> String {
    DATA_FILE.to_string()
}

/// The schema of a prepared data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// A name for people (and run reports).
    pub name: String,
    /// The source it was prepared from (`adult`, `movielens-100k`, `synthetic`, ...).
    #[serde(default)]
    pub source: String,
    /// The Parquet file, or the folder of Parquet part files, relative to the folder of
    /// `dataset.toml`.
    #[serde(default = "default_data")]
    pub data: String,
    /// A unique u64 per row, kept in predictions.
    #[serde(default = "default_row_id")]
    pub row_id: String,
    /// `train`, `valid` or `test` per row.
    #[serde(default = "default_split")]
    pub split: String,
    /// The user (or query) column used to group rows for GAUC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The tasks, in priority order.
    #[serde(rename = "label")]
    pub labels: Vec<LabelSpec>,
    /// The single-valued categorical features.
    #[serde(default)]
    pub sparse: Vec<SparseSpec>,
    /// The multi-valued categorical features.
    #[serde(default)]
    pub multi: Vec<MultiSpec>,
    /// The numeric features.
    #[serde(default)]
    pub dense: Vec<DenseSpec>,
    /// The per-row sample weight column, when rows count unequally in the training loss: finite
    /// and non-negative; each row's loss terms are multiplied by its weight (see the loss
    /// crate's objective). Validation and test metrics stay unweighted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<String>,
    /// Columns kept in the file but not used as inputs (for example a synthetic set's true
    /// probabilities).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
    /// The CRC32 of the data file's Parquet footer, written by `prepare` (see `checksum.rs`) and
    /// checked by the loader; absent in data prepared before checksums existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer_crc32: Option<u32>,
    /// The part files when `data` is a folder written by `prepare` (with their checksums); empty
    /// for one file, or for a folder written by another tool, whose files are then listed.
    #[serde(default, rename = "part", skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartSpec>,
}

impl DatasetSpec {
    /// Reads and checks `DIR/dataset.toml`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(SPEC_FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, "cannot read", e))?;
        let spec: DatasetSpec =
            toml::from_str(&text).map_err(|e| DataError::config(&path, e.to_string()))?;
        spec.validate().map_err(|m| DataError::config(&path, m))?;
        Ok(spec)
    }

    /// The Parquet file of a data set whose `dataset.toml` is in `dir`.
    pub fn data_path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.data)
    }

    /// The Parquet files of the data set whose `dataset.toml` is in `dir`, in reading order:
    /// the one file `data` names; or the `[[part]]` files of the folder it names; or, for a
    /// folder written by another tool, its `*.parquet` files in name order (names starting with
    /// `_` or `.`, such as Spark's `_SUCCESS`, are skipped). A folder without Parquet files is an
    /// error naming it.
    pub fn data_files(&self, dir: &Path) -> Result<Vec<DataFile>> {
        let data = self.data_path(dir);
        if !self.parts.is_empty() {
            return Ok(self
                .parts
                .iter()
                .map(|p| DataFile {
                    path: data.join(&p.file),
                    footer_crc32: p.footer_crc32,
                })
                .collect());
        }
        if !data.is_dir() {
            return Ok(vec![DataFile {
                path: data,
                footer_crc32: self.footer_crc32,
            }]);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&data)
            .map_err(|e| DataError::io(&data, "cannot list", e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                p.is_file()
                    && name.ends_with(".parquet")
                    && !name.starts_with('_')
                    && !name.starts_with('.')
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(DataError::file(
                &data,
                "holds no .parquet file: the data of a data set is one Parquet file or a folder of them",
            ));
        }
        Ok(files
            .into_iter()
            .map(|path| DataFile {
                path,
                footer_crc32: None,
            })
            .collect())
    }

    /// The task names, in priority order.
    pub fn task_names(&self) -> Vec<&str> {
        self.labels.iter().map(|l| l.name.as_str()).collect()
    }

    /// Every column the loader reads, each once.
    pub fn input_columns(&self) -> Vec<&str> {
        let mut cols: Vec<&str> = vec![self.row_id.as_str(), self.split.as_str()];
        cols.extend(self.user.as_deref());
        cols.extend(self.labels.iter().map(|c| c.name.as_str()));
        cols.extend(self.sparse.iter().map(|c| c.name.as_str()));
        cols.extend(self.multi.iter().map(|c| c.name.as_str()));
        cols.extend(self.dense.iter().map(|c| c.name.as_str()));
        cols.extend(self.weight.as_deref());
        let mut seen = std::collections::HashSet::new();
        cols.retain(|c| seen.insert(*c));
        cols
    }

    /// Checks what serde cannot: at least one task, no column with two roles, sane counts.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.labels.is_empty() {
            return Err("no [[label]] column: a data set needs at least one task".into());
        }
        if self.sparse.is_empty() && self.multi.is_empty() && self.dense.is_empty() {
            return Err("no feature column ([[sparse]], [[multi]] or [[dense]])".into());
        }
        let mut roles = std::collections::HashMap::new();
        let mut claim = |name: &str, role: &str| -> std::result::Result<(), String> {
            if name.is_empty() {
                return Err(format!("a {role} column has an empty name"));
            }
            if let Some(prev) = roles.insert(name.to_string(), role.to_string()) {
                return Err(format!(
                    "column `{name}` is named both as {prev} and as {role}"
                ));
            }
            Ok(())
        };
        claim(&self.row_id, "row_id")?;
        claim(&self.split, "split")?;
        for l in &self.labels {
            claim(&l.name, "label")?;
        }
        for c in &self.sparse {
            claim(&c.name, "sparse")?;
            check_vocab(&c.name, c.min_count, c.max_size, c.hash_buckets)?;
        }
        for c in &self.multi {
            claim(&c.name, "multi")?;
            check_vocab(&c.name, c.min_count, c.max_size, c.hash_buckets)?;
        }
        for c in &self.dense {
            claim(&c.name, "dense")?;
        }
        for c in &self.extra {
            claim(c, "extra")?;
        }
        if let Some(w) = &self.weight {
            claim(w, "weight")?;
        }
        // The user column may double as a sparse feature (a user-id embedding).
        if let Some(user) = &self.user
            && let Some(role) = roles.get(user.as_str())
            && role != "sparse"
        {
            return Err(format!("user column `{user}` is also named as {role}"));
        }
        if self.labels.len() > 16 {
            return Err(format!(
                "{} tasks: at most 16 are supported",
                self.labels.len()
            ));
        }
        Ok(())
    }

    /// Whether any categorical feature is fitted (has no `hash_buckets`).
    pub fn has_fitted_vocab(&self) -> bool {
        self.sparse.iter().any(|c| c.hash_buckets.is_none())
            || self.multi.iter().any(|c| c.hash_buckets.is_none())
    }

    /// Writes `DIR/dataset.toml` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(SPEC_FILE);
        let text =
            toml::to_string_pretty(self).map_err(|e| DataError::config(&path, e.to_string()))?;
        crate::atomic::write_atomic(&path, text.as_bytes())
    }
}

/// The largest `hash_buckets`: ids stay far below `u32::MAX`, which marks null in the fit.
pub const MAX_HASH_BUCKETS: u32 = 1 << 30;

/// A categorical feature is either fitted (`min_count`, `max_size`) or hashed (`hash_buckets`).
fn check_vocab(
    name: &str,
    min_count: u32,
    max_size: Option<usize>,
    hash_buckets: Option<u32>,
) -> std::result::Result<(), String> {
    if max_size == Some(0) {
        return Err(format!("`{name}`: max_size must be at least 1"));
    }
    if let Some(b) = hash_buckets {
        if b == 0 || b > MAX_HASH_BUCKETS {
            return Err(format!(
                "`{name}`: hash_buckets = {b} must be in 1..={MAX_HASH_BUCKETS}"
            ));
        }
        if min_count != 1 || max_size.is_some() {
            return Err(format!(
                "`{name}`: hash_buckets replaces the fitted vocabulary, so min_count and max_size \
                 do not apply; remove them or remove hash_buckets"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DatasetSpec {
        toml::from_str(
            r#"
            name = "t"
            [[label]]
            name = "a"
            [[label]]
            name = "b"
            [[sparse]]
            name = "x"
            [[dense]]
            name = "d"
            norm = "log-standard"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn defaults_and_round_trip() {
        let s = spec();
        assert_eq!(s.row_id, "row_id");
        assert_eq!(s.split, "split");
        assert_eq!(s.data, "data.parquet");
        assert_eq!(s.sparse[0].min_count, 1);
        assert_eq!(s.dense[0].norm, Norm::LogStandard);
        let again: DatasetSpec = toml::from_str(&toml::to_string(&s).unwrap()).unwrap();
        assert_eq!(again, s);
        s.validate().unwrap();
    }

    #[test]
    fn a_column_with_two_roles_is_refused() {
        let mut s = spec();
        s.dense[0].name = "a".into();
        let err = s.validate().unwrap_err();
        assert!(
            err.contains("`a`") && err.contains("label") && err.contains("dense"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<DatasetSpec>("name='t'\nlabels=[]\n").unwrap_err();
        assert!(err.to_string().contains("labels"), "{err}");
    }
}
