//! Encoding fitted on train only, and seeded batches.

mod common;

use common::*;
use crossdistil_data::write_dataset;
use crossdistil_data::{Batch, Batches, Dataset, DatasetSpec, GatherBatch, Order, Split};
use crossdistil_data::{ColumnData, Table};

/// 10 rows: rows 0..6 train, 6..8 valid, 8..10 test. Item `t` appears only in test; item `r`
/// once in train (below min_count 2).
fn small(dir: &std::path::Path) {
    let mut t = Table::new();
    t.push("row_id", ColumnData::RowId((100..110).collect()));
    let split = ["train"; 6]
        .iter()
        .chain(&["valid"; 2])
        .chain(&["test"; 2])
        .map(|s| s.to_string())
        .collect();
    t.push("split", ColumnData::Str(split));
    let items = ["a", "a", "b", "b", "a", "r", "a", "b", "t", "a"];
    t.push(
        "item",
        ColumnData::Str(items.iter().map(|s| s.to_string()).collect()),
    );
    let tags: Vec<Vec<String>> = (0..10)
        .map(|i| match i % 3 {
            0 => vec!["x".into(), "y".into()],
            1 => vec![],
            _ => vec!["zz".into()],
        })
        .collect();
    t.push("tags", ColumnData::List(tags));
    t.push(
        "price",
        ColumnData::Float(vec![1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 100.0, 2.0, 2.0, 2.0]),
    );
    t.push("y", ColumnData::Label(vec![1, 0, 1, 0, 1, 0, 1, 1, 0, 0]));
    let spec: DatasetSpec = toml::from_str(
        r#"
        name = "small"
        [[label]]
        name = "y"
        [[sparse]]
        name = "item"
        min_count = 2
        [[multi]]
        name = "tags"
        [[dense]]
        name = "price"
        "#,
    )
    .unwrap();
    write_dataset(dir, spec, &t).unwrap();
}

#[test]
fn vocabularies_and_statistics_come_from_train_only() {
    let tmp = tempfile::tempdir().unwrap();
    small(tmp.path());
    let ds = Dataset::load(tmp.path()).unwrap();
    let item = &ds.sparse[0];
    // Train counts: a 3, b 2, r 1 (< min_count 2). Ids by decreasing count: a=1, b=2.
    assert_eq!(item.vocab_size, 3);
    assert_eq!(item.ids, [1, 1, 2, 2, 1, 0, 1, 2, 0, 1]);
    // Standardised with the train mean 2 and std 1: the valid outlier 100 does not move them.
    let price = &ds.dense[0].values;
    assert_eq!(&price[..6], &[-1.0, 1.0, -1.0, 1.0, -1.0, 1.0]);
    assert_eq!(price[6], 98.0);
    // Multi-valued: offsets follow the list lengths 2, 0, 1, ...
    let m = &ds.multi[0];
    assert_eq!(&m.offsets[..4], &[0, 2, 2, 3]);
    assert_eq!(m.vocab_size, 4);
    assert_eq!(ds.row_ids[0], 100);
    assert_eq!(ds.split_rows(Split::Valid), [6, 7]);
}

#[test]
fn encoders_saved_with_a_model_encode_other_data_the_same_way() {
    let tmp = tempfile::tempdir().unwrap();
    small(tmp.path());
    let ds = Dataset::load(tmp.path()).unwrap();
    let json = serde_json_round_trip(&ds.encoders);
    let again = Dataset::load_with(tmp.path(), &json).unwrap();
    assert_eq!(again.sparse[0].ids, ds.sparse[0].ids);
    assert_eq!(again.dense[0].values, ds.dense[0].values);
    assert_eq!(again.multi[0].ids, ds.multi[0].ids);
}

fn serde_json_round_trip(e: &crossdistil_data::Encoders) -> crossdistil_data::Encoders {
    serde_json::from_str(&serde_json::to_string(e).unwrap()).unwrap()
}

#[test]
fn batches_gather_the_right_rows() {
    let tmp = tempfile::tempdir().unwrap();
    small(tmp.path());
    let ds = Dataset::load(tmp.path()).unwrap();
    let b = Batch::gather(&ds, &[2, 0, 9]);
    assert_eq!(b.sparse, [2, 1, 1]);
    assert_eq!(b.labels, [1.0, 1.0, 0.0]);
    assert_eq!(b.dense, [-1.0, -1.0, 0.0]);
    // Row 2 has one tag, row 0 two, row 9 two.
    assert_eq!(b.multi[0].offsets, [0, 1, 3, 5]);
}

#[test]
fn shuffled_batches_are_seeded_and_cover_every_row_once() {
    let tmp = tempfile::tempdir().unwrap();
    let o = crossdistil_data::prepare::synthetic::SyntheticOptions {
        rows: 5_000,
        ..Default::default()
    };
    crossdistil_data::prepare::synthetic::prepare(&o, &opts(tmp.path(), 2), &|_| {}).unwrap();
    let ds = Dataset::load(tmp.path()).unwrap();
    let train = ds.split_rows(Split::Train);
    let rows = |seed| -> Vec<u32> {
        Batches::new(&ds, &train, 128, Order::Shuffled(seed))
            .flat_map(|b| b.rows)
            .collect()
    };
    let a = rows(1);
    assert_eq!(a, rows(1));
    assert_ne!(a, rows(2));
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, train);
    let batches = Batches::new(&ds, &train, 128, Order::Sequential);
    assert_eq!(batches.len(), train.len().div_ceil(128));
    let sizes: Vec<usize> = batches.map(|b| b.size()).collect();
    assert!(sizes[..sizes.len() - 1].iter().all(|&s| s == 128));
}

#[test]
fn same_seed_same_split_different_seed_different_split() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let raw = root().join("datasets/adult/adult.parquet");
    crossdistil_data::prepare::adult::prepare(&raw, &opts(a.path(), 7)).unwrap();
    crossdistil_data::prepare::adult::prepare(&raw, &opts(b.path(), 7)).unwrap();
    crossdistil_data::prepare::adult::prepare(&raw, &opts(c.path(), 8)).unwrap();
    let (da, db, dc) = (
        Dataset::load(a.path()).unwrap(),
        Dataset::load(b.path()).unwrap(),
        Dataset::load(c.path()).unwrap(),
    );
    assert_eq!(da.splits, db.splits);
    assert_ne!(da.splits, dc.splits);
}

#[test]
fn split_shards_are_the_batches_of_their_rows() {
    let tmp = tempfile::tempdir().unwrap();
    small(tmp.path());
    let ds = Dataset::load(tmp.path()).unwrap();
    let rows: Vec<u32> = (0..10).collect();
    let whole = Batch::gather(&ds, &rows);
    for parts in [1, 2, 3, 4, 10, 12] {
        let shards = whole.split(parts);
        assert_eq!(shards.len(), parts.min(10), "{parts} parts");
        let mut start = 0;
        for shard in &shards {
            let n = shard.size();
            assert!(n > 0);
            assert_eq!(
                *shard,
                Batch::gather(&ds, &rows[start..start + n]),
                "{parts} parts"
            );
            start += n;
        }
        assert_eq!(start, 10);
    }
}
