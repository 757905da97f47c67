//! Every backbone and activation exported, run by tract-onnx, against the model's own scores.

mod common;

use common::*;
use crossdistil_model::Activation;
use crossdistil_onnx::{ExportOptions, Sample, export};

const TOLERANCE: f32 = 1e-5;

/// Exports `model`, writes it to a temporary folder and returns the largest difference between
/// tract's scores and the model's over 300 random rows, and whether external data was written.
fn check(model: &crossdistil_model::MultiTaskModel, tasks: &[String], above: u64) -> (f32, bool) {
    let onnx = export(
        model,
        tasks,
        &dense_names(),
        ExportOptions {
            external_data_above: above,
        },
    )
    .unwrap();
    let batches = random_batches(&schema(), 300, 64, 5);
    let sample = Sample::of_batches(model, onnx.inputs(), tasks, batches).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    let data = onnx.write(&path).unwrap();
    let scored = tract_scores(&path, &sample);
    (max_abs_diff(&sample, &scored), data.is_some())
}

#[test]
fn every_backbone_and_activation_matches_in_tract() {
    let acts = [
        Activation::Relu,
        Activation::Gelu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Identity,
    ];
    for act in acts {
        for (name, backbone) in backbones(act) {
            for n_tasks in [1, 3] {
                let model = random_model(backbone.clone(), act, &schema(), n_tasks, 11);
                let (diff, external) = check(&model, &task_names(n_tasks), u64::MAX);
                println!("{name} {act:?} {n_tasks} tasks: max |tract - crossdistil| = {diff:e}");
                assert!(!external);
                assert!(
                    diff <= TOLERANCE,
                    "{name} with {act:?}, {n_tasks} tasks: {diff}"
                );
            }
        }
    }
}

#[test]
fn external_data_is_read_back() {
    let (name, backbone) = backbones(Activation::Relu).remove(3);
    let model = random_model(backbone, Activation::Relu, &schema(), 2, 3);
    let (diff, external) = check(&model, &task_names(2), 0);
    assert!(external, "{name}: a threshold of 0 writes external data");
    assert!(diff <= TOLERANCE, "{name}: {diff}");
}

/// The check above fails on a model that differs: a changed weight after the export moves the
/// sample's scores away from the graph's.
#[test]
fn the_comparison_can_fail() {
    let (_, backbone) = backbones(Activation::Relu).remove(2);
    let model = random_model(backbone, Activation::Relu, &schema(), 2, 4);
    let tasks = task_names(2);
    let onnx = export(&model, &tasks, &dense_names(), ExportOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    onnx.write(&path).unwrap();
    drop(onnx);
    let (_, var) = model
        .params()
        .vars()
        .into_iter()
        .find(|(n, _)| n == "tower1.out.bias")
        .unwrap();
    var.set(&(var.as_tensor() + 1.0).unwrap()).unwrap();
    let batches = random_batches(&schema(), 50, 50, 6);
    let inputs = export(&model, &tasks, &dense_names(), ExportOptions::default())
        .unwrap()
        .inputs()
        .to_vec();
    let sample = Sample::of_batches(&model, &inputs, &tasks, batches).unwrap();
    let diff = max_abs_diff(&sample, &tract_scores(&path, &sample));
    assert!(diff > 1e-3, "{diff}");
}

#[test]
fn tasks_that_do_not_fit_the_model_are_refused() {
    let (_, backbone) = backbones(Activation::Relu).remove(0);
    let model = random_model(backbone, Activation::Relu, &schema(), 2, 1);
    let e = export(
        &model,
        &task_names(3),
        &dense_names(),
        ExportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("the model has 2 tasks"), "{e}");
    let clash = ["click".to_string(), "dense".to_string()];
    let e = export(&model, &clash, &dense_names(), ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("`dense` is used twice"), "{e}");
    let e = export(&model, &task_names(2), &[], ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 dense features"), "{e}");
}
