//! `crossdistil train`, `eval` and `predict` end to end on a small generated data set.

use std::path::Path;
use std::process::Command;

use crossdistil_data::prepare::{PrepareOptions, synthetic};
use crossdistil_data::split::SplitFractions;

fn crossdistil(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crossdistil"))
        .args(args)
        .output()
        .unwrap()
}

fn data(dir: &Path) {
    let o = synthetic::SyntheticOptions {
        rows: 2000,
        fields: 3,
        vocab: 100,
        tasks: 2,
        dense: 2,
        ..Default::default()
    };
    let opts = PrepareOptions {
        out: dir.to_path_buf(),
        seed: 1,
        fractions: SplitFractions::default(),
    };
    synthetic::prepare(&o, &opts, &|_| {}).unwrap();
}

const CONFIG: &str = r#"
[model]
embedding_dim = 4
[model.backbone]
type = "ple"
hidden = [8]
[model.tower]
hidden = [4]
[train]
epochs = 2
batch_size = 256
[distill]
mode = "crossdistil"
"#;

#[test]
fn train_eval_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    data(&d);
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let run = tmp.path().join("run");
    let (d, c, r) = (
        d.to_str().unwrap(),
        cfg.to_str().unwrap(),
        run.to_str().unwrap(),
    );

    let out = crossdistil(&["train", "--data", d, "--config", c, "--out", r]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Multi-AUC") && text.contains("teacher") && text.contains("task1"),
        "{text}"
    );

    let out = crossdistil(&[
        "eval", "--run", r, "--data", d, "--split", "valid", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["tasks"]["task0"]["auc"].as_f64().is_some());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        v["tasks"]["task0"]["auc"], report["valid"]["task0"]["auc"],
        "eval reproduces the report"
    );
    assert!(run.join("eval-valid.json").is_file());

    let scores = tmp.path().join("scores.parquet");
    let out = crossdistil(&[
        "predict",
        "--run",
        r,
        "--data",
        d,
        "--out",
        scores.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2000 rows x 2 tasks"));

    // Resume of a finished run changes nothing and succeeds.
    let out = crossdistil(&["train", "--data", d, "--out", r, "--resume", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_config_and_missing_run_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    data(&d);
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "[model.backbone]\ntype = \"transformer\"\n").unwrap();
    let out = crossdistil(&[
        "train",
        "--data",
        d.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        tmp.path().join("r").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("c.toml") && err.contains("transformer"),
        "{err}"
    );

    let out = crossdistil(&[
        "eval",
        "--run",
        tmp.path().join("nothing").to_str().unwrap(),
        "--data",
        d.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.toml"));
}
