//! Every backbone: shapes, a descent step, and a gradient for every parameter.

mod common;

use candle_core::Tensor;
use common::{backbones, batch, bce, config, schema, to_vec};
use crossdistil_model::{Mode, MultiTaskModel, SparseOptimConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[test]
fn output_shapes_for_one_two_and_three_tasks() {
    for (name, backbone) in backbones() {
        for n_tasks in 1..=3 {
            let model =
                MultiTaskModel::new(&config(backbone.clone()), &schema(), n_tasks, 1).unwrap();
            let b = batch(n_tasks);
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            for mode in [Mode::Train(&mut rng), Mode::Eval] {
                let fwd = model.forward(&b, mode).unwrap();
                assert_eq!(fwd.reprs.len(), n_tasks, "{name}");
                for r in &fwd.reprs {
                    assert_eq!(r.dims(), [8, model.repr_dim()], "{name} {n_tasks}");
                }
                assert_eq!(fwd.logits.dims(), [8, n_tasks], "{name} {n_tasks}");
                assert_eq!(fwd.gathered.x.dims(), [8, model.input().in_dim()]);
            }
            assert_eq!(model.repr_dim(), 8, "{name}");
            assert_eq!(model.n_tasks(), n_tasks);
            assert_eq!(model.input().in_dim(), 4 + 6 + 4 + 4 + 3);
            let p = model.predict_probs(&b).unwrap();
            assert_eq!(p.len(), 8 * n_tasks);
            assert!(p.iter().all(|&v| v > 0.0 && v < 1.0), "{name}");
        }
    }
}

#[test]
fn one_gradient_step_lowers_the_loss() {
    for (name, backbone) in backbones() {
        let n_tasks = 2;
        let mut model = MultiTaskModel::new(&config(backbone), &schema(), n_tasks, 3).unwrap();
        let b = batch(n_tasks);
        let fwd = model.forward(&b, Mode::Eval).unwrap();
        let loss = bce(&fwd.logits, &b.labels).unwrap();
        let before = loss.to_scalar::<f32>().unwrap();
        let grads = loss.backward().unwrap();
        for (n, var) in model.params().vars() {
            let g = grads
                .get(&var)
                .unwrap_or_else(|| panic!("{name}: no gradient for {n}"));
            var.set(&(var.as_tensor() - (g * 0.1).unwrap()).unwrap())
                .unwrap();
        }
        model
            .input_mut()
            .apply_grads(
                &grads,
                &fwd.gathered,
                &SparseOptimConfig::default(),
                1e-3,
                1,
            )
            .unwrap();
        let after = bce(&model.forward(&b, Mode::Eval).unwrap().logits, &b.labels)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(after < before, "{name}: {before} -> {after}");
    }
}

#[test]
fn every_parameter_and_the_embedding_leaf_receive_a_gradient() {
    for (name, backbone) in backbones() {
        for n_tasks in [1, 3] {
            let model =
                MultiTaskModel::new(&config(backbone.clone()), &schema(), n_tasks, 5).unwrap();
            let b = batch(n_tasks);
            let fwd = model.forward(&b, Mode::Eval).unwrap();
            let grads = bce(&fwd.logits, &b.labels).unwrap().backward().unwrap();
            assert!(model.params().len() > 4);
            for (n, var) in model.params().vars() {
                let g = grads
                    .get(&var)
                    .unwrap_or_else(|| panic!("{name}/{n_tasks}: no gradient for {n}"));
                let norm: f32 = to_vec(g).iter().map(|v| v.abs()).sum();
                assert!(norm > 0.0, "{name}/{n_tasks}: zero gradient for {n}");
            }
            let leaf: &Tensor = fwd.gathered.leaf.as_tensor();
            let g = grads.get(leaf).expect("no gradient for the embedding leaf");
            assert!(
                to_vec(g).iter().any(|&v| v != 0.0),
                "{name}: zero leaf gradient"
            );
            let field_grads = model.input().table_grads(&grads, &fwd.gathered).unwrap();
            for (f, fg) in field_grads.iter().enumerate() {
                assert!(
                    fg.iter().any(|&v| v != 0.0),
                    "{name}: field {f} has no gradient"
                );
            }
        }
    }
}

#[test]
fn parameter_names_follow_the_structure() {
    let (_, mmoe) = &backbones()[2];
    let model = MultiTaskModel::new(&config(mmoe.clone()), &schema(), 2, 1).unwrap();
    let names: Vec<String> = model.params().vars().into_iter().map(|(n, _)| n).collect();
    for expected in [
        "backbone.experts.weight",
        "backbone.experts.bias",
        "backbone.gate1.weight",
        "tower0.layer0.weight",
        "tower1.out.bias",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    // Unpacked, the experts have a tensor per layer again, and the packed ones are gone.
    let unpacked = model.params().unpacked_tensors().unwrap();
    assert_eq!(unpacked["backbone.expert0.layer0.weight"].dims(), [16, 21]);
    assert_eq!(unpacked["backbone.expert2.layer1.bias"].dims(), [8]);
    assert!(unpacked.contains_key("backbone.gate1.weight"));
    assert!(!unpacked.contains_key("backbone.experts.weight"));
    let (_, ple) = &backbones()[3];
    let model = MultiTaskModel::new(&config(ple.clone()), &schema(), 2, 1).unwrap();
    let p = model.params();
    assert!(p.get("backbone.level0.shared_gate.weight").is_some());
    assert!(p.get("backbone.level1.shared_gate.weight").is_none());
    assert_eq!(
        p.get("backbone.level0.gate1.weight").unwrap().dims(),
        [3, 21]
    );
    assert_eq!(
        p.get("backbone.level0.shared_gate.weight").unwrap().dims(),
        [4, 21]
    );
    assert_eq!(
        p.get("backbone.level1.task1.expert0.layer0.weight")
            .unwrap()
            .dims(),
        [12, 8]
    );
    let (_, cs) = &backbones()[4];
    let model = MultiTaskModel::new(&config(cs.clone()), &schema(), 3, 1).unwrap();
    let alpha = model.params().get("backbone.stitch1.alpha").unwrap();
    assert_eq!(
        alpha.to_vec2::<f32>().unwrap(),
        vec![
            vec![0.9, 0.05, 0.05],
            vec![0.05, 0.9, 0.05],
            vec![0.05, 0.05, 0.9]
        ]
    );
    let model = MultiTaskModel::new(&config(cs.clone()), &schema(), 1, 1).unwrap();
    let alpha = model.params().get("backbone.stitch0.alpha").unwrap();
    assert_eq!(alpha.to_vec2::<f32>().unwrap(), vec![vec![1.0]]);
}
