//! Adam and AdamW for the dense parameters, with state that checkpoints can save.
//!
//! For a parameter `w` with gradient `g` at step `t` (from 1):
//!
//! ```text
//! adam:  g <- g + wd * w                      (L2 in the gradient)
//! m <- b1 m + (1 - b1) g
//! v <- b2 v + (1 - b2) g^2
//! w <- w - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//! adamw: w <- w - lr * wd * w                 (decoupled decay, before the Adam step)
//! ```

use std::collections::{BTreeMap, HashMap};

use candle_core::backprop::GradStore;
use std::cell::RefCell;

use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Result, Tensor, Var};
use crossdistil_model::AdamConfig;
use crossdistil_model::row_update::{AdamStep, with_rows};

use crate::optimizer::OPTIMIZER_PREFIX;
use crate::parallel::for_each_balanced;
use serde::{Deserialize, Serialize};

/// Which dense optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam: the decay `wd * w` is added to the gradient (L2).
    #[default]
    Adam,
    /// AdamW: the decay `lr * wd * w` is taken off the weights directly (decoupled).
    Adamw,
}

/// Hyper-parameters of the dense optimiser.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamParams {
    /// Adam or AdamW: how `weight_decay` applies.
    pub kind: OptimizerKind,
    /// Decay `b1` of the first moment.
    pub beta1: f64,
    /// Decay `b2` of the second moment.
    pub beta2: f64,
    /// Added to the denominator: `sqrt(v_hat) + eps`.
    pub eps: f64,
    /// Weight decay `wd`; 0 turns it off.
    pub weight_decay: f64,
}

impl Default for AdamParams {
    fn default() -> Self {
        AdamParams {
            kind: OptimizerKind::Adam,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// The first and second moments of every parameter, by name, and the step count.
#[derive(Debug)]
pub struct Adam {
    /// The hyper-parameters.
    pub params: AdamParams,
    /// Steps taken; step `t` (from 1) sets the bias corrections `1 - b^t`.
    pub step: u64,
    moments: BTreeMap<String, (Tensor, Tensor)>,
}

impl Adam {
    /// An optimiser at step 0, with no moments yet.
    pub fn new(params: AdamParams) -> Self {
        Adam {
            params,
            step: 0,
            moments: BTreeMap::new(),
        }
    }

    /// One step over `vars` with the gradients in `grads` (a variable without a gradient is left
    /// alone). `lr` is the learning rate of this step.
    pub fn step(&mut self, vars: &[(String, Var)], grads: &GradStore, lr: f64) -> Result<()> {
        self.step_with(vars, grads, |_| lr)
    }

    /// As [`Adam::step`] with a learning rate per parameter name (parameter groups).
    ///
    /// An f32 parameter (every parameter of the models) is updated in place, with its moments,
    /// in one pass (the tables' row update, `AdamStep`); others through candle ops, one per term
    /// of the formula.
    pub fn step_with(
        &mut self,
        vars: &[(String, Var)],
        grads: &GradStore,
        lr_of: impl Fn(&str) -> f64,
    ) -> Result<()> {
        self.step += 1;
        let p = self.params;
        let t = self.step as i32;
        let (c1, c2) = (1.0 - p.beta1.powi(t), 1.0 - p.beta2.powi(t));
        for (name, var) in vars {
            let Some(g) = grads.get(var) else { continue };
            let lr = lr_of(name);
            let w = var.as_tensor();
            if w.dtype() == DType::F32 && w.is_contiguous() {
                let g = g.flatten_all()?.to_vec1::<f32>()?;
                let mut job = self.job(name, var, g, lr)?;
                job.run(1.0)?;
                continue;
            }
            let g = if p.kind == OptimizerKind::Adam && p.weight_decay > 0.0 {
                g.add(&w.affine(p.weight_decay, 0.0)?)?
            } else {
                g.clone()
            };
            let (m, v) = match self.moments.get(name) {
                Some((m, v)) => (
                    m.affine(p.beta1, 0.0)?
                        .add(&g.affine(1.0 - p.beta1, 0.0)?)?,
                    v.affine(p.beta2, 0.0)?
                        .add(&g.sqr()?.affine(1.0 - p.beta2, 0.0)?)?,
                ),
                None => (
                    g.affine(1.0 - p.beta1, 0.0)?,
                    g.sqr()?.affine(1.0 - p.beta2, 0.0)?,
                ),
            };
            let update = m
                .affine(1.0 / c1, 0.0)?
                .div(&v.affine(1.0 / c2, 0.0)?.sqrt()?.affine(1.0, p.eps)?)?;
            let mut next = w.sub(&update.affine(lr, 0.0)?)?;
            if p.kind == OptimizerKind::Adamw && p.weight_decay > 0.0 {
                next = next.sub(&w.affine(lr * p.weight_decay, 0.0)?)?;
            }
            var.set(&next)?;
            self.moments.insert(name.clone(), (m, v));
        }
        Ok(())
    }

    /// One step over flat f32 gradients: `grads[i]` (row-major, `None` for none) belongs to
    /// `vars[i]`, which learns at rate `lrs[i]`, and is multiplied by `scale` first (gradient clipping). Every parameter must be
    /// a contiguous f32 tensor (those of the models are). The parameters are split by size over
    /// `threads` threads; each is updated in place with its moments, as in
    /// [`Adam::step_with`], with the same result for any `threads`.
    pub fn step_flat(
        &mut self,
        vars: &[(String, Var)],
        grads: Vec<Option<Vec<f32>>>,
        scale: f32,
        lrs: &[f64],
        threads: usize,
    ) -> Result<()> {
        if grads.len() != vars.len() || lrs.len() != vars.len() {
            candle_core::bail!(
                "adam: {} gradients and {} learning rates for {} parameters",
                grads.len(),
                lrs.len(),
                vars.len()
            );
        }
        self.step += 1;
        let mut jobs = Vec::with_capacity(vars.len());
        for (((name, var), g), &lr) in vars.iter().zip(grads).zip(lrs) {
            if let Some(g) = g {
                jobs.push(self.job(name, var, g, lr)?);
            }
        }
        for_each_balanced(&mut jobs, |j| j.g.len(), threads, |j| j.run(scale))
    }

    /// The in-place update of the f32 parameter `var` at this step (`self.step`), with its
    /// moments (created zero at the first step).
    fn job(&mut self, name: &str, var: &Var, g: Vec<f32>, lr: f64) -> Result<F32Update> {
        let w = var.as_tensor();
        if w.dtype() != DType::F32 || !w.is_contiguous() || g.len() != w.elem_count() {
            candle_core::bail!(
                "adam: parameter {name} ({:?}, {} values) needs a contiguous f32 tensor and a \
                 gradient of as many values (got {})",
                w.dtype(),
                w.elem_count(),
                g.len()
            );
        }
        if !self.moments.contains_key(name) {
            let zeros = (w.zeros_like()?, w.zeros_like()?);
            self.moments.insert(name.to_string(), zeros);
        }
        let (m, v) = &self.moments[name];
        let p = self.params;
        // The row update of the embedding tables, here over the whole parameter: L2 in the
        // gradient for Adam; for AdamW the decoupled decay first, then no L2.
        let adamw = p.kind == OptimizerKind::Adamw;
        let cfg = AdamConfig {
            beta1: p.beta1,
            beta2: p.beta2,
            eps: p.eps,
            weight_decay: if adamw { 0.0 } else { p.weight_decay },
        };
        Ok(F32Update {
            w: w.clone(),
            m: m.clone(),
            v: v.clone(),
            g,
            adam: AdamStep::new(&cfg, lr, self.step),
            keep: (adamw && p.weight_decay > 0.0).then_some((1.0 - lr * p.weight_decay) as f32),
        })
    }

    /// The moments as named tensors (`adam.m.<name>`, `adam.v.<name>`) for a checkpoint.
    pub fn save_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (name, (m, v)) in &self.moments {
            // Copies: the moments change in place at the next step.
            out.insert(format!("{OPTIMIZER_PREFIX}m.{name}"), m.copy()?);
            out.insert(format!("{OPTIMIZER_PREFIX}v.{name}"), v.copy()?);
        }
        Ok(out)
    }

    /// Restores the moments saved by [`Adam::save_tensors`] and the step count.
    pub fn load_tensors(&mut self, tensors: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        self.moments.clear();
        for (key, m) in tensors {
            if let Some(name) = key
                .strip_prefix(OPTIMIZER_PREFIX)
                .and_then(|k| k.strip_prefix("m."))
            {
                let v = tensors
                    .get(&format!("{OPTIMIZER_PREFIX}v.{name}"))
                    .ok_or_else(|| {
                        candle_core::Error::Msg(format!(
                            "checkpoint lacks {OPTIMIZER_PREFIX}v.{name}"
                        ))
                    })?;
                // Copies: the moments change in place, the checkpoint's tensors must not.
                self.moments
                    .insert(name.to_string(), (m.copy()?, v.copy()?));
            }
        }
        self.step = step;
        Ok(())
    }
}

/// The update of one f32 parameter in place: its tensor and moments (sharing storage with the
/// model's and the optimiser's), its gradient, and the step's constants.
struct F32Update {
    w: Tensor,
    m: Tensor,
    v: Tensor,
    g: Vec<f32>,
    adam: AdamStep,
    /// `1 - lr wd` for AdamW's decoupled decay, applied before the step.
    keep: Option<f32>,
}

impl F32Update {
    /// Multiplies the gradient by `scale`, then updates `w`, `m` and `v` in place.
    fn run(&mut self, scale: f32) -> Result<()> {
        if scale != 1.0 {
            self.g.iter_mut().for_each(|g| *g *= scale);
        }
        let (g, adam, keep) = (&self.g, &self.adam, self.keep);
        with_f32_mut(&self.m, |m| {
            with_f32_mut(&self.v, |v| {
                with_f32_mut(&self.w, |w| {
                    if let Some(k) = keep {
                        w.iter_mut().for_each(|w| *w *= k);
                    }
                    adam.apply(w, m, v, g);
                })
            })
        })???;
        Ok(())
    }
}

/// The gradient of every parameter of `vars` summed over `stores` (the workers' shares, added
/// in store order), flat and row-major: `out[i]` for `vars[i]`, `None` where no store holds
/// one. Every gradient must be f32. The parameters are split by size over `threads` threads.
pub fn sum_grads(
    vars: &[(String, Var)],
    stores: &[GradStore],
    threads: usize,
) -> Result<Vec<Option<Vec<f32>>>> {
    let mut out: Vec<(&Var, Option<Vec<f32>>)> = vars.iter().map(|(_, v)| (v, None)).collect();
    for_each_balanced(
        &mut out,
        |(v, _)| v.elem_count(),
        threads,
        |(var, sum)| {
            for store in stores {
                let Some(g) = store.get(var) else { continue };
                with_rows(g, "gradient", |g| {
                    match sum {
                        None => *sum = Some(g.to_vec()),
                        Some(acc) if acc.len() == g.len() => {
                            acc.iter_mut().zip(g).for_each(|(a, g)| *a += g)
                        }
                        Some(acc) => candle_core::bail!(
                            "gradients of {} and {} values for one parameter",
                            acc.len(),
                            g.len()
                        ),
                    }
                    Ok(())
                })?;
            }
            Ok::<(), candle_core::Error>(())
        },
    )?;
    Ok(out.into_iter().map(|(_, s)| s).collect())
}

/// The sum of squares of flat gradients, accumulated in f64.
pub fn flat_sq_norm(grads: &[Option<Vec<f32>>]) -> f64 {
    grads
        .iter()
        .flatten()
        .flatten()
        .map(|&g| g as f64 * g as f64)
        .sum()
}

/// An in-place op that hands the contiguous f32 data of a tensor to a closure, once.
struct InPlace<F, R> {
    f: RefCell<Option<F>>,
    out: RefCell<Option<R>>,
}

impl<F: FnOnce(&mut [f32]) -> R, R> InplaceOp1 for InPlace<F, R> {
    fn name(&self) -> &'static str {
        "adam-in-place"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let (CpuStorage::F32(data), Some((a, b))) = (s, l.contiguous_offsets()) else {
            candle_core::bail!("adam: an in-place update needs contiguous f32 data");
        };
        let f = self.f.borrow_mut().take().expect("the op runs once");
        *self.out.borrow_mut() = Some(f(&mut data[a..b]));
        Ok(())
    }
}

/// Runs `f` on the data of `t` (contiguous, f32, on the CPU), which it may change in place.
fn with_f32_mut<R>(t: &Tensor, f: impl FnOnce(&mut [f32]) -> R) -> Result<R> {
    let op = InPlace {
        f: RefCell::new(Some(f)),
        out: RefCell::new(None),
    };
    t.inplace_op1(&op)?;
    op.out
        .into_inner()
        .ok_or_else(|| candle_core::Error::Msg("adam: the in-place op did not run".into()))
}

/// The factor that scales gradients of global L2 norm `sqrt(sq_norm)` to a norm of at most
/// `max_norm`: `max_norm / norm` when the norm is larger, 1 otherwise (and when `max_norm` is 0,
/// clipping off).
pub fn clip_factor(sq_norm: f64, max_norm: f64) -> f64 {
    let norm = sq_norm.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        max_norm / norm
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Adam by hand, in f64, for one scalar parameter.
    fn reference(w0: f64, grads: &[f64], lr: f64, p: AdamParams) -> f64 {
        let (mut w, mut m, mut v) = (w0, 0.0, 0.0);
        for (i, &g0) in grads.iter().enumerate() {
            let t = (i + 1) as i32;
            let g = if p.kind == OptimizerKind::Adam {
                g0 + p.weight_decay * w
            } else {
                g0
            };
            m = p.beta1 * m + (1.0 - p.beta1) * g;
            v = p.beta2 * v + (1.0 - p.beta2) * g * g;
            let upd =
                (m / (1.0 - p.beta1.powi(t))) / ((v / (1.0 - p.beta2.powi(t))).sqrt() + p.eps);
            let decay = if p.kind == OptimizerKind::Adamw {
                lr * p.weight_decay * w
            } else {
                0.0
            };
            w = w - lr * upd - decay;
        }
        w
    }

    #[test]
    fn matches_a_hand_written_adam_and_adamw() {
        for kind in [OptimizerKind::Adam, OptimizerKind::Adamw] {
            let p = AdamParams {
                kind,
                weight_decay: 0.1,
                ..Default::default()
            };
            let var = Var::new(&[0.5f64], &Device::Cpu).unwrap();
            let mut opt = Adam::new(p);
            let mut seen = Vec::new();
            for _ in 0..5 {
                // loss = w^3, gradient 3 w^2
                let w = var.as_tensor().to_vec1::<f64>().unwrap()[0];
                seen.push(3.0 * w * w);
                let loss = var.as_tensor().powf(3.0).unwrap().sum_all().unwrap();
                let grads = loss.backward().unwrap();
                opt.step(&[("w".into(), var.clone())], &grads, 0.01)
                    .unwrap();
            }
            let got = var.as_tensor().to_vec1::<f64>().unwrap()[0];
            let want = reference(0.5, &seen, 0.01, p);
            assert!((got - want).abs() < 1e-12, "{kind:?}: {got} vs {want}");
        }
    }

    /// The in-place f32 path (every model parameter) against the same hand-written Adam.
    #[test]
    fn the_in_place_f32_step_matches_the_hand_written_one() {
        for kind in [OptimizerKind::Adam, OptimizerKind::Adamw] {
            let p = AdamParams {
                kind,
                weight_decay: 0.1,
                ..Default::default()
            };
            let w0 = [0.5f32, -1.5, 2.0];
            let var = Var::new(&w0, &Device::Cpu).unwrap();
            let mut opt = Adam::new(p);
            let mut seen: Vec<Vec<f64>> = Vec::new();
            for _ in 0..5 {
                // loss = sum w^3, gradient 3 w^2
                let w = var.as_tensor().to_vec1::<f32>().unwrap();
                seen.push(w.iter().map(|&w| 3.0 * (w as f64) * (w as f64)).collect());
                let loss = var.as_tensor().powf(3.0).unwrap().sum_all().unwrap();
                let grads = loss.backward().unwrap();
                opt.step(&[("w".into(), var.clone())], &grads, 0.01)
                    .unwrap();
            }
            let got = var.as_tensor().to_vec1::<f32>().unwrap();
            for (i, &w) in w0.iter().enumerate() {
                let g: Vec<f64> = seen.iter().map(|s| s[i]).collect();
                let want = reference(w as f64, &g, 0.01, p);
                assert!(
                    (got[i] as f64 - want).abs() < 1e-6,
                    "{kind:?}[{i}]: {} vs {want}",
                    got[i]
                );
            }
        }
    }

    /// The flat, threaded step equals the step over a gradient store: two workers' gradients
    /// summed by `sum_grads`, scaled, split over 1 to 3 threads, bit for bit the same as their
    /// sum through candle, scaled, stepped by `step_with`; a parameter without a gradient stays.
    #[test]
    fn the_flat_threaded_step_equals_the_store_step() {
        let dev = Device::Cpu;
        for kind in [OptimizerKind::Adam, OptimizerKind::Adamw] {
            let p = AdamParams {
                kind,
                weight_decay: 0.01,
                ..Default::default()
            };
            let make = || -> Vec<(String, Var)> {
                [("a", 7usize), ("b", 300), ("c", 5), ("d", 40)]
                    .iter()
                    .map(|&(n, len)| {
                        let w: Vec<f32> = (0..len)
                            .map(|i| ((i * 13 % 17) as f32 - 8.0) / 9.0)
                            .collect();
                        (n.to_string(), Var::from_vec(w, len, &dev).unwrap())
                    })
                    .collect()
            };
            // Two "workers": losses sum(w^3) and sum(w^2 / 2) over a, b, d (c gets none).
            let stores = |vars: &[(String, Var)]| -> Vec<GradStore> {
                let pick = |f: &dyn Fn(&Tensor) -> Tensor| {
                    let terms: Vec<Tensor> = vars
                        .iter()
                        .filter(|(n, _)| n != "c")
                        .map(|(_, v)| f(v.as_tensor()).sum_all().unwrap())
                        .collect();
                    Tensor::stack(&terms, 0)
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .backward()
                        .unwrap()
                };
                vec![
                    pick(&|w| w.powf(3.0).unwrap()),
                    pick(&|w| w.sqr().unwrap().affine(0.5, 0.0).unwrap()),
                ]
            };
            let lr_of = |n: &str| if n == "b" { 0.02 } else { 0.01 };
            let reference = make();
            let mut opt = Adam::new(p);
            for _ in 0..3 {
                let st = stores(&reference);
                let sums: Vec<(&Var, Tensor)> = reference
                    .iter()
                    .filter_map(|(_, v)| {
                        let gs: Vec<&Tensor> = st.iter().filter_map(|s| s.get(v)).collect();
                        let (first, rest) = gs.split_first()?;
                        let acc = rest.iter().fold((*first).clone(), |a, g| a.add(g).unwrap());
                        Some((v, acc.affine(0.5, 0.0).unwrap()))
                    })
                    .collect();
                // A store to hold the sums (candle has no public constructor).
                let mut sum = stores(&reference).swap_remove(0);
                for (v, g) in sums {
                    sum.insert(v.as_tensor(), g);
                }
                opt.step_with(&reference, &sum, lr_of).unwrap();
            }
            for threads in 1..4 {
                let vars = make();
                let mut opt = Adam::new(p);
                for _ in 0..3 {
                    let g = sum_grads(&vars, &stores(&vars), threads).unwrap();
                    assert!(g[2].is_none());
                    let lrs: Vec<f64> = vars.iter().map(|(n, _)| lr_of(n)).collect();
                    opt.step_flat(&vars, g, 0.5, &lrs, threads).unwrap();
                }
                for ((n, a), (_, b)) in vars.iter().zip(&reference) {
                    let (a, b) = (
                        a.as_tensor().to_vec1::<f32>().unwrap(),
                        b.as_tensor().to_vec1::<f32>().unwrap(),
                    );
                    assert_eq!(a, b, "{kind:?} {n}, {threads} threads");
                }
                assert_eq!(
                    vars[2].1.as_tensor().to_vec1::<f32>().unwrap(),
                    make()[2].1.as_tensor().to_vec1::<f32>().unwrap()
                );
            }
        }
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let run = |split: bool| -> f64 {
            let var = Var::new(&[1.0f64, -2.0], &Device::Cpu).unwrap();
            let mut opt = Adam::new(AdamParams::default());
            for i in 0..6 {
                if split && i == 3 {
                    let saved = opt.save_tensors().unwrap();
                    let step = opt.step;
                    opt = Adam::new(AdamParams::default());
                    opt.load_tensors(&saved, step).unwrap();
                }
                let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
                let grads = loss.backward().unwrap();
                opt.step(&[("w".into(), var.clone())], &grads, 0.1).unwrap();
            }
            var.as_tensor().to_vec1::<f64>().unwrap()[0]
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let a = Var::new(&[3.0f32], &Device::Cpu).unwrap();
        let b = Var::new(&[4.0f32], &Device::Cpu).unwrap();
        // loss = a^2/2 + b^2/2: gradients (3, 4), norm 5.
        let loss = a
            .as_tensor()
            .sqr()
            .unwrap()
            .add(&b.as_tensor().sqr().unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .affine(0.5, 0.0)
            .unwrap();
        let vars = [("a".to_string(), a), ("b".to_string(), b)];
        let mut grads = sum_grads(&vars, &[loss.backward().unwrap()], 1).unwrap();
        let sq = flat_sq_norm(&grads);
        let norm = sq.sqrt();
        assert!((norm - 5.0).abs() < 1e-6);
        let s = clip_factor(sq, 1.0) as f32;
        grads.iter_mut().flatten().flatten().for_each(|g| *g *= s);
        let after = flat_sq_norm(&grads).sqrt();
        assert_eq!(clip_factor(sq, 10.0), 1.0);
        assert_eq!(clip_factor(sq, 0.0), 1.0);
        assert!((after - 1.0).abs() < 1e-6, "{after}");
    }
}
