//! `cargo xtask bench --scale`: the glue around the scale benchmark of `crossdistil-bench`.
//! For each size it prepares synthetic data (`xtask prepare synthetic`, a child), hashes its
//! fields into fixed tables, then trains one epoch and predicts the test split with the
//! `crossdistil` binary (children too), each measured for wall time and its own peak RSS;
//! at the smallest size also in memory, to compare. Writes `scale.json` and `scale.md`.

pub(crate) mod child;
pub(crate) mod disk;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use crossdistil_bench::{
    DiskEstimate, Phase, ScaleReport, ScaleRow, ScaleShape, SplitRows, best_checkpoint,
    checkpoint_parameters, hash_tables, scale_config, scale_markdown, streaming_supported,
};
use indicatif::{ProgressBar, ProgressStyle};

use child::{Measured, run_measured};
use disk::{dir_bytes, free_bytes, gib};

/// Options of `cargo xtask bench --scale`.
pub struct Args {
    /// The output folder: `scale.json`, `scale.md`, and the work folder `scale/`.
    pub out: PathBuf,
    /// Rows of each size.
    pub sizes: Vec<usize>,
    /// Run even when the disk estimate says the largest size does not fit.
    pub force: bool,
    /// Keep each size's data and run folders.
    pub keep: bool,
    /// Train and predict in memory even where streaming is available.
    pub in_memory: bool,
    /// Ids each sparse field is hashed into (the shape's default: 2^20).
    pub hash_buckets: u32,
}

/// The executables and settings every size shares.
struct Plan {
    /// The xtask binary (this one), whose `prepare` makes the data.
    xtask: PathBuf,
    /// The `crossdistil` binary.
    cli: PathBuf,
    shape: ScaleShape,
    /// Whether `prepare` writes part files (`--rows-per-file`).
    part_files: bool,
    /// The work folder: data, run folders, configurations and logs.
    work: PathBuf,
    bar: ProgressBar,
}

/// Whether this xtask's `prepare` knows `--rows-per-file` (writes part files).
pub(crate) fn prepare_writes_parts(xtask: &Path) -> bool {
    Command::new(xtask)
        .args(["prepare", "--help"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--rows-per-file"))
}

/// `xtask prepare synthetic` of `rows` rows of `shape` into `dir`, in part files of the
/// shape's `rows_per_file` rows when `part_files`.
pub(crate) fn prepare_command(
    xtask: &Path,
    shape: &ScaleShape,
    rows: usize,
    dir: &Path,
    part_files: bool,
) -> Command {
    let s = shape;
    let mut c = Command::new(xtask);
    c.args(["prepare", "synthetic", "--out"])
        .arg(dir)
        .args(["--rows", &rows.to_string()])
        .args(["--fields", &s.fields.to_string()])
        .args(["--vocab", &s.vocab.to_string()])
        .args(["--tasks", &s.tasks.to_string()])
        .args(["--dense", &s.dense.to_string()])
        .args(["--seed", &s.seed.to_string()]);
    if part_files {
        c.args(["--rows-per-file", &s.rows_per_file.to_string()]);
    }
    c
}

/// Removes a folder if it exists.
pub(crate) fn remove(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    Ok(())
}

impl Plan {
    /// Runs one measured child, the bar showing `what`.
    fn measure(&self, cmd: Command, log: &str, what: &str) -> anyhow::Result<Measured> {
        self.bar.set_message(what.to_string());
        let m = run_measured(cmd, &self.work.join(log), what)?;
        self.bar.inc(1);
        tracing::info!(
            seconds = format!("{:.1}", m.seconds),
            peak_rss_mib = m.peak_rss_bytes >> 20,
            "{what}"
        );
        Ok(m)
    }

    /// Prepares `rows` rows into `dir` in a child and hashes its fields into the shape's
    /// buckets.
    fn prepare(&self, rows: usize, dir: &Path) -> anyhow::Result<Phase> {
        remove(dir)?;
        let s = &self.shape;
        let c = prepare_command(&self.xtask, s, rows, dir, self.part_files);
        let m = self.measure(
            c,
            &format!("prepare-{rows}.log"),
            &format!("prepare {rows}"),
        )?;
        hash_tables(dir, s.hash_buckets)?;
        Ok(Phase::new(rows, m.seconds, m.peak_rss_bytes))
    }

    /// The configuration file of one mode, written into the work folder.
    fn config(&self, stream: bool) -> anyhow::Result<PathBuf> {
        let path = self.work.join(if stream {
            "scale-stream.toml"
        } else {
            "scale-memory.toml"
        });
        std::fs::write(&path, scale_config(&self.shape, stream))?;
        Ok(path)
    }

    /// Trains one epoch on `data` into a fresh `run` folder and predicts its test split
    /// (`run/scores.parquet`, a folder of one file per part when the data is in parts): the
    /// row of this size (without its prepare phase and disk bytes).
    fn train_and_predict(
        &self,
        rows: usize,
        data: &Path,
        run: &Path,
        stream: bool,
    ) -> anyhow::Result<ScaleRow> {
        remove(run)?;
        let mode = if stream { "stream" } else { "memory" };
        let split = SplitRows::of(rows);
        let mut c = Command::new(&self.cli);
        c.args(["train", "--data"])
            .arg(data)
            .arg("--config")
            .arg(self.config(stream)?)
            .arg("--out")
            .arg(run);
        let what = format!("train {rows} ({mode})");
        let m = self.measure(c, &format!("train-{rows}-{mode}.log"), &what)?;
        let train = Phase::new(split.train, m.seconds, m.peak_rss_bytes);
        let report: serde_json::Value = read_json(&run.join("report.json"))?;
        let parameters = checkpoint_parameters(&best_checkpoint(run)?)?;

        let mut c = Command::new(&self.cli);
        c.args(["predict", "--run"])
            .arg(run)
            .arg("--data")
            .arg(data)
            .arg("--out")
            .arg(run.join("scores.parquet"))
            .args(["--split", "test"]);
        if stream {
            c.arg("--stream");
        }
        let what = format!("predict {rows} ({mode})");
        let m = self.measure(c, &format!("predict-{rows}-{mode}.log"), &what)?;
        Ok(ScaleRow {
            rows,
            stream,
            disk_bytes: 0,
            prepare: None,
            train,
            train_loop_rows_per_s: report["rows_per_second"].as_f64().unwrap_or(0.0),
            predict: Phase::new(split.test, m.seconds, m.peak_rss_bytes),
            parameters,
        })
    }
}

/// A JSON file, parsed.
pub(crate) fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))
}

/// Checks, from the first size's disk use, that the rest fit on the disk of `work`: prints
/// the estimate, and refuses unless `force`.
fn check_disk(
    est: &DiskEstimate,
    rest: &[usize],
    first_bytes: u64,
    args: &Args,
    work: &Path,
) -> anyhow::Result<()> {
    let Some(&largest) = rest.last() else {
        return Ok(());
    };
    let needs = est.needs(rest, args.keep);
    // Without --keep, the first size's folders are removed before the next starts.
    let free = free_bytes(work)? + if args.keep { 0 } else { first_bytes };
    println!(
        "disk: {} rows need about {} ({:.0} bytes of data per row, measured on the first size, \
         plus {} per run folder){}; {} free in {}",
        largest,
        gib(needs),
        est.data_bytes_per_row,
        gib(est.run_bytes),
        if args.keep {
            ", all sizes together with --keep"
        } else {
            ""
        },
        gib(free),
        work.display()
    );
    if needs > free {
        if args.force {
            tracing::warn!("the estimate exceeds the free space; going on (--force)");
        } else {
            bail!(
                "not enough disk: the sizes up to {largest} rows need about {}, {} is free in \
                 {}; free some space, pass smaller --sizes, point --out elsewhere, or pass \
                 --force to try anyway",
                gib(needs),
                gib(free),
                work.display()
            );
        }
    }
    Ok(())
}

/// Runs the scale benchmark and writes `scale.json` and `scale.md` to `args.out`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    anyhow::ensure!(!sizes.is_empty(), "--sizes: no sizes given");
    let shape = ScaleShape {
        hash_buckets: args.hash_buckets,
        ..ScaleShape::DEFAULT
    };
    let stream = !args.in_memory && streaming_supported(&shape);
    if !stream && !args.in_memory {
        tracing::warn!(
            "this build has no streaming reader (train.stream): every size trains in memory"
        );
    }
    let xtask = std::env::current_exe()?;
    let part_files = prepare_writes_parts(&xtask);
    let cli = crate::cli_exe()?;
    let work = args.out.join("scale");
    std::fs::create_dir_all(&work)?;
    println!(
        "scale: sizes {sizes:?}; {}, its {} fields hashed into tables of {} x {} so that the \
         model and tables are the same at every size (checked in the report); {}; {} free in {}",
        shape.model.name(),
        shape.fields,
        u64::from(shape.hash_buckets) + 1,
        shape.embedding_dim,
        if stream {
            "streamed, and in memory at the smallest size to compare"
        } else {
            "in memory"
        },
        gib(free_bytes(&work)?),
        work.display()
    );
    let children = sizes.len() * 3 + if stream { 2 } else { 0 };
    let bar = ProgressBar::new(children as u64).with_style(
        ProgressStyle::with_template("{spinner} scale [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let plan = Plan {
        xtask,
        cli,
        shape,
        part_files,
        work: work.clone(),
        bar,
    };
    let mut rows = Vec::new();
    let mut comparison = None;
    for (i, &n) in sizes.iter().enumerate() {
        let data = work.join(format!("data-{n}"));
        let run = work.join(format!("run-{n}"));
        let prepare = plan.prepare(n, &data)?;
        let disk_bytes = dir_bytes(&data);
        let mut row = plan.train_and_predict(n, &data, &run, stream)?;
        row.prepare = Some(prepare);
        row.disk_bytes = disk_bytes;
        if i == 0 {
            if stream {
                let memory_run = work.join(format!("run-{n}-memory"));
                let mut m = plan.train_and_predict(n, &data, &memory_run, false)?;
                m.disk_bytes = disk_bytes;
                comparison = Some(m);
                if !args.keep {
                    remove(&memory_run)?;
                }
            }
            let run_bytes = dir_bytes(&run);
            let est = DiskEstimate::measured(
                n,
                disk_bytes,
                run_bytes,
                dir_bytes(&run.join("scores.parquet")),
            );
            let fits = plan
                .bar
                .suspend(|| check_disk(&est, &sizes[1..], disk_bytes + run_bytes, args, &work));
            if fits.is_err() && !args.keep {
                remove(&data)?;
                remove(&run)?;
            }
            fits?;
        }
        rows.push(row);
        if !args.keep {
            remove(&data)?;
            remove(&run)?;
        }
    }
    plan.bar.finish_and_clear();
    if !rows.windows(2).all(|w| w[0].parameters == w[1].parameters) {
        tracing::warn!("the model's size changed with the data: see the report's warning");
    }
    rows.extend(comparison);
    let report = ScaleReport {
        shape,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        part_files,
        rows,
    };
    let json = serde_json::to_string_pretty(&report)?;
    crossdistil_data::write_atomic(&args.out.join("scale.json"), json.as_bytes())?;
    let md = scale_markdown(&report);
    crossdistil_data::write_atomic(&args.out.join("scale.md"), md.as_bytes())?;
    print!("{md}");
    std::io::stdout().flush()?;
    println!("written: {}", args.out.join("scale.json").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::{Cli, Command};

    /// The options of `bench --scale` as the command line gives them.
    fn scale_args(args: &[&str]) -> Result<(Vec<usize>, u32), clap::Error> {
        let cli = Cli::try_parse_from(["xtask", "bench"].iter().chain(args))?;
        let Command::Bench {
            scale: true,
            sizes,
            hash_buckets,
            ..
        } = cli.command
        else {
            panic!("{args:?}: not bench --scale");
        };
        Ok((sizes, hash_buckets))
    }

    /// The disk check refuses sizes that do not fit, unless forced, and passes those that do.
    #[test]
    fn sizes_that_do_not_fit_are_refused_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let args = |force| super::Args {
            out: dir.path().to_path_buf(),
            sizes: vec![],
            force,
            keep: false,
            in_memory: false,
            hash_buckets: 1,
        };
        // 1 PB per row of data.
        let est = crossdistil_bench::DiskEstimate::measured(1, 1 << 50, 0, 0);
        let e = super::check_disk(&est, &[1, 1_000], 0, &args(false), dir.path()).unwrap_err();
        assert!(e.to_string().contains("not enough disk"), "{e}");
        assert!(e.to_string().contains("--force"), "{e}");
        super::check_disk(&est, &[1, 1_000], 0, &args(true), dir.path()).unwrap();
        let small = crossdistil_bench::DiskEstimate::measured(1_000, 1_000, 0, 0);
        super::check_disk(&small, &[2_000], 0, &args(false), dir.path()).unwrap();
        super::check_disk(&est, &[], 0, &args(false), dir.path()).unwrap();
    }

    #[test]
    fn sizes_on_the_command_line() {
        assert_eq!(
            scale_args(&["--scale"]).unwrap(),
            (vec![1_000_000, 10_000_000, 100_000_000], 1 << 20)
        );
        assert_eq!(
            scale_args(&["--scale", "--sizes", "2e4,40_000", "--hash-buckets", "1024"]).unwrap(),
            (vec![20_000, 40_000], 1024)
        );
        assert!(scale_args(&["--scale", "--sizes", "1e6,1.5"]).is_err());
        assert!(scale_args(&["--scale", "--hash-buckets", "0"]).is_err());
        // The scale options belong to --scale.
        assert!(scale_args(&["--sizes", "1e6"]).is_err());
        assert!(scale_args(&["--scale", "--quick"]).is_err());
    }
}
