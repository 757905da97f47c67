//! Seeded initialisation and dropout; save and load round trips.

mod common;

use std::collections::HashMap;

use candle_core::Tensor;
use common::{backbones, batch, bce, config, schema, to_vec};
use crossdistil_model::{BackboneConfig, Mode, ModelConfig, MultiTaskModel, SparseOptimConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// MMoE with dropout everywhere.
fn dropout_config() -> ModelConfig {
    let mut cfg = config(backbones()[2].1.clone());
    if let BackboneConfig::Mmoe(m) = &mut cfg.backbone {
        m.dropout = 0.2;
    }
    cfg.tower.dropout = 0.3;
    cfg.dropout = 0.1;
    cfg
}

fn flat(tensors: &HashMap<String, Tensor>) -> Vec<(String, Vec<u32>)> {
    let mut v: Vec<_> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), to_vec(t).iter().map(|x| x.to_bits()).collect()))
        .collect();
    v.sort();
    v
}

fn train_logits(model: &MultiTaskModel, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    to_vec(
        &model
            .forward(&batch(2), Mode::Train(&mut rng))
            .unwrap()
            .logits,
    )
}

#[test]
fn same_seed_same_model_and_masks() {
    let cfg = dropout_config();
    let a = MultiTaskModel::new(&cfg, &schema(), 2, 7).unwrap();
    let b = MultiTaskModel::new(&cfg, &schema(), 2, 7).unwrap();
    let c = MultiTaskModel::new(&cfg, &schema(), 2, 8).unwrap();
    assert_eq!(
        flat(&a.save_tensors().unwrap()),
        flat(&b.save_tensors().unwrap())
    );
    assert_ne!(
        flat(&a.params().save_tensors().unwrap()),
        flat(&c.params().save_tensors().unwrap())
    );
    assert_ne!(
        flat(&a.input().save_tensors().unwrap()),
        flat(&c.input().save_tensors().unwrap())
    );

    let la = train_logits(&a, 3);
    assert_eq!(la, train_logits(&b, 3));
    assert_ne!(la, train_logits(&a, 4));
    let eval = a.predict_probs(&batch(2)).unwrap();
    assert_eq!(eval, b.predict_probs(&batch(2)).unwrap());
    assert_eq!(eval, a.predict_probs(&batch(2)).unwrap());
    assert_ne!(eval, c.predict_probs(&batch(2)).unwrap());
}

#[test]
fn embedding_tables_do_not_depend_on_the_backbone() {
    let a = MultiTaskModel::new(&config(backbones()[0].1.clone()), &schema(), 2, 7).unwrap();
    let b = MultiTaskModel::new(&config(backbones()[3].1.clone()), &schema(), 3, 7).unwrap();
    assert_eq!(
        flat(&a.input().save_tensors().unwrap()),
        flat(&b.input().save_tensors().unwrap())
    );
}

#[test]
fn save_then_load_gives_identical_outputs() {
    for (name, backbone) in backbones() {
        let cfg = config(backbone);
        let mut a = MultiTaskModel::new(&cfg, &schema(), 2, 1).unwrap();
        // One step so that the tables carry optimiser moments.
        let b = batch(2);
        let fwd = a.forward(&b, Mode::Eval).unwrap();
        let grads = bce(&fwd.logits, &b.labels).unwrap().backward().unwrap();
        a.input_mut()
            .apply_grads(
                &grads,
                &fwd.gathered,
                &SparseOptimConfig::default(),
                0.01,
                1,
            )
            .unwrap();
        let saved = a.save_tensors().unwrap();
        assert!(saved.contains_key("input.multi.tags.adam_v"));

        let mut other = MultiTaskModel::new(&cfg, &schema(), 2, 2).unwrap();
        assert_ne!(
            other.predict_probs(&b).unwrap(),
            a.predict_probs(&b).unwrap()
        );
        other.load_tensors(&saved).unwrap();
        assert_eq!(
            other.predict_probs(&b).unwrap(),
            a.predict_probs(&b).unwrap(),
            "{name}"
        );
        assert_eq!(flat(&other.save_tensors().unwrap()), flat(&saved));
        let reprs_a = a.forward(&b, Mode::Eval).unwrap().reprs;
        let reprs_o = other.forward(&b, Mode::Eval).unwrap().reprs;
        for (x, y) in reprs_a.iter().zip(&reprs_o) {
            assert_eq!(to_vec(x), to_vec(y));
        }

        // The parts alone.
        let mut fresh = MultiTaskModel::new(&cfg, &schema(), 2, 3).unwrap();
        fresh
            .params()
            .load_tensors(&a.params().save_tensors().unwrap())
            .unwrap();
        fresh
            .input_mut()
            .load_tensors(&a.input().save_tensors().unwrap())
            .unwrap();
        assert_eq!(
            fresh.predict_probs(&b).unwrap(),
            a.predict_probs(&b).unwrap()
        );
    }
}

#[test]
fn load_refuses_missing_extra_and_misshapen_tensors() {
    let cfg = config(backbones()[1].1.clone());
    let mut m = MultiTaskModel::new(&cfg, &schema(), 2, 1).unwrap();
    // Another model's tensors: a partial load would change the predictions.
    let saved = MultiTaskModel::new(&cfg, &schema(), 2, 9)
        .unwrap()
        .save_tensors()
        .unwrap();
    let before = m.predict_probs(&batch(2)).unwrap();

    let mut missing = saved.clone();
    missing.remove("input.sparse.item.weight");
    let e = m.load_tensors(&missing).unwrap_err().to_string();
    assert!(e.contains("missing tensor input.sparse.item.weight"), "{e}");

    let mut extra = saved.clone();
    extra.insert(
        "input.sparse.nope.weight".into(),
        saved["input.sparse.item.weight"].clone(),
    );
    let e = m.load_tensors(&extra).unwrap_err().to_string();
    assert!(
        e.contains("unexpected tensor input.sparse.nope.weight"),
        "{e}"
    );

    let mut wrong = saved.clone();
    wrong.insert(
        "input.sparse.item.weight".into(),
        saved["input.sparse.user.weight"].clone(),
    );
    let e = m.load_tensors(&wrong).unwrap_err().to_string();
    assert!(
        e.contains("tensor input.sparse.item.weight has shape"),
        "{e}"
    );

    let mut wrong = saved;
    wrong.insert(
        "tower0.out.weight".into(),
        Tensor::zeros((2, 6), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
    );
    let e = m.load_tensors(&wrong).unwrap_err().to_string();
    assert!(e.contains("tensor tower0.out.weight has shape"), "{e}");
    assert_eq!(m.predict_probs(&batch(2)).unwrap(), before);
}
