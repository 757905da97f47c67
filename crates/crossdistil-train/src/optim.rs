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
use candle_core::{Result, Tensor, Var};
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
    pub fn save_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (name, (m, v)) in &self.moments {
            out.insert(format!("adam.m.{name}"), m.clone());
            out.insert(format!("adam.v.{name}"), v.clone());
        }
        out
    }

    /// Restores the moments saved by [`Adam::save_tensors`] and the step count.
    pub fn load_tensors(&mut self, tensors: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        self.moments.clear();
        for (key, m) in tensors {
            if let Some(name) = key.strip_prefix("adam.m.") {
                let v = tensors.get(&format!("adam.v.{name}")).ok_or_else(|| {
                    candle_core::Error::Msg(format!("checkpoint lacks adam.v.{name}"))
                })?;
                self.moments
                    .insert(name.to_string(), (m.clone(), v.clone()));
            }
        }
        self.step = step;
        Ok(())
    }
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

    #[test]
    fn state_round_trip_continues_identically() {
        let run = |split: bool| -> f64 {
            let var = Var::new(&[1.0f64, -2.0], &Device::Cpu).unwrap();
            let mut opt = Adam::new(AdamParams::default());
            for i in 0..6 {
                if split && i == 3 {
                    let saved = opt.save_tensors();
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
