//! UCI Adult (census income), as the bundled Parquet file of the original train and test sets
//! merged. Tasks: `income` (> 50K) and `never_married` (marital-status is Never-married);
//! `marital-status` and `relationship` are dropped from the inputs since they give the second
//! task away. Adult has no user column, so GAUC does not apply.

use std::path::Path;

use super::{PrepareOptions, Prepared, finish};
use crate::column::Chunks;
use crate::error::{DataError, Result, echo};
use crate::parquet_io::read_columns_named;
use crate::spec::{DatasetSpec, DenseSpec, LabelSpec, Norm, SparseSpec};
use crate::table::{ColumnData, Table};

/// Categorical inputs: (source column, output column).
const CATEGORICAL: [(&str, &str); 6] = [
    ("workclass", "workclass"),
    ("education", "education"),
    ("occupation", "occupation"),
    ("race", "race"),
    ("gender", "gender"),
    ("native-country", "native_country"),
];

/// Numeric inputs: (source column, output column, normalisation).
const NUMERIC: [(&str, &str, Norm); 6] = [
    ("age", "age", Norm::Standard),
    ("fnlwgt", "fnlwgt", Norm::LogStandard),
    ("educational-num", "education_num", Norm::Standard),
    ("capital-gain", "capital_gain", Norm::LogStandard),
    ("capital-loss", "capital_loss", Norm::LogStandard),
    ("hours-per-week", "hours_per_week", Norm::Standard),
];

/// The `dataset.toml` this source writes: the inputs and the two tasks.
pub fn spec() -> DatasetSpec {
    let mut sparse: Vec<SparseSpec> = CATEGORICAL
        .iter()
        .map(|(_, n)| SparseSpec {
            name: n.to_string(),
            min_count: 1,
            max_size: None,
            hash_buckets: None,
        })
        .collect();
    // Bucketised copies of two numeric columns, as a one-hot model would see them.
    sparse.push(SparseSpec {
        name: "age_bucket".into(),
        min_count: 1,
        max_size: None,
        hash_buckets: None,
    });
    sparse.push(SparseSpec {
        name: "hours_bucket".into(),
        min_count: 1,
        max_size: None,
        hash_buckets: None,
    });
    DatasetSpec {
        name: "adult".into(),
        source: "adult".into(),
        data: crate::spec::DATA_FILE.into(),
        row_id: "row_id".into(),
        split: "split".into(),
        user: None,
        labels: vec![
            LabelSpec {
                name: "income".into(),
                description: "income > 50K".into(),
            },
            LabelSpec {
                name: "never_married".into(),
                description: "marital-status == Never-married".into(),
            },
        ],
        sparse,
        multi: vec![],
        dense: NUMERIC
            .iter()
            .map(|(_, n, norm)| DenseSpec {
                name: n.to_string(),
                norm: *norm,
            })
            .collect(),
        extra: vec![],
        weight: None,
        footer_crc32: None,
        parts: vec![],
    }
}

/// `raw`: the Adult Parquet file (`datasets/adult/adult.parquet`).
pub fn prepare(raw: &Path, opts: &PrepareOptions) -> Result<Prepared> {
    let mut wanted: Vec<&str> = CATEGORICAL.iter().map(|c| c.0).collect();
    wanted.extend(NUMERIC.iter().map(|c| c.0));
    wanted.extend(["income", "marital-status"]);
    let batches = read_columns_named(raw, &wanted, "the adult source")?;
    let col = |name: &'static str| Chunks {
        file: raw,
        first_row: 0,
        name,
        arrays: batches
            .iter()
            .map(|b| b.column_by_name(name).expect("projected").as_ref())
            .collect(),
    };
    let mut table = Table::new();
    for (src, out) in CATEGORICAL {
        let values = col(src)
            .strings()?
            .into_iter()
            .map(|s| s.trim().to_string())
            .collect();
        table.push(out, ColumnData::Str(values));
    }
    let mut numeric = Vec::new();
    for (src, out, _) in NUMERIC {
        let v = col(src).dense()?;
        numeric.push((out, v));
    }
    let bucket = |v: &[f32], width: f32| -> Vec<i64> {
        v.iter().map(|x| (x / width).floor() as i64).collect()
    };
    let age = &numeric[0].1;
    let hours = &numeric[5].1;
    table.push("age_bucket", ColumnData::Int(bucket(age, 5.0)));
    table.push("hours_bucket", ColumnData::Int(bucket(hours, 5.0)));
    for (out, v) in numeric {
        table.push(out, ColumnData::Float(v));
    }
    let income = col("income");
    let income_labels = income
        .strings()?
        .into_iter()
        .enumerate()
        .map(|(row, s)| match s.trim().trim_end_matches('.') {
            ">50K" => Ok(1),
            "<=50K" => Ok(0),
            other => Err(DataError::cell(
                raw,
                "income",
                row + 1,
                format!("`{}` is neither >50K nor <=50K", echo(other)),
            )),
        })
        .collect::<Result<Vec<u8>>>()?;
    let never = col("marital-status")
        .strings()?
        .into_iter()
        .map(|s| u8::from(s.trim() == "Never-married"))
        .collect();
    table.push("income", ColumnData::Label(income_labels));
    table.push("never_married", ColumnData::Label(never));
    finish(raw, table, spec(), opts)
}
