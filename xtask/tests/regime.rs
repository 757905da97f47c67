//! `cargo xtask regime-map` on a map of one small cell: the data set, the experiment of both
//! backbones with and without CrossDistil, and the summaries; a second call resumes.

use std::process::Command;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_map_of_one_cell_and_its_resumption() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("map");
    let args = [
        "regime-map",
        "--out",
        out.to_str().unwrap(),
        "--rates",
        "0.1",
        "--correlations",
        "0.5",
        "--train-rows",
        "1500",
        "--seeds",
        "2",
        "--users",
        "100",
        "--items",
        "100",
    ];
    let dry = xtask(&[&args[..], &["--dry-run"]].concat());
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let listed = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.starts_with("n1500-c0.5-r0.1:"), "{listed}");
    assert!(!out.exists(), "a dry run writes nothing");

    let o = xtask(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = out.join("data/n1500-c0.5-r0.1/simulation.json");
    assert!(summary.is_file());
    let entries: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("regime-map.json")).unwrap())
            .unwrap();
    let entries = entries.as_array().unwrap();
    // Two backbones x two tasks, each with its paired differences over the two seeds.
    assert_eq!(entries.len(), 4, "{entries:?}");
    for e in entries {
        assert_eq!(e["auc"]["n"], 2, "{e}");
        assert!(e["bayes_auc"].as_f64().unwrap() > 0.5, "{e}");
        assert!(e["teacher_auc"].as_f64().is_some(), "{e}");
    }
    let md = std::fs::read_to_string(out.join("regime-map.md")).unwrap();
    assert!(
        md.contains("## mmoe, 1500 training rows: like test AUC"),
        "{md}"
    );
    assert!(
        md.contains("## shared-bottom, 1500 training rows: like test Multi-AUC"),
        "{md}"
    );

    // Again: nothing is trained anew.
    let report = out.join("runs/n1500-c0.5-r0.1/simulate-mmoe/crossdistil/seed-1/report.json");
    let before = std::fs::metadata(&report).unwrap().modified().unwrap();
    let again = xtask(&args);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        std::fs::metadata(&report).unwrap().modified().unwrap(),
        before
    );
}
