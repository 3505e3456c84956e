//! A folder of the user's own pictures, one sub-folder per class: fastai's
//! `ImageDataLoaders.from_folder`.
//!
//! `DIR/<class>/*.{png,jpg,jpeg,webp,bmp,gif}` (sub-folders of a class folder are searched too),
//! the class names being the sub-folders' names in sorted order. When `DIR/train` exists, its
//! sub-folders are the classes and `DIR/valid` (or `DIR/test`) holds the validation pictures;
//! otherwise a fraction of each class is held out, drawn from the run's seed.
//!
//! Each picture is decoded by the `image` crate (any size and colour type; EXIF orientation
//! applied; transparency composited over white), resized to `side × side` (squashed, with a
//! triangle filter widened when shrinking, as Pillow's `BILINEAR`), and kept as RGB bytes; the
//! set is grey (one channel, Rec. 601 luma) when no picture has colour. Decoding runs on every
//! core, and its result is cached beside the data (or in the user's cache folder when the data
//! folder is read-only), keyed by the files' names, sizes and times and the side, so a second
//! run starts at once. A file that does not decode is skipped and listed, never fatal.

use std::io::{BufRead, Cursor, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use super::DataError;
use super::images::{ImageSet, ImageShape, MAX_CLASSES};
use super::random::SeededRng;
use crate::limits::{Bytes, check_memory, product};

/// The sides a folder's pictures may be resized to, in pixels.
pub const SIDES: std::ops::RangeInclusive<usize> = 8..=512;

/// The file extensions read as pictures (any case).
pub const EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "webp", "bmp", "gif"];

/// The largest width or height a picture may claim; larger ones are refused before they are
/// decoded.
pub const MAX_PICTURE_SIDE: u32 = 16_384;

/// The most bytes one picture may decode to (a 8192 × 8192 RGBA picture in 16 bits).
const MAX_PICTURE_BYTES: u64 = 8192 * 8192 * 8;

/// The version of the cache files' layout: a cache of another version is made again.
const CACHE_VERSION: u32 = 1;
const CACHE_MAGIC: &[u8; 16] = b"descent-pictures";

/// A picture that could not be made into the model's input.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    /// The bytes are not a picture of a format descent reads.
    #[error("not a picture descent can read ({0}); expected PNG, JPEG, WebP, BMP or GIF")]
    NotAPicture(String),
    /// The picture claims dimensions too large to decode.
    #[error("{}", too_large(*width, *height))]
    TooLarge {
        /// The claimed width.
        width: u32,
        /// The claimed height.
        height: u32,
    },
    /// Decoding it would take more memory than the process may still use.
    #[error("decoding its {width}x{height} pixels {message}")]
    BeyondMemory {
        /// The claimed width.
        width: u32,
        /// The claimed height.
        height: u32,
        /// The memory check's sentence.
        message: crate::limits::MemoryError,
    },
    /// The file holds no bytes.
    #[error("the file is empty")]
    Empty,
}

fn too_large(width: u32, height: u32) -> String {
    let limit = format!(
        "at most {MAX_PICTURE_SIDE} pixels on a side and {} decoded are read",
        Bytes(MAX_PICTURE_BYTES)
    );
    if width == 0 || height == 0 {
        format!("the picture claims dimensions too large to decode: {limit}")
    } else {
        format!("the picture claims {width}x{height} pixels: {limit}")
    }
}

/// A picture decoded and resized: `3 × side × side` bytes, channel-major (all of red, then
/// green, then blue; rows top to bottom).
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// The pixels.
    pub rgb: Vec<u8>,
    /// Whether the picture's colour type has colour (a grey picture stored as RGB has).
    pub colour: bool,
    /// The picture's width before resizing (after its EXIF orientation).
    pub width: u32,
    /// Its height before resizing.
    pub height: u32,
}

/// Decode a picture from its bytes, make it square as `resize` says, and resize it to
/// `side × side`.
pub fn decode_bytes(bytes: &[u8], side: usize, resize: Resize) -> Result<Decoded, PictureError> {
    if bytes.is_empty() {
        return Err(PictureError::Empty);
    }
    decode_from(image::ImageReader::new(Cursor::new(bytes)), side, resize)
}

/// Decode the picture in `path`, make it square as `resize` says, and resize it to
/// `side × side`.
pub fn decode_file(path: &Path, side: usize, resize: Resize) -> Result<Decoded, PictureError> {
    let file = std::fs::File::open(path).map_err(|error| PictureError::NotAPicture(error.to_string()))?;
    if file.metadata().is_ok_and(|m| m.len() == 0) {
        return Err(PictureError::Empty);
    }
    decode_from(image::ImageReader::new(std::io::BufReader::new(file)), side, resize)
}

/// How a picture that is not square becomes square before it is resized to the side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resize {
    /// The whole picture, stretched to a square (fastai's `ResizeMethod.Squash`).
    #[default]
    Squash,
    /// The central square, the rest cut away (fastai's `ResizeMethod.Crop` at validation).
    Crop,
}

impl Resize {
    /// Every way, by name.
    pub const NAMES: [&'static str; 2] = ["squash", "crop"];

    /// Its name: `squash` or `crop`.
    pub fn name(self) -> &'static str {
        match self {
            Resize::Squash => "squash",
            Resize::Crop => "crop",
        }
    }

    /// The way called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "squash" => Some(Resize::Squash),
            "crop" => Some(Resize::Crop),
            _ => None,
        }
    }
}

fn decode_from<R: BufRead + Seek>(
    reader: image::ImageReader<R>,
    side: usize,
    resize: Resize,
) -> Result<Decoded, PictureError> {
    use image::ImageDecoder;
    let mut reader =
        reader.with_guessed_format().map_err(|error| PictureError::NotAPicture(error.to_string()))?;
    if reader.format().is_none() {
        return Err(PictureError::NotAPicture("its first bytes are those of no picture format".into()));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_PICTURE_SIDE);
    limits.max_image_height = Some(MAX_PICTURE_SIDE);
    limits.max_alloc = Some(MAX_PICTURE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|error| refusal(error, None))?;
    let (width, height) = decoder.dimensions();
    let claimed = u64::from(width) * u64::from(height) * u64::from(decoder.color_type().bytes_per_pixel());
    if width > MAX_PICTURE_SIDE || height > MAX_PICTURE_SIDE || claimed > MAX_PICTURE_BYTES {
        return Err(PictureError::TooLarge { width, height });
    }
    // Every copy the pipeline makes, before decoding: the decoded frame, its RGB copy over white
    // and the square cut from it (at most as large again).
    let rgb_bytes = u64::from(width) * u64::from(height) * 3;
    crate::limits::check_memory(claimed.checked_add(2 * rgb_bytes))
        .map_err(|message| PictureError::BeyondMemory { width, height, message })?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture =
        image::DynamicImage::from_decoder(decoder).map_err(|error| refusal(error, Some((width, height))))?;
    picture.apply_orientation(orientation);
    let colour = picture.color().has_color();
    let mut rgb = over_white(&picture);
    if resize == Resize::Crop && rgb.width() != rgb.height() {
        let square = rgb.width().min(rgb.height());
        let (x, y) = ((rgb.width() - square) / 2, (rgb.height() - square) / 2);
        rgb = image::imageops::crop_imm(&rgb, x, y, square, square).to_image();
    }
    let resized =
        image::imageops::resize(&rgb, side as u32, side as u32, image::imageops::FilterType::Triangle);
    let plane = side * side;
    let mut planar = vec![0u8; 3 * plane];
    for (index, pixel) in resized.pixels().enumerate() {
        for channel in 0..3 {
            planar[channel * plane + index] = pixel.0[channel];
        }
    }
    Ok(Decoded { rgb: planar, colour, width: picture.width(), height: picture.height() })
}

/// A decoding error as a refusal: the limits' errors say the picture is too large.
fn refusal(error: image::ImageError, size: Option<(u32, u32)>) -> PictureError {
    match (&error, size) {
        (image::ImageError::Limits(_), Some((width, height))) => PictureError::TooLarge { width, height },
        (image::ImageError::Limits(_), None) => PictureError::TooLarge { width: 0, height: 0 },
        _ => PictureError::NotAPicture(error.to_string()),
    }
}

/// The picture in RGB, transparent pixels composited over white.
fn over_white(picture: &image::DynamicImage) -> image::RgbImage {
    if !picture.color().has_alpha() {
        return picture.to_rgb8();
    }
    let rgba = picture.to_rgba8();
    image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let blend = |c: u8| ((u32::from(c) * u32::from(a) + 255 * (255 - u32::from(a)) + 127) / 255) as u8;
        image::Rgb([blend(r), blend(g), blend(b)])
    })
}

/// Grey values from channel-major RGB bytes: Rec. 601 luma, as Pillow's `convert("L")`.
pub fn luma(rgb: &[u8]) -> Vec<u8> {
    let plane = rgb.len() / 3;
    (0..plane)
        .map(|i| {
            let (r, g, b) = (u32::from(rgb[i]), u32::from(rgb[plane + i]), u32::from(rgb[2 * plane + i]));
            ((r * 299 + g * 587 + b * 114 + 500) / 1000) as u8
        })
        .collect()
}

/// The per-channel mean and standard deviation pictures are normalised with: the training
/// pictures' own, recorded with the run so that predictions and exports use them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    /// Mean of each channel, of values in [0, 1].
    pub mean: Vec<f64>,
    /// Standard deviation of each channel (at least 1e-3).
    pub std: Vec<f64>,
}

impl Normalisation {
    /// The model's input from `channels × side × side` bytes: `(byte / 255 - mean) / std`.
    pub fn apply(&self, bytes: &[u8]) -> Vec<f32> {
        let plane = bytes.len() / self.mean.len().max(1);
        bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                let channel = (i / plane.max(1)).min(self.mean.len() - 1);
                ((f64::from(b) / 255.0 - self.mean[channel]) / self.std[channel]) as f32
            })
            .collect()
    }

    /// Values in [0, 1] for showing, from the model's input.
    pub fn undo(&self, values: &[f32]) -> Vec<f32> {
        let plane = values.len() / self.mean.len().max(1);
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let channel = (i / plane.max(1)).min(self.mean.len() - 1);
                (f64::from(v) * self.std[channel] + self.mean[channel]).clamp(0.0, 1.0) as f32
            })
            .collect()
    }
}

/// A file of the folder that was not read, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The file, relative to the folder.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// How to read a folder.
#[derive(Clone, Debug, PartialEq)]
pub struct FolderSettings {
    /// The side pictures are resized to.
    pub side: usize,
    /// How a picture that is not square becomes square.
    pub resize: Resize,
    /// 1 or 3 channels; `None`: 3 when any picture has colour.
    pub channels: Option<usize>,
    /// Fraction of each class held out for validation without a `train`/`valid` split.
    pub valid_fraction: f64,
    /// The seed of that split.
    pub seed: u64,
    /// The normalisation to use instead of the training pictures' own (a fine-tuning's: the
    /// pretrained model's, as fastai normalises with the statistics of the pretrained model's
    /// data); ignored when its channel count is not the set's.
    pub normalisation: Option<Normalisation>,
}

/// A folder's pictures, decoded and split.
#[derive(Clone, Debug)]
pub struct FolderSet {
    /// The class names, in label order.
    pub classes: Vec<String>,
    /// Every picture's file, relative to the folder, in the order of the set.
    pub files: Vec<PathBuf>,
    /// The images (normalised with [`Self::normalisation`]) and their labels.
    pub set: ImageSet,
    /// Which of `set` to train on.
    pub train: Vec<usize>,
    /// Which of `set` to validate on.
    pub valid: Vec<usize>,
    /// The normalisation of `set`: the training pictures' mean and standard deviation.
    pub normalisation: Normalisation,
    /// The files that were not read, and why.
    pub skipped: Vec<Skipped>,
    /// What identifies the pictures and the settings (the cache's key).
    pub fingerprint: String,
    /// The cache file, and whether the pictures came from it (rather than being decoded).
    pub cache: Option<(PathBuf, bool)>,
    /// Seconds spent decoding (or reading the cache), and the pictures that took.
    pub seconds: f64,
    /// Whether the folder had its own `train`/`valid` split.
    pub presplit: bool,
}

/// A picture file found in the folder: its path relative to the folder, its label, and
/// whether it is a validation picture of a `train`/`valid` split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    path: PathBuf,
    label: u8,
    valid: bool,
}

/// What listing the folder found.
struct Listing {
    classes: Vec<String>,
    entries: Vec<Entry>,
    skipped: Vec<Skipped>,
    presplit: bool,
    fingerprint: String,
}

/// What the cache holds: everything decoding found, before the split and normalisation.
#[derive(Serialize, Deserialize)]
struct CacheHeader {
    version: u32,
    fingerprint: String,
    side: usize,
    classes: Vec<String>,
    entries: Vec<Entry>,
    colour: Vec<bool>,
    skipped: Vec<Skipped>,
}

/// Read the pictures of `dir` (see the module's documentation). `progress` is told (done,
/// total) as pictures are decoded.
pub fn read_folder(
    dir: &Path,
    settings: &FolderSettings,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<FolderSet, DataError> {
    let listing = list(dir, settings.side, settings.resize)?;
    let count = listing.entries.len() as u64;
    let values = (3 * settings.side * settings.side) as u64;
    // The bytes held while decoding, and the f32 values of the set after.
    check_memory(product(&[count, values, 5])).map_err(|message| DataError::Rows {
        path: dir.into(),
        message: format!("{count} pictures at {0}x{0} {message}", settings.side),
    })?;
    let started = std::time::Instant::now();
    // In a job of several processes (MPI) rank 0 alone writes; the others read a cache that is
    // there, and decode for themselves when none is.
    let root = crate::world::World::current().is_root();
    let cache_path = match root {
        true => cache_file(dir, &listing.fingerprint),
        false => existing_cache_file(dir, &listing.fingerprint),
    };
    let cached = cache_path.as_deref().and_then(|path| read_cache(path, &listing));
    let from_cache = cached.is_some();
    let (rgb, colour, mut entries, mut skipped) = match cached {
        Some(found) => found,
        None => {
            let decoded = decode_all(dir, &listing, settings.side, settings.resize, progress);
            if let Some(path) = cache_path.as_ref().filter(|_| root) {
                // A cache that cannot be written only costs the next run the decoding.
                let _ = write_cache(path, &listing, settings.side, &decoded);
            }
            decoded
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let classes = listing.classes;
    check_classes(dir, &classes, &entries)?;
    let channels = settings.channels.unwrap_or(if colour.iter().any(|&c| c) { 3 } else { 1 });
    let (train, valid) = split_entries(&entries, classes.len(), settings, listing.presplit);
    if train.is_empty() || valid.is_empty() {
        let part = if train.is_empty() { "training" } else { "validation" };
        return Err(DataError::Rows {
            path: dir.into(),
            message: format!(
                "the folder leaves no {part} pictures: add pictures, or change data.valid_fraction"
            ),
        });
    }
    let plane = settings.side * settings.side;
    let bytes: Vec<u8> =
        if channels == 3 { rgb } else { rgb.chunks_exact(3 * plane).flat_map(luma).collect() };
    let normalisation = match &settings.normalisation {
        Some(given) if given.mean.len() == channels && given.std.len() == channels => given.clone(),
        _ => normalisation_of(&bytes, channels, plane, &train),
    };
    let pixels = normalisation.apply_each(&bytes, channels * plane);
    let labels = entries.iter().map(|entry| entry.label).collect();
    let shape = ImageShape { side: settings.side, channels, classes: classes.len() };
    let files = entries.drain(..).map(|entry| entry.path).collect();
    Ok(FolderSet {
        classes,
        files,
        set: ImageSet::with_shape(pixels, labels, shape),
        train,
        valid,
        normalisation,
        skipped,
        fingerprint: listing.fingerprint,
        cache: cache_path.map(|path| (path, from_cache)),
        seconds,
        presplit: listing.presplit,
    })
}

impl Normalisation {
    /// [`Self::apply`] to each image of `values` bytes in turn.
    fn apply_each(&self, bytes: &[u8], values: usize) -> Vec<f32> {
        bytes.chunks_exact(values.max(1)).flat_map(|image| self.apply(image)).collect()
    }
}

/// The mean and standard deviation of each channel over the images `train` of `bytes`.
fn normalisation_of(bytes: &[u8], channels: usize, plane: usize, train: &[usize]) -> Normalisation {
    let (mut mean, mut std) = (Vec::new(), Vec::new());
    for channel in 0..channels {
        let (mut sum, mut squares) = (0.0f64, 0.0f64);
        for &image in train {
            let start = (image * channels + channel) * plane;
            for &b in &bytes[start..start + plane] {
                let v = f64::from(b) / 255.0;
                sum += v;
                squares += v * v;
            }
        }
        let n = (train.len() * plane).max(1) as f64;
        let m = sum / n;
        mean.push(m);
        std.push((squares / n - m * m).max(0.0).sqrt().max(1e-3));
    }
    Normalisation { mean, std }
}

/// Refuse classes left without pictures once the broken files are skipped.
fn check_classes(dir: &Path, classes: &[String], entries: &[Entry]) -> Result<(), DataError> {
    let mut counts = vec![0usize; classes.len()];
    for entry in entries {
        counts[usize::from(entry.label)] += 1;
    }
    if let Some(empty) = counts.iter().position(|&count| count == 0) {
        return Err(DataError::Rows {
            path: dir.join(&classes[empty]),
            message: format!(
                "the class `{}` has no picture that could be read: every class needs at least one",
                classes[empty]
            ),
        });
    }
    Ok(())
}

/// The training and validation pictures: the folder's own split, or `valid_fraction` of each
/// class drawn from the seed (at least one picture of each class with two or more in each part).
fn split_entries(
    entries: &[Entry],
    classes: usize,
    settings: &FolderSettings,
    presplit: bool,
) -> (Vec<usize>, Vec<usize>) {
    if presplit {
        let (valid, train): (Vec<usize>, Vec<usize>) = (0..entries.len()).partition(|&i| entries[i].valid);
        return (train, valid);
    }
    let mut rng = SeededRng::new(settings.seed);
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for class in 0..classes {
        let members: Vec<usize> =
            (0..entries.len()).filter(|&i| usize::from(entries[i].label) == class).collect();
        let order = rng.permutation(members.len());
        let n = members.len();
        let mut cut = ((n as f64) * settings.valid_fraction).round() as usize;
        if n >= 2 {
            cut = cut.clamp(1, n - 1);
        } else {
            cut = 0;
        }
        valid.extend(order[..cut].iter().map(|&i| members[i]));
        train.extend(order[cut..].iter().map(|&i| members[i]));
    }
    train.sort_unstable();
    valid.sort_unstable();
    (train, valid)
}

/// Whether `path` has a picture's extension.
fn is_picture(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|known| e.eq_ignore_ascii_case(known)))
}

fn unreadable(path: &Path, source: std::io::Error) -> DataError {
    DataError::Open { path: path.into(), source }
}

/// The sub-folders of `dir`, sorted by name, hidden ones left out; a name that is not UTF-8 is
/// refused.
fn class_folders(dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|source| unreadable(dir, source))? {
        let entry = entry.map_err(|source| unreadable(dir, source))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(DataError::Rows {
                path: path.clone(),
                message: format!(
                    "the class folder's name {:?} is not valid UTF-8: class names must be text (rename the folder)",
                    entry.file_name()
                ),
            });
        };
        if !name.starts_with('.') {
            folders.push((name, path));
        }
    }
    folders.sort();
    Ok(folders)
}

/// Every file under `dir` (recursively), sorted, hidden files and folders left out.
fn files_under(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| unreadable(dir, source))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| !path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// Refuse fewer than two classes, or more than a label can hold.
fn check_class_count(root: &Path, classes: &[String]) -> Result<(), DataError> {
    let no_classes = |found: &str| DataError::Rows {
        path: root.into(),
        message: format!(
            "{found}: descent reads one sub-folder of pictures per class (DIR/<class>/*.png, .jpg, ...), at least two classes"
        ),
    };
    match classes.len() {
        0 => Err(no_classes("the folder has no sub-folders")),
        1 => Err(no_classes(&format!("the folder has one sub-folder (`{}`), so one class", classes[0]))),
        n if n > MAX_CLASSES => Err(DataError::Rows {
            path: root.into(),
            message: format!("{n} classes (sub-folders); at most {MAX_CLASSES} are allowed"),
        }),
        _ => Ok(()),
    }
}

/// Find the classes and their pictures, and fingerprint them.
fn list(dir: &Path, side: usize, resize: Resize) -> Result<Listing, DataError> {
    let metadata = std::fs::metadata(dir).map_err(|source| unreadable(dir, source))?;
    if !metadata.is_dir() {
        return Err(DataError::Rows {
            path: dir.into(),
            message: "not a folder: --images takes a folder with one sub-folder of pictures per class".into(),
        });
    }
    let train_dir = dir.join("train");
    let valid_dir = ["valid", "test"].into_iter().map(|name| dir.join(name)).find(|path| path.is_dir());
    let presplit = train_dir.is_dir() && valid_dir.is_some();
    let root = if presplit { train_dir.clone() } else { dir.to_path_buf() };
    let folders = class_folders(&root)?;
    let classes: Vec<String> = folders.iter().map(|(name, _)| name.clone()).collect();
    check_class_count(&root, &classes)?;
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    let mut add = |folder: &Path, label: usize, valid: bool| -> Result<usize, DataError> {
        let mut files = Vec::new();
        files_under(folder, &mut files)?;
        let mut pictures = 0;
        for file in files {
            let relative = file.strip_prefix(dir).unwrap_or(&file).to_path_buf();
            if is_picture(&file) {
                entries.push(Entry { path: relative, label: label as u8, valid });
                pictures += 1;
            } else {
                skipped.push(Skipped {
                    path: relative,
                    reason: format!(
                        "not a picture by its extension (descent reads .{})",
                        EXTENSIONS.join(", .")
                    ),
                });
            }
        }
        Ok(pictures)
    };
    for (label, (name, folder)) in folders.iter().enumerate() {
        if add(folder, label, false)? == 0 {
            return Err(DataError::Rows {
                path: folder.clone(),
                message: format!(
                    "the class `{name}` holds no pictures (.{}): every class needs at least one",
                    EXTENSIONS.join(", .")
                ),
            });
        }
    }
    if let (true, Some(valid_dir)) = (presplit, &valid_dir) {
        for (name, folder) in class_folders(valid_dir)? {
            let Some(label) = classes.iter().position(|class| *class == name) else {
                return Err(DataError::Rows {
                    path: folder,
                    message: format!(
                        "the validation class `{name}` is not among the training classes ({})",
                        classes.join(", ")
                    ),
                });
            };
            add(&folder, label, true)?;
        }
    }
    let fingerprint = fingerprint(dir, side, resize, &entries);
    Ok(Listing { classes, entries, skipped, presplit, fingerprint })
}

/// What identifies the pictures as read: the layout version, the side (and the crop, when
/// cropped: squashed pictures keep the fingerprints they had before there was a choice), and each
/// file's path, label, part, size and modification time.
fn fingerprint(dir: &Path, side: usize, resize: Resize, entries: &[Entry]) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(format!("descent pictures v{CACHE_VERSION} side {side}\n"));
    if resize != Resize::Squash {
        hasher.update(format!("resize {}\n", resize.name()));
    }
    for entry in entries {
        let metadata = std::fs::metadata(dir.join(&entry.path)).ok();
        let size = metadata.as_ref().map_or(0, |m| m.len());
        let modified = metadata
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        hasher.update(format!(
            "{}\t{}\t{}\t{size}\t{modified}\n",
            entry.path.display(),
            entry.label,
            entry.valid
        ));
    }
    hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

type DecodedSet = (Vec<u8>, Vec<bool>, Vec<Entry>, Vec<Skipped>);

/// Decode every picture on every core, telling `progress` as they are done; pictures that do
/// not decode are skipped.
fn decode_all(
    dir: &Path,
    listing: &Listing,
    side: usize,
    resize: Resize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> DecodedSet {
    use rayon::prelude::*;
    let done = AtomicUsize::new(0);
    let total = listing.entries.len();
    let results: Vec<Result<Decoded, PictureError>> = listing
        .entries
        .par_iter()
        .map(|entry| {
            let result = decode_file(&dir.join(&entry.path), side, resize);
            let count = done.fetch_add(1, Ordering::Relaxed) + 1;
            if count.is_multiple_of(64) || count == total {
                progress(count, total);
            }
            result
        })
        .collect();
    let mut rgb = Vec::with_capacity(total * 3 * side * side);
    let (mut colour, mut entries, mut skipped) = (Vec::new(), Vec::new(), listing.skipped.clone());
    for (entry, result) in listing.entries.iter().zip(results) {
        match result {
            Ok(decoded) => {
                rgb.extend_from_slice(&decoded.rgb);
                colour.push(decoded.colour);
                entries.push(entry.clone());
            }
            Err(error) => skipped.push(Skipped { path: entry.path.clone(), reason: error.to_string() }),
        }
    }
    (rgb, colour, entries, skipped)
}

/// Where the cache of a folder's pictures lives: `DIR/.descent-cache/` when the folder is
/// writable, else the user's cache folder (`$XDG_CACHE_HOME/descent` or `~/.cache/descent`).
fn cache_file(dir: &Path, fingerprint: &str) -> Option<PathBuf> {
    let (beside, user, name) = cache_places(dir, fingerprint);
    if writable(&beside) {
        return Some(beside.join(name));
    }
    let folder = user?;
    std::fs::create_dir_all(&folder).ok()?;
    Some(folder.join(name))
}

/// The cache of [`cache_file`] when it exists, found without making or writing anything.
fn existing_cache_file(dir: &Path, fingerprint: &str) -> Option<PathBuf> {
    let (beside, user, name) = cache_places(dir, fingerprint);
    [Some(beside), user].into_iter().flatten().map(|folder| folder.join(&name)).find(|path| path.is_file())
}

/// The two folders a cache may be in (beside the pictures, the user's), and its file name.
fn cache_places(dir: &Path, fingerprint: &str) -> (PathBuf, Option<PathBuf>, String) {
    let name = format!("pictures-{}.bin", &fingerprint[..16.min(fingerprint.len())]);
    let home = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")));
    (dir.join(".descent-cache"), home.map(|home| home.join("descent")), name)
}

/// Whether files can be written in `folder` (made if missing): a probe file is made and removed.
fn writable(folder: &Path) -> bool {
    if std::fs::create_dir_all(folder).is_err() {
        return false;
    }
    match crate::limits::create_private(folder, "cache", "probe") {
        Ok((probe, _)) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

/// The cache's pictures when it holds this listing's (same fingerprint, whole); `None` to
/// decode again.
fn read_cache(path: &Path, listing: &Listing) -> Option<DecodedSet> {
    let mut file = std::io::BufReader::new(std::fs::File::open(path).ok()?);
    let mut magic = [0u8; 16];
    file.read_exact(&mut magic).ok()?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length).ok()?;
    let length = usize::try_from(u64::from_le_bytes(length)).ok()?;
    if magic != *CACHE_MAGIC || length > 1 << 30 {
        return None;
    }
    let mut header = vec![0u8; length];
    file.read_exact(&mut header).ok()?;
    let header: CacheHeader = serde_json::from_slice(&header).ok()?;
    if header.version != CACHE_VERSION
        || header.fingerprint != listing.fingerprint
        || header.colour.len() != header.entries.len()
    {
        return None;
    }
    let expected = header.entries.len() * 3 * header.side * header.side;
    let mut rgb = Vec::with_capacity(expected);
    file.take(expected as u64 + 1).read_to_end(&mut rgb).ok()?;
    (rgb.len() == expected).then_some((rgb, header.colour, header.entries, header.skipped))
}

/// Write the cache atomically: a header in JSON after the magic and its length, then the bytes.
fn write_cache(path: &Path, listing: &Listing, side: usize, decoded: &DecodedSet) -> std::io::Result<()> {
    let (rgb, colour, entries, skipped) = decoded;
    let header = CacheHeader {
        version: CACHE_VERSION,
        fingerprint: listing.fingerprint.clone(),
        side,
        classes: listing.classes.clone(),
        entries: entries.clone(),
        colour: colour.clone(),
        skipped: skipped.clone(),
    };
    let header = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(24 + header.len() + rgb.len());
    bytes.extend_from_slice(CACHE_MAGIC);
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(rgb);
    // Atomically: a whole file or none, whatever else reads or writes the cache at once.
    // The temporary file is new (`O_EXCL`, an unguessable name): never a link planted beforehand.
    let folder = path.parent().unwrap_or(Path::new("."));
    let (partial, mut file) = crate::limits::create_private(folder, "cache", "partial")?;
    std::io::Write::write_all(&mut file, &bytes).and_then(|()| std::fs::rename(&partial, path)).inspect_err(
        |_| {
            let _ = std::fs::remove_file(&partial);
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, pixel: [u8; 3]) -> Vec<u8> {
        let picture = image::RgbImage::from_pixel(width, height, image::Rgb(pixel));
        let mut bytes = Vec::new();
        picture.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).expect("encode");
        bytes
    }

    /// Three squares side by side (red, green, blue), across or down.
    fn three_squares(square: u32, across: bool) -> Vec<u8> {
        let (width, height) = if across { (3 * square, square) } else { (square, 3 * square) };
        let picture = image::RgbImage::from_fn(width, height, |x, y| {
            let mut pixel = [0u8; 3];
            pixel[((if across { x } else { y }) / square) as usize] = 255;
            image::Rgb(pixel)
        });
        let mut bytes = Vec::new();
        picture.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).expect("encode");
        bytes
    }

    #[test]
    fn crop_keeps_the_central_square_and_squash_the_whole_picture() {
        for across in [true, false] {
            let bytes = three_squares(20, across);
            let cropped = decode_bytes(&bytes, 8, Resize::Crop).expect("decodes");
            // The central square alone: green, every pixel.
            assert!(cropped.rgb[..64].iter().all(|&v| v == 0), "red in {:?}", &cropped.rgb[..64]);
            assert!(cropped.rgb[64..128].iter().all(|&v| v == 255));
            assert!(cropped.rgb[128..].iter().all(|&v| v == 0));
            assert_eq!((cropped.width, cropped.height), if across { (60, 20) } else { (20, 60) });
            // Squashed, the first third is red and the last blue.
            let squashed = decode_bytes(&bytes, 9, Resize::Squash).expect("decodes");
            let (red, blue) = (&squashed.rgb[..81], &squashed.rgb[162..]);
            // The first pixel (top left) is in the first third, the last in the last third.
            assert_eq!((red[0], red[80]), (255, 0));
            assert_eq!((blue[0], blue[80]), (0, 255));
            assert_eq!(Resize::default(), Resize::Squash);
        }
        // A square picture is the same either way.
        let square = png(30, 30, [10, 20, 30]);
        assert_eq!(
            decode_bytes(&square, 8, Resize::Crop).unwrap(),
            decode_bytes(&square, 8, Resize::Squash).unwrap()
        );
        for name in Resize::NAMES {
            assert_eq!(Resize::from_name(name).map(Resize::name), Some(name));
        }
    }

    #[test]
    fn a_flat_picture_stays_flat_at_any_size() {
        let decoded = decode_bytes(&png(37, 11, [200, 100, 50]), 8, Resize::Squash).expect("decodes");
        assert_eq!(decoded.rgb.len(), 3 * 64);
        assert!(decoded.rgb[..64].iter().all(|&v| v == 200));
        assert!(decoded.rgb[64..128].iter().all(|&v| v == 100));
        assert!(decoded.rgb[128..].iter().all(|&v| v == 50));
        assert!(decoded.colour);
        assert_eq!((decoded.width, decoded.height), (37, 11));
    }

    #[test]
    fn bad_bytes_are_refused_with_a_reason() {
        assert!(matches!(decode_bytes(b"", 8, Resize::Squash), Err(PictureError::Empty)));
        assert!(matches!(
            decode_bytes(b"hello, this is text", 8, Resize::Squash),
            Err(PictureError::NotAPicture(_))
        ));
        let mut truncated = png(20, 20, [1, 2, 3]);
        truncated.truncate(40);
        assert!(matches!(decode_bytes(&truncated, 8, Resize::Squash), Err(PictureError::NotAPicture(_))));
    }

    #[test]
    fn a_huge_claimed_size_is_refused_before_decoding() {
        // A PNG header claiming 100000 x 100000 pixels, and nothing else.
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        bytes.extend_from_slice(&13u32.to_be_bytes());
        bytes.extend_from_slice(&ihdr);
        bytes.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        match decode_bytes(&bytes, 8, Resize::Squash) {
            Err(PictureError::TooLarge { .. }) => {}
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn normalisation_round_trips_and_centres_the_training_pictures() {
        let bytes = [0u8, 255, 0, 255, 100, 100, 100, 100];
        let n = normalisation_of(&bytes, 2, 2, &[0, 1]);
        let values = n.apply_each(&bytes, 4);
        let mean: f32 = values.iter().sum::<f32>() / 8.0;
        assert!(mean.abs() < 1e-5, "{values:?}");
        let back = n.undo(&values[..4]);
        assert!((back[1] - 1.0).abs() < 1e-5 && back[0].abs() < 1e-5);
    }

    #[test]
    fn the_stratified_split_holds_out_each_class() {
        let entries: Vec<Entry> = (0..20)
            .map(|i| Entry { path: PathBuf::from(format!("{i}.png")), label: (i % 2) as u8, valid: false })
            .collect();
        let settings = FolderSettings {
            side: 8,
            resize: Resize::Squash,
            channels: None,
            valid_fraction: 0.2,
            seed: 42,
            normalisation: None,
        };
        let (train, valid) = split_entries(&entries, 2, &settings, false);
        assert_eq!((train.len(), valid.len()), (16, 4));
        assert_eq!(valid.iter().filter(|&&i| i % 2 == 0).count(), 2);
        assert_ne!(
            split_entries(&entries, 2, &FolderSettings { seed: 43, ..settings.clone() }, false).1,
            valid
        );
    }
}
