//! A fully connected layer whose parameters live in the [`ParamStore`].

use candle_core::{Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

use crate::activation::Activation;
use crate::bias_act::bias_act;
use crate::init::Init;
use crate::params::ParamStore;

/// `y = x W^T + b`, `W: [out, in]`, `b: [out]`, `x: [n, in]`, `y: [n, out]`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Var,
    pub bias: Var,
}

impl Linear {
    /// Registers `<name>.weight` (initialised with `init`) and `<name>.bias` (zeros).
    pub fn new(
        name: &str,
        in_dim: usize,
        out_dim: usize,
        init: Init,
        params: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let weight =
            params.get_or_init(&format!("{name}.weight"), &[out_dim, in_dim], init, rng)?;
        let bias = params.get_or_init(&format!("{name}.bias"), &[out_dim], Init::Zeros, rng)?;
        Ok(Linear { weight, bias })
    }

    pub fn out_dim(&self) -> usize {
        self.bias.dims()[0]
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        bias_act(&x.matmul(&self.weight.t()?)?, &self.bias, false)
    }

    /// `act(x W^T + b)`; ReLU and the identity are fused with the bias add
    /// ([`crate::bias_act`]), other activations follow it.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        let z = x.matmul(&self.weight.t()?)?;
        match act {
            Activation::Relu => bias_act(&z, &self.bias, true),
            Activation::Identity => bias_act(&z, &self.bias, false),
            other => other.apply(&bias_act(&z, &self.bias, false)?),
        }
    }
}
