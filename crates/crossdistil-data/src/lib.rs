#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod atomic;
mod batch;
mod checksum;
mod column;
mod dataset;
mod error;
mod features;
mod normalize;
mod parquet_io;
pub mod prepare;
mod source;
mod spec;
mod split;
mod summary;
mod table;
mod vocab;
mod writer;

pub use atomic::{rename_into_place, temp_path, write_atomic};
pub use batch::{Batch, Batches, GatherBatch, MultiBatch, Order, shuffled};
pub use checksum::range_crc;
pub use crossdistil_core::InputSchema;
pub use dataset::{Dataset, DenseColumn, Encoders, LabelColumn, MultiColumn, SparseColumn};
pub use error::{DataError, Location, Result};
pub use features::FeatureNames;
pub use normalize::NormStats;
pub use parquet_io::read_columns;
pub use source::{Chunk, DataSource, Unit, dense_groups};
pub use spec::{
    DATA_FILE, DataFile, DatasetSpec, DenseSpec, LabelSpec, MAX_HASH_BUCKETS, MultiSpec, Norm,
    PartSpec, SPEC_FILE, SparseSpec,
};
pub use split::{Split, SplitFractions};
pub use summary::{Combination, FeatureSummary, PerSplit, Summary, TaskSummary};
pub use table::{ColumnData, Table};
pub use vocab::{OOV, Vocab, VocabKeys};
pub use writer::write_dataset;
