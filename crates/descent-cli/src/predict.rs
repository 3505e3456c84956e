//! `descent predict` and `descent export`: use a trained model from its run folder.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use clap::{Args, ValueEnum};
use descent::config::{DataConfig, RunConfig};
use descent::data::csv_table::{Columns, CsvOptions, Target, parse_delimiter, read_csv};
use descent::data::images::read_digit_rows;
use descent::data::read_x;
use descent::device;
use descent::model::LinearModel;
use descent::regression::CsvSource;
use descent::report::export::{pytorch_layout, safetensors};
use descent::report::{
    EXPORT_FILE, SavedClassifier, SavedModel, load_saved, load_saved_unverified, write_atomic,
};

use crate::Failure;

/// Predict with a trained model: `y` for each `x` (linear), or the class and its probability for
/// each digit row (cnn).
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The run folder of a finished run (it holds config.toml and model.bpk).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,

    /// A CSV file with a header: a column `x` for the lesson's model; the feature columns of a
    /// `descent fit` model, by name, with its delimiter (with the target column too, the error
    /// is reported); 64 pixel columns (0..16) and optionally `label` for the cnn
    /// (data/digits.csv's format). Other columns are ignored.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,

    /// Write the predictions to this CSV file (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Device: auto or a backend, as for training [default: auto].
    #[arg(long, default_value = "auto")]
    pub device: String,

    /// Use model.bpk without checking it against model.sha256 (when the checksum file was lost
    /// and you vouch for the model); by default a missing or different checksum is an error.
    #[arg(long)]
    pub no_verify: bool,
}

/// Write a trained model's weights for another framework.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The run folder of a finished run (it holds config.toml and model.bpk).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,

    /// The file format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,

    /// The file to write [default: DIR/model.safetensors]. It cannot be one of the run's own
    /// files (config.toml, model.bpk, checkpoint.bin, ...).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Use model.bpk without checking it against model.sha256 (see `descent predict`).
    #[arg(long)]
    pub no_verify: bool,
}

/// File formats of `descent export`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    /// safetensors, in PyTorch's names and layout (Linear weights [out, in]).
    Safetensors,
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
    let text = match saved {
        SavedModel::Linear(model) => predict_linear(&model, &config, args, &selected.device)?,
        SavedModel::Classifier(classifier) => predict_classes(&classifier, args, &selected.device)?,
    };
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

fn input_error(error: descent::data::DataError) -> Failure {
    Failure::input(format!("--input: {error}"))
}

/// The linear model's predictions on `--input` as CSV text (`x,prediction`, or the features and
/// the prediction); with the target column, its error goes to stderr.
fn predict_linear(
    model: &LinearModel,
    config: &RunConfig,
    args: &PredictArgs,
    device: &Device,
) -> Result<String, Failure> {
    let mut text = String::new();
    let (names, x, features, target) = match &config.data {
        DataConfig::Csv(CsvSource { features: Some(names), target, delimiter, .. }) => {
            let columns = Columns { features: Some(names.clone()), target: Target::Optional(target.clone()) };
            let options = CsvOptions {
                delimiter: parse_delimiter(delimiter).map_err(Failure::input)?,
                skip_bad_rows: false,
            };
            let table = read_csv(&args.input, &columns, &options).map_err(input_error)?;
            let target = table.y.map(|y| (target.clone(), y));
            (names.clone(), table.x, names.len(), target)
        }
        _ => (vec!["x".to_string()], read_x(&args.input).map_err(input_error)?, 1, None),
    };
    let n = x.len() / features;
    let rows: Vec<f32> = x.chunks(features).flat_map(|row| row.iter().copied().chain([1.0])).collect();
    let inputs = Tensor::from_data(TensorData::new(rows, [n, features + 1]), device);
    let y = model
        .forward(inputs)
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| Failure::internal(format!("{e:?}")))?;
    let _ = writeln!(text, "{},prediction", names.join(","));
    for (row, y) in x.chunks(features).zip(&y) {
        for value in row {
            let _ = write!(text, "{value},");
        }
        let _ = writeln!(text, "{y}");
    }
    if let Some((name, truth)) = target {
        let table = descent::data::Table::new(y.clone(), truth, 1);
        let metrics = descent::regression::Metrics::of(&table, &[1.0]);
        err!(
            "on the {n} rows with `{name}`: mse {:.6}, rmse {:.6}, r2 {:.6}",
            metrics.mse,
            metrics.rmse,
            metrics.r2
        );
    }
    Ok(text)
}

/// An image classifier's classes on `--input` digit rows as CSV text; with labels, the accuracy
/// goes to stderr.
fn predict_classes(
    classifier: &SavedClassifier,
    args: &PredictArgs,
    device: &Device,
) -> Result<String, Failure> {
    let mut text = String::new();
    let (kind, side) = (classifier.kind(), classifier.side());
    if side != 8 {
        return Err(Failure::input(format!(
            "--model: this {kind} takes {side}x{side} images (MNIST); predict reads 8x8 digit rows (data/digits.csv's format)"
        )));
    }
    let (set, labeled) = read_digit_rows(&args.input).map_err(input_error)?;
    let indices: Vec<usize> = (0..set.len()).collect();
    let evaluation = classifier.evaluate(&set, &indices, device).map_err(Failure::internal)?;
    text.push_str(if labeled { "row,predicted,confidence,label\n" } else { "row,predicted,confidence\n" });
    for p in &evaluation.predictions {
        let _ = write!(text, "{},{},{}", p.index + 1, p.predicted, p.confidence);
        let _ = if labeled { writeln!(text, ",{}", p.label) } else { writeln!(text) };
    }
    if labeled {
        err!(
            "accuracy on the {} labelled rows: {:.4} (error_rate {:.4})",
            set.len(),
            evaluation.accuracy,
            evaluation.error_rate
        );
    }
    Ok(text)
}

pub fn export(args: &ExportArgs) -> Result<(), Failure> {
    let ExportFormat::Safetensors = args.format;
    let output = args.output.clone().unwrap_or_else(|| args.model.join(EXPORT_FILE));
    check_not_run_file(&output, &args.model, Some(EXPORT_FILE))?;
    if args.output.is_some() {
        descent::report::check_writable(&output).map_err(|e| Failure::input(format!("--output: {e}")))?;
    }
    let selected = device::select("auto").map_err(Failure::input)?;
    let (_, saved) = load(&args.model, &selected.device, args.no_verify)?;
    let tensors = saved.named_tensors().map_err(Failure::internal)?;
    let tensors = pytorch_layout(tensors);
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("model".to_string(), saved.kind().to_string()),
        ("producer".to_string(), format!("descent {}", env!("CARGO_PKG_VERSION"))),
    ]);
    let bytes = safetensors(&tensors, metadata).map_err(Failure::internal)?;
    write_atomic(&output, &bytes).map_err(|e| Failure::input(format!("--output: {e}")))?;
    out!("wrote {} ({} model, {} tensors in PyTorch layout):", output.display(), saved.kind(), tensors.len());
    for tensor in &tensors {
        out!("  {:<28} {:?}", tensor.name, tensor.shape);
    }
    Ok(())
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
