//! Teacher heads and calibrators beside the student towers.

mod common;

use candle_core::Tensor;
use common::*;
use crossdistil_model::{Mode, MultiTaskModel, RHO_FOR_UNIT_SLOPE, TeacherConfig};

fn to_vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn teachers_leave_the_student_unchanged_and_score_every_task() {
    for (name, backbone) in backbones() {
        let plain = MultiTaskModel::new(&config(backbone.clone()), &schema(), 2, 9).unwrap();
        let with = MultiTaskModel::new(&config(backbone.clone()), &schema(), 2, 9)
            .unwrap()
            .with_teachers(&TeacherConfig::default(), 9)
            .unwrap();
        let b = batch(2);
        let (f0, f1) = (
            plain.forward(&b, Mode::Eval).unwrap(),
            with.forward(&b, Mode::Eval).unwrap(),
        );
        assert_eq!(
            to_vec(&f0.logits),
            to_vec(&f1.logits),
            "{name}: same student"
        );
        assert!(f0.teacher_scores.is_none());
        assert_eq!(
            f1.teacher_scores.as_ref().unwrap().dims(),
            &[8, 2],
            "{name}"
        );
        assert_eq!(with.calibrators().len(), 2);
        let rho = to_vec(with.calibrators()[0].rho.as_tensor())[0];
        assert_eq!(rho, RHO_FOR_UNIT_SLOPE);
    }
}

#[test]
fn a_loss_on_the_teacher_reaches_the_backbone_unless_detached() {
    for detach in [false, true] {
        let cfg = TeacherConfig {
            hidden: vec![4],
            detach_repr: detach,
            ..Default::default()
        };
        let model = MultiTaskModel::new(&config(backbones()[2].1.clone()), &schema(), 2, 3)
            .unwrap()
            .with_teachers(&cfg, 3)
            .unwrap();
        let fwd = model.forward(&batch(2), Mode::Eval).unwrap();
        let loss = fwd
            .teacher_scores
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        for (n, var) in model.params().vars() {
            let g = grads
                .get(&var)
                .map(|g| to_vec(g).iter().map(|v| v.abs()).sum::<f32>())
                .unwrap_or(0.0);
            if n.starts_with("teacher") {
                assert!(g > 0.0, "teacher parameter {n} gets no gradient");
            } else if n.starts_with("backbone") {
                assert_eq!(
                    g > 0.0,
                    !detach,
                    "backbone parameter {n} (detach_repr = {detach})"
                );
            } else {
                assert_eq!(g, 0.0, "{n} is not under the teacher's loss");
            }
        }
    }
}

#[test]
fn calibrator_set_gives_the_asked_slope_and_offset() {
    let model = MultiTaskModel::new(&config(backbones()[0].1.clone()), &schema(), 1, 1)
        .unwrap()
        .with_teachers(&TeacherConfig::default(), 1)
        .unwrap();
    let c = &model.calibrators()[0];
    c.set(2.5, -0.75).unwrap();
    let rho = to_vec(c.rho.as_tensor())[0] as f64;
    let p = rho.max(0.0) + (-rho.abs()).exp().ln_1p();
    assert!((p - 2.5).abs() < 1e-5, "{p}");
    assert_eq!(to_vec(c.q.as_tensor())[0], -0.75);
}
