//! `cargo xtask bench --mpi --quick` end to end (tiny data and tables): a row per
//! configuration with positive rows/s and, on two ranks, traffic and a communication share.
//! Passes with a note where `mpirun` is not installed.

use std::process::Command;

use crossdistil_bench::{MpiLayout, MpiReport};

#[test]
fn the_mpi_benchmark_quick() {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("mpirun").is_file()));
    if !on_path {
        println!("SKIPPED: mpirun not found");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--mpi", "--quick"])
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    let json = std::fs::read_to_string(out.path().join("mpi.json")).unwrap();
    let report: MpiReport = serde_json::from_str(&json).unwrap();
    let configs: Vec<(usize, MpiLayout)> =
        report.rows.iter().map(|r| (r.ranks, r.layout)).collect();
    assert_eq!(
        configs,
        [
            (1, MpiLayout::Single),
            (2, MpiLayout::Sharded),
            (2, MpiLayout::Replicated)
        ]
    );
    assert_eq!(report.runs.len(), 3);
    for r in &report.rows {
        assert!(r.rows_per_s > 0.0 && r.step_seconds > 0.0, "{r:?}");
        assert!(r.peak_rss_bytes > 0 && r.wall_seconds > 0.0, "{r:?}");
        assert_eq!(r.workers, 1, "{r:?}");
        if r.ranks == 2 {
            assert!(r.bytes_sent_per_step > 0.0, "{r:?}");
            assert!(r.comm_share > 0.0 && r.comm_share < 1.0, "{r:?}");
        }
    }
    assert_eq!(report.rows[0].ratio_to_one_rank, Some(1.0));
    let md = std::fs::read_to_string(out.path().join("mpi.md")).unwrap();
    assert!(md.contains("| 2 | 1 | sharded |"), "{md}");
    assert!(md.contains("cargo xtask bench --mpi --quick"), "{md}");
    // The binary measured is kept; the data and run folders are not.
    assert!(out.path().join("mpi/bin/crossdistil").is_file());
    let left: Vec<String> = std::fs::read_dir(out.path().join("mpi"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("data-") || n.starts_with("run-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
