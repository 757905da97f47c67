//! Per-row sample weights (`weight = "column"` in `dataset.toml`), trained end to end on data
//! whose weighted answer is known: for each value of one feature, the model's probability
//! settles at the weighted positive rate `sum w y / sum w`, not at the plain rate.

use std::path::Path;

use crossdistil_data::{ColumnData, Dataset, DatasetSpec, LabelSpec, SparseSpec, Table};
use crossdistil_train::{FitOptions, RunConfig, build_model, fit, load_weights, predict};

/// Rows of value `a`: half positives of weight 3, half negatives of weight 1 (weighted rate
/// 0.75, plain rate 0.5). Rows of value `b`: a quarter positives, three quarters negatives, all
/// of weight 1, plus as many positives of weight 0 as there are weighted positives (weighted
/// rate 0.25, plain rate 0.4).
fn write_data(dir: &Path, weight_column: bool) {
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut w = Vec::new();
    for i in 0..2000 {
        x.push("a".to_string());
        y.push((i % 2 == 0) as u8);
        w.push(if i % 2 == 0 { 3.0f32 } else { 1.0 });
    }
    for i in 0..2000 {
        x.push("b".to_string());
        y.push((i % 4 == 0) as u8);
        w.push(1.0);
    }
    for _ in 0..500 {
        x.push("b".to_string());
        y.push(1);
        w.push(0.0);
    }
    let n = x.len();
    let split = (0..n)
        .map(|i| match i % 10 {
            0 => "valid",
            1 => "test",
            _ => "train",
        })
        .map(String::from)
        .collect();
    let mut table = Table::new();
    table.push("row_id", ColumnData::RowId((0..n as u64).collect()));
    table.push("split", ColumnData::Str(split));
    table.push("x", ColumnData::Str(x));
    table.push("y", ColumnData::Label(y));
    table.push("w", ColumnData::Float(w));
    let spec = DatasetSpec {
        name: "weighted".into(),
        source: "test".into(),
        data: "data.parquet".into(),
        row_id: "row_id".into(),
        split: "split".into(),
        user: None,
        labels: vec![LabelSpec {
            name: "y".into(),
            description: String::new(),
        }],
        sparse: vec![SparseSpec {
            name: "x".into(),
            min_count: 1,
            max_size: None,
            hash_buckets: None,
        }],
        multi: vec![],
        dense: vec![],
        extra: if weight_column {
            vec![]
        } else {
            vec!["w".into()]
        },
        weight: weight_column.then(|| "w".into()),
        footer_crc32: None,
        parts: vec![],
    };
    crossdistil_data::write_dataset(dir, spec, &table).unwrap();
}

/// The mean predicted probability of the rows of value `a` and of value `b`, after training.
fn trained_rates(weight_column: bool, train: &str) -> (f64, f64) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_data(&data, weight_column);
    let cfg: RunConfig = toml::from_str(&format!(
        r#"
        [model]
        embedding_dim = 2
        dropout = 0.0
        [model.backbone]
        type = "shared-bottom"
        hidden = [4]
        [train]
        epochs = 8
        batch_size = 256
        lr = 0.02
        patience = 0
        {train}
        "#
    ))
    .unwrap();
    let run = tmp.path().join("run");
    fit(&data, &cfg, &run, &FitOptions::default()).unwrap();
    let ds = Dataset::load(&data).unwrap();
    let mut built = build_model(&cfg, &ds).unwrap();
    let m = crossdistil_train::RunDir::new(&run).manifest().unwrap();
    load_weights(&mut built.model, &run.join(m.last.unwrap().file)).unwrap();
    let rows: Vec<u32> = (0..ds.rows() as u32).collect();
    let p = &predict(&built.model, &ds, &rows, 1024).unwrap()[0];
    let ids = &ds.sparse[0].ids;
    let a_id = ids[0];
    let mean = |want_a: bool| {
        let v: Vec<f64> = rows
            .iter()
            .filter(|&&r| (ids[r as usize] == a_id) == want_a)
            .map(|&r| f64::from(p[r as usize]))
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    (mean(true), mean(false))
}

#[test]
fn the_model_learns_the_weighted_positive_rate() {
    // Two workers cut each batch in two parts, and a streamed set reads the weights with
    // each row group: the weights travel with the rows.
    for train in ["", "workers = 2", "stream = true\nshuffle_buffer = 1000"] {
        let (a, b) = trained_rates(true, train);
        assert!(
            (a - 0.75).abs() < 0.03,
            "{train}: value a: {a:.3}, weighted rate 0.75"
        );
        assert!(
            (b - 0.25).abs() < 0.03,
            "{train}: value b: {b:.3}, weighted rate 0.25"
        );
    }
}

#[test]
fn without_the_weight_column_the_model_learns_the_plain_rate() {
    let (a, b) = trained_rates(false, "");
    assert!((a - 0.5).abs() < 0.03, "value a: {a:.3}, plain rate 0.5");
    assert!((b - 0.4).abs() < 0.03, "value b: {b:.3}, plain rate 0.4");
}
