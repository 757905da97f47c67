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
