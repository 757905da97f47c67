//! The GEMM limit (`cargo xtask bench --gemm-limit`): how fast the benchmark models could train
//! if a step were nothing but its matrix products, each as fast as the `gemm` crate runs it
//! alone on this machine.
//!
//! For every benchmark model, without and with CrossDistil, the linear layers come from the
//! built model's parameters ([`bench_layers`]); each layer `W: [o, i]` on `m` rows costs three
//! products of `2 m i o` FLOPs ([`ProductKind`]): the forward `x W^T`, the input gradient
//! `dY W` and the weight gradient `dY^T x` ([`step_flops`]). Every layer's input gradient
//! counts, the first layers' included: the embeddings train, so the gradient reaches the
//! input. Biases, activations, the gates' softmax and mixing, embedding gathers and scatters,
//! the losses and the optimiser are not matrix products and are not counted.
//!
//! The products are those the fused layer op runs: the first layers of MMoE's and PLE's
//! experts, which all read the model's input, as one product of their stacked weights
//! (`[E o, i]`) in each direction, the later layers one product per expert. Every distinct
//! product is timed alone with contiguous operands and the transpositions the op uses
//! ([`Timing`]), on one thread (`Parallelism::None`) and on two (`Parallelism::Rayon(2)`), at
//! the batch's rows; the time of a step is the sum of its products' times, and the
//! FLOP-weighted rate is the step's FLOPs over that time ([`Ceiling`]).
//!
//! Data-parallel workers each run their shard's products on a thread of their own (the
//! benchmark runs with `RAYON_NUM_THREADS=1`), so `W` workers are held to `W` times the
//! one-thread rate at the shard's rows, `m = ceil(batch / W)`: a step takes at least the
//! largest shard's GEMM time. That rate is measured twice: with each product alone, and with
//! `W` copies of it running at once, one per thread with operands of their own, a call taking
//! as long as the slowest copy ([`Setting::copies`]). The cores share the last-level cache,
//! the memory bus and the power budget, so the second is the ceiling that `W` workers can
//! reach, and the one a measured training speed (`bench.json`) is compared with
//! ([`Achieved`]); one worker is compared with the one-thread rate at the batch. The
//! two-thread rate at the batch is what one worker would reach with both threads in its
//! products.

mod layers;
mod markdown;
mod report;
mod timing;

use std::collections::BTreeSet;

pub use layers::{Layer, Product, ProductKind, bench_layers, step_flops};
pub use markdown::gemm_markdown;
pub use report::{
    Achieved, BenchJson, BenchRow, Ceiling, GemmReport, ModelLimit, Setting, TimedProduct,
};
pub use timing::Timing;

use crate::model::BenchModel;
use crate::shape::Shape;
use timing::{copies_seconds, product_seconds};

/// The GEMM limit of every benchmark model at the batch of `bench` (the full shape's without
/// it), timed as `timing` says, with `bench`'s training speeds against it when given.
pub fn gemm_limit(timing: Timing, bench: Option<&BenchJson>) -> anyhow::Result<GemmReport> {
    let batch = bench.map_or(Shape::FULL.batch, |b| b.batch);
    let mut built = Vec::new();
    for model in BenchModel::ALL {
        for crossdistil in [false, true] {
            built.push((model, crossdistil, bench_layers(model, crossdistil)?));
        }
    }
    let shapes = unique(
        built
            .iter()
            .flat_map(|(_, _, layers)| layers.iter().map(|l| (l.inputs, l.outputs))),
    );
    let placements = placements(batch, &worker_counts(bench));
    let settings = unique(placements.iter().map(|p| p.1));
    let mut products = Vec::new();
    for &setting in &settings {
        // A shard's products alone are timed together with their copies at once.
        let paired = settings
            .iter()
            .any(|s| s.copies > 1 && Setting::alone(s.threads, s.rows) == setting);
        if paired {
            continue;
        }
        tracing::info!(
            threads = setting.threads,
            rows = setting.rows,
            copies = setting.copies,
            "timing the products"
        );
        products.extend(time_setting(&shapes, setting, &timing)?);
    }
    let models: Vec<ModelLimit> = built
        .into_iter()
        .map(|(model, crossdistil, layers)| {
            let ceilings = placements
                .iter()
                .map(|&(workers, s)| ceiling(&layers, batch, workers, s, &products))
                .collect();
            ModelLimit {
                model,
                crossdistil,
                flops_per_step: step_flops(&layers, batch),
                layers,
                ceilings,
            }
        })
        .collect();
    let achieved = bench.map_or_else(Vec::new, |b| achieved(b, &models));
    Ok(GemmReport {
        batch,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        timing,
        products,
        models,
        achieved,
    })
}

/// The worker counts to report: 1 and 2, and every count of `bench`'s rows.
fn worker_counts(bench: Option<&BenchJson>) -> BTreeSet<usize> {
    let mut w: BTreeSet<usize> = [1, 2].into();
    w.extend(bench.into_iter().flat_map(|b| b.ours().map(|r| r.workers)));
    w
}

/// The distinct items of `items`, in the order they first come.
pub(crate) fn unique<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for x in items {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// `(workers, setting)` of every ceiling: one worker on 1 and on 2 threads at the batch, then
/// each other count `W` of `workers` on 1 thread at the largest shard, `ceil(batch / W)` rows
/// (the split of `Batch::split`), its products timed alone and `W` at once.
fn placements(batch: usize, workers: &BTreeSet<usize>) -> Vec<(usize, Setting)> {
    let mut p = vec![(1, Setting::alone(1, batch)), (1, Setting::alone(2, batch))];
    for &w in workers.iter().filter(|&&w| w > 1) {
        let alone = Setting::alone(1, batch.div_ceil(w));
        p.push((w, alone));
        p.push((w, Setting { copies: w, ..alone }));
    }
    p
}

/// Every product of every layer shape `(i, o)` of `shapes` timed at `setting`: in a rayon pool
/// of the setting's threads; with `copies > 1`, one thread each, the product alone and its
/// copies at once in alternation ([`copies_seconds`]), both settings' timings returned.
fn time_setting(
    shapes: &[(usize, usize)],
    setting: Setting,
    timing: &Timing,
) -> anyhow::Result<Vec<TimedProduct>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(setting.threads)
        .build()?;
    let alone = Setting::alone(setting.threads, setting.rows);
    Ok(pool.install(|| {
        shapes
            .iter()
            .flat_map(|&(i, o)| ProductKind::ALL.map(|kind| (kind, i, o)))
            .flat_map(|(kind, inputs, outputs)| {
                let p = Product::of(kind, inputs, outputs, setting.rows);
                let timed = |setting, seconds| TimedProduct {
                    kind,
                    inputs,
                    outputs,
                    setting,
                    seconds,
                    flops_per_s: p.flops() as f64 / seconds,
                };
                match setting.copies {
                    1 => vec![timed(setting, product_seconds(&p, setting.threads, timing))],
                    copies => {
                        let (one, all) = copies_seconds(&p, copies, timing);
                        vec![timed(alone, one), timed(setting, all)]
                    }
                }
            })
            .collect()
    }))
}

/// The seconds of one step's products of `layers` at `setting`: the sum of their times.
///
/// # Panics
/// When a product was not timed at `setting` (a bug of the caller).
fn step_seconds(layers: &[Layer], setting: Setting, products: &[TimedProduct]) -> f64 {
    layers
        .iter()
        .flat_map(|l| ProductKind::ALL.map(|kind| (kind, l.inputs, l.outputs)))
        .map(|(kind, i, o)| {
            products
                .iter()
                .find(|p| p.kind == kind && p.inputs == i && p.outputs == o && p.setting == setting)
                .expect("every product timed at every setting")
                .seconds
        })
        .sum()
}

/// The ceiling of `workers` workers at `setting` for a step of `layers` on `batch` rows.
fn ceiling(
    layers: &[Layer],
    batch: usize,
    workers: usize,
    setting: Setting,
    products: &[TimedProduct],
) -> Ceiling {
    let seconds = step_seconds(layers, setting, products);
    Ceiling {
        workers,
        threads: setting.threads,
        at_once: setting.copies > 1,
        rows: setting.rows,
        seconds,
        flops_per_s: step_flops(layers, batch) as f64 / seconds,
        rows_per_s: batch as f64 / seconds,
    }
}

/// `bench`'s rows of our side against the one-thread ceiling of their worker count (the
/// products of several workers timed at once, and alone).
fn achieved(bench: &BenchJson, models: &[ModelLimit]) -> Vec<Achieved> {
    bench
        .ours()
        .filter_map(|r| {
            let m = models
                .iter()
                .find(|m| m.model == r.model && m.crossdistil == r.crossdistil)?;
            let c = m.ceiling(r.workers, 1)?;
            let alone = match r.workers {
                1 => c,
                w => m.workers_ceiling(w, false).unwrap_or(c),
            };
            let flops_per_s = m.flops_per_step as f64 * r.train_rows_per_s / bench.batch as f64;
            Some(Achieved {
                model: r.model,
                crossdistil: r.crossdistil,
                workers: r.workers,
                train_rows_per_s: r.train_rows_per_s,
                flops_per_s,
                gemm_flops_per_s: c.flops_per_s,
                ceiling_rows_per_s: c.rows_per_s,
                fraction: flops_per_s / c.flops_per_s,
                fraction_alone: flops_per_s / alone.flops_per_s,
            })
        })
        .collect()
}
