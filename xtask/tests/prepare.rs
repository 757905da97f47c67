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

/// `prepare simulate` prints the ceiling and writes `simulation.json`; `crossdistil train`
/// (through `cargo xtask experiment`, which builds the CLI) trains on what it wrote.
#[test]
fn prepare_simulate_then_train() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sim");
    let o = xtask(&[
        "prepare",
        "simulate",
        "--out",
        data.to_str().unwrap(),
        "--rows",
        "4000",
        "--users",
        "200",
        "--items",
        "300",
        "--positive-rates",
        "0.3,0.1",
        "--tasks",
        "click,like",
        "--nested",
        "--correlation",
        "0.8",
        "--noise",
        "0.4",
        "--fields",
        "1",
        "--rows-per-file",
        "1500",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("prepared 4000 rows of simulate") && stdout.contains("Bayes-optimal"),
        "{stdout}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("simulation.json")).unwrap())
            .unwrap();
    assert_eq!(summary["tasks"][1]["name"], "like");
    let auc = summary["tasks"][1]["bayes_auc"].as_f64().unwrap();
    assert!(auc > 0.5 && auc <= 1.0, "{summary}");
    assert!(stdout.contains(&format!("{auc:.4}")), "{stdout}");
    assert_eq!(summary["options"]["nested"], true);

    let config = tmp.path().join("mmoe.toml");
    std::fs::write(
        &config,
        "[model]\nembedding_dim = 4\n[model.backbone]\ntype = \"mmoe\"\nexperts = 2\nhidden = [8]\n\
         [model.tower]\nhidden = [4]\n[train]\nepochs = 1\nbatch_size = 256\n",
    )
    .unwrap();
    let grid = tmp.path().join("grid.toml");
    std::fs::write(
        &grid,
        "name = \"sim\"\nconfigs = [\"mmoe.toml\"]\nbaseline = \"off\"\n[variants.off]\n\
         distill.mode = \"off\"\n[variants.crossdistil]\ndistill.mode = \"crossdistil\"\n",
    )
    .unwrap();
    let out = tmp.path().join("exp");
    let o = xtask(&[
        "experiment",
        "--data",
        data.to_str().unwrap(),
        "--grid",
        grid.to_str().unwrap(),
        "--seeds",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("crossdistil") && md.contains("like"), "{md}");
}

#[test]
fn bad_simulate_options_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, want) in [
        (
            &["--positive-rates", "0.3,1.5"][..],
            "strictly between 0 and 1",
        ),
        (&["--noise", "-1"][..], "--noise"),
        (&["--correlation", "1.2"][..], "--correlation"),
        (&["--tasks", "a,b,c"][..], "one rate per task"),
        (
            &["--nested", "--positive-rates", "0.1,0.2"][..],
            "strictly decreasing",
        ),
    ] {
        let mut all = vec!["prepare", "simulate", "--out", tmp.path().to_str().unwrap()];
        all.extend(args);
        let o = xtask(&all);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let o = xtask(&[
        "prepare",
        "synthetic",
        "--out",
        tmp.path().to_str().unwrap(),
        "--noise",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("of `prepare simulate` only"));
    assert!(!tmp.path().join("dataset.toml").exists());
}
