#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub, unnameable_types)]

mod activation;
mod backbone;
mod bias_act;
mod config;
mod cpu_data;
mod device;
mod dropout;
mod embedding_table;
#[cfg(test)]
mod finite_difference;
mod gather;
mod gemm;
mod group_op;
mod init;
mod input;
mod linear;
mod memory;
mod mlp;
mod mlp_group;
mod mode;
mod model;
mod params;
pub mod row_update;
mod sparse_grads;
mod sparse_optim;
mod teacher;
mod tower;

// The model and its configuration.
pub use activation::Activation;
pub use backbone::{BackboneConfig, MmoeConfig, PleConfig};
pub use crossdistil_core::{Batch, ConfigError, InputSchema, MultiBatch};
pub use mlp::MlpConfig;
pub use mode::Mode;
pub use model::{Forward, ModelConfig, MultiTaskModel};
pub use sparse_optim::{AdagradConfig, AdamConfig, SparseOptimConfig};
pub use teacher::TeacherConfig;

// Its parts, as the model hands them out.
pub use backbone::{
    Backbone, CrossStitch, Esmm, Mmoe, Ple, SharedBottom, SingleTask, chain_logits,
};
pub use init::Init;
pub use params::ParamStore;
pub use teacher::{Calibrator, RHO_FOR_UNIT_SLOPE, TeacherHead};
pub use tower::Tower;

// The feature input: embedding tables, their gather plans, gradients and optimiser state.
pub use embedding_table::{EmbeddingTable, shard_rows};
pub use gather::{FieldPlan, GatherPlan};
pub use input::{FeatureInput, Gathered};
pub use sparse_grads::{FieldGrad, SparseGrads};
pub use sparse_optim::OptimState;

// Threads.
pub use gemm::on_one_thread;
