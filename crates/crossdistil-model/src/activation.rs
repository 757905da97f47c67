//! Element-wise activations.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::init::Init;

/// An activation applied after a hidden layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// `max(0, x)`.
    #[default]
    Relu,
    /// `x * Phi(x)`, the exact (erf) form.
    Gelu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `x`, no activation.
    Identity,
}

impl Activation {
    /// The activation of every element of `x`, same shape.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Gelu => x.gelu_erf(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => candle_nn::ops::sigmoid(x),
            Activation::Identity => Ok(x.clone()),
        }
    }

    /// The initialisation of the weights of a layer followed by this activation: He for ReLU,
    /// Glorot otherwise.
    pub fn weight_init(self) -> Init {
        match self {
            Activation::Relu => Init::KaimingUniform,
            _ => Init::XavierUniform,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn values() {
        let x = Tensor::new(&[-1.0f32, 0.0, 2.0], &Device::Cpu).unwrap();
        let v = |a: Activation| a.apply(&x).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v(Activation::Relu), [0.0, 0.0, 2.0]);
        assert_eq!(v(Activation::Identity), [-1.0, 0.0, 2.0]);
        let s = v(Activation::Sigmoid);
        assert!((s[0] - 0.268_941_4).abs() < 1e-6 && s[1] == 0.5);
        let g = v(Activation::Gelu);
        assert!((g[0] + 0.158_655_3).abs() < 1e-5 && (g[2] - 1.954_5).abs() < 1e-4);
        assert!((v(Activation::Tanh)[2] - 2f32.tanh()).abs() < 1e-6);
        let parsed: Vec<Activation> =
            serde_json::from_str(r#"["relu","gelu","tanh","sigmoid","identity"]"#).unwrap();
        assert_eq!(parsed.len(), 5);
    }
}
