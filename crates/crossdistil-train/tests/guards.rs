//! Settings that are refused at load, and runs that are stopped when they diverge: every key
//! validated with its name in the message, `--resume` naming the keys that differ, the
//! divergence guard, and no non-finite score ever written.

mod common;

use std::path::Path;

use candle_core::Tensor;
use crossdistil_data::Dataset;
use crossdistil_train::build_model;
use crossdistil_train::check_parameters;
use crossdistil_train::predict;
use crossdistil_train::{FitOptions, RunConfig, TrainError, fit};

use common::synthetic_set;

const SMALL: &str = r#"
[model]
embedding_dim = 8
[model.backbone]
type = "shared-bottom"
hidden = [16]
[model.tower]
hidden = [8]
[train]
epochs = 2
batch_size = 256
lr = 0.01
patience = 0
seed = 3
[distill]
mode = "crossdistil"
"#;

/// `SMALL` with the line `extra` (`key = value`) in the section `section`: in place of the
/// key's line when `SMALL` sets the key once, else inserted after the section's header.
fn with(section: &str, extra: &str) -> String {
    let key = extra.split(" =").next().unwrap_or_default();
    let lines: Vec<&str> = SMALL.lines().collect();
    let same: Vec<usize> = (0..lines.len())
        .filter(|&i| !key.is_empty() && lines[i].starts_with(&format!("{key} =")))
        .collect();
    if let [i] = same[..] {
        let mut out: Vec<&str> = lines.clone();
        out[i] = extra;
        return out.join("\n");
    }
    SMALL.replacen(
        &format!("[{section}]\n"),
        &format!("[{section}]\n{extra}\n"),
        1,
    )
}

/// The error `RunConfig::from_file` gives for `text`, written to a file.
fn load_error(text: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("run.toml");
    std::fs::write(&path, text).unwrap();
    match RunConfig::from_file(&path) {
        Ok(cfg) => panic!("accepted: {cfg:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("run.toml"), "names the file: {msg}");
            msg
        }
    }
}

#[test]
fn the_small_config_is_valid() {
    let cfg: RunConfig = toml::from_str(SMALL).unwrap();
    cfg.validate().unwrap();
}

#[test]
fn distill_weights_that_would_turn_distillation_off_are_refused_naming_the_key() {
    for (line, key) in [
        ("alpha = -1.0", "distill.alpha"),
        ("alpha = nan", "distill.alpha"),
        ("beta = inf", "distill.beta"),
        ("gamma = -0.5", "distill.gamma"),
        ("temperature = 0.0", "distill.temperature"),
        ("calibrator_lr = nan", "distill.calibrator_lr"),
        (
            "error_correction = { blend = 7.0 }",
            "distill.error_correction",
        ),
        ("ranking = { margin = -1.0 }", "distill.ranking.margin"),
        ("task_alpha = [1.0, -1.0]", "distill.task_alpha[1]"),
        ("min_confidence = 1.0", "distill.min_confidence"),
        ("min_confidence = -0.1", "distill.min_confidence"),
    ] {
        let msg = load_error(&with("distill", line));
        assert!(msg.contains(key), "{line}: {msg}");
    }
}

#[test]
fn sizes_past_their_bounds_are_refused_naming_the_key() {
    for (section, line, key) in [
        ("train", "workers = 100000", "train.workers"),
        ("train", "workers = 300", "train.workers"), // more workers than rows in a batch
        (
            "train",
            "eval_batch_size = 100000000",
            "train.eval_batch_size",
        ),
        ("train", "epochs = 0", "train.epochs"),
        (
            "train",
            "divergence_factor = 0.5",
            "train.divergence_factor",
        ),
        (
            "train",
            "divergence_factor = nan",
            "train.divergence_factor",
        ),
        ("train", "task_weights = [0.0, 0.0]", "train.task_weights"),
        ("model", "embedding_dim = 10000000", "model.embedding_dim"),
        ("model.backbone", "experts = 3", "model.backbone"), // not a key of shared-bottom
        ("model.tower", "dropout = 1.5", "model.tower.dropout"),
    ] {
        let msg = load_error(&with(section, line));
        assert!(msg.contains(key), "{line}: {msg}");
    }
    let mut hidden = with("model.tower", "");
    hidden = hidden.replace("hidden = [8]", "hidden = [8, 100000]");
    let msg = load_error(&hidden);
    assert!(msg.contains("model.tower.hidden[1]"), "{msg}");
}

#[test]
fn resume_compares_the_whole_configuration_and_names_the_keys_that_differ() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic_set(&data, 2000);
    let run = tmp.path().join("run");
    let cfg: RunConfig = toml::from_str(SMALL).unwrap();
    let stopped = fit(
        &data,
        &cfg,
        &run,
        &FitOptions {
            stop_after_epochs: Some(1),
            ..Default::default()
        },
    );
    assert!(stopped.is_err(), "stops after one epoch as asked");

    let mut changed = cfg.clone();
    changed.distill.alpha = 0.25;
    changed.distill.error_correction = crossdistil_loss::ErrorCorrection::None;
    let resume = FitOptions {
        resume: true,
        ..Default::default()
    };
    let err = fit(&data, &changed, &run, &resume).unwrap_err().to_string();
    assert!(err.contains("2 key(s)"), "{err}");
    assert!(
        err.contains("distill.alpha: run has 0.5, given 0.25"),
        "{err}"
    );
    assert!(err.contains("distill.error_correction"), "{err}");
    assert!(!err.contains("train."), "only the keys that differ: {err}");

    // The run's own configuration (tasks left empty, as in a config file) resumes.
    let report = fit(&data, &cfg, &run, &resume).unwrap();
    assert_eq!(report.epochs_run, 2);
}

#[test]
fn a_learning_rate_that_explodes_the_loss_stops_the_run_as_diverged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic_set(&data, 3000);
    let mut cfg: RunConfig = toml::from_str(SMALL).unwrap();
    cfg.train.lr = 1e4;
    cfg.train.batch_size = 64;
    let err = fit(&data, &cfg, &tmp.path().join("run"), &FitOptions::default()).unwrap_err();
    assert!(matches!(err, TrainError::Diverged(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("diverged"), "{msg}");
    assert!(msg.contains("train.lr"), "says what to do: {msg}");

    // With the guard off the same run ends with exit 0 and a model that ranks at chance, the
    // case the guard exists for (or its loss turns non-finite, which stops it as well).
    cfg.train.divergence_factor = 0.0;
    match fit(
        &data,
        &cfg,
        &tmp.path().join("run-off"),
        &FitOptions::default(),
    ) {
        Ok(report) => {
            assert_eq!(report.epochs_run, 2);
            assert!(report.test["task0"].auc.unwrap() < 0.6, "{:?}", report.test);
        }
        Err(e) => assert!(matches!(e, TrainError::Diverged(_)), "{e}"),
    }
}

#[test]
fn non_finite_parameters_are_named_and_never_scored() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic_set(&data, 500);
    let ds = Dataset::load(&data).unwrap();
    let cfg: RunConfig = toml::from_str(SMALL).unwrap();
    let trained = build_model(&cfg, &ds).unwrap();
    let model = &trained.model;
    let rows: Vec<u32> = (0..ds.rows() as u32).collect();
    check_parameters(model, 0).unwrap();
    assert!(predict(model, &ds, &rows, 128).is_ok());

    let (name, var) = model
        .params()
        .vars()
        .into_iter()
        .find(|(n, _)| n.starts_with("tower0"))
        .expect("a tower parameter");
    let mut values = var
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    values[0] = f32::NAN;
    var.set(&Tensor::from_vec(values, var.shape(), var.device()).unwrap())
        .unwrap();

    let err = check_parameters(model, 7).unwrap_err().to_string();
    assert!(err.contains(&format!("`{name}`")), "{err}");
    assert!(err.contains("after step 7"), "{err}");
    let err = predict(model, &ds, &rows, 128).unwrap_err().to_string();
    assert!(err.contains("row_id"), "{err}");
    assert!(err.contains("NaN"), "{err}");
}

#[test]
fn every_shipped_configuration_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            RunConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 20, "only {n} configurations in {}", dir.display());
}

/// Settings that depend on the data: one distillation factor per task, and teacher-only
/// inputs that name the data set's dense features.
#[test]
fn per_task_settings_and_teacher_inputs_are_checked_against_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic_set(&data, 500);
    let ds = Dataset::load(&data).unwrap();
    let cfg: RunConfig = toml::from_str(&with("distill", "task_alpha = [1.0, 0.0, 2.0]")).unwrap();
    let msg = cfg.task_indices(&ds.spec).unwrap_err().to_string();
    assert!(
        msg.contains("distill.task_alpha") && msg.contains("3 factors for 2 tasks"),
        "{msg}"
    );
    // Also when the configuration lists no tasks (every task of the data, in its order).
    let cfg: RunConfig = toml::from_str(&with("train", "task_weights = [1.0]")).unwrap();
    let msg = cfg.task_indices(&ds.spec).unwrap_err().to_string();
    assert!(msg.contains("train.task_weights"), "{msg}");
    let cfg: RunConfig = toml::from_str(&with("distill", "task_alpha = [1.0, 0.0]")).unwrap();
    assert_eq!(cfg.task_indices(&ds.spec).unwrap(), vec![0, 1]);
    let bad = format!("{SMALL}[model.teacher]\ninputs = [\"d9\"]\n");
    let cfg: RunConfig = toml::from_str(&bad).unwrap();
    let Err(e) = build_model(&cfg, &ds) else {
        panic!("an unknown teacher input was accepted");
    };
    let msg = e.to_string();
    assert!(
        msg.contains("no dense feature \"d9\"") && msg.contains("d0"),
        "{msg}"
    );
    let good = format!("{SMALL}[model.teacher]\ninputs = [\"d2\"]\n");
    let cfg: RunConfig = toml::from_str(&good).unwrap();
    let built = build_model(&cfg, &ds).unwrap();
    assert_eq!(built.model.input().n_dense(), 2);
}
