//! The `descent` binary against hostile input and concurrent jobs: every case here failed before
//! (a panic, an abort, a crash out of memory, a folder holding two runs, a wrong answer) and now
//! ends with one sentence naming the flag, field or file, exit code 2, and nothing half-written.
//!
//! Memory-bound cases run the binary under an address-space limit (`ulimit -v`), so that a
//! regression is an abort or a kill, never a machine that swaps. These tests run the binary
//! only, with helpers of their own (`DESCENT_HOSTILE_BINARY` points them at another build).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The address-space limit of the memory-bound cases, in KiB (`ulimit -v`): 3 GiB, far below
/// what the endless inputs would take, far above what a run needs.
const ADDRESS_SPACE_KIB: u64 = 3 << 20;

/// The binary under test: this build's, or `DESCENT_HOSTILE_BINARY` (to show that an older build
/// fails these tests).
fn binary() -> String {
    std::env::var("DESCENT_HOSTILE_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_descent").to_string())
}

/// Run `descent args` in `dir`.
fn descent_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary()).args(args).current_dir(dir).output().expect("run descent")
}

/// Run `descent args` in `dir` under the address-space limit.
fn descent_limited(dir: &Path, args: &[&str]) -> Output {
    let mut shell = format!("ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\"");
    for i in 1..=args.len() {
        shell.push_str(&format!(" \"${i}\""));
    }
    Command::new("sh")
        .arg("-c")
        .arg(shell)
        .arg(binary())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run descent under ulimit")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit 2, no panic, one `error:` line holding every `expected` piece.
fn assert_refused(output: &Output, args: &[&str], expected: &[&str]) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {text}");
    assert!(!text.contains("panicked") && !text.contains("RUST_BACKTRACE"), "{args:?}: {text}");
    let errors: Vec<&str> = text.lines().filter(|line| line.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: one error line expected: {text}");
    for piece in expected {
        assert!(text.contains(piece), "{args:?}: expected `{piece}` in: {text}");
    }
}

fn refused(dir: &Path, args: &[&str], expected: &[&str]) -> Output {
    let output = descent_in(dir, args);
    assert_refused(&output, args, expected);
    output
}

fn refused_limited(dir: &Path, args: &[&str], expected: &[&str]) {
    let output = descent_limited(dir, args);
    assert_refused(&output, args, expected);
}

fn write(path: &Path, bytes: &[u8]) -> String {
    std::fs::write(path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A finished lesson run in `dir/name`.
fn lesson_run(dir: &Path, name: &str) -> PathBuf {
    let output = descent_in(dir, &["lesson2", "--out", name, "--quiet", "--steps", "20"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    dir.join(name)
}

/// A digits CNN trained for one epoch in `dir/name`.
fn cnn_run(dir: &Path, name: &str) -> PathBuf {
    let output = descent_in(dir, &["cnn", "--epochs", "1", "--out", name, "-q"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    dir.join(name)
}

// 1. Memory is bounded by the input.

#[test]
fn endless_configuration_files_are_refused_after_one_mebibyte() {
    let dir = tempfile::tempdir().unwrap();
    for flag in ["--optim", "--schedule", "--config"] {
        refused_limited(
            dir.path(),
            &["lesson2", flag, "/dev/zero"],
            &[flag, "/dev/zero", "larger than 1.0 MiB"],
        );
    }
    assert!(!dir.path().join("runs").exists(), "no run folder for a refused configuration");
    let big = dir.path().join("big.toml");
    let mut text = String::from("[optimizer]\nname = \"sgd\"\n");
    text.push_str(&"# padding\n".repeat(120_000));
    let big = write(&big, text.as_bytes());
    refused(dir.path(), &["lesson2", "--optim", &big], &["--optim", "big.toml", "larger than 1.0 MiB"]);
}

#[test]
fn endless_csv_lines_are_refused_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["fit", "--data", "/dev/zero", "--target", "y"][..],
        &["lesson2", "--data", "/dev/zero"],
        &["cnn", "--data", "/dev/zero"],
    ] {
        refused_limited(dir.path(), args, &["/dev/zero", "line 1", "longer than 1.0 MiB"]);
    }
    let run = lesson_run(dir.path(), "run");
    refused_limited(
        dir.path(),
        &["predict", "--model", run.to_str().unwrap(), "--input", "/dev/zero"],
        &["--input", "/dev/zero", "line 1", "longer than 1.0 MiB"],
    );
    // A quoted field that never closes: line breaks inside it do not end the record.
    let mut text = b"x,y\n1,2\n\"".to_vec();
    text.extend(std::iter::repeat_n(b'\n', 2 << 20));
    let quoted = write(&dir.path().join("quoted.csv"), &text);
    refused_limited(
        dir.path(),
        &["lesson2", "--data", &quoted],
        &["quoted.csv", "line 3", "longer than 1.0 MiB"],
    );
}

#[test]
fn sizes_beyond_memory_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    refused_limited(dir.path(), &["lesson2", "--n", "10000000000"], &["data.n", "--n", "would need about"]);
    refused_limited(
        dir.path(),
        &["cnn", "--set", "model.kernel=100001"],
        &["model", "kernel 100001", "would need about"],
    );
    refused_limited(
        dir.path(),
        &["cnn", "--set", "model.channels=[100000000, 2]"],
        &["model", "channels [100000000, 2]", "would need about"],
    );
    refused_limited(
        dir.path(),
        &["cnn", "--set", "model.kernel=9223372036854775807"],
        &["model", "overflows"],
    );
    // Beyond TOML's integers: was "invalid type: string".
    refused(
        dir.path(),
        &["cnn", "--set", "model.kernel=18446744073709551615"],
        &["--set model.kernel=18446744073709551615", "beyond the whole numbers", "9223372036854775807"],
    );
    refused_limited(
        dir.path(),
        &["lr-find", "--sweep-steps", "1000000000000"],
        &["--sweep-steps 1000000000000", "would need about"],
    );
    refused(
        dir.path(),
        &["cnn", "--epochs", "18446744073709551615"],
        &["training.epochs", "more updates than can be counted"],
    );
    assert!(!dir.path().join("runs").exists(), "nothing written for a refused size");
}

// 2. IDX headers.

/// An IDX images file: the header `[count, rows, columns]`, then `pixels` bytes.
fn idx_images(count: u32, rows: u32, columns: u32, pixels: usize) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 3];
    for value in [count, rows, columns] {
        bytes.extend_from_slice(&value.to_be_bytes());
    }
    bytes.resize(bytes.len() + pixels, 0);
    bytes
}

fn idx_labels(count: u32) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend_from_slice(&count.to_be_bytes());
    bytes.extend((0..count).map(|i| (i % 10) as u8));
    bytes
}

/// An IDX labels header claiming `count` labels, and no labels.
fn labels_header(count: u32) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend_from_slice(&count.to_be_bytes());
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A folder of the four MNIST files: training images and labels as given, a small valid test set.
fn mnist_folder(train_images: &[u8], train_labels: &[u8], gzipped: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: &[u8]| {
        if gzipped {
            std::fs::write(dir.path().join(format!("{name}.gz")), gzip(bytes)).unwrap();
        } else {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
    };
    put("train-images-idx3-ubyte", train_images);
    put("train-labels-idx1-ubyte", train_labels);
    std::fs::write(dir.path().join("t10k-images-idx3-ubyte"), idx_images(4, 28, 28, 4 * 784)).unwrap();
    std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), idx_labels(4)).unwrap();
    dir
}

#[test]
fn idx_headers_that_overflow_or_lie_are_refused_before_reading() {
    let work = tempfile::tempdir().unwrap();
    let cnn = |dir: &Path, expected: &[&str]| {
        refused_limited(work.path(), &["cnn", "--mnist", dir.to_str().unwrap(), "--epochs", "1"], expected)
    };
    // 4 images of 2^31 x 2^31 pixels: the product overflows.
    let dir = mnist_folder(&idx_images(4, 1 << 31, 1 << 31, 64), &idx_labels(4), false);
    cnn(dir.path(), &["train-images-idx3-ubyte", "byte 4", "2147483648x2147483648", "overflows"]);
    // Every size field all ones, in both files.
    let dir = mnist_folder(&idx_images(u32::MAX, u32::MAX, u32::MAX, 64), &labels_header(u32::MAX), false);
    cnn(dir.path(), &["train-images-idx3-ubyte", "4294967295 images of 4294967295x4294967295", "overflows"]);
    // A count that disagrees with the labels' count.
    let dir = mnist_folder(&idx_images(8, 28, 28, 8 * 784), &idx_labels(4), false);
    cnn(dir.path(), &["train-labels-idx1-ubyte", "4 labels for 8 images"]);
    // A gzip bomb: a small file whose header claims 2^31 images: refused at the header.
    let dir = mnist_folder(&idx_images(1 << 31, 28, 28, 1 << 20), &idx_labels(4), true);
    std::fs::write(dir.path().join("train-labels-idx1-ubyte.gz"), gzip(&labels_header(1 << 31))).unwrap();
    cnn(dir.path(), &["train-images-idx3-ubyte.gz", "2147483648 images of 28x28", "would need about"]);
    // A plausible claim (200,000 images) over 1 MiB of pixels: read as far as the data goes.
    let dir = mnist_folder(&idx_images(200_000, 28, 28, 1 << 20), &idx_labels(200_000), true);
    cnn(dir.path(), &["train-images-idx3-ubyte.gz", "truncated", "200000 images of 28x28"]);
}

#[test]
fn idx_sets_of_different_sides_or_no_images_are_refused_naming_the_file() {
    let work = tempfile::tempdir().unwrap();
    let cnn = |dir: &Path, expected: &[&str]| {
        refused(work.path(), &["cnn", "--mnist", dir.to_str().unwrap(), "--epochs", "1"], expected)
    };
    let dir = mnist_folder(&idx_images(4, 20, 20, 4 * 400), &idx_labels(4), false);
    cnn(dir.path(), &["t10k-images-idx3-ubyte", "28x28", "20x20", "one size"]);
    let dir = mnist_folder(&idx_images(0, 28, 28, 0), &idx_labels(0), false);
    cnn(dir.path(), &["train-images-idx3-ubyte", "0 images"]);
    assert!(!work.path().join("runs").exists(), "nothing written for refused images");
    // Sets of one other side (20x20) train, and their model loads at that side.
    let dir = mnist_folder(&idx_images(8, 20, 20, 8 * 400), &idx_labels(8), false);
    std::fs::write(dir.path().join("t10k-images-idx3-ubyte"), idx_images(4, 20, 20, 4 * 400)).unwrap();
    let mnist = dir.path().to_str().unwrap();
    let trained =
        descent_in(work.path(), &["cnn", "--mnist", mnist, "--epochs", "1", "--out", "side20", "-q"]);
    assert_eq!(trained.status.code(), Some(0), "{}", stderr(&trained));
    let exported = descent_in(work.path(), &["export", "--model", "side20", "--format", "safetensors"]);
    assert_eq!(exported.status.code(), Some(0), "{}", stderr(&exported));
}

// 3. One run per folder.

#[test]
fn two_runs_started_on_one_folder_never_share_it() {
    let dir = tempfile::tempdir().unwrap();
    for trial in 0..60 {
        let out = format!("run-{trial}");
        let start = |seed: &str| {
            Command::new(binary())
                .args(["lesson2", "--out", &out, "--seed", seed, "--steps", "30", "--quiet", "--json"])
                .current_dir(dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (first, second) = (start("1"), start("2"));
        let outputs = [first.wait_with_output().unwrap(), second.wait_with_output().unwrap()];
        let codes: Vec<Option<i32>> = outputs.iter().map(|o| o.status.code()).collect();
        let winners = codes.iter().filter(|&&code| code == Some(0)).count();
        assert_eq!(winners, 1, "trial {trial}: exactly one run owns the folder: {codes:?}");
        let loser = outputs.iter().find(|o| o.status.code() != Some(0)).unwrap();
        let text = stderr(loser);
        assert_eq!(loser.status.code(), Some(2), "{text}");
        assert!(
            text.contains("in use by another descent run") || text.contains("already holds files"),
            "{text}"
        );
        // The folder holds one run: its configuration's seed is its summary's, and it resumes.
        let folder = dir.path().join(&out);
        let config = std::fs::read_to_string(folder.join("config.toml")).unwrap();
        let summary = std::fs::read_to_string(folder.join("summary.json")).unwrap();
        let seed = config.lines().find(|l| l.starts_with("seed = ")).unwrap().trim_start_matches("seed = ");
        assert!(summary.contains(&format!("\"seed\": {seed}")), "{config}\n{summary}");
    }
    let resumed = descent_in(dir.path(), &["train", "--resume", "run-0", "--steps", "40", "--quiet"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
}

#[test]
fn a_resume_of_a_running_run_is_refused_and_a_killed_run_leaves_no_lock() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let run = lesson_run(dir.path(), "run");
    let before = std::fs::read(run.join("checkpoint.bin")).unwrap();
    let mut long = Command::new(binary())
        .args(["train", "--resume", "run", "--steps", "1000000000"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Once it says it is resuming, it holds the folder.
    let mut lines = BufReader::new(long.stdout.as_mut().unwrap()).lines();
    assert!(lines.any(|line| line.unwrap().starts_with("resuming")), "the long run started");
    refused(
        dir.path(),
        &["train", "--resume", "run", "--steps", "50"],
        &["run", "in use by another descent run"],
    );
    refused(dir.path(), &["lesson2", "--out", "run"], &["run"]);
    long.kill().unwrap(); // SIGKILL: the lock dies with the process
    long.wait().unwrap();
    assert_eq!(
        std::fs::read(run.join("checkpoint.bin")).unwrap(),
        before,
        "the killed run wrote no checkpoint"
    );
    let output = descent_in(dir.path(), &["train", "--resume", "run", "--steps", "50", "--quiet"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

// 4. Failures that leave half a run.

#[test]
fn degenerate_data_is_refused_before_the_run_folder_exists() {
    let dir = tempfile::tempdir().unwrap();
    refused(dir.path(), &["lesson2", "--n", "1", "--out", "one"], &["--n 1", "at least two points"]);
    assert!(!dir.path().join("one").exists());
    for (name, text) in [
        ("one-row.csv", "x,y\n1,2\n"),
        ("same-rows.csv", "x,y\n1,2\n1,2\n"),
        ("same-x.csv", "x,y\n1,2\n1,3\n1,4\n"),
    ] {
        let path = write(&dir.path().join(name), text.as_bytes());
        refused(dir.path(), &["lesson2", "--data", &path, "--out", "points"], &[name, "different x values"]);
        assert!(!dir.path().join("points").exists(), "{name}: no folder left behind");
    }
    // An empty validation set is refused, not reported as 0/0 wrong.
    refused(
        dir.path(),
        &["cnn", "--valid-fraction", "0.0001", "--out", "cnn"],
        &["data.valid_fraction", "no validation images"],
    );
    assert!(!dir.path().join("cnn").exists());
}

// 5. Standard output.

#[test]
fn output_to_a_full_device_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let output = Command::new(binary())
        .args(["lesson2", "--out", "full"])
        .current_dir(dir.path())
        .stdout(full())
        .output()
        .unwrap();
    assert_refused(&output, &["lesson2 > /dev/full"], &["cannot write to standard output", "No space left"]);
    assert!(!dir.path().join("full").exists(), "nothing written once the output is lost");
    // stderr full as well: still no panic.
    let output = Command::new(binary())
        .args(["lesson2", "--n", "0"])
        .current_dir(dir.path())
        .stdout(full())
        .stderr(full())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

// 6. The model's integrity.

#[test]
fn a_missing_checksum_is_an_error_unless_verification_is_waived() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(&dir.path().join("x.csv"), b"x\n0.5\n");
    // The checksum lost, the model intact: refused unless the user waives the check.
    let run = lesson_run(dir.path(), "intact");
    std::fs::remove_file(run.join("model.sha256")).unwrap();
    refused(
        dir.path(),
        &["predict", "--model", "intact", "--input", &input],
        &["model.sha256", "missing", "--no-verify"],
    );
    let waived = descent_in(dir.path(), &["predict", "--model", "intact", "--input", &input, "--no-verify"]);
    assert_eq!(waived.status.code(), Some(0), "{}", stderr(&waived));
    // A flipped byte: refused with the checksum, and still refused once the checksum is deleted.
    let run = lesson_run(dir.path(), "run");
    let model = run.join("model.bpk");
    let mut bytes = std::fs::read(&model).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&model, &bytes).unwrap();
    refused(dir.path(), &["predict", "--model", "run", "--input", &input], &["model.bpk", "SHA-256"]);
    std::fs::remove_file(run.join("model.sha256")).unwrap();
    refused(
        dir.path(),
        &["predict", "--model", "run", "--input", &input],
        &["model.sha256", "missing", "--no-verify"],
    );
    refused(
        dir.path(),
        &["export", "--model", "run", "--format", "safetensors"],
        &["missing", "--no-verify"],
    );
}

#[test]
fn export_and_predict_refuse_to_write_over_the_run_they_read() {
    let dir = tempfile::tempdir().unwrap();
    let run = lesson_run(dir.path(), "run");
    let snapshot = |name: &str| std::fs::read(run.join(name)).unwrap();
    let input = write(&dir.path().join("x.csv"), b"x\n0.5\n");
    for name in ["model.bpk", "config.toml", "checkpoint.bin", "model.sha256", "summary.json"] {
        let before = snapshot(name);
        let output = format!("run/{name}");
        refused(
            dir.path(),
            &["export", "--model", "run", "--format", "safetensors", "--output", &output],
            &[&output, "one of the files of the run"],
        );
        refused(
            dir.path(),
            &["predict", "--model", "run", "--input", &input, "--output", &output],
            &[&output],
        );
        assert_eq!(snapshot(name), before, "{name} unchanged");
    }
    // Through another spelling of the same folder, too.
    refused(
        dir.path(),
        &["export", "--model", "run", "--format", "safetensors", "--output", "./run/../run/model.bpk"],
        &["one of the files of the run"],
    );
    let exported = descent_in(dir.path(), &["export", "--model", "run", "--format", "safetensors"]);
    assert_eq!(exported.status.code(), Some(0), "{}", stderr(&exported));
}

// 7. Values beyond f32, and negative values.

#[test]
fn values_beyond_f32_and_negative_values_name_the_flag_and_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &[&str]); 10] = [
        (&["lesson2", "--init", "1e39,1"], &["--init", "1e39", "f32 range"]),
        (&["lesson2", "--true-a", "1,-1e39"], &["--true-a", "f32 range"]),
        (&["lesson2", "--noise", "1e39"], &["--noise", "1e39", "f32 range"]),
        (&["lesson2", "--lr", "1e39"], &["--lr", "f32 range"]),
        (&["lesson2", "--set", "data.noise=1e39"], &["data.noise", "f32 range"]),
        (&["lesson2", "--set", "model.init=[1e39, 1]"], &["model.init", "f32 range"]),
        (&["lesson2", "--set", "optimizer.lr=1e39"], &["optimizer.lr", "f32 range"]),
        (&["lesson2", "--lr", "-inf"], &["--lr", "greater than 0", "-inf"]),
        (&["lesson2", "--n", "-5"], &["--n", "at least 1", "got -5"]),
        (&["lesson2", "--seed", "-1"], &["--seed", "from 0 to 18446744073709551615", "got -1"]),
    ];
    for (args, expected) in cases {
        let output = refused(dir.path(), args, expected);
        assert!(!stderr(&output).contains("unexpected argument"), "{args:?}");
    }
    assert!(!dir.path().join("runs").exists(), "nothing written");
}

// Also mended.

#[test]
fn csv_header_names_are_escaped_and_cut_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = b"x,\x1b[31mred\x1b[0m,".to_vec();
    text.extend(std::iter::repeat_n(b'h', 100_000));
    text.extend_from_slice(b"\n1,2,3\n");
    let path = write(&dir.path().join("header.csv"), &text);
    let output =
        refused(dir.path(), &["fit", "--data", &path, "--target", "y"], &["no column `y`", "\\u{1b}[31mred"]);
    let message = stderr(&output);
    assert!(!message.contains('\x1b'), "no raw escape reaches the terminal: {message:?}");
    assert!(message.len() < 2000, "a cut message, not the 100 kB header: {} bytes", message.len());
}

#[test]
fn a_resume_reads_the_data_it_started_on_from_any_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(&dir.path().join("points.csv"), b"x,y\n0,1\n1,3\n2,5.5\n3,7\n");
    let output =
        descent_in(dir.path(), &["lesson2", "--data", "points.csv", "--out", "run", "--steps", "20", "-q"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let config = std::fs::read_to_string(dir.path().join("run/config.toml")).unwrap();
    let absolute = std::path::absolute(&data).unwrap();
    assert!(config.contains(&format!("path = \"{}\"", absolute.display())), "{config}");
    assert!(config.contains("sha256 = \""), "{config}");
    // From another folder, with the relative path the run was started with.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let resumed = descent_in(&elsewhere, &["train", "--resume", "../run", "--steps", "30", "-q"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    // An edited file is not trained on silently.
    std::fs::write(&data, b"x,y\n0,1\n1,3\n2,5.5\n3,9\n").unwrap();
    let before = std::fs::read(dir.path().join("run/checkpoint.bin")).unwrap();
    refused(
        &elsewhere,
        &["train", "--resume", "../run", "--steps", "40"],
        &["points.csv", "the data changed", "SHA-256"],
    );
    assert_eq!(std::fs::read(dir.path().join("run/checkpoint.bin")).unwrap(), before);
}

#[test]
fn small_mends_delimiter_bench_out_and_setting_a_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir.path().join("t.csv"), b"a,y\n1,2\n2,3\n3,5\n");
    refused(
        dir.path(),
        &["fit", "--data", &path, "--target", "y", "--delimiter", "."],
        &["--delimiter", "written inside numbers"],
    );
    let output =
        refused(dir.path(), &["bench", "--out", "/no/such/folder/bench.json"], &["--out", "/no/such/folder"]);
    assert!(String::from_utf8_lossy(&output.stdout).is_empty(), "refused before any benchmark ran");
    // A 100 kB `--set` value nested 50,000 deep: one short sentence, not the value echoed.
    let deep = format!("seed={}{}", "[".repeat(50_000), "]".repeat(50_000));
    let output = refused(dir.path(), &["lesson2", "--set", &deep], &["--set seed=[[[", "…"]);
    assert!(output.stderr.len() < 2000, "{} bytes", output.stderr.len());
    let output = descent_in(dir.path(), &["lesson2", "--set", "optimizer.name=adam", "--out", "adam", "-q"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let config = std::fs::read_to_string(dir.path().join("adam/config.toml")).unwrap();
    assert!(config.contains("name = \"adam\"") && !config.contains("dampening"), "{config}");
}

// 8. Second round (issue 30): sizes that wrapped or overflowed, and valid files refused.

#[test]
fn sixty_four_or_more_blocks_are_refused_not_wrapped() {
    // `side >> blocks` wrapped its shift count at 64 blocks in release builds: 64–67 blocks
    // passed the check (8 >> 64 was 8) and the run panicked later.
    let dir = tempfile::tempdir().unwrap();
    for blocks in [4, 63, 64, 65, 67, 200] {
        let channels = format!("model.channels=[{}]", vec!["1"; blocks].join(", "));
        refused(
            dir.path(),
            &["cnn", "--set", &channels, "--epochs", "1"],
            &["model.channels", &format!("{blocks} blocks halve 8x8 images to nothing"), "at most 3"],
        );
    }
    assert!(!dir.path().join("runs").exists(), "nothing written for a refused model");
}

#[test]
fn a_batch_larger_than_the_set_is_the_whole_set_for_image_models() {
    // Burn's loader reserved a batch's worth of items up front: a capacity overflow panic.
    let dir = tempfile::tempdir().unwrap();
    let args = ["cnn", "--batch-size", "18446744073709551615", "--epochs", "1", "--out", "big", "--json"];
    let output = descent_in(dir.path(), &args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let summary = String::from_utf8_lossy(&output.stdout);
    let line = summary.lines().last().unwrap_or_default();
    // The digits' training set is one batch: one update in the epoch.
    assert!(line.contains("\"steps\":1"), "{line}");
    assert!(!line.contains("18446744073709551615"), "the batch reported is the set's size: {line}");
}

#[test]
fn a_multi_member_gzip_idx_is_read_whole() {
    // `gzip -t` and `bgzip` accept a file of several gzip members one after another; a decoder
    // that stops after the first member called such a file truncated.
    let images = idx_images(8, 28, 28, 8 * 784);
    let dir = mnist_folder(&images, &idx_labels(8), true);
    let (first, rest) = images.split_at(1000);
    let members = [gzip(first), gzip(rest)].concat();
    std::fs::write(dir.path().join("train-images-idx3-ubyte.gz"), members).unwrap();
    let work = tempfile::tempdir().unwrap();
    let mnist = dir.path().to_str().unwrap();
    let output = descent_in(work.path(), &["cnn", "--mnist", mnist, "--epochs", "1", "--out", "run", "-q"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn run_files_that_link_to_endless_files_are_refused_not_read() {
    // Sized by `metadata().len()`, a link to /dev/zero (size 0) was read until memory ran out.
    let dir = tempfile::tempdir().unwrap();
    let run = lesson_run(dir.path(), "run");
    let relink = |name: &str| {
        let path = run.join(name);
        let saved = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        move || {
            std::fs::remove_file(&path).unwrap();
            std::fs::write(&path, saved).unwrap();
        }
    };
    let restore = relink("model.bpk");
    let limited = |args: &[&str], expected: &[&str]| refused_limited(dir.path(), args, expected);
    limited(&["export", "--model", "run", "--format", "safetensors"], &["model.bpk", "a character device"]);
    restore();
    let restore = relink("checkpoint.bin");
    limited(&["lesson2", "--resume", "run", "--steps", "40"], &["checkpoint.bin", "a character device"]);
    restore();
}

#[test]
fn event_files_that_are_links_folders_or_fifos_are_left_alone_on_resume() {
    // Resume appended to a linked event file (outside the folder, through the link), read a
    // directory's "file" with a message about writing, and hung on a FIFO.
    for kind in ["link", "folder", "fifo"] {
        let dir = tempfile::tempdir().unwrap();
        let run = lesson_run(dir.path(), "run");
        let outside = write(&dir.path().join("outside.txt"), b"outside");
        let events = descent::report::tensorboard::event_files(&run).pop().expect("an event file");
        std::fs::remove_file(&events).unwrap();
        match kind {
            "link" => std::os::unix::fs::symlink(&outside, &events).unwrap(),
            "folder" => std::fs::create_dir(&events).unwrap(),
            _ => assert!(Command::new("mkfifo").arg(&events).status().unwrap().success()),
        }
        let mut child = Command::new(binary())
            .args(["lesson2", "--resume", "run", "--steps", "40", "-q"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() && started.elapsed() < std::time::Duration::from_secs(60) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{kind}: {}", stderr(&output));
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "outside", "{kind}: written through");
        let kept = std::fs::symlink_metadata(&events).unwrap().file_type();
        assert!(!kept.is_file(), "{kind}: replaced by a regular file");
        let logged = logged_scalars(&run);
        assert!(logged.contains(&("train_loss".to_string(), 39)), "{kind}: the resumed steps were logged");
    }
}

#[test]
fn output_into_special_files_and_dash_writes_into_them_without_replacing_them() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    lesson_run(dir.path(), "run");
    let input = write(&dir.path().join("x.csv"), b"x\n0.5\n");
    // `-`: standard output, and no file named `-`.
    let output = descent_in(dir.path(), &["predict", "--model", "run", "--input", &input, "--output", "-"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("x,prediction\n0.5,"));
    assert!(!dir.path().join("-").exists());
    let output = descent_in(dir.path(), &["export", "--model", "run", "--format", "onnx", "--output", "-"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        output.stdout.len() > 100 && stderr(&output).contains("wrote - (linear model"),
        "{}",
        stderr(&output)
    );
    // A link to /dev/null stays a link (the rename replaced it by a regular file).
    let null = dir.path().join("null.csv");
    std::os::unix::fs::symlink("/dev/null", &null).unwrap();
    for args in [
        vec!["predict", "--model", "run", "--input", &input, "--output", "null.csv"],
        vec!["export", "--model", "run", "--format", "safetensors", "--output", "null.csv"],
    ] {
        let output = descent_in(dir.path(), &args);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
        assert!(std::fs::symlink_metadata(&null).unwrap().file_type().is_symlink(), "{args:?}");
    }
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    // A FIFO is written into, and read whole at its other end.
    let fifo = dir.path().join("predictions.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let mut reader = Command::new("cat").arg(&fifo).stdout(Stdio::piped()).spawn().unwrap();
    let fifo_name = fifo.to_str().unwrap();
    let output =
        descent_in(dir.path(), &["predict", "--model", "run", "--input", &input, "--output", fifo_name]);
    let is_fifo = std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo();
    if !is_fifo {
        // The old behaviour: the FIFO replaced by a regular file, its reader left waiting.
        let _ = reader.kill();
    }
    let read = reader.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(is_fifo, "the FIFO was replaced by a regular file");
    assert!(String::from_utf8_lossy(&read.stdout).starts_with("x,prediction\n0.5,"));
}

#[test]
fn links_planted_under_temporary_names_are_never_followed() {
    // The temporary file's name was `.NAME.tmp-PID`: a link planted under the next PIDs' names
    // made the write go through it, over the link's target.
    let dir = tempfile::tempdir().unwrap();
    lesson_run(dir.path(), "run");
    let input = write(&dir.path().join("x.csv"), b"x\n0.5\n");
    let victim = write(&dir.path().join("victim.txt"), b"precious\n");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let next_pid = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .unwrap_or(0);
    for pid in next_pid..next_pid + 200 {
        for name in [format!(".p.csv.tmp-{pid}"), format!(".p.csv.probe-{pid}")] {
            std::os::unix::fs::symlink(&victim, out.join(name)).unwrap();
        }
    }
    let output =
        descent_in(dir.path(), &["predict", "--model", "run", "--input", &input, "--output", "out/p.csv"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "written through a planted link");
    assert!(std::fs::read_to_string(out.join("p.csv")).unwrap().starts_with("x,prediction\n"));
}

/// Every `(tag, step)` of the event files in `run`.
fn logged_scalars(run: &Path) -> std::collections::BTreeSet<(String, i64)> {
    descent::report::tensorboard::event_files(run)
        .iter()
        .filter_map(|path| descent::report::tensorboard::read_scalars(path).ok())
        .flatten()
        .map(|(tag, step, _)| (tag, step))
        .collect()
}

#[test]
fn a_run_killed_at_its_checkpoints_and_resumed_logs_every_epoch_of_metrics_csv() {
    // The log's flush was throttled and the checkpoint's was not: killed just after a
    // checkpoint, a run lost the epochs' scalars for good (the resumed run starts after them).
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let checkpoint = run.join("checkpoint.bin");
    let modified = || std::fs::metadata(&checkpoint).and_then(|m| m.modified()).ok();
    let epochs = "8";
    let mut args = vec!["cnn", "--epochs", epochs, "--checkpoint-every", "1", "--out", "run", "-q"];
    // Four runs killed (SIGKILL) the moment their first new checkpoint appears, then one to the end.
    for attempt in 0..5 {
        let before = modified();
        let mut child =
            Command::new(binary()).args(&args).current_dir(dir.path()).stdout(Stdio::null()).spawn().unwrap();
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if attempt < 4 && modified().is_some_and(|now| Some(now) != before) {
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        match finished {
            Some(status) => assert!(status.success(), "run {attempt} failed"),
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
            }
        }
        args = vec!["cnn", "--resume", "run", "--epochs", epochs, "-q"];
    }
    assert_every_epoch_logged(&run, 8);
}

/// Every row of `run`'s `metrics.csv` (`epochs` of them) has its scalars in the event log.
fn assert_every_epoch_logged(run: &Path, epochs: usize) {
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let logged = logged_scalars(run);
    let rows: Vec<&str> = metrics.lines().skip(1).collect();
    assert_eq!(rows.len(), epochs, "{metrics}");
    for row in rows {
        let step: i64 = row.split(',').next().unwrap().parse().unwrap();
        for tag in ["train_loss", "valid_loss", "accuracy"] {
            assert!(logged.contains(&(tag.to_string(), step)), "{tag} at step {step} missing from the log");
        }
    }
}

/// The kill-at-random-points test: six runs killed (SIGKILL) after seeded random delays (before
/// the first checkpoint, mid-epoch, while a checkpoint or the log is written), each continued
/// with `--resume`, or started again with `--out` when the kill came before the first
/// checkpoint, then one run to the end: the event log holds every step `metrics.csv` holds.
#[test]
fn a_run_killed_at_random_points_and_resumed_logs_every_epoch_of_metrics_csv() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut state = 0x00C0_FFEE_2026u64;
    let epochs = "6";
    for attempt in 0..7 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let delay = std::time::Duration::from_millis(20 + state % 1500);
        let started = run.join("checkpoint.bin").exists();
        let mut args = vec!["cnn", "--epochs", epochs, "--checkpoint-every", "1", "-q"];
        args.extend(if started { ["--resume", "run"] } else { ["--out", "run"] });
        let mut child =
            Command::new(binary()).args(&args).current_dir(dir.path()).stdout(Stdio::null()).spawn().unwrap();
        let begun = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if attempt < 6 && begun.elapsed() >= delay {
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        match status {
            Some(status) => {
                assert!(status.success(), "run {attempt} ({args:?}) failed");
                break; // finished before its kill: the last attempt need not run
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
            }
        }
    }
    assert!(run.join("summary.json").is_file(), "the run finished");
    assert_every_epoch_logged(&run, 6);
}

#[test]
fn an_export_whose_listing_cannot_be_printed_says_the_model_was_written() {
    // `export > /dev/full` ended with exit 2 and "cannot write to standard output", though the
    // model had been written.
    let dir = tempfile::tempdir().unwrap();
    lesson_run(dir.path(), "run");
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let args = ["export", "--model", "run", "--format", "onnx", "--output", "model.onnx"];
    let output = Command::new(binary()).args(args).current_dir(dir.path()).stdout(full).output().unwrap();
    assert_refused(&output, &args, &["cannot write to standard output", "model.onnx was written whole"]);
    assert!(std::fs::metadata(dir.path().join("model.onnx")).unwrap().len() > 100);
}

#[test]
fn a_config_edited_to_other_layer_sizes_is_named_without_debug_text() {
    // Was: `(Validation("Apply errors: [\"blocks.0.conv.weight: shape mismatch, expected Shape {`.
    let dir = tempfile::tempdir().unwrap();
    cnn_run(dir.path(), "run");
    let config = dir.path().join("run/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("channels = [32, 64]"), "{text}");
    std::fs::write(&config, text.replace("channels = [32, 64]", "channels = [16, 64]")).unwrap();
    let output = refused(
        dir.path(),
        &["export", "--model", "run", "--format", "safetensors"],
        &[
            "model.bpk",
            "`blocks.0.conv.weight` is [32, 1, 5, 5] in the file and [16, 1, 5, 5]",
            "more parameters differ",
        ],
    );
    let text = stderr(&output);
    assert!(!text.contains("Validation(") && !text.contains("Shape {"), "{text}");
}

#[test]
fn pictures_given_for_csv_or_a_jpeg_named_png_are_named_for_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let png = write(&dir.path().join("points.png"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    let jpeg = write(&dir.path().join("photo.jpg"), b"\xff\xd8\xff\xe0\0\x10JFIF\0");
    refused(dir.path(), &["lesson2", "--data", &png], &["points.png", "a PNG picture, not CSV text"]);
    refused(
        dir.path(),
        &["fit", "--data", &jpeg, "--target", "y"],
        &["photo.jpg", "a JPEG picture, not CSV text"],
    );
    cnn_run(dir.path(), "run");
    let named_png = write(&dir.path().join("digit.png"), b"\xff\xd8\xff\xe0\0\x10JFIF\0");
    refused(
        dir.path(),
        &["predict", "--model", "run", "--input", &named_png],
        &["digit.png", "a JPEG picture, whatever its name says", "expected a PNG"],
    );
}

#[test]
fn a_cnn_trains_within_an_address_space_near_what_it_uses() {
    // mimalloc reserved address space 1 GiB at a time: under `ulimit -v 1200000` a digits CNN
    // (about 200 MB resident) was told that data/digits.csv (1.7 MB) was "too large to hold in
    // memory", and the reservation decided whether a limit passed, not the memory used.
    let dir = tempfile::tempdir().unwrap();
    for limit_kib in [1_200_000, 600_000] {
        let out = format!("run-{limit_kib}");
        let shell =
            format!("ulimit -v {limit_kib} && exec \"$0\" cnn --epochs 1 --device flex -q --out {out}");
        let output =
            Command::new("sh").arg("-c").arg(shell).arg(binary()).current_dir(dir.path()).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "ulimit -v {limit_kib}: {}", stderr(&output));
    }
}

/// Below what a run needs, every limit ends in one sentence and exit code 2: a size refused
/// before it is allocated, the worker threads that cannot start, or an allocation that failed
/// anyway (Rust's handler aborts; descent's SIGABRT handler says "out of memory"). Before, the
/// same sweep ended in aborts (exit 134), a rayon panic (101) and a CSV of 1.7 MB called too
/// large. The sweep goes down 10 MB at a time until the program cannot even be loaded (the
/// kernel or the dynamic loader refuses it, before any of descent runs).
#[test]
fn every_address_space_limit_below_a_runs_needs_ends_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let mut refused = 0;
    for limit_kib in (60_000..=400_000).rev().step_by(10_000) {
        let out = format!("run-{limit_kib}");
        let shell =
            format!("ulimit -v {limit_kib} && exec \"$0\" cnn --epochs 1 --device flex -q --out {out}");
        let output =
            Command::new("sh").arg("-c").arg(shell).arg(binary()).current_dir(dir.path()).output().unwrap();
        let (text, code) = (stderr(&output), output.status.code());
        let not_loaded = (code == Some(127) && text.contains("error while loading shared libraries"))
            || (code.is_none() && text.trim().is_empty());
        if not_loaded {
            break; // the kernel or the loader refused the program: nothing of descent ran
        }
        assert!(!text.contains("panicked"), "ulimit -v {limit_kib}: {text}");
        match output.status.code() {
            Some(0) => {}
            Some(2) => {
                let errors = text.lines().filter(|line| line.starts_with("error:")).count();
                assert_eq!(errors, 1, "ulimit -v {limit_kib}: one error line: {text}");
                refused += 1;
            }
            other => panic!("ulimit -v {limit_kib}: exit {other:?}: {text}"),
        }
    }
    assert!(refused > 0, "the sweep never went below what a run needs");
}

/// A PNG chunk: its length, type, data and CRC-32.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(&crc.sum().to_be_bytes());
    chunk
}

/// A valid grey 8-bit PNG of `side × side` black pixels: a few megabytes of compressed
/// zeros that decode to `side²` bytes.
fn png_bomb(side: u32) -> Vec<u8> {
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let row = vec![0u8; side as usize + 1]; // filter byte 0, then the pixels
    for _ in 0..side {
        zlib.write_all(&row).unwrap();
    }
    png_with_header(side, side, 8, 0, 0, &zlib.finish().unwrap()) // 8 bits, grey, no interlace
}

#[test]
fn a_picture_declaring_a_huge_frame_is_refused_before_it_is_decoded() {
    // An 875 KB PNG declaring 30000x30000 grey pixels drove `predict` to 8.4 GB: the frame and
    // its f32 copy were allocated before anything was checked.
    let dir = tempfile::tempdir().unwrap();
    cnn_run(dir.path(), "run");
    let bomb = png_bomb(30_000);
    assert!(bomb.len() < 8 << 20, "{} bytes", bomb.len());
    let path = write(&dir.path().join("bomb.png"), &bomb);
    refused_limited(
        dir.path(),
        &["predict", "--model", "run", "--input", &path],
        &["bomb.png", "30000x30000 pixels", "at most 16384"],
    );
}

/// `predict`'s output for `input` given as `--input ARG` with `stdin` piped in.
fn predict_piped(dir: &Path, run: &str, arg: &str, stdin: &[u8]) -> Output {
    let mut child = Command::new(binary())
        .args(["predict", "--model", run, "--input", arg])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run descent");
    let mut pipe = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    // Written from a thread: a reader that stops early must not block the test on a full pipe.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&bytes);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

#[test]
fn predict_reads_standard_input_pipes_and_fifos_as_it_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    lesson_run(dir.path(), "lesson");
    cnn_run(dir.path(), "digits");
    let rows = b"x\n0.5\n-1\n0.25\n";
    let csv = write(&dir.path().join("rows.csv"), rows);
    let digits = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv")).unwrap();
    let digit_rows: Vec<&[u8]> = digits.split_inclusive(|&b| b == b'\n').take(40).collect();
    let digit_rows = digit_rows.concat();
    let digit_file = write(&dir.path().join("digits.csv"), &digit_rows);
    for (run, file, bytes) in [("lesson", &csv, &rows[..]), ("digits", &digit_file, &digit_rows[..])] {
        let from_file = descent_in(dir.path(), &["predict", "--model", run, "--input", file]);
        assert_eq!(from_file.status.code(), Some(0), "{}", stderr(&from_file));
        for arg in ["-", "/dev/stdin"] {
            let piped = predict_piped(dir.path(), run, arg, bytes);
            assert_eq!(piped.status.code(), Some(0), "{run} {arg}: {}", stderr(&piped));
            assert_eq!(piped.stdout, from_file.stdout, "{run} {arg}: the rows differ from the file's");
            assert_eq!(piped.stderr, from_file.stderr, "{run} {arg}: the score differs from the file's");
        }
    }
    // A FIFO, written by another process while predict reads it.
    let fifo = dir.path().join("rows.fifo");
    if Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, rows).unwrap())
        };
        let from_fifo = descent_in(dir.path(), &["predict", "--model", "lesson", "--input", "rows.fifo"]);
        writer.join().unwrap();
        let from_file = descent_in(dir.path(), &["predict", "--model", "lesson", "--input", &csv]);
        assert_eq!(from_fifo.status.code(), Some(0), "{}", stderr(&from_fifo));
        assert_eq!(from_fifo.stdout, from_file.stdout);
    }
    // Bad rows on a stream are named by the stream, not by a temporary copy.
    let bad = predict_piped(dir.path(), "lesson", "-", b"x\n0.5\nseven\n");
    assert_refused(&bad, &["predict", "--input", "-"], &["standard input", "line 3"]);
    assert!(!stderr(&bad).contains("descent-predict"), "{}", stderr(&bad));
}

#[test]
fn a_run_that_stopped_before_its_first_checkpoint_can_be_started_again_in_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let full = lesson_run(dir.path(), "full");
    // What `lesson2 | head -1`, or a kill before the first checkpoint, leaves: the start's files.
    let stopped = dir.path().join("stopped");
    std::fs::create_dir(&stopped).unwrap();
    std::fs::copy(full.join("config.toml"), stopped.join("config.toml")).unwrap();
    let events: Vec<PathBuf> = std::fs::read_dir(&full)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."))
        .collect();
    assert_eq!(events.len(), 1, "one event file in a finished lesson run");
    let stale = stopped.join("events.out.tfevents.0000000001.stale");
    std::fs::copy(&events[0], &stale).unwrap();
    refused(
        dir.path(),
        &["lesson2", "--resume", "stopped"],
        &["stopped before its first checkpoint", "nothing to continue", "--out stopped"],
    );
    let again = descent_in(dir.path(), &["lesson2", "--out", "stopped", "--quiet", "--steps", "20"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(stopped.join("model.bpk").is_file() && stopped.join("checkpoint.bin").is_file());
    assert!(!stale.exists(), "the earlier start's event file is replaced");
    // Anything else in the folder, or a checkpoint, and it is not a stopped start: refused.
    for (name, extra) in [("notes", "notes.txt"), ("resumable", "checkpoint.bin")] {
        let folder = dir.path().join(name);
        std::fs::create_dir(&folder).unwrap();
        std::fs::copy(full.join("config.toml"), folder.join("config.toml")).unwrap();
        std::fs::write(folder.join(extra), b"kept").unwrap();
        refused(dir.path(), &["lesson2", "--out", name], &[name, "already holds files"]);
        assert_eq!(std::fs::read(folder.join(extra)).unwrap(), b"kept");
    }
}

#[test]
fn a_loss_that_overflows_before_any_update_blames_the_data_not_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(&dir.path().join("huge.csv"), b"x,y\n3.3e38,1\n-3.3e38,2\n1e38,3\n");
    let output = descent_in(dir.path(), &["lesson2", "--data", &data, "--out", "huge", "--quiet"]);
    let text = stderr(&output);
    assert!(!text.contains("panicked"), "{text}");
    assert!(!text.contains("smaller --lr"), "the rate is not the cause: {text}");
    assert!(text.contains("before any update") && text.contains("f32"), "{text}");
}

/// A PNG whose header declares `width × height` pixels of `depth` bits in colour type `colour`,
/// followed by `payload` as its compressed data (not necessarily what the header promises).
fn png_with_header(width: u32, height: u32, depth: u8, colour: u8, interlace: u8, payload: &[u8]) -> Vec<u8> {
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[depth, colour, 0, 0, interlace]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &header));
    if colour == 3 {
        png.extend(png_chunk(b"PLTE", &[0, 0, 0, 255, 255, 255]));
    }
    png.extend(png_chunk(b"IDAT", payload));
    png.extend(png_chunk(b"IEND", b""));
    png
}

/// The fuzz property over picture headers: whatever a PNG header declares (sides from 0 to
/// 2^32 − 1, every bit depth and colour type, valid or not, interlaced or not) and whatever
/// follows it (nothing, zeros that decompress far beyond the frame, garbage), `predict` under
/// the address-space limit ends with its predictions or one `error:` line: never a crash, an
/// abort for memory or a panic. Seeded, so a failure names a case that can be run again.
#[test]
fn no_picture_header_makes_the_decoder_allocate_beyond_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    cnn_run(dir.path(), "run");
    let mut state = 0x5EED_2026_1205u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let sides = [0u32, 1, 7, 28, 16_384, 16_385, 46_341, 65_535, 1 << 31, u32::MAX];
    let mut zeros = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    zeros.write_all(&vec![0u8; 64 << 20]).unwrap();
    let payloads = [Vec::new(), zeros.finish().unwrap(), (0..4096).map(|i| (i * 37 % 251) as u8).collect()];
    for case in 0..48 {
        let pick = |r: u64, n: usize| (r % n as u64) as usize;
        let side =
            |r: u64| if r.is_multiple_of(3) { (r >> 8) as u32 } else { sides[pick(r >> 4, sides.len())] };
        let (width, height) = (side(next()), side(next()));
        let depth = [1u8, 2, 4, 8, 16, 3, 0, 32][pick(next(), 8)];
        let colour = [0u8, 2, 3, 4, 6, 1, 7][pick(next(), 7)];
        let interlace = (next() % 3) as u8;
        let payload = &payloads[pick(next(), payloads.len())];
        let name = format!("case{case}.png");
        let path = write(
            &dir.path().join(&name),
            &png_with_header(width, height, depth, colour, interlace, payload),
        );
        let args = ["predict", "--model", "run", "--input", &path];
        let output = descent_limited(dir.path(), &args);
        let text = stderr(&output);
        let what =
            format!("case {case}: {width}x{height}, depth {depth}, colour {colour}, interlace {interlace}");
        assert!(matches!(output.status.code(), Some(0) | Some(2)), "{what}: {:?} {text}", output.status);
        assert!(!text.contains("panicked") && !text.contains("memory allocation"), "{what}: {text}");
        if output.status.code() == Some(2) {
            assert!(text.contains(&name), "{what}: the message names the file: {text}");
        }
    }
}

/// Pictures whose names are not UTF-8 were printed with U+FFFD, so two files differing only
/// there could not be told apart: each byte that is not UTF-8 is written `\xNN`.
#[cfg(unix)]
#[test]
fn picture_names_that_are_not_utf8_are_escaped_reversibly_in_predictions() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    cnn_run(dir.path(), "run");
    let pictures = dir.path().join("pictures");
    std::fs::create_dir(&pictures).unwrap();
    for name in [&b"shirt\xff.png"[..], b"shirt\xfe.png", b"plain.png"] {
        std::fs::write(pictures.join(std::ffi::OsStr::from_bytes(name)), png_bomb(28)).unwrap();
    }
    let output = descent_in(dir.path(), &["predict", "--model", "run", "--input", "pictures"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let csv = String::from_utf8(output.stdout).expect("the predictions are UTF-8");
    assert!(csv.contains("shirt\\xff.png,") && csv.contains("shirt\\xfe.png,"), "{csv}");
    assert!(csv.contains("plain.png,") && !csv.contains('\u{FFFD}'), "{csv}");
}
