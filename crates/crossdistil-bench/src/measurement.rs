//! One measured child run and the child that measures it.

use std::time::Instant;

use anyhow::bail;
use crossdistil_data::{Dataset, Split};
use crossdistil_train::Trainer;
use crossdistil_train::predict_all_on;
use serde::{Deserialize, Serialize};

use crate::batches::BenchBatches;
use crate::child::{ChildArgs, PeerVariant};
use crate::export::export_weights;
use crate::median::median;
use crate::model::BenchModel;
use crate::setup::build;
use crate::windows::Windows;

/// How a run of the PyTorch peer was set up, as the peer reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerSetup {
    /// The peer's variant.
    pub variant: PeerVariant,
    /// The implementation of the dense parameters' Adam: `for-loop` (the CPU's default),
    /// `fused` or `foreach`.
    pub dense_adam: String,
    /// The version of torch.
    pub torch: String,
}

/// One measured child run (the JSON line a child prints).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// `crossdistil` or `pytorch`.
    pub side: String,
    /// The model.
    pub model: BenchModel,
    /// With CrossDistil.
    pub crossdistil: bool,
    /// Data-parallel workers.
    pub workers: usize,
    /// Rows of the first field's table (the others have the data's vocabulary).
    pub first_table_rows: usize,
    /// Training rows per second of each timed window.
    pub windows: Vec<f64>,
    /// The median of `windows`.
    pub train_rows_per_s: f64,
    /// Milliseconds per step at that median: `1000 * batch / train_rows_per_s`.
    pub step_ms: f64,
    /// The median over three evaluation passes of held-out rows per second (0 when none ran).
    pub eval_rows_per_s: f64,
    /// Peak resident memory of the child (`VmHWM`), MiB.
    pub peak_rss_mib: f64,
    /// The PyTorch peer's setup; absent from crossdistil's runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerSetup>,
}

impl Measurement {
    /// A run of `a` with no timing (all rates 0).
    fn empty(a: &ChildArgs) -> Measurement {
        Measurement {
            side: "crossdistil".into(),
            model: a.model,
            crossdistil: a.crossdistil,
            workers: a.workers,
            first_table_rows: a.first_table_rows.unwrap_or(a.table_rows),
            windows: Vec::new(),
            train_rows_per_s: 0.0,
            step_ms: 0.0,
            eval_rows_per_s: 0.0,
            peak_rss_mib: 0.0,
            peer: None,
        }
    }
}

/// One child run: builds the model (exporting its initial weights when `a.export_init` is
/// set), trains for the warm-up and the timed windows, then times three evaluation passes over
/// the first `a.eval_rows` held-out rows (none in the table-size sweep, whose ids are remapped
/// per batch). With `a.windows == 0` it only builds and exports. Meant for a fresh process, so
/// that the peak RSS is the model's own.
pub fn run_child(a: &ChildArgs) -> anyhow::Result<Measurement> {
    crossdistil_train::tune_allocator();
    let ds = Dataset::load(&a.data)?;
    let (cfg, built) = build(a, &ds)?;
    if let Some(p) = &a.export_init {
        export_weights(&built.model, p)?;
    }
    if a.windows == 0 {
        return Ok(Measurement::empty(a));
    }
    let source = BenchBatches::new(&ds, a.batch, a.first_table_rows);
    if source.rows() < a.batch {
        bail!(
            "{}: fewer train rows than one batch of {}",
            a.data.display(),
            a.batch
        );
    }
    let mut windows = Windows::new(a.warmup_steps, a.window_steps, a.windows);
    let mut trainer = Trainer::new(built.model, &cfg, built.tasks, ds.tasks());
    trainer.fit(&source, 0..usize::MAX, &mut windows)?;
    let model = trainer.into_model();
    let windows = windows.into_rates();
    let mut eval_rows: Vec<u32> = ds.split_rows(Split::Valid);
    eval_rows.extend(ds.split_rows(Split::Test));
    let eval_len = if a.first_table_rows.is_some() {
        0
    } else {
        a.eval_rows
    };
    eval_rows.truncate(eval_len);
    let mut eval = Vec::new();
    for _ in 0..if eval_rows.is_empty() { 0 } else { 3 } {
        let started = Instant::now();
        predict_all_on(&model, &ds, &eval_rows, a.eval_batch, a.workers)?;
        eval.push(eval_rows.len() as f64 / started.elapsed().as_secs_f64());
    }
    let train = median(&windows);
    Ok(Measurement {
        windows,
        train_rows_per_s: train,
        step_ms: 1e3 * a.batch as f64 / train,
        eval_rows_per_s: median(&eval),
        peak_rss_mib: crossdistil_train::peak_rss_bytes().unwrap_or(0) as f64 / (1 << 20) as f64,
        ..Measurement::empty(a)
    })
}
