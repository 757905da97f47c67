//! A run's TensorBoard events (`RUN/tb/`), read back: every step's loss, and every validation's
//! row of metrics.csv as scalars.

use crossdistil_data::prepare::{PrepareOptions, synthetic};
use crossdistil_train::{FitOptions, RunConfig, fit, read_scalars};

#[test]
fn a_run_writes_its_losses_and_metrics_for_tensorboard() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = synthetic::SyntheticOptions {
        rows: 600,
        fields: 2,
        vocab: 20,
        tasks: 2,
        dense: 1,
        ..Default::default()
    };
    synthetic::prepare(&o, &PrepareOptions::new(&data, 3), &|_| {}).unwrap();
    let cfg: RunConfig = toml::from_str(
        r#"
        [model]
        embedding_dim = 4
        [model.backbone]
        type = "shared-bottom"
        hidden = [8]
        [train]
        epochs = 2
        batch_size = 64
        eval_every = 5
        [distill]
        mode = "crossdistil"
        "#,
    )
    .unwrap();
    let run = tmp.path().join("run");
    let report = fit(&data, &cfg, &run, &FitOptions::default()).unwrap();
    let files: Vec<_> = std::fs::read_dir(run.join("tb"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(
        files[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("events.out.tfevents.")
    );
    let scalars = read_scalars(&files[0]).unwrap();
    // One loss per step, in order.
    let steps: Vec<i64> = scalars
        .iter()
        .filter(|s| s.tag == "train/step_loss")
        .map(|s| s.step)
        .collect();
    assert_eq!(steps, (1..=report.steps as i64).collect::<Vec<_>>());
    // Every validation row of metrics.csv, at its step, to its six printed digits.
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut rows = 0;
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let step: i64 = cells[1].parse().unwrap();
        for (name, cell) in header.iter().zip(&cells).skip(3) {
            let Ok(want) = cell.parse::<f64>() else {
                continue;
            };
            let tag = name.replacen('_', "/", 1);
            let got = scalars
                .iter()
                .find(|s| s.step == step && s.tag == tag)
                .unwrap_or_else(|| panic!("no {tag} at step {step}"));
            assert!(
                (got.value as f64 - want).abs() < 1e-5,
                "{tag}: {} against {want}",
                got.value
            );
        }
        rows += 1;
    }
    assert!(rows >= 3, "{rows} validations");
    assert!(scalars.iter().any(|s| s.tag == "valid/task0_auc"));
}
