//! Pictures to classify: PNG files (grayscale or colour, any size), made into the model's input
//! as the training images look — one channel in [0, 1], `side × side` pixels, a light figure on
//! a dark background (MNIST's convention).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::DataError;
use crate::limits::check_memory;

/// A decoded picture: its luminance in [0, 1], row by row.
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Luminance, `width × height` values.
    pub gray: Vec<f32>,
}

/// The most bytes a PNG may decode to (a 4096 × 4096 picture in 16-bit RGBA): larger ones are
/// refused before they are decoded.
const MAX_DECODED_BYTES: usize = 4096 * 4096 * 8;

/// Read a PNG file: any colour type and depth, transparent pixels over white.
pub fn read_png(path: &Path) -> Result<Picture, DataError> {
    let not_png = |message: String| DataError::Rows { path: path.into(), message };
    let file = File::open(path).map_err(|source| DataError::Open { path: path.into(), source })?;
    if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        return Err(not_png("the file is empty: expected a PNG image".into()));
    }
    let mut input = BufReader::new(file);
    let start = std::io::BufRead::fill_buf(&mut input)
        .map_err(|source| DataError::Open { path: path.into(), source })?;
    if !start.starts_with(super::PNG_SIGNATURE)
        && let Some(kind) = super::binary_kind(start)
    {
        return Err(not_png(format!("this is {kind}, whatever its name says: expected a PNG picture")));
    }
    let limits = png::Limits { bytes: MAX_DECODED_BYTES };
    let mut decoder = png::Decoder::new_with_limits(input, limits);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|error| not_png(format!("not a PNG image ({error})")))?;
    // The header's size decides, before anything is decoded: at most the folder reader's side,
    // and the decoded frame plus its one-value-per-pixel f32 copy within the memory budget (a
    // small file can declare a huge frame of zeros).
    let (width, height) = (reader.info().width, reader.info().height);
    let side = super::folder::MAX_PICTURE_SIDE;
    if width > side || height > side {
        return Err(not_png(format!(
            "the picture declares {width}x{height} pixels; at most {side} pixels on a side are read"
        )));
    }
    let size = reader.output_buffer_size().ok_or_else(|| not_png("the picture is too large".into()))?;
    let needed = (size as u64).checked_add(u64::from(width) * u64::from(height) * 4);
    check_memory(needed)
        .map_err(|message| not_png(format!("decoding its {width}x{height} pixels {message}")))?;
    let mut buffer = vec![0; size];
    let info = reader
        .next_frame(&mut buffer)
        .map_err(|error| not_png(format!("not a whole PNG image ({error})")))?;
    let (width, height) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let gray = buffer[..info.buffer_size()]
        .chunks_exact(info.line_size)
        .flat_map(|line| line.chunks_exact(channels).take(width))
        .map(luminance)
        .collect();
    Ok(Picture { width, height, gray })
}

/// One pixel's luminance in [0, 1] from its 8-bit samples: gray, gray and alpha, RGB or RGBA
/// (Rec. 601 weights; transparency shows white).
fn luminance(samples: &[u8]) -> f32 {
    let value = |v: u8| f32::from(v) / 255.0;
    let (light, alpha) = match *samples {
        [g] => (value(g), 1.0),
        [g, a] => (value(g), value(a)),
        [r, g, b] => (0.299 * value(r) + 0.587 * value(g) + 0.114 * value(b), 1.0),
        [r, g, b, a] => (0.299 * value(r) + 0.587 * value(g) + 0.114 * value(b), value(a)),
        _ => (0.0, 1.0),
    };
    light * alpha + (1.0 - alpha)
}

impl Picture {
    /// The model's input: resized to `side × side` (each output pixel the mean of the input
    /// pixels it covers, or the nearest one when enlarging), and inverted when the background
    /// (the mean of the border) is light, so that the figure is light on dark as in training.
    pub fn to_input(&self, side: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(side * side);
        for r in 0..side {
            let (top, bottom) = span(r, side, self.height);
            for c in 0..side {
                let (left, right) = span(c, side, self.width);
                let mut sum = 0.0;
                for y in top..bottom {
                    sum += self.gray[y * self.width + left..y * self.width + right].iter().sum::<f32>();
                }
                out.push(sum / ((bottom - top) * (right - left)) as f32);
            }
        }
        if self.border_mean() > 0.5 {
            out.iter_mut().for_each(|v| *v = 1.0 - *v);
        }
        out
    }

    /// The mean luminance of the outermost pixels.
    fn border_mean(&self) -> f32 {
        let (w, h) = (self.width, self.height);
        let (mut sum, mut count) = (0.0, 0usize);
        for y in 0..h {
            // The whole first and last rows; the first and last pixel of the others.
            let step = if y == 0 || y + 1 == h { 1 } else { w.saturating_sub(1).max(1) };
            for x in (0..w).step_by(step) {
                sum += self.gray[y * w + x];
                count += 1;
            }
        }
        sum / count.max(1) as f32
    }
}

/// The input pixels output pixel `i` of `n` covers along an axis of `length` input pixels: at
/// least one.
fn span(i: usize, n: usize, length: usize) -> (usize, usize) {
    let start = i * length / n;
    let end = ((i + 1) * length).div_ceil(n).max(start + 1).min(length);
    (start.min(length - 1), end)
}

/// The PNG files `path` names: itself, or the `.png` files in a folder, sorted by name.
pub fn png_files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|source| DataError::Open { path: path.into(), source })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::Rows { path: path.into(), message: "the folder holds no .png files".into() });
    }
    Ok(files)
}

/// Whether `path` is a PNG file by its first bytes.
pub fn is_png(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
        && magic == *super::PNG_SIGNATURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resizing_averages_the_pixels_covered_and_light_backgrounds_are_inverted() {
        // 4x4, dark figure (0) in the top-left 2x2 on white: to 2x2, then inverted.
        let mut gray = vec![1.0; 16];
        for (x, y) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            gray[y * 4 + x] = 0.0;
        }
        let picture = Picture { width: 4, height: 4, gray };
        assert_eq!(picture.to_input(2), vec![1.0, 0.0, 0.0, 0.0]);
        // Enlarging repeats pixels: 2x2 to 4x4, dark background kept.
        let small = Picture { width: 2, height: 2, gray: vec![0.0, 1.0, 0.0, 0.0] };
        let big = small.to_input(4);
        assert_eq!(&big[..4], &[0.0, 0.0, 1.0, 1.0]);
        assert_eq!(big.iter().sum::<f32>(), 4.0);
    }

    #[test]
    fn luminance_weighs_colours_and_shows_transparency_white() {
        assert_eq!(luminance(&[255]), 1.0);
        assert!((luminance(&[255, 0, 0]) - 0.299).abs() < 1e-6);
        assert_eq!(luminance(&[0, 0]), 1.0, "fully transparent is white");
        assert_eq!(luminance(&[0, 0, 0, 255]), 0.0);
    }
}
