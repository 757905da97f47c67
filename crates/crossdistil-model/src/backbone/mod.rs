//! Backbones: `x [b, in_dim]` to one representation per task, each `[b, out_dim]`.

mod cross_stitch;
mod esmm;
mod gate;
mod mmoe;
mod ple;
mod shared_bottom;
mod single_task;

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::mlp::MlpConfig;
use crate::mode::Mode;
use crate::params::ParamStore;

pub use cross_stitch::CrossStitch;
pub use esmm::{Esmm, chain_logits};
pub use mmoe::{Mmoe, MmoeConfig};
pub use ple::{Ple, PleConfig};
pub use shared_bottom::SharedBottom;
pub use single_task::SingleTask;

/// The backbone, by `type`: "single-task", "shared-bottom", "mmoe", "ple", "cross-stitch" or
/// "esmm".
///
/// ```toml
/// [model.backbone]
/// type = "mmoe"
/// experts = 4
/// hidden = [256, 128]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BackboneConfig {
    /// An independent MLP per task.
    SingleTask(MlpConfig),
    /// One MLP shared by every task.
    SharedBottom(MlpConfig),
    /// Multi-gate Mixture-of-Experts: shared experts, a softmax gate per task.
    Mmoe(MmoeConfig),
    /// Progressive Layered Extraction: shared and task-specific experts over several levels.
    Ple(PleConfig),
    /// One column per task with these layer sizes, mixed after every layer.
    CrossStitch(MlpConfig),
    /// ESMM: an MLP per task of a chain (click, then purchase), the served probability of task
    /// `k` the product of the towers' up to it ([`chain_logits`]).
    Esmm(MlpConfig),
}

impl Default for BackboneConfig {
    /// Shared-Bottom with hidden sizes `[256, 128]`.
    fn default() -> Self {
        BackboneConfig::SharedBottom(MlpConfig::new(vec![256, 128]))
    }
}

impl BackboneConfig {
    /// Checks every value; the error names the key ("hidden must not be empty").
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        match self {
            BackboneConfig::SingleTask(c)
            | BackboneConfig::SharedBottom(c)
            | BackboneConfig::CrossStitch(c)
            | BackboneConfig::Esmm(c) => c.validate(),
            BackboneConfig::Mmoe(c) => c.validate(),
            BackboneConfig::Ple(c) => c.validate(),
        }
    }
}

/// A built backbone; its parameters live in the [`ParamStore`] under `backbone.`.
#[derive(Debug, Clone)]
pub enum Backbone {
    /// [`BackboneConfig::SingleTask`].
    SingleTask(SingleTask),
    /// [`BackboneConfig::SharedBottom`].
    SharedBottom(SharedBottom),
    /// [`BackboneConfig::Mmoe`].
    Mmoe(Mmoe),
    /// [`BackboneConfig::Ple`].
    Ple(Ple),
    /// [`BackboneConfig::CrossStitch`].
    CrossStitch(CrossStitch),
    /// [`BackboneConfig::Esmm`].
    Esmm(Esmm),
}

impl Backbone {
    /// Builds the backbone for inputs of `in_dim` columns and `n_tasks >= 1` tasks, registering
    /// its parameters (drawn from `rng`) in `params`.
    pub fn new(
        cfg: &BackboneConfig,
        in_dim: usize,
        n_tasks: usize,
        params: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        cfg.validate()
            .map_err(|e| crate::config::to_candle(e.within("backbone")))?;
        if n_tasks == 0 {
            candle_core::bail!("a backbone needs at least one task");
        }
        Ok(match cfg {
            BackboneConfig::SingleTask(c) => {
                Backbone::SingleTask(SingleTask::new(c, in_dim, n_tasks, params, rng)?)
            }
            BackboneConfig::SharedBottom(c) => {
                Backbone::SharedBottom(SharedBottom::new(c, in_dim, n_tasks, params, rng)?)
            }
            BackboneConfig::Mmoe(c) => Backbone::Mmoe(Mmoe::new(c, in_dim, n_tasks, params, rng)?),
            BackboneConfig::Ple(c) => Backbone::Ple(Ple::new(c, in_dim, n_tasks, params, rng)?),
            BackboneConfig::CrossStitch(c) => {
                Backbone::CrossStitch(CrossStitch::new(c, in_dim, n_tasks, params, rng)?)
            }
            BackboneConfig::Esmm(c) => Backbone::Esmm(Esmm::new(c, in_dim, n_tasks, params, rng)?),
        })
    }

    /// `x: [b, in_dim]` -> one `[b, out_dim]` representation per task.
    pub fn forward(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Vec<Tensor>> {
        match self {
            Backbone::SingleTask(b) => b.forward(x, mode),
            Backbone::SharedBottom(b) => b.forward(x, mode),
            Backbone::Mmoe(b) => b.forward(x, mode),
            Backbone::Ple(b) => b.forward(x, mode),
            Backbone::CrossStitch(b) => b.forward(x, mode),
            Backbone::Esmm(b) => b.forward(x, mode),
        }
    }

    /// The size of every task representation.
    pub fn out_dim(&self) -> usize {
        match self {
            Backbone::SingleTask(b) => b.out_dim(),
            Backbone::SharedBottom(b) => b.out_dim(),
            Backbone::Mmoe(b) => b.out_dim(),
            Backbone::Ple(b) => b.out_dim(),
            Backbone::CrossStitch(b) => b.out_dim(),
            Backbone::Esmm(b) => b.out_dim(),
        }
    }

    /// Whether the model chains its tasks' probabilities ([`chain_logits`]).
    pub fn chains_tasks(&self) -> bool {
        matches!(self, Backbone::Esmm(_))
    }
}
