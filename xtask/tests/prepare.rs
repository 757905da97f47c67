//! `cargo xtask prepare` as a user runs it.

use std::process::Command;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn prepare_bundled_adult_and_synthetic() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("adult");
    let o = xtask(&[
        "prepare",
        "adult",
        "--out",
        out.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("prepared 48842 rows of adult"));
    assert!(out.join("data.parquet").is_file() && out.join("dataset.toml").is_file());

    let out = tmp.path().join("syn");
    let o = xtask(&[
        "prepare",
        "synthetic",
        "--out",
        out.to_str().unwrap(),
        "--rows",
        "1000",
        "--tasks",
        "3",
        "--vocab",
        "50",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let toml = std::fs::read_to_string(out.join("dataset.toml")).unwrap();
    assert!(toml.contains("task2") && toml.contains("p_task2"), "{toml}");
}

#[test]
fn a_source_that_needs_raw_input_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let o = xtask(&[
        "prepare",
        "tiktok-icme2019",
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs --raw"));
}

#[test]
fn bad_split_fractions_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let o = xtask(&[
        "prepare",
        "adult",
        "--out",
        tmp.path().to_str().unwrap(),
        "--valid",
        "0.6",
        "--test",
        "0.5",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("split fractions"));
    assert!(!tmp.path().join("data.parquet").exists());
}
