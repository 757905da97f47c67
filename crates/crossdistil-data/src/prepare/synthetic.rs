//! Generated multi-task data with a known answer.
//!
//! Field `f0` is the user and `f1` the item; fields `f2..` are other categorical features, each
//! value drawn from a Zipf law over `vocab` values; `d0..` are standard normal dense features.
//! A hidden preference
//!
//! ```text
//! s = <a_user, b_item> / sqrt(L) + sum_f w_f[x_f] / sqrt(F - 2) + sum_j c_j d_j
//! ```
//!
//! (latent vectors and effects drawn once from the seed) drives every task:
//! `logit_k = bias_k + s + 0.7 * (u_k[user] + v_k[item])`, with task-specific user and item
//! effects `u_k, v_k`, and `y_k ~ Bernoulli(sigmoid(logit_k))`. The tasks are therefore
//! correlated through `s`, and the true probability of every task is stored in the column
//! `p_<task>` (listed as `extra` in `dataset.toml`): the within-label order is known.
//!
//! Streamed: rows are generated in chunks of 262,144 rows (each from its own seeded stream,
//! a few in parallel), each row's split is drawn as it is written (sequential selection sampling
//! with exact counts), and memory does not grow with the number of rows.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal, Zipf};

use super::generate::{chunk_rng, hashed_normal, in_chunks, scatter};
use super::stream::Sink;
use super::{PrepareOptions, Prepared};
use crate::error::{DataError, Result};
use crate::spec::{DatasetSpec, DenseSpec, LabelSpec, Norm, SparseSpec};
use crate::table::{ColumnData, Table};

/// The shape of a synthetic set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticOptions {
    /// Rows to generate, at least 10.
    pub rows: usize,
    /// Sparse fields, at least 2 (user and item).
    pub fields: usize,
    /// Values per sparse field.
    pub vocab: usize,
    /// Tasks (labels `task0..`), at least 1.
    pub tasks: usize,
    /// Dense features `d0..`.
    pub dense: usize,
    /// Zipf exponent of the categorical values.
    pub zipf: f64,
}

impl Default for SyntheticOptions {
    fn default() -> Self {
        SyntheticOptions {
            rows: 100_000,
            fields: 10,
            vocab: 10_000,
            tasks: 2,
            dense: 8,
            zipf: 1.05,
        }
    }
}

/// Latent dimension of users and items.
const LATENT: usize = 8;

pub(crate) fn task_name(k: usize) -> String {
    format!("task{k}")
}

/// The `dataset.toml` of a set of this shape: sparse `f0..`, dense `d0..`, labels `task0..`, and the true probabilities `p_task0..` as extra columns.
pub fn spec(o: &SyntheticOptions) -> DatasetSpec {
    DatasetSpec {
        name: "synthetic".into(),
        source: "synthetic".into(),
        data: crate::spec::DATA_FILE.into(),
        row_id: "row_id".into(),
        split: "split".into(),
        user: Some("f0".into()),
        labels: (0..o.tasks)
            .map(|k| LabelSpec {
                name: task_name(k),
                description: format!("Bernoulli(p_{}) from a hidden preference", task_name(k)),
            })
            .collect(),
        sparse: (0..o.fields)
            .map(|f| SparseSpec {
                name: format!("f{f}"),
                min_count: 1,
                max_size: None,
                hash_buckets: None,
            })
            .collect(),
        multi: vec![],
        dense: (0..o.dense)
            .map(|j| DenseSpec {
                name: format!("d{j}"),
                norm: Norm::Standard,
            })
            .collect(),
        extra: (0..o.tasks)
            .map(|k| format!("p_{}", task_name(k)))
            .collect(),
        weight: None,
        footer_crc32: None,
        parts: vec![],
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// One chunk of rows (without row ids and splits), from its own ChaCha8 stream: the result does
/// not depend on threads.
fn chunk(o: &SyntheticOptions, seed: u64, index: usize, len: usize) -> Table {
    let mut rng = chunk_rng(seed, index);
    let zipf = Zipf::new(o.vocab as f64, o.zipf).expect("vocab >= 1 and exponent > 0");
    let mut sparse: Vec<Vec<i64>> = vec![Vec::with_capacity(len); o.fields];
    let mut dense: Vec<Vec<f32>> = vec![Vec::with_capacity(len); o.dense];
    let mut labels: Vec<Vec<u8>> = vec![Vec::with_capacity(len); o.tasks];
    let mut probs: Vec<Vec<f32>> = vec![Vec::with_capacity(len); o.tasks];
    let other_scale = 1.0 / ((o.fields.saturating_sub(2)).max(1) as f32).sqrt();
    let mut x = vec![0i64; o.fields];
    for _ in 0..len {
        for (f, xf) in x.iter_mut().enumerate() {
            // Zipf draws 1..=vocab; scramble so that popular ids are not simply the small ones.
            let rank = zipf.sample(&mut rng) as u64 - 1;
            *xf = scatter(rank, f as u64, o.vocab as u64) as i64;
        }
        let (u, v) = (x[0] as u64, x[1] as u64);
        let mut s: f32 = (0..LATENT as u64)
            .map(|l| hashed_normal(seed, 1, u, l) * hashed_normal(seed, 2, v, l))
            .sum::<f32>()
            / (LATENT as f32).sqrt();
        for (f, &xf) in x.iter().enumerate().skip(2) {
            s += 0.8 * other_scale * hashed_normal(seed, 3 + f as u64, xf as u64, 0);
        }
        for (j, col) in dense.iter_mut().enumerate() {
            let d: f32 = rng.sample(StandardNormal);
            s += 0.3 * hashed_normal(seed, 1000, j as u64, 0) * d;
            col.push(d);
        }
        for k in 0..o.tasks {
            let own = hashed_normal(seed, 2000 + k as u64, u, 0)
                + hashed_normal(seed, 3000 + k as u64, v, 0);
            let logit = -0.3 - 0.9 * k as f32 + s + 0.7 * own;
            let p = sigmoid(logit);
            labels[k].push(u8::from(rng.random::<f32>() < p));
            probs[k].push(p);
        }
        for (col, &xf) in sparse.iter_mut().zip(&x) {
            col.push(xf);
        }
    }
    let mut t = Table::new();
    for (f, col) in sparse.into_iter().enumerate() {
        t.push(format!("f{f}"), ColumnData::Int(col));
    }
    for (j, col) in dense.into_iter().enumerate() {
        t.push(format!("d{j}"), ColumnData::Float(col));
    }
    for (k, (y, p)) in labels.into_iter().zip(probs).enumerate() {
        t.push(task_name(k), ColumnData::Label(y));
        t.push(format!("p_{}", task_name(k)), ColumnData::Float(p));
    }
    t
}

/// Generates and writes the set; `progress(rows_done)` is called after each chunk.
pub fn prepare(
    o: &SyntheticOptions,
    opts: &PrepareOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Prepared> {
    if o.rows < 10 || o.fields < 2 || o.vocab < 1 || o.tasks < 1 || o.zipf.is_nan() || o.zipf <= 0.0
    {
        return Err(DataError::config(
            &opts.out,
            format!(
                "synthetic needs rows >= 10, fields >= 2, vocab >= 1, tasks >= 1 and zipf > 0 (got {} rows, {} fields, vocab {}, {} tasks, zipf {})",
                o.rows, o.fields, o.vocab, o.tasks, o.zipf
            ),
        ));
    }
    opts.fractions
        .check()
        .map_err(|m| DataError::config(&opts.out, m))?;
    let mut sink = Sink::create(&opts.out, spec(o), o.rows as u64, opts)?;
    in_chunks(
        o.rows,
        progress,
        |index, len| chunk(o, opts.seed, index, len),
        |t| sink.push(t),
    )?;
    sink.finish()
}
