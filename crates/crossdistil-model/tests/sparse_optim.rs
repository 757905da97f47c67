//! Row-wise optimisers of the embedding tables against dense references written here.

mod common;

use std::collections::{BTreeMap, HashMap};

use candle_core::{Device, Tensor};
use common::to_vec;
use crossdistil_data::{Batch, MultiBatch};
use crossdistil_model::{AdagradConfig, AdamConfig, FeatureInput, InputSchema, SparseOptimConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 3;

fn input() -> FeatureInput {
    let schema = InputSchema {
        sparse: vec![("a".into(), 10)],
        multi: vec![("m".into(), 8)],
        n_dense: 0,
        dense_names: vec![],
    };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    FeatureInput::new(&schema, DIM, &BTreeMap::new(), 0.1, &mut rng).unwrap()
}

fn batch(a: &[u32], m: &[&[u32]]) -> Batch {
    let mut multi = MultiBatch {
        offsets: vec![0],
        ids: vec![],
    };
    for l in m {
        multi.ids.extend_from_slice(l);
        multi.offsets.push(multi.ids.len() as u32);
    }
    Batch {
        rows: (0..a.len() as u32).collect(),
        sparse: a.to_vec(),
        multi: vec![multi],
        dense: vec![],
        labels: vec![],

        weights: Vec::new(),
    }
}

/// The gradients per id a loss `sum(x * w)` gives, computed by hand: `[vocab, DIM]` per table.
fn expected_grads(b: &Batch, w: &[f32], vocab: [usize; 2]) -> [Vec<f64>; 2] {
    let width = 2 * DIM;
    let mut ga = vec![0.0; vocab[0] * DIM];
    let mut gm = vec![0.0; vocab[1] * DIM];
    for r in 0..b.size() {
        let id = b.sparse[r] as usize;
        for j in 0..DIM {
            ga[id * DIM + j] += w[r * width + j] as f64;
        }
        let o = &b.multi[0].offsets;
        let ids = &b.multi[0].ids[o[r] as usize..o[r + 1] as usize];
        for &id in ids {
            for j in 0..DIM {
                gm[id as usize * DIM + j] += w[r * width + DIM + j] as f64 / ids.len() as f64;
            }
        }
    }
    [ga, gm]
}

/// Backward of `sum(x * w)` and the sparse update.
fn step(input: &mut FeatureInput, b: &Batch, w: &[f32], opt: &SparseOptimConfig, lr: f64, t: u64) {
    let g = input.gather(b, &Device::Cpu).unwrap();
    let wt = Tensor::from_slice(w, g.x.shape(), &Device::Cpu).unwrap();
    let grads = (&g.x * wt).unwrap().sum_all().unwrap().backward().unwrap();
    input.apply_grads(&grads, &g, opt, lr, t).unwrap();
}

fn tensors(input: &FeatureInput) -> HashMap<String, Vec<f64>> {
    input
        .save_tensors()
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, to_vec(&t).into_iter().map(f64::from).collect()))
        .collect()
}

/// Dense Adam on the rows whose gradient is touched (`touched[id]`), by hand.
struct Reference {
    w: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Reference {
    fn step(&mut self, g: &[f64], touched: &[bool], c: &AdamConfig, lr: f64, t: i32) {
        for (i, &g) in g.iter().enumerate() {
            if !touched[i / DIM] {
                continue;
            }
            self.m[i] = c.beta1 * self.m[i] + (1.0 - c.beta1) * g;
            self.v[i] = c.beta2 * self.v[i] + (1.0 - c.beta2) * g * g;
            let mhat = self.m[i] / (1.0 - c.beta1.powi(t));
            let vhat = self.v[i] / (1.0 - c.beta2.powi(t));
            self.w[i] -= lr * mhat / (vhat.sqrt() + c.eps);
        }
    }
}

fn touched(ids: impl IntoIterator<Item = u32>, vocab: usize) -> Vec<bool> {
    let mut t = vec![false; vocab];
    ids.into_iter().for_each(|id| t[id as usize] = true);
    t
}

fn assert_close(name: &str, got: &[f64], want: &[f64], tol: f64) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{name}[{i}]: {g} vs {w}");
    }
}

#[test]
fn lazy_adam_matches_dense_adam_on_touched_rows() {
    let cfg = AdamConfig::default();
    let opt = SparseOptimConfig::Adam(cfg.clone());
    let lr = 0.01;
    let mut inp = input();
    let init = tensors(&inp);
    let keys = ["input.sparse.a", "input.multi.m"];
    let vocab = [10, 8];
    let mut refs: Vec<Reference> = keys
        .iter()
        .map(|k| {
            let w = init[&format!("{k}.weight")].clone();
            let n = w.len();
            Reference {
                w,
                m: vec![0.0; n],
                v: vec![0.0; n],
            }
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    // Id 1 appears twice in "a" and id 2 twice within one row of "m": accumulated once each.
    let b1 = batch(&[1, 3, 1, 0], &[&[2, 2, 5], &[], &[5], &[7]]);
    let b2 = batch(&[3, 6, 6], &[&[0], &[5, 6], &[]]);
    let mut history: Vec<HashMap<String, Vec<f64>>> = vec![init];
    for (t, b) in [(1u64, &b1), (2, &b2)] {
        let w: Vec<f32> = (0..b.size() * 2 * DIM)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        step(&mut inp, b, &w, &opt, lr, t);
        let grads = expected_grads(b, &w, vocab);
        let used = [
            touched(b.sparse.iter().copied(), vocab[0]),
            touched(b.multi[0].ids.iter().copied(), vocab[1]),
        ];
        let got = tensors(&inp);
        let before = history.last().unwrap();
        for f in 0..2 {
            refs[f].step(&grads[f], &used[f], &cfg, lr, t as i32);
            let k = keys[f];
            assert_close(
                &format!("{k}.weight"),
                &got[&format!("{k}.weight")],
                &refs[f].w,
                1e-6,
            );
            assert_close(
                &format!("{k}.adam_m"),
                &got[&format!("{k}.adam_m")],
                &refs[f].m,
                1e-6,
            );
            assert_close(
                &format!("{k}.adam_v"),
                &got[&format!("{k}.adam_v")],
                &refs[f].v,
                1e-6,
            );
            // Untouched rows and their moments are bit-identical to before the step.
            for (suffix, zero_before) in [("weight", false), ("adam_m", true), ("adam_v", true)] {
                let name = format!("{k}.{suffix}");
                let now = &got[&name];
                for id in (0..vocab[f]).filter(|&id| !used[f][id]) {
                    for j in id * DIM..(id + 1) * DIM {
                        let prev = match before.get(&name) {
                            Some(p) => p[j],
                            None if zero_before => 0.0,
                            None => unreachable!(),
                        };
                        assert_eq!(now[j], prev, "{name} row {id} changed at step {t}");
                    }
                }
            }
        }
        history.push(got);
    }
    // A row touched at step 1 only (id 1 of "a") kept its step-1 moments.
    assert_eq!(
        history[2]["input.sparse.a.adam_m"][3..6],
        history[1]["input.sparse.a.adam_m"][3..6]
    );
    assert!(
        history[1]["input.sparse.a.adam_m"][3..6]
            .iter()
            .all(|&m| m != 0.0)
    );
}

#[test]
fn adagrad_accumulates_duplicates_once() {
    let cfg = AdagradConfig {
        eps: 1e-10,
        initial_accumulator: 0.1,
        weight_decay: 0.01,
    };
    let opt = SparseOptimConfig::Adagrad(cfg.clone());
    let lr = 0.05;
    let mut inp = input();
    let init = tensors(&inp);
    let b = batch(&[4, 4, 4, 2], &[&[1], &[1, 1], &[], &[3, 1]]);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let w: Vec<f32> = (0..b.size() * 2 * DIM)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    step(&mut inp, &b, &w, &opt, lr, 1);
    let grads = expected_grads(&b, &w, [10, 8]);
    let got = tensors(&inp);
    for (f, (k, vocab, ids)) in [
        ("input.sparse.a", 10, &b.sparse),
        ("input.multi.m", 8, &b.multi[0].ids),
    ]
    .into_iter()
    .enumerate()
    {
        let used = touched(ids.iter().copied(), vocab);
        let w0 = &init[&format!("{k}.weight")];
        let mut want = w0.clone();
        let mut sum = vec![0.1; w0.len()];
        for i in 0..w0.len() {
            if used[i / DIM] {
                let g = grads[f][i] + 0.01 * w0[i];
                sum[i] += g * g;
                want[i] -= lr * g / (sum[i].sqrt() + 1e-10);
            } else {
                sum[i] = 0.1;
            }
        }
        assert_close(k, &got[&format!("{k}.weight")], &want, 1e-6);
        assert_close(k, &got[&format!("{k}.adagrad_sum")], &sum, 1e-6);
    }
}

#[test]
fn step_zero_and_changed_optimiser_are_refused() {
    let mut inp = input();
    let b = batch(&[1], &[&[2]]);
    let w = vec![1.0f32; 2 * DIM];
    let g = inp.gather(&b, &Device::Cpu).unwrap();
    let wt = Tensor::from_slice(&w, g.x.shape(), &Device::Cpu).unwrap();
    let grads = (&g.x * wt).unwrap().sum_all().unwrap().backward().unwrap();
    let adam = SparseOptimConfig::default();
    assert!(inp.apply_grads(&grads, &g, &adam, 0.1, 0).is_err());
    inp.apply_grads(&grads, &g, &adam, 0.1, 1).unwrap();
    let adagrad = SparseOptimConfig::Adagrad(AdagradConfig::default());
    let e = inp
        .apply_grads(&grads, &g, &adagrad, 0.1, 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("input.sparse.a holds adam state"), "{e}");
}

/// Updating the tables on several threads gives the same tables as on one.
#[test]
fn table_updates_on_threads_equal_one_thread() {
    let opt = SparseOptimConfig::Adam(AdamConfig::default());
    let b = batch(&[1, 3, 1, 0], &[&[2, 2, 5], &[], &[5], &[7]]);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let w: Vec<f32> = (0..b.size() * 2 * DIM)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let run = |threads: usize| {
        let mut inp = input();
        for t in 1..=3u64 {
            let g = inp.gather(&b, &Device::Cpu).unwrap();
            let wt = Tensor::from_slice(&w, g.x.shape(), &Device::Cpu).unwrap();
            let grads = (&g.x * wt).unwrap().sum_all().unwrap().backward().unwrap();
            let sparse = inp.sparse_grads(&grads, &g).unwrap();
            inp.update_on(&sparse, &opt, 0.01, t, threads).unwrap();
        }
        tensors(&inp)
    };
    let one = run(1);
    for threads in [2, 3] {
        assert_eq!(run(threads), one, "{threads} threads");
    }
}
