//! The data a run trains and evaluates on: loaded into memory, or streamed a row group at a
//! time (`[train] stream`), behind one interface.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crossdistil_data::{
    DataSource, Dataset, DatasetSpec, Encoders, InputSchema, Split, dense_groups,
};
use crossdistil_model::MultiTaskModel;

use crate::config::TrainSettings;
use crate::error::{Result, TrainError};
use crate::evaluate::{SplitMetrics, metrics_of};
use crate::extra_rows::ExtraPositives;
use crate::predict::{Predictions, predict_all_on};
use crate::stream::{StreamedRows, read_ahead};
use crate::trainer::{BatchSource, ShuffledRows};

/// A data set as a run uses it.
pub enum RunData {
    /// Every row in memory, with the rows of each split.
    Loaded {
        /// The data set.
        ds: Box<Dataset>,
        /// The rows of train, valid and test, in file order.
        rows: [Vec<u32>; 3],
    },
    /// Read a row group at a time.
    Streamed {
        /// The files.
        source: Arc<DataSource>,
        /// The encoders the rows are read with.
        encoders: Arc<Encoders>,
        /// Threads reading ahead.
        readers: usize,
    },
}

/// A model's predictions over the rows of a split, with every label column and the GAUC
/// groups of those rows.
pub struct Scored {
    /// The predictions, per task.
    pub pred: Predictions,
    /// Every label column of the data set over the rows, `[label][row]`.
    pub labels: Vec<Vec<u8>>,
    /// The rows' groups (users) when the data set has them.
    pub groups: Option<Vec<u32>>,
    /// The rows' `row_id`s (empty when scored for metrics alone).
    pub row_ids: Vec<u64>,
    /// The rows' splits (empty when scored for metrics alone).
    pub splits: Vec<Split>,
}

impl RunData {
    /// Opens the data set in `dir`: loaded, or streamed when `settings.stream`; encoded with
    /// `encoders` (a resumed or trained run's), else with encoders fitted on its train split
    /// (in one streaming pass when streamed).
    pub fn open(dir: &Path, settings: &TrainSettings, encoders: Option<&Encoders>) -> Result<Self> {
        if !settings.stream {
            let ds = match encoders {
                Some(e) => Dataset::load_with(dir, e)?,
                None => Dataset::load(dir)?,
            };
            let rows = Split::ALL.map(|s| ds.split_rows(s));
            return Ok(RunData::Loaded {
                ds: Box::new(ds),
                rows,
            });
        }
        let (source, encoders) = match encoders {
            Some(e) => (DataSource::open_with(dir, e)?, e.clone()),
            None => {
                let source = DataSource::open(dir)?;
                let fitted = source.fit_encoders()?;
                (source, fitted)
            }
        };
        Ok(RunData::Streamed {
            source: Arc::new(source),
            encoders: Arc::new(encoders),
            readers: settings.readers,
        })
    }

    /// The data set's schema.
    pub fn spec(&self) -> &DatasetSpec {
        match self {
            RunData::Loaded { ds, .. } => &ds.spec,
            RunData::Streamed { source, .. } => source.spec(),
        }
    }

    /// The folder of `dataset.toml`.
    pub fn dir(&self) -> &Path {
        match self {
            RunData::Loaded { ds, .. } => &ds.dir,
            RunData::Streamed { source, .. } => source.dir(),
        }
    }

    /// The encoders the rows are read with.
    pub fn encoders(&self) -> &Encoders {
        match self {
            RunData::Loaded { ds, .. } => &ds.encoders,
            RunData::Streamed { encoders, .. } => encoders,
        }
    }

    /// The features as a model sees them.
    pub fn input_schema(&self) -> InputSchema {
        match self {
            RunData::Loaded { ds, .. } => ds.input_schema(),
            RunData::Streamed {
                source, encoders, ..
            } => {
                let spec = source.spec();
                InputSchema {
                    sparse: spec
                        .sparse
                        .iter()
                        .zip(&encoders.sparse)
                        .map(|(s, v)| (s.name.clone(), v.size()))
                        .collect(),
                    multi: spec
                        .multi
                        .iter()
                        .zip(&encoders.multi)
                        .map(|(m, v)| (m.name.clone(), v.size()))
                        .collect(),
                    n_dense: spec.dense.len(),
                    dense_names: spec.dense.iter().map(|d| d.name.clone()).collect(),
                }
            }
        }
    }

    /// The batches of the train split for `t` (`batch_size`, `seed`, and with streaming
    /// `shuffle_buffer`).
    pub fn train_batches(&self, t: &TrainSettings) -> Result<Box<dyn BatchSource + '_>> {
        self.train_batches_of_rank(t, 0, 1)
    }

    /// Rank `rank`'s part of the training batches of a run on `ranks` ranks: rows
    /// `[rank * b / ranks, (rank + 1) * b / ranks)` of every global batch of a loaded data set
    /// (every rank shuffles the same way), or its share of the row groups of a streamed one with
    /// its part of `batch_size` ([`StreamedRows::with_rank_share`]).
    pub fn train_batches_of_rank(
        &self,
        t: &TrainSettings,
        rank: usize,
        ranks: usize,
    ) -> Result<Box<dyn BatchSource + '_>> {
        let ranks = ranks.max(1);
        let part = (rank + 1) * t.batch_size / ranks - rank * t.batch_size / ranks;
        Ok(match self {
            RunData::Loaded { .. } if ranks > 1 => Box::new(RankPart {
                inner: self.train_batches_of_rank(t, 0, 1)?,
                rank,
                ranks,
            }),
            RunData::Streamed {
                source,
                encoders,
                readers,
            } if ranks > 1 => Box::new(
                StreamedRows::new(
                    source.clone(),
                    encoders.clone(),
                    Split::Train,
                    part.max(1),
                    t.seed,
                    t.shuffle_buffer,
                    *readers,
                )?
                .with_rank_share(rank, ranks),
            ),
            RunData::Loaded { ds, rows } => Box::new(ShuffledRows::new(
                ds,
                rows[Split::Train as usize].clone(),
                t.batch_size,
                t.seed,
            )),
            RunData::Streamed {
                source,
                encoders,
                readers,
            } => Box::new(StreamedRows::new(
                source.clone(),
                encoders.clone(),
                Split::Train,
                t.batch_size,
                t.seed,
                t.shuffle_buffer,
                *readers,
            )?),
        })
    }

    /// [`RunData::train_batches_of_rank`] with `counts[k]` extra positives of label column
    /// `labels[k]` after every global batch ([`ExtraPositives`], `distill.extra_positives`),
    /// drawn before the batch is cut into the ranks' parts. Needs the data loaded; with every
    /// count 0 it is [`RunData::train_batches_of_rank`].
    pub fn train_batches_with_extra(
        &self,
        t: &TrainSettings,
        labels: &[usize],
        counts: &[usize],
        rank: usize,
        ranks: usize,
    ) -> Result<Box<dyn BatchSource + '_>> {
        if counts.iter().all(|&n| n == 0) {
            return self.train_batches_of_rank(t, rank, ranks);
        }
        let RunData::Loaded { ds, rows } = self else {
            return Err(TrainError::Config(
                "distill.extra_positives needs the data set in memory: set train.stream = false"
                    .into(),
            ));
        };
        let train = &rows[Split::Train as usize];
        let extra: Box<dyn BatchSource + '_> = Box::new(ExtraPositives::new(
            self.train_batches_of_rank(t, 0, 1)?,
            ds,
            train,
            labels,
            counts,
            t.seed,
        ));
        Ok(match ranks.max(1) {
            1 => extra,
            ranks => Box::new(RankPart {
                inner: extra,
                rank,
                ranks,
            }),
        })
    }

    /// The model's predictions over the rows of `split` (every row when `None`), in file order,
    /// `batch_size` rows at a time on `threads` threads.
    pub fn score(
        &self,
        model: &MultiTaskModel,
        split: Option<Split>,
        batch_size: usize,
        threads: usize,
    ) -> Result<Scored> {
        self.score_with(model, split, batch_size, threads, true)
    }

    /// [`RunData::score`], with the rows' ids and splits only when `ids` (metrics need neither:
    /// 9 bytes a row that a validation of a large split does without).
    pub(crate) fn score_with(
        &self,
        model: &MultiTaskModel,
        split: Option<Split>,
        batch_size: usize,
        threads: usize,
        ids: bool,
    ) -> Result<Scored> {
        match self {
            RunData::Loaded { ds, rows } => {
                let all: Vec<u32>;
                let rows = match split {
                    Some(s) => &rows[s as usize],
                    None => {
                        all = (0..ds.rows() as u32).collect();
                        &all
                    }
                };
                Ok(score_rows(model, ds, rows, batch_size, threads, ids)?)
            }
            RunData::Streamed { source, .. } => {
                let mut out: Option<Scored> = None;
                // The users' groups numbered in order of first appearance as the rows come, as
                // `dense_groups` numbers them: 4 bytes a row and one entry per user.
                let mut numbers: HashMap<u64, u32> = HashMap::new();
                let mut groups: Vec<u32> = Vec::new();
                let each = |_: usize, part: Scored, user_keys: Option<Vec<u64>>| {
                    for k in user_keys.unwrap_or_default() {
                        let next = numbers.len() as u32;
                        groups.push(*numbers.entry(k).or_insert(next));
                    }
                    match &mut out {
                        Some(all) => all.append(part),
                        None => out = Some(part),
                    }
                    Ok(())
                };
                self.chunks_with(model, split, batch_size, threads, ids, each)?;
                let mut out = out.unwrap_or_else(|| Scored::empty(model, self.spec()));
                if source.spec().user.is_some() {
                    out.groups = Some(groups);
                }
                Ok(out)
            }
        }
    }

    /// Scores a streamed data set a row group at a time, in file order: calls `f(file, scored,
    /// user_keys)` with the index of the data file of each row group, its rows of `split`
    /// (every row when `None`) and their users' hashes. For a loaded data set, one call with
    /// every row of `split` and file 0.
    pub fn score_chunks(
        &self,
        model: &MultiTaskModel,
        split: Option<Split>,
        batch_size: usize,
        threads: usize,
        f: impl FnMut(usize, Scored, Option<Vec<u64>>) -> Result<()>,
    ) -> Result<()> {
        self.chunks_with(model, split, batch_size, threads, true, f)
    }

    /// [`RunData::score_chunks`], with the rows' ids and splits only when `ids`.
    fn chunks_with(
        &self,
        model: &MultiTaskModel,
        split: Option<Split>,
        batch_size: usize,
        threads: usize,
        ids: bool,
        mut f: impl FnMut(usize, Scored, Option<Vec<u64>>) -> Result<()>,
    ) -> Result<()> {
        let RunData::Streamed {
            source,
            encoders,
            readers,
        } = self
        else {
            return f(
                0,
                self.score_with(model, split, batch_size, threads, ids)?,
                None,
            );
        };
        // The rows of the split are scored in runs of whole batches that cross row groups, so
        // that the batches are those of the loaded data set (see `predict_all_on`).
        let run = batch_size.max(1) * threads.max(1);
        let mut pending = Pending {
            ids,
            ..Pending::default()
        };
        let units = (0..source.units().len()).collect();
        for chunk in read_ahead(source.clone(), encoders.clone(), units, *readers) {
            let chunk = chunk?;
            let ds = &chunk.data;
            let rows: Vec<u32> = (0..ds.rows() as u32)
                .filter(|&r| split.is_none_or(|s| ds.splits[r as usize] == s))
                .collect();
            let file = source.units()[chunk.unit].file;
            pending.files.extend(std::iter::repeat_n(file, rows.len()));
            if let Some(k) = &chunk.user_keys {
                pending.keys.extend(rows.iter().map(|&r| k[r as usize]));
            }
            pending.parts.push(ds.select(&rows));
            while pending.rows() >= run {
                pending.flush(run, model, batch_size, threads, &mut f)?;
            }
        }
        let rest = pending.rows();
        pending.flush(rest, model, batch_size, threads, &mut f)
    }

    /// The metrics of `model`'s tasks `tasks` (label indices) on `split`.
    pub fn evaluate(
        &self,
        model: &MultiTaskModel,
        split: Split,
        tasks: &[usize],
        batch_size: usize,
        threads: usize,
    ) -> Result<SplitMetrics> {
        let scored = self.score_with(model, Some(split), batch_size, threads, false)?;
        let names: Vec<String> = self.spec().labels.iter().map(|l| l.name.clone()).collect();
        Ok(metrics_of(
            &names,
            tasks,
            &scored.labels,
            scored.groups.as_deref(),
            &scored.pred,
        )?)
    }
}

/// The predictions, labels and groups of `rows` of `ds`, with their row ids and splits when
/// `ids`.
fn score_rows(
    model: &MultiTaskModel,
    ds: &Dataset,
    rows: &[u32],
    batch_size: usize,
    threads: usize,
    ids: bool,
) -> Result<Scored> {
    let rows_ids: &[u32] = if ids { rows } else { &[] };
    let pred = predict_all_on(model, ds, rows, batch_size, threads)?;
    Ok(Scored {
        pred,
        labels: ds
            .labels
            .iter()
            .map(|l| rows.iter().map(|&r| l.values[r as usize]).collect())
            .collect(),
        groups: ds
            .users
            .as_ref()
            .map(|u| dense_groups(rows.iter().map(|&r| u[r as usize] as u64))),
        row_ids: rows_ids.iter().map(|&r| ds.row_ids[r as usize]).collect(),
        splits: rows_ids.iter().map(|&r| ds.splits[r as usize]).collect(),
    })
}

/// Rows of a streamed split waiting to be scored, with the data file of each and the users'
/// hashes.
#[derive(Default)]
struct Pending {
    parts: Vec<Dataset>,
    files: Vec<usize>,
    keys: Vec<u64>,
    /// Whether the scored rows keep their ids and splits.
    ids: bool,
}

impl Pending {
    fn rows(&self) -> usize {
        self.files.len()
    }

    /// Scores the first `n` rows and hands them to `f`, a run of rows of one file at a time.
    fn flush(
        &mut self,
        n: usize,
        model: &MultiTaskModel,
        batch_size: usize,
        threads: usize,
        f: &mut impl FnMut(usize, Scored, Option<Vec<u64>>) -> Result<()>,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let all = Dataset::concat(&self.parts);
        let head: Vec<u32> = (0..n as u32).collect();
        let rest: Vec<u32> = (n as u32..all.rows() as u32).collect();
        self.parts = if rest.is_empty() {
            Vec::new()
        } else {
            vec![all.select(&rest)]
        };
        let mut scored = score_rows(model, &all, &head, batch_size, threads, self.ids)?;
        drop(all);
        let files: Vec<usize> = self.files.drain(..n).collect();
        let keys: Option<Vec<u64>> =
            (!self.keys.is_empty()).then(|| self.keys.drain(..n).collect());
        let mut start = 0;
        while start < n {
            let end = start
                + files[start..]
                    .iter()
                    .take_while(|&&x| x == files[start])
                    .count();
            let rest = scored.split_off(end - start);
            let part_keys = keys.as_ref().map(|k| k[start..end].to_vec());
            f(
                files[start],
                std::mem::replace(&mut scored, rest),
                part_keys,
            )?;
            start = end;
        }
        Ok(())
    }
}

impl Scored {
    /// No rows.
    pub(crate) fn empty(model: &MultiTaskModel, spec: &DatasetSpec) -> Scored {
        let t = model.n_tasks();
        let teachers = model.has_teachers().then(|| vec![Vec::new(); t]);
        Scored {
            pred: Predictions {
                student: vec![Vec::new(); t],
                teacher: teachers.clone(),
                calibrated: teachers,
            },
            labels: vec![Vec::new(); spec.labels.len()],
            groups: None,
            row_ids: Vec::new(),
            splits: Vec::new(),
        }
    }

    /// Splits off the rows from `at` on, as [`Vec::split_off`] does.
    pub(crate) fn split_off(&mut self, at: usize) -> Scored {
        fn split(a: &mut [Vec<f32>], at: usize) -> Vec<Vec<f32>> {
            a.iter_mut().map(|v| v.split_off(at)).collect()
        }
        Scored {
            pred: Predictions {
                student: split(&mut self.pred.student, at),
                teacher: self.pred.teacher.as_mut().map(|t| split(t, at)),
                calibrated: self.pred.calibrated.as_mut().map(|c| split(c, at)),
            },
            labels: self.labels.iter_mut().map(|l| l.split_off(at)).collect(),
            groups: self.groups.as_mut().map(|g| g.split_off(at)),
            row_ids: self.row_ids.split_off(at.min(self.row_ids.len())),
            splits: self.splits.split_off(at.min(self.splits.len())),
        }
    }

    /// Appends the rows of `other` (scored by the same model).
    pub(crate) fn append(&mut self, other: Scored) {
        fn extend(a: &mut [Vec<f32>], b: Vec<Vec<f32>>) {
            a.iter_mut().zip(b).for_each(|(a, b)| a.extend(b));
        }
        extend(&mut self.pred.student, other.pred.student);
        if let (Some(a), Some(b)) = (&mut self.pred.teacher, other.pred.teacher) {
            extend(a, b);
        }
        if let (Some(a), Some(b)) = (&mut self.pred.calibrated, other.pred.calibrated) {
            extend(a, b);
        }
        for (a, b) in self.labels.iter_mut().zip(other.labels) {
            a.extend(b);
        }
        if let (Some(a), Some(b)) = (&mut self.groups, other.groups) {
            a.extend(b);
        }
        self.row_ids.extend(other.row_ids);
        self.splits.extend(other.splits);
    }
}

/// Rank `rank`'s part of each batch of `inner` ([`crate::dist::rank_part`]).
struct RankPart<'a> {
    inner: Box<dyn BatchSource + 'a>,
    rank: usize,
    ranks: usize,
}

impl BatchSource for RankPart<'_> {
    fn epoch(&self, epoch: usize) -> Result<crate::trainer::BoxedBatches<'_>> {
        let (rank, ranks) = (self.rank, self.ranks);
        Ok(Box::new(self.inner.epoch(epoch)?.map(move |b| {
            b.map(|b| crate::dist::rank_part(&b, rank, ranks))
        })))
    }

    fn batches_per_epoch(&self) -> Option<usize> {
        self.inner.batches_per_epoch()
    }
}
