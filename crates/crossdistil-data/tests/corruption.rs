//! A corrupt data file is refused, never trained on: the canonical writer's checksums (a CRC32
//! per column chunk in the footer, the footer's own in `dataset.toml`) are checked on load, and
//! nothing in the Parquet reader may panic past `Dataset::load`.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use common::*;
use crossdistil_data::prepare::synthetic::{self, SyntheticOptions};
use crossdistil_data::{DataError, Dataset};
use parquet::file::reader::{FileReader, SerializedFileReader};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A small synthetic set prepared by the library into `dir`.
fn prepared(dir: &Path) {
    let o = SyntheticOptions {
        rows: 3000,
        fields: 4,
        vocab: 50,
        tasks: 2,
        dense: 3,
        ..Default::default()
    };
    synthetic::prepare(&o, &opts(dir, 7), &|_| {}).unwrap();
}

/// Everything the loader produces, in a form that compares exactly (dense values by their bits).
fn fingerprint(ds: &Dataset) -> String {
    let mut s = format!("{:?}|{:?}|{:?}|", ds.row_ids, ds.splits, ds.users);
    for c in &ds.sparse {
        s += &format!("{}:{}:{:?}|", c.name, c.vocab_size, c.ids);
    }
    for c in &ds.multi {
        s += &format!("{}:{}:{:?}:{:?}|", c.name, c.vocab_size, c.offsets, c.ids);
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

/// The byte range of the chunk of `column` in row group 0.
fn chunk_range(path: &Path, column: &str) -> (usize, usize) {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let group = reader.metadata().row_group(0);
    let chunk = group
        .columns()
        .iter()
        .find(|c| c.column_path().string() == column)
        .unwrap();
    let (start, len) = chunk.byte_range();
    (start as usize, len as usize)
}

#[test]
fn a_flipped_bit_in_a_data_page_names_the_file_row_group_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    prepared(tmp.path());
    let path = tmp.path().join("data.parquet");
    let (start, len) = chunk_range(&path, "d1");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[start + len / 2] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let m = Dataset::load(tmp.path()).unwrap_err().to_string();
    assert!(
        m.contains("data.parquet")
            && m.contains("column `d1`")
            && m.contains("row group 1")
            && m.contains("corrupt"),
        "{m}"
    );
}

#[test]
fn a_changed_footer_is_refused_by_the_checksum_in_dataset_toml() {
    let tmp = tempfile::tempdir().unwrap();
    prepared(tmp.path());
    let toml = std::fs::read_to_string(tmp.path().join("dataset.toml")).unwrap();
    assert!(toml.contains("footer_crc32"), "{toml}");
    let path = tmp.path().join("data.parquet");
    let mut bytes = std::fs::read(&path).unwrap();
    // The footer's created-by text: changing it breaks no structure, only the checksum.
    let at = bytes
        .windows(7)
        .rposition(|w| w == b"parquet")
        .expect("created-by string");
    bytes[at] = b'P';
    std::fs::write(&path, &bytes).unwrap();
    let m = Dataset::load(tmp.path()).unwrap_err().to_string();
    assert!(
        m.contains("data.parquet") && m.contains("footer") && m.contains("CRC32"),
        "{m}"
    );
}

/// Rewrites the prepared set in `dir` the way it was written before checksums: a plain
/// ArrowWriter, and no footer checksum in dataset.toml.
fn strip_checksums(dir: &Path) {
    let path = dir.join("data.parquet");
    let batches = crossdistil_data::read_columns(
        &path,
        &[
            "row_id", "split", "f0", "f1", "f2", "f3", "d0", "d1", "d2", "task0", "task1",
        ],
    )
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        batches[0].schema(),
        None,
    )
    .unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
    let mut spec = crossdistil_data::DatasetSpec::read(dir).unwrap();
    spec.footer_crc32 = None;
    spec.extra.clear();
    spec.write(dir).unwrap();
}

#[test]
fn data_without_checksums_still_loads() {
    let tmp = tempfile::tempdir().unwrap();
    prepared(tmp.path());
    let expected = fingerprint(&Dataset::load(tmp.path()).unwrap());
    strip_checksums(tmp.path());
    let ds = Dataset::load(tmp.path()).unwrap();
    assert_eq!(fingerprint(&ds), expected);
}

#[test]
fn corrupt_data_without_checksums_never_panics() {
    // Without checksums the Parquet reader decodes whatever is there: some corruption goes
    // unnoticed, but none may panic past Dataset::load.
    let tmp = tempfile::tempdir().unwrap();
    prepared(tmp.path());
    strip_checksums(tmp.path());
    let path = tmp.path().join("data.parquet");
    let original = std::fs::read(&path).unwrap();
    let expected = fingerprint(&Dataset::load(tmp.path()).unwrap());
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut silent = 0;
    for i in 0..150 {
        let mut bytes = original.clone();
        let what = mutate(&mut bytes, &mut rng, i);
        std::fs::write(&path, &bytes).unwrap();
        let loaded = catch_unwind(AssertUnwindSafe(|| Dataset::load(tmp.path())));
        match loaded {
            Err(_) => panic!("mutation {i} ({what}) panicked in Dataset::load"),
            Ok(Ok(ds)) if fingerprint(&ds) != expected => silent += 1,
            Ok(_) => {}
        }
    }
    eprintln!("without checksums, {silent} of 150 mutations changed the data without an error");
}

/// What one mutation did to `bytes`, for the failure message.
fn mutate(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng, i: usize) -> String {
    let n = bytes.len();
    if i % 40 == 39 {
        let keep = rng.random_range(0..n);
        bytes.truncate(keep);
        format!("truncated to {keep} of {n} bytes")
    } else if i % 10 == 9 {
        let at = rng.random_range(0..n);
        let run = rng.random_range(1..=8).min(n - at);
        for b in &mut bytes[at..at + run] {
            *b = rng.random();
        }
        format!("{run} bytes overwritten at {at}")
    } else {
        let at = rng.random_range(0..n);
        let bit = rng.random_range(0..8);
        bytes[at] ^= 1 << bit;
        format!("bit {bit} of byte {at} flipped")
    }
}

#[test]
fn every_seeded_mutation_is_refused_or_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    prepared(tmp.path());
    let path = tmp.path().join("data.parquet");
    let original = std::fs::read(&path).unwrap();
    let expected = fingerprint(&Dataset::load(tmp.path()).unwrap());
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let (mut refused, mut unchanged) = (0, 0);
    for i in 0..200 {
        let mut bytes = original.clone();
        let what = mutate(&mut bytes, &mut rng, i);
        std::fs::write(&path, &bytes).unwrap();
        let loaded: Result<Result<Dataset, DataError>, _> =
            catch_unwind(AssertUnwindSafe(|| Dataset::load(tmp.path())));
        match loaded {
            Err(_) => panic!("mutation {i} ({what}) panicked in Dataset::load"),
            Ok(Err(e)) => {
                let m = e.to_string();
                assert!(m.contains("data.parquet"), "mutation {i} ({what}): {m}");
                refused += 1;
            }
            Ok(Ok(ds)) => {
                assert_eq!(
                    fingerprint(&ds),
                    expected,
                    "mutation {i} ({what}) changed the loaded data without an error"
                );
                unchanged += 1;
            }
        }
    }
    eprintln!("refused {refused}, unchanged {unchanged}");
    assert!(refused > 150, "refused {refused}, unchanged {unchanged}");
}
