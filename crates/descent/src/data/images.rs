//! Labelled grayscale images: the UCI digits (8x8, CSV) and MNIST (28x28, IDX files).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::DataError;
use super::random::SeededRng;

/// Number of classes: the digits 0..9.
pub const CLASSES: usize = 10;

/// Square grayscale images with a class label each. Pixels are scaled to [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    pixels: Vec<f32>,
    labels: Vec<u8>,
    side: usize,
}

impl ImageSet {
    /// Images of `side × side` pixels (row-major, one image after another) and their labels.
    ///
    /// # Panics
    /// If the sizes disagree (readers check their input before building a set).
    pub fn new(pixels: Vec<f32>, labels: Vec<u8>, side: usize) -> Self {
        assert_eq!(pixels.len(), labels.len() * side * side, "one side x side image per label");
        Self { pixels, labels, side }
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
        self.side
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let size = self.side * self.side;
        &self.pixels[i * size..(i + 1) * size]
    }

    /// The label of image `i`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// How many images of each class the rows `indices` hold.
    pub fn class_counts(&self, indices: &[usize]) -> [usize; CLASSES] {
        let mut counts = [0; CLASSES];
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
    digits_from(text.as_bytes(), path)
}

/// Read digit rows for prediction: 64 pixel columns (0..16), with or without the `label`
/// column. Returns the images, and whether they carry labels (without, every label is 0).
pub fn read_digit_rows(path: &Path) -> Result<(ImageSet, bool), DataError> {
    let file = File::open(path).map_err(|source| DataError::Open { path: path.into(), source })?;
    digit_rows(BufReader::new(file), path, false)
}

fn digits_from(input: impl Read, path: &Path) -> Result<ImageSet, DataError> {
    digit_rows(input, path, true).map(|(set, _)| set)
}

fn digit_rows(input: impl Read, path: &Path, label_required: bool) -> Result<(ImageSet, bool), DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        // See csv_table.rs: `\n` ends a record, the trim removes a CRLF's `\r`.
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(input);
    let malformed = |line: u64, message: String| DataError::Malformed { path: path.into(), line, message };
    let headers = reader.headers().map_err(|e| malformed(1, e.to_string()))?.clone();
    const PIXELS: usize = 64;
    let labeled = headers.len() == PIXELS + 1;
    if !(labeled || (headers.len() == PIXELS && !label_required)) {
        let expected = if label_required {
            "64 pixel columns and `label`"
        } else {
            "64 pixel columns, and optionally `label`"
        };
        return Err(malformed(1, format!("the header has {} columns; expected {expected}", headers.len())));
    }
    let columns = headers.len();
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => return Err(malformed(error.position().map_or(0, |p| p.line()), error.to_string())),
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
                            &headers[column]
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

/// Read MNIST from `dir`: the four standard files, each plain or gzipped (`NAME` or `NAME.gz`).
/// Nothing is downloaded. Errors name the file and the byte offset.
pub fn read_mnist(dir: &Path) -> Result<Mnist, DataError> {
    let train = read_idx_pair(dir, MNIST_FILES[0], MNIST_FILES[1])?;
    let test = read_idx_pair(dir, MNIST_FILES[2], MNIST_FILES[3])?;
    Ok(Mnist { train, test })
}

fn read_idx_pair(dir: &Path, images_name: &str, labels_name: &str) -> Result<ImageSet, DataError> {
    let (images_path, images) = read_maybe_gzipped(dir, images_name)?;
    let (labels_path, labels) = read_maybe_gzipped(dir, labels_name)?;
    let bad = |path: &PathBuf, offset: usize, message: String| DataError::Binary {
        path: path.clone(),
        offset,
        message,
    };

    let header = |bytes: &[u8], path: &PathBuf, magic: u32, dims: usize| -> Result<Vec<usize>, DataError> {
        if bytes.len() < 4 + 4 * dims {
            return Err(bad(
                path,
                bytes.len(),
                format!("the file ends inside its {}-byte header", 4 + 4 * dims),
            ));
        }
        let found = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if found != magic {
            return Err(bad(path, 0, format!("magic number {found:#010x}, expected {magic:#010x}")));
        }
        Ok((0..dims)
            .map(|d| u32::from_be_bytes(bytes[4 + 4 * d..8 + 4 * d].try_into().expect("4 bytes")) as usize)
            .collect())
    };
    let image_dims = header(&images, &images_path, 0x0000_0803, 3)?;
    let label_dims = header(&labels, &labels_path, 0x0000_0801, 1)?;
    let (count, rows, columns) = (image_dims[0], image_dims[1], image_dims[2]);
    if rows != columns || rows == 0 {
        return Err(bad(&images_path, 8, format!("images are {rows}x{columns}; expected square images")));
    }
    if label_dims[0] != count {
        return Err(bad(
            &labels_path,
            4,
            format!("{} labels for {count} images in {}", label_dims[0], images_path.display()),
        ));
    }
    let image_bytes = count * rows * columns;
    if images.len() < 16 + image_bytes {
        return Err(bad(
            &images_path,
            images.len(),
            format!("truncated: {count} images need {} bytes", 16 + image_bytes),
        ));
    }
    if labels.len() < 8 + count {
        return Err(bad(
            &labels_path,
            labels.len(),
            format!("truncated: {count} labels need {} bytes", 8 + count),
        ));
    }
    let label_bytes = &labels[8..8 + count];
    if let Some(position) = label_bytes.iter().position(|&l| usize::from(l) >= CLASSES) {
        return Err(bad(
            &labels_path,
            8 + position,
            format!("label {} is not a digit 0..9", label_bytes[position]),
        ));
    }
    let pixels = images[16..16 + image_bytes].iter().map(|&p| f32::from(p) / 255.0).collect();
    Ok(ImageSet::new(pixels, label_bytes.to_vec(), rows))
}

/// The bytes of `dir/name`, or of `dir/name.gz` decompressed.
fn read_maybe_gzipped(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>), DataError> {
    let plain = dir.join(name);
    let gzipped = dir.join(format!("{name}.gz"));
    let open =
        |path: &PathBuf| File::open(path).map_err(|source| DataError::Open { path: path.clone(), source });
    let mut bytes = Vec::new();
    if plain.exists() {
        open(&plain)?
            .read_to_end(&mut bytes)
            .map_err(|source| DataError::Open { path: plain.clone(), source })?;
        Ok((plain, bytes))
    } else if gzipped.exists() {
        flate2::read::GzDecoder::new(BufReader::new(open(&gzipped)?)).read_to_end(&mut bytes).map_err(
            |e| DataError::Binary {
                path: gzipped.clone(),
                offset: bytes.len(),
                message: format!("bad gzip data: {e}"),
            },
        )?;
        Ok((gzipped, bytes))
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
