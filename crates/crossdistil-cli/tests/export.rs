//! `crossdistil export` end to end: a small run of every backbone trained, exported, and its
//! sample scored by tract-onnx (in Rust) and onnxruntime (in Python, when it can be installed)
//! against crossdistil's own scores.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::{Array, Float32Array, Int64Array, UInt64Array};
use crossdistil_data::prepare::{PrepareOptions, synthetic};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tract_onnx::prelude::*;

const TOLERANCE: f32 = 1e-5;

fn crossdistil(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crossdistil"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn data(dir: &Path) {
    let o = synthetic::SyntheticOptions {
        rows: 3000,
        fields: 3,
        vocab: 50,
        tasks: 2,
        dense: 2,
        ..Default::default()
    };
    synthetic::prepare(&o, &PrepareOptions::new(dir, 1), &|_| {}).unwrap();
}

/// The backbones, each with a small configuration of its own.
const BACKBONES: [(&str, &str); 6] = [
    ("shared-bottom", "type = \"shared-bottom\"\nhidden = [8]"),
    (
        "single-task",
        "type = \"single-task\"\nhidden = [8, 4]\nactivation = \"tanh\"",
    ),
    ("mmoe", "type = \"mmoe\"\nexperts = 3\nhidden = [8]"),
    (
        "ple",
        "type = \"ple\"\nlevels = 2\nhidden = [8]\nactivation = \"gelu\"",
    ),
    ("cross-stitch", "type = \"cross-stitch\"\nhidden = [8, 6]"),
    ("esmm", "type = \"esmm\"\nhidden = [8]"),
];

fn config(backbone: &str, train: &str) -> String {
    format!(
        "[model]\nembedding_dim = 4\ndropout = 0.1\n[model.backbone]\n{backbone}\n\
         [model.tower]\nhidden = [4]\n[train]\nepochs = 1\nbatch_size = 256\n{train}\n\
         [distill]\nmode = \"crossdistil\"\n"
    )
}

/// Trains the run `name` of `backbone` on `data` in `root`, with the `[train]` keys `train`.
fn train(root: &Path, data: &Path, name: &str, backbone: &str, train: &str) -> PathBuf {
    let cfg = root.join(format!("{name}.toml"));
    std::fs::write(&cfg, config(backbone, train)).unwrap();
    let run = root.join(name);
    ok(&crossdistil(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]));
    run
}

/// The columns of a Parquet file by name: integers as i64, floats as f32.
#[derive(Default)]
struct Columns {
    ints: HashMap<String, Vec<i64>>,
    floats: HashMap<String, Vec<f32>>,
    row_ids: Vec<u64>,
}

fn read_parquet(path: &Path) -> Columns {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut c = Columns::default();
    for batch in reader {
        let batch = batch.unwrap();
        for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name().clone();
            let any = col.as_any();
            if let Some(a) = any.downcast_ref::<Int64Array>() {
                c.ints.entry(name).or_default().extend(a.values().iter());
            } else if let Some(a) = any.downcast_ref::<Float32Array>() {
                c.floats.entry(name).or_default().extend(a.values().iter());
            } else if let Some(a) = any.downcast_ref::<UInt64Array>()
                && name == "row_id"
            {
                c.row_ids.extend(a.values().iter());
            }
        }
    }
    c
}

/// The columns `<input>_0`, `<input>_1`, ... of `map` as `[rows, k]` row-major.
fn gather<T: Copy>(map: &HashMap<String, Vec<T>>, input: &str) -> (usize, Vec<T>) {
    let mut cols = Vec::new();
    while let Some(c) = map.get(&format!("{input}_{}", cols.len())) {
        cols.push(c);
    }
    assert!(!cols.is_empty(), "no column {input}_0");
    let rows = cols[0].len();
    let v = (0..rows)
        .flat_map(|r| cols.iter().map(move |c| c[r]))
        .collect();
    (cols.len(), v)
}

/// tract's scores of the sample of `onnx`, compared with the sample's `score_<task>`: the
/// largest absolute difference.
fn tract_diff(path: &Path) -> f32 {
    let onnx_path = path;
    let out = onnx_path.with_extension("");
    let sample = read_parquet(&out.with_extension("sample.parquet"));
    let enc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.with_extension("encoders.json")).unwrap())
            .unwrap();
    let mut model = onnx().model_for_path(onnx_path).unwrap();
    let mut inputs: TVec<TValue> = tvec![];
    let rows = sample.row_ids.len();
    for (i, spec) in enc["inputs"].as_array().unwrap().iter().enumerate() {
        let name = spec["name"].as_str().unwrap();
        let (fact, t) = if spec["kind"] == "dense" {
            let (k, v) = gather(&sample.floats, name);
            (
                InferenceFact::dt_shape(f32::datum_type(), [rows, k]),
                Tensor::from_shape(&[rows, k], &v).unwrap(),
            )
        } else {
            let (k, v) = gather(&sample.ints, name);
            (
                InferenceFact::dt_shape(i64::datum_type(), [rows, k]),
                Tensor::from_shape(&[rows, k], &v).unwrap(),
            )
        };
        model = model.with_input_fact(i, fact).unwrap();
        inputs.push(t.into_tvalue());
    }
    let names: Vec<String> = model
        .output_outlets()
        .unwrap()
        .iter()
        .map(|&o| {
            model
                .outlet_label(o)
                .map_or_else(|| model.node(o.node).name.clone(), str::to_string)
        })
        .collect();
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    let outs = plan.run(inputs).unwrap();
    let mut worst = 0.0f32;
    for (name, o) in names.iter().zip(&outs) {
        let got = o.to_plain_array_view::<f32>().unwrap();
        let want = &sample.floats[&format!("score_{name}")];
        assert_eq!(got.len(), want.len(), "{name}");
        for (g, w) in got.iter().zip(want) {
            worst = worst.max((g - w).abs());
        }
    }
    worst
}

/// The sample's scores are `predict`'s scores of the same rows.
fn matches_predict(run: &Path, data: &Path, onnx: &Path) {
    let scores = onnx.with_file_name("scores.parquet");
    ok(&crossdistil(&[
        "predict",
        "--run",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        scores.to_str().unwrap(),
        "--split",
        "test",
        "--overwrite",
    ]));
    let predicted = read_parquet(&scores);
    let sample = read_parquet(&onnx.with_extension("sample.parquet"));
    let at: HashMap<u64, usize> = predicted
        .row_ids
        .iter()
        .enumerate()
        .map(|(i, &r)| (r, i))
        .collect();
    for task in ["task0", "task1"] {
        let p = &predicted.floats[task];
        let s = &sample.floats[&format!("score_{task}")];
        for (r, v) in sample.row_ids.iter().zip(s) {
            let d = (p[at[r]] - v).abs();
            assert!(d <= 1e-6, "{task} row {r}: predict {} sample {v}", p[at[r]]);
        }
    }
}

/// The virtual environment of the onnxruntime check, `target/onnx-venv`, installed on first
/// use; `None` (with the reason) when python3, venv or the package index is not available.
fn onnxruntime_python() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join("target/onnx-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".installed");
    if ready.is_file() {
        return Ok(python);
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
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "onnxruntime",
            "onnx",
            "pyarrow",
            "numpy",
        ]),
        "pip install onnxruntime onnx pyarrow numpy",
    )?;
    std::fs::write(&ready, "").map_err(|e| e.to_string())?;
    Ok(python)
}

#[test]
fn every_backbone_exports_and_scores_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    data(&d);
    let mut models = Vec::new();
    for (name, backbone) in BACKBONES {
        let run = train(tmp.path(), &d, name, backbone, "");
        let onnx = tmp.path().join(format!("{name}.onnx"));
        // The data folder defaults to the one the run trained on.
        let text = ok(&crossdistil(&[
            "export",
            "--run",
            run.to_str().unwrap(),
            "--onnx",
            onnx.to_str().unwrap(),
        ]));
        assert!(
            text.contains("inputs: sparse, dense; outputs: task0, task1; sample: 300 test rows"),
            "{text}"
        );
        assert!(!onnx.with_extension("onnx.data").exists());
        let diff = tract_diff(&onnx);
        println!("{name}: max |tract - crossdistil| = {diff:e}");
        assert!(diff <= TOLERANCE, "{name}: {diff}");
        matches_predict(&run, &d, &onnx);
        models.push(onnx);
    }

    // External data, forced on a small model, read back by tract.
    let run = tmp.path().join("mmoe");
    let onnx = tmp.path().join("mmoe-external.onnx");
    let text = ok(&crossdistil(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--onnx",
        onnx.to_str().unwrap(),
        "--data",
        d.to_str().unwrap(),
        "--external-data-above",
        "0",
        "--sample-rows",
        "100",
    ]));
    let data_file = tmp.path().join("mmoe-external.onnx.data");
    assert!(text.contains(data_file.to_str().unwrap()), "{text}");
    assert!(std::fs::metadata(&data_file).unwrap().len() > 0);
    assert!(text.contains("sample: 100 test rows"), "{text}");
    let diff = tract_diff(&onnx);
    println!("mmoe, external data: max |tract - crossdistil| = {diff:e}");
    assert!(diff <= TOLERANCE, "{diff}");
    models.push(onnx);

    // A run trained streaming: the sample's rows are read a row group at a time.
    let run = train(tmp.path(), &d, "streamed", BACKBONES[2].1, "stream = true");
    let onnx = tmp.path().join("streamed.onnx");
    let text = ok(&crossdistil(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--onnx",
        onnx.to_str().unwrap(),
    ]));
    assert!(text.contains("sample: 300 test rows"), "{text}");
    let diff = tract_diff(&onnx);
    println!("mmoe, streamed: max |tract - crossdistil| = {diff:e}");
    assert!(diff <= TOLERANCE, "{diff}");
    matches_predict(&run, &d, &onnx);
    models.push(onnx);

    // A teacher-only feature (`model.teacher.inputs`): the served graph reads the other one.
    let backbone = format!("{}\n[model.teacher]\ninputs = [\"d1\"]", BACKBONES[2].1);
    let run = train(tmp.path(), &d, "privileged", &backbone, "");
    let onnx = tmp.path().join("privileged.onnx");
    ok(&crossdistil(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--onnx",
        onnx.to_str().unwrap(),
    ]));
    let enc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("privileged.encoders.json")).unwrap(),
    )
    .unwrap();
    let dense = enc["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "dense")
        .unwrap();
    assert_eq!(dense["features"], serde_json::json!(["d0"]), "{enc}");
    assert_eq!(enc["dense"].as_array().unwrap().len(), 1, "{enc}");
    assert_eq!(enc["dense"][0]["feature"], "d0", "{enc}");
    let sample = read_parquet(&tmp.path().join("privileged.sample.parquet"));
    assert!(sample.floats.contains_key("dense_0") && !sample.floats.contains_key("dense_1"));
    let diff = tract_diff(&onnx);
    println!("mmoe, a teacher-only feature: max |tract - crossdistil| = {diff:e}");
    assert!(diff <= TOLERANCE, "{diff}");
    matches_predict(&run, &d, &onnx);
    models.push(onnx);

    match onnxruntime_python() {
        Err(why) => println!("SKIPPED: onnxruntime check: {why}"),
        Ok(python) => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../crossdistil-onnx/tests/check_onnxruntime.py");
            let out = Command::new(python)
                .arg(script)
                .arg(TOLERANCE.to_string())
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
    }
}

#[test]
fn existing_files_and_missing_runs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    data(&d);
    let run = train(tmp.path(), &d, "run", BACKBONES[0].1, "");
    let onnx = tmp.path().join("m.onnx");
    let (r, o) = (run.to_str().unwrap(), onnx.to_str().unwrap());
    ok(&crossdistil(&[
        "export",
        "--run",
        r,
        "--onnx",
        o,
        "--external-data-above",
        "0",
    ]));
    let data_file = tmp.path().join("m.onnx.data");
    assert!(data_file.is_file());

    // A second export into the same files is refused, naming the file, and changes nothing.
    let before = std::fs::read(&onnx).unwrap();
    let out = crossdistil(&["export", "--run", r, "--onnx", o]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(o) && err.contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read(&onnx).unwrap(), before);

    // With --overwrite it replaces them; the external data the new model does not use goes.
    let text = ok(&crossdistil(&[
        "export",
        "--run",
        r,
        "--onnx",
        o,
        "--overwrite",
    ]));
    assert!(!data_file.exists(), "{text}");
    for f in ["m.onnx", "m.sample.parquet", "m.encoders.json"] {
        assert!(tmp.path().join(f).is_file(), "{f}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The encoders file documents every feature.
    let enc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("m.encoders.json")).unwrap())
            .unwrap();
    assert_eq!(enc["format"], "crossdistil-encoders/1");
    assert_eq!(enc["sparse"].as_array().unwrap().len(), 3);
    assert_eq!(enc["sparse"][1]["column"], 1);
    assert_eq!(enc["sparse"][0]["vocabulary"]["oov_id"], 0);
    assert_eq!(enc["dense"][1]["formula"], "(x - mean) / std");

    // A missing run is refused, naming it.
    let missing = tmp.path().join("nope");
    let out = crossdistil(&[
        "export",
        "--run",
        missing.to_str().unwrap(),
        "--onnx",
        tmp.path().join("x.onnx").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    let out = crossdistil(&[
        "export",
        "--run",
        missing.to_str().unwrap(),
        "--data",
        d.to_str().unwrap(),
        "--onnx",
        tmp.path().join("x.onnx").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    assert!(!tmp.path().join("x.onnx").exists());
}
