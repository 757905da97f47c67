//! The command line of one measurement: what the parent passes to a child process (ours or
//! the PyTorch peer's) and what the child parses.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::model::BenchModel;
use crate::shape::Shape;

/// The variants of the PyTorch peer (`bench/peer/peer.py --variant`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerVariant {
    /// One sparse table per field, Adam's CPU default, one matrix product per expert.
    Plain,
    /// One sparse table for all fields, fused Adam, the experts, towers and teacher heads of
    /// each layer as one batched matrix product, the gates as one linear layer.
    Tuned,
    /// `Tuned` with its dense part compiled by `torch.compile` (inductor, CPU).
    Compiled,
}

impl PeerVariant {
    /// Every variant, in the report's order.
    pub const ALL: [PeerVariant; 3] = [
        PeerVariant::Plain,
        PeerVariant::Tuned,
        PeerVariant::Compiled,
    ];

    /// The name on the peer's command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            PeerVariant::Plain => "plain",
            PeerVariant::Tuned => "tuned",
            PeerVariant::Compiled => "compiled",
        }
    }
}

/// The arguments of one child run: the data, the model and the timing. A `clap::Args`, so that
/// a binary can take it as a subcommand's arguments; [`ChildArgs::to_args`] writes it back.
#[derive(Debug, Clone, clap::Args)]
pub struct ChildArgs {
    /// The prepared benchmark data.
    #[arg(long)]
    pub data: PathBuf,
    /// The model.
    #[arg(long, value_enum)]
    pub model: BenchModel,
    /// With CrossDistil.
    #[arg(long)]
    pub crossdistil: bool,
    /// Data-parallel workers.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Rows of every table (at least the data's vocabulary).
    #[arg(long)]
    pub table_rows: usize,
    /// Rows of the first field's table, its ids spread over it.
    #[arg(long)]
    pub first_table_rows: Option<usize>,
    /// Rows per batch.
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// Untimed steps before the first window.
    #[arg(long)]
    pub warmup_steps: usize,
    /// Steps per timed window.
    #[arg(long)]
    pub window_steps: usize,
    /// Timed windows (0: no training, no evaluation).
    #[arg(long)]
    pub windows: usize,
    /// Held-out rows of each evaluation pass.
    #[arg(long)]
    pub eval_rows: usize,
    /// Rows per evaluation batch.
    #[arg(long, default_value_t = 1024)]
    pub eval_batch: usize,
    /// Write the initial weights here (safetensors) for the peer to start from.
    #[arg(long)]
    pub export_init: Option<PathBuf>,
}

impl ChildArgs {
    /// The run of `model` on `data` at `shape`: every table of the data's vocabulary, the first
    /// one of `first_table_rows` rows when sweeping table sizes.
    pub fn new(
        data: &Path,
        shape: &Shape,
        model: BenchModel,
        crossdistil: bool,
        workers: usize,
        first_table_rows: Option<usize>,
    ) -> ChildArgs {
        ChildArgs {
            data: data.to_path_buf(),
            model,
            crossdistil,
            workers,
            table_rows: shape.vocab,
            first_table_rows,
            batch: shape.batch,
            warmup_steps: shape.warmup_steps,
            window_steps: shape.window_steps,
            windows: shape.windows,
            eval_rows: shape.eval_rows,
            eval_batch: shape.eval_batch,
            export_init: None,
        }
    }

    /// The command-line arguments that parse back to `self` (the PyTorch peer's `bench` and
    /// `parity` take the same ones, `--export-init` excepted).
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--data".to_string(),
            self.data.display().to_string(),
            "--model".into(),
            self.model.name().into(),
            "--workers".into(),
            self.workers.to_string(),
            "--table-rows".into(),
            self.table_rows.to_string(),
            "--batch".into(),
            self.batch.to_string(),
            "--warmup-steps".into(),
            self.warmup_steps.to_string(),
            "--window-steps".into(),
            self.window_steps.to_string(),
            "--windows".into(),
            self.windows.to_string(),
            "--eval-rows".into(),
            self.eval_rows.to_string(),
            "--eval-batch".into(),
            self.eval_batch.to_string(),
        ];
        if self.crossdistil {
            v.push("--crossdistil".into());
        }
        if let Some(r) = self.first_table_rows {
            v.push("--first-table-rows".into());
            v.push(r.to_string());
        }
        if let Some(p) = &self.export_init {
            v.push("--export-init".into());
            v.push(p.display().to_string());
        }
        v
    }

    /// The command-line arguments of the PyTorch peer's run of `self` as `variant`: those of
    /// [`ChildArgs::to_args`] and `--variant`.
    pub fn to_peer_args(&self, variant: PeerVariant) -> Vec<String> {
        let mut v = self.to_args();
        v.push("--variant".into());
        v.push(variant.name().into());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ChildArgs,
    }

    /// What the parent writes, the child reads back.
    #[test]
    fn arguments_parse_back() {
        let mut a = ChildArgs::new(
            Path::new("data/bench"),
            &Shape::QUICK,
            BenchModel::Ple,
            true,
            2,
            Some(100_000),
        );
        a.export_init = Some("init.safetensors".into());
        let args = std::iter::once("child".to_string()).chain(a.to_args());
        let b = Cli::parse_from(args).args;
        assert_eq!(b.to_args(), a.to_args());
        assert_eq!(
            (b.model, b.crossdistil, b.workers),
            (BenchModel::Ple, true, 2)
        );
        assert_eq!(b.first_table_rows, Some(100_000));
    }

    /// The peer's arguments end with its variant, named as on its command line and in JSON.
    #[test]
    fn the_peer_gets_its_variant() {
        let a = ChildArgs::new(
            Path::new("data/bench"),
            &Shape::QUICK,
            BenchModel::Mmoe,
            false,
            1,
            None,
        );
        for v in PeerVariant::ALL {
            let args = a.to_peer_args(v);
            assert_eq!(args[..args.len() - 2], a.to_args()[..]);
            assert_eq!(args[args.len() - 2..], ["--variant", v.name()]);
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                format!("\"{}\"", v.name())
            );
            assert_eq!(PeerVariant::from_str(v.name(), false), Ok(v));
        }
    }
}
