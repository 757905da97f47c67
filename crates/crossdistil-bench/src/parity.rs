//! The one-step parity check against the PyTorch peer.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use crossdistil_data::{Batch, Dataset, GatherBatch, Split};
use crossdistil_model::MultiTaskModel;
use crossdistil_train::BuiltModel;
use crossdistil_train::Trainer;
use crossdistil_train::save_tensors;
use serde::{Deserialize, Serialize};

use crate::child::{ChildArgs, PeerVariant};
use crate::export::export_weights;
use crate::measurement::PeerSetup;
use crate::model::BenchModel;
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
    /// The PyTorch peer's setup; absent from crossdistil's side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerSetup>,
}

impl Parity {
    /// The larger of the differences of the two losses from `other`'s.
    pub fn difference(&self, other: &Parity) -> f64 {
        (self.loss_before - other.loss_before)
            .abs()
            .max((self.loss_after - other.loss_after).abs())
    }

    /// Whether both losses agree with `other`'s to under [`PARITY_TOLERANCE`].
    pub fn matches(&self, other: &Parity) -> bool {
        self.difference(other) < PARITY_TOLERANCE
    }
}

/// One parity check: a model, with or without CrossDistil, against one variant of the peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParityCheck {
    /// The model.
    pub model: BenchModel,
    /// With CrossDistil.
    pub crossdistil: bool,
    /// The peer's variant.
    pub variant: PeerVariant,
    /// crossdistil's losses.
    pub ours: Parity,
    /// The peer's losses.
    pub theirs: Parity,
}

impl ParityCheck {
    /// Whether the two sides' losses agree to under [`PARITY_TOLERANCE`].
    pub fn matches(&self) -> bool {
        self.ours.matches(&self.theirs)
    }
}

/// The crossdistil side of the parity check: writes the initial weights to
/// `dir/init.safetensors` and the first `a.batch` train rows to `dir/batch.safetensors`
/// (`sparse` `[b, fields]` u32, `dense` `[b, dense]` f32, `labels` `[b, tasks]` f32), takes one
/// training step on that batch and returns its loss before and after the step.
///
/// With teacher heads, their output biases are set back to their initial values before the
/// loss after the step is taken (the peer does the same): only the ranking loss reaches them,
/// and it sees differences of scores alone, so their gradient is 0 in exact arithmetic and float
/// noise (about 1e-9) on either side, which Adam's first step, `lr g / (|g| + eps)`, turns into
/// a step of up to `lr` in a direction that differs between any two implementations; through
/// the calibration loss and the distillation target that moved the loss after the step by 1e-5
/// to 4e-5.
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
    let biases = teacher_biases(&model)?;
    let mut trainer = Trainer::new(model, &cfg, tasks, ds.tasks());
    let before = trainer.step(&batch)?;
    for (name, initial) in &biases {
        if let Some(var) = trainer.model().params().get(name) {
            var.set(initial)?;
        }
    }
    let after = trainer.gradients(&batch)?;
    Ok(Parity {
        loss_before: before.total,
        loss_after: after.parts.total,
        peer: None,
    })
}

/// Copies of the teacher heads' output biases (`teacher<t>.out.bias`), by name.
fn teacher_biases(model: &MultiTaskModel) -> anyhow::Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    for (name, var) in model.params().vars() {
        if name.starts_with("teacher") && name.ends_with(".out.bias") {
            out.push((name, var.as_tensor().copy()?));
        }
    }
    Ok(out)
}
