//! The ONNX file: the `ModelProto` of an [`OnnxModel`], and its external data.

use std::io::Write;
use std::path::{Path, PathBuf};

use onnx_protobuf::tensor_proto::{DataLocation, DataType};
use onnx_protobuf::tensor_shape_proto::{Dimension, dimension};
use onnx_protobuf::type_proto::{Tensor as TensorType, Value};
use onnx_protobuf::{
    GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::{Message, MessageField};

use crate::error::{ExportError, Result};
use crate::export::{OPSET, OnnxModel};
use crate::files::{write_bytes, write_with};
use crate::graph::{Initializer, Values};
use crate::input::{InputKind, InputSpec};

/// The ONNX IR version written (that of ONNX 1.13, which introduced opset 18; opset 17 models
/// use it too, and every current runtime reads it).
pub const IR_VERSION: i64 = 8;

/// The alignment of each tensor in the external data file (a page, so that a runtime can map
/// the file and read tensors in place).
pub const EXTERNAL_ALIGN: u64 = 4096;

/// The name of the symbolic batch dimension of every input and output.
pub const BATCH_DIM: &str = "batch";

fn entry(key: &str, value: impl Into<String>) -> StringStringEntryProto {
    let mut e = StringStringEntryProto::new();
    e.key = key.to_string();
    e.value = value.into();
    e
}

fn dim_param(name: &str) -> Dimension {
    let mut d = Dimension::new();
    d.value = Some(dimension::Value::DimParam(name.to_string()));
    d
}

fn dim_value(v: i64) -> Dimension {
    let mut d = Dimension::new();
    d.value = Some(dimension::Value::DimValue(v));
    d
}

/// A tensor value of element type `ty` and shape `dims`.
fn value_info(name: &str, ty: DataType, dims: Vec<Dimension>) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    shape.dim = dims;
    let mut tensor = TensorType::new();
    tensor.elem_type = ty as i32;
    tensor.shape = MessageField::some(shape);
    let mut t = TypeProto::new();
    t.value = Some(Value::TensorType(tensor));
    let mut v = ValueInfoProto::new();
    v.name = name.to_string();
    v.type_ = MessageField::some(t);
    v
}

fn input_info(spec: &InputSpec) -> ValueInfoProto {
    let ty = match spec.kind {
        InputKind::Dense { .. } => DataType::FLOAT,
        InputKind::Sparse { .. } | InputKind::Multi { .. } => DataType::INT64,
    };
    let cols = match spec.columns {
        Some(n) => dim_value(n as i64),
        None => dim_param(&format!("{}_items", spec.name)),
    };
    value_info(&spec.name, ty, vec![dim_param(BATCH_DIM), cols])
}

fn tensor_header(init: &Initializer<'_>) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = init.name.clone();
    t.dims = init.dims.clone();
    t.data_type = init.values.data_type() as i32;
    t
}

/// The placement of the external initializers in the data file: `(index, offset)` each,
/// offsets aligned to [`EXTERNAL_ALIGN`], and the file's length.
fn layout(model: &OnnxModel<'_>) -> (Vec<(usize, u64)>, u64) {
    let mut at = 0u64;
    let mut placed = Vec::new();
    for (i, init) in model.graph.initializers.iter().enumerate() {
        if model.is_external(init) {
            at = at.div_ceil(EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
            placed.push((i, at));
            at += init.values.bytes();
        }
    }
    (placed, at)
}

impl OnnxModel<'_> {
    /// The `ModelProto`, its external initializers pointing into the file `data_file` (a
    /// name relative to the model's folder).
    pub fn to_proto(&self, data_file: &str) -> ModelProto {
        let (placed, _) = layout(self);
        let mut graph = GraphProto::new();
        graph.name = "crossdistil".to_string();
        graph.node = self.graph.nodes.clone();
        let mut external = placed.iter().peekable();
        for (i, init) in self.graph.initializers.iter().enumerate() {
            let mut t = tensor_header(init);
            match external.next_if(|(j, _)| *j == i) {
                Some(&(_, offset)) => {
                    t.data_location = DataLocation::EXTERNAL.into();
                    t.external_data = vec![
                        entry("location", data_file),
                        entry("offset", offset.to_string()),
                        entry("length", init.values.bytes().to_string()),
                    ];
                }
                None => t.raw_data = init.values.raw(),
            }
            graph.initializer.push(t);
        }
        graph.input = self.inputs.iter().map(input_info).collect();
        graph.output = self
            .outputs
            .iter()
            .map(|o| value_info(o, DataType::FLOAT, vec![dim_param(BATCH_DIM)]))
            .collect();
        let mut opset = OperatorSetIdProto::new();
        opset.domain = String::new();
        opset.version = OPSET;
        let mut m = ModelProto::new();
        m.ir_version = IR_VERSION;
        m.opset_import = vec![opset];
        m.producer_name = "crossdistil".to_string();
        m.producer_version = env!("CARGO_PKG_VERSION").to_string();
        m.doc_string = "The served students of a crossdistil run: per task, the probability \
                        of the task's label from the encoded features."
            .to_string();
        m.metadata_props = vec![
            entry("tasks", self.outputs.join(",")),
            entry(
                "inputs",
                serde_json::to_string(&self.inputs).expect("input specs serialise"),
            ),
        ];
        m.graph = MessageField::some(graph);
        m
    }

    /// Writes the model to `path` (atomically), and, when it uses external data, the tables
    /// first to `path` + `.data` (the ONNX external data format: each tensor's
    /// little-endian bytes at a page-aligned `offset`, its `length`, the file's name as
    /// `location`). Returns the data file when one was written; on an error, neither is left.
    pub fn write(&self, path: &Path) -> Result<Option<PathBuf>> {
        let mut data = path.as_os_str().to_os_string();
        data.push(".data");
        let data = PathBuf::from(data);
        let location = data
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| ExportError::file(path, "is not a file name"))?;
        let written = if self.uses_external_data() {
            self.write_external(&data)?;
            Some(data)
        } else {
            None
        };
        let result = self
            .to_proto(&location)
            .write_to_bytes()
            .map_err(|e| ExportError::file(path, format!("cannot encode the model: {e}")))
            .and_then(|bytes| write_bytes(path, &bytes));
        if let (Err(_), Some(data)) = (&result, &written) {
            // The data file belongs to a model that was not written.
            let _ = std::fs::remove_file(data);
        }
        result.map(|()| written)
    }

    /// Writes the external initializers to `data`, streamed from the model's buffers.
    fn write_external(&self, data: &Path) -> Result<()> {
        let (placed, _) = layout(self);
        write_with(data, |w| {
            let mut at = 0u64;
            for &(i, offset) in &placed {
                w.write_all(&vec![0u8; (offset - at) as usize])?;
                let init = &self.graph.initializers[i];
                match &init.values {
                    Values::F32(v) => {
                        for chunk in v.chunks(1 << 16) {
                            let bytes: Vec<u8> =
                                chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
                            w.write_all(&bytes)?;
                        }
                    }
                    other => w.write_all(&other.raw())?,
                }
                at = offset + init.values.bytes();
            }
            Ok(())
        })
    }
}
