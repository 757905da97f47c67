//! What `crossdistil inspect` shows: the schema, the rows per split, each task's positive rate
//! and the counts of every label combination (the classes the ranking tasks order).

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::split::Split;

/// A count per split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerSplit {
    /// Rows (or positives) in train.
    pub train: usize,
    /// Rows (or positives) in valid.
    pub valid: usize,
    /// Rows (or positives) in test.
    pub test: usize,
}

impl PerSplit {
    fn add(&mut self, s: Split) {
        match s {
            Split::Train => self.train += 1,
            Split::Valid => self.valid += 1,
            Split::Test => self.test += 1,
        }
    }

    /// The sum over the three splits.
    pub fn total(&self) -> usize {
        self.train + self.valid + self.test
    }

    /// The count of one split.
    pub fn get(&self, s: Split) -> usize {
        match s {
            Split::Train => self.train,
            Split::Valid => self.valid,
            Split::Test => self.test,
        }
    }
}

/// One task: its positives per split and its positive rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// The task's name.
    pub name: String,
    /// How the label was derived, from `dataset.toml`.
    pub description: String,
    /// Positive labels per split.
    pub positives: PerSplit,
    /// Positive rate over all rows.
    pub positive_rate: f64,
}

/// One combination of labels, written with the tasks' signs in priority order (`+-` is positive
/// for the first task, negative for the second).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Combination {
    /// The signs of the tasks' labels, for example `+-`.
    pub pattern: String,
    /// Rows with these labels per split.
    pub rows: PerSplit,
    /// Share of all rows.
    pub share: f64,
}

/// One input feature: its kind, vocabulary size, OOV rate and nulls, or its normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSummary {
    /// The column name.
    pub name: String,
    /// `sparse`, `multi` or `dense`.
    pub kind: String,
    /// Ids including the OOV id 0 (categorical features).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<usize>,
    /// Share of valid and test values that map to the OOV id (categorical features).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oov_rate_eval: Option<f64>,
    /// Null values over all rows (categorical features): null rows of a sparse feature, null
    /// items of a multi-valued one. They form the null category (see `vocab.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nulls: Option<usize>,
    /// The normalisation of a dense feature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub norm: Option<String>,
}

/// What `crossdistil inspect` reports of a loaded data set ([`Summary::to_table`] prints it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The data set's name.
    pub name: String,
    /// The source it was prepared from.
    pub source: String,
    /// The path of the Parquet file.
    pub file: String,
    /// Rows per split.
    pub rows: PerSplit,
    /// The grouping column for GAUC, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_column: Option<String>,
    /// The number of distinct users (groups), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<usize>,
    /// The chosen tasks, in priority order.
    pub tasks: Vec<TaskSummary>,
    /// Every combination of the chosen tasks' labels, with its rows.
    pub combinations: Vec<Combination>,
    /// The input features.
    pub features: Vec<FeatureSummary>,
}

/// The pattern of a combination index: bit `K-1-k` is task `k`'s label.
pub(crate) fn pattern(combo: usize, tasks: usize) -> String {
    (0..tasks)
        .map(|k| {
            if combo >> (tasks - 1 - k) & 1 == 1 {
                '+'
            } else {
                '-'
            }
        })
        .collect()
}

impl Summary {
    /// The summary over every task.
    pub fn of(ds: &Dataset) -> Summary {
        Summary::of_tasks(ds, &(0..ds.tasks()).collect::<Vec<_>>())
    }

    /// The summary over the tasks at these indices, in this order (the label combinations are
    /// those of these tasks).
    pub fn of_tasks(ds: &Dataset, chosen: &[usize]) -> Summary {
        let k = chosen.len();
        let labels: Vec<&crate::dataset::LabelColumn> =
            chosen.iter().map(|&t| &ds.labels[t]).collect();
        let label_specs: Vec<&crate::spec::LabelSpec> =
            chosen.iter().map(|&t| &ds.spec.labels[t]).collect();
        let mut rows = PerSplit::default();
        for &s in &ds.splits {
            rows.add(s);
        }
        let mut combos = vec![PerSplit::default(); 1 << k];
        let mut positives = vec![PerSplit::default(); k];
        for (r, &s) in ds.splits.iter().enumerate() {
            let mut c = 0usize;
            for (t, l) in labels.iter().enumerate() {
                let y = l.values[r] as usize;
                c = (c << 1) | y;
                if y == 1 {
                    positives[t].add(s);
                }
            }
            combos[c].add(s);
        }
        let n = ds.rows().max(1) as f64;
        let tasks = label_specs
            .iter()
            .zip(positives)
            .map(|(l, p)| TaskSummary {
                name: l.name.clone(),
                description: l.description.clone(),
                positive_rate: p.total() as f64 / n,
                positives: p,
            })
            .collect();
        let combinations = (0..1usize << k)
            .rev()
            .map(|c| Combination {
                pattern: pattern(c, k),
                share: combos[c].total() as f64 / n,
                rows: combos[c],
            })
            .collect();
        let eval: Vec<usize> = (0..ds.rows())
            .filter(|&r| ds.splits[r] != Split::Train)
            .collect();
        let oov = |ids: &[u32]| {
            let bad = eval
                .iter()
                .filter(|&&r| ids[r] == crate::vocab::OOV)
                .count();
            bad as f64 / eval.len().max(1) as f64
        };
        let mut features: Vec<FeatureSummary> = ds
            .sparse
            .iter()
            .map(|c| FeatureSummary {
                name: c.name.clone(),
                kind: "sparse".into(),
                vocab_size: Some(c.vocab_size),
                oov_rate_eval: Some(oov(&c.ids)),
                nulls: Some(c.nulls),
                norm: None,
            })
            .collect();
        features.extend(ds.multi.iter().map(|c| {
            let (mut total, mut bad) = (0usize, 0usize);
            for &r in &eval {
                let ids = &c.ids[c.offsets[r] as usize..c.offsets[r + 1] as usize];
                total += ids.len();
                bad += ids.iter().filter(|&&i| i == crate::vocab::OOV).count();
            }
            FeatureSummary {
                name: c.name.clone(),
                kind: "multi".into(),
                vocab_size: Some(c.vocab_size),
                oov_rate_eval: Some(bad as f64 / total.max(1) as f64),
                nulls: Some(c.nulls),
                norm: None,
            }
        }));
        features.extend(ds.spec.dense.iter().map(|d| FeatureSummary {
            name: d.name.clone(),
            kind: "dense".into(),
            vocab_size: None,
            oov_rate_eval: None,
            nulls: None,
            norm: Some(serde_json_like(d.norm)),
        }));
        Summary {
            name: ds.spec.name.clone(),
            source: ds.spec.source.clone(),
            file: ds.data_path().display().to_string(),
            rows,
            user_column: ds.spec.user.clone(),
            users: ds.n_users(),
            tasks,
            combinations,
            features,
        }
    }

    /// Readable tables.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "data set  {} (source: {})", self.name, self.source);
        let _ = writeln!(s, "file      {}", self.file);
        let _ = writeln!(
            s,
            "rows      {} (train {}, valid {}, test {})",
            self.rows.total(),
            self.rows.train,
            self.rows.valid,
            self.rows.test
        );
        if let (Some(c), Some(u)) = (&self.user_column, self.users) {
            let _ = writeln!(s, "users     {u} distinct values of `{c}`");
        }
        let _ = writeln!(s, "\ntasks (priority order)");
        let w = self
            .tasks
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            s,
            "  {:w$}  {:>8}  {:>8}  {:>8}  {:>8}  description",
            "task", "rate", "train+", "valid+", "test+"
        );
        for t in &self.tasks {
            let _ = writeln!(
                s,
                "  {:w$}  {:>7.2}%  {:>8}  {:>8}  {:>8}  {}",
                t.name,
                100.0 * t.positive_rate,
                t.positives.train,
                t.positives.valid,
                t.positives.test,
                t.description
            );
        }
        let names: Vec<&str> = self.tasks.iter().map(|t| t.name.as_str()).collect();
        let _ = writeln!(
            s,
            "\nlabel combinations (signs in task order: {})",
            names.join(", ")
        );
        let _ = writeln!(
            s,
            "  {:>8}  {:>9}  {:>9}  {:>9}  {:>7}",
            "labels", "train", "valid", "test", "share"
        );
        for c in &self.combinations {
            let _ = writeln!(
                s,
                "  {:>8}  {:>9}  {:>9}  {:>9}  {:>6.2}%",
                c.pattern,
                c.rows.train,
                c.rows.valid,
                c.rows.test,
                100.0 * c.share
            );
        }
        let _ = writeln!(s, "\nfeatures");
        let w = self
            .features
            .iter()
            .map(|f| f.name.len())
            .max()
            .unwrap_or(7)
            .max(7);
        let _ = writeln!(
            s,
            "  {:w$}  {:6}  {:>10}  {:>9}  {:>9}  norm",
            "feature", "kind", "vocab", "eval OOV", "nulls"
        );
        for f in &self.features {
            let _ = writeln!(
                s,
                "  {:w$}  {:6}  {:>10}  {:>9}  {:>9}  {}",
                f.name,
                f.kind,
                f.vocab_size.map_or(String::new(), |v| v.to_string()),
                f.oov_rate_eval
                    .map_or(String::new(), |r| format!("{:.2}%", 100.0 * r)),
                f.nulls.map_or(String::new(), |n| n.to_string()),
                f.norm.as_deref().unwrap_or("")
            );
        }
        s
    }
}

fn serde_json_like(n: crate::spec::Norm) -> String {
    toml::Value::try_from(n)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}
