//! `cargo xtask bench --mpi`: the glue around the MPI benchmark of `crossdistil-bench`. It
//! builds `crossdistil` with MPI (copied to `OUT/mpi/bin/`), prepares the synthetic data once
//! (`xtask prepare synthetic`, a child, its fields hashed into fixed tables), then, round by
//! round, runs `mpirun -np N crossdistil train` for each configuration (each `--ranks` N; on
//! more than one rank, tables sharded and replicated), each job measured for wall time and the
//! peak RSS of its largest process, and reads each run's `report.json`. Writes `mpi.json` and
//! `mpi.md`.

mod launch;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use crossdistil_bench::{
    MpiLayout, MpiReport, MpiRow, MpiRun, ScaleShape, SplitRows, hash_tables, mpi_config,
    mpi_markdown, mpi_shape,
};
use crossdistil_train::dist::RankCosts;
use indicatif::{ProgressBar, ProgressStyle};

use crate::scale::child::run_measured;
use crate::scale::disk::{free_bytes, gib};
use crate::scale::{prepare_command, prepare_writes_parts, read_json, remove};

/// Options of `cargo xtask bench --mpi`.
pub struct Args {
    /// The output folder: `mpi.json`, `mpi.md`, and the work folder `mpi/`.
    pub out: PathBuf,
    /// Rows of the synthetic data.
    pub rows: usize,
    /// The rank counts.
    pub ranks: Vec<usize>,
    /// Rounds over all configurations.
    pub rounds: usize,
    /// Ids each sparse field is hashed into.
    pub hash_buckets: u32,
    /// Keep the data and every run folder.
    pub keep: bool,
    /// The command line that reproduces the run, for the report.
    pub command: String,
}

/// The rows and hash buckets of `--quick`: a smoke run of the whole harness.
pub const QUICK_ROWS: usize = 20_000;
/// See [`QUICK_ROWS`].
pub const QUICK_HASH_BUCKETS: u32 = 4096;
/// The default of `--rows`.
pub const DEFAULT_ROWS: usize = 2_000_000;

/// The configurations of `ranks`, in order: each rank count (ascending, once), with its
/// layouts.
fn configurations(ranks: &[usize]) -> Vec<(usize, MpiLayout)> {
    let mut ranks = ranks.to_vec();
    ranks.sort_unstable();
    ranks.dedup();
    ranks
        .into_iter()
        .flat_map(|n| MpiLayout::of_ranks(n).into_iter().map(move |l| (n, l)))
        .collect()
}

/// The figures of one run folder's `report.json`: rows/s, train seconds and the ranks' costs
/// (`None` on one rank).
fn read_report(run: &Path) -> anyhow::Result<(f64, f64, Option<RankCosts>)> {
    let report = read_json(&run.join("report.json"))?;
    let rate = report["rows_per_second"]
        .as_f64()
        .with_context(|| format!("{}: no rows_per_second", run.display()))?;
    let seconds = report["train_seconds"].as_f64().unwrap_or(0.0);
    let costs = match &report["distributed"] {
        serde_json::Value::Null => None,
        v => Some(
            serde_json::from_value(v.clone())
                .with_context(|| format!("{}: cannot read `distributed`", run.display()))?,
        ),
    };
    Ok((rate, seconds, costs))
}

/// What every job shares.
struct Plan {
    mpirun: PathBuf,
    cli: PathBuf,
    shape: ScaleShape,
    data: PathBuf,
    work: PathBuf,
    keep: bool,
    bar: ProgressBar,
}

impl Plan {
    /// Runs one configuration in one round and reads its report.
    fn job(&self, round: usize, ranks: usize, layout: MpiLayout) -> anyhow::Result<MpiRun> {
        let tag = match layout {
            MpiLayout::Single => "single",
            l => l.name(),
        };
        let name = format!("{ranks}-{tag}-round{round}");
        let config = self.work.join(format!("config-{tag}.toml"));
        std::fs::write(&config, mpi_config(&self.shape, layout))?;
        let run = self.work.join(format!("run-{name}"));
        remove(&run)?;
        let what = format!(
            "round {} of train on {ranks} rank(s){}",
            round + 1,
            match layout {
                MpiLayout::Single => String::new(),
                l => format!(", tables {}", l.name()),
            }
        );
        self.bar.set_message(what.clone());
        let cmd = launch::train_job(&self.mpirun, ranks, &self.cli, &self.data, &config, &run);
        let m = run_measured(cmd, &self.work.join(format!("train-{name}.log")), &what)?;
        self.bar.inc(1);
        let (rate, train_seconds, costs) = read_report(&run)?;
        if ranks > 1 && costs.is_none() {
            anyhow::bail!(
                "{what}: {} has no `distributed` field: was {} built with MPI?",
                run.join("report.json").display(),
                self.cli.display()
            );
        }
        if let Some(c) = costs
            .as_ref()
            .filter(|c| c.ranks != ranks || c.tables != layout.name())
        {
            anyhow::bail!(
                "{what}: the report says {} rank(s) with {} tables",
                c.ranks,
                c.tables
            );
        }
        if !self.keep {
            remove(&run)?;
        }
        let c = costs.unwrap_or_default();
        let r = MpiRun {
            round,
            ranks,
            layout,
            workers: c.workers.max(1),
            rows_per_s: rate,
            train_seconds,
            bytes_sent_per_step: c.bytes_sent_per_step,
            bytes_received_per_step: c.bytes_received_per_step,
            comm_share: c.comm_share,
            step_seconds: if c.steps > 0 {
                c.step_seconds
            } else {
                self.shape.batch as f64 / rate.max(1e-9)
            },
            peak_rss_bytes: m.peak_rss_bytes,
            wall_seconds: m.seconds,
        };
        tracing::info!(
            rows_per_s = format!("{:.0}", r.rows_per_s),
            kib_sent_per_step = format!("{:.1}", r.bytes_sent_per_step / 1024.0),
            comm_share = format!("{:.3}", r.comm_share),
            step_ms = format!("{:.1}", 1e3 * r.step_seconds),
            peak_rss_mib = r.peak_rss_bytes >> 20,
            seconds = format!("{:.1}", r.wall_seconds),
            "{what}"
        );
        Ok(r)
    }
}

/// Runs the MPI benchmark and writes `mpi.json` and `mpi.md` to `args.out`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let configs = configurations(&args.ranks);
    anyhow::ensure!(
        !configs.is_empty() && args.ranks.iter().all(|&n| n > 0),
        "--ranks: give rank counts of at least 1"
    );
    anyhow::ensure!(args.rounds > 0, "--rounds: at least one round");
    let mpirun = launch::mpirun()?;
    let work = args.out.join("mpi");
    std::fs::create_dir_all(&work)?;
    let shape = mpi_shape(args.hash_buckets);
    let split = SplitRows::of(args.rows);
    println!(
        "mpi: {} rows ({} train), {} with CrossDistil, {} fields hashed into tables of {} x {}, \
         global batch {}; configurations {}; {} round(s); {} free in {}",
        args.rows,
        split.train,
        shape.model.name(),
        shape.fields,
        u64::from(shape.hash_buckets) + 1,
        shape.embedding_dim,
        shape.batch,
        configs
            .iter()
            .map(|(n, l)| format!(
                "{n}{}",
                match l {
                    MpiLayout::Single => String::new(),
                    l => format!(" {}", l.name()),
                }
            ))
            .collect::<Vec<_>>()
            .join(", "),
        args.rounds,
        gib(free_bytes(&work)?),
        work.display()
    );
    tracing::info!("building crossdistil with MPI");
    let cli = launch::build_mpi_cli(&work.join("bin/crossdistil"))?;
    let xtask = std::env::current_exe()?;
    let data = work.join(format!("data-{}", args.rows));
    remove(&data)?;
    let bar = ProgressBar::new((1 + configs.len() * args.rounds) as u64).with_style(
        ProgressStyle::with_template("{spinner} mpi [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar.set_message(format!("prepare {} rows", args.rows));
    let prepare = prepare_command(
        &xtask,
        &shape,
        args.rows,
        &data,
        prepare_writes_parts(&xtask),
    );
    let m = run_measured(
        prepare,
        &work.join(format!("prepare-{}.log", args.rows)),
        "prepare",
    )?;
    hash_tables(&data, shape.hash_buckets)?;
    bar.inc(1);
    tracing::info!(
        seconds = format!("{:.1}", m.seconds),
        "prepared {} rows",
        args.rows
    );
    let plan = Plan {
        mpirun,
        cli,
        shape,
        data: data.clone(),
        work: work.clone(),
        keep: args.keep,
        bar,
    };
    let mut runs = Vec::new();
    let result = (|| {
        for round in 0..args.rounds {
            for &(n, layout) in &configs {
                runs.push(plan.job(round, n, layout)?);
            }
        }
        anyhow::Ok(())
    })();
    plan.bar.finish_and_clear();
    if !args.keep {
        remove(&data)?;
    }
    result?;
    let report = MpiReport {
        shape,
        data_rows: args.rows,
        train_rows: split.train,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rounds: args.rounds,
        mpirun_options: launch::MPIRUN_OPTIONS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        command: args.command.clone(),
        rows: MpiRow::all(&runs),
        runs,
    };
    let json = serde_json::to_string_pretty(&report)?;
    crossdistil_data::write_atomic(&args.out.join("mpi.json"), json.as_bytes())?;
    let md = mpi_markdown(&report);
    crossdistil_data::write_atomic(&args.out.join("mpi.md"), md.as_bytes())?;
    print!("{md}");
    std::io::stdout().flush()?;
    println!("written: {}", args.out.join("mpi.json").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    #[test]
    fn every_rank_count_once_with_its_layouts() {
        assert_eq!(
            configurations(&[2, 1, 2]),
            [
                (1, MpiLayout::Single),
                (2, MpiLayout::Sharded),
                (2, MpiLayout::Replicated)
            ]
        );
    }

    /// The options of `bench --mpi` as the command line gives them.
    fn mpi_args(args: &[&str]) -> Result<Args, clap::Error> {
        let cli = Cli::try_parse_from(["xtask", "bench"].iter().chain(args))?;
        let Command::Bench {
            mpi: true,
            quick,
            out,
            rows,
            ranks,
            rounds,
            hash_buckets,
            keep,
            ..
        } = cli.command
        else {
            panic!("{args:?}: not bench --mpi");
        };
        Ok(crate::mpi_args(
            quick,
            &out,
            rows,
            &ranks,
            rounds,
            hash_buckets,
            keep,
        ))
    }

    #[test]
    fn options_on_the_command_line() {
        let a = mpi_args(&["--mpi"]).unwrap();
        assert_eq!(
            (a.rows, a.ranks.clone(), a.rounds, a.hash_buckets, a.keep),
            (DEFAULT_ROWS, vec![1, 2], 1, 1 << 20, false)
        );
        assert!(a.out.ends_with("runs/bench"));
        assert!(
            a.command
                .starts_with("cargo xtask bench --mpi --rows 2000000 --ranks 1,2")
        );
        let a = mpi_args(&["--mpi", "--quick"]).unwrap();
        assert_eq!((a.rows, a.hash_buckets), (QUICK_ROWS, QUICK_HASH_BUCKETS));
        assert!(a.command.contains("--quick"), "{}", a.command);
        let a = mpi_args(&[
            "--mpi", "--rows", "1e5", "--ranks", "1,2,4", "--rounds", "2", "--keep",
        ])
        .unwrap();
        assert_eq!(
            (a.rows, a.ranks.clone(), a.rounds, a.keep),
            (100_000, vec![1, 2, 4], 2, true)
        );
        assert!(mpi_args(&["--mpi", "--scale"]).is_err());
        assert!(mpi_args(&["--mpi", "--peer"]).is_err());
        assert!(mpi_args(&["--mpi", "--ranks", "0"]).is_err());
        // The MPI options belong to --mpi.
        assert!(Cli::try_parse_from(["xtask", "bench", "--ranks", "2"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "bench", "--rows", "1e6"]).is_err());
    }
}
