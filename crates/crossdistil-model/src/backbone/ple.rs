//! PLE, Progressive Layered Extraction (Tang et al., RecSys 2020).

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::backbone::gate::Gate;
use crate::config::{ConfigError, positive};
use crate::mlp::{Mlp, MlpConfig};
use crate::mlp_group::group_forward;
use crate::mode::Mode;
use crate::params::ParamStore;

/// `levels` extraction levels, each with `shared_experts` shared experts and `task_experts`
/// experts per task, every expert an MLP of sizes `hidden` (the same at every level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PleConfig {
    /// The number of extraction levels (2).
    #[serde(default = "default_levels")]
    pub levels: usize,
    /// Shared experts per level (1).
    #[serde(default = "one")]
    pub shared_experts: usize,
    /// Experts of each task per level (1).
    #[serde(default = "one")]
    pub task_experts: usize,
    /// The layer sizes of every expert; the last one is the size of each representation.
    pub hidden: Vec<usize>,
    /// The activation after each expert layer (ReLU).
    #[serde(default)]
    pub activation: Activation,
    /// Dropout after each expert layer in training (0: off).
    #[serde(default)]
    pub dropout: f32,
}

fn default_levels() -> usize {
    2
}

fn one() -> usize {
    1
}

impl PleConfig {
    /// The configuration of one expert.
    pub fn expert(&self) -> MlpConfig {
        MlpConfig {
            hidden: self.hidden.clone(),
            activation: self.activation,
            dropout: self.dropout,
        }
    }

    /// Checks every value; the error names the key ("levels must be > 0").
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        positive("levels", self.levels)?;
        positive("shared_experts", self.shared_experts)?;
        positive("task_experts", self.task_experts)?;
        self.expert().validate()
    }
}

/// One extraction level.
#[derive(Debug, Clone)]
struct PleLevel {
    /// `task_experts[t][k]`: expert `k` of task `t`.
    task_experts: Vec<Vec<Mlp>>,
    shared_experts: Vec<Mlp>,
    /// Task `t`'s gate over its own experts then the shared ones.
    task_gates: Vec<Gate>,
    /// The gate over every expert of the level (tasks' in task order, then shared) that gives the
    /// shared input of the next level; `None` at the last level.
    shared_gate: Option<Gate>,
}

/// Level `l` maps inputs `(u_1..u_T, s)` (all `x` at level 0) to
/// `u'_t = gate_t(u_t) . [E_t(u_t), S(s)]` and `s' = gate_s(s) . [E_1(u_1), .., E_T(u_T), S(s)]`;
/// `repr_t = u_t` after the last level.
#[derive(Debug, Clone)]
pub struct Ple {
    levels: Vec<PleLevel>,
}

impl Ple {
    /// Registers `backbone.level<l>.task<t>.expert<k>.*`, `backbone.level<l>.shared<k>.*`,
    /// `backbone.level<l>.gate<t>.*` and (before the last level) `backbone.level<l>.shared_gate.*`.
    pub fn new(
        cfg: &PleConfig,
        in_dim: usize,
        n_tasks: usize,
        params: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let expert = cfg.expert();
        let (te, se) = (cfg.task_experts, cfg.shared_experts);
        let mut levels = Vec::with_capacity(cfg.levels);
        let mut d = in_dim;
        for l in 0..cfg.levels {
            let p = format!("backbone.level{l}");
            let mut task_experts = Vec::with_capacity(n_tasks);
            for t in 0..n_tasks {
                task_experts.push(
                    (0..te)
                        .map(|k| {
                            Mlp::new(&expert, &format!("{p}.task{t}.expert{k}"), d, params, rng)
                        })
                        .collect::<Result<Vec<_>>>()?,
                );
            }
            let shared_experts = (0..se)
                .map(|k| Mlp::new(&expert, &format!("{p}.shared{k}"), d, params, rng))
                .collect::<Result<_>>()?;
            let task_gates = (0..n_tasks)
                .map(|t| Gate::new(&format!("{p}.gate{t}"), d, te + se, params, rng))
                .collect::<Result<_>>()?;
            let shared_gate = if l + 1 < cfg.levels {
                let n = n_tasks * te + se;
                Some(Gate::new(&format!("{p}.shared_gate"), d, n, params, rng)?)
            } else {
                None
            };
            levels.push(PleLevel {
                task_experts,
                shared_experts,
                task_gates,
                shared_gate,
            });
            d = expert.out_dim();
        }
        Ok(Ple { levels })
    }

    /// The size of every task representation.
    pub fn out_dim(&self) -> usize {
        self.levels[self.levels.len() - 1].shared_experts[0].out_dim()
    }

    /// Each level's experts run as groups (one fused op per group): at the first level every expert
    /// reads `x`, so all of them form one group (shared experts first, then task by task); at
    /// later levels the shared experts and each task's experts read their own inputs and form a
    /// group each, concatenated for the gates that pool them.
    pub fn forward(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Vec<Tensor>> {
        let n_tasks = self.levels[0].task_gates.len();
        let mut task_in = vec![x.clone(); n_tasks];
        let mut shared_in = x.clone();
        for (li, level) in self.levels.iter().enumerate() {
            let se = level.shared_experts.len();
            let te = level.task_experts.first().map_or(0, Vec::len);
            let mut next = Vec::with_capacity(n_tasks);
            if li == 0 {
                let all: Vec<&Mlp> = level
                    .shared_experts
                    .iter()
                    .chain(level.task_experts.iter().flatten())
                    .collect();
                let pool = group_forward(x, &all, mode)?;
                for (t, gate) in level.task_gates.iter().enumerate() {
                    let blocks: Vec<usize> =
                        (se + t * te..se + (t + 1) * te).chain(0..se).collect();
                    next.push(gate.forward(x, &pool, &blocks)?);
                }
                if let Some(gate) = &level.shared_gate {
                    let blocks: Vec<usize> = (se..all.len()).chain(0..se).collect();
                    shared_in = gate.forward(x, &pool, &blocks)?;
                }
            } else {
                let shared: Vec<&Mlp> = level.shared_experts.iter().collect();
                let shared_out = group_forward(&shared_in, &shared, mode)?;
                let mut task_out = Vec::with_capacity(n_tasks);
                for (experts, u) in level.task_experts.iter().zip(&task_in) {
                    let experts: Vec<&Mlp> = experts.iter().collect();
                    task_out.push(group_forward(u, &experts, mode)?);
                }
                for ((gate, own), u) in level.task_gates.iter().zip(&task_out).zip(&task_in) {
                    let pool = Tensor::cat(&[own, &shared_out], 1)?;
                    let blocks: Vec<usize> = (0..te + se).collect();
                    next.push(gate.forward(u, &pool, &blocks)?);
                }
                if let Some(gate) = &level.shared_gate {
                    let parts: Vec<&Tensor> = task_out.iter().chain([&shared_out]).collect();
                    let m = n_tasks * te + se;
                    let pool = Tensor::cat(&parts, 1)?;
                    let blocks: Vec<usize> = (0..m).collect();
                    shared_in = gate.forward(&shared_in, &pool, &blocks)?;
                }
            }
            task_in = next;
        }
        Ok(task_in)
    }
}
