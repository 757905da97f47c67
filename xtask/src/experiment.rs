//! `cargo xtask experiment`: a grid of runs (configurations x seeds), resumable, in parallel
//! processes, summarised as mean and standard deviation per cell.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

/// The grid file.
///
/// ```toml
/// name = "adult-backbones"
/// configs = ["configs/adult-mmoe.toml", "configs/adult-ple.toml"]   # relative to the workspace
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    pub name: String,
    pub configs: Vec<PathBuf>,
}

/// One cell's runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub cell: String,
    pub config: String,
    pub seeds: Vec<u64>,
    /// task -> metric -> summary over seeds.
    pub test: BTreeMap<String, BTreeMap<String, Stat>>,
    pub valid: BTreeMap<String, BTreeMap<String, Stat>>,
    pub train_seconds: Stat,
    pub rows_per_second: Stat,
    pub epochs_run: Stat,
}

/// Mean, sample standard deviation and the values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub values: Vec<f64>,
}

impl Stat {
    pub fn of(values: Vec<f64>) -> Stat {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n.max(1.0);
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Stat {
            mean,
            std: var.sqrt(),
            values,
        }
    }
}

pub struct Args {
    pub root: PathBuf,
    pub data: PathBuf,
    pub grid: PathBuf,
    pub seeds: usize,
    pub out: PathBuf,
    pub jobs: usize,
}

fn cell_name(config: &Path) -> String {
    config
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "cell".into())
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.grid)
        .with_context(|| format!("cannot read {}", a.grid.display()))?;
    let grid: Grid = toml::from_str(&text).with_context(|| format!("{}", a.grid.display()))?;
    if grid.configs.is_empty() || a.seeds == 0 {
        bail!(
            "{}: the grid needs at least one config and --seeds >= 1",
            a.grid.display()
        );
    }
    let configs: Vec<PathBuf> = grid
        .configs
        .iter()
        .map(|c| {
            if c.is_absolute() {
                c.clone()
            } else {
                a.root.join(c)
            }
        })
        .collect();
    for c in &configs {
        if !c.is_file() {
            bail!(
                "{}: config {} does not exist",
                a.grid.display(),
                c.display()
            );
        }
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "crossdistil-cli"])
        .current_dir(&a.root)
        .status()?;
    if !status.success() {
        bail!("building crossdistil failed");
    }
    let exe = a.root.join("target/release/crossdistil");
    let seeds: Vec<u64> = (1..=a.seeds as u64).collect();
    let mut todo = Vec::new();
    for c in &configs {
        for &s in &seeds {
            let dir = a.out.join(cell_name(c)).join(format!("seed-{s}"));
            if !dir.join("report.json").is_file() {
                todo.push((c.clone(), s, dir));
            }
        }
    }
    let total = configs.len() * seeds.len();
    tracing::info!(
        total,
        todo = todo.len(),
        jobs = a.jobs,
        "experiment {}",
        grid.name
    );
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} runs [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_position((total - todo.len()) as u64);
    let queue = Mutex::new(todo.into_iter());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..a.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let Some((config, seed, dir)) = queue.lock().expect("queue").next() else {
                        break;
                    };
                    bar.set_message(format!("{} seed {seed}", cell_name(&config)));
                    if let Err(e) = one_run(&exe, &a.data, &config, seed, &dir, a.jobs > 1) {
                        failures
                            .lock()
                            .expect("failures")
                            .push(format!("{} seed {seed}: {e:#}", config.display()));
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let failures = failures.into_inner().expect("failures");
    if !failures.is_empty() {
        bail!("{} runs failed:\n{}", failures.len(), failures.join("\n"));
    }
    let results: Vec<CellResult> = configs
        .iter()
        .map(|c| summarise(c, &a.out.join(cell_name(c)), &seeds))
        .collect::<anyhow::Result<_>>()?;
    let json = serde_json::to_vec_pretty(&results)?;
    crossdistil_data::atomic::write_file(&a.out.join("results.json"), &json)?;
    let md = markdown(&grid.name, &a.data, &results);
    crossdistil_data::atomic::write_file(&a.out.join("results.md"), md.as_bytes())?;
    print!("{md}");
    Ok(())
}

fn one_run(
    exe: &Path,
    data: &Path,
    config: &Path,
    seed: u64,
    dir: &Path,
    single_thread: bool,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let log = std::fs::File::create(dir.join("train.log"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("train")
        .arg("--data")
        .arg(data)
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(dir);
    cmd.arg("--seed").arg(seed.to_string()).arg("--json");
    cmd.stdout(std::process::Stdio::null()).stderr(log);
    if single_thread {
        cmd.env("RAYON_NUM_THREADS", "1");
    }
    let status = cmd.status()?;
    if !status.success() {
        bail!("exit {status}; see {}", dir.join("train.log").display());
    }
    Ok(())
}

fn summarise(config: &Path, dir: &Path, seeds: &[u64]) -> anyhow::Result<CellResult> {
    let mut reports = Vec::new();
    for s in seeds {
        let p = dir.join(format!("seed-{s}/report.json"));
        reports.push(crossdistil_train::Report::read(&p)?);
    }
    let per_split =
        |pick: &dyn Fn(
            &crossdistil_train::Report,
        ) -> &BTreeMap<String, crossdistil_train::evaluate::TaskMetrics>| {
            let mut out: BTreeMap<String, BTreeMap<String, Stat>> = BTreeMap::new();
            for task in &reports[0].tasks {
                let mut metrics = BTreeMap::new();
                for (name, get) in METRICS {
                    let values: Vec<f64> =
                        reports.iter().filter_map(|r| get(&pick(r)[task])).collect();
                    if values.len() == reports.len() {
                        metrics.insert(name.to_string(), Stat::of(values));
                    }
                }
                out.insert(task.clone(), metrics);
            }
            out
        };
    Ok(CellResult {
        cell: cell_name(config),
        config: config.display().to_string(),
        seeds: seeds.to_vec(),
        test: per_split(&|r| &r.test),
        valid: per_split(&|r| &r.valid),
        train_seconds: Stat::of(reports.iter().map(|r| r.train_seconds).collect()),
        rows_per_second: Stat::of(reports.iter().map(|r| r.rows_per_second).collect()),
        epochs_run: Stat::of(reports.iter().map(|r| r.epochs_run as f64).collect()),
    })
}

type Getter = fn(&crossdistil_train::evaluate::TaskMetrics) -> Option<f64>;

const METRICS: [(&str, Getter); 5] = [
    ("auc", |m| m.auc),
    ("gauc", |m| m.gauc),
    ("multi_auc", |m| m.multi_auc),
    ("logloss", |m| m.logloss),
    ("ece", |m| m.ece),
];

fn markdown(name: &str, data: &Path, results: &[CellResult]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let n = results.first().map_or(0, |r| r.seeds.len());
    let _ = writeln!(s, "### {name}: test metrics, mean ± std over {n} seeds\n");
    let _ = writeln!(s, "Data: `{}`.\n", data.display());
    let tasks: Vec<String> = results
        .first()
        .map(|r| r.test.keys().cloned().collect())
        .unwrap_or_default();
    let metrics: Vec<&str> = METRICS
        .iter()
        .map(|m| m.0)
        .filter(|m| {
            results
                .iter()
                .all(|r| r.test.values().all(|t| t.contains_key(*m)))
        })
        .collect();
    let mut header = vec!["cell".to_string()];
    for t in &tasks {
        for m in &metrics {
            header.push(format!("{t} {}", m.replace('_', "-")));
        }
    }
    header.extend(["epochs".into(), "train s".into()]);
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(header.len()));
    for r in results {
        let mut row = vec![r.cell.clone()];
        for t in &tasks {
            for m in &metrics {
                let st = &r.test[t][*m];
                row.push(format!("{:.4} ± {:.4}", st.mean, st.std));
            }
        }
        row.push(format!("{:.1}", r.epochs_run.mean));
        row.push(format!(
            "{:.1} ± {:.1}",
            r.train_seconds.mean, r.train_seconds.std
        ));
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    s
}
