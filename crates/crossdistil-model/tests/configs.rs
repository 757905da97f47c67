//! Configuration parsing and validation.

mod common;

use candle_core::Device;
use common::schema;
use crossdistil_model::{
    BackboneConfig, ModelConfig, MultiTaskModel, SparseOptimConfig, TeacherConfig,
};

fn parse(text: &str) -> Result<ModelConfig, String> {
    toml::from_str::<ModelConfig>(text).map_err(|e| e.to_string())
}

fn invalid(text: &str) -> String {
    let cfg = parse(text).unwrap();
    let msg = cfg.validate().unwrap_err().to_string();
    let built = MultiTaskModel::new(&cfg, &schema(), 2, 0)
        .unwrap_err()
        .to_string();
    assert!(built.contains(&msg), "{built} vs {msg}");
    msg
}

#[test]
fn defaults() {
    let cfg = parse("").unwrap();
    assert_eq!(cfg, ModelConfig::default());
    assert_eq!(cfg.embedding_dim, 16);
    assert_eq!(cfg.tower.hidden, [64]);
    assert_eq!(cfg.backbone, BackboneConfig::default());
    assert!(cfg.teacher.hidden.is_empty() && !cfg.teacher.detach_repr);
    assert!(matches!(&cfg.backbone, BackboneConfig::SharedBottom(m) if m.hidden == [256, 128]));
    cfg.validate().unwrap();
    let cfg = parse("[backbone]\ntype = \"ple\"\nhidden = [32]\n").unwrap();
    let BackboneConfig::Ple(p) = &cfg.backbone else {
        panic!()
    };
    assert_eq!((p.levels, p.shared_experts, p.task_experts), (2, 1, 1));
    let cfg = parse("[backbone]\ntype = \"mmoe\"\nhidden = [32]\nactivation = \"gelu\"\n").unwrap();
    let BackboneConfig::Mmoe(m) = &cfg.backbone else {
        panic!()
    };
    assert_eq!(m.experts, 4);
    let cfg = parse(
        "field_dims = { item = 8 }\n[backbone]\ntype = \"cross-stitch\"\nhidden = [8, 4]\n\
         [teacher]\nhidden = [8]\ndetach_repr = true\n",
    )
    .unwrap();
    assert_eq!(cfg.teacher.hidden, [8]);
    cfg.validate().unwrap();
    let round: ModelConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(round, cfg);
}

#[test]
fn unknown_keys_are_refused() {
    for text in [
        "embedding_dims = 8\n",
        "[backbone]\ntype = \"shared-bottom\"\nhidden = [8]\nexperts = 3\n",
        "[backbone]\ntype = \"mmoe\"\nhidden = [8]\nexpert = 3\n",
        "[backbone]\ntype = \"ple\"\nhidden = [8]\nlevel = 3\n",
        "[backbone]\ntype = \"moe\"\nhidden = [8]\n",
        "[tower]\nhidden = [8]\nactivaton = \"relu\"\n",
        "[tower]\nhidden = [8]\nactivation = \"swish\"\n",
        "[teacher]\nhiden = [8]\n",
    ] {
        assert!(parse(text).is_err(), "accepted: {text}");
    }
    assert!(serde_json::from_str::<SparseOptimConfig>(r#"{"type":"adam","beta3":0.5}"#).is_err());
    let adagrad: SparseOptimConfig = serde_json::from_str(r#"{"type":"adagrad"}"#).unwrap();
    adagrad.validate().unwrap();
}

#[test]
fn invalid_values_name_their_key() {
    assert_eq!(
        invalid("embedding_dim = 0\n"),
        "model.embedding_dim must be > 0"
    );
    assert_eq!(
        invalid("[backbone]\ntype = \"mmoe\"\nexperts = 0\nhidden = [8]\n"),
        "model.backbone.experts must be > 0"
    );
    assert_eq!(
        invalid("[backbone]\ntype = \"ple\"\nshared_experts = 0\nhidden = [8]\n"),
        "model.backbone.shared_experts must be > 0"
    );
    assert_eq!(
        invalid("[backbone]\ntype = \"ple\"\nlevels = 0\nhidden = [8]\n"),
        "model.backbone.levels must be > 0"
    );
    assert_eq!(
        invalid("[backbone]\ntype = \"shared-bottom\"\nhidden = []\n"),
        "model.backbone.hidden must not be empty"
    );
    assert_eq!(
        invalid("[backbone]\ntype = \"cross-stitch\"\nhidden = [8, 0]\n"),
        "model.backbone.hidden[1] must be > 0"
    );
    assert_eq!(
        invalid("[tower]\nhidden = []\n"),
        "model.tower.hidden must not be empty"
    );
    assert_eq!(
        invalid("field_dims = { item = 0 }\n"),
        "model.field_dims.item must be > 0"
    );
    assert!(invalid("dropout = 1.0\n").starts_with("model.dropout must be in [0, 1)"));
    assert!(invalid("[tower]\nhidden = [4]\ndropout = -0.1\n").starts_with("model.tower.dropout"));
    assert!(invalid("embedding_init_std = -1.0\n").starts_with("model.embedding_init_std"));
    assert_eq!(
        invalid("[teacher]\nhidden = [8, 0]\n"),
        "model.teacher.hidden[1] must be > 0"
    );
    let bad = TeacherConfig {
        hidden: vec![0],
        ..TeacherConfig::default()
    };
    let err = MultiTaskModel::new(&ModelConfig::default(), &schema(), 2, 0)
        .unwrap()
        .with_teachers(&bad, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.teacher.hidden[0] must be > 0"), "{err}");
    let bad: SparseOptimConfig = serde_json::from_str(r#"{"type":"adam","beta2":1.0}"#).unwrap();
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .starts_with("beta2 must be in [0, 1)")
    );
}

#[test]
fn field_dims_must_name_a_field_and_tasks_must_exist() {
    let cfg = parse("field_dims = { nope = 4 }\n").unwrap();
    let e = MultiTaskModel::new(&cfg, &schema(), 2, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.field_dims.nope"), "{e}");
    let e = MultiTaskModel::new(&ModelConfig::default(), &schema(), 0, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least one task"), "{e}");
}

/// The CPU is the model's one device: `new_on` with it builds what `new` builds. Other devices
/// are refused before anything is built; without a CUDA or Metal build of candle none can be
/// constructed here, so that check is a unit test on the device's location (`src/device.rs`).
#[test]
fn new_on_the_cpu_is_new() {
    let cfg = ModelConfig::default();
    let on = MultiTaskModel::new_on(&cfg, &schema(), 2, 5, &Device::Cpu).unwrap();
    let plain = MultiTaskModel::new(&cfg, &schema(), 2, 5).unwrap();
    assert!(on.params().device().is_cpu());
    let (a, b) = (on.save_tensors().unwrap(), plain.save_tensors().unwrap());
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        let flat = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(t), flat(&b[name]), "{name}");
    }
}
