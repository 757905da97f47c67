//! Row-wise optimisers for embedding tables: only the rows a batch touched are updated.
//!
//! Both work on one row `w` (`dim` floats) with its accumulated gradient `g` and the row's slice of
//! the optimiser state. Weight decay is L2 added to the gradient (`g + wd * w`) of touched rows
//! only.

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, non_negative};
use crate::memory::large_zeros;

/// The optimiser of the embedding tables (`type = "adam"` or `"adagrad"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SparseOptimConfig {
    /// Lazy Adam: the moments of a row move only when the row is touched.
    Adam(AdamConfig),
    /// Adagrad: a row's sum of squared gradients grows only when the row is touched.
    Adagrad(AdagradConfig),
}

impl Default for SparseOptimConfig {
    fn default() -> Self {
        SparseOptimConfig::Adam(AdamConfig::default())
    }
}

impl SparseOptimConfig {
    /// The name of the optimiser, as in the `type` key.
    pub fn kind(&self) -> &'static str {
        match self {
            SparseOptimConfig::Adam(_) => "adam",
            SparseOptimConfig::Adagrad(_) => "adagrad",
        }
    }

    /// Checks the hyper-parameters of the chosen optimiser; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            SparseOptimConfig::Adam(c) => c.validate(),
            SparseOptimConfig::Adagrad(c) => c.validate(),
        }
    }
}

/// Adam hyper-parameters (Kingma and Ba, 2015), the step of PyTorch's `Adam`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamConfig {
    /// Decay of the first moment `m`, in `[0, 1)` (0.9).
    pub beta1: f64,
    /// Decay of the second moment `v`, in `[0, 1)` (0.999).
    pub beta2: f64,
    /// Added to `sqrt(v_hat)` in the denominator, finite and > 0 (1e-8).
    pub eps: f64,
    /// L2 weight decay added to the gradient of a touched row, `g + wd * w`, >= 0 (0).
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamConfig {
    /// Checks every value; the error names the key ("beta1 must be in [0, 1), got 1").
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(ConfigError::new(
                    key,
                    format!("must be in [0, 1), got {beta}"),
                ));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(ConfigError::new("eps", "must be finite and > 0"));
        }
        non_negative("weight_decay", self.weight_decay)
    }
}

/// Adagrad hyper-parameters (Duchi et al., 2011).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdagradConfig {
    /// Added to `sqrt(s)` in the denominator, finite and > 0 (1e-10).
    pub eps: f64,
    /// Starting value of the sum of squared gradients (PyTorch 0, TensorFlow 0.1).
    pub initial_accumulator: f64,
    /// L2 weight decay added to the gradient of a touched row, `g + wd * w`, >= 0 (0).
    pub weight_decay: f64,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig {
            eps: 1e-10,
            initial_accumulator: 0.0,
            weight_decay: 0.0,
        }
    }
}

impl AdagradConfig {
    /// Checks every value; the error names the key ("eps must be finite and > 0").
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(ConfigError::new("eps", "must be finite and > 0"));
        }
        non_negative("initial_accumulator", self.initial_accumulator)?;
        non_negative("weight_decay", self.weight_decay)
    }
}

/// The per-step constants of one Adam update, computed once for all rows.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    /// `lr / (1 - beta1^t)`.
    step_size: f32,
    /// `1 / sqrt(1 - beta2^t)`.
    inv_sqrt_bc2: f32,
}

impl AdamStep {
    /// The constants of step `t >= 1` (bias correction `1 - beta^t`).
    pub fn new(cfg: &AdamConfig, lr: f64, t: u64) -> Self {
        let t = t.min(i32::MAX as u64) as i32;
        let bc1 = 1.0 - cfg.beta1.powi(t);
        let bc2 = 1.0 - cfg.beta2.powi(t);
        AdamStep {
            beta1: cfg.beta1 as f32,
            beta2: cfg.beta2 as f32,
            eps: cfg.eps as f32,
            weight_decay: cfg.weight_decay as f32,
            step_size: (lr / bc1) as f32,
            inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
        }
    }

    /// One Adam step on a row:
    /// `g' = g + wd w; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;`
    /// `w -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)`.
    pub fn apply(&self, w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        for (((w, m), v), &g) in w.iter_mut().zip(m).zip(v).zip(g) {
            let g = g + self.weight_decay * *w;
            *m = self.beta1 * *m + (1.0 - self.beta1) * g;
            *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
            *w -= self.step_size * *m / (v.sqrt() * self.inv_sqrt_bc2 + self.eps);
        }
    }
}

/// One Adagrad step on a row: `g' = g + wd w; s += g'^2; w -= lr g' / (sqrt(s) + eps)`.
pub fn adagrad_row(cfg: &AdagradConfig, lr: f64, w: &mut [f32], s: &mut [f32], g: &[f32]) {
    let (lr, eps, wd) = (lr as f32, cfg.eps as f32, cfg.weight_decay as f32);
    for ((w, s), &g) in w.iter_mut().zip(s).zip(g) {
        let g = g + wd * *w;
        *s += g * g;
        *w -= lr * g / (s.sqrt() + eps);
    }
}

/// The optimiser state of one table, allocated at its first update, `[vocab, dim]` per buffer.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum OptimState {
    /// No update yet.
    #[default]
    Empty,
    /// Lazy Adam's moments.
    Adam {
        /// The first moments, `[vocab, dim]` row-major.
        m: Vec<f32>,
        /// The second moments, `[vocab, dim]` row-major.
        v: Vec<f32>,
    },
    /// Adagrad's accumulator.
    Adagrad {
        /// The sums of squared gradients, `[vocab, dim]` row-major.
        sum: Vec<f32>,
    },
}

impl OptimState {
    /// A fresh state for `cfg` over `len` parameters.
    pub fn new(cfg: &SparseOptimConfig, len: usize) -> Self {
        match cfg {
            SparseOptimConfig::Adam(_) => OptimState::Adam {
                m: large_zeros(len),
                v: large_zeros(len),
            },
            SparseOptimConfig::Adagrad(c) => OptimState::Adagrad {
                sum: vec![c.initial_accumulator as f32; len],
            },
        }
    }

    /// The name of the optimiser this state belongs to ("none" when empty).
    pub fn kind(&self) -> &'static str {
        match self {
            OptimState::Empty => "none",
            OptimState::Adam { .. } => "adam",
            OptimState::Adagrad { .. } => "adagrad",
        }
    }
}
