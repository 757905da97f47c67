//! What `gemm.json` holds: every product timed, and per model its FLOPs per step, its
//! GEMM-limited ceilings and, from a `bench.json`, how close its training came to them.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::layers::{Layer, ProductKind};
use super::timing::Timing;
use crate::model::BenchModel;

/// Where a step's products run: `threads` GEMM threads on shards of `rows` rows, `copies` of
/// each product at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Setting {
    /// Threads of every product (`Parallelism::None` for 1, `Parallelism::Rayon` otherwise).
    pub threads: usize,
    /// Rows `m` of the batch or shard.
    pub rows: usize,
    /// Copies of the product timed at once, each on its own thread with operands of its own,
    /// as `copies` data-parallel workers run their shards: 1 for a product alone. A call's
    /// time is the slowest copy's.
    #[serde(default = "one")]
    pub copies: usize,
}

impl Setting {
    /// One product alone on `threads` threads at `rows` rows.
    pub fn alone(threads: usize, rows: usize) -> Setting {
        Setting {
            threads,
            rows,
            copies: 1,
        }
    }
}

fn one() -> usize {
    1
}

/// One product of a layer shape timed at one setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedProduct {
    /// Which of the layer's products.
    pub kind: ProductKind,
    /// The layer's input width `i`.
    pub inputs: usize,
    /// The layer's output width `o`.
    pub outputs: usize,
    /// Threads and rows.
    pub setting: Setting,
    /// Seconds per call: the median over the repetitions.
    pub seconds: f64,
    /// `2 rows i o / seconds`.
    pub flops_per_s: f64,
}

/// The GEMM-limited speed of a step: its products' times summed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    /// Data-parallel workers, each with its shard of `ceil(batch / workers)` rows at most.
    pub workers: usize,
    /// GEMM threads of each worker.
    pub threads: usize,
    /// Whether the products were timed with every worker's copy running at once (otherwise
    /// alone, and `W` workers are credited with `W` times one product's rate).
    #[serde(default)]
    pub at_once: bool,
    /// Rows of the largest shard (the batch for one worker).
    pub rows: usize,
    /// The sum of the times of the products of one shard's step: the least time a step
    /// takes, the workers running their shards at once.
    pub seconds: f64,
    /// The FLOP-weighted rate: the batch's FLOPs per step over `seconds` (for `W` workers,
    /// `W` times one worker's rate at its shard, that rate measured alone or with the other
    /// workers' products running beside it).
    pub flops_per_s: f64,
    /// `batch / seconds`: the rows/s that no training of this model can pass on this setting.
    pub rows_per_s: f64,
}

/// One model with or without CrossDistil: its layers, FLOPs and ceilings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelLimit {
    /// The model.
    pub model: BenchModel,
    /// With CrossDistil's teacher heads.
    pub crossdistil: bool,
    /// Its linear layers, read from the built model.
    pub layers: Vec<Layer>,
    /// FLOPs of the matrix products of one step on the batch.
    pub flops_per_step: u64,
    /// One worker on 1 thread and on 2, then each other worker count on 1 thread per worker.
    pub ceilings: Vec<Ceiling>,
}

impl ModelLimit {
    /// The ceiling of `workers` workers of `threads` GEMM threads each, if measured: with
    /// more than one worker, the one whose products were timed at once when there is one.
    pub fn ceiling(&self, workers: usize, threads: usize) -> Option<&Ceiling> {
        let mut of = self
            .ceilings
            .iter()
            .filter(|c| c.workers == workers && c.threads == threads);
        let first = of.next()?;
        Some(of.find(|c| c.at_once).unwrap_or(first))
    }

    /// The ceiling of `workers > 1` workers on one thread each, their products timed alone
    /// (`at_once: false`) or at once.
    pub fn workers_ceiling(&self, workers: usize, at_once: bool) -> Option<&Ceiling> {
        self.ceilings
            .iter()
            .find(|c| c.workers == workers && c.threads == 1 && c.at_once == at_once)
    }
}

/// A training speed of `bench.json` against its GEMM rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Achieved {
    /// The model.
    pub model: BenchModel,
    /// With CrossDistil.
    pub crossdistil: bool,
    /// Data-parallel workers, each on one thread (`RAYON_NUM_THREADS=1`).
    pub workers: usize,
    /// The measured training rows/s.
    pub train_rows_per_s: f64,
    /// FLOPs per step times steps per second: `flops_per_step * train_rows_per_s / batch`.
    pub flops_per_s: f64,
    /// The GEMM rate of `workers` workers on one thread each: `workers` times the one-thread
    /// rate at the shard's rows, the workers' products timed at once.
    pub gemm_flops_per_s: f64,
    /// The rows/s ceiling of `workers` workers on one thread each.
    pub ceiling_rows_per_s: f64,
    /// `flops_per_s / gemm_flops_per_s`, which is also the rows/s over the ceiling's.
    pub fraction: f64,
    /// The fraction of the GEMM rate with the workers' products timed alone (`W` times one
    /// product's rate with the other cores idle): the same as `fraction` for one worker.
    #[serde(default)]
    pub fraction_alone: f64,
}

/// Everything `gemm.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmReport {
    /// Rows per training batch.
    pub batch: usize,
    /// Cores of the machine.
    pub cores: usize,
    /// How each product was timed.
    pub timing: Timing,
    /// Every distinct product of every setting, once.
    pub products: Vec<TimedProduct>,
    /// Each model without, then with CrossDistil.
    pub models: Vec<ModelLimit>,
    /// The `crossdistil` rows of a `bench.json` (the table-size sweep left out), when given.
    pub achieved: Vec<Achieved>,
}

/// What the GEMM limit reads of a row of `bench.json` (a [`crate::Row`]; the rest is left).
#[derive(Debug, Clone, Deserialize)]
pub struct BenchRow {
    /// `crossdistil` or `pytorch`.
    pub side: String,
    /// The model.
    pub model: BenchModel,
    /// With CrossDistil.
    pub crossdistil: bool,
    /// Data-parallel workers.
    pub workers: usize,
    /// A run of the table-size sweep.
    pub sweep: bool,
    /// The median training rows/s.
    pub train_rows_per_s: f64,
}

/// What the GEMM limit reads of a `bench.json`: its batch and rows.
#[derive(Debug, Clone, Deserialize)]
pub struct BenchJson {
    /// The shape's batch.
    pub batch: usize,
    /// The rows of the report.
    pub rows: Vec<BenchRow>,
}

/// The part of `bench.json`'s shape read here.
#[derive(Deserialize)]
struct BatchOf {
    batch: usize,
}

/// The part of `bench.json` read here.
#[derive(Deserialize)]
struct BenchFile {
    shape: BatchOf,
    rows: Vec<BenchRow>,
}

impl BenchJson {
    /// Reads the `bench.json` at `path` (as `cargo xtask bench` writes it).
    pub fn read(path: &Path) -> anyhow::Result<BenchJson> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let f: BenchFile =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(BenchJson {
            batch: f.shape.batch,
            rows: f.rows,
        })
    }

    /// The rows compared with the GEMM rate: our side's, outside the table-size sweep.
    pub(crate) fn ours(&self) -> impl Iterator<Item = &BenchRow> {
        self.rows
            .iter()
            .filter(|r| r.side == "crossdistil" && !r.sweep)
    }
}
