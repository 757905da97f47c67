//! Error correction of the teacher's soft labels before they teach the student.
//!
//! `q` is the calibrated teacher probability, `y` the hard 0/1 label, `p` the student's
//! probability; all three have one shape, `[b]` or `[b, T]`, and the result (the distillation
//! target `t`) has it too. Everything is detached: the target carries no gradient.
//!
//! | variant          | target for `y = 1`         | target for `y = 0`         |
//! |------------------|----------------------------|----------------------------|
//! | `none`           | `q`                        | `q`                        |
//! | `clamp-boundary` | `max(q, 0.5)`              | `min(q, 0.5)`              |
//! | `clamp-student`  | `max(q, p)`                | `min(q, p)`                |
//! | `replace`        | `y` if `q < 0.5` else `q`  | `y` if `q > 0.5` else `q`  |
//! | `blend(l)`       | `(1 - l) q + l y`          | same                       |
//!
//! `clamp-student` (the default): the distillation gradient on the student logit is `p - t`; the
//! clamp cancels it exactly where the teacher would pull the student away from its true label and
//! keeps it where the teacher refines the order within a label. A label `> 0.5` is a positive.
//!
//! Serde shape (externally tagged, kebab-case): the unit variants are strings and `blend` is a
//! one-key table holding its `lambda`:
//!
//! ```toml
//! error_correction = "clamp-student"   # or "none", "clamp-boundary", "replace"
//! error_correction = { blend = 0.3 }   # lambda = 0.3
//! ```

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crossdistil_core::ConfigError;

/// How the teacher's target is corrected where it contradicts the hard label.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCorrection {
    /// The teacher's probability as it is.
    None,
    /// Clamp the target to the label's side of 0.5.
    ClampBoundary,
    /// Clamp the target to the label's side of the student's own prediction.
    #[default]
    ClampStudent,
    /// Replace a target on the wrong side of 0.5 by the label.
    Replace,
    /// Mix the label in: `(1 - lambda) q + lambda y`, `lambda` in `[0, 1]`.
    Blend(f32),
}

impl ErrorCorrection {
    /// The variant's name, as in the configuration.
    pub fn name(&self) -> &'static str {
        match self {
            ErrorCorrection::None => "none",
            ErrorCorrection::ClampBoundary => "clamp-boundary",
            ErrorCorrection::ClampStudent => "clamp-student",
            ErrorCorrection::Replace => "replace",
            ErrorCorrection::Blend(_) => "blend",
        }
    }

    /// Checks that a blend's `lambda` is in `[0, 1]` (key `blend`).
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        if let ErrorCorrection::Blend(lambda) = self
            && !(0.0..=1.0).contains(lambda)
        {
            return Err(ConfigError::new(
                "blend",
                format!("must be in [0, 1], got {lambda}"),
            ));
        }
        Ok(())
    }
}

/// The corrected, detached distillation target `t` from the teacher probability `q`, the 0/1
/// label `y` and the student probability `p` (one shape, `[b]` or `[b, T]`); for `y = 1`:
/// `none` `t = q`, `clamp-boundary` `max(q, 0.5)`, `clamp-student` `max(q, p)`, `replace` `y` if
/// `q < 0.5` else `q`, `blend(l)` `(1 - l) q + l y`; mirrored (`min`, `q > 0.5`) for `y = 0`.
pub fn correct(q: &Tensor, y: &Tensor, p: &Tensor, ec: &ErrorCorrection) -> Result<Tensor> {
    let (q, y, p) = (q.detach(), y.detach(), p.detach());
    if y.shape() != q.shape() || p.shape() != q.shape() {
        candle_core::bail!(
            "correct: q {:?}, y {:?} and p {:?} must have one shape",
            q.shape(),
            y.shape(),
            p.shape()
        );
    }
    let positive = y.gt(0.5)?;
    match *ec {
        ErrorCorrection::None => Ok(q),
        ErrorCorrection::ClampBoundary => positive.where_cond(&q.maximum(0.5)?, &q.minimum(0.5)?),
        ErrorCorrection::ClampStudent => positive.where_cond(&q.maximum(&p)?, &q.minimum(&p)?),
        ErrorCorrection::Replace => {
            let wrong_positive = q.lt(0.5)?.where_cond(&y, &q)?;
            let wrong_negative = q.gt(0.5)?.where_cond(&y, &q)?;
            positive.where_cond(&wrong_positive, &wrong_negative)
        }
        ErrorCorrection::Blend(lambda) => q
            .affine(1.0 - lambda as f64, 0.0)?
            .add(&y.affine(lambda as f64, 0.0)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use proptest::prelude::*;
    use serde::de::value::{
        Error as DeError, MapAccessDeserializer, MapDeserializer, StrDeserializer,
    };

    fn run(q: &[f32], y: &[f32], p: &[f32], ec: ErrorCorrection) -> Vec<f32> {
        let d = Device::Cpu;
        correct(
            &Tensor::new(q, &d).unwrap(),
            &Tensor::new(y, &d).unwrap(),
            &Tensor::new(p, &d).unwrap(),
            &ec,
        )
        .unwrap()
        .to_vec1()
        .unwrap()
    }

    #[test]
    fn every_variant_matches_a_hand_table() {
        //        y=1 q low, y=1 q high, y=0 q high, y=0 q low
        let q = [0.2f32, 0.8, 0.7, 0.1];
        let y = [1.0f32, 1.0, 0.0, 0.0];
        let p = [0.4f32, 0.9, 0.6, 0.3];
        let table: [(ErrorCorrection, [f32; 4]); 5] = [
            (ErrorCorrection::None, [0.2, 0.8, 0.7, 0.1]),
            (ErrorCorrection::ClampBoundary, [0.5, 0.8, 0.5, 0.1]),
            (ErrorCorrection::ClampStudent, [0.4, 0.9, 0.6, 0.1]),
            (ErrorCorrection::Replace, [1.0, 0.8, 0.0, 0.1]),
            (ErrorCorrection::Blend(0.25), [0.4, 0.85, 0.525, 0.075]),
        ];
        for (ec, want) in table {
            let got = run(&q, &y, &p, ec);
            for (a, b) in got.iter().zip(want) {
                assert!((a - b).abs() < 1e-6, "{ec:?}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn works_on_two_dimensional_targets() {
        let d = Device::Cpu;
        let t = |v: [f32; 4]| Tensor::new(&v, &d).unwrap().reshape((2, 2)).unwrap();
        let got: Vec<Vec<f32>> = correct(
            &t([0.2, 0.8, 0.7, 0.1]),
            &t([1.0, 1.0, 0.0, 0.0]),
            &t([0.4, 0.9, 0.6, 0.3]),
            &ErrorCorrection::ClampStudent,
        )
        .unwrap()
        .to_vec2()
        .unwrap();
        assert_eq!(got, vec![vec![0.4, 0.9], vec![0.6, 0.1]]);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let d = Device::Cpu;
        let a = Tensor::new(&[0.1f32, 0.2], &d).unwrap();
        let b = Tensor::new(&[1.0f32], &d).unwrap();
        assert!(correct(&a, &b, &a, &ErrorCorrection::None).is_err());
    }

    #[test]
    fn the_target_carries_no_gradient() {
        let d = Device::Cpu;
        let q = Var::new(&[0.2f32, 0.8, 0.7, 0.1], &d).unwrap();
        let y = Var::new(&[1.0f32, 1.0, 0.0, 0.0], &d).unwrap();
        let p = Var::new(&[0.4f32, 0.9, 0.6, 0.3], &d).unwrap();
        for ec in [
            ErrorCorrection::None,
            ErrorCorrection::ClampBoundary,
            ErrorCorrection::ClampStudent,
            ErrorCorrection::Replace,
            ErrorCorrection::Blend(0.3),
        ] {
            let t = correct(q.as_tensor(), y.as_tensor(), p.as_tensor(), &ec).unwrap();
            // Reuse the target in a loss that would give the Vars a gradient through it.
            let grads = t.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&q, &y, &p] {
                assert!(grads.get(v).is_none(), "{ec:?} gave a gradient");
            }
        }
    }

    fn rows() -> impl Strategy<Value = Vec<(f32, bool, f32)>> {
        proptest::collection::vec((0.0f32..=1.0, any::<bool>(), 0.0f32..=1.0), 1..64)
    }

    fn apply(rows: &[(f32, bool, f32)], ec: ErrorCorrection) -> Vec<f32> {
        let q: Vec<f32> = rows.iter().map(|r| r.0).collect();
        let y: Vec<f32> = rows.iter().map(|r| f32::from(r.1)).collect();
        let p: Vec<f32> = rows.iter().map(|r| r.2).collect();
        run(&q, &y, &p, ec)
    }

    proptest! {
        #[test]
        fn boundary_and_replace_keep_the_target_on_the_labels_side_of_a_half(rows in rows()) {
            for ec in [ErrorCorrection::ClampBoundary, ErrorCorrection::Replace] {
                for (t, &(q, y, _)) in apply(&rows, ec).iter().zip(&rows) {
                    prop_assert!(if y { *t >= 0.5 } else { *t <= 0.5 }, "{ec:?} q {q} y {y} t {t}");
                    // A target already on the right side is left alone.
                    if (y && q >= 0.5) || (!y && q <= 0.5) {
                        prop_assert_eq!(*t, q);
                    }
                }
            }
        }

        #[test]
        fn clamp_student_keeps_the_target_on_the_labels_side_of_the_student(rows in rows()) {
            for (t, &(q, y, p)) in apply(&rows, ErrorCorrection::ClampStudent).iter().zip(&rows) {
                prop_assert!(if y { *t >= p } else { *t <= p }, "q {q} y {y} p {p} t {t}");
                prop_assert!(*t == q || *t == p);
            }
        }

        #[test]
        fn blend_moves_toward_the_label(rows in rows(), lambda in 0.0f32..=1.0) {
            for (t, &(q, y, _)) in apply(&rows, ErrorCorrection::Blend(lambda)).iter().zip(&rows) {
                let y = f32::from(y);
                prop_assert!((t - y).abs() <= (q - y).abs() + 1e-6);
                prop_assert!(((t - y).abs() - (1.0 - lambda) * (q - y).abs()).abs() < 1e-5);
            }
        }

        #[test]
        fn none_is_the_identity(rows in rows()) {
            for (t, &(q, _, _)) in apply(&rows, ErrorCorrection::None).iter().zip(&rows) {
                prop_assert_eq!(*t, q);
            }
        }
    }

    #[test]
    fn deserializes_from_a_string_or_a_one_key_table() {
        let from_str = |s: &str| ErrorCorrection::deserialize(StrDeserializer::<DeError>::new(s));
        assert_eq!(from_str("none").unwrap(), ErrorCorrection::None);
        assert_eq!(
            from_str("clamp-boundary").unwrap(),
            ErrorCorrection::ClampBoundary
        );
        assert_eq!(
            from_str("clamp-student").unwrap(),
            ErrorCorrection::ClampStudent
        );
        assert_eq!(from_str("replace").unwrap(), ErrorCorrection::Replace);
        assert!(from_str("clamp_student").is_err());
        // `{ blend = 0.3 }`: a table with the one key `blend`.
        let table = |key: &'static str| {
            let map = MapDeserializer::<_, DeError>::new(std::iter::once((key, 0.3f32)));
            ErrorCorrection::deserialize(MapAccessDeserializer::new(map))
        };
        assert_eq!(table("blend").unwrap(), ErrorCorrection::Blend(0.3));
        assert!(table("lambda").is_err());
        assert_eq!(ErrorCorrection::default(), ErrorCorrection::ClampStudent);
        assert_eq!(ErrorCorrection::Blend(0.3).name(), "blend");
    }

    #[test]
    fn validation_names_the_key() {
        assert!(ErrorCorrection::Blend(0.0).validate().is_ok());
        assert!(ErrorCorrection::Blend(1.0).validate().is_ok());
        let e = ErrorCorrection::Blend(1.5).validate().unwrap_err();
        assert_eq!(e.key, "blend");
        assert!(ErrorCorrection::Blend(f32::NAN).validate().is_err());
        assert!(ErrorCorrection::Replace.validate().is_ok());
    }
}
