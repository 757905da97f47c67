//! Uncertainty weighting of the tasks' losses, trained end to end: each task's learned
//! log-variance settles where the objective is stationary, `s_k = ln(2 BCE_k)`.

use crossdistil_data::prepare::{PrepareOptions, synthetic};
use crossdistil_train::{FitOptions, RunConfig, fit, load_weights_only};

#[test]
fn learned_log_variances_reach_the_log_of_twice_each_tasks_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = synthetic::SyntheticOptions {
        rows: 6000,
        fields: 3,
        vocab: 50,
        tasks: 2,
        dense: 2,
        ..Default::default()
    };
    synthetic::prepare(&o, &PrepareOptions::new(&data, 4), &|_| {}).unwrap();
    let cfg: RunConfig = toml::from_str(
        r#"
        [model]
        embedding_dim = 4
        [model.backbone]
        type = "shared-bottom"
        hidden = [16]
        [train]
        epochs = 6
        batch_size = 128
        lr = 0.01
        patience = 0
        task_weighting = "uncertainty"
        "#,
    )
    .unwrap();
    let run = tmp.path().join("run");
    let report = fit(&data, &cfg, &run, &FitOptions::default()).unwrap();
    let m = crossdistil_train::RunDir::new(&run).manifest().unwrap();
    let t = load_weights_only(&run.join(m.best.unwrap().file)).unwrap();
    let s = t["weighting.log_var"].to_vec1::<f32>().unwrap();
    for (k, task) in ["task0", "task1"].iter().enumerate() {
        // The validation log loss stands in for the training BCE the optimum depends on.
        let bce = report.valid[*task].logloss.unwrap();
        let want = (2.0 * bce).ln();
        assert!(
            (f64::from(s[k]) - want).abs() < 0.1,
            "{task}: s = {} against ln(2 x {bce:.3}) = {want:.3}",
            s[k]
        );
    }
}

/// Two tasks with the same labels: `a` and its copy `b`. With `b`'s loss weighted 4 times
/// `a`'s, `b`'s gradient is 4 times `a`'s everywhere, and both train at the same rate.
fn write_twin_tasks(dir: &std::path::Path) {
    use crossdistil_data::{ColumnData, DatasetSpec, Table};
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let n = 6000;
    let (mut u, mut v, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let (a, b) = (rng.random_range(0..40i64), rng.random_range(0..30i64));
        let logit = ((a * 7 % 11) as f64 - 5.0) / 2.5 + ((b * 5 % 7) as f64 - 3.0) / 1.5;
        y.push(u8::from(rng.random::<f64>() < 1.0 / (1.0 + (-logit).exp())));
        u.push(a);
        v.push(b);
    }
    let mut t = Table::new();
    t.push("row_id", ColumnData::RowId((0..n as u64).collect()));
    let split = (0..n)
        .map(|i| ["train", "train", "train", "valid", "test"][i % 5].to_string())
        .collect();
    t.push("split", ColumnData::Str(split));
    t.push("u", ColumnData::Int(u));
    t.push("v", ColumnData::Int(v));
    t.push("a", ColumnData::Label(y.clone()));
    t.push("b", ColumnData::Label(y));
    let spec: DatasetSpec = toml::from_str(
        r#"
        name = "twins"
        [[label]]
        name = "a"
        [[label]]
        name = "b"
        [[sparse]]
        name = "u"
        [[sparse]]
        name = "v"
        "#,
    )
    .unwrap();
    crossdistil_data::write_dataset(dir, spec, &t).unwrap();
}

#[test]
fn gradnorm_balances_a_task_whose_loss_is_weighted_four_times() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_twin_tasks(&data);
    // Two workers add their parts' squared norms and losses: the same balance.
    for workers in [1, 2] {
        gradnorm_run(&data, &tmp.path().join(format!("run{workers}")), workers);
    }
}

fn gradnorm_run(data: &std::path::Path, run: &std::path::Path, workers: usize) {
    let cfg: RunConfig = toml::from_str(&format!(
        r#"
        [model]
        embedding_dim = 4
        dropout = 0.0
        [model.backbone]
        type = "shared-bottom"
        hidden = [16]
        [train]
        epochs = 6
        batch_size = 128
        lr = 0.01
        patience = 0
        task_weights = [1.0, 4.0]
        task_weighting = "gradnorm"
        gradnorm_lr = 0.02
        workers = {workers}
        "#,
    ))
    .unwrap();
    fit(data, &cfg, run, &FitOptions::default()).unwrap();
    let m = crossdistil_train::RunDir::new(run).manifest().unwrap();
    let t = load_weights_only(&run.join(m.last.unwrap().file)).unwrap();
    let w = t["weighting.gradnorm"].to_vec1::<f32>().unwrap();
    let loss0 = t["weighting.gradnorm_loss0"].to_vec1::<f32>().unwrap();
    // The first losses were recorded: b's is 4 times a's (the same BCE, weighted 4 times).
    assert!((loss0[1] / loss0[0] - 4.0).abs() < 0.2, "{loss0:?}");
    // Balanced norms: w_b / w_a near 1/4 (from 1 at the start).
    let ratio = w[1] / w[0];
    assert!(
        (0.18..0.35).contains(&ratio),
        "{workers} workers: w = {w:?}, ratio {ratio}"
    );
    // TensorBoard has the weights after every step, renormalised: the last ones are these.
    let tb = std::fs::read_dir(run.join("tb")).unwrap().next().unwrap();
    let scalars = crossdistil_train::read_scalars(&tb.unwrap().path()).unwrap();
    let last = |tag: &str| scalars.iter().rev().find(|s| s.tag == tag).unwrap().value;
    let sum = w[0] + w[1];
    assert!((last("weighting/a") - 2.0 * w[0] / sum).abs() < 1e-5);
    assert!((last("weighting/b") - 2.0 * w[1] / sum).abs() < 1e-5);
}
