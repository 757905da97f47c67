//! The feature input: embedding tables outside autograd, gathered into a leaf `Var` per batch.
//!
//! Per step: [`FeatureInput::gather`] builds the embedding matrix `[b, width]` of the batch in
//! plain Rust and wraps it in a leaf `Var`; the model reads `x = [emb | dense]` (`[b, in_dim]`);
//! after `loss.backward()`, [`FeatureInput::apply_grads`] reads the leaf's gradient, sums it per
//! distinct id and updates only those rows with a row-wise optimiser. No full-table gradient is
//! ever built.

use std::collections::{BTreeMap, HashMap, HashSet};

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor, Var};
use crossdistil_core::Batch;
use rand_chacha::ChaCha8Rng;

use crate::embedding_table::EmbeddingTable;
use crate::gather::{FieldPlan, GatherPlan};
use crate::sparse_grads::{FieldGrad, SparseGrads};
use crate::sparse_optim::SparseOptimConfig;
use crossdistil_core::InputSchema;

/// The input of one batch.
#[derive(Debug, Clone)]
pub struct Gathered {
    /// `[emb | dense]`, `[b, in_dim]`; parts that are empty are left out.
    pub x: Tensor,
    /// The embedding matrix `[b, width]` as a leaf of the graph.
    pub leaf: Var,
    /// Which table rows each field used, to route the leaf's gradient back to them.
    pub plan: GatherPlan,
    /// `[b, m]`: the teacher-only dense features ([`FeatureInput::with_teacher_dense`]), kept out
    /// of `x`; `None` when there are none.
    pub teacher_x: Option<Tensor>,
}

/// One embedding table per single-valued field, then one per multi-valued field, and the number
/// of dense features.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureInput {
    tables: Vec<EmbeddingTable>,
    n_sparse: usize,
    /// The dense columns of a batch.
    n_dense: usize,
    /// The columns of a batch's dense values that only the teachers read, in `teacher_x`'s order.
    teacher_dense: Vec<usize>,
    /// The other columns, which the students read, ascending.
    student_dense: Vec<usize>,
    width: usize,
}

impl FeatureInput {
    /// Tables of `embedding_dim` columns (or `field_dims[name]`), initialised `N(0, init_std^2)`
    /// from `rng`, field by field in schema order.
    pub fn new(
        schema: &InputSchema,
        embedding_dim: usize,
        field_dims: &BTreeMap<String, usize>,
        init_std: f32,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        Self::new_shard(schema, embedding_dim, field_dims, init_std, rng, 0, 1)
    }

    /// [`FeatureInput::new`] with rank `rank`'s shard of every table of `ranks` ranks
    /// ([`EmbeddingTable::new_shard`]); `ranks = 1` is `new`.
    pub fn new_shard(
        schema: &InputSchema,
        embedding_dim: usize,
        field_dims: &BTreeMap<String, usize>,
        init_std: f32,
        rng: &mut ChaCha8Rng,
        rank: usize,
        ranks: usize,
    ) -> Result<Self> {
        let names = || schema.sparse.iter().chain(&schema.multi).map(|(n, _)| n);
        if let Some(unknown) = field_dims.keys().find(|k| names().all(|n| n != *k)) {
            candle_core::bail!("model.field_dims.{unknown}: the data set has no such field");
        }
        let fields = schema
            .sparse
            .iter()
            .map(|f| ("sparse", f))
            .chain(schema.multi.iter().map(|f| ("multi", f)));
        let mut tables = Vec::with_capacity(schema.sparse.len() + schema.multi.len());
        for (kind, (name, vocab)) in fields {
            let dim = field_dims.get(name).copied().unwrap_or(embedding_dim);
            if dim == 0 {
                candle_core::bail!("model.field_dims.{name} must be > 0");
            }
            if *vocab == 0 {
                candle_core::bail!("field {name} has an empty vocabulary");
            }
            let key = format!("input.{kind}.{name}");
            tables.push(if ranks > 1 {
                EmbeddingTable::new_shard(key, *vocab, dim, init_std, rng, rank, ranks)?
            } else {
                EmbeddingTable::new(key, *vocab, dim, init_std, rng)?
            });
        }
        let width = tables.iter().map(|t| t.dim).sum();
        if width + schema.n_dense == 0 {
            candle_core::bail!("the data set has no features");
        }
        Ok(FeatureInput {
            tables,
            n_sparse: schema.sparse.len(),
            n_dense: schema.n_dense,
            teacher_dense: Vec::new(),
            student_dense: (0..schema.n_dense).collect(),
            width,
        })
    }

    /// Holds the dense features named `names` out of the students' input `x`: [`Gathered`]
    /// carries them apart, as `teacher_x` (`[b, names.len()]`, in the order of `names`), for
    /// the teacher heads alone (privileged information, known when training but not when
    /// serving). `schema` must be the one the input was built from, with its dense features'
    /// names. Errors name an unknown or repeated feature.
    pub fn with_teacher_dense(mut self, schema: &InputSchema, names: &[String]) -> Result<Self> {
        if names.is_empty() {
            return Ok(self);
        }
        if schema.dense_names.len() != self.n_dense {
            candle_core::bail!(
                "model.teacher.inputs: the schema names {} of its {} dense features",
                schema.dense_names.len(),
                self.n_dense
            );
        }
        let mut cols = Vec::with_capacity(names.len());
        for name in names {
            let Some(j) = schema.dense_names.iter().position(|d| d == name) else {
                candle_core::bail!(
                    "model.teacher.inputs: the data set has no dense feature {name:?} (its dense \
                     features: {:?})",
                    schema.dense_names
                );
            };
            if cols.contains(&j) {
                candle_core::bail!("model.teacher.inputs: {name:?} is named twice");
            }
            cols.push(j);
        }
        if self.width + self.n_dense - cols.len() == 0 {
            candle_core::bail!("model.teacher.inputs: the students would have no features left");
        }
        self.student_dense = (0..self.n_dense).filter(|j| !cols.contains(j)).collect();
        self.teacher_dense = cols;
        Ok(self)
    }

    /// `width + n_dense()`: the columns of `x`.
    pub fn in_dim(&self) -> usize {
        self.width + self.n_dense()
    }

    /// The columns of `teacher_x`: the teacher-only dense features.
    pub fn teacher_dim(&self) -> usize {
        self.teacher_dense.len()
    }

    /// The columns of a batch's dense values that only the teachers read, in `teacher_x`'s
    /// order (empty by default).
    pub fn teacher_dense(&self) -> &[usize] {
        &self.teacher_dense
    }

    /// The dense columns of a batch that the students read, ascending: every column but the
    /// teacher-only ones.
    pub fn student_dense(&self) -> &[usize] {
        &self.student_dense
    }

    /// The columns of the embedding matrix (sum of the fields' dimensions).
    pub fn emb_width(&self) -> usize {
        self.width
    }

    /// The number of single-valued fields (the first tables).
    pub fn n_sparse(&self) -> usize {
        self.n_sparse
    }

    /// The number of dense features the students read, the last columns of `x` (a batch
    /// carries [`FeatureInput::teacher_dim`] more, for the teachers).
    pub fn n_dense(&self) -> usize {
        self.student_dense.len()
    }

    /// The tables: single-valued fields, then multi-valued fields.
    pub fn tables(&self) -> &[EmbeddingTable] {
        &self.tables
    }

    /// Puts `tables` in place of the input's tables (same count, keys and dimensions) and
    /// returns the ones it held: a data-parallel rank swaps in the rows its batch needs, and
    /// back its shard after the step.
    pub fn swap_tables(&mut self, tables: Vec<EmbeddingTable>) -> Result<Vec<EmbeddingTable>> {
        let fits = tables.len() == self.tables.len()
            && tables
                .iter()
                .zip(&self.tables)
                .all(|(a, b)| a.key == b.key && a.dim == b.dim);
        if !fits {
            candle_core::bail!(
                "swap_tables: the tables do not match the input's keys and dimensions"
            );
        }
        Ok(std::mem::replace(&mut self.tables, tables))
    }

    /// Frees the tables' row-wise optimiser state (moments or sums, twice the weights for
    /// Adam): a model that only scores from now on, or that is about to load a checkpoint's
    /// weights, does not need it. The next optimiser step starts the state again.
    pub fn clear_optimizer_state(&mut self) {
        for t in &mut self.tables {
            t.state = crate::sparse_optim::OptimState::Empty;
        }
    }

    /// Builds the input of `batch` on `device`.
    pub fn gather(&self, batch: &Batch, device: &Device) -> Result<Gathered> {
        let b = batch.size();
        self.check(batch)?;
        let ns = self.n_sparse;
        let mut fields = Vec::with_capacity(self.tables.len());
        let mut column = 0;
        let mut ids = Vec::with_capacity(b);
        for (f, table) in self.tables[..ns].iter().enumerate() {
            ids.clear();
            ids.extend(batch.sparse.iter().skip(f).step_by(ns));
            fields.push(FieldPlan::new(table, column, &ids, None)?);
            column += table.dim;
        }
        for (mb, table) in batch.multi.iter().zip(&self.tables[ns..]) {
            fields.push(FieldPlan::new(
                table,
                column,
                &mb.ids,
                Some(mb.offsets.clone()),
            )?);
            column += table.dim;
        }
        let width = self.width;
        let mut emb = vec![0.0f32; b * width];
        for (plan, table) in fields.iter().zip(&self.tables) {
            plan.fill(table, &mut emb, width);
        }
        let leaf = Var::from_vec(emb, (b, width), device)?;
        let (student, teacher_x) = match self.teacher_dense.is_empty() {
            true => (std::borrow::Cow::Borrowed(&batch.dense[..]), None),
            false => {
                let t = dense_columns(&batch.dense, self.n_dense, &self.teacher_dense);
                let t = Tensor::from_vec(t, (b, self.teacher_dense.len()), device)?;
                let s = dense_columns(&batch.dense, self.n_dense, &self.student_dense);
                (std::borrow::Cow::Owned(s), Some(t))
            }
        };
        let x = match (width, self.n_dense()) {
            (_, 0) => leaf.as_tensor().clone(),
            (0, nd) => Tensor::from_slice(&student, (b, nd), device)?,
            (_, nd) => {
                let dense = Tensor::from_slice(&student, (b, nd), device)?;
                Tensor::cat(&[leaf.as_tensor(), &dense], 1)?
            }
        };
        Ok(Gathered {
            x,
            leaf,
            plan: GatherPlan {
                rows: b,
                width,
                fields,
            },
            teacher_x,
        })
    }

    /// Checks that `batch` has this input's layout.
    fn check(&self, batch: &Batch) -> Result<()> {
        let b = batch.size();
        let n_multi = self.tables.len() - self.n_sparse;
        if batch.sparse.len() != b * self.n_sparse {
            candle_core::bail!(
                "batch: {} sparse ids for {b} rows of {} fields",
                batch.sparse.len(),
                self.n_sparse
            );
        }
        if batch.dense.len() != b * self.n_dense {
            candle_core::bail!(
                "batch: {} dense values for {b} rows of {} features",
                batch.dense.len(),
                self.n_dense
            );
        }
        if batch.multi.len() != n_multi {
            candle_core::bail!(
                "batch: {} multi-valued fields, the model has {n_multi}",
                batch.multi.len()
            );
        }
        for (mb, table) in batch.multi.iter().zip(&self.tables[self.n_sparse..]) {
            let o = &mb.offsets;
            if o.len() != b + 1
                || o[0] != 0
                || o[b] as usize != mb.ids.len()
                || o.windows(2).any(|w| w[0] > w[1])
            {
                candle_core::bail!(
                    "batch: {}: offsets must be {} non-decreasing values from 0 to {}",
                    table.key,
                    b + 1,
                    mb.ids.len()
                );
            }
        }
        Ok(())
    }

    /// The gradient of each field's distinct ids (aligned with `plan.fields[f].unique`,
    /// `[unique.len(), dim]` row-major), read from the leaf's gradient in `grads`.
    pub fn table_grads(&self, grads: &GradStore, gathered: &Gathered) -> Result<Vec<Vec<f32>>> {
        let plan = &gathered.plan;
        if plan.fields.len() != self.tables.len() || plan.width != self.width {
            candle_core::bail!("the gather plan does not belong to this input");
        }
        if plan.fields.is_empty() {
            return Ok(Vec::new());
        }
        let Some(grad) = grads.get(gathered.leaf.as_tensor()) else {
            candle_core::bail!(
                "the embedding leaf received no gradient: the loss does not depend on this forward"
            );
        };
        let grad = grad.flatten_all()?.to_vec1::<f32>()?;
        Ok(plan
            .fields
            .iter()
            .map(|f| f.accumulate(&grad, plan.width))
            .collect())
    }

    /// The tables' gradient for the batch of `gathered`: per field, its distinct ids and their
    /// summed gradient rows.
    pub fn sparse_grads(&self, grads: &GradStore, gathered: &Gathered) -> Result<SparseGrads> {
        let per_field = self.table_grads(grads, gathered)?;
        Ok(SparseGrads {
            fields: gathered
                .plan
                .fields
                .iter()
                .zip(per_field)
                .map(|(plan, grad)| FieldGrad {
                    ids: plan.unique.clone(),
                    dim: plan.dim,
                    grad,
                })
                .collect(),
        })
    }

    /// Updates the rows the batch used, with `opt` at learning rate `lr` and global step
    /// `step >= 1` (Adam's bias correction). Other rows and their optimiser state do not change.
    pub fn apply_grads(
        &mut self,
        grads: &GradStore,
        gathered: &Gathered,
        opt: &SparseOptimConfig,
        lr: f64,
        step: u64,
    ) -> Result<()> {
        let g = self.sparse_grads(grads, gathered)?;
        self.update(&g, opt, lr, step)
    }

    /// Updates the rows named in `g` (see [`FeatureInput::apply_grads`]).
    pub fn update(
        &mut self,
        g: &SparseGrads,
        opt: &SparseOptimConfig,
        lr: f64,
        step: u64,
    ) -> Result<()> {
        self.update_on(g, opt, lr, step, 1)
    }

    /// [`FeatureInput::update`] on `threads` threads, the tables split between them in
    /// contiguous runs; each table's update is independent of the others, so the result does
    /// not depend on `threads`.
    pub fn update_on(
        &mut self,
        g: &SparseGrads,
        opt: &SparseOptimConfig,
        lr: f64,
        step: u64,
        threads: usize,
    ) -> Result<()> {
        if step == 0 {
            candle_core::bail!("the optimiser step count starts at 1");
        }
        if g.fields.len() != self.tables.len() {
            candle_core::bail!(
                "{} field gradients for {} tables",
                g.fields.len(),
                self.tables.len()
            );
        }
        let run = |tables: &mut [EmbeddingTable], fields: &[FieldGrad]| -> Result<()> {
            for (table, f) in tables.iter_mut().zip(fields) {
                table.update_rows(&f.ids, &f.grad, opt, lr, step)?;
            }
            Ok(())
        };
        let threads = threads.clamp(1, self.tables.len().max(1));
        if threads == 1 {
            return run(&mut self.tables, &g.fields);
        }
        let per = self.tables.len().div_ceil(threads);
        let parts: Vec<_> = self
            .tables
            .chunks_mut(per)
            .zip(g.fields.chunks(per))
            .collect();
        crossdistil_core::on_helpers(parts, |(t, f)| run(t, f))
            .into_iter()
            .collect()
    }

    /// Every table and its optimiser state (see [`EmbeddingTable::save_tensors`]).
    pub fn save_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for t in &self.tables {
            t.save_tensors(&mut out)?;
        }
        Ok(out)
    }

    /// Every table's buffers, borrowed ([`EmbeddingTable::buffers`]), with their shape
    /// `[vocab, dim]`: what [`FeatureInput::save_tensors`] copies.
    pub fn table_buffers(&self) -> Vec<(String, [usize; 2], &[f32])> {
        self.tables
            .iter()
            .flat_map(|t| {
                let shape = [t.vocab, t.dim];
                t.buffers().into_iter().map(move |(n, d)| (n, shape, d))
            })
            .collect()
    }

    /// Restores every table from `tensors`, which must hold nothing else. Nothing changes on
    /// error.
    pub fn load_tensors(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let known: HashSet<String> = self
            .tables
            .iter()
            .flat_map(|t| EmbeddingTable::SUFFIXES.map(|s| format!("{}.{s}", t.key)))
            .collect();
        if let Some(extra) = tensors.keys().find(|n| !known.contains(*n)) {
            candle_core::bail!("unexpected tensor {extra}: the input has no such table");
        }
        let loaded = self
            .tables
            .iter()
            .map(|t| t.read_tensors(tensors))
            .collect::<Result<Vec<_>>>()?;
        for (t, (weight, state)) in self.tables.iter_mut().zip(loaded) {
            t.weight = weight;
            t.state = state;
        }
        Ok(())
    }
}

/// Columns `cols` of the row-major `[rows, n]` matrix `values`, row-major `[rows, cols.len()]`.
fn dense_columns(values: &[f32], n: usize, cols: &[usize]) -> Vec<f32> {
    values
        .chunks_exact(n)
        .flat_map(|row| cols.iter().map(move |&j| row[j]))
        .collect()
}
