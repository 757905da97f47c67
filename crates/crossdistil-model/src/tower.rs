//! Per-task towers: an MLP then a linear layer to one logit.

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::init::Init;
use crate::linear::Linear;
use crate::mlp::{Mlp, MlpConfig};
use crate::mode::Mode;
use crate::params::ParamStore;

/// `logit = mlp(repr) w^T + b`: `[b, in_dim] -> [b, 1]`, no activation on the logit.
#[derive(Debug, Clone)]
pub struct Tower {
    mlp: Mlp,
    out: Linear,
}

impl Tower {
    /// Registers `<name>.layer<i>.*` and `<name>.out.*`.
    pub fn new(
        cfg: &MlpConfig,
        name: &str,
        in_dim: usize,
        params: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let mlp = Mlp::new(cfg, name, in_dim, params, rng)?;
        let out_name = format!("{name}.out");
        let out = Linear::new(
            &out_name,
            mlp.out_dim(),
            1,
            Init::XavierUniform,
            params,
            rng,
        )?;
        Ok(Tower { mlp, out })
    }

    /// `repr: [b, in_dim]` -> logits `[b, 1]`.
    pub fn forward(&self, repr: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        self.out.forward(&self.mlp.forward(repr, mode)?)
    }
}
