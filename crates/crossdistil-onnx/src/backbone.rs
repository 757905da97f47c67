//! The backbones as ONNX nodes: `x [b, in_dim]` to one representation `[b, h]` per task, as
//! `crossdistil_model::Backbone::forward` computes them in evaluation mode.

use crossdistil_model::{BackboneConfig, MmoeConfig, PleConfig};

use crate::error::Result;
use crate::graph::Graph;
use crate::layers::{Params, activation, gate, linear, mlp};

/// One representation per task of the backbone `cfg` over `x`.
pub(crate) fn backbone(
    g: &mut Graph<'_>,
    p: &Params,
    cfg: &BackboneConfig,
    n_tasks: usize,
    x: &str,
) -> Result<Vec<String>> {
    match cfg {
        BackboneConfig::SharedBottom(c) => {
            let h = mlp(g, p, "backbone.shared", c.hidden.len(), c.activation, x)?;
            Ok(vec![h; n_tasks])
        }
        BackboneConfig::SingleTask(c) | BackboneConfig::Esmm(c) => (0..n_tasks)
            .map(|t| {
                let name = format!("backbone.task{t}");
                mlp(g, p, &name, c.hidden.len(), c.activation, x)
            })
            .collect(),
        BackboneConfig::Mmoe(c) => mmoe(g, p, c, n_tasks, x),
        BackboneConfig::Ple(c) => ple(g, p, c, n_tasks, x),
        BackboneConfig::CrossStitch(c) => {
            let mut hs = vec![x.to_string(); n_tasks];
            for i in 0..c.hidden.len() {
                let mut outs = Vec::with_capacity(n_tasks);
                for (t, h) in hs.iter().enumerate() {
                    let z = linear(g, p, &format!("backbone.task{t}.layer{i}"), h)?;
                    outs.push(activation(g, c.activation, &z));
                }
                hs = stitch(g, p, &format!("backbone.stitch{i}.alpha"), &outs)?;
            }
            Ok(hs)
        }
    }
}

/// MMoE: experts `backbone.expert<k>` on `x`, one gate `backbone.gate<t>` per task.
fn mmoe(
    g: &mut Graph<'_>,
    p: &Params,
    c: &MmoeConfig,
    n_tasks: usize,
    x: &str,
) -> Result<Vec<String>> {
    let experts = (0..c.experts)
        .map(|k| {
            let name = format!("backbone.expert{k}");
            mlp(g, p, &name, c.hidden.len(), c.activation, x)
        })
        .collect::<Result<Vec<_>>>()?;
    (0..n_tasks)
        .map(|t| gate(g, p, &format!("backbone.gate{t}"), x, &experts))
        .collect()
}

/// PLE: per level, each task's gate mixes its own experts then the shared ones (on the task's
/// input), and the shared gate mixes every task's experts then the shared ones (on the shared
/// input); at level 0 every input is `x`.
fn ple(
    g: &mut Graph<'_>,
    p: &Params,
    c: &PleConfig,
    n_tasks: usize,
    x: &str,
) -> Result<Vec<String>> {
    let layers = c.hidden.len();
    let mut task_in = vec![x.to_string(); n_tasks];
    let mut shared_in = x.to_string();
    for l in 0..c.levels {
        let pre = format!("backbone.level{l}");
        let shared = (0..c.shared_experts)
            .map(|k| {
                mlp(
                    g,
                    p,
                    &format!("{pre}.shared{k}"),
                    layers,
                    c.activation,
                    &shared_in,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let mut own = Vec::with_capacity(n_tasks);
        for (t, u) in task_in.iter().enumerate() {
            own.push(
                (0..c.task_experts)
                    .map(|k| {
                        let name = format!("{pre}.task{t}.expert{k}");
                        mlp(g, p, &name, layers, c.activation, u)
                    })
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        let mut next = Vec::with_capacity(n_tasks);
        for (t, u) in task_in.iter().enumerate() {
            let experts: Vec<String> = own[t].iter().chain(&shared).cloned().collect();
            next.push(gate(g, p, &format!("{pre}.gate{t}"), u, &experts)?);
        }
        if l + 1 < c.levels {
            let experts: Vec<String> = own.iter().flatten().chain(&shared).cloned().collect();
            shared_in = gate(g, p, &format!("{pre}.shared_gate"), &shared_in, &experts)?;
        }
        task_in = next;
    }
    Ok(task_in)
}

/// The cross-stitch unit `alpha` (`[T, T]`): `out_t = sum_s alpha[t, s] * columns[s]`.
fn stitch(g: &mut Graph<'_>, p: &Params, alpha: &str, columns: &[String]) -> Result<Vec<String>> {
    let (_, a) = p.get(alpha)?;
    let n = columns.len();
    let mut out = Vec::with_capacity(n);
    for t in 0..n {
        let mut acc: Option<String> = None;
        for (s, col) in columns.iter().enumerate() {
            let w = g.scalar(a[t * n + s]);
            let term = g.node("Mul", &[col, &w], vec![]);
            acc = Some(match acc {
                None => term,
                Some(sum) => g.node("Add", &[&sum, &term], vec![]),
            });
        }
        out.push(acc.expect("a cross-stitch unit mixes at least one column"));
    }
    Ok(out)
}
