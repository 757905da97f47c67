//! `prepare` on every supported source's fixture, then loading the result.

mod common;

use common::*;
use crossdistil_data::prepare::{self, synthetic::SyntheticOptions};
use crossdistil_data::{Dataset, Split, Summary};

fn count(ds: &Dataset, task: usize) -> usize {
    ds.labels[task].values.iter().map(|&y| y as usize).sum()
}

fn splits_are_80_10_10(ds: &Dataset) {
    let n = ds.rows();
    for (s, frac) in [(Split::Valid, 0.1), (Split::Test, 0.1)] {
        let rows = ds.split_rows(s).len();
        assert_eq!(rows, (n as f64 * frac).round() as usize, "{s}");
    }
}

#[test]
fn adult_has_both_tasks_and_drops_the_giveaway_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let p = prepare::adult::prepare(
        &root().join("datasets/adult/adult.parquet"),
        &opts(tmp.path(), 42),
    )
    .unwrap();
    prepared_ok(&p);
    assert_eq!(p.rows, 48_842);
    let ds = Dataset::load(tmp.path()).unwrap();
    assert_eq!(ds.spec.task_names(), ["income", "never_married"]);
    // The published class balance of Adult: 11,687 rows with income > 50K; 16,117 never married.
    assert_eq!(count(&ds, 0), 11_687);
    assert_eq!(count(&ds, 1), 16_117);
    let names: Vec<&str> = ds.spec.input_columns();
    assert!(
        !names
            .iter()
            .any(|c| c.contains("marital") || c.contains("relationship")),
        "{names:?}"
    );
    splits_are_80_10_10(&ds);
    assert!(ds.users.is_none());
}

#[test]
fn tiktok_sample_reads_every_field() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(data) = shared_data("tiktok_sample_reads_every_field") else {
        return;
    };
    let raw = data.join("tiktok-icme2019-sample/byterec_sample.txt");
    let p = prepare::tiktok::prepare(&raw, &opts(tmp.path(), 1)).unwrap();
    assert_eq!(p.rows, 200);
    let ds = Dataset::load(tmp.path()).unwrap();
    assert_eq!(ds.spec.task_names(), ["finish", "like"]);
    // Hand count of the sample file: 76 finished, 7 liked.
    assert_eq!((count(&ds, 0), count(&ds, 1)), (76, 7));
    assert_eq!(ds.sparse.len(), 8);
    assert_eq!(ds.dense.len(), 1);
    assert!(ds.users.is_some());
    // A folder of such files reads the same rows.
    let tmp2 = tempfile::tempdir().unwrap();
    let p2 = prepare::tiktok::prepare(raw.parent().unwrap(), &opts(tmp2.path(), 1)).unwrap();
    assert_eq!(p2.rows, 200);
}

#[test]
fn aliexpress_sample_reads_train_and_test_files() {
    let Some(data) = shared_data("aliexpress_sample_reads_train_and_test_files") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let p = prepare::aliexpress::prepare(&data.join("aliexpress-sample"), &opts(tmp.path(), 1))
        .unwrap();
    assert_eq!(p.rows, 120);
    let ds = Dataset::load(tmp.path()).unwrap();
    assert_eq!(ds.spec.task_names(), ["click", "conversion"]);
    assert_eq!((ds.sparse.len(), ds.dense.len()), (16, 63));
    assert_eq!((count(&ds, 0), count(&ds, 1)), (70, 4));
}

#[test]
fn ali_ccp_sample_reads_all_three_files() {
    let Some(data) = shared_data("ali_ccp_sample_reads_all_three_files") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let p = prepare::ali_ccp::prepare(&data.join("ali-ccp-sample"), &opts(tmp.path(), 1)).unwrap();
    assert_eq!(p.rows, 100 + 50 + 50);
    let ds = Dataset::load(tmp.path()).unwrap();
    assert_eq!(ds.spec.task_names(), ["click", "purchase"]);
    assert_eq!(ds.dense.len(), 8);
    assert_eq!(ds.sparse.len(), 23);
    assert_eq!(ds.spec.user.as_deref(), Some("101"));
}

#[test]
fn movielens_100k_recbole_and_grouplens_layouts_agree() {
    let Some(dir) = movielens("movielens_100k_recbole_and_grouplens_layouts_agree") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let p = prepare::movielens::prepare(&dir, &opts(tmp.path(), 42)).unwrap();
    assert_eq!(p.rows, 100_000);
    let ds = Dataset::load(tmp.path()).unwrap();
    assert_eq!(ds.spec.task_names(), ["like", "above_mean", "love"]);
    assert_eq!(count(&ds, 0), 55_375);
    assert_eq!(count(&ds, 2), 21_201);
    // love implies like, so the combinations love without like are empty.
    let s = Summary::of(&ds);
    for c in &s.combinations {
        if c.pattern.starts_with('-') && c.pattern.ends_with('+') {
            assert_eq!(c.rows.total(), 0, "{}", c.pattern);
        }
    }
    assert_eq!(ds.n_users(), Some(943));
    assert_eq!(ds.multi[0].name, "genres");

    // The same data in GroupLens layout, written from the RecBole files, prepares identically.
    let gl = tempfile::tempdir().unwrap();
    write_grouplens(&dir, gl.path());
    let tmp2 = tempfile::tempdir().unwrap();
    prepare::movielens::prepare(gl.path(), &opts(tmp2.path(), 42)).unwrap();
    let ds2 = Dataset::load(tmp2.path()).unwrap();
    for k in 0..3 {
        assert_eq!(ds.labels[k].values, ds2.labels[k].values);
    }
    assert_eq!(ds.multi[0].ids, ds2.multi[0].ids);
    assert_eq!(ds.sparse[6].ids, ds2.sparse[6].ids, "release year");
}

/// Rewrites the RecBole files in GroupLens's layout (u.data, u.user, u.item with genre flags).
fn write_grouplens(recbole: &std::path::Path, out: &std::path::Path) {
    use prepare::movielens::GENRES;
    let read = |f: &str| std::fs::read_to_string(recbole.join(f)).unwrap();
    let inter: String = read("ml-100k.inter")
        .lines()
        .skip(1)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(out.join("u.data"), inter).unwrap();
    let users: String = read("ml-100k.user")
        .lines()
        .skip(1)
        .map(|l| format!("{}\n", l.replace('\t', "|")))
        .collect();
    std::fs::write(out.join("u.user"), users).unwrap();
    let mut items = String::new();
    for l in read("ml-100k.item").lines().skip(1) {
        let f: Vec<&str> = l.split('\t').collect();
        let genres: Vec<&str> = f[3].split(' ').collect();
        let flags: Vec<&str> = GENRES
            .iter()
            .map(|g| if genres.contains(g) { "1" } else { "0" })
            .collect();
        items.push_str(&format!(
            "{}|{}|01-Jan-{}||http://x|{}\n",
            f[0],
            f[1],
            f[2],
            flags.join("|")
        ));
    }
    std::fs::write(out.join("u.item"), items).unwrap();
}

#[test]
fn custom_csv_with_derived_label_and_multi_values() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = "uid,item,tags,price,click,watch\n\
               u1,a,x|y,1.5,1,40\n u2,b,y,2.0,0,10\n u1,c,,3.5,true,31\n u3,a,x|z,0.5,false,29\n"
        .replace("\n ", "\n");
    let rows: String = csv
        .lines()
        .skip(1)
        .cycle()
        .take(40)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        tmp.path().join("logs.csv"),
        format!("uid,item,tags,price,click,watch\n{rows}"),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("logs.toml"),
        r#"
        name = "mine"
        input = "logs.csv"
        user = "uid"
        weight = "watch"
        [[sparse]]
        name = "item"
        [[multi]]
        name = "tags"
        [[dense]]
        name = "price"
        [[label]]
        name = "click"
        [[label]]
        name = "long_watch"
        column = "watch"
        threshold = 30.0
        "#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let p = prepare::custom::prepare(&tmp.path().join("logs.toml"), &opts(&out, 3)).unwrap();
    assert_eq!(p.rows, 40);
    let ds = Dataset::load(&out).unwrap();
    assert_eq!(ds.spec.task_names(), ["click", "long_watch"]);
    assert_eq!(count(&ds, 0), 20);
    assert_eq!(count(&ds, 1), 20);
    // Rows cycle through 4 records: the third has no tag, the others one or two.
    let m = &ds.multi[0];
    let lens: Vec<u32> = (0..4).map(|r| m.offsets[r + 1] - m.offsets[r]).collect();
    assert_eq!(lens, [2, 1, 0, 2]);
    assert_eq!(ds.spec.labels[1].description, "watch >= 30");
    // The watch time is also the rows' sample weight.
    assert_eq!(ds.spec.weight.as_deref(), Some("watch"));
    assert_eq!(ds.weights.as_ref().unwrap()[..4], [40.0, 10.0, 31.0, 29.0]);
}

#[test]
fn custom_parquet_input() {
    // A Parquet file written by the canonical writer serves as a team's own Parquet logs.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    prepare::synthetic::prepare(
        &SyntheticOptions {
            rows: 500,
            ..Default::default()
        },
        &opts(&src, 1),
        &|_| {},
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("c.toml"),
        r#"
        name = "from-parquet"
        input = "src/data.parquet"
        user = "f0"
        [[sparse]]
        name = "f0"
        [[sparse]]
        name = "f1"
        [[dense]]
        name = "d0"
        [[label]]
        name = "task0"
        [[label]]
        name = "likely"
        column = "p_task1"
        threshold = 0.5
        "#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    prepare::custom::prepare(&tmp.path().join("c.toml"), &opts(&out, 1)).unwrap();
    let ds = Dataset::load(&out).unwrap();
    let orig = Dataset::load(&src).unwrap();
    assert_eq!(ds.rows(), 500);
    assert_eq!(ds.labels[0].values, orig.labels[0].values);
}

#[test]
fn synthetic_is_reproducible_and_labels_follow_the_true_probabilities() {
    let o = SyntheticOptions {
        rows: 20_000,
        fields: 4,
        vocab: 500,
        tasks: 3,
        dense: 2,
        ..Default::default()
    };
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    prepare::synthetic::prepare(&o, &opts(a.path(), 9), &|_| {}).unwrap();
    prepare::synthetic::prepare(&o, &opts(b.path(), 9), &|_| {}).unwrap();
    let bytes = |d: &tempfile::TempDir| std::fs::read(d.path().join("data.parquet")).unwrap();
    assert_eq!(bytes(&a), bytes(&b), "same seed, same file");
    let ds = Dataset::load(a.path()).unwrap();
    assert_eq!(ds.tasks(), 3);
    // The mean true probability matches the positive rate (law of large numbers, 20k rows).
    let batches =
        crossdistil_data::read_columns(&a.path().join("data.parquet"), &["p_task0"]).unwrap();
    let p: f64 = batches
        .iter()
        .flat_map(|b| {
            use arrow_array::cast::AsArray;
            b.column(0)
                .as_primitive::<arrow_array::types::Float32Type>()
                .values()
                .to_vec()
        })
        .map(f64::from)
        .sum::<f64>()
        / 20_000.0;
    let rate = count(&ds, 0) as f64 / 20_000.0;
    assert!((p - rate).abs() < 0.02, "mean p {p} vs rate {rate}");
    // Tasks are correlated through the shared preference.
    let both = (0..20_000)
        .filter(|&r| ds.labels[0].values[r] == 1 && ds.labels[1].values[r] == 1)
        .count() as f64;
    let r1 = count(&ds, 1) as f64 / 20_000.0;
    assert!(
        both / 20_000.0 > rate * r1 * 1.2,
        "tasks are not positively correlated"
    );
}

#[test]
fn row_groups_are_read_in_parallel_and_in_order() {
    // More than one row group (256k rows each): row ids must come back in file order.
    let o = SyntheticOptions {
        rows: 600_000,
        fields: 2,
        vocab: 1000,
        tasks: 1,
        dense: 1,
        ..Default::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    prepare::synthetic::prepare(&o, &opts(tmp.path(), 5), &|_| {}).unwrap();
    let ds = Dataset::load(tmp.path()).unwrap();
    assert_eq!(ds.rows(), 600_000);
    assert!(ds.row_ids.iter().enumerate().all(|(i, &r)| r == i as u64));
}
