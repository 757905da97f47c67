//! Running a grid: every missing run of every cell, in parallel child processes, then the
//! results written as JSON, Markdown and plots.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::error::{ExperimentError, Result, io};
use indicatif::{ProgressBar, ProgressStyle};

use crate::grid::{Cell, Grid};
use crate::markdown::markdown;
use crate::plots::{draw_plots, teacher_gap_table};
use crate::summary::{CellResult, add_paired, summarise_cell};

/// What [`run`] runs and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `crossdistil` binary: each run is `EXE train --data .. --config .. --out .. --seed
    /// .. --json` in a child process.
    pub exe: PathBuf,
    /// The folder that relative config paths of the grid are resolved against (the grid file's
    /// own folder, for the CLI).
    pub root: PathBuf,
    /// A prepared data set folder.
    pub data: PathBuf,
    /// The grid file ([`Grid`]).
    pub grid: PathBuf,
    /// The seeds of every cell, in this order (at least one; [`crate::parse_seeds`] reads them
    /// as a user writes them).
    pub seeds: Vec<u64>,
    /// The output folder: `<config>/<variant>/seed-<s>` per run, and the results.
    pub out: PathBuf,
    /// Runs at a time; with more than one, each child has `RAYON_NUM_THREADS=1`.
    pub jobs: usize,
    /// Show a progress bar on standard error.
    pub progress: bool,
}

/// What [`run`] produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// One result per cell, configs in grid order and variants in name order.
    pub results: Vec<CellResult>,
    /// The Markdown written to `out/results.md` (plots listed at its end).
    pub markdown: String,
    /// Runs trained by this call (the others were finished before).
    pub trained: usize,
    /// The plots written; empty when they could not be drawn (for example without a font).
    pub plots: Vec<String>,
}

/// One run of an experiment, as [`plan`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRun {
    /// The configuration's name (its file stem).
    pub config: String,
    /// The variant.
    pub variant: String,
    /// The seed.
    pub seed: u64,
    /// The run folder, `out/<config>/<variant>/seed-<s>`.
    pub dir: PathBuf,
    /// It has its `report.json` already, so [`run`] keeps it and trains nothing.
    pub done: bool,
}

/// What [`run`] would do, without doing or writing anything: every run of the grid in the
/// order it would start them (configs in grid order, variants in name order, then seeds),
/// each merged configuration checked as a run configuration.
pub fn plan(o: &Options) -> Result<Vec<PlannedRun>> {
    if o.seeds.is_empty() {
        return Err(ExperimentError::Invalid("no seeds to run".into()));
    }
    let grid = Grid::read(&o.grid)?;
    let cells = grid.plan_cells(&o.root, &o.out)?;
    Ok(cells
        .iter()
        .flat_map(|(c, _)| {
            o.seeds.iter().map(move |&seed| PlannedRun {
                config: c.config_name(),
                variant: c.variant.clone(),
                seed,
                dir: c.run_dir(seed),
                done: c.run_dir(seed).join("report.json").is_file(),
            })
        })
        .collect())
}

/// Runs an experiment: reads the grid, writes and checks every cell's configuration, trains
/// each run that has no `report.json` yet (so an interrupted experiment resumes, and a run
/// interrupted after its first commit continues with `--resume`; a run's log goes to its
/// `train.log`), then writes `out/results.json`, `out/results.md` and the
/// plots. Fails after all runs if any failed, naming each with its log.
pub fn run(o: &Options) -> Result<Outcome> {
    if o.seeds.is_empty() {
        return Err(ExperimentError::Invalid("no seeds to run".into()));
    }
    // A missing binary fails every run: say so once, before any run folder is made.
    if let Err(error) = std::fs::metadata(&o.exe) {
        return Err(ExperimentError::Io {
            action: "start",
            path: o.exe.clone(),
            error,
        });
    }
    let grid = Grid::read(&o.grid)?;
    let cells = grid.write_cells(&o.root, &o.out)?;
    let seeds = o.seeds.clone();
    let todo: Vec<(&Cell, u64)> = cells
        .iter()
        .flat_map(|c| seeds.iter().map(move |&s| (c, s)))
        .filter(|(c, s)| !c.run_dir(*s).join("report.json").is_file())
        .collect();
    let total = cells.len() * seeds.len();
    let trained = todo.len();
    tracing::info!(
        total,
        todo = trained,
        jobs = o.jobs,
        "experiment {}",
        grid.name
    );
    train_all(o, todo, total)?;

    let mut results: Vec<CellResult> = cells
        .iter()
        .map(|c| summarise_cell(c, &seeds))
        .collect::<Result<_>>()?;
    if let Some(b) = &grid.baseline {
        add_paired(&mut results, b);
    }
    crossdistil_data::write_atomic(
        &o.out.join("results.json"),
        &serde_json::to_vec_pretty(&results).expect("results serialise to JSON"),
    )?;
    let mut md = markdown(
        &grid.name,
        &o.data.display().to_string(),
        grid.baseline.as_deref(),
        &results,
    );
    md.push_str(&teacher_gap_table(&cells, &seeds));
    let plots = match draw_plots(&grid.name, &cells, &seeds, &o.out) {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!("plots skipped: {e:#}");
            Vec::new()
        }
    };
    if !plots.is_empty() {
        md.push_str("\nPlots:\n\n");
        for f in &plots {
            md.push_str(&format!("- `{f}`\n"));
        }
    }
    crossdistil_data::write_atomic(&o.out.join("results.md"), md.as_bytes())?;
    Ok(Outcome {
        results,
        markdown: md,
        trained,
        plots,
    })
}

/// Trains `todo` on `o.jobs` threads, each running one child process at a time.
fn train_all(o: &Options, todo: Vec<(&Cell, u64)>, total: usize) -> Result<()> {
    let bar = if o.progress {
        ProgressBar::new(total as u64).with_style(
            ProgressStyle::with_template(
                "{spinner} runs [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        )
    } else {
        ProgressBar::hidden()
    };
    bar.set_position((total - todo.len()) as u64);
    let queue = Mutex::new(todo.into_iter());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..o.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let Some((cell, seed)) = queue.lock().expect("queue").next() else {
                        break;
                    };
                    let name = format!("{}/{}", cell.config_name(), cell.variant);
                    bar.set_message(format!("{name} seed {seed}"));
                    if let Err(e) = one_run(o, cell, seed) {
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
        return Err(ExperimentError::Runs(failures));
    }
    Ok(())
}

/// One run of a cell in a child process, its standard error in `train.log`.
fn one_run(o: &Options, cell: &Cell, seed: u64) -> Result<()> {
    let dir = cell.run_dir(seed);
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let log_path = dir.join("train.log");
    let log = std::fs::File::create(&log_path).map_err(io("create", &log_path))?;
    let mut cmd = Command::new(&o.exe);
    cmd.arg("train")
        .arg("--data")
        .arg(&o.data)
        .arg("--config")
        .arg(cell.config_file())
        .arg("--out")
        .arg(&dir)
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--json");
    if dir.join("manifest.json").is_file() {
        // An interrupted run: continue it from its last commit.
        cmd.arg("--resume");
    }
    cmd.stdout(Stdio::null()).stderr(log);
    if o.jobs > 1 {
        cmd.env("RAYON_NUM_THREADS", "1");
    }
    let status = cmd.status().map_err(io("start", &o.exe))?;
    if !status.success() {
        return Err(ExperimentError::Invalid(format!(
            "exit {status}; see {}",
            log_path.display()
        )));
    }
    Ok(())
}
