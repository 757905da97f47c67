//! Models of every backbone with random weights, their samples, and tract scoring the ONNX file.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use crossdistil_model::{
    Activation, BackboneConfig, Batch, InputSchema, MlpConfig, MmoeConfig, ModelConfig, MultiBatch,
    MultiTaskModel, PleConfig,
};
use crossdistil_onnx::{Sample, SampleValues};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tract_onnx::prelude::*;

/// Every backbone, by name, with layers of `act` (and dropout, which serving leaves out).
pub fn backbones(act: Activation) -> Vec<(&'static str, BackboneConfig)> {
    let mlp = |hidden: Vec<usize>| MlpConfig {
        hidden,
        activation: act,
        dropout: 0.3,
    };
    vec![
        (
            "shared-bottom",
            BackboneConfig::SharedBottom(mlp(vec![12, 8])),
        ),
        ("single-task", BackboneConfig::SingleTask(mlp(vec![8, 6]))),
        (
            "mmoe",
            BackboneConfig::Mmoe(MmoeConfig {
                experts: 3,
                hidden: vec![10, 8],
                activation: act,
                dropout: 0.2,
            }),
        ),
        (
            "ple",
            BackboneConfig::Ple(PleConfig {
                levels: 3,
                shared_experts: 2,
                task_experts: 2,
                hidden: vec![8, 6],
                activation: act,
                dropout: 0.1,
            }),
        ),
        ("cross-stitch", BackboneConfig::CrossStitch(mlp(vec![8, 6]))),
        ("esmm", BackboneConfig::Esmm(mlp(vec![8]))),
    ]
}

/// Two single-valued fields (one of its own embedding size), a multi-valued field and three
/// dense features.
pub fn schema() -> InputSchema {
    InputSchema {
        sparse: vec![("user".into(), 30), ("item".into(), 20)],
        multi: vec![("tags".into(), 12)],
        n_dense: 3,
        dense_names: vec![],
    }
}

pub fn dense_names() -> Vec<String> {
    vec!["age".into(), "price".into(), "hour".into()]
}

pub fn task_names(n: usize) -> Vec<String> {
    ["click", "like", "buy"][..n]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// A model of `backbone` over `schema` for `n_tasks` tasks, every weight and bias drawn
/// uniformly from `[-0.6, 0.6]` (biases are zero at initialisation, which would hide them).
pub fn random_model(
    backbone: BackboneConfig,
    act: Activation,
    schema: &InputSchema,
    n_tasks: usize,
    seed: u64,
) -> MultiTaskModel {
    let cfg = ModelConfig {
        embedding_dim: 4,
        field_dims: BTreeMap::from([("item".to_string(), 6)]),
        embedding_init_std: 0.5,
        backbone,
        tower: MlpConfig {
            hidden: vec![5],
            activation: act,
            dropout: 0.5,
        },
        dropout: 0.2,
        ..ModelConfig::default()
    };
    let model = MultiTaskModel::new(&cfg, schema, n_tasks, seed).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
    for (_, var) in model.params().vars() {
        let n = var.elem_count();
        let values: Vec<f32> = (0..n).map(|_| rng.random_range(-0.6..0.6)).collect();
        let t = Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap();
        var.set(&t).unwrap();
    }
    model
}

/// `rows` random rows of `schema` in batches of `batch`, with row ids from 1000; the
/// multi-valued field's lists hold 0 to 3 ids.
pub fn random_batches(
    schema: &InputSchema,
    rows: usize,
    batch: usize,
    seed: u64,
) -> Vec<(Batch, Vec<u64>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut next = 0;
    while next < rows {
        let n = batch.min(rows - next);
        let mut sparse = Vec::new();
        let mut dense = Vec::new();
        let mut multi: Vec<MultiBatch> = schema
            .multi
            .iter()
            .map(|_| MultiBatch {
                offsets: vec![0],
                ids: vec![],
            })
            .collect();
        for _ in 0..n {
            for (_, vocab) in &schema.sparse {
                sparse.push(rng.random_range(0..*vocab as u32));
            }
            for (m, (_, vocab)) in multi.iter_mut().zip(&schema.multi) {
                let k = rng.random_range(0..4);
                for _ in 0..k {
                    m.ids.push(rng.random_range(0..*vocab as u32));
                }
                m.offsets.push(m.ids.len() as u32);
            }
            for _ in 0..schema.n_dense {
                dense.push(rng.random_range(-2.0..2.0));
            }
        }
        let b = Batch {
            rows: (next as u32..(next + n) as u32).collect(),
            sparse,
            multi,
            dense,
            labels: vec![0.0; n * 3],
            weights: Vec::new(),
        };
        out.push((b, (1000 + next as u64..1000 + (next + n) as u64).collect()));
        next += n;
    }
    out
}

/// The graph at `path` run by tract on the sample's inputs: per output, its `[rows]` values.
pub fn tract_scores(path: &Path, sample: &Sample) -> Vec<Vec<f32>> {
    let rows = sample.rows();
    let mut model = onnx().model_for_path(path).unwrap();
    let mut inputs: TVec<TValue> = tvec![];
    for (i, input) in sample.inputs.iter().enumerate() {
        let shape = [rows, input.columns];
        let (fact, tensor) = match &input.values {
            SampleValues::Ids(v) => (
                InferenceFact::dt_shape(i64::datum_type(), shape),
                tract_onnx::prelude::Tensor::from_shape(&shape, v).unwrap(),
            ),
            SampleValues::Floats(v) => (
                InferenceFact::dt_shape(f32::datum_type(), shape),
                tract_onnx::prelude::Tensor::from_shape(&shape, v).unwrap(),
            ),
        };
        model = model.with_input_fact(i, fact).unwrap();
        inputs.push(tensor.into_tvalue());
    }
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    let outs = plan.run(inputs).unwrap();
    outs.iter()
        .map(|o| {
            let view = o.to_plain_array_view::<f32>().unwrap();
            view.iter().copied().collect()
        })
        .collect()
}

/// The largest `|a - b|` over every task.
pub fn max_abs_diff(sample: &Sample, scored: &[Vec<f32>]) -> f32 {
    assert_eq!(scored.len(), sample.scores.len());
    let mut worst = 0.0f32;
    for ((task, want), got) in sample.scores.iter().zip(scored) {
        assert_eq!(want.len(), got.len(), "{task}");
        for (w, g) in want.iter().zip(got) {
            assert!(g.is_finite(), "{task}: {g}");
            worst = worst.max((w - g).abs());
        }
    }
    worst
}
