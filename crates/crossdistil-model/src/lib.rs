//! Multi-task ranking models on candle.
//!
//! - [`input`]: embedding tables in plain memory, gathered per batch into a leaf `Var`
//!   ([`gather`]) and updated row-wise after the backward pass ([`sparse_optim`]).
//! - [`params`]: the dense trainable parameters, by dotted name, seeded ([`init`]).
//! - [`mlp`], [`activation`], [`dropout`]: building blocks with parameters in the store.
//! - [`backbone`]: Single-Task, Shared-Bottom, MMoE, PLE and Cross-Stitch, each mapping
//!   `x [b, in_dim]` to one representation `[b, h]` per task.
//! - [`tower`], [`model`]: a logit per task and the whole model.
//! - [`teacher`]: CrossDistil's teacher heads (ranking scores) and Platt calibrators.
//!
//! Everything is f32. Randomness (initialisation, dropout) comes from `ChaCha8Rng`s, so a seed
//! reproduces a model bit for bit.

pub mod activation;
pub mod backbone;
pub mod bias_act;
pub mod config;
pub mod cpu_data;
pub mod dropout;
pub mod embedding_table;
pub mod gather;
pub mod gemm;
pub mod group_op;
pub mod init;
pub mod input;
pub mod linear;
pub mod memory;
pub mod mlp;
pub mod mlp_group;
pub mod mode;
pub mod model;
pub mod params;
pub mod sparse_grads;
pub mod sparse_optim;
pub mod teacher;
pub mod tower;

pub use activation::Activation;
pub use backbone::{Backbone, BackboneConfig, MmoeConfig, PleConfig};
pub use config::ConfigError;
pub use crossdistil_core::{Batch, InputSchema, MultiBatch};
pub use embedding_table::EmbeddingTable;
pub use gather::{FieldPlan, GatherPlan};
pub use init::Init;
pub use input::{FeatureInput, Gathered};
pub use mlp::{Mlp, MlpConfig};
pub use mode::Mode;
pub use model::{Forward, ModelConfig, MultiTaskModel};
pub use params::ParamStore;
pub use sparse_grads::{FieldGrad, SparseGrads};
pub use sparse_optim::{AdagradConfig, AdamConfig, SparseOptimConfig};
pub use teacher::{Calibrator, RHO_FOR_UNIT_SLOPE, TeacherConfig, TeacherHead};
pub use tower::Tower;
