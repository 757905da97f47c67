//! `cargo xtask experiment`: a grid of runs (configurations x variants x seeds), resumable,
//! in parallel processes, summarised as mean and standard deviation per cell, with the paired
//! difference of every variant from its baseline and PNG plots.
//!
//! ```toml
//! name = "adult-ablation"
//! configs = ["configs/adult-mmoe.toml", "configs/adult-ple.toml"]   # relative to the workspace
//! baseline = "backbone"            # the variant the others are compared with (optional)
//!
//! [variants.backbone]              # each variant: a TOML table merged into every config
//! distill.mode = "off"
//!
//! [variants.crossdistil]
//! distill.mode = "crossdistil"
//! ```
//!
//! Without `[variants]` every config runs as it is (one implicit variant, `base`). A `[common]`
//! table is merged into every config first (for example `tasks = ["like", "above_mean", "love"]`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, bail};
use crossdistil_train::Report;
use crossdistil_train::evaluate::TaskMetrics;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::plots;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    pub name: String,
    pub configs: Vec<PathBuf>,
    #[serde(default)]
    pub baseline: Option<String>,
    /// Merged into every config before the variant (for example `tasks = [...]`).
    #[serde(default)]
    pub common: toml::Table,
    #[serde(default)]
    pub variants: BTreeMap<String, toml::Table>,
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

/// The paired difference `variant - baseline` over seeds, with a two-sided paired t-test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Paired {
    pub mean_diff: f64,
    pub std_diff: f64,
    pub t: Option<f64>,
    pub p_value: Option<f64>,
    pub wins: usize,
    pub n: usize,
}

/// Paired t-test of `a - b` (same seeds in the same order).
pub fn paired(a: &[f64], b: &[f64]) -> Paired {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let s = Stat::of(d.clone());
    let n = d.len();
    let (t, p) = if n >= 2 && s.std > 0.0 {
        let t = s.mean / (s.std / (n as f64).sqrt());
        let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).expect("n - 1 >= 1 degrees of freedom");
        (Some(t), Some(2.0 * (1.0 - dist.cdf(t.abs()))))
    } else {
        (None, None)
    };
    Paired {
        mean_diff: s.mean,
        std_diff: s.std,
        t,
        p_value: p,
        wins: d.iter().filter(|&&x| x > 0.0).count(),
        n,
    }
}

/// One cell: a config and a variant, over the seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub config: String,
    pub variant: String,
    pub seeds: Vec<u64>,
    /// split -> task -> metric -> summary over seeds.
    pub metrics: BTreeMap<String, BTreeMap<String, BTreeMap<String, Stat>>>,
    pub valid_mean_auc: Stat,
    pub test_mean_auc: Stat,
    pub train_seconds: Stat,
    pub epochs_run: Stat,
    /// split -> task -> metric -> paired difference from the baseline variant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vs_baseline: BTreeMap<String, BTreeMap<String, BTreeMap<String, Paired>>>,
}

pub struct Args {
    pub root: PathBuf,
    pub data: PathBuf,
    pub grid: PathBuf,
    pub seeds: usize,
    pub out: PathBuf,
    pub jobs: usize,
}

fn stem(config: &Path) -> String {
    config
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "config".into())
}

/// Merges `over` into `base`, table by table.
fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

struct Cell {
    config: PathBuf,
    variant: String,
    dir: PathBuf,
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.grid)
        .with_context(|| format!("cannot read {}", a.grid.display()))?;
    let mut grid: Grid = toml::from_str(&text).with_context(|| format!("{}", a.grid.display()))?;
    if grid.configs.is_empty() || a.seeds == 0 {
        bail!(
            "{}: the grid needs at least one config and --seeds >= 1",
            a.grid.display()
        );
    }
    if grid.variants.is_empty() {
        grid.variants.insert("base".into(), toml::Table::new());
    }
    if let Some(b) = &grid.baseline
        && !grid.variants.contains_key(b)
    {
        bail!(
            "{}: baseline `{b}` is not one of the variants",
            a.grid.display()
        );
    }
    // Cells: a merged config per (config, variant), written beside its runs.
    let mut cells = Vec::new();
    for c in &grid.configs {
        let path = if c.is_absolute() {
            c.clone()
        } else {
            a.root.join(c)
        };
        let base: toml::Table = toml::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        )
        .with_context(|| format!("{}", path.display()))?;
        for (v, over) in &grid.variants {
            let mut merged = base.clone();
            merge(&mut merged, &grid.common);
            merge(&mut merged, over);
            let dir = a.out.join(stem(&path)).join(v);
            std::fs::create_dir_all(&dir)?;
            let cfg_path = dir.join("config.toml");
            let text = toml::to_string(&merged)?;
            crossdistil_train::RunConfig::from_file(&write_then(&cfg_path, &text)?)
                .with_context(|| format!("variant `{v}` of {}", path.display()))?;
            cells.push(Cell {
                config: path.clone(),
                variant: v.clone(),
                dir,
            });
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
    for cell in &cells {
        for &s in &seeds {
            let dir = cell.dir.join(format!("seed-{s}"));
            if !dir.join("report.json").is_file() {
                todo.push((
                    cell.dir.join("config.toml"),
                    s,
                    dir,
                    format!("{}/{}", stem(&cell.config), cell.variant),
                ));
            }
        }
    }
    let total = cells.len() * seeds.len();
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
                    let Some((config, seed, dir, name)) = queue.lock().expect("queue").next()
                    else {
                        break;
                    };
                    bar.set_message(format!("{name} seed {seed}"));
                    if let Err(e) = one_run(&exe, &a.data, &config, seed, &dir, a.jobs > 1) {
                        failures
                            .lock()
                            .expect("failures")
                            .push(format!("{name} seed {seed}: {e:#}"));
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

    let mut results: Vec<CellResult> = cells
        .iter()
        .map(|c| summarise(c, &seeds))
        .collect::<anyhow::Result<_>>()?;
    if let Some(b) = &grid.baseline {
        add_paired(&mut results, b);
    }
    crossdistil_data::atomic::write_file(
        &a.out.join("results.json"),
        &serde_json::to_vec_pretty(&results)?,
    )?;
    let mut md = markdown(&grid, &a.data, &results);
    match draw_plots(&cells, &seeds, &a.out, &grid) {
        Ok(files) if !files.is_empty() => {
            md.push_str("\nPlots:\n\n");
            for f in files {
                md.push_str(&format!("- `{f}`\n"));
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("plots skipped: {e:#}"),
    }
    crossdistil_data::atomic::write_file(&a.out.join("results.md"), md.as_bytes())?;
    print!("{md}");
    Ok(())
}

fn write_then(path: &Path, text: &str) -> anyhow::Result<PathBuf> {
    crossdistil_data::atomic::write_file(path, text.as_bytes())?;
    Ok(path.to_path_buf())
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

type Getter = fn(&TaskMetrics) -> Option<f64>;

const METRICS: [(&str, Getter); 9] = [
    ("auc", |m| m.auc),
    ("gauc", |m| m.gauc),
    ("multi_auc", |m| m.multi_auc),
    ("logloss", |m| m.logloss),
    ("ece", |m| m.ece),
    ("teacher_auc", |m| m.teacher_auc),
    ("teacher_multi_auc", |m| m.teacher_multi_auc),
    ("cal_teacher_logloss", |m| m.calibrated_teacher_logloss),
    ("cal_teacher_ece", |m| m.calibrated_teacher_ece),
];

fn read_reports(cell: &Cell, seeds: &[u64]) -> anyhow::Result<Vec<Report>> {
    seeds
        .iter()
        .map(|s| {
            Ok(Report::read(
                &cell.dir.join(format!("seed-{s}/report.json")),
            )?)
        })
        .collect()
}

fn summarise(cell: &Cell, seeds: &[u64]) -> anyhow::Result<CellResult> {
    let reports = read_reports(cell, seeds)?;
    let mut metrics = BTreeMap::new();
    for split in ["valid", "test"] {
        let mut per_task = BTreeMap::new();
        for task in &reports[0].tasks {
            let mut per_metric = BTreeMap::new();
            for (name, get) in METRICS {
                let values: Vec<f64> = reports
                    .iter()
                    .filter_map(|r| get(&(if split == "valid" { &r.valid } else { &r.test })[task]))
                    .collect();
                if values.len() == reports.len() {
                    per_metric.insert(name.to_string(), Stat::of(values));
                }
            }
            per_task.insert(task.clone(), per_metric);
        }
        metrics.insert(split.to_string(), per_task);
    }
    Ok(CellResult {
        config: stem(&cell.config),
        variant: cell.variant.clone(),
        seeds: seeds.to_vec(),
        metrics,
        valid_mean_auc: Stat::of(reports.iter().map(|r| r.valid_mean_auc).collect()),
        test_mean_auc: Stat::of(reports.iter().map(|r| r.test_mean_auc).collect()),
        train_seconds: Stat::of(reports.iter().map(|r| r.train_seconds).collect()),
        epochs_run: Stat::of(reports.iter().map(|r| r.epochs_run as f64).collect()),
        vs_baseline: BTreeMap::new(),
    })
}

fn add_paired(results: &mut [CellResult], baseline: &str) {
    let base: BTreeMap<String, CellResult> = results
        .iter()
        .filter(|r| r.variant == baseline)
        .map(|r| (r.config.clone(), r.clone()))
        .collect();
    for r in results.iter_mut().filter(|r| r.variant != baseline) {
        let Some(b) = base.get(&r.config) else {
            continue;
        };
        for (split, tasks) in &r.metrics {
            for (task, ms) in tasks {
                for m in ["auc", "multi_auc", "gauc", "logloss"] {
                    if let (Some(x), Some(y)) = (ms.get(m), b.metrics[split][task].get(m)) {
                        r.vs_baseline
                            .entry(split.clone())
                            .or_default()
                            .entry(task.clone())
                            .or_default()
                            .insert(m.to_string(), paired(&x.values, &y.values));
                    }
                }
            }
        }
    }
}

fn fmt_stat(s: Option<&Stat>) -> String {
    s.map_or("-".into(), |s| format!("{:.4} ± {:.4}", s.mean, s.std))
}

fn fmt_paired(p: Option<&Paired>) -> String {
    match p {
        Some(p) => format!(
            "{:+.4} ({}/{}{})",
            p.mean_diff,
            p.wins,
            p.n,
            p.p_value.map_or(String::new(), |v| format!(", p={v:.3}"))
        ),
        None => "".into(),
    }
}

fn markdown(grid: &Grid, data: &Path, results: &[CellResult]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let n = results.first().map_or(0, |r| r.seeds.len());
    let tasks: Vec<String> = results
        .first()
        .map(|r| r.metrics["test"].keys().cloned().collect())
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "### {}: mean ± std over {n} seeds (data `{}`)\n",
        grid.name,
        data.display()
    );
    let has = |m: &str| {
        results
            .iter()
            .any(|r| r.metrics["test"].values().any(|t| t.contains_key(m)))
    };
    let student: Vec<&str> = ["auc", "gauc", "multi_auc", "logloss"]
        .into_iter()
        .filter(|m| has(m))
        .collect();
    // Test metrics of the student.
    let mut header = vec![
        "config".to_string(),
        "variant".to_string(),
        "valid mean AUC".to_string(),
    ];
    for t in &tasks {
        for m in &student {
            header.push(format!("test {t} {}", m.replace('_', "-")));
        }
    }
    header.extend(["epochs".into(), "train s".into()]);
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(header.len()));
    for r in results {
        let mut row = vec![
            r.config.clone(),
            r.variant.clone(),
            fmt_stat(Some(&r.valid_mean_auc)),
        ];
        for t in &tasks {
            for m in &student {
                row.push(fmt_stat(r.metrics["test"][t].get(*m)));
            }
        }
        row.push(format!("{:.1}", r.epochs_run.mean));
        row.push(format!("{:.1}", r.train_seconds.mean));
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    if let Some(b) = &grid.baseline {
        let _ = writeln!(
            s,
            "\nPaired difference from `{b}` over the same seeds: mean (seeds where the variant is higher / seeds, two-sided paired t-test p).\n"
        );
        let mut header = vec!["config".to_string(), "variant".to_string()];
        for split in ["valid", "test"] {
            for t in &tasks {
                for m in ["auc", "multi_auc"] {
                    header.push(format!("{split} {t} {}", m.replace('_', "-")));
                }
            }
        }
        let _ = writeln!(s, "| {} |", header.join(" | "));
        let _ = writeln!(s, "|{}", "---|".repeat(header.len()));
        for r in results.iter().filter(|r| &r.variant != b) {
            let mut row = vec![r.config.clone(), r.variant.clone()];
            for split in ["valid", "test"] {
                for t in &tasks {
                    for m in ["auc", "multi_auc"] {
                        row.push(fmt_paired(
                            r.vs_baseline
                                .get(split)
                                .and_then(|x| x.get(t))
                                .and_then(|x| x.get(m)),
                        ));
                    }
                }
            }
            let _ = writeln!(s, "| {} |", row.join(" | "));
        }
    }
    if has("teacher_auc") {
        let _ = writeln!(
            s,
            "\nTeachers (test): ranking AUC and Multi-AUC of the teacher head, log loss and ECE of the calibrated teacher.\n"
        );
        let mut header = vec!["config".to_string(), "variant".to_string()];
        for t in &tasks {
            for m in [
                "teacher_auc",
                "teacher_multi_auc",
                "cal_teacher_logloss",
                "cal_teacher_ece",
            ] {
                header.push(format!("{t} {}", m.replace('_', "-")));
            }
        }
        let _ = writeln!(s, "| {} |", header.join(" | "));
        let _ = writeln!(s, "|{}", "---|".repeat(header.len()));
        for r in results.iter().filter(|r| {
            r.metrics["test"]
                .values()
                .any(|t| t.contains_key("teacher_auc"))
        }) {
            let mut row = vec![r.config.clone(), r.variant.clone()];
            for t in &tasks {
                for m in [
                    "teacher_auc",
                    "teacher_multi_auc",
                    "cal_teacher_logloss",
                    "cal_teacher_ece",
                ] {
                    row.push(fmt_stat(r.metrics["test"][t].get(m)));
                }
            }
            let _ = writeln!(s, "| {} |", row.join(" | "));
        }
    }
    s
}

/// Mean validation AUC per epoch over seeds, from each run's metrics.csv.
fn auc_curve(dir: &Path, seeds: &[u64]) -> Vec<(f64, f64)> {
    let mut by_epoch: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for s in seeds {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("seed-{s}/metrics.csv"))) else {
            continue;
        };
        let mut lines = text.lines();
        let Some(header) = lines.next() else { continue };
        let cols: Vec<&str> = header.split(',').collect();
        let (Some(e), Some(v)) = (
            cols.iter().position(|c| *c == "epoch"),
            cols.iter().position(|c| *c == "valid_mean_auc"),
        ) else {
            continue;
        };
        for l in lines {
            let f: Vec<&str> = l.split(',').collect();
            if let (Ok(ep), Ok(auc)) = (f[e].parse::<usize>(), f[v].parse::<f64>()) {
                by_epoch.entry(ep).or_default().push(auc);
            }
        }
    }
    by_epoch
        .into_iter()
        .map(|(e, v)| (e as f64, v.iter().sum::<f64>() / v.len() as f64))
        .collect()
}

fn draw_plots(
    cells: &[Cell],
    seeds: &[u64],
    out: &Path,
    grid: &Grid,
) -> anyhow::Result<Vec<String>> {
    let mut files = Vec::new();
    let mut configs: Vec<String> = cells.iter().map(|c| stem(&c.config)).collect();
    configs.dedup();
    for config in &configs {
        let series: Vec<(String, Vec<(f64, f64)>)> = cells
            .iter()
            .filter(|c| &stem(&c.config) == config)
            .map(|c| (c.variant.clone(), auc_curve(&c.dir, seeds)))
            .collect();
        let path = out.join(format!("{config}-valid-auc.png"));
        plots::lines(
            &path,
            &format!("{}: {config}, validation mean AUC per epoch", grid.name),
            "epoch",
            "mean validation AUC (over seeds)",
            &series,
        )?;
        files.push(path.display().to_string());
        // Reliability of the calibrated teachers, seed 1 of every variant with teachers.
        for c in cells.iter().filter(|c| &stem(&c.config) == config) {
            let Ok(r) = Report::read(&c.dir.join(format!("seed-{}/report.json", seeds[0]))) else {
                continue;
            };
            let series: Vec<(String, Vec<(f64, f64)>)> = r
                .tasks
                .iter()
                .filter_map(|t| {
                    let bins = r.test[t].calibrated_teacher_bins.as_ref()?;
                    let pts = bins
                        .iter()
                        .filter_map(|b| Some((b.mean_pred?, b.frac_pos?)))
                        .collect();
                    Some((t.clone(), pts))
                })
                .collect();
            if series.is_empty() {
                continue;
            }
            let path = out.join(format!("{config}-{}-teacher-reliability.png", c.variant));
            plots::reliability(
                &path,
                &format!(
                    "{config} / {}: calibrated teacher (test, seed {})",
                    c.variant, seeds[0]
                ),
                &series,
            )?;
            files.push(path.display().to_string());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_t_test_by_hand() {
        // Differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641, df 2: p = 0.0742.
        let p = paired(&[2.0, 4.0, 6.0], &[1.0, 2.0, 3.0]);
        assert!((p.mean_diff - 2.0).abs() < 1e-12);
        assert!((p.t.unwrap() - 3.464_101_6).abs() < 1e-6);
        assert!(
            (p.p_value.unwrap() - 0.074_180).abs() < 1e-4,
            "{:?}",
            p.p_value
        );
        assert_eq!(p.wins, 3);
        assert!(paired(&[1.0, 1.0], &[1.0, 1.0]).p_value.is_none());
    }

    #[test]
    fn variants_merge_into_nested_tables() {
        let mut base: toml::Table =
            toml::from_str("[train]\nepochs = 3\nlr = 0.1\n[distill]\nmode = \"off\"\n").unwrap();
        let over: toml::Table =
            toml::from_str("distill.mode = \"crossdistil\"\ntrain.lr = 0.01\n").unwrap();
        merge(&mut base, &over);
        assert_eq!(base["train"]["epochs"].as_integer(), Some(3));
        assert_eq!(base["train"]["lr"].as_float(), Some(0.01));
        assert_eq!(base["distill"]["mode"].as_str(), Some("crossdistil"));
    }
}
