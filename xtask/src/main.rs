//! `cargo xtask`: the project's automation, in Rust rather than shell scripts.
//!
//! - `cargo xtask prepare <source> --out DIR [--rows-per-file N]`: a supported source into the
//!   canonical layout (one data file, or part files of at most N rows).
//! - `cargo xtask test [--mpi | --no-mpi]`: the tests as CI runs them, the MPI ones where MPI is
//!   installed.
//! - `cargo xtask experiment ...`: `crossdistil experiment ...` (a grid of runs), built first.
//! - `cargo xtask load-speed --data DIR`: how fast a prepared set loads.
//! - `cargo xtask bench [--quick] [--peer [--peer-variants plain,tuned,compiled]]`: training
//!   speed, memory, and the PyTorch peer in its variants (the harness is the crate
//!   `crossdistil-bench`).
//! - `cargo xtask bench --scale [--sizes 1e6,1e7,1e8]`: the same model trained and scored on
//!   data of growing size, with each child's time and peak memory.
//! - `cargo xtask bench --mpi [--ranks 1,2] [--rows 2e6] [--rounds 1] [--quick]`: data-parallel
//!   training on `mpirun` ranks.
//! - `cargo xtask bench --gemm-limit [--quick] [--bench-json PATH]`: the models' matrix products
//!   timed with the `gemm` crate (alone, and as data-parallel workers' shards at once), the
//!   GEMM-limited ceilings, and a `bench.json` against them.
//!
//! # The MPI benchmark
//!
//! `cargo xtask bench --mpi` measures what training on several processes gains and what their
//! exchanges cost. It builds `crossdistil` with `--features mpi` (copied to
//! `OUT/mpi/bin/crossdistil`, so that a later build without MPI leaves it alone), prepares
//! synthetic data once (the scale benchmark's, every field hashed into tables of 2^20 rows of
//! 16), and trains MMoE with CrossDistil for one epoch, at the same global batch, with
//! `mpirun -np N --oversubscribe --mca mpi_yield_when_idle 1 --mca btl self,tcp` for each N
//! of `--ranks`: on more than one rank once with the tables sharded over the ranks and once
//! replicated (`[train] tables`), one worker thread per rank. The configurations alternate
//! within each of `--rounds` rounds. Each job's `report.json` gives rows/s and, on several
//! ranks, the bytes a rank sends per step, the share of a step spent communicating and the
//! step time; `mpirun`'s own `ru_maxrss` gives the peak RSS of the job's largest process.
//! `OUT/mpi.json` holds every run and the medians per configuration, `OUT/mpi.md` the table
//! (printed too, with the command line that reproduces it). It needs Open MPI and libclang
//! (`apt-get install libopenmpi-dev openmpi-bin libclang-dev`) and says so when they are
//! missing; `--quick` (20,000 rows, tables of 4,096 rows) is the smoke run its test does.

mod bench;
mod gemm_limit;
mod mpi;
mod regime;
mod scale;
mod test;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{ArgGroup, Parser, Subcommand, ValueEnum};
use crossdistil_bench::ChildArgs;
use crossdistil_data::SplitFractions;
use crossdistil_data::prepare::simulate::{self, SimulateOptions, SimulationSummary};
use crossdistil_data::prepare::{self, PrepareOptions, Prepared, synthetic::SyntheticOptions};
use indicatif::{ProgressBar, ProgressStyle};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "crossdistil's project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Source {
    /// UCI Adult (bundled in datasets/adult): income > 50K, never married.
    Adult,
    /// MovieLens-100K, RecBole or GroupLens layout (--raw FOLDER): like, above_mean, love.
    #[value(name = "movielens-100k")]
    Movielens100k,
    /// TikTok ICME 2019 short-video challenge, tab-separated (--raw FILE or FOLDER): finish, like.
    #[value(name = "tiktok-icme2019")]
    TiktokIcme2019,
    /// AliExpress search logs, CSV (--raw FILE or FOLDER): click, conversion.
    Aliexpress,
    /// Ali-CCP, the pre-encoded CSV layout (--raw FILE or FOLDER): click, purchase.
    #[value(name = "ali-ccp")]
    AliCcp,
    /// Your own CSV/TSV/Parquet file described by a TOML (--raw CONFIG.toml).
    Custom,
    /// Generated data with known true probabilities (--rows, --fields, --vocab, --tasks).
    Synthetic,
    /// A ground-truth simulator: tasks as noisy thresholds of latent user-item utilities, with
    /// chosen positive rates, correlation, nesting and noise, and the Bayes-optimal
    /// probability of each task beside its label (--positive-rates, --correlation, --noise, ...).
    Simulate,
}

/// The options of `prepare simulate` (the model: `crossdistil_data::prepare::simulate`).
#[derive(clap::Args, Debug, Default, Clone, PartialEq)]
#[command(next_help_heading = "Simulate")]
struct SimulateArgs {
    /// Simulate: users (default 10000).
    #[arg(long)]
    users: Option<usize>,
    /// Simulate: items (default 10000).
    #[arg(long)]
    items: Option<usize>,
    /// Simulate: latent dimension L of the users' and items' vectors (default 8).
    #[arg(long)]
    latent: Option<usize>,
    /// Simulate: Zipf exponent of the users' popularity, 0 for uniform (default 0).
    #[arg(long, allow_negative_numbers = true)]
    user_zipf: Option<f64>,
    /// Simulate: Zipf exponent of the items' popularity, 0 for uniform (default 1.05).
    #[arg(long, allow_negative_numbers = true)]
    item_zipf: Option<f64>,
    /// Simulate: weight of the user and item biases in each utility, 0 for none (default 0.5).
    #[arg(long, allow_negative_numbers = true)]
    bias: Option<f64>,
    /// Simulate: the positive rate of each task, in (0, 1), comma-separated (default
    /// 0.3,0.05); their count is the number of tasks.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    positive_rates: Option<Vec<f64>>,
    /// Simulate: the correlation c in [0, 1] of the tasks' utilities (default 0.5).
    #[arg(long, allow_negative_numbers = true)]
    correlation: Option<f64>,
    /// Simulate: the standard deviation (> 0) of the label noise; the utilities have variance
    /// 1 (default 0.5).
    #[arg(long, allow_negative_numbers = true)]
    noise: Option<f64>,
    /// Simulate: each task implies the one before it (strictly decreasing rates).
    #[arg(long)]
    nested: bool,
    /// Simulate: also write each task's dense feature `hint_<task>`, its utility plus normal
    /// noise of this standard deviation (> 0): privileged information for a teacher
    /// (`model.teacher.inputs`). Off by default.
    #[arg(long)]
    hint_noise: Option<f64>,
}

impl SimulateArgs {
    /// Whether any option is given.
    fn any(&self) -> bool {
        *self != SimulateArgs::default()
    }
}

#[derive(Subcommand)]
enum Command {
    /// Prepare a source into DIR/data.parquet (or part files DIR/data/part-*.parquet, with
    /// --rows-per-file) and DIR/dataset.toml, with a seeded split.
    Prepare {
        source: Source,
        /// The output folder.
        #[arg(long)]
        out: PathBuf,
        /// The raw input: a file or folder (custom: the TOML). Adult defaults to the bundled file.
        #[arg(long)]
        raw: Option<PathBuf>,
        /// Seed of the random train/valid/test split (and of synthetic data).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Fraction of rows for validation.
        #[arg(long, default_value_t = 0.1)]
        valid: f64,
        /// Fraction of rows for test.
        #[arg(long, default_value_t = 0.1)]
        test: f64,
        /// Write the data as part files DIR/data/part-00000.parquet, part-00001.parquet, ...
        /// of at most N rows each, listed in dataset.toml with their checksums, instead of one
        /// DIR/data.parquet. The rows and their splits are the same either way.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        rows_per_file: Option<u64>,
        /// Synthetic and simulate: number of rows.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Synthetic: sparse fields, the first two user and item (default 10). Simulate: noise
        /// fields beside user and item (default 0).
        #[arg(long)]
        fields: Option<usize>,
        /// Synthetic and simulate: values per (noise) field (default 10000 and 1000).
        #[arg(long)]
        vocab: Option<usize>,
        /// Synthetic: number of tasks (default 2). Simulate: the tasks' names, comma-separated,
        /// one per positive rate (default task0,task1,...).
        #[arg(long)]
        tasks: Option<String>,
        /// Synthetic: dense features.
        #[arg(long, default_value_t = 8)]
        dense: usize,
        #[command(flatten)]
        simulate: SimulateArgs,
    },
    /// The project's tests as CI runs them: the workspace's tests (release), then the MPI tests
    /// (the `mpi` feature, through mpirun) where an MPI library is installed.
    Test {
        /// Fail when the MPI tests cannot run here, instead of skipping them.
        #[arg(long, conflicts_with = "no_mpi")]
        mpi: bool,
        /// Leave the MPI tests out.
        #[arg(long)]
        no_mpi: bool,
    },
    /// Run a grid of configurations x variants x seeds: `crossdistil experiment`, built first,
    /// with every argument passed untouched (`cargo xtask experiment --help` shows its options).
    #[command(disable_help_flag = true)]
    Experiment {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// CrossDistil against its backbone over simulated data sets: the sparse task's positive
    /// rate x the tasks' correlation x training rows, each cell a grid of seeds with paired
    /// tests. Writes OUT/regime-map.json, OUT/regime-map.md and OUT/heatmap-like-*.png;
    /// finished cells and runs are kept, so it resumes.
    RegimeMap(regime::MapOptions),
    /// Measure training and evaluation speed and peak memory at a fixed CTR shape (synthetic
    /// data, Shared-Bottom, MMoE and PLE, with and without CrossDistil); with --peer, side by
    /// side with the same models in PyTorch. Writes OUT/bench.json and OUT/bench.md.
    #[command(group(ArgGroup::new("table_bench").args(["scale", "mpi"]).multiple(true)))]
    Bench {
        /// A small shape and few steps: a smoke run of the whole harness (under two minutes).
        /// With --mpi: 20,000 rows and tables of 4,096 buckets. With --gemm-limit: three short
        /// repetitions of each product.
        #[arg(long)]
        quick: bool,
        /// Also run the PyTorch peer (bench/peer/, installed into target/peer-venv on first
        /// use) and check that both sides compute the same loss.
        #[arg(long)]
        peer: bool,
        /// The PyTorch peer's variants to run, comma-separated (plain, tuned, compiled; default:
        /// all three, less `compiled` where `torch.compile` does not work on the machine).
        #[arg(long, requires = "peer", value_delimiter = ',', value_enum)]
        peer_variants: Vec<crossdistil_bench::PeerVariant>,
        /// The output folder.
        #[arg(long, default_value = "runs/bench")]
        out: PathBuf,
        /// Data-parallel worker counts to measure (comma-separated; default: 1 and every core).
        #[arg(long, value_delimiter = ',')]
        workers: Vec<usize>,
        /// Run the measurements with this xtask binary instead (for example one built with
        /// `--features mimalloc`, to compare allocators).
        #[arg(long)]
        child_exe: Option<PathBuf>,
        /// Rounds over all configurations, the two sides (with --mpi: the configurations)
        /// interleaved in each (default: 3, and 1 with --quick or --mpi); the table reports
        /// the median over the rounds.
        #[arg(long)]
        rounds: Option<usize>,
        /// Instead: the scale benchmark. For each --sizes, prepare synthetic data, train one
        /// epoch and predict the test split with `crossdistil` (streamed where the build can),
        /// the same model and tables at every size, each step timed with its peak memory;
        /// writes OUT/scale.json and OUT/scale.md.
        #[arg(long, conflicts_with_all = ["quick", "peer"], help_heading = "Scale benchmark")]
        scale: bool,
        /// Rows of each size, comma-separated (`1000000` or `1e6`).
        #[arg(long, requires = "scale", value_delimiter = ',', value_parser = crossdistil_bench::parse_size, default_values_t = [1_000_000usize, 10_000_000, 100_000_000], help_heading = "Scale benchmark")]
        sizes: Vec<usize>,
        /// Run even when the disk estimate (from the first size) says the largest does not fit.
        #[arg(long, requires = "scale", help_heading = "Scale benchmark")]
        force: bool,
        /// Keep each size's data and run folder (in OUT/scale/; with --mpi, the data and every
        /// run folder in OUT/mpi/) instead of deleting them.
        #[arg(long, requires = "table_bench", help_heading = "Scale benchmark")]
        keep: bool,
        /// Train and predict in memory at every size, even where streaming is available.
        #[arg(long, requires = "scale", help_heading = "Scale benchmark")]
        in_memory: bool,
        /// Ids each sparse field is hashed into: the rows of every table, less one (also of
        /// --mpi, whose --quick uses 4096).
        #[arg(long, requires = "table_bench", default_value_t = crossdistil_bench::ScaleShape::DEFAULT.hash_buckets, value_parser = clap::value_parser!(u32).range(1..=1 << 30), help_heading = "Scale benchmark")]
        hash_buckets: u32,
        /// Instead: the MPI benchmark. Build `crossdistil` with MPI, prepare synthetic data
        /// once, and train MMoE with CrossDistil for one epoch at the same global batch with
        /// `mpirun -np N` for each --ranks N (on more than one rank, tables sharded and
        /// replicated), round by round; writes OUT/mpi.json and OUT/mpi.md. Needs Open MPI and
        /// libclang (`apt-get install libopenmpi-dev openmpi-bin libclang-dev`).
        #[arg(long, conflicts_with_all = ["scale", "peer", "workers", "child_exe"], help_heading = "MPI benchmark")]
        mpi: bool,
        /// Rows of the synthetic data (`2000000` or `2e6`; default 2e6, and 2e4 with --quick).
        #[arg(long, requires = "mpi", value_parser = crossdistil_bench::parse_size, help_heading = "MPI benchmark")]
        rows: Option<usize>,
        /// Rank counts to measure, comma-separated: `mpirun -np N` for each.
        #[arg(long, requires = "mpi", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..=1024), default_values_t = [1u64, 2], help_heading = "MPI benchmark")]
        ranks: Vec<u64>,
        /// Instead: the GEMM limit. Count the FLOPs of the matrix products of one training step
        /// of every model, time each product with the `gemm` crate (alone on 1 and 2 threads;
        /// for W workers at the shard's rows, alone and W copies at once), and write the
        /// GEMM-limited ceilings to OUT/gemm.json and OUT/gemm.md (--quick: few, short
        /// repetitions).
        #[arg(long, conflicts_with_all = ["scale", "mpi", "peer", "workers", "child_exe", "rounds"], help_heading = "GEMM limit")]
        gemm_limit: bool,
        /// A `bench.json` whose training speeds to compare with the GEMM rate (at its batch).
        #[arg(long, requires = "gemm_limit", help_heading = "GEMM limit")]
        bench_json: Option<PathBuf>,
    },
    /// One measurement of `bench` (run by it in a child process).
    #[command(hide = true)]
    BenchRun(ChildArgs),
    /// The crossdistil side of `bench --peer`'s parity check (run by it in a child process).
    #[command(hide = true)]
    BenchParity {
        #[command(flatten)]
        run: ChildArgs,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Measure how fast a prepared data set loads (read, fit encoders, encode): rows per second.
    LoadSpeed {
        /// A prepared data set folder.
        #[arg(long)]
        data: PathBuf,
        /// Timed loads; the median is reported.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's folder).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Prepare {
            source,
            out,
            raw,
            seed,
            valid,
            test,
            rows_per_file,
            rows,
            fields,
            vocab,
            tasks,
            dense,
            simulate,
        } => {
            let opts = PrepareOptions {
                out,
                seed,
                fractions: SplitFractions { valid, test },
                rows_per_file: rows_per_file.map(|n| n as usize),
            };
            let generated = match source {
                Source::Simulate => {
                    Generated::Simulate(simulate_options(rows, fields, vocab, tasks, simulate))
                }
                _ if simulate.any() => {
                    bail!(
                        "--users, --items, --latent, --user-zipf, --item-zipf, --bias, --positive-rates, --correlation, --noise, --nested and --hint-noise are options of `prepare simulate` only"
                    )
                }
                _ => Generated::Synthetic(synthetic_options(rows, fields, vocab, tasks, dense)?),
            };
            let started = Instant::now();
            let prepared = prepare_source(source, raw, &opts, generated)?;
            println!(
                "prepared {} rows of {} into {} in {:.1} s",
                prepared.0.rows,
                prepared.0.spec.name,
                prepared.0.dir.display(),
                started.elapsed().as_secs_f64()
            );
            if let Some(summary) = &prepared.1 {
                print!("{}", summary.to_text());
                println!(
                    "written to {}",
                    prepared.0.dir.join(simulate::SUMMARY_FILE).display()
                );
            }
            println!(
                "inspect it with: cargo run --release -p crossdistil-cli -- inspect {}",
                prepared.0.dir.display()
            );
        }
        Command::LoadSpeed { data, repeat } => load_speed(&data, repeat.max(1))?,
        Command::Bench {
            quick,
            peer,
            peer_variants,
            out,
            workers,
            child_exe,
            rounds,
            scale,
            sizes,
            force,
            keep,
            in_memory,
            hash_buckets,
            mpi,
            rows,
            ranks,
            gemm_limit,
            bench_json,
        } => {
            if gemm_limit {
                return gemm_limit::run(&gemm_limit::Args {
                    out: under_root(&out),
                    quick,
                    bench_json: bench_json.map(|p| under_root(&p)),
                });
            }
            if mpi {
                return mpi::run(&mpi_args(
                    quick,
                    &out,
                    rows,
                    &ranks,
                    rounds,
                    hash_buckets,
                    keep,
                ));
            }
            if scale {
                let out = if out.is_absolute() {
                    out
                } else {
                    root().join(out)
                };
                return scale::run(&scale::Args {
                    out,
                    sizes,
                    force,
                    keep,
                    in_memory,
                    hash_buckets,
                });
            }
            let workers = if workers.is_empty() {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                if cores > 1 { vec![1, cores] } else { vec![1] }
            } else {
                workers
            };
            bench::run(&bench::Args {
                root: root(),
                out: if out.is_absolute() {
                    out
                } else {
                    root().join(out)
                },
                quick,
                peer,
                peer_variants,
                workers,
                child_exe,
                rounds,
            })?
        }
        Command::BenchRun(a) => {
            println!(
                "{}",
                serde_json::to_string(&crossdistil_bench::run_child(&a)?)?
            );
        }
        Command::BenchParity { run, dir } => {
            println!(
                "{}",
                serde_json::to_string(&crossdistil_bench::parity_child(&run, &dir)?)?
            );
        }
        Command::Test { mpi, no_mpi } => test::run(match (mpi, no_mpi) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        })?,
        Command::RegimeMap(mut o) => {
            o.out = under_root(&o.out);
            o.grid = under_root(&o.grid);
            regime::run(&o, cli_exe)?
        }
        Command::Experiment { args } => {
            // An alias: the CLI reports its own errors, and its exit status is ours.
            let status = std::process::Command::new(cli_exe()?)
                .arg("experiment")
                .args(args)
                .status()?;
            if !status.success() {
                std::process::exit(status.code().unwrap_or(1));
            }
        }
    }
    Ok(())
}

/// `out` under the workspace root when relative.
fn under_root(out: &Path) -> PathBuf {
    if out.is_absolute() {
        out.to_path_buf()
    } else {
        root().join(out)
    }
}

/// The options of `bench --mpi` from the command line's: `--quick` sets the rows (unless
/// given) and the hash buckets; the command line that reproduces the run is written out in
/// full.
fn mpi_args(
    quick: bool,
    out: &Path,
    rows: Option<usize>,
    ranks: &[u64],
    rounds: Option<usize>,
    hash_buckets: u32,
    keep: bool,
) -> mpi::Args {
    let rows = rows.unwrap_or(if quick {
        mpi::QUICK_ROWS
    } else {
        mpi::DEFAULT_ROWS
    });
    let hash_buckets = if quick {
        mpi::QUICK_HASH_BUCKETS
    } else {
        hash_buckets
    };
    let ranks: Vec<usize> = ranks.iter().map(|&n| n as usize).collect();
    let rounds = rounds.unwrap_or(1);
    let out = under_root(out);
    let list: Vec<String> = ranks.iter().map(|n| n.to_string()).collect();
    let mut command = format!(
        "cargo xtask bench --mpi{} --rows {rows} --ranks {} --rounds {rounds}",
        if quick { " --quick" } else { "" },
        list.join(",")
    );
    if !quick {
        command.push_str(&format!(" --hash-buckets {hash_buckets}"));
    }
    if keep {
        command.push_str(" --keep");
    }
    command.push_str(&format!(" --out {}", out.display()));
    mpi::Args {
        out,
        rows,
        ranks,
        rounds,
        hash_buckets,
        keep,
        command,
    }
}

/// Builds the `crossdistil` binary (release) and returns its path, wherever the build puts it
/// (`CARGO_TARGET_DIR` included): the path comes from cargo's own build messages.
fn cli_exe() -> anyhow::Result<PathBuf> {
    cli_exe_with(&[])
}

/// [`cli_exe`] with the CLI's `features` (for example `mpi`).
fn cli_exe_with(features: &[&str]) -> anyhow::Result<PathBuf> {
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.args(["build", "--release", "--quiet", "-p", "crossdistil-cli"]);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let out = cmd
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root())
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("building crossdistil failed");
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == "crossdistil"
            && let Some(exe) = msg["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("the build of crossdistil named no executable")
}

fn load_speed(dir: &Path, repeat: usize) -> anyhow::Result<()> {
    let mut seconds = Vec::with_capacity(repeat);
    let mut rows = 0;
    for i in 0..repeat {
        let started = Instant::now();
        let ds = crossdistil_data::Dataset::load(dir)?;
        let s = started.elapsed().as_secs_f64();
        rows = ds.rows();
        tracing::info!(run = i + 1, seconds = s, rows, "loaded");
        seconds.push(s);
        drop(ds);
    }
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    println!(
        "{rows} rows: median {median:.2} s over {repeat} loads (min {:.2} s, max {:.2} s), {:.2} M rows/s, {} threads",
        seconds[0],
        seconds[seconds.len() - 1],
        rows as f64 / median / 1e6,
        rayon::current_num_threads()
    );
    Ok(())
}

fn spinner(message: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_message(message.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

fn need_raw(raw: Option<PathBuf>, source: &str, hint: &str) -> anyhow::Result<PathBuf> {
    match raw {
        Some(r) => Ok(r),
        None => bail!("`{source}` needs --raw: {hint}"),
    }
}

/// The options of a generated source.
enum Generated {
    Synthetic(SyntheticOptions),
    Simulate(SimulateOptions),
}

/// `prepare synthetic`'s options from the command line's.
fn synthetic_options(
    rows: usize,
    fields: Option<usize>,
    vocab: Option<usize>,
    tasks: Option<String>,
    dense: usize,
) -> anyhow::Result<SyntheticOptions> {
    let d = SyntheticOptions::default();
    let tasks = match tasks {
        None => d.tasks,
        Some(t) => match t.trim().parse() {
            Ok(n) => n,
            Err(_) => bail!("--tasks of `prepare synthetic` is a number of tasks (got `{t}`)"),
        },
    };
    Ok(SyntheticOptions {
        rows,
        fields: fields.unwrap_or(d.fields),
        vocab: vocab.unwrap_or(d.vocab),
        tasks,
        dense,
        ..d
    })
}

/// `prepare simulate`'s options from the command line's; the library checks them.
fn simulate_options(
    rows: usize,
    fields: Option<usize>,
    vocab: Option<usize>,
    tasks: Option<String>,
    a: SimulateArgs,
) -> SimulateOptions {
    let d = SimulateOptions::default();
    SimulateOptions {
        rows,
        users: a.users.unwrap_or(d.users),
        items: a.items.unwrap_or(d.items),
        latent: a.latent.unwrap_or(d.latent),
        user_zipf: a.user_zipf.unwrap_or(d.user_zipf),
        item_zipf: a.item_zipf.unwrap_or(d.item_zipf),
        bias: a.bias.unwrap_or(d.bias),
        positive_rates: a.positive_rates.unwrap_or(d.positive_rates),
        tasks: tasks.map_or(d.tasks, |t| {
            t.split(',').map(|n| n.trim().to_string()).collect()
        }),
        correlation: a.correlation.unwrap_or(d.correlation),
        noise: a.noise.unwrap_or(d.noise),
        nested: a.nested,
        fields: fields.unwrap_or(d.fields),
        vocab: vocab.unwrap_or(d.vocab),
        hint_noise: a.hint_noise,
    }
}

/// A bar of rows generated.
fn rows_bar(rows: usize) -> ProgressBar {
    ProgressBar::new(rows as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} generating [{bar:40}] {human_pos}/{human_len} rows ({per_sec}, {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    )
}

/// Prepares `source`; a simulated set comes with its summary.
fn prepare_source(
    source: Source,
    raw: Option<PathBuf>,
    opts: &PrepareOptions,
    generated: Generated,
) -> anyhow::Result<(Prepared, Option<SimulationSummary>)> {
    let prepared = match (source, generated) {
        (Source::Synthetic, Generated::Synthetic(synth)) => {
            let pb = rows_bar(synth.rows);
            let p = prepare::synthetic::prepare(&synth, opts, &|done| pb.set_position(done as u64));
            pb.finish_and_clear();
            p?
        }
        (Source::Simulate, Generated::Simulate(sim)) => {
            let pb = rows_bar(sim.rows);
            let p = simulate::prepare(&sim, opts, &|done| pb.set_position(done as u64));
            pb.finish_and_clear();
            let (prepared, summary) = p?;
            return Ok((prepared, Some(summary)));
        }
        (Source::Synthetic | Source::Simulate, _) => unreachable!("options of another source"),
        (other, _) => {
            let pb = spinner(&format!("preparing {other:?}"));
            let p = match other {
                Source::Adult => {
                    let raw = raw.unwrap_or_else(|| root().join("datasets/adult/adult.parquet"));
                    prepare::adult::prepare(&raw, opts)
                }
                Source::Movielens100k => {
                    let raw = need_raw(
                        raw,
                        "movielens-100k",
                        "a folder with ml-100k.inter/.user/.item (RecBole) or u.data/u.user/u.item (GroupLens); `bash ../shared/scripts/fetch-movielens-100k.sh` prints one",
                    )?;
                    prepare::movielens::prepare(&raw, opts)
                }
                Source::TiktokIcme2019 => {
                    let raw = need_raw(
                        raw,
                        "tiktok-icme2019",
                        "the challenge's tab-separated file, or a folder of them",
                    )?;
                    prepare::tiktok::prepare(&raw, opts)
                }
                Source::Aliexpress => {
                    let raw = need_raw(
                        raw,
                        "aliexpress",
                        "a CSV file or a folder of them (train.csv, test.csv)",
                    )?;
                    prepare::aliexpress::prepare(&raw, opts)
                }
                Source::AliCcp => {
                    let raw = need_raw(raw, "ali-ccp", "a CSV file or a folder of them")?;
                    prepare::ali_ccp::prepare(&raw, opts)
                }
                Source::Custom => {
                    let raw = need_raw(
                        raw,
                        "custom",
                        "the TOML that describes your file (see datasets/README.md)",
                    )?;
                    prepare::custom::prepare(&raw, opts)
                }
                Source::Synthetic | Source::Simulate => unreachable!("handled above"),
            };
            pb.finish_and_clear();
            p?
        }
    };
    Ok((prepared, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `prepare --rows-per-file N` reaches the options; 0 is refused by the parser.
    #[test]
    fn prepare_takes_rows_per_file() {
        let parse = |extra: &[&str]| {
            Cli::try_parse_from(
                ["xtask", "prepare", "synthetic", "--out", "x"]
                    .into_iter()
                    .chain(extra.iter().copied()),
            )
        };
        let Ok(Cli {
            command: Command::Prepare { rows_per_file, .. },
        }) = parse(&["--rows-per-file", "1000000"])
        else {
            panic!("did not parse");
        };
        assert_eq!(rows_per_file, Some(1_000_000));
        let Ok(Cli {
            command: Command::Prepare { rows_per_file, .. },
        }) = parse(&[])
        else {
            panic!("did not parse");
        };
        assert_eq!(rows_per_file, None);
        assert!(parse(&["--rows-per-file", "0"]).is_err());
    }

    /// `bench --peer-variants` takes the peer's variants by name, comma-separated; empty by
    /// default (every variant that works), and only with `--peer`.
    #[test]
    fn bench_takes_the_peer_variants() {
        use crossdistil_bench::PeerVariant::{Compiled, Tuned};
        let parse = |extra: &[&str]| {
            Cli::try_parse_from(["xtask", "bench"].into_iter().chain(extra.iter().copied()))
        };
        let variants = |extra: &[&str]| match parse(extra) {
            Ok(Cli {
                command: Command::Bench { peer_variants, .. },
            }) => peer_variants,
            _ => panic!("`bench {extra:?}` did not parse"),
        };
        assert_eq!(
            variants(&["--peer", "--peer-variants", "tuned,compiled"]),
            [Tuned, Compiled]
        );
        assert!(variants(&["--peer"]).is_empty());
        assert!(parse(&["--peer-variants", "tuned"]).is_err());
        assert!(parse(&["--peer", "--peer-variants", "fast"]).is_err());
    }

    /// `experiment` keeps every argument for the CLI, `--help` and unknown options included.
    #[test]
    fn experiment_passes_its_arguments_untouched() {
        for args in [
            vec!["--help"],
            vec![
                "--data", "d", "--grid", "g.toml", "--out", "o", "--jobs", "2",
            ],
            vec![],
        ] {
            let cli = Cli::try_parse_from(["xtask", "experiment"].into_iter().chain(args.clone()));
            let Ok(Cli {
                command: Command::Experiment { args: got },
            }) = cli
            else {
                panic!("`experiment {args:?}` did not parse as the alias");
            };
            assert_eq!(got, args.iter().map(OsString::from).collect::<Vec<_>>());
        }
    }
}
