//! The models of the benchmark and their run configuration.

use clap::ValueEnum;
use crossdistil_train::RunConfig;
use serde::{Deserialize, Serialize};

/// The models of the benchmark, each with towers 128-64-1 over a 168-wide input (10 embeddings
/// of 16 and 8 dense features).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchModel {
    /// Shared-Bottom 168-256-128.
    SharedBottom,
    /// MMoE: 4 experts 168-256-128, softmax gates.
    Mmoe,
    /// PLE: one level, one expert per task and two shared, 168-256-128 each (as many experts
    /// as MMoE).
    Ple,
}

impl BenchModel {
    /// Every model, in the report's order.
    pub const ALL: [BenchModel; 3] = [BenchModel::SharedBottom, BenchModel::Mmoe, BenchModel::Ple];

    /// The name on the command line, in the report and in `bench.json` (kebab-case).
    pub fn name(self) -> &'static str {
        match self {
            BenchModel::SharedBottom => "shared-bottom",
            BenchModel::Mmoe => "mmoe",
            BenchModel::Ple => "ple",
        }
    }

    /// The `[model.backbone]` table of the run configuration.
    pub(crate) fn backbone_toml(self) -> &'static str {
        match self {
            BenchModel::SharedBottom => "type = \"shared-bottom\"\nhidden = [256, 128]",
            BenchModel::Mmoe => "type = \"mmoe\"\nexperts = 4\nhidden = [256, 128]",
            BenchModel::Ple => {
                "type = \"ple\"\nlevels = 1\nshared_experts = 2\ntask_experts = 1\nhidden = [256, 128]"
            }
        }
    }
}

/// The run configuration of a benchmark model: embeddings of 16, towers with one hidden layer
/// of 64, Adam at learning rate 0.001, seed 1, batches of `batch` rows on `workers` data-parallel
/// workers, with CrossDistil (`distill.mode = "crossdistil"`) or without (`"off"`).
///
/// The configuration is fixed, so it always parses and validates.
pub fn bench_config(
    model: BenchModel,
    crossdistil: bool,
    workers: usize,
    batch: usize,
) -> RunConfig {
    let text = format!(
        "[model]\nembedding_dim = 16\n[model.backbone]\n{}\n[model.tower]\nhidden = [64]\n\
         [train]\nbatch_size = {batch}\nlr = 0.001\nseed = 1\nworkers = {workers}\n\
         [distill]\nmode = \"{}\"\n",
        model.backbone_toml(),
        if crossdistil { "crossdistil" } else { "off" }
    );
    let cfg: RunConfig = toml::from_str(&text).expect("the benchmark configuration parses");
    cfg.validate()
        .expect("the benchmark configuration is valid");
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The settings that `bench/peer/peer.py` implements (its constants and the terms of its
    /// objective), with and without CrossDistil: a change here needs the same change there.
    #[test]
    fn the_peer_implements_these_settings() {
        for model in BenchModel::ALL {
            for cd in [false, true] {
                let cfg = serde_json::to_value(bench_config(model, cd, 1, 1024)).unwrap();
                let at = |path: &str| cfg.pointer(path).cloned().unwrap_or(Value::Null);
                let want = [
                    ("/model/dropout", json!(0.0)),
                    ("/model/backbone/dropout", json!(0.0)),
                    ("/model/tower/dropout", json!(0.0)),
                    (
                        "/model/teacher",
                        json!({"hidden": [], "activation": "relu", "detach_repr": false, "inputs": []}),
                    ),
                    ("/train/lr", json!(0.001)),
                    ("/train/embedding_lr", Value::Null),
                    ("/train/optimizer", json!("adam")),
                    ("/train/weight_decay", json!(0.0)),
                    ("/train/beta1", json!(0.9)),
                    ("/train/beta2", json!(0.999)),
                    ("/train/eps", json!(1e-8)),
                    (
                        "/train/sparse_optimizer",
                        json!({"type": "adam", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}),
                    ),
                    ("/train/grad_clip", json!(0.0)),
                    ("/train/task_weights", json!([])),
                    ("/train/task_weighting", json!("fixed")),
                    (
                        "/distill/mode",
                        json!(if cd { "crossdistil" } else { "off" }),
                    ),
                    ("/distill/alpha", json!(0.5)),
                    ("/distill/beta", json!(0.1)),
                    ("/distill/gamma", json!(1.0)),
                    ("/distill/teacher_bce", json!(0.0)),
                    ("/distill/calibration", json!(true)),
                    ("/distill/calibrator", json!("online")),
                    ("/distill/calibrator_lr", json!(0.05)),
                    ("/distill/error_correction", json!("clamp-student")),
                    ("/distill/warmup_steps", json!(0)),
                    ("/distill/ramp_steps", json!(0)),
                    ("/distill/temperature", json!(1.0)),
                    ("/distill/task_alpha", json!([])),
                    ("/distill/min_confidence", json!(0.0)),
                    (
                        "/distill/ranking",
                        json!({"pairs": "adjacent", "kind": "bpr", "margin": 1.0, "max_pairs": 0}),
                    ),
                ];
                for (path, value) in want {
                    assert_eq!(at(path), value, "{} cd={cd}: {path}", model.name());
                }
            }
        }
    }
}
