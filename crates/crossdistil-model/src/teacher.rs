//! Teacher heads and calibrators: what CrossDistil adds beside each task's student tower.
//!
//! For task `t` with representation `h_t [b, h]` (from the backbone):
//!
//! ```text
//! r_t = teacher_t(h_t)          [b, 1]   an unbounded ranking score (no sigmoid)
//! q_t = sigmoid(softplus(rho_t) * r_t + Q_t)   the calibrator, computed by the loss crate
//! ```
//!
//! The teacher is a linear head on `h_t` by default, or a small tower of its own (`hidden`).
//! With `detach_repr` the teacher reads `h_t.detach()`, so its ranking loss trains the teacher
//! head only and never reaches the backbone. With teacher-only inputs (`inputs`, dense features
//! the students never see: privileged information), it reads `[h_t | u]`, `u [b, m]` those
//! features. Calibrator parameters `rho_t` and `Q_t` are scalars
//! (`[1]`) in the parameter store under `calibrator<t>.rho` and `calibrator<t>.q`, initialised so
//! that `P = softplus(rho) = 1` and `Q = 0`.

use candle_core::{Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::config::{ConfigError, positive};
use crate::init::Init;
use crate::linear::Linear;
use crate::mlp::{Mlp, MlpConfig};
use crate::mode::Mode;
use crate::params::ParamStore;

/// The teacher heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct TeacherConfig {
    /// Hidden layers of the teacher's own tower; empty: a linear head on the representation.
    pub hidden: Vec<usize>,
    /// The activation after each hidden layer (ReLU).
    pub activation: Activation,
    /// The teacher reads a detached representation: the ranking loss stops at the teacher.
    pub detach_repr: bool,
    /// Dense features, by name, that only the teachers read, beside the representation: they
    /// are held out of the students' input in every mode (with or without teachers), so a
    /// backbone alone and CrossDistil see the same features. Privileged information: known
    /// in the training logs, absent when serving. Empty by default.
    pub inputs: Vec<String>,
}

impl TeacherConfig {
    /// Checks every value; the error names the key (`"hidden[0] must be > 0"`).
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        for (i, &h) in self.hidden.iter().enumerate() {
            positive(&format!("hidden[{i}]"), h)?;
        }
        if let Some(i) = self.inputs.iter().position(|n| n.is_empty()) {
            return Err(ConfigError::new(
                format!("inputs[{i}]"),
                "must name a dense feature",
            ));
        }
        Ok(())
    }
}

/// `ln(e - 1)`: the `rho` with `softplus(rho) = 1`.
pub const RHO_FOR_UNIT_SLOPE: f32 = 0.541_324_85;

/// One task's teacher head.
#[derive(Debug, Clone)]
pub struct TeacherHead {
    mlp: Option<Mlp>,
    out: Linear,
    detach: bool,
}

impl TeacherHead {
    /// Registers `<name>.layer<i>.*` (if any) and `<name>.out.*`.
    pub fn new(
        cfg: &TeacherConfig,
        name: &str,
        in_dim: usize,
        params: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let mlp = if cfg.hidden.is_empty() {
            None
        } else {
            let m = MlpConfig {
                hidden: cfg.hidden.clone(),
                activation: cfg.activation,
                dropout: 0.0,
            };
            Some(Mlp::new(&m, name, in_dim, params, rng)?)
        };
        let d = mlp.as_ref().map_or(in_dim, Mlp::out_dim);
        let out = Linear::new(
            &format!("{name}.out"),
            d,
            1,
            Init::XavierUniform,
            params,
            rng,
        )?;
        Ok(TeacherHead {
            mlp,
            out,
            detach: cfg.detach_repr,
        })
    }

    /// `repr [b, h]` (and the teacher-only inputs `extra [b, m]`, when the head was built with
    /// `in_dim = h + m`) -> scores `[b, 1]`.
    pub fn forward(
        &self,
        repr: &Tensor,
        extra: Option<&Tensor>,
        mode: &mut Mode<'_>,
    ) -> Result<Tensor> {
        let x = if self.detach {
            repr.detach()
        } else {
            repr.clone()
        };
        let x = match extra {
            Some(u) => Tensor::cat(&[&x, u], 1)?,
            None => x,
        };
        let x = match &self.mlp {
            Some(m) => m.forward(&x, mode)?,
            None => x,
        };
        self.out.forward(&x)
    }
}

/// A task's calibrator parameters `(rho, Q)`, each `[1]`.
#[derive(Debug, Clone)]
pub struct Calibrator {
    /// The slope's parameter: the slope is `P = softplus(rho)`.
    pub rho: Var,
    /// The offset `Q`.
    pub q: Var,
}

impl Calibrator {
    /// Registers `<name>.rho` (so that `softplus(rho) = 1`) and `<name>.q` (0).
    pub fn new(name: &str, params: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Self> {
        let rho = params.get_or_init(
            &format!("{name}.rho"),
            &[1],
            Init::Const(RHO_FOR_UNIT_SLOPE),
            rng,
        )?;
        let q = params.get_or_init(&format!("{name}.q"), &[1], Init::Zeros, rng)?;
        Ok(Calibrator { rho, q })
    }

    /// Sets `P = softplus(rho)` and `Q` directly (a refit on held-out data).
    pub fn set(&self, p: f64, q: f64) -> Result<()> {
        let p = p.max(1e-6);
        // inverse softplus: rho = p + ln(1 - exp(-p))
        let rho = p + (-(-p).exp_m1()).ln();
        let dev = self.rho.device();
        self.rho.set(&Tensor::new(&[rho as f32], dev)?)?;
        self.q.set(&Tensor::new(&[q as f32], dev)?)
    }
}
