//! Prediction on rows with a saved model: `y` for each `x` (the lesson's model), for each row of
//! a table (a `descent fit` model, by its column names), or the class and its probability for
//! each image row (any image classifier). `descent predict` prints what this returns.

use std::fmt::Write as _;
use std::path::Path;

use burn::prelude::*;

use crate::config::{DataConfig, RunConfig};
use crate::data::DataError;
use crate::data::ImageSet;
use crate::data::csv_table::{Columns, CsvOptions, Target, parse_delimiter, read_csv};
use crate::data::folder::{EXTENSIONS, decode_file};
use crate::data::images::{read_digit_rows, read_idx_images};
use crate::data::pictures::{is_png, png_files, read_png};
use crate::data::read_x;
use crate::device::ReadBackError;
use crate::inference::{SavedClassifier, SavedModel, spool};
use crate::metrics::Evaluation;
use crate::model::LinearModel;
use crate::regression::CsvSource;
use crate::report::csv_field;

/// A model's predictions on the rows of a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    /// The predictions as CSV text with a header: the inputs and `prediction`, or `row`,
    /// `predicted`, `confidence` (and `label` when the rows carry one).
    pub csv: String,
    /// How good they are, when the rows carry the truth (the target column, or labels): one
    /// line, such as the accuracy.
    pub score: Option<String>,
}

/// Why rows could not be predicted.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The input file cannot be read as rows for this model.
    #[error("--input: {0}")]
    Input(#[from] DataError),
    /// The model takes images of another size than the rows hold.
    #[error(
        "--model: this {kind} takes {side}x{side} images (MNIST); predict reads 8x8 digit rows (data/digits.csv's format)"
    )]
    ImageSide {
        /// The model's name.
        kind: &'static str,
        /// The side of the images it takes.
        side: usize,
    },
    /// An IDX file's images are not the model's size.
    #[error("--input {}: its images are {found}x{found}, and this {kind} takes {side}x{side} images", path.display())]
    IdxSide {
        /// The file.
        path: std::path::PathBuf,
        /// The images' side.
        found: usize,
        /// The model's name.
        kind: &'static str,
        /// The side the model takes.
        side: usize,
    },
    /// The saved configuration's delimiter is not one.
    #[error("{0}")]
    Delimiter(String),
    /// The predictions could not be read back from the device.
    #[error(transparent)]
    Device(#[from] ReadBackError),
    /// A stream given as the input could not be read, or its rows could not be predicted: the
    /// sentence names the stream.
    #[error("{0}")]
    Stream(String),
}

impl SavedModel {
    /// Predict the rows of `input` (see the module's documentation) with the model of a run
    /// whose configuration is `config`, on `device`. `input` may be a stream (`-` for standard
    /// input, `/dev/stdin`, a pipe or a FIFO): it is read once, whole, and its content decides
    /// how it is read.
    pub fn predict(
        &self,
        config: &RunConfig,
        input: &Path,
        device: &Device,
    ) -> Result<Predictions, PredictError> {
        if !spool::is_stream(input) {
            return self.predict_file(config, input, device);
        }
        let spooled = spool::spool(input).map_err(PredictError::Stream)?;
        let (copy, name) = (spooled.path.display().to_string(), spool::stream_name(input));
        match self.predict_file(config, &spooled.path, device) {
            Ok(predictions) => Ok(Predictions { csv: predictions.csv.replace(&copy, &name), ..predictions }),
            Err(PredictError::Device(error)) => Err(PredictError::Device(error)),
            Err(error) => Err(PredictError::Stream(error.to_string().replace(&copy, &name))),
        }
    }

    fn predict_file(
        &self,
        config: &RunConfig,
        input: &Path,
        device: &Device,
    ) -> Result<Predictions, PredictError> {
        match self {
            SavedModel::Linear(model) => predict_linear(model, config, input, device),
            SavedModel::Classifier(classifier) => {
                let names = classifier.class_names();
                if classifier.normalisation().is_some() {
                    predict_folder(classifier, input, device)
                } else if input.is_dir() || is_png(input) || has_extension(input, "png") {
                    predict_pictures(classifier, input, names, device)
                } else if is_idx(input) {
                    predict_idx(classifier, input, names, device)
                } else {
                    predict_classes(classifier, input, device)
                }
            }
        }
    }
}

/// The linear model's predictions as CSV text (`x,prediction`, or the features and the
/// prediction); with the target column, its error.
fn predict_linear(
    model: &LinearModel,
    config: &RunConfig,
    input: &Path,
    device: &Device,
) -> Result<Predictions, PredictError> {
    let (names, x, features, target) = match &config.data {
        DataConfig::Csv(CsvSource { features: Some(names), target, delimiter, .. }) => {
            let columns = Columns { features: Some(names.clone()), target: Target::Optional(target.clone()) };
            let delimiter = parse_delimiter(delimiter).map_err(|e| PredictError::Delimiter(e.to_string()))?;
            let options = CsvOptions { delimiter, skip_bad_rows: false };
            let table = read_csv(input, &columns, &options)?;
            let target = table.y.map(|y| (target.clone(), y));
            (names.clone(), table.x, names.len(), target)
        }
        _ => (vec!["x".to_string()], read_x(input)?, 1, None),
    };
    let n = x.len() / features;
    let rows: Vec<f32> = x.chunks(features).flat_map(|row| row.iter().copied().chain([1.0])).collect();
    let inputs = Tensor::from_data(TensorData::new(rows, [n, features + 1]), device);
    let y =
        model.forward(inputs).into_data().try_into_vec::<f32>().map_err(|e| ReadBackError::from_debug(&e))?;
    let mut csv = String::new();
    let _ = writeln!(csv, "{},prediction", names.join(","));
    for (row, y) in x.chunks(features).zip(&y) {
        for value in row {
            let _ = write!(csv, "{value},");
        }
        let _ = writeln!(csv, "{y}");
    }
    let score = target.map(|(name, truth)| {
        let table = crate::data::Table::new(y.clone(), truth, 1);
        let metrics = crate::regression::Metrics::of(&table, &[1.0]);
        format!(
            "on the {n} rows with `{name}`: mse {:.6}, rmse {:.6}, r2 {:.6}",
            metrics.mse, metrics.rmse, metrics.r2
        )
    });
    Ok(Predictions { csv, score })
}

/// Whether `path`'s name ends in `.EXTENSION`, in any case.
fn has_extension(path: &Path, extension: &str) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case(extension))
}

/// Whether `path` is an IDX images file: its magic number, or a gzipped file named so.
fn is_idx(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let mut magic = [0u8; 4];
    let plain =
        std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
            && magic == [0, 0, 8, 3];
    plain || (name.ends_with(".gz") && name.contains("idx3"))
}

/// The classes of PNG pictures (a file, or a folder of them): `file,predicted,name,confidence`.
fn predict_pictures(
    classifier: &SavedClassifier,
    input: &Path,
    names: &[String],
    device: &Device,
) -> Result<Predictions, PredictError> {
    let side = classifier.side();
    let files = png_files(input)?;
    let mut pixels = Vec::with_capacity(files.len() * side * side);
    for file in &files {
        pixels.extend(read_png(file)?.to_input(side));
    }
    let set = ImageSet::new(pixels, vec![0; files.len()], side);
    let indices: Vec<usize> = (0..set.len()).collect();
    let evaluation = classifier.evaluate(&set, &indices, device)?;
    let mut csv = String::from("file,predicted,name,confidence\n");
    for (p, file) in evaluation.predictions.iter().zip(&files) {
        let name = &names[usize::from(p.predicted)];
        let _ = writeln!(
            csv,
            "{},{},{},{}",
            csv_field(&escaped_path(file)),
            p.predicted,
            csv_field(name),
            p.confidence
        );
    }
    Ok(Predictions { csv, score: None })
}

/// The classes of an IDX file's images: `row,predicted,name,confidence` (and `label` with the
/// labels file beside it, and the accuracy).
fn predict_idx(
    classifier: &SavedClassifier,
    input: &Path,
    names: &[String],
    device: &Device,
) -> Result<Predictions, PredictError> {
    let (kind, side) = (classifier.kind(), classifier.side());
    let (set, labeled) = read_idx_images(input)?;
    if set.side() != side {
        return Err(PredictError::IdxSide { path: input.into(), found: set.side(), kind, side });
    }
    let indices: Vec<usize> = (0..set.len()).collect();
    let evaluation = classifier.evaluate(&set, &indices, device)?;
    Ok(class_rows(&evaluation, labeled, Some(names)))
}

/// A file's path as text that maps back to it: UTF-8 as it is, a backslash doubled, and each
/// byte that is not UTF-8 as `\xNN` (so two files whose names differ only there stay apart, as
/// they would not with U+FFFD).
#[cfg(unix)]
fn escaped_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// A file's path as text (elsewhere than Unix, names are Unicode already).
#[cfg(not(unix))]
fn escaped_path(path: &Path) -> String {
    path.display().to_string()
}

/// The score line of labelled images.
fn accuracy_line(images: usize, accuracy: f64, error_rate: f64) -> String {
    format!("accuracy on the {images} labelled rows: {accuracy:.4} (error_rate {error_rate:.4})")
}

/// An image classifier's classes on digit rows as CSV text; with labels, the accuracy.
fn predict_classes(
    classifier: &SavedClassifier,
    input: &Path,
    device: &Device,
) -> Result<Predictions, PredictError> {
    let (kind, side) = (classifier.kind(), classifier.side());
    if side != 8 {
        return Err(PredictError::ImageSide { kind, side });
    }
    let (set, labeled) = read_digit_rows(input)?;
    let indices: Vec<usize> = (0..set.len()).collect();
    let evaluation = classifier.evaluate(&set, &indices, device)?;
    Ok(class_rows(&evaluation, labeled, None))
}

/// Image rows' predictions as CSV: `row,predicted[,name],confidence[,label]`, with the
/// accuracy when the rows carry labels.
fn class_rows(evaluation: &Evaluation, labeled: bool, names: Option<&[String]>) -> Predictions {
    let mut csv = String::from("row,predicted");
    csv.push_str(if names.is_some() { ",name,confidence" } else { ",confidence" });
    csv.push_str(if labeled { ",label\n" } else { "\n" });
    for p in &evaluation.predictions {
        let _ = write!(csv, "{},{}", p.index + 1, p.predicted);
        if let Some(names) = names {
            let _ = write!(csv, ",{}", csv_field(&names[usize::from(p.predicted)]));
        }
        let _ = write!(csv, ",{}", p.confidence);
        let _ = if labeled { writeln!(csv, ",{}", p.label) } else { writeln!(csv) };
    }
    let images = evaluation.predictions.len();
    let score = labeled.then(|| accuracy_line(images, evaluation.accuracy, evaluation.error_rate));
    Predictions { csv, score }
}

/// The pictures a folder-trained model is asked about, with their labels when they are known.
struct Pictures {
    files: Vec<std::path::PathBuf>,
    labels: Option<Vec<u8>>,
}

/// The pictures `input` names for a model of `classes`: one file; a folder laid out as in
/// training (one sub-folder per class, each named as one of the model's classes: the pictures
/// are then labelled); or the pictures of a folder (not its sub-folders).
fn pictures_of(input: &Path, classes: &[String]) -> Result<Pictures, PredictError> {
    let unreadable = |source| PredictError::Input(DataError::Open { path: input.into(), source });
    if !input.is_dir() {
        std::fs::metadata(input).map_err(unreadable)?;
        return Ok(Pictures { files: vec![input.to_path_buf()], labels: None });
    }
    let is_picture = |path: &Path| {
        path.is_file()
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.iter().any(|known| e.eq_ignore_ascii_case(known)))
    };
    let mut entries: Vec<std::path::PathBuf> =
        std::fs::read_dir(input).map_err(unreadable)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    let folders: Vec<&std::path::PathBuf> = entries
        .iter()
        .filter(|p| p.is_dir() && !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
        .collect();
    let labelled = !folders.is_empty()
        && folders.iter().all(|folder| {
            folder.file_name().and_then(|n| n.to_str()).is_some_and(|name| classes.iter().any(|c| c == name))
        });
    if labelled {
        let (mut files, mut labels) = (Vec::new(), Vec::new());
        for folder in folders {
            let name = folder.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let label = classes.iter().position(|c| c == name).unwrap_or(0) as u8;
            let mut inside: Vec<std::path::PathBuf> = std::fs::read_dir(folder)
                .map_err(unreadable)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_picture(p))
                .collect();
            inside.sort();
            labels.extend(std::iter::repeat_n(label, inside.len()));
            files.extend(inside);
        }
        return Ok(Pictures { files, labels: Some(labels) });
    }
    let files: Vec<std::path::PathBuf> = entries.into_iter().filter(|p| is_picture(p)).collect();
    if files.is_empty() {
        return Err(PredictError::Input(DataError::Rows {
            path: input.into(),
            message: format!(
                "the folder holds no pictures (.{}) and no sub-folders named as the model's classes ({})",
                EXTENSIONS.join(", ."),
                classes.join(", ")
            ),
        }));
    }
    Ok(Pictures { files, labels: None })
}

/// A folder-trained model's classes for pictures of any format: `file,predicted,name,confidence`
/// (and `label` for a folder laid out by class, with the accuracy). Pictures that do not decode
/// are skipped and counted; a single file that does not is an error.
fn predict_folder(
    classifier: &SavedClassifier,
    input: &Path,
    device: &Device,
) -> Result<Predictions, PredictError> {
    let shape = classifier.shape();
    let Pictures { files, labels } = pictures_of(input, classifier.class_names())?;
    let (mut values, mut kept, mut kept_labels, mut skipped) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (index, file) in files.iter().enumerate() {
        match decode_file(file, shape.side, classifier.resize()) {
            Ok(picture) => {
                values.extend(classifier.input(&picture));
                kept.push(file.clone());
                kept_labels.push(labels.as_ref().map_or(0, |labels| labels[index]));
            }
            Err(error) if files.len() == 1 => {
                return Err(PredictError::Input(DataError::Rows {
                    path: file.clone(),
                    message: error.to_string(),
                }));
            }
            Err(error) => skipped.push(format!("{}: {error}", file.display())),
        }
    }
    let set = ImageSet::with_shape(values, kept_labels, shape);
    let indices: Vec<usize> = (0..set.len()).collect();
    let evaluation = classifier.evaluate(&set, &indices, device)?;
    let names = classifier.class_names();
    let mut csv = String::from("file,predicted,name,confidence");
    csv.push_str(if labels.is_some() { ",label\n" } else { "\n" });
    for (p, file) in evaluation.predictions.iter().zip(&kept) {
        let _ = write!(
            csv,
            "{},{},{},{}",
            csv_field(&escaped_path(file)),
            p.predicted,
            csv_field(&names[usize::from(p.predicted)]),
            p.confidence
        );
        let _ = if labels.is_some() { writeln!(csv, ",{}", p.label) } else { writeln!(csv) };
    }
    let mut score = labels.is_some().then(|| {
        format!(
            "accuracy on the {} labelled pictures: {:.4} (error_rate {:.4})",
            kept.len(),
            evaluation.accuracy,
            evaluation.error_rate
        )
    });
    if !skipped.is_empty() {
        let line = format!(
            "{} files skipped (not pictures descent can read): {}",
            skipped.len(),
            skipped.join("; ")
        );
        score = Some(match score {
            Some(score) => format!("{score}\n{line}"),
            None => line,
        });
    }
    Ok(Predictions { csv, score })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn paths_that_are_not_utf8_are_escaped_reversibly() {
        let name = |bytes: &[u8]| escaped_path(Path::new(std::ffi::OsStr::from_bytes(bytes)));
        assert_eq!(name(b"dir/cat 1.png"), "dir/cat 1.png");
        assert_eq!(name(b"a\xffb.png"), "a\\xffb.png");
        assert_ne!(name(b"a\xffb.png"), name(b"a\xfeb.png"), "U+FFFD would make these one");
        // A backslash in a name is doubled, so a name holding `\xff` as text stays apart.
        assert_eq!(name(b"a\\xffb.png"), "a\\\\xffb.png");
        assert_eq!(name("é.png".as_bytes()), "é.png");
    }
}
