//! `prepare` refuses what it would otherwise change silently (bytes that are not UTF-8, a column
//! named twice, a dense value beyond f32), keeps nulls of a categorical as their own category,
//! and its errors name the right file and echo at most a few dozen characters of a value.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};
use common::*;
use crossdistil_data::prepare;
use crossdistil_data::{Dataset, Summary};

fn msg<T: std::fmt::Debug>(r: Result<T, crossdistil_data::DataError>) -> String {
    r.expect_err("expected an error").to_string()
}

/// A custom source: `input` (bytes) beside `in.toml`, which names sparse `a`, dense `d` and the
/// label `y`. Returns the TOML and the output folder.
fn custom(dir: &Path, input_name: &str, input: &[u8]) -> (PathBuf, PathBuf) {
    std::fs::write(dir.join(input_name), input).unwrap();
    std::fs::write(
        dir.join("in.toml"),
        format!(
            "name = \"x\"\ninput = \"{input_name}\"\n[[sparse]]\nname = \"a\"\n[[dense]]\n\
             name = \"d\"\n[[label]]\nname = \"y\"\n"
        ),
    )
    .unwrap();
    (dir.join("in.toml"), dir.join("out"))
}

/// 30 good CSV rows, then `extra` (bytes).
fn csv(header: &str, extra: &[u8]) -> Vec<u8> {
    let mut s = format!("{header}\n");
    for i in 0..30 {
        s.push_str(&format!("v{},{}.5,{}\n", i % 3, i, i % 2));
    }
    let mut bytes = s.into_bytes();
    bytes.extend_from_slice(extra);
    bytes
}

/// A Parquet source of 40 rows: `a` (text, with `a_values`), `d` (f64, with `d_values`), `y`.
fn parquet_source(columns: Vec<(&str, ArrayRef)>) -> Vec<u8> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

fn labels(n: usize) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i % 2)))
}

fn dense(n: usize) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64)))
}

// ---- 9a: bytes that are not UTF-8

#[test]
fn a_category_that_is_not_utf8_is_refused_naming_file_column_row() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, out) = custom(tmp.path(), "in.csv", &csv("a,d,y", b"v\xff1,2.0,1\n"));
    let m = msg(prepare::custom::prepare(&cfg, &opts(&out, 1)));
    assert!(
        m.contains("in.csv") && m.contains("column `a`, row 31") && m.contains("UTF-8"),
        "{m}"
    );
    assert_no_output(&out);
}

// ---- 9b: a column named twice

#[test]
fn a_column_named_twice_in_a_csv_header_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = b"a,d,y,a\n".to_vec();
    for i in 0..30 {
        bytes.extend(format!("v{},{i}.5,{},w\n", i % 3, i % 2).bytes());
    }
    let (cfg, out) = custom(tmp.path(), "in.csv", &bytes);
    let m = msg(prepare::custom::prepare(&cfg, &opts(&out, 1)));
    assert!(
        m.contains("in.csv") && m.contains("column `a`") && m.contains("more than once"),
        "{m}"
    );
    assert_no_output(&out);
}

#[test]
fn a_column_named_twice_in_a_parquet_source_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 40;
    let a: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..n).map(|i| format!("v{}", i % 3)),
    ));
    let source = parquet_source(vec![
        ("a", a.clone()),
        ("d", dense(n)),
        ("y", labels(n)),
        ("a", a),
    ]);
    let (cfg, out) = custom(tmp.path(), "in.parquet", &source);
    let m = msg(prepare::custom::prepare(&cfg, &opts(&out, 1)));
    assert!(
        m.contains("in.parquet") && m.contains("column `a`") && m.contains("more than once"),
        "{m}"
    );
    assert_no_output(&out);
}

// ---- 9c: a dense value finite in f64 but not in f32

#[test]
fn a_dense_value_beyond_f32_is_refused_at_prepare_naming_file_column_row() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, out) = custom(tmp.path(), "in.csv", &csv("a,d,y", b"v1,1e39,1\n"));
    let m = msg(prepare::custom::prepare(&cfg, &opts(&out, 1)));
    assert!(
        m.contains("in.csv") && m.contains("column `d`, row 31") && m.contains("32-bit float"),
        "{m}"
    );
    assert_no_output(&out);

    // The same from a Parquet source's f64 column.
    let n = 40;
    let d: ArrayRef = Arc::new(Float64Array::from_iter_values(
        (0..n).map(|i| if i == 12 { -1e39 } else { i as f64 }),
    ));
    let a: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..n).map(|i| format!("v{}", i % 3)),
    ));
    let source = parquet_source(vec![("a", a), ("d", d), ("y", labels(n))]);
    let (cfg, out) = custom(tmp.path(), "in.parquet", &source);
    let m = msg(prepare::custom::prepare(&cfg, &opts(&out, 1)));
    assert!(
        m.contains("in.parquet") && m.contains("column `d`, row 13") && m.contains("32-bit float"),
        "{m}"
    );
    assert_no_output(&out);
}

// ---- 9d: nulls in a categorical

#[test]
fn nulls_in_a_categorical_are_a_category_of_their_own_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 200;
    // Three real values, the empty string among them, and a null every 10th row.
    let a: ArrayRef = Arc::new(StringArray::from_iter((0..n).map(|i| {
        if i % 10 == 0 {
            None
        } else {
            Some(["x", "y", ""][i % 3])
        }
    })));
    let source = parquet_source(vec![("a", a), ("d", dense(n)), ("y", labels(n))]);
    let (cfg, out) = custom(tmp.path(), "in.parquet", &source);
    prepare::custom::prepare(&cfg, &opts(&out, 1)).unwrap();

    // The canonical file keeps the nulls as nulls.
    let batches = crossdistil_data::read_columns(&out.join("data.parquet"), &["a"]).unwrap();
    let nulls: usize = batches.iter().map(|b| b.column(0).null_count()).sum();
    assert_eq!(nulls, 20);

    let ds = Dataset::load(&out).unwrap();
    let col = &ds.sparse[0];
    assert_eq!(col.nulls, 20);
    let vocab = &ds.encoders.sparse[0];
    let null_id = vocab.null_id().expect("null has an id");
    assert_eq!(col.vocab_size, 5, "OOV, x, y, the empty string, null");
    let id_of = |i: usize| col.ids[i];
    // Every null row has the null id; no other row has it; the empty string has its own id.
    for i in 0..n {
        assert_eq!(id_of(i) == null_id, i % 10 == 0, "row {i}");
    }
    let empty = (0..n).find(|&i| i % 10 != 0 && i % 3 == 2).unwrap();
    assert_ne!(id_of(empty), null_id);
    assert_ne!(id_of(empty), 0);

    let summary = Summary::of(&ds);
    assert_eq!(summary.features[0].nulls, Some(20));
    let json = serde_json::to_string(&summary).unwrap();
    assert!(json.contains("\"nulls\":20"), "{json}");
    let table = summary.to_table();
    assert!(table.contains("nulls"), "{table}");
}

// ---- 10: what errors echo and name

#[test]
fn an_echoed_value_is_capped_to_a_few_dozen_characters() {
    let tmp = tempfile::tempdir().unwrap();
    let huge = "9".repeat(1 << 20) + "x";
    let (cfg, out) = custom(
        tmp.path(),
        "in.csv",
        &csv("a,d,y", format!("v1,{huge},1\n").as_bytes()),
    );
    let m = msg(prepare::custom::prepare(&cfg, &opts(&out, 1)));
    assert!(
        m.contains("column `d`, row 31"),
        "{}",
        &m[..m.len().min(300)]
    );
    assert!(m.len() < 400, "{} bytes: {}", m.len(), &m[..300]);
    assert!(m.contains("1048577 bytes"), "{m}");
}

#[test]
fn a_csv_source_with_a_header_and_no_rows_names_the_input_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, out) = custom(tmp.path(), "in.csv", b"a,d,y\n");
    let m = msg(prepare::custom::prepare(&cfg, &opts(&out, 1)));
    assert!(m.contains("in.csv") && m.contains("no data rows"), "{m}");
    assert!(!m.contains(&out.display().to_string()), "{m}");
    assert_no_output(&out);
}

#[test]
fn a_misspelt_column_in_a_custom_toml_names_that_toml() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 40;
    let a: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..n).map(|i| format!("v{}", i % 3)),
    ));
    // The file has `dd` where the TOML says `d`.
    let source = parquet_source(vec![("a", a), ("dd", dense(n)), ("y", labels(n))]);
    let (cfg, out) = custom(tmp.path(), "in.parquet", &source);
    let m = msg(prepare::custom::prepare(&cfg, &opts(&out, 1)));
    assert!(
        m.contains("in.toml")
            && m.contains("in.parquet")
            && m.contains("column `d`")
            && !m.contains("dataset.toml"),
        "{m}"
    );
    assert_no_output(&out);
}
