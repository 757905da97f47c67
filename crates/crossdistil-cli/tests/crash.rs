//! Crash consistency of the run folder, through the release `crossdistil` binary: kills at
//! every step of the commit protocol (the `CROSSDISTIL_ABORT_AT` hook) and `kill -9` at seeded
//! random instants, each followed by `--resume` until the run completes, must end with the
//! uninterrupted run's report and no stray files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crossdistil_data::prepare::{PrepareOptions, synthetic};
use crossdistil_train::ABORT_POINTS;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Several epochs, validations within them (`eval_every`), some improving and some not, commits
/// inside them (`checkpoint_every`), and early stopping within the last epoch.
const CONFIG: &str = r#"
[model]
embedding_dim = 4
[model.backbone]
type = "mmoe"
experts = 2
hidden = [8]
[model.tower]
hidden = [4]
[train]
epochs = 4
batch_size = 64
lr = 0.05
eval_every = 7
checkpoint_every = 5
patience = 2
seed = 7
"#;

struct Setup {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    config: PathBuf,
    root: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = synthetic::SyntheticOptions {
        rows: 1500,
        fields: 3,
        vocab: 50,
        tasks: 2,
        dense: 2,
        ..Default::default()
    };
    // A seed whose data and split give the run the shape CONFIG describes (twelve validations,
    // eight of them improving, early stopping in the fourth epoch).
    let opts = PrepareOptions::new(data.clone(), 4);
    synthetic::prepare(&o, &opts, &|_| {}).unwrap();
    let config = tmp.path().join("c.toml");
    std::fs::write(&config, CONFIG).unwrap();
    Setup {
        root: tmp.path().to_path_buf(),
        _tmp: tmp,
        data,
        config,
    }
}

impl Setup {
    fn train(&self, run: &Path, flag: Option<&str>) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_crossdistil"));
        c.args(["train", "--data"])
            .arg(&self.data)
            .arg("--out")
            .arg(run)
            .arg("--json")
            .env_remove("CROSSDISTIL_ABORT_AT")
            .stdin(Stdio::null());
        if flag != Some("--resume") {
            c.arg("--config").arg(&self.config);
        }
        if let Some(f) = flag {
            c.arg(f);
        }
        c
    }

    /// Continues an interrupted run to its end with `--resume`; where `restart` (a kill inside
    /// `--overwrite`, after the old manifest was removed), a refusal that says to start again
    /// is followed by a new start with `--overwrite`.
    fn finish(&self, run: &Path, restart: bool) -> Output {
        let out = self.train(run, Some("--resume")).output().unwrap();
        if out.status.success() {
            return out;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(restart, "--resume failed: {err}");
        assert!(
            err.contains("holds no") && (err.contains("--overwrite") || err.contains("train")),
            "{err}"
        );
        let out = self.train(run, Some("--overwrite")).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// The report without its timing fields.
fn untimed(text: &[u8]) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(text).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("train_seconds").unwrap();
    o.remove("rows_per_second").unwrap();
    v
}

/// metrics.csv without the seconds column.
fn metrics(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(2);
            f.join(",")
        })
        .collect()
}

/// The finished folder holds the committed files and nothing else.
fn check_folder(run: &Path, want: &serde_json::Value, want_metrics: &[String], what: &str) {
    let report = std::fs::read(run.join("report.json")).unwrap();
    assert_eq!(&untimed(&report), want, "{what}: another report");
    assert_eq!(metrics(run), want_metrics, "{what}: another metrics.csv");
    let mut names: Vec<String> = std::fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !matches!(n.as_str(), ".lock" | "config.toml" | "encoders.json" | "tb"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 5, "{what}: {names:?}");
    assert!(
        names[0].starts_with("best-") && names[1].starts_with("last-"),
        "{what}: {names:?}"
    );
    assert_eq!(
        &names[2..],
        ["manifest.json", "metrics.csv", "report.json"],
        "{what}"
    );
}

fn uninterrupted(s: &Setup) -> (serde_json::Value, Vec<String>, Duration) {
    let run = s.root.join("whole");
    let t = Instant::now();
    let out = s.train(&run, None).output().unwrap();
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = untimed(&std::fs::read(run.join("report.json")).unwrap());
    let rows = metrics(&run);
    // Validations that improve and validations that do not.
    let aucs: Vec<f64> = rows[1..]
        .iter()
        .map(|r| r.split(',').nth(7).unwrap().parse().unwrap())
        .collect();
    let improving = aucs
        .iter()
        .enumerate()
        .filter(|(i, a)| aucs[..*i].iter().all(|b| *a > b))
        .count();
    assert!(
        aucs.len() >= 8 && improving >= 2 && improving < aucs.len(),
        "{aucs:?}"
    );
    assert_eq!(want["stopped_early"], true);
    assert_eq!(want["epochs_run"], 3, "stopped within the fourth epoch");
    (want, rows, took)
}

/// Issue 1: a kill after the last checkpoint is in place and before the commit, or while it
/// is written, resumes to the uninterrupted run's report, with no temporary left and no
/// metrics.csv row twice.
#[test]
fn a_kill_between_the_checkpoint_files_and_the_commit_resumes_exactly() {
    let s = setup();
    let (want, want_metrics, _) = uninterrupted(&s);
    for point in ["last-renamed:2", "last-written:2", "best-written:2"] {
        let run = s.root.join(point.replace(':', "-"));
        let out = s
            .train(&run, None)
            .env("CROSSDISTIL_ABORT_AT", point)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}");
        let out = s.train(&run, Some("--resume")).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = String::from_utf8_lossy(&out.stderr);
        if point.contains("written") {
            assert!(
                log.contains(".part that the manifest does not reference"),
                "{log}"
            );
        }
        check_folder(&run, &want, &want_metrics, point);
    }
}

/// Every step of the commit protocol, at several times it is reached (the commits are
/// generation 0, one per epoch, the early stop within the fourth epoch and the report: 6 in
/// all): the process aborts there, and `--resume` ends with the uninterrupted report.
#[test]
fn a_crash_at_every_step_of_the_commit_resumes_to_the_same_report() {
    let s = setup();
    let (want, want_metrics, _) = uninterrupted(&s);
    let mut aborted = 0;
    for point in ABORT_POINTS {
        for n in [1, 3, 5, 6] {
            let run = s.root.join(format!("{point}-{n}"));
            let overwrite = *point == "overwrite-manifest-removed";
            if overwrite {
                assert!(s.train(&run, None).output().unwrap().status.success());
            }
            let out = s
                .train(&run, overwrite.then_some("--overwrite"))
                .env("CROSSDISTIL_ABORT_AT", format!("{point}:{n}"))
                .output()
                .unwrap();
            let what = format!("abort at {point}:{n}");
            if out.status.success() {
                // Reached fewer than n times.
                assert!(n > 1 || overwrite, "{what}: never reached");
                check_folder(&run, &want, &want_metrics, &what);
                continue;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("aborting at"), "{what}: {err}");
            aborted += 1;
            // Before its configuration is in place a run has nothing to resume (`--resume`
            // says to start it again); after, `--resume` must finish it.
            s.finish(&run, overwrite || *point == "config-written");
            check_folder(&run, &want, &want_metrics, &what);
        }
    }
    assert!(aborted >= ABORT_POINTS.len(), "{aborted} aborts");
}

/// `kill -9` at seeded random instants, each time resumed, until the run completes; ten rounds
/// of up to twelve kills.
#[test]
fn kill_9_at_random_instants_resumes_to_the_same_report() {
    let s = setup();
    let (want, want_metrics, took) = uninterrupted(&s);
    // Another seed for a longer hunt: CROSSDISTIL_CRASH_SEED=N.
    let seed = std::env::var("CROSSDISTIL_CRASH_SEED").map_or(11, |s| s.parse().unwrap());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for round in 0..10 {
        let run = s.root.join(format!("killed-{round}"));
        let mut kills = 0;
        let mut started = false;
        loop {
            let flag = Some(if started { "--resume" } else { "--overwrite" });
            let mut child = s
                .train(&run, flag)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            if kills < 12 {
                let wait = took.mul_f64(rng.random_range(0.0..1.0));
                std::thread::sleep(wait);
                if child.try_wait().unwrap().is_none() {
                    child.kill().unwrap(); // SIGKILL
                    child.wait().unwrap();
                    kills += 1;
                    // Killed before the configuration was in place: start again.
                    started = run.join("config.toml").exists();
                    continue;
                }
            }
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            break;
        }
        check_folder(
            &run,
            &want,
            &want_metrics,
            &format!("round {round}, {kills} kills"),
        );
        eprintln!("round {round}: {kills} kills");
    }
}

/// A full disk, simulated by a file-size limit (`ulimit -f`, with SIGXFSZ ignored so that the
/// write fails with EFBIG as it would with ENOSPC): the run stops with a non-zero exit and a
/// message at its first checkpoint, leaves no temporary, and `--resume` without the limit ends
/// with the uninterrupted report.
#[test]
fn a_full_disk_stops_the_run_cleanly_and_resume_finishes_it() {
    let s = setup();
    let (want, want_metrics, _) = uninterrupted(&s);
    let whole = s.root.join("whole");
    let checkpoint = std::fs::read_dir(&whole)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("best-"))
        .unwrap();
    let size = std::fs::metadata(&checkpoint).unwrap().len();
    let encoders = std::fs::metadata(whole.join("encoders.json"))
        .unwrap()
        .len();
    let metrics_size = std::fs::metadata(whole.join("metrics.csv")).unwrap().len();
    // Room for the configuration, the encoders and metrics.csv, not for a checkpoint.
    let limit_kib = (size / 2 / 1024).max(1);
    assert!(
        limit_kib * 1024 > encoders.max(metrics_size) && limit_kib * 1024 < size,
        "checkpoint {size} B, encoders {encoders} B, metrics {metrics_size} B"
    );
    let run = s.root.join("full");
    let train = s.train(&run, None);
    let args: Vec<String> = std::iter::once(train.get_program())
        .chain(train.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -f {limit_kib}; trap '' XFSZ; exec {}",
            args.join(" ")
        ))
        .env_remove("CROSSDISTIL_ABORT_AT")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the limit was not hit: {err}");
    assert!(err.contains("cannot write checkpoint"), "{err}");
    assert!(err.contains("too large"), "says why: {err}");
    let stray: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".part") || n.starts_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "left behind: {stray:?}");
    let out = s.train(&run, Some("--resume")).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_folder(&run, &want, &want_metrics, "after a full disk");
}
