//! Multi-task feedback data for crossdistil.
//!
//! - [`spec`]: `dataset.toml`, the roles of the columns of a prepared data set.
//! - [`prepare`]: turns each supported source (Adult, MovieLens-100K, TikTok ICME 2019,
//!   AliExpress, Ali-CCP, a user's own CSV/Parquet, synthetic) into the canonical layout.
//! - [`dataset`]: loads a prepared data set into columnar memory, fitting vocabularies and
//!   normalisation on the train split.
//! - [`batch`]: seeded mini-batches.
//! - [`summary`]: split sizes, positive rates and label-combination counts.
//!
//! Every error names the file, and where it applies the column and the 1-based row (or the
//! row group). Prepared data carries checksums ([`checksum`]), verified on load; encoders fitted
//! with a model match a data set's features by name ([`features`]).

pub mod atomic;
pub mod batch;
pub mod checksum;
pub mod column;
pub mod dataset;
pub mod error;
pub mod features;
pub mod normalize;
pub mod parquet_io;
pub mod prepare;
pub mod spec;
pub mod split;
pub mod summary;
pub mod table;
pub mod vocab;
pub mod writer;

pub use batch::{Batch, Batches, GatherBatch, MultiBatch, Order};
pub use crossdistil_core::InputSchema;
pub use dataset::{Dataset, Encoders};
pub use error::{DataError, Result};
pub use spec::{DatasetSpec, Norm};
pub use split::Split;
pub use summary::Summary;
