//! The model's layers as ONNX nodes: linear layers, activations, MLPs and softmax gates, each
//! reading its parameters by the name the model registers them under.

use std::collections::HashMap;

use candle_core::Tensor;
use crossdistil_model::Activation;

use crate::error::{ExportError, Result};
use crate::graph::{Attr, Graph, Values};

/// The model's dense parameters by name, packed ones replaced by their per-layer views
/// (`ParamStore::unpacked_tensors`).
pub(crate) struct Params {
    tensors: HashMap<String, Tensor>,
}

impl Params {
    pub(crate) fn new(tensors: HashMap<String, Tensor>) -> Self {
        Params { tensors }
    }

    /// The parameter `name` as `(dims, values)`; an error names a missing or non-finite one.
    pub(crate) fn get(&self, name: &str) -> Result<(Vec<i64>, Vec<f32>)> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| ExportError::Model(format!("the model has no parameter {name}")))?;
        let dims = t.dims().iter().map(|&d| d as i64).collect();
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(ExportError::Model(format!(
                "parameter {name} holds {v}: a model with non-finite parameters is not exported"
            )));
        }
        Ok((dims, values))
    }

    /// Registers the parameter `name` as an initializer of the same name.
    pub(crate) fn init(&self, g: &mut Graph<'_>, name: &str) -> Result<String> {
        let (dims, values) = self.get(name)?;
        Ok(g.initializer(name.to_string(), dims, Values::F32(values.into()), false))
    }
}

/// `x W^T + b` of the layer `<name>.{weight,bias}` (`W: [out, in]`): `[b, in] -> [b, out]`,
/// one `Gemm` with `transB = 1`.
pub(crate) fn linear(g: &mut Graph<'_>, p: &Params, name: &str, x: &str) -> Result<String> {
    let w = p.init(g, &format!("{name}.weight"))?;
    let b = p.init(g, &format!("{name}.bias"))?;
    Ok(g.node("Gemm", &[x, &w, &b], vec![Attr::Int("transB", 1)]))
}

/// `act(x)`, element-wise. GELU is the exact (erf) form, `0.5 x (1 + erf(x / sqrt 2))`, written
/// out of `Erf` because opset 17 has no `Gelu`.
pub(crate) fn activation(g: &mut Graph<'_>, act: Activation, x: &str) -> String {
    match act {
        Activation::Relu => g.node("Relu", &[x], vec![]),
        Activation::Tanh => g.node("Tanh", &[x], vec![]),
        Activation::Sigmoid => g.node("Sigmoid", &[x], vec![]),
        Activation::Identity => x.to_string(),
        Activation::Gelu => {
            let s = g.scalar(std::f32::consts::SQRT_2);
            let scaled = g.node("Div", &[x, &s], vec![]);
            let erf = g.node("Erf", &[&scaled], vec![]);
            let one = g.scalar(1.0);
            let plus = g.node("Add", &[&erf, &one], vec![]);
            let half = g.scalar(0.5);
            let hx = g.node("Mul", &[x, &half], vec![]);
            g.node("Mul", &[&hx, &plus], vec![])
        }
    }
}

/// The MLP `<name>.layer<i>` of `layers` layers, `act` after each (dropout is the identity when
/// serving): `[b, in] -> [b, hidden[-1]]`.
pub(crate) fn mlp(
    g: &mut Graph<'_>,
    p: &Params,
    name: &str,
    layers: usize,
    act: Activation,
    x: &str,
) -> Result<String> {
    let mut h = x.to_string();
    for i in 0..layers {
        let z = linear(g, p, &format!("{name}.layer{i}"), &h)?;
        h = activation(g, act, &z);
    }
    Ok(h)
}

/// The softmax gate `<name>` on `input` mixing `experts` (each `[b, h]`, in the order of the
/// gate's logits): `sum_i softmax(input W^T + b)[:, i] * experts[i]`, `[b, h]`.
pub(crate) fn gate(
    g: &mut Graph<'_>,
    p: &Params,
    name: &str,
    input: &str,
    experts: &[String],
) -> Result<String> {
    let logits = linear(g, p, name, input)?;
    let weights = g.node("Softmax", &[&logits], vec![Attr::Int("axis", 1)]);
    let stacked: Vec<String> = experts.iter().map(|e| g.unsqueeze(e, 1)).collect();
    let pool = g.concat(&stacked, 1);
    let w = g.unsqueeze(&weights, 2);
    let weighted = g.node("Mul", &[&pool, &w], vec![]);
    Ok(g.reduce_sum(&weighted, 1, false))
}
