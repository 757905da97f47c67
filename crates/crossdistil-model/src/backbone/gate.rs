//! Softmax gates that mix experts (MMoE, PLE).

use candle_core::{D, Result, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::init::Init;
use crate::linear::Linear;
use crate::params::ParamStore;

/// `g = softmax(input W^T + b)` over `n_experts`, then `sum_e g[:, e] * expert_e`.
#[derive(Debug, Clone)]
pub struct Gate {
    pub linear: Linear,
}

impl Gate {
    /// Registers `<name>.{weight,bias}`: `[n_experts, in_dim]`, `[n_experts]`.
    pub fn new(
        name: &str,
        in_dim: usize,
        n_experts: usize,
        params: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let linear = Linear::new(name, in_dim, n_experts, Init::XavierUniform, params, rng)?;
        Ok(Gate { linear })
    }

    /// `input: [b, in_dim]`, `experts`: the `n_experts` outputs `[b, h]` -> `[b, h]`.
    pub fn forward(&self, input: &Tensor, experts: &[Tensor]) -> Result<Tensor> {
        mix(&self.linear.forward(input)?, experts)
    }
}

/// `out = sum_e softmax(logits)[:, e] * experts[e]`: `logits: [b, E]`, `E` experts `[b, h]`
/// -> `[b, h]`. The softmax is `candle_nn::ops::softmax` (it has a backward;
/// `softmax_last_dim` has none).
///
/// Written as `E` column-times-matrix products rather than a `[b, E, h]` stack summed over its
/// middle axis: candle reduces a middle axis with a strided loop, forward and backward, and that
/// was a large share of an MMoE step (docs/performance.md).
pub fn mix(logits: &Tensor, experts: &[Tensor]) -> Result<Tensor> {
    let (_, n) = logits.dims2()?;
    if n != experts.len() {
        candle_core::bail!("a gate over {n} experts got {}", experts.len());
    }
    // `[E, b]`, so that each expert's weights are one contiguous column `[b, 1]`.
    let gate_t = candle_nn::ops::softmax(logits, D::Minus1)?
        .t()?
        .contiguous()?;
    let mut out: Option<Tensor> = None;
    for (e, x) in experts.iter().enumerate() {
        let term = gate_t.get(e)?.unsqueeze(1)?.broadcast_mul(x)?;
        out = Some(match out {
            None => term,
            Some(o) => o.add(&term)?,
        });
    }
    out.ok_or_else(|| candle_core::Error::Msg("a gate needs at least one expert".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Equals the stacked form `sum_e (softmax(l)[:, e, None] * stack(experts)[:, e])`, values and
    /// gradients.
    #[test]
    fn mix_equals_the_stacked_form() {
        let dev = Device::Cpu;
        let vals = |n: usize, k: f32| (0..n).map(|i| (i as f32 * k).sin()).collect::<Vec<_>>();
        let l = Var::from_vec(vals(5 * 3, 0.7), (5, 3), &dev).unwrap();
        let xs: Vec<Var> = (0..3)
            .map(|e| Var::from_vec(vals(5 * 4, 1.3 + e as f32), (5, 4), &dev).unwrap())
            .collect();
        let r = Tensor::from_vec(vals(20, 2.1), (5, 4), &dev).unwrap();
        let experts: Vec<Tensor> = xs.iter().map(|x| x.as_tensor().clone()).collect();
        let new = mix(l.as_tensor(), &experts).unwrap();
        let old = candle_nn::ops::softmax(l.as_tensor(), D::Minus1)
            .unwrap()
            .unsqueeze(2)
            .unwrap()
            .broadcast_mul(&Tensor::stack(&experts, 1).unwrap())
            .unwrap()
            .sum(1)
            .unwrap();
        let diff = |a: &Tensor, b: &Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(diff(&new, &old) < 1e-6);
        let gn = (new * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let go = (old * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for v in std::iter::once(&l).chain(&xs) {
            assert!(diff(gn.get(v).unwrap(), go.get(v).unwrap()) < 1e-6);
        }
    }
}
