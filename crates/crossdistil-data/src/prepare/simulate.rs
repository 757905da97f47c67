//! A ground-truth simulator: tasks that are noisy thresholds of latent utilities, with each
//! task's positive rate, the correlation between tasks and the label noise chosen, and the
//! Bayes-optimal probability of every task written beside its label, so that the best
//! attainable AUC is known.
//!
//! # The model
//!
//! `U` users and `I` items. Every latent quantity is a standard normal drawn once from the seed
//! (by key, so no table is stored). An impression is a user `u` and an item
//! `i`: `u` is drawn uniformly (`user_zipf = 0`) or by a Zipf law of exponent `user_zipf` over
//! popularity ranks, `i` by a Zipf law of exponent `item_zipf`, the ranks scattered over the ids.
//! For `j = 0, 1, ..., K` a utility of the same form, with its own latent vectors
//! `a^j_u, b^j_i ∈ R^L` and biases `g^j_u, h^j_i`:
//!
//! ```text
//! v_j(u, i) = ( <a^j_u, b^j_i> / sqrt(L) + w (g^j_u + h^j_i) ) / sqrt(1 + 2 w²)
//! ```
//!
//! (`w = bias`, 0.5 by default: the user and item main effects carry a third of the variance,
//! which a model learns from few rows, the interaction the rest). Over the latent draws each
//! `v_j` has mean 0 and variance 1, and `v_j`, `v_j'` (`j ≠ j'`) are uncorrelated. `v_0` is
//! shared, `v_{k+1}` belongs to task `k`, and with `c = correlation` in `[0, 1]` task `k`'s
//! utility is
//!
//! ```text
//! s_k = sqrt(c) v_0 + sqrt(1 - c) v_{k+1}        so Var s_k = 1, Corr(s_j, s_k) = c  (j ≠ k)
//! ```
//!
//! (`c = 1`: one utility for all tasks; `c = 0`: unrelated tasks). The correlation is exact in
//! expectation over the latent draws; one draw of `U` users and `I` items deviates from it by a
//! few times `1/sqrt(min(U, I))`, more when a Zipf law concentrates the impressions on few ids.
//! [`SimulationSummary::utility_correlation`] reports the realised one.
//!
//! Labels, with `σ = noise > 0`, `ε_k ~ N(0, 1)` independent of everything else:
//!
//! ```text
//! not nested:  y_k = 1[s_k + σ ε_k > t_k]
//! nested:      y_0 = 1[s_0 + σ ε_0 > t_0],  y_k = y_{k-1} · 1[s_k + σ ε_k > t_k]
//! ```
//!
//! Nested, task `k` implies task `k - 1` on every row (like ⇒ click: list the tasks from the
//! widest), which needs strictly decreasing positive rates.
//!
//! The Bayes-optimal probability given what a model sees (the user, the item and the noise
//! fields, of which `s_k` is a deterministic function) is, with `Φ` the standard normal
//! distribution function,
//!
//! ```text
//! not nested:  p_k(u, i) = Φ((s_k − t_k) / σ)
//! nested:      p_k(u, i) = Π_{j ≤ k} Φ((s_j − t_j) / σ)
//! ```
//!
//! written as the column `p_<task>` (an `extra` column, never a feature): its AUC on the test
//! split is the ceiling of every model of these features.
//!
//! # The thresholds
//!
//! `t_k` is chosen so that the marginal positive rate `E[p_k]` over the impression distribution
//! equals `positive_rates[k]`. The distribution of `s_k` is that of a finite draw of users and
//! items under the Zipf laws, so `t_k` is solved on [`THRESHOLD_DRAWS`] = 2^20 impressions
//! drawn from their own seeded stream before any row is made: `(1/M) Σ_m Φ((s_km − t)/σ) = r_k`
//! (nested: each term weighted by `Π_{j<k} Φ((s_jm − t_j)/σ)`), by bisection. The noise enters
//! through `Φ` exactly, so the rate at `t_k` is off by about `sqrt(r_k (1 − r_k) / M)` (one
//! standard deviation: 0.0001 at `r = 0.01`, 0.0005 at `r = 0.5`); a set of `n` rows adds the
//! binomial `sqrt(r_k (1 − r_k) / n)`.
//!
//! # Columns
//!
//! `user`, `item` (sparse, `user` is the data set's user), `f0 .. f{F-1}` (sparse noise fields,
//! each value Zipf(1.05) over `vocab` values, independent of everything: they carry no signal),
//! then per task its label and `p_<task>`, and with `--hint-noise τ` per task the dense feature
//! `hint_<task> = s_k + τ η`: a view of the utility that a teacher can be given as privileged
//! information (`model.teacher.inputs`; a model that reads it as an ordinary feature sees
//! more than the user and the item, and `p_<task>` is no longer its ceiling). [`SUMMARY_FILE`] beside `dataset.toml` holds the
//! realised rates, the label and utility correlations and the Bayes-optimal test AUCs
//! ([`SimulationSummary`]).
//!
//! Streamed like [`super::synthetic`]: chunks of 262,144 rows, each from its own seeded stream, a
//! few in parallel; each row's split drawn as it is written. Memory: a few chunks, the 2^20
//! threshold draws, and the test split's labels and probabilities (5 bytes per task and row).

mod normal;
mod summary;
mod thresholds;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, Zipf};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use self::normal::normal_cdf;
use self::summary::{Moments, Tally};
pub use self::summary::{SUMMARY_FILE, SimulationSummary, TaskSummary};
use super::generate::{chunk_rng, hashed_normal, in_chunks, scatter};
use super::stream::Sink;
use super::{PrepareOptions, Prepared};
use crate::error::{DataError, Result};
use crate::spec::{DatasetSpec, DenseSpec, LabelSpec, Norm, SparseSpec};
use crate::table::{ColumnData, Table};

/// Impressions drawn to solve the thresholds `t_k`.
pub const THRESHOLD_DRAWS: usize = 1 << 20;

/// The most tasks (the Multi-AUC of the summary grades `2^K` classes).
pub const MAX_TASKS: usize = 10;

/// The largest latent dimension.
pub const MAX_LATENT: usize = 1024;

/// Zipf exponent of the noise fields' values.
const FIELD_ZIPF: f64 = 1.05;

/// Key offset of the latent draws (`hashed_normal(seed, LATENT_KEY + 4 j + part, id, l)`).
const LATENT_KEY: u64 = 1 << 32;

/// Salt of the stream of the threshold draws.
const THRESHOLD_SALT: u64 = 0x5EED_7A5C_0DE5_1A7E;
/// Salt of the hints' streams, apart from the rows' own.
const HINT_SALT: u64 = 0x0417_5EED_0000_0001;

/// The options of a simulated set (see the module documentation for the model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulateOptions {
    /// Rows to generate, at least 10.
    pub rows: usize,
    /// Users `U`, at least 1.
    pub users: usize,
    /// Items `I`, at least 1.
    pub items: usize,
    /// Latent dimension `L`, 1 to [`MAX_LATENT`].
    pub latent: usize,
    /// Zipf exponent of the users' popularity; 0: uniform.
    pub user_zipf: f64,
    /// Zipf exponent of the items' popularity; 0: uniform.
    pub item_zipf: f64,
    /// Weight `w >= 0` of the user and item biases in each utility.
    pub bias: f64,
    /// The positive rate `r_k` in `(0, 1)` of each task; their count is the number of tasks
    /// `K` (1 to [`MAX_TASKS`]).
    pub positive_rates: Vec<f64>,
    /// The tasks' names (the label columns), one per rate; empty: `task0`, `task1`, ...
    pub tasks: Vec<String>,
    /// `c` in `[0, 1]`: the correlation of any two tasks' utilities.
    pub correlation: f64,
    /// `σ > 0`: the standard deviation of the label noise (the utilities have variance 1).
    pub noise: f64,
    /// Task `k` implies task `k - 1` (rates strictly decreasing).
    pub nested: bool,
    /// Sparse noise fields `f0..`, independent of the labels.
    pub fields: usize,
    /// Values per noise field, at least 1 when there are fields.
    pub vocab: usize,
    /// `τ > 0`: also write, per task, the dense feature `hint_<task> = s_k + τ η` (η standard
    /// normal, from a stream of its own, so the labels are those of the same set without
    /// hints): a noisy view of the task's utility, the privileged information of a teacher
    /// (`model.teacher.inputs`). `None`: no hints.
    pub hint_noise: Option<f64>,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        SimulateOptions {
            rows: 100_000,
            users: 10_000,
            items: 10_000,
            latent: 8,
            user_zipf: 0.0,
            item_zipf: 1.05,
            bias: 0.5,
            positive_rates: vec![0.3, 0.05],
            tasks: vec![],
            correlation: 0.5,
            noise: 0.5,
            nested: false,
            fields: 0,
            vocab: 1000,
            hint_noise: None,
        }
    }
}

impl SimulateOptions {
    /// The number of tasks `K`.
    pub fn task_count(&self) -> usize {
        self.positive_rates.len()
    }

    /// The label columns: `tasks`, or `task0 .. task{K-1}` when it is empty.
    pub fn task_names(&self) -> Vec<String> {
        if self.tasks.is_empty() {
            (0..self.task_count())
                .map(super::synthetic::task_name)
                .collect()
        } else {
            self.tasks.clone()
        }
    }

    /// Checks every option; the message names the option and the value.
    pub fn check(&self) -> std::result::Result<(), String> {
        let k = self.task_count();
        if self.rows < 10 {
            return Err(format!("--rows must be at least 10 (got {})", self.rows));
        }
        if self.users == 0 || self.items == 0 {
            return Err(format!(
                "--users and --items must be at least 1 (got {} and {})",
                self.users, self.items
            ));
        }
        if !(1..=MAX_LATENT).contains(&self.latent) {
            return Err(format!(
                "--latent must be 1 to {MAX_LATENT} (got {})",
                self.latent
            ));
        }
        for (name, v) in [
            ("--user-zipf", self.user_zipf),
            ("--item-zipf", self.item_zipf),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} must be a finite number >= 0 (got {v})"));
            }
        }
        if !(self.bias.is_finite() && self.bias >= 0.0) {
            return Err(format!(
                "--bias must be a finite number >= 0 (got {})",
                self.bias
            ));
        }
        if !(1..=MAX_TASKS).contains(&k) {
            return Err(format!(
                "--positive-rates must list 1 to {MAX_TASKS} rates, one per task (got {k})"
            ));
        }
        if let Some(r) = self
            .positive_rates
            .iter()
            .find(|r| !(**r > 0.0 && **r < 1.0))
        {
            return Err(format!(
                "every positive rate must lie strictly between 0 and 1 (got {r} in --positive-rates)"
            ));
        }
        if !self.tasks.is_empty() && self.tasks.len() != k {
            return Err(format!(
                "--tasks names {} tasks but --positive-rates gives {k} rates: one rate per task",
                self.tasks.len()
            ));
        }
        if !(0.0..=1.0).contains(&self.correlation) {
            return Err(format!(
                "--correlation must lie in [0, 1] (got {})",
                self.correlation
            ));
        }
        if !(self.noise.is_finite() && self.noise > 0.0) {
            return Err(format!(
                "--noise must be a finite number > 0 (got {})",
                self.noise
            ));
        }
        if self.nested
            && let Some(w) = self.positive_rates.windows(2).find(|w| w[1] >= w[0])
        {
            return Err(format!(
                "--nested needs strictly decreasing positive rates, each task implying the one before (got {} then {})",
                w[0], w[1]
            ));
        }
        if let Some(h) = self.hint_noise
            && !(h.is_finite() && h > 0.0)
        {
            return Err(format!(
                "--hint-noise must be a finite number > 0 (got {h})"
            ));
        }
        if self.fields > 0 && self.vocab == 0 {
            return Err("--vocab must be at least 1 when there are --fields".into());
        }
        let names = self.task_names();
        if let Some(bad) = names
            .iter()
            .find(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(format!(
                "a task name must be letters, digits and `_` (got `{}` in --tasks)",
                crate::error::echo(bad)
            ));
        }
        let mut columns = columns(self);
        columns.sort();
        if let Some(w) = columns.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "the column `{}` would appear twice: rename the task in --tasks",
                w[0]
            ));
        }
        Ok(())
    }
}

/// Every column of a set: row id, split, the sparse fields, labels and probabilities.
fn columns(o: &SimulateOptions) -> Vec<String> {
    let spec = spec(o);
    let mut c = vec![spec.row_id, spec.split];
    c.extend(spec.sparse.into_iter().map(|s| s.name));
    c.extend(spec.labels.into_iter().map(|l| l.name));
    c.extend(spec.dense.into_iter().map(|d| d.name));
    c.extend(spec.extra);
    c
}

/// The `dataset.toml` of a simulated set: sparse `user`, `item`, `f0..`, the labels, and their
/// Bayes probabilities `p_<task>` as extra columns.
pub fn spec(o: &SimulateOptions) -> DatasetSpec {
    let names = o.task_names();
    let sparse = |name: String| SparseSpec {
        name,
        min_count: 1,
        max_size: None,
        hash_buckets: None,
    };
    DatasetSpec {
        name: "simulate".into(),
        source: "simulate".into(),
        data: crate::spec::DATA_FILE.into(),
        row_id: "row_id".into(),
        split: "split".into(),
        user: Some("user".into()),
        labels: names
            .iter()
            .map(|n| LabelSpec {
                name: n.clone(),
                description: format!(
                    "1[s + {} eps > t]{}, Bayes probability in p_{n}",
                    o.noise,
                    if o.nested { " and the task before" } else { "" }
                ),
            })
            .collect(),
        sparse: ["user".to_string(), "item".to_string()]
            .into_iter()
            .chain((0..o.fields).map(|f| format!("f{f}")))
            .map(sparse)
            .collect(),
        multi: vec![],
        dense: match o.hint_noise {
            Some(_) => names
                .iter()
                .map(|n| DenseSpec {
                    name: format!("hint_{n}"),
                    norm: Norm::default(),
                })
                .collect(),
            None => vec![],
        },
        extra: names.iter().map(|n| format!("p_{n}")).collect(),
        weight: None,
        footer_crc32: None,
        parts: vec![],
    }
}

/// Ids drawn by popularity rank: uniformly (exponent 0) or by a Zipf law, the ranks scattered
/// over `0..n` with `salt`.
struct Ids {
    n: u64,
    salt: u64,
    zipf: Option<Zipf<f64>>,
}

impl Ids {
    fn new(n: usize, exponent: f64, salt: u64) -> Self {
        Ids {
            n: n as u64,
            salt,
            zipf: (exponent > 0.0)
                .then(|| Zipf::new(n as f64, exponent).expect("n >= 1 and exponent > 0")),
        }
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> u64 {
        let rank = match &self.zipf {
            Some(z) => z.sample(rng) as u64 - 1,
            None => rng.random_range(0..self.n),
        };
        scatter(rank, self.salt, self.n)
    }
}

/// The simulated world: who is drawn, the utilities, and the thresholds once solved.
struct World<'a> {
    o: &'a SimulateOptions,
    seed: u64,
    users: Ids,
    items: Ids,
    fields: Vec<Ids>,
    thresholds: Vec<f64>,
}

impl<'a> World<'a> {
    fn new(o: &'a SimulateOptions, seed: u64) -> Self {
        World {
            o,
            seed,
            users: Ids::new(o.users, o.user_zipf, 0),
            items: Ids::new(o.items, o.item_zipf, 1),
            fields: (0..o.fields)
                .map(|f| Ids::new(o.vocab, FIELD_ZIPF, 2 + f as u64))
                .collect(),
            thresholds: vec![],
        }
    }

    /// Utility `v_j(u, i)` of the module documentation.
    fn component(&self, j: u64, u: u64, i: u64) -> f64 {
        let key = LATENT_KEY + 4 * j;
        let l = self.o.latent as u64;
        let dot: f64 = (0..l)
            .map(|d| {
                f64::from(hashed_normal(self.seed, key, u, d))
                    * f64::from(hashed_normal(self.seed, key + 1, i, d))
            })
            .sum::<f64>()
            / (l as f64).sqrt();
        let w = self.o.bias;
        if w == 0.0 {
            return dot;
        }
        let bias = f64::from(hashed_normal(self.seed, key + 2, u, 0))
            + f64::from(hashed_normal(self.seed, key + 3, i, 0));
        (dot + w * bias) / (1.0 + 2.0 * w * w).sqrt()
    }

    /// The tasks' utilities `s_k(u, i)` into `s`.
    fn utilities(&self, u: u64, i: u64, s: &mut [f64]) {
        let c = self.o.correlation;
        let shared = if c > 0.0 {
            c.sqrt() * self.component(0, u, i)
        } else {
            0.0
        };
        for (k, s) in s.iter_mut().enumerate() {
            *s = if c < 1.0 {
                shared + (1.0 - c).sqrt() * self.component(k as u64 + 1, u, i)
            } else {
                shared
            };
        }
    }

    /// The Bayes probabilities `p_k` from the utilities `s`, into `p`.
    fn probabilities(&self, s: &[f64], p: &mut [f64]) {
        let mut before = 1.0;
        for ((p, &s), &t) in p.iter_mut().zip(s).zip(&self.thresholds) {
            let own = normal_cdf((s - t) / self.o.noise);
            *p = if self.o.nested { before * own } else { own };
            before = *p;
        }
    }

    /// `s_k` of [`THRESHOLD_DRAWS`] impressions from the thresholds' own stream, `[k][m]`.
    fn threshold_draws(&self) -> Vec<Vec<f64>> {
        const BLOCK: usize = 1 << 14;
        let k = self.o.task_count();
        let blocks: Vec<Vec<f64>> = (0..THRESHOLD_DRAWS / BLOCK)
            .into_par_iter()
            .map(|b| {
                let mut rng = chunk_rng(self.seed ^ THRESHOLD_SALT, b);
                let mut s = vec![0.0; k];
                let mut out = Vec::with_capacity(BLOCK * k);
                for _ in 0..BLOCK {
                    let (u, i) = (self.users.draw(&mut rng), self.items.draw(&mut rng));
                    self.utilities(u, i, &mut s);
                    out.extend_from_slice(&s);
                }
                out
            })
            .collect();
        (0..k)
            .map(|t| {
                blocks
                    .iter()
                    .flat_map(|b| b.iter().skip(t).step_by(k).copied())
                    .collect()
            })
            .collect()
    }

    /// One chunk of rows (without row ids and splits), from its own stream, and the moments of
    /// its utilities.
    fn chunk(&self, index: usize, len: usize) -> (Table, Moments) {
        let mut rng = chunk_rng(self.seed, index);
        let k = self.o.task_count();
        let mut user = Vec::with_capacity(len);
        let mut item = Vec::with_capacity(len);
        let mut fields: Vec<Vec<i64>> = vec![Vec::with_capacity(len); self.fields.len()];
        let mut labels: Vec<Vec<u8>> = vec![Vec::with_capacity(len); k];
        let mut probs: Vec<Vec<f32>> = vec![Vec::with_capacity(len); k];
        let mut hint_rng = chunk_rng(self.seed ^ HINT_SALT, index);
        let mut hints: Vec<Vec<f32>> = match self.o.hint_noise {
            Some(_) => vec![Vec::with_capacity(len); k],
            None => vec![],
        };
        let mut moments = Moments::new(k);
        let (mut s, mut p) = (vec![0.0; k], vec![0.0; k]);
        for _ in 0..len {
            let (u, i) = (self.users.draw(&mut rng), self.items.draw(&mut rng));
            for (col, ids) in fields.iter_mut().zip(&self.fields) {
                col.push(ids.draw(&mut rng) as i64);
            }
            self.utilities(u, i, &mut s);
            self.probabilities(&s, &mut p);
            moments.add(&s);
            let mut before = true;
            for t in 0..k {
                let eps: f64 = rng.sample(StandardNormal);
                let above = s[t] + self.o.noise * eps > self.thresholds[t];
                let y = above && (before || !self.o.nested);
                before = y;
                labels[t].push(u8::from(y));
                probs[t].push(p[t] as f32);
            }
            if let Some(tau) = self.o.hint_noise {
                for (h, &s) in hints.iter_mut().zip(&s) {
                    let eta: f64 = hint_rng.sample(StandardNormal);
                    h.push((s + tau * eta) as f32);
                }
            }
            user.push(u as i64);
            item.push(i as i64);
        }
        let mut table = Table::new();
        table.push("user", ColumnData::Int(user));
        table.push("item", ColumnData::Int(item));
        for (f, col) in fields.into_iter().enumerate() {
            table.push(format!("f{f}"), ColumnData::Int(col));
        }
        for (name, (y, p)) in self
            .o
            .task_names()
            .into_iter()
            .zip(labels.into_iter().zip(probs))
        {
            table.push(format!("p_{name}"), ColumnData::Float(p));
            table.push(name, ColumnData::Label(y));
        }
        for (name, h) in self.o.task_names().into_iter().zip(hints) {
            table.push(format!("hint_{name}"), ColumnData::Float(h));
        }
        (table, moments)
    }
}

/// Generates and writes the set, then `simulation.json` beside it; `progress(rows_done)` is
/// called after each chunk. Returns what was written and the summary (also logged).
pub fn prepare(
    o: &SimulateOptions,
    opts: &PrepareOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(Prepared, SimulationSummary)> {
    o.check().map_err(|m| DataError::config(&opts.out, m))?;
    opts.fractions
        .check()
        .map_err(|m| DataError::config(&opts.out, m))?;
    let mut world = World::new(o, opts.seed);
    world.thresholds = thresholds::solve(
        &world.threshold_draws(),
        &o.positive_rates,
        o.noise,
        o.nested,
    );
    tracing::info!(thresholds = ?world.thresholds, "solved the thresholds");
    // A summary of an earlier set in this folder must not outlive it.
    let summary_path = opts.out.join(SUMMARY_FILE);
    if summary_path.exists() {
        std::fs::remove_file(&summary_path)
            .map_err(|e| DataError::io(&summary_path, "cannot remove", e))?;
    }
    let mut sink = Sink::create(&opts.out, spec(o), o.rows as u64, opts)?;
    let mut tally = Tally::new(o.task_count());
    let names = o.task_names();
    in_chunks(
        o.rows,
        progress,
        |index, len| world.chunk(index, len),
        |(table, moments)| {
            let y: Vec<Vec<u8>> = names
                .iter()
                .map(|n| match table.get(n) {
                    Some(ColumnData::Label(y)) => y.clone(),
                    _ => unreachable!("the chunk has its labels"),
                })
                .collect();
            let p: Vec<Vec<f32>> = names
                .iter()
                .map(|n| match table.get(&format!("p_{n}")) {
                    Some(ColumnData::Float(p)) => p.clone(),
                    _ => unreachable!("the chunk has its probabilities"),
                })
                .collect();
            let splits = sink.push_split(table)?;
            let y: Vec<&[u8]> = y.iter().map(Vec::as_slice).collect();
            let p: Vec<&[f32]> = p.iter().map(Vec::as_slice).collect();
            tally.add(&moments, &y, &p, &splits);
            Ok(())
        },
    )?;
    let prepared = sink.finish()?;
    let summary = tally.finish(o, opts.seed, &world.thresholds, THRESHOLD_DRAWS);
    let json = serde_json::to_string_pretty(&summary)
        .map_err(|e| DataError::file(&summary_path, e.to_string()))?;
    crate::atomic::write_atomic(&summary_path, json.as_bytes())?;
    tracing::debug!("{}", summary.to_text());
    Ok((prepared, summary))
}
