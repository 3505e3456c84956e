//! Data-parallel training on MPI: `descent` started by `mpirun -n 2` against the same run in one
//! process. The oracle is the single process: the same global batches, split across two
//! processes whose gradients are summed, must give its metrics and parameters.
//!
//! The jobs run on loopback over MPI's TCP transport (`--mca btl self,tcp`), one rayon thread
//! per process. They need the binary built with the feature `mpi` and Open MPI's `mpirun`:
//!
//! ```text
//! apt-get install openmpi-bin libopenmpi-dev libclang-dev
//! cargo test --release --features wgpu,remote,mpi --test mpi
//! ```
//!
//! Without `mpirun` on the PATH they print a notice and pass, unless `DESCENT_REQUIRE_MPI` is
//! set (`.ci/run` sets it). Without the feature, one test checks that a launcher's several
//! processes are refused rather than each training alone. This file does not link the library
//! (it runs the binary and reads its files), so it adds no Burn link to the test build.

use std::process::Command;

const DESCENT: &str = env!("CARGO_BIN_EXE_descent");

#[cfg(not(feature = "mpi"))]
#[test]
fn several_processes_of_a_launcher_are_refused_without_mpi() {
    // A launcher's variables without MPI compiled in: each process would train alone and all
    // would write the same folder, so the command refuses before anything happens.
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(DESCENT)
        .args(["lesson2", "--out", "run"])
        .current_dir(dir.path())
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .env("OMPI_COMM_WORLD_RANK", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("started 2 processes") && stderr.contains("--features mpi"), "{stderr}");
    assert!(!dir.path().join("run").exists(), "nothing was written");
}

#[cfg(feature = "mpi")]
mod jobs {
    use std::path::Path;
    use std::process::{Output, Stdio};

    use super::*;

    /// `descent` in one process, one rayon thread (as each process of the jobs has).
    fn single(args: &[&str], dir: &Path) -> Output {
        let output = Command::new(DESCENT)
            .args(args)
            .current_dir(dir)
            .env("RAYON_NUM_THREADS", "1")
            .output()
            .expect("descent runs");
        assert!(output.status.success(), "descent {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        output
    }

    /// Read a number column of `metrics.csv` by its header name.
    fn column(folder: &Path, name: &str) -> Vec<f64> {
        let text = std::fs::read_to_string(folder.join("metrics.csv")).expect("metrics.csv");
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
        let at = header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name}"));
        lines.map(|line| line.split(',').nth(at).expect("the column").parse().expect("a number")).collect()
    }

    fn summary(folder: &Path) -> serde_json::Value {
        let text = std::fs::read_to_string(folder.join("summary.json")).expect("summary.json");
        serde_json::from_str(&text).expect("summary.json is JSON")
    }

    /// Every parameter and running statistic of a finished run, by name, through
    /// `descent export --format safetensors`.
    fn parameters(folder: &Path) -> Vec<(String, Vec<f32>)> {
        let file = folder.with_extension("safetensors");
        let folder_text = folder.to_str().expect("a UTF-8 path");
        let args =
            ["export", "--model", folder_text, "--format", "safetensors", "--output", file.to_str().unwrap()];
        single(&args, Path::new("."));
        let bytes = std::fs::read(&file).expect("the exported file");
        let tensors = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        let mut named: Vec<(String, Vec<f32>)> = tensors
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let values = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                (name, values)
            })
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// The largest difference between two runs' values of one parameter, over every parameter.
    fn largest_difference(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> (f32, String) {
        assert_eq!(a.len(), b.len(), "the same parameters");
        let mut worst = (0.0f32, String::new());
        for ((name, x), (other, y)) in a.iter().zip(b) {
            assert_eq!((name, x.len()), (other, y.len()));
            for (p, q) in x.iter().zip(y) {
                if (p - q).abs() > worst.0 {
                    worst = ((p - q).abs(), name.clone());
                }
            }
        }
        worst
    }

    /// `mpirun -n 2` on loopback TCP, one thread per process, or `None` (with a notice) when
    /// Open MPI's `mpirun` is not installed and `DESCENT_REQUIRE_MPI` is not set.
    fn mpirun(dir: &Path) -> Option<Command> {
        let found = Command::new("mpirun").arg("--version").output().is_ok_and(|o| o.status.success());
        if !found {
            // Set unless empty or `0`, as every DESCENT_REQUIRE_* variable.
            let required =
                std::env::var("DESCENT_REQUIRE_MPI").is_ok_and(|value| !value.is_empty() && value != "0");
            assert!(
                !required,
                "DESCENT_REQUIRE_MPI is set but mpirun is not installed (apt-get install openmpi-bin)"
            );
            eprintln!("notice: mpirun not found; skipping (apt-get install openmpi-bin libopenmpi-dev)");
            return None;
        }
        let mut command = Command::new("mpirun");
        command
            .args(["-n", "2", "--oversubscribe", "--bind-to", "none"])
            .args(["--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo"])
            .args(["-x", "RAYON_NUM_THREADS=1"])
            .current_dir(dir)
            .env("RAYON_NUM_THREADS", "1")
            // CI runs as root, which Open MPI refuses unless told.
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        Some(command)
    }

    /// `descent ARGS` under `mpirun -n 2`, finished.
    fn job(dir: &Path, args: &[&str]) -> Option<Output> {
        let mut command = mpirun(dir)?;
        Some(command.arg(DESCENT).args(args).output().expect("mpirun runs"))
    }

    fn succeeded(output: &Output) {
        assert!(
            output.status.success(),
            "the job failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The digits CNN without batch norm and dropout, with `flags` added: two processes give
    /// the metrics and parameters of one within 1e-5. The two processes' output.
    fn two_processes_as_one(dir: &Path, flags: &[&str]) -> Option<Output> {
        let base = ["cnn", "--set", "model.batch_norm=false", "--set", "model.dropout=0"];
        let flags = [&base[..], flags].concat();
        let output = job(dir, &[&flags[..], &["--out", "two"]].concat())?;
        succeeded(&output);
        single(&[&flags[..], &["--out", "one"]].concat(), dir);
        let (one, two) = (dir.join("one"), dir.join("two"));
        for name in ["train_loss", "valid_loss", "accuracy"] {
            for (a, b) in column(&one, name).iter().zip(column(&two, name)) {
                assert!((a - b).abs() < 1e-5, "{flags:?}: {name}: one process {a}, two {b}");
            }
        }
        let (difference, at) = largest_difference(&parameters(&one), &parameters(&two));
        assert!(difference < 1e-5, "{flags:?}: {at} differs by {difference}");
        assert_eq!(summary(&two)["processes"], 2);
        assert_eq!(summary(&one)["processes"], 1);
        Some(output)
    }

    #[test]
    fn two_processes_train_the_cnn_without_batch_norm_as_one_does() {
        let dir = tempfile::tempdir().unwrap();
        let Some(output) = two_processes_as_one(dir.path(), &["--epochs", "2", "--batch-size", "64"]) else {
            return;
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(stdout.matches("outputs: two").count(), 1, "rank 0 alone prints: {stdout}");
        assert!(stdout.contains("in each of 2 processes (MPI)"), "{stdout}");
        assert!(!String::from_utf8_lossy(&output.stderr).contains("rank 1"), "rank 1 printed");
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files.len(), 4, "two run folders and their exports, nothing else: {files:?}");
    }

    #[test]
    fn accumulation_and_several_devices_in_each_process_still_train_as_one_process() {
        // Two batches of 32 make each update; inside each process its share is split again
        // across two devices.
        let dir = tempfile::tempdir().unwrap();
        let flags = ["--epochs", "1", "--batch-size", "32", "--accumulate", "2"];
        if two_processes_as_one(dir.path(), &flags).is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        two_processes_as_one(dir.path(), &["--epochs", "1", "--devices", "flex,ndarray"]);
    }

    #[test]
    fn synchronised_batch_norm_gives_the_single_process_run() {
        // Plain SGD: the convolution biases before batch norm have gradients that are zero up to
        // rounding, which Adam's normalisation would blow up into steps of full size, so that
        // any two orders of summation (one process or two) part ways on those biases.
        let dir = tempfile::tempdir().unwrap();
        let flags = ["cnn", "--epochs", "2", "--set", "model.dropout=0", "--optim", "sgd", "--lr", "0.01"];
        let Some(output) = job(dir.path(), &[&flags[..], &["--sync-bn", "--out", "synced"]].concat()) else {
            return;
        };
        succeeded(&output);
        let output = job(dir.path(), &[&flags[..], &["--out", "shares"]].concat()).unwrap();
        succeeded(&output);
        single(&[&flags[..], &["--out", "one"]].concat(), dir.path());
        let one = parameters(&dir.path().join("one"));
        let (difference, at) = largest_difference(&one, &parameters(&dir.path().join("synced")));
        assert!(difference < 1e-5, "synchronised: {at} differs by {difference}");
        let losses = |name: &str| column(&dir.path().join(name), "valid_loss");
        for (a, b) in losses("one").iter().zip(losses("synced")) {
            assert!((a - b).abs() < 1e-5, "valid_loss: one process {a}, synchronised {b}");
        }
        // Each process normalising its own share is another computation: the flag matters.
        let (apart, _) = largest_difference(&one, &parameters(&dir.path().join("shares")));
        assert!(apart > 1e-4, "per-share statistics differ from the whole batch's: {apart}");
        let config = std::fs::read_to_string(dir.path().join("synced/config.toml")).unwrap();
        assert!(config.contains("sync_batch_norm = true"), "{config}");
    }

    #[test]
    fn the_linear_model_on_mini_batches_finds_the_single_process_a() {
        let dir = tempfile::tempdir().unwrap();
        let flags = ["lesson2", "--batch-size", "10", "--epochs", "5", "--json"];
        let Some(output) = job(dir.path(), &[&flags[..], &["--out", "two"]].concat()) else { return };
        succeeded(&output);
        single(&[&flags[..], &["--out", "one"]].concat(), dir.path());
        let a = |name: &str| -> Vec<f64> {
            let value = &summary(&dir.path().join(name))["a"];
            value.as_array().expect("a").iter().map(|v| v.as_f64().unwrap()).collect()
        };
        let (one, two) = (a("one"), a("two"));
        for (p, q) in one.iter().zip(&two) {
            assert!((p - q).abs() < 1e-6, "a: one process {one:?}, two {two:?}");
        }
    }

    /// Start `descent ARGS` under `mpirun -n 2`, and wait for its standard output to print a
    /// line starting with `line`.
    fn start_until(dir: &Path, args: &[&str], line: &str) -> Option<std::process::Child> {
        use std::io::BufRead;
        let mut command = mpirun(dir)?;
        let mut child =
            command.arg(DESCENT).args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let found = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|printed| printed.trim_start_matches("\u{1b}[2K").starts_with(line));
        assert!(found, "the job never printed {line:?}");
        // Keep reading, so that the job never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Some(child)
    }

    #[test]
    fn interrupted_and_resumed_under_mpirun_a_run_ends_as_an_uninterrupted_one() {
        let dir = tempfile::tempdir().unwrap();
        // Batch norm synchronised, so that every process holds the same running statistics at
        // every update; dropout stays (each share's masks come from the seed and the step).
        let flags = ["cnn", "--epochs", "30", "--sync-bn"];
        let Some(mut child) = start_until(dir.path(), &[&flags[..], &["--out", "cut"]].concat(), "epoch 3/")
        else {
            return;
        };
        // Ctrl-C at the launcher: it passes the signal on to every process.
        send_signal(child.id(), "INT");
        let status = child.wait().unwrap();
        assert!(!status.success(), "an interrupted job ends with an error");
        let cut = dir.path().join("cut");
        let shown = single(&["config", "show", "--resume", cut.to_str().unwrap()], dir.path());
        assert!(String::from_utf8_lossy(&shown.stdout).contains("sync_batch_norm = true"));
        let trained = column(&cut, "epoch").len();
        assert!(trained < 30, "the job was interrupted part-way ({trained} epochs)");
        let resumed = job(dir.path(), &["cnn", "--resume", cut.to_str().unwrap()]).unwrap();
        succeeded(&resumed);
        let whole = job(dir.path(), &[&flags[..], &["--out", "whole"]].concat()).unwrap();
        succeeded(&whole);
        let (a, b) = (parameters(&cut), parameters(&dir.path().join("whole")));
        assert_eq!(largest_difference(&a, &b).0, 0.0, "bit for bit");
        assert_eq!(
            std::fs::read_to_string(cut.join("metrics.csv")).unwrap(),
            std::fs::read_to_string(dir.path().join("whole/metrics.csv")).unwrap()
        );
    }

    #[test]
    fn a_killed_process_ends_the_job_and_rank_0_keeps_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let args = ["cnn", "--epochs", "500", "--checkpoint-every", "1", "--out", "killed"];
        let Some(mut child) = start_until(dir.path(), &args, "epoch 2/") else { return };
        let rank_1 = process_of_rank(child.id(), 1).expect("rank 1's process");
        let killed_at = std::time::Instant::now();
        send_signal(rank_1, "KILL");
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if killed_at.elapsed() > std::time::Duration::from_secs(30) {
                let _ = child.kill();
                panic!("the job still ran 30 s after rank 1 was killed");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert!(!status.success(), "the job ends with an error");
        // The last checkpoint is whole: it reads back, checksum and all, and continues.
        let killed = dir.path().join("killed");
        let shown = single(&["config", "show", "--resume", killed.to_str().unwrap()], dir.path());
        assert!(String::from_utf8_lossy(&shown.stdout).contains("checkpoint_every = 1"));
        single(&["cnn", "--resume", killed.to_str().unwrap(), "--epochs", "3", "-q"], dir.path());
        assert_eq!(column(&killed, "epoch").last().copied(), Some(3.0));
    }

    #[test]
    fn processes_reading_different_data_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for (rank, slope) in [(0, 3.0), (1, -3.0)] {
            let folder = dir.path().join(format!("rank{rank}"));
            std::fs::create_dir(&folder).unwrap();
            let rows: String =
                (0..40).map(|i| format!("{},{}\n", i as f64 / 40.0, slope * i as f64 / 40.0 + 2.0)).collect();
            std::fs::write(folder.join("data.csv"), format!("x,y\n{rows}")).unwrap();
        }
        // The same command line in each process; each reads data.csv in a folder of its own.
        let script = format!(
            "cd rank$OMPI_COMM_WORLD_RANK && exec {DESCENT} fit --data data.csv --target y --out ../fitted"
        );
        refused(dir.path(), &script, "data.csv: rank 1 reads different data from rank 0", "fitted");
    }

    #[test]
    fn processes_with_different_configurations_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let script = format!("exec {DESCENT} lesson2 --seed $((OMPI_COMM_WORLD_RANK + 1)) --out run");
        refused(dir.path(), &script, "rank 1's differs from rank 0's", "run");
    }

    /// `sh -c SCRIPT` under `mpirun -n 2` in `dir` (each process's own command line) fails
    /// with `message` on its standard error, and `out` was never made.
    fn refused(dir: &Path, script: &str, message: &str, out: &str) {
        let Some(mut command) = mpirun(dir) else { return };
        let output = command.args(["sh", "-c", script]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
        assert!(!dir.join(out).exists(), "nothing was trained or written");
    }

    #[test]
    fn devices_reports_the_job() {
        let dir = tempfile::tempdir().unwrap();
        let Some(output) = job(dir.path(), &["devices", "--json"]) else { return };
        succeeded(&output);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(stdout.lines().count(), 1, "rank 0 alone prints: {stdout}");
        let devices: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(devices["mpi"]["compiled"], true);
        assert_eq!(devices["mpi"]["size"], 2);
        assert_eq!(devices["mpi"]["rank"], 0);
    }

    /// The process among `parent`'s children that `mpirun` started as `rank`.
    fn process_of_rank(parent: u32, rank: usize) -> Option<u32> {
        let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
        let children = std::fs::read_dir("/proc")
            .ok()?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok());
        children.into_iter().find(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
            let parent_of = after_name.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            parent_of == Some(parent) && environ.split(|&b| b == 0).any(|var| var == wanted.as_bytes())
        })
    }

    /// Send `signal` (a name `kill` takes) to `pid`.
    fn send_signal(pid: u32, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }
}
