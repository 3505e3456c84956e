//! Data-parallel steps over several devices in one process: Burn's multi-device strategy with
//! the optimizer on the main device (what `burn-train` calls `MultiDeviceOptim::OptimMainDevice`),
//! driven by our engine.
//!
//! Each device but the main one has a worker thread that lives as long as the training call;
//! the calling thread computes the main device's share. A step cuts the batch into one
//! contiguous share of rows per device, sends each worker the current model and its share, and
//! each replica is the model forked onto its device (`Module::fork`), which computes its
//! share's loss weighted by `share rows / batch rows`, and runs `backward`. The weighted losses
//! add up to the batch's mean loss, so the gradients, moved to the main device
//! (`GradientsParams::to_device`) and summed there (`GradientsAccumulator`), are the gradient of
//! the whole batch's mean loss: the update one device would make, up to rounding. Only what
//! depends on the batch as a whole differs: batch-norm statistics are each share's own (as in
//! PyTorch's `DistributedDataParallel` without `SyncBatchNorm`).
//!
//! The workers are long-lived rather than spawned per step because Burn keeps a batch-norm
//! layer's running statistics per thread and averages them across threads: stable threads keep
//! that an exponential moving average.

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::sync::Once;
use std::sync::mpsc::{Receiver, Sender, channel};

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;

use super::objective::{Objective, TrainError};
use crate::batch::BatchRows;

/// What a worker computes for one share: its weighted loss and its gradients, or why not.
type Outcome = Result<(f64, GradientsParams), String>;

/// The work for one device in one step.
struct Job<M, B> {
    model: M,
    share: B,
    weight: f32,
    /// A further factor of the gradient only (gradient accumulation's share of the group).
    scale: Option<f32>,
    /// The share's seed for its random draws.
    seed: u64,
}

/// A device's worker thread, reached through its two channels. Dropping it closes the job
/// channel, and the thread ends after the job it may be running: it is not joined, so that a
/// device that never answers cannot hang the end of a run that has already failed.
struct Worker<M, B> {
    device: Device,
    jobs: Sender<Job<M, B>>,
    results: Receiver<Outcome>,
}

/// The main device, whose share the calling thread computes, and a worker for every other
/// device. The main device holds the model, the optimizer and the summed gradients.
pub(super) struct Replicas<M, B> {
    main: Device,
    main_autodiff: Device,
    workers: Vec<Worker<M, B>>,
}

impl<M, B> Replicas<M, B>
where
    M: Objective<B> + 'static,
    B: BatchRows + Send + 'static,
{
    /// Start a worker on each of `devices` but the first, the main one (plain devices; the
    /// replicas train on their autodiff form).
    pub(super) fn start(devices: &[Device]) -> Result<Self, TrainError> {
        let main = devices.first().cloned().ok_or_else(|| TrainError::Device("no devices".into()))?;
        let mut workers = Vec::with_capacity(devices.len() - 1);
        for (index, device) in devices.iter().enumerate().skip(1) {
            let (jobs, inbox) = channel::<Job<M, B>>();
            let (outbox, results) = channel::<Outcome>();
            let autodiff = device.clone().autodiff();
            std::thread::Builder::new()
                .name(format!("descent-replica-{index}"))
                .spawn(move || {
                    while let Some(job) = receive(&inbox) {
                        let outcome = quietly(|| compute(job, &autodiff)).and_then(|outcome| outcome);
                        if outbox.send(outcome).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|error| TrainError::Device(format!("cannot start a worker thread: {error}")))?;
            workers.push(Worker { device: device.clone(), jobs, results });
        }
        Ok(Self { main_autodiff: main.clone().autodiff(), main, workers })
    }

    /// How many devices take part.
    pub(super) fn count(&self) -> usize {
        self.workers.len() + 1
    }

    /// The devices, main first.
    pub(super) fn devices(&self) -> impl Iterator<Item = &Device> {
        std::iter::once(&self.main).chain(self.workers.iter().map(|worker| &worker.device))
    }

    /// One data-parallel forward and backward pass of `model` on `batch`: the batch's mean loss
    /// and its gradients on the main device. `seed(i)` seeds device `i`'s share.
    ///
    /// A device that fails (a remote server gone, a backend error) is an error naming it, never
    /// a panic: Burn panics when a transfer between devices fails, so the step catches it.
    pub(super) fn step(
        &self,
        model: &M,
        batch: B,
        seed: impl Fn(usize) -> u64,
        scale: Option<f32>,
    ) -> Result<(f64, GradientsParams), TrainError> {
        quietly(|| self.step_on_every_device(model, batch, seed, scale))
            .map_err(|message| TrainError::Device(format!("moving a share between devices: {message}")))?
    }

    fn step_on_every_device(
        &self,
        model: &M,
        batch: B,
        seed: impl Fn(usize) -> u64,
        scale: Option<f32>,
    ) -> Result<(f64, GradientsParams), TrainError> {
        let rows = batch.rows();
        let count = self.workers.len() + 1;
        let shares = crate::world::shares(rows, count);
        let weight = |range: &Range<usize>| range.len() as f32 / rows as f32;
        // The other devices' shares go out first, so they compute while this thread computes
        // the main device's.
        for (index, (worker, range)) in self.workers.iter().zip(&shares[1..]).enumerate() {
            let job = Job {
                model: model.clone(),
                share: batch.slice_rows(range.clone(), &worker.device),
                weight: weight(range),
                scale,
                seed: seed(index + 1),
            };
            // A worker whose thread has gone is reported when its result is read.
            let _ = worker.jobs.send(job);
        }
        let main_share = batch.slice_rows(shares[0].clone(), &self.main);
        drop(batch);
        let job =
            Job { model: model.clone(), share: main_share, weight: weight(&shares[0]), scale, seed: seed(0) };
        let mut outcomes = vec![quietly(|| compute(job, &self.main_autodiff)).and_then(|outcome| outcome)];
        // Every sent share's result is read, failed or not, so the next step starts clean.
        for worker in self.workers.iter().take(shares.len() - 1) {
            outcomes
                .push(receive(&worker.results).unwrap_or_else(|| Err("its worker thread stopped".into())));
        }
        let mut total = 0.0;
        let mut sum = GradientsAccumulator::<M>::new();
        let mut failures = Vec::new();
        for ((index, device), outcome) in self.devices().enumerate().zip(outcomes) {
            match outcome {
                Ok((loss, gradients)) => {
                    total += loss;
                    sum.accumulate(model, gradients.to_device(&self.main, model));
                }
                Err(message) => failures.push(format!(
                    "device {} of {count} ({}): {}",
                    index + 1,
                    backend_name(device),
                    one_line(&message)
                )),
            }
        }
        if !failures.is_empty() {
            return Err(TrainError::Device(failures.join("; ")));
        }
        Ok((total, sum.grads()))
    }
}

/// One share's weighted loss and gradients, on `device` (autodiff).
fn compute<M: Objective<B>, B: BatchRows>(job: Job<M, B>, device: &Device) -> Outcome {
    let model = job.model.fork(device);
    let loss = model.loss(job.share.seeded(job.seed)).mul_scalar(job.weight);
    let value = loss
        .clone()
        .inner()
        .try_into_scalar::<f32>()
        .map(f64::from)
        .map_err(|error| crate::device::ReadBackError::from_debug(&error).to_string())?;
    let loss = match job.scale {
        Some(scale) => loss.mul_scalar(scale),
        None => loss,
    };
    Ok((value, GradientsParams::from_grads(loss.backward(), &model)))
}

/// The next message, spinning briefly before sleeping: a step's share comes back within
/// microseconds on a small model, and waking a sleeping thread costs more than that.
fn receive<T>(channel: &Receiver<T>) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        match channel.try_recv() {
            Ok(message) => return Some(message),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
            Err(std::sync::mpsc::TryRecvError::Empty)
                if start.elapsed() < std::time::Duration::from_micros(50) =>
            {
                std::hint::spin_loop()
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => return channel.recv().ok(),
        }
    }
}

/// A message of several lines (Burn's errors and their causes) on one.
fn one_line(message: &str) -> String {
    let lines = message.lines().map(|line| line.trim().trim_end_matches(':'));
    lines.filter(|line| !line.is_empty()).collect::<Vec<_>>().join(": ")
}

/// The backend of a device, from Burn's description (`Device<Flex(Cpu)>` gives `Flex`).
fn backend_name(device: &Device) -> String {
    let described = format!("{device:?}");
    let inner = described.strip_prefix("Device<").unwrap_or(&described);
    inner.split(['(', '>', '{', ' ']).next().unwrap_or(inner).to_string()
}

thread_local! {
    /// Set while this thread runs [`quietly`]: its panics are caught and reported as errors.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// Where this thread's last caught panic happened.
    static PANICKED_AT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Run `work`, turning a panic (Burn panics on some device failures) into its message, without
/// the panic being printed: the message reaches the user once, in the error. Panics elsewhere
/// reach the hook that was installed before, unchanged.
fn quietly<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.get() {
                let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
                PANICKED_AT.with_borrow_mut(|place| *place = at);
            } else {
                previous(info);
            }
        }));
    });
    let was = CATCHING.replace(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    CATCHING.set(was);
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        let at = PANICKED_AT.with_borrow(Clone::clone);
        let message = one_line(&message);
        if at.is_empty() { message } else { format!("{message} (at {at})") }
    })
}
