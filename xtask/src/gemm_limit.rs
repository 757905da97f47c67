//! `cargo xtask bench --gemm-limit`: the glue around `crossdistil_bench::gemm_limit`. It
//! times the benchmark models' matrix products (with `--bench-json`, at that report's batch,
//! and compares its training speeds with them), then writes `gemm.json` and `gemm.md` and
//! prints the latter.

use std::path::PathBuf;

use anyhow::Context;
use crossdistil_bench::gemm_limit::{BenchJson, Timing, gemm_limit, gemm_markdown};

/// Options of `cargo xtask bench --gemm-limit`.
pub struct Args {
    /// The output folder: `gemm.json` and `gemm.md`.
    pub out: PathBuf,
    /// Few, short repetitions: a smoke run.
    pub quick: bool,
    /// A `bench.json` whose training speeds to compare with the GEMM rate.
    pub bench_json: Option<PathBuf>,
}

/// Runs the GEMM limit and writes its report.
pub fn run(a: &Args) -> anyhow::Result<()> {
    let bench = a.bench_json.as_deref().map(BenchJson::read).transpose()?;
    let timing = if a.quick { Timing::QUICK } else { Timing::FULL };
    let report = gemm_limit(timing, bench.as_ref())?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let json = a.out.join("gemm.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let md = gemm_markdown(&report);
    let md_path = a.out.join("gemm.md");
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    print!("{md}");
    println!("written to {} and {}", json.display(), md_path.display());
    Ok(())
}
