//! A folder of pictures to try `descent cnn --images` on, made from Fashion-MNIST (Debian's
//! package `dataset-fashion-mnist`, MIT licence): one sub-folder per class, each picture in a
//! colour of its own, at a size of its own between 20 and 60 pixels, as PNG or JPEG, the way a
//! folder of photos is mixed.
//!
//! ```text
//! cargo run --release --example fashion_pictures -- clothes
//! cargo run --release --example fashion_pictures -- shoes --classes sandal,sneaker,ankle-boot --per-class 40
//! ```
//!
//! Nothing is downloaded: without the package, it says how to install it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use descent::data::images::{FASHION_CLASS_NAMES, ImageSet, read_mnist};

/// Write a folder of Fashion-MNIST pictures, one sub-folder per class.
#[derive(Parser, Debug)]
struct Args {
    /// The folder to write (it must not exist yet, or be empty).
    out: PathBuf,

    /// The classes, by name: t-shirt, trouser, pullover, dress, coat, sandal, shirt, sneaker,
    /// bag, ankle-boot.
    #[arg(long, value_delimiter = ',', default_value = "t-shirt,trouser,sneaker,bag")]
    classes: Vec<String>,

    /// Pictures per class.
    #[arg(long, default_value_t = 200)]
    per_class: usize,

    /// The folder of Fashion-MNIST's IDX files.
    #[arg(long, default_value = descent::defaults::FASHION_MNIST_DIR)]
    fashion: PathBuf,
}

/// A class's folder name: its Fashion-MNIST name in lowercase, words joined by `-`.
fn folder_name(name: &str) -> String {
    name.to_lowercase().replace("/top", "").replace(' ', "-")
}

fn main() -> ExitCode {
    let args = Args::parse();
    match write(&args) {
        Ok(count) => {
            println!("wrote {count} pictures in {} classes to {}", args.classes.len(), args.out.display());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn write(args: &Args) -> Result<usize, String> {
    let labels: Vec<u8> = args
        .classes
        .iter()
        .map(|class| {
            FASHION_CLASS_NAMES
                .iter()
                .position(|name| folder_name(name) == *class)
                .map(|l| l as u8)
                .ok_or_else(|| {
                    let known: Vec<String> = FASHION_CLASS_NAMES.iter().map(|n| folder_name(n)).collect();
                    format!("--classes: `{class}` is not a Fashion-MNIST class ({})", known.join(", "))
                })
        })
        .collect::<Result<_, _>>()?;
    if args.out.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(format!("{} is not empty: choose a new folder", args.out.display()));
    }
    let mnist = read_mnist(&args.fashion).map_err(|error| {
        format!("{error} (install Debian's package dataset-fashion-mnist, or pass --fashion DIR)")
    })?;
    write_classes(&mnist.train, &labels, args.per_class, &args.out)
}

fn write_classes(set: &ImageSet, labels: &[u8], per_class: usize, out: &Path) -> Result<usize, String> {
    let mut state = 42u64;
    let mut draw = |n: u64| {
        // SplitMix64: enough for tints and sizes.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    };
    let mut counts = vec![0usize; labels.len()];
    for i in 0..set.len() {
        let Some(class) = labels.iter().position(|&l| l == set.label(i)) else { continue };
        if counts[class] >= per_class {
            continue;
        }
        counts[class] += 1;
        let folder = out.join(folder_name(FASHION_CLASS_NAMES[usize::from(labels[class])]));
        std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        let tint = [0, 1, 2].map(|_| 100 + draw(156) as u32);
        let pixels = set.image(i);
        let picture = image::RgbImage::from_fn(28, 28, |x, y| {
            let v = (pixels[(y * 28 + x) as usize] * 255.0).round() as u32;
            image::Rgb(tint.map(|t| (v * t / 255) as u8))
        });
        let side = 20 + draw(41) as u32;
        let picture = image::imageops::resize(&picture, side, side, image::imageops::FilterType::Triangle);
        let file = folder.join(format!("{i}.{}", if i % 2 == 0 { "png" } else { "jpg" }));
        picture.save(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(counts.iter().sum())
}
