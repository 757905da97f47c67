//! `prepare` with `rows_per_file`: part files of the right sizes, listed with their checksums,
//! holding the same rows, labels and splits as the one-file form, for every streamed source.

mod common;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type, UInt8Type, UInt64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use common::*;
use crossdistil_data::prepare::{self, PrepareOptions, Prepared, synthetic::SyntheticOptions};
use crossdistil_data::{Dataset, DatasetSpec, dense_groups, range_crc, read_columns};

fn opts_parts(out: &Path, seed: u64, rows_per_file: usize) -> PrepareOptions {
    opts(out, seed).with_rows_per_file(Some(rows_per_file))
}

/// The CRC32 of a Parquet file's footer, as `dataset.toml` records it: the last `8 + length`
/// bytes.
fn footer_crc(path: &Path) -> u32 {
    let mut f = File::open(path).unwrap();
    let size = f.metadata().unwrap().len();
    let mut tail = [0u8; 8];
    f.seek(SeekFrom::Start(size - 8)).unwrap();
    f.read_exact(&mut tail).unwrap();
    let len = u32::from_le_bytes(tail[..4].try_into().unwrap()) as u64;
    range_crc(&mut f, size - 8 - len, len + 8).unwrap()
}

/// One cell as text, `null` for a null.
fn cell(a: &dyn Array, i: usize) -> String {
    if a.is_null(i) {
        return "null".into();
    }
    match a.data_type() {
        DataType::UInt64 => a.as_primitive::<UInt64Type>().value(i).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::UInt8 => a.as_primitive::<UInt8Type>().value(i).to_string(),
        DataType::Float32 => a
            .as_primitive::<Float32Type>()
            .value(i)
            .to_bits()
            .to_string(),
        DataType::Utf8 => a.as_string::<i32>().value(i).to_string(),
        DataType::List(_) => {
            let l = a.as_list::<i32>().value(i);
            (0..l.len())
                .map(|j| cell(l.as_ref(), j))
                .collect::<Vec<_>>()
                .join("|")
        }
        t => panic!("unexpected type {t}"),
    }
}

/// Every column of a prepared set (its files in reading order), with the type of each, as text.
/// Checks on the way that each part's rows and footer checksum are those `dataset.toml` lists.
fn contents(dir: &Path) -> Vec<(String, String, Vec<String>)> {
    let spec = DatasetSpec::read(dir).unwrap();
    let mut names: Vec<&str> = spec.input_columns();
    names.extend(spec.extra.iter().map(String::as_str));
    let mut out: Vec<(String, String, Vec<String>)> = names
        .iter()
        .map(|n| (n.to_string(), String::new(), Vec::new()))
        .collect();
    let files = spec.data_files(dir).unwrap();
    for (k, f) in files.iter().enumerate() {
        assert_eq!(
            Some(footer_crc(&f.path)),
            f.footer_crc32,
            "{}",
            f.path.display()
        );
        let batches = read_columns(&f.path, &names).unwrap();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if !spec.parts.is_empty() {
            assert_eq!(rows as u64, spec.parts[k].rows, "{}", f.path.display());
        }
        for b in &batches {
            for (name, ty, values) in &mut out {
                let a = b.column_by_name(name).unwrap();
                *ty = a.data_type().to_string();
                values.extend((0..a.len()).map(|i| cell(a.as_ref(), i)));
            }
        }
    }
    out
}

/// The folder's file names, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Prepares with `run` as one file and as parts of `per_file` rows: the same columns, types,
/// rows, labels and splits; the parts of the sizes expected.
fn same_as_one_file(
    per_file: usize,
    run: impl Fn(&PrepareOptions) -> crossdistil_data::Result<Prepared>,
) -> Vec<(String, String, Vec<String>)> {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one");
    let parts = tmp.path().join("parts");
    let a = run(&opts(&one, 3)).unwrap();
    let b = run(&opts_parts(&parts, 3, per_file)).unwrap();
    assert_eq!(a.rows, b.rows);
    assert_eq!(names(&one), ["data.parquet", "dataset.toml"]);
    assert_eq!(names(&parts), ["data", "dataset.toml"]);
    let expected: Vec<String> = (0..a.rows.div_ceil(per_file))
        .map(|i| format!("part-{i:05}.parquet"))
        .collect();
    assert_eq!(names(&parts.join("data")), expected);
    let spec = DatasetSpec::read(&parts).unwrap();
    assert_eq!(spec, b.spec);
    assert_eq!(spec.data, "data");
    let sizes: Vec<u64> = spec.parts.iter().map(|p| p.rows).collect();
    let mut want = vec![per_file as u64; a.rows / per_file];
    if !a.rows.is_multiple_of(per_file) {
        want.push((a.rows % per_file) as u64);
    }
    assert_eq!(sizes, want);
    let (x, y) = (contents(&one), contents(&parts));
    assert_eq!(x, y);
    // The split has exact counts.
    let split = &x.iter().find(|c| c.0 == "split").unwrap().2;
    for (s, frac) in [("valid", 0.1), ("test", 0.1)] {
        let n = split.iter().filter(|v| *v == s).count();
        assert_eq!(n, (a.rows as f64 * frac).round() as usize, "{s}");
    }
    x
}

#[test]
fn synthetic_parts_hold_the_rows_of_the_one_file() {
    let o = SyntheticOptions {
        rows: 300_000,
        fields: 3,
        vocab: 100,
        tasks: 2,
        dense: 1,
        ..Default::default()
    };
    // 270k rows per file: the first part has two row groups (262,144 + 7,856 rows).
    let x = same_as_one_file(270_000, |opts| {
        prepare::synthetic::prepare(&o, opts, &|_| {})
    });
    let ids = &x[0].2;
    assert!(ids.iter().enumerate().all(|(i, v)| *v == i.to_string()));
    let tmp = tempfile::tempdir().unwrap();
    prepare::synthetic::prepare(&o, &opts_parts(tmp.path(), 3, 270_000), &|_| {}).unwrap();
    let first = tmp.path().join("data/part-00000.parquet");
    let meta = parquet::file::reader::FileReader::metadata(
        &parquet::file::serialized_reader::SerializedFileReader::new(File::open(first).unwrap())
            .unwrap(),
    )
    .clone();
    let groups: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
    assert_eq!(groups, [262_144, 7_856]);
}

#[test]
fn the_sample_sources_give_the_same_rows_as_parts() {
    let Some(data) = shared_data("the_sample_sources_give_the_same_rows_as_parts") else {
        return;
    };
    let tiktok = data.join("tiktok-icme2019-sample/byterec_sample.txt");
    same_as_one_file(37, |o| prepare::tiktok::prepare(&tiktok, o));
    let ali = data.join("aliexpress-sample");
    same_as_one_file(50, |o| prepare::aliexpress::prepare(&ali, o));
    let ccp = data.join("ali-ccp-sample");
    same_as_one_file(64, |o| prepare::ali_ccp::prepare(&ccp, o));
}

/// A custom CSV source of `n` rows over more than one chunk: `a` is an integer until row
/// `text_from`, text after; `tags` a list; `y` a label.
fn big_csv(dir: &Path, n: usize, text_from: usize, last: &str) -> PathBuf {
    let mut s = String::from("a,tags,d,y\n");
    for i in 0..n {
        let a = if i < text_from {
            (i % 97).to_string()
        } else {
            format!("t{}", i % 5)
        };
        s.push_str(&format!("{a},x{}|y,{}.25,{}\n", i % 3, i % 11, i % 2));
    }
    s.push_str(last);
    std::fs::write(dir.join("big.csv"), s).unwrap();
    std::fs::write(
        dir.join("big.toml"),
        "name = \"big\"\ninput = \"big.csv\"\n[[sparse]]\nname = \"a\"\n[[multi]]\nname = \
         \"tags\"\n[[dense]]\nname = \"d\"\n[[label]]\nname = \"y\"\n",
    )
    .unwrap();
    dir.join("big.toml")
}

#[test]
fn a_custom_csv_over_several_chunks_is_one_schema_and_the_same_as_parts() {
    let tmp = tempfile::tempdir().unwrap();
    // Integers in the whole first chunk (262,144 rows), text in the second: the column is text
    // in both, as when the file was read whole.
    let toml = big_csv(tmp.path(), 300_000, 280_000, "");
    let x = same_as_one_file(100_000, |o| prepare::custom::prepare(&toml, o));
    let a = x.iter().find(|c| c.0 == "a").unwrap();
    assert_eq!(a.1, "Utf8");
    assert_eq!(a.2[0], "0");
    assert_eq!(a.2[299_999], "t4");
}

#[test]
fn an_error_in_a_later_chunk_names_its_row_in_the_file_and_keeps_the_previous_set() {
    let tmp = tempfile::tempdir().unwrap();
    let toml = big_csv(tmp.path(), 270_000, usize::MAX, "u,x,1.0,7\n");
    let out = tmp.path().join("out");
    // A previous set in the folder, as parts.
    let o = SyntheticOptions {
        rows: 1000,
        ..Default::default()
    };
    prepare::synthetic::prepare(&o, &opts_parts(&out, 1, 300), &|_| {}).unwrap();
    let before = contents(&out);
    let e = prepare::custom::prepare(&toml, &opts_parts(&out, 1, 100_000))
        .expect_err("a label of 7")
        .to_string();
    assert!(
        e.contains("big.csv") && e.contains("column `y`") && e.contains("row 270001"),
        "{e}"
    );
    assert_eq!(contents(&out), before);
    assert_eq!(
        names(&out.join("data")),
        (0..4)
            .map(|i| format!("part-{i:05}.parquet"))
            .collect::<Vec<_>>()
    );
}

/// A Parquet source of three row groups (40 rows each): `a` text with nulls in the last group
/// only, `n` integers, `d` f64, `y` 0/1.
fn parquet_source(path: &Path) {
    let n = 120;
    let a: ArrayRef = Arc::new(StringArray::from_iter(
        (0..n).map(|i| (i < 100 || i % 2 == 0).then(|| format!("v{}", i % 7))),
    ));
    let k: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i % 13)));
    let d: ArrayRef = Arc::new(Float64Array::from_iter_values(
        (0..n).map(|i| i as f64 / 3.0),
    ));
    let y: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i % 2)));
    let columns = [("a", a), ("n", k), ("d", d), ("y", y)];
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(c, x)| Field::new(*c, x.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, x)| x).collect(),
    )
    .unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(40))
        .build();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(File::create(path).unwrap(), schema, Some(props))
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn a_custom_parquet_source_read_in_batches_is_the_same_as_parts() {
    let tmp = tempfile::tempdir().unwrap();
    parquet_source(&tmp.path().join("in.parquet"));
    std::fs::write(
        tmp.path().join("in.toml"),
        "name = \"pq\"\ninput = \"in.parquet\"\nuser = \"n\"\n[[sparse]]\nname = \"a\"\n\
         [[dense]]\nname = \"d\"\n[[label]]\nname = \"y\"\n",
    )
    .unwrap();
    let toml = tmp.path().join("in.toml");
    let x = same_as_one_file(50, |o| prepare::custom::prepare(&toml, o));
    let a = x.iter().find(|c| c.0 == "a").unwrap();
    assert_eq!(a.1, "Utf8");
    assert_eq!((a.2[0].as_str(), a.2[101].as_str()), ("v0", "null"));
    let n = x.iter().find(|c| c.0 == "n").unwrap();
    assert_eq!((n.1.as_str(), n.2[14].as_str()), ("Int64", "1"));
}

#[test]
fn adult_writes_parts_too() {
    let raw = root().join("datasets/adult/adult.parquet");
    let x = same_as_one_file(10_000, |o| prepare::adult::prepare(&raw, o));
    assert_eq!(x[0].2.len(), 48_842);
}

/// What a load gives: row ids, splits, users, encoded features and labels.
fn loaded(ds: &Dataset) -> String {
    // User ids are group numbers, compared as the grouping they make.
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
fn prepared_parts_load_like_the_one_file_and_a_changed_part_is_refused() {
    let o = SyntheticOptions {
        rows: 5000,
        fields: 4,
        vocab: 80,
        tasks: 2,
        dense: 2,
        ..Default::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let (one, parts) = (tmp.path().join("one"), tmp.path().join("parts"));
    prepare::synthetic::prepare(&o, &opts(&one, 4), &|_| {}).unwrap();
    prepare::synthetic::prepare(&o, &opts_parts(&parts, 4, 1200), &|_| {}).unwrap();
    let (a, b) = (Dataset::load(&one).unwrap(), Dataset::load(&parts).unwrap());
    assert_eq!(b.rows(), 5000);
    assert_eq!(a.row_ids, b.row_ids);
    assert_eq!(a.splits, b.splits);
    for (x, y) in a.sparse.iter().zip(&b.sparse) {
        assert_eq!(x.vocab_size, y.vocab_size, "{}", x.name);
        assert!(x.ids == y.ids, "{}", x.name);
    }
    for (x, y) in a.dense.iter().zip(&b.dense) {
        assert!(x.values == y.values, "{}", x.name);
    }
    for (x, y) in a.labels.iter().zip(&b.labels) {
        assert!(x.values == y.values, "{}", x.name);
    }
    assert!(loaded(&a) == loaded(&b));
    // A byte of a part's data flipped, its footer intact: refused when its row group is read,
    // naming the file and the row group, by the loader and by a streaming reader alike.
    let p2 = parts.join("data/part-00002.parquet");
    let original = std::fs::read(&p2).unwrap();
    let mut bytes = original.clone();
    bytes[100] ^= 0x40;
    std::fs::write(&p2, &bytes).unwrap();
    let e = Dataset::load(&parts)
        .expect_err("a corrupt part")
        .to_string();
    assert!(
        e.contains("part-00002.parquet") && e.contains("row group 1"),
        "{e}"
    );
    let source = crossdistil_data::DataSource::open(&parts).unwrap();
    let unit = source.units().iter().position(|u| u.file == 2).unwrap();
    let e = source
        .chunk(unit, &a.encoders)
        .expect_err("a corrupt row group")
        .to_string();
    assert!(
        e.contains("part-00002.parquet") && e.contains("row group 1"),
        "{e}"
    );
    std::fs::write(&p2, &original).unwrap();
    // A part replaced by another valid Parquet file: its footer no longer has the listed CRC32.
    let p3 = parts.join("data/part-00003.parquet");
    std::fs::copy(parts.join("data/part-00004.parquet"), &p3).unwrap();
    let e = Dataset::load(&parts)
        .expect_err("a changed part")
        .to_string();
    assert!(e.contains("part-00003.parquet"), "{e}");
}
