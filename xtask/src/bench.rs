//! `cargo xtask bench`: the glue around `crossdistil-bench`. It prepares the data, launches
//! every measurement in a fresh child process (`xtask bench-run`, so peak RSS is the model's
//! own; with `--peer` also `bench/peer/peer.py` in its virtual environment, once per variant),
//! runs them round by round and writes `bench.json` and `bench.md`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use crossdistil_bench::{
    BenchModel, ChildArgs, Measurement, PARITY_TOLERANCE, Parity, ParityCheck, PeerVariant, Report,
    Row, Shape, bench_data, markdown,
};
use serde::Deserialize;

/// Options of `cargo xtask bench`.
pub struct Args {
    pub root: PathBuf,
    pub out: PathBuf,
    pub quick: bool,
    pub peer: bool,
    /// The peer's variants to run; empty: every variant, less `compiled` where its parity run
    /// fails (no working `torch.compile` on the machine).
    pub peer_variants: Vec<PeerVariant>,
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

/// The PyTorch side: its Python and the repository root, where `bench/peer/peer.py` is.
#[derive(Clone)]
struct Peer {
    python: PathBuf,
    root: PathBuf,
}

impl Peer {
    /// `peer.py <mode>` of `a` as `variant`.
    fn command(&self, mode: &str, a: &ChildArgs, variant: PeerVariant) -> Command {
        let mut c = Command::new(&self.python);
        c.arg(self.root.join("bench/peer/peer.py"))
            .arg(mode)
            .args(a.to_peer_args(variant));
        c
    }

    /// A measurement of `a` as `variant`, starting from the initial weights `init`.
    fn bench(&self, a: &ChildArgs, variant: PeerVariant, init: &Path) -> Command {
        let mut c = self.command("bench", a, variant);
        c.arg("--init").arg(init);
        c
    }

    /// The parity step of `a` as `variant` on what our side exported to `dir`.
    fn parity(&self, a: &ChildArgs, variant: PeerVariant, dir: &Path) -> Command {
        let mut c = self.command("parity", a, variant);
        c.arg("--dir").arg(dir);
        c
    }
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

/// `-cd` with CrossDistil: the suffix of the files of a configuration.
fn cd_suffix(cd: bool) -> &'static str {
    if cd { "-cd" } else { "" }
}

/// The line that reports one parity check.
fn parity_line(c: &ParityCheck) -> String {
    let adam = c
        .theirs
        .peer
        .as_ref()
        .map_or(String::new(), |p| format!(" ({} Adam)", p.dense_adam));
    format!(
        "parity {}{} vs {}{adam}: loss before {:.7} vs {:.7}, after one step {:.7} vs {:.7}: {}",
        c.model.name(),
        if c.crossdistil {
            " with CrossDistil"
        } else {
            ""
        },
        c.variant.name(),
        c.ours.loss_before,
        c.theirs.loss_before,
        c.ours.loss_after,
        c.theirs.loss_after,
        if c.matches() {
            format!("match (< {PARITY_TOLERANCE:e})")
        } else {
            "MISMATCH".into()
        }
    )
}

/// Our side of the parity check of `a`: exports the initial weights and the first batch to
/// `dir` and returns the losses before and after one step.
fn our_parity(exe: &Path, a: &ChildArgs, dir: &Path) -> anyhow::Result<Parity> {
    let mut c = Command::new(exe);
    c.arg("bench-parity")
        .args(a.to_args())
        .arg("--dir")
        .arg(dir);
    measure(c, "parity (crossdistil)")
}

/// Prints the line of `check` and returns it; fails unless both sides match.
fn verified(check: ParityCheck) -> anyhow::Result<ParityCheck> {
    println!("{}", parity_line(&check));
    if !check.matches() {
        bail!(
            "the PyTorch peer ({}) does not compute the same model as crossdistil",
            check.variant.name()
        );
    }
    Ok(check)
}

/// The parity check of every model, with and without CrossDistil, against every variant of
/// `variants` (empty: every variant, `compiled` left out with a message where its run fails):
/// both sides from the same weights and batch (in `out/parity-<model>[-cd]`), one step each;
/// fails unless their losses match. Returns the checks and the variants that passed them.
fn check_parity(
    exe: &Path,
    peer: &Peer,
    out: &Path,
    data: &Path,
    shape: &Shape,
    variants: &[PeerVariant],
) -> anyhow::Result<(Vec<ParityCheck>, Vec<PeerVariant>)> {
    let optional = variants.is_empty();
    let mut variants = match optional {
        true => PeerVariant::ALL.to_vec(),
        false => variants.to_vec(),
    };
    let mut checks = Vec::new();
    for model in BenchModel::ALL {
        for crossdistil in [false, true] {
            let dir = out.join(format!("parity-{}{}", model.name(), cd_suffix(crossdistil)));
            let a = ChildArgs::new(data, shape, model, crossdistil, 1, None);
            let ours = our_parity(exe, &a, &dir)?;
            for variant in variants.clone() {
                let what = format!("parity (PyTorch, {})", variant.name());
                let theirs: Parity = match measure(peer.parity(&a, variant, &dir), &what) {
                    Ok(p) => p,
                    Err(e) if optional && variant == PeerVariant::Compiled => {
                        println!("the compiled peer does not run here; left out: {e:#}");
                        variants.retain(|&v| v != variant);
                        checks.retain(|c: &ParityCheck| c.variant != variant);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                checks.push(verified(ParityCheck {
                    model,
                    crossdistil,
                    variant,
                    ours: ours.clone(),
                    theirs,
                })?);
            }
        }
    }
    Ok((checks, variants))
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

/// The PyTorch job of `model` with or without CrossDistil on one worker as `variant`: the
/// first run of any variant has our side export the initial weights to
/// `out/init-<model>[-cd].safetensors`.
fn peer_job(out: &Path, exe: &Path, peer: &Peer, a: ChildArgs, variant: PeerVariant) -> Job {
    let init = out.join(format!(
        "init-{}{}.safetensors",
        a.model.name(),
        cd_suffix(a.crossdistil)
    ));
    let export = ChildArgs {
        warmup_steps: 0,
        windows: 0,
        export_init: Some(init.clone()),
        ..a.clone()
    };
    let (peer, exe) = (peer.clone(), exe.to_path_buf());
    Job {
        key: format!(
            "pytorch {} {} cd={} workers=1",
            variant.name(),
            a.model.name(),
            a.crossdistil
        ),
        sweep: false,
        cmd: Box::new(move || {
            if !init.exists() {
                let _: Measurement = measure(ours(&exe, &export), "exporting the initial weights")?;
            }
            Ok(peer.bench(&a, variant, &init))
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
    let peer = match args.peer {
        true => Some(Peer {
            python: peer_python(&args.root)?,
            root: args.root.clone(),
        }),
        false => None,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let exe = match &args.child_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let (parity, variants) = match &peer {
        Some(p) => check_parity(&exe, p, &args.out, &data, &shape, &args.peer_variants)?,
        None => (Vec::new(), Vec::new()),
    };

    // The plan, run round by round so that the two sides (every variant of the peer a job of
    // its own) interleave and drift on the machine hits them alike.
    let mut jobs: Vec<Job> = Vec::new();
    for model in BenchModel::ALL {
        for cd in [false, true] {
            for &w in &args.workers {
                let a = ChildArgs::new(&data, &shape, model, cd, w, None);
                let key = format!("crossdistil {} cd={cd} workers={w}", model.name());
                jobs.push(our_job(&exe, key, false, a));
            }
            if let Some(p) = &peer {
                for &v in &variants {
                    let a = ChildArgs::new(&data, &shape, model, cd, 1, None);
                    jobs.push(peer_job(&args.out, &exe, p, a, v));
                }
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
