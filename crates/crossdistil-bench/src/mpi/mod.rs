//! The MPI benchmark (`cargo xtask bench --mpi`): the same model trained for one epoch on the
//! same data on 1, 2, ... ranks of `mpirun`, the global batch fixed, with the embedding tables
//! sharded over the ranks or replicated on each, to show what the ranks gain and what their
//! exchanges cost.

mod config;
mod markdown;
mod report;

pub use config::{MpiLayout, mpi_config, mpi_shape};
pub use markdown::mpi_markdown;
pub use report::{MpiReport, MpiRow, MpiRun};
