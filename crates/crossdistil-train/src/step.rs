//! One optimiser step over a mini-batch, on one core or data-parallel over several threads and
//! ranks.
//!
//! With `workers = N > 1`, the batch is cut into N contiguous shards
//! ([`crossdistil_data::Batch::split`]); each worker thread runs forward and backward of its shard
//! on the same (shared, read-only) model, its loss scaled by `shard_rows / batch_rows`, so the
//! summed gradients are those of the whole batch for every row-wise loss (BCE, distillation,
//! calibration). The gradients are summed in worker order and applied in one update, so a run is
//! deterministic for a fixed N. On several ranks ([`crate::dist`]) the batch is the rank's part
//! of the global batch, the scale is `shard_rows / global_rows`, and the workers' sums are added
//! over the ranks in rank order.
//!
//! The ranking loss pairs rows across the whole global batch, whatever the split: when the batch
//! is in more than one part, the workers first run their forward passes, the teacher scores and
//! labels of every part are gathered (a few bytes a row), the loss and its gradient with respect
//! to the scores are computed over all of them ([`ranking_gradient`], the same on every rank), and
//! each worker's backward pass adds the surrogate `sum r g` of its rows. With one part this is
//! the plain objective. Without a ranking loss nothing is taken over the whole batch, and each
//! worker runs its forward and backward passes in one go.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use crossdistil_data::Batch;
use crossdistil_loss::{
    ObjectiveInput, ObjectiveLoss, PlattParams, objective, objective_without_ranking, per_task_bce,
    ranking_gradient,
};
use crossdistil_model::{FieldGrad, Forward, Mode, MultiTaskModel, SparseGrads};
use rand_chacha::ChaCha8Rng;

use crate::config::RunConfig;
use crate::dist::{
    Comm, all_gather_f32, all_gather_f64, all_reduce_in_rank_order, sum_sparse_in_rank_order,
};
use crate::error::{Result, TrainError};
use crate::gradnorm;
use crate::optim::sum_grads;

/// What a step needs besides the model and the batch.
pub struct StepSetup<'a> {
    pub cfg: &'a RunConfig,
    /// The data set's label indices of the model's tasks.
    pub tasks: &'a [usize],
    /// The number of labels in the data set (columns of `Batch::labels`).
    pub n_labels: usize,
    /// Loss weight per task: the fixed weights, times GradNorm's learned weights with
    /// GradNorm.
    pub weights: &'a [f32],
    /// The fixed loss weight per task (`train.task_weights`).
    pub fixed_weights: &'a [f32],
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
    /// With GradNorm, per task, its loss `L_k` (its BCE times its fixed task weight) on the
    /// batch; empty otherwise.
    pub task_loss: Vec<f64>,
    /// With GradNorm, per task, the squared norm of `dL_k / dE` at the batch's embeddings `E`;
    /// empty otherwise.
    pub task_grad_sq: Vec<f64>,
    /// The rows of the (global) batch.
    pub rows: usize,
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

/// The objective's inputs of a forward pass: the labels of the model's tasks and the
/// calibrators.
fn objective_input<'a>(
    model: &'a MultiTaskModel,
    fwd: &'a Forward,
    targets: &'a Targets,
    calibrators: &'a [PlattParams<'a>],
) -> ObjectiveInput<'a> {
    ObjectiveInput {
        logits: &fwd.logits,
        teacher_scores: fwd.teacher_scores.as_ref(),
        calibrators,
        labels: &targets.labels,
        task_log_vars: model.task_log_vars().map(|v| v.as_tensor()),
        row_weights: targets.weights.as_ref(),
    }
}

/// What the objective compares a shard's outputs with: its labels of the model's tasks
/// `[b, T]` and, when the data set has a weight column, its rows' sample weights `[b]`.
struct Targets {
    labels: Tensor,
    weights: Option<Tensor>,
}

fn calibrators_of(model: &MultiTaskModel) -> Vec<PlattParams<'_>> {
    model
        .calibrators()
        .iter()
        .map(|c| PlattParams {
            rho: c.rho.as_tensor(),
            q: c.q.as_tensor(),
        })
        .collect()
}

fn targets_of(model: &MultiTaskModel, shard: &Batch, setup: &StepSetup<'_>) -> Result<Targets> {
    let rows = label_rows(shard, setup.n_labels, setup.tasks);
    let device = model.params().device();
    let labels = Tensor::from_slice(&rows, (shard.size(), setup.tasks.len()), device)?;
    let weights = match shard.weights.is_empty() {
        true => None,
        false => Some(Tensor::from_slice(&shard.weights, shard.size(), device)?),
    };
    Ok(Targets { labels, weights })
}

/// Backward of `total` (already scaled) and the loss parts of `loss` at `scale`.
fn backward(
    model: &MultiTaskModel,
    fwd: &Forward,
    total: Tensor,
    value: f64,
    loss: &ObjectiveLoss,
    scale: f64,
    step: u64,
) -> Result<Share> {
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
            task_loss: Vec::new(),
            task_grad_sq: Vec::new(),
            rows: 0,
        },
    })
}

/// With GradNorm, each task's loss `scale c_k BCE_k` (`c`: the fixed task weights) and the
/// squared norm of its gradient at the batch's embedding matrix: one backward pass per task.
/// Empty vectors without GradNorm.
fn task_gradients(
    model: &MultiTaskModel,
    fwd: &Forward,
    targets: &Targets,
    c: &[f32],
    scale: f64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    if model.gradnorm().is_none() {
        return Ok((Vec::new(), Vec::new()));
    }
    let w = match &targets.weights {
        Some(w) => Some(w.to_dtype(fwd.logits.dtype())?),
        None => None,
    };
    let per_task = per_task_bce(&fwd.logits, &targets.labels, w.as_ref())?;
    let mut loss = Vec::with_capacity(c.len());
    let mut grad_sq = Vec::with_capacity(c.len());
    for (k, &ck) in c.iter().enumerate() {
        let lk = per_task.get(k)?.affine(scale * f64::from(ck), 0.0)?;
        loss.push(lk.to_dtype(DType::F64)?.to_scalar::<f64>()?);
        let grads = lk.backward()?;
        grad_sq.push(match grads.get(fwd.gathered.leaf.as_tensor()) {
            Some(g) => g
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?,
            None => 0.0,
        });
    }
    Ok((loss, grad_sq))
}

/// Forward and backward of one shard at loss scale `scale`, the ranking loss over the shard.
fn share(
    model: &MultiTaskModel,
    shard: &Batch,
    scale: f64,
    setup: &StepSetup<'_>,
    step: u64,
    rng: &mut ChaCha8Rng,
) -> Result<Share> {
    let fwd = model.forward(shard, Mode::Train(rng))?;
    let targets = targets_of(model, shard, setup)?;
    let calibrators = calibrators_of(model);
    let input = objective_input(model, &fwd, &targets, &calibrators);
    let loss = objective(&input, setup.weights, &setup.cfg.distill, step, rng)?;
    let total = if scale == 1.0 {
        loss.total.clone()
    } else {
        loss.total.affine(scale, 0.0)?
    };
    let value = total.to_scalar::<f32>()? as f64;
    let tasks = task_gradients(model, &fwd, &targets, setup.fixed_weights, scale)?;
    let mut share = backward(model, &fwd, total, value, &loss, scale, step)?;
    (share.parts.task_loss, share.parts.task_grad_sq) = tasks;
    Ok(share)
}

/// Runs `f` on every item, item 0 on this thread and the others on helper threads
/// ([`crossdistil_core::on_helpers`]), and returns the results in item order (the first error,
/// or a worker's panic as an error).
fn on_workers<T: Send, R: Send>(
    items: Vec<T>,
    step: u64,
    f: impl Fn(T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    // Several workers: each keeps its products on its own thread (`on_one_thread`).
    let several = items.len() > 1;
    let run = |item| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match several {
            true => crossdistil_model::on_one_thread(|| f(item)),
            false => f(item),
        }))
    };
    crossdistil_core::on_helpers(items, run)
        .into_iter()
        .map(|r| {
            r.map_err(|_| TrainError::Diverged(format!("a worker thread panicked at step {step}")))?
        })
        .collect()
}

/// Where a step's batch sits in the global batch.
#[derive(Clone, Copy)]
pub struct Placement<'a> {
    /// The ranks, when the batch is this rank's part of a global batch.
    pub comm: Option<&'a dyn Comm>,
    /// The stream that draws the ranking loss's pairs of a batch in several parts: the same on
    /// every rank.
    pub ranking_rng: Option<&'a std::sync::Mutex<ChaCha8Rng>>,
    /// Whether the tables' gradient rows stay this rank's (sharded tables, sent to their
    /// owners afterwards) instead of being summed over the ranks.
    pub sharded: bool,
}

/// The workers' shares of one step and, when the ranking loss was taken over the global batch,
/// its value (added once, after the sums over workers and ranks).
struct Shares {
    shares: Vec<Share>,
    global_rank: Option<f64>,
    rows: usize,
}

/// Runs forward and backward on every shard of `batch`, worker 0 on this thread and the others
/// on their own; with more than one part in the global batch, the ranking loss is taken over
/// all of them (see the module documentation).
fn shares(
    model: &MultiTaskModel,
    batch: &Batch,
    setup: &StepSetup<'_>,
    step: u64,
    rngs: &mut [ChaCha8Rng],
    place: Placement<'_>,
) -> Result<Shares> {
    let local = batch.size();
    let sizes: Vec<usize> = match place.comm {
        Some(c) if c.size() > 1 => all_gather_f64(c, &[local as f64])?
            .iter()
            .map(|v| v[0] as usize)
            .collect(),
        _ => vec![local],
    };
    let global: usize = sizes.iter().sum();
    let offset: usize = place.comm.map_or(0, |c| sizes[..c.rank()].iter().sum());
    let shards = if local == 0 {
        Vec::new()
    } else if rngs.len() <= 1 || local < 2 {
        vec![batch.clone()]
    } else {
        batch.split(rngs.len())
    };
    if sizes.len() == 1 && shards.len() <= 1 {
        let shares = if local == 0 {
            Vec::new()
        } else {
            vec![share(model, batch, 1.0, setup, step, &mut rngs[0])?]
        };
        return Ok(Shares {
            shares,
            global_rank: None,
            rows: global,
        });
    }
    let n = global as f64;
    let needs_ranking = setup.cfg.distill.needs_teachers() && model.has_teachers();
    if !needs_ranking {
        // Nothing is taken over the whole batch: each worker runs its forward and backward
        // passes in one go, without waiting for the others in between.
        let shares = on_workers(
            shards.iter().zip(rngs.iter_mut()).collect(),
            step,
            |(shard, rng)| {
                let (fwd, targets) = forward_of(model, shard, setup, rng)?;
                shard_share(
                    model,
                    fwd,
                    &targets,
                    None,
                    shard.size() as f64 / n,
                    setup,
                    step,
                )
            },
        )?;
        return Ok(Shares {
            shares,
            global_rank: None,
            rows: global,
        });
    }
    // Phase 1: forward passes.
    let fwds = on_workers(
        shards.iter().zip(rngs.iter_mut()).collect(),
        step,
        |(shard, rng)| forward_of(model, shard, setup, rng),
    )?;
    // The ranking loss over the global batch.
    let mut global_rank = None;
    let mut grads: Vec<Option<Tensor>> = vec![None; fwds.len()];
    let n_tasks = setup.tasks.len();
    let mut scores = Vec::with_capacity(local * n_tasks);
    let mut labels = Vec::with_capacity(local * n_tasks);
    for (fwd, l) in &fwds {
        let s = fwd.teacher_scores.as_ref().expect("a model with teachers");
        scores.extend(s.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
        labels.extend(
            l.labels
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?,
        );
    }
    let (scores, labels) = match place.comm {
        Some(c) if c.size() > 1 => (
            all_gather_f32(c, &scores)?.concat(),
            all_gather_f32(c, &labels)?.concat(),
        ),
        _ => (scores, labels),
    };
    let device = model.params().device();
    let all = Tensor::from_vec(scores, (global, n_tasks), device)?;
    let rng = place.ranking_rng.ok_or_else(|| {
        TrainError::Distributed("a batch in several parts needs the ranking stream".into())
    })?;
    let mut rng = rng.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((value, g)) = ranking_gradient(&all, &labels, &setup.cfg.distill, &mut rng)? {
        global_rank = Some(value);
        let mut at = offset;
        for (k, (fwd, _)) in fwds.iter().enumerate() {
            let b = fwd.logits.dim(0)?;
            grads[k] = Some(g.narrow(0, at, b)?);
            at += b;
        }
    }
    // Phase 2: backward passes.
    let items: Vec<_> = fwds.into_iter().zip(grads).zip(&shards).collect();
    let shares = on_workers(items, step, |(((fwd, targets), g), shard)| {
        shard_share(
            model,
            fwd,
            &targets,
            g,
            shard.size() as f64 / n,
            setup,
            step,
        )
    })?;
    Ok(Shares {
        shares,
        global_rank,
        rows: global,
    })
}

/// A shard's forward pass in training mode and what its objective compares the outputs with.
fn forward_of(
    model: &MultiTaskModel,
    shard: &Batch,
    setup: &StepSetup<'_>,
    rng: &mut ChaCha8Rng,
) -> Result<(Forward, Targets)> {
    let fwd = model.forward(shard, Mode::Train(rng))?;
    Ok((fwd, targets_of(model, shard, setup)?))
}

/// The backward pass of one shard of a batch in several parts: its objective without the
/// ranking loss at loss scale `scale`, plus, when the ranking loss was taken over the global
/// batch, the surrogate `sum r g` of the shard's teacher scores `r` and their gradient `g`.
fn shard_share(
    model: &MultiTaskModel,
    fwd: Forward,
    targets: &Targets,
    g: Option<Tensor>,
    scale: f64,
    setup: &StepSetup<'_>,
    step: u64,
) -> Result<Share> {
    let calibrators = calibrators_of(model);
    let input = objective_input(model, &fwd, targets, &calibrators);
    let loss = objective_without_ranking(&input, setup.weights, &setup.cfg.distill, step)?;
    let total = loss.total.affine(scale, 0.0)?;
    let value = total.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let total = match (&g, &fwd.teacher_scores) {
        (Some(g), Some(r)) => total.add(&r.mul(&g.to_dtype(r.dtype())?)?.sum_all()?)?,
        _ => total,
    };
    let tasks = task_gradients(model, &fwd, targets, setup.fixed_weights, scale)?;
    let mut share = backward(model, &fwd, total, value, &loss, scale, step)?;
    (share.parts.task_loss, share.parts.task_grad_sq) = tasks;
    Ok(share)
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

fn add_parts(p: &mut LossParts, s: &LossParts) {
    p.total += s.total;
    p.bce += s.bce;
    p.kd += s.kd;
    p.rank += s.rank;
    p.cal += s.cal;
    for (a, g) in p.kd_gap.iter_mut().zip(&s.kd_gap) {
        *a += g;
    }
    add_vec(&mut p.task_loss, &s.task_loss);
    add_vec(&mut p.task_grad_sq, &s.task_grad_sq);
}

/// `a += b` elementwise, an empty `a` taking `b`.
fn add_vec(a: &mut Vec<f64>, b: &[f64]) {
    if a.is_empty() {
        a.extend_from_slice(b);
    } else {
        for (a, b) in a.iter_mut().zip(b) {
            *a += b;
        }
    }
}

fn summed(shares: Vec<Share>, dims: &[usize]) -> Summed {
    let mut dense = Vec::with_capacity(shares.len());
    let mut sparse = Vec::with_capacity(shares.len());
    let mut parts: Option<LossParts> = None;
    for s in shares {
        dense.push(s.dense);
        sparse.push(s.sparse);
        match &mut parts {
            None => parts = Some(s.parts),
            Some(p) => add_parts(p, &s.parts),
        }
    }
    let mut sparse = SparseGrads::sum(sparse);
    if sparse.fields.is_empty() {
        // A rank without rows this step: no rows of any table.
        sparse.fields = dims
            .iter()
            .map(|&dim| FieldGrad {
                ids: Vec::new(),
                dim,
                grad: Vec::new(),
            })
            .collect();
    }
    Summed {
        dense,
        sparse,
        parts: parts.unwrap_or_default(),
    }
}

/// The loss parts as numbers, to add over the ranks: the five sums, the number of GradNorm
/// entries per vector, `task_loss`, `task_grad_sq`, then `kd_gap`.
fn parts_values(p: &LossParts) -> Vec<f64> {
    let mut v = vec![
        p.total,
        p.bce,
        p.kd,
        p.rank,
        p.cal,
        p.task_loss.len() as f64,
    ];
    v.extend(&p.task_loss);
    v.extend(&p.task_grad_sq);
    v.extend(&p.kd_gap);
    v
}

/// The sum over the ranks of their loss parts, in rank order (`kd_gap` entries of a rank
/// without rows are missing and count as 0).
fn parts_over_ranks(comm: &dyn Comm, mine: &LossParts) -> Result<LossParts> {
    let all = all_gather_f64(comm, &parts_values(mine))?;
    let gaps = all
        .iter()
        .map(|v| v.len().saturating_sub(6 + 2 * v[5] as usize))
        .max()
        .unwrap_or(0);
    let mut out: Option<LossParts> = None;
    for v in all {
        let t = v[5] as usize;
        let v: Vec<f64> = v
            .into_iter()
            .chain(std::iter::repeat(0.0))
            .take(6 + 2 * t + gaps)
            .collect();
        let p = LossParts {
            total: v[0],
            bce: v[1],
            kd: v[2],
            rank: v[3],
            cal: v[4],
            task_loss: v[6..6 + t].to_vec(),
            task_grad_sq: v[6 + t..6 + 2 * t].to_vec(),
            kd_gap: v[6 + 2 * t..].to_vec(),
            rows: 0,
        };
        match &mut out {
            None => out = Some(p),
            Some(o) => add_parts(o, &p),
        }
    }
    Ok(out.unwrap_or_default())
}

/// Adds the ranking loss of the global batch, once, to the summed parts.
fn add_global_rank(parts: &mut LossParts, rank: Option<f64>, beta: f64, rows: usize) {
    if let Some(v) = rank {
        parts.rank += v;
        parts.total += beta * v;
    }
    parts.rows = rows;
}

/// The dense gradients summed over the ranks in rank order: a parameter without a gradient on
/// a rank counts as zeros there, and stays `None` only where no rank has one.
fn dense_over_ranks(
    comm: &dyn Comm,
    vars: &[(String, candle_core::Var)],
    mut dense: Vec<Option<Vec<f32>>>,
) -> Result<Vec<Option<Vec<f32>>>> {
    let present: Vec<f32> = dense
        .iter()
        .map(|g| f32::from(u8::from(g.is_some())))
        .collect();
    let any: Vec<bool> =
        all_gather_f32(comm, &present)?
            .iter()
            .fold(vec![false; dense.len()], |mut acc, p| {
                for (a, &x) in acc.iter_mut().zip(p) {
                    *a |= x > 0.0;
                }
                acc
            });
    let mut flat = Vec::new();
    for ((g, (_, var)), &any) in dense.iter().zip(vars).zip(&any) {
        match (g, any) {
            (Some(g), _) => flat.extend_from_slice(g),
            (None, true) => flat.extend(std::iter::repeat_n(0.0, var.elem_count())),
            (None, false) => {}
        }
    }
    all_reduce_in_rank_order(comm, &mut flat)?;
    let mut at = 0;
    for ((g, (_, var)), &any) in dense.iter_mut().zip(vars).zip(&any) {
        if any {
            let n = var.elem_count();
            *g = Some(flat[at..at + n].to_vec());
            at += n;
        }
    }
    Ok(dense)
}

/// GradNorm's weights renormalised (written back into `w`), and the weights of the tasks'
/// losses for this step: `c_k w_k`.
fn gradnorm_weights(w: &candle_core::Var, c: &[f32]) -> Result<Vec<f32>> {
    let current = w.as_tensor().to_vec1::<f32>()?;
    let normal = gradnorm::renormalised(&current);
    if normal != current {
        w.set(&Tensor::from_slice(&normal, normal.len(), w.device())?)?;
    }
    Ok(normal.iter().zip(c).map(|(w, c)| w * c).collect())
}

/// With GradNorm: sets the tasks' first losses at the first step, and the gradient of GradNorm's
/// loss as the gradient of the task weights (see [`gradnorm`]), the same on every rank.
fn gradnorm_step(
    model: &MultiTaskModel,
    vars: &[(String, candle_core::Var)],
    dense: &mut [Option<Vec<f32>>],
    parts: &LossParts,
    alpha: f64,
) -> Result<()> {
    let Some((w, loss0)) = model.gradnorm() else {
        return Ok(());
    };
    let mut first = loss0.as_tensor().to_vec1::<f32>()?;
    if first.iter().all(|&l| l == 0.0) {
        first = parts.task_loss.iter().map(|&l| l as f32).collect();
        loss0.set(&Tensor::from_slice(&first, first.len(), loss0.device())?)?;
    }
    let first: Vec<f64> = first.iter().map(|&l| f64::from(l)).collect();
    let g = gradnorm::weight_gradient(
        &w.as_tensor().to_vec1::<f32>()?,
        &parts.task_loss,
        &first,
        &parts.task_grad_sq,
        alpha,
    );
    let at = vars
        .iter()
        .position(|(_, v)| v.as_tensor().id() == w.as_tensor().id())
        .ok_or_else(|| TrainError::Config("GradNorm's weights are not a parameter".into()))?;
    dense[at] = Some(g);
    Ok(())
}

/// The gradient of the loss of `batch` (the mean over its rows), computed by `rngs.len()`
/// workers and summed in worker order. `step >= 1` is the number of the step it is for.
pub fn gradients(
    model: &MultiTaskModel,
    batch: &Batch,
    setup: &StepSetup<'_>,
    step: u64,
    rngs: &mut [ChaCha8Rng],
    place: Placement<'_>,
) -> Result<Gradients> {
    let vars = model.params().vars();
    let FlatGradients {
        dense: sums,
        sparse,
        parts,
    } = flat_gradients(model, batch, setup, step, rngs, place)?;
    // An empty store (candle makes them only through `backward`), filled with the sums.
    let mut dense = Tensor::new(0f32, model.params().device())?.backward()?;
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

/// The gradient of the loss of the global batch whose part on this rank is `batch` (the whole
/// batch without ranks), summed over the workers in worker order, then over the ranks in rank
/// order. After the workers' backward passes, the sums of their dense gradients are split over
/// the workers' threads.
pub fn flat_gradients(
    model: &MultiTaskModel,
    batch: &Batch,
    setup: &StepSetup<'_>,
    step: u64,
    rngs: &mut [ChaCha8Rng],
    place: Placement<'_>,
) -> Result<FlatGradients> {
    let threads = rngs.len();
    let gradnorm = match model.gradnorm() {
        Some((w, _)) => Some(gradnorm_weights(w, setup.fixed_weights)?),
        None => None,
    };
    let weighted = StepSetup {
        weights: gradnorm.as_deref().unwrap_or(setup.weights),
        ..*setup
    };
    let Shares {
        shares,
        global_rank,
        rows,
    } = shares(model, batch, &weighted, step, rngs, place)?;
    let Summed {
        dense,
        sparse,
        mut parts,
    } = summed(
        shares,
        &model
            .input()
            .tables()
            .iter()
            .map(|t| t.dim)
            .collect::<Vec<_>>(),
    );
    let vars = model.params().vars();
    let mut dense = sum_grads(&vars, &dense, threads)?;
    let mut sparse = sparse;
    if let Some(comm) = place.comm.filter(|c| c.size() > 1) {
        dense = dense_over_ranks(comm, &vars, dense)?;
        if !place.sharded {
            sparse = sum_sparse_in_rank_order(comm, sparse)?;
        }
        parts = parts_over_ranks(comm, &parts)?;
    }
    add_global_rank(&mut parts, global_rank, setup.cfg.distill.beta, rows);
    if rows > 0 {
        gradnorm_step(
            model,
            &vars,
            &mut dense,
            &parts,
            setup.cfg.train.gradnorm_alpha,
        )?;
    }
    Ok(FlatGradients {
        dense,
        sparse,
        parts,
    })
}
