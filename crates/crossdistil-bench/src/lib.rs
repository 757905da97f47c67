#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod batches;
mod child;
mod data;
mod export;
pub mod gemm_limit;
mod markdown;
mod measurement;
mod median;
mod model;
mod mpi;
mod parity;
mod report;
mod scale;
mod setup;
mod shape;
mod windows;

pub use batches::BenchBatches;
pub use child::{ChildArgs, PeerVariant};
pub use data::bench_data;
pub use export::export_weights;
pub use markdown::markdown;
pub use measurement::{Measurement, PeerSetup, run_child};
pub use model::{BenchModel, bench_config};
pub use mpi::{MpiLayout, MpiReport, MpiRow, MpiRun, mpi_config, mpi_markdown, mpi_shape};
pub use parity::{PARITY_TOLERANCE, Parity, ParityCheck, parity_child};
pub use report::{Report, Row};
pub use scale::{
    DiskEstimate, Phase, ScaleReport, ScaleRow, ScaleShape, SplitRows, best_checkpoint,
    checkpoint_parameters, hash_tables, parse_size, scale_config, scale_markdown,
    streaming_supported,
};
pub use shape::{DENSE, EMBEDDING_DIM, FIELDS, Shape, TASKS};
pub use windows::Windows;
