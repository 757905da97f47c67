//! A data set stored as a folder of Parquet part files (as Spark, DataFusion or Polars write
//! them) loads and streams exactly like the same rows in one file.

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, StringArray};
use arrow_schema::{DataType, Field, Schema};
use common::*;
use crossdistil_data::prepare::synthetic::{self, SyntheticOptions};
use crossdistil_data::{DataSource, Dataset, DatasetSpec, dense_groups, read_columns};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// A small synthetic set in `dir`, with `f0` as the user column, `f2` cut to its 20 most
/// frequent values and `f3` hashed into 16 buckets.
fn prepared(dir: &Path) -> DatasetSpec {
    let o = SyntheticOptions {
        rows: 3000,
        fields: 4,
        vocab: 60,
        tasks: 2,
        dense: 2,
        ..Default::default()
    };
    synthetic::prepare(&o, &opts(dir, 11), &|_| {}).unwrap();
    let mut spec = DatasetSpec::read(dir).unwrap();
    spec.user = Some("f0".into());
    spec.sparse[2].max_size = Some(20);
    spec.sparse[3].hash_buckets = Some(16);
    spec.write(dir).unwrap();
    spec
}

/// Every column of `one`'s data file, rewritten into `files` part files under `dir/data/` with
/// row groups of `group_rows`, and a `dataset.toml` naming the folder (no `[[part]]` list, as
/// for a folder written by another tool). `edit` may change each part's batch.
fn split_into_parts(
    one: &Path,
    spec: &DatasetSpec,
    dir: &Path,
    files: usize,
    group_rows: usize,
    edit: impl Fn(usize, RecordBatch) -> RecordBatch,
) {
    let mut columns: Vec<&str> = spec.input_columns();
    columns.extend(spec.extra.iter().map(String::as_str));
    let batches = read_columns(&one.join(&spec.data), &columns).unwrap();
    assert_eq!(batches.len(), 1, "a small file reads as one batch");
    let all = batches[0].clone();
    let rows = all.num_rows();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let per = rows.div_ceil(files);
    for i in 0..files {
        let part = edit(i, all.slice(i * per, per.min(rows - i * per)));
        let file = std::fs::File::create(dir.join(format!("data/part-{i:05}.parquet"))).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(group_rows))
            .build();
        let mut w = ArrowWriter::try_new(file, part.schema(), Some(props)).unwrap();
        w.write(&part).unwrap();
        w.close().unwrap();
    }
    // Spark leaves a marker file; it is not data.
    std::fs::write(dir.join("data/_SUCCESS"), b"").unwrap();
    let mut parts_spec = spec.clone();
    parts_spec.data = "data".into();
    parts_spec.footer_crc32 = None;
    parts_spec.write(dir).unwrap();
}

/// The loader's output in a form that compares exactly; users as groups numbered in order of
/// appearance (GAUC depends on the grouping, not on the numbers).
fn fingerprint(ds: &Dataset) -> String {
    let users = ds
        .users
        .as_ref()
        .map(|u| dense_groups(u.iter().map(|&x| x as u64)));
    let mut s = format!("{:?}|{:?}|{users:?}|", ds.row_ids, ds.splits);
    for c in &ds.sparse {
        s += &format!("{}:{}:{:?}|", c.name, c.vocab_size, c.ids);
    }
    for c in &ds.dense {
        let bits: Vec<u32> = c.values.iter().map(|v| v.to_bits()).collect();
        s += &format!("{}:{bits:?}|", c.name);
    }
    for c in &ds.labels {
        s += &format!("{}:{:?}|", c.name, c.values);
    }
    s
}

#[test]
fn a_folder_of_part_files_loads_like_one_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, parts) = (tmp.path().join("one"), tmp.path().join("parts"));
    let spec = prepared(&one);
    split_into_parts(&one, &spec, &parts, 3, 400, |_, b| b);

    let a = Dataset::load(&one).unwrap();
    let b = Dataset::load(&parts).unwrap();
    assert_eq!(a.encoders, b.encoders);
    assert_eq!(a.sparse[2].vocab_size, 21, "20 values and the OOV id");
    assert!(a.encoders.sparse[3].is_hashed());
    assert_eq!(a.sparse[3].vocab_size, 18, "16 buckets, OOV and null");
    assert_eq!(fingerprint(&a), fingerprint(&b));

    // The streaming fit gives the in-memory encoders, and the chunks hold the same rows.
    let source = DataSource::open(&parts).unwrap();
    assert_eq!(source.files().len(), 3, "the _SUCCESS marker is not a part");
    assert_eq!(
        source.units().len(),
        9,
        "1000 rows per file in groups of 400"
    );
    assert_eq!(source.fit_encoders().unwrap(), a.encoders);
    let chunks: Vec<_> = (0..source.units().len())
        .map(|u| source.chunk(u, &a.encoders).unwrap())
        .collect();
    let mut c = Dataset::concat(chunks.iter().map(|c| &c.data));
    c.users = Some(dense_groups(
        chunks
            .iter()
            .flat_map(|c| c.user_keys.clone().unwrap().into_iter()),
    ));
    assert_eq!(fingerprint(&c), fingerprint(&a));

    // The split counts per unit add up to the data set's.
    let counts = source.split_counts().unwrap();
    let total: [usize; 3] = counts.iter().fold([0; 3], |mut t, c| {
        (0..3).for_each(|i| t[i] += c[i]);
        t
    });
    let ones = |s| a.splits.iter().filter(|&&x| x == s).count();
    use crossdistil_data::Split::*;
    assert_eq!(total, [ones(Train), ones(Valid), ones(Test)]);

    // Encoding with fitted encoders gives the same ids either way.
    let again = Dataset::load_with(&parts, &a.encoders).unwrap();
    assert_eq!(fingerprint(&again), fingerprint(&a));
}

#[test]
fn select_and_append_keep_rows_whole() {
    let tmp = tempfile::tempdir().unwrap();
    prepared(tmp.path());
    let ds = Dataset::load(tmp.path()).unwrap();
    let rows: Vec<u32> = vec![5, 0, 2999, 17];
    let picked = ds.select(&rows);
    assert_eq!(picked.rows(), 4);
    for (i, &r) in rows.iter().enumerate() {
        assert_eq!(picked.row_ids[i], ds.row_ids[r as usize]);
        assert_eq!(picked.sparse[1].ids[i], ds.sparse[1].ids[r as usize]);
        assert_eq!(picked.labels[0].values[i], ds.labels[0].values[r as usize]);
    }
    let both = Dataset::concat([&ds.select(&[0, 1]), &ds.select(&[2])]);
    assert_eq!(fingerprint(&both), fingerprint(&ds.select(&[0, 1, 2])));
}

#[test]
fn part_files_of_different_schemas_are_refused_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, parts) = (tmp.path().join("one"), tmp.path().join("parts"));
    let spec = prepared(&one);
    // The second part stores `f2` as text.
    split_into_parts(&one, &spec, &parts, 2, 1000, |i, b| {
        if i == 0 {
            return b;
        }
        let idx = b.schema().index_of("f2").unwrap();
        let ints = b.column(idx).as_primitive::<Int64Type>();
        let text: ArrayRef = Arc::new(StringArray::from_iter_values(
            ints.values().iter().map(|v| v.to_string()),
        ));
        let mut fields: Vec<Field> = b.schema().fields().iter().map(|f| (**f).clone()).collect();
        fields[idx] = Field::new("f2", DataType::Utf8, false);
        let mut cols = b.columns().to_vec();
        cols[idx] = text;
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    });
    let err = DataSource::open(&parts).err().expect("refused").to_string();
    assert!(
        err.contains("part-00001.parquet")
            && err.contains("part-00000.parquet")
            && err.contains("f2"),
        "{err}"
    );
    let err = Dataset::load(&parts).unwrap_err().to_string();
    assert!(err.contains("part-00001.parquet"), "{err}");
}

#[test]
fn a_folder_without_parquet_files_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, parts) = (tmp.path().join("one"), tmp.path().join("parts"));
    let spec = prepared(&one);
    split_into_parts(&one, &spec, &parts, 1, 1000, |_, b| b);
    std::fs::remove_file(parts.join("data/part-00000.parquet")).unwrap();
    let err = Dataset::load(&parts).unwrap_err().to_string();
    assert!(err.contains("no .parquet file"), "{err}");
}
