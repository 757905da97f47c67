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
