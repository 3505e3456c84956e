//! Burn's layers as ONNX operations.

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Dropout, Linear, PaddingConfig2d, Relu};

use super::{Attribute, Graph, OnnxError};

/// A layer (or a whole network) that can append itself to an ONNX [`Graph`].
///
/// Implement it on your own modules by calling it on their layers in the order `forward` does:
///
/// ```ignore
/// impl ToOnnx for MyNet {
///     fn to_onnx(&self, graph: &mut Graph, name: &str, input: &str) -> Result<String, OnnxError> {
///         let x = self.hidden.to_onnx(graph, &format!("{name}.hidden"), input)?;
///         let x = self.activation.to_onnx(graph, &format!("{name}.activation"), &x)?;
///         self.output.to_onnx(graph, &format!("{name}.output"), &x)
///     }
/// }
/// ```
pub trait ToOnnx {
    /// Append the layer's operations to `graph`, reading the value named `input`; `name` is the
    /// layer's path in the model (`blocks.0.conv`), for the graph's names and for errors.
    /// Returns the name of the layer's output.
    fn to_onnx(&self, graph: &mut Graph, name: &str, input: &str) -> Result<String, OnnxError>;
}

/// The path of a layer `leaf` inside `prefix`: `prefix.leaf`, or `leaf` at the top.
pub fn child(prefix: &str, leaf: &str) -> String {
    if prefix.is_empty() { leaf.to_string() } else { format!("{prefix}.{leaf}") }
}

impl ToOnnx for Linear {
    /// `MatMul` by the weight (`[in, out]` in Burn, as ONNX multiplies), then `Add` the bias:
    /// Burn's `x·W + b` on inputs of any rank.
    fn to_onnx(&self, graph: &mut Graph, name: &str, input: &str) -> Result<String, OnnxError> {
        let weight = graph.tensor(&child(name, "weight"), self.weight.val())?;
        let product = graph.node("MatMul", &child(name, "matmul"), &[input, &weight], Vec::new());
        match &self.bias {
            Some(bias) => {
                let bias = graph.tensor(&child(name, "bias"), bias.val())?;
                Ok(graph.node("Add", &child(name, "add"), &[&product, &bias], Vec::new()))
            }
            None => Ok(product),
        }
    }
}

impl ToOnnx for Conv2d {
    /// `Conv`: Burn's weight `[out, in / groups, kh, kw]` is ONNX's `W` as it is.
    fn to_onnx(&self, graph: &mut Graph, name: &str, input: &str) -> Result<String, OnnxError> {
        let pads = pads_2d(&self.padding, self.kernel_size, self.stride, self.dilation)
            .map_err(|reason| OnnxError::Unsupported { layer: name.into(), reason })?;
        let weight = graph.tensor(&child(name, "weight"), self.weight.val())?;
        let mut inputs = vec![input.to_string(), weight];
        if let Some(bias) = &self.bias {
            inputs.push(graph.tensor(&child(name, "bias"), bias.val())?);
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let attributes = vec![
            Attribute::ints("kernel_shape", &self.kernel_size),
            Attribute::ints("strides", &self.stride),
            Attribute::ints("dilations", &self.dilation),
            Attribute::ints("pads", &pads),
            Attribute::int("group", self.groups as i64),
        ];
        Ok(graph.node("Conv", name, &inputs, attributes))
    }
}

impl ToOnnx for BatchNorm {
    /// `BatchNormalization` in its inference form: the running mean and variance normalise.
    /// ONNX's momentum weighs the old running value, Burn's the new batch: ONNX's is `1 - m`.
    fn to_onnx(&self, graph: &mut Graph, name: &str, input: &str) -> Result<String, OnnxError> {
        let scale = graph.tensor(&child(name, "gamma"), self.gamma.val())?;
        let bias = graph.tensor(&child(name, "beta"), self.beta.val())?;
        let mean = graph.tensor(&child(name, "running_mean"), self.running_mean.value())?;
        let var = graph.tensor(&child(name, "running_var"), self.running_var.value())?;
        let attributes = vec![
            Attribute::float("epsilon", self.epsilon as f32),
            Attribute::float("momentum", (1.0 - self.momentum) as f32),
        ];
        Ok(graph.node("BatchNormalization", name, &[input, &scale, &bias, &mean, &var], attributes))
    }
}

impl ToOnnx for MaxPool2d {
    /// `MaxPool`, with its strides written out (ONNX's default stride is 1, Burn's the kernel).
    fn to_onnx(&self, graph: &mut Graph, name: &str, input: &str) -> Result<String, OnnxError> {
        let pads = pads_2d(&self.padding, self.kernel_size, self.stride, self.dilation)
            .map_err(|reason| OnnxError::Unsupported { layer: name.into(), reason })?;
        let attributes = vec![
            Attribute::ints("kernel_shape", &self.kernel_size),
            Attribute::ints("strides", &self.stride),
            Attribute::ints("dilations", &self.dilation),
            Attribute::ints("pads", &pads),
            Attribute::int("ceil_mode", i64::from(self.ceil_mode)),
        ];
        Ok(graph.node("MaxPool", name, &[input], attributes))
    }
}

impl ToOnnx for Relu {
    fn to_onnx(&self, graph: &mut Graph, name: &str, input: &str) -> Result<String, OnnxError> {
        Ok(graph.node("Relu", name, &[input], Vec::new()))
    }
}

impl ToOnnx for Dropout {
    /// Nothing: dropout only acts in training, and an exported model infers.
    fn to_onnx(&self, _graph: &mut Graph, _name: &str, input: &str) -> Result<String, OnnxError> {
        Ok(input.to_string())
    }
}

impl<T: ToOnnx> ToOnnx for Option<T> {
    /// The layer when there is one, else nothing.
    fn to_onnx(&self, graph: &mut Graph, name: &str, input: &str) -> Result<String, OnnxError> {
        match self {
            Some(layer) => layer.to_onnx(graph, name, input),
            None => Ok(input.to_string()),
        }
    }
}

/// ONNX's `pads` (`[top, left, bottom, right]`) for Burn's padding of a 2-D window.
fn pads_2d(
    padding: &PaddingConfig2d,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> Result<[usize; 4], String> {
    match *padding {
        PaddingConfig2d::Valid => Ok([0; 4]),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Ok([top, left, bottom, right]),
        PaddingConfig2d::Same => {
            let odd = kernel.iter().all(|k| k % 2 == 1);
            if !odd || stride != [1, 1] {
                return Err(format!(
                    "padding Same with kernel {kernel:?} and stride {stride:?} (only odd kernels at stride 1 are written)"
                ));
            }
            let [h, w] = [0, 1].map(|axis| (kernel[axis] - 1) * dilation[axis] / 2);
            Ok([h, w, h, w])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_maps_to_onnx_pads() {
        assert_eq!(pads_2d(&PaddingConfig2d::Explicit(1, 2, 3, 4), [3, 3], [1, 1], [1, 1]), Ok([1, 2, 3, 4]));
        assert_eq!(pads_2d(&PaddingConfig2d::Valid, [3, 3], [1, 1], [1, 1]), Ok([0; 4]));
        assert_eq!(pads_2d(&PaddingConfig2d::Same, [5, 3], [1, 1], [1, 2]), Ok([2, 2, 2, 2]));
        assert!(
            pads_2d(&PaddingConfig2d::Same, [4, 4], [1, 1], [1, 1]).unwrap_err().contains("kernel [4, 4]")
        );
    }
}
