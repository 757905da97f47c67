//! GradNorm (Chen, Badrinarayanan, Lee and Rabinovich, ICML 2018): task weights `w_k`, learned
//! so that the tasks' gradient norms at a shared layer train at balanced rates.
//!
//! Here the shared layer is the batch's embedding matrix (the embeddings every backbone
//! shares). With `L_k` task `k`'s loss (its BCE times its fixed `task_weights` entry) on the
//! batch, `L_k(0)` its loss at the first step, and `T` tasks:
//!
//! ```text
//! g_k   = ||d L_k / d E||                    the gradient norm of task k at the embeddings E
//! G_k   = w_k g_k                            the norm of the weighted task's gradient
//! r_k   = (L_k / L_k(0)) / mean_j (L_j / L_j(0))    the relative inverse training rate
//! L_gn  = sum_k |G_k - mean_j(G_j) r_k^alpha|       the target held constant
//! dL_gn / dw_k = sign(G_k - mean_j(G_j) r_k^alpha) g_k
//! ```
//!
//! The objective weighs task `k`'s BCE by `w_k` (held constant there, so the objective does not
//! train `w`); `dL_gn / dw` is the gradient Adam applies to `w` (at `gradnorm_lr`), and before
//! each step the weights are renormalised to `sum_k w_k = T`. A task whose loss falls more slowly
//! than the others (`r_k > 1`) is given a larger gradient norm; `alpha = 0` only equalises the
//! norms. Because `E` holds one row per example, `g_k^2` is the sum over the rows of a batch of
//! their squared gradients, so the parts of a batch (workers, ranks) add up to the whole batch.

/// The gradient of GradNorm's loss with respect to the task weights `w`, `[T]`: from the tasks'
/// losses `loss` (`L_k`), their first losses `loss0` (`L_k(0) > 0`), and the squared norms
/// `grad_sq` (`g_k^2`) of their unweighted gradients at the shared layer.
pub fn weight_gradient(
    w: &[f32],
    loss: &[f64],
    loss0: &[f64],
    grad_sq: &[f64],
    alpha: f64,
) -> Vec<f32> {
    let t = w.len() as f64;
    let g: Vec<f64> = grad_sq.iter().map(|s| s.max(0.0).sqrt()).collect();
    let big_g: Vec<f64> = w.iter().zip(&g).map(|(&w, g)| f64::from(w) * g).collect();
    let mean_g = big_g.iter().sum::<f64>() / t;
    let ratio: Vec<f64> = loss
        .iter()
        .zip(loss0)
        .map(|(l, l0)| if *l0 > 0.0 { l / l0 } else { 1.0 })
        .collect();
    let mean_ratio = ratio.iter().sum::<f64>() / t;
    big_g
        .iter()
        .zip(&ratio)
        .zip(&g)
        .map(|((gk, rk), g)| {
            let r = if mean_ratio > 0.0 {
                rk / mean_ratio
            } else {
                1.0
            };
            let target = mean_g * r.powf(alpha);
            let diff = gk - target;
            (if diff > 0.0 {
                *g
            } else if diff < 0.0 {
                -g
            } else {
                0.0
            }) as f32
        })
        .collect()
}

/// The weights rescaled to sum to their number, `T w / sum w`, each at least [`MIN_WEIGHT`]
/// first (Adam may push a weight below 0).
pub fn renormalised(w: &[f32]) -> Vec<f32> {
    let floored: Vec<f64> = w.iter().map(|&x| f64::from(x).max(MIN_WEIGHT)).collect();
    let sum: f64 = floored.iter().sum();
    floored
        .iter()
        .map(|x| (x * w.len() as f64 / sum) as f32)
        .collect()
}

/// The smallest task weight, before renormalisation.
pub const MIN_WEIGHT: f64 = 1e-3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gradient_points_towards_balanced_norms() {
        // Task 1's gradient is 4 times task 0's; equal training rates: w_1 should fall.
        let g = weight_gradient(&[1.0, 1.0], &[0.5, 0.5], &[0.7, 0.7], &[1.0, 16.0], 1.5);
        assert_eq!(g, [-1.0, 4.0]);
        // At w = (1.6, 0.4) the weighted norms are equal (1.6): no push either way.
        let g = weight_gradient(&[1.6, 0.4], &[0.5, 0.5], &[0.7, 0.7], &[1.0, 16.0], 1.5);
        assert!(g.iter().all(|&x| x == 0.0), "{g:?}");
    }

    #[test]
    fn a_task_that_trains_slowly_is_given_a_larger_norm() {
        // Equal norms, but task 0's loss has fallen less: its target is above the mean.
        let g = weight_gradient(&[1.0, 1.0], &[0.6, 0.3], &[0.7, 0.7], &[1.0, 1.0], 1.0);
        assert_eq!(g, [-1.0, 1.0]);
        // alpha = 0 only equalises the norms.
        let g = weight_gradient(&[1.0, 1.0], &[0.6, 0.3], &[0.7, 0.7], &[1.0, 1.0], 0.0);
        assert_eq!(g, [0.0, 0.0]);
    }

    #[test]
    fn renormalised_weights_sum_to_the_number_of_tasks() {
        let w = renormalised(&[2.0, 1.0, 1.0]);
        assert!((w.iter().sum::<f32>() - 3.0).abs() < 1e-6);
        assert!((w[0] / w[1] - 2.0).abs() < 1e-6);
        let w = renormalised(&[-1.0, 1.0]);
        assert!(w[0] > 0.0 && (w.iter().sum::<f32>() - 2.0).abs() < 1e-6);
    }
}
