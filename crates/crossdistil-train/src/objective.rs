//! The training objective of one batch:
//!
//! ```text
//! L = sum_k [ w_k BCE(z_k, y_k) + alpha(step) KD_k + beta L_rank(k) + gamma L_cal(k) ]
//! ```
//!
//! with the terms each distillation mode uses (see [`crate::distill`]). Gradient flow: BCE and
//! KD reach the student and, through it, the backbone and the embeddings; the ranking loss
//! reaches the teacher head (and the backbone unless `teacher.detach_repr`); the calibration
//! loss reaches only the calibrator (the score is detached); KD targets are detached.

use candle_core::{D, IndexOp, Result, Tensor};
use crossdistil_loss::calibration::{calibrated_logit, calibration_loss};
use crossdistil_loss::distill::distill_loss;
use crossdistil_loss::error_correction::correct;
use crossdistil_loss::levels::graded_levels;
use crossdistil_loss::quadruplet::ranking_loss;
use crossdistil_loss::weighted_bce_with_logits;
use crossdistil_model::{Forward, MultiTaskModel};
use rand_chacha::ChaCha8Rng;

use crate::distill::{CalibratorFit, DistillConfig, DistillMode};

/// The loss of one batch and its parts (for logs).
pub struct StepLoss {
    pub total: Tensor,
    pub bce: f64,
    pub kd: f64,
    pub rank: f64,
    pub cal: f64,
    /// Per task, the mean |student probability - distillation target|: the size of the KD
    /// gradient on the student logit, before the weight `alpha`.
    pub kd_gap: Vec<f64>,
}

fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()
}

/// `labels`: `[b, T]` 0/1; `labels_rows`: the same, row-major, for the graded levels.
#[allow(clippy::too_many_arguments)]
pub fn objective(
    fwd: &Forward,
    labels: &Tensor,
    labels_rows: &[f32],
    weights: &[f32],
    model: &MultiTaskModel,
    d: &DistillConfig,
    step: u64,
    rng: &mut ChaCha8Rng,
) -> Result<StepLoss> {
    let n_tasks = weights.len();
    let (bce, _) = weighted_bce_with_logits(&fwd.logits, labels, weights)?;
    let mut total = bce.clone();
    let mut out = StepLoss {
        total: bce.clone(),
        bce: scalar(&bce)?,
        kd: 0.0,
        rank: 0.0,
        cal: 0.0,
        kd_gap: Vec::new(),
    };
    if d.mode == DistillMode::Off {
        return Ok(out);
    }
    let alpha = d.schedule().weight(d.alpha, step);
    let temp = d.temperature;
    let column = |t: &Tensor, k: usize| -> Result<Tensor> { t.i((.., k))?.contiguous() };

    if let (Some(scores), true) = (&fwd.teacher_scores, d.needs_teachers()) {
        for k in 0..n_tasks {
            let r = column(scores, k)?;
            let levels = graded_levels(labels_rows, n_tasks, k);
            if let Some(rank) = ranking_loss(&r, &levels, &d.ranking, rng)? {
                out.rank += scalar(&rank)?;
                total = total.add(&rank.affine(d.beta, 0.0)?)?;
            }
            if d.mode == DistillMode::Crossdistil
                && d.calibration
                && d.calibrator == CalibratorFit::Online
            {
                let c = &model.calibrators()[k];
                let cal =
                    calibration_loss(&r, c.rho.as_tensor(), c.q.as_tensor(), &column(labels, k)?)?;
                out.cal += scalar(&cal)?;
                total = total.add(&cal.affine(d.gamma, 0.0)?)?;
            }
        }
    }

    if matches!(d.mode, DistillMode::Crossdistil | DistillMode::Direct) {
        let student_probs = candle_nn::ops::sigmoid(&fwd.logits.affine(1.0 / temp, 0.0)?)?.detach();
        for k in 0..n_tasks {
            let z = column(&fwd.logits, k)?;
            let p = column(&student_probs, k)?;
            let target = match d.mode {
                DistillMode::Direct => {
                    if n_tasks < 2 {
                        continue;
                    }
                    // The other tasks' student predictions, averaged.
                    let others: Vec<Tensor> = (0..n_tasks)
                        .filter(|&j| j != k)
                        .map(|j| column(&student_probs, j))
                        .collect::<Result<_>>()?;
                    Tensor::stack(&others, 1)?.mean(D::Minus1)?
                }
                _ => {
                    let Some(scores) = &fwd.teacher_scores else {
                        continue;
                    };
                    let r = column(scores, k)?.detach();
                    let logit = if d.calibration {
                        let c = &model.calibrators()[k];
                        calibrated_logit(
                            &r,
                            &c.rho.as_tensor().detach(),
                            &c.q.as_tensor().detach(),
                        )?
                    } else {
                        r
                    };
                    let q = candle_nn::ops::sigmoid(&logit.affine(1.0 / temp, 0.0)?)?;
                    correct(&q, &column(labels, k)?, &p, &d.error_correction)?
                }
            };
            out.kd_gap
                .push(scalar(&p.sub(&target)?.abs()?.mean_all()?)?);
            let kd =
                distill_loss(&z.affine(1.0 / temp, 0.0)?, &target)?.affine(temp * temp, 0.0)?;
            out.kd += scalar(&kd)?;
            if alpha > 0.0 {
                total = total.add(&kd.affine(alpha, 0.0)?)?;
            }
        }
    }
    out.total = total;
    Ok(out)
}
