//! Training, evaluation and prediction on a data set read a row group at a time
//! (`[train] stream = true`): the same results as the in-memory path when the shuffle buffer
//! holds the whole train split, every train row once per epoch when it does not, and scores
//! written per part file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt64Type};
use crossdistil_data::prepare::{PrepareOptions, synthetic};
use crossdistil_data::{DataSource, Dataset, DatasetSpec, Split, read_columns};
use crossdistil_train::{
    BatchSource, FitOptions, RunConfig, ShuffledRows, StreamedRows, fit, open_run, open_run_with,
};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// Synthetic data in `dir/one` (one file) and the same rows in `dir/parts` (three part files
/// of row groups of 500 rows, listed as another tool would write them).
fn data(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (one, parts) = (dir.join("one"), dir.join("parts"));
    let o = synthetic::SyntheticOptions {
        rows: 4000,
        fields: 4,
        vocab: 150,
        tasks: 2,
        dense: 2,
        ..Default::default()
    };
    synthetic::prepare(&o, &PrepareOptions::new(&one, 5), &|_| {}).unwrap();
    let spec = DatasetSpec::read(&one).unwrap();
    let mut columns = spec.input_columns();
    columns.extend(spec.extra.iter().map(String::as_str));
    let batches = read_columns(&one.join(&spec.data), &columns).unwrap();
    assert_eq!(batches.len(), 1);
    let all = &batches[0];
    std::fs::create_dir_all(parts.join("data")).unwrap();
    let per = all.num_rows().div_ceil(3);
    for i in 0..3 {
        let part = all.slice(i * per, per.min(all.num_rows() - i * per));
        let file = std::fs::File::create(parts.join(format!("data/part-{i:05}.parquet"))).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(500))
            .build();
        let mut w = ArrowWriter::try_new(file, part.schema(), Some(props)).unwrap();
        w.write(&part).unwrap();
        w.close().unwrap();
    }
    let mut s = spec.clone();
    s.data = "data".into();
    s.footer_crc32 = None;
    s.write(&parts).unwrap();
    (one, parts)
}

const CONFIG: &str = r#"
[model]
embedding_dim = 8
dropout = 0.1
[model.backbone]
type = "mmoe"
experts = 2
hidden = [16]
[model.tower]
hidden = [8]
[train]
epochs = 3
batch_size = 128
lr = 0.01
patience = 0
seed = 9
"#;

fn config(extra: &str) -> RunConfig {
    let text = CONFIG.replace("[train]\n", &format!("[train]\n{extra}\n"));
    RunConfig::from_toml(&text).unwrap()
}

fn quiet() -> FitOptions {
    FitOptions {
        progress: false,
        ..Default::default()
    }
}

#[test]
fn a_buffer_as_large_as_the_split_gives_the_in_memory_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, parts) = data(tmp.path());
    let memory = fit(&one, &config(""), &tmp.path().join("memory"), &quiet()).unwrap();
    for (name, dir) in [("stream-one", &one), ("stream-parts", &parts)] {
        let cfg = config("stream = true\nshuffle_buffer = 100000\nreaders = 3");
        let streamed = fit(dir, &cfg, &tmp.path().join(name), &quiet()).unwrap();
        assert_eq!(streamed.valid, memory.valid, "{name}");
        assert_eq!(streamed.test, memory.test, "{name}");
        assert_eq!(streamed.steps, memory.steps, "{name}");
    }
}

/// Every row as its sparse ids and labels, to compare row multisets.
fn rows_of_batches(source: &dyn BatchSource, epoch: usize) -> (usize, BTreeMap<String, usize>) {
    let mut rows = BTreeMap::new();
    let mut batches = 0;
    for b in source.epoch(epoch).unwrap() {
        let b = b.unwrap();
        batches += 1;
        let (ns, nt) = (b.sparse.len() / b.size(), b.labels.len() / b.size());
        for r in 0..b.size() {
            let key = format!(
                "{:?}{:?}",
                &b.sparse[r * ns..(r + 1) * ns],
                &b.labels[r * nt..(r + 1) * nt]
            );
            *rows.entry(key).or_insert(0) += 1;
        }
    }
    (batches, rows)
}

#[test]
fn a_small_buffer_visits_every_train_row_once_per_epoch_in_a_seeded_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, parts) = data(tmp.path());
    let ds = Dataset::load(&one).unwrap();
    let memory = ShuffledRows::new(&ds, ds.split_rows(Split::Train), 128, 9);
    let source = Arc::new(DataSource::open(&parts).unwrap());
    let encoders = Arc::new(ds.encoders.clone());
    let streamed = StreamedRows::new(source, encoders, Split::Train, 128, 9, 700, 2).unwrap();
    assert_eq!(streamed.rows(), ds.split_rows(Split::Train).len());
    let (n_memory, want) = rows_of_batches(&memory, 0);
    for epoch in 0..2 {
        let (n, got) = rows_of_batches(&streamed, epoch);
        assert_eq!(got, want, "epoch {epoch}: the same rows, each once");
        assert_eq!(n, n_memory, "only the last batch is short");
        assert_eq!(Some(n), streamed.batches_per_epoch());
    }
    // Seeded: the same epoch gives the same batches; another epoch another order.
    let first = |e| streamed.epoch(e).unwrap().next().unwrap().unwrap().sparse;
    assert_eq!(first(0), first(0));
    assert_ne!(first(0), first(1));
}

#[test]
fn a_streamed_run_resumes_to_the_uninterrupted_report() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, parts) = data(tmp.path());
    let cfg = config("stream = true\nshuffle_buffer = 900");
    let whole = fit(&parts, &cfg, &tmp.path().join("whole"), &quiet()).unwrap();
    let run = tmp.path().join("cut");
    let stop = FitOptions {
        stop_after_epochs: Some(1),
        ..quiet()
    };
    assert!(fit(&parts, &cfg, &run, &stop).is_err(), "stopped as asked");
    let resume = FitOptions {
        resume: true,
        ..quiet()
    };
    let resumed = fit(&parts, &cfg, &run, &resume).unwrap();
    assert_eq!(resumed.valid, whole.valid);
    assert_eq!(resumed.test, whole.test);
}

/// `row_id` -> the first task's score, from a scores file.
fn scores(path: &Path) -> BTreeMap<u64, f32> {
    let batches = read_columns(path, &["row_id", "task0"]).unwrap();
    let mut out = BTreeMap::new();
    for b in batches {
        let ids = b.column(0).as_primitive::<UInt64Type>();
        let p = b.column(1).as_primitive::<Float32Type>();
        for i in 0..b.num_rows() {
            out.insert(ids.value(i), p.value(i));
        }
    }
    out
}

#[test]
fn streamed_eval_and_predict_match_the_loaded_ones_and_write_one_file_per_part() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, parts) = data(tmp.path());
    let run = tmp.path().join("run");
    fit(&parts, &config(""), &run, &quiet()).unwrap();

    let loaded = open_run(&run, &parts).unwrap();
    let streamed = open_run_with(&run, &parts, true).unwrap();
    assert!(!loaded.scores_in_parts() && streamed.scores_in_parts());
    assert_eq!(
        loaded.evaluate(Split::Test).unwrap(),
        streamed.evaluate(Split::Test).unwrap()
    );

    let one = tmp.path().join("scores.parquet");
    let n = loaded.write_scores(&one, Some(Split::Test), false).unwrap();
    let folder = tmp.path().join("scores");
    assert_eq!(
        streamed
            .write_scores(&folder, Some(Split::Test), false)
            .unwrap(),
        n
    );
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "part-00000.parquet",
            "part-00001.parquet",
            "part-00002.parquet"
        ]
    );
    let mut merged = BTreeMap::new();
    for f in &files {
        merged.extend(scores(&folder.join(f)));
    }
    assert_eq!(merged, scores(&one));
    // The folder is not overwritten unless asked.
    let err = streamed
        .write_scores(&folder, Some(Split::Test), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--overwrite"), "{err}");
    streamed
        .write_scores(&folder, Some(Split::Test), true)
        .unwrap();
}
