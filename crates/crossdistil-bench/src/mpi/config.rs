//! The fixed data, model and run configuration of the MPI benchmark.

use serde::{Deserialize, Serialize};

use crate::model::BenchModel;
use crate::scale::ScaleShape;

/// How a configuration of the MPI benchmark lays out the embedding tables (`[train] tables`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MpiLayout {
    /// One process: every table whole (`mpirun -np 1`, which ignores `tables`).
    Single,
    /// Each rank holds the rows of the ids `id % ranks == rank`.
    Sharded,
    /// Each rank holds every table.
    Replicated,
}

impl MpiLayout {
    /// The name in the report: `-` for one process, else the `[train] tables` value.
    pub fn name(self) -> &'static str {
        match self {
            MpiLayout::Single => "-",
            MpiLayout::Sharded => "sharded",
            MpiLayout::Replicated => "replicated",
        }
    }

    /// The layouts measured on `ranks` ranks: [`MpiLayout::Single`] on one, both layouts on
    /// more.
    ///
    /// ```
    /// use crossdistil_bench::MpiLayout;
    /// assert_eq!(MpiLayout::of_ranks(1), vec![MpiLayout::Single]);
    /// assert_eq!(MpiLayout::of_ranks(2), vec![MpiLayout::Sharded, MpiLayout::Replicated]);
    /// ```
    pub fn of_ranks(ranks: usize) -> Vec<MpiLayout> {
        if ranks <= 1 {
            vec![MpiLayout::Single]
        } else {
            vec![MpiLayout::Sharded, MpiLayout::Replicated]
        }
    }
}

/// The shape of the MPI benchmark: the scale benchmark's data (8 sparse fields hashed into
/// `hash_buckets` ids, so tables of `(hash_buckets + 1) x 16`: 8 tables of 1,048,577 x 16 at
/// the default 2^20), MMoE with 4 experts 256-128, global batches of 2048 rows.
///
/// ```
/// use crossdistil_bench::{BenchModel, mpi_shape};
/// let s = mpi_shape(1 << 20);
/// assert_eq!((s.model, s.batch, s.embedding_dim), (BenchModel::Mmoe, 2048, 16));
/// assert_eq!(s.table_parameters(), 8 * 1_048_577 * 16);
/// ```
pub fn mpi_shape(hash_buckets: u32) -> ScaleShape {
    ScaleShape {
        hash_buckets,
        model: BenchModel::Mmoe,
        ..ScaleShape::DEFAULT
    }
}

/// The run configuration (TOML) of one MPI configuration: the shape's model and global batch,
/// CrossDistil on, one epoch in memory, validation only at its end (`eval_every = 0`,
/// `patience = 0`), Adam at 0.001, seed 1, `workers = 1` thread per rank, and `tables` as
/// `layout` says ([`MpiLayout::Single`] leaves the default).
///
/// ```
/// use crossdistil_bench::{MpiLayout, mpi_config, mpi_shape};
/// let text = mpi_config(&mpi_shape(4096), MpiLayout::Replicated);
/// let cfg = crossdistil_train::RunConfig::from_toml(&text).unwrap();
/// assert_eq!((cfg.train.epochs, cfg.train.batch_size, cfg.train.workers), (1, 2048, 1));
/// assert_eq!(cfg.train.tables, crossdistil_train::TableLayout::Replicated);
/// ```
pub fn mpi_config(shape: &ScaleShape, layout: MpiLayout) -> String {
    let tables = match layout {
        MpiLayout::Single => String::new(),
        l => format!("tables = \"{}\"\n", l.name()),
    };
    format!(
        "[model]\nembedding_dim = {}\n\n[model.backbone]\n{}\n\n[model.tower]\nhidden = [64]\n\n\
         [train]\nepochs = 1\nbatch_size = {}\nlr = 0.001\nseed = 1\npatience = 0\n\
         eval_every = 0\nworkers = 1\n{tables}\n[distill]\nmode = \"crossdistil\"\n",
        shape.embedding_dim,
        shape.model.backbone_toml(),
        shape.batch,
    )
}
