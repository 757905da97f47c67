//! Training on MPI ranks, through the `crossdistil` binary built with the `mpi` feature and
//! started by `mpirun` (over loopback TCP, the path between machines). Each test prints
//! `SKIPPED` and passes when `mpirun` is not installed.
//!
//! Run with `cargo test --release -p crossdistil-cli --features mpi --test mpi`.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crossdistil_data::prepare::{PrepareOptions, synthetic};

/// CrossDistil on MMoE with dropout (each rank's workers draw their own streams) and a
/// validation inside each epoch.
const CONFIG: &str = r#"
[model]
embedding_dim = 4
[model.backbone]
type = "mmoe"
experts = 2
hidden = [16]
dropout = 0.1
[model.tower]
hidden = [8]
[train]
epochs = 3
batch_size = 96
lr = 0.02
eval_every = 10
patience = 5
seed = 11
[distill]
mode = "crossdistil"
"#;

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    streamed: PathBuf,
}

/// Whether `mpirun` can be started; prints SKIPPED when not.
fn have_mpirun(test: &str) -> bool {
    let ok = Command::new("mpirun")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED {test}: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)");
    }
    ok
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let o = synthetic::SyntheticOptions {
        rows: 2000,
        fields: 3,
        vocab: 60,
        tasks: 2,
        dense: 2,
        ..Default::default()
    };
    let data = tmp.path().join("data");
    synthetic::prepare(&o, &PrepareOptions::new(data.clone(), 5), &|_| {}).unwrap();
    // The same rows in part files of 250, for streamed training (a row group per part).
    let streamed = tmp.path().join("parts");
    let opts = PrepareOptions::new(streamed.clone(), 5).with_rows_per_file(Some(250));
    synthetic::prepare(&o, &opts, &|_| {}).unwrap();
    Setup {
        root: tmp.path().to_path_buf(),
        _tmp: tmp,
        data,
        streamed,
    }
}

impl Setup {
    /// The configuration with `extra` appended to `[train]`, written to a file.
    fn config(&self, name: &str, extra: &str) -> PathBuf {
        let path = self.root.join(format!("{name}.toml"));
        let text = CONFIG.replace("seed = 11\n", &format!("seed = 11\n{extra}\n"));
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// `mpirun -np n` of `args`, as root where needed, over loopback TCP.
fn mpirun(n: usize, args: &[&std::ffi::OsStr]) -> Command {
    let mut c = Command::new("mpirun");
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env_remove("CROSSDISTIL_ABORT_AT")
        .args(["--oversubscribe", "--mca", "mpi_yield_when_idle", "1"])
        .args(["--mca", "btl", "self,tcp", "-np", &n.to_string()])
        .args(args)
        .stdin(Stdio::null());
    c
}

fn os<'a>(items: &'a [&'a dyn AsRef<std::ffi::OsStr>]) -> Vec<&'a std::ffi::OsStr> {
    items.iter().map(|s| s.as_ref()).collect()
}

const EXE: &str = env!("CARGO_BIN_EXE_crossdistil");

/// `crossdistil train` on `n` ranks (a plain process for `n = 0`), `--json`.
fn train(n: usize, data: &Path, config: Option<&Path>, out: &Path, flags: &[&str]) -> Output {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&EXE, &"train", &"--data", &data, &"--out", &out, &"--json"];
    if let Some(c) = &config {
        args.push(&"--config");
        args.push(c);
    }
    for f in flags {
        args.push(f);
    }
    let args = os(&args);
    if n == 0 {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]).env_remove("CROSSDISTIL_ABORT_AT");
        return c.output().unwrap();
    }
    mpirun(n, &args).output().unwrap()
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The report of a finished run without its timing fields and the cost of its exchanges.
fn report(run: &Path) -> serde_json::Value {
    let text = std::fs::read(run.join("report.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let o = v.as_object_mut().unwrap();
    for k in ["train_seconds", "rows_per_second", "distributed"] {
        o.remove(k);
    }
    // The folder the report names differs between runs.
    o.remove("data");
    v
}

/// The weights of the best checkpoint, by name, as bits.
fn best_weights(run: &Path) -> Vec<(String, Vec<u32>)> {
    let manifest = crossdistil_train::RunDir::new(run).manifest().unwrap();
    let best = manifest.best.unwrap();
    let tensors = crossdistil_train::load_weights_only(&run.join(best.file)).unwrap();
    let mut out: Vec<(String, Vec<u32>)> = tensors
        .into_iter()
        .map(|(k, t)| {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (k, v.into_iter().map(f32::to_bits).collect())
        })
        .collect();
    out.sort();
    out
}

fn test_metric(r: &serde_json::Value, task: &str, m: &str) -> f64 {
    r["test"][task][m].as_f64().unwrap()
}

#[test]
fn one_to_four_ranks_train_and_the_same_seed_gives_the_same_bits() {
    if !have_mpirun("one_to_four_ranks") {
        return;
    }
    let s = setup();
    let config = s.config("c", "");
    for n in 1..=4 {
        let run = s.root.join(format!("n{n}"));
        let out = train(n, &s.data, Some(&config), &run, &[]);
        ok(&out, &format!("{n} ranks"));
        let text = std::fs::read_to_string(run.join("report.json")).unwrap();
        let full: serde_json::Value = serde_json::from_str(&text).unwrap();
        if n > 1 {
            let d = &full["distributed"];
            assert_eq!(d["ranks"], n, "{text}");
            assert_eq!(d["tables"], "sharded", "{text}");
            assert!(d["bytes_sent_per_step"].as_f64().unwrap() > 0.0, "{text}");
        } else {
            assert!(full.get("distributed").is_none(), "{text}");
        }
        if n == 2 || n == 3 {
            let again = s.root.join(format!("n{n}-again"));
            ok(&train(n, &s.data, Some(&config), &again, &[]), "again");
            assert_eq!(report(&run), report(&again), "{n} ranks, twice");
            assert_eq!(best_weights(&run), best_weights(&again), "{n} ranks, twice");
        }
    }
}

#[test]
fn n_ranks_train_what_one_process_of_n_workers_trains() {
    if !have_mpirun("n_ranks_equal_n_workers") {
        return;
    }
    let s = setup();
    // Without dropout, one worker and N differ only in the order of their float sums (each
    // worker's matrix products over its rows, added after). Adam divides each parameter's
    // step by the root of its squared gradients, so a rounding difference of 1e-7 in a
    // small gradient is not small in its step: over a run, test AUC and log loss move by up to
    // about 1e-3 on these 200 test rows at a moderate learning rate, hence the tolerance.
    let config = s.config("c", "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("dropout = 0.1", "dropout = 0.0")
        .replace("lr = 0.02", "lr = 0.005");
    std::fs::write(&config, text).unwrap();
    let single = s.root.join("single");
    ok(
        &train(0, &s.data, Some(&config), &single, &[]),
        "one worker",
    );
    let single = report(&single);
    for n in [2usize, 3] {
        let workers = s.root.join(format!("workers{n}"));
        let w = n.to_string();
        ok(
            &train(0, &s.data, Some(&config), &workers, &["--workers", &w]),
            "workers",
        );
        let ranks = s.root.join(format!("ranks{n}"));
        ok(&train(n, &s.data, Some(&config), &ranks, &[]), "ranks");
        // The same global batches, shards, random streams and sums in the same order: the same
        // bits.
        let mut w = report(&workers);
        w["config"]["train"]["workers"] = 1.into();
        assert_eq!(w, report(&ranks), "{n} ranks against {n} workers");
        assert_eq!(best_weights(&workers), best_weights(&ranks), "{n}");
        // Against one worker, only the dropout streams and the order of the sums differ.
        let r = report(&ranks);
        for task in ["task0", "task1"] {
            for m in ["auc", "logloss"] {
                let (a, b) = (test_metric(&r, task, m), test_metric(&single, task, m));
                assert!(
                    (a - b).abs() < 2e-3,
                    "{n} ranks, {task} {m}: {a} against {b}"
                );
            }
        }
    }
}

#[test]
fn sharded_tables_train_what_replicated_tables_train() {
    if !have_mpirun("sharded_equals_replicated") {
        return;
    }
    let s = setup();
    for n in [2usize, 3] {
        let sharded = s.root.join(format!("sharded{n}"));
        let replicated = s.root.join(format!("replicated{n}"));
        let c1 = s.config("sharded", "tables = \"sharded\"");
        ok(&train(n, &s.data, Some(&c1), &sharded, &[]), "sharded");
        let c2 = s.config("replicated", "tables = \"replicated\"");
        ok(
            &train(n, &s.data, Some(&c2), &replicated, &[]),
            "replicated",
        );
        let mut a = report(&sharded);
        let mut b = report(&replicated);
        a["config"]["train"]["tables"] = "x".into();
        b["config"]["train"]["tables"] = "x".into();
        assert_eq!(a, b, "{n} ranks");
        assert_eq!(
            best_weights(&sharded),
            best_weights(&replicated),
            "{n} ranks"
        );
        // Each rank wrote its shard of the last checkpoint; the manifest lists them in order.
        let m = crossdistil_train::RunDir::new(&sharded).manifest().unwrap();
        let shards: Vec<String> = m.last_shards.iter().map(|e| e.file.clone()).collect();
        assert_eq!(shards.len(), n);
        for (r, f) in shards.iter().enumerate() {
            assert!(
                f.ends_with(&format!(".shard-{r}-of-{n}.safetensors")),
                "{f}"
            );
            assert!(sharded.join(f).exists(), "{f}");
        }
        let m = crossdistil_train::RunDir::new(&replicated)
            .manifest()
            .unwrap();
        assert!(m.last_shards.is_empty());
    }
}

#[test]
fn streamed_shares_train_deterministically() {
    if !have_mpirun("streamed_shares") {
        return;
    }
    let s = setup();
    let config = s.config("stream", "stream = true\nshuffle_buffer = 500");
    let a = s.root.join("a");
    let b = s.root.join("b");
    ok(&train(2, &s.streamed, Some(&config), &a, &[]), "streamed");
    ok(
        &train(2, &s.streamed, Some(&config), &b, &[]),
        "streamed again",
    );
    assert_eq!(report(&a), report(&b));
    // Each rank reads its own row groups: other batches than one process, the same rows. Every
    // row is trained once an epoch: at least the global batches of one process, and at most one
    // more (the ranks' last parts are short at different steps).
    let r = report(&a);
    let train_rows = 2000.0 * 0.8;
    let per_epoch = (train_rows / 96.0f64).ceil() as u64;
    let steps = r["steps"].as_u64().unwrap();
    assert!(
        (3 * per_epoch..=3 * (per_epoch + 1)).contains(&steps),
        "{steps} steps"
    );
    for task in ["task0", "task1"] {
        let auc = test_metric(&r, task, "auc");
        assert!(auc > 0.65, "{task}: test AUC {auc}");
    }
}

#[test]
fn a_crash_resumes_on_the_same_ranks_to_the_same_report_and_on_others_resharded() {
    if !have_mpirun("resume") {
        return;
    }
    let s = setup();
    // Shards of 33, 33 and 34 rows: the ranks' dropout streams run apart.
    let config = s.config("c", "checkpoint_every = 7");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("batch_size = 96", "batch_size = 100");
    std::fs::write(&config, text).unwrap();
    let whole = s.root.join("whole");
    ok(
        &train(3, &s.data, Some(&config), &whole, &[]),
        "uninterrupted",
    );
    let run = s.root.join("crashed");
    // Rank 0 dies right after its second commit inside the first epoch.
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"-x", &"CROSSDISTIL_ABORT_AT"];
    let (data, config_path) = (s.data.as_os_str(), config.as_os_str());
    let tail: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &EXE,
        &"train",
        &"--data",
        &data,
        &"--out",
        &run,
        &"--config",
        &config_path,
    ];
    args.extend(tail);
    let out = mpirun(3, &os(&args))
        .env("CROSSDISTIL_ABORT_AT", "manifest-renamed:3")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the crash did not happen");
    // Copies of the crashed folder, resumed on other numbers of ranks further down.
    let copies: Vec<PathBuf> = [2usize, 1]
        .iter()
        .map(|n| {
            let to = s.root.join(format!("crashed-on-{n}"));
            let status = Command::new("cp")
                .arg("-r")
                .arg(&run)
                .arg(&to)
                .status()
                .unwrap();
            assert!(status.success());
            to
        })
        .collect();
    ok(&train(3, &s.data, None, &run, &["--resume"]), "resume");
    assert_eq!(report(&whole), report(&run));
    assert_eq!(best_weights(&whole), best_weights(&run));
    // On 2 ranks, or in one process, the tables are resharded and the run goes on: the same
    // global batches, other shards of them.
    let want = report(&whole);
    for (n, folder) in [(2usize, &copies[0]), (0, &copies[1])] {
        ok(
            &train(n, &s.data, None, folder, &["--resume"]),
            "resume elsewhere",
        );
        let got = report(folder);
        assert_eq!(got["steps"], want["steps"], "resumed on {n}");
        for task in ["task0", "task1"] {
            let (a, b) = (
                test_metric(&got, task, "auc"),
                test_metric(&want, task, "auc"),
            );
            assert!(
                (a - b).abs() < 0.05,
                "resumed on {n}: {task} {a} against {b}"
            );
        }
    }
}

#[test]
fn a_rank_that_fails_ends_every_rank_and_is_named() {
    if !have_mpirun("failing_rank") {
        return;
    }
    let s = setup();
    let config = s.config("c", "");
    // Rank 1 is given a data folder that does not exist.
    let script = format!(
        "if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then d={}; else d={}; fi; \
         exec {EXE} train --data \"$d\" --config {} --out {}",
        s.root.join("missing").display(),
        s.data.display(),
        config.display(),
        s.root.join("run").display()
    );
    let out = mpirun(2, &os(&[&"sh", &"-c", &script])).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rank 1 of 2") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn a_killed_rank_fails_the_job_and_leaves_a_valid_run_folder() {
    if !have_mpirun("killed_rank") {
        return;
    }
    let s = setup();
    // Long enough that the kill lands during training.
    let config = s.config("long", "checkpoint_every = 5");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("epochs = 3", "epochs = 100000")
        .replace("patience = 5", "patience = 0");
    std::fs::write(&config, text).unwrap();
    let run = s.root.join("run");
    let script = format!(
        "if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then (sleep 3; kill -9 $$) & fi; \
         exec {EXE} train --data {} --config {} --out {}",
        s.data.display(),
        config.display(),
        run.display()
    );
    let out = mpirun(2, &os(&[&"sh", &"-c", &script])).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rank 1"), "{err}");
    // Whatever was committed is whole: every file of the manifest checks out.
    let m = crossdistil_train::RunDir::new(&run).manifest().unwrap();
    for e in m.files() {
        let bytes = std::fs::read(run.join(&e.file)).unwrap();
        assert_eq!(bytes.len() as u64, e.size, "{}", e.file);
        assert_eq!(
            format!("{:08x}", crc32fast::hash(&bytes)),
            e.crc32,
            "{}",
            e.file
        );
    }
    assert!(m.generation > 0, "nothing was committed before the kill");
}
