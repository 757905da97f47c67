//! Platt calibration of a teacher's ranking score into a probability.
//!
//! ```text
//! q = sigmoid(P r + Q),   P = softplus(rho) > 0
//! L_cal = mean_i bce(P r_i + Q, y_i),   r detached
//! ```
//!
//! Shapes: the scores `r` and labels `y` are `[b]`; `rho` and `Q` are one value each, a scalar
//! tensor or `[1]`. `P > 0`, so calibration never changes the teacher's order; the score is
//! detached in the loss, so calibration never moves the teacher: only `rho` and `Q` learn from it.
//!
//! [`fit_platt`] fits `(P, Q)` offline (the "refit on the validation split" option) by Newton's
//! method in `f64`; [`inverse_softplus`] turns its `P` back into a `rho`.

use candle_core::{Result, Tensor};

use crate::bce::mean_bce;
use crate::stable::softplus;

/// The smallest slope [`fit_platt`] returns.
pub const MIN_SLOPE: f64 = 1e-6;

/// The calibrated logit `softplus(rho) * scores + q`, shape of `scores`. Not detached: the caller
/// decides what may learn from it.
pub fn calibrated_logit(scores: &Tensor, rho: &Tensor, q: &Tensor) -> Result<Tensor> {
    softplus(rho)?.broadcast_mul(scores)?.broadcast_add(q)
}

/// The calibrator's loss: mean BCE of `calibrated_logit(scores.detach(), rho, q)` against the
/// 0/1 `labels` (`[b]`). Gradients reach `rho` and `q` only.
pub fn calibration_loss(
    scores: &Tensor,
    rho: &Tensor,
    q: &Tensor,
    labels: &Tensor,
) -> Result<Tensor> {
    weighted_calibration_loss(scores, rho, q, labels, None)
}

/// [`calibration_loss`] with each row's term multiplied by its weight in `row_weights` (`[b]`)
/// when given: `mean_i w_i bce(P r_i + Q, y_i)`.
pub(crate) fn weighted_calibration_loss(
    scores: &Tensor,
    rho: &Tensor,
    q: &Tensor,
    labels: &Tensor,
    row_weights: Option<&Tensor>,
) -> Result<Tensor> {
    mean_bce(
        &calibrated_logit(&scores.detach(), rho, q)?,
        labels,
        row_weights,
    )
}

/// `rho` with `softplus(rho) = p`, i.e. `log(exp(p) - 1)`, for `p > 0` (`-inf` at 0, NaN below).
pub fn inverse_softplus(p: f64) -> f64 {
    // log(exp(p) - 1) = p + log(1 - exp(-p)): no overflow for large p.
    p + (-(-p).exp_m1()).ln()
}

/// Maximum-likelihood Platt scaling: the `(P, Q)` minimising the mean cross-entropy of
/// `sigmoid(P r + Q)` against the labels, with `P >= MIN_SLOPE`.
///
/// As in Platt (1999) and libsvm (Lin, Lin and Weng, 2007) the 0/1 labels become the targets
/// `(N+ + 1) / (N+ + 2)` and `1 / (N- + 2)`, so that the optimum is finite even on separable data;
/// on thousands of rows this moves `(P, Q)` by far less than their sampling error. The objective
/// is convex: Newton steps with backtracking on the unconstrained problem; if its slope comes
/// out below `MIN_SLOPE` (scores not positively related to the labels), the constrained optimum
/// lies on the boundary and `Q` is refitted with `P = MIN_SLOPE`.
///
/// Rows beyond the shorter slice and rows with a non-finite score are ignored; a label `> 0.5`
/// is a positive. With no rows left it returns the identity `(1, 0)`.
pub fn fit_platt(scores: &[f32], labels: &[f32]) -> (f64, f64) {
    let rows: Vec<(f64, bool)> = scores
        .iter()
        .zip(labels)
        .filter(|(s, _)| s.is_finite())
        .map(|(&s, &y)| (s as f64, y > 0.5))
        .collect();
    if rows.is_empty() {
        return (1.0, 0.0);
    }
    let n_pos = rows.iter().filter(|r| r.1).count() as f64;
    let n_neg = rows.len() as f64 - n_pos;
    let (t_pos, t_neg) = ((n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0));
    let data: Vec<(f64, f64)> = rows
        .iter()
        .map(|&(s, y)| (s, if y { t_pos } else { t_neg }))
        .collect();
    let prior_logit = ((n_pos + 1.0) / (n_neg + 1.0)).ln();
    let (p, q) = newton(&data, None, (0.0, prior_logit));
    if p >= MIN_SLOPE {
        (p, q)
    } else {
        newton(&data, Some(MIN_SLOPE), (MIN_SLOPE, q))
    }
}

/// Mean cross-entropy of `sigmoid(p s + q)` against soft targets `t`.
fn platt_objective(data: &[(f64, f64)], p: f64, q: f64) -> f64 {
    let sum: f64 = data
        .iter()
        .map(|&(s, t)| {
            let f = p * s + q;
            f.max(0.0) + (-f.abs()).exp().ln_1p() - t * f
        })
        .sum();
    sum / data.len() as f64
}

/// Newton's method with backtracking on `(p, q)`, or on `q` alone when `fixed_p` is given.
fn newton(data: &[(f64, f64)], fixed_p: Option<f64>, start: (f64, f64)) -> (f64, f64) {
    let n = data.len() as f64;
    let (mut p, mut q) = start;
    let mut f = platt_objective(data, p, q);
    for _ in 0..100 {
        // Gradient and Hessian of the mean objective.
        let (mut gp, mut gq, mut hpp, mut hpq, mut hqq) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(s, t) in data {
            let z = p * s + q;
            let prob = if z >= 0.0 {
                1.0 / (1.0 + (-z).exp())
            } else {
                let e = z.exp();
                e / (1.0 + e)
            };
            let w = prob * (1.0 - prob);
            gp += (prob - t) * s;
            gq += prob - t;
            hpp += w * s * s;
            hpq += w * s;
            hqq += w;
        }
        let (gp, gq) = (gp / n, gq / n);
        let (hpp, hpq, hqq) = (hpp / n + 1e-12, hpq / n, hqq / n + 1e-12);
        let (dp, dq) = match fixed_p {
            Some(_) => (0.0, -gq / hqq),
            None => {
                let det = hpp * hqq - hpq * hpq;
                (-(hqq * gp - hpq * gq) / det, -(hpp * gq - hpq * gp) / det)
            }
        };
        let slope = gp * dp + gq * dq;
        // Done at a stationary point, or when the direction is not one of descent (or NaN).
        if gp.abs().max(gq.abs()) < 1e-12 || slope.is_nan() || slope >= 0.0 {
            break;
        }
        let mut step = 1.0;
        let mut moved = false;
        while step >= 1e-10 {
            let (np, nq) = (p + step * dp, q + step * dq);
            let nf = platt_objective(data, np, nq);
            if nf <= f + 1e-4 * step * slope {
                (p, q, f) = (np, nq, nf);
                moved = true;
                break;
            }
            step /= 2.0;
        }
        if !moved {
            break;
        }
    }
    (p, q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn sp(x: f64) -> f64 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    const R: [f64; 6] = [1.2, -0.4, 2.5, 0.1, -1.8, 0.7];
    const Y: [f64; 6] = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0];

    /// The calibration loss in plain f64.
    fn reference(rho: f64, q: f64) -> f64 {
        let p = sp(rho);
        R.iter()
            .zip(Y)
            .map(|(&r, y)| sp(p * r + q) - y * (p * r + q))
            .sum::<f64>()
            / R.len() as f64
    }

    #[test]
    fn the_loss_moves_the_calibrator_and_never_the_teacher() {
        let d = Device::Cpu;
        let r = Var::new(&R, &d).unwrap();
        let rho = Var::new(&[0.3f64], &d).unwrap();
        let q = Var::new(0.2f64, &d).unwrap();
        let y = Tensor::new(&Y, &d).unwrap();
        let loss = calibration_loss(r.as_tensor(), rho.as_tensor(), q.as_tensor(), &y).unwrap();
        let grads = loss.backward().unwrap();
        if let Some(g) = grads.get(&r) {
            let g: Vec<f64> = g.to_vec1().unwrap();
            assert!(g.iter().all(|&x| x == 0.0), "teacher got {g:?}");
        }
        let g_rho = grads.get(&rho).unwrap().to_vec1::<f64>().unwrap()[0];
        let g_q = grads.get(&q).unwrap().to_scalar::<f64>().unwrap();
        assert!(g_rho != 0.0 && g_q != 0.0, "{g_rho} {g_q}");
        // Both match central finite differences.
        let h = 1e-6;
        let fd_rho = (reference(0.3 + h, 0.2) - reference(0.3 - h, 0.2)) / (2.0 * h);
        let fd_q = (reference(0.3, 0.2 + h) - reference(0.3, 0.2 - h)) / (2.0 * h);
        assert!((fd_rho - g_rho).abs() < 1e-7, "{fd_rho} vs {g_rho}");
        assert!((fd_q - g_q).abs() < 1e-7, "{fd_q} vs {g_q}");
        // And the value is the reference's.
        let v = loss.to_scalar::<f64>().unwrap();
        assert!((v - reference(0.3, 0.2)).abs() < 1e-12);
    }

    #[test]
    fn the_calibrated_logit_is_softplus_rho_times_r_plus_q() {
        let d = Device::Cpu;
        let r = Tensor::new(&[-1.0f32, 0.0, 2.0], &d).unwrap();
        for rho in [
            Tensor::new(0.5f32, &d).unwrap(),
            Tensor::new(&[0.5f32], &d).unwrap(),
        ] {
            let q = Tensor::new(&[-0.25f32], &d).unwrap();
            let got: Vec<f32> = calibrated_logit(&r, &rho, &q).unwrap().to_vec1().unwrap();
            let p = sp(0.5) as f32;
            let want = [-p - 0.25, -0.25, 2.0 * p - 0.25];
            for (a, b) in got.iter().zip(want) {
                assert!((a - b).abs() < 1e-6, "{got:?} vs {want:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn calibration_never_changes_the_order_of_scores(
            scores in proptest::collection::vec(-50.0f32..50.0, 2..40),
            rho in -8.0f32..8.0,
            q in -10.0f32..10.0,
        ) {
            let d = Device::Cpu;
            let r = Tensor::new(scores.as_slice(), &d).unwrap();
            let c: Vec<f32> = calibrated_logit(
                &r,
                &Tensor::new(rho, &d).unwrap(),
                &Tensor::new(q, &d).unwrap(),
            )
            .unwrap()
            .to_vec1()
            .unwrap();
            for i in 0..scores.len() {
                for j in 0..scores.len() {
                    if scores[i] < scores[j] {
                        prop_assert!(c[i] <= c[j], "{} -> {}, {} -> {}", scores[i], c[i], scores[j], c[j]);
                    }
                }
            }
        }
    }

    #[test]
    fn fit_platt_recovers_a_known_calibration() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (p_true, q_true) = (1.7, -0.8);
        let n = 20_000;
        let scores: Vec<f32> = (0..n).map(|_| rng.random_range(-3.0f32..3.0)).collect();
        let labels: Vec<f32> = scores
            .iter()
            .map(|&s| f32::from(rng.random::<f64>() < sigmoid(p_true * s as f64 + q_true)))
            .collect();
        let (p, q) = fit_platt(&scores, &labels);
        assert!(
            (p - p_true).abs() < 0.1 && (q - q_true).abs() < 0.1,
            "P {p} Q {q}"
        );
        // A maximum: the objective is flat there.
        let data: Vec<(f64, f64)> = scores
            .iter()
            .zip(&labels)
            .map(|(&s, &y)| (s as f64, y as f64))
            .collect();
        let f = platt_objective(&data, p, q);
        for (dp, dq) in [(0.05, 0.0), (-0.05, 0.0), (0.0, 0.05), (0.0, -0.05)] {
            assert!(platt_objective(&data, p + dp, q + dq) > f - 1e-6);
        }
    }

    #[test]
    fn fit_platt_keeps_the_slope_positive_on_reversed_scores() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let scores: Vec<f32> = (0..5_000).map(|_| rng.random_range(-3.0f32..3.0)).collect();
        let labels: Vec<f32> = scores
            .iter()
            .map(|&s| f32::from(rng.random::<f64>() < sigmoid(-2.0 * s as f64 + 0.5)))
            .collect();
        let (p, q) = fit_platt(&scores, &labels);
        assert_eq!(p, MIN_SLOPE);
        // With a flat slope, Q is about the logit of the positive rate.
        let rate = labels.iter().sum::<f32>() as f64 / labels.len() as f64;
        let want = (rate / (1.0 - rate)).ln();
        assert!((q - want).abs() < 0.02, "Q {q} vs {want}");
    }

    #[test]
    fn fit_platt_is_finite_on_separable_single_class_and_empty_data() {
        let (p, q) = fit_platt(&[-2.0, -1.0, 1.0, 2.0], &[0.0, 0.0, 1.0, 1.0]);
        assert!(p.is_finite() && p > 0.0 && q.is_finite(), "{p} {q}");
        let (p, q) = fit_platt(&[0.5, 1.5, f32::NAN], &[1.0, 1.0, 0.0]);
        assert!(
            p.is_finite() && p >= MIN_SLOPE && q.is_finite() && q > 0.0,
            "{p} {q}"
        );
        assert_eq!(fit_platt(&[], &[]), (1.0, 0.0));
    }

    #[test]
    fn inverse_softplus_inverts_softplus() {
        for p in [1e-6, 0.01, 0.5, 1.0, 7.0, 40.0, 800.0] {
            let back = sp(inverse_softplus(p));
            assert!((back - p).abs() <= 1e-9 * p.max(1.0), "{p}: {back}");
        }
    }
}
