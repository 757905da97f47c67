//! Numerically stable building blocks.

use candle_core::{Result, Tensor};

/// `softplus(x) = log(1 + exp(x))`, computed as `relu(x) + log(1 + exp(-|x|))`: finite for every
/// finite `x`, and so is its gradient `sigmoid(x)`.
pub(crate) fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()?
        .add(&x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn softplus_is_finite_at_extreme_logits_and_matches_the_formula() {
        let xs = [-1000.0f32, -30.0, -1.0, 0.0, 2.5, 30.0, 1000.0];
        let t = Tensor::new(&xs, &Device::Cpu).unwrap();
        let y: Vec<f32> = softplus(&t).unwrap().to_vec1().unwrap();
        for (x, y) in xs.iter().zip(&y) {
            let want = (*x as f64).max(0.0) + (-(*x as f64).abs()).exp().ln_1p();
            assert!(
                y.is_finite() && (*y as f64 - want).abs() < 1e-5 * want.abs().max(1.0),
                "{x}: {y} vs {want}"
            );
        }
        // Its gradient is sigmoid(x), finite everywhere.
        let v = Var::new(&xs, &Device::Cpu).unwrap();
        let g = softplus(v.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g: Vec<f32> = g.get(&v).unwrap().to_vec1().unwrap();
        for (x, g) in xs.iter().zip(&g) {
            let want = 1.0 / (1.0 + (-x).exp());
            assert!((g - want).abs() < 1e-6, "{x}: {g} vs {want}");
        }
    }
}
