//! Independent towers per task: no sharing beyond the input.

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::mlp::{Mlp, MlpConfig};
use crate::mode::Mode;
use crate::params::ParamStore;

/// One MLP per task on `x`: `repr_t = mlp_t(x)`.
#[derive(Debug, Clone)]
pub struct SingleTask {
    mlps: Vec<Mlp>,
}

impl SingleTask {
    /// Registers `backbone.task<t>.layer<i>.*`.
    pub fn new(
        cfg: &MlpConfig,
        in_dim: usize,
        n_tasks: usize,
        params: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let mlps = (0..n_tasks)
            .map(|t| Mlp::new(cfg, &format!("backbone.task{t}"), in_dim, params, rng))
            .collect::<Result<_>>()?;
        Ok(SingleTask { mlps })
    }

    /// The size of every task representation.
    pub fn out_dim(&self) -> usize {
        self.mlps[0].out_dim()
    }

    /// `x: [b, in_dim]` -> one `[b, out_dim]` representation per task.
    pub fn forward(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Vec<Tensor>> {
        self.mlps.iter().map(|m| m.forward(x, mode)).collect()
    }
}
