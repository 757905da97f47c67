//! A small builder of ONNX graphs (opset 17): nodes, named initializers and fresh value names.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{AttributeProto, NodeProto};
use protobuf::EnumOrUnknown;

/// The values of a float initializer: owned (the dense parameters, a few constants) or
/// borrowed from the model (the embedding tables, never copied until they are written).
#[derive(Debug, Clone)]
pub(crate) enum Values<'a> {
    /// f32 values, row-major.
    F32(std::borrow::Cow<'a, [f32]>),
    /// i64 values (index constants and shapes).
    I64(Vec<i64>),
}

impl Values<'_> {
    /// The size of the values in bytes.
    pub(crate) fn bytes(&self) -> u64 {
        match self {
            Values::F32(v) => 4 * v.len() as u64,
            Values::I64(v) => 8 * v.len() as u64,
        }
    }

    /// The ONNX element type.
    pub(crate) fn data_type(&self) -> DataType {
        match self {
            Values::F32(_) => DataType::FLOAT,
            Values::I64(_) => DataType::INT64,
        }
    }

    /// The values as little-endian bytes, ONNX's `raw_data`.
    pub(crate) fn raw(&self) -> Vec<u8> {
        match self {
            Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// A named initializer: its shape and values, and whether it is an embedding table (the
/// first candidates for external data).
#[derive(Debug, Clone)]
pub(crate) struct Initializer<'a> {
    pub(crate) name: String,
    pub(crate) dims: Vec<i64>,
    pub(crate) values: Values<'a>,
    pub(crate) table: bool,
}

/// The nodes and initializers of a graph under construction. Intermediate values are named
/// `/<hint>_<n>`, which no input, output or parameter name starts with.
#[derive(Debug, Default)]
pub(crate) struct Graph<'a> {
    pub(crate) nodes: Vec<NodeProto>,
    pub(crate) initializers: Vec<Initializer<'a>>,
    counter: usize,
}

/// An attribute of a node.
pub(crate) enum Attr<'s> {
    Int(&'s str, i64),
}

impl<'a> Graph<'a> {
    /// A fresh value name.
    pub(crate) fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("/{hint}_{}", self.counter)
    }

    /// Adds the node `op(inputs) -> output` and returns `output`.
    pub(crate) fn node_to(
        &mut self,
        op: &str,
        inputs: &[&str],
        output: String,
        attrs: Vec<Attr<'_>>,
    ) -> String {
        let mut n = NodeProto::new();
        n.op_type = op.to_string();
        n.name = format!("{op}{}", self.nodes.len());
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = vec![output.clone()];
        n.attribute = attrs.into_iter().map(attribute).collect();
        self.nodes.push(n);
        output
    }

    /// Adds the node `op(inputs)` with a fresh output name and returns that name.
    pub(crate) fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<Attr<'_>>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.node_to(op, inputs, out, attrs)
    }

    /// Registers an initializer and returns its name.
    pub(crate) fn initializer(
        &mut self,
        name: String,
        dims: Vec<i64>,
        values: Values<'a>,
        table: bool,
    ) -> String {
        self.initializers.push(Initializer {
            name: name.clone(),
            dims,
            values,
            table,
        });
        name
    }

    /// A float scalar constant (shape `[]`).
    pub(crate) fn scalar(&mut self, v: f32) -> String {
        let name = self.fresh("const");
        self.initializer(name, vec![], Values::F32(vec![v].into()), false)
    }

    /// An int64 vector constant (shape `[len]`): axes, shapes.
    pub(crate) fn ints(&mut self, v: &[i64]) -> String {
        let name = self.fresh("const");
        let dims = vec![v.len() as i64];
        self.initializer(name, dims, Values::I64(v.to_vec()), false)
    }

    /// An int64 scalar constant (shape `[]`): a `Gather` index that drops its axis.
    pub(crate) fn int_scalar(&mut self, v: i64) -> String {
        let name = self.fresh("const");
        self.initializer(name, vec![], Values::I64(vec![v]), false)
    }

    /// `Unsqueeze(x, [axis])`.
    pub(crate) fn unsqueeze(&mut self, x: &str, axis: i64) -> String {
        let axes = self.ints(&[axis]);
        self.node("Unsqueeze", &[x, &axes], vec![])
    }

    /// `ReduceSum(x, [axis])`, the axis kept or dropped.
    pub(crate) fn reduce_sum(&mut self, x: &str, axis: i64, keep: bool) -> String {
        let axes = self.ints(&[axis]);
        self.node(
            "ReduceSum",
            &[x, &axes],
            vec![Attr::Int("keepdims", keep as i64)],
        )
    }

    /// `Concat(parts, axis)`, or the one part itself.
    pub(crate) fn concat(&mut self, parts: &[String], axis: i64) -> String {
        if let [one] = parts {
            return one.clone();
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        self.node("Concat", &refs, vec![Attr::Int("axis", axis)])
    }
}

fn attribute(a: Attr<'_>) -> AttributeProto {
    let mut p = AttributeProto::new();
    match a {
        Attr::Int(name, v) => {
            p.name = name.to_string();
            p.type_ = EnumOrUnknown::new(AttributeType::INT);
            p.i = v;
        }
    }
    p
}
