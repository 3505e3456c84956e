//! The `descent` command line. It parses arguments, calls the library and turns errors into one
//! readable message and an exit code; the training itself lives in the `descent` crate.
//!
//! Exit codes, the same for every command: 0 done; 1 a device failure during training; 2 bad
//! input or usage; 3 training diverged (the loss or a parameter became NaN or infinite); 130
//! interrupted by Ctrl-C or SIGTERM (a checkpoint was written: `descent train --resume DIR`).

/// A line on standard output unless the first argument (`--quiet`) is true; see [`out!`].
macro_rules! say {
    ($quiet:expr, $($arguments:tt)*) => {
        if !$quiet {
            $crate::output::line(format_args!($($arguments)*));
        }
    };
}

/// `println!` that never panics: a failed write is remembered and ends the command as an error
/// (see [`output`]).
macro_rules! out {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arguments:tt)*) => {
        $crate::output::line(format_args!($($arguments)*))
    };
}

/// `print!` that never panics (see [`out!`]).
macro_rules! out_text {
    ($($arguments:tt)*) => {
        $crate::output::text(format_args!($($arguments)*))
    };
}

/// `eprintln!` that never panics: a failure to write to standard error is ignored.
macro_rules! err {
    ($($arguments:tt)*) => {
        $crate::output::error_line(format_args!($($arguments)*))
    };
}

mod app;
mod bench;
mod cnn;
mod devices;
mod fit;
mod interrupt;
mod lr_find;
mod memory;
mod output;
mod predict;
mod progress;
mod run;
mod serve;
mod session;
mod sweep;

use std::process::ExitCode;

/// mimalloc keeps freed memory for reuse: Burn's CPU backends allocate a fresh result for every
/// op, and with the system allocator each large one is a new mapping whose pages fault in on
/// first touch (a quarter of a full-batch step at 10 million rows; see BENCHMARKS.md).
/// Wrapped to turn an allocation failure into a sentence (see [`memory`]).
#[global_allocator]
static ALLOCATOR: memory::Allocator = memory::Allocator;

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc's `mi_option_arena_reserve` (the same index in its v2 and v3 headers), in KiB.
const MI_OPTION_ARENA_RESERVE: libmimalloc_sys::mi_option_t = 23;

/// mimalloc's options for descent's workloads, set before the first allocation where the
/// platform allows (Rust's runtime allocates before `main`, and mimalloc reserves its first
/// arena then): from the program's initialisers on Linux, and again, harmlessly, from `main`.
///
/// - Freed memory stays mapped instead of going back to the system 10 ms later (mimalloc's
///   default). A training step frees and reallocates tens of megabytes of activations and im2col
///   buffers; returned pages come back as page faults the kernel zero-fills, 6% of a
///   Fashion-MNIST step under perf. The resident size stays at its high-water mark, which is
///   what a run's peak is anyway.
/// - Address space is reserved in arenas of 64 MiB rather than 1 GiB: the memory used is the
///   same, but a process under an address-space limit (`ulimit -v`, a batch system's cap) is
///   judged by what it uses. With 1 GiB arenas a digits CNN (about 200 MB resident) was told
///   under `ulimit -v 1200000` that the 1.7 MB `data/digits.csv` was too large to hold in memory.
extern "C" fn configure_allocator() {
    // SAFETY: setting an option takes no pointers and is allowed at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_RESERVE, 64 * 1024);
    }
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

use clap::{Parser, Subcommand};

/// Gradient descent on Burn: the fast.ai lesson-2 "SGD from scratch", and a trainer.
#[derive(Parser, Debug)]
#[command(name = "descent", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The lesson: fit y = x·a to noisy points by gradient descent, as the notebook does.
    Lesson2(descent::flags::RunArgs),
    /// Train a run configuration (--config FILE, with any flag overriding it).
    Train(descent::flags::RunArgs),
    /// Linear regression on your own CSV table: --data FILE --target COLUMN [--features A,B].
    Fit(descent::flags::FitArgs),
    /// Train a small CNN on handwritten digits (the UCI digits, or MNIST from local files).
    Cnn(descent::flags::CnnArgs),
    /// Show a configuration's model layer by layer for its data: output shapes, parameters,
    /// multiply-adds and totals (--config FILE, or a run folder's --resume DIR; --json for one
    /// JSON line).
    Summary(descent::flags::RunArgs),
    /// Try the values of a sweep file (a grid, or seeded random draws) on a base configuration:
    /// a run folder per trial, sweep.csv, sweep.png and best.toml (--parallel N at a time).
    Sweep(sweep::SweepArgs),
    /// Work with run configurations.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Find a learning rate: sweep it exponentially and watch the loss (fastai's lr_find).
    LrFind(lr_find::LrFindArgs),
    /// List the backends compiled in, the adapters each finds, and what `--device auto` picks.
    Devices(devices::DevicesArgs),
    /// Predict with the model of a finished run: y for each x, or the class of each image (digit
    /// rows, PNG files, an IDX file).
    Predict(predict::PredictArgs),
    /// Write the model of a finished run for another tool: PyTorch (safetensors) or onnxruntime (ONNX).
    Export(predict::ExportArgs),
    /// Time the speed workloads of BENCHMARKS.md on every compiled CPU backend.
    Bench(bench::BenchArgs),
    /// Serve this machine's device to training commands on other machines (--features remote).
    Serve(serve::ServeArgs),
    /// Serve a trained image classifier behind a web page and a JSON API.
    App(app::AppArgs),
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the effective, complete configuration of a run as TOML.
    Show(descent::flags::RunArgs),
}

/// Why the program ended without success; each kind is one exit code, the same for every
/// command: the library's [`FailureKind`](descent::run::FailureKind), whose `exit_code` says it.
pub use descent::run::FailureKind as Exit;

impl From<descent::flags::FlagError> for Failure {
    /// A flag that cannot be used: bad input, exit code 2.
    fn from(error: descent::flags::FlagError) -> Self {
        Failure::input(error)
    }
}

/// An error that ends the program, with the kind of exit it maps to.
#[derive(Debug)]
pub struct Failure {
    /// The one sentence printed after `error: `.
    pub message: String,
    /// The kind of exit, which decides the exit code.
    pub exit: Exit,
}

impl Failure {
    /// Bad input or usage: exit code 2.
    pub fn input(message: impl ToString) -> Self {
        Self { message: message.to_string(), exit: Exit::Input }
    }

    /// Interrupted by a signal: exit code 130 (128 + SIGINT), as shells report it.
    pub fn interrupted(message: impl ToString) -> Self {
        Self { message: message.to_string(), exit: Exit::Interrupted }
    }

    /// Training diverged: exit code 3.
    pub fn diverged(message: impl ToString) -> Self {
        Self { message: message.to_string(), exit: Exit::Diverged }
    }

    /// A failure of the machine rather than of the input (a device error): exit code 1.
    pub fn internal(message: impl ToString) -> Self {
        Self { message: message.to_string(), exit: Exit::Device }
    }
}

fn main() -> ExitCode {
    restore_default_sigpipe();
    configure_allocator();
    memory::install();
    pin_burn_default_device();
    let cli = Cli::parse();
    if let Err(error) = descent::limits::start_workers() {
        err!("error: {error}");
        return ExitCode::from(Exit::Input.exit_code());
    }
    // Under mpirun or srun with several processes: join the job (MPI); only rank 0 prints.
    if let Err(error) = descent::world::join() {
        err!("error: {error}");
        return ExitCode::from(Exit::Input.exit_code());
    }
    let outcome = match cli.command {
        Command::Lesson2(args) => run::start("lesson2", &args.common, args.animate, || args.config()),
        Command::Train(args) => run::start("train", &args.common, args.animate, || args.config()),
        Command::Fit(args) => run::start("fit", &args.common, false, || args.config()),
        Command::Cnn(args) => run::start("cnn", &args.common, false, || args.config()),
        Command::Config(ConfigCommand::Show(args)) => run::show_config(&args),
        Command::Summary(args) => run::summary(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::LrFind(args) => lr_find::run(&args),
        Command::Devices(args) => devices::run(&args),
        Command::Predict(args) => predict::predict(&args),
        Command::Export(args) => predict::export(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::App(args) => app::run(&args),
    };
    // A command that finished with its output lost ends as an error all the same.
    match outcome.and_then(|()| output::check()) {
        Ok(()) => {
            // Every process of a job that went well ends MPI together; one that failed exits
            // without it, and the launcher ends the others.
            descent::world::finish();
            ExitCode::SUCCESS
        }
        Err(failure) => {
            // An interruption and a divergence stop every process of a job at the same update:
            // rank 0 says it, and the others wait in MPI's finalisation until it has written
            // its checkpoint and metrics. Any other failure is this process's own: it says it
            // and exits, and the launcher ends the others.
            let together = matches!(failure.exit, Exit::Interrupted | Exit::Diverged);
            if output::prints() || !together {
                err!("error: {}", failure.message);
            }
            if together {
                descent::world::finish();
            }
            ExitCode::from(failure.exit.exit_code())
        }
    }
}

/// descent opens every device itself (`--device`), but Burn creates a restored optimizer's state
/// on `Device::default()` before moving it to the parameters' device: a GPU whenever a GPU
/// backend is compiled in, and a panic on a machine without one, or with a `BURN_DEVICE` naming
/// a backend that is not compiled in. Point Burn's default at a compiled CPU backend, which always
/// works; the state moves to the run's device on the first step, bit for bit.
fn pin_burn_default_device() {
    if let Some(cpu) = descent::device::Backend::compiled().into_iter().find(|backend| !backend.is_gpu()) {
        // SAFETY: called at the start of `main`, before any other thread exists, so nothing
        // reads the environment concurrently.
        unsafe { std::env::set_var("BURN_DEVICE", cpu.name()) };
    }
}

/// Let a closed pipe (`descent lesson2 | head`) end the program quietly, as it does for other
/// command-line tools, instead of making `println!` panic: Rust ignores SIGPIPE by default.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; setting a signal's
    // disposition to the default has no other precondition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
