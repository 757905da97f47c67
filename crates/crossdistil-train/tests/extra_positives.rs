//! `distill.extra_positives`: extra positives of a rare task after every batch, seen by the
//! ranking loss alone.

mod common;

use std::path::Path;

use crossdistil_data::{Batch, Dataset, GatherBatch, Split};
use crossdistil_train::{
    BatchSource, ExtraPositives, FitOptions, RunConfig, ShuffledRows, TrainError, Trainer,
    build_model, fit, with_extra_rows,
};

fn synthetic_set(dir: &Path, rows: usize) -> Dataset {
    common::synthetic_set(dir, rows);
    Dataset::load(dir).unwrap()
}

const SMALL: &str = r#"
[model]
embedding_dim = 8
dropout = 0.0
[model.backbone]
type = "shared-bottom"
hidden = [16]
[model.tower]
hidden = [8]
[train]
epochs = 2
batch_size = 128
lr = 0.01
patience = 0
seed = 3
[distill]
mode = "crossdistil"
"#;

fn config(extra: &str) -> RunConfig {
    let cfg: RunConfig = toml::from_str(&format!("{SMALL}{extra}")).unwrap();
    cfg.validate().unwrap();
    cfg
}

/// The train rows of `ds` where label column `label` is 1.
fn positives(ds: &Dataset, label: usize) -> Vec<u32> {
    ds.split_rows(Split::Train)
        .iter()
        .copied()
        .filter(|&r| ds.labels[label].values[r as usize] != 0)
        .collect()
}

#[test]
fn the_source_appends_positives_at_weight_zero_the_same_way_each_time() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = synthetic_set(tmp.path(), 1000);
    let train = ds.split_rows(Split::Train).to_vec();
    let source = |counts: &[usize]| {
        let inner = Box::new(ShuffledRows::new(&ds, train.clone(), 100, 7));
        ExtraPositives::new(inner, &ds, &train, &[0, 1], counts, 7)
    };
    let plain = ShuffledRows::new(&ds, train.clone(), 100, 7);
    let with = source(&[5, 0]);
    let epoch = |s: &dyn BatchSource, e: usize| -> Vec<Batch> {
        s.epoch(e).unwrap().map(|b| b.unwrap()).collect()
    };
    let (own, more) = (epoch(&plain, 0), epoch(&with, 0));
    assert_eq!(own.len(), more.len());
    assert_eq!(with.batches_per_epoch(), plain.batches_per_epoch());
    let pool = positives(&ds, 0);
    for (a, b) in own.iter().zip(&more) {
        let n = a.size();
        assert_eq!(b.size(), n + 5);
        // The batch's own rows come first, unchanged but for their weights.
        assert_eq!(b.rows[..n], a.rows[..]);
        assert_eq!(b.labels[..2 * n], a.labels[..]);
        let scale = (n + 5) as f32 / n as f32;
        assert!(b.weights[..n].iter().all(|&w| w == scale));
        assert_eq!(b.weights[n..], [0.0; 5]);
        // The extra rows are positives of task 0 from the train split.
        for (i, r) in b.rows[n..].iter().enumerate() {
            assert!(pool.contains(r), "row {r}");
            assert_eq!(b.labels[2 * (n + i)], 1.0);
        }
    }
    // The same epoch again gives the same batches; the next epoch other draws.
    assert_eq!(epoch(&with, 0), more);
    let tail = |bs: &[Batch]| -> Vec<u32> {
        bs.iter()
            .flat_map(|b| b.rows[b.size() - 5..].to_vec())
            .collect()
    };
    assert_ne!(tail(&epoch(&with, 1)), tail(&more));
    // Counts of 0 leave the batches as they are.
    assert_eq!(epoch(&source(&[0, 0]), 0), own);
}

#[test]
fn extra_rows_reach_the_ranking_loss_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = synthetic_set(tmp.path(), 2000);
    let rows: Vec<u32> = ds.split_rows(Split::Train)[..301].to_vec();
    let batch = Batch::gather(&ds, &rows);
    let extra: Vec<u32> = positives(&ds, 0).into_iter().take(40).collect();
    assert_eq!(extra.len(), 40);
    let augmented = with_extra_rows(batch.clone(), &ds, &extra);
    for beta in [0.0, 1.0] {
        let mut cfg = config("");
        cfg.distill.beta = beta;
        let built = build_model(&cfg, &ds).unwrap();
        let grads = |b: &Batch| {
            Trainer::new(built.model.clone(), &cfg, built.tasks.clone(), ds.tasks())
                .gradients(b)
                .unwrap()
        };
        let (a, b) = (grads(&batch), grads(&augmented));
        // Every row-wise term keeps its value; the ranking loss sees the extra levels.
        for (what, x, y) in [
            ("bce", a.parts.bce, b.parts.bce),
            ("kd", a.parts.kd, b.parts.kd),
            ("cal", a.parts.cal, b.parts.cal),
        ] {
            assert!((x - y).abs() < 1e-5, "beta {beta}, {what}: {x} vs {y}");
        }
        assert!((a.parts.rank - b.parts.rank).abs() > 1e-3, "{:?}", b.parts);
        let mut largest = 0.0f32;
        for (name, var) in built.model.params().vars() {
            // A parameter the loss does not reach has no gradient (0).
            let g = |s: &crossdistil_train::Gradients| -> Option<Vec<f32>> {
                let t = s.dense.get(&var)?;
                Some(t.flatten_all().unwrap().to_vec1().unwrap())
            };
            let (x, y) = match (g(&a), g(&b)) {
                (None, None) => continue,
                (x, y) => {
                    let n = var.elem_count();
                    (x.unwrap_or(vec![0.0; n]), y.unwrap_or(vec![0.0; n]))
                }
            };
            let d = x
                .iter()
                .zip(&y)
                .map(|(p, q)| (p - q).abs() / p.abs().max(q.abs()).max(1e-3))
                .fold(0.0, f32::max);
            if beta == 0.0 {
                assert!(d < 1e-4, "beta 0, {name}: {d}");
            }
            largest = largest.max(d);
        }
        if beta > 0.0 {
            assert!(
                largest > 1e-2,
                "the extra rows moved no gradient: {largest}"
            );
        }
    }
}

#[test]
fn training_with_extra_positives_is_deterministic_and_reports_the_same_metrics_shape() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_set(&tmp.path().join("data"), 1500);
    let cfg = config("extra_positives = [32, 0]\n");
    let run = |name: &str| {
        fit(
            &tmp.path().join("data"),
            &cfg,
            &tmp.path().join(name),
            &FitOptions::default(),
        )
        .unwrap()
    };
    let (a, b) = (run("a"), run("b"));
    assert_eq!(a.test, b.test);
    let plain = fit(
        &tmp.path().join("data"),
        &config(""),
        &tmp.path().join("plain"),
        &FitOptions::default(),
    )
    .unwrap();
    assert_eq!(plain.test.len(), a.test.len());
    assert_ne!(plain.test, a.test);
}

fn config_error(text: &str) -> String {
    match RunConfig::from_toml(text) {
        Err(TrainError::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn extra_positives_are_refused_where_they_cannot_work() {
    let m = config_error("[distill]\nmode = \"direct\"\nextra_positives = [8, 0]\n");
    assert!(
        m.contains("distill.extra_positives") && m.contains("ranking"),
        "{m}"
    );
    let m = config_error(
        "[train]\nstream = true\n[distill]\nmode = \"crossdistil\"\nextra_positives = [8, 0]\n",
    );
    assert!(
        m.contains("distill.extra_positives") && m.contains("stream"),
        "{m}"
    );
    // Zero counts are allowed in any mode.
    RunConfig::from_toml("[distill]\nextra_positives = [0, 0]\n").unwrap();
    // One count per task.
    let tmp = tempfile::tempdir().unwrap();
    let ds = synthetic_set(tmp.path(), 300);
    let Err(e) = build_model(&config("extra_positives = [8]\n"), &ds) else {
        panic!("one count for two tasks was accepted");
    };
    let m = e.to_string();
    assert!(
        m.contains("distill.extra_positives") && m.contains("2 tasks"),
        "{m}"
    );
}
