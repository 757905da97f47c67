//! Multi-layer perceptrons.

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::config::{ConfigError, layer_sizes, rate};
use crate::dropout::dropout;
use crate::linear::Linear;
use crate::mode::Mode;
use crate::params::ParamStore;

/// Hidden layer sizes, activation and dropout of an MLP. `hidden` is required when the table is
/// written; the others default to ReLU and no dropout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// The layer sizes, first to last; none is 0.
    pub hidden: Vec<usize>,
    /// The activation after each layer (ReLU).
    #[serde(default)]
    pub activation: Activation,
    /// Dropout after each layer in training, in `[0, 1)` (0: off).
    #[serde(default)]
    pub dropout: f32,
}

impl MlpConfig {
    /// Layers of sizes `hidden`, ReLU, no dropout.
    pub fn new(hidden: Vec<usize>) -> Self {
        MlpConfig {
            hidden,
            activation: Activation::default(),
            dropout: 0.0,
        }
    }

    /// Checks every value; the error names the key ("hidden must not be empty").
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        layer_sizes("hidden", &self.hidden)?;
        rate("dropout", self.dropout)
    }

    /// The size of the last layer.
    pub fn out_dim(&self) -> usize {
        self.hidden.last().copied().unwrap_or(0)
    }
}

/// `h_0 = x`, `h_{i+1} = dropout(act(h_i W_i^T + b_i))`, for every layer; `[n, in] -> [n, out]`.
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    pub(crate) layers: Vec<Linear>,
    pub(crate) activation: Activation,
    pub(crate) dropout: f32,
}

impl Mlp {
    /// Registers `<name>.layer<i>.{weight,bias}` for each layer.
    pub(crate) fn new(
        cfg: &MlpConfig,
        name: &str,
        in_dim: usize,
        params: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        cfg.validate()
            .map_err(|e| candle_core::Error::Msg(format!("{name}: {e}")))?;
        let init = cfg.activation.weight_init();
        let mut layers = Vec::with_capacity(cfg.hidden.len());
        let mut d = in_dim;
        for (i, &h) in cfg.hidden.iter().enumerate() {
            layers.push(Linear::new(
                &format!("{name}.layer{i}"),
                d,
                h,
                init,
                params,
                rng,
            )?);
            d = h;
        }
        Ok(Mlp {
            layers,
            activation: cfg.activation,
            dropout: cfg.dropout,
        })
    }

    pub(crate) fn out_dim(&self) -> usize {
        self.layers.last().map_or(0, Linear::out_dim)
    }

    pub(crate) fn forward(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer_forward(layer, self.activation, self.dropout, &h, mode)?;
        }
        Ok(h)
    }
}

/// One hidden layer: `dropout(act(x W^T + b))`.
pub(crate) fn layer_forward(
    layer: &Linear,
    activation: Activation,
    p: f32,
    x: &Tensor,
    mode: &mut Mode<'_>,
) -> Result<Tensor> {
    let h = layer.forward_act(x, activation)?;
    dropout(&h, p, mode)
}
