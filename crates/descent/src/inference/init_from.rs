//! Start a network from another's weights (`--init-from`): fastai's transfer learning.
//!
//! The weights come from a finished run's folder (its `model.bpk`, verified by `model.sha256`)
//! or from a `.safetensors` file in the layout `descent export` writes, which is PyTorch's
//! (linear weights `[out, in]`, batch norm's `weight`/`bias`/`running_mean`/`running_var`), so
//! a model trained in PyTorch with the same layers and names loads too. Every parameter of the
//! body must be found with its shape; the head (the layer [`ImageModel::HEAD`] names) is kept
//! when it fits and left new when the class count differs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;

use super::export::{NamedTensor, named_shapes};

/// Where `--init-from` takes the weights.
#[derive(Clone, Debug, PartialEq)]
pub enum InitSource {
    /// A finished run's folder.
    Run(PathBuf),
    /// A `.safetensors` file in PyTorch's layout.
    Safetensors(PathBuf),
}

impl InitSource {
    /// The source `path` names: a `.safetensors` file, or else a run folder.
    pub fn of(path: &Path) -> Self {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors")) {
            InitSource::Safetensors(path.to_path_buf())
        } else {
            InitSource::Run(path.to_path_buf())
        }
    }

    /// The path.
    pub fn path(&self) -> &Path {
        match self {
            InitSource::Run(path) | InitSource::Safetensors(path) => path,
        }
    }
}

/// Why the weights could not be used. Every message names the source and, where one is at
/// fault, the parameter.
#[derive(Debug, thiserror::Error)]
#[error("--init-from {}: {message}", path.display())]
pub struct InitError {
    /// The run folder or file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// What was loaded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InitReport {
    /// Tensors taken from the source.
    pub loaded: usize,
    /// Whether the head was left new (its shape differs: another class count).
    pub new_head: bool,
}

/// The tensors of `source`, named as in descent's modules (`blocks.0.conv.weight`,
/// `blocks.0.norm.gamma`, `head.weight` as `[in, out]`), and for a run its class names.
pub fn source_tensors(
    source: &InitSource,
    device: &Device,
) -> Result<(Vec<NamedTensor>, Option<Vec<String>>), InitError> {
    let fail = |message: String| InitError { path: source.path().to_path_buf(), message };
    match source {
        InitSource::Run(dir) => {
            let (config, saved) = super::load_saved(dir, device).map_err(|e| fail(e.to_string()))?;
            let tensors = saved.named_tensors().map_err(|e| fail(e.to_string()))?;
            Ok((tensors, config.data.class_names()))
        }
        InitSource::Safetensors(path) => {
            let bytes = crate::limits::read_file(path).map_err(|e| fail(e.to_string()))?;
            let tensors = safetensors::SafeTensors::deserialize(&bytes)
                .map_err(|e| fail(format!("not a safetensors file ({e})")))?;
            let mut named = Vec::new();
            for (name, view) in tensors.tensors() {
                if view.dtype() != safetensors::Dtype::F32 {
                    return Err(fail(format!(
                        "tensor `{name}` is {:?}; descent reads float32 tensors",
                        view.dtype()
                    )));
                }
                let values = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                named.push(NamedTensor { name, shape: view.shape().to_vec(), values });
            }
            Ok((from_pytorch_layout(named), None))
        }
    }
}

/// The inverse of [`crate::inference::pytorch_layout`]: 2-D `weight`s transposed back to
/// `[in, out]`, 1-D `weight`s (batch norm's) renamed `gamma`, and a `bias` beside one renamed
/// `beta`.
fn from_pytorch_layout(tensors: Vec<NamedTensor>) -> Vec<NamedTensor> {
    let norms: Vec<String> = tensors
        .iter()
        .filter(|t| t.shape.len() == 1 && t.name.ends_with(".weight"))
        .map(|t| t.name.trim_end_matches(".weight").to_string())
        .collect();
    tensors
        .into_iter()
        .map(|tensor| {
            let (prefix, leaf) = tensor.name.rsplit_once('.').unwrap_or(("", &tensor.name));
            let (prefix, leaf) = (prefix.to_string(), leaf.to_string());
            let joined =
                |leaf: &str| if prefix.is_empty() { leaf.to_string() } else { format!("{prefix}.{leaf}") };
            match (leaf.as_str(), tensor.shape.as_slice()) {
                ("weight", &[rows, columns]) => {
                    let mut values = vec![0.0; tensor.values.len()];
                    for r in 0..rows {
                        for c in 0..columns {
                            values[c * rows + r] = tensor.values[r * columns + c];
                        }
                    }
                    NamedTensor { name: tensor.name, shape: vec![columns, rows], values }
                }
                ("weight", &[_]) => NamedTensor { name: joined("gamma"), ..tensor },
                ("bias", &[_]) if norms.contains(&prefix) => NamedTensor { name: joined("beta"), ..tensor },
                _ => tensor,
            }
        })
        .collect()
}

/// `network` with the tensors of `source` (see the module's documentation), a run's model read
/// on `device`; `head` names the network's head layer, and `classes` the classes it will tell
/// apart: a run's head is kept only when its classes are these, in this order (a file's when
/// its shapes fit).
pub fn init_from<M: Module>(
    network: M,
    source: &InitSource,
    head: &str,
    classes: &[String],
    device: &Device,
) -> Result<(M, InitReport), InitError> {
    let (tensors, source_classes) = source_tensors(source, device)?;
    let same_classes = source_classes.is_none_or(|names| names == classes);
    load_tensors(network, tensors, head, same_classes)
        .map_err(|message| InitError { path: source.path().to_path_buf(), message })
}

/// `network` with `tensors` in place of its own, by name; the head's only when `keep_head` and
/// every one of them fits.
pub fn load_tensors<M: Module>(
    network: M,
    tensors: Vec<NamedTensor>,
    head: &str,
    keep_head: bool,
) -> Result<(M, InitReport), String> {
    let wanted = named_shapes(&network);
    let found: HashMap<String, NamedTensor> = tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
    let in_head = |name: &str| name == head || name.starts_with(&format!("{head}."));
    let head_fits = keep_head
        && wanted
            .iter()
            .filter(|(name, _)| in_head(name))
            .all(|(name, shape)| found.get(name).is_some_and(|t| t.shape == *shape));
    for (name, shape) in wanted.iter().filter(|(name, _)| !in_head(name)) {
        match found.get(name) {
            None => {
                let mut names: Vec<&String> = found.keys().collect();
                names.sort();
                let listed: Vec<&str> = names.iter().take(8).map(|n| n.as_str()).collect();
                return Err(format!(
                    "it has no parameter `{name}` (shape {shape:?}), which this model needs; it has {}{}",
                    listed.join(", "),
                    if names.len() > 8 { ", ..." } else { "" }
                ));
            }
            Some(tensor) if tensor.shape != *shape => {
                return Err(format!(
                    "parameter `{name}` is {:?} there and {shape:?} in this model: the layers differ (channels, kernel, image side or colour channels)",
                    tensor.shape
                ));
            }
            Some(_) => {}
        }
    }
    let mut loader =
        Loader { path: Vec::new(), found, head: head.to_string(), load_head: head_fits, loaded: 0 };
    let network = network.map(&mut loader);
    Ok((network, InitReport { loaded: loader.loaded, new_head: !head_fits }))
}

/// Replaces each tensor by the one of its name, keeping its device and whether it trains.
struct Loader {
    path: Vec<String>,
    found: HashMap<String, NamedTensor>,
    head: String,
    load_head: bool,
    loaded: usize,
}

impl ModuleMapper for Loader {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.join(".");
        if !self.load_head && self.path.first().is_some_and(|first| *first == self.head) {
            return param;
        }
        let Some(tensor) = self.found.get(&name) else { return param };
        self.loaded += 1;
        let values = tensor.values.clone();
        let shape = tensor.shape.clone();
        param.map(|old| {
            let trains = old.is_require_grad();
            let fresh: Tensor<D> = Tensor::from_data(TensorData::new(values, shape), &old.device());
            fresh.set_require_grad(trains)
        })
    }
}
