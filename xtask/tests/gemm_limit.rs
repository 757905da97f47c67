//! `cargo xtask bench --gemm-limit --quick` end to end (a few seconds in release), with a
//! `bench.json` to compare: the files written, the FLOPs of Shared-Bottom against a hand count,
//! the ceilings and the comparison consistent with them.

use std::process::Command;

use crossdistil_bench::BenchModel;
use crossdistil_bench::gemm_limit::GemmReport;
use serde_json::{Value, json};

/// A row of `bench.json` (the fields read, and a few others as the report has them).
fn row(
    side: &str,
    model: &str,
    crossdistil: bool,
    workers: usize,
    rate: f64,
    sweep: bool,
) -> Value {
    json!({
        "side": side, "model": model, "crossdistil": crossdistil, "workers": workers,
        "first_table_rows": 10000, "sweep": sweep, "runs": [], "train_rows_per_s": rate,
        "step_ms": 1024e3 / rate, "eval_rows_per_s": 0.0, "peak_rss_mib": 100.0
    })
}

#[test]
fn the_gemm_limit_of_a_quick_run() {
    let out = tempfile::tempdir().unwrap();
    let rows = [
        row("crossdistil", "shared-bottom", false, 1, 20_000.0, false),
        row("crossdistil", "mmoe", true, 3, 15_000.0, false),
        row("pytorch", "mmoe", false, 1, 9_000.0, false),
        row("crossdistil", "shared-bottom", false, 1, 1.0, true),
    ];
    let bench = json!({
        "shape": { "rows": 20000, "batch": 1024 }, "cores": 2, "rows": rows, "parity": []
    });
    let bench_path = out.path().join("bench.json");
    std::fs::write(&bench_path, bench.to_string()).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--gemm-limit", "--quick", "--bench-json"])
        .arg(&bench_path)
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    let json = std::fs::read_to_string(out.path().join("gemm.json")).unwrap();
    let report: GemmReport = serde_json::from_str(&json).unwrap();
    assert_eq!(report.batch, 1024);
    assert_eq!(report.models.len(), 6);

    // Shared-Bottom without CrossDistil by hand: 6 * 1024 * (168 * 256 + 256 * 128 + 2 * (128 *
    // 64 + 64 * 1)), three products of 2 m i o per layer.
    let sb = &report.models[0];
    assert_eq!(
        (sb.model, sb.crossdistil),
        (BenchModel::SharedBottom, false)
    );
    let by_hand = 6 * 1024 * (168 * 256 + 256 * 128 + 2 * (128 * 64 + 64));
    assert_eq!(sb.flops_per_step, by_hand);
    // Its teacher heads add a 128-1 layer per task.
    assert_eq!(
        report.models[1].flops_per_step,
        by_hand + 6 * 1024 * 2 * 128
    );

    // Ceilings: one worker on 1 and 2 threads, then 2 and 3 workers (the report's) on shards,
    // their products timed alone and then all the workers' copies at once.
    for m in &report.models {
        let got: Vec<(usize, usize, usize, bool)> = m
            .ceilings
            .iter()
            .map(|c| (c.workers, c.threads, c.rows, c.at_once))
            .collect();
        assert_eq!(
            got,
            [
                (1, 1, 1024, false),
                (1, 2, 1024, false),
                (2, 1, 512, false),
                (2, 1, 512, true),
                (3, 1, 342, false),
                (3, 1, 342, true)
            ]
        );
        assert!(m.ceiling(3, 1).unwrap().at_once);
        for c in &m.ceilings {
            assert!(c.seconds > 0.0 && c.seconds.is_finite(), "{c:?}");
            assert!((c.rows_per_s * c.seconds / 1024.0 - 1.0).abs() < 1e-9);
            assert!((c.flops_per_s * c.seconds / m.flops_per_step as f64 - 1.0).abs() < 1e-9);
        }
    }

    // Our side's rows outside the sweep, each against its workers' one-thread ceiling.
    let got: Vec<(BenchModel, bool, usize)> = report
        .achieved
        .iter()
        .map(|a| (a.model, a.crossdistil, a.workers))
        .collect();
    assert_eq!(
        got,
        [
            (BenchModel::SharedBottom, false, 1),
            (BenchModel::Mmoe, true, 3)
        ]
    );
    let a = &report.achieved[0];
    assert!((a.flops_per_s - by_hand as f64 * 20_000.0 / 1024.0).abs() < 1e-3);
    let c = sb.ceiling(1, 1).unwrap();
    assert!((a.fraction - 20_000.0 / c.rows_per_s).abs() < 1e-9);
    // Three workers against their products timed three at once.
    let mmoe = &report.models[3];
    let c = mmoe.workers_ceiling(3, true).unwrap();
    let a = &report.achieved[1];
    assert!((a.ceiling_rows_per_s - c.rows_per_s).abs() < 1e-9);
    assert!((a.fraction - 15_000.0 / c.rows_per_s).abs() < 1e-9);
    let alone = mmoe.workers_ceiling(3, false).unwrap();
    assert!((a.fraction_alone - 15_000.0 / alone.rows_per_s).abs() < 1e-9);
    assert_eq!(
        report.achieved[0].fraction_alone,
        report.achieved[0].fraction
    );

    let md = std::fs::read_to_string(out.path().join("gemm.md")).unwrap();
    assert!(md.contains("| shared-bottom | no | 0.5670 |"), "{md}");
    assert!(md.contains("| mmoe | yes | 3 | 342 |"), "{md}");
    assert!(md.contains(" 1 thread, m = 342, 3 at once |"), "{md}");
    assert!(
        md.contains("| 168 -> 256 | weight gradient | 256 x 1024 x 168 |"),
        "{md}"
    );
    // MMoE's and PLE's experts' first layers as the fused op runs them: one stacked product.
    assert!(
        md.contains("| 168 -> 1024 | forward | 1024 x 168 x 1024 |"),
        "{md}"
    );
    assert!(md.contains("| mmoe | yes | 3 | 15000 |"), "{md}");
}
