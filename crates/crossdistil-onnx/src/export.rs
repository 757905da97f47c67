//! The served model as one ONNX graph: feature input, backbone, towers, probabilities.

use std::collections::HashSet;

use crossdistil_model::{BackboneConfig, MultiTaskModel};

use crate::backbone::backbone;
use crate::error::{ExportError, Result};
use crate::graph::{Graph, Initializer};
use crate::input::{InputSpec, feature_input, input_specs};
use crate::layers::{Params, activation, linear, mlp};

/// The ONNX operator set the graph is written for.
pub const OPSET: i64 = 17;

/// The total initializer size above which tables go to external data by default: 1 GiB, half
/// of the 2 GiB that one ONNX (protobuf) file can hold.
pub const DEFAULT_EXTERNAL_DATA_ABOVE: u64 = 1 << 30;

/// How to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    /// When the initializers (tables and dense parameters) add up to more than this many
    /// bytes, the embedding tables and every other initializer of at least
    /// [`EXTERNAL_MIN_BYTES`] go to the external data file `OUT.onnx.data`
    /// ([`DEFAULT_EXTERNAL_DATA_ABOVE`]; 0 sends them there whatever their size).
    pub external_data_above: u64,
}

/// The smallest initializer other than a table that goes to external data.
pub const EXTERNAL_MIN_BYTES: u64 = 1024;

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            external_data_above: DEFAULT_EXTERNAL_DATA_ABOVE,
        }
    }
}

/// An exported model, ready to be written ([`OnnxModel::write`]); it borrows the embedding
/// tables from the model it was built from.
#[derive(Debug)]
pub struct OnnxModel<'a> {
    pub(crate) graph: Graph<'a>,
    pub(crate) inputs: Vec<InputSpec>,
    pub(crate) outputs: Vec<String>,
    pub(crate) options: ExportOptions,
}

/// The graph of `model`'s served students, one output per task of `tasks` (the model's tasks,
/// in order), with the dense features named `dense` (the model's, in order).
///
/// Inputs: `sparse` `int64 [batch, n_sparse]`, one `multi_<field>` `int64 [batch, items]` per
/// multi-valued field (padded with [`crate::PAD_ID`]), `dense` `float [batch, n_dense]`, those
/// the model has ([`InputSpec`]). Outputs: per task, `float [batch]` named after the task, the
/// probability `predict` gives (`sigmoid(logit)`, or for ESMM the product of the chain's
/// sigmoids). Evaluation mode: dropout is the identity; teacher heads and calibrators are not
/// served and are left out.
pub fn export<'a>(
    model: &'a MultiTaskModel,
    tasks: &[String],
    dense: &[String],
    options: ExportOptions,
) -> Result<OnnxModel<'a>> {
    if tasks.len() != model.n_tasks() {
        return Err(ExportError::Model(format!(
            "the model has {} tasks, {} names were given ({})",
            model.n_tasks(),
            tasks.len(),
            tasks.join(", ")
        )));
    }
    let params = Params::new(model.params().unpacked_tensors()?);
    let cfg = model.config();
    let inputs = input_specs(model.input(), dense)?;
    let mut g = Graph::default();
    check_tables(model)?;
    let x = feature_input(&mut g, model.input(), &inputs);
    let reprs = backbone(&mut g, &params, &cfg.backbone, tasks.len(), &x)?;
    let mut probs = Vec::with_capacity(tasks.len());
    for (t, repr) in reprs.iter().enumerate() {
        let name = format!("tower{t}");
        let tower = &cfg.tower;
        let h = mlp(
            &mut g,
            &params,
            &name,
            tower.hidden.len(),
            tower.activation,
            repr,
        )?;
        let logit = linear(&mut g, &params, &format!("{name}.out"), &h)?;
        probs.push(activation(
            &mut g,
            crossdistil_model::Activation::Sigmoid,
            &logit,
        ));
    }
    if matches!(cfg.backbone, BackboneConfig::Esmm(_)) {
        // p_k = prod_{j <= k} sigmoid(z_j): the chained probability of `chain_logits`.
        for k in 1..probs.len() {
            probs[k] = g.node("Mul", &[&probs[k - 1], &probs[k]], vec![]);
        }
    }
    let flat = g.ints(&[-1]);
    for (p, task) in probs.iter().zip(tasks) {
        g.node_to("Reshape", &[p, &flat], task.clone(), vec![]);
    }
    check_names(&g.initializers, &inputs, tasks)?;
    Ok(OnnxModel {
        graph: g,
        inputs,
        outputs: tasks.to_vec(),
        options,
    })
}

/// Refuses tables with non-finite values, as `predict` refuses non-finite scores.
fn check_tables(model: &MultiTaskModel) -> Result<()> {
    for t in model.input().tables() {
        if let Some(v) = t.weight.iter().find(|v| !v.is_finite()) {
            return Err(ExportError::Model(format!(
                "table {} holds {v}: a model with non-finite parameters is not exported",
                t.key
            )));
        }
    }
    Ok(())
}

/// Every input, output and initializer name distinct (a task named like an input or a
/// parameter would make the graph ambiguous), and no task named like an intermediate value
/// (`/...`).
fn check_names(inits: &[Initializer<'_>], inputs: &[InputSpec], tasks: &[String]) -> Result<()> {
    let mut seen = HashSet::new();
    let names = inputs
        .iter()
        .map(|i| i.name.as_str())
        .chain(tasks.iter().map(String::as_str))
        .chain(inits.iter().map(|i| i.name.as_str()));
    for n in names {
        let internal = n.starts_with('/') && tasks.iter().any(|t| t == n);
        if internal || !seen.insert(n) {
            return Err(ExportError::Model(format!(
                "the name `{n}` is used twice in the graph (tasks: {}; inputs: {})",
                tasks.join(", "),
                inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

impl OnnxModel<'_> {
    /// The graph's inputs, in order.
    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    /// The graph's outputs (the task names), in order.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// The size of every initializer together, in bytes.
    pub fn initializer_bytes(&self) -> u64 {
        self.graph
            .initializers
            .iter()
            .map(|i| i.values.bytes())
            .sum()
    }

    /// Whether [`OnnxModel::write`] writes external data: the initializers add up to more than
    /// [`ExportOptions::external_data_above`].
    pub fn uses_external_data(&self) -> bool {
        self.initializer_bytes() > self.options.external_data_above
    }

    /// Whether the initializer goes to the external data file.
    pub(crate) fn is_external(&self, init: &Initializer<'_>) -> bool {
        self.uses_external_data() && (init.table || init.values.bytes() >= EXTERNAL_MIN_BYTES)
    }
}
