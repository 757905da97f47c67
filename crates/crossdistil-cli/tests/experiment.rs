//! `crossdistil experiment` end to end on a small generated data set: a grid of one config and
//! two variants over two seeds, run twice (the second time resumes and trains nothing).

use std::path::Path;
use std::process::Command;

use crossdistil_data::prepare::{PrepareOptions, synthetic};

fn crossdistil(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crossdistil"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

const CONFIG: &str = r#"
[model]
embedding_dim = 4
[model.backbone]
type = "shared-bottom"
hidden = [8]
[model.tower]
hidden = [4]
[train]
epochs = 2
batch_size = 256
"#;

const GRID: &str = r#"
name = "small"
configs = ["small.toml"]
baseline = "off"
[variants.off]
distill.mode = "off"
[variants.crossdistil]
distill.mode = "crossdistil"
"#;

#[test]
fn help_names_the_options() {
    let tmp = tempfile::tempdir().unwrap();
    let out = crossdistil(&["experiment", "--help"], tmp.path());
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--data",
        "--grid",
        "--seeds",
        "--out",
        "--jobs",
        "--dry-run",
        "[variants.",
    ] {
        assert!(text.contains(opt), "{opt} missing from:\n{text}");
    }
}

#[test]
fn grid_runs_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let o = synthetic::SyntheticOptions {
        rows: 2000,
        fields: 3,
        vocab: 100,
        tasks: 2,
        dense: 2,
        ..Default::default()
    };
    let opts = PrepareOptions::new(tmp.path().join("data"), 1);
    synthetic::prepare(&o, &opts, &|_| {}).unwrap();
    std::fs::write(tmp.path().join("small.toml"), CONFIG).unwrap();
    std::fs::write(tmp.path().join("grid.toml"), GRID).unwrap();
    // Relative paths throughout: configs resolve against the current folder.
    let args = [
        "experiment",
        "--data",
        "data",
        "--grid",
        "grid.toml",
        "--seeds",
        "2",
        "--out",
        "exp",
        "--jobs",
        "2",
    ];
    // --dry-run lists the four runs and writes nothing.
    let dry: Vec<&str> = args.iter().copied().chain(["--dry-run"]).collect();
    let out = crossdistil(&dry, tmp.path());
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("| small | crossdistil | 2 | to run |"),
        "{text}"
    );
    assert!(text.contains("4 runs: 4 to run, 0 done"), "{text}");
    assert!(!tmp.path().join("exp").exists(), "a dry run writes nothing");

    let out = crossdistil(&args, tmp.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("### small: mean ± std over 2 seeds"),
        "{text}"
    );
    assert!(text.contains("Paired difference from `off`"), "{text}");
    assert!(text.contains("| small | crossdistil |"), "{text}");
    assert!(text.contains("4 runs trained now"), "{text}");
    let exp = tmp.path().join("exp");
    for v in ["off", "crossdistil"] {
        for s in [1, 2] {
            assert!(
                exp.join(format!("small/{v}/seed-{s}/report.json"))
                    .is_file()
            );
        }
    }
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exp.join("results.json")).unwrap()).unwrap();
    let cells = results.as_array().unwrap();
    assert_eq!(cells.len(), 2);
    let paired = &cells
        .iter()
        .find(|c| c["variant"] == "crossdistil")
        .unwrap()["vs_baseline"]["test"]["task0"]["auc"];
    assert_eq!(paired["n"], 2, "{paired}");
    let md = std::fs::read_to_string(exp.join("results.md")).unwrap();

    // Again: every run is finished, nothing trains, the same tables come out.
    let out = crossdistil(&args, tmp.path());
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("0 runs trained now"), "{text}");
    let text = String::from_utf8(crossdistil(&dry, tmp.path()).stdout).unwrap();
    assert!(text.contains("| small | off | 1 | done |"), "{text}");
    assert!(text.contains("4 runs: 0 to run, 4 done"), "{text}");
    assert_eq!(std::fs::read_to_string(exp.join("results.md")).unwrap(), md);
}

/// A grid's relative config paths resolve against the grid file's folder, wherever the command
/// runs; bad `--seeds` are refused before anything runs.
#[test]
fn config_paths_resolve_against_the_grid_and_seeds_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let grids = tmp.path().join("grids");
    std::fs::create_dir_all(&grids).unwrap();
    std::fs::write(
        grids.join("grid.toml"),
        "name = \"g\"\nconfigs = [\"../absent.toml\"]\n",
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let grid = grids.join("grid.toml");
    let out_dir = tmp.path().join("out");
    let args = |seeds: &'static str| {
        vec![
            "experiment".to_string(),
            "--data".into(),
            tmp.path().join("data").display().to_string(),
            "--grid".into(),
            grid.display().to_string(),
            "--out".into(),
            out_dir.display().to_string(),
            "--seeds".into(),
            seeds.into(),
        ]
    };
    let run = |seeds| {
        let a = args(seeds);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        crossdistil(&a, elsewhere.path())
    };
    let out = run("101-102");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let expected = grids.join("../absent.toml");
    assert!(
        err.contains(&format!("cannot read {}", expected.display())),
        "{err}"
    );
    for (seeds, says) in [
        ("0", "at least one seed"),
        ("3-1", "is empty"),
        ("2,2", "twice"),
    ] {
        let out = run(seeds);
        assert_eq!(out.status.code(), Some(2), "{seeds}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(says), "{seeds}: {err}");
    }
}
