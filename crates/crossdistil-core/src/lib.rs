#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod batch;
mod config;
mod helpers;
mod schema;

pub use batch::{Batch, MultiBatch};
pub use config::{ConfigError, MAX_SIZE, layer_sizes, non_negative, positive, rate};
pub use helpers::on_helpers;
pub use schema::InputSchema;
