//! Opening a finished run on a data set: evaluation and the scores file.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use crossdistil_data::{Dataset, Split};
use parquet::arrow::ArrowWriter;

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::evaluate::{SplitMetrics, evaluate_model};
use crate::fit::{BuiltModel, build_model, set_weights};
use crate::predict::predict;
use crate::run::{RunDir, load_verified, read_verified_config, read_verified_encoders};

/// A trained run's best model, with the data encoded by the run's own encoders.
pub struct OpenRun {
    /// The run's configuration, checked against its manifest.
    pub config: RunConfig,
    /// The data set, encoded with the run's own encoders.
    pub ds: Dataset,
    /// The model with the best checkpoint's weights, and its tasks.
    pub trained: BuiltModel,
}

/// Opens `run` (its config, encoders and best checkpoint, as its manifest names them, each
/// checked against the manifest's checksum) on the prepared data in `data`.
pub fn open_run(run: &Path, data: &Path) -> Result<OpenRun> {
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
    let ds = Dataset::load_with(data, &encoders)?;
    let mut trained = build_model(&config, &ds)?;
    // A run still training may commit a new best (and remove this one) meanwhile: then the
    // newer manifest's best is read instead.
    let mut best = best;
    let tensors = loop {
        match load_verified(&dir, &best) {
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
        ds,
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
        let rows = self.ds.split_rows(split);
        evaluate_model(
            &self.trained.model,
            &self.ds,
            &rows,
            &self.trained.tasks,
            self.config.train.eval_batch_size,
            self.config.train.workers,
        )
    }

    /// Writes `row_id`, `split` and one probability column per task for `rows` to a Parquet
    /// file, atomically. A directory is refused, and an existing file unless `overwrite`;
    /// nothing is left behind on an error.
    pub fn write_scores(&self, path: &Path, rows: &[u32], overwrite: bool) -> Result<()> {
        check_scores_path(path, overwrite)?;
        let probs = predict(
            &self.trained.model,
            &self.ds,
            rows,
            self.config.train.eval_batch_size,
        )?;
        let mut fields = vec![
            Field::new("row_id", DataType::UInt64, false),
            Field::new("split", DataType::Utf8, false),
        ];
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|&r| self.ds.row_ids[r as usize]),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|&r| self.ds.splits[r as usize].as_str()),
            )),
        ];
        for (name, p) in self.trained.task_names.iter().zip(probs) {
            fields.push(Field::new(name, DataType::Float32, false));
            cols.push(Arc::new(Float32Array::from(p)));
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
            .map_err(|e| TrainError::run(path, e.to_string()))?;
        remove_stale_temporaries(path);
        let tmp = crossdistil_data::temp_path(path);
        let write = || -> std::result::Result<(), String> {
            let file = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
            let mut w =
                ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| e.to_string())?;
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
