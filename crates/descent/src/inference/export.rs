//! Models for other tools: every float tensor of a model with its name, a safetensors file
//! that a PyTorch user loads with `safetensors.torch.load_file`, and an ONNX model that
//! onnxruntime runs ([`onnx_model`]).
//!
//! Burn and PyTorch name and lay out two things differently, and [`pytorch_layout`] converts
//! them: a `Linear` layer's weight is `[in, out]` in Burn and `[out, in]` in PyTorch (transposed),
//! and batch norm's scale and shift are `gamma` and `beta` in Burn, `weight` and `bias` in
//! PyTorch. Convolution weights are `[out, in, kh, kw]` in both.

use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

use crate::config::{DataConfig, RunConfig};
use crate::device::ReadBackError;
use crate::inference::SavedModel;
use crate::onnx::{Dim, Graph, OnnxError, Signature};

/// One float tensor of a model, on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// The dotted path of the parameter in the module (`blocks.0.conv.weight`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// Every float tensor of `model` (parameters and batch norm's running statistics), in the
/// module's order, read back from the device.
pub fn named_tensors<M: Module>(model: &M) -> Result<Vec<NamedTensor>, ReadBackError> {
    struct Collector {
        path: Vec<String>,
        tensors: Vec<NamedTensor>,
        error: Option<String>,
    }
    impl ModuleVisitor for Collector {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let name = self.path.join(".");
            let tensor = param.val();
            let shape = tensor.dims().to_vec();
            match crate::device::read_f32(tensor) {
                Ok(values) => self.tensors.push(NamedTensor { name, shape, values }),
                Err(error) => self.error = Some(format!("{name}: {error}")),
            }
        }
    }
    let mut collector = Collector { path: Vec::new(), tensors: Vec::new(), error: None };
    model.visit(&mut collector);
    match collector.error {
        Some(error) => Err(ReadBackError(error)),
        None => Ok(collector.tensors),
    }
}

/// The name and shape of every float tensor of `model`, in the module's order (nothing is read
/// from the device).
pub fn named_shapes<M: Module>(model: &M) -> Vec<(String, Vec<usize>)> {
    crate::model::summary::named_params(model).into_iter().map(|tensor| (tensor.name, tensor.shape)).collect()
}

/// The tensors as PyTorch names and lays them out: every 2-D `weight` (a `Linear` layer's)
/// transposed from `[in, out]` to `[out, in]`; batch norm's `gamma`/`beta` renamed
/// `weight`/`bias`. Other tensors are unchanged.
pub fn pytorch_layout(tensors: Vec<NamedTensor>) -> Vec<NamedTensor> {
    tensors
        .into_iter()
        .map(|tensor| {
            let (prefix, leaf) = tensor.name.rsplit_once('.').unwrap_or(("", &tensor.name));
            let rename =
                |leaf: &str| if prefix.is_empty() { leaf.to_string() } else { format!("{prefix}.{leaf}") };
            match (leaf, tensor.shape.as_slice()) {
                ("weight", &[rows, columns]) => NamedTensor {
                    name: tensor.name.clone(),
                    shape: vec![columns, rows],
                    values: transpose(&tensor.values, rows, columns),
                },
                ("gamma", _) => NamedTensor { name: rename("weight"), ..tensor },
                ("beta", _) => NamedTensor { name: rename("bias"), ..tensor },
                _ => tensor,
            }
        })
        .collect()
}

fn transpose(values: &[f32], rows: usize, columns: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..columns {
            out[c * rows + r] = values[r * columns + c];
        }
    }
    out
}

/// The tensors as a safetensors file (f32, little-endian), with `metadata` in its header.
pub fn safetensors(
    tensors: &[NamedTensor],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, ExportError> {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(tensor, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, tensor.shape.clone(), data)
                .map(|view| (tensor.name.clone(), view))
                .map_err(|error| ExportError(format!("{}: {error}", tensor.name)))
        })
        .collect::<Result<Vec<_>, ExportError>>()?;
    safetensors::tensor::serialize(views, Some(metadata)).map_err(|error| ExportError(error.to_string()))
}

/// A trained model as an ONNX file, and what it takes and gives.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxModel {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The graph's input.
    pub input: Signature,
    /// The graph's output.
    pub output: Signature,
    /// What the input holds and the output means, in a sentence (also the model's doc string).
    pub layout: String,
}

/// The ONNX model of a run's trained model (its configuration `config`), for onnxruntime:
/// - the linear model: `x` `[N, features]` (the feature columns in the order of
///   `data.features`, without the column of ones) to `prediction` `[N, 1]`;
/// - an image classifier: `images` `[N, 1, side, side]` to `logits` `[N, 10]`, or with
///   `softmax` to `probabilities` `[N, 10]`.
///
/// The batch dimension `N` is free.
pub fn onnx_model(saved: &SavedModel, config: &RunConfig, softmax: bool) -> Result<OnnxModel, OnnxError> {
    let mut graph = Graph::new();
    let mut metadata = vec![("model", saved.kind().to_string())];
    let (input, output, value, layout) = match saved {
        SavedModel::Linear(model) => {
            let parameters = model.parameters()?;
            let features = parameters.len() - 1;
            let names = match &config.data {
                DataConfig::Csv(csv) => csv.features.clone().unwrap_or_default(),
                _ => vec!["x".to_string()],
            };
            let weight = graph.constant("a.weight", &[features, 1], &parameters[..features]);
            let bias = graph.constant("a.intercept", &[1], &parameters[features..]);
            let product = graph.node("MatMul", "matmul", &["x", &weight], Vec::new());
            let value = graph.node("Add", "add", &[&product, &bias], Vec::new());
            let layout = format!(
                "x: float32 [N, {features}], the feature columns {} in that order (no column of ones); prediction: [N, 1], x·w + intercept",
                names.join(", ")
            );
            metadata.push(("features", names.join(",")));
            let input = Signature { name: "x".into(), shape: vec![Dim::Batch, Dim::Fixed(features)] };
            let output = Signature { name: "prediction".into(), shape: vec![Dim::Batch, Dim::Fixed(1)] };
            (input, output, value, layout)
        }
        SavedModel::Classifier(classifier) => {
            let shape = classifier.shape();
            let (side, channels) = (shape.side, shape.channels);
            let names = classifier.class_names().to_vec();
            let (images, pixels) = normalised_input(&mut graph, classifier, &mut metadata);
            let logits = classifier.onnx(&mut graph, &images)?;
            let (name, value) = match softmax {
                true => (
                    "probabilities",
                    graph.node(
                        "Softmax",
                        "softmax",
                        &[&logits],
                        vec![crate::onnx::Attribute::int("axis", 1)],
                    ),
                ),
                false => ("logits", logits),
            };
            let layout = format!(
                "images: float32 [N, {channels}, {side}, {side}], {pixels}; {name}: [N, {}], one per class ({}){}",
                names.len(),
                names.join(", "),
                if softmax { ", summing to 1" } else { ", before softmax" }
            );
            metadata.push(("classes", names.join(",")));
            let input = Signature {
                name: "images".into(),
                shape: vec![Dim::Batch, Dim::Fixed(channels), Dim::Fixed(side), Dim::Fixed(side)],
            };
            let output = Signature { name: name.into(), shape: vec![Dim::Batch, Dim::Fixed(names.len())] };
            (input, output, value, layout)
        }
    };
    metadata.push(("layout", layout.clone()));
    metadata.push(("seed", config.seed.to_string()));
    let bytes = graph.into_model((&input, &output, &value), &layout, &metadata);
    Ok(OnnxModel { bytes, input, output, layout })
}

/// The classifier's input in the graph: for a folder-trained model, `images` (pixels in [0, 1])
/// normalised by the training pictures' mean and standard deviation (recorded in `metadata`
/// too); for the built-in sets, `images` as it is. Returns the value the network reads and the
/// input's description.
fn normalised_input(
    graph: &mut Graph,
    classifier: &super::SavedClassifier,
    metadata: &mut Vec<(&str, String)>,
) -> (String, String) {
    let shape = classifier.shape();
    let (side, channels) = (shape.side, shape.channels);
    let Some(normalisation) = classifier.normalisation() else {
        return (
            "images".to_string(),
            "row-major pixels in [0, 1] (0 the background, 1 the ink, as MNIST: digit rows' 0..16 divided by 16, 8-bit pixels by 255)".to_string(),
        );
    };
    let as_f32 = |values: &[f64]| values.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    let mean = graph.constant("normalise.mean", &[1, channels, 1, 1], &as_f32(&normalisation.mean));
    let std = graph.constant("normalise.std", &[1, channels, 1, 1], &as_f32(&normalisation.std));
    let centred = graph.node("Sub", "normalise.sub", &["images", &mean], Vec::new());
    let scaled = graph.node("Div", "normalise.div", &[&centred, &std], Vec::new());
    metadata.push(("mean", format!("{:?}", normalisation.mean)));
    metadata.push(("std", format!("{:?}", normalisation.std)));
    let colours = if channels == 3 { "red, green, blue planes" } else { "one grey plane (Rec. 601 luma)" };
    let description = format!(
        "the picture resized to {side}x{side}, {colours}, values in [0, 1] (8-bit values / 255; the graph subtracts the training pictures' mean {:?} and divides by their standard deviation {:?})",
        normalisation.mean, normalisation.std
    );
    (scaled, description)
}

/// Why the safetensors file could not be written (a tensor the format refuses).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExportError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_weights_are_transposed_and_norms_renamed() {
        let tensors = vec![
            NamedTensor {
                name: "head.weight".into(),
                shape: vec![2, 3],
                values: vec![1., 2., 3., 4., 5., 6.],
            },
            NamedTensor { name: "head.bias".into(), shape: vec![3], values: vec![7., 8., 9.] },
            NamedTensor { name: "blocks.0.norm.gamma".into(), shape: vec![1], values: vec![1.] },
            NamedTensor { name: "blocks.0.norm.beta".into(), shape: vec![1], values: vec![0.] },
            NamedTensor { name: "blocks.0.conv.weight".into(), shape: vec![1, 1, 2, 2], values: vec![1.; 4] },
        ];
        let converted = pytorch_layout(tensors);
        assert_eq!(converted[0].shape, vec![3, 2]);
        // PyTorch's weight[o][i] is Burn's weight[i][o].
        assert_eq!(converted[0].values, vec![1., 4., 2., 5., 3., 6.]);
        assert_eq!(converted[1].name, "head.bias");
        assert_eq!(converted[2].name, "blocks.0.norm.weight");
        assert_eq!(converted[3].name, "blocks.0.norm.bias");
        assert_eq!(converted[4].shape, vec![1, 1, 2, 2]);
    }

    #[test]
    fn the_file_reads_back_with_the_safetensors_reader() {
        let tensors = vec![NamedTensor { name: "a".into(), shape: vec![2, 1], values: vec![3.0, 2.0] }];
        let metadata = HashMap::from([("model".to_string(), "linear".to_string())]);
        let bytes = safetensors(&tensors, metadata).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let a = file.tensor("a").unwrap();
        assert_eq!(a.shape(), &[2, 1]);
        assert_eq!(a.data(), [3.0f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat());
    }
}
