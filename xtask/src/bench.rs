//! `cargo xtask bench`: the glue around `crossdistil-bench`. It prepares the data, launches
//! every measurement in a fresh child process (`xtask bench-run`, so peak RSS is the model's
//! own; with `--peer` also `bench/peer/peer.py` in its virtual environment), runs them round by
//! round and writes `bench.json` and `bench.md`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use crossdistil_bench::{
    BenchModel, ChildArgs, Measurement, Parity, Report, Row, Shape, bench_data, markdown,
};
use serde::Deserialize;

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

/// Our side of a measurement: `exe bench-run`, its matrix products on one thread.
fn ours(exe: &Path, a: &ChildArgs) -> Command {
    let mut c = Command::new(exe);
    c.arg("bench-run")
        .args(a.to_args())
        .env("RAYON_NUM_THREADS", "1");
    c
}

/// The PyTorch side of a measurement, starting from the initial weights `init`.
fn peer(python: &Path, root: &Path, a: &ChildArgs, init: &Path) -> Command {
    let mut c = Command::new(python);
    c.arg(root.join("bench/peer/peer.py"))
        .arg("bench")
        .args(a.to_args())
        .arg("--init")
        .arg(init);
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

/// The parity check of Shared-Bottom and MMoE: both sides from the same weights and batch (in
/// `out/parity-<model>`), one step each; fails unless their losses match.
fn check_parity(
    exe: &Path,
    python: &Path,
    root: &Path,
    out: &Path,
    data: &Path,
    shape: &Shape,
) -> anyhow::Result<Vec<(BenchModel, Parity, Parity)>> {
    let mut parity = Vec::new();
    for model in [BenchModel::SharedBottom, BenchModel::Mmoe] {
        let dir = out.join(format!("parity-{}", model.name()));
        let a = ChildArgs::new(data, shape, model, false, 1, None).to_args();
        let mut c = Command::new(exe);
        c.arg("bench-parity").args(&a).arg("--dir").arg(&dir);
        let ours: Parity = measure(c, "parity (crossdistil)")?;
        let mut c = Command::new(python);
        c.arg(root.join("bench/peer/peer.py"))
            .arg("parity")
            .args(&a)
            .arg("--dir")
            .arg(&dir);
        let theirs: Parity = measure(c, "parity (PyTorch)")?;
        let ok = ours.matches(&theirs);
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
    Ok(parity)
}

/// One configuration of the plan: its label, whether it belongs to the table-size sweep, and
/// the command of one of its runs.
struct Job {
    key: String,
    sweep: bool,
    cmd: Box<dyn Fn() -> anyhow::Result<Command>>,
}

/// Our job of `a`.
fn our_job(exe: &Path, key: String, sweep: bool, a: ChildArgs) -> Job {
    let exe = exe.to_path_buf();
    Job {
        key,
        sweep,
        cmd: Box::new(move || Ok(ours(&exe, &a))),
    }
}

/// The PyTorch job of `model` without CrossDistil on one worker: its first run has our side
/// export the initial weights to `out/init-<model>.safetensors`.
fn peer_job(
    args: &Args,
    exe: &Path,
    py: &Path,
    data: &Path,
    shape: &Shape,
    model: BenchModel,
) -> Job {
    let a = ChildArgs::new(data, shape, model, false, 1, None);
    let init = args.out.join(format!("init-{}.safetensors", model.name()));
    let no_steps = Shape {
        warmup_steps: 0,
        windows: 0,
        ..*shape
    };
    let mut export = ChildArgs::new(data, &no_steps, model, false, 1, None);
    export.export_init = Some(init.clone());
    let (py, root, exe) = (py.to_path_buf(), args.root.clone(), exe.to_path_buf());
    Job {
        key: format!("pytorch {} cd=false workers=1", model.name()),
        sweep: false,
        cmd: Box::new(move || {
            if !init.exists() {
                let _: Measurement = measure(ours(&exe, &export), "exporting the initial weights")?;
            }
            Ok(peer(&py, &root, &a, &init))
        }),
    }
}

/// Runs the benchmark and writes `bench.json` and `bench.md` to `args.out`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut shape = if args.quick {
        Shape::QUICK
    } else {
        Shape::FULL
    };
    if let Some(r) = args.rounds {
        anyhow::ensure!(r >= 1, "--rounds must be at least 1");
        shape.rounds = r;
    }
    let data = bench_data(&args.root.join("target/bench-data"), &shape)?;
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
    let parity = match &python {
        Some(py) => check_parity(&exe, py, &args.root, &args.out, &data, &shape)?,
        None => Vec::new(),
    };

    // The plan, run round by round so that the two sides interleave and drift on the machine
    // hits both alike.
    let mut jobs: Vec<Job> = Vec::new();
    for model in BenchModel::ALL {
        for cd in [false, true] {
            for &w in &args.workers {
                let a = ChildArgs::new(&data, &shape, model, cd, w, None);
                let key = format!("crossdistil {} cd={cd} workers={w}", model.name());
                jobs.push(our_job(&exe, key, false, a));
            }
            if let (Some(py), false) = (&python, cd) {
                jobs.push(peer_job(args, &exe, py, &data, &shape, model));
            }
        }
    }
    for &rows in shape.table_sweep {
        let a = ChildArgs::new(
            &data,
            &shape,
            BenchModel::SharedBottom,
            false,
            1,
            Some(rows),
        );
        let key = format!("crossdistil shared-bottom table={rows}");
        jobs.push(our_job(&exe, key, true, a));
    }

    let bar = indicatif::ProgressBar::new((jobs.len() * shape.rounds) as u64).with_style(
        indicatif::ProgressStyle::with_template("bench [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
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
            .zip(&jobs)
            .map(|(runs, job)| Row::of(runs, job.sweep))
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
