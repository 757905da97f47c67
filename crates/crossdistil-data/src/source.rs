//! A data set read a row group at a time: the reading side of data larger than memory.
//!
//! A [`DataSource`] opens every Parquet file of a data set (one file, or a folder of part files,
//! see [`DatasetSpec::data_files`]): it checks each footer's checksum when `prepare` recorded
//! one, parses the footers, and refuses part files whose columns differ from the first file's,
//! naming both. Its [`Unit`]s are the row groups of the files, in file order: the unit in which
//! a streamed data set is read, encoded ([`DataSource::chunk`]) and dropped again.
//!
//! The encoders of a streamed set are fitted in one pass over the units in file order
//! ([`DataSource::fit_encoders`]), counting the train rows' values with the bounded-memory
//! counter of `vocab.rs` (or hashing, for a feature with `hash_buckets`) and summing the dense
//! statistics in the order [`NormStats::fit`](crate::NormStats::fit) sums them; so when no
//! `max_size` cuts a vocabulary short, the encoders equal those [`Dataset::load`] fits.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::column::KeyRef;
use crate::dataset::{Dataset, Encoders, chunks, encode, parse_splits};
use crate::error::{DataError, Result};
use crate::features::{FeatureNames, align};
use crate::normalize::NormFit;
use crate::parquet_io::ParquetFile;
use crate::spec::{DatasetSpec, SPEC_FILE};
use crate::split::Split;
use crate::vocab::{Vocab, VocabCounter};

/// One row group of one data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    /// The file, an index into [`DataSource::files`].
    pub file: usize,
    /// The row group inside the file, from 0.
    pub group: usize,
    /// Its number of rows.
    pub rows: usize,
    /// The file's 0-based row where it starts.
    pub first_row: usize,
}

/// One unit, encoded.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The unit it was read from (an index into [`DataSource::units`]).
    pub unit: usize,
    /// Its rows, every split, encoded with the encoders it was read with; its `encoders` field
    /// is empty (the caller holds them) and its `users` are `None` (see `user_keys`).
    pub data: Dataset,
    /// A 64-bit hash of each row's user (the GAUC group) when the spec names a user column:
    /// the same user gives the same hash in every chunk of one process.
    pub user_keys: Option<Vec<u64>>,
}

/// The Parquet files of a data set, opened for reading a row group at a time.
pub struct DataSource {
    dir: PathBuf,
    spec: DatasetSpec,
    files: Vec<ParquetFile>,
    units: Vec<Unit>,
}

impl DataSource {
    /// Opens the data set whose `dataset.toml` is in `dir`.
    pub fn open(dir: &Path) -> Result<DataSource> {
        DataSource::with_spec(dir, DatasetSpec::read(dir)?)
    }

    /// Opens the data set in `dir` for encoders fitted earlier (a trained model's): its
    /// features are matched to theirs by name, as [`Dataset::load_with`] does.
    pub fn open_with(dir: &Path, encoders: &Encoders) -> Result<DataSource> {
        let mut spec = DatasetSpec::read(dir)?;
        let counts = [
            encoders.sparse.len(),
            encoders.multi.len(),
            encoders.dense.len(),
        ];
        align(&mut spec, &encoders.names, counts, &dir.join(SPEC_FILE))?;
        DataSource::with_spec(dir, spec)
    }

    /// Opens the files of `spec` (whose folder is `dir`).
    pub(crate) fn with_spec(dir: &Path, spec: DatasetSpec) -> Result<DataSource> {
        let columns = spec.input_columns();
        let files = spec
            .data_files(dir)?
            .par_iter()
            .map(|f| {
                if let Some(expected) = f.footer_crc32 {
                    crate::dataset::check_footer(&f.path, expected)?;
                }
                ParquetFile::open(&f.path, &columns, SPEC_FILE)
            })
            .collect::<Result<Vec<_>>>()?;
        check_same_columns(&files)?;
        let mut units = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let mut first_row = 0;
            for g in 0..f.row_groups() {
                let rows = f.group_rows(g);
                units.push(Unit {
                    file: i,
                    group: g,
                    rows,
                    first_row,
                });
                first_row += rows;
            }
        }
        Ok(DataSource {
            dir: dir.to_path_buf(),
            spec,
            files,
            units,
        })
    }

    /// The folder of `dataset.toml`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data set's schema (in the encoders' feature order when opened with
    /// [`DataSource::open_with`]).
    pub fn spec(&self) -> &DatasetSpec {
        &self.spec
    }

    /// The paths of the data files, in reading order.
    pub fn files(&self) -> Vec<&Path> {
        self.files.iter().map(|f| f.path.as_path()).collect()
    }

    /// The row groups of every file, in file order.
    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    /// The number of rows, every split.
    pub fn rows(&self) -> usize {
        self.units.iter().map(|u| u.rows).sum()
    }

    /// Reads and encodes unit `unit` with `encoders`. A corrupt row group is an error naming
    /// the file and the row group; a bad value names the file, column and row.
    pub fn chunk(&self, unit: usize, encoders: &Encoders) -> Result<Chunk> {
        let u = self.units[unit];
        let file = &self.files[u.file];
        let batches = file.read_group(u.group)?;
        let data = encode(
            &self.dir,
            self.spec.clone(),
            &file.path,
            u.first_row,
            &batches,
            Some(encoders),
        )?;
        let user_keys = match &self.spec.user {
            Some(user) => {
                let c = chunks(&file.path, u.first_row, &batches, user);
                let mut keys = Vec::with_capacity(c.len());
                c.for_each_key(|_, k| keys.push(key_hash(k)))?;
                Some(keys)
            }
            None => None,
        };
        Ok(Chunk {
            unit,
            data: Dataset {
                users: None,
                ..data
            },
            user_keys,
        })
    }

    /// The number of rows of each split in every unit, reading the split column alone.
    pub fn split_counts(&self) -> Result<Vec<[usize; 3]>> {
        let split = [self.spec.split.as_str()];
        let files = self
            .files
            .par_iter()
            .map(|f| ParquetFile::open(&f.path, &split, SPEC_FILE))
            .collect::<Result<Vec<_>>>()?;
        self.units
            .par_iter()
            .map(|u| {
                let f = &files[u.file];
                let batches = f.read_group(u.group)?;
                let splits = parse_splits(&chunks(&f.path, u.first_row, &batches, split[0]))?;
                let mut counts = [0usize; 3];
                for s in splits {
                    counts[s as usize] += 1;
                }
                Ok(counts)
            })
            .collect()
    }

    /// Fits the encoders on the train rows in one pass over the units in file order, a few
    /// units decoded at a time: memory holds those units and the counts, not the data set.
    pub fn fit_encoders(&self) -> Result<Encoders> {
        let spec = &self.spec;
        let mut sparse: Vec<FieldFit> = spec
            .sparse
            .iter()
            .map(|s| FieldFit::new(s.min_count, s.max_size, s.hash_buckets))
            .collect();
        let mut multi: Vec<FieldFit> = spec
            .multi
            .iter()
            .map(|m| FieldFit::new(m.min_count, m.max_size, m.hash_buckets))
            .collect();
        let mut dense: Vec<NormFit> = spec.dense.iter().map(|d| NormFit::new(d.norm)).collect();
        let window = rayon::current_num_threads().max(1) * 2;
        let started = std::time::Instant::now();
        for units in self.units.chunks(window) {
            let decoded: Vec<Result<Vec<arrow_array::RecordBatch>>> = units
                .par_iter()
                .map(|u| self.files[u.file].read_group(u.group))
                .collect();
            for (u, batches) in units.iter().zip(decoded) {
                let batches = batches?;
                let path = &self.files[u.file].path;
                let col = |name| chunks(path, u.first_row, &batches, name);
                let train: Vec<bool> = parse_splits(&col(&spec.split))?
                    .into_iter()
                    .map(|s| s == Split::Train)
                    .collect();
                let (a, (b, c)) = rayon::join(
                    || {
                        sparse
                            .par_iter_mut()
                            .zip(&spec.sparse)
                            .try_for_each(|(fit, s)| fit.add_single(&col(&s.name), &train))
                    },
                    || {
                        rayon::join(
                            || {
                                multi
                                    .par_iter_mut()
                                    .zip(&spec.multi)
                                    .try_for_each(|(fit, m)| fit.add_lists(&col(&m.name), &train))
                            },
                            || {
                                dense.par_iter_mut().zip(&spec.dense).try_for_each(
                                    |(fit, d)| -> Result<()> {
                                        let raw = col(&d.name).dense()?;
                                        for (v, _) in raw.iter().zip(&train).filter(|(_, t)| **t) {
                                            fit.add(*v);
                                        }
                                        Ok(())
                                    },
                                )
                            },
                        )
                    },
                );
                a?;
                b?;
                c?;
            }
        }
        tracing::debug!(
            units = self.units.len(),
            seconds = started.elapsed().as_secs_f64(),
            "fitted the encoders of {}",
            self.dir.display()
        );
        Ok(Encoders {
            sparse: sparse.into_iter().map(FieldFit::finish).collect(),
            multi: multi.into_iter().map(FieldFit::finish).collect(),
            dense: dense.into_iter().map(NormFit::finish).collect(),
            names: FeatureNames::of(spec),
        })
    }

    /// Every unit encoded with `encoders`, in memory as one [`Dataset`] (the loader of a
    /// part-file folder), with the users' groups numbered in order of appearance.
    pub(crate) fn load_all(&self, encoders: &Encoders) -> Result<Dataset> {
        let chunks = (0..self.units.len())
            .into_par_iter()
            .map(|u| self.chunk(u, encoders))
            .collect::<Result<Vec<_>>>()?;
        let users = self.spec.user.as_ref().map(|_| {
            dense_groups(chunks.iter().flat_map(|c| {
                c.user_keys
                    .as_deref()
                    .expect("a spec with a user column")
                    .iter()
                    .copied()
            }))
        });
        let mut ds = Dataset::concat(chunks.iter().map(|c| &c.data));
        ds.users = users;
        ds.encoders = encoders.clone();
        Ok(ds)
    }
}

/// Numbers 64-bit group keys `0, 1, ...` in order of first appearance.
pub fn dense_groups(keys: impl Iterator<Item = u64>) -> Vec<u32> {
    let mut ids: FxHashMap<u64, u32> = FxHashMap::default();
    keys.map(|k| {
        let next = ids.len() as u32;
        *ids.entry(k).or_insert(next)
    })
    .collect()
}

/// A 64-bit hash of a categorical value, for grouping within one process (never stored).
fn key_hash(key: Option<KeyRef<'_>>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Refuses files whose projected columns (names and Arrow types) differ from the first file's,
/// naming both files.
fn check_same_columns(files: &[ParquetFile]) -> Result<()> {
    let Some(first) = files.first() else {
        return Ok(());
    };
    let want = first.column_types();
    for f in &files[1..] {
        for ((name, a), (_, b)) in want.iter().zip(f.column_types()) {
            if *a != b {
                return Err(DataError::column(
                    &f.path,
                    name,
                    format!(
                        "has type {b} here but {a} in {}: the part files of a data set must share one schema",
                        first.path.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The fit of one categorical feature over the units: counted, or hashed.
enum FieldFit {
    /// Not yet seen a unit: the key kind comes from the column's type on the first one.
    Start(u32, Option<usize>),
    Counted(VocabCounter),
    Hashed(u32),
}

impl FieldFit {
    fn new(min_count: u32, max_size: Option<usize>, hash_buckets: Option<u32>) -> Self {
        match hash_buckets {
            Some(b) => FieldFit::Hashed(b),
            None => FieldFit::Start(min_count, max_size),
        }
    }

    /// The counter, started with the kind of `c` on the first unit.
    fn counter(&mut self, c: &crate::column::Chunks<'_>) -> Result<Option<&mut VocabCounter>> {
        if let FieldFit::Start(min_count, max_size) = *self {
            *self =
                FieldFit::Counted(VocabCounter::new(min_count, max_size).with_kind(c.key_kind()?));
        }
        Ok(match self {
            FieldFit::Counted(counter) => Some(counter),
            _ => None,
        })
    }

    /// Counts the values of the train rows of a single-valued column.
    fn add_single(&mut self, c: &crate::column::Chunks<'_>, train: &[bool]) -> Result<()> {
        if let Some(counter) = self.counter(c)? {
            c.for_each_key(|row, k| {
                if train[row] {
                    counter.add(k)
                }
            })?;
        }
        Ok(())
    }

    /// Counts the items of the train rows of a list column (fitted as text when no item is an
    /// integer, as the in-memory fit does).
    fn add_lists(&mut self, c: &crate::column::Chunks<'_>, train: &[bool]) -> Result<()> {
        if let FieldFit::Start(min_count, max_size) = *self {
            *self = FieldFit::Counted(VocabCounter::new(min_count, max_size));
        }
        if let FieldFit::Counted(counter) = self {
            c.for_each_list(|row, keys, range| {
                if train[row] {
                    for j in range {
                        counter.add(keys.get(j));
                    }
                }
            })?;
        }
        Ok(())
    }

    fn finish(self) -> Vocab {
        match self {
            FieldFit::Counted(c) => c.finish(),
            FieldFit::Start(..) => VocabCounter::new(1, None).finish(),
            FieldFit::Hashed(b) => Vocab::hashed(b),
        }
    }
}
