//! The run folder: reused folders, the lock, checksums, and damaged checkpoints.

use std::path::{Path, PathBuf};

use crossdistil_data::Split;
use crossdistil_data::prepare::{PrepareOptions, synthetic};
use crossdistil_train::RunLock;
use crossdistil_train::{FitOptions, Report, RunConfig, fit};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn data(dir: &Path) {
    let o = synthetic::SyntheticOptions {
        rows: 1500,
        fields: 3,
        vocab: 50,
        tasks: 2,
        dense: 2,
        ..Default::default()
    };
    let opts = PrepareOptions::new(dir, 5);
    synthetic::prepare(&o, &opts, &|_| {}).unwrap();
}

fn config(seed: u64) -> RunConfig {
    let text = format!(
        r#"
[model]
embedding_dim = 4
[model.backbone]
type = "mmoe"
experts = 2
hidden = [8]
[model.tower]
hidden = [4]
[train]
epochs = 3
batch_size = 128
lr = 0.02
eval_every = 4
patience = 0
seed = {seed}
"#
    );
    let cfg: RunConfig = toml::from_str(&text).unwrap();
    cfg.validate().unwrap();
    cfg
}

/// The report without its timing fields.
fn untimed(r: &Report) -> Report {
    Report {
        train_seconds: 0.0,
        rows_per_second: 0.0,
        ..r.clone()
    }
}

fn resume() -> FitOptions {
    FitOptions {
        resume: true,
        ..Default::default()
    }
}

fn manifest(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("manifest.json")).unwrap();
    serde_json::from_str(text.split_once('\n').unwrap().1).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Issue 2: a folder holding a run is refused without --overwrite; a run that replaced it,
/// interrupted and resumed, reports its own configuration and its own model.
#[test]
fn a_folder_holding_a_run_is_refused_and_overwrite_replaces_it_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    data(&d);
    let run = tmp.path().join("run");
    fit(&d, &config(1), &run, &FitOptions::default()).unwrap();
    let before = std::fs::read(run.join("report.json")).unwrap();

    let e = fit(&d, &config(2), &run, &FitOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("already holds a run") && e.contains("--overwrite") && e.contains("--resume"),
        "{e}"
    );
    assert_eq!(std::fs::read(run.join("report.json")).unwrap(), before);

    let fresh = fit(
        &d,
        &config(2),
        &tmp.path().join("fresh"),
        &FitOptions::default(),
    )
    .unwrap();
    let stop = FitOptions {
        overwrite: true,
        stop_after_epochs: Some(1),
        ..Default::default()
    };
    fit(&d, &config(2), &run, &stop).unwrap_err();
    assert!(!run.join("report.json").exists(), "the old report went");
    let resumed = fit(&d, &config(2), &run, &resume()).unwrap();
    assert_eq!(untimed(&resumed), untimed(&fresh));
    assert_eq!(resumed.config.train.seed, 2);
}

/// `--resume` on a folder without a run says so and what to do.
#[test]
fn resume_without_a_run_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    data(&d);
    let e = fit(&d, &config(1), &tmp.path().join("none"), &resume())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such run folder"), "{e}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = fit(&d, &config(1), &empty, &resume())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("holds no run") && e.contains("crossdistil train"),
        "{e}"
    );
}

/// Issue 3: a second process on the same folder is refused at once, naming the holder.
#[test]
fn a_locked_folder_is_refused_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    data(&d);
    let run = tmp.path().join("run");
    let lock = RunLock::acquire(&run).unwrap();
    let started = std::time::Instant::now();
    for opts in [FitOptions::default(), resume()] {
        let e = fit(&d, &config(1), &run, &opts).unwrap_err().to_string();
        assert!(
            e.contains("in use by another training process")
                && e.contains(&format!("pid={}", std::process::id()))
                && e.contains("host=")
                && e.contains("started="),
            "{e}"
        );
    }
    assert!(started.elapsed().as_secs() < 5, "refused at once");
    drop(lock);
    fit(&d, &config(1), &run, &FitOptions::default()).unwrap();
}

/// Issue 4a: flipped bytes in a checkpoint's tensor data are refused on resume and by eval,
/// naming the file and both checksums.
#[test]
fn a_flipped_byte_in_a_checkpoint_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    data(&d);
    let run = tmp.path().join("run");
    fit(&d, &config(1), &run, &FitOptions::default()).unwrap();
    let m = manifest(&run);
    for kind in ["last", "best"] {
        let name = m[kind]["file"].as_str().unwrap().to_string();
        let path = run.join(&name);
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        let at = bad.len() - 10; // inside the last tensor's data
        bad[at] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        let e = if kind == "last" {
            fit(&d, &config(1), &run, &resume())
                .err()
                .unwrap()
                .to_string()
        } else {
            crossdistil_train::open_run(&run, &d)
                .err()
                .unwrap()
                .to_string()
        };
        assert!(
            e.contains(&name)
                && e.contains(&format!(
                    "expected crc32 {}",
                    m[kind]["crc32"].as_str().unwrap()
                ))
                && e.contains("found"),
            "{e}"
        );
        std::fs::write(&path, &good).unwrap();
    }
    fit(&d, &config(1), &run, &resume()).unwrap();
}

/// A resumed run drops what the manifest does not reference: temporaries, checkpoints of an
/// uncommitted generation, metrics rows after the committed ones.
#[test]
fn resume_removes_what_the_manifest_does_not_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    data(&d);
    let whole = fit(
        &d,
        &config(1),
        &tmp.path().join("whole"),
        &FitOptions::default(),
    )
    .unwrap();
    let whole_csv = std::fs::read_to_string(tmp.path().join("whole/metrics.csv")).unwrap();
    let run = tmp.path().join("run");
    let stop = FitOptions {
        stop_after_epochs: Some(1),
        ..Default::default()
    };
    fit(&d, &config(1), &run, &stop).unwrap_err();
    let m = manifest(&run);
    let g = m["generation"].as_u64().unwrap();
    for stray in [
        format!("last-{:06}.safetensors.123.part", g + 1),
        format!("best-{:06}.safetensors", g + 1),
        format!("last-{:06}.safetensors", g + 1),
        "manifest.json.77.part".to_string(),
        "report.json".to_string(),
    ] {
        std::fs::write(run.join(stray), b"left by a killed process").unwrap();
    }
    let mut csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let committed = csv.clone();
    csv.push_str("9,99,1.0,uncommitted\n");
    std::fs::write(run.join("metrics.csv"), csv).unwrap();
    let resumed = fit(&d, &config(1), &run, &resume()).unwrap();
    assert_eq!(untimed(&resumed), untimed(&whole));
    let m = manifest(&run);
    let mut want = vec![
        ".lock".to_string(),
        "config.toml".into(),
        "encoders.json".into(),
        m["best"]["file"].as_str().unwrap().into(),
        m["last"]["file"].as_str().unwrap().into(),
        "manifest.json".into(),
        "metrics.csv".into(),
        "report.json".into(),
        // The TensorBoard events, one file per call of `fit`.
        "tb".into(),
    ];
    want.sort();
    assert_eq!(names(&run), want);
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(csv.starts_with(&committed));
    let cols = |t: &str| -> Vec<Vec<String>> {
        t.lines()
            .map(|l| {
                l.split(',')
                    .enumerate()
                    .filter(|(i, _)| *i != 2) // seconds
                    .map(|(_, v)| v.to_string())
                    .collect()
            })
            .collect()
    };
    assert_eq!(
        cols(&csv),
        cols(&whole_csv),
        "one row per validation, none twice"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() == "tb" {
            copy_dir(&e.path(), &to.join("tb"));
        } else if e.file_name() != ".lock" {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Seeded bit flips and truncations of every file of a finished run: each one is refused by
/// `eval` and `--resume` naming the damaged file, or leaves their results unchanged; never a
/// panic.
#[test]
fn damaged_run_files_are_refused_or_harmless() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    data(&d);
    let run = tmp.path().join("run");
    let cfg = config(1);
    let report = fit(&d, &cfg, &run, &FitOptions::default()).unwrap();
    let test = crossdistil_train::open_run(&run, &d)
        .unwrap()
        .evaluate(Split::Test)
        .unwrap();
    let m = manifest(&run);
    let files: Vec<String> = [
        "manifest.json",
        "config.toml",
        "encoders.json",
        m["best"]["file"].as_str().unwrap(),
        m["last"]["file"].as_str().unwrap(),
        "metrics.csv",
        "report.json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let (mut refused, mut harmless) = (0, 0);
    for case in 0..42 {
        let name = &files[case % files.len()];
        let dir: PathBuf = tmp.path().join(format!("m{case}"));
        copy_dir(&run, &dir);
        let path = dir.join(name);
        let mut bytes = std::fs::read(&path).unwrap();
        let what = if case % 3 == 2 {
            let len = rng.random_range(0..bytes.len());
            bytes.truncate(len);
            format!("{name} truncated to {len}")
        } else {
            let at = rng.random_range(0..bytes.len());
            let bit = rng.random_range(0..8);
            bytes[at] ^= 1 << bit;
            format!("{name} bit {bit} of byte {at} flipped")
        };
        std::fs::write(&path, &bytes).unwrap();
        let check = |e: crossdistil_train::TrainError, by: &str| {
            let e = e.to_string();
            assert!(
                e.contains(name.as_str()),
                "{what}: {by} does not name the file: {e}"
            );
        };
        match crossdistil_train::open_run(&dir, &d).and_then(|o| o.evaluate(Split::Test)) {
            Ok(t) => {
                assert_eq!(t, test, "{what}: eval accepted it with other metrics");
                harmless += 1;
            }
            Err(e) => {
                check(e, "eval");
                refused += 1;
            }
        }
        match fit(&d, &cfg, &dir, &resume()) {
            Ok(r) => {
                assert_eq!(
                    untimed(&r),
                    untimed(&report),
                    "{what}: resume changed the report"
                );
                harmless += 1;
            }
            Err(e) => {
                check(e, "resume");
                refused += 1;
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(
        refused > 40 && harmless > 10,
        "{refused} refused, {harmless} harmless"
    );
}

/// A `predict` killed while writing leaves `scores.parquet.<pid>.part`; the next `predict` to
/// the same file removes it when that process is gone, and leaves a live one's alone.
#[test]
fn predict_removes_the_temporaries_of_ended_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    data(&d);
    let run = tmp.path().join("run");
    fit(&d, &config(1), &run, &FitOptions::default()).unwrap();
    let out = tmp.path().join("scores.parquet");
    // No process has a pid this large (the kernel's limit is 2^22).
    let dead = tmp.path().join("scores.parquet.2000000000.part");
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let live = tmp
        .path()
        .join(format!("scores.parquet.{}.part", child.id()));
    let other = tmp.path().join("other.parquet.2000000000.part");
    for p in [&dead, &live, &other] {
        std::fs::write(p, b"partial").unwrap();
    }
    let opened = crossdistil_train::open_run(&run, &d).unwrap();
    let rows = opened.write_scores(&out, Some(Split::Test), false).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // A whole, synced Parquet file: footer written, every row there.
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&out).unwrap())
            .unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), rows as i64);
    assert!(!dead.exists(), "the ended process's temporary stays");
    assert!(live.exists(), "a live process's temporary was removed");
    assert!(other.exists(), "another file's temporary was removed");
}

/// A run stopped before its first commit (its configuration and encoders in place, no
/// manifest) has trained nothing: `--resume` and a plain new start both start it again, with the
/// same report as an uninterrupted run. A folder with more than that (an older layout) is still
/// refused.
#[test]
fn a_run_stopped_before_its_first_commit_starts_again() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    data(&d);
    let cfg = config(4);
    let whole = fit(&d, &cfg, &tmp.path().join("whole"), &FitOptions::default()).unwrap();
    for (case, opts) in [("resumed", resume()), ("restarted", FitOptions::default())] {
        let run = tmp.path().join(case);
        std::fs::create_dir(&run).unwrap();
        for f in ["config.toml", "encoders.json"] {
            std::fs::copy(tmp.path().join("whole").join(f), run.join(f)).unwrap();
        }
        std::fs::write(run.join("manifest.json.123.part"), b"{").unwrap();
        let r = fit(&d, &cfg, &run, &opts).unwrap();
        assert_eq!(untimed(&r), untimed(&whole), "{case}");
        assert!(!run.join("manifest.json.123.part").exists(), "{case}");
    }
    let old = tmp.path().join("old-layout");
    std::fs::create_dir(&old).unwrap();
    for f in ["config.toml", "encoders.json"] {
        std::fs::copy(tmp.path().join("whole").join(f), old.join(f)).unwrap();
    }
    std::fs::write(old.join("state.json"), b"{}").unwrap();
    let err = fit(&d, &cfg, &old, &FitOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("already holds a run"), "{err}");
    let err = fit(&d, &cfg, &old, &resume()).unwrap_err().to_string();
    assert!(err.contains("holds no committed run"), "{err}");
}
