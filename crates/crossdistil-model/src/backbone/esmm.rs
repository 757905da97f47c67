//! ESMM, the entire-space multi-task model (Ma et al., SIGIR 2018), for a chain of tasks where
//! each label implies the one before (a purchase implies a click): one MLP per task on the
//! shared embeddings, and the served probability of task `k` is the product of the towers'
//! probabilities up to it,
//!
//! ```text
//! p_k = prod_{j <= k} sigmoid(z_j)        (pCTCVR = pCTR x pCVR)
//! ```
//!
//! every one trained with its own label over every impression. A conversion model trained on
//! clicked impressions only learns on a sample unlike the one it scores (sample selection
//! bias) and from few rows; here `sigmoid(z_1)`, the conversion rate given a click, is learned
//! on the whole space through the product, without ever being fitted to the clicked rows alone.
//!
//! The chained logit is computed without forming the product: with `u_k = log(1 / p_k - 1)`,
//! `u_0 = -z_0` and `u_k = logsumexp(u_{k-1} + softplus(-z_k), -z_k)`, and `logit(p_k) = -u_k`.

use candle_core::{D, Result, Tensor};

use crate::backbone::single_task::SingleTask;

/// ESMM's backbone: [`SingleTask`]'s independent MLPs, one per task of the chain; the model
/// chains the towers' logits with [`chain_logits`].
pub type Esmm = SingleTask;

/// `log(1 + exp(x))`, stable for any `x`.
fn softplus(x: &Tensor) -> Result<Tensor> {
    // max(x, 0) + log(1 + exp(-|x|))
    x.relu()?.add(&(x.abs()?.neg()?.exp()? + 1.0)?.log()?)
}

/// `log(exp(a) + exp(b))`, stable.
fn logsumexp2(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let m = a.maximum(b)?;
    let s = (a.sub(&m)?.exp()? + b.sub(&m)?.exp()?)?;
    m.add(&s.log()?)
}

/// The logits of the chained probabilities: `z: [b, T]`, the towers' logits in chain order, to
/// `[b, T]` whose column `k` is `logit(prod_{j <= k} sigmoid(z_j))` (see the module
/// documentation for the stable recursion).
pub fn chain_logits(z: &Tensor) -> Result<Tensor> {
    let t = z.dim(D::Minus1)?;
    let col = |k: usize| z.narrow(1, k, 1);
    let mut u = col(0)?.neg()?;
    let mut out = vec![u.neg()?];
    for k in 1..t {
        let zk = col(k)?;
        u = logsumexp2(&u.add(&softplus(&zk.neg()?)?)?, &zk.neg()?)?;
        out.push(u.neg()?);
    }
    Tensor::cat(&out, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn the_chained_logit_is_the_logit_of_the_product() {
        let rows = [
            [0.3, -1.2, 2.0],
            [-8.0, 9.0, 0.0],
            [12.0, 15.0, 11.0],
            [-30.0, -30.0, -30.0],
        ];
        let z: Vec<f64> = rows.iter().flatten().copied().collect();
        let t = Tensor::from_vec(z, (4, 3), &Device::Cpu).unwrap();
        let got = chain_logits(&t).unwrap().to_vec2::<f64>().unwrap();
        for (row, g) in rows.iter().zip(&got) {
            let mut p = 1.0;
            for (k, &zk) in row.iter().enumerate() {
                p *= sigmoid(zk);
                // logit(p) = log p - log(1 - p), evaluated where it is exact enough.
                let want = p.ln() - (1.0 - p).ln();
                if p < 0.999 {
                    assert!(
                        (g[k] - want).abs() < 1e-9 * want.abs().max(1.0),
                        "{row:?}: {g:?}"
                    );
                }
                assert!(g[k].is_finite());
            }
            // Each probability of the chain is at most the one before.
            assert!(g.windows(2).all(|w| w[1] <= w[0] + 1e-12), "{g:?}");
        }
        // Near p = 1 the recursion stays exact: logit(sigmoid(12) sigmoid(15)).
        let want = -((-12.0f64).exp() + (-15.0f64).exp() + (-27.0f64).exp()).ln();
        assert!(
            (got[2][1] - want).abs() < 1e-9,
            "{} against {want}",
            got[2][1]
        );
    }

    #[test]
    fn its_gradient_matches_finite_differences() {
        let z0 = vec![0.4f64, -0.7, 1.3, 2.5, -3.0, 0.1];
        let v = Var::from_vec(z0.clone(), (2, 3), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(
            vec![0.5f64, -1.0, 2.0, 1.5, 0.25, -0.75],
            (2, 3),
            &Device::Cpu,
        )
        .unwrap();
        let loss = |t: &Tensor| chain_logits(t).unwrap().mul(&w).unwrap().sum_all().unwrap();
        let g = loss(v.as_tensor()).backward().unwrap();
        let g = g
            .get(v.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let h = 1e-6;
        for i in 0..z0.len() {
            let at = |d: f64| {
                let mut z = z0.clone();
                z[i] += d;
                let t = Tensor::from_vec(z, (2, 3), &Device::Cpu).unwrap();
                loss(&t).to_scalar::<f64>().unwrap()
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            assert!((g[i] - fd).abs() < 1e-6, "{i}: {} against {fd}", g[i]);
        }
    }
}
