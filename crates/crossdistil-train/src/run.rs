//! The run folder: everything a training run writes, with one commit point.
//!
//! ```text
//! RUN/manifest.json               the commit point: generation, training state, and the name,
//!                                 size and CRC-32 of every file below that belongs to it
//! RUN/config.toml                 the resolved configuration (tasks filled in)
//! RUN/encoders.json               vocabularies and normalisation fitted on the train split
//! RUN/last-<gen>.safetensors      model, embedding tables, optimiser state after the last epoch
//! RUN/best-<gen>.safetensors      the same at the best validation
//! RUN/metrics.csv                 one row per validation (the manifest counts the committed rows)
//! RUN/report.json                 final metrics on valid and test
//! RUN/.lock                       held by the training process that owns the folder
//! ```
//!
//! `<gen>` is the six-digit generation (commit number) that wrote the file; the manifest names
//! the current `best` and `last`, and there is one of each (`ls RUN/best-*`).
//!
//! # Commit protocol
//!
//! A checkpoint (the end of an epoch, the end of training, the report) is committed in one step:
//!
//! 1. every new file is written under a name no committed manifest references: a checkpoint as
//!    `best-<gen>.safetensors` / `last-<gen>.safetensors` where `<gen>` is the generation about
//!    to be committed, each written inside a staging folder `NAME.<pid>.part/`, fsynced, then
//!    renamed into the run folder; `metrics.csv` is rewritten through `metrics.csv.<pid>.part`
//!    (fsynced, renamed) with its new rows after the committed ones;
//! 2. the folder is fsynced;
//! 3. `manifest.json` is written to `manifest.json.<pid>.part`, fsynced, renamed over the old one,
//!    and the folder fsynced: this rename is the commit;
//! 4. the files only the previous manifest referenced are removed.
//!
//! Unchanged files are not rewritten: a validation that does not improve leaves `best` as it is,
//! and the new manifest references the same file. A kill at any instant therefore leaves the
//! previous or the next committed state, plus files that state does not reference. When a
//! training process starts (a new run or `--resume`) it holds the folder's lock and removes
//! every `*.part` (file or staging folder), every checkpoint and `report.json` the manifest does
//! not reference, and the `metrics.csv` rows after the committed ones, logging each (warn
//! level). A new run writes `config.toml` and `encoders.json` and commits generation 0 (no
//! weights) before its first step, so even a kill during the first epoch resumes: from
//! generation 0, which is a fresh start with the run's configuration (the initial weights are
//! seeded). A kill before generation 0, once `config.toml` is in place, leaves an *uncommitted
//! start* ([`RunDir::uncommitted_start`]: the configuration and encoders and nothing else):
//! `--resume` (or a new start) starts it again. Before `config.toml` is in place there is
//! nothing to resume, and `--resume` says to start the run.
//!
//! One training process owns the folder: it holds the lock on `RUN/.lock` (see [`crate::lock`])
//! for its whole life, and a second one is refused at once, naming the holder. A new run refuses
//! a folder that holds a run (a manifest, or a `config.toml` with other files) unless
//! `--resume` or `--overwrite`; `--overwrite` removes the old manifest first (and fsyncs the
//! folder), then the old `config.toml` and `encoders.json` (so that an uncommitted start is
//! never the old run's), then its other files (checkpoints, `metrics.csv`, `report.json`,
//! `eval-*.json`), so a kill part-way leaves a folder that holds no committed run: `--resume`
//! refuses it and says to start again with `--overwrite`.
//!
//! Every load (`--resume`, `eval`, `predict`) checks the size and CRC-32 of the files it reads
//! against the manifest, and the manifest's own checksum line, and refuses a mismatch naming the
//! file and both checksums.
//!
//! # Crash-testing hook
//!
//! `CROSSDISTIL_ABORT_AT=<point>:<n>` makes the process abort (as a `kill -9` would) the n-th time
//! it reaches `<point>`; the points are [`crate::manifest::ABORT_POINTS`]: `<file>-written` after a
//! file's temporary is fsynced and before its rename, `<file>-renamed` after the rename (for
//! `config`, `encoders`, `metrics`, `best`, `last`, `report`), `manifest-written` and
//! `manifest-renamed` around the commit's rename, `committed` after the folder's fsync,
//! `old-removed` after the previous generation's files are gone, and
//! `overwrite-manifest-removed` after `--overwrite` removed the old manifest. The chaos test of
//! the CLI loops over all of them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use crossdistil_data::Encoders;
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::lock::LOCK_FILE;
use crate::lock::RunLock;
use crate::manifest::{
    FileEntry, MANIFEST, Manifest, MetricsEntry, abort_point, crc32_hex, file_checksum, sync_dir,
    temp_path, verify, write_file,
};

/// Where training stands; saved in every manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimiser steps taken.
    pub step: u64,
    /// The next validation is compared with this value: it reads back to the same bits
    /// (serde_json's `float_roundtrip`, set in the workspace manifest).
    pub best_mean_auc: Option<f64>,
    /// Epochs completed when the best validation was taken.
    pub best_epoch: Option<usize>,
    /// Optimiser steps taken when the best validation was taken.
    pub best_step: Option<u64>,
    /// Validations since the best one.
    pub since_best: usize,
    /// Set when early stopping ended training.
    pub stopped_early: bool,
    /// Wall-clock training time in seconds so far, summed over resumed calls.
    pub train_seconds: f64,
    /// Training rows processed so far.
    pub rows_seen: u64,
    /// The loss of the run's first step, the divergence guard's reference
    /// (`crate::divergence`).
    #[serde(default)]
    pub early_loss: Option<f64>,
    /// Set when the commit was taken inside an epoch (`train.checkpoint_every`): where the
    /// epoch stands, so that a resumed run continues it exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_epoch: Option<WithinEpoch>,
}

/// An epoch in progress, as a commit inside it records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WithinEpoch {
    /// The batches trained and the workers' random streams.
    pub position: crate::trainer::EpochPosition,
    /// The sums of the loss parts over those batches (for the epoch's means in metrics.csv).
    pub losses: EpochLosses,
    /// The divergence guard's window of recent losses and their running sum.
    pub recent_losses: Vec<f64>,
    /// The running sum of `recent_losses`, as the guard keeps it.
    pub recent_sum: f64,
}

/// Sums of the loss parts over the steps of an epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochLosses {
    /// Steps summed.
    pub n: usize,
    /// The weighted objective.
    pub total: f64,
    /// Its binary cross-entropy part.
    pub bce: f64,
    /// Its distillation part.
    pub kd: f64,
    /// Its ranking part.
    pub rank: f64,
    /// Its calibration part.
    pub cal: f64,
    /// The size of the distillation gradient per task.
    pub kd_gap: Vec<f64>,
}

/// The paths of a run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The run folder.
    pub dir: PathBuf,
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crossdistil_data::write_atomic(path, bytes).map_err(TrainError::from)
}

const CONFIG: &str = "config.toml";
const ENCODERS: &str = "encoders.json";
const METRICS: &str = "metrics.csv";
const REPORT: &str = "report.json";

impl RunDir {
    /// The run folder `dir` (nothing is read or created).
    pub fn new(dir: &Path) -> Self {
        RunDir {
            dir: dir.to_path_buf(),
        }
    }

    /// `RUN/manifest.json`, the committed manifest.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST)
    }
    /// `RUN/config.toml`, the run's configuration.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG)
    }
    /// `RUN/encoders.json`, the run's data encoders.
    pub fn encoders_path(&self) -> PathBuf {
        self.dir.join(ENCODERS)
    }
    /// `RUN/metrics.csv`, one row per validation.
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join(METRICS)
    }
    /// `RUN/report.json`, the final report.
    pub fn report_path(&self) -> PathBuf {
        self.dir.join(REPORT)
    }

    /// Reads and checks `RUN/config.toml`.
    pub fn read_config(&self) -> Result<RunConfig> {
        RunConfig::from_file(&self.config_path())
    }

    /// Reads `RUN/encoders.json`.
    pub fn read_encoders(&self) -> Result<Encoders> {
        let p = self.encoders_path();
        let bytes =
            std::fs::read(&p).map_err(|e| TrainError::run(&p, format!("cannot read: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| TrainError::run(&p, format!("not a valid encoders file: {e}")))
    }

    /// The committed manifest, or an error saying that the folder holds no run.
    pub fn manifest(&self) -> Result<Manifest> {
        match Manifest::read(&self.dir)? {
            Some(m) => Ok(m),
            None if self.config_path().exists() => Err(TrainError::run(
                &self.dir,
                format!(
                    "holds no committed run ({MANIFEST} is missing: the folder comes from an \
                     older version, or an --overwrite was stopped part-way); start it again with \
                     --overwrite"
                ),
            )),
            None => Err(TrainError::run(
                &self.dir,
                format!(
                    "holds no run ({MANIFEST} is missing); start one with `crossdistil train \
                     --config ... --out {}`",
                    self.dir.display()
                ),
            )),
        }
    }

    /// Whether the folder holds a run (a manifest, or a configuration from an older layout or
    /// an interrupted start).
    pub fn holds_run(&self) -> bool {
        self.manifest_path().exists() || self.config_path().exists()
    }

    /// Whether the folder holds a run that was stopped before its first commit: no manifest,
    /// and nothing but the configuration and encoders that a new run writes first (and the
    /// lock and temporaries). Such a run has not trained a step; `--resume` starts it again.
    ///
    /// `--overwrite` removes the old run's configuration and encoders right after its
    /// manifest, so what this finds is always the new run's.
    pub fn uncommitted_start(&self) -> bool {
        if self.manifest_path().exists() || !self.config_path().exists() {
            return false;
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return false;
        };
        entries.filter_map(|e| e.ok()).all(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name == CONFIG || name == ENCODERS || name == LOCK_FILE || name.ends_with(".part")
        })
    }
}

/// Checks the configuration and encoders of `m` and reads the configuration.
pub fn read_verified_config(run: &RunDir, m: &Manifest) -> Result<RunConfig> {
    verify(&run.dir, &m.config)?;
    run.read_config()
}

/// Checks the encoders of `m` and reads them.
pub fn read_verified_encoders(run: &RunDir, m: &Manifest) -> Result<Encoders> {
    verify(&run.dir, &m.encoders)?;
    run.read_encoders()
}

/// The weights of a checkpoint that a manifest references ([`load_weights_only`]), after
/// checking its size and checksum.
pub fn load_verified_weights(run: &RunDir, e: &FileEntry) -> Result<HashMap<String, Tensor>> {
    let path = verify(&run.dir, e)?;
    load_weights_only(&path)
}

/// Checks the checkpoint `e` against the manifest and reads it.
pub fn load_verified(run: &RunDir, e: &FileEntry) -> Result<HashMap<String, Tensor>> {
    let path = verify(&run.dir, e)?;
    load_tensors(&path)
}

/// A run folder owned by this process: its lock, its committed manifest, and what the next
/// commit will reference.
pub struct RunFolder {
    pub run: RunDir,
    manifest: Manifest,
    /// A best checkpoint written since the last commit.
    pending_best: Option<FileEntry>,
    /// metrics.csv as it is on disk: the committed rows and those since.
    metrics: String,
    metrics_rows: usize,
    _lock: RunLock,
}

impl RunFolder {
    /// Takes the lock of `out` (creating the folder) and checks that a run may start there:
    /// a folder holding a run needs `overwrite`.
    pub fn lock_new(out: &Path, overwrite: bool) -> Result<RunLock> {
        let lock = RunLock::acquire(out)?;
        let run = RunDir::new(out);
        if !overwrite && run.holds_run() && !run.uncommitted_start() {
            return Err(TrainError::run(
                out,
                "already holds a run; pass --resume to continue it, --overwrite to replace it, \
                 or choose another --out",
            ));
        }
        Ok(lock)
    }

    /// Takes the lock of `out` and opens its committed run for `--resume`: checks the
    /// configuration and encoders, removes what the manifest does not reference, and cuts
    /// `metrics.csv` back to its committed rows.
    pub fn resume(out: &Path) -> Result<RunFolder> {
        let run = RunDir::new(out);
        if !out.is_dir() {
            return Err(TrainError::run(
                out,
                "--resume: there is no such run folder; start the run without --resume",
            ));
        }
        let lock = RunLock::acquire(out)?;
        let manifest = run.manifest()?;
        verify(&run.dir, &manifest.config)?;
        verify(&run.dir, &manifest.encoders)?;
        remove_unreferenced(&run.dir, Some(&manifest));
        let metrics = committed_metrics(&run, &manifest.metrics)?;
        Ok(RunFolder {
            metrics_rows: manifest.metrics.rows,
            metrics,
            manifest,
            pending_best: None,
            run,
            _lock: lock,
        })
    }

    /// Starts a new run in the folder `lock` holds: removes an old run (its manifest first),
    /// writes the configuration and encoders, and commits generation 0.
    pub fn create(
        lock: RunLock,
        out: &Path,
        cfg: &RunConfig,
        encoders: &Encoders,
    ) -> Result<RunFolder> {
        let run = RunDir::new(out);
        let dir = &run.dir;
        if run.manifest_path().exists() {
            std::fs::remove_file(run.manifest_path())
                .map_err(|e| TrainError::run(run.manifest_path(), format!("cannot remove: {e}")))?;
            sync_dir(dir)?;
            tracing::warn!(
                "{}: removed the manifest of the run it replaces",
                dir.display()
            );
            abort_point("overwrite-manifest-removed");
            // The old configuration next, so that a folder holding a configuration and no
            // manifest is never the old run's (`uncommitted_start`).
            for name in [CONFIG, ENCODERS] {
                remove_logged(&dir.join(name), "of the run it replaces");
            }
            sync_dir(dir)?;
        }
        remove_unreferenced(dir, None);
        let evals = std::fs::read_dir(dir)
            .map_err(|e| TrainError::run(dir, format!("cannot list: {e}")))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("eval-") && n.ends_with(".json"));
        for name in evals.collect::<Vec<_>>() {
            remove_logged(&dir.join(name), "of the run it replaces");
        }
        for name in [METRICS, "state.json", ENCODERS, CONFIG] {
            remove_logged(&dir.join(name), "of the run it replaces");
        }
        let text = toml::to_string_pretty(cfg)
            .map_err(|e| TrainError::run(run.config_path(), e.to_string()))?;
        let config = write_file(dir, CONFIG, text.as_bytes(), "config")?;
        let json = serde_json::to_vec(encoders)
            .map_err(|e| TrainError::run(run.encoders_path(), e.to_string()))?;
        let encoders = write_file(dir, ENCODERS, &json, "encoders")?;
        sync_dir(dir)?;
        let manifest = Manifest {
            format: crate::manifest::FORMAT,
            generation: 0,
            config,
            encoders,
            last: None,
            last_shards: Vec::new(),
            best: None,
            metrics: metrics_entry(""),
            report: None,
            state: TrainState::default(),
        };
        manifest.commit(dir)?;
        Ok(RunFolder {
            run,
            manifest,
            pending_best: None,
            metrics: String::new(),
            metrics_rows: 0,
            _lock: lock,
        })
    }

    /// The committed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The weights of the best checkpoint the next commit will reference, checked
    /// ([`load_weights_only`]).
    pub fn load_best_weights(&self) -> Result<Option<HashMap<String, Tensor>>> {
        self.pending_best
            .as_ref()
            .or(self.manifest.best.as_ref())
            .map(|e| load_verified_weights(&self.run, e))
            .transpose()
    }

    fn next_name(&self, kind: &str) -> String {
        format!("{kind}-{:06}.safetensors", self.manifest.generation + 1)
    }

    /// Writes a new best checkpoint; the next commit references it.
    pub fn save_best(&mut self, checkpoint: &Checkpoint<'_>) -> Result<()> {
        let name = self.next_name("best");
        self.pending_best = Some(write_tensors(&self.run.dir, &name, checkpoint, "best")?);
        Ok(())
    }

    /// Appends one row to metrics.csv (the header with the first row); the next commit counts
    /// it.
    pub fn append_metrics(&mut self, header: &[String], row: &[String]) -> Result<()> {
        if self.metrics.is_empty() {
            self.metrics.push_str(&header.join(","));
            self.metrics.push('\n');
        }
        self.metrics.push_str(&row.join(","));
        self.metrics.push('\n');
        write_file(&self.run.dir, METRICS, self.metrics.as_bytes(), "metrics")?;
        self.metrics_rows += 1;
        Ok(())
    }

    /// Commits `state` with a new last checkpoint (when given), the best one written since the
    /// last commit (if any), and the metrics rows so far.
    pub fn commit(&mut self, state: &TrainState, last: Option<&Checkpoint<'_>>) -> Result<()> {
        let last = match last {
            Some(t) => Some(write_tensors(
                &self.run.dir,
                &self.next_name("last"),
                t,
                "last",
            )?),
            None => self.manifest.last.clone(),
        };
        let mut metrics = metrics_entry(&self.metrics);
        metrics.rows = self.metrics_rows;
        let next = Manifest {
            generation: self.manifest.generation + 1,
            last_shards: if last.as_ref() == self.manifest.last.as_ref() {
                self.manifest.last_shards.clone()
            } else {
                Vec::new()
            },
            last,
            best: self.pending_best.take().or(self.manifest.best.clone()),
            metrics,
            report: None,
            state: state.clone(),
            ..self.manifest.clone()
        };
        self.switch(next)
    }

    /// [`RunFolder::commit`] of a run whose tables are sharded over ranks: `dense` (the dense
    /// parameters and their optimiser state) becomes `last`, and `shards` (each rank's, already
    /// written and synced, in rank order) the shards of its tables. Nothing becomes current
    /// before every shard is on disk: the manifest is written last.
    pub fn commit_sharded(
        &mut self,
        state: &TrainState,
        dense: &Checkpoint<'_>,
        shards: Vec<FileEntry>,
    ) -> Result<()> {
        let last = write_tensors(&self.run.dir, &self.next_name("last"), dense, "last")?;
        let mut metrics = metrics_entry(&self.metrics);
        metrics.rows = self.metrics_rows;
        let next = Manifest {
            generation: self.manifest.generation + 1,
            last: Some(last),
            last_shards: shards,
            best: self.pending_best.take().or(self.manifest.best.clone()),
            metrics,
            report: None,
            state: state.clone(),
            ..self.manifest.clone()
        };
        self.switch(next)
    }

    /// The generation the next commit will have.
    pub fn next_generation(&self) -> u64 {
        self.manifest.generation + 1
    }

    /// Writes report.json and commits it: the last commit of a finished run.
    pub fn finish(&mut self, report: &crate::report::Report) -> Result<()> {
        let path = self.run.report_path();
        let json =
            serde_json::to_vec_pretty(report).map_err(|e| TrainError::run(&path, e.to_string()))?;
        let entry = write_file(&self.run.dir, REPORT, &json, "report")?;
        let next = Manifest {
            generation: self.manifest.generation + 1,
            best: self.pending_best.take().or(self.manifest.best.clone()),
            report: Some(entry),
            ..self.manifest.clone()
        };
        self.switch(next)
    }

    fn switch(&mut self, next: Manifest) -> Result<()> {
        sync_dir(&self.run.dir)?;
        next.commit(&self.run.dir)?;
        let keep: Vec<&str> = next.files().iter().map(|e| e.file.as_str()).collect();
        for old in self.manifest.files() {
            if !keep.contains(&old.file.as_str()) {
                let _ = std::fs::remove_file(self.run.dir.join(&old.file));
            }
        }
        abort_point("old-removed");
        self.manifest = next;
        Ok(())
    }
}

fn metrics_entry(text: &str) -> MetricsEntry {
    MetricsEntry {
        file: METRICS.into(),
        rows: text.lines().count().saturating_sub(1),
        size: text.len() as u64,
        crc32: crc32_hex(text.as_bytes()),
    }
}

/// metrics.csv cut back to the rows `m` commits (rewritten when it holds more).
fn committed_metrics(run: &RunDir, m: &MetricsEntry) -> Result<String> {
    let path = run.metrics_path();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && m.size == 0 => Vec::new(),
        Err(e) => return Err(TrainError::run(&path, format!("cannot read: {e}"))),
    };
    let size = m.size as usize;
    if bytes.len() < size {
        return Err(TrainError::run(
            &path,
            format!(
                "damaged: {} bytes where the manifest commits {size} ({} rows)",
                bytes.len(),
                m.rows
            ),
        ));
    }
    let found = crc32_hex(&bytes[..size]);
    if found != m.crc32 {
        return Err(TrainError::run(
            &path,
            format!(
                "damaged: checksum mismatch of the {} committed rows, expected crc32 {}, found \
                 {found}",
                m.rows, m.crc32
            ),
        ));
    }
    let text = String::from_utf8(bytes[..size].to_vec())
        .map_err(|_| TrainError::run(&path, "damaged: not UTF-8"))?;
    if bytes.len() > size {
        let extra = bytes[size..].iter().filter(|&&b| b == b'\n').count();
        tracing::warn!(
            "{}: dropped {extra} row(s) written after the last commit",
            path.display()
        );
        if size == 0 {
            remove_logged(&path, "holding no committed row");
        } else {
            write_file(&run.dir, METRICS, text.as_bytes(), "metrics")?;
        }
    }
    Ok(text)
}

/// Removes temporaries, and the checkpoints and report that `m` does not reference.
fn remove_unreferenced(dir: &Path, m: Option<&Manifest>) {
    let referenced: Vec<&str> = m
        .map(|m| m.files().iter().map(|e| e.file.as_str()).collect())
        .unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let ours = name.ends_with(".part")
            || name == REPORT
            || (name.ends_with(".safetensors")
                && (name.starts_with("best") || name.starts_with("last")));
        if ours && !referenced.contains(&name.as_str()) {
            remove_logged(&dir.join(&name), "that the manifest does not reference");
        }
    }
}

fn remove_logged(path: &Path, why: &str) {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    if removed.is_ok() {
        tracing::warn!("removed {} {why}", path.display());
    }
}

/// Writes a checkpoint to `dir/name` through a fsynced temporary and a rename; returns its
/// entry (size and checksum of the bytes on disk).
///
/// The temporary is written inside a staging folder `NAME.<pid>.part/`: the safetensors writer
/// itself first writes to a randomly named sibling temporary (`.tmpXXXXXX`), which a kill would
/// otherwise leave in the run folder under a name nothing recognises. The startup cleanup
/// removes a staging folder with whatever it holds.
pub fn write_tensors(
    dir: &Path,
    name: &str,
    checkpoint: &Checkpoint<'_>,
    point: &str,
) -> Result<FileEntry> {
    let path = dir.join(name);
    let stage = temp_path(&path);
    let tmp = stage.join(name);
    let written = (|| -> std::result::Result<(u64, String), String> {
        if stage.exists() {
            std::fs::remove_dir_all(&stage).map_err(|e| e.to_string())?;
        }
        std::fs::create_dir(&stage).map_err(|e| e.to_string())?;
        checkpoint.write(&tmp).map_err(|e| e.to_string())?;
        readable_like_other_files(&tmp).map_err(|e| e.to_string())?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| e.to_string())?;
        file_checksum(&tmp).map_err(|e| e.to_string())
    })();
    let (size, crc32) = written.map_err(|e| {
        let _ = std::fs::remove_dir_all(&stage);
        TrainError::run(&path, format!("cannot write checkpoint: {e}"))
    })?;
    abort_point(&format!("{point}-written"));
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_dir_all(&stage);
        TrainError::run(&path, format!("cannot rename into place: {e}"))
    })?;
    let _ = std::fs::remove_dir(&stage);
    abort_point(&format!("{point}-renamed"));
    Ok(FileEntry {
        file: name.to_string(),
        size,
        crc32,
    })
}

/// The file of rank `rank`'s shard of the tables at commit `generation`, of `ranks` ranks.
pub fn shard_name(generation: u64, rank: usize, ranks: usize) -> String {
    format!("last-{generation:06}.shard-{rank}-of-{ranks}.safetensors")
}

/// Gives a file the safetensors writer created (mode 0600, as its temporaries are) the mode of
/// the run's other files, so that checkpoints are as readable as `config.toml` beside them.
fn readable_like_other_files(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Saves named tensors as safetensors, atomically.
pub fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let tmp = temp_path(path);
    candle_core::safetensors::save(tensors, &tmp).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        TrainError::run(path, format!("cannot write checkpoint: {e}"))
    })?;
    crossdistil_data::rename_into_place(&tmp, path)?;
    Ok(())
}

/// Loads a safetensors checkpoint.
/// The tensors of the safetensors file at `path` whose names pass `keep`, each read on its
/// own from the file (never the whole file in memory). F32 only, as every tensor of a model.
pub fn load_tensors_where(
    path: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<HashMap<String, Tensor>> {
    use std::io::{Read, Seek, SeekFrom};
    let bad = |m: String| TrainError::run(path, format!("cannot read checkpoint: {m}"));
    let mut file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| bad(e.to_string()))?;
    let len = u64::from_le_bytes(len);
    let size = file.metadata().map_err(|e| bad(e.to_string()))?.len();
    if len > size.saturating_sub(8) {
        return Err(bad(format!(
            "its header claims {len} bytes of a {size}-byte file"
        )));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad(e.to_string()))?;
    let header: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("its header: {e}")))?;
    let mut out = HashMap::new();
    for (name, info) in &header {
        if name == "__metadata__" || !keep(name) {
            continue;
        }
        let field = |k: &str| info.get(k).ok_or_else(|| bad(format!("{name} has no {k}")));
        let dtype = field("dtype")?.as_str().unwrap_or("");
        if dtype != "F32" {
            return Err(bad(format!(
                "{name} is {dtype}, the model's tensors are F32"
            )));
        }
        let shape: Vec<usize> = serde_json::from_value(field("shape")?.clone())
            .map_err(|e| bad(format!("{name}'s shape: {e}")))?;
        let [begin, end]: [u64; 2] = serde_json::from_value(field("data_offsets")?.clone())
            .map_err(|e| bad(format!("{name}'s offsets: {e}")))?;
        let n: usize = shape.iter().product();
        if end < begin || end - begin != 4 * n as u64 || 8 + len + end > size {
            return Err(bad(format!(
                "{name}'s offsets do not fit its shape or the file"
            )));
        }
        file.seek(SeekFrom::Start(8 + len + begin))
            .map_err(|e| bad(e.to_string()))?;
        let mut values = vec![0f32; n];
        let mut bytes = [0u8; 4096];
        for chunk in values.chunks_mut(1024) {
            let b = &mut bytes[..4 * chunk.len()];
            file.read_exact(b).map_err(|e| bad(e.to_string()))?;
            for (v, x) in chunk.iter_mut().zip(b.chunks_exact(4)) {
                *v = f32::from_le_bytes([x[0], x[1], x[2], x[3]]);
            }
        }
        let t = Tensor::from_vec(values, shape, &Device::Cpu).map_err(|e| bad(e.to_string()))?;
        out.insert(name.clone(), t);
    }
    Ok(out)
}

/// The tensors of a checkpoint that a model scores with: its weights, without the dense
/// optimiser's state (`adam.`) nor the tables' row-wise state. Read one tensor at a time, so
/// memory holds the weights once, not the file.
pub fn load_weights_only(path: &Path) -> Result<HashMap<String, Tensor>> {
    load_tensors_where(path, |name| {
        !name.starts_with(crate::optimizer::OPTIMIZER_PREFIX)
            && !["adam_m", "adam_v", "adagrad_sum"]
                .iter()
                .any(|s| name.ends_with(&format!(".{s}")) && name.starts_with("input."))
    })
}

/// Reads every tensor of a safetensors checkpoint.
pub fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| TrainError::run(path, format!("cannot read checkpoint: {e}")))
}
