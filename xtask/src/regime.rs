//! `cargo xtask regime-map`: CrossDistil against its backbone over a grid of simulated data
//! sets (the sparse task's positive rate x the tasks' correlation x training rows), each cell
//! an experiment of several seeds with paired tests, summarised as JSON, Markdown tables and
//! one heatmap PNG per metric.
//!
//! Each cell's data is `cargo xtask prepare simulate` with two tasks, `finish` (the dense task,
//! `--dense-rate`) and `like` (the swept rate), so that `like` is the sparse task of the paper's
//! setting when its rate is low. Data sets and finished runs are kept: the command resumes.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use crossdistil_data::prepare::PrepareOptions;
use crossdistil_data::prepare::simulate::{self, SimulateOptions, SimulationSummary};
use crossdistil_experiment::{CellResult, Paired, Panel, draw_heatmaps, parse_seeds};
use serde::Serialize;

/// The settings of a regime map (`cargo xtask regime-map`).
#[derive(Debug, Clone, clap::Args)]
pub struct MapOptions {
    /// The output folder (data sets, runs, results).
    #[arg(long, default_value = "runs/regime-map")]
    pub out: PathBuf,
    /// The positive rates of the swept task, `like`.
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.05,0.2,0.5")]
    pub rates: Vec<f64>,
    /// The correlations of the two tasks' utilities.
    #[arg(long, value_delimiter = ',', default_value = "0.2,0.5,0.8")]
    pub correlations: Vec<f64>,
    /// Training rows of each set (validation and test add 10% of all rows each).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub train_rows: Vec<usize>,
    /// Training seeds of every cell: a count, a range (101-110) or a list.
    #[arg(long, default_value = "101-110")]
    pub seeds: String,
    /// The positive rate of the dense task, `finish`.
    #[arg(long, default_value_t = 0.4)]
    pub dense_rate: f64,
    /// The label noise of the simulator.
    #[arg(long, default_value_t = 0.7)]
    pub noise: f64,
    /// Users of the simulator.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Items of the simulator.
    #[arg(long, default_value_t = 1000)]
    pub items: usize,
    /// Seed of the simulated data (the same for every cell).
    #[arg(long, default_value_t = 7)]
    pub data_seed: u64,
    /// The experiment grid run on each cell.
    #[arg(long, default_value = "experiments/regime-map.toml")]
    pub grid: PathBuf,
    /// Runs at a time.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// List the cells and stop.
    #[arg(long)]
    pub dry_run: bool,
}

/// The dense task and the swept one, in label order.
const TASKS: [&str; 2] = ["finish", "like"];

/// One cell of the map: a data set.
#[derive(Debug, Clone, Copy)]
struct Setting {
    train_rows: usize,
    correlation: f64,
    rate: f64,
}

impl Setting {
    fn name(&self) -> String {
        format!("n{}-c{}-r{}", self.train_rows, self.correlation, self.rate)
    }
}

/// A paired difference as the map reports it.
#[derive(Debug, Clone, Serialize)]
struct Diff {
    mean: f64,
    p_value: Option<f64>,
    wins: usize,
    n: usize,
}

impl From<&Paired> for Diff {
    fn from(p: &Paired) -> Diff {
        Diff {
            mean: p.mean_diff,
            p_value: p.p_value,
            wins: p.wins,
            n: p.n,
        }
    }
}

/// One entry of `regime-map.json`: a backbone on one data set, for one task.
#[derive(Debug, Clone, Serialize)]
struct Entry {
    train_rows: usize,
    correlation: f64,
    rate: f64,
    backbone: String,
    task: String,
    /// The task's AUC of its Bayes-optimal probability on the test split.
    bayes_auc: Option<f64>,
    /// Mean test AUC over the seeds: the backbone alone, CrossDistil's student, its teacher.
    backbone_auc: Option<f64>,
    crossdistil_auc: Option<f64>,
    teacher_auc: Option<f64>,
    /// CrossDistil minus the backbone, paired over the seeds (test split).
    auc: Option<Diff>,
    multi_auc: Option<Diff>,
}

fn settings(o: &MapOptions) -> Vec<Setting> {
    let mut out = Vec::new();
    for &train_rows in &o.train_rows {
        for &correlation in &o.correlations {
            for &rate in &o.rates {
                out.push(Setting {
                    train_rows,
                    correlation,
                    rate,
                });
            }
        }
    }
    out
}

/// Prepares the cell's data unless it is there already.
fn prepare(o: &MapOptions, s: &Setting, dir: &Path) -> anyhow::Result<SimulationSummary> {
    if dir.join(simulate::SUMMARY_FILE).is_file() {
        return SimulationSummary::read(dir).map_err(Into::into);
    }
    let opts = PrepareOptions::new(dir, o.data_seed);
    let held_out = opts.fractions.valid + opts.fractions.test;
    let sim = SimulateOptions {
        rows: (s.train_rows as f64 / (1.0 - held_out)).round() as usize,
        users: o.users,
        items: o.items,
        positive_rates: vec![o.dense_rate, s.rate],
        tasks: TASKS.iter().map(|t| t.to_string()).collect(),
        correlation: s.correlation,
        noise: o.noise,
        ..SimulateOptions::default()
    };
    let (_, summary) = simulate::prepare(&sim, &opts, &|_| {})
        .with_context(|| format!("preparing {}", dir.display()))?;
    Ok(summary)
}

fn metric(r: &CellResult, task: &str, name: &str) -> Option<f64> {
    Some(r.metrics.get("test")?.get(task)?.get(name)?.mean)
}

fn diff(r: &CellResult, task: &str, name: &str) -> Option<Diff> {
    Some(r.vs_baseline.get("test")?.get(task)?.get(name)?.into())
}

/// The entries of one cell's experiment.
fn entries(s: &Setting, summary: &SimulationSummary, results: &[CellResult]) -> Vec<Entry> {
    let mut out = Vec::new();
    for r in results.iter().filter(|r| r.variant == "crossdistil") {
        let Some(base) = results
            .iter()
            .find(|b| b.config == r.config && b.variant == "backbone")
        else {
            continue;
        };
        for task in TASKS {
            out.push(Entry {
                train_rows: s.train_rows,
                correlation: s.correlation,
                rate: s.rate,
                backbone: r.config.trim_start_matches("simulate-").to_string(),
                task: task.to_string(),
                bayes_auc: summary
                    .tasks
                    .iter()
                    .find(|t| t.name == task)
                    .and_then(|t| t.bayes_auc),
                backbone_auc: metric(base, task, "auc"),
                crossdistil_auc: metric(r, task, "auc"),
                teacher_auc: metric(r, task, "teacher_auc"),
                auc: diff(r, task, "auc"),
                multi_auc: diff(r, task, "multi_auc"),
            });
        }
    }
    out
}

/// Runs (or resumes) the whole map and writes `OUT/regime-map.{json,md}` and the heatmaps.
pub fn run(o: &MapOptions, exe: impl Fn() -> anyhow::Result<PathBuf>) -> anyhow::Result<()> {
    let seeds = parse_seeds(&o.seeds)?;
    let cells = settings(o);
    if cells.is_empty() {
        bail!("an empty map: give at least one rate, correlation and size");
    }
    if o.dry_run {
        for s in &cells {
            println!(
                "{}: simulate {} training rows, rates finish {} like {}, correlation {}, \
                 noise {}; {} seeds x {}",
                s.name(),
                s.train_rows,
                o.dense_rate,
                s.rate,
                s.correlation,
                o.noise,
                seeds.len(),
                o.grid.display()
            );
        }
        return Ok(());
    }
    let exe = exe()?;
    let root = o
        .grid
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut all = Vec::new();
    for (i, s) in cells.iter().enumerate() {
        let data = o.out.join("data").join(s.name());
        tracing::info!("cell {} of {}: {}", i + 1, cells.len(), s.name());
        let summary = prepare(o, s, &data)?;
        let outcome = crossdistil_experiment::run(&crossdistil_experiment::Options {
            exe: exe.clone(),
            root: root.clone(),
            data,
            grid: o.grid.clone(),
            seeds: seeds.clone(),
            out: o.out.join("runs").join(s.name()),
            jobs: o.jobs,
            progress: true,
        })?;
        all.extend(entries(s, &summary, &outcome.results));
        // Written after every cell, so a long map can be read while it runs.
        write_outputs(o, &all)?;
    }
    println!(
        "wrote {} and {}",
        o.out.join("regime-map.md").display(),
        o.out.join("regime-map.json").display()
    );
    Ok(())
}

fn write_outputs(o: &MapOptions, all: &[Entry]) -> anyhow::Result<()> {
    std::fs::create_dir_all(&o.out)?;
    std::fs::write(
        o.out.join("regime-map.json"),
        serde_json::to_string_pretty(all)?,
    )?;
    std::fs::write(o.out.join("regime-map.md"), markdown(o, all))?;
    for (metric, title) in [("auc", "test AUC"), ("multi_auc", "test Multi-AUC")] {
        let panels = panels(o, all, metric);
        if panels.is_empty() {
            continue;
        }
        let path = o.out.join(format!("heatmap-like-{metric}.png"));
        if let Err(e) = draw_heatmaps(
            &path,
            &format!(
                "CrossDistil minus backbone, like {title} (mean over seeds; p of the paired t-test)"
            ),
            "correlation of the tasks' utilities",
            "like positive rate",
            &panels,
            o.train_rows.len(),
        ) {
            tracing::warn!("no heatmap {}: {e}", path.display());
        }
    }
    Ok(())
}

fn get<'a>(
    all: &'a [Entry],
    backbone: &str,
    task: &str,
    n: usize,
    c: f64,
    r: f64,
) -> Option<&'a Entry> {
    all.iter().find(|e| {
        e.backbone == backbone
            && e.task == task
            && e.train_rows == n
            && e.correlation == c
            && e.rate == r
    })
}

fn backbones(all: &[Entry]) -> Vec<String> {
    let mut b: Vec<String> = all.iter().map(|e| e.backbone.clone()).collect();
    b.dedup();
    b.sort();
    b.dedup();
    b
}

fn pick<'a>(e: &'a Entry, metric: &str) -> Option<&'a Diff> {
    match metric {
        "auc" => e.auc.as_ref(),
        _ => e.multi_auc.as_ref(),
    }
}

fn panels(o: &MapOptions, all: &[Entry], metric: &str) -> Vec<Panel> {
    let mut out = Vec::new();
    for b in backbones(all) {
        for &n in &o.train_rows {
            let cell = |c: f64, r: f64| get(all, &b, "like", n, c, r).and_then(|e| pick(e, metric));
            let values = o
                .rates
                .iter()
                .map(|&r| {
                    o.correlations
                        .iter()
                        .map(|&c| cell(c, r).map(|d| d.mean))
                        .collect()
                })
                .collect();
            let texts = o
                .rates
                .iter()
                .map(|&r| {
                    o.correlations
                        .iter()
                        .map(|&c| match cell(c, r) {
                            Some(d) => format!(
                                "{:+.4}\np {}",
                                d.mean,
                                d.p_value.map_or("-".into(), |p| format!("{p:.3}"))
                            ),
                            None => String::new(),
                        })
                        .collect()
                })
                .collect();
            out.push(Panel {
                title: format!("{b}, {n} training rows"),
                rows: o.rates.iter().map(|r| format!("{r}")).collect(),
                cols: o.correlations.iter().map(|c| format!("{c}")).collect(),
                values,
                texts,
            });
        }
    }
    out
}

fn show(d: Option<&Diff>) -> String {
    match d {
        Some(d) => format!(
            "{:+.4} (p {}, {}/{})",
            d.mean,
            d.p_value.map_or("-".into(), |p| format!("{p:.3}")),
            d.wins,
            d.n
        ),
        None => "-".into(),
    }
}

fn markdown(o: &MapOptions, all: &[Entry]) -> String {
    let mut s = format!(
        "# Regime map: CrossDistil minus its backbone\n\nSimulated data (`cargo xtask prepare \
         simulate`): tasks finish (positive rate {}) and like (the rate of each row), \
         {} users x {} items, noise {}, data seed {}; seeds {}; grid {}. Cells: mean \
         difference of the test metric over the seeds (p of the paired t-test, seeds where \
         CrossDistil is higher / seeds).\n",
        o.dense_rate,
        o.users,
        o.items,
        o.noise,
        o.data_seed,
        o.seeds,
        o.grid.display()
    );
    for b in backbones(all) {
        for &n in &o.train_rows {
            for (metric, title) in [("auc", "AUC"), ("multi_auc", "Multi-AUC")] {
                s += &format!("\n## {b}, {n} training rows: like test {title}\n\n| like rate |");
                for c in &o.correlations {
                    s += &format!(" correlation {c} |");
                }
                s += "\n|---|";
                s += &"---|".repeat(o.correlations.len());
                s += "\n";
                for &r in &o.rates {
                    s += &format!("| {r} |");
                    for &c in &o.correlations {
                        let d = get(all, &b, "like", n, c, r).and_then(|e| pick(e, metric));
                        s += &format!(" {} |", show(d));
                    }
                    s += "\n";
                }
            }
            s += &format!(
                "\n{b}, {n} training rows, like test AUC: Bayes-optimal / backbone / CrossDistil \
                 student / its teacher\n\n| like rate |"
            );
            for c in &o.correlations {
                s += &format!(" correlation {c} |");
            }
            s += "\n|---|";
            s += &"---|".repeat(o.correlations.len());
            s += "\n";
            let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
            for &r in &o.rates {
                s += &format!("| {r} |");
                for &c in &o.correlations {
                    match get(all, &b, "like", n, c, r) {
                        Some(e) => {
                            s += &format!(
                                " {} / {} / {} / {} |",
                                f(e.bayes_auc),
                                f(e.backbone_auc),
                                f(e.crossdistil_auc),
                                f(e.teacher_auc)
                            )
                        }
                        None => s += " - |",
                    }
                }
                s += "\n";
            }
        }
    }
    s
}
