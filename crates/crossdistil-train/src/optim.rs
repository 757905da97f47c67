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
use crossdistil_model::sparse_optim::AdamStep;
use serde::{Deserialize, Serialize};

/// Which dense optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    #[default]
    Adam,
    Adamw,
}

/// Hyper-parameters of the dense optimiser.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamParams {
    pub kind: OptimizerKind,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
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
    pub params: AdamParams,
    pub step: u64,
    moments: BTreeMap<String, (Tensor, Tensor)>,
}

impl Adam {
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
                if !self.moments.contains_key(name) {
                    let zeros = (w.zeros_like()?, w.zeros_like()?);
                    self.moments.insert(name.clone(), zeros);
                }
                let (m, v) = &self.moments[name];
                let g = g.flatten_all()?.to_vec1::<f32>()?;
                // The row update of the embedding tables, here over the whole parameter: L2 in
                // the gradient for Adam; for AdamW the decoupled decay first, then no L2.
                let adamw = p.kind == OptimizerKind::Adamw;
                let cfg = AdamConfig {
                    beta1: p.beta1,
                    beta2: p.beta2,
                    eps: p.eps,
                    weight_decay: if adamw { 0.0 } else { p.weight_decay },
                };
                let adam = AdamStep::new(&cfg, lr, self.step);
                let keep = (1.0 - lr * p.weight_decay) as f32;
                with_f32_mut(m, |m| {
                    with_f32_mut(v, |v| {
                        with_f32_mut(w, |w| {
                            if adamw && p.weight_decay > 0.0 {
                                w.iter_mut().for_each(|w| *w *= keep);
                            }
                            adam.apply(w, m, v, &g);
                        })
                    })
                })???;
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

    /// The moments as named tensors (`adam.m.<name>`, `adam.v.<name>`) for a checkpoint.
    pub fn save_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (name, (m, v)) in &self.moments {
            // Copies: the moments change in place at the next step.
            out.insert(format!("adam.m.{name}"), m.copy()?);
            out.insert(format!("adam.v.{name}"), v.copy()?);
        }
        Ok(out)
    }

    /// Restores the moments saved by [`Adam::save_tensors`] and the step count.
    pub fn load_tensors(&mut self, tensors: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        self.moments.clear();
        for (key, m) in tensors {
            if let Some(name) = key.strip_prefix("adam.m.") {
                let v = tensors.get(&format!("adam.v.{name}")).ok_or_else(|| {
                    candle_core::Error::Msg(format!("checkpoint lacks adam.v.{name}"))
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

/// The L2 norm of all the gradients of `vars` together.
pub fn global_grad_norm(vars: &[&Var], grads: &GradStore) -> Result<f64> {
    let mut sq = 0.0f64;
    for v in vars {
        if let Some(g) = grads.get(v) {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    Ok(sq.sqrt())
}

/// Multiplies the gradient of every variable of `vars` by `scale`.
pub fn scale_grads(vars: &[&Var], grads: &mut GradStore, scale: f64) -> Result<()> {
    for v in vars {
        if let Some(g) = grads.get(v) {
            let scaled = g.affine(scale, 0.0)?;
            grads.insert(v.as_tensor(), scaled);
        }
    }
    Ok(())
}

/// Scales every gradient of `vars` so that their global norm is at most `max_norm`; returns the
/// norm before clipping.
pub fn clip_grad_norm(vars: &[&Var], grads: &mut GradStore, max_norm: f64) -> Result<f64> {
    let norm = global_grad_norm(vars, grads)?;
    if norm > max_norm && norm > 0.0 {
        scale_grads(vars, grads, max_norm / norm)?;
    }
    Ok(norm)
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
        let mut grads = loss.backward().unwrap();
        let norm = clip_grad_norm(&[&a, &b], &mut grads, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        let after = global_grad_norm(&[&a, &b], &grads).unwrap();
        assert!((after - 1.0).abs() < 1e-6, "{after}");
    }
}
