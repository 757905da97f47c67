//! Every kind of bad input gives an error naming the file, and where it applies the column and
//! the row; nothing is left behind.

mod common;

use std::path::Path;

use common::*;
use crossdistil_data::prepare::{self, synthetic::SyntheticOptions};
use crossdistil_data::write_dataset;
use crossdistil_data::{ColumnData, Table};
use crossdistil_data::{Dataset, DatasetSpec};

fn msg<T: std::fmt::Debug>(r: Result<T, crossdistil_data::DataError>) -> String {
    r.expect_err("expected an error").to_string()
}

/// A small valid canonical set; `edit` changes its table before it is written.
fn canonical(dir: &Path, edit: impl FnOnce(&mut Table)) {
    let n = 20;
    let mut t = Table::new();
    t.push("row_id", ColumnData::RowId((0..n as u64).collect()));
    let split = (0..n)
        .map(|i| ["train", "train", "train", "valid", "test"][i % 5].to_string())
        .collect();
    t.push("split", ColumnData::Str(split));
    t.push(
        "user",
        ColumnData::Int((0..n as i64).map(|i| i % 4).collect()),
    );
    t.push(
        "item",
        ColumnData::Str((0..n).map(|i| format!("i{}", i % 7)).collect()),
    );
    t.push(
        "price",
        ColumnData::Float((0..n).map(|i| i as f32).collect()),
    );
    t.push(
        "click",
        ColumnData::Label((0..n).map(|i| (i % 2) as u8).collect()),
    );
    t.push(
        "buy",
        ColumnData::Label((0..n).map(|i| u8::from(i % 4 == 1)).collect()),
    );
    edit(&mut t);
    let spec: DatasetSpec = toml::from_str(
        r#"
        name = "t"
        user = "user"
        [[label]]
        name = "click"
        [[label]]
        name = "buy"
        [[sparse]]
        name = "item"
        [[dense]]
        name = "price"
        "#,
    )
    .unwrap();
    write_dataset(dir, spec, &t).unwrap();
}

fn replace(t: &mut Table, name: &str, data: ColumnData) {
    let c = t.columns.iter_mut().find(|(n, _)| n == name).unwrap();
    c.1 = data;
}

#[test]
fn a_valid_canonical_set_loads() {
    let tmp = tempfile::tempdir().unwrap();
    canonical(tmp.path(), |_| {});
    let ds = Dataset::load(tmp.path()).unwrap();
    assert_eq!(ds.rows(), 20);
}

#[test]
fn missing_data_set_folder() {
    let m = msg(Dataset::load(Path::new("/nonexistent/ds")));
    assert!(
        m.contains("/nonexistent/ds/dataset.toml") && m.contains("cannot read"),
        "{m}"
    );
}

#[test]
fn missing_parquet_file() {
    let tmp = tempfile::tempdir().unwrap();
    canonical(tmp.path(), |_| {});
    std::fs::remove_file(tmp.path().join("data.parquet")).unwrap();
    let m = msg(Dataset::load(tmp.path()));
    assert!(
        m.contains("data.parquet") && m.contains("cannot open"),
        "{m}"
    );
}

#[test]
fn unreadable_file() {
    let tmp = tempfile::tempdir().unwrap();
    canonical(tmp.path(), |_| {});
    // A folder where the file should be cannot be read as Parquet, even by root.
    std::fs::remove_file(tmp.path().join("data.parquet")).unwrap();
    std::fs::create_dir(tmp.path().join("data.parquet")).unwrap();
    let m = msg(Dataset::load(tmp.path()));
    assert!(m.contains("data.parquet"), "{m}");
}

#[test]
fn truncated_parquet_file() {
    let tmp = tempfile::tempdir().unwrap();
    canonical(tmp.path(), |_| {});
    let path = tmp.path().join("data.parquet");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let m = msg(Dataset::load(tmp.path()));
    assert!(
        m.contains("data.parquet") && m.contains("not a readable Parquet file"),
        "{m}"
    );
}

#[test]
fn column_named_in_schema_but_missing_from_file() {
    let tmp = tempfile::tempdir().unwrap();
    canonical(tmp.path(), |_| {});
    let toml = std::fs::read_to_string(tmp.path().join("dataset.toml")).unwrap();
    std::fs::write(
        tmp.path().join("dataset.toml"),
        toml.replace("name = \"price\"", "name = \"cost\""),
    )
    .unwrap();
    let m = msg(Dataset::load(tmp.path()));
    assert!(
        m.contains("data.parquet") && m.contains("column `cost`") && m.contains("missing"),
        "{m}"
    );
}

#[test]
fn label_that_is_not_zero_or_one() {
    let tmp = tempfile::tempdir().unwrap();
    canonical(tmp.path(), |t| {
        replace(
            t,
            "buy",
            ColumnData::Float((0..20).map(|i| if i == 6 { 2.0 } else { 0.0 }).collect()),
        )
    });
    let m = msg(Dataset::load(tmp.path()));
    assert!(
        m.contains("column `buy`, row 7") && m.contains("not 0 or 1"),
        "{m}"
    );
}

#[test]
fn dense_value_that_is_nan() {
    let tmp = tempfile::tempdir().unwrap();
    canonical(tmp.path(), |t| {
        replace(
            t,
            "price",
            ColumnData::Float(
                (0..20)
                    .map(|i| if i == 11 { f32::NAN } else { 1.0 })
                    .collect(),
            ),
        )
    });
    let m = msg(Dataset::load(tmp.path()));
    assert!(
        m.contains("column `price`, row 12") && m.contains("not a finite number"),
        "{m}"
    );
}

#[test]
fn dense_value_that_is_not_a_number() {
    let tmp = tempfile::tempdir().unwrap();
    canonical(tmp.path(), |t| {
        replace(t, "price", ColumnData::Str(vec!["1.0".into(); 20]))
    });
    let m = msg(Dataset::load(tmp.path()));
    assert!(
        m.contains("column `price`") && m.contains("expected a number"),
        "{m}"
    );
}

#[test]
fn empty_split() {
    let tmp = tempfile::tempdir().unwrap();
    canonical(tmp.path(), |t| {
        let s = (0..20)
            .map(|i| if i % 2 == 0 { "train" } else { "test" }.to_string())
            .collect();
        replace(t, "split", ColumnData::Str(s))
    });
    let m = msg(Dataset::load(tmp.path()));
    assert!(
        m.contains("column `split`") && m.contains("split `valid` has no rows"),
        "{m}"
    );
}

#[test]
fn unknown_split_value() {
    let tmp = tempfile::tempdir().unwrap();
    canonical(tmp.path(), |t| {
        let s = (0..20)
            .map(|i| if i == 4 { "holdout" } else { "train" }.to_string())
            .collect();
        replace(t, "split", ColumnData::Str(s))
    });
    let m = msg(Dataset::load(tmp.path()));
    assert!(
        m.contains("column `split`, row 5") && m.contains("`holdout`"),
        "{m}"
    );
}

#[test]
fn task_with_no_positive_in_train() {
    let tmp = tempfile::tempdir().unwrap();
    canonical(tmp.path(), |t| {
        // Positives only on rows that are valid or test (i % 5 in {3, 4}).
        replace(
            t,
            "buy",
            ColumnData::Label((0..20).map(|i| u8::from(i % 5 >= 3)).collect()),
        )
    });
    let m = msg(Dataset::load(tmp.path()));
    assert!(
        m.contains("column `buy`") && m.contains("no positive label in the train split"),
        "{m}"
    );
}

// ---- bad raw input to `prepare`: the error names the file, column and row; no output left.

fn custom_with(dir: &Path, csv: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    std::fs::write(dir.join("in.csv"), csv).unwrap();
    std::fs::write(
        dir.join("in.toml"),
        "name = \"x\"\ninput = \"in.csv\"\n[[sparse]]\nname = \"a\"\n[[dense]]\nname = \"d\"\n[[label]]\nname = \"y\"\n",
    )
    .unwrap();
    (dir.join("in.toml"), dir.join("out"))
}

fn rows(extra: &str) -> String {
    let mut s = String::from("a,d,y\n");
    for i in 0..30 {
        s.push_str(&format!("v{},{}.5,{}\n", i % 3, i, i % 2));
    }
    s.push_str(extra);
    s
}

#[test]
fn prepare_label_not_binary_names_file_column_row() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, out) = custom_with(tmp.path(), &rows("v1,2.0,yes\n"));
    let m = msg(prepare::custom::prepare(&cfg, &opts(&out, 1)));
    assert!(
        m.contains("in.csv") && m.contains("column `y`, row 31") && m.contains("`yes`"),
        "{m}"
    );
    assert_no_output(&out);
}

#[test]
fn prepare_dense_not_a_number_names_file_column_row() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, out) = custom_with(tmp.path(), &rows("v1,abc,1\n"));
    let m = msg(prepare::custom::prepare(&cfg, &opts(&out, 1)));
    assert!(
        m.contains("in.csv") && m.contains("column `d`, row 31") && m.contains("not a number"),
        "{m}"
    );
    assert_no_output(&out);
}

#[test]
fn prepare_dense_nan_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, out) = custom_with(tmp.path(), &rows("v1,NaN,1\n"));
    let m = msg(prepare::custom::prepare(&cfg, &opts(&out, 1)));
    assert!(m.contains("column `d`, row 31") && m.contains("NaN"), "{m}");
    assert_no_output(&out);
}

#[test]
fn prepare_column_missing_from_header() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, out) = custom_with(tmp.path(), &rows("").replace("a,d,y", "a,dd,y"));
    let m = msg(prepare::custom::prepare(&cfg, &opts(&out, 1)));
    assert!(
        m.contains("in.csv")
            && m.contains("column `d`")
            && m.contains("in.toml")
            && m.contains("missing from the header"),
        "{m}"
    );
    assert_no_output(&out);
}

#[test]
fn prepare_missing_input_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let m = msg(prepare::tiktok::prepare(
        &tmp.path().join("nope.txt"),
        &opts(&out, 1),
    ));
    assert!(m.contains("nope.txt") && m.contains("cannot open"), "{m}");
    assert_no_output(&out);
}

#[test]
fn prepare_record_with_too_few_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("t.txt");
    // Five well-formed records of the ICME 2019 format (12 tab-separated fields), then one of 3.
    let mut text: String = (0..5)
        .map(|i| {
            format!(
                "{i}\t115\t{}\t44888\t42\t0\t{}\t0\t-1\t43981\t53085738314\t9\n",
                100 + i,
                i % 2
            )
        })
        .collect();
    text.push_str("1\t2\t3\n");
    std::fs::write(&raw, text).unwrap();
    let out = tmp.path().join("out");
    let m = msg(prepare::tiktok::prepare(&raw, &opts(&out, 1)));
    assert!(m.contains("t.txt") && m.contains("line 6"), "{m}");
    assert_no_output(&out);
}

#[test]
fn prepare_truncated_parquet_source() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(root().join("datasets/adult/adult.parquet")).unwrap();
    let raw = tmp.path().join("adult.parquet");
    std::fs::write(&raw, &bytes[..bytes.len() - 100]).unwrap();
    let out = tmp.path().join("out");
    let m = msg(prepare::adult::prepare(&raw, &opts(&out, 1)));
    assert!(
        m.contains("adult.parquet") && m.contains("not a readable Parquet file"),
        "{m}"
    );
    assert_no_output(&out);
}

#[test]
fn prepare_bad_synthetic_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let o = SyntheticOptions {
        fields: 1,
        ..Default::default()
    };
    let m = msg(prepare::synthetic::prepare(
        &o,
        &opts(tmp.path(), 1),
        &|_| {},
    ));
    assert!(m.contains("fields >= 2"), "{m}");
    assert_no_output(tmp.path());
}

/// The canonical set with a weight column `w` of `weights`, named as the sample weight.
fn weighted(dir: &Path, weights: Vec<f32>) {
    canonical(dir, |t| t.push("w", ColumnData::Float(weights)));
    let path = dir.join("dataset.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("weight = \"w\"\n{text}")).unwrap();
}

#[test]
fn sample_weights_load_and_travel_with_their_rows() {
    use crossdistil_data::{Batch, GatherBatch};
    let tmp = tempfile::tempdir().unwrap();
    weighted(tmp.path(), (0..20).map(|i| i as f32 / 4.0).collect());
    let ds = Dataset::load(tmp.path()).unwrap();
    assert_eq!(ds.weights.as_ref().unwrap()[6], 1.5);
    let b = Batch::gather(&ds, &[6, 2]);
    assert_eq!(b.weights, [1.5, 0.5]);
    // Without a weight column, a batch has no weights (every row weighs 1).
    let tmp = tempfile::tempdir().unwrap();
    canonical(tmp.path(), |_| {});
    let ds = Dataset::load(tmp.path()).unwrap();
    assert!(ds.weights.is_none() && Batch::gather(&ds, &[1]).weights.is_empty());
}

#[test]
fn sample_weight_that_is_negative_or_not_finite() {
    for bad in [-0.5f32, f32::NAN, f32::INFINITY] {
        let tmp = tempfile::tempdir().unwrap();
        weighted(
            tmp.path(),
            (0..20).map(|i| if i == 7 { bad } else { 1.0 }).collect(),
        );
        let m = msg(Dataset::load(tmp.path()));
        assert!(
            m.contains("column `w`, row 8") && m.contains("sample weight"),
            "{bad}: {m}"
        );
    }
}

#[test]
fn sample_weight_column_with_a_second_role() {
    let tmp = tempfile::tempdir().unwrap();
    canonical(tmp.path(), |_| {});
    let path = tmp.path().join("dataset.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("weight = \"price\"\n{text}")).unwrap();
    let m = msg(Dataset::load(tmp.path()));
    assert!(
        m.contains("`price` is named both as dense and as weight"),
        "{m}"
    );
}
