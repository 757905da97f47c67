//! One optimiser step over a mini-batch, on one core or data-parallel over several.
//!
//! With `workers = N > 1`, the batch is cut into N contiguous shards
//! ([`crossdistil_data::Batch::split`]); each worker thread runs forward and backward of its shard
//! on the same (shared, read-only) model, its loss scaled by `shard_rows / batch_rows`, so the
//! summed gradients are those of the whole batch for every row-wise loss (BCE, distillation,
//! calibration). The gradients are summed in worker order and applied in one update, so a run is
//! deterministic for a fixed N. The ranking loss forms its pairs inside each shard, as in
//! data-parallel training elsewhere, so with CrossDistil N workers are not N-fold the same
//! computation as one.

use candle_core::Tensor;
use candle_core::backprop::GradStore;
use crossdistil_data::Batch;
use crossdistil_loss::{ObjectiveInput, PlattParams, objective};
use crossdistil_model::{Mode, MultiTaskModel, SparseGrads};
use rand_chacha::ChaCha8Rng;

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::optim::sum_grads;

/// What a step needs besides the model and the batch.
pub struct StepSetup<'a> {
    pub cfg: &'a RunConfig,
    /// The data set's label indices of the model's tasks.
    pub tasks: &'a [usize],
    /// The number of labels in the data set (columns of `Batch::labels`).
    pub n_labels: usize,
    /// Loss weight per task.
    pub weights: &'a [f32],
}

/// The loss of one step and its parts, summed over the workers (see
/// [`crossdistil_loss::ObjectiveLoss`]).
#[derive(Debug, Clone, Default)]
pub struct LossParts {
    /// The weighted objective that was minimised.
    pub total: f64,
    /// `sum_k w_k BCE_k`, the task weights applied.
    pub bce: f64,
    /// `sum_k KD_k`, before the weight `alpha(step)`.
    pub kd: f64,
    /// `sum_k L_rank(k)`, before the weight `beta`.
    pub rank: f64,
    /// `sum_k L_cal(k)`, before the weight `gamma`.
    pub cal: f64,
    /// Per distilled task, the mean `|sigmoid(z_k / T) - t_k|`; empty when nothing is distilled.
    pub kd_gap: Vec<f64>,
}

/// The batch's labels of the model's tasks, row-major `[b, T]`.
pub fn label_rows(batch: &Batch, n_all: usize, tasks: &[usize]) -> Vec<f32> {
    if tasks.len() == n_all && tasks.iter().enumerate().all(|(i, &t)| i == t) {
        return batch.labels.clone();
    }
    (0..batch.size())
        .flat_map(|r| tasks.iter().map(move |&t| batch.labels[r * n_all + t]))
        .collect()
}

/// One worker's share: its gradients and its loss parts, already scaled.
struct Share {
    dense: GradStore,
    sparse: SparseGrads,
    parts: LossParts,
}

/// Forward and backward of one shard at loss scale `scale`.
fn share(
    model: &MultiTaskModel,
    shard: &Batch,
    scale: f64,
    setup: &StepSetup<'_>,
    step: u64,
    rng: &mut ChaCha8Rng,
) -> Result<Share> {
    let n_tasks = setup.tasks.len();
    let fwd = model.forward(shard, Mode::Train(rng))?;
    let rows = label_rows(shard, setup.n_labels, setup.tasks);
    let labels = Tensor::from_slice(&rows, (shard.size(), n_tasks), model.params().device())?;
    let calibrators: Vec<PlattParams<'_>> = model
        .calibrators()
        .iter()
        .map(|c| PlattParams {
            rho: c.rho.as_tensor(),
            q: c.q.as_tensor(),
        })
        .collect();
    let input = ObjectiveInput {
        logits: &fwd.logits,
        teacher_scores: fwd.teacher_scores.as_ref(),
        calibrators: &calibrators,
        labels: &labels,
    };
    let loss = objective(&input, setup.weights, &setup.cfg.distill, step, rng)?;
    let total = if scale == 1.0 {
        loss.total
    } else {
        loss.total.affine(scale, 0.0)?
    };
    let value = total.to_scalar::<f32>()? as f64;
    if !value.is_finite() {
        return Err(TrainError::Diverged(format!("loss {value} at step {step}")));
    }
    let dense = total.backward()?;
    let sparse = model.input().sparse_grads(&dense, &fwd.gathered)?;
    Ok(Share {
        dense,
        sparse,
        parts: LossParts {
            total: value,
            bce: loss.bce * scale,
            kd: loss.kd * scale,
            rank: loss.rank * scale,
            cal: loss.cal * scale,
            kd_gap: loss.kd_gap.iter().map(|g| g * scale).collect(),
        },
    })
}

/// Runs `share` on every shard, worker 0 on this thread and the others on their own.
fn shares(
    model: &MultiTaskModel,
    batch: &Batch,
    setup: &StepSetup<'_>,
    step: u64,
    rngs: &mut [ChaCha8Rng],
) -> Result<Vec<Share>> {
    if rngs.len() <= 1 || batch.size() < 2 {
        return Ok(vec![share(model, batch, 1.0, setup, step, &mut rngs[0])?]);
    }
    let shards = batch.split(rngs.len());
    let n = batch.size() as f64;
    std::thread::scope(|s| {
        let mut pairs = shards.iter().zip(rngs.iter_mut());
        let (first, first_rng) = pairs.next().expect("a non-empty batch has a shard");
        let handles: Vec<_> = pairs
            .map(|(shard, rng)| {
                s.spawn(move || share(model, shard, shard.size() as f64 / n, setup, step, rng))
            })
            .collect();
        let mut out = vec![share(
            model,
            first,
            first.size() as f64 / n,
            setup,
            step,
            first_rng,
        )?];
        for h in handles {
            out.push(h.join().map_err(|_| {
                TrainError::Diverged(format!("a worker thread panicked at step {step}"))
            })??);
        }
        Ok(out)
    })
}

/// The gradient of one step: dense parameters, embedding tables, and the loss parts.
pub struct Gradients {
    /// The dense parameters' gradients, summed over the workers.
    pub dense: GradStore,
    /// The embedding tables' gradient rows, summed over the workers.
    pub sparse: SparseGrads,
    /// The loss and its parts.
    pub parts: LossParts,
}

/// The workers' shares of one step: each worker's dense gradients (in worker order), and the
/// table gradients and loss parts summed over the workers.
struct Summed {
    dense: Vec<GradStore>,
    sparse: SparseGrads,
    parts: LossParts,
}

fn summed(shares: Vec<Share>) -> Summed {
    let mut dense = Vec::with_capacity(shares.len());
    let mut sparse = Vec::with_capacity(shares.len());
    let mut parts: Option<LossParts> = None;
    for s in shares {
        dense.push(s.dense);
        sparse.push(s.sparse);
        match &mut parts {
            None => parts = Some(s.parts),
            Some(p) => {
                p.total += s.parts.total;
                p.bce += s.parts.bce;
                p.kd += s.parts.kd;
                p.rank += s.parts.rank;
                p.cal += s.parts.cal;
                for (a, g) in p.kd_gap.iter_mut().zip(&s.parts.kd_gap) {
                    *a += g;
                }
            }
        }
    }
    Summed {
        dense,
        sparse: SparseGrads::sum(sparse),
        parts: parts.unwrap_or_default(),
    }
}

/// The gradient of the loss of `batch` (the mean over its rows), computed by `rngs.len()`
/// workers and summed in worker order. `step >= 1` is the number of the step it is for.
pub fn gradients(
    model: &MultiTaskModel,
    batch: &Batch,
    setup: &StepSetup<'_>,
    step: u64,
    rngs: &mut [ChaCha8Rng],
) -> Result<Gradients> {
    let vars = model.params().vars();
    let Summed {
        dense: stores,
        sparse,
        parts,
    } = summed(shares(model, batch, setup, step, rngs)?);
    // The sums as `train_step` forms them, put back into the first worker's store.
    let sums = sum_grads(&vars, &stores, rngs.len())?;
    let mut dense = stores.into_iter().next().expect("at least one share");
    for ((_, var), sum) in vars.iter().zip(sums) {
        if let Some(sum) = sum {
            let g = Tensor::from_vec(sum, var.shape(), var.device())?;
            dense.insert(var.as_tensor(), g);
        }
    }
    Ok(Gradients {
        dense,
        sparse,
        parts,
    })
}

/// The summed gradient of one step, as the optimiser takes it: the dense gradients, flat and in
/// the order of `model.params().vars()` (`None`: no gradient), the tables' gradient rows, and
/// the loss parts.
pub struct FlatGradients {
    pub dense: Vec<Option<Vec<f32>>>,
    pub sparse: SparseGrads,
    pub parts: LossParts,
}

/// The workers' gradients of `batch` ([`gradients`] without putting the sums back into a
/// store). After the workers' backward passes, the sums of their dense gradients are split
/// over the workers' threads.
pub fn flat_gradients(
    model: &MultiTaskModel,
    batch: &Batch,
    setup: &StepSetup<'_>,
    step: u64,
    rngs: &mut [ChaCha8Rng],
) -> Result<FlatGradients> {
    let threads = rngs.len();
    let Summed {
        dense,
        sparse,
        parts,
    } = summed(shares(model, batch, setup, step, rngs)?);
    let vars = model.params().vars();
    let dense = sum_grads(&vars, &dense, threads)?;
    Ok(FlatGradients {
        dense,
        sparse,
        parts,
    })
}
