//! `cargo xtask bench`: training and evaluation speed at a fixed, typical CTR shape, optionally
//! side by side with a PyTorch implementation of the same models (`--peer`).
//!
//! The shape: `xtask prepare synthetic` data with 10 sparse fields of vocabulary 100,000
//! (tables of dimension 16), 8 dense features and two tasks; batch 1024; Shared-Bottom
//! (168-256-128), MMoE (4 experts 168-256-128, softmax gates) and PLE (one level, one expert per
//! task and two shared, 168-256-128 each: as many experts as MMoE), each with towers 128-64-1,
//! each with and without CrossDistil. Every measurement runs in a fresh child process
//! (`xtask bench-run`), so peak RSS is the model's own.
//!
//! Training speed is the median of timed windows of steps after a warm-up (with the minimum and
//! maximum window); evaluation speed is the median of three passes over the held-out rows. The
//! step time at other table sizes varies the first field's table (10^4, 10^6, 10^7 rows, ids
//! spread over the whole table) with the other nine at 10^5.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use candle_core::{Device, Tensor};
use clap::ValueEnum;
use crossdistil_data::SplitFractions;
use crossdistil_data::prepare::PrepareOptions;
use crossdistil_data::prepare::synthetic::{self, SyntheticOptions};
use crossdistil_data::{Batch, Batches, Dataset, GatherBatch, Order, Split};
use crossdistil_model::MultiTaskModel;
use crossdistil_train::BoxedBatches;
use crossdistil_train::LossParts;
use crossdistil_train::predict_all_on;
use crossdistil_train::save_tensors;
use crossdistil_train::{BatchSource, Control, Hooks, RunConfig, Trainer};
use crossdistil_train::{BuiltModel, build_model_for};
use serde::{Deserialize, Serialize};

/// The models of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchModel {
    SharedBottom,
    Mmoe,
    Ple,
}

impl BenchModel {
    pub const ALL: [BenchModel; 3] = [BenchModel::SharedBottom, BenchModel::Mmoe, BenchModel::Ple];

    pub fn name(self) -> &'static str {
        match self {
            BenchModel::SharedBottom => "shared-bottom",
            BenchModel::Mmoe => "mmoe",
            BenchModel::Ple => "ple",
        }
    }

    fn backbone_toml(self) -> &'static str {
        match self {
            BenchModel::SharedBottom => "type = \"shared-bottom\"\nhidden = [256, 128]",
            BenchModel::Mmoe => "type = \"mmoe\"\nexperts = 4\nhidden = [256, 128]",
            BenchModel::Ple => {
                "type = \"ple\"\nlevels = 1\nshared_experts = 2\ntask_experts = 1\nhidden = [256, 128]"
            }
        }
    }
}

/// The run configuration of a benchmark model.
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

/// The shape of the benchmark data: full or `--quick`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Shape {
    pub rows: usize,
    pub vocab: usize,
    pub batch: usize,
    pub warmup_steps: usize,
    pub window_steps: usize,
    pub windows: usize,
    pub eval_rows: usize,
    pub rounds: usize,
    pub table_sweep: &'static [usize],
}

pub const FULL: Shape = Shape {
    rows: 200_000,
    vocab: 100_000,
    batch: 1024,
    warmup_steps: 10,
    window_steps: 20,
    windows: 7,
    eval_rows: 40_000,
    rounds: 3,
    table_sweep: &[10_000, 1_000_000, 10_000_000],
};

pub const QUICK: Shape = Shape {
    rows: 20_000,
    vocab: 10_000,
    batch: 1024,
    warmup_steps: 2,
    window_steps: 3,
    windows: 2,
    eval_rows: 4_000,
    rounds: 1,
    table_sweep: &[10_000, 100_000],
};

/// One measured child run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    pub side: String,
    pub model: BenchModel,
    pub crossdistil: bool,
    pub workers: usize,
    /// Rows of the first field's table (the others have the data's vocabulary).
    pub first_table_rows: usize,
    /// Training rows per second of each timed window.
    pub windows: Vec<f64>,
    pub train_rows_per_s: f64,
    pub step_ms: f64,
    pub eval_rows_per_s: f64,
    pub peak_rss_mib: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return 0.0;
    }
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Arguments of one child run (`xtask bench-run`).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_enum)]
    pub model: BenchModel,
    #[arg(long)]
    pub crossdistil: bool,
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Rows of every table (at least the data's vocabulary).
    #[arg(long)]
    pub table_rows: usize,
    /// Rows of the first field's table, its ids spread over it.
    #[arg(long)]
    pub first_table_rows: Option<usize>,
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    #[arg(long)]
    pub warmup_steps: usize,
    #[arg(long)]
    pub window_steps: usize,
    #[arg(long)]
    pub windows: usize,
    #[arg(long)]
    pub eval_rows: usize,
    /// Write the initial weights here (safetensors) for the peer to start from.
    #[arg(long)]
    pub export_init: Option<PathBuf>,
}

/// Spreads id `id` over a table of `rows` rows: multiplication by an odd constant prime to 10,
/// a bijection modulo any `rows = 2^a 5^b`.
fn spread(id: u32, rows: usize) -> u32 {
    ((id as u64 * 2_654_435_761 + 12_345) % rows as u64) as u32
}

/// The benchmark's model of `a` for `ds`: every table at least `a.table_rows` rows, the first
/// `a.first_table_rows` when sweeping table sizes.
fn build(a: &RunArgs, ds: &Dataset) -> anyhow::Result<(RunConfig, BuiltModel)> {
    let cfg = bench_config(a.model, a.crossdistil, a.workers, a.batch);
    let mut schema = ds.input_schema();
    for (i, (_, v)) in schema.sparse.iter_mut().enumerate() {
        *v = (*v).max(a.table_rows);
        if let (0, Some(big)) = (i, a.first_table_rows) {
            *v = big;
        }
    }
    let built = build_model_for(&cfg, ds, &schema)?;
    Ok((cfg, built))
}

/// The model's weights (no optimiser state), for the peer.
fn export_weights(model: &MultiTaskModel, path: &Path) -> anyhow::Result<()> {
    // One tensor per layer (packed experts unpacked), and the tables without their moments.
    let mut tensors: HashMap<String, Tensor> = model.params().unpacked_tensors()?;
    tensors.extend(
        model
            .input()
            .save_tensors()?
            .into_iter()
            .filter(|(k, _)| k.ends_with(".weight")),
    );
    save_tensors(path, &tensors)?;
    Ok(())
}

/// The benchmark's batches: full batches of the train split in a seeded order per epoch, the
/// first field's ids spread over its whole table when the table is enlarged.
struct BenchBatches<'a> {
    ds: &'a Dataset,
    rows: Vec<u32>,
    batch: usize,
    first_table_rows: Option<usize>,
}

impl BatchSource for BenchBatches<'_> {
    fn epoch(&self, epoch: usize) -> crossdistil_train::Result<BoxedBatches<'_>> {
        let (size, big, fields) = (self.batch, self.first_table_rows, self.ds.sparse.len());
        let order = Order::Shuffled(epoch as u64 + 7);
        let batches = Batches::new(self.ds, &self.rows, size, order)
            .filter(move |b| b.size() == size)
            .map(move |mut batch| {
                if let Some(big) = big {
                    for r in 0..batch.size() {
                        batch.sparse[r * fields] = spread(batch.sparse[r * fields], big);
                    }
                }
                Ok(batch)
            });
        Ok(Box::new(batches))
    }
}

/// Times windows of `window` steps after `warmup` steps, and stops after the last window.
struct Windows {
    warmup: usize,
    window: usize,
    total: usize,
    start: Instant,
    rows: usize,
    rates: Vec<f64>,
}

impl Hooks for Windows {
    fn after_step(
        &mut self,
        trainer: &mut Trainer,
        batch: &Batch,
        _: &LossParts,
    ) -> crossdistil_train::Result<Control> {
        let step = trainer.step_count() as usize;
        if step == self.warmup {
            self.start = Instant::now();
            self.rows = 0;
        } else if step > self.warmup {
            self.rows += batch.size();
            if (step - self.warmup).is_multiple_of(self.window) {
                self.rates
                    .push(self.rows as f64 / self.start.elapsed().as_secs_f64());
                self.start = Instant::now();
                self.rows = 0;
            }
        }
        Ok(if step < self.total {
            Control::Continue
        } else {
            Control::Stop
        })
    }
}

/// One child run: train for the warm-up and the timed windows, then time evaluation.
pub fn run_child(a: &RunArgs) -> anyhow::Result<Measurement> {
    crossdistil_train::tune_allocator();
    let ds = Dataset::load(&a.data)?;
    let (cfg, built) = build(a, &ds)?;
    if let Some(p) = &a.export_init {
        export_weights(&built.model, p)?;
    }
    if a.windows == 0 {
        return Ok(Measurement {
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
        });
    }
    let source = BenchBatches {
        ds: &ds,
        rows: ds.split_rows(Split::Train),
        batch: a.batch,
        first_table_rows: a.first_table_rows,
    };
    if source.rows.len() < a.batch {
        bail!(
            "{}: fewer train rows than one batch of {}",
            a.data.display(),
            a.batch
        );
    }
    let mut windows = Windows {
        warmup: a.warmup_steps,
        window: a.window_steps,
        total: a.warmup_steps + a.window_steps * a.windows,
        start: Instant::now(),
        rows: 0,
        rates: Vec::with_capacity(a.windows),
    };
    let mut trainer = Trainer::new(built.model, &cfg, built.tasks, ds.tasks());
    trainer.fit(&source, 0..usize::MAX, &mut windows)?;
    let model = trainer.into_model();
    let windows = windows.rates;
    let mut eval_rows: Vec<u32> = ds.split_rows(Split::Valid);
    eval_rows.extend(ds.split_rows(Split::Test));
    // The table-size sweep measures training steps only (its ids are remapped per batch).
    let eval_len = if a.first_table_rows.is_some() {
        0
    } else {
        a.eval_rows
    };
    eval_rows.truncate(eval_len);
    let mut eval = Vec::new();
    for _ in 0..if eval_rows.is_empty() { 0 } else { 3 } {
        let started = Instant::now();
        predict_all_on(&model, &ds, &eval_rows, 8192, a.workers)?;
        eval.push(eval_rows.len() as f64 / started.elapsed().as_secs_f64());
    }
    let train = median(&windows);
    Ok(Measurement {
        side: "crossdistil".into(),
        model: a.model,
        crossdistil: a.crossdistil,
        workers: a.workers,
        first_table_rows: a.first_table_rows.unwrap_or(a.table_rows),
        windows,
        train_rows_per_s: train,
        step_ms: 1e3 * a.batch as f64 / train,
        eval_rows_per_s: median(&eval),
        peak_rss_mib: crossdistil_train::peak_rss_bytes().unwrap_or(0) as f64 / (1 << 20) as f64,
    })
}

/// The losses of one step, for the parity check against the peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Parity {
    pub loss_before: f64,
    pub loss_after: f64,
}

/// Exports the initial weights and the first batch to `dir`, takes one training step, and
/// returns the loss of the batch before and after it.
pub fn parity_child(a: &RunArgs, dir: &Path) -> anyhow::Result<Parity> {
    let ds = Dataset::load(&a.data)?;
    let (cfg, BuiltModel { model, tasks, .. }) = build(a, &ds)?;
    std::fs::create_dir_all(dir)?;
    export_weights(&model, &dir.join("init.safetensors"))?;
    let rows = ds.split_rows(Split::Train);
    let batch = Batch::gather(&ds, &rows[..a.batch.min(rows.len())]);
    let b = batch.size();
    let mut t = HashMap::new();
    t.insert(
        "sparse".to_string(),
        Tensor::from_slice(&batch.sparse, (b, ds.sparse.len()), &Device::Cpu)?,
    );
    t.insert(
        "dense".to_string(),
        Tensor::from_slice(&batch.dense, (b, ds.dense.len()), &Device::Cpu)?,
    );
    let labels = crossdistil_train::label_rows(&batch, ds.tasks(), &tasks);
    t.insert(
        "labels".to_string(),
        Tensor::from_slice(&labels, (b, tasks.len()), &Device::Cpu)?,
    );
    save_tensors(&dir.join("batch.safetensors"), &t)?;
    let mut trainer = Trainer::new(model, &cfg, tasks, ds.tasks());
    let before = trainer.step(&batch)?;
    let after = trainer.gradients(&batch)?;
    Ok(Parity {
        loss_before: before.total,
        loss_after: after.parts.total,
    })
}

/// Options of `cargo xtask bench`.
pub struct Args {
    pub root: PathBuf,
    pub out: PathBuf,
    pub quick: bool,
    pub peer: bool,
    pub workers: Vec<usize>,
    /// The xtask binary that runs the measurements (another build, e.g. with mimalloc).
    pub child_exe: Option<PathBuf>,
    /// Rounds over all configurations, instead of the shape's default.
    pub rounds: Option<usize>,
}

/// The benchmark data set, prepared on first use.
fn bench_data(root: &Path, shape: &Shape) -> anyhow::Result<PathBuf> {
    let dir = root.join(format!(
        "target/bench-data/synthetic-{}-{}",
        shape.rows, shape.vocab
    ));
    if dir.join("dataset.toml").exists() {
        return Ok(dir);
    }
    tracing::info!(dir = %dir.display(), "preparing the benchmark data");
    let o = SyntheticOptions {
        rows: shape.rows,
        fields: 10,
        vocab: shape.vocab,
        tasks: 2,
        dense: 8,
        ..Default::default()
    };
    let opts = PrepareOptions {
        out: dir.clone(),
        seed: 7,
        fractions: SplitFractions::default(),
    };
    synthetic::prepare(&o, &opts, &|_| {})?;
    Ok(dir)
}

fn child_args(
    data: &Path,
    shape: &Shape,
    model: BenchModel,
    crossdistil: bool,
    workers: usize,
    first_table_rows: Option<usize>,
) -> Vec<String> {
    let mut v = vec![
        "--data".to_string(),
        data.display().to_string(),
        "--model".into(),
        model.name().into(),
        "--workers".into(),
        workers.to_string(),
        "--table-rows".into(),
        shape.vocab.to_string(),
        "--batch".into(),
        shape.batch.to_string(),
        "--warmup-steps".into(),
        shape.warmup_steps.to_string(),
        "--window-steps".into(),
        shape.window_steps.to_string(),
        "--windows".into(),
        shape.windows.to_string(),
        "--eval-rows".into(),
        shape.eval_rows.to_string(),
    ];
    if crossdistil {
        v.push("--crossdistil".into());
    }
    if let Some(r) = first_table_rows {
        v.push("--first-table-rows".into());
        v.push(r.to_string());
    }
    v
}

/// Runs a child process and parses the JSON line it prints last.
fn measure<T: for<'de> Deserialize<'de>>(mut cmd: Command, what: &str) -> anyhow::Result<T> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: cannot start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("{what} printed no JSON:\n{stdout}"))?;
    serde_json::from_str(line).with_context(|| format!("{what}: cannot parse {line}"))
}

fn ours(exe: &Path, args: &[String]) -> Command {
    let mut c = Command::new(exe);
    c.arg("bench-run").args(args).env("RAYON_NUM_THREADS", "1");
    c
}

/// The Python of the peer's virtual environment, created (with torch) on first use.
fn peer_python(root: &Path) -> anyhow::Result<PathBuf> {
    let venv = root.join("target/peer-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".installed");
    if ready.exists() {
        return Ok(python);
    }
    tracing::info!(venv = %venv.display(), "installing the PyTorch peer (several GB, once)");
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("python3 -m venv")?;
    if !status.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "-r"])
        .arg(root.join("bench/peer/requirements.txt"))
        .status()
        .context("pip install")?;
    if !status.success() {
        bail!("pip install -r bench/peer/requirements.txt failed");
    }
    std::fs::write(&ready, b"")?;
    Ok(python)
}

fn peer(python: &Path, root: &Path, args: &[String], init: &Path) -> Command {
    let mut c = Command::new(python);
    c.arg(root.join("bench/peer/peer.py"))
        .arg("bench")
        .args(args)
        .arg("--init")
        .arg(init);
    c
}

/// One row of the report: a configuration and its measurements over the rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub side: String,
    pub model: BenchModel,
    pub crossdistil: bool,
    pub workers: usize,
    pub first_table_rows: usize,
    /// A run of the table-size sweep.
    pub sweep: bool,
    pub runs: Vec<Measurement>,
    /// Median over the runs of each run's median window.
    pub train_rows_per_s: f64,
    /// The slowest and the fastest window over every run.
    pub train_min: f64,
    pub train_max: f64,
    pub step_ms: f64,
    pub eval_rows_per_s: f64,
    pub peak_rss_mib: f64,
}

impl Row {
    fn of(runs: Vec<Measurement>, sweep: bool) -> Row {
        let m = &runs[0];
        let all: Vec<f64> = runs.iter().flat_map(|r| r.windows.clone()).collect();
        let train = median(&runs.iter().map(|r| r.train_rows_per_s).collect::<Vec<_>>());
        Row {
            side: m.side.clone(),
            model: m.model,
            crossdistil: m.crossdistil,
            workers: m.workers,
            first_table_rows: m.first_table_rows,
            sweep,
            train_rows_per_s: train,
            train_min: all.iter().copied().fold(f64::INFINITY, f64::min),
            train_max: all.iter().copied().fold(0.0, f64::max),
            step_ms: median(&runs.iter().map(|r| r.step_ms).collect::<Vec<_>>()),
            eval_rows_per_s: median(&runs.iter().map(|r| r.eval_rows_per_s).collect::<Vec<_>>()),
            peak_rss_mib: runs.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
            runs,
        }
    }
}

/// Everything `bench.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub shape: Shape,
    pub cores: usize,
    pub rows: Vec<Row>,
    pub parity: Vec<(BenchModel, Parity, Parity)>,
}

/// Runs the benchmark and writes `bench.json` and `bench.md` to `args.out`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut shape = if args.quick { QUICK } else { FULL };
    if let Some(r) = args.rounds {
        anyhow::ensure!(r >= 1, "--rounds must be at least 1");
        shape.rounds = r;
    }
    let data = bench_data(&args.root, &shape)?;
    std::fs::create_dir_all(&args.out)?;
    let python = if args.peer {
        Some(peer_python(&args.root)?)
    } else {
        None
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let exe = match &args.child_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };

    let mut parity = Vec::new();
    if let Some(py) = &python {
        for model in [BenchModel::SharedBottom, BenchModel::Mmoe] {
            let dir = args.out.join(format!("parity-{}", model.name()));
            let a = child_args(&data, &shape, model, false, 1, None);
            let mut c = Command::new(&exe);
            c.arg("bench-parity").args(&a).arg("--dir").arg(&dir);
            let ours: Parity = measure(c, "parity (crossdistil)")?;
            let mut c = Command::new(py);
            c.arg(args.root.join("bench/peer/peer.py"))
                .arg("parity")
                .args(&a)
                .arg("--dir")
                .arg(&dir);
            let theirs: Parity = measure(c, "parity (PyTorch)")?;
            let ok = (ours.loss_before - theirs.loss_before).abs() < 1e-5
                && (ours.loss_after - theirs.loss_after).abs() < 1e-5;
            println!(
                "parity {}: loss before {:.7} vs {:.7}, after one step {:.7} vs {:.7}: {}",
                model.name(),
                ours.loss_before,
                theirs.loss_before,
                ours.loss_after,
                theirs.loss_after,
                if ok { "match (< 1e-5)" } else { "MISMATCH" }
            );
            if !ok {
                bail!("the PyTorch peer does not compute the same model as crossdistil");
            }
            parity.push((model, ours, theirs));
        }
    }

    // The plan: (label, command builder) pairs, run round by round so that the two sides
    // interleave and drift on the machine hits both alike.
    struct Job {
        key: String,
        sweep: bool,
        cmd: Box<dyn Fn() -> anyhow::Result<Command>>,
    }
    let mut jobs: Vec<Job> = Vec::new();
    for model in BenchModel::ALL {
        for cd in [false, true] {
            for &w in &args.workers {
                let a = child_args(&data, &shape, model, cd, w, None);
                jobs.push(Job {
                    key: format!("crossdistil {} cd={cd} workers={w}", model.name()),
                    sweep: false,
                    cmd: {
                        let exe = exe.clone();
                        Box::new(move || Ok(ours(&exe, &a)))
                    },
                });
            }
            if let Some(py) = &python {
                if cd {
                    continue;
                }
                let a = child_args(&data, &shape, model, cd, 1, None);
                let init = args.out.join(format!("init-{}.safetensors", model.name()));
                let no_steps = Shape {
                    warmup_steps: 0,
                    windows: 0,
                    ..shape
                };
                let mut export = child_args(&data, &no_steps, model, cd, 1, None);
                export.extend(["--export-init".into(), init.display().to_string()]);
                let (py, root, exe) = (py.clone(), args.root.clone(), exe.clone());
                jobs.push(Job {
                    key: format!("pytorch {} cd={cd} workers=1", model.name()),
                    sweep: false,
                    cmd: Box::new(move || {
                        if !init.exists() {
                            let _: Measurement =
                                measure(ours(&exe, &export), "exporting the initial weights")?;
                        }
                        Ok(peer(&py, &root, &a, &init))
                    }),
                });
            }
        }
    }
    for &rows in shape.table_sweep {
        let a = child_args(
            &data,
            &shape,
            BenchModel::SharedBottom,
            false,
            1,
            Some(rows),
        );
        jobs.push(Job {
            key: format!("crossdistil shared-bottom table={rows}"),
            sweep: true,
            cmd: {
                let exe = exe.clone();
                Box::new(move || Ok(ours(&exe, &a)))
            },
        });
    }

    let bar = indicatif::ProgressBar::new((jobs.len() * shape.rounds) as u64).with_style(
        indicatif::ProgressStyle::with_template("bench [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let sweeps: Vec<bool> = jobs.iter().map(|j| j.sweep).collect();
    let mut results: Vec<Vec<Measurement>> = vec![Vec::new(); jobs.len()];
    for round in 0..shape.rounds {
        for (job, out) in jobs.iter().zip(results.iter_mut()) {
            bar.set_message(format!("round {} {}", round + 1, job.key));
            let m: Measurement = measure((job.cmd)()?, &job.key)?;
            tracing::debug!(?m, "measured");
            out.push(m);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let report = Report {
        shape,
        cores,
        rows: results
            .into_iter()
            .zip(sweeps)
            .map(|(runs, sweep)| Row::of(runs, sweep))
            .collect(),
        parity,
    };
    let json = serde_json::to_string_pretty(&report)?;
    crossdistil_data::write_atomic(&args.out.join("bench.json"), json.as_bytes())?;
    let md = markdown(&report);
    crossdistil_data::write_atomic(&args.out.join("bench.md"), md.as_bytes())?;
    print!("{md}");
    std::io::stdout().flush()?;
    println!("written: {}", args.out.join("bench.json").display());
    Ok(())
}

fn find<'a>(
    r: &'a Report,
    side: &str,
    model: BenchModel,
    cd: bool,
    workers: usize,
) -> Option<&'a Row> {
    r.rows.iter().find(|x| {
        x.side == side
            && x.model == model
            && x.crossdistil == cd
            && x.workers == workers
            && !x.sweep
    })
}

/// The ratios `f(a) / f(b)` of the runs of `a` and `b` in the same round: their median, minimum
/// and maximum. The rounds run every configuration in turn, so a round's two runs are minutes
/// apart, while the machine's speed can drift between rounds.
fn per_round(a: &Row, b: &Row, f: impl Fn(&Measurement) -> f64) -> (f64, f64, f64) {
    let ratios: Vec<f64> = a
        .runs
        .iter()
        .zip(&b.runs)
        .map(|(x, y)| f(x) / f(y))
        .collect();
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(&ratios), lo, hi)
}

/// The report as Markdown tables.
pub fn markdown(r: &Report) -> String {
    let s = &r.shape;
    let mut out = format!(
        "Synthetic data: {} rows, 10 fields of vocabulary {}, dimension 16, 8 dense, 2 tasks; batch {}; {} cores. \
         Training rows/s: median over {} run(s) of the median of {} windows of {} steps after {} warm-up steps (min and max over all windows).\n\n",
        s.rows, s.vocab, s.batch, r.cores, s.rounds, s.windows, s.window_steps, s.warmup_steps
    );
    out.push_str("| side | model | CrossDistil | workers | train rows/s | (min - max) | step ms | eval rows/s | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|\n");
    for x in r.rows.iter().filter(|x| !x.sweep) {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.0} - {:.0} | {:.2} | {:.0} | {:.0} |\n",
            x.side,
            x.model.name(),
            if x.crossdistil { "yes" } else { "no" },
            x.workers,
            x.train_rows_per_s,
            x.train_min,
            x.train_max,
            x.step_ms,
            x.eval_rows_per_s,
            x.peak_rss_mib
        ));
    }
    out.push_str("\nCrossDistil's cost over its backbone (training rows/s):\n\n| model | workers | backbone | with CrossDistil | cost |\n|---|---|---|---|---|\n");
    for model in BenchModel::ALL {
        for x in r
            .rows
            .iter()
            .filter(|x| x.side == "crossdistil" && x.model == model && !x.crossdistil && !x.sweep)
        {
            if let Some(cd) = find(r, "crossdistil", model, true, x.workers) {
                out.push_str(&format!(
                    "| {} | {} | {:.0} | {:.0} | {:+.1}% |\n",
                    model.name(),
                    x.workers,
                    x.train_rows_per_s,
                    cd.train_rows_per_s,
                    100.0 * (x.train_rows_per_s / cd.train_rows_per_s - 1.0)
                ));
            }
        }
    }
    if r.rows.iter().any(|x| x.side == "pytorch") {
        out.push_str("\nRatio crossdistil / PyTorch (training rows/s; PyTorch on all cores; peak RSS). `ratio` divides the medians; `per round` is the median (min - max) of the ratios of the two sides' runs in the same round, which ran minutes apart, so that the machine's drift between rounds cancels:\n\n| model | PyTorch rows/s | crossdistil workers | crossdistil rows/s | ratio | per round | RSS crossdistil / PyTorch MiB |\n|---|---|---|---|---|---|---|\n");
        for model in BenchModel::ALL {
            let Some(p) = find(r, "pytorch", model, false, 1) else {
                continue;
            };
            for x in r.rows.iter().filter(|x| {
                x.side == "crossdistil" && x.model == model && !x.crossdistil && !x.sweep
            }) {
                let (mid, lo, hi) = per_round(x, p, |m| m.train_rows_per_s);
                out.push_str(&format!(
                    "| {} | {:.0} | {} | {:.0} | {:.2}x | {mid:.2}x ({lo:.2} - {hi:.2}) | {:.0} / {:.0} |\n",
                    model.name(),
                    p.train_rows_per_s,
                    x.workers,
                    x.train_rows_per_s,
                    x.train_rows_per_s / p.train_rows_per_s,
                    x.peak_rss_mib,
                    p.peak_rss_mib
                ));
            }
        }
    }
    out.push_str("\nStep time by the first field's table size (Shared-Bottom, 1 worker); `vs smallest, per round` is the median (min - max) over the rounds of the step time over the smallest table's in the same round:\n\n| table rows | step ms | train rows/s | vs smallest, per round | peak RSS MiB |\n|---|---|---|---|---|\n");
    let sweep: Vec<&Row> = r.rows.iter().filter(|x| x.sweep).collect();
    for x in &sweep {
        let (mid, lo, hi) = per_round(x, sweep[0], |m| m.step_ms);
        out.push_str(&format!(
            "| {} | {:.2} | {:.0} | {:+.1}% ({:+.1}% - {:+.1}%) | {:.0} |\n",
            x.first_table_rows,
            x.step_ms,
            x.train_rows_per_s,
            100.0 * (mid - 1.0),
            100.0 * (lo - 1.0),
            100.0 * (hi - 1.0),
            x.peak_rss_mib
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rates: &[f64]) -> Row {
        let runs = rates
            .iter()
            .map(|&r| Measurement {
                side: "crossdistil".into(),
                model: BenchModel::Mmoe,
                crossdistil: false,
                workers: 1,
                first_table_rows: 10,
                windows: vec![r],
                train_rows_per_s: r,
                step_ms: 1e3 / r,
                eval_rows_per_s: 0.0,
                peak_rss_mib: 0.0,
            })
            .collect();
        Row::of(runs, false)
    }

    /// Per-round ratios pair the runs of the same round: a machine twice as fast in round two
    /// leaves them alone, while the ratio of the medians moves.
    #[test]
    fn per_round_ratios_pair_runs_of_the_same_round() {
        let ours = row(&[30.0, 60.0, 33.0]);
        let theirs = row(&[20.0, 40.0, 30.0]);
        let (mid, lo, hi) = per_round(&ours, &theirs, |m| m.train_rows_per_s);
        assert_eq!((mid, lo, hi), (1.5, 1.1, 1.5));
        assert_eq!(ours.train_rows_per_s / theirs.train_rows_per_s, 33.0 / 30.0);
        let (mid, _, _) = per_round(&ours, &theirs, |m| m.step_ms);
        assert!((mid - 1.0 / 1.5).abs() < 1e-12);
    }
}
