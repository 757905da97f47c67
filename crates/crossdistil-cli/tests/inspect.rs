//! `crossdistil inspect` end to end: tables, JSON, and clean failures.

use std::path::Path;
use std::process::Command;

use crossdistil_data::prepare::{PrepareOptions, adult};

fn crossdistil(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crossdistil"))
        .args(args)
        .output()
        .unwrap()
}

fn prepared_adult(dir: &Path) {
    let raw = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/adult/adult.parquet");
    let opts = PrepareOptions::new(dir, 42);
    adult::prepare(&raw, &opts).unwrap();
}

#[test]
fn inspect_prints_tables_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    prepared_adult(tmp.path());
    let d = tmp.path().to_str().unwrap();
    let out = crossdistil(&["inspect", d]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("income") && text.contains("label combinations") && text.contains("+-"),
        "{text}"
    );

    let out = crossdistil(&["inspect", d, "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["rows"]["train"].as_u64().unwrap()
            + v["rows"]["valid"].as_u64().unwrap()
            + v["rows"]["test"].as_u64().unwrap(),
        48_842
    );
    let combos = v["combinations"].as_array().unwrap();
    assert_eq!(combos.len(), 4);
    assert_eq!(combos[0]["pattern"], "++");
    let total: u64 = combos
        .iter()
        .map(|c| c["rows"]["train"].as_u64().unwrap())
        .sum();
    assert_eq!(total, v["rows"]["train"].as_u64().unwrap());
}

#[test]
fn inspect_a_bad_folder_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = crossdistil(&["inspect", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "a clean error, not a panic");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("dataset.toml") && err.starts_with("error:"),
        "{err}"
    );
}

#[test]
fn inspect_unknown_task_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    prepared_adult(tmp.path());
    let out = crossdistil(&[
        "inspect",
        tmp.path().to_str().unwrap(),
        "--tasks",
        "income,clicks",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("`clicks` is not a task")
    );
}
