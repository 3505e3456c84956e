//! Labelled images: the UCI digits (8x8, CSV), MNIST (28x28, IDX files), and the shape every
//! image set has (side, channels, classes), whatever it was read from (see also
//! [`super::folder`] for a folder of the user's own pictures).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::DataError;
use super::csv_table::{BoundedRecords, RowBudget, record_too_long, shown};
use super::random::SeededRng;
use crate::limits::{Bytes, MAX_CSV_RECORD_BYTES, check_memory, product};

/// Number of classes of the built-in sets: the digits 0..9, or Fashion-MNIST's ten kinds of
/// clothes. A folder of pictures has as many classes as it has sub-folders ([`ImageShape`]).
pub const CLASSES: usize = 10;

/// The most classes a set may have: labels are held in a byte.
pub const MAX_CLASSES: usize = 256;

/// What a model needs to know about its images: their side in pixels, their channels (1 for
/// grey, 3 for RGB) and how many classes they fall into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ImageShape {
    /// Width and height in pixels.
    pub side: usize,
    /// Colour channels: 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Number of classes.
    pub classes: usize,
}

impl ImageShape {
    /// Grey images of `side` pixels in the built-in sets' ten classes.
    pub fn grey(side: usize) -> Self {
        Self { side, channels: 1, classes: CLASSES }
    }

    /// Values per image: `channels × side × side`.
    pub fn values(&self) -> usize {
        self.channels * self.side * self.side
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let colour =
            if self.channels == 1 { "grey".to_string() } else { format!("{}-channel", self.channels) };
        write!(f, "{0}x{0} {colour} images in {1} classes", self.side, self.classes)
    }
}

/// The digits' class names.
pub const DIGIT_CLASS_NAMES: [&str; CLASSES] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Fashion-MNIST's class names, in label order (Zalando's README).
pub const FASHION_CLASS_NAMES: [&str; CLASSES] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Square images with a class label each: grey pixels scaled to [0, 1] for the built-in sets,
/// or a folder's pictures normalised per channel ([`super::folder`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    pixels: Vec<f32>,
    labels: Vec<u8>,
    shape: ImageShape,
}

impl ImageSet {
    /// Grey images of `side × side` pixels (row-major, one image after another) in the built-in
    /// sets' ten classes, and their labels.
    ///
    /// # Panics
    /// If the sizes disagree (readers check their input before building a set).
    pub fn new(pixels: Vec<f32>, labels: Vec<u8>, side: usize) -> Self {
        Self::with_shape(pixels, labels, ImageShape::grey(side))
    }

    /// Images of `shape` (channel-major within an image: all of the first channel's rows, then
    /// the next channel's) and their labels, each less than `shape.classes`.
    ///
    /// # Panics
    /// If the sizes disagree or a label is out of range (readers check their input first).
    pub fn with_shape(pixels: Vec<f32>, labels: Vec<u8>, shape: ImageShape) -> Self {
        assert_eq!(pixels.len(), labels.len() * shape.values(), "one image of the shape per label");
        assert!(labels.iter().all(|&l| usize::from(l) < shape.classes), "labels are classes");
        Self { pixels, labels, shape }
    }

    /// The images' side, channels and classes.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// Colour channels per image.
    pub fn channels(&self) -> usize {
        self.shape.channels
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.shape.classes
    }

    /// Every image's values, one image after another.
    pub fn pixels(&self) -> &[f32] {
        &self.pixels
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Width and height in pixels.
    pub fn side(&self) -> usize {
        self.shape.side
    }

    /// The values of image `i`: `channels × side × side`, channel-major.
    pub fn image(&self, i: usize) -> &[f32] {
        let size = self.shape.values();
        &self.pixels[i * size..(i + 1) * size]
    }

    /// The label of image `i`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// How many images of each class the rows `indices` hold.
    pub fn class_counts(&self, indices: &[usize]) -> Vec<usize> {
        let mut counts = vec![0; self.shape.classes];
        for &i in indices {
            counts[usize::from(self.labels[i])] += 1;
        }
        counts
    }
}

/// A train/validation split: disjoint lists of image indices covering every image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Indices of the training images.
    pub train: Vec<usize>,
    /// Indices of the validation images.
    pub valid: Vec<usize>,
}

/// Split `n` images at random, `valid_fraction` of them (rounded down) for validation, as
/// fastai's `RandomSplitter(valid_pct=0.2, seed=42)` does; the permutation comes from `seed`.
pub fn split(n: usize, valid_fraction: f64, seed: u64) -> Split {
    let order = SeededRng::new(seed).permutation(n);
    let cut = ((n as f64) * valid_fraction.clamp(0.0, 1.0)) as usize;
    Split { valid: order[..cut].to_vec(), train: order[cut..].to_vec() }
}

/// Read the UCI digits CSV: a header, then 64 pixel values (integers 0..16) and a label (0..9)
/// per row. Errors name the file, the line and the column.
pub fn read_digits(path: &Path) -> Result<ImageSet, DataError> {
    let file = File::open(path).map_err(|source| DataError::Open { path: path.into(), source })?;
    digits_from(BufReader::new(file), path)
}

/// Parse digits CSV text (the shipped copy compiled into the binary); errors name `path`.
pub fn parse_digits(text: &str, path: &Path) -> Result<ImageSet, DataError> {
    digit_rows(text.as_bytes(), path, true, Some(text.len() as u64)).map(|(set, _)| set)
}

/// Read digit rows for prediction: 64 pixel columns (0..16), with or without the `label`
/// column. Returns the images, and whether they carry labels (without, every label is 0).
pub fn read_digit_rows(path: &Path) -> Result<(ImageSet, bool), DataError> {
    let file = File::open(path).map_err(|source| DataError::Open { path: path.into(), source })?;
    digit_rows(BufReader::new(file), path, false, None)
}

fn digits_from(input: impl Read, path: &Path) -> Result<ImageSet, DataError> {
    digit_rows(input, path, true, None).map(|(set, _)| set)
}

/// Pixel columns of a digits CSV.
const PIXELS: usize = 64;

/// Whether a digits header of `columns` columns has the label column (an error when it has
/// neither 64 nor 65 columns, or lacks a required label).
fn digit_header(columns: usize, label_required: bool) -> Result<bool, String> {
    let labeled = columns == PIXELS + 1;
    if labeled || (columns == PIXELS && !label_required) {
        return Ok(labeled);
    }
    let expected = if label_required {
        "64 pixel columns and `label`"
    } else {
        "64 pixel columns, and optionally `label`"
    };
    Err(format!("the header has {columns} columns; expected {expected}"))
}

/// Digit rows from `input` (`bytes` long, when known), named `path` in messages.
fn digit_rows(
    input: impl Read,
    path: &Path,
    label_required: bool,
    bytes: Option<u64>,
) -> Result<(ImageSet, bool), DataError> {
    let input = BoundedRecords::new(input, b',', MAX_CSV_RECORD_BYTES);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        // See csv_table.rs: `\n` ends a record, the trim removes a CRLF's `\r`.
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(input);
    let malformed = |line: u64, message: String| DataError::Malformed { path: path.into(), line, message };
    let csv_error = |error: csv::Error| {
        let line = error.position().map_or(1, |p| p.line());
        if !matches!(error.kind(), csv::ErrorKind::Io(_)) {
            return malformed(line, error.to_string());
        }
        match error.into_kind() {
            csv::ErrorKind::Io(source) => record_too_long(source, path),
            other => malformed(line, format!("{other:?}")),
        }
    };
    let headers = reader.headers().map_err(csv_error)?.clone();
    let labeled = digit_header(headers.len(), label_required).map_err(|message| malformed(1, message))?;
    let columns = headers.len();
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    let mut budget = RowBudget::new(path, bytes)?;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => budget.add_row(PIXELS + 1)?,
            Err(error) => return Err(csv_error(error)),
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record[0].is_empty() {
            continue;
        }
        if record.len() != columns {
            return Err(malformed(line, format!("found {} fields, the header has {columns}", record.len())));
        }
        for (column, text) in record.iter().take(64).enumerate() {
            match text.parse::<u8>() {
                Ok(value) if value <= 16 => pixels.push(f32::from(value) / 16.0),
                _ => {
                    return Err(malformed(
                        line,
                        format!(
                            "column {} (`{}`): `{text}` is not a pixel value (an integer 0..16)",
                            column + 1,
                            shown(&headers[column])
                        ),
                    ));
                }
            }
        }
        match record.get(PIXELS).map(str::parse::<u8>) {
            None => labels.push(0),
            Some(Ok(label)) if usize::from(label) < CLASSES => labels.push(label),
            Some(_) => {
                return Err(malformed(
                    line,
                    format!("column 65 (`label`): `{}` is not a digit 0..9", &record[64]),
                ));
            }
        }
    }
    if labels.is_empty() {
        return Err(DataError::Empty { path: path.into(), what: "a header but no rows".into() });
    }
    Ok((ImageSet::new(pixels, labels, 8), labeled))
}

/// The four standard MNIST file names: training images and labels, test images and labels.
pub const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// MNIST read from a folder: the training set and the test set.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// The 60,000 training images (or however many the files hold).
    pub train: ImageSet,
    /// The 10,000 test images.
    pub test: ImageSet,
}

/// Whether `dir` holds the four MNIST-format files, plain or gzipped.
pub fn mnist_files_present(dir: &Path) -> bool {
    MNIST_FILES.iter().all(|name| dir.join(name).is_file() || dir.join(format!("{name}.gz")).is_file())
}

/// The four files [`read_mnist`] reads from `dir`: each standard name, or the name with `.gz`
/// when only that exists.
pub fn mnist_paths(dir: &Path) -> Vec<PathBuf> {
    MNIST_FILES
        .iter()
        .map(|name| {
            let plain = dir.join(name);
            if plain.exists() { plain } else { dir.join(format!("{name}.gz")) }
        })
        .collect()
}

/// Read MNIST from `dir`: the four standard files, each plain or gzipped (`NAME` or `NAME.gz`).
/// Nothing is downloaded. Errors name the file and the byte offset. The headers are checked
/// before the pixels are read: a header whose sizes overflow, or ask for more memory than the
/// process may allocate, is refused at once, whatever the file's (decompressed) size.
pub fn read_mnist(dir: &Path) -> Result<Mnist, DataError> {
    let train = read_idx_files(dir, MNIST_FILES[0], MNIST_FILES[1])?;
    let test = read_idx_files(dir, MNIST_FILES[2], MNIST_FILES[3])?;
    if test.set.side() != train.set.side() {
        let side = train.set.side();
        return Err(DataError::Binary {
            path: test.images_path,
            offset: 8,
            message: format!(
                "the test images are {0}x{0}, the training images in {1} are {side}x{side}: both sets must have one size",
                test.set.side(),
                train.images_path.display()
            ),
        });
    }
    Ok(Mnist { train: train.set, test: test.set })
}

/// An image set read from a pair of IDX files, and the images file it came from.
struct IdxSet {
    set: ImageSet,
    images_path: PathBuf,
}

fn read_idx_files(dir: &Path, images_name: &str, labels_name: &str) -> Result<IdxSet, DataError> {
    let (images_path, images) = open_maybe_gzipped(dir, images_name)?;
    let (labels_path, labels) = open_maybe_gzipped(dir, labels_name)?;
    let set = parse_idx(images, &images_path, labels, &labels_path)?;
    Ok(IdxSet { set, images_path })
}

/// The IDX magic numbers: unsigned bytes, three dimensions (images) or one (labels).
const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Read labelled images from an IDX images stream (`[count, rows, columns]` unsigned bytes) and
/// an IDX labels stream (`[count]` digits 0..9); errors name `images_path` or `labels_path` and
/// the byte offset. The sizes in the headers are multiplied with checked arithmetic and checked
/// against the memory the process may allocate before any pixel is read, so a small file whose
/// header claims billions of images costs nothing.
pub fn parse_idx(
    mut images: impl Read,
    images_path: &Path,
    mut labels: impl Read,
    labels_path: &Path,
) -> Result<ImageSet, DataError> {
    let header = images_header(&mut images, images_path)?;
    labels_header(&mut labels, labels_path, header.count, images_path)?;
    let pixels = images_body(&mut images, images_path, &header)?;
    let labels = labels_body(&mut labels, labels_path, header.count)?;
    Ok(ImageSet::new(pixels, labels, header.side))
}

/// Read the images of an IDX file for prediction (`NAME` or `NAME.gz`), with their labels when
/// the matching labels file lies beside it (`...-images-idx3-ubyte` and `...-labels-idx1-ubyte`,
/// as MNIST names them); without it, every label is 0. Returns the images and whether they
/// carry labels.
pub fn read_idx_images(path: &Path) -> Result<(ImageSet, bool), DataError> {
    let open = |path: &Path| -> Result<Box<dyn Read>, DataError> {
        let file =
            BufReader::new(File::open(path).map_err(|source| DataError::Open { path: path.into(), source })?);
        let gzipped = path.extension().is_some_and(|extension| extension == "gz");
        Ok(if gzipped {
            Box::new(GzipErrors(flate2::read::MultiGzDecoder::new(file)))
        } else {
            Box::new(file)
        })
    };
    let mut images = open(path)?;
    let header = images_header(&mut images, path)?;
    let labels_path = path
        .file_name()
        .and_then(|name| name.to_str())
        .filter(|name| name.contains("images-idx3"))
        .map(|name| path.with_file_name(name.replace("images-idx3", "labels-idx1")))
        .filter(|labels| labels.is_file());
    let labels = match &labels_path {
        Some(labels_path) => {
            let mut labels = open(labels_path)?;
            labels_header(&mut labels, labels_path, header.count, path)?;
            Some((labels, labels_path))
        }
        None => None,
    };
    let pixels = images_body(&mut images, path, &header)?;
    let (labels, labeled) = match labels {
        Some((mut labels, labels_path)) => (labels_body(&mut labels, labels_path, header.count)?, true),
        None => (vec![0; usize::try_from(header.count).unwrap_or(0)], false),
    };
    Ok((ImageSet::new(pixels, labels, header.side), labeled))
}

/// An IDX images file's header, checked: how many images, of which side.
struct ImagesHeader {
    count: u64,
    rows: u64,
    side: usize,
}

fn bad(path: &Path, offset: u64, message: String) -> DataError {
    DataError::Binary { path: path.into(), offset: usize::try_from(offset).unwrap_or(usize::MAX), message }
}

/// Read and check an images header: square images, at least one, and a size that fits in the
/// memory the process may allocate (checked before any pixel is read).
fn images_header(images: &mut impl Read, path: &Path) -> Result<ImagesHeader, DataError> {
    let dims = read_header(images, path, IMAGES_MAGIC, 3)?;
    let (count, rows, columns) = (dims[0], dims[1], dims[2]);
    if rows != columns || rows == 0 {
        return Err(bad(path, 8, format!("images are {rows}x{columns}; expected square images")));
    }
    if count == 0 {
        return Err(bad(path, 4, "the header says 0 images: the file holds no images".into()));
    }
    // Each pixel is held as a byte while reading and as an f32 after: 5 bytes.
    let pixel_count = product(&[count, rows, columns]);
    check_memory(pixel_count.and_then(|pixels| pixels.checked_mul(5))).map_err(|message| {
        bad(path, 4, format!("the header claims {count} images of {rows}x{columns} pixels, which {message}"))
    })?;
    let side = usize::try_from(rows).expect("checked against memory");
    Ok(ImagesHeader { count, rows, side })
}

/// Read and check a labels header: as many labels as `count` images in `images_path`.
fn labels_header(
    labels: &mut impl Read,
    path: &Path,
    count: u64,
    images_path: &Path,
) -> Result<(), DataError> {
    let dims = read_header(labels, path, LABELS_MAGIC, 1)?;
    if dims[0] != count {
        return Err(bad(
            path,
            4,
            format!("{} labels for {count} images in {}", dims[0], images_path.display()),
        ));
    }
    Ok(())
}

/// The pixels after a checked header, scaled to [0, 1].
fn images_body(images: &mut impl Read, path: &Path, header: &ImagesHeader) -> Result<Vec<f32>, DataError> {
    let ImagesHeader { count, rows, .. } = *header;
    let pixel_count = count * rows * rows; // checked in `images_header`
    let pixels =
        read_body(images, path, 16, pixel_count, || format!("{count} images of {rows}x{rows} pixels"))?;
    Ok(pixels.iter().map(|&p| f32::from(p) / 255.0).collect())
}

/// The labels after a checked header: each a class 0..9.
fn labels_body(labels: &mut impl Read, path: &Path, count: u64) -> Result<Vec<u8>, DataError> {
    let bytes = read_body(labels, path, 8, count, || format!("{count} labels"))?;
    if let Some(position) = bytes.iter().position(|&l| usize::from(l) >= CLASSES) {
        return Err(bad(path, 8 + position as u64, format!("label {} is not a digit 0..9", bytes[position])));
    }
    Ok(bytes)
}

/// Read an IDX header: the magic number, then `dims` big-endian sizes.
fn read_header(input: &mut impl Read, path: &Path, magic: u32, dims: usize) -> Result<Vec<u64>, DataError> {
    let length = 4 + 4 * dims;
    let mut header = vec![0u8; length];
    let read = read_full(input, &mut header).map_err(|error| DataError::Binary {
        path: path.into(),
        offset: 0,
        message: format!("cannot read it: {error}"),
    })?;
    if read < length {
        return Err(DataError::Binary {
            path: path.into(),
            offset: read,
            message: format!("the file ends inside its {length}-byte header"),
        });
    }
    let found = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if found != magic {
        return Err(DataError::Binary {
            path: path.into(),
            offset: 0,
            message: format!("magic number {found:#010x}, expected {magic:#010x}"),
        });
    }
    Ok((0..dims)
        .map(|d| u64::from(u32::from_be_bytes(header[4 + 4 * d..8 + 4 * d].try_into().expect("4 bytes"))))
        .collect())
}

/// Read exactly `length` bytes after a header of `offset` bytes; a file that ends sooner is
/// "truncated", naming how far it got. The buffer grows with what is read, never to the claimed
/// length up front.
fn read_body(
    input: &mut impl Read,
    path: &Path,
    offset: u64,
    length: u64,
    what: impl Fn() -> String,
) -> Result<Vec<u8>, DataError> {
    let mut bytes = Vec::new();
    input.take(length).read_to_end(&mut bytes).map_err(|error| DataError::Binary {
        path: path.into(),
        offset: usize::try_from(offset + bytes.len() as u64).unwrap_or(usize::MAX),
        message: format!("cannot read it: {error}"),
    })?;
    if (bytes.len() as u64) < length {
        let end = offset + bytes.len() as u64;
        return Err(DataError::Binary {
            path: path.into(),
            offset: usize::try_from(end).unwrap_or(usize::MAX),
            message: format!(
                "truncated: {} need {} bytes after the header, the file ends {} after it",
                what(),
                length,
                Bytes(bytes.len() as u64)
            ),
        });
    }
    Ok(bytes)
}

/// Fill `buffer` as far as the input goes; the number of bytes read.
fn read_full(input: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// `dir/name`, or else `dir/name.gz` through a decompressor, opened for streaming.
fn open_maybe_gzipped(dir: &Path, name: &str) -> Result<(PathBuf, Box<dyn Read>), DataError> {
    let plain = dir.join(name);
    let gzipped = dir.join(format!("{name}.gz"));
    let open =
        |path: &PathBuf| File::open(path).map_err(|source| DataError::Open { path: path.clone(), source });
    if plain.exists() {
        let file = BufReader::new(open(&plain)?);
        Ok((plain, Box::new(file)))
    } else if gzipped.exists() {
        let file = flate2::read::MultiGzDecoder::new(BufReader::new(open(&gzipped)?));
        Ok((gzipped, Box::new(GzipErrors(file))))
    } else {
        Err(DataError::Open {
            path: plain,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no such file (nor {name}.gz)"),
            ),
        })
    }
}

/// A gzip stream whose errors say they are about the compressed data.
struct GzipErrors<R>(R);

impl<R: Read> Read for GzipErrors<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        self.0
            .read(buffer)
            .map_err(|error| std::io::Error::new(error.kind(), format!("bad gzip data: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_disjoint_and_covers_everything() {
        let split = split(1797, 0.2, 42);
        assert_eq!(split.valid.len(), 359);
        let mut all: Vec<usize> = split.train.iter().chain(&split.valid).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1797).collect::<Vec<_>>());
        assert_ne!(split, super::split(1797, 0.2, 43));
    }
}
