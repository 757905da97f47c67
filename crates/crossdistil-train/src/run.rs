//! The run folder: everything a training run writes, each file written atomically.
//!
//! ```text
//! RUN/config.toml             the resolved configuration (tasks filled in)
//! RUN/encoders.json           vocabularies and normalisation fitted on the train split
//! RUN/last.safetensors        model, embedding tables, optimiser state after the last epoch
//! RUN/best.safetensors        the same at the best validation
//! RUN/state.json              where training stands (epoch, step, best so far)
//! RUN/metrics.csv             one row per validation
//! RUN/report.json             final metrics on valid and test
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use crossdistil_data::Encoders;
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::{Result, TrainError};

/// Where training stands; saved beside every checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimiser steps taken.
    pub step: u64,
    pub best_mean_auc: Option<f64>,
    pub best_epoch: Option<usize>,
    pub best_step: Option<u64>,
    /// Validations since the best one.
    pub since_best: usize,
    /// Set when early stopping ended training.
    pub stopped_early: bool,
    pub train_seconds: f64,
    pub rows_seen: u64,
    /// The mean loss of the run's first steps, the divergence guard's reference
    /// (`crate::divergence`).
    #[serde(default)]
    pub early_loss: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct RunDir {
    pub dir: PathBuf,
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crossdistil_data::atomic::write_file(path, bytes).map_err(TrainError::from)
}

impl RunDir {
    pub fn new(dir: &Path) -> Self {
        RunDir {
            dir: dir.to_path_buf(),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    pub fn encoders_path(&self) -> PathBuf {
        self.dir.join("encoders.json")
    }
    pub fn last_path(&self) -> PathBuf {
        self.dir.join("last.safetensors")
    }
    pub fn best_path(&self) -> PathBuf {
        self.dir.join("best.safetensors")
    }
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join("metrics.csv")
    }
    pub fn report_path(&self) -> PathBuf {
        self.dir.join("report.json")
    }

    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| TrainError::run(&self.dir, format!("cannot create: {e}")))
    }

    pub fn write_config(&self, cfg: &RunConfig) -> Result<()> {
        let text = toml::to_string_pretty(cfg)
            .map_err(|e| TrainError::run(self.config_path(), e.to_string()))?;
        write_atomic(&self.config_path(), text.as_bytes())
    }

    pub fn read_config(&self) -> Result<RunConfig> {
        RunConfig::from_file(&self.config_path())
    }

    pub fn write_encoders(&self, e: &Encoders) -> Result<()> {
        let json = serde_json::to_vec(e)
            .map_err(|e| TrainError::run(self.encoders_path(), e.to_string()))?;
        write_atomic(&self.encoders_path(), &json)
    }

    pub fn read_encoders(&self) -> Result<Encoders> {
        let p = self.encoders_path();
        let bytes =
            std::fs::read(&p).map_err(|e| TrainError::run(&p, format!("cannot read: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| TrainError::run(&p, format!("not a valid encoders file: {e}")))
    }

    pub fn write_state(&self, s: &TrainState) -> Result<()> {
        let json = serde_json::to_vec_pretty(s)
            .map_err(|e| TrainError::run(self.state_path(), e.to_string()))?;
        write_atomic(&self.state_path(), &json)
    }

    pub fn read_state(&self) -> Result<TrainState> {
        let p = self.state_path();
        let bytes =
            std::fs::read(&p).map_err(|e| TrainError::run(&p, format!("cannot read: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| TrainError::run(&p, format!("not a valid state file: {e}")))
    }
}

/// Saves named tensors as safetensors, atomically.
pub fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let tmp = crossdistil_data::atomic::temp_path(path);
    candle_core::safetensors::save(tensors, &tmp).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        TrainError::run(path, format!("cannot write checkpoint: {e}"))
    })?;
    crossdistil_data::atomic::commit(&tmp, path)?;
    Ok(())
}

/// Loads a safetensors checkpoint.
pub fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| TrainError::run(path, format!("cannot read checkpoint: {e}")))
}

/// Appends one row to a CSV file (header written with the first row), rewriting it atomically.
pub fn append_csv(path: &Path, header: &[String], row: &[String]) -> Result<()> {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    if text.is_empty() {
        text.push_str(&header.join(","));
        text.push('\n');
    }
    text.push_str(&row.join(","));
    text.push('\n');
    write_atomic(path, text.as_bytes())
}
