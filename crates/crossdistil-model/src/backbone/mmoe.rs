//! MMoE (Ma et al., KDD 2018): shared experts, one softmax gate per task.

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::backbone::gate::Gate;
use crate::config::{ConfigError, positive};
use crate::mlp::MlpConfig;
use crate::mlp_group::PackedGroup;
use crate::mode::Mode;
use crate::params::ParamStore;

/// `experts` expert MLPs of sizes `hidden`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmoeConfig {
    /// The number of experts, shared by every task's gate (4).
    #[serde(default = "default_experts")]
    pub experts: usize,
    /// The layer sizes of every expert; the last one is the size of each representation.
    pub hidden: Vec<usize>,
    /// The activation after each expert layer (ReLU).
    #[serde(default)]
    pub activation: Activation,
    /// Dropout after each expert layer in training (0: off).
    #[serde(default)]
    pub dropout: f32,
}

fn default_experts() -> usize {
    4
}

impl MmoeConfig {
    /// The configuration of one expert.
    pub fn expert(&self) -> MlpConfig {
        MlpConfig {
            hidden: self.hidden.clone(),
            activation: self.activation,
            dropout: self.dropout,
        }
    }

    /// Checks every value; the error names the key ("experts must be > 0").
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        positive("experts", self.experts)?;
        self.expert().validate()
    }
}

/// `e_k = expert_k(x)`, `g_t = softmax(x W_t^T + b_t)` over the experts,
/// `repr_t = sum_k g_t[:, k] * e_k`.
#[derive(Debug, Clone)]
pub struct Mmoe {
    experts: PackedGroup,
    gates: Vec<Gate>,
}

impl Mmoe {
    /// Registers the experts packed as `backbone.experts.{weight,bias}` (with the views
    /// `backbone.expert<k>.layer<i>.*`) and `backbone.gate<t>.*`.
    pub fn new(
        cfg: &MmoeConfig,
        in_dim: usize,
        n_tasks: usize,
        params: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let experts = PackedGroup::new(
            &cfg.expert(),
            "backbone.experts",
            |k| format!("backbone.expert{k}"),
            cfg.experts,
            in_dim,
            params,
            rng,
        )?;
        let gates = (0..n_tasks)
            .map(|t| {
                Gate::new(
                    &format!("backbone.gate{t}"),
                    in_dim,
                    cfg.experts,
                    params,
                    rng,
                )
            })
            .collect::<Result<_>>()?;
        Ok(Mmoe { experts, gates })
    }

    /// The size of every task representation.
    pub fn out_dim(&self) -> usize {
        self.experts.out_dim()
    }

    /// `x: [b, in_dim]` -> one `[b, out_dim]` representation per task.
    pub fn forward(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Vec<Tensor>> {
        let pool = self.experts.forward(x, mode)?;
        let blocks: Vec<usize> = (0..self.experts.experts().len()).collect();
        self.gates
            .iter()
            .map(|g| g.forward(x, &pool, &blocks))
            .collect()
    }
}
