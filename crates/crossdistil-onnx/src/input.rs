//! The graph's inputs and the feature input `x = [emb | dense]` built from them, as
//! `crossdistil_model::FeatureInput::gather` builds it.

use std::borrow::Cow;

use crossdistil_model::FeatureInput;
use serde::Serialize;

use crate::error::{ExportError, Result};
use crate::graph::{Attr, Graph, Values};

/// The name of the input of the single-valued fields' ids.
pub const SPARSE_INPUT: &str = "sparse";
/// The name of the input of the dense features.
pub const DENSE_INPUT: &str = "dense";
/// The prefix of a multi-valued field's input, `multi_<field>`.
pub const MULTI_PREFIX: &str = "multi_";
/// The id that pads a row of a multi-valued input past its own ids.
pub const PAD_ID: i64 = -1;

/// What an ONNX input carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum InputKind {
    /// The encoded ids of every single-valued field, `int64 [batch, fields]`, one column per
    /// field in the encoders' order.
    Sparse {
        /// The fields, in column order.
        fields: Vec<String>,
    },
    /// The encoded ids of one multi-valued field, `int64 [batch, items]`: each row's ids,
    /// padded with [`PAD_ID`] to the widest row of the batch; the field's embedding is the mean
    /// of its ids' rows (zeros for a row without ids).
    Multi {
        /// The field.
        field: String,
    },
    /// The normalised dense features, `float [batch, features]`, in the encoders' order.
    Dense {
        /// The features, in column order.
        features: Vec<String>,
    },
}

/// One input of the exported graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputSpec {
    /// The input's name in the graph.
    pub name: String,
    /// What it carries.
    #[serde(flatten)]
    pub kind: InputKind,
    /// Its columns: fixed for `sparse` and `dense`, `None` (dynamic) for a multi-valued field.
    pub columns: Option<usize>,
}

/// The inputs of a model over `input` (its fields named after their tables' keys,
/// `input.sparse.<field>` and `input.multi.<field>`) with the dense features `dense`: `sparse`
/// (when there are single-valued fields), one `multi_<field>` per multi-valued field, `dense`
/// (when there are dense features).
pub(crate) fn input_specs(input: &FeatureInput, dense: &[String]) -> Result<Vec<InputSpec>> {
    let batch_dense = input.n_dense() + input.teacher_dim();
    if dense.len() != batch_dense {
        return Err(ExportError::Model(format!(
            "the model reads {batch_dense} dense features, {} names were given",
            dense.len()
        )));
    }
    // The served students read every dense feature but the teachers' own.
    let dense: Vec<String> = input
        .student_dense()
        .iter()
        .map(|&j| dense[j].clone())
        .collect();
    let ns = input.n_sparse();
    let field = |key: &str, kind: &str| -> String {
        key.strip_prefix(&format!("input.{kind}."))
            .unwrap_or(key)
            .to_string()
    };
    let tables = input.tables();
    let sparse: Vec<String> = tables[..ns]
        .iter()
        .map(|t| field(&t.key, "sparse"))
        .collect();
    let multi: Vec<String> = tables[ns..]
        .iter()
        .map(|t| field(&t.key, "multi"))
        .collect();
    let mut specs = Vec::new();
    if !sparse.is_empty() {
        specs.push(InputSpec {
            name: SPARSE_INPUT.to_string(),
            kind: InputKind::Sparse {
                fields: sparse.clone(),
            },
            columns: Some(sparse.len()),
        });
    }
    for m in &multi {
        specs.push(InputSpec {
            name: format!("{MULTI_PREFIX}{m}"),
            kind: InputKind::Multi { field: m.clone() },
            columns: None,
        });
    }
    if !dense.is_empty() {
        specs.push(InputSpec {
            name: DENSE_INPUT.to_string(),
            kind: InputKind::Dense {
                features: dense.clone(),
            },
            columns: Some(dense.len()),
        });
    }
    Ok(specs)
}

/// `x = [emb | dense]`, `[b, in_dim]`: each single-valued field's table row (a `Gather` of its
/// column of `sparse`, then of its table), each multi-valued field's mean row, then `dense`.
pub(crate) fn feature_input<'a>(
    g: &mut Graph<'a>,
    input: &'a FeatureInput,
    specs: &[InputSpec],
) -> String {
    let mut parts = Vec::new();
    let ns = input.n_sparse();
    let tables = input.tables();
    for (f, table) in tables[..ns].iter().enumerate() {
        let t = table_initializer(g, table);
        let col = g.int_scalar(f as i64);
        let ids = g.node("Gather", &[SPARSE_INPUT, &col], vec![Attr::Int("axis", 1)]);
        parts.push(g.node("Gather", &[&t, &ids], vec![Attr::Int("axis", 0)]));
    }
    let multi_inputs = specs
        .iter()
        .filter(|s| matches!(s.kind, InputKind::Multi { .. }));
    for (table, spec) in tables[ns..].iter().zip(multi_inputs) {
        let t = table_initializer(g, table);
        parts.push(mean_rows(g, &t, &spec.name));
    }
    if input.n_dense() > 0 {
        parts.push(DENSE_INPUT.to_string());
    }
    g.concat(&parts, 1)
}

/// The table as an initializer named after its key (`input.sparse.<field>`), borrowed.
fn table_initializer<'a>(
    g: &mut Graph<'a>,
    table: &'a crossdistil_model::EmbeddingTable,
) -> String {
    let dims = vec![table.vocab as i64, table.dim as i64];
    g.initializer(
        table.key.clone(),
        dims,
        Values::F32(Cow::Borrowed(&table.weight)),
        true,
    )
}

/// The mean of the table rows of each row's ids, `ids: [b, L]` padded with [`PAD_ID`]:
/// `sum_j mask[:, j] T[max(ids[:, j], 0)] / max(sum_j mask[:, j], 1)` with `mask = ids >= 0`,
/// `[b, dim]` (zeros for a row without ids).
fn mean_rows(g: &mut Graph<'_>, table: &str, ids: &str) -> String {
    let pad = g.ints(&[PAD_ID]);
    let keep = g.node("Greater", &[ids, &pad], vec![]);
    let zero = g.ints(&[0]);
    let safe = g.node("Where", &[&keep, ids, &zero], vec![]);
    let rows = g.node("Gather", &[table, &safe], vec![Attr::Int("axis", 0)]);
    // Cast to FLOAT (1).
    let mask = g.node("Cast", &[&keep], vec![Attr::Int("to", 1)]);
    let mask3 = g.unsqueeze(&mask, 2);
    let masked = g.node("Mul", &[&rows, &mask3], vec![]);
    let sum = g.reduce_sum(&masked, 1, false);
    let count = g.reduce_sum(&mask, 1, true);
    let one = g.scalar(1.0);
    let den = g.node("Max", &[&count, &one], vec![]);
    g.node("Div", &[&sum, &den], vec![])
}
