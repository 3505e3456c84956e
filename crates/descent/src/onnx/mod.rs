//! ONNX models written from Rust, for `descent export --format onnx`: a trained model as a file
//! that onnxruntime (and any ONNX runtime) runs without descent, Burn or Python.
//!
//! A model is built as a [`Graph`] of ONNX operations: each layer appends its operations with
//! [`ToOnnx`] (implemented here for Burn's `Linear`, `Conv2d`, `BatchNorm`, `MaxPool2d`, `Relu`
//! and `Dropout`), its parameters becoming the graph's initializers; [`Graph::into_model`]
//! wraps it with named inputs and outputs, a dynamic batch dimension, and metadata. Models are
//! written for opset 17 (IR version 8), which every onnxruntime since 1.12 runs.
//!
//! The protobuf messages are declared below with prost's derive: only the fields written, with
//! the field numbers of `onnx.proto` (Apache-2.0), so no `.proto` file, code generator or
//! `protoc` is needed. Burn's parameters map onto ONNX without copies of layout: a `Linear`
//! weight is `[in, out]` (ONNX `MatMul`'s right-hand side), a `Conv2d` weight `[out, in, kh,
//! kw]` (ONNX `Conv`'s `W`), and batch norm's running statistics are `BatchNormalization`'s
//! inference inputs.

mod layers;

pub use layers::{ToOnnx, child};

use std::collections::HashSet;

use burn::prelude::*;
use prost::Message as _;

use crate::device::ReadBackError;

/// The ONNX operator set the models use.
pub const OPSET: i64 = 17;
/// The ONNX IR version that goes with [`OPSET`].
pub const IR_VERSION: i64 = 8;

/// Why a model cannot be written as ONNX.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// A layer, or a setting of one, has no ONNX form here.
    #[error("cannot write {layer} as ONNX: {reason}")]
    Unsupported {
        /// The layer: its path in the model (`blocks.0.conv`), or the model's name.
        layer: String,
        /// What about it cannot be written.
        reason: String,
    },
    /// A parameter could not be read back from the device.
    #[error(transparent)]
    Device(#[from] ReadBackError),
}

/// An ONNX graph being built: operations in order, and the constants they read.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    names: HashSet<String>,
}

/// An attribute of an operation.
#[derive(Clone, Debug)]
pub struct Attribute(AttributeProto);

impl Attribute {
    /// An integer attribute.
    pub fn int(name: &str, value: i64) -> Self {
        Self(AttributeProto {
            name: name.into(),
            r#type: ATTRIBUTE_INT,
            i: Some(value),
            ..Default::default()
        })
    }

    /// A float attribute.
    pub fn float(name: &str, value: f32) -> Self {
        Self(AttributeProto {
            name: name.into(),
            r#type: ATTRIBUTE_FLOAT,
            f: Some(value),
            ..Default::default()
        })
    }

    /// A list of integers.
    pub fn ints(name: &str, values: &[usize]) -> Self {
        let ints = values.iter().map(|&v| i64::try_from(v).unwrap_or(i64::MAX)).collect();
        Self(AttributeProto { name: name.into(), r#type: ATTRIBUTE_INTS, ints, ..Default::default() })
    }
}

/// A dimension of a graph's input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// The batch: any size, named `N`.
    Batch,
    /// A fixed size.
    Fixed(usize),
}

/// A graph's input or output: its name and shape (float32).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The name the runtime knows it by (`session.run(None, {"images": x})`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<Dim>,
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|dim| match dim {
                Dim::Batch => "N".to_string(),
                Dim::Fixed(size) => size.to_string(),
            })
            .collect();
        write!(f, "{} float32 [{}]", self.name, dims.join(", "))
    }
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// A unique C-identifier name made from `name` (`blocks.0.conv` becomes `blocks_0_conv`).
    fn unique(&mut self, name: &str) -> String {
        let mut base: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
        if base.is_empty() || base.starts_with(|c: char| c.is_ascii_digit()) {
            base.insert(0, '_');
        }
        let mut candidate = base.clone();
        let mut count = 1;
        while !self.names.insert(candidate.clone()) {
            count += 1;
            candidate = format!("{base}_{count}");
        }
        candidate
    }

    /// A constant of the graph (a parameter), float32 of `shape` with `values` row-major,
    /// named after `name`; returns its name in the graph.
    pub fn constant(&mut self, name: &str, shape: &[usize], values: &[f32]) -> String {
        let name = self.unique(name);
        self.initializers.push(TensorProto {
            dims: shape.iter().map(|&d| i64::try_from(d).unwrap_or(i64::MAX)).collect(),
            data_type: FLOAT,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name
    }

    /// A tensor of the model read back from its device, as a constant named after `name`.
    pub fn tensor<const D: usize>(&mut self, name: &str, tensor: Tensor<D>) -> Result<String, OnnxError> {
        let shape = tensor.dims();
        let values = crate::device::read_f32(tensor)?;
        Ok(self.constant(name, &shape, &values))
    }

    /// Append the operation `op` (an ONNX operator of the default domain) on `inputs`, named
    /// after `name`; returns the name of its one output.
    pub fn node(&mut self, op: &str, name: &str, inputs: &[&str], attributes: Vec<Attribute>) -> String {
        let node_name = self.unique(name);
        let output = self.unique(&format!("{node_name}_out"));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: node_name,
            op_type: op.into(),
            attribute: attributes.into_iter().map(|a| a.0).collect(),
        });
        output
    }

    /// The model file: this graph from `input` to `output` (the value `value`, renamed), with
    /// `doc` as its description and `metadata` as its metadata properties.
    pub fn into_model(
        mut self,
        (input, output, value): (&Signature, &Signature, &str),
        doc: &str,
        metadata: &[(&str, String)],
    ) -> Vec<u8> {
        for node in &mut self.nodes {
            for name in node.input.iter_mut().chain(node.output.iter_mut()) {
                if name == value {
                    name.clone_from(&output.name);
                }
            }
        }
        let graph = GraphProto {
            node: self.nodes,
            name: "descent".into(),
            initializer: self.initializers,
            doc_string: doc.into(),
            input: vec![value_info(input)],
            output: vec![value_info(output)],
        };
        let model = ModelProto {
            ir_version: IR_VERSION,
            producer_name: "descent".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(graph),
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
            metadata_props: metadata
                .iter()
                .map(|(key, value)| StringStringEntryProto { key: key.to_string(), value: value.clone() })
                .collect(),
        };
        model.encode_to_vec()
    }
}

fn value_info(signature: &Signature) -> ValueInfoProto {
    let dim = signature
        .shape
        .iter()
        .map(|dim| match dim {
            Dim::Batch => Dimension { dim_value: None, dim_param: Some("N".into()) },
            Dim::Fixed(size) => Dimension { dim_value: Some(*size as i64), dim_param: None },
        })
        .collect();
    ValueInfoProto {
        name: signature.name.clone(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeTensor { elem_type: FLOAT, shape: Some(TensorShapeProto { dim }) }),
        }),
    }
}

/// `TensorProto.DataType.FLOAT`.
const FLOAT: i32 = 1;
/// `AttributeProto.AttributeType`: FLOAT, INT, INTS.
const ATTRIBUTE_FLOAT: i32 = 1;
const ATTRIBUTE_INT: i32 = 2;
const ATTRIBUTE_INTS: i32 = 7;

// The messages of onnx.proto that descent writes, with their field numbers. Repeated numbers
// are written unpacked, as proto2 (which onnx.proto is) writes them.

#[derive(Clone, PartialEq, prost::Message)]
struct ModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(string, tag = "2")]
    producer_name: String,
    #[prost(string, tag = "3")]
    producer_version: String,
    #[prost(string, tag = "6")]
    doc_string: String,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(int64, tag = "2")]
    version: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(string, tag = "10")]
    doc_string: String,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(float, optional, tag = "2")]
    f: Option<f32>,
    #[prost(int64, optional, tag = "3")]
    i: Option<i64>,
    #[prost(int64, repeated, packed = "false", tag = "8")]
    ints: Vec<i64>,
    #[prost(int32, tag = "20")]
    r#type: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TensorProto {
    #[prost(int64, repeated, packed = "false", tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ValueInfoProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TypeTensor>,
}

/// `TypeProto.Tensor`.
#[derive(Clone, PartialEq, prost::Message)]
struct TypeTensor {
    #[prost(int32, tag = "1")]
    elem_type: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`: one of `dim_value` and `dim_param`.
#[derive(Clone, PartialEq, prost::Message)]
struct Dimension {
    #[prost(int64, optional, tag = "1")]
    dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    dim_param: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model whose settings leave `ImageModel::onnx` to its default.
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Unwritten;

    impl crate::model::ImageModel for Unwritten {
        const NAME: &'static str = "unwritten";
        type Network = crate::model::Mlp;

        fn validate(
            &self,
            _shape: &crate::data::images::ImageShape,
        ) -> Result<(), crate::optim::InvalidValue> {
            Ok(())
        }

        fn init(&self, shape: &crate::data::images::ImageShape, device: &Device) -> crate::model::Mlp {
            crate::model::Mlp::new(shape.values(), 4, shape.classes, device)
        }

        fn describe(&self) -> String {
            String::new()
        }

        fn memory_bytes(&self, _shape: &crate::data::images::ImageShape, _batch: usize) -> Option<u64> {
            None
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn a_model_without_its_onnx_form_is_refused_by_name() {
        use crate::model::ImageModel;
        let network = Unwritten.init(&crate::data::images::ImageShape::grey(8), &Device::flex());
        let error = Unwritten.onnx(&network, &mut Graph::new(), "images").unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("cannot write the unwritten model as ONNX"), "{message}");
        assert!(message.contains("ImageModel::onnx"), "{message}");
    }

    #[test]
    fn names_are_unique_c_identifiers() {
        let mut graph = Graph::new();
        assert_eq!(graph.unique("blocks.0.conv"), "blocks_0_conv");
        assert_eq!(graph.unique("blocks.0.conv"), "blocks_0_conv_2");
        assert_eq!(graph.unique("0"), "_0");
        assert_eq!(graph.unique(""), "_");
    }

    #[test]
    fn the_model_reads_back_with_its_fields() {
        let mut graph = Graph::new();
        let w = graph.constant("head.weight", &[2, 1], &[3.0, 2.0]);
        let y = graph.node("MatMul", "head", &["x", &w], vec![Attribute::ints("unused", &[0, 1])]);
        let input = Signature { name: "x".into(), shape: vec![Dim::Batch, Dim::Fixed(2)] };
        let output = Signature { name: "prediction".into(), shape: vec![Dim::Batch, Dim::Fixed(1)] };
        let bytes = graph.into_model((&input, &output, &y), "a test", &[("model", "linear".into())]);
        let model = ModelProto::decode(&bytes[..]).unwrap();
        assert_eq!((model.ir_version, model.opset_import[0].version), (IR_VERSION, OPSET));
        let graph = model.graph.unwrap();
        assert_eq!(graph.node[0].input, ["x", "head_weight"]);
        assert_eq!(graph.node[0].output, ["prediction"]);
        assert_eq!(graph.node[0].attribute[0].ints, [0, 1]);
        assert_eq!(graph.initializer[0].raw_data, [3.0f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat());
        assert_eq!(graph.input[0].name, "x");
        let shape = graph.output[0].r#type.clone().unwrap().tensor_type.unwrap().shape.unwrap();
        assert_eq!(shape.dim[0].dim_param.as_deref(), Some("N"));
        assert_eq!(shape.dim[1].dim_value, Some(1));
        assert_eq!(model.metadata_props[0].value, "linear");
        assert_eq!(input.to_string(), "x float32 [N, 2]");
    }
}
