//! One product timed through the `gemm` crate, as the model's layers call it: alone, or as
//! several copies at once, one per thread, as data-parallel workers run their shards.

use std::sync::{Barrier, Mutex};
use std::time::Instant;

use gemm::Parallelism;
use serde::{Deserialize, Serialize};

use super::layers::Product;
use crate::median::median;

/// How each product is timed: repeated for `warmup_s` seconds first (which also estimates
/// its time), then `reps` timed repetitions of enough calls to last at least `rep_s` seconds
/// each; the product's time is the median over the repetitions of their time per call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Seconds of untimed calls before the repetitions.
    pub warmup_s: f64,
    /// The least seconds of one repetition.
    pub rep_s: f64,
    /// Timed repetitions.
    pub reps: usize,
}

impl Timing {
    /// The measurement: 50 ms of warm-up, 21 repetitions of at least 5 ms.
    pub const FULL: Timing = Timing {
        warmup_s: 0.05,
        rep_s: 0.005,
        reps: 21,
    };

    /// The smoke run (`--quick`): 1 ms of warm-up, 3 repetitions of at least 0.2 ms.
    pub const QUICK: Timing = Timing {
        warmup_s: 0.001,
        rep_s: 0.0002,
        reps: 3,
    };
}

/// Seconds of one call of `p` on `threads` threads (`Parallelism::None` for 1,
/// `Parallelism::Rayon(threads)` otherwise), timed as [`Timing`] says. The operands are
/// contiguous and stay the same across calls; the output is written without being read, as
/// the model's layers write theirs. Call it inside a rayon pool of `threads` threads.
pub(crate) fn product_seconds(p: &Product, threads: usize, timing: &Timing) -> f64 {
    let lhs = values(p.m * p.k);
    let rhs = values(p.k * p.n);
    let mut dst = vec![0.0f32; p.m * p.n];
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    let mut call = || multiply(&mut dst, &lhs, &rhs, p, parallelism);
    let started = Instant::now();
    let mut calls = 0usize;
    while calls == 0 || started.elapsed().as_secs_f64() < timing.warmup_s {
        call();
        calls += 1;
    }
    let per_call = started.elapsed().as_secs_f64() / calls as f64;
    let calls = ((timing.rep_s / per_call).ceil() as usize).max(1);
    let reps: Vec<f64> = (0..timing.reps.max(1))
        .map(|_| {
            let started = Instant::now();
            (0..calls).for_each(|_| call());
            started.elapsed().as_secs_f64() / calls as f64
        })
        .collect();
    median(&reps)
}

/// Seconds of one call of `p` alone on one thread and when `copies` copies of it run at once,
/// each on a thread of its own (`Parallelism::None`) with operands of its own. Timed as
/// [`Timing`] says, the two in alternation so that both meet the machine in the same state:
/// after a warm-up of the copies at once, each repetition times the first copy alone (the
/// others waiting) and then all of them, started together (a barrier), a call lasting as long
/// as its slowest copy. Returns the medians over the repetitions, `(alone, at once)`.
pub(crate) fn copies_seconds(p: &Product, copies: usize, timing: &Timing) -> (f64, f64) {
    let copies = copies.max(1);
    let start = Barrier::new(copies);
    // Each copy's estimate of a call from its warm-up, then each repetition's time per call.
    let estimates = Mutex::new(Vec::with_capacity(copies));
    let reps = timing.reps.max(1);
    let alone = Mutex::new(vec![0.0f64; reps]);
    let at_once = Mutex::new(vec![0.0f64; reps]);
    std::thread::scope(|scope| {
        for copy in 0..copies {
            let (start, estimates, alone, at_once) = (&start, &estimates, &alone, &at_once);
            scope.spawn(move || {
                let lhs = values(p.m * p.k);
                let rhs = values(p.k * p.n);
                let mut dst = vec![0.0f32; p.m * p.n];
                let mut call = || multiply(&mut dst, &lhs, &rhs, p, Parallelism::None);
                let timed = |call: &mut dyn FnMut(), calls: usize| {
                    let started = Instant::now();
                    (0..calls).for_each(|_| call());
                    started.elapsed().as_secs_f64() / calls as f64
                };
                start.wait();
                let started = Instant::now();
                let mut calls = 0usize;
                while calls == 0 || started.elapsed().as_secs_f64() < timing.warmup_s {
                    call();
                    calls += 1;
                }
                lock(estimates).push(started.elapsed().as_secs_f64() / calls as f64);
                start.wait();
                let slowest = lock(estimates).iter().copied().fold(0.0, f64::max);
                let calls = ((timing.rep_s / slowest).ceil() as usize).max(1);
                for r in 0..reps {
                    if copy == 0 {
                        lock(alone)[r] = timed(&mut call, calls);
                    }
                    start.wait();
                    let t = timed(&mut call, calls);
                    let mut at_once = lock(at_once);
                    at_once[r] = at_once[r].max(t);
                    drop(at_once);
                    start.wait();
                }
            });
        }
    });
    let medians = |m: Mutex<Vec<f64>>| median(&m.into_inner().unwrap_or_else(|p| p.into_inner()));
    (medians(alone), medians(at_once))
}

/// The lock's value, a panicked holder notwithstanding (the values are plain numbers).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `len` values in `[-6/7, 6/7]`, none of them subnormal.
fn values(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
        .collect()
}

/// `dst = lhs rhs` for `p`: `dst: [m, n]` row-major, `lhs` stored `[m, k]` (or `[k, m]` when
/// `p.lhs_t`), `rhs` stored `[k, n]` (or `[n, k]` when `p.rhs_t`).
///
/// # Panics
/// When a buffer's length is not its operand's.
fn multiply(dst: &mut [f32], lhs: &[f32], rhs: &[f32], p: &Product, parallelism: Parallelism) {
    let (m, k, n) = (p.m, p.k, p.n);
    assert!(
        dst.len() == m * n && lhs.len() == m * k && rhs.len() == k * n,
        "gemm limit: buffers of {}, {} and {} for [{m}, {k}] x [{k}, {n}]",
        dst.len(),
        lhs.len(),
        rhs.len()
    );
    // (row stride, column stride) of an operand of `cols` columns stored as it is, or
    // transposed (stored `[cols, rows]`) over `rows` rows.
    let strides = |t: bool, rows: usize, cols: usize| if t { (1, rows) } else { (cols, 1) };
    let (lhs_rs, lhs_cs) = strides(p.lhs_t, m, k);
    let (rhs_rs, rhs_cs) = strides(p.rhs_t, k, n);
    // SAFETY: the assert above gives every buffer its operand's length, and the strides keep
    // each index inside it: element `(i, j)` of an `[r, c]` operand is at `i c + j` stored as
    // it is and at `j r + i` transposed, below `r c` for `i < r`, `j < c`; the output `(i, j)`
    // at `i n + j < m n`. `dst` is borrowed mutably, so it overlaps neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm_limit::layers::ProductKind;

    /// The three products of a small layer against a plain triple loop.
    #[test]
    fn products_compute_what_the_layers_do() {
        let (m, i, o) = (5, 3, 4);
        let x = values(m * i);
        let w = values(o * i);
        let dy = values(m * o);
        let at = |a: &[f32], r: usize, c: usize, cols: usize| a[r * cols + c];
        let want = |rows: usize, cols: usize, f: &dyn Fn(usize, usize) -> f32| -> Vec<f32> {
            (0..rows * cols).map(|e| f(e / cols, e % cols)).collect()
        };
        let cases = [
            (
                ProductKind::Forward,
                &x,
                &w,
                want(m, o, &|r, c| {
                    (0..i).map(|l| at(&x, r, l, i) * at(&w, c, l, i)).sum()
                }),
            ),
            (
                ProductKind::InputGradient,
                &dy,
                &w,
                want(m, i, &|r, c| {
                    (0..o).map(|l| at(&dy, r, l, o) * at(&w, l, c, i)).sum()
                }),
            ),
            (
                ProductKind::WeightGradient,
                &dy,
                &x,
                want(o, i, &|r, c| {
                    (0..m).map(|l| at(&dy, l, r, o) * at(&x, l, c, i)).sum()
                }),
            ),
        ];
        for (kind, lhs, rhs, want) in cases {
            let p = Product::of(kind, i, o, m);
            let mut dst = vec![f32::NAN; p.m * p.n];
            multiply(&mut dst, lhs, rhs, &p, Parallelism::None);
            for (g, w) in dst.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{kind:?}: {g} vs {w}"
                );
            }
        }
    }

    /// Copies at once, one or several (more than the cores here too), give every repetition
    /// a positive and finite time per call.
    #[test]
    fn copies_at_once_take_time() {
        let p = Product::of(ProductKind::WeightGradient, 16, 8, 32);
        for copies in [1, 2, 3] {
            let (alone, at_once) = copies_seconds(&p, copies, &Timing::QUICK);
            for s in [alone, at_once] {
                assert!(s > 0.0 && s.is_finite(), "{copies} copies: {s}");
            }
        }
    }

    /// A timing is positive and finite on one thread and on two.
    #[test]
    fn a_product_takes_time() {
        let p = Product::of(ProductKind::Forward, 16, 8, 32);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let s = pool.install(|| product_seconds(&p, threads, &Timing::QUICK));
            assert!(s > 0.0 && s.is_finite(), "{s}");
        }
    }
}
