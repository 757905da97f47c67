//! An in-memory table of typed columns: what a source parser produces and the canonical writer
//! stores.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray, UInt8Array, UInt64Array,
};
use arrow_schema::{ArrowError, Field, Schema};

/// One column's values, in the Arrow type the canonical layout stores them as.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// Categorical values as text (`Utf8`).
    Str(Vec<String>),
    /// Categorical values that are already integer ids (`Int64`).
    Int(Vec<i64>),
    /// Categorical text with nulls (`Utf8`, nullable): a null stays null, the null category.
    OptStr(Vec<Option<String>>),
    /// Categorical integers with nulls (`Int64`, nullable).
    OptInt(Vec<Option<i64>>),
    /// Dense numeric values (`Float32`).
    Float(Vec<f32>),
    /// Multi-valued categorical values (`List<Utf8>`).
    List(Vec<Vec<String>>),
    /// Binary labels, 0 or 1 (`UInt8`).
    Label(Vec<u8>),
    /// Row ids (`UInt64`).
    RowId(Vec<u64>),
}

impl ColumnData {
    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Str(v) => v.len(),
            ColumnData::Int(v) => v.len(),
            ColumnData::OptStr(v) => v.len(),
            ColumnData::OptInt(v) => v.len(),
            ColumnData::Float(v) => v.len(),
            ColumnData::List(v) => v.len(),
            ColumnData::Label(v) => v.len(),
            ColumnData::RowId(v) => v.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn to_arrow(&self) -> ArrayRef {
        match self {
            ColumnData::Str(v) => Arc::new(StringArray::from_iter_values(v)),
            ColumnData::Int(v) => Arc::new(Int64Array::from(v.clone())),
            ColumnData::OptStr(v) => Arc::new(StringArray::from_iter(v.iter())),
            ColumnData::OptInt(v) => Arc::new(Int64Array::from(v.clone())),
            ColumnData::Float(v) => Arc::new(Float32Array::from(v.clone())),
            ColumnData::Label(v) => Arc::new(UInt8Array::from(v.clone())),
            ColumnData::RowId(v) => Arc::new(UInt64Array::from(v.clone())),
            ColumnData::List(v) => {
                let mut b = ListBuilder::new(StringBuilder::new());
                for row in v {
                    for s in row {
                        b.values().append_value(s);
                    }
                    b.append(true);
                }
                Arc::new(b.finish())
            }
        }
    }
}

/// Named columns of equal length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// The columns, in file order: (name, values).
    pub columns: Vec<(String, ColumnData)>,
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Table::default()
    }

    /// Adds a column; every column must have the same number of rows.
    pub fn push(&mut self, name: impl Into<String>, data: ColumnData) {
        let name = name.into();
        if let Some((first, d)) = self.columns.first() {
            assert_eq!(
                d.len(),
                data.len(),
                "column `{name}` and `{first}` differ in length"
            );
        }
        self.columns.push((name, data));
    }

    /// The number of rows (0 without columns).
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, d)| d.len())
    }

    /// The column called `name`.
    pub fn get(&self, name: &str) -> Option<&ColumnData> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, d)| d)
    }

    /// The Arrow record batch of this table (non-nullable columns but lists and the `Opt*`
    /// categoricals).
    pub fn to_record_batch(&self) -> Result<RecordBatch, ArrowError> {
        let arrays: Vec<ArrayRef> = self.columns.iter().map(|(_, d)| d.to_arrow()).collect();
        let fields: Vec<Field> = self
            .columns
            .iter()
            .zip(&arrays)
            .map(|((n, d), a)| {
                let nullable = matches!(
                    d,
                    ColumnData::List(_) | ColumnData::OptStr(_) | ColumnData::OptInt(_)
                );
                Field::new(n, a.data_type().clone(), nullable)
            })
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
    }
}
