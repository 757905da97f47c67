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

/// `model.teacher.inputs`: the named dense features reach the teachers and never the students.
/// Changing them moves every teacher score and no student logit; the students' input loses
/// their columns; a model without teachers holds them out all the same.
#[test]
fn teacher_only_inputs_reach_the_teachers_alone() {
    for (name, backbone) in backbones() {
        let mut cfg = config(backbone);
        cfg.teacher.inputs = vec!["hint".into()];
        let teacher = TeacherConfig {
            inputs: cfg.teacher.inputs.clone(),
            ..Default::default()
        };
        let model = MultiTaskModel::new(&cfg, &schema(), 2, 5)
            .unwrap()
            .with_teachers(&teacher, 5)
            .unwrap();
        assert_eq!(model.input().n_dense(), 2, "{name}");
        assert_eq!(model.input().teacher_dense(), &[2]);
        assert_eq!(model.input().student_dense(), vec![0, 1]);
        let b = batch(2);
        let mut changed = b.clone();
        for row in changed.dense.chunks_exact_mut(3) {
            row[2] += 1.5;
        }
        let (f0, f1) = (
            model.forward(&b, Mode::Eval).unwrap(),
            model.forward(&changed, Mode::Eval).unwrap(),
        );
        assert_eq!(to_vec(&f0.logits), to_vec(&f1.logits), "{name}: students");
        let (t0, t1) = (
            to_vec(f0.teacher_scores.as_ref().unwrap()),
            to_vec(f1.teacher_scores.as_ref().unwrap()),
        );
        assert!(
            t0.iter().zip(&t1).all(|(a, b)| a != b),
            "{name}: every teacher score moves with its input"
        );
        // The students' input is the same as a model's whose data set lacks the column.
        let plain = MultiTaskModel::new(&cfg, &schema(), 2, 5).unwrap();
        assert_eq!(plain.input().in_dim(), model.input().in_dim());
        let p = plain.forward(&changed, Mode::Eval).unwrap();
        assert_eq!(to_vec(&p.logits), to_vec(&f0.logits), "{name}: no teachers");
    }
}

#[test]
fn teacher_inputs_are_checked() {
    let cases: [(&[&str], &str); 3] = [
        (&["nope"], "no dense feature \"nope\""),
        (&["hint", "hint"], "named twice"),
        (&[""], "inputs[0]"),
    ];
    for (names, expected) in cases {
        let mut cfg = config(backbones()[0].1.clone());
        cfg.teacher.inputs = names.iter().map(|n| n.to_string()).collect();
        let err = MultiTaskModel::new(&cfg, &schema(), 2, 5).unwrap_err();
        assert!(err.to_string().contains(expected), "{names:?}: {err}");
    }
    // Without the dense features' names, the model cannot tell which to hold out.
    let mut cfg = config(backbones()[0].1.clone());
    cfg.teacher.inputs = vec!["hint".into()];
    let mut unnamed = schema();
    unnamed.dense_names.clear();
    let err = MultiTaskModel::new(&cfg, &unnamed, 2, 5).unwrap_err();
    assert!(err.to_string().contains("names 0 of its 3"), "{err}");
    // The teachers must ask for the inputs the model was built with.
    let model = MultiTaskModel::new(&cfg, &schema(), 2, 5).unwrap();
    let err = model
        .with_teachers(&TeacherConfig::default(), 5)
        .unwrap_err();
    assert!(err.to_string().contains("model.teacher.inputs"), "{err}");
}
