//! `crossdistil`: multi-task recommendation training with cross-task knowledge distillation.
//!
//! Thin by design: parses arguments, calls the library crates, prints their results.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::io::IsTerminal;

use crossdistil_data::{Dataset, Split, Summary};
use crossdistil_train::{FitOptions, RunConfig};

#[derive(Parser)]
#[command(name = "crossdistil", version, about, long_about = None)]
struct Cli {
    /// Log filter (also read from RUST_LOG), for example `info` or `crossdistil_data=debug`.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

/// The thread count of the commands that compute.
#[derive(clap::Args, Clone, Copy)]
struct Threads {
    /// Threads of candle's matrix products (0: one per core; RAYON_NUM_THREADS wins when set).
    /// The small dense layers of these models gain nothing from a second thread; run several
    /// processes instead (`crossdistil experiment --jobs`).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on a prepared data set, evaluate the best one on valid and test, and write
    /// RUN/report.json (plus checkpoints, metrics.csv and the resolved config). Started by
    /// `mpirun -np N` (a build with the `mpi` feature), each process is one rank of a
    /// data-parallel run: rank 0 logs and writes RUN, which every rank must see.
    Train {
        /// A prepared data set folder (`cargo xtask prepare ...`).
        #[arg(long)]
        data: PathBuf,
        /// The run configuration (see configs/). Optional with --resume.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The run folder.
        #[arg(long)]
        out: PathBuf,
        /// Continue the run in --out from its last checkpoint, with its optimiser state.
        #[arg(long, conflicts_with = "overwrite")]
        resume: bool,
        /// Replace the run that --out holds (its files are removed, its manifest first); without
        /// it, a folder that holds a run is refused.
        #[arg(long)]
        overwrite: bool,
        /// Override the seed of the configuration.
        #[arg(long)]
        seed: Option<u64>,
        /// Data-parallel worker threads, one core each (overrides `train.workers`): each batch
        /// is split between them and their gradients summed before one update.
        #[arg(long)]
        workers: Option<usize>,
        /// Print the report as JSON instead of tables.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        threads: Threads,
    },
    /// Evaluate a trained run's best model on a split: prints the metric table and writes
    /// RUN/eval-SPLIT.json (SPLIT: the split evaluated).
    Eval {
        /// A run folder written by `crossdistil train`.
        #[arg(long)]
        run: PathBuf,
        /// A prepared data set folder; its features are matched to the run's by name.
        #[arg(long)]
        data: PathBuf,
        /// The split to evaluate.
        #[arg(long, default_value = "test")]
        split: Split,
        /// Read the data a row group at a time (bounded memory), as a run trained with
        /// `train.stream = true` always does.
        #[arg(long)]
        stream: bool,
        /// Print the metrics as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        threads: Threads,
    },
    /// Write one probability column per task (with row_id and split) to a Parquet file, or,
    /// for data streamed from several part files, to a folder of one scores file per part.
    Predict {
        /// A run folder written by `crossdistil train`.
        #[arg(long)]
        run: PathBuf,
        /// A prepared data set folder; its features are matched to the run's by name.
        #[arg(long)]
        data: PathBuf,
        /// The scores file to write (Parquet); a folder when the data is streamed from several
        /// part files (one scores file per part, under the part's name).
        #[arg(long)]
        out: PathBuf,
        /// Only the rows of this split (default: every row).
        #[arg(long)]
        split: Option<Split>,
        /// Read the data a row group at a time (bounded memory), as a run trained with
        /// `train.stream = true` always does.
        #[arg(long)]
        stream: bool,
        /// Replace --out if it exists.
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        threads: Threads,
    },
    /// Export a trained run's best model to ONNX (the served students: gathers, backbone,
    /// towers, sigmoid; one output per task), with OUT.sample.parquet (test rows as the
    /// model's inputs with crossdistil's scores, `score_<task>`) and OUT.encoders.json (how raw
    /// values become inputs) beside it, and OUT.onnx.data when the tables go to external data.
    Export {
        /// A run folder written by `crossdistil train`.
        #[arg(long)]
        run: PathBuf,
        /// The model file to write, OUT.onnx.
        #[arg(long)]
        onnx: PathBuf,
        /// The prepared data set of the sample's test rows (default: the folder the run
        /// trained on, as RUN/report.json names it); its features are matched by name.
        #[arg(long)]
        data: Option<PathBuf>,
        /// The sample's rows: the first rows of the test split.
        #[arg(long, default_value_t = crossdistil_onnx::SAMPLE_ROWS)]
        sample_rows: usize,
        /// Write the tables to OUT.onnx.data (ONNX external data) when the model's
        /// parameters add up to more than this many bytes (one ONNX file holds at most 2 GiB).
        #[arg(long, default_value_t = crossdistil_onnx::DEFAULT_EXTERNAL_DATA_ABOVE)]
        external_data_above: u64,
        /// Replace the files of an earlier export.
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        threads: Threads,
    },
    /// Run a grid of configurations x variants x seeds, each run a `crossdistil train` child
    /// process (resumable: finished runs are kept), and write OUT/results.json, OUT/results.md
    /// (mean ± std of every metric, paired t-tests against the baseline) and PNG plots.
    #[command(after_help = "The grid file (see experiments/):\n\n  \
        name = \"adult-ablation\"\n  \
        configs = [\"../configs/adult-mmoe.toml\"]   # relative to the grid file\n  \
        baseline = \"backbone\"                      # optional\n  \
        [common]                                   # optional: merged into every config first\n  \
        [variants.backbone]                        # each merged into every config\n  \
        distill.mode = \"off\"\n  \
        [variants.crossdistil]\n  \
        distill.mode = \"crossdistil\"\n\n\
        Without [variants] every config runs as it is (one variant, `base`).")]
    Experiment {
        /// A prepared data set folder.
        #[arg(long)]
        data: PathBuf,
        /// The grid file: `name`, `configs = [...]` (paths relative to the grid file) and
        /// optional `[variants.NAME]` tables merged into every config, `baseline = "NAME"`.
        #[arg(long)]
        grid: PathBuf,
        /// The seeds of every configuration: `N` (seeds 1 to N), `A-B` (A to B) or a list
        /// (`1,5,9-12`).
        #[arg(long, default_value = "5", value_parser = seed_list)]
        seeds: SeedList,
        /// The output folder (one sub-folder per configuration, variant and seed).
        #[arg(long)]
        out: PathBuf,
        /// Runs at a time, each a single-threaded process when more than one.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// List the runs (configuration, variant, seed, folder, done or to run), check every
        /// merged configuration, and stop: nothing is trained or written.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show a prepared data set: schema, rows per split, positive rates, label combinations.
    Inspect {
        /// A folder written by `cargo xtask prepare` (holding dataset.toml and data.parquet).
        dir: PathBuf,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Only these tasks, comma-separated, in this order (default: all, in priority order).
        #[arg(long, value_delimiter = ',')]
        tasks: Vec<String>,
    },
}

/// The seeds of `--seeds`, in order.
#[derive(Clone, Debug)]
struct SeedList(Vec<u64>);

/// `--seeds`, parsed by the experiment crate.
fn seed_list(spec: &str) -> Result<SeedList, String> {
    crossdistil_experiment::parse_seeds(spec)
        .map(SeedList)
        .map_err(|e| e.to_string())
}

/// The folder of a grid file, which its relative config paths are resolved against.
fn grid_folder(grid: &std::path::Path) -> PathBuf {
    match grid.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The ranks of `mpirun -np N crossdistil train ...`, joined before anything else runs.
#[cfg(feature = "mpi")]
type Ranks = Option<std::sync::Arc<crossdistil_train::dist::MpiComm>>;
#[cfg(not(feature = "mpi"))]
type Ranks = Option<std::convert::Infallible>;

/// The number of processes of the MPI job this process was started in, from the launcher's
/// environment (1 when not started by `mpirun`).
fn launcher_ranks() -> usize {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(1)
}

/// Joins the MPI job when `train` was started by `mpirun` with more than one process.
fn join_ranks(command: &Command) -> anyhow::Result<Ranks> {
    if !matches!(command, Command::Train { .. }) || launcher_ranks() <= 1 {
        return Ok(None);
    }
    #[cfg(feature = "mpi")]
    {
        Ok(Some(std::sync::Arc::new(
            crossdistil_train::dist::MpiComm::init()?,
        )))
    }
    #[cfg(not(feature = "mpi"))]
    anyhow::bail!(
        "started by mpirun with {} processes, but this crossdistil was built without MPI: \
         build it with `cargo build --release -p crossdistil-cli --features mpi` (needs an MPI \
         library and libclang, see README.md)",
        launcher_ranks()
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ranks = match join_ranks(&cli.command) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let rank = rank_of(&ranks);
    // Rank 0 logs for the run; the others only their errors.
    init_logs(if rank == 0 { &cli.log } else { "error" });
    crossdistil_train::tune_allocator();
    // Only the commands that compute take a thread count; an experiment leaves it to its runs
    // (each a process of its own).
    let threads = match &cli.command {
        Command::Train { threads, .. }
        | Command::Eval { threads, .. }
        | Command::Predict { threads, .. }
        | Command::Export { threads, .. } => threads.threads,
        Command::Experiment { .. } | Command::Inspect { .. } => 0,
    };
    if threads > 0 && std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // candle's matrix products take their thread count from this variable; data loading
        // keeps every core.
        // SAFETY: set before any other thread of this process exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
    match run(cli.command, &ranks) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e, &ranks),
    }
}

#[cfg(feature = "mpi")]
fn rank_of(ranks: &Ranks) -> usize {
    use crossdistil_train::dist::Comm;
    ranks.as_ref().map_or(0, |c| c.rank())
}

#[cfg(not(feature = "mpi"))]
fn rank_of(_: &Ranks) -> usize {
    0
}

/// Reports `e`; in an MPI job, names the rank and ends every rank (`MPI_Abort`), so that none
/// waits for ever for this one.
fn fail(e: anyhow::Error, ranks: &Ranks) -> ExitCode {
    #[cfg(feature = "mpi")]
    if let Some(comm) = ranks {
        use crossdistil_train::dist::Comm;
        eprintln!(
            "error: rank {} of {}: {e:#}\nerror: ending every rank of the job",
            comm.rank(),
            comm.size()
        );
        comm.abort(1);
    }
    let _ = ranks;
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(command: Command, ranks: &Ranks) -> anyhow::Result<()> {
    match command {
        Command::Train {
            data,
            config,
            out,
            resume,
            overwrite,
            seed,
            workers,
            json,
            ..
        } => {
            let mut cfg = match (&config, resume) {
                (Some(path), _) => RunConfig::from_file(path)?,
                (None, true) => {
                    // A folder without a committed run is refused with what to do instead,
                    // unless it holds a run stopped before its first commit (started again).
                    let dir = crossdistil_train::RunDir::new(&out);
                    if !dir.uncommitted_start() {
                        dir.manifest()?;
                    }
                    RunConfig::from_file(&out.join("config.toml"))?
                }
                (None, false) => anyhow::bail!("--config is needed to start a run (see configs/)"),
            };
            if let Some(seed) = seed {
                cfg.train.seed = seed;
            }
            if let Some(w) = workers {
                cfg.train.workers = w;
            }
            cfg.validate()?;
            let opts = FitOptions {
                resume,
                overwrite,
                progress: std::io::stderr().is_terminal() && rank_of(ranks) == 0,
                stop_after_epochs: None,
                stop_after_steps: None,
            };
            let Some(report) = train(&data, &cfg, &out, &opts, ranks)? else {
                // Ranks other than 0: rank 0 prints the report.
                return Ok(());
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_table());
                println!("report: {}", out.join("report.json").display());
            }
        }
        Command::Eval {
            run,
            data,
            split,
            stream,
            json,
            ..
        } => {
            let opened = crossdistil_train::open_run_with(&run, &data, stream)?;
            let metrics = opened.evaluate(split)?;
            let path = run.join(format!("eval-{split}.json"));
            let text = serde_json::to_string_pretty(&metrics)?;
            crossdistil_data::write_atomic(&path, text.as_bytes())?;
            if json {
                println!("{text}");
            } else {
                print!(
                    "{}",
                    crossdistil_train::metrics_table(
                        &format!("{split} ({})", data.display()),
                        &opened.trained.task_names,
                        &metrics
                    )
                );
                println!("written: {}", path.display());
            }
        }
        Command::Predict {
            run,
            data,
            out,
            split,
            overwrite,
            stream,
            ..
        } => {
            if !out.is_dir() {
                crossdistil_train::check_scores_path(&out, overwrite)?;
            }
            let opened = crossdistil_train::open_run_with(&run, &data, stream)?;
            let rows = opened.write_scores(&out, split, overwrite)?;
            println!(
                "wrote {} rows x {} tasks to {}",
                rows,
                opened.trained.task_names.len(),
                out.display()
            );
        }
        Command::Export {
            run,
            onnx,
            data,
            sample_rows,
            external_data_above,
            overwrite,
            ..
        } => export(
            &run,
            &onnx,
            data,
            sample_rows,
            external_data_above,
            overwrite,
        )?,
        Command::Experiment {
            data,
            grid,
            seeds,
            out,
            jobs,
            dry_run,
        } => {
            let options = crossdistil_experiment::Options {
                exe: std::env::current_exe()?,
                root: grid_folder(&grid),
                data,
                grid,
                seeds: seeds.0,
                out: out.clone(),
                jobs,
                progress: std::io::stderr().is_terminal(),
            };
            if dry_run {
                print_plan(&crossdistil_experiment::plan(&options)?);
                return Ok(());
            }
            let outcome = crossdistil_experiment::run(&options)?;
            print!("{}", outcome.markdown);
            println!(
                "\n{} runs trained now; results: {}",
                outcome.trained,
                out.join("results.md").display()
            );
        }
        Command::Inspect { dir, json, tasks } => {
            let ds = Dataset::load(&dir)?;
            let summary = if tasks.is_empty() {
                Summary::of(&ds)
            } else {
                let names = ds.spec.task_names();
                let chosen = tasks
                    .iter()
                    .map(|t| {
                        names.iter().position(|n| n == t).ok_or_else(|| {
                            anyhow::anyhow!(
                                "--tasks: `{t}` is not a task of {} (tasks: {})",
                                dir.display(),
                                names.join(", ")
                            )
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                Summary::of_tasks(&ds, &chosen)
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", summary.to_table());
            }
        }
    }
    Ok(())
}

/// `experiment --dry-run`: one line per run, then the counts.
fn print_plan(runs: &[crossdistil_experiment::PlannedRun]) {
    println!("| config | variant | seed | status | folder |");
    println!("|---|---|---|---|---|");
    for r in runs {
        let status = if r.done { "done" } else { "to run" };
        println!(
            "| {} | {} | {} | {status} | {} |",
            r.config,
            r.variant,
            r.seed,
            r.dir.display()
        );
    }
    let todo = runs.iter().filter(|r| !r.done).count();
    println!(
        "\n{} runs: {todo} to run, {} done (dry run: nothing was trained or written)",
        runs.len(),
        runs.len() - todo
    );
}

/// `crossdistil export`: the run opened as `predict` opens it, its model, sample and encoders
/// written by the ONNX crate.
fn export(
    run: &std::path::Path,
    onnx: &std::path::Path,
    data: Option<PathBuf>,
    sample_rows: usize,
    external_data_above: u64,
    overwrite: bool,
) -> anyhow::Result<()> {
    let paths = crossdistil_onnx::ExportPaths::beside(onnx);
    paths.check(overwrite)?;
    let data = match data {
        Some(d) => d,
        None => trained_on(run)?,
    };
    let opened = crossdistil_train::open_run(run, &data)?;
    let trained = &opened.trained;
    let encoders = opened.data.encoders();
    let options = crossdistil_onnx::ExportOptions {
        external_data_above,
    };
    let model = crossdistil_onnx::export(
        &trained.model,
        &trained.task_names,
        &encoders.names.dense,
        options,
    )?;
    let batch = opened.config.train.eval_batch_size;
    let batches = match &opened.data {
        crossdistil_train::RunData::Loaded { ds, rows } => {
            let test = &rows[Split::Test as usize];
            crossdistil_onnx::dataset_batches(ds, &test[..test.len().min(sample_rows)], batch)
        }
        crossdistil_train::RunData::Streamed { source, .. } => {
            crossdistil_onnx::source_batches(source, encoders, Split::Test, sample_rows, batch)?
        }
    };
    let sample = crossdistil_onnx::Sample::of_batches(
        &trained.model,
        model.inputs(),
        &trained.task_names,
        batches,
    )?;
    let encoders = crossdistil_onnx::EncodersFile::new(encoders, model.inputs())?;
    let written = crossdistil_onnx::write_files(&paths, &model, &sample, &encoders, overwrite)?;
    let inputs: Vec<&str> = model.inputs().iter().map(|i| i.name.as_str()).collect();
    println!(
        "inputs: {}; outputs: {}; sample: {} test rows",
        inputs.join(", "),
        model.outputs().join(", "),
        written.sample_rows
    );
    for f in &written.files {
        println!("written: {}", f.display());
    }
    Ok(())
}

/// The data folder `run` trained on, from its report.
fn trained_on(run: &std::path::Path) -> anyhow::Result<PathBuf> {
    let report = run.join("report.json");
    let text = std::fs::read(&report).map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot read ({e}); name the run folder of a finished run, or pass --data DIR",
            report.display()
        )
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| anyhow::anyhow!("{}: {e}", report.display()))?;
    value["data"].as_str().map(PathBuf::from).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: names no data folder; pass --data DIR",
            report.display()
        )
    })
}

/// `fit`, on the ranks of an MPI job when there is one (the report on rank 0 only).
fn train(
    data: &std::path::Path,
    cfg: &RunConfig,
    out: &std::path::Path,
    opts: &FitOptions,
    ranks: &Ranks,
) -> anyhow::Result<Option<crossdistil_train::Report>> {
    #[cfg(feature = "mpi")]
    if let Some(comm) = ranks {
        let comm: std::sync::Arc<dyn crossdistil_train::dist::Comm> = comm.clone();
        return Ok(crossdistil_train::fit_distributed(
            data, cfg, out, opts, comm,
        )?);
    }
    let _ = ranks;
    Ok(Some(crossdistil_train::fit(data, cfg, out, opts)?))
}
