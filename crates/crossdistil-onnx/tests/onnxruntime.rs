//! Every backbone, with a multi-valued field, written by `write_files` and scored by
//! onnxruntime in Python (`check_onnxruntime.py`, in a virtual environment installed on first
//! use under `target/onnx-venv`): `SKIPPED` when python3, venv or the package index is not
//! available.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use crossdistil_data::{Encoders, FeatureNames, Norm, NormStats, Vocab, VocabKeys};
use crossdistil_model::{Activation, InputSchema};
use crossdistil_onnx::{EncodersFile, ExportOptions, ExportPaths, Sample, export, write_files};

/// Encoders of `schema`'s features (the values themselves do not matter to the graph).
fn encoders(schema: &InputSchema) -> Encoders {
    let vocab = |n: usize| Vocab::new(VocabKeys::Int((1..n as i64).collect()), false);
    Encoders {
        sparse: schema.sparse.iter().map(|(_, n)| vocab(*n)).collect(),
        multi: schema.multi.iter().map(|(_, n)| vocab(*n)).collect(),
        dense: (0..schema.n_dense)
            .map(|_| NormStats {
                norm: Norm::Standard,
                mean: 0.0,
                std: 1.0,
                min: 0.0,
                max: 1.0,
            })
            .collect(),
        names: FeatureNames {
            sparse: schema.sparse.iter().map(|(n, _)| n.clone()).collect(),
            multi: schema.multi.iter().map(|(n, _)| n.clone()).collect(),
            dense: dense_names(),
        },
    }
}

/// The virtual environment's python, installed on first use; the reason when it cannot be.
fn onnxruntime_python() -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/onnx-venv");
    let ready = venv.join(".installed");
    if ready.is_file() {
        return Ok(venv.join("bin/python"));
    }
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        match cmd.output() {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "{what} failed: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )),
            Err(e) => Err(format!("{what}: {e}")),
        }
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    )?;
    let pip = venv.join("bin/pip");
    let packages = ["onnxruntime", "onnx", "pyarrow", "numpy"];
    run(
        Command::new(pip)
            .args(["install", "--quiet"])
            .args(packages),
        "pip install onnxruntime onnx pyarrow numpy",
    )?;
    std::fs::write(&ready, "").map_err(|e| e.to_string())?;
    Ok(venv.join("bin/python"))
}

#[test]
fn onnxruntime_scores_every_backbone_alike() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let mut models = Vec::new();
    for act in [Activation::Relu, Activation::Gelu] {
        for (i, (name, backbone)) in backbones(act).into_iter().enumerate() {
            let model = random_model(backbone, act, &schema, 2, 20 + i as u64);
            let tasks = task_names(2);
            // Every other model with its tables as external data.
            let options = ExportOptions {
                external_data_above: if i % 2 == 0 { u64::MAX } else { 0 },
            };
            let onnx = export(&model, &tasks, &dense_names(), options).unwrap();
            let batches = random_batches(&schema, 200, 64, 9);
            let sample = Sample::of_batches(&model, onnx.inputs(), &tasks, batches).unwrap();
            let enc = EncodersFile::new(&encoders(&schema), onnx.inputs()).unwrap();
            let path = dir.path().join(format!("{name}-{act:?}.onnx"));
            let paths = ExportPaths::beside(&path);
            let written = write_files(&paths, &onnx, &sample, &enc, false).unwrap();
            assert_eq!(written.files.last(), Some(&path));
            assert_eq!(paths.data.exists(), i % 2 == 1);
            models.push(path);
        }
    }
    let python = match onnxruntime_python() {
        Ok(p) => p,
        Err(why) => {
            println!("SKIPPED: onnxruntime check: {why}");
            return;
        }
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_onnxruntime.py");
    let out = Command::new(python)
        .arg(script)
        .arg("1e-5")
        .args(&models)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.lines().count(), models.len(), "{text}");
}
