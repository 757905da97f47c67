//! Shared-Bottom (Caruana, 1997): one MLP shared by every task.

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::mlp::{Mlp, MlpConfig};
use crate::mode::Mode;
use crate::params::ParamStore;

/// `repr_t = mlp(x)` for every task.
#[derive(Debug, Clone)]
pub struct SharedBottom {
    mlp: Mlp,
    n_tasks: usize,
}

impl SharedBottom {
    /// Registers `backbone.shared.layer<i>.*`.
    pub fn new(
        cfg: &MlpConfig,
        in_dim: usize,
        n_tasks: usize,
        params: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let mlp = Mlp::new(cfg, "backbone.shared", in_dim, params, rng)?;
        Ok(SharedBottom { mlp, n_tasks })
    }

    /// The size of every task representation.
    pub fn out_dim(&self) -> usize {
        self.mlp.out_dim()
    }

    /// `x: [b, in_dim]` -> one `[b, out_dim]` representation per task.
    pub fn forward(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Vec<Tensor>> {
        let h = self.mlp.forward(x, mode)?;
        Ok(vec![h; self.n_tasks])
    }
}
