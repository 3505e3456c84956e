//! `descent bench`: the speed workloads of BENCHMARKS.md (`descent::bench`), on every compiled
//! CPU backend (and wgpu when it finds an adapter), a line per case and a JSON summary.

use std::path::PathBuf;

use clap::Args;
use descent::bench::{BenchSummary, Case, Measurement, Sizes, Workload, cases, configured_case, measure};
use descent::config::RunConfig;
use descent::device::{Backend, select};
use descent::report::write_atomic;

use crate::Failure;
use descent::flags::values::positive_count;

/// Run the speed workloads and print a table.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Workloads, comma-separated: lesson, minibatch, fullbatch, cnn, fashion, inference
    /// [default: all six; fashion and inference only when Fashion-MNIST's files are there]; and allreduce, under mpirun or srun with the
    /// feature mpi: the sum of each built-in model's gradient across the processes.
    #[arg(long, value_delimiter = ',', value_parser = workload)]
    pub workloads: Vec<Workload>,

    /// Devices, comma-separated, as for --device [default: every compiled CPU backend, and wgpu
    /// when it finds an adapter].
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,

    /// Runs of each measurement; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = positive_count, allow_hyphen_values = true)]
    pub repeats: usize,

    /// Smaller sizes for a quick look: 100,000 rows for minibatch, 1,000,000 for fullbatch, one
    /// CNN epoch, 10,000 Fashion-MNIST images. Not the sizes of BENCHMARKS.md.
    #[arg(long)]
    pub quick: bool,

    /// The Fashion-MNIST IDX files for the fashion and inference workloads (Debian's package
    /// `dataset-fashion-mnist` installs them here).
    #[arg(long, value_name = "DIR", default_value = FASHION_DIR)]
    pub fashion: PathBuf,

    /// Time the training of this run configuration (any model, your own included) instead of
    /// the built-in workloads: images per second for image models, rows per second with
    /// mini-batches, µs per step with full batches. Its device is replaced by --devices'.
    #[arg(long, value_name = "FILE", conflicts_with = "workloads")]
    pub config: Option<PathBuf>,

    /// Also write the results as JSON to FILE (atomically).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Print the JSON as the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// Where Debian's `dataset-fashion-mnist` puts the IDX files.
pub const FASHION_DIR: &str = descent::defaults::FASHION_MNIST_DIR;

fn workload(name: &str) -> Result<Workload, String> {
    Workload::from_name(name.trim())
        .ok_or_else(|| format!("`{name}` is not a workload: {}, allreduce", Workload::NAMES.join(", ")))
}

/// `descent bench`.
pub fn run(args: &BenchArgs) -> Result<(), Failure> {
    if let Some(path) = &args.out {
        // Before the benchmark, not after minutes of it.
        descent::report::check_writable(path).map_err(|e| Failure::input(format!("--out: {e}")))?;
    }
    let fashion_there = descent::data::images::mnist_files_present(&args.fashion);
    let workloads: Vec<Workload> = if args.config.is_some() {
        vec![Workload::Config]
    } else if args.workloads.is_empty() {
        Workload::ALL.into_iter().filter(|w| !w.needs_fashion() || fashion_there).collect()
    } else {
        args.workloads.clone()
    };
    if workloads.contains(&Workload::Allreduce) && !descent::world::World::current().is_parallel() {
        return Err(Failure::input(
            "--workloads allreduce times the sum of a step's gradients across the processes of an MPI job: start it with `mpirun -n 2 descent bench --workloads allreduce` (a descent built with --features mpi)",
        ));
    }
    if workloads.iter().any(|w| w.needs_fashion()) && !fashion_there {
        return Err(Failure::input(format!(
            "--fashion: {} does not hold the Fashion-MNIST IDX files; install Debian's package \
             dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or pass the folder \
             that holds them",
            args.fashion.display()
        )));
    }
    if args.workloads.is_empty() && args.config.is_none() && !fashion_there {
        out!(
            "(fashion and inference skipped: no Fashion-MNIST files in {}; apt-get install dataset-fashion-mnist)",
            args.fashion.display()
        );
    }
    let devices = devices(args)?;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset (all cores)".into());
    out!(
        "descent bench: {} on {} ({} cores, RAYON_NUM_THREADS {threads}), median of {} runs{}",
        workloads.iter().map(|w| w.name()).collect::<Vec<_>>().join(", "),
        devices.join(", "),
        descent::bench::Machine::here().cores,
        args.repeats,
        if args.quick { ", quick sizes" } else { "" }
    );
    out!("{:<10} {:<26} {:<8} {:>14}  {:<10} runs", "workload", "case", "device", "median", "unit");
    let configured = match &args.config {
        Some(path) => Some(RunConfig::load(path).map_err(|e| Failure::input(format!("--config: {e}")))?),
        None => None,
    };
    let sizes = Sizes { quick: args.quick, fashion: args.fashion.clone() };
    let mut results = Vec::new();
    for &workload in &workloads {
        for device in &devices {
            let cases: Vec<Case> = match &configured {
                Some(config) => vec![configured_case(config, device)],
                None => cases(workload, device, &sizes),
            };
            for case in cases {
                let runs = (0..args.repeats).map(|_| measure(&case)).collect::<Result<Vec<f64>, _>>();
                let measurement =
                    Measurement::new(&case, device, runs.map_err(crate::session::train_failure)?);
                say_measurement(&measurement);
                results.push(measurement);
            }
        }
    }
    let summary = serde_json::to_value(BenchSummary::new(results, args.repeats, &sizes))
        .map_err(|e| Failure::internal(format!("the summary: {e}")))?;
    if let Some(path) = &args.out {
        write_atomic(path, format!("{summary:#}\n").as_bytes())
            .map_err(|e| Failure::input(format!("--out: {e}")))?;
        out!("wrote {}", path.display());
    }
    if args.json {
        out!("{summary}");
    }
    Ok(())
}

/// The devices to measure on: `--devices`, or every compiled CPU backend and wgpu with an adapter.
fn devices(args: &BenchArgs) -> Result<Vec<String>, Failure> {
    let devices: Vec<String> = if args.devices.is_empty() {
        Backend::compiled()
            .into_iter()
            .filter(|backend| !backend.is_gpu() || (*backend == Backend::Wgpu && select("wgpu").is_ok()))
            .map(|backend| backend.name().to_string())
            .collect()
    } else {
        args.devices.clone()
    };
    for device in &devices {
        select(device).map_err(|e| Failure::input(format!("--devices: {e}")))?;
    }
    Ok(devices)
}

/// A case's line: its median and every run.
fn say_measurement(m: &Measurement) {
    let figure = |value: f64| if value >= 1000.0 { format!("{value:.0}") } else { format!("{value:.2}") };
    let runs: Vec<String> = m.runs.iter().map(|v| figure(*v)).collect();
    out!(
        "{:<10} {:<26} {:<8} {:>14}  {:<10} {}",
        m.workload,
        m.case,
        m.device,
        figure(m.median),
        m.unit,
        runs.join(" ")
    );
}
