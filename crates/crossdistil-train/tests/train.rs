//! Training end to end on small generated data with a known signal.

mod common;

use std::path::Path;

use crossdistil_data::{Batch, Dataset, GatherBatch, Split};
use crossdistil_train::{FitOptions, RunConfig, TrainError, fit};

use common::synthetic_set;

/// The JSON of RUN/manifest.json (after its checksum line).
fn read_manifest(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("manifest.json")).unwrap();
    let (first, body) = text.split_once('\n').unwrap();
    assert!(first.starts_with("crc32 "), "{first}");
    serde_json::from_str(body).unwrap()
}

fn config(text: &str) -> RunConfig {
    let cfg: RunConfig = toml::from_str(text).unwrap();
    cfg.validate().unwrap();
    cfg
}

const SMALL: &str = r#"
[model]
embedding_dim = 8
dropout = 0.1
[model.backbone]
type = "mmoe"
experts = 2
hidden = [16]
[model.tower]
hidden = [8]
[train]
epochs = 3
batch_size = 256
lr = 0.01
patience = 0
seed = 3
"#;

#[test]
fn trains_and_reports_every_metric() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_set(&tmp.path().join("data"), 6000);
    let run = tmp.path().join("run");
    let report = fit(
        &tmp.path().join("data"),
        &config(SMALL),
        &run,
        &FitOptions::default(),
    )
    .unwrap();
    assert_eq!(report.tasks, ["task0", "task1"]);
    assert_eq!(report.epochs_run, 3);
    for t in &report.tasks {
        let m = &report.test[t];
        // The synthetic labels follow a hidden preference that the features reveal.
        assert!(m.auc.unwrap() > 0.6, "{t}: {m:?}");
        assert!(
            m.gauc.is_some() && m.multi_auc.is_some() && m.ece.is_some() && m.logloss.is_some()
        );
    }
    let manifest = read_manifest(&run);
    for f in [
        "manifest.json",
        "config.toml",
        "encoders.json",
        manifest["last"]["file"].as_str().unwrap(),
        manifest["best"]["file"].as_str().unwrap(),
        "metrics.csv",
        "report.json",
        ".lock",
    ] {
        assert!(run.join(f).is_file(), "{f}");
    }
    assert_eq!(manifest["state"]["epochs_done"], 3);
    assert_eq!(manifest["metrics"]["rows"], 3);
    assert_eq!(manifest["report"]["file"], "report.json");
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        4,
        "a header and one row per epoch:\n{csv}"
    );
    assert!(csv.starts_with("epoch,step,seconds,train_loss,train_bce,train_kd,train_rank,train_cal,valid_mean_auc,kd_gap_task0,valid_task0_auc"), "{csv}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("report.json")).unwrap()).unwrap();
    for key in [
        "valid",
        "test",
        "config",
        "train_seconds",
        "rows_per_second",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    for key in ["auc", "logloss", "gauc", "multi_auc", "ece"] {
        assert!(json["test"]["task0"].get(key).is_some(), "{key}");
    }
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_set(&tmp.path().join("data"), 3000);
    let cfg = config(SMALL);
    let a = fit(
        &tmp.path().join("data"),
        &cfg,
        &tmp.path().join("a"),
        &FitOptions::default(),
    )
    .unwrap();
    let b = fit(
        &tmp.path().join("data"),
        &cfg,
        &tmp.path().join("b"),
        &FitOptions::default(),
    )
    .unwrap();
    assert_eq!(a.test, b.test);
    assert_eq!(a.valid, b.valid);
    let mut other = cfg.clone();
    other.train.seed = 4;
    let c = fit(
        &tmp.path().join("data"),
        &other,
        &tmp.path().join("c"),
        &FitOptions::default(),
    )
    .unwrap();
    assert_ne!(a.test, c.test);
}

#[test]
fn the_best_checkpoint_reproduces_the_reported_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_set(&tmp.path().join("data"), 3000);
    let run = tmp.path().join("run");
    let report = fit(
        &tmp.path().join("data"),
        &config(SMALL),
        &run,
        &FitOptions::default(),
    )
    .unwrap();
    let opened = crossdistil_train::open_run(&run, &tmp.path().join("data")).unwrap();
    let test = opened.evaluate(Split::Test).unwrap();
    assert_eq!(test.tasks, report.test);
    // Scores file: one column per task, row ids kept, the same probabilities.
    let scores = tmp.path().join("scores.parquet");
    let written = opened
        .write_scores(&scores, Some(Split::Test), false)
        .unwrap();
    let batches = crossdistil_data::read_columns(&scores, &["row_id", "task0", "task1"]).unwrap();
    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!((n, n), (written, report.test["task0"].rows));
}

#[test]
fn resume_continues_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_set(&tmp.path().join("data"), 3000);
    let cfg = config(SMALL);
    let data = tmp.path().join("data");
    let whole = fit(
        &data,
        &cfg,
        &tmp.path().join("whole"),
        &FitOptions::default(),
    )
    .unwrap();
    let run = tmp.path().join("split");
    let stop = FitOptions {
        stop_after_epochs: Some(1),
        ..Default::default()
    };
    assert!(
        fit(&data, &cfg, &run, &stop).is_err(),
        "stops after one epoch"
    );
    assert_eq!(read_manifest(&run)["state"]["epochs_done"], 1);
    let resumed = fit(
        &data,
        &cfg,
        &run,
        &FitOptions {
            resume: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(resumed.test, whole.test);
    assert_eq!(resumed.steps, whole.steps);
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
}

fn config_error(text: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("c.toml");
    std::fs::write(&p, text).unwrap();
    match RunConfig::from_file(&p) {
        Err(TrainError::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn bad_configs_are_refused_naming_the_key() {
    let m = config_error("[train]\nepochs = 3\nlearning_rate = 0.1\n");
    assert!(m.contains("learning_rate"), "{m}");
    let m = config_error("[model.backbone]\ntype = \"transformer\"\n");
    assert!(m.contains("transformer") && m.contains("mmoe"), "{m}");
    let m = config_error("[train]\nbatch_size = 0\n");
    assert!(m.contains("train.batch_size"), "{m}");
    let m = config_error("[model.backbone]\ntype = \"mmoe\"\nexperts = 0\nhidden = [8]\n");
    assert!(m.contains("model.backbone.experts"), "{m}");
    let m = config_error("[model.backbone]\ntype = \"shared-bottom\"\nhidden = [16, 0]\n");
    assert!(m.contains("model.backbone.hidden"), "{m}");
    let m = config_error("[model]\nembedding_dim = 0\n");
    assert!(m.contains("model.embedding_dim"), "{m}");
    let m = config_error("[train]\nlr = -1.0\n");
    assert!(m.contains("train.lr"), "{m}");
}

#[test]
fn a_task_the_data_lacks_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_set(&tmp.path().join("data"), 500);
    let mut cfg = config(SMALL);
    cfg.tasks = vec!["task0".into(), "purchase".into()];
    let err = fit(
        &tmp.path().join("data"),
        &cfg,
        &tmp.path().join("run"),
        &FitOptions::default(),
    )
    .unwrap_err();
    let m = err.to_string();
    assert!(
        m.contains("tasks") && m.contains("`purchase`") && m.contains("task0, task1"),
        "{m}"
    );
}

#[test]
fn every_distillation_variant_trains_and_reports_its_teachers() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_set(&tmp.path().join("data"), 3000);
    let variants = [
        ("off", "mode = \"off\""),
        ("aux-only", "mode = \"aux-only\""),
        ("direct", "mode = \"direct\""),
        (
            "no-calibration",
            "mode = \"crossdistil\"\ncalibration = false",
        ),
        (
            "no-error-correction",
            "mode = \"crossdistil\"\nerror_correction = \"none\"",
        ),
        (
            "crossdistil",
            "mode = \"crossdistil\"\nwarmup_steps = 5\nramp_steps = 10",
        ),
        (
            "refit",
            "mode = \"crossdistil\"\ncalibrator = \"refit-valid\"\nerror_correction = { blend = 0.5 }",
        ),
        (
            "all-pairs",
            "mode = \"crossdistil\"\n[distill.ranking]\npairs = \"all\"\nkind = \"hinge\"\nmax_pairs = 64\n[model.teacher]\nhidden = [8]\ndetach_repr = true",
        ),
    ];
    for (name, section) in variants {
        let cfg = config(&format!("{SMALL}\n[distill]\n{section}\n"));
        let run = tmp.path().join(name);
        let report = fit(&tmp.path().join("data"), &cfg, &run, &FitOptions::default()).unwrap();
        let m = &report.test["task0"];
        let teachers = !matches!(name, "off" | "direct");
        assert_eq!(m.teacher_auc.is_some(), teachers, "{name}");
        assert_eq!(m.calibrated_teacher_ece.is_some(), teachers, "{name}");
        assert!(m.auc.unwrap() > 0.55, "{name}: {m:?}");
        let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let last: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
        let col = |c: &str| {
            last[header.iter().position(|h| *h == c).unwrap()]
                .parse::<f64>()
                .unwrap()
        };
        match name {
            "off" => assert_eq!((col("train_kd"), col("train_rank")), (0.0, 0.0)),
            "aux-only" => assert!(col("train_rank") > 0.0 && col("train_kd") == 0.0, "{name}"),
            "direct" => assert!(col("train_kd") > 0.0 && col("train_rank") == 0.0, "{name}"),
            _ => assert!(col("train_kd") > 0.0 && col("train_rank") > 0.0, "{name}"),
        }
        if name == "crossdistil" {
            assert!(col("train_cal") > 0.0);
            assert!(col("kd_gap_task0") > 0.0);
        }
        if name == "refit" {
            assert_eq!(
                col("train_cal"),
                0.0,
                "a refitted calibrator has no online loss"
            );
        }
    }
}

#[test]
fn a_crossdistil_checkpoint_round_trips_with_its_teachers() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_set(&tmp.path().join("data"), 3000);
    let cfg = config(&format!("{SMALL}\n[distill]\nmode = \"crossdistil\"\n"));
    let run = tmp.path().join("run");
    let report = fit(&tmp.path().join("data"), &cfg, &run, &FitOptions::default()).unwrap();
    let opened = crossdistil_train::open_run(&run, &tmp.path().join("data")).unwrap();
    assert_eq!(opened.evaluate(Split::Test).unwrap().tasks, report.test);
}

/// The largest |a - b| relative to max(|a|, |b|, 1e-3) over two gradients.
fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-3))
        .fold(0.0, f32::max)
}

/// A generated data set of 2000 rows in `dir` and its first `n` training rows as one batch.
fn first_batch(dir: &Path, n: usize) -> (Dataset, Batch) {
    synthetic_set(dir, 2000);
    let ds = Dataset::load(dir).unwrap();
    let rows: Vec<u32> = ds.split_rows(Split::Train)[..n].to_vec();
    let batch = Batch::gather(&ds, &rows);
    (ds, batch)
}

#[test]
fn workers_sum_to_the_gradient_of_the_whole_batch() {
    use crossdistil_train::{Trainer, build_model};

    let tmp = tempfile::tempdir().unwrap();
    let (ds, batch) = first_batch(tmp.path(), 301);
    // Row-wise losses only: the backbone alone, and direct distillation with the calibrators
    // of CrossDistil's teachers left out (the ranking loss pairs rows inside a shard).
    for distill in ["mode = \"off\"", "mode = \"direct\""] {
        let cfg = config(&format!(
            "{}\n[distill]\n{distill}\n",
            SMALL.replace("dropout = 0.1", "dropout = 0.0")
        ));
        let trained = build_model(&cfg, &ds).unwrap();
        let grads = |workers: usize| {
            let mut cfg = cfg.clone();
            cfg.train.workers = workers;
            let model = trained.model.clone();
            Trainer::new(model, &cfg, trained.tasks.clone(), ds.tasks())
                .gradients(&batch)
                .unwrap()
        };
        let one = grads(1);
        for workers in [2, 3, 7] {
            let many = grads(workers);
            assert!(
                (one.parts.total - many.parts.total).abs() < 1e-5,
                "{distill}, {workers} workers: loss {} vs {}",
                one.parts.total,
                many.parts.total
            );
            for (name, var) in trained.model.params().vars() {
                let a = one.dense.get(&var).unwrap().flatten_all().unwrap();
                let b = many.dense.get(&var).unwrap().flatten_all().unwrap();
                let d = max_rel_diff(&a.to_vec1().unwrap(), &b.to_vec1().unwrap());
                assert!(d < 1e-4, "{distill}, {workers} workers, {name}: {d}");
            }
            assert_eq!(one.sparse.fields.len(), many.sparse.fields.len());
            for (f, (a, b)) in one
                .sparse
                .fields
                .iter()
                .zip(&many.sparse.fields)
                .enumerate()
            {
                assert_eq!(a.ids, b.ids, "field {f}");
                let d = max_rel_diff(&a.grad, &b.grad);
                assert!(d < 1e-4, "{distill}, {workers} workers, field {f}: {d}");
            }
        }
    }
}

#[test]
fn training_with_two_workers_learns_and_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_set(&tmp.path().join("data"), 4000);
    let cfg = config(&format!(
        "{SMALL}workers = 2\n[distill]\nmode = \"crossdistil\"\n"
    ));
    let a = fit(
        &tmp.path().join("data"),
        &cfg,
        &tmp.path().join("a"),
        &FitOptions::default(),
    )
    .unwrap();
    let b = fit(
        &tmp.path().join("data"),
        &cfg,
        &tmp.path().join("b"),
        &FitOptions::default(),
    )
    .unwrap();
    for t in &a.tasks {
        assert!(a.test[t].auc.unwrap() > 0.6, "{t}: {:?}", a.test[t]);
        assert_eq!(a.test[t].auc, b.test[t].auc, "{t}");
    }
}

/// Predictions on several threads are the predictions of one thread, in the same row order,
/// teachers and calibrated probabilities included.
#[test]
fn predictions_on_threads_equal_one_thread() {
    use crossdistil_data::Dataset;
    use crossdistil_train::build_model;
    use crossdistil_train::predict_all_on;

    let tmp = tempfile::tempdir().unwrap();
    synthetic_set(tmp.path(), 2000);
    let ds = Dataset::load(tmp.path()).unwrap();
    let rows = ds.split_rows(Split::Train);
    let cfg = config(&format!("{SMALL}\n[distill]\nmode = \"crossdistil\"\n"));
    let trained = build_model(&cfg, &ds).unwrap();
    let one = predict_all_on(&trained.model, &ds, &rows, 97, 1).unwrap();
    for threads in [2, 3] {
        let many = predict_all_on(&trained.model, &ds, &rows, 97, threads).unwrap();
        let pairs = [
            (&one.student, &many.student),
            (
                one.teacher.as_ref().unwrap(),
                many.teacher.as_ref().unwrap(),
            ),
            (
                one.calibrated.as_ref().unwrap(),
                many.calibrated.as_ref().unwrap(),
            ),
        ];
        for (a, b) in pairs {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                assert_eq!(x.len(), rows.len());
                assert!(max_rel_diff(x, y) < 1e-5, "{threads} threads");
            }
        }
    }
}

/// `eval_every = 4` validates every fourth step as well as at the end of each epoch: one row of
/// metrics.csv each, in step order, with the training time never going back.
#[test]
fn validates_every_n_steps_within_an_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_set(&tmp.path().join("data"), 3000);
    let cfg = config(&format!("{SMALL}eval_every = 4\n"));
    let run = tmp.path().join("run");
    let report = fit(&tmp.path().join("data"), &cfg, &run, &FitOptions::default()).unwrap();
    let steps = report.steps as u64;
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let rows: Vec<Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len() as u64, 3 + steps / 4, "{csv}");
    let step_of = |r: &Vec<String>| r[1].parse::<u64>().unwrap();
    let seconds = |r: &Vec<String>| r[2].parse::<f64>().unwrap();
    let per_epoch = steps / 3;
    let mut want: Vec<u64> = (1..=steps / 4).map(|k| 4 * k).collect();
    want.extend((1..=3).map(|e| e * per_epoch));
    want.sort();
    let got: Vec<u64> = rows.iter().map(step_of).collect();
    assert_eq!(got, want, "{csv}");
    for w in rows.windows(2) {
        assert!(seconds(&w[0]) <= seconds(&w[1]), "{csv}");
    }
}

/// Gradient clipping reaches both updates: with a clip norm far below the gradient's, the
/// scaled gradients fall under Adam's `eps` and one step (two workers) moves the dense
/// parameters and the table rows a hundredth as far as without clipping, if at all.
#[test]
fn clipping_scales_the_dense_and_the_table_step() {
    use crossdistil_train::Trainer;
    use crossdistil_train::build_model;

    let tmp = tempfile::tempdir().unwrap();
    let (ds, batch) = first_batch(tmp.path(), 256);
    // The largest move of a dense parameter and of a table, over one step.
    let moves = |clip: &str| -> (f32, f32) {
        let cfg = config(&format!("{SMALL}grad_clip = {clip}\nworkers = 2\n"));
        let trained = build_model(&cfg, &ds).unwrap();
        let before = trained.model.save_tensors().unwrap();
        let mut trainer = Trainer::new(trained.model, &cfg, trained.tasks, ds.tasks());
        trainer.step(&batch).unwrap();
        let after = trainer.model().save_tensors().unwrap();
        let (mut dense, mut table) = (0.0f32, 0.0f32);
        for (name, b) in &before {
            if name.starts_with("input.") && !name.ends_with(".weight") {
                continue;
            }
            let d = (b - &after[name])
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let m = if name.starts_with("input.") {
                &mut table
            } else {
                &mut dense
            };
            *m = m.max(d);
        }
        (dense, table)
    };
    let (dense, table) = moves("0.0");
    let (dense_clipped, table_clipped) = moves("1e-12");
    assert!(dense > 1e-3 && table > 1e-3, "{dense} {table}");
    assert!(dense_clipped < dense / 100.0, "{dense_clipped} vs {dense}");
    assert!(table_clipped < table / 100.0, "{table_clipped} vs {table}");
}
