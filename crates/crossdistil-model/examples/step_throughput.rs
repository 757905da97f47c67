//! Training-step throughput on synthetic data: forward, BCE, backward, AdamW on the dense
//! parameters and lazy Adam on the touched embedding rows.
//!
//! `cargo run --release -p crossdistil-model --example step_throughput -- [backbone] [steps]`
//! with backbone `shared-bottom` (default) or `mmoe`: 10 tables of 100k x 16, 8 dense features,
//! 2 tasks, batch 1024, the shape measured in `shared/docs/candle-notes.md`. candle's second
//! thread does not pay on these sizes: compare with `RAYON_NUM_THREADS=1`.

use std::time::Instant;

use candle_core::{Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use crossdistil_data::Batch;
use crossdistil_model::{
    BackboneConfig, InputSchema, MlpConfig, MmoeConfig, Mode, ModelConfig, MultiTaskModel,
    SparseOptimConfig,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FIELDS: usize = 10;
const VOCAB: usize = 100_000;
const DENSE: usize = 8;
const TASKS: usize = 2;
const BATCH: usize = 1024;

fn batch(rng: &mut ChaCha8Rng) -> Batch {
    Batch {
        rows: (0..BATCH as u32).collect(),
        sparse: (0..BATCH * FIELDS)
            .map(|_| rng.random_range(0..VOCAB as u32))
            .collect(),
        multi: vec![],
        dense: (0..BATCH * DENSE)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect(),
        labels: (0..BATCH * TASKS)
            .map(|_| rng.random_bool(0.3) as u8 as f32)
            .collect(),

        weights: Vec::new(),
    }
}

/// Mean of `relu(z) - z*y + log(1 + exp(-|z|))`.
fn bce(logits: &Tensor, labels: &[f32]) -> Result<Tensor> {
    let y = Tensor::from_slice(labels, logits.shape(), logits.device())?;
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (logits.relu()? - (logits * &y)?)?
        .add(&softplus)?
        .mean_all()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let backbone = match args.get(1).map_or("shared-bottom", String::as_str) {
        "mmoe" => BackboneConfig::Mmoe(MmoeConfig {
            experts: 4,
            hidden: vec![256, 128],
            activation: Default::default(),
            dropout: 0.0,
        }),
        _ => BackboneConfig::SharedBottom(MlpConfig::new(vec![256, 128])),
    };
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
    let cfg = ModelConfig {
        backbone,
        ..ModelConfig::default()
    };
    let schema = InputSchema {
        sparse: (0..FIELDS).map(|f| (format!("f{f}"), VOCAB)).collect(),
        multi: vec![],
        n_dense: DENSE,
        dense_names: vec![],
    };
    let mut model = MultiTaskModel::new(&cfg, &schema, TASKS, 0)?;
    let vars = model.params().vars().into_iter().map(|(_, v)| v).collect();
    let mut adam = AdamW::new(
        vars,
        ParamsAdamW {
            lr: 1e-3,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let sparse = SparseOptimConfig::default();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let batches: Vec<Batch> = (0..8).map(|_| batch(&mut rng)).collect();
    let mut timed = std::time::Duration::ZERO;
    let mut loss_value = 0.0;
    for step in 0..steps + 3 {
        let b = &batches[step % batches.len()];
        let start = Instant::now();
        let fwd = model.forward(b, Mode::Train(&mut rng))?;
        let loss = bce(&fwd.logits, &b.labels)?;
        let grads = loss.backward()?;
        adam.step(&grads)?;
        model
            .input_mut()
            .apply_grads(&grads, &fwd.gathered, &sparse, 1e-3, step as u64 + 1)?;
        if step >= 3 {
            timed += start.elapsed();
        }
        loss_value = loss.to_scalar::<f32>()?;
    }
    let rate = (steps * BATCH) as f64 / timed.as_secs_f64();
    println!(
        "{} steps, {rate:.0} samples/s, last loss {loss_value:.4}",
        steps
    );
    Ok(())
}
