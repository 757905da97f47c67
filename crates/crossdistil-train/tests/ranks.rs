//! Distributed training in one process: ranks as threads ([`ThreadGroup`]), through
//! [`fit_distributed`], the path `mpirun` takes, without an MPI library. The MPI runs themselves
//! are tested in `crossdistil-cli/tests/mpi.rs`.

use std::path::Path;
use std::sync::Arc;

use crossdistil_data::prepare::{PrepareOptions, synthetic};
use crossdistil_train::dist::{Comm, ThreadGroup};
use crossdistil_train::{FitOptions, Report, RunConfig, fit, fit_distributed, load_weights_only};

const CONFIG: &str = r#"
[model]
embedding_dim = 4
[model.backbone]
type = "ple"
shared_experts = 1
task_experts = 1
hidden = [8]
dropout = 0.1
[model.tower]
hidden = [4]
[train]
epochs = 2
batch_size = 50
lr = 0.01
eval_every = 9
checkpoint_every = 4
seed = 3
[distill]
mode = "crossdistil"
calibrator = "refit-valid"
"#;

fn data(dir: &Path) -> std::path::PathBuf {
    let o = synthetic::SyntheticOptions {
        rows: 900,
        fields: 3,
        vocab: 40,
        tasks: 2,
        dense: 1,
        ..Default::default()
    };
    let out = dir.join("data");
    synthetic::prepare(&o, &PrepareOptions::new(&out, 9), &|_| {}).unwrap();
    out
}

fn config(tables: &str, workers: usize) -> RunConfig {
    let text = CONFIG.replace(
        "seed = 3\n",
        &format!("seed = 3\ntables = \"{tables}\"\nworkers = {workers}\n"),
    );
    toml::from_str(&text).unwrap()
}

/// `fit_distributed` on `n` rank threads; rank 0's report.
fn on_ranks(n: usize, data: &Path, cfg: &RunConfig, out: &Path) -> Report {
    let opts = FitOptions::default();
    let reports: Vec<Option<Report>> = std::thread::scope(|s| {
        let handles: Vec<_> = ThreadGroup::new(n)
            .into_iter()
            .map(|c| {
                let comm: Arc<dyn Comm> = Arc::new(c);
                let opts = &opts;
                s.spawn(move || fit_distributed(data, cfg, out, opts, comm).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(reports[1..].iter().all(Option::is_none));
    reports.into_iter().next().unwrap().expect("rank 0 reports")
}

/// A report's metrics and counts, without timings, paths and the settings that differ.
fn outcome(r: &Report) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap();
    let o = v.as_object_mut().unwrap();
    for k in [
        "train_seconds",
        "rows_per_second",
        "distributed",
        "data",
        "config",
    ] {
        o.remove(k);
    }
    v
}

fn best_bits(run: &Path) -> Vec<(String, Vec<u32>)> {
    let m = crossdistil_train::RunDir::new(run).manifest().unwrap();
    let t = load_weights_only(&run.join(m.best.unwrap().file)).unwrap();
    let mut v: Vec<_> = t
        .into_iter()
        .map(|(k, t)| {
            let x = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (k, x.into_iter().map(f32::to_bits).collect::<Vec<_>>())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn ranks_of_sharded_or_replicated_tables_train_what_workers_train() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    for n in [2, 3] {
        let workers = tmp.path().join(format!("workers{n}"));
        let want = fit(
            &data,
            &config("sharded", n),
            &workers,
            &FitOptions::default(),
        )
        .unwrap();
        for tables in ["sharded", "replicated"] {
            let run = tmp.path().join(format!("{tables}{n}"));
            let got = on_ranks(n, &data, &config(tables, 1), &run);
            assert_eq!(outcome(&got), outcome(&want), "{n} ranks, {tables} tables");
            assert_eq!(best_bits(&run), best_bits(&workers), "{n} ranks, {tables}");
            let d = got.distributed.expect("the cost of the exchanges");
            assert_eq!((d.ranks, d.tables.as_str()), (n, tables));
            assert!(d.bytes_sent_per_step > 0.0 && d.comm_share > 0.0 && d.comm_share < 1.0);
        }
    }
}

#[test]
fn two_ranks_of_two_workers_are_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let a = on_ranks(2, &data, &config("sharded", 2), &tmp.path().join("a"));
    let b = on_ranks(2, &data, &config("sharded", 2), &tmp.path().join("b"));
    assert_eq!(outcome(&a), outcome(&b));
    assert_eq!(
        best_bits(&tmp.path().join("a")),
        best_bits(&tmp.path().join("b"))
    );
}

#[test]
fn a_rank_that_fails_ends_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let cfg = config("sharded", 1);
    let out = tmp.path().join("run");
    let errors: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = ThreadGroup::new(3)
            .into_iter()
            .map(|c| {
                let comm: Arc<dyn Comm> = Arc::new(c);
                let missing = tmp.path().join("missing");
                // Rank 2 is given a data folder that does not exist.
                let data = if comm.rank() == 2 {
                    missing
                } else {
                    data.clone()
                };
                let (cfg, out) = (&cfg, &out);
                s.spawn(move || {
                    fit_distributed(&data, cfg, out, &FitOptions::default(), comm)
                        .unwrap_err()
                        .to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(errors[2].contains("missing"), "{}", errors[2]);
    for e in &errors[..2] {
        assert!(e.contains("rank 2 of 3 left the group"), "{e}");
    }
}
