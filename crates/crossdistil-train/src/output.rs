//! Opening a finished run on a data set: evaluation and the scores file.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use crossdistil_data::Split;
use parquet::arrow::ArrowWriter;

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::evaluate::SplitMetrics;
use crate::fit::{BuiltModel, build_model_for, set_weights};
use crate::run::{RunDir, load_verified_weights, read_verified_config, read_verified_encoders};
use crate::run_data::{RunData, Scored};

/// A trained run's best model, with the data encoded by the run's own encoders.
pub struct OpenRun {
    /// The run's configuration, checked against its manifest.
    pub config: RunConfig,
    /// The data set, encoded with the run's own encoders: loaded, or streamed when the run's
    /// `train.stream` (or the `stream` of [`open_run_with`]) says so.
    pub data: RunData,
    /// The model with the best checkpoint's weights, and its tasks.
    pub trained: BuiltModel,
}

/// Opens `run` (its config, encoders and best checkpoint, as its manifest names them, each
/// checked against the manifest's checksum) on the prepared data in `data`, streamed when the
/// run was trained streaming.
pub fn open_run(run: &Path, data: &Path) -> Result<OpenRun> {
    open_run_with(run, data, false)
}

/// [`open_run`], streaming the data when `stream` even if the run was trained on loaded data.
pub fn open_run_with(run: &Path, data: &Path, stream: bool) -> Result<OpenRun> {
    let dir = RunDir::new(run);
    let manifest = dir.manifest()?;
    let best = manifest.best.clone().ok_or_else(|| {
        TrainError::run(
            run,
            "has no best model yet (no validation was committed); resume the run with --resume",
        )
    })?;
    let config = read_verified_config(&dir, &manifest)?;
    let encoders = read_verified_encoders(&dir, &manifest)?;
    let mut settings = config.train.clone();
    settings.stream |= stream;
    let data = RunData::open(data, &settings, Some(&encoders))?;
    let mut trained = build_model_for(&config, data.spec(), &data.input_schema())?;
    // A run still training may commit a new best (and remove this one) meanwhile: then the
    // newer manifest's best is read instead.
    let mut best = best;
    let tensors = loop {
        match load_verified_weights(&dir, &best) {
            Ok(t) => break t,
            Err(e) => match dir.manifest().ok().and_then(|m| m.best) {
                Some(newer) if newer != best && same_run(&manifest, &dir) => best = newer,
                _ => return Err(e),
            },
        }
    };
    set_weights(&mut trained.model, &tensors, &dir.dir.join(&best.file))?;
    Ok(OpenRun {
        config,
        data,
        trained,
    })
}

/// Whether the folder's current manifest still names the configuration and encoders of `m`
/// (the same run, further on).
fn same_run(m: &crate::manifest::Manifest, dir: &RunDir) -> bool {
    dir.manifest()
        .is_ok_and(|now| now.config == m.config && now.encoders == m.encoders)
}

impl OpenRun {
    /// Metrics on one split.
    pub fn evaluate(&self, split: Split) -> Result<SplitMetrics> {
        let t = &self.config.train;
        self.data.evaluate(
            &self.trained.model,
            split,
            &self.trained.tasks,
            t.eval_batch_size,
            t.workers,
        )
    }

    /// Whether [`OpenRun::write_scores`] writes a folder of part files: for a streamed data set
    /// of several files.
    pub fn scores_in_parts(&self) -> bool {
        matches!(&self.data, RunData::Streamed { source, .. } if source.files().len() > 1)
    }

    /// Writes `row_id`, `split` and one probability column per task for the rows of `split`
    /// (every row when `None`), atomically, and returns the number of rows. `path` is a Parquet
    /// file, or, when the data is streamed from several files ([`OpenRun::scores_in_parts`]),
    /// a folder that receives one scores file per data file, under the data file's name. An
    /// existing file is refused unless `overwrite`; nothing is left behind on an error.
    pub fn write_scores(
        &self,
        path: &Path,
        split: Option<Split>,
        overwrite: bool,
    ) -> Result<usize> {
        let t = &self.config.train;
        let names = &self.trained.task_names;
        let model = &self.trained.model;
        if !self.scores_in_parts() {
            check_scores_path(path, overwrite)?;
            let scored = self
                .data
                .score(model, split, t.eval_batch_size, t.workers)?;
            write_scores_file(path, names, &scored)?;
            return Ok(scored.row_ids.len());
        }
        let RunData::Streamed { source, .. } = &self.data else {
            unreachable!("scores in parts come from streamed data")
        };
        check_scores_folder(path, overwrite)?;
        let files = source.files();
        let target = |f: usize| path.join(files[f].file_name().expect("a data file has a name"));
        let mut rows = 0;
        let mut current: Option<(usize, Scored)> = None;
        self.data
            .score_chunks(model, split, t.eval_batch_size, t.workers, |f, part, _| {
                match &mut current {
                    Some((g, all)) if *g == f => all.append(part),
                    _ => {
                        if let Some((g, all)) = current.take() {
                            rows += all.row_ids.len();
                            write_scores_file(&target(g), names, &all)?;
                        }
                        current = Some((f, part));
                    }
                }
                Ok(())
            })?;
        if let Some((g, all)) = current {
            rows += all.row_ids.len();
            write_scores_file(&target(g), names, &all)?;
        }
        Ok(rows)
    }
}

/// Writes the scores of `scored` to the Parquet file `path` atomically: `row_id`, `split` and
/// one probability column per task (named `names`). A non-finite score is refused.
fn write_scores_file(path: &Path, names: &[String], scored: &Scored) -> Result<()> {
    for (task, p) in scored.pred.student.iter().enumerate() {
        if let Some(i) = p.iter().position(|v| !v.is_finite()) {
            return Err(TrainError::Diverged(format!(
                "the model scores row_id {} as {} for task {task}: its parameters are not \
                 finite; train the run again with a lower train.lr or train.grad_clip",
                scored.row_ids[i], p[i]
            )));
        }
    }
    let mut fields = vec![
        Field::new("row_id", DataType::UInt64, false),
        Field::new("split", DataType::Utf8, false),
    ];
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(scored.row_ids.clone())),
        Arc::new(StringArray::from_iter_values(
            scored.splits.iter().map(|s| s.as_str()),
        )),
    ];
    for (name, p) in names.iter().zip(&scored.pred.student) {
        fields.push(Field::new(name, DataType::Float32, false));
        cols.push(Arc::new(Float32Array::from(p.clone())));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .map_err(|e| TrainError::run(path, e.to_string()))?;
    remove_stale_temporaries(path);
    let tmp = crossdistil_data::temp_path(path);
    let write = || -> std::result::Result<(), String> {
        let file = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
        let mut w = ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| e.to_string())?;
        w.write(&batch).map_err(|e| e.to_string())?;
        let file = w.into_inner().map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(TrainError::run(path, format!("cannot write scores: {e}")));
    }
    crate::manifest::rename(&tmp, path)
}

/// Refuses a scores folder that is a file, or a folder holding Parquet files unless
/// `overwrite`; creates it when missing.
fn check_scores_folder(path: &Path, overwrite: bool) -> Result<()> {
    if path.is_file() {
        return Err(TrainError::run(
            path,
            "is a file; the data has several part files, so --out names a folder that receives \
             one scores file per part",
        ));
    }
    let holds_parquet = std::fs::read_dir(path).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "parquet"))
    });
    if holds_parquet && !overwrite {
        return Err(TrainError::run(
            path,
            "already holds scores; pass --overwrite to replace them",
        ));
    }
    std::fs::create_dir_all(path).map_err(|e| TrainError::run(path, format!("cannot create: {e}")))
}

/// Removes the temporaries `<name>.<pid>.part` beside `path` that a killed process left: those
/// whose process is gone. A live process's temporary (another `predict` writing the same file)
/// is left alone.
pub fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!("{}.", name.to_string_lossy());
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let pid = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".part"))
            .and_then(|pid| pid.parse::<i32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id() as i32
            && !process_alive(pid)
        {
            tracing::warn!("removing {file}, left by process {pid}, which has ended");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` exists (signal 0 checks without sending anything).
fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only reports whether `pid` exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Refuses a scores path that is a directory, or an existing file unless `overwrite`.
pub fn check_scores_path(path: &Path, overwrite: bool) -> Result<()> {
    if path.is_dir() {
        return Err(TrainError::run(
            path,
            "is a directory; --out names the Parquet file to write, e.g. DIR/scores.parquet",
        ));
    }
    if path.exists() && !overwrite {
        return Err(TrainError::run(
            path,
            "already exists; pass --overwrite to replace it",
        ));
    }
    Ok(())
}
