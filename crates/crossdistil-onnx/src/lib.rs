#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

mod backbone;
mod encoders;
mod error;
mod export;
mod files;
mod graph;
mod input;
mod layers;
mod proto;
mod sample;
mod write;

pub use encoders::{
    CategoricalEncoder, DenseEncoder, ENCODERS_FORMAT, EncodersFile, VocabularyDoc,
};
pub use error::{ExportError, Result};
pub use export::{
    DEFAULT_EXTERNAL_DATA_ABOVE, EXTERNAL_MIN_BYTES, ExportOptions, OPSET, OnnxModel, export,
};
pub use files::ExportPaths;
pub use input::{DENSE_INPUT, InputKind, InputSpec, MULTI_PREFIX, PAD_ID, SPARSE_INPUT};
/// The ONNX messages (`ModelProto` and the others), to read or change an exported model.
pub use onnx_protobuf as onnx;
pub use proto::{BATCH_DIM, EXTERNAL_ALIGN, IR_VERSION};
pub use sample::{
    SAMPLE_ROWS, SCORE_PREFIX, Sample, SampleInput, SampleValues, dataset_batches, source_batches,
};
pub use write::{Written, write_files};
