//! The in-memory data set: columnar, encoded, split.
//!
//! Layout (`n` rows): u32 ids per sparse field, offsets plus ids per multi-valued field, f32
//! normalised values per dense feature, u8 labels per task, u32 user ids, u64 row ids and the
//! split of each row. Vocabularies and normalisation statistics ([`Encoders`]) are fitted on the
//! train split only; values unseen in train map to the OOV id 0.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::checksum::FooterError;
use crate::column::{Chunks, KeyKind, KeyRef};
use crate::error::{DataError, Result, echo};
use crate::features::{FeatureNames, align};
use crate::normalize::NormStats;
use crate::parquet_io::read_columns_named;
use crate::spec::{DatasetSpec, SPEC_FILE};
use crate::split::Split;
use crate::vocab::{Fitted, Fitter, NULL, OOV, RangeFitter, Vocab, VocabKeys};

/// A single-valued categorical feature: `ids[row]` in `0..vocab_size`.
#[derive(Debug, Clone)]
pub struct SparseColumn {
    /// The column name in `dataset.toml`.
    pub name: String,
    /// One id per row, in `0..vocab_size`; 0 is the out-of-vocabulary id.
    pub ids: Vec<u32>,
    /// The number of ids, OOV (and null, when it has an id) included: the rows of an embedding table.
    pub vocab_size: usize,
    /// Rows whose value is null (the null category, see `vocab.rs`).
    pub nulls: usize,
}

/// A multi-valued categorical feature: row `r` holds `ids[offsets[r]..offsets[r + 1]]`.
#[derive(Debug, Clone)]
pub struct MultiColumn {
    /// The column name in `dataset.toml`.
    pub name: String,
    /// `rows + 1` offsets into `ids`, starting at 0.
    pub offsets: Vec<u32>,
    /// The ids of every row's list, concatenated; 0 is the out-of-vocabulary id.
    pub ids: Vec<u32>,
    /// The number of ids, OOV (and null, when it has an id) included.
    pub vocab_size: usize,
    /// Null items inside the lists (a null list reads as an empty list).
    pub nulls: usize,
}

/// A normalised dense feature.
#[derive(Debug, Clone)]
pub struct DenseColumn {
    /// The column name in `dataset.toml`.
    pub name: String,
    /// One normalised value per row (see [`Norm`](crate::Norm)).
    pub values: Vec<f32>,
}

/// One task's labels, 0 or 1.
#[derive(Debug, Clone)]
pub struct LabelColumn {
    /// The task's name (its column in `dataset.toml`).
    pub name: String,
    /// One label per row, 0 or 1.
    pub values: Vec<u8>,
}

/// What is fitted on the train split: one vocabulary per sparse and multi-valued field and the
/// statistics of every dense feature, with the features' names. Saved with a model so that new
/// data is encoded the same way; [`Dataset::load_with`] matches the features by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Encoders {
    /// One vocabulary per single-valued categorical feature, in the order of [`Dataset::sparse`].
    pub sparse: Vec<Vocab>,
    /// One vocabulary per multi-valued categorical feature, in the order of [`Dataset::multi`].
    pub multi: Vec<Vocab>,
    /// The normalisation statistics of each dense feature, in the order of [`Dataset::dense`].
    pub dense: Vec<NormStats>,
    /// The features' names, in the order of the lists above (empty when read from encoders
    /// saved before names were stored).
    #[serde(default, skip_serializing_if = "FeatureNames::is_empty")]
    pub names: FeatureNames,
}

/// A prepared data set in memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The folder it was loaded from.
    pub dir: PathBuf,
    /// Its `dataset.toml`, with the features in the order of the columns below.
    pub spec: DatasetSpec,
    /// The vocabularies and statistics the columns were encoded with.
    pub encoders: Encoders,
    /// The `row_id` of every row, kept in predictions.
    pub row_ids: Vec<u64>,
    /// The split of every row.
    pub splits: Vec<Split>,
    /// The single-valued categorical features.
    pub sparse: Vec<SparseColumn>,
    /// The multi-valued categorical features.
    pub multi: Vec<MultiColumn>,
    /// The dense features, normalised.
    pub dense: Vec<DenseColumn>,
    /// One label column per task, in priority order.
    pub labels: Vec<LabelColumn>,
    /// Group id per row (users, or queries), when the spec names a user column.
    pub users: Option<Vec<u32>>,
    /// The sample weight of every row, when the spec names a `weight` column.
    pub weights: Option<Vec<f32>>,
}

impl Dataset {
    /// Loads `DIR/dataset.toml` and its data, fitting the encoders on the train split.
    pub fn load(dir: &Path) -> Result<Dataset> {
        load(dir, None)
    }

    /// Loads with encoders fitted earlier (a trained model's), so that ids match the model. The
    /// features are matched to the encoders by name and put in the encoders' order; a feature
    /// missing on either side, or of another kind, is an error naming it.
    pub fn load_with(dir: &Path, encoders: &Encoders) -> Result<Dataset> {
        load(dir, Some(encoders))
    }

    /// The features as a model sees them, in the order of a [`crate::Batch`]: the
    /// single-valued and multi-valued fields with their vocabulary sizes, and the number of
    /// dense features.
    pub fn input_schema(&self) -> crossdistil_core::InputSchema {
        crossdistil_core::InputSchema {
            sparse: self
                .sparse
                .iter()
                .map(|c| (c.name.clone(), c.vocab_size))
                .collect(),
            multi: self
                .multi
                .iter()
                .map(|c| (c.name.clone(), c.vocab_size))
                .collect(),
            n_dense: self.dense.len(),
            dense_names: self.dense.iter().map(|c| c.name.clone()).collect(),
        }
    }

    /// The number of rows, all splits together.
    pub fn rows(&self) -> usize {
        self.splits.len()
    }

    /// The number of tasks (label columns).
    pub fn tasks(&self) -> usize {
        self.labels.len()
    }

    /// The row indices of one split, in file order.
    pub fn split_rows(&self, split: Split) -> Vec<u32> {
        (0..self.splits.len() as u32)
            .filter(|&r| self.splits[r as usize] == split)
            .collect()
    }

    /// The path of the Parquet file.
    pub fn data_path(&self) -> PathBuf {
        self.spec.data_path(&self.dir)
    }

    /// The rows of `parts` one after the other, as one data set (the chunks of a streamed set
    /// in a shuffle buffer, for one). The folder, spec and encoders are the first part's; the
    /// parts must have the same columns (chunks of one [`DataSource`](crate::DataSource)).
    /// An empty list gives an empty data set.
    pub fn concat<'a>(parts: impl IntoIterator<Item = &'a Dataset>) -> Dataset {
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return Dataset::empty_like_default();
        };
        let mut out = first.clone();
        for p in parts {
            out.append(p);
        }
        out
    }

    /// Appends the rows of `other`, which has the same columns.
    pub fn append(&mut self, other: &Dataset) {
        self.row_ids.extend_from_slice(&other.row_ids);
        self.splits.extend_from_slice(&other.splits);
        for (a, b) in self.sparse.iter_mut().zip(&other.sparse) {
            a.ids.extend_from_slice(&b.ids);
            a.nulls += b.nulls;
        }
        for (a, b) in self.multi.iter_mut().zip(&other.multi) {
            let base = a.ids.len() as u32;
            a.ids.extend_from_slice(&b.ids);
            a.offsets.extend(b.offsets[1..].iter().map(|&o| base + o));
            a.nulls += b.nulls;
        }
        for (a, b) in self.dense.iter_mut().zip(&other.dense) {
            a.values.extend_from_slice(&b.values);
        }
        for (a, b) in self.labels.iter_mut().zip(&other.labels) {
            a.values.extend_from_slice(&b.values);
        }
        match (&mut self.users, &other.users) {
            (Some(a), Some(b)) => a.extend_from_slice(b),
            (a, _) => *a = None,
        }
        match (&mut self.weights, &other.weights) {
            (Some(a), Some(b)) => a.extend_from_slice(b),
            (a, _) => *a = None,
        }
    }

    /// The rows `rows` (indices into this data set), in that order, as a data set of their own
    /// with the same spec and encoders. Null counts are those of the selected rows.
    pub fn select(&self, rows: &[u32]) -> Dataset {
        let pick = |v: &[u32]| rows.iter().map(|&r| v[r as usize]).collect::<Vec<_>>();
        Dataset {
            dir: self.dir.clone(),
            spec: self.spec.clone(),
            encoders: self.encoders.clone(),
            row_ids: rows.iter().map(|&r| self.row_ids[r as usize]).collect(),
            splits: rows.iter().map(|&r| self.splits[r as usize]).collect(),
            sparse: self
                .sparse
                .iter()
                .map(|c| SparseColumn {
                    name: c.name.clone(),
                    ids: pick(&c.ids),
                    vocab_size: c.vocab_size,
                    nulls: 0,
                })
                .collect(),
            multi: self
                .multi
                .iter()
                .map(|c| {
                    let mut offsets = Vec::with_capacity(rows.len() + 1);
                    offsets.push(0u32);
                    let mut ids = Vec::new();
                    for &r in rows {
                        let (lo, hi) = (c.offsets[r as usize], c.offsets[r as usize + 1]);
                        ids.extend_from_slice(&c.ids[lo as usize..hi as usize]);
                        offsets.push(ids.len() as u32);
                    }
                    MultiColumn {
                        name: c.name.clone(),
                        offsets,
                        ids,
                        vocab_size: c.vocab_size,
                        nulls: 0,
                    }
                })
                .collect(),
            dense: self
                .dense
                .iter()
                .map(|c| DenseColumn {
                    name: c.name.clone(),
                    values: rows.iter().map(|&r| c.values[r as usize]).collect(),
                })
                .collect(),
            labels: self
                .labels
                .iter()
                .map(|c| LabelColumn {
                    name: c.name.clone(),
                    values: rows.iter().map(|&r| c.values[r as usize]).collect(),
                })
                .collect(),
            users: self.users.as_ref().map(|u| pick(u)),
            weights: self
                .weights
                .as_ref()
                .map(|w| rows.iter().map(|&r| w[r as usize]).collect()),
        }
    }

    fn empty_like_default() -> Dataset {
        Dataset {
            dir: PathBuf::new(),
            spec: DatasetSpec {
                name: String::new(),
                source: String::new(),
                data: String::new(),
                row_id: String::new(),
                split: String::new(),
                user: None,
                labels: vec![],
                sparse: vec![],
                multi: vec![],
                dense: vec![],
                extra: vec![],
                weight: None,
                footer_crc32: None,
                parts: vec![],
            },
            encoders: Encoders::default(),
            row_ids: vec![],
            splits: vec![],
            sparse: vec![],
            multi: vec![],
            dense: vec![],
            labels: vec![],
            users: None,
            weights: None,
        }
    }

    /// Number of distinct users (groups), if any.
    pub fn n_users(&self) -> Option<usize> {
        self.users
            .as_ref()
            .map(|u| u.iter().max().map_or(0, |&m| m as usize))
    }
}

fn load(dir: &Path, fitted: Option<&Encoders>) -> Result<Dataset> {
    let mut spec = DatasetSpec::read(dir)?;
    if let Some(enc) = fitted {
        let counts = [enc.sparse.len(), enc.multi.len(), enc.dense.len()];
        align(&mut spec, &enc.names, counts, &dir.join(SPEC_FILE))?;
    }
    let started = std::time::Instant::now();
    let files = spec.data_files(dir)?;
    let ds = if files.len() == 1 {
        let path = files[0].path.clone();
        if let Some(expected) = files[0].footer_crc32 {
            check_footer(&path, expected)?;
        }
        let batches = read_columns_named(&path, &spec.input_columns(), SPEC_FILE)?;
        let mut ds = encode(dir, spec, &path, 0, &batches, fitted)?;
        if let Some(e) = fitted {
            ds.encoders = e.clone();
        }
        ds
    } else {
        let source = crate::source::DataSource::with_spec(dir, spec)?;
        let fitted_now;
        let encoders = match fitted {
            Some(e) => e,
            None => {
                fitted_now = source.fit_encoders()?;
                &fitted_now
            }
        };
        source.load_all(encoders)?
    };
    check_splits_and_labels(&ds, &ds.data_path())?;
    tracing::debug!(
        rows = ds.rows(),
        seconds = started.elapsed().as_secs_f64(),
        "loaded {}",
        ds.data_path().display()
    );
    Ok(ds)
}

/// Encodes the columns of `batches` (rows `first_row..` of the data file `path`, whose errors
/// name it): with `fitted`, by those encoders; without, by encoders fitted on the train rows of
/// `batches`.
pub(crate) fn encode(
    dir: &Path,
    spec: DatasetSpec,
    path: &Path,
    first_row: usize,
    batches: &[arrow_array::RecordBatch],
    fitted: Option<&Encoders>,
) -> Result<Dataset> {
    let splits = parse_splits(&chunks(path, first_row, batches, &spec.split))?;
    let n = splits.len();
    let train: Vec<bool> = splits.iter().map(|&s| s == Split::Train).collect();

    let (row_ids_labels, ((dense, sparse), (multi, users))) = rayon::join(
        || -> Result<_> {
            let row_ids = chunks(path, first_row, batches, &spec.row_id).row_ids()?;
            let weights = match &spec.weight {
                Some(w) => Some(chunks(path, first_row, batches, w).weights()?),
                None => None,
            };
            let labels = spec
                .labels
                .par_iter()
                .map(|l| {
                    Ok(LabelColumn {
                        name: l.name.clone(),
                        values: chunks(path, first_row, batches, &l.name).labels()?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((row_ids, labels, weights))
        },
        || {
            rayon::join(
                || {
                    rayon::join(
                        || -> Result<Vec<(DenseColumn, NormStats)>> {
                            spec.dense
                                .par_iter()
                                .enumerate()
                                .map(|(i, d)| {
                                    let raw = chunks(path, first_row, batches, &d.name).dense()?;
                                    let stats = match fitted {
                                        Some(e) => e.dense[i],
                                        None => NormStats::fit(
                                            d.norm,
                                            raw.iter()
                                                .zip(&train)
                                                .filter(|(_, t)| **t)
                                                .map(|(v, _)| *v),
                                        ),
                                    };
                                    let values = raw.iter().map(|&v| stats.apply(v)).collect();
                                    Ok((
                                        DenseColumn {
                                            name: d.name.clone(),
                                            values,
                                        },
                                        stats,
                                    ))
                                })
                                .collect()
                        },
                        || -> Result<Vec<(SparseColumn, Option<Vocab>)>> {
                            spec.sparse
                                .par_iter()
                                .enumerate()
                                .map(|(i, s)| {
                                    let c = chunks(path, first_row, batches, &s.name);
                                    let (size, ids, vocab) = match fitted {
                                        Some(e) => {
                                            let vocab = &e.sparse[i];
                                            check_kind(&c, vocab)?;
                                            let mut ids = Vec::with_capacity(n);
                                            c.for_each_key(|_, k| ids.push(vocab.id(k)))?;
                                            (vocab.size(), ids, None)
                                        }
                                        None => {
                                            let (vocab, ids) = match s.hash_buckets {
                                                Some(b) => hashed_ids(&c, b)?,
                                                None => {
                                                    fit_sparse(&c, &train, s.min_count, s.max_size)?
                                                }
                                            };
                                            (vocab.size(), ids, Some(vocab))
                                        }
                                    };
                                    let col = SparseColumn {
                                        name: s.name.clone(),
                                        ids,
                                        vocab_size: size,
                                        nulls: c.null_count(),
                                    };
                                    Ok((col, vocab))
                                })
                                .collect()
                        },
                    )
                },
                || {
                    rayon::join(
                        || -> Result<Vec<(MultiColumn, Option<Vocab>)>> {
                            spec.multi
                                .par_iter()
                                .enumerate()
                                .map(|(i, m)| {
                                    let c = chunks(path, first_row, batches, &m.name);
                                    let (size, offsets, ids, vocab) = match fitted {
                                        Some(e) => {
                                            let vocab = &e.multi[i];
                                            let mut offsets = Vec::with_capacity(n + 1);
                                            offsets.push(0u32);
                                            let mut ids = Vec::new();
                                            c.for_each_list(|_, keys, range| {
                                                ids.extend(range.map(|j| vocab.id(keys.get(j))));
                                                offsets.push(ids.len() as u32);
                                            })?;
                                            (vocab.size(), offsets, ids, None)
                                        }
                                        None => {
                                            let (vocab, offsets, ids) = match m.hash_buckets {
                                                Some(b) => hashed_lists(&c, b)?,
                                                None => {
                                                    fit_multi(&c, &train, m.min_count, m.max_size)?
                                                }
                                            };
                                            (vocab.size(), offsets, ids, Some(vocab))
                                        }
                                    };
                                    let col = MultiColumn {
                                        name: m.name.clone(),
                                        offsets,
                                        ids,
                                        vocab_size: size,
                                        nulls: c.list_item_nulls()?,
                                    };
                                    Ok((col, vocab))
                                })
                                .collect()
                        },
                        || -> Result<Option<Vec<u32>>> {
                            let Some(user) = &spec.user else {
                                return Ok(None);
                            };
                            let c = chunks(path, first_row, batches, user);
                            let everyone = vec![true; n];
                            Ok(Some(fit_sparse(&c, &everyone, 1, None)?.1))
                        },
                    )
                },
            )
        },
    );
    let (row_ids, labels, weights) = row_ids_labels?;
    let (dense, dense_stats): (Vec<_>, Vec<_>) = dense?.into_iter().unzip();
    let (sparse, sparse_vocabs): (Vec<_>, Vec<_>) = sparse?.into_iter().unzip();
    let (multi, multi_vocabs): (Vec<_>, Vec<_>) = multi?.into_iter().unzip();
    let users = users?;

    // With `fitted`, the caller keeps the encoders (a chunk of a streamed set holds none).
    let encoders = match fitted {
        Some(_) => Encoders::default(),
        None => Encoders {
            sparse: sparse_vocabs.into_iter().flatten().collect(),
            multi: multi_vocabs.into_iter().flatten().collect(),
            dense: dense_stats,
            names: FeatureNames::of(&spec),
        },
    };
    Ok(Dataset {
        dir: dir.to_path_buf(),
        encoders,
        spec,
        row_ids,
        splits,
        sparse,
        multi,
        dense,
        labels,
        users,
        weights,
    })
}

/// Checks the data file's footer against the checksum `prepare` wrote into `dataset.toml`.
pub(crate) fn check_footer(path: &Path, expected: u32) -> Result<()> {
    match crate::checksum::check_footer(path, expected) {
        Ok(()) => Ok(()),
        Err(FooterError::Open(e)) => Err(DataError::io(path, "cannot open", e)),
        Err(FooterError::Io(e)) => Err(DataError::io(path, "cannot read", e)),
        Err(FooterError::NoFooter) => Err(DataError::file(
            path,
            "not a readable Parquet file (truncated or corrupt?): it does not end in a footer",
        )),
        Err(FooterError::Mismatch { expected, found }) => Err(DataError::file(
            path,
            format!(
                "not a readable Parquet file (truncated or corrupt?): the footer's CRC32 is \
                 {found:08x}, {SPEC_FILE} says {expected:08x}"
            ),
        )),
    }
}

pub(crate) fn chunks<'a>(
    path: &'a Path,
    first_row: usize,
    batches: &'a [arrow_array::RecordBatch],
    name: &'a str,
) -> Chunks<'a> {
    Chunks {
        file: path,
        first_row,
        name,
        arrays: batches
            .iter()
            .map(|b| b.column_by_name(name).expect("projected column").as_ref())
            .collect(),
    }
}

pub(crate) fn parse_splits(c: &Chunks<'_>) -> Result<Vec<Split>> {
    let mut out = Vec::with_capacity(c.len());
    let mut bad: Option<DataError> = None;
    c.for_each_key(|row, k| {
        if bad.is_some() {
            return;
        }
        match k {
            Some(KeyRef::Str(s)) => match Split::parse(s) {
                Some(sp) => out.push(sp),
                None => {
                    bad = Some(DataError::cell(
                        c.file,
                        c.name,
                        c.first_row + row + 1,
                        format!("`{}` is not train, valid or test", echo(s)),
                    ))
                }
            },
            Some(KeyRef::Int(i)) => {
                bad = Some(DataError::cell(
                    c.file,
                    c.name,
                    c.first_row + row + 1,
                    format!("`{i}` is not train, valid or test"),
                ))
            }
            None => {
                bad = Some(DataError::cell(
                    c.file,
                    c.name,
                    c.first_row + row + 1,
                    "split is missing (null)",
                ))
            }
        }
    })?;
    match bad {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Fits a vocabulary on the train rows and encodes every row, in one pass over the column.
fn fit_sparse(
    c: &Chunks<'_>,
    train: &[bool],
    min_count: u32,
    max_size: Option<usize>,
) -> Result<(Vocab, Vec<u32>)> {
    let mut prov = Vec::with_capacity(c.len());
    let (keys, fitted) = match c.key_kind()? {
        KeyKind::Int => {
            let (mut lo, mut hi) = (i64::MAX, i64::MIN);
            c.for_each_int(|_, k| {
                if let Some(k) = k {
                    lo = lo.min(k);
                    hi = hi.max(k);
                }
            })?;
            let fitted = match RangeFitter::new(lo, hi, c.len()) {
                Some(mut fitter) => {
                    c.for_each_int(|row, k| prov.push(fitter.add(k, train[row])))?;
                    fitter.finish(min_count, max_size)
                }
                None => {
                    let mut fitter = Fitter::<i64>::default();
                    c.for_each_int(|row, k| prov.push(fitter.add(k, train[row])))?;
                    fitter.finish(min_count, max_size)
                }
            };
            let keys = VocabKeys::Int(fitted.keys.clone());
            (keys, FittedIds::of(fitted))
        }
        KeyKind::Str => {
            let mut fitter = Fitter::<&str>::default();
            c.for_each_key(|row, k| {
                let k = k.map(|k| match k {
                    KeyRef::Str(s) => s,
                    KeyRef::Int(_) => unreachable!("a text column"),
                });
                prov.push(fitter.add(k, train[row]))
            })?;
            let fitted = fitter.finish(min_count, max_size);
            let keys = VocabKeys::Str(fitted.keys.iter().map(|s| s.to_string()).collect());
            (keys, FittedIds::of(fitted))
        }
    };
    let ids = prov.into_iter().map(|p| fitted.id(p)).collect();
    Ok((Vocab::new(keys, fitted.null), ids))
}

/// The part of a fit that encodes (as [`Fitted::id`]), without the keys: the same type for text
/// and integer columns.
struct FittedIds {
    remap: Vec<u32>,
    null: bool,
    null_id: u32,
}

impl FittedIds {
    fn of<K>(f: Fitted<K>) -> Self {
        FittedIds {
            null_id: f.keys.len() as u32 + 1,
            remap: f.remap,
            null: f.null,
        }
    }

    fn id(&self, provisional: u32) -> u32 {
        if provisional != NULL {
            self.remap[provisional as usize]
        } else if self.null {
            self.null_id
        } else {
            OOV
        }
    }
}

/// As [`fit_sparse`] for a list column: the vocabulary, the offsets and the ids. List values
/// are fitted as text (integers written in decimal).
fn fit_multi(
    c: &Chunks<'_>,
    train: &[bool],
    min_count: u32,
    max_size: Option<usize>,
) -> Result<(Vocab, Vec<u32>, Vec<u32>)> {
    let mut fitter = Fitter::<KeyRef<'_>>::default();
    let mut offsets = Vec::with_capacity(c.len() + 1);
    offsets.push(0u32);
    let mut prov = Vec::new();
    let mut kind = KeyKind::Str;
    c.for_each_list(|row, keys, range| {
        for j in range {
            let k = keys.get(j);
            if let Some(KeyRef::Int(_)) = k {
                kind = KeyKind::Int;
            }
            prov.push(fitter.add(k, train[row]));
        }
        offsets.push(prov.len() as u32);
    })?;
    let fitted = fitter.finish(min_count, max_size);
    let keys = match kind {
        KeyKind::Int => VocabKeys::Int(
            fitted
                .keys
                .iter()
                .filter_map(|k| match *k {
                    KeyRef::Int(i) => Some(i),
                    KeyRef::Str(_) => None,
                })
                .collect(),
        ),
        KeyKind::Str => VocabKeys::Str(
            fitted
                .keys
                .iter()
                .filter_map(|k| match *k {
                    KeyRef::Str(s) => Some(s.to_string()),
                    KeyRef::Int(_) => None,
                })
                .collect(),
        ),
    };
    let ids = prov.into_iter().map(|p| fitted.id(p)).collect();
    Ok((Vocab::new(keys, fitted.null), offsets, ids))
}

/// A hashed vocabulary of `buckets` and the ids of a single-valued column.
fn hashed_ids(c: &Chunks<'_>, buckets: u32) -> Result<(Vocab, Vec<u32>)> {
    let vocab = Vocab::hashed(buckets);
    let mut ids = Vec::with_capacity(c.len());
    c.for_each_key(|_, k| ids.push(vocab.id(k)))?;
    Ok((vocab, ids))
}

/// A hashed vocabulary of `buckets`, the offsets and the ids of a list column.
fn hashed_lists(c: &Chunks<'_>, buckets: u32) -> Result<(Vocab, Vec<u32>, Vec<u32>)> {
    let vocab = Vocab::hashed(buckets);
    let mut offsets = Vec::with_capacity(c.len() + 1);
    offsets.push(0u32);
    let mut ids = Vec::new();
    c.for_each_list(|_, keys, range| {
        ids.extend(range.map(|j| vocab.id(keys.get(j))));
        offsets.push(ids.len() as u32);
    })?;
    Ok((vocab, offsets, ids))
}

fn check_kind(c: &Chunks<'_>, vocab: &Vocab) -> Result<()> {
    if !vocab.accepts(c.key_kind()?) {
        return Err(DataError::column(
            c.file,
            c.name,
            "holds text where the fitted vocabulary holds integers, or the other way round",
        ));
    }
    Ok(())
}

/// Every split has rows; every task has both classes in train.
fn check_splits_and_labels(ds: &Dataset, path: &Path) -> Result<()> {
    let mut counts = [0usize; 3];
    for &s in &ds.splits {
        counts[s as usize] += 1;
    }
    for s in Split::ALL {
        if counts[s as usize] == 0 {
            return Err(DataError::column(
                path,
                &ds.spec.split,
                format!("split `{s}` has no rows"),
            ));
        }
    }
    for l in &ds.labels {
        let (mut pos, mut neg) = (0usize, 0usize);
        for (y, s) in l.values.iter().zip(&ds.splits) {
            if *s == Split::Train {
                if *y == 1 { pos += 1 } else { neg += 1 }
            }
        }
        if pos == 0 {
            return Err(DataError::column(
                path,
                &l.name,
                "the task has no positive label in the train split",
            ));
        }
        if neg == 0 {
            return Err(DataError::column(
                path,
                &l.name,
                "the task has no negative label in the train split",
            ));
        }
    }
    Ok(())
}
