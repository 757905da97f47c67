//! The GEMM limit as Markdown.

use super::layers::Product;
use super::report::{Ceiling, GemmReport};
use super::unique;

/// The report as Markdown: how it was measured, the ceilings of one worker on 1 and 2 threads,
/// those of more workers on one thread each, the rate at every product shape and, from a
/// `bench.json`, the measured training against its GEMM rate.
pub fn gemm_markdown(r: &GemmReport) -> String {
    let t = &r.timing;
    let mut out = format!(
        "The matrix products of one training step at batch {}, each timed with the `gemm` crate (f32, contiguous operands, the layers' transpositions, the output written without being read), alone and, for `W` workers, also `W` copies at once: \
         median of {} repetitions of at least {} ms after {} ms of warm-up; {} cores. \
         FLOPs: `6 m i o` per linear layer `W: [o, i]` on `m` rows, its forward `x W^T`, input gradient `dY W` and weight gradient `dY^T x` of `2 m i o` each \
         (every layer's input gradient counts, the first layers' too: the embeddings train); \
         the first layers of MMoE's and PLE's experts run as one product of their stacked weights, as the fused layer op runs them. \
         GEMM ms: the sum of the step's products' times; GFLOP/s: the step's FLOPs over it (the FLOP-weighted rate); rows/s ceiling: the batch over it.\n\n",
        r.batch,
        t.reps,
        t.rep_s * 1e3,
        t.warmup_s * 1e3,
        r.cores
    );
    out.push_str(&one_worker(r));
    out.push_str(&workers(r));
    out.push_str(&products(r));
    out.push_str(&achieved(r));
    out
}

/// "yes" or "no".
fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `| GEMM ms | GFLOP/s | rows/s |` cells of a ceiling (dashes when absent).
fn cells(c: Option<&Ceiling>) -> String {
    c.map_or("- | - | -".into(), |c| {
        format!(
            "{:.3} | {:.2} | {:.0}",
            c.seconds * 1e3,
            c.flops_per_s / 1e9,
            c.rows_per_s
        )
    })
}

/// The table of one worker on 1 and on 2 GEMM threads.
fn one_worker(r: &GemmReport) -> String {
    let mut out = String::from(
        "One worker, its products on 1 thread (`Parallelism::None`) and on 2 (`Parallelism::Rayon(2)`):\n\n\
         | model | CrossDistil | GFLOP/step | GEMM ms, 1 thread | GFLOP/s | rows/s ceiling | GEMM ms, 2 threads | GFLOP/s | rows/s ceiling |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for m in &r.models {
        out.push_str(&format!(
            "| {} | {} | {:.4} | {} | {} |\n",
            m.model.name(),
            yes_no(m.crossdistil),
            m.flops_per_step as f64 / 1e9,
            cells(m.ceiling(1, 1)),
            cells(m.ceiling(1, 2))
        ));
    }
    out
}

/// The table of more than one data-parallel worker, one thread each: the products timed alone,
/// then with every worker's copy at once.
fn workers(r: &GemmReport) -> String {
    let mut out = String::from(
        "\nData-parallel workers run their shards' products on one thread each, so `W` workers are held to `W` times the one-thread rate at the shard's rows, `ceil(batch / W)`: \
         a step takes at least the largest shard's GEMM time. That rate is timed with each product alone, and with `W` copies of it at once, one per thread with operands of its own \
         (a call as long as the slowest copy): the cores share the last-level cache, the memory bus and the power budget. \
         The second is the rate the measured training of `W` workers is compared with.\n\n\
         | model | CrossDistil | workers | shard rows | alone: GEMM ms | GFLOP/s | rows/s ceiling | at once: GEMM ms | GFLOP/s | rows/s ceiling |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for m in &r.models {
        let counts = unique(
            m.ceilings
                .iter()
                .filter(|c| c.workers > 1)
                .map(|c| c.workers),
        );
        for w in counts {
            let alone = m.workers_ceiling(w, false);
            let at_once = m.workers_ceiling(w, true);
            out.push_str(&format!(
                "| {} | {} | {w} | {} | {} | {} |\n",
                m.model.name(),
                yes_no(m.crossdistil),
                alone.or(at_once).map_or(0, |c| c.rows),
                cells(alone),
                cells(at_once)
            ));
        }
    }
    out
}

/// The rate of every product shape, one column per setting.
fn products(r: &GemmReport) -> String {
    let settings = unique(r.products.iter().map(|p| p.setting));
    let shapes = unique(r.products.iter().map(|p| (p.inputs, p.outputs, p.kind)));
    let mut out = format!(
        "\nGFLOP/s of each product (of one copy, where several ran at once); `m x k x n` at the batch ({}):\n\n| layer `i -> o` | product | `m x k x n` |",
        r.batch
    );
    for s in &settings {
        let threads = if s.threads == 1 { "thread" } else { "threads" };
        let copies = match s.copies {
            1 => String::new(),
            c => format!(", {c} at once"),
        };
        out.push_str(&format!(
            " {} {threads}, m = {}{copies} |",
            s.threads, s.rows
        ));
    }
    out.push_str(&format!(
        "\n|---|---|---|{}\n",
        "---|".repeat(settings.len())
    ));
    for &(i, o, kind) in &shapes {
        let p = Product::of(kind, i, o, r.batch);
        out.push_str(&format!(
            "| {i} -> {o} | {} | {} x {} x {} |",
            kind.name(),
            p.m,
            p.k,
            p.n
        ));
        for s in &settings {
            let rate = r
                .products
                .iter()
                .find(|p| p.inputs == i && p.outputs == o && p.kind == kind && p.setting == *s)
                .map_or("-".into(), |p| format!("{:.2}", p.flops_per_s / 1e9));
            out.push_str(&format!(" {rate} |"));
        }
        out.push('\n');
    }
    out
}

/// The measured training of a `bench.json` against its GEMM rate (empty without one).
fn achieved(r: &GemmReport) -> String {
    if r.achieved.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\nMeasured training (`bench.json`, our side, each worker on one thread) against the GEMM rate of its workers: \
         achieved GFLOP/s = FLOPs per step x steps/s; GEMM GFLOP/s = `W` times the one-thread rate at the shard's rows for `W` workers, their products timed at once. \
         The last column is the fraction of the rate with each product timed alone, `W` times its one-thread rate with the other cores idle.\n\n\
         | model | CrossDistil | workers | train rows/s | rows/s ceiling | achieved GFLOP/s | GEMM GFLOP/s | of GEMM rate | of the rate alone |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for a in &r.achieved {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1}% | {:.1}% |\n",
            a.model.name(),
            yes_no(a.crossdistil),
            a.workers,
            a.train_rows_per_s,
            a.ceiling_rows_per_s,
            a.flops_per_s / 1e9,
            a.gemm_flops_per_s / 1e9,
            100.0 * a.fraction,
            100.0 * a.fraction_alone
        ));
    }
    out
}
