//! The sample beside the model: some rows as the graph's encoded inputs, with crossdistil's own
//! scores of them, so that any scorer of the ONNX file can be checked against crossdistil.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use crossdistil_core::Batch;
use crossdistil_data::{Batches, DataSource, Dataset, Encoders, Order, Split};
use crossdistil_model::MultiTaskModel;
use parquet::arrow::ArrowWriter;

use crate::error::{ExportError, Result};
use crate::files::write_with;
use crate::input::{InputKind, InputSpec, PAD_ID};

/// The rows a sample takes by default.
pub const SAMPLE_ROWS: usize = 1000;

/// The prefix of a task's score column, `score_<task>`.
pub const SCORE_PREFIX: &str = "score_";

/// Rows as the graph's inputs with their scores: one column per input column (a 2-D input
/// `name` as `name_0`, `name_1`, ...), `row_id`, and `score_<task>` per task.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The rows' `row_id`s.
    pub row_ids: Vec<u64>,
    /// Per input, its values as `[rows, columns]` row-major, with its column count.
    pub inputs: Vec<SampleInput>,
    /// Per task, `(task, scores)`: crossdistil's probabilities of the rows.
    pub scores: Vec<(String, Vec<f32>)>,
}

/// One input's values over the sample's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleInput {
    /// The input's name.
    pub name: String,
    /// Its columns (for a multi-valued field, the widest row's items, at least 1).
    pub columns: usize,
    /// Its values, `[rows, columns]` row-major.
    pub values: SampleValues,
}

/// The values of one input.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleValues {
    /// Encoded ids (`sparse`, `multi_<field>`), padded with [`PAD_ID`].
    Ids(Vec<i64>),
    /// Normalised dense values.
    Floats(Vec<f32>),
}

/// The rows of `ds` (indices) in batches of `batch_size`, each with its rows' `row_id`s.
pub fn dataset_batches(ds: &Dataset, rows: &[u32], batch_size: usize) -> Vec<(Batch, Vec<u64>)> {
    Batches::new(ds, rows, batch_size, Order::Sequential)
        .map(|b| {
            let ids = b.rows.iter().map(|&r| ds.row_ids[r as usize]).collect();
            (b, ids)
        })
        .collect()
}

/// The first `k` rows of `split` of a streamed data set (read a row group at a time with
/// `encoders`), in batches of `batch_size`, each with its rows' `row_id`s.
pub fn source_batches(
    source: &DataSource,
    encoders: &Encoders,
    split: Split,
    k: usize,
    batch_size: usize,
) -> Result<Vec<(Batch, Vec<u64>)>> {
    let mut out = Vec::new();
    let mut taken = 0;
    for unit in 0..source.units().len() {
        if taken >= k {
            break;
        }
        let chunk = source
            .chunk(unit, encoders)
            .map_err(|e| ExportError::Sample(e.to_string()))?;
        let mut rows = chunk.data.split_rows(split);
        rows.truncate(k - taken);
        taken += rows.len();
        out.extend(dataset_batches(&chunk.data, &rows, batch_size));
    }
    Ok(out)
}

impl Sample {
    /// The sample of `batches` (each with its rows' `row_id`s), scored by `model` in evaluation
    /// mode as `crossdistil predict` scores them (`MultiTaskModel::predict_probs` of each
    /// batch), laid out for the graph's `inputs`.
    pub fn of_batches(
        model: &MultiTaskModel,
        inputs: &[InputSpec],
        tasks: &[String],
        batches: impl IntoIterator<Item = (Batch, Vec<u64>)>,
    ) -> Result<Self> {
        let t = tasks.len();
        let mut row_ids = Vec::new();
        let mut scores = vec![Vec::new(); t];
        let mut sparse = Vec::new();
        let mut dense = Vec::new();
        let n_multi = inputs
            .iter()
            .filter(|i| matches!(i.kind, InputKind::Multi { .. }))
            .count();
        let mut lists: Vec<Vec<Vec<i64>>> = vec![Vec::new(); n_multi];
        // The graph's `dense` holds the students' columns, without the teacher-only ones.
        let teacher_dim = model.input().teacher_dim();
        let student_dense = model.input().student_dense();
        let n_batch_dense = model.input().n_dense() + teacher_dim;
        for (batch, ids) in batches {
            if ids.len() != batch.size() {
                return Err(ExportError::Sample(format!(
                    "{} row ids for a batch of {} rows",
                    ids.len(),
                    batch.size()
                )));
            }
            let probs = model.predict_probs(&batch)?;
            for (i, p) in probs.iter().enumerate() {
                scores[i % t].push(*p);
            }
            row_ids.extend(ids);
            sparse.extend(batch.sparse.iter().map(|&v| v as i64));
            if teacher_dim == 0 {
                dense.extend(&batch.dense);
            } else {
                for row in batch.dense.chunks_exact(n_batch_dense) {
                    dense.extend(student_dense.iter().map(|&j| row[j]));
                }
            }
            for (m, mb) in batch.multi.iter().enumerate().take(n_multi) {
                for w in mb.offsets.windows(2) {
                    let items = &mb.ids[w[0] as usize..w[1] as usize];
                    lists[m].push(items.iter().map(|&v| v as i64).collect());
                }
            }
        }
        let rows = row_ids.len();
        let mut lists = lists.into_iter();
        let sample_inputs = inputs
            .iter()
            .map(|spec| {
                let (columns, values) = match &spec.kind {
                    InputKind::Sparse { fields } => {
                        (fields.len(), SampleValues::Ids(std::mem::take(&mut sparse)))
                    }
                    InputKind::Dense { features } => (
                        features.len(),
                        SampleValues::Floats(std::mem::take(&mut dense)),
                    ),
                    InputKind::Multi { .. } => {
                        let l = lists.next().unwrap_or_default();
                        let width = l.iter().map(Vec::len).max().unwrap_or(0).max(1);
                        let mut v = vec![PAD_ID; rows * width];
                        for (r, items) in l.iter().enumerate() {
                            v[r * width..r * width + items.len()].copy_from_slice(items);
                        }
                        (width, SampleValues::Ids(v))
                    }
                };
                SampleInput {
                    name: spec.name.clone(),
                    columns,
                    values,
                }
            })
            .collect();
        if let Some((task, p)) = tasks
            .iter()
            .zip(&scores)
            .find_map(|(task, s)| s.iter().find(|v| !v.is_finite()).map(|v| (task, v)))
        {
            return Err(ExportError::Sample(format!(
                "the model scores a row {p} for task {task}: its parameters are not finite"
            )));
        }
        Ok(Sample {
            row_ids,
            inputs: sample_inputs,
            scores: tasks.iter().cloned().zip(scores).collect(),
        })
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.row_ids.len()
    }

    /// The sample as one Arrow record batch: `row_id`, each input's columns
    /// (`<input>_<j>`, int64 or float32), then `score_<task>` (float32).
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        let rows = self.rows();
        let mut fields = vec![Field::new("row_id", DataType::UInt64, false)];
        let mut cols: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from(self.row_ids.clone()))];
        for input in &self.inputs {
            let c = input.columns;
            for j in 0..c {
                let name = format!("{}_{j}", input.name);
                match &input.values {
                    SampleValues::Ids(v) => {
                        fields.push(Field::new(name, DataType::Int64, false));
                        let col: Vec<i64> = (0..rows).map(|r| v[r * c + j]).collect();
                        cols.push(Arc::new(Int64Array::from(col)));
                    }
                    SampleValues::Floats(v) => {
                        fields.push(Field::new(name, DataType::Float32, false));
                        let col: Vec<f32> = (0..rows).map(|r| v[r * c + j]).collect();
                        cols.push(Arc::new(Float32Array::from(col)));
                    }
                }
            }
        }
        for (task, s) in &self.scores {
            fields.push(Field::new(
                format!("{SCORE_PREFIX}{task}"),
                DataType::Float32,
                false,
            ));
            cols.push(Arc::new(Float32Array::from(s.clone())));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
            .map_err(|e| ExportError::Sample(e.to_string()))
    }

    /// Writes the sample to the Parquet file `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let batch = self.to_record_batch()?;
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), None)
            .map_err(|e| ExportError::file(path, e.to_string()))?;
        w.write(&batch)
            .map_err(|e| ExportError::file(path, e.to_string()))?;
        w.close()
            .map_err(|e| ExportError::file(path, e.to_string()))?;
        write_with(path, |f| std::io::Write::write_all(f, &buf))
    }
}
