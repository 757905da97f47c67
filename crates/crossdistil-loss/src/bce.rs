//! Binary cross-entropy on logits.
//!
//! For a logit `x` and a target `y` in `[0, 1]` (hard 0/1 labels or soft targets):
//!
//! ```text
//! bce(x, y) = -y log(sigmoid(x)) - (1 - y) log(1 - sigmoid(x))
//!           = relu(x) - x y + log(1 + exp(-|x|))
//! ```
//!
//! The second form is finite for every finite logit (candle's own `sigmoid`-then-`log` is not,
//! past |x| ~ 20). Its gradient with respect to `x` is `sigmoid(x) - y`.

use candle_core::{Result, Tensor};

use crate::stable::softplus;

/// Elementwise BCE, same shape as `logits` (`targets` broadcastable to it).
pub(crate) fn bce_elementwise(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    // relu(x) - x y + log(1 + exp(-|x|)) = softplus(x) - x y
    softplus(logits)?.sub(&logits.broadcast_mul(targets)?)
}

/// Mean BCE over all elements. `logits` and `targets`: the same shape, any rank.
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    bce_elementwise(logits, targets)?.mean_all()
}

/// Mean BCE over all elements of `logits` and `targets` `[b]`, each row's term multiplied by its
/// weight in `row_weights` `[b]` when given: `mean_i w_i bce(x_i, y_i)` (the plain
/// [`bce_with_logits`] without weights).
pub(crate) fn mean_bce(
    logits: &Tensor,
    targets: &Tensor,
    row_weights: Option<&Tensor>,
) -> Result<Tensor> {
    match row_weights {
        None => bce_with_logits(logits, targets),
        Some(w) => bce_elementwise(logits, targets)?.mul(w)?.mean_all(),
    }
}

/// Per-task mean BCE `[T]` of `logits` and `targets` `[b, T]`, each row's terms multiplied by
/// its weight in `row_weights` `[b]` when given: `BCE_k = mean_i w_i bce(x_ik, y_ik)` (the mean
/// over the rows, not over the weights, so that the parts of a batch add up to the whole).
pub fn per_task_bce(
    logits: &Tensor,
    targets: &Tensor,
    row_weights: Option<&Tensor>,
) -> Result<Tensor> {
    let l = bce_elementwise(logits, targets)?;
    match row_weights {
        None => l.mean(0),
        Some(w) => l.broadcast_mul(&w.unsqueeze(1)?)?.mean(0),
    }
}

/// Multi-task BCE: `logits` and `targets` `[b, T]`, `weights` one per task; returns
/// `sum_t weights[t] * mean_i bce(logits[i, t], targets[i, t])` and the per-task means `[T]`.
pub fn weighted_bce_with_logits(
    logits: &Tensor,
    targets: &Tensor,
    weights: &[f32],
) -> Result<(Tensor, Tensor)> {
    let per_task = bce_elementwise(logits, targets)?.mean(0)?;
    let w =
        Tensor::from_slice(weights, weights.len(), logits.device())?.to_dtype(logits.dtype())?;
    let total = per_task.mul(&w)?.sum_all()?;
    Ok((total, per_task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn reference(x: f64, y: f64) -> f64 {
        let p = 1.0 / (1.0 + (-x).exp());
        -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
    }

    #[test]
    fn matches_the_definition_for_hard_and_soft_targets() {
        let xs = [-3.0f32, -0.5, 0.0, 0.7, 4.0];
        let ys = [0.0f32, 1.0, 0.3, 1.0, 0.9];
        let d = Device::Cpu;
        let l: Vec<f32> = bce_elementwise(
            &Tensor::new(&xs, &d).unwrap(),
            &Tensor::new(&ys, &d).unwrap(),
        )
        .unwrap()
        .to_vec1()
        .unwrap();
        for i in 0..5 {
            assert!(
                (l[i] as f64 - reference(xs[i] as f64, ys[i] as f64)).abs() < 1e-5,
                "{i}"
            );
        }
    }

    #[test]
    fn finite_loss_and_gradient_at_huge_logits() {
        let d = Device::Cpu;
        let x = Var::new(&[-200.0f32, 200.0, 50.0], &d).unwrap();
        let y = Tensor::new(&[1.0f32, 0.0, 1.0], &d).unwrap();
        let loss = bce_with_logits(x.as_tensor(), &y).unwrap();
        let v = loss.to_scalar::<f32>().unwrap();
        assert!((v - 400.0 / 3.0).abs() < 1e-3, "{v}");
        let g: Vec<f32> = loss.backward().unwrap().get(&x).unwrap().to_vec1().unwrap();
        // d/dx mean = (sigmoid(x) - y) / n
        let want = [-1.0f32 / 3.0, 1.0 / 3.0, 0.0];
        for (a, b) in g.iter().zip(want) {
            assert!(a.is_finite() && (a - b).abs() < 1e-6, "{g:?}");
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let d = Device::Cpu;
        let xs = [-1.3f64, 0.2, 2.1, -0.4, 0.9, 3.3];
        let ys = [1.0f64, 0.0, 1.0, 0.25, 0.0, 1.0];
        let x = Var::new(&xs, &d).unwrap().reshape((3, 2)).unwrap();
        let xv = Var::from_tensor(&x).unwrap();
        let y = Tensor::new(&ys, &d).unwrap().reshape((3, 2)).unwrap();
        let weights = [0.7f32, 1.5];
        let (total, _) = weighted_bce_with_logits(xv.as_tensor(), &y, &weights).unwrap();
        let g: Vec<f64> = total
            .backward()
            .unwrap()
            .get(&xv)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let f = |xs: &[f64]| -> f64 {
            let mut s = 0.0;
            for t in 0..2 {
                let m: f64 = (0..3)
                    .map(|i| reference(xs[i * 2 + t], ys[i * 2 + t]))
                    .sum::<f64>()
                    / 3.0;
                s += weights[t] as f64 * m;
            }
            s
        };
        for k in 0..6 {
            let (mut a, mut b) = (xs, xs);
            a[k] += 1e-6;
            b[k] -= 1e-6;
            let fd = (f(&a) - f(&b)) / 2e-6;
            assert!((fd - g[k]).abs() < 1e-6, "{k}: {fd} vs {}", g[k]);
        }
    }
}
