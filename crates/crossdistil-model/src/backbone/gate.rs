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

    /// `input: [b, in_dim]`, `experts: [b, n_experts, h]` (see [`stack_experts`]) -> `[b, h]`.
    pub fn forward(&self, input: &Tensor, experts: &Tensor) -> Result<Tensor> {
        mix(&self.linear.forward(input)?, experts)
    }
}

/// Stacks expert outputs `E x [b, h]` into `[b, E, h]`.
pub fn stack_experts(outputs: &[Tensor]) -> Result<Tensor> {
    Tensor::stack(outputs, 1)
}

/// `out[i] = sum_e softmax(logits[i])[e] * experts[i, e]`: `logits: [b, E]`,
/// `experts: [b, E, h]` -> `[b, h]`. The softmax is `candle_nn::ops::softmax` (it has a
/// backward; `softmax_last_dim` has none).
pub fn mix(logits: &Tensor, experts: &Tensor) -> Result<Tensor> {
    let gate = candle_nn::ops::softmax(logits, D::Minus1)?;
    gate.unsqueeze(2)?.broadcast_mul(experts)?.sum(1)
}
