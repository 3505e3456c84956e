//! A trained model read back from its run folder: `config.toml` says which model it is and its
//! sizes, `model.bpk` holds its parameters. `descent predict` and `descent export` start here.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;

use crate::config::{ConfigError, ModelConfig, RunConfig};
use crate::data::ImageSet;
use crate::data::folder::{Decoded, Normalisation, Resize, luma};
use crate::data::images::ImageShape;
use crate::device::ReadBackError;
use crate::metrics::{Evaluation, Tta};
use crate::model::{ImageModel, ImageModelVisitor, LinearModel};
use crate::onnx::{Graph, OnnxError};
use crate::report::files::{CHECKSUM_FILE, MODEL_FILE};
use crate::report::sha256_hex;

use super::export::{NamedTensor, named_tensors};

/// A trained model.
#[derive(Debug)]
pub enum SavedModel {
    /// The lesson's linear model.
    Linear(LinearModel),
    /// An image classifier of any registered kind (the CNN, the MLP, ...).
    Classifier(SavedClassifier),
}

impl SavedModel {
    /// The model's name: `linear`, or the classifier's (`cnn`, `mlp`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            SavedModel::Linear(_) => "linear",
            SavedModel::Classifier(classifier) => classifier.kind,
        }
    }

    /// Every parameter tensor, named by its path in the module.
    pub fn named_tensors(&self) -> Result<Vec<NamedTensor>, ReadBackError> {
        match self {
            SavedModel::Linear(model) => named_tensors(model),
            SavedModel::Classifier(classifier) => classifier.network.named_tensors(),
        }
    }
}

/// A trained image classifier, whatever its type: what predict and export need of it.
#[derive(Debug)]
pub struct SavedClassifier {
    kind: &'static str,
    shape: ImageShape,
    classes: Vec<String>,
    normalisation: Option<Normalisation>,
    resize: Resize,
    network: Box<dyn LoadedNetwork>,
    tta: Option<Tta>,
}

impl SavedClassifier {
    /// The model's name (`cnn`, `mlp`, ...).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The side of the square images it takes, in pixels.
    pub fn side(&self) -> usize {
        self.shape.side
    }

    /// The images it takes (side, channels) and how many classes it tells apart.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// The class names, in label order.
    pub fn class_names(&self) -> &[String] {
        &self.classes
    }

    /// The normalisation its training pictures had (a folder's); `None` for the built-in sets,
    /// whose pixels are used as they are.
    pub fn normalisation(&self) -> Option<&Normalisation> {
        self.normalisation.as_ref()
    }

    /// How its training pictures were made square (`data.resize`): pictures to classify are
    /// made square the same way.
    pub fn resize(&self) -> Resize {
        self.resize
    }

    /// The model's input for a decoded picture (at [`Self::side`]): a folder-trained model's
    /// channels, normalised as in training; for a model of the built-in grey sets, the luma in
    /// [0, 1], inverted when the background (the border) is light, since those sets draw light
    /// figures on dark.
    pub fn input(&self, picture: &Decoded) -> Vec<f32> {
        match &self.normalisation {
            Some(normalisation) if self.shape.channels == 3 => normalisation.apply(&picture.rgb),
            Some(normalisation) => normalisation.apply(&luma(&picture.rgb)),
            None => {
                let grey: Vec<f32> = luma(&picture.rgb).iter().map(|&v| f32::from(v) / 255.0).collect();
                let side = self.shape.side;
                let border: Vec<f32> = (0..side * side)
                    .filter(|i| {
                        i / side == 0 || i / side == side - 1 || i % side == 0 || i % side == side - 1
                    })
                    .map(|i| grey[i])
                    .collect();
                let light = border.iter().sum::<f32>() / border.len().max(1) as f32 > 0.5;
                if light { grey.iter().map(|v| 1.0 - v).collect() } else { grey }
            }
        }
    }

    /// The class probabilities of `count` images of `values` (each [`Self::input`]'s), one
    /// row of [`ImageShape::classes`] probabilities per image.
    pub fn probabilities(
        &self,
        values: Vec<f32>,
        count: usize,
        device: &Device,
    ) -> Result<Vec<Vec<f32>>, ReadBackError> {
        let ImageShape { side, channels, classes } = self.shape;
        let images = Tensor::from_data(TensorData::new(values, [count, channels, side, side]), device);
        let flat = self.network.probabilities(images)?;
        Ok(flat.chunks(classes.max(1)).map(<[f32]>::to_vec).collect())
    }

    /// Append the network to an ONNX `graph`, from the images `input` to its class scores,
    /// whose name it returns (see [`ImageModel::onnx`]).
    pub fn onnx(&self, graph: &mut Graph, input: &str) -> Result<String, OnnxError> {
        self.network.onnx(graph, input)
    }

    /// Its results on `indices` of `set` (see [`crate::metrics::evaluate`]), with test-time
    /// augmentation when [`Self::with_tta`] asked for it.
    pub fn evaluate(
        &self,
        set: &ImageSet,
        indices: &[usize],
        device: &Device,
    ) -> Result<Evaluation, ReadBackError> {
        self.network.evaluate(set, indices, device, self.tta.as_ref())
    }

    /// The classifier whose evaluations and predictions average each image's class
    /// probabilities over the image and moved copies ([`Tta`]; `descent predict --tta N`).
    pub fn with_tta(self, tta: Tta) -> Self {
        Self { tta: Some(tta), ..self }
    }
}

/// A loaded network behind a box: the generic functions predict and export call on it.
trait LoadedNetwork: std::fmt::Debug + Send {
    fn evaluate(
        &self,
        set: &ImageSet,
        indices: &[usize],
        device: &Device,
        tta: Option<&Tta>,
    ) -> Result<Evaluation, ReadBackError>;
    fn named_tensors(&self) -> Result<Vec<NamedTensor>, ReadBackError>;
    fn onnx(&self, graph: &mut Graph, input: &str) -> Result<String, OnnxError>;
    fn probabilities(&self, images: Tensor<4>) -> Result<Vec<f32>, ReadBackError>;
}

/// A network with the settings it was built from.
#[derive(Debug)]
struct Loaded<T: ImageModel> {
    settings: T,
    network: T::Network,
}

impl<T: ImageModel> LoadedNetwork for Loaded<T> {
    fn evaluate(
        &self,
        set: &ImageSet,
        indices: &[usize],
        device: &Device,
        tta: Option<&Tta>,
    ) -> Result<Evaluation, ReadBackError> {
        crate::metrics::evaluate_with(&self.network, set, indices, device, tta)
    }

    fn named_tensors(&self) -> Result<Vec<NamedTensor>, ReadBackError> {
        named_tensors(&self.network)
    }

    fn onnx(&self, graph: &mut Graph, input: &str) -> Result<String, OnnxError> {
        self.settings.onnx(&self.network, graph, input)
    }

    fn probabilities(&self, images: Tensor<4>) -> Result<Vec<f32>, ReadBackError> {
        use crate::metrics::Classifier;
        let probabilities = burn::tensor::activation::softmax(self.network.logits(images), 1);
        crate::device::read_f32(probabilities)
    }
}

/// Loads a classifier's parameters into a network of its configured kind and size.
struct LoadClassifier<'a> {
    record: burn::store::ModuleRecord,
    shape: ImageShape,
    classes: Vec<String>,
    normalisation: Option<Normalisation>,
    resize: Resize,
    device: &'a Device,
}

impl ImageModelVisitor for LoadClassifier<'_> {
    /// The classifier, or why the record does not fit it.
    type Output = Result<SavedClassifier, String>;

    fn visit<T: ImageModel>(self, model: &T) -> Self::Output {
        let network = model
            .init(&self.shape, self.device)
            .try_load_record(self.record)
            .map_err(|e| format!("it does not hold the {} config.toml describes ({})", T::NAME, brief(&e)))?;
        let network = Loaded { settings: model.clone(), network };
        Ok(SavedClassifier {
            kind: T::NAME,
            shape: self.shape,
            classes: self.classes,
            normalisation: self.normalisation,
            resize: self.resize,
            network: Box::new(network),
            tta: None,
        })
    }
}

/// Why a run folder's model cannot be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum SavedModelError {
    /// The folder or one of its files is missing.
    #[error("{} does not exist: --model expects the folder of a finished run (with config.toml and model.bpk)", path.display())]
    Missing {
        /// The missing folder or file.
        path: PathBuf,
    },
    /// `config.toml` is not a usable configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `model.bpk` is damaged, or holds another model than `config.toml` describes.
    #[error("{} cannot be loaded: {message}", path.display())]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Load the model of the run folder `dir` on `device` (a plain device: no autodiff needed),
/// after checking `model.bpk` against its SHA-256 in `model.sha256`: a missing or different
/// checksum is an error.
pub fn load_saved(dir: &Path, device: &Device) -> Result<(RunConfig, SavedModel), SavedModelError> {
    load(dir, device, true)
}

/// [`load_saved`] without the checksum (`--no-verify`): for a model whose `model.sha256` was
/// lost, when the user vouches for the file.
pub fn load_saved_unverified(
    dir: &Path,
    device: &Device,
) -> Result<(RunConfig, SavedModel), SavedModelError> {
    load(dir, device, false)
}

/// The largest `model.sha256` read: one line of 64 hex digits and a file name.
const MAX_CHECKSUM_BYTES: u64 = 4096;

fn load(dir: &Path, device: &Device, verify: bool) -> Result<(RunConfig, SavedModel), SavedModelError> {
    let config_path = dir.join(crate::report::files::CONFIG_FILE);
    let model_path = dir.join(MODEL_FILE);
    for path in [dir, &config_path, &model_path] {
        if !path.exists() {
            return Err(SavedModelError::Missing { path: path.into() });
        }
    }
    let config = RunConfig::load(&config_path)?;
    let model_error = |message: String| SavedModelError::Model { path: model_path.clone(), message };
    let bytes = crate::limits::read_file(&model_path).map_err(|e| model_error(e.to_string()))?;
    if verify {
        let checksum_path = dir.join(CHECKSUM_FILE);
        if !checksum_path.exists() {
            return Err(model_error(format!(
                "its checksum {} is missing, so the file cannot be verified: restore it, or pass --no-verify to use the model unchecked",
                checksum_path.display()
            )));
        }
        let line = crate::limits::read_text(&checksum_path, MAX_CHECKSUM_BYTES).map_err(|error| {
            model_error(format!("cannot read its checksum {}: {error}", checksum_path.display()))
        })?;
        let expected = line.split_whitespace().next().unwrap_or_default();
        if expected != sha256_hex(&bytes) {
            return Err(model_error(format!(
                "it does not match its SHA-256 in {CHECKSUM_FILE}: the file was altered or damaged"
            )));
        }
    }
    let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| model_error(format!("the file is damaged or not a Burn model file ({e:?})")))?;
    let model = match &config.model {
        ModelConfig::Linear { .. } => {
            let count = config.linear_parameters().ok_or_else(|| {
                model_error("config.toml does not say how many features the model has (data.features)".into())
            })?;
            let init = vec![0.0f32; count];
            let model = LinearModel::new(&init, device).try_load_record(record).map_err(|e| {
                model_error(format!(
                    "it does not hold the linear model config.toml describes ({})",
                    brief(&e)
                ))
            })?;
            SavedModel::Linear(model)
        }
        image_model => {
            let shape = config.data.image_shape().ok_or_else(|| {
                model_error(
                    "config.toml does not record the images' channels and classes (data.channels, data.classes): it is not a finished run's".into(),
                )
            })?;
            let classes = config
                .data
                .class_names()
                .unwrap_or_else(|| (0..shape.classes).map(|class| class.to_string()).collect());
            let normalisation = config.data.normalisation();
            let resize = config.data.resize();
            let load = LoadClassifier { record, shape, classes, normalisation, resize, device };
            let loaded = image_model
                .visit_image_model(load)
                .unwrap_or_else(|| Err("config.toml names no image model".into()));
            SavedModel::Classifier(loaded.map_err(model_error)?)
        }
    };
    Ok((config, model))
}

/// Why a model file's record does not fit the model `config.toml` describes, as a sentence:
/// Burn reports it as debug text (`Validation("Apply errors: [\"…: shape mismatch, expected
/// Shape { dims: [16, 1, 5, 5] } but record has …\"]")`), which is turned into the first differing
/// parameter with both shapes and a count of the others; other errors are cut to a readable
/// length.
fn brief(error: &dyn std::fmt::Debug) -> String {
    let text = format!("{error:?}").replace("\\\"", "\"");
    let dims = |from: &str| {
        let start = from.find("dims: [")? + "dims: [".len();
        Some(from[start..][..from[start..].find(']')?].to_string())
    };
    if let Some(at) = text.find(": shape mismatch, expected ") {
        let path = text[..at].rsplit(['"', '[']).next().unwrap_or("a parameter");
        let rest = &text[at..];
        let expected = dims(rest).unwrap_or_default();
        let found = rest.find("record has").and_then(|i| dims(&rest[i..])).unwrap_or_default();
        let others = text.matches("shape mismatch").count() - 1;
        let more = match others {
            0 => String::new(),
            1 => ", and 1 more parameter differs".into(),
            n => format!(", and {n} more parameters differ"),
        };
        return format!(
            "`{path}` is [{found}] in the file and [{expected}] in the model{more}: the layer sizes differ (was config.toml edited after training?)"
        );
    }
    for (marker, what) in [
        ("Missing tensors: [", "the file lacks parameters the model has"),
        ("Unused tensors: [", "the file holds parameters the model lacks"),
    ] {
        if let Some(at) = text.find(marker) {
            let names = &text[at + marker.len()..];
            let names = names[..names.find(']').unwrap_or(names.len())].replace('"', "`");
            return format!("{what}: {}", crate::limits::printable(&names, 160));
        }
    }
    crate::limits::printable(&text, 160)
}
