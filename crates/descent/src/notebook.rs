//! What a Jupyter notebook shows under a cell: the lesson's figures as images, for the evcxr
//! kernel (`notebooks/lesson2.ipynb`).
//!
//! evcxr shows a cell's value through its type's `evcxr_display` method, which prints the
//! content between `EVCXR_BEGIN_CONTENT <mime type>` and `EVCXR_END_CONTENT` (base64 for
//! images). [`Picture`] has that method, so a cell ending in `notebook::fit(&x, &y, ...)?` draws
//! the figure under it. The figures are the command line's own (`report::plots`), in memory.
//!
//! ```no_run
//! use burn::prelude::*;
//! use descent::notebook;
//!
//! let device = Device::flex();
//! let x = Tensor::<2>::from_floats([[0.5, 1.0], [-0.5, 1.0]], &device);
//! let y = Tensor::<2>::from_floats([[3.5], [0.5]], &device);
//! let picture = notebook::scatter(&x, &y).unwrap(); // the last expression of a cell: drawn
//! assert_eq!(picture.mime(), "image/png");
//! ```

use burn::prelude::*;

use crate::device::{ReadBackError, read_f32};
use crate::experiment::ImageExperiment;
use crate::metrics::Evaluation;
use crate::report::plots::{self, Format, LineChart, PlotError, Series};
use crate::task::classify;

/// An image a notebook shows: PNG or GIF bytes with their MIME type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    mime: &'static str,
    bytes: Vec<u8>,
}

impl Picture {
    /// A PNG image.
    pub fn png(bytes: Vec<u8>) -> Self {
        Self { mime: "image/png", bytes }
    }

    /// A GIF image (animated or not).
    pub fn gif(bytes: Vec<u8>) -> Self {
        Self { mime: "image/gif", bytes }
    }

    /// The MIME type: `image/png` or `image/gif`.
    pub fn mime(&self) -> &'static str {
        self.mime
    }

    /// The file's bytes (write them to a `.png` or `.gif` file to keep the figure).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// What evcxr reads from a cell's output to show the picture: the bytes in base64 between
    /// its markers.
    pub fn evcxr_content(&self) -> String {
        format!("EVCXR_BEGIN_CONTENT {}\n{}\nEVCXR_END_CONTENT", self.mime, base64(&self.bytes))
    }

    /// Show the picture under the cell (evcxr calls this on a cell's value).
    pub fn evcxr_display(&self) {
        println!("{}", self.evcxr_content());
    }
}

/// Why a figure could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NotebookError {
    /// A tensor could not be read back from its device.
    #[error(transparent)]
    Device(#[from] ReadBackError),
    /// The figure could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// The tensors do not have the shapes the lesson's do, or an evaluation is not of the
    /// experiment's validation set.
    #[error("{0}")]
    Shape(String),
}

/// The points `(x[:,0], y)` of the lesson's data: `x` `[n, 2]` (the feature, then ones), `y`
/// `[n, 1]`, read back to the host.
pub fn points(x: &Tensor<2>, y: &Tensor<2>) -> Result<Vec<(f64, f64)>, NotebookError> {
    let [rows, columns] = x.dims();
    if columns == 0 || y.dims() != [rows, 1] {
        return Err(NotebookError::Shape(format!(
            "expected x [n, 2] and y [n, 1], got x {:?} and y {:?}",
            x.dims(),
            y.dims()
        )));
    }
    let (x, y) = (read_f32(x.clone())?, read_f32(y.clone())?);
    Ok(x.chunks(columns).zip(y).map(|(row, y)| (f64::from(row[0]), f64::from(y))).collect())
}

/// The parameters `a` (`[2, 1]` or `[2]`: slope, intercept), read back to the host.
pub fn parameters<const D: usize>(a: &Tensor<D>) -> Result<[f64; 2], NotebookError> {
    let values = read_f32(a.clone())?;
    match values[..] {
        [slope, intercept] => Ok([f64::from(slope), f64::from(intercept)]),
        _ => Err(NotebookError::Shape(format!("expected two parameters, got {}", values.len()))),
    }
}

/// `plt.scatter(x[:,0], y)`: the data.
pub fn scatter(x: &Tensor<2>, y: &Tensor<2>) -> Result<Picture, NotebookError> {
    let points = points(x, y)?;
    Ok(Picture::png(plots::lines_plot(&points, (None, None), "The data: y = 3x + 2 + noise", Format::Png)?))
}

/// The data and the line of the guess `a`.
pub fn guess(x: &Tensor<2>, y: &Tensor<2>, a: &Tensor<2>) -> Result<Picture, NotebookError> {
    let (points, a) = (points(x, y)?, parameters(a)?);
    Ok(Picture::png(plots::lines_plot(&points, (Some(a), None), "The data and the guess", Format::Png)?))
}

/// The data, the guess and the fitted line: `descent lesson2`'s `fit.png`.
pub fn fit(
    x: &Tensor<2>,
    y: &Tensor<2>,
    guess: [f64; 2],
    fitted: &Tensor<2>,
) -> Result<Picture, NotebookError> {
    let (points, fitted) = (points(x, y)?, parameters(fitted)?);
    Ok(Picture::png(plots::fit_plot(&points, guess, fitted, Format::Png)?))
}

/// The loss at each step, `(step, loss)`, on a log scale.
pub fn loss_curve(losses: &[(usize, f64)]) -> Result<Picture, NotebookError> {
    let chart = LineChart {
        title: "Training loss".into(),
        x_label: "step".into(),
        y_label: "mse (log scale)".into(),
        series: vec![Series {
            name: "loss".into(),
            points: losses.iter().map(|&(s, l)| (s as f64, l)).collect(),
        }],
        log_x: false,
        log_y: true,
        marker: None,
    };
    Ok(Picture::png(plots::line_chart(&chart, Format::Png)?))
}

/// The notebook's animation: the data in orange and, frame by frame, the line after each step
/// with its loss (`frames`: the parameters after each step and that step's loss), 20 ms a frame.
pub fn animation(x: &Tensor<2>, y: &Tensor<2>, frames: &[([f64; 2], f64)]) -> Result<Picture, NotebookError> {
    let points = points(x, y)?;
    Ok(Picture::gif(plots::animation(&points, frames, 20)?))
}

/// The confusion matrix of an image classifier's validation (fastai's
/// `interp.plot_confusion_matrix()`): `evaluation` is what training or
/// [`Classifier::evaluate`](crate::metrics::Classifier) gave on `experiment`'s validation set.
/// The run's `confusion.png`.
pub fn confusion(experiment: &ImageExperiment, evaluation: &Evaluation) -> Result<Picture, NotebookError> {
    check_evaluation(experiment, evaluation)?;
    Ok(Picture::png(classify::confusion_picture(experiment, evaluation, Format::Png)?))
}

/// The `count` validation images with the largest losses, worst first, each titled prediction /
/// actual / loss / probability (fastai's `interp.plot_top_losses(count)`). The run's
/// `top_losses.png` shows nine.
pub fn top_losses(
    experiment: &ImageExperiment,
    evaluation: &Evaluation,
    count: usize,
) -> Result<Picture, NotebookError> {
    check_evaluation(experiment, evaluation)?;
    Ok(Picture::png(classify::top_losses_picture(experiment, evaluation, count, Format::Png)?))
}

/// Image `index` of `set` as a PNG picture, each pixel drawn as a `scale` × `scale` square: to
/// show inline (a 28×28 image is small on a screen), or at scale 1 to write as a file that
/// `descent predict` and [`crate::inference::SavedModel::predict`] read back as the same image
/// (grey sets: light ink on dark, as the sets are drawn; colour pictures: their channels, which
/// must be in [0, 1]).
pub fn image(set: &crate::data::ImageSet, index: usize, scale: usize) -> Result<Picture, NotebookError> {
    if index >= set.len() || scale == 0 {
        return Err(NotebookError::Shape(format!(
            "image {index} at scale {scale}: the set has {} images, and the scale is at least 1",
            set.len()
        )));
    }
    let (side, channels, values) = (set.side(), set.channels(), set.image(index));
    let wide = side * scale;
    let byte = |value: f32| (value.clamp(0.0, 1.0) * 255.0).round() as u8;
    let mut rgb = Vec::with_capacity(wide * wide * 3);
    for row in 0..wide {
        for column in 0..wide {
            let pixel = (row / scale) * side + column / scale;
            let channel = |c: usize| byte(values[c.min(channels - 1) * side * side + pixel]);
            rgb.extend([channel(0), channel(1), channel(2)]);
        }
    }
    let bytes = plots::encode_png(&rgb, wide as u32, wide as u32)
        .map_err(|error| NotebookError::Shape(format!("cannot encode image {index}: {error}")))?;
    Ok(Picture::png(bytes))
}

/// An evaluation of another set (or another experiment) would caption the wrong pictures.
fn check_evaluation(experiment: &ImageExperiment, evaluation: &Evaluation) -> Result<(), NotebookError> {
    let (images, classes) = (experiment.valid.len(), experiment.class_names().len());
    if evaluation.predictions.len() != images {
        return Err(NotebookError::Shape(format!(
            "the evaluation holds {} predictions; the experiment validates on {images} images",
            evaluation.predictions.len()
        )));
    }
    let set = experiment.valid_set.len();
    if let Some(p) = evaluation
        .predictions
        .iter()
        .find(|p| p.index >= set || usize::from(p.label.max(p.predicted)) >= classes)
    {
        return Err(NotebookError::Shape(format!(
            "a prediction names image {} of class {} (predicted {}); the validation set has {set} images of {classes} classes",
            p.index, p.label, p.predicted
        )));
    }
    if evaluation.confusion.len() != classes {
        return Err(NotebookError::Shape(format!(
            "the evaluation counts {} classes; the experiment has {classes}",
            evaluation.confusion.len()
        )));
    }
    Ok(())
}

/// Standard base64 (RFC 4648, with padding).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_rfc_4648() {
        // The test vectors of RFC 4648, section 10.
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn a_picture_shows_as_evcxr_content() {
        let picture = Picture::png(b"foo".to_vec());
        assert_eq!(picture.evcxr_content(), "EVCXR_BEGIN_CONTENT image/png\nZm9v\nEVCXR_END_CONTENT");
    }

    #[cfg(feature = "flex")]
    #[test]
    fn a_classifiers_figures_are_images_of_its_validation() {
        use crate::config::RunConfig;
        use crate::model::CnnConfig;

        let config = RunConfig { device: "flex".into(), ..RunConfig::cnn() };
        let experiment = ImageExperiment::prepare(config).unwrap();
        let shape = experiment.valid_set.shape();
        let network = CnnConfig::default().init(&shape, &experiment.device.device);
        let evaluation = crate::metrics::evaluate(
            &network,
            &experiment.valid_set,
            &experiment.valid,
            &experiment.device.device,
        )
        .unwrap();
        let decoded = |picture: Picture| {
            assert_eq!(picture.mime(), "image/png");
            image::load_from_memory(picture.bytes()).unwrap()
        };
        let matrix = decoded(confusion(&experiment, &evaluation).unwrap());
        assert!(matrix.width() >= 400 && matrix.height() >= 400, "{}x{}", matrix.width(), matrix.height());
        // The grid keeps its size; four pictures draw more than one does.
        let four = decoded(top_losses(&experiment, &evaluation, 4).unwrap()).to_rgb8();
        let one = decoded(top_losses(&experiment, &evaluation, 1).unwrap()).to_rgb8();
        let drawn = |grid: &image::RgbImage| grid.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(drawn(&four) > drawn(&one), "{} vs {}", drawn(&four), drawn(&one));

        // An evaluation of something else is refused, not drawn with the wrong captions.
        let mut short = evaluation.clone();
        short.predictions.pop();
        assert!(matches!(confusion(&experiment, &short), Err(NotebookError::Shape(_))));
        let mut foreign = evaluation.clone();
        foreign.predictions[0].index = experiment.valid_set.len();
        assert!(matches!(top_losses(&experiment, &foreign, 4), Err(NotebookError::Shape(_))));
    }

    #[cfg(feature = "flex")]
    #[test]
    fn the_lessons_figures_are_images() {
        let device = Device::flex();
        let x = Tensor::<2>::from_floats([[-0.5, 1.0], [0.0, 1.0], [0.5, 1.0]], &device);
        let y = Tensor::<2>::from_floats([[0.4], [2.1], [3.6]], &device);
        let a = Tensor::<2>::from_floats([[-1.0], [1.0]], &device);
        for picture in
            [scatter(&x, &y).unwrap(), guess(&x, &y, &a).unwrap(), fit(&x, &y, [-1.0, 1.0], &a).unwrap()]
        {
            assert_eq!(&picture.bytes()[..8], b"\x89PNG\r\n\x1a\n");
        }
        let gif = animation(&x, &y, &[([-1.0, 1.0], 6.0), ([0.0, 1.5], 2.0)]).unwrap();
        assert_eq!((gif.mime(), &gif.bytes()[..6]), ("image/gif", &b"GIF89a"[..]));
        assert!(loss_curve(&[(0, 6.4), (1, 5.3)]).is_ok());
        assert!(matches!(points(&a, &y), Err(NotebookError::Shape(_))));
    }
}
