//! `crossdistil train`, `eval` and `predict` end to end on a small generated data set.

use std::path::Path;
use std::process::Command;

use crossdistil_data::prepare::{PrepareOptions, synthetic};

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
    let opts = PrepareOptions::new(dir, 1);
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
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("holds no run") && err.contains("nothing"),
        "{err}"
    );
}

fn part_files(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            v.extend(part_files(&e.path()));
        } else if e.file_name().to_string_lossy().ends_with(".part") {
            v.push(e.path().display().to_string());
        }
    }
    v
}

/// Issue 10: `predict --out` refuses a directory and an existing file (unless --overwrite),
/// and never leaves a `.part` file behind.
#[test]
fn predict_refuses_a_directory_or_an_existing_file_and_leaves_no_part_file() {
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
    assert!(
        crossdistil(&["train", "--data", d, "--config", c, "--out", r])
            .status
            .success()
    );
    let predict = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "predict",
            "--run",
            r,
            "--data",
            d,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        crossdistil(&args)
    };

    let dir = tmp.path().join("scores");
    std::fs::create_dir(&dir).unwrap();
    for extra in [&[][..], &["--overwrite"][..]] {
        let out = predict(&dir, extra);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is a directory") && err.contains("scores"),
            "{err}"
        );
    }

    let file = dir.join("scores.parquet");
    assert!(predict(&file, &[]).status.success());
    let first = std::fs::read(&file).unwrap();
    let out = predict(&file, &["--split", "test"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already exists") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), first, "left as it was");
    assert!(
        predict(&file, &["--split", "test", "--overwrite"])
            .status
            .success()
    );
    assert_ne!(std::fs::read(&file).unwrap(), first);

    // A folder that does not exist: an error, and nothing written.
    let out = predict(&tmp.path().join("no/such/dir/s.parquet"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(part_files(tmp.path()), Vec::<String>::new());
}
