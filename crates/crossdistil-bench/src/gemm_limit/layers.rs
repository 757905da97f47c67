//! The linear layers of a benchmark model, read from the built model, and the matrix products
//! of one training step through them.

use crossdistil_data::prepare::synthetic::{self, SyntheticOptions};
use crossdistil_train::{InputSchema, build_model_for};
use serde::{Deserialize, Serialize};

use crate::model::{BenchModel, bench_config};
use crate::shape::{DENSE, FIELDS, TASKS};

/// A linear layer `y = x W^T + b`, `W: [outputs, inputs]`, as its products run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// The weight's parameter name (`backbone.expert0.layer1.weight`), or the pattern of the
    /// stacked first layers of a group of experts (`backbone.expert*.layer0.weight`).
    pub name: String,
    /// Columns of `W`: the width of the layer's input.
    pub inputs: usize,
    /// Rows of `W`: the width of the layer's output.
    pub outputs: usize,
}

/// One of the three products of a linear layer in a training step, for `W: [o, i]` on `m`
/// rows `x: [m, i]` with the output's gradient `dY: [m, o]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProductKind {
    /// `x W^T`: `[m, i] x [i, o]`, the right operand `W` read transposed.
    Forward,
    /// `dY W`: `[m, o] x [o, i]`, both operands as stored.
    InputGradient,
    /// `dY^T x`: `[o, m] x [m, i]`, the left operand `dY` read transposed.
    WeightGradient,
}

impl ProductKind {
    /// The three, in the order a step runs them (forward, then backward).
    pub const ALL: [ProductKind; 3] = [
        ProductKind::Forward,
        ProductKind::InputGradient,
        ProductKind::WeightGradient,
    ];

    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            ProductKind::Forward => "forward",
            ProductKind::InputGradient => "input gradient",
            ProductKind::WeightGradient => "weight gradient",
        }
    }
}

/// A matrix product `[m, k] x [k, n] -> [m, n]` of row-major operands, either read transposed
/// (`lhs_t`: the left operand stored as `[k, m]`; `rhs_t`: the right one as `[n, k]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Product {
    /// Rows of the output.
    pub m: usize,
    /// The inner dimension.
    pub k: usize,
    /// Columns of the output.
    pub n: usize,
    /// The left operand is stored transposed.
    pub lhs_t: bool,
    /// The right operand is stored transposed.
    pub rhs_t: bool,
}

impl Product {
    /// Product `kind` of a layer of `inputs -> outputs` on `rows` rows (see [`ProductKind`]).
    pub fn of(kind: ProductKind, inputs: usize, outputs: usize, rows: usize) -> Product {
        let (m, k, n, lhs_t, rhs_t) = match kind {
            ProductKind::Forward => (rows, inputs, outputs, false, true),
            ProductKind::InputGradient => (rows, outputs, inputs, false, false),
            ProductKind::WeightGradient => (outputs, rows, inputs, true, false),
        };
        Product {
            m,
            k,
            n,
            lhs_t,
            rhs_t,
        }
    }

    /// `2 m k n`: a multiply and an add per term.
    pub fn flops(&self) -> u64 {
        2 * (self.m * self.k * self.n) as u64
    }
}

/// FLOPs of the matrix products of one training step on `rows` rows: `6 rows i o` per layer
/// `W: [o, i]`, its forward, input-gradient and weight-gradient products of `2 rows i o`
/// each. Every layer's input gradient counts, the first layers' included: the fused layer
/// computes it always, and the first layers need it anyway, since the embeddings train.
pub fn step_flops(layers: &[Layer], rows: usize) -> u64 {
    layers
        .iter()
        .flat_map(|l| ProductKind::ALL.map(|k| Product::of(k, l.inputs, l.outputs, rows)))
        .map(|p| p.flops())
        .sum()
}

/// The linear layers of `model` (with CrossDistil's teacher heads when `crossdistil`) as its
/// products run: the `parameter_layers` of the model the trainer builds for the benchmark
/// data, with the first layers of its group of experts stacked into one (`stack_first_layers`).
pub fn bench_layers(model: BenchModel, crossdistil: bool) -> anyhow::Result<Vec<Layer>> {
    let layers = parameter_layers(model, crossdistil)?;
    Ok(match expert_group(model) {
        Some(prefix) => stack_first_layers(layers, prefix),
        None => layers,
    })
}

/// The name prefix of the experts of `model` that read the model's input as one group of the
/// fused op (`crossdistil-model`'s `group_op`): MMoE's experts, and every expert of PLE's
/// one level (shared and per task). Shared-Bottom has one MLP.
fn expert_group(model: BenchModel) -> Option<&'static str> {
    match model {
        BenchModel::SharedBottom => None,
        BenchModel::Mmoe => Some("backbone.expert"),
        BenchModel::Ple => Some("backbone.level0."),
    }
}

/// `layers` with the first layers of the experts named `<prefix>...` (`<prefix>*.layer0.weight`,
/// `W_e: [o_e, i]`, all reading the same input) replaced by one layer `[sum_e o_e, i]`, where
/// the first of them was: the fused op runs them as one product of the stacked weights in each
/// direction (`x W^T`, `dZ W`, `dZ^T x` with `W = [W_0; ..; W_{E-1}]`), with the same FLOPs.
/// The later layers of the experts stay one product per expert, as the op runs them.
fn stack_first_layers(layers: Vec<Layer>, prefix: &str) -> Vec<Layer> {
    let first = |l: &Layer| l.name.starts_with(prefix) && l.name.ends_with(".layer0.weight");
    let Some(at) = layers.iter().position(first) else {
        return layers;
    };
    let (group, mut rest): (Vec<Layer>, Vec<Layer>) = layers.into_iter().partition(first);
    rest.insert(
        at,
        Layer {
            name: format!("{prefix}*.layer0.weight"),
            inputs: group[0].inputs,
            outputs: group.iter().map(|l| l.outputs).sum(),
        },
    );
    rest
}

/// The linear layers among the parameters of `model` (with CrossDistil's teacher heads when
/// `crossdistil`), as the trainer builds it for the benchmark data: every 2-D `*.weight` of
/// the model's dense parameters, packed experts one layer per expert, in name order. The
/// embedding tables are not among them (they are gathered, not multiplied).
fn parameter_layers(model: BenchModel, crossdistil: bool) -> anyhow::Result<Vec<Layer>> {
    let cfg = bench_config(model, crossdistil, 1, 1);
    let spec = synthetic::spec(&SyntheticOptions {
        fields: FIELDS,
        dense: DENSE,
        tasks: TASKS,
        ..Default::default()
    });
    // Tables of two rows: the layers do not depend on the vocabulary.
    let schema = InputSchema {
        sparse: spec.sparse.iter().map(|s| (s.name.clone(), 2)).collect(),
        multi: vec![],
        n_dense: spec.dense.len(),
        dense_names: spec.dense.iter().map(|d| d.name.clone()).collect(),
    };
    let built = build_model_for(&cfg, &spec, &schema)?;
    let mut layers: Vec<Layer> = built
        .model
        .params()
        .unpacked_tensors()?
        .into_iter()
        .filter(|(name, _)| name.ends_with(".weight"))
        .filter_map(|(name, t)| {
            let (outputs, inputs) = t.dims2().ok()?;
            Some(Layer {
                name,
                inputs,
                outputs,
            })
        })
        .collect();
    layers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `i * o` summed over the layers of a hand count.
    fn weights(shapes: &[(usize, usize, usize)]) -> u64 {
        shapes.iter().map(|&(n, i, o)| (n * i * o) as u64).sum()
    }

    /// The layers read from the models' parameters against a hand count of the configuration:
    /// input 10 x 16 + 8 = 168, experts 168-256-128, towers 128-64-1, two tasks; MMoE's gates
    /// over 4 experts, PLE's over its task's expert and the 2 shared ones; a linear teacher
    /// head 128-1 per task with CrossDistil.
    #[test]
    fn parameters_match_a_hand_count() {
        let towers = [(2, 128, 64), (2, 64, 1)];
        let expert = |n| [(n, 168, 256), (n, 256, 128)];
        let cases = [
            (
                BenchModel::SharedBottom,
                [expert(1).as_slice(), &towers].concat(),
            ),
            (
                BenchModel::Mmoe,
                [expert(4).as_slice(), &[(2, 168, 4)], &towers].concat(),
            ),
            (
                BenchModel::Ple,
                [expert(4).as_slice(), &[(2, 168, 3)], &towers].concat(),
            ),
        ];
        for (model, shapes) in cases {
            for cd in [false, true] {
                let layers = parameter_layers(model, cd).unwrap();
                let mut want = shapes.clone();
                if cd {
                    want.push((2, 128, 1));
                }
                let got: u64 = layers.iter().map(|l| (l.inputs * l.outputs) as u64).sum();
                assert_eq!(
                    got,
                    weights(&want),
                    "{model:?} crossdistil={cd}: {layers:?}"
                );
                let count: usize = want.iter().map(|s| s.0).sum();
                assert_eq!(
                    layers.len(),
                    count,
                    "{model:?} crossdistil={cd}: {layers:?}"
                );
                assert_eq!(step_flops(&layers, 1024), 6 * 1024 * weights(&want));
            }
        }
    }

    /// MMoE's and PLE's four experts read the input as one group: their first layers stack
    /// into one 168 -> 1024 layer, the second ones stay one per expert, the FLOPs the same.
    #[test]
    fn first_layers_of_experts_stack() {
        for (model, name) in [
            (BenchModel::Mmoe, "backbone.expert*.layer0.weight"),
            (BenchModel::Ple, "backbone.level0.*.layer0.weight"),
        ] {
            let layers = bench_layers(model, true).unwrap();
            let params = parameter_layers(model, true).unwrap();
            let stacked: Vec<&Layer> = layers.iter().filter(|l| l.inputs == 168).collect();
            assert_eq!(stacked.len(), 3, "{layers:?}"); // the experts', then two gates
            assert!(stacked.iter().any(|l| l.name == name && l.outputs == 1024));
            let second = layers
                .iter()
                .filter(|l| (l.inputs, l.outputs) == (256, 128));
            assert_eq!(second.count(), 4);
            assert_eq!(layers.len() + 3, params.len());
            assert_eq!(step_flops(&layers, 1024), step_flops(&params, 1024));
        }
        let sb = bench_layers(BenchModel::SharedBottom, true).unwrap();
        assert_eq!(
            sb,
            parameter_layers(BenchModel::SharedBottom, true).unwrap()
        );
    }

    /// Shared-Bottom without CrossDistil at batch 1024, by hand: `6 * 1024 * (168 * 256 +
    /// 256 * 128 + 2 * (128 * 64 + 64 * 1))`.
    #[test]
    fn shared_bottom_flops_by_hand() {
        let layers = bench_layers(BenchModel::SharedBottom, false).unwrap();
        assert_eq!(step_flops(&layers, 1024), 567_017_472);
        assert_eq!(
            layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            [
                "backbone.shared.layer0.weight",
                "backbone.shared.layer1.weight",
                "tower0.layer0.weight",
                "tower0.out.weight",
                "tower1.layer0.weight",
                "tower1.out.weight",
            ]
        );
    }

    /// The three products of a layer: their shapes, transpositions and FLOPs.
    #[test]
    fn products_of_a_layer() {
        let f = Product::of(ProductKind::Forward, 168, 256, 1024);
        assert_eq!(
            (f.m, f.k, f.n, f.lhs_t, f.rhs_t),
            (1024, 168, 256, false, true)
        );
        let g = Product::of(ProductKind::InputGradient, 168, 256, 1024);
        assert_eq!(
            (g.m, g.k, g.n, g.lhs_t, g.rhs_t),
            (1024, 256, 168, false, false)
        );
        let w = Product::of(ProductKind::WeightGradient, 168, 256, 1024);
        assert_eq!(
            (w.m, w.k, w.n, w.lhs_t, w.rhs_t),
            (256, 1024, 168, true, false)
        );
        for p in [f, g, w] {
            assert_eq!(p.flops(), 2 * 1024 * 168 * 256);
        }
    }
}
