//! `descent predict` and `descent export`: use a trained model from its run folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use clap::{Args, ValueEnum};
use descent::device;
use descent::inference::export::{onnx_model, pytorch_layout, safetensors};
use descent::inference::predict::PredictError;
use descent::inference::{SavedModel, load_saved, load_saved_unverified};
use descent::onnx::OnnxError;
use descent::report::{EXPORT_FILE, ONNX_FILE, write_atomic};

use crate::Failure;

/// Predict with a trained model: `y` for each `x` (linear), or the class and its probability for
/// each digit row (an image classifier: the cnn, the mlp, ...).
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The run folder of a finished run (it holds config.toml and model.bpk).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,

    /// A CSV file with a header: a column `x` for the lesson's model; the feature columns of a
    /// `descent fit` model, by name, with its delimiter (with the target column too, the error
    /// is reported); 64 pixel columns (0..16) and optionally `label` for an image classifier
    /// (data/digits.csv's format); other columns are ignored. For an image classifier also a PNG
    /// file, a folder of them (any size, gray or colour: resized, and inverted when the
    /// background is light), or an IDX images file of the model's side (with its labels file
    /// beside it, the accuracy is reported). `-` (or `/dev/stdin`, a pipe, a FIFO) reads any of
    /// these from a stream.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,

    /// Write the predictions to this CSV file (atomically; a FIFO or device is written into, and
    /// `-` is standard output) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Device: auto or a backend, as for training [default: auto].
    #[arg(long, default_value = "auto")]
    pub device: String,

    /// Test-time augmentation for an image classifier: each image's class probabilities
    /// averaged over the image and N moved copies, moved as the run's augmentation moves its
    /// training images (shifts of up to 2 pixels without it; mirror images as
    /// training.augment.flip says, by default for Fashion-MNIST only), fastai's learn.tta.
    #[arg(long, value_name = "N", value_parser = descent::flags::values::positive_count, allow_hyphen_values = true)]
    pub tta: Option<usize>,

    /// Use model.bpk without checking it against model.sha256 (when the checksum file was lost
    /// and you vouch for the model); by default a missing or different checksum is an error.
    #[arg(long)]
    pub no_verify: bool,
}

/// Write a trained model for another framework: its weights for PyTorch (safetensors), or the
/// whole model for onnxruntime (ONNX).
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The run folder of a finished run (it holds config.toml and model.bpk).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,

    /// The file format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,

    /// The file to write [default: DIR/model.safetensors, DIR/model.onnx], atomically; a FIFO or
    /// device is written into, and `-` is standard output. It cannot be one of the run's own
    /// files (config.toml, model.bpk, checkpoint.bin, ...).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// ONNX: end a classifier with a softmax, so that it outputs `probabilities` rather than
    /// `logits`.
    #[arg(long)]
    pub softmax: bool,

    /// Use model.bpk without checking it against model.sha256 (see `descent predict`).
    #[arg(long)]
    pub no_verify: bool,
}

/// File formats of `descent export`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    /// safetensors, in PyTorch's names and layout (Linear weights [out, in]).
    Safetensors,
    /// ONNX (opset 17): the whole model, with named input and output and a free batch size,
    /// for onnxruntime and other ONNX runtimes. Dropout is left out, batch norm uses its
    /// running statistics.
    Onnx,
}

impl ExportFormat {
    /// The file written in the run folder when `--output` is not given.
    fn default_file(self) -> &'static str {
        match self {
            ExportFormat::Safetensors => EXPORT_FILE,
            ExportFormat::Onnx => ONNX_FILE,
        }
    }
}

pub fn predict(args: &PredictArgs) -> Result<(), Failure> {
    if let Some(output) = &args.output {
        if same_file(output, &args.input) {
            return Err(Failure::input(format!(
                "--output {} is the input file: choose another file (the input was not changed)",
                output.display()
            )));
        }
        check_not_run_file(output, &args.model, None)?;
        descent::report::check_writable(output).map_err(|e| Failure::input(format!("--output: {e}")))?;
    }
    let selected = device::select(&args.device).map_err(Failure::input)?;
    let (config, saved) = load(&args.model, &selected.device, args.no_verify)?;
    let saved = match (saved, args.tta) {
        (SavedModel::Classifier(classifier), Some(copies)) => {
            SavedModel::Classifier(classifier.with_tta(config.tta(copies)))
        }
        (SavedModel::Linear(_), Some(_)) => {
            return Err(Failure::input(
                "--tta averages predictions over moved copies of images, and this run's model is the linear model",
            ));
        }
        (saved, None) => saved,
    };
    let predictions = saved.predict(&config, &args.input, &selected.device).map_err(|error| match error {
        PredictError::Device(_) => Failure::internal(error),
        _ => Failure::input(error),
    })?;
    if let Some(score) = &predictions.score {
        err!("{score}");
    }
    let text = predictions.csv;
    match &args.output {
        Some(path) => {
            write_atomic(path, text.as_bytes()).map_err(|e| Failure::input(format!("--output: {e}")))
        }
        None => {
            out_text!("{text}");
            Ok(())
        }
    }
}

pub fn export(args: &ExportArgs) -> Result<(), Failure> {
    let default_file = args.format.default_file();
    let output = args.output.clone().unwrap_or_else(|| args.model.join(default_file));
    check_not_run_file(&output, &args.model, Some(default_file))?;
    if args.output.is_some() {
        descent::report::check_writable(&output).map_err(|e| Failure::input(format!("--output: {e}")))?;
    }
    if args.softmax && !matches!(args.format, ExportFormat::Onnx) {
        return Err(Failure::input("--softmax: only an ONNX export ends with a softmax (--format onnx)"));
    }
    let selected = device::select("auto").map_err(Failure::input)?;
    let (config, saved) = load(&args.model, &selected.device, args.no_verify)?;
    match args.format {
        ExportFormat::Safetensors => export_safetensors(&saved, &output),
        ExportFormat::Onnx => export_onnx(&saved, &config, &output, args.softmax),
    }
}

/// The ONNX model, checked to be writable as a whole before anything is written.
fn export_onnx(
    saved: &SavedModel,
    config: &descent::config::RunConfig,
    output: &Path,
    softmax: bool,
) -> Result<(), Failure> {
    if softmax && matches!(saved, SavedModel::Linear(_)) {
        return Err(Failure::input(
            "--softmax: the linear model predicts numbers, not class probabilities (leave --softmax out)",
        ));
    }
    let model = onnx_model(saved, config, softmax).map_err(|error| match error {
        OnnxError::Device(_) => Failure::internal(error),
        OnnxError::Unsupported { .. } => Failure::input(format!("--model: {error} (nothing was written)")),
    })?;
    write_atomic(output, &model.bytes).map_err(|e| Failure::input(format!("--output: {e}")))?;
    let lines = [
        format!("wrote {} ({} model, ONNX opset {}):", output.display(), saved.kind(), descent::onnx::OPSET),
        format!("  input   {}", model.input),
        format!("  output  {}", model.output),
        format!("  {}", model.layout),
    ];
    report_written(output, &lines)
}

fn export_safetensors(saved: &SavedModel, output: &Path) -> Result<(), Failure> {
    let tensors = saved.named_tensors().map_err(Failure::internal)?;
    let tensors = pytorch_layout(tensors);
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("model".to_string(), saved.kind().to_string()),
        ("producer".to_string(), format!("descent {}", env!("CARGO_PKG_VERSION"))),
    ]);
    let bytes = safetensors(&tensors, metadata).map_err(Failure::internal)?;
    write_atomic(output, &bytes).map_err(|e| Failure::input(format!("--output: {e}")))?;
    let heading = format!(
        "wrote {} ({} model, {} tensors in PyTorch layout):",
        output.display(),
        saved.kind(),
        tensors.len()
    );
    let rows = tensors.iter().map(|tensor| format!("  {:<28} {:?}", tensor.name, tensor.shape));
    report_written(output, &std::iter::once(heading).chain(rows).collect::<Vec<_>>())
}

/// What an export wrote, on standard output; on standard error when the file itself went to
/// standard output (`--output -`), so that the two never mix. When standard output cannot take
/// the list (`> /dev/full`), the error says that the file was written all the same.
fn report_written(output: &Path, lines: &[String]) -> Result<(), Failure> {
    for line in lines {
        if output.as_os_str() == "-" {
            err!("{line}");
        } else {
            out!("{line}");
        }
    }
    let flushed = crate::output::check();
    match crate::output::failed() {
        Some(error) if output.as_os_str() != "-" => Err(Failure::input(format!(
            "cannot write to standard output: {error} ({} was written whole all the same)",
            output.display()
        ))),
        _ => flushed,
    }
}

/// Load the run's model, checked against its checksum unless `--no-verify`.
fn load(
    dir: &Path,
    device: &Device,
    no_verify: bool,
) -> Result<(descent::config::RunConfig, SavedModel), Failure> {
    let loaded = if no_verify { load_saved_unverified(dir, device) } else { load_saved(dir, device) };
    loaded.map_err(|e| Failure::input(format!("--model: {e}")))
}

/// Refuse an `--output` that is one of the run folder's own files: any file already in it (but
/// `allowed`, the file a previous export wrote) or one a run writes. Writing there would replace
/// the run being read.
fn check_not_run_file(output: &Path, run: &Path, allowed: Option<&str>) -> Result<(), Failure> {
    let parent = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let (Ok(parent), Ok(run)) = (parent.canonicalize(), run.canonicalize()) else { return Ok(()) };
    let name = output.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    if parent != run || Some(name) == allowed {
        return Ok(());
    }
    let own = descent::report::files::is_run_file(name) || output.exists();
    if own {
        return Err(Failure::input(format!(
            "--output {} is one of the files of the run it reads ({}): choose a file outside it{} (nothing was written)",
            output.display(),
            run.display(),
            allowed.map(|a| format!(" or {a}")).unwrap_or_default()
        )));
    }
    Ok(())
}

/// Whether two paths name the same existing file.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
