//! The CrossDistil objective of one batch, from the model's outputs as tensors:
//!
//! ```text
//! L = sum_k [ w_k BCE(z_k, y_k) + a_k alpha(step) KD_k + beta L_rank(k) + gamma L_cal(k) ]
//! ```
//!
//! with the terms each [`DistillMode`] uses. For task `k`, `z_k` is the student logit, `r_k` the
//! teacher's ranking score and `P_k = softplus(rho_k)`, `Q_k` its calibrator:
//!
//! - `BCE`: the student's binary cross-entropy against the 0/1 label, weight `w_k`;
//! - `L_rank(k)`: the ranking loss of `r_k` over the graded levels of task `k` (its label first,
//!   the other tasks' labels as tie-breaks);
//! - `L_cal(k)`: the BCE of `sigmoid(P_k r_k + Q_k)` against the label, `r_k` detached;
//! - with `teacher_bce = delta > 0`, also `delta BCE(r_k, y_k)`: the teacher's own BCE on its
//!   raw score (not in the paper; an option for studying the teacher);
//! - `KD_k`: `T^2 BCE(z_k / T, t_k)` against the detached target `t_k`, the calibrated teacher
//!   probability `sigmoid((P_k r_k + Q_k) / T)` corrected against the label and the student's
//!   own `sigmoid(z_k / T)` (`crossdistil`), or the mean of the other tasks' student
//!   probabilities (`direct`); `a_k` is `task_alpha[k]` (1 by default). With
//!   `min_confidence = c > 0` (`crossdistil`), row `i`'s term is kept only where the calibrated
//!   teacher probability `q_ik` has `max(q_ik, 1 - q_ik) >= c`, and is 0 elsewhere (the mean
//!   is still over all rows, so the parts of a batch add up to the whole).
//!
//! Gradient flow: BCE and KD reach the student logits (and whatever computed them); the ranking
//! loss (and the teacher's own BCE) reaches the teacher scores; the calibration loss reaches only
//! the calibrator's `rho` and `Q` (the score is detached); KD targets are detached, so
//! distillation never trains the teacher or the calibrator.

use candle_core::{D, DType, IndexOp, Result, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::bce::{mean_bce, per_task_bce, weighted_bce_with_logits};
use crate::calibration::{calibrated_logit, weighted_calibration_loss};
use crate::config::{DistillConfig, DistillMode};
use crate::error_correction::correct;
use crate::kd::weighted_tempered_distill_loss;
use crate::levels::graded_levels;
use crate::ranking::ranking_loss;

/// The two parameters of one task's Platt calibrator `q = sigmoid(softplus(rho) r + Q)`.
#[derive(Debug, Clone, Copy)]
pub struct PlattParams<'a> {
    /// `[1]`: the slope is `P = softplus(rho)`, so it stays positive.
    pub rho: &'a Tensor,
    /// `[1]`: the offset `Q`.
    pub q: &'a Tensor,
}

/// What the objective reads of one batch of `b` rows and `T` tasks. Every tensor has the dtype
/// of `logits` (f32 or f64) and is on its device.
#[derive(Debug, Clone, Copy)]
pub struct ObjectiveInput<'a> {
    /// `[b, T]`: the student logits.
    pub logits: &'a Tensor,
    /// `[b, T]`: the teacher heads' ranking scores; `None` for a model without teachers.
    pub teacher_scores: Option<&'a Tensor>,
    /// One per task: the calibrators of the teacher scores. Read only in `crossdistil` mode
    /// with teacher scores and `calibration = true`; may be empty otherwise.
    pub calibrators: &'a [PlattParams<'a>],
    /// `[b, T]`: the 0/1 labels.
    pub labels: &'a Tensor,
    /// `[T]`: the tasks' log-variances `s_k` of uncertainty weighting, when the BCE terms are
    /// weighted by them: `w_k (exp(-s_k) BCE_k + s_k / 2)` instead of `w_k BCE_k`. For a fixed
    /// `BCE_k` that is smallest at `s_k = ln(2 BCE_k)`: a task whose loss stays high is
    /// weighted down.
    pub task_log_vars: Option<&'a Tensor>,
    /// `[b]`: the rows' sample weights `w_i`, when rows count unequally. Every row-wise term
    /// (BCE, distillation, calibration) is then `mean_i w_i l_i` instead of `mean_i l_i` (the
    /// mean over the rows, so that a row of weight 2 counts as two rows of weight 1 and the
    /// parts of a batch still add up to the whole). The ranking loss, over pairs of rows, is
    /// not weighted.
    pub row_weights: Option<&'a Tensor>,
}

/// The objective of one batch and its parts. The parts are the unweighted sums over the tasks,
/// for logs: `total = bce + alpha(step) kd + beta rank + gamma cal`.
#[derive(Debug, Clone)]
pub struct ObjectiveLoss {
    /// The weighted objective, a scalar tensor: call `backward()` on it.
    pub total: Tensor,
    /// `sum_k w_k BCE_k`, the task weights applied (with uncertainty weighting,
    /// `sum_k w_k (exp(-s_k) BCE_k + s_k / 2)`).
    pub bce: f64,
    /// `sum_k KD_k`, before the weight `alpha(step)`.
    pub kd: f64,
    /// `sum_k L_rank(k)`, before the weight `beta`.
    pub rank: f64,
    /// `sum_k L_cal(k)`, before the weight `gamma`.
    pub cal: f64,
    /// `sum_k BCE(r_k, y_k)`, the teachers' own BCE, before the weight `teacher_bce` (0 when
    /// that weight is 0).
    pub teacher_bce: f64,
    /// Per distilled task, the mean `|sigmoid(z_k / T) - t_k|`: the size of the KD gradient on
    /// the student logit, before the weight `alpha`. Empty when nothing is distilled.
    pub kd_gap: Vec<f64>,
}

/// The objective `L` of one batch (see the module documentation) at training step `step >= 1`
/// (which sets the distillation weight through [`DistillConfig::schedule`]), with one weight per
/// task in `task_weights`. `rng` draws the ranking loss's pairs when they are sampled.
///
/// Errors: tensors of the wrong shape, or fewer calibrators than tasks where they are read.
pub fn objective(
    input: &ObjectiveInput<'_>,
    task_weights: &[f32],
    cfg: &DistillConfig,
    step: u64,
    rng: &mut ChaCha8Rng,
) -> Result<ObjectiveLoss> {
    objective_of(input, task_weights, cfg, step, rng, true)
}

/// [`objective`] without the ranking term, for rows that are part of a larger batch whose
/// ranking loss is computed over the whole batch ([`ranking_gradient`]). The caller adds the
/// surrogate `sum_{i,k} r_ik g_ik` of its rows (`g` = their rows of `beta dL_rank / dr`,
/// detached), whose gradient with respect to the teacher scores is that of the whole batch's
/// ranking loss: data-parallel workers and ranks each do so for their rows, and the ranking
/// pairs span the whole batch. `rank` is 0; nothing is drawn at random.
pub fn objective_without_ranking(
    input: &ObjectiveInput<'_>,
    task_weights: &[f32],
    cfg: &DistillConfig,
    step: u64,
) -> Result<ObjectiveLoss> {
    let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    objective_of(input, task_weights, cfg, step, &mut rng, false)
}

/// The ranking loss of a whole batch and its gradient: for teacher scores `scores` `[B, T]`
/// and the row-major labels `label_rows` (`B x T`, 0/1), returns `sum_k L_rank(k)` (before the
/// weight `beta`) and `g = beta d(sum_k L_rank(k)) / dr`, `[B, T]`, whose rows the callers of
/// [`objective_without_ranking`] use in their surrogate. `None` when the objective has no
/// ranking term.
pub fn ranking_gradient(
    scores: &Tensor,
    label_rows: &[f32],
    cfg: &DistillConfig,
    rng: &mut ChaCha8Rng,
) -> Result<Option<(f64, Tensor)>> {
    if !cfg.needs_teachers() {
        return Ok(None);
    }
    let (b, n_tasks) = scores.dims2()?;
    if label_rows.len() != b * n_tasks {
        candle_core::bail!(
            "ranking_gradient: {} labels for {b} rows of {n_tasks} tasks",
            label_rows.len()
        );
    }
    let scores = scores.detach();
    let one_task = |k: usize, rng: &mut ChaCha8Rng| -> Result<Option<(f64, Tensor)>> {
        let col = candle_core::Var::from_tensor(&column(&scores, k)?)?;
        let levels = graded_levels(label_rows, n_tasks, k);
        let Some(rank) = ranking_loss(col.as_tensor(), &levels, &cfg.ranking, rng)? else {
            return Ok(None);
        };
        let value = scalar(&rank)?;
        let grad = match rank
            .affine(cfg.beta, 0.0)?
            .backward()?
            .remove(col.as_tensor())
        {
            Some(g) => g,
            None => col.as_tensor().zeros_like()?,
        };
        Ok(Some((value, grad)))
    };
    // Taking every pair (`max_pairs = 0`) draws nothing at random, so the tasks' losses are
    // independent: they run on helper threads, one per task, with the same values and
    // gradients as in turn. Sampled pairs are drawn from `rng` task after task.
    let per_task: Vec<Result<Option<(f64, Tensor)>>> = if cfg.ranking.max_pairs == 0 {
        crossdistil_core::on_helpers((0..n_tasks).collect(), |k| one_task(k, &mut rng.clone()))
    } else {
        (0..n_tasks).map(|k| one_task(k, rng)).collect()
    };
    let mut value = 0.0;
    let mut columns = Vec::with_capacity(n_tasks);
    for r in per_task {
        columns.push(match r? {
            Some((v, g)) => {
                value += v;
                g
            }
            None => Tensor::zeros(b, scores.dtype(), scores.device())?,
        });
    }
    let grad = Tensor::stack(&columns, 1)?;
    Ok(Some((value, grad)))
}

fn objective_of(
    input: &ObjectiveInput<'_>,
    task_weights: &[f32],
    cfg: &DistillConfig,
    step: u64,
    rng: &mut ChaCha8Rng,
    with_ranking: bool,
) -> Result<ObjectiveLoss> {
    check_input(input, task_weights.len(), cfg)?;
    let bce = match (input.task_log_vars, input.row_weights) {
        (None, None) => weighted_bce_with_logits(input.logits, input.labels, task_weights)?.0,
        (None, Some(_)) => {
            let w = Tensor::from_slice(task_weights, task_weights.len(), input.logits.device())?
                .to_dtype(input.logits.dtype())?;
            task_bce(input)?.mul(&w)?.sum_all()?
        }
        (Some(s), _) => uncertainty_weighted(input, s, task_weights)?,
    };
    let mut out = ObjectiveLoss {
        total: bce.clone(),
        bce: scalar(&bce)?,
        kd: 0.0,
        rank: 0.0,
        cal: 0.0,
        teacher_bce: 0.0,
        kd_gap: Vec::new(),
    };
    if cfg.mode == DistillMode::Off {
        return Ok(out);
    }
    let mut total = bce;
    if let (Some(scores), true) = (input.teacher_scores, cfg.needs_teachers()) {
        total = add_teacher_terms(total, input, scores, cfg, rng, with_ranking, &mut out)?;
    }
    if matches!(cfg.mode, DistillMode::Crossdistil | DistillMode::Direct) {
        let alpha = cfg.schedule().weight(cfg.alpha, step);
        total = add_distillation(total, input, cfg, alpha, &mut out)?;
    }
    out.total = total;
    Ok(out)
}

/// `sum_k w_k (exp(-s_k) BCE_k + s_k / 2)` (Kendall et al. 2018, the classification form).
fn uncertainty_weighted(input: &ObjectiveInput<'_>, s: &Tensor, w: &[f32]) -> Result<Tensor> {
    let per_task = task_bce(input)?;
    if s.dims() != per_task.dims() {
        candle_core::bail!(
            "objective: {:?} task log-variances for {:?} tasks",
            s.dims(),
            per_task.dims()
        );
    }
    let s = s.to_dtype(per_task.dtype())?;
    let w = Tensor::from_slice(w, w.len(), s.device())?.to_dtype(s.dtype())?;
    let terms = per_task.mul(&s.neg()?.exp()?)?.add(&s.affine(0.5, 0.0)?)?;
    terms.mul(&w)?.sum_all()
}

/// `[T]`: each task's BCE, weighted by the rows' sample weights when there are any.
fn task_bce(input: &ObjectiveInput<'_>) -> Result<Tensor> {
    let w = match input.row_weights {
        Some(w) => Some(w.to_dtype(input.logits.dtype())?),
        None => None,
    };
    per_task_bce(input.logits, input.labels, w.as_ref())
}

/// The shapes the objective needs, and a calibrator per task where it reads them.
fn check_input(input: &ObjectiveInput<'_>, n_tasks: usize, cfg: &DistillConfig) -> Result<()> {
    let (_, t) = input.logits.dims2()?;
    if t != n_tasks {
        candle_core::bail!("objective: {t} logit columns but {n_tasks} task weights");
    }
    let shape = input.logits.shape();
    if input.labels.shape() != shape {
        candle_core::bail!(
            "objective: labels {:?} and logits {shape:?} must have one shape",
            input.labels.shape()
        );
    }
    if let Some(w) = input.row_weights
        && w.dims() != [shape.dims()[0]]
    {
        candle_core::bail!("objective: {:?} row weights for logits {shape:?}", w.dims());
    }
    if let Some(scores) = input.teacher_scores {
        if scores.shape() != shape {
            candle_core::bail!(
                "objective: teacher scores {:?} and logits {shape:?} must have one shape",
                scores.shape()
            );
        }
        let reads_calibrators =
            cfg.trains_calibrators() || (cfg.mode == DistillMode::Crossdistil && cfg.calibration);
        if reads_calibrators && input.calibrators.len() < n_tasks {
            candle_core::bail!(
                "objective: {} calibrators for {n_tasks} tasks",
                input.calibrators.len()
            );
        }
        if cfg.needs_teachers() && n_tasks > 32 {
            candle_core::bail!("objective: graded levels need at most 32 tasks, got {n_tasks}");
        }
    }
    Ok(())
}

/// A scalar tensor's value as `f64`.
fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?.to_scalar::<f64>()
}

/// Column `k` of a `[b, T]` tensor, `[b]`, contiguous.
fn column(t: &Tensor, k: usize) -> Result<Tensor> {
    t.i((.., k))?.contiguous()
}

/// Adds `beta L_rank(k)` and, when the calibrators train online, `gamma L_cal(k)` for each task
/// in turn to `total`.
fn add_teacher_terms(
    mut total: Tensor,
    input: &ObjectiveInput<'_>,
    scores: &Tensor,
    cfg: &DistillConfig,
    rng: &mut ChaCha8Rng,
    with_ranking: bool,
    out: &mut ObjectiveLoss,
) -> Result<Tensor> {
    let n_tasks = scores.dim(1)?;
    // The graded levels read the labels row-major.
    let label_rows: Vec<f32> = input
        .labels
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    for k in 0..n_tasks {
        let r = column(scores, k)?;
        let levels = graded_levels(&label_rows, n_tasks, k);
        let rank = match with_ranking {
            true => ranking_loss(&r, &levels, &cfg.ranking, rng)?,
            false => None,
        };
        if let Some(rank) = rank {
            out.rank += scalar(&rank)?;
            total = total.add(&rank.affine(cfg.beta, 0.0)?)?;
        }
        if cfg.teacher_bce > 0.0 {
            let own = mean_bce(&r, &column(input.labels, k)?, input.row_weights)?;
            out.teacher_bce += scalar(&own)?;
            total = total.add(&own.affine(cfg.teacher_bce, 0.0)?)?;
        }
        if cfg.trains_calibrators() {
            let c = &input.calibrators[k];
            let cal = weighted_calibration_loss(
                &r,
                c.rho,
                c.q,
                &column(input.labels, k)?,
                input.row_weights,
            )?;
            out.cal += scalar(&cal)?;
            total = total.add(&cal.affine(cfg.gamma, 0.0)?)?;
        }
    }
    Ok(total)
}

/// Adds `alpha KD_k` for each task with a target to `total` (the parts even at `alpha = 0`).
fn add_distillation(
    mut total: Tensor,
    input: &ObjectiveInput<'_>,
    cfg: &DistillConfig,
    alpha: f64,
    out: &mut ObjectiveLoss,
) -> Result<Tensor> {
    let temp = cfg.temperature;
    let student_probs = candle_nn::ops::sigmoid(&input.logits.affine(1.0 / temp, 0.0)?)?.detach();
    for k in 0..input.logits.dim(1)? {
        let p = column(&student_probs, k)?;
        // The calibrated teacher logit, once: the target and the confidence gate both read it.
        let teacher = teacher_logit(input, cfg, k)?;
        let Some(target) = kd_target(input, cfg, &student_probs, &p, k, teacher.as_ref())? else {
            continue;
        };
        out.kd_gap
            .push(scalar(&p.sub(&target)?.abs()?.mean_all()?)?);
        let gate = match (&teacher, cfg.min_confidence > 0.0) {
            (Some(logit), true) => Some(confidence_gate(logit, cfg.min_confidence)?),
            _ => None,
        };
        let weights = match (input.row_weights, &gate) {
            (None, None) => None,
            (Some(w), None) => Some(w.clone()),
            (None, Some(g)) => Some(g.clone()),
            (Some(w), Some(g)) => Some(w.mul(&g.to_dtype(w.dtype())?)?),
        };
        let kd = weighted_tempered_distill_loss(
            &column(input.logits, k)?,
            &target,
            temp,
            weights.as_ref(),
        )?;
        out.kd += scalar(&kd)?;
        let a_k = cfg.task_alpha.get(k).copied().unwrap_or(1.0);
        if alpha * a_k > 0.0 {
            total = total.add(&kd.affine(alpha * a_k, 0.0)?)?;
        }
    }
    Ok(total)
}

/// Task `k`'s detached teacher logit `[b]` in `crossdistil` mode with teacher scores: the
/// calibrated `P r + Q`, or `r` itself without the calibrator; `None` otherwise.
fn teacher_logit(
    input: &ObjectiveInput<'_>,
    cfg: &DistillConfig,
    k: usize,
) -> Result<Option<Tensor>> {
    let (Some(scores), DistillMode::Crossdistil) = (input.teacher_scores, cfg.mode) else {
        return Ok(None);
    };
    let r = column(scores, k)?.detach();
    if !cfg.calibration {
        return Ok(Some(r));
    }
    let c = &input.calibrators[k];
    calibrated_logit(&r, &c.rho.detach(), &c.q.detach()).map(Some)
}

/// `[b]`, in the logit's dtype: 1 where the teacher with logit `logit` is confident enough to
/// distil, `max(q, 1 - q) >= min_confidence` for `q = sigmoid(logit)`, and 0 elsewhere.
fn confidence_gate(logit: &Tensor, min_confidence: f64) -> Result<Tensor> {
    // max(q, 1 - q) >= c  <=>  |logit| >= ln(c / (1 - c)).
    let bound = (min_confidence / (1.0 - min_confidence)).ln();
    logit.abs()?.ge(bound)?.to_dtype(logit.dtype())
}

/// Task `k`'s distillation target `[b]`, or `None` where it has none: the mean of the other
/// tasks' student probabilities (`direct`, two tasks or more), or the calibrated, corrected
/// teacher probability (`crossdistil`, from `teacher`, its [`teacher_logit`]). `p`: task `k`'s
/// column of `student_probs`, `sigmoid(z / T)` detached.
fn kd_target(
    input: &ObjectiveInput<'_>,
    cfg: &DistillConfig,
    student_probs: &Tensor,
    p: &Tensor,
    k: usize,
    teacher: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    let n_tasks = student_probs.dim(1)?;
    if cfg.mode == DistillMode::Direct {
        if n_tasks < 2 {
            return Ok(None);
        }
        let others: Vec<Tensor> = (0..n_tasks)
            .filter(|&j| j != k)
            .map(|j| column(student_probs, j))
            .collect::<Result<_>>()?;
        return Ok(Some(Tensor::stack(&others, 1)?.mean(D::Minus1)?));
    }
    let Some(logit) = teacher else {
        return Ok(None);
    };
    let q = candle_nn::ops::sigmoid(&logit.affine(1.0 / cfg.temperature, 0.0)?)?;
    let y = column(input.labels, k)?;
    Ok(Some(correct(&q, &y, p, &cfg.error_correction)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::SeedableRng;

    const B: usize = 12;
    const T: usize = 2;

    /// Logits, teacher scores and 0/1 labels of `B` rows and `T` tasks, every level present.
    fn data() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let v = |i: usize, k: u32| (i as f32 * 0.37 + k as f32).sin() * 1.5;
        let logits = (0..B * T).map(|i| v(i, 1)).collect();
        let scores = (0..B * T).map(|i| v(i, 2)).collect();
        let labels = (0..B * T)
            .map(|i| ((i * i * 7 + i) % 5 < 2) as u8 as f32)
            .collect();
        (logits, scores, labels)
    }

    fn cfg() -> DistillConfig {
        DistillConfig {
            mode: DistillMode::Crossdistil,
            beta: 0.7,
            ..Default::default()
        }
    }

    /// The gradients with respect to the logits, the teacher scores and the calibrators of the
    /// objective of rows `rows`, scaled by `rows.len() / B`; with `ranking`, the ranking term
    /// is the surrogate of those rows of the whole batch's gradient.
    fn grads(rows: std::ops::Range<usize>, ranking: Option<&Tensor>) -> Vec<Vec<f32>> {
        let dev = Device::Cpu;
        let (logits, scores, labels) = data();
        let part = |v: &[f32]| v[rows.start * T..rows.end * T].to_vec();
        let n = rows.len();
        let z = Var::from_vec(part(&logits), (n, T), &dev).unwrap();
        let r = Var::from_vec(part(&scores), (n, T), &dev).unwrap();
        let y = Tensor::from_vec(part(&labels), (n, T), &dev).unwrap();
        let rho = Var::from_vec(vec![0.3f32], 1, &dev).unwrap();
        let q = Var::from_vec(vec![-0.2f32], 1, &dev).unwrap();
        let cal = vec![
            PlattParams {
                rho: rho.as_tensor(),
                q: q.as_tensor(),
            };
            T
        ];
        let input = ObjectiveInput {
            logits: z.as_tensor(),
            teacher_scores: Some(r.as_tensor()),
            calibrators: &cal,
            labels: &y,
            task_log_vars: None,
            row_weights: None,
        };
        let scale = n as f64 / B as f64;
        let total = match ranking {
            None => {
                let mut rng = ChaCha8Rng::seed_from_u64(1);
                objective(&input, &[1.0, 0.5], &cfg(), 3, &mut rng)
                    .unwrap()
                    .total
            }
            Some(g) => {
                let loss = objective_without_ranking(&input, &[1.0, 0.5], &cfg(), 3).unwrap();
                let g = g.narrow(0, rows.start, n).unwrap();
                let surrogate = r.as_tensor().mul(&g).unwrap().sum_all().unwrap();
                loss.total
                    .affine(scale, 0.0)
                    .unwrap()
                    .add(&surrogate)
                    .unwrap()
            }
        };
        let store = total.backward().unwrap();
        [z.as_tensor(), r.as_tensor(), rho.as_tensor(), q.as_tensor()]
            .iter()
            .map(|t| {
                store
                    .get(t)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn the_ranking_loss_over_parts_of_a_batch_gives_the_whole_batch_gradient() {
        let (_, scores, labels) = data();
        let all = Tensor::from_vec(scores, (B, T), &Device::Cpu).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (value, g) = ranking_gradient(&all, &labels, &cfg(), &mut rng)
            .unwrap()
            .unwrap();
        assert!(value > 0.0);
        let whole = grads(0..B, None);
        for cut in [1, 5, 6, 11] {
            let (a, b) = (grads(0..cut, Some(&g)), grads(cut..B, Some(&g)));
            for (p, ((w, x), y)) in whole.iter().zip(&a).zip(&b).enumerate() {
                // Per-row parameters (logits, scores) concatenate; shared ones (the
                // calibrators) add.
                let got: Vec<f32> = if p < 2 {
                    x.iter().chain(y).copied().collect()
                } else {
                    x.iter().zip(y).map(|(x, y)| x + y).collect()
                };
                for (i, (w, g)) in w.iter().zip(&got).enumerate() {
                    assert!(
                        (w - g).abs() < 1e-6,
                        "cut {cut}, parameter {p}[{i}]: {w} against {g}"
                    );
                }
            }
        }
    }

    /// With every pair taken the tasks run on helper threads; the value and the gradient are,
    /// bit for bit, those of one graph over the tasks in turn.
    #[test]
    fn the_tasks_on_helper_threads_give_the_losses_in_turn_bit_for_bit() {
        let (_, scores, labels) = data();
        let all = Tensor::from_vec(scores, (B, T), &Device::Cpu).unwrap();
        let c = cfg();
        assert_eq!(c.ranking.max_pairs, 0);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (value, g) = ranking_gradient(&all, &labels, &c, &mut rng)
            .unwrap()
            .unwrap();
        let var = Var::from_tensor(&all).unwrap();
        let (mut want, mut total) = (0.0, None);
        for k in 0..T {
            let levels = graded_levels(&labels, T, k);
            let col = column(var.as_tensor(), k).unwrap();
            if let Some(r) = ranking_loss(&col, &levels, &c.ranking, &mut rng).unwrap() {
                want += scalar(&r).unwrap();
                let t = r.affine(c.beta, 0.0).unwrap();
                total = Some(match total {
                    None => t,
                    Some(a) => t.add(&a).unwrap(),
                });
            }
        }
        let store = total.unwrap().backward().unwrap();
        let want_g = store.get(var.as_tensor()).unwrap();
        assert_eq!(value.to_bits(), want.to_bits());
        let bits = |t: &Tensor| -> Vec<u32> {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            v.iter().map(|x| x.to_bits()).collect()
        };
        assert_eq!(bits(&g), bits(want_g));
    }

    #[test]
    fn no_ranking_term_without_teachers() {
        let all = Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let off = DistillConfig::default();
        assert!(
            ranking_gradient(&all, &[0.0; 6], &off, &mut rng)
                .unwrap()
                .is_none()
        );
    }

    /// The objective without its ranking term (BCE, calibration, corrected distillation) of
    /// rows `rows` of [`data`], each row's term weighted by `weights` when given, and its
    /// gradients with respect to the calibrator's `rho` and `q`.
    fn weighted_objective(rows: &[usize], weights: Option<&[f32]>) -> (f64, Vec<Vec<f32>>) {
        let dev = Device::Cpu;
        let (logits, scores, labels) = data();
        let pick = |v: &[f32]| -> Vec<f32> {
            rows.iter()
                .flat_map(|&r| v[r * T..(r + 1) * T].to_vec())
                .collect()
        };
        let n = rows.len();
        let z = Var::from_vec(pick(&logits), (n, T), &dev).unwrap();
        let r = Var::from_vec(pick(&scores), (n, T), &dev).unwrap();
        let y = Tensor::from_vec(pick(&labels), (n, T), &dev).unwrap();
        let rho = Var::from_vec(vec![0.3f32], 1, &dev).unwrap();
        let q = Var::from_vec(vec![-0.2f32], 1, &dev).unwrap();
        let cal = vec![
            PlattParams {
                rho: rho.as_tensor(),
                q: q.as_tensor(),
            };
            T
        ];
        let w = weights.map(|w| Tensor::from_slice(w, n, &dev).unwrap());
        let input = ObjectiveInput {
            logits: z.as_tensor(),
            teacher_scores: Some(r.as_tensor()),
            calibrators: &cal,
            labels: &y,
            task_log_vars: None,
            row_weights: w.as_ref(),
        };
        let loss = objective_without_ranking(&input, &[1.0, 0.5], &cfg(), 3).unwrap();
        assert!(loss.kd > 0.0 && loss.cal > 0.0);
        let store = loss.total.backward().unwrap();
        let grads = [rho.as_tensor(), q.as_tensor()]
            .iter()
            .map(|t| {
                let g = store.get(t).unwrap().flatten_all().unwrap();
                g.to_vec1().unwrap()
            })
            .collect();
        (scalar(&loss.total).unwrap(), grads)
    }

    /// Calls `f` with the whole batch of [`data`] as an objective's input (calibrators
    /// `rho = 0.3`, `Q = -0.2`), its student logits and its teacher scores as leaves.
    fn with_batch<R>(f: impl FnOnce(&ObjectiveInput<'_>, &Var, &Var) -> R) -> R {
        let dev = Device::Cpu;
        let (logits, scores, labels) = data();
        let z = Var::from_vec(logits, (B, T), &dev).unwrap();
        let r = Var::from_vec(scores, (B, T), &dev).unwrap();
        let y = Tensor::from_vec(labels, (B, T), &dev).unwrap();
        let rho = Var::from_vec(vec![0.3f32], 1, &dev).unwrap();
        let q = Var::from_vec(vec![-0.2f32], 1, &dev).unwrap();
        let cal = vec![
            PlattParams {
                rho: rho.as_tensor(),
                q: q.as_tensor(),
            };
            T
        ];
        let input = ObjectiveInput {
            logits: z.as_tensor(),
            teacher_scores: Some(r.as_tensor()),
            calibrators: &cal,
            labels: &y,
            task_log_vars: None,
            row_weights: None,
        };
        f(&input, &z, &r)
    }

    /// The gradient of `loss` with respect to `leaf`, flat (zeros where none reaches it).
    fn grad_of(loss: &ObjectiveLoss, leaf: &Var) -> Vec<f32> {
        match loss.total.backward().unwrap().get(leaf.as_tensor()) {
            Some(g) => g.flatten_all().unwrap().to_vec1().unwrap(),
            None => vec![0.0; leaf.as_tensor().elem_count()],
        }
    }

    #[test]
    fn the_teachers_own_bce_reaches_the_teacher_scores() {
        let (_, scores, labels) = data();
        with_batch(|input, _, r| {
            // Without the ranking term, only the teacher's own BCE reaches r: d/dr = delta
            // (sigmoid(r) - y) / B.
            let delta = 0.5;
            let c = DistillConfig {
                teacher_bce: delta,
                ..cfg()
            };
            let loss = objective_without_ranking(input, &[1.0, 0.5], &c, 3).unwrap();
            assert!(loss.teacher_bce > 0.0);
            let g = grad_of(&loss, r);
            for i in 0..B * T {
                let want = delta as f32 * (1.0 / (1.0 + (-scores[i]).exp()) - labels[i]) / B as f32;
                assert!((g[i] - want).abs() < 1e-6, "{i}: {} against {want}", g[i]);
            }
            // Off by default: no gradient reaches r.
            let loss = objective_without_ranking(input, &[1.0, 0.5], &cfg(), 3).unwrap();
            assert_eq!(loss.teacher_bce, 0.0);
            assert!(loss.total.backward().unwrap().get(r.as_tensor()).is_none());
        });
    }

    /// `task_alpha` scales each task's distillation term: with `[0, 2]` task 0's logits get
    /// the gradient of the objective without distillation, and task 1's distillation part of
    /// the gradient doubles.
    #[test]
    fn task_alpha_scales_each_tasks_distillation() {
        with_batch(|input, z, _| {
            let run = |alpha: f64, task_alpha: Vec<f64>| {
                let c = DistillConfig {
                    alpha,
                    task_alpha,
                    ..cfg()
                };
                grad_of(
                    &objective_without_ranking(input, &[1.0, 0.5], &c, 3).unwrap(),
                    z,
                )
            };
            let none = run(0.0, vec![]);
            let one = run(0.5, vec![1.0, 1.0]);
            let scaled = run(0.5, vec![0.0, 2.0]);
            assert_eq!(run(0.5, vec![]), one, "empty means 1 for every task");
            for i in 0..B {
                let (t0, t1) = (i * T, i * T + 1);
                assert!((scaled[t0] - none[t0]).abs() < 1e-7, "row {i}, task 0");
                let want = none[t1] + 2.0 * (one[t1] - none[t1]);
                assert!((scaled[t1] - want).abs() < 1e-6, "row {i}, task 1");
            }
            assert!(one.iter().zip(&none).any(|(a, b)| (a - b).abs() > 1e-4));
        });
    }

    /// `min_confidence = c` keeps a row's distillation term only where the calibrated teacher
    /// has `max(q, 1 - q) >= c`: its gradient on the student logits is that of the plain
    /// objective on those rows and the distillation-free one elsewhere, by brute force over
    /// the rows.
    #[test]
    fn only_confident_rows_are_distilled() {
        let (_, scores, _) = data();
        let p = (1.0f64 + 0.3f64.exp()).ln(); // softplus(rho)
        let c = 0.8;
        let confident: Vec<bool> = scores
            .iter()
            .map(|&r| {
                let q = 1.0 / (1.0 + (-(p * f64::from(r) - 0.2)).exp());
                q.max(1.0 - q) >= c
            })
            .collect();
        assert!(confident.iter().any(|&x| x) && confident.iter().any(|&x| !x));
        with_batch(|input, z, _| {
            let run = |alpha: f64, min_confidence: f64| {
                let c = DistillConfig {
                    alpha,
                    min_confidence,
                    ..cfg()
                };
                grad_of(
                    &objective_without_ranking(input, &[1.0, 0.5], &c, 3).unwrap(),
                    z,
                )
            };
            let (all, none, gated) = (run(0.5, 0.0), run(0.0, 0.0), run(0.5, c));
            for i in 0..B * T {
                let want = if confident[i] { all[i] } else { none[i] };
                assert!(
                    (gated[i] - want).abs() < 1e-7,
                    "{i}: {} against {want}",
                    gated[i]
                );
            }
        });
    }

    #[test]
    fn a_row_of_weight_two_counts_as_two_rows() {
        // Rows 0..B with row 3 of weight 2 and row 7 of weight 0, against rows 0..B with row 3
        // twice and row 7 left out: the same sums over rows, so the weighted mean over B rows
        // times B equals the plain mean over the B rows of the other batch times B.
        let all: Vec<usize> = (0..B).collect();
        let mut w = vec![1.0f32; B];
        w[3] = 2.0;
        w[7] = 0.0;
        let (weighted, gw) = weighted_objective(&all, Some(&w));
        let dup: Vec<usize> = (0..B).filter(|&r| r != 7).chain([3]).collect();
        assert_eq!(dup.len(), B);
        let (plain, gp) = weighted_objective(&dup, None);
        assert!(
            (weighted - plain).abs() < 1e-6,
            "{weighted} against {plain}"
        );
        // The calibrator's gradient sums over rows: equal too.
        for k in 0..2 {
            assert!((gw[k][0] - gp[k][0]).abs() < 1e-6, "{gw:?} {gp:?}");
        }
        // Unit weights change nothing at all.
        let (ones, _) = weighted_objective(&all, Some(&[1.0; B]));
        let (none, _) = weighted_objective(&all, None);
        assert!((ones - none).abs() < 1e-7, "{ones} {none}");
        // And the weights do matter.
        assert!((weighted - none).abs() > 1e-3, "{weighted} {none}");
    }
}

#[cfg(test)]
mod uncertainty_tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::SeedableRng;

    #[test]
    fn uncertainty_weighting_is_stationary_at_the_log_of_twice_each_tasks_loss() {
        let dev = Device::Cpu;
        // Two tasks with different losses: logits far from the labels on task 1.
        let z = Tensor::from_vec(vec![0.5f32, -2.0, -0.3, 1.5, 1.0, -1.0], (3, 2), &dev).unwrap();
        let y = Tensor::from_vec(vec![1f32, 1.0, 0.0, 0.0, 1.0, 1.0], (3, 2), &dev).unwrap();
        let (_, per_task) = weighted_bce_with_logits(&z, &y, &[1.0, 1.0]).unwrap();
        let bce: Vec<f32> = per_task.to_vec1().unwrap();
        let at = |s: Vec<f32>| {
            let s = Var::from_vec(s, 2, &dev).unwrap();
            let input = ObjectiveInput {
                logits: &z,
                teacher_scores: None,
                calibrators: &[],
                labels: &y,
                task_log_vars: Some(s.as_tensor()),
                row_weights: None,
            };
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let loss =
                objective(&input, &[1.0, 2.0], &DistillConfig::default(), 1, &mut rng).unwrap();
            let g = loss.total.backward().unwrap();
            (
                loss.bce,
                g.get(s.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            )
        };
        // At s_k = ln(2 BCE_k) the gradient in s vanishes, whatever the task weights.
        let best: Vec<f32> = bce.iter().map(|b| (2.0 * b).ln()).collect();
        let (value, g) = at(best.clone());
        assert!(g.iter().all(|g| g.abs() < 1e-6), "{g:?}");
        let want: f64 = [1.0, 2.0]
            .iter()
            .zip(&bce)
            .zip(&best)
            .map(|((w, b), s)| w * (f64::from(*b) * (-f64::from(*s)).exp() + f64::from(*s) / 2.0))
            .sum();
        assert!((value - want).abs() < 1e-5, "{value} against {want}");
        // At s = 0 it is w_k (1/2 - BCE_k)... negative where the loss is above 1/2.
        let (_, g0) = at(vec![0.0, 0.0]);
        for k in 0..2 {
            let w = [1.0f32, 2.0][k];
            assert!((g0[k] - w * (0.5 - bce[k])).abs() < 1e-6, "{g0:?}");
        }
    }
}
