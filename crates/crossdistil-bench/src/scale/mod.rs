//! The scale benchmark (`cargo xtask bench --scale`): the same model and tables trained on
//! synthetic data of growing size, to show that time grows with the rows and memory does not.

mod checkpoint;
mod disk;
mod markdown;
mod report;
mod shape;
mod size;

pub use checkpoint::{best_checkpoint, checkpoint_parameters};
pub use disk::DiskEstimate;
pub use markdown::scale_markdown;
pub use report::{Phase, ScaleReport, ScaleRow};
pub use shape::{ScaleShape, SplitRows, hash_tables, scale_config, streaming_supported};
pub use size::parse_size;
