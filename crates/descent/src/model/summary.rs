//! What a network is made of, layer by layer, as Keras' `model.summary()` and fastai's
//! `learn.summary()` show it (`descent summary`, and `--verbose` at the start of a run).
//!
//! A model lists its layers in the order its forward pass uses them ([`Layer`]: path, type,
//! output shape per image, multiply-adds per image); the parameters of each layer, and whether
//! they train, are read from the module itself, so the totals are the module's own.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use serde::Serialize;

/// One layer as the model describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// The module path of the layer's parameters (`blocks.0.conv`), or a name for a step
    /// without parameters (`flatten`).
    pub path: String,
    /// What it is, in a few words (`Conv2d 1→32, 5×5, padding 2`).
    pub kind: String,
    /// The shape of its output for one image (the batch dimension left out); `None` when the
    /// model does not say.
    pub output: Option<Vec<usize>>,
    /// Multiply-adds per image: the products of convolutions and linear layers (normalisation,
    /// activations and pooling are counted as 0, as the usual counters do); `None` when unknown.
    pub mult_adds: Option<u64>,
}

impl Layer {
    /// A layer whose output and cost are known.
    pub fn new(path: impl Into<String>, kind: impl Into<String>, output: Vec<usize>, mult_adds: u64) -> Self {
        Self { path: path.into(), kind: kind.into(), output: Some(output), mult_adds: Some(mult_adds) }
    }
}

/// One row of the summary: a layer with its parameters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The module path (`blocks.0.conv`).
    pub path: String,
    /// What it is (`Conv2d 1→32, 5×5, padding 2`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Output shape for one image; `null` when the model does not say.
    pub output: Option<Vec<usize>>,
    /// Values in its tensors (parameters and, for batch norm, the running statistics).
    pub parameters: u64,
    /// Whether any of its parameters train (in a run with `--freeze`: in the first epochs);
    /// false for a layer without parameters.
    pub trainable: bool,
    /// Multiply-adds per image; `null` when unknown.
    pub mult_adds: Option<u64>,
}

/// A network's summary: its rows and totals.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSummary {
    /// The model's name (`cnn`, `mlp`, `linear`).
    pub model: String,
    /// The shape of one input (`[channels, side, side]`, or `[features]`).
    pub input: Vec<usize>,
    /// The layers, in the order the forward pass uses them.
    pub layers: Vec<Row>,
    /// Values in all the module's tensors: Burn's `num_params`.
    pub parameters: u64,
    /// Of those, the ones the optimizer updates.
    pub trainable_parameters: u64,
    /// The others: batch norm's running statistics, and a frozen body.
    pub non_trainable_parameters: u64,
    /// The module's size in memory: every value is an f32.
    pub bytes: u64,
    /// Multiply-adds per image over all layers; `null` when a layer's is unknown.
    pub mult_adds: Option<u64>,
}

/// A float tensor of a model as its module holds it: nothing is read from the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedShape {
    /// The dotted path of the tensor in the module (`blocks.0.conv.weight`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Whether it takes gradients: a parameter on an autodiff device (batch norm's running
    /// statistics never do).
    pub trainable: bool,
}

/// The name, shape and trainability of every float tensor of `model`, in the module's order.
pub fn named_params<M: Module>(model: &M) -> Vec<NamedShape> {
    struct Shapes {
        path: Vec<String>,
        shapes: Vec<NamedShape>,
    }
    impl ModuleVisitor for Shapes {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let tensor = param.val();
            let (shape, trainable) = (tensor.dims().to_vec(), tensor.is_require_grad());
            self.shapes.push(NamedShape { name: self.path.join("."), shape, trainable });
        }
    }
    let mut shapes = Shapes { path: Vec::new(), shapes: Vec::new() };
    model.visit(&mut shapes);
    shapes.shapes
}

/// Each float tensor of `module`: its dotted path, its number of values, and whether it takes
/// gradients.
fn tensors<M: Module>(module: &M) -> Vec<(String, u64, bool)> {
    named_params(module)
        .into_iter()
        .map(|tensor| (tensor.name, tensor.shape.iter().product::<usize>() as u64, tensor.trainable))
        .collect()
}

/// Whether the tensor at `path` belongs to the layer at `layer` (the layer's path, then a dot).
fn within(path: &str, layer: &str) -> bool {
    path.strip_prefix(layer).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// The summary of `network` (a model named `model`, taking inputs of shape `input`) from the
/// layers it lists; without a list, one row per top-level field with parameters, their output
/// unknown. With `frozen_body` (a fine-tuning's `--freeze`), the layers outside `head` count as
/// not trainable.
///
/// # Errors
/// When a parameter lies in none of the listed layers: the list is then wrong, and the totals
/// would not be the module's.
pub fn summarize<M: Module>(
    model: &str,
    input: Vec<usize>,
    network: &M,
    layers: Option<Vec<Layer>>,
    frozen_body: Option<&str>,
) -> Result<ModelSummary, String> {
    let tensors = tensors(network);
    let layers = layers.unwrap_or_else(|| fields(&tensors));
    let frozen = |path: &str| frozen_body.is_some_and(|head| !within(path, head));
    for (path, _, _) in &tensors {
        if !layers.iter().any(|layer| within(path, &layer.path)) {
            return Err(format!("the {model} model lists no layer for its parameter `{path}`"));
        }
    }
    let rows: Vec<Row> = layers
        .into_iter()
        .map(|layer| {
            let mine = || tensors.iter().filter(|(path, _, _)| within(path, &layer.path));
            Row {
                parameters: mine().map(|(_, values, _)| values).sum(),
                trainable: !frozen(&layer.path) && mine().any(|(_, _, grad)| *grad),
                path: layer.path,
                kind: layer.kind,
                output: layer.output,
                mult_adds: layer.mult_adds,
            }
        })
        .collect();
    let parameters: u64 = tensors.iter().map(|(_, values, _)| values).sum();
    let trainable_parameters: u64 =
        tensors.iter().filter(|(path, _, grad)| *grad && !frozen(path)).map(|(_, values, _)| values).sum();
    let mult_adds = rows.iter().map(|row| row.mult_adds).sum::<Option<u64>>();
    Ok(ModelSummary {
        model: model.to_string(),
        input,
        layers: rows,
        parameters,
        trainable_parameters,
        non_trainable_parameters: parameters - trainable_parameters,
        bytes: parameters * 4,
        mult_adds,
    })
}

/// One layer per top-level field with parameters, for a model that lists none.
fn fields(tensors: &[(String, u64, bool)]) -> Vec<Layer> {
    let mut layers: Vec<Layer> = Vec::new();
    for (path, _, _) in tensors {
        let field = path.split('.').next().unwrap_or_default();
        if layers.last().is_none_or(|last| last.path != field) {
            layers.push(Layer {
                path: field.to_string(),
                kind: "module".into(),
                output: None,
                mult_adds: None,
            });
        }
    }
    layers
}

impl ModelSummary {
    /// The summary as a table: one line per layer, then the totals.
    pub fn table(&self) -> String {
        let shape = |dims: &Option<Vec<usize>>| match dims {
            Some(dims) => format!("[{}]", dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
            None => "?".into(),
        };
        let count = |value: Option<u64>| value.map_or("?".into(), grouped);
        let header = ["layer", "type", "output", "parameters", "trainable", "mult-adds"].map(String::from);
        let mut cells = vec![header];
        for row in &self.layers {
            cells.push([
                row.path.clone(),
                row.kind.clone(),
                shape(&row.output),
                grouped(row.parameters),
                match (row.parameters, row.trainable) {
                    (0, _) => "-",
                    (_, true) => "yes",
                    (_, false) => "no",
                }
                .into(),
                count(row.mult_adds),
            ]);
        }
        let widths: Vec<usize> =
            (0..6).map(|c| cells.iter().map(|row| row[c].chars().count()).max().unwrap_or(0)).collect();
        let example = if self.input.len() == 3 { "image" } else { "row" };
        let mut text =
            format!("{} model, input {} per {example}\n", self.model, shape(&Some(self.input.clone())));
        for (index, row) in cells.iter().enumerate() {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (cell, &width))| match c {
                    3 | 5 => format!("{cell:>width$}"),
                    _ => format!("{cell:<width$}"),
                })
                .collect();
            text.push_str(line.join("  ").trim_end());
            text.push('\n');
            if index == 0 {
                text.push_str(&"-".repeat(widths.iter().sum::<usize>() + 10));
                text.push('\n');
            }
        }
        text.push_str(&format!(
            "parameters: {} ({}), trainable {}, not trainable {}\nmultiply-adds per {example}: {}\n",
            grouped(self.parameters),
            crate::limits::Bytes(self.bytes),
            grouped(self.trainable_parameters),
            grouped(self.non_trainable_parameters),
            count(self.mult_adds),
        ));
        text
    }
}

/// `1234567` as `1,234,567`.
fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut text = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(10_693_760), "10,693,760");
    }

    /// The default CNN on Fashion-MNIST's 28×28 grey images, by hand: conv 1→32 (5×5) and
    /// 32→64, each with batch norm (γ, β and two running statistics per channel) and 2×2
    /// pooling, then the head from 64·7·7 features to 10 classes.
    #[test]
    fn the_default_cnn_on_fashion_mnist_matches_the_hand_count() {
        use crate::data::images::ImageShape;
        use crate::model::{CnnConfig, ImageModel};
        let (settings, shape) = (CnnConfig::default(), ImageShape::grey(28));
        let network = settings.init(&shape, &Device::flex().autodiff());
        let summary =
            summarize("cnn", vec![1, 28, 28], &network, settings.layers(&network, &shape), None).unwrap();
        let conv1 = (25 + 1) * 32;
        let conv2 = (32 * 25 + 1) * 64;
        let (norm1, norm2) = (4 * 32, 4 * 64);
        let head = (64 * 7 * 7 + 1) * 10;
        assert_eq!(summary.parameters, conv1 + norm1 + conv2 + norm2 + head);
        assert_eq!(summary.parameters, network.num_params() as u64, "Burn's own count");
        assert_eq!(summary.non_trainable_parameters, 2 * 32 + 2 * 64, "the running statistics");
        assert_eq!(summary.bytes, 4 * summary.parameters);
        let products = 32 * 28 * 28 * 25 + 64 * 14 * 14 * 32 * 25 + 64 * 7 * 7 * 10;
        assert_eq!(summary.mult_adds, Some(products));
        let rows: Vec<(&str, Option<Vec<usize>>, u64)> = summary
            .layers
            .iter()
            .map(|row| (row.path.as_str(), row.output.clone(), row.parameters))
            .collect();
        assert_eq!(rows[0], ("blocks.0.conv", Some(vec![32, 28, 28]), conv1));
        assert_eq!(rows[3], ("blocks.0.pool", Some(vec![32, 14, 14]), 0));
        assert_eq!(rows[7], ("blocks.1.pool", Some(vec![64, 7, 7]), 0));
        assert_eq!(rows.last().unwrap(), &("head", Some(vec![10]), head));
        // A frozen body leaves the head alone trainable.
        let frozen =
            summarize("cnn", vec![1, 28, 28], &network, settings.layers(&network, &shape), Some("head"))
                .unwrap();
        assert_eq!(frozen.trainable_parameters, head);
    }

    /// A model that lists no layers gets a row per field, its parameters counted all the same.
    #[test]
    fn a_model_without_a_layer_list_is_summarised_by_its_fields() {
        use crate::data::images::ImageShape;
        use crate::model::{ImageModel, MlpConfig};
        let shape = ImageShape::grey(8);
        let network = MlpConfig { hidden: 16 }.init(&shape, &Device::flex().autodiff());
        let summary = summarize("mine", vec![1, 8, 8], &network, None, None).unwrap();
        let paths: Vec<&str> = summary.layers.iter().map(|row| row.path.as_str()).collect();
        assert_eq!(paths, ["hidden", "output"]);
        assert_eq!(summary.parameters, (64 * 16 + 16 + 16 * 10 + 10) as u64);
        assert_eq!(summary.mult_adds, None);
        // A list that misses a parameter is refused, naming it.
        let missing = vec![Layer::new("hidden", "Linear", vec![16], 1024)];
        let error = summarize("mine", vec![1, 8, 8], &network, Some(missing), None).unwrap_err();
        assert!(error.contains("output.weight"), "{error}");
    }

    #[test]
    fn a_layer_owns_its_path_and_what_is_below_it_only() {
        assert!(within("blocks.0.conv.weight", "blocks.0.conv"));
        assert!(within("head", "head"));
        assert!(!within("blocks.10.conv.weight", "blocks.1"));
        assert!(!within("header.weight", "head"));
    }
}
