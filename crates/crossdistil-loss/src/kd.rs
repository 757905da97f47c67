//! The distillation (KD) loss of a detached soft target, and the warm-up schedule of its weight.
//!
//! With the student logit `z` and a soft target `t` in `[0, 1]`, both `[b]` or `[b, T]`:
//!
//! ```text
//! KD(z, t) = mean bce(z, stop_gradient(t))            d KD / d z_i = (sigmoid(z_i) - t_i) / n
//! ```
//!
//! The target is detached inside, so distillation never moves the teacher, its calibrator or
//! anything the target was computed from; the student (and what feeds it) is all that learns.
//!
//! With a temperature `T` (Hinton et al., 2015), the student logit is softened by `T` and the
//! loss is scaled by `T^2` so that its gradient keeps its size as `T` changes:
//!
//! ```text
//! KD_T(z, t) = T^2 mean bce(z / T, stop_gradient(t))
//! ```
//!
//! where the target `t` is already softened: for CrossDistil `t = sigmoid((P r + Q) / T)`, the
//! calibrated teacher logit over `T`, then error-corrected against the student's `sigmoid(z / T)`.
//!
//! [`KdSchedule`] ramps the distillation weight up after a warm-up, while the teacher is immature.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crossdistil_core::ConfigError;

use crate::bce::{bce_with_logits, mean_bce};

/// Mean BCE of the student logits against the detached soft target probabilities (`T = 1`).
/// `student_logits` and `target_probs`: one shape.
pub fn distill_loss(student_logits: &Tensor, target_probs: &Tensor) -> Result<Tensor> {
    if student_logits.shape() != target_probs.shape() {
        candle_core::bail!(
            "distill_loss: student {:?} and target {:?} must have one shape",
            student_logits.shape(),
            target_probs.shape()
        );
    }
    bce_with_logits(student_logits, &target_probs.detach())
}

/// `T^2 * mean bce(student_logits / T, stop_gradient(target_probs))`: the distillation loss
/// at temperature `T`, the target already softened by it. `student_logits` and `target_probs`:
/// one shape. `temperature` must be finite and `> 0`; at `T = 1` this is [`distill_loss`].
pub fn tempered_distill_loss(
    student_logits: &Tensor,
    target_probs: &Tensor,
    temperature: f64,
) -> Result<Tensor> {
    weighted_tempered_distill_loss(student_logits, target_probs, temperature, None)
}

/// [`tempered_distill_loss`] with each row's term multiplied by its weight in `row_weights`
/// (`[b]`, the shape of the logits) when given: `T^2 mean_i w_i bce(z_i / T, t_i)`.
pub(crate) fn weighted_tempered_distill_loss(
    student_logits: &Tensor,
    target_probs: &Tensor,
    temperature: f64,
    row_weights: Option<&Tensor>,
) -> Result<Tensor> {
    if !(temperature.is_finite() && temperature > 0.0) {
        candle_core::bail!("tempered_distill_loss: temperature must be > 0, got {temperature}");
    }
    let z = student_logits.affine(1.0 / temperature, 0.0)?;
    let loss = match row_weights {
        None => distill_loss(&z, target_probs)?,
        Some(w) => {
            if z.shape() != target_probs.shape() {
                candle_core::bail!(
                    "distill_loss: student {:?} and target {:?} must have one shape",
                    z.shape(),
                    target_probs.shape()
                );
            }
            mean_bce(&z, &target_probs.detach(), Some(w))?
        }
    };
    loss.affine(temperature * temperature, 0.0)
}

/// The weight of the distillation loss over training steps. TOML, both keys optional:
/// `{ warmup_steps = 0, ramp_steps = 0 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KdSchedule {
    /// Steps (counted from 1) with weight 0.
    pub warmup_steps: u64,
    /// Steps over which the weight then rises linearly to its full value; 0 = at once.
    pub ramp_steps: u64,
}

impl KdSchedule {
    /// `0` for `step <= warmup_steps`, then `alpha * min(1, (step - warmup_steps) / ramp_steps)`
    /// (`alpha` from the first step after the warm-up when `ramp_steps = 0`).
    pub fn weight(&self, alpha: f64, step: u64) -> f64 {
        if step <= self.warmup_steps {
            return 0.0;
        }
        let into = step - self.warmup_steps;
        if self.ramp_steps == 0 || into >= self.ramp_steps {
            alpha
        } else {
            alpha * into as f64 / self.ramp_steps as f64
        }
    }

    /// Checks that the warm-up and the ramp end within 64-bit step numbers.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        if self.warmup_steps.checked_add(self.ramp_steps).is_none() {
            return Err(ConfigError::new(
                "ramp_steps",
                "warmup_steps + ramp_steps must fit in 64 bits",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibration::calibrated_logit;
    use crate::error_correction::{ErrorCorrection, correct};
    use candle_core::{Device, Var};
    use candle_nn::ops::sigmoid;

    fn sigmoid64(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    const Z: [f64; 5] = [0.4, -1.2, 2.0, 0.0, -0.3];
    const R: [f64; 5] = [1.1, -0.6, 0.3, 2.2, -1.5];
    const Y: [f64; 5] = [1.0, 0.0, 0.0, 1.0, 1.0];

    #[test]
    fn only_the_student_learns_from_distillation() {
        let d = Device::Cpu;
        let z = Var::new(&Z, &d).unwrap();
        let r = Var::new(&R, &d).unwrap();
        let rho = Var::new(&[0.2f64], &d).unwrap();
        let q = Var::new(&[-0.1f64], &d).unwrap();
        let y = Tensor::new(&Y, &d).unwrap();
        let p = sigmoid(z.as_tensor()).unwrap();
        let n = Z.len() as f64;
        for ec in [
            ErrorCorrection::None,
            ErrorCorrection::ClampBoundary,
            ErrorCorrection::ClampStudent,
            ErrorCorrection::Replace,
            ErrorCorrection::Blend(0.4),
        ] {
            let teacher =
                sigmoid(&calibrated_logit(r.as_tensor(), rho.as_tensor(), q.as_tensor()).unwrap())
                    .unwrap();
            let target = correct(&teacher, &y, &p, &ec).unwrap();
            let loss = distill_loss(z.as_tensor(), &target).unwrap();
            let grads = loss.backward().unwrap();
            for v in [&r, &rho, &q] {
                if let Some(g) = grads.get(v) {
                    let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
                    assert!(g.iter().all(|&x| x == 0.0), "{ec:?}: {g:?}");
                }
            }
            // d loss / d z = (sigmoid(z) - t) / n.
            let t: Vec<f64> = target.to_vec1().unwrap();
            let g: Vec<f64> = grads.get(&z).unwrap().to_vec1().unwrap();
            for i in 0..Z.len() {
                let want = (sigmoid64(Z[i]) - t[i]) / n;
                assert!(
                    (g[i] - want).abs() < 1e-12,
                    "{ec:?} {i}: {} vs {want}",
                    g[i]
                );
            }
        }
    }

    #[test]
    fn distill_loss_detaches_its_target_itself() {
        let d = Device::Cpu;
        let z = Var::new(&Z, &d).unwrap();
        let r = Var::new(&R, &d).unwrap();
        // A target that still tracks r: distill_loss must cut it.
        let target = sigmoid(r.as_tensor()).unwrap();
        let grads = distill_loss(z.as_tensor(), &target)
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(&r).is_none());
        assert!(grads.get(&z).is_some());
        // So must the tempered form.
        let grads = tempered_distill_loss(z.as_tensor(), &target, 2.0)
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(&r).is_none());
        assert!(grads.get(&z).is_some());
    }

    #[test]
    fn the_temperature_softens_the_student_and_scales_by_its_square() {
        let d = Device::Cpu;
        let z = Var::new(&Z, &d).unwrap();
        let s = Tensor::new(&R, &d).unwrap();
        let temp = 2.5;
        let soft = sigmoid(&s.affine(1.0 / temp, 0.0).unwrap()).unwrap();
        let loss = tempered_distill_loss(z.as_tensor(), &soft, temp).unwrap();
        let n = Z.len() as f64;
        let mut want = 0.0;
        for i in 0..Z.len() {
            let (x, t) = (Z[i] / temp, sigmoid64(R[i] / temp));
            want += -(t * sigmoid64(x).ln() + (1.0 - t) * (1.0 - sigmoid64(x)).ln());
        }
        want *= temp * temp / n;
        let got = loss.to_scalar::<f64>().unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // Gradient: T^2 * (sigmoid(z/T) - t) / (n T) = T (sigmoid(z/T) - t) / n.
        let g: Vec<f64> = loss.backward().unwrap().get(&z).unwrap().to_vec1().unwrap();
        for i in 0..Z.len() {
            let want = temp * (sigmoid64(Z[i] / temp) - sigmoid64(R[i] / temp)) / n;
            assert!((g[i] - want).abs() < 1e-12, "{i}: {} vs {want}", g[i]);
        }
        // T = 1 is distill_loss.
        let t = sigmoid(&s).unwrap();
        let one = tempered_distill_loss(z.as_tensor(), &t, 1.0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let plain = distill_loss(z.as_tensor(), &t)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert_eq!(one, plain);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(tempered_distill_loss(z.as_tensor(), &t, bad).is_err());
        }
    }

    #[test]
    fn finite_at_extreme_logits_in_f32() {
        let d = Device::Cpu;
        let z = Var::new(&[-300.0f32, 300.0], &d).unwrap();
        let t = Tensor::new(&[1.0f32, 0.0], &d).unwrap();
        let loss = distill_loss(z.as_tensor(), &t).unwrap();
        assert!((loss.to_scalar::<f32>().unwrap() - 300.0).abs() < 1e-3);
        let g: Vec<f32> = loss.backward().unwrap().get(&z).unwrap().to_vec1().unwrap();
        assert!(g.iter().all(|x| x.is_finite()), "{g:?}");
    }

    #[test]
    fn a_shape_mismatch_is_an_error() {
        let d = Device::Cpu;
        let z = Tensor::new(&[0.1f32, 0.2], &d).unwrap();
        let t = Tensor::new(&[[0.1f32, 0.2]], &d).unwrap();
        assert!(distill_loss(&z, &t).is_err());
    }

    #[test]
    fn the_schedule_warms_up_ramps_and_holds() {
        let s = KdSchedule {
            warmup_steps: 100,
            ramp_steps: 50,
        };
        assert_eq!(s.weight(0.8, 0), 0.0);
        assert_eq!(s.weight(0.8, 100), 0.0);
        assert!((s.weight(0.8, 125) - 0.4).abs() < 1e-12);
        assert!((s.weight(0.8, 101) - 0.8 / 50.0).abs() < 1e-12);
        assert_eq!(s.weight(0.8, 150), 0.8);
        assert_eq!(s.weight(0.8, 10_000), 0.8);
        let no_ramp = KdSchedule {
            warmup_steps: 10,
            ramp_steps: 0,
        };
        assert_eq!(no_ramp.weight(0.5, 10), 0.0);
        assert_eq!(no_ramp.weight(0.5, 11), 0.5);
        let default = KdSchedule::default();
        assert_eq!(default.weight(0.3, 1), 0.3);
        assert!(default.validate().is_ok());
        let bad = KdSchedule {
            warmup_steps: u64::MAX,
            ramp_steps: 1,
        };
        assert_eq!(bad.validate().unwrap_err().key, "ramp_steps");
        // Saturating arithmetic: no overflow at the largest step.
        assert_eq!(bad.weight(1.0, u64::MAX), 0.0);
    }
}
