//! A fully connected layer whose parameters live in the [`ParamStore`].

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::activation::Activation;
use crate::group_op::linear;
use crate::init::Init;
use crate::params::ParamStore;

/// `y = x W^T + b`, `W: [out, in]`, `b: [out]`, `x: [n, in]`, `y: [n, out]`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    /// A parameter of the [`ParamStore`], or a view of a packed one
    /// ([`crate::mlp_group::PackedGroup`]).
    pub(crate) weight: Tensor,
    pub(crate) bias: Tensor,
}

impl Linear {
    /// Registers `<name>.weight` (initialised with `init`) and `<name>.bias` (zeros).
    pub(crate) fn new(
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
        Ok(Linear {
            weight: weight.as_tensor().clone(),
            bias: bias.as_tensor().clone(),
        })
    }

    pub(crate) fn out_dim(&self) -> usize {
        self.bias.dims()[0]
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        linear(x, &self.weight, &self.bias, false)
    }

    /// `act(x W^T + b)`; ReLU and the identity are part of the fused layer
    /// ([`crate::group_op::linear`]), other activations follow it.
    pub(crate) fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        match act {
            Activation::Relu => linear(x, &self.weight, &self.bias, true),
            Activation::Identity => self.forward(x),
            other => other.apply(&self.forward(x)?),
        }
    }
}
