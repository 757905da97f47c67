//! The one-step parity check against the PyTorch peer.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use crossdistil_data::{Batch, Dataset, GatherBatch, Split};
use crossdistil_train::BuiltModel;
use crossdistil_train::Trainer;
use crossdistil_train::save_tensors;
use serde::{Deserialize, Serialize};

use crate::child::ChildArgs;
use crate::export::export_weights;
use crate::setup::build;

/// The largest difference of the losses that counts as the same computation.
pub const PARITY_TOLERANCE: f64 = 1e-5;

/// The losses of one batch before and after one training step on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Parity {
    /// The loss before the step.
    pub loss_before: f64,
    /// The loss of the same batch after the step.
    pub loss_after: f64,
}

impl Parity {
    /// Whether both losses agree with `other`'s to under [`PARITY_TOLERANCE`].
    pub fn matches(&self, other: &Parity) -> bool {
        (self.loss_before - other.loss_before).abs() < PARITY_TOLERANCE
            && (self.loss_after - other.loss_after).abs() < PARITY_TOLERANCE
    }
}

/// The crossdistil side of the parity check: writes the initial weights to
/// `dir/init.safetensors` and the first `a.batch` train rows to `dir/batch.safetensors`
/// (`sparse` `[b, fields]` u32, `dense` `[b, dense]` f32, `labels` `[b, tasks]` f32), takes one
/// training step on that batch and returns its loss before and after the step.
pub fn parity_child(a: &ChildArgs, dir: &Path) -> anyhow::Result<Parity> {
    let ds = Dataset::load(&a.data)?;
    let (cfg, BuiltModel { model, tasks, .. }) = build(a, &ds)?;
    std::fs::create_dir_all(dir)?;
    export_weights(&model, &dir.join("init.safetensors"))?;
    let rows = ds.split_rows(Split::Train);
    let batch = Batch::gather(&ds, &rows[..a.batch.min(rows.len())]);
    let b = batch.size();
    let mut t = HashMap::new();
    t.insert(
        "sparse".to_string(),
        Tensor::from_slice(&batch.sparse, (b, ds.sparse.len()), &Device::Cpu)?,
    );
    t.insert(
        "dense".to_string(),
        Tensor::from_slice(&batch.dense, (b, ds.dense.len()), &Device::Cpu)?,
    );
    let labels = crossdistil_train::label_rows(&batch, ds.tasks(), &tasks);
    t.insert(
        "labels".to_string(),
        Tensor::from_slice(&labels, (b, tasks.len()), &Device::Cpu)?,
    );
    save_tensors(&dir.join("batch.safetensors"), &t)?;
    let mut trainer = Trainer::new(model, &cfg, tasks, ds.tasks());
    let before = trainer.step(&batch)?;
    let after = trainer.gradients(&batch)?;
    Ok(Parity {
        loss_before: before.total,
        loss_after: after.parts.total,
    })
}
