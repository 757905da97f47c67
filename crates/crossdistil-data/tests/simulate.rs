//! The ground-truth simulator: realised rates, correlation, nesting, calibration of the Bayes
//! probabilities, determinism and refusals, read back from the files it writes.

mod common;

use std::collections::HashMap;
use std::path::Path;

use arrow_array::{Array, Float32Array, Int64Array, StringArray, UInt8Array};
use crossdistil_data::prepare::simulate::{self, SimulateOptions, SimulationSummary};
use crossdistil_data::{Dataset, read_columns};

use common::opts;

/// The columns of a simulated set that the tests read.
struct Rows {
    user: Vec<i64>,
    item: Vec<i64>,
    split: Vec<String>,
    /// `y[k][row]`
    y: Vec<Vec<u8>>,
    /// `p[k][row]`
    p: Vec<Vec<f32>>,
}

fn read(dir: &Path, tasks: &[String]) -> Rows {
    let p_names: Vec<String> = tasks.iter().map(|t| format!("p_{t}")).collect();
    let mut cols = vec!["user", "item", "split"];
    cols.extend(tasks.iter().map(String::as_str));
    cols.extend(p_names.iter().map(String::as_str));
    let batches = read_columns(&dir.join("data.parquet"), &cols).unwrap();
    let k = tasks.len();
    let mut r = Rows {
        user: vec![],
        item: vec![],
        split: vec![],
        y: vec![vec![]; k],
        p: vec![vec![]; k],
    };
    for b in batches {
        let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
        let ints = |name: &str| {
            let c = col(name);
            let a = c.as_any().downcast_ref::<Int64Array>().unwrap();
            a.values().to_vec()
        };
        r.user.extend(ints("user"));
        r.item.extend(ints("item"));
        let s = col("split");
        let s = s.as_any().downcast_ref::<StringArray>().unwrap();
        r.split.extend((0..s.len()).map(|i| s.value(i).to_string()));
        for t in 0..k {
            let y = col(&tasks[t]);
            let y = y.as_any().downcast_ref::<UInt8Array>().unwrap();
            r.y[t].extend(y.values().iter().copied());
            let p = col(&p_names[t]);
            let p = p.as_any().downcast_ref::<Float32Array>().unwrap();
            r.p[t].extend(p.values().iter().copied());
        }
    }
    r
}

fn simulate(dir: &Path, o: &SimulateOptions, seed: u64) -> (SimulationSummary, Rows) {
    let (prepared, summary) = simulate::prepare(o, &opts(dir, seed), &|_| {}).unwrap();
    assert_eq!(prepared.rows, o.rows);
    assert_eq!(SimulationSummary::read(dir).unwrap(), summary);
    (summary, read(dir, &o.task_names()))
}

fn mean(v: &[u8]) -> f64 {
    v.iter().map(|&y| f64::from(y)).sum::<f64>() / v.len() as f64
}

/// Pearson (phi) correlation of two 0/1 columns.
fn phi(a: &[u8], b: &[u8]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    let cov = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - ma) * (f64::from(y) - mb))
        .sum::<f64>()
        / a.len() as f64;
    cov / (ma * (1.0 - ma) * mb * (1.0 - mb)).sqrt()
}

fn small(rates: &[f64]) -> SimulateOptions {
    SimulateOptions {
        rows: 60_000,
        users: 2_000,
        items: 2_000,
        positive_rates: rates.to_vec(),
        ..Default::default()
    }
}

/// Each task's share of positives is the requested rate, within four binomial standard
/// deviations of the rows plus four of the thresholds' sample.
#[test]
fn realised_rates_match_the_requested_ones() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (rates, nested)) in [(vec![0.02, 0.4], false), (vec![0.5, 0.2, 0.01], true)]
        .into_iter()
        .enumerate()
    {
        let dir = tmp.path().join(i.to_string());
        let o = SimulateOptions {
            nested,
            ..small(&rates)
        };
        let (summary, rows) = simulate(&dir, &o, 5);
        for (k, &r) in rates.iter().enumerate() {
            let sd = (r * (1.0 - r)).sqrt();
            let tol =
                4.0 * sd * ((o.rows as f64).recip().sqrt() + (1.0 / (1u64 << 20) as f64).sqrt());
            let got = mean(&rows.y[k]);
            assert!(
                (got - r).abs() < tol,
                "task {k}: rate {got}, asked {r} (± {tol})"
            );
            assert_eq!(summary.tasks[k].rate, got);
            assert!((summary.tasks[k].mean_p - r).abs() < tol);
            assert_eq!(summary.tasks[k].requested_rate, r);
        }
    }
}

/// The labels' correlation grows with `--correlation`, from about 0 at `c = 0`; the utilities'
/// realised correlation is close to `c`.
#[test]
fn label_correlation_increases_with_the_correlation() {
    let tmp = tempfile::tempdir().unwrap();
    let mut last = -1.0;
    for (i, c) in [0.0, 0.3, 0.7, 1.0].into_iter().enumerate() {
        let dir = tmp.path().join(i.to_string());
        let o = SimulateOptions {
            correlation: c,
            ..small(&[0.3, 0.2])
        };
        let (summary, rows) = simulate(&dir, &o, 9);
        let r = phi(&rows.y[0], &rows.y[1]);
        assert!((summary.label_correlation[0][1].unwrap() - r).abs() < 1e-9);
        let u = summary.utility_correlation[0][1].unwrap();
        assert!((u - c).abs() < 0.1, "c {c}: utility correlation {u}");
        if c == 0.0 {
            assert!(r.abs() < 0.05, "c 0: label correlation {r}");
        }
        assert!(r > last + 0.05, "c {c}: label correlation {r} after {last}");
        last = r;
    }
}

/// One utility and almost no noise: each task is nearly a function of the other (the rarer
/// one's positives are almost all positives of the wider one; equal rates give equal labels).
#[test]
fn one_utility_and_little_noise_tie_the_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let o = SimulateOptions {
        correlation: 1.0,
        noise: 0.001,
        ..small(&[0.3, 0.1, 0.3])
    };
    let (summary, rows) = simulate(tmp.path(), &o, 2);
    let n = o.rows as f64;
    let broken = (0..o.rows)
        .filter(|&i| rows.y[1][i] == 1 && rows.y[0][i] == 0)
        .count() as f64;
    assert!(
        broken / n < 0.002,
        "{broken} rows with task 1 but not task 0"
    );
    let differ = (0..o.rows)
        .filter(|&i| rows.y[0][i] != rows.y[2][i])
        .count() as f64;
    assert!(differ / n < 0.002, "tasks 0 and 2 differ on {differ} rows");
    // Nearly deterministic labels: the Bayes AUC is nearly 1.
    for t in &summary.tasks {
        assert!(t.bayes_auc.unwrap() > 0.99, "{t:?}");
    }
}

/// `--nested`: every task implies the one before it, on every row; its Bayes probability is at
/// most the one before.
#[test]
fn nesting_holds_on_every_row() {
    let tmp = tempfile::tempdir().unwrap();
    let o = SimulateOptions {
        nested: true,
        correlation: 0.2,
        tasks: vec!["click".into(), "like".into(), "share".into()],
        ..small(&[0.4, 0.1, 0.03])
    };
    let (_, rows) = simulate(tmp.path(), &o, 4);
    for k in 1..3 {
        assert!(rows.y[k].contains(&1));
        for i in 0..o.rows {
            assert!(rows.y[k][i] <= rows.y[k - 1][i], "row {i}, task {k}");
            assert!(rows.p[k][i] <= rows.p[k - 1][i], "row {i}, task {k}");
        }
    }
    let toml = std::fs::read_to_string(tmp.path().join("dataset.toml")).unwrap();
    assert!(
        toml.contains("p_share") && toml.contains("\"like\""),
        "{toml}"
    );
}

/// The Bayes probability is calibrated (binned mean label against mean probability) and its
/// test AUC beats the item's train positive rate, a model-free baseline.
#[test]
fn the_bayes_probability_is_calibrated_and_beats_a_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let o = SimulateOptions {
        rows: 200_000,
        users: 1_000,
        items: 1_000,
        bias: 0.5,
        noise: 0.7,
        fields: 2,
        vocab: 50,
        ..small(&[0.25, 0.05])
    };
    let (summary, rows) = simulate(tmp.path(), &o, 11);
    for k in 0..2 {
        // Ten bins of equal counts by p.
        let mut order: Vec<usize> = (0..o.rows).collect();
        order.sort_by(|&a, &b| rows.p[k][a].total_cmp(&rows.p[k][b]));
        for bin in order.chunks(o.rows / 10) {
            let n = bin.len() as f64;
            let p = bin.iter().map(|&i| f64::from(rows.p[k][i])).sum::<f64>() / n;
            let y = bin.iter().map(|&i| f64::from(rows.y[k][i])).sum::<f64>() / n;
            let tol = 4.0 * (p * (1.0 - p) / n).sqrt() + 1e-4;
            assert!((p - y).abs() < tol, "task {k}: mean p {p}, mean label {y}");
        }
        // The item's positive rate on train (smoothed), scored on test.
        let mut counts: HashMap<i64, (f64, f64)> = HashMap::new();
        for i in (0..o.rows).filter(|&i| rows.split[i] == "train") {
            let c = counts.entry(rows.item[i]).or_default();
            c.0 += f64::from(rows.y[k][i]);
            c.1 += 1.0;
        }
        let prior = o.positive_rates[k];
        let test: Vec<usize> = (0..o.rows).filter(|&i| rows.split[i] == "test").collect();
        let baseline: Vec<f32> = test
            .iter()
            .map(|&i| {
                let (pos, n) = counts.get(&rows.item[i]).copied().unwrap_or_default();
                ((pos + 10.0 * prior) / (n + 10.0)) as f32
            })
            .collect();
        let labels: Vec<u8> = test.iter().map(|&i| rows.y[k][i]).collect();
        let scores: Vec<f32> = test.iter().map(|&i| rows.p[k][i]).collect();
        let base = crossdistil_metrics::auc(&baseline, &labels)
            .unwrap()
            .unwrap();
        let bayes = crossdistil_metrics::auc(&scores, &labels).unwrap().unwrap();
        assert_eq!(summary.tasks[k].bayes_auc, Some(bayes));
        assert!(
            bayes > base + 0.05,
            "task {k}: Bayes AUC {bayes}, item baseline {base}"
        );
        assert!(summary.tasks[k].multi_auc_of_p.unwrap() > 0.5);
    }
    assert_eq!(
        summary.test_rows as usize,
        rows.split.iter().filter(|s| *s == "test").count()
    );
    // The users are the data set's groups, the noise fields features.
    let ds = Dataset::load(tmp.path()).unwrap();
    let names: Vec<&str> = ds.sparse.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["user", "item", "f0", "f1"]);
    assert!(ds.users.is_some());
    assert_eq!(rows.user.len(), o.rows);
}

/// The same seed writes the same bytes; another seed other data; part files hold the same rows.
#[test]
fn same_seed_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let o = SimulateOptions {
        rows: 5_000,
        ..small(&[0.3, 0.1])
    };
    let files = |dir: &Path| {
        ["data.parquet", "dataset.toml", simulate::SUMMARY_FILE]
            .map(|f| std::fs::read(dir.join(f)).unwrap())
    };
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    simulate(&a, &o, 1);
    simulate(&b, &o, 1);
    simulate(&c, &o, 2);
    assert!(files(&a) == files(&b));
    assert!(files(&a)[0] != files(&c)[0]);
    let ra = read(&a, &o.task_names());
    let rc = read(&c, &o.task_names());
    assert!(ra.item != rc.item && ra.y != rc.y);
    // As part files: the same rows.
    let parts = tmp.path().join("parts");
    let (_, summary) = simulate::prepare(
        &o,
        &opts(&parts, 1).with_rows_per_file(Some(1_500)),
        &|_| {},
    )
    .unwrap();
    assert_eq!(summary, SimulationSummary::read(&a).unwrap());
    let ds_a = Dataset::load(&a).unwrap();
    let ds_p = Dataset::load(&parts).unwrap();
    assert_eq!(ds_a.labels[1].values, ds_p.labels[1].values);
    assert_eq!(ds_a.splits, ds_p.splits);
}

/// `--hint-noise`: each task's `hint_<task>` is a dense feature, its rows are those of the set
/// without hints (the hints draw from a stream of their own), and a hint with less noise ranks
/// its task better: a hint of noise `τ` has the AUC of `s + τ η`, which falls towards 0.5 as `τ`
/// grows.
#[test]
fn hints_are_noisy_views_of_the_utility_beside_unchanged_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let o = SimulateOptions {
        rows: 20_000,
        ..small(&[0.3, 0.1])
    };
    let plain = tmp.path().join("plain");
    let (_, rows) = simulate(&plain, &o, 3);
    let auc_of_hint = |tau: f64| {
        let dir = tmp.path().join(format!("hint-{tau}"));
        let (_, hinted) = simulate(
            &dir,
            &SimulateOptions {
                hint_noise: Some(tau),
                ..o.clone()
            },
            3,
        );
        assert_eq!(hinted.y, rows.y, "the labels do not depend on the hints");
        assert_eq!(hinted.item, rows.item);
        assert_eq!(hinted.split, rows.split);
        let ds = Dataset::load(&dir).unwrap();
        let names: Vec<&str> = ds.dense.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["hint_task0", "hint_task1"]);
        let y = &ds.labels[1].values;
        crossdistil_metrics::auc(&ds.dense[1].values, y)
            .unwrap()
            .unwrap()
    };
    let (sharp, blurred) = (auc_of_hint(0.2), auc_of_hint(3.0));
    assert!(
        sharp > 0.85,
        "a sharp hint ranks its task well: AUC {sharp}"
    );
    assert!(
        blurred < sharp - 0.1 && blurred > 0.5,
        "a noisy hint ranks worse: {blurred} against {sharp}"
    );
    let bad = SimulateOptions {
        hint_noise: Some(0.0),
        ..o.clone()
    };
    let err = simulate::prepare(&bad, &opts(&tmp.path().join("bad"), 3), &|_| {}).unwrap_err();
    assert!(err.to_string().contains("--hint-noise"), "{err}");
}

/// Bad options are refused before anything is written, with a message naming the option.
#[test]
fn invalid_options_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<(SimulateOptions, &str)> = vec![
        (small(&[0.0, 0.3]), "strictly between 0 and 1"),
        (small(&[0.3, 1.0]), "strictly between 0 and 1"),
        (small(&[f64::NAN]), "strictly between 0 and 1"),
        (small(&[]), "--positive-rates"),
        (
            SimulateOptions {
                correlation: 1.5,
                ..small(&[0.3])
            },
            "--correlation",
        ),
        (
            SimulateOptions {
                correlation: -0.1,
                ..small(&[0.3])
            },
            "--correlation",
        ),
        (
            SimulateOptions {
                noise: 0.0,
                ..small(&[0.3])
            },
            "--noise",
        ),
        (
            SimulateOptions {
                tasks: vec!["a".into()],
                ..small(&[0.3, 0.1])
            },
            "one rate per task",
        ),
        (
            SimulateOptions {
                nested: true,
                ..small(&[0.1, 0.3])
            },
            "strictly decreasing",
        ),
        (
            SimulateOptions {
                tasks: vec!["a".into(), "a".into()],
                ..small(&[0.3, 0.1])
            },
            "twice",
        ),
        (
            SimulateOptions {
                tasks: vec!["item".into()],
                ..small(&[0.3])
            },
            "twice",
        ),
        (
            SimulateOptions {
                latent: 0,
                ..small(&[0.3])
            },
            "--latent",
        ),
        (
            SimulateOptions {
                users: 0,
                ..small(&[0.3])
            },
            "--users",
        ),
        (
            SimulateOptions {
                rows: 3,
                ..small(&[0.3])
            },
            "--rows",
        ),
    ];
    for (o, want) in cases {
        let dir = tmp.path().join("x");
        let e = simulate::prepare(&o, &opts(&dir, 1), &|_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{o:?}: `{e}` lacks `{want}`");
        assert!(!dir.join("dataset.toml").exists());
    }
}
