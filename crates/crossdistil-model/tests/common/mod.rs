//! Shared fixtures: a small schema, a hand-built batch, every backbone, a stable BCE loss.
#![allow(dead_code)]

use candle_core::{D, Result, Tensor};
use crossdistil_data::{Batch, MultiBatch};
use crossdistil_model::{
    Activation, BackboneConfig, InputSchema, MlpConfig, MmoeConfig, ModelConfig, PleConfig,
};

/// Three single-valued fields, one multi-valued field, three dense features.
pub fn schema() -> InputSchema {
    InputSchema {
        sparse: vec![("user".into(), 20), ("item".into(), 30), ("cat".into(), 5)],
        multi: vec![("tags".into(), 12)],
        n_dense: 3,
        dense_names: vec!["age".into(), "price".into(), "hint".into()],
    }
}

/// Eight rows: repeated ids, the OOV id 0, empty and repeated tag lists.
pub fn batch(n_tasks: usize) -> Batch {
    let user = [1u32, 2, 3, 1, 0, 5, 19, 2];
    let item = [4u32, 4, 7, 29, 0, 11, 4, 13];
    let cat = [0u32, 1, 2, 3, 4, 1, 1, 0];
    let tags: [&[u32]; 8] = [
        &[1, 2],
        &[],
        &[3],
        &[2, 2, 5],
        &[0],
        &[11, 1],
        &[],
        &[7, 8, 9],
    ];
    let rows = user.len();
    let mut sparse = Vec::new();
    for r in 0..rows {
        sparse.extend([user[r], item[r], cat[r]]);
    }
    let mut multi = MultiBatch {
        offsets: vec![0],
        ids: Vec::new(),
    };
    for t in tags {
        multi.ids.extend_from_slice(t);
        multi.offsets.push(multi.ids.len() as u32);
    }
    let dense = (0..rows * 3)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let labels = (0..rows * n_tasks)
        .map(|i| (i * 5 + i / n_tasks).is_multiple_of(3) as u8 as f32)
        .collect();
    Batch {
        rows: (0..rows as u32).collect(),
        sparse,
        multi: vec![multi],
        dense,
        labels,

        weights: Vec::new(),
    }
}

/// Every backbone, small.
pub fn backbones() -> Vec<(&'static str, BackboneConfig)> {
    let mlp = MlpConfig::new(vec![16, 8]);
    vec![
        ("single-task", BackboneConfig::SingleTask(mlp.clone())),
        ("shared-bottom", BackboneConfig::SharedBottom(mlp.clone())),
        (
            "mmoe",
            BackboneConfig::Mmoe(MmoeConfig {
                experts: 3,
                hidden: vec![16, 8],
                activation: Activation::Relu,
                dropout: 0.0,
            }),
        ),
        (
            "ple",
            BackboneConfig::Ple(PleConfig {
                levels: 2,
                shared_experts: 2,
                task_experts: 1,
                hidden: vec![12, 8],
                activation: Activation::Relu,
                dropout: 0.0,
            }),
        ),
        ("cross-stitch", BackboneConfig::CrossStitch(mlp.clone())),
        ("esmm", BackboneConfig::Esmm(mlp)),
    ]
}

/// A small model configuration around `backbone`: dimension 4, 6 for "item".
pub fn config(backbone: BackboneConfig) -> ModelConfig {
    ModelConfig {
        embedding_dim: 4,
        field_dims: [("item".to_string(), 6)].into(),
        embedding_init_std: 0.1,
        backbone,
        tower: MlpConfig::new(vec![6]),
        dropout: 0.0,
        teacher: Default::default(),
    }
}

/// Mean binary cross-entropy on logits, `relu(z) - z*y + log(1 + exp(-|z|))`.
pub fn bce(logits: &Tensor, labels: &[f32]) -> Result<Tensor> {
    let y = Tensor::from_slice(labels, logits.shape(), logits.device())?;
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (logits.relu()? - (logits * &y)?)?
        .add(&softplus)?
        .mean_all()
}

/// `sum(a * b)` over the last dimension, then over everything, as a scalar.
pub fn dot(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a * b)?.sum(D::Minus1)?.sum_all()
}

pub fn to_vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}
