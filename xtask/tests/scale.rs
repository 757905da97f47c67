//! `cargo xtask bench --scale` end to end at two small sizes (a few seconds in release):
//! every phase measured, the report written, and each size's data removed afterwards.

use std::process::Command;

use crossdistil_bench::ScaleReport;

#[test]
fn the_scale_benchmark_at_two_small_sizes() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "bench",
            "--scale",
            "--sizes",
            "20000,4e4",
            "--hash-buckets",
            "4096",
        ])
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    let json = std::fs::read_to_string(out.path().join("scale.json")).unwrap();
    let report: ScaleReport = serde_json::from_str(&json).unwrap();
    assert_eq!(report.shape.hash_buckets, 4096);
    // The two sizes, then the in-memory comparison where the build streams.
    let sizes: Vec<usize> = report.rows.iter().map(|r| r.rows).collect();
    if report.rows[0].stream {
        assert_eq!(sizes, [20_000, 40_000, 20_000]);
        assert!(!report.rows[2].stream && report.rows[2].prepare.is_none());
    } else {
        assert_eq!(sizes, [20_000, 40_000]);
    }
    for r in &report.rows[..2] {
        let prepare = r.prepare.unwrap();
        assert_eq!(prepare.rows, r.rows);
        assert_eq!(r.train.rows, r.rows * 8 / 10);
        assert_eq!(r.predict.rows, r.rows / 10);
        for p in [prepare, r.train, r.predict] {
            assert!(
                p.seconds > 0.0 && p.rows_per_s > 0.0 && p.peak_rss_bytes > 0,
                "{p:?}"
            );
        }
        assert!(r.disk_bytes > 0 && r.parameters > 0);
    }
    let md = std::fs::read_to_string(out.path().join("scale.md")).unwrap();
    assert!(md.contains("| 40000 |"), "{md}");
    // Without --keep, nothing of the sizes is left but the logs and configurations.
    let left: Vec<String> = std::fs::read_dir(out.path().join("scale"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("data-") || n.starts_with("run-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
