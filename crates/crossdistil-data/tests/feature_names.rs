//! Encoders fitted with a model match a data set's features by name, not by position.

mod common;

use std::path::Path;

use crossdistil_data::write_dataset;
use crossdistil_data::{ColumnData, Table};
use crossdistil_data::{Dataset, DatasetSpec, Encoders};

/// 20 rows with a sparse `item`, two dense features `age` (around 40) and `hours` (around 5),
/// and one task.
fn two_dense(dir: &Path) {
    let n = 20;
    let mut t = Table::new();
    t.push("row_id", ColumnData::RowId((0..n as u64).collect()));
    let split = (0..n)
        .map(|i| ["train", "train", "train", "valid", "test"][i % 5].to_string())
        .collect();
    t.push("split", ColumnData::Str(split));
    t.push(
        "item",
        ColumnData::Str((0..n).map(|i| format!("i{}", i % 3)).collect()),
    );
    t.push(
        "age",
        ColumnData::Float((0..n).map(|i| 30.0 + i as f32).collect()),
    );
    t.push(
        "hours",
        ColumnData::Float((0..n).map(|i| (i % 7) as f32).collect()),
    );
    t.push(
        "y",
        ColumnData::Label((0..n).map(|i| (i % 2) as u8).collect()),
    );
    let spec: DatasetSpec = toml::from_str(
        r#"
        name = "t"
        [[label]]
        name = "y"
        [[sparse]]
        name = "item"
        [[dense]]
        name = "age"
        [[dense]]
        name = "hours"
        "#,
    )
    .unwrap();
    write_dataset(dir, spec, &t).unwrap();
}

fn edit_spec(dir: &Path, edit: impl FnOnce(&mut DatasetSpec)) {
    let mut spec = DatasetSpec::read(dir).unwrap();
    edit(&mut spec);
    spec.write(dir).unwrap();
}

fn json_round_trip(e: &Encoders) -> Encoders {
    serde_json::from_str(&serde_json::to_string(e).unwrap()).unwrap()
}

#[test]
fn swapped_dense_features_are_matched_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    two_dense(tmp.path());
    let fitted = Dataset::load(tmp.path()).unwrap();
    let enc = json_round_trip(&fitted.encoders);
    assert_eq!(enc.names.dense, ["age", "hours"]);
    // The same data with the two dense features listed the other way round.
    edit_spec(tmp.path(), |s| s.dense.swap(0, 1));
    let again = Dataset::load_with(tmp.path(), &enc).unwrap();
    assert_eq!(again.dense[0].name, "age");
    assert_eq!(again.dense[0].values, fitted.dense[0].values);
    assert_eq!(again.dense[1].values, fitted.dense[1].values);
    assert_eq!(again.encoders.names, fitted.encoders.names);
    assert_eq!(again.spec.dense[1].name, "hours");
}

#[test]
fn a_feature_missing_from_the_data_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    two_dense(tmp.path());
    let enc = Dataset::load(tmp.path()).unwrap().encoders;
    edit_spec(tmp.path(), |s| {
        s.dense.retain(|d| d.name != "hours");
    });
    let m = Dataset::load_with(tmp.path(), &enc)
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("dataset.toml") && m.contains("column `hours`") && m.contains("missing"),
        "{m}"
    );
}

#[test]
fn an_extra_feature_in_the_data_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    two_dense(tmp.path());
    let mut enc = Dataset::load(tmp.path()).unwrap().encoders;
    // Encoders of a model that had only `age`.
    enc.dense.pop();
    enc.names.dense.pop();
    let m = Dataset::load_with(tmp.path(), &enc)
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("dataset.toml")
            && m.contains("column `hours`")
            && m.contains("not one of the encoders"),
        "{m}"
    );
}

#[test]
fn a_feature_of_another_kind_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    two_dense(tmp.path());
    let mut enc = Dataset::load(tmp.path()).unwrap().encoders;
    // Encoders that had `hours` as a sparse feature.
    enc.names.dense.pop();
    enc.dense.pop();
    enc.names.sparse.push("hours".into());
    enc.sparse.push(enc.sparse[0].clone());
    let m = Dataset::load_with(tmp.path(), &enc)
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("column `hours`") && m.contains("dense here but sparse"),
        "{m}"
    );
}

#[test]
fn encoders_saved_without_names_still_load_by_position() {
    let tmp = tempfile::tempdir().unwrap();
    two_dense(tmp.path());
    let fitted = Dataset::load(tmp.path()).unwrap();
    let mut json: serde_json::Value = serde_json::to_value(&fitted.encoders).unwrap();
    json.as_object_mut().unwrap().remove("names");
    let old: Encoders = serde_json::from_value(json).unwrap();
    assert!(old.names.is_empty());
    let again = Dataset::load_with(tmp.path(), &old).unwrap();
    assert_eq!(again.dense[1].values, fitted.dense[1].values);
    // A count mismatch is still refused.
    edit_spec(tmp.path(), |s| {
        s.dense.pop();
    });
    let m = Dataset::load_with(tmp.path(), &old)
        .unwrap_err()
        .to_string();
    assert!(m.contains("dataset.toml") && m.contains("differ"), "{m}");
}
