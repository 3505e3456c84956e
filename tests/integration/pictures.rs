//! A folder of the user's own pictures, end to end: `descent cnn --images DIR` on pictures made
//! here from Debian's Fashion-MNIST (in colour, at random sizes, PNG and JPEG, with a broken
//! file and a file that is no picture), checked against the same classes trained from the IDX
//! pixels; `predict` against the run's own evaluation; the figures and the summary against a
//! recomputation from the saved model; the ONNX export against onnxruntime; the decoder against
//! Pillow; fine-tuning (`--init-from`, `--freeze`); and the bad folders refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use descent::data::folder::{Resize, decode_file};
use descent::data::images::{ImageSet, read_mnist};
use descent::inference::{SavedModel, load_saved};

use crate::common::{fashion_mnist, reference_device, rejects, run_ok, saved_tensors, scratch_in, summary};

const FASHION: &str = "/usr/share/datasets/fashion-mnist";

fn scratch(name: &str) -> PathBuf {
    scratch_in("pictures", name)
}

/// A small deterministic generator (the tests' own: SplitMix64).
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Fashion-MNIST's training and test sets, read once.
fn fashion() -> &'static (ImageSet, ImageSet) {
    static SETS: OnceLock<(ImageSet, ImageSet)> = OnceLock::new();
    SETS.get_or_init(|| {
        let mnist = read_mnist(Path::new(FASHION)).expect("Fashion-MNIST reads");
        (mnist.train, mnist.test)
    })
}

/// The 28x28 grey bytes of image `i` of `set`.
fn grey(set: &ImageSet, i: usize) -> Vec<u8> {
    set.image(i).iter().map(|&v| (v * 255.0).round() as u8).collect()
}

/// How the pictures of a folder are written.
#[derive(Clone, Copy)]
enum Look {
    /// The IDX pixels as they are: 28x28 grey PNG.
    Plain,
    /// A random tint per picture, a random side from 20 to 60, PNG and JPEG in turn.
    Tinted,
}

/// Write `per_class` pictures of each of `classes` (Fashion-MNIST labels, the folders named
/// `c<label>`) from `set` into `dir`.
fn write_pictures(dir: &Path, set: &ImageSet, classes: &[u8], per_class: usize, look: Look, seed: u64) {
    let mut draws = Draws(seed);
    let mut counts = BTreeMap::new();
    for i in 0..set.len() {
        let label = set.label(i);
        if !classes.contains(&label) || counts.get(&label).copied().unwrap_or(0) >= per_class {
            continue;
        }
        *counts.entry(label).or_insert(0) += 1;
        let folder = dir.join(format!("c{label}"));
        std::fs::create_dir_all(&folder).unwrap();
        let pixels = grey(set, i);
        match look {
            Look::Plain => {
                let picture = image::GrayImage::from_raw(28, 28, pixels).unwrap();
                picture.save(folder.join(format!("{i}.png"))).unwrap();
            }
            Look::Tinted => {
                let tint = [0, 1, 2].map(|_| 100 + draws.below(156) as u32);
                let rgb = image::RgbImage::from_fn(28, 28, |x, y| {
                    let v = u32::from(pixels[(y * 28 + x) as usize]);
                    image::Rgb(tint.map(|t| (v * t / 255) as u8))
                });
                let side = 20 + draws.below(41) as u32;
                let resized =
                    image::imageops::resize(&rgb, side, side, image::imageops::FilterType::Triangle);
                let extension = if i % 2 == 0 { "png" } else { "jpg" };
                resized.save(folder.join(format!("{i}.{extension}"))).unwrap();
            }
        }
    }
}

/// The colour folder set of the tests (made once): four classes (T-shirt/top, Trouser,
/// Sneaker, Bag), 300 training and 100 validation pictures each, plus a broken PNG and a text
/// file among the training bags.
fn colour_set() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("colour-set");
        let (train, test) = fashion();
        write_pictures(&dir.join("train"), train, &[0, 1, 7, 8], 300, Look::Tinted, 1);
        write_pictures(&dir.join("valid"), test, &[0, 1, 7, 8], 100, Look::Tinted, 2);
        std::fs::write(dir.join("train/c8/broken.png"), b"\x89PNG\r\n\x1a\nnot the rest of a picture")
            .unwrap();
        std::fs::write(dir.join("train/c8/notes.txt"), "not a picture").unwrap();
        dir
    })
}

/// The run of the CNN on the colour set (made once): 28-pixel pictures, 3 epochs.
fn colour_run() -> &'static (PathBuf, serde_json::Value) {
    static RUN: OnceLock<(PathBuf, serde_json::Value)> = OnceLock::new();
    RUN.get_or_init(|| {
        let out = scratch("colour-run");
        let images = colour_set().to_str().unwrap();
        let output = run_ok(&[
            "cnn",
            "--images",
            images,
            "--side",
            "28",
            "--epochs",
            "3",
            "--out",
            out.to_str().unwrap(),
            "--json",
            "-q",
        ]);
        (out, summary(&output))
    })
}

#[test]
fn a_folder_in_colour_trains_as_well_as_the_same_classes_from_the_idx_pixels() {
    if !fashion_mnist(FASHION) {
        return;
    }
    let (run, colour) = colour_run();
    assert_eq!(colour["skipped"], 2, "{colour}");
    let skipped = std::fs::read_to_string(run.join("skipped.txt")).unwrap();
    assert!(skipped.contains("train/c8/broken.png") && skipped.contains("train/c8/notes.txt"), "{skipped}");
    assert_eq!(colour["n_train"], 1200);
    assert_eq!(colour["n_valid"], 400);
    assert_eq!(colour["classes"], serde_json::json!(["c0", "c1", "c7", "c8"]));
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("channels = 3"), "colour kept: {config}");
    // The same pictures' classes from the IDX pixels, grey and 28x28, trained the same way.
    let plain = scratch("plain-set");
    let (train, test) = fashion();
    write_pictures(&plain.join("train"), train, &[0, 1, 7, 8], 300, Look::Plain, 1);
    write_pictures(&plain.join("valid"), test, &[0, 1, 7, 8], 100, Look::Plain, 2);
    let out = scratch("plain-run");
    let plain_run = summary(&run_ok(&[
        "cnn",
        "--images",
        plain.to_str().unwrap(),
        "--side",
        "28",
        "--epochs",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--json",
        "-q",
    ]));
    let (a, b) = (colour["accuracy"].as_f64().unwrap(), plain_run["accuracy"].as_f64().unwrap());
    assert!(b > 0.85, "the IDX pixels' classes train: accuracy {b}");
    assert!((a - b).abs() <= 0.05, "colour, resized, JPEG: {a}; the IDX pixels: {b}");
    // A second run reads the pictures from the cache.
    let again = scratch("colour-again");
    let output = run_ok(&[
        "cnn",
        "--images",
        colour_set().to_str().unwrap(),
        "--side",
        "28",
        "--epochs",
        "1",
        "--out",
        again.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("read from the cache"), "{stdout}");
    // The worst predictions on screen name the pictures' files, worst first as in the summary.
    let again_summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(again.join("summary.json")).unwrap()).unwrap();
    let worst_file = again_summary["top_losses"][0]["file"].as_str().unwrap();
    let table: Vec<&str> =
        stdout.lines().skip_while(|line| !line.starts_with("worst predictions")).skip(2).take(8).collect();
    assert_eq!(table.len(), 8, "{stdout}");
    assert!(table[0].ends_with(&format!("  {worst_file}")), "{table:?} against {worst_file}");
    for line in table {
        let file = line.rsplit("  ").next().unwrap();
        assert!(colour_set().join(file).is_file(), "{line}");
    }
}

/// The predictions of `descent predict` on a folder laid out by class: (file, label, predicted).
fn predicted(run: &Path, folder: &Path) -> (Vec<(String, usize, usize)>, String) {
    let output = run_ok(&["predict", "--model", run.to_str().unwrap(), "--input", folder.to_str().unwrap()]);
    let csv = String::from_utf8_lossy(&output.stdout);
    let rows = csv
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields[0].to_string(), fields[4].parse().unwrap(), fields[1].parse().unwrap())
        })
        .collect();
    (rows, String::from_utf8_lossy(&output.stderr).to_string())
}

#[test]
fn predict_on_the_validation_folder_agrees_with_the_runs_evaluation() {
    if !fashion_mnist(FASHION) {
        return;
    }
    let (run, summary) = colour_run();
    let (rows, score) = predicted(run, &colour_set().join("valid"));
    assert_eq!(rows.len(), 400);
    let mut confusion = vec![vec![0u64; 4]; 4];
    for &(_, label, predicted) in &rows {
        confusion[label][predicted] += 1;
    }
    let recorded: Vec<Vec<u64>> = serde_json::from_value(summary["confusion"].clone()).unwrap();
    assert_eq!(confusion, recorded, "predict's confusion matrix is the run's");
    let accuracy = summary["accuracy"].as_f64().unwrap();
    assert!(score.contains(&format!("accuracy on the 400 labelled pictures: {accuracy:.4}")), "{score}");
}

/// Each validation picture's probability of its true class, from the saved model.
fn true_class_probabilities(run: &Path) -> Vec<(String, usize, usize, f64)> {
    let device = reference_device().device;
    let (_, saved) = load_saved(run, &device).unwrap();
    let SavedModel::Classifier(classifier) = saved else { panic!("a classifier") };
    let classes = classifier.class_names().to_vec();
    let mut rows = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let folder = colour_set().join("valid").join(class);
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let picture = decode_file(&file, classifier.side(), Resize::Squash).unwrap();
            let p = classifier.probabilities(classifier.input(&picture), 1, &device).unwrap().remove(0);
            let predicted = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            let relative = file.strip_prefix(colour_set()).unwrap().display().to_string();
            rows.push((relative, label, predicted, f64::from(p[label])));
        }
    }
    rows
}

#[test]
fn the_figures_and_the_summary_name_what_the_saved_model_gets_wrong() {
    if !fashion_mnist(FASHION) {
        return;
    }
    let (run, summary) = colour_run();
    for figure in ["confusion.png", "top_losses.png", "results.png"] {
        let picture = image::open(run.join(figure)).unwrap_or_else(|e| panic!("{figure}: {e}"));
        assert!(picture.width() >= 400 && picture.height() >= 300, "{figure}");
    }
    let rows = true_class_probabilities(run);
    let names = ["c0", "c1", "c7", "c8"];
    // most_confused: the off-diagonal counts, largest first.
    let mut pairs: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    for &(_, label, predicted, _) in &rows {
        if label != predicted {
            *pairs.entry((label, predicted)).or_default() += 1;
        }
    }
    let listed = summary["most_confused"].as_array().unwrap();
    assert!(!listed.is_empty());
    let mut previous = u64::MAX;
    for entry in listed {
        let actual = names.iter().position(|n| *n == entry["actual"]).unwrap();
        let predicted = names.iter().position(|n| *n == entry["predicted"]).unwrap();
        let count = entry["count"].as_u64().unwrap();
        assert_eq!(pairs.get(&(actual, predicted)), Some(&count), "{entry}");
        assert!(count <= previous, "largest first");
        previous = count;
    }
    // top_losses: the nine lowest probabilities of the true class, as -ln p.
    let mut worst = rows.clone();
    worst.sort_by(|a, b| a.3.total_cmp(&b.3));
    let top = summary["top_losses"].as_array().unwrap();
    assert_eq!(top.len(), 9);
    for (entry, expected) in top.iter().zip(&worst) {
        assert_eq!(entry["file"].as_str().unwrap(), expected.0, "{entry}");
        let loss = entry["loss"].as_f64().unwrap();
        assert!(
            (loss - (-expected.3.ln())).abs() < 1e-3 * loss.max(1.0),
            "{entry}: recomputed p {}",
            expected.3
        );
    }
}

#[test]
fn the_onnx_export_takes_three_channels_and_agrees_with_onnxruntime() {
    if !fashion_mnist(FASHION) {
        return;
    }
    let Some(python) = crate::interop::python() else { return };
    let (run, _) = colour_run();
    let model = run.join("export-softmax.onnx");
    run_ok(&[
        "export",
        "--model",
        run.to_str().unwrap(),
        "--format",
        "onnx",
        "--softmax",
        "--output",
        model.to_str().unwrap(),
    ]);
    let device = reference_device().device;
    let (_, saved) = load_saved(run, &device).unwrap();
    let SavedModel::Classifier(classifier) = saved else { panic!("a classifier") };
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(colour_set().join("valid/c7")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let (mut raw, mut inputs) = (Vec::new(), Vec::new());
    for file in files.iter().take(16) {
        let picture = decode_file(file, 28, Resize::Squash).unwrap();
        raw.extend(picture.rgb.iter().map(|&b| f32::from(b) / 255.0));
        inputs.extend(classifier.input(&picture));
    }
    let expected: Vec<f32> = classifier.probabilities(inputs, 16, &device).unwrap().concat();
    let (name, shape, values) = crate::interop::onnx_run(&python, &model, &raw, &[16, 3, 28, 28]);
    assert_eq!((name.as_str(), shape), ("probabilities", vec![16, 4]));
    for (onnx, descent) in values.iter().zip(&expected) {
        assert!((onnx - f64::from(*descent)).abs() < 1e-4, "onnxruntime {onnx}, descent {descent}");
    }
}

#[test]
fn pictures_decode_as_pillow_decodes_them() {
    let Some(python) = crate::interop::python() else { return };
    let dir = scratch("fixtures");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/decode.py");
    let made = std::process::Command::new(&python)
        .args([script, "make-fixtures", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let files = ["rgb.png", "palette_alpha.png", "grey.png", "photo.jpg", "rotated.jpg"];
    for side in [4usize, 8, 16] {
        let paths: Vec<String> = files.iter().map(|f| dir.join(f).display().to_string()).collect();
        let mut args =
            vec![script.to_string(), "--side".into(), side.to_string(), "--channels".into(), "3".into()];
        args.extend(paths.iter().cloned());
        let output = std::process::Command::new(&python).args(&args).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let pillow: BTreeMap<String, Vec<f64>> = serde_json::from_slice(&output.stdout).unwrap();
        for path in &paths {
            let ours = decode_file(Path::new(path), side, Resize::Squash).unwrap();
            let theirs = &pillow[path];
            assert_eq!(theirs.len(), ours.rgb.len(), "{path}");
            // JPEG decoders may differ by a level or two; PNG only by the resize's rounding.
            let tolerance = if path.ends_with(".jpg") { 4.0 } else { 2.0 };
            for (index, (&a, &b)) in ours.rgb.iter().zip(theirs).enumerate() {
                let difference = (f64::from(a) - b * 255.0).abs();
                assert!(
                    difference <= tolerance,
                    "{path} at side {side}, value {index}: descent {a}, Pillow {}",
                    b * 255.0
                );
            }
        }
    }
}

#[test]
fn fine_tuning_keeps_the_body_through_the_frozen_epoch_and_beats_training_from_scratch() {
    if !fashion_mnist(FASHION) {
        return;
    }
    let (train, test) = fashion();
    let source = scratch("tune-source");
    write_pictures(&source.join("train"), train, &[0, 1, 2, 3, 4], 1000, Look::Plain, 3);
    write_pictures(&source.join("valid"), test, &[0, 1, 2, 3, 4], 100, Look::Plain, 4);
    let target = scratch("tune-target");
    write_pictures(&target.join("train"), train, &[5, 6, 7, 8, 9], 20, Look::Plain, 5);
    write_pictures(&target.join("valid"), test, &[5, 6, 7, 8, 9], 200, Look::Plain, 6);
    // The digits' CNN (two 5x5 blocks, flattened), trained at a constant rate.
    let common = [
        "--side",
        "28",
        "--optim",
        "adam",
        "--lr",
        "1e-3",
        "--schedule",
        "constant",
        "--set",
        "model.channels=[32, 64]",
        "--set",
        "model.kernel=5",
        "--set",
        "model.global_pool=false",
        "--json",
        "-q",
    ];
    let run = |images: &Path, out: &Path, extra: &[&str]| {
        let mut args = vec!["cnn", "--images", images.to_str().unwrap(), "--out", out.to_str().unwrap()];
        args.extend_from_slice(&common);
        args.extend_from_slice(extra);
        summary(&run_ok(&args))
    };
    let pretrained = scratch("tune-pretrained");
    run(&source, &pretrained, &["--epochs", "3"]);
    let init = pretrained.to_str().unwrap();
    // One frozen epoch: the body's parameters are the pretrained ones, bit for bit; the new
    // head (five other classes) trained.
    let frozen = scratch("tune-frozen");
    run(&target, &frozen, &["--epochs", "1", "--batch-size", "16", "--init-from", init, "--freeze", "1"]);
    let before = saved_tensors(&pretrained);
    let after = saved_tensors(&frozen);
    let parameter = |name: &str| !name.contains("running_");
    for tensor in after.iter().filter(|t| parameter(&t.name) && !t.name.starts_with("head.")) {
        let original = before.iter().find(|b| b.name == tensor.name).unwrap();
        assert!(
            tensor.values.iter().map(|v| v.to_bits()).eq(original.values.iter().map(|v| v.to_bits())),
            "{} changed in the frozen epoch",
            tensor.name
        );
    }
    let head = after.iter().find(|t| t.name == "head.weight").unwrap();
    assert_eq!(head.shape[1], 5);
    // Against the head it started from: the seeded initial network of the same run.
    let config = descent::config::RunConfig::load(&frozen.join("config.toml")).unwrap();
    let experiment = descent::experiment::ImageExperiment::prepare(config).unwrap();
    let descent::config::ModelConfig::Cnn(settings) = &experiment.config.model else { panic!("the cnn") };
    let (network, loaded) = experiment.start_network(settings).unwrap();
    assert!(loaded.is_some_and(|loaded| loaded.new_head), "five other classes: a new head");
    let initial = descent::inference::export::named_tensors(&network).unwrap();
    let start = initial.iter().find(|t| t.name == "head.weight").unwrap();
    assert_eq!(start.shape, head.shape);
    assert!(head.values.iter().zip(&start.values).any(|(a, b)| (a - b).abs() > 1e-4), "the head trained");
    // Then everything: the fine-tuned model beats the same epochs from scratch, seed for seed.
    for seed in ["1", "2"] {
        let tuned = run(
            &target,
            &scratch("tune-tuned"),
            &["--epochs", "2", "--batch-size", "16", "--init-from", init, "--freeze", "1", "--seed", seed],
        );
        let scratch_run =
            run(&target, &scratch("tune-scratch"), &["--epochs", "2", "--batch-size", "16", "--seed", seed]);
        let (a, b) = (tuned["accuracy"].as_f64().unwrap(), scratch_run["accuracy"].as_f64().unwrap());
        assert!(a > b, "seed {seed}: fine-tuned {a}, from scratch {b}");
    }
}

#[test]
fn bad_folders_are_refused_with_one_sentence() {
    let root = scratch("bad");
    let picture = |path: &Path| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::GrayImage::from_pixel(9, 9, image::Luma([7])).save(path).unwrap();
    };
    // No sub-folders.
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    rejects(
        &["cnn", "--images", empty.to_str().unwrap()],
        &["no sub-folders", "one sub-folder of pictures per class"],
    );
    // One class.
    let single = root.join("single");
    picture(&single.join("cat/1.png"));
    rejects(
        &["cnn", "--images", single.to_str().unwrap()],
        &["one sub-folder (`cat`)", "at least two classes"],
    );
    // An empty class.
    let hollow = root.join("hollow");
    picture(&hollow.join("cat/1.png"));
    std::fs::create_dir_all(hollow.join("dog")).unwrap();
    rejects(&["cnn", "--images", hollow.to_str().unwrap()], &["the class `dog` holds no pictures"]);
    // A class whose only picture is broken.
    let broken = root.join("broken");
    picture(&broken.join("cat/1.png"));
    std::fs::create_dir_all(broken.join("dog")).unwrap();
    std::fs::write(broken.join("dog/1.png"), b"not a picture").unwrap();
    rejects(
        &["cnn", "--images", broken.to_str().unwrap()],
        &["the class `dog` has no picture that could be read"],
    );
    // Not a folder, and a folder that is not there.
    rejects(&["cnn", "--images", broken.join("cat/1.png").to_str().unwrap()], &["not a folder"]);
    rejects(&["cnn", "--images", root.join("nowhere").to_str().unwrap()], &["nowhere"]);
    // A class name that is not UTF-8.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let odd = root.join("odd");
        picture(&odd.join("cat/1.png"));
        picture(&odd.join(std::ffi::OsStr::from_bytes(b"d\xffg")).join("1.png"));
        rejects(&["cnn", "--images", odd.to_str().unwrap()], &["is not valid UTF-8"]);
    }
    // Settings out of range.
    rejects(&["cnn", "--images", single.to_str().unwrap(), "--side", "4"], &["data.side", "from 8 to 512"]);
    rejects(&["cnn", "--images", single.to_str().unwrap(), "--channels", "2"], &["--channels"]);
    rejects(&["cnn", "--side", "32"], &["--images"]);
    rejects(&["cnn", "--images", single.to_str().unwrap(), "--freeze", "1"], &["--init-from"]);
}

#[test]
fn the_web_page_shows_what_predict_says() {
    use crate::common::{Tool, require};
    if !fashion_mnist(FASHION) {
        return;
    }
    let playwright =
        crate::interop::python().ok_or_else(|| "no Python with the tools".to_string()).and_then(|python| {
            let probe = std::process::Command::new(&python).args(["-c", "import playwright"]).output();
            match probe {
                Ok(output) if output.status.success() => Ok(python),
                _ => Err(format!(
                    "{} has no playwright (pip install -r tests/web/requirements.txt)",
                    python.display()
                )),
            }
        });
    let chromium = Path::new("/usr/bin/chromium");
    let found = playwright.and_then(|python| {
        if !cfg!(feature = "app") {
            return Err("descent was built without --features app".into());
        }
        if chromium.exists() { Ok(python) } else { Err("/usr/bin/chromium is missing".into()) }
    });
    let Some(python) = require(
        Tool::Browser,
        found,
        "apt-get install chromium; pip install -r tests/web/requirements.txt; build with --features app",
    ) else {
        return;
    };
    let (run, _) = colour_run();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(["app", "--model", run.to_str().unwrap(), "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The server's output stays open while it serves: descent stops when its output fails.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(server.stdout.take().unwrap()));
    let first = lines.next().unwrap().unwrap();
    let url = first.split("at ").last().unwrap().trim().trim_end_matches('/').to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    let pictures: Vec<PathBuf> = ["valid/c7", "valid/c8", "valid/c0"]
        .iter()
        .map(|folder| {
            let mut files: Vec<PathBuf> =
                std::fs::read_dir(colour_set().join(folder)).unwrap().map(|e| e.unwrap().path()).collect();
            files.sort();
            files.remove(0)
        })
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/web/page_check.py");
    let mut args = vec![
        script.to_string(),
        "--url".into(),
        url.clone(),
        "--chromium".into(),
        chromium.display().to_string(),
    ];
    for picture in &pictures {
        args.extend(["--picture".to_string(), picture.display().to_string()]);
    }
    args.extend(["--screenshot".to_string(), run.join("page.png").display().to_string()]);
    let output = std::process::Command::new(&python).args(&args).output().unwrap();
    let alive = server.try_wait().unwrap().is_none();
    server.kill().ok();
    drop(lines);
    let _ = server.wait();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "page_check.py: {stderr}");
    assert!(alive, "the server kept serving");
    let checked: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    for (page, picture) in checked["pages"].as_array().unwrap().iter().zip(&pictures) {
        let predicted =
            run_ok(&["predict", "--model", run.to_str().unwrap(), "--input", picture.to_str().unwrap()]);
        let csv = String::from_utf8_lossy(&predicted.stdout);
        let class = csv.lines().nth(1).unwrap().split(',').nth(2).unwrap().to_string();
        assert_eq!(page["shown"], class.as_str(), "the page shows predict's class for {}", picture.display());
        assert_eq!(page["api"], class.as_str(), "the API answers predict's class for {}", picture.display());
    }
    assert_eq!(checked["pages"].as_array().unwrap().len(), pictures.len());
    assert_eq!(checked["oversized"], 413, "{checked}");
    assert_eq!(checked["not_image"], 415, "{checked}");
    assert_eq!(checked["huge"], 422, "{checked}");
    assert_eq!(checked["health_after"], 200, "{checked}");
    assert!(checked["page_error"].as_str().is_some_and(|text| text.contains("not a picture")), "{checked}");
    let concurrent = checked["concurrent"].as_array().unwrap();
    assert_eq!(concurrent.len(), 8);
    assert!(concurrent.iter().all(|status| *status == 200), "{checked}");
    assert_eq!(checked["problems"], serde_json::json!([]), "{checked}");
}

/// `--resize crop`: the run records it, and `predict` makes each picture square the same way: its
/// confidences are the saved model's on the central squares, not on the squashed pictures.
#[test]
fn a_run_that_crops_records_it_and_predict_crops_too() {
    let dir = scratch("crop-set");
    let _ = std::fs::remove_dir_all(&dir);
    let mut draws = Draws(27);
    for (class, centre) in [("reddish", [200u8, 40, 40]), ("bluish", [40, 40, 200])] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for n in 0..12 {
            // 3 squares of 15 pixels, across or down: the centre the class's colour, the ends random.
            let across = n % 2 == 0;
            let ends: Vec<[u8; 3]> = (0..2).map(|_| [0, 1, 2].map(|_| draws.below(256) as u8)).collect();
            let (width, height) = if across { (45, 15) } else { (15, 45) };
            let picture = image::RgbImage::from_fn(width, height, |x, y| {
                image::Rgb(match (if across { x } else { y }) / 15 {
                    0 => ends[0],
                    1 => centre,
                    _ => ends[1],
                })
            });
            picture.save(dir.join(class).join(format!("{n}.png"))).unwrap();
        }
    }
    let out = scratch("crop-run");
    let (images, run) = (dir.to_str().unwrap(), out.to_str().unwrap());
    run_ok(&[
        "cnn", "--images", images, "--resize", "crop", "--side", "16", "--epochs", "2", "--out", run, "-q",
    ]);
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("resize = \"crop\""), "{config}");

    let output = run_ok(&["predict", "--model", run, "--input", images]);
    let csv = String::from_utf8_lossy(&output.stdout).to_string();
    let device = reference_device().device;
    let (_, saved) = load_saved(&out, &device).unwrap();
    let SavedModel::Classifier(classifier) = saved else { panic!("a classifier") };
    assert_eq!(classifier.resize(), Resize::Crop);
    let confidence = |file: &Path, resize: Resize| {
        let picture = decode_file(file, 16, resize).unwrap();
        let p = classifier.probabilities(classifier.input(&picture), 1, &device).unwrap().remove(0);
        f64::from(p.iter().cloned().fold(f32::MIN, f32::max))
    };
    let (mut rows, mut squashed_differ) = (0, 0);
    for line in csv.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let (file, predicted): (&Path, f64) = (Path::new(fields[0]), fields[3].parse().unwrap());
        let cropped = confidence(file, Resize::Crop);
        assert!((predicted - cropped).abs() < 1e-5, "{line}: the central square gives {cropped}");
        squashed_differ += usize::from((predicted - confidence(file, Resize::Squash)).abs() > 1e-4);
        rows += 1;
    }
    assert_eq!(rows, 24, "{csv}");
    assert!(
        squashed_differ > 12,
        "squashing the pictures gives the same confidences for {} of 24",
        24 - squashed_differ
    );
}
