//! The one training loop: forward, loss, `backward`, `GradientsParams::from_grads`, optimizer step.
//!
//! We write the loop ourselves rather than use Burn's `SupervisedTraining`: the lesson's model
//! has two parameters, so per-step overhead is the whole cost, and the loop must report the loss
//! computed *before* each update exactly as the notebook prints it. Every model goes through
//! [`train`]; a model plugs in by implementing [`Objective`] for its batches. With several
//! devices in [`Plan::replicas`], each step's forward and backward passes run data-parallel
//! (`parallel.rs`); the rest of the loop is the same.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use super::objective::{Objective, TrainError};
use super::parallel::Replicas;
pub use crate::batch::{BatchError, BatchRows, BatchSource, Batches};
use crate::world::World;

/// How long to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    /// This many updates (the last epoch may stop part-way).
    Steps(usize),
    /// This many passes over the data.
    Epochs(usize),
}

impl Length {
    /// The number of epochs, when the length is given in epochs.
    pub fn epochs(self) -> Option<usize> {
        match self {
            Length::Epochs(epochs) => Some(epochs),
            Length::Steps(_) => None,
        }
    }
}

/// Which losses to read back and report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// The loss of steps 0, k, 2k, ..., each computed before that step's update (the notebook).
    EverySteps(usize),
    /// The mean loss over the examples of epochs k, 2k, ... (each batch's loss computed before
    /// its update, weighted by its number of examples).
    EveryEpochs(usize),
}

/// The training plan: length, reporting cadence, where to start, how to seed each step and on
/// which devices.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// How long to train.
    pub length: Length,
    /// Which losses to report.
    pub report: Report,
    /// Where training starts: the beginning, or the end of an epoch of an earlier run (resume).
    pub start: Position,
    /// The seed of the run's random draws: every batch is seeded ([`BatchRows::seeded`]) from it
    /// and the step, so that a step's draws (dropout) depend only on the seed and the step: a
    /// run resumed at step k draws what the uninterrupted run drew. `None` draws as seed 0.
    pub seed: Option<u64>,
    /// Data-parallel training over these devices (plain, not autodiff), the model's own device
    /// first: each batch is cut into one share of rows per device, and the shares' gradients
    /// are summed on the first device, which makes the update. Empty or one device: every step
    /// runs on the model's device.
    pub replicas: Vec<Device>,
    /// Gradient accumulation: one update every this many batches of an epoch (the last group of
    /// an epoch may be shorter), each batch's loss weighted by its share of the group's
    /// examples, so that K batches of B examples make the update of one batch of K·B. 1: an
    /// update per batch. A step is an update.
    pub accumulate: usize,
    /// The head trained apart from the body (frozen body, smaller body rate); `None`: every
    /// parameter at the schedule's rate.
    pub head: Option<super::HeadTraining>,
    /// The processes training together (an MPI job, [`World::current`]): each batch is cut
    /// into one contiguous share per process (then per device of [`Plan::replicas`]), each
    /// process computes its share's loss weighted by its rows and the gradients, the gradients
    /// are summed across the processes before every update, and every process makes the same
    /// update. A world of one: the batch is this process's.
    pub world: World,
    /// With several processes, batch norm's training statistics are the whole global batch's,
    /// summed across them (descent's Flex kernels); otherwise each share's own.
    pub sync_batch_norm: bool,
}

impl Plan {
    /// A plan from the beginning on the model's device, without reseeding, an update per batch.
    pub fn new(length: Length, report: Report) -> Self {
        Self {
            length,
            report,
            start: Position::default(),
            seed: None,
            replicas: Vec::new(),
            accumulate: 1,
            head: None,
            world: World::single(),
            sync_batch_norm: false,
        }
    }
}

/// A point in training: updates made, epochs finished, and how far into the next epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Position {
    /// Updates made.
    pub step: usize,
    /// Epochs finished.
    pub epoch: usize,
    /// Batches of the next epoch already trained on (0 at an epoch's end).
    pub batch: usize,
    /// The sum of those batches' losses weighted by their examples (the epoch mean's
    /// numerator).
    pub partial_loss: f64,
    /// Examples in those batches.
    pub partial_rows: usize,
}

/// The seed of step `step`'s random draws in a run seeded with `seed` (SplitMix64 of the pair,
/// so that neighbouring steps get unrelated seeds).
pub fn step_seed(seed: u64, step: usize) -> u64 {
    let mut z = seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One reported loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossRecord {
    /// Updates made before this loss was computed ([`Report::EverySteps`]), or at the end of the
    /// epoch ([`Report::EveryEpochs`]).
    pub step: usize,
    /// The epoch (1-based) the loss belongs to.
    pub epoch: usize,
    /// The learning rate of the step the loss was computed at (the last step of the epoch with
    /// [`Report::EveryEpochs`]).
    pub lr: f64,
    /// The loss.
    pub loss: f64,
}

/// One reported step or epoch, as `metrics.csv` and checkpoints hold it. Validation columns are
/// empty for models without validation.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricsRow {
    /// Updates made (the step the loss was computed at, with full batches).
    pub step: usize,
    /// The epoch, 1-based.
    pub epoch: usize,
    /// The learning rate of the step.
    pub lr: f64,
    /// The training loss.
    pub train_loss: f64,
    /// The validation loss.
    pub valid_loss: Option<f64>,
    /// The validation accuracy.
    pub accuracy: Option<f64>,
    /// The validation error rate (1 - accuracy).
    pub error_rate: Option<f64>,
}

impl From<&LossRecord> for MetricsRow {
    /// The row of a reported training loss (no validation figures).
    fn from(record: &LossRecord) -> Self {
        Self {
            step: record.step,
            epoch: record.epoch,
            lr: record.lr,
            train_loss: record.loss,
            ..Self::default()
        }
    }
}

/// A trained model and what happened on the way.
#[derive(Clone, Debug)]
pub struct Trained<M> {
    /// The model after the last update.
    pub model: M,
    /// Updates made.
    pub steps: usize,
    /// Epochs started (the last may be partial with [`Length::Steps`]).
    pub epochs: usize,
    /// The reported losses, in order.
    pub losses: Vec<LossRecord>,
    /// Wall time of the loop, seconds, up to the device having finished its work.
    pub seconds: f64,
    /// Whether a hook stopped the run before the plan's end.
    pub stopped: bool,
    /// Whether an `on_batch` hook interrupted it (Ctrl-C).
    pub interrupted: bool,
}

/// Train `model` with `optimizer` on batches from `source`, the learning rate of each step taken
/// from `schedule`, for as long as `plan` says. `on_loss` sees each reported loss as soon as it
/// is known (to print progress) and may stop the run by returning `ControlFlow::Break`.
pub fn train<M, B>(
    model: M,
    optimizer: &mut ModuleOptimizer,
    schedule: &mut ModuleLrScheduler,
    source: &dyn BatchSource<B>,
    plan: &Plan,
    on_loss: &mut dyn FnMut(&LossRecord) -> ControlFlow<()>,
) -> Result<Trained<M>, TrainError>
where
    M: Objective<B> + 'static,
    B: BatchRows + Send + 'static,
{
    let mut hooks = Hooks { on_loss: Some(on_loss), ..Hooks::default() };
    train_observed(model, optimizer, schedule, source, plan, &mut hooks)
}

/// The end of an epoch, as [`Hooks::on_epoch`] sees it: enough to evaluate the model or to
/// checkpoint the whole training state.
pub struct EpochEnd<'a, M> {
    /// The epoch that ended (1-based).
    pub epoch: usize,
    /// Updates made so far.
    pub step: usize,
    /// Whether the plan ends with this epoch.
    pub last: bool,
    /// The model after the epoch's last update.
    pub model: &'a M,
    /// The optimizer, with its state (momentum, moment estimates) after the epoch.
    pub optimizer: &'a ModuleOptimizer,
    /// The learning-rate schedule, after the epoch's last step.
    pub schedule: &'a ModuleLrScheduler,
    /// Training time so far in this call, seconds (without the time spent in `on_epoch`).
    pub seconds: f64,
    /// Whether the run was interrupted part-way through the epoch (an `on_batch` hook stopped
    /// it): the hook may checkpoint, but the epoch has not ended.
    pub interrupted: bool,
    /// Where a run continuing from here starts.
    pub position: Position,
}

/// One update made, as [`Hooks::on_batch`] sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchEnd {
    /// The epoch (1-based).
    pub epoch: usize,
    /// The batch within the epoch (1-based).
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Updates made so far, this one included.
    pub step: usize,
    /// The batch's loss, computed before the update (the engine reads every step's loss).
    pub loss: f64,
    /// The update this batch ended, if it ended one (every batch does, but with gradient
    /// accumulation only a group's last): its learning rate and loss.
    pub update: Option<Update>,
}

/// An update as the batch that ended it reports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Update {
    /// The update's learning rate (the schedule's base rate).
    pub lr: f64,
    /// The loss it descended: the mean over its accumulation group's examples (the batch's
    /// loss without accumulation), computed before the update, at step `BatchEnd::step - 1`.
    pub loss: f64,
}

/// A hook that sees each reported loss and may stop the run.
pub type LossHook<'a> = &'a mut dyn FnMut(&LossRecord) -> ControlFlow<()>;
/// A hook that sees each update and may interrupt the run.
pub type BatchHook<'a> = &'a mut dyn FnMut(&BatchEnd) -> ControlFlow<()>;
/// A hook that sees the end of each epoch and may stop the run.
pub type EpochHook<'a, M> = &'a mut dyn FnMut(&EpochEnd<'_, M>) -> ControlFlow<()>;

/// What the engine calls while it trains; every hook is optional.
pub struct Hooks<'a, M> {
    /// Each reported loss as soon as it is known; may stop the run.
    pub on_loss: Option<LossHook<'a>>,
    /// After every update (to move a progress bar); `Break` interrupts the run there (Ctrl-C),
    /// after which `on_epoch` is called once with [`EpochEnd::interrupted`] set.
    pub on_batch: Option<BatchHook<'a>>,
    /// At the end of every epoch, with the model, optimizer and schedule; may stop the run.
    /// Its time is not counted in [`Trained::seconds`].
    pub on_epoch: Option<EpochHook<'a, M>>,
}

impl<M> Default for Hooks<'_, M> {
    fn default() -> Self {
        Self { on_loss: None, on_batch: None, on_epoch: None }
    }
}

/// What the engine tells while it trains, in order: every reported loss, every update, every
/// epoch's end. One value receives them all, so that what a run does at each event (its
/// checkpoints, metrics rows, early stopping and observers) lives in one place with its state.
/// Each method may stop the run with `Break`; every one has a default that goes on.
pub trait Events<M> {
    /// A reported loss, as soon as it is known; `Break` stops the run (not as an interruption).
    fn loss(&mut self, record: &LossRecord) -> ControlFlow<()> {
        let _ = record;
        ControlFlow::Continue(())
    }

    /// An update made; `Break` interrupts the run there (Ctrl-C), after which [`Events::epoch`]
    /// is told once with [`EpochEnd::interrupted`] set.
    fn batch(&mut self, end: &BatchEnd) -> ControlFlow<()> {
        let _ = end;
        ControlFlow::Continue(())
    }

    /// The end of an epoch, with the model, optimizer and schedule, or the point an interrupted
    /// epoch stopped at; its time is not counted in [`Trained::seconds`]. `Break` stops the run.
    fn epoch(&mut self, end: &EpochEnd<'_, M>) -> ControlFlow<()> {
        let _ = end;
        ControlFlow::Continue(())
    }
}

impl<M> Events<M> for Hooks<'_, M> {
    fn loss(&mut self, record: &LossRecord) -> ControlFlow<()> {
        self.on_loss.as_mut().map_or(ControlFlow::Continue(()), |hook| hook(record))
    }

    fn batch(&mut self, end: &BatchEnd) -> ControlFlow<()> {
        self.on_batch.as_mut().map_or(ControlFlow::Continue(()), |hook| hook(end))
    }

    fn epoch(&mut self, end: &EpochEnd<'_, M>) -> ControlFlow<()> {
        self.on_epoch.as_mut().map_or(ControlFlow::Continue(()), |hook| hook(end))
    }
}

/// The engine itself: [`train`], telling `events` of each reported loss, each update and each
/// epoch's end (to evaluate the model on validation data, or to checkpoint it). [`Hooks`] are
/// events made of closures.
pub fn train_observed<M, B>(
    mut model: M,
    optimizer: &mut ModuleOptimizer,
    schedule: &mut ModuleLrScheduler,
    source: &dyn BatchSource<B>,
    plan: &Plan,
    events: &mut dyn Events<M>,
) -> Result<Trained<M>, TrainError>
where
    M: Objective<B> + 'static,
    B: BatchRows + Send + 'static,
{
    if source.batches_per_epoch() == 0 {
        return Err(TrainError::NoBatches);
    }
    let (replicas, devices) = start_replicas(&model, plan)?;
    let mut session = Session {
        optimizer,
        schedule,
        source,
        plan,
        events,
        replicas,
        devices,
        losses: Vec::new(),
        step: plan.start.step,
        epoch: plan.start.epoch,
        start: Instant::now(),
        outside: Duration::ZERO,
        stopped: false,
        interrupted: false,
    };
    // A resumed run continues the shuffle where the interrupted one left it.
    source.skip_epochs(session.epoch);
    let mut skip = plan.start.batch;
    while !session.done() {
        session.epoch += 1;
        let (trained, epoch) = session.train_epoch(model, std::mem::take(&mut skip))?;
        model = session.shared_buffers(trained);
        if session.stopped {
            break;
        }
        let epoch_number = session.epoch;
        let report_epoch =
            matches!(plan.report, Report::EveryEpochs(k) if epoch_number.is_multiple_of(k.max(1)));
        if report_epoch
            && epoch.rows > 0
            && session.record(LossRecord {
                step: session.step,
                epoch: epoch_number,
                lr: epoch.lr,
                loss: epoch.loss_sum / epoch.rows as f64,
            })
        {
            session.stopped = true;
            break;
        }
        if session.step == plan.start.step {
            return Err(TrainError::NoBatches);
        }
        if session.end_epoch(&model)?.is_break() || session.interrupted {
            session.stopped = true;
            break;
        }
    }
    session.finish(model)
}

/// One call of the engine between its epochs: what it trains with, where it is, and what it has
/// recorded.
struct Session<'a, 'h, M, B> {
    optimizer: &'a mut ModuleOptimizer,
    schedule: &'a mut ModuleLrScheduler,
    source: &'a dyn BatchSource<B>,
    plan: &'a Plan,
    events: &'h mut dyn Events<M>,
    replicas: Option<Replicas<M, B>>,
    /// Every device taking part (the model's, then the replicas').
    devices: Vec<Device>,
    losses: Vec<LossRecord>,
    /// Updates made.
    step: usize,
    /// The epoch in progress (1-based), or the last one finished between epochs.
    epoch: usize,
    start: Instant,
    /// Time spent in `on_epoch`, which the training time leaves out.
    outside: Duration,
    stopped: bool,
    interrupted: bool,
}

/// The gradients of an accumulation group so far, and its example-weighted loss.
struct Group<M: Module> {
    gradients: Option<GradientsAccumulator<M>>,
    loss_sum: f64,
    rows: usize,
}

impl<M: Module> Default for Group<M> {
    fn default() -> Self {
        Self { gradients: None, loss_sum: 0.0, rows: 0 }
    }
}

impl<M: Module> Group<M> {
    /// Add a batch's (weighted) gradients, its mean loss and its examples.
    fn add(&mut self, model: &M, gradients: GradientsParams, loss: f64, rows: usize) {
        self.gradients.get_or_insert_with(GradientsAccumulator::new).accumulate(model, gradients);
        self.loss_sum += loss * rows as f64;
        self.rows += rows;
    }

    /// The group's mean loss, with the batch of `rows` examples whose mean is `loss` in it.
    fn loss(&self, loss: f64, rows: usize) -> f64 {
        (self.loss_sum + loss * rows as f64) / (self.rows + rows) as f64
    }

    /// The summed gradients, and a fresh group.
    fn take(&mut self) -> GradientsParams {
        let gradients = self.gradients.take().map_or_else(GradientsParams::new, |mut g| g.grads());
        *self = Self::default();
        gradients
    }
}

/// An epoch's example-weighted loss sum, its examples and its last learning rate.
struct EpochLoss {
    loss_sum: f64,
    rows: usize,
    lr: f64,
}

impl<M, B> Session<'_, '_, M, B>
where
    M: Objective<B> + 'static,
    B: BatchRows + Send + 'static,
{
    /// The optimizer's update of `model` by `gradients` at `lr`; with [`Plan::head`], the head's
    /// and the body's apart: the body's not at all in a frozen epoch, else at its fraction of
    /// the rate.
    fn update(
        &mut self,
        lr: burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate,
        model: M,
        gradients: GradientsParams,
        epoch: usize,
    ) -> M {
        // With several processes, every one makes this update with the job's summed gradients.
        let gradients = super::distributed::sum_gradients(&self.plan.world, &model, gradients);
        let Some(head) = &self.plan.head else {
            return self.optimizer.step(lr, model, gradients);
        };
        let (head_gradients, body) = super::head::split(&model, gradients, &head.head);
        let (frozen, factor) = (head.frozen(epoch), head.body_lr_factor);
        let model = self.optimizer.step(lr.clone(), model, head_gradients);
        if frozen || body.is_empty() {
            return model;
        }
        self.optimizer.step(lr.base() * factor, model, body)
    }

    /// With several processes and batch norm that is not synchronised, the model with its
    /// running statistics averaged across them (see [`super::distributed::average_buffers`]).
    ///
    /// Burn's `RunningState` keeps a layer's latest running statistics pending (per thread)
    /// until they are synced, and maps and visits only the synced value: `valid()` syncs them in
    /// place first, so that the average, the checksum and the validation all see the latest.
    fn shared_buffers(&self, model: M) -> M {
        if !self.plan.world.is_parallel() {
            return model;
        }
        drop(model.valid());
        match self.plan.sync_batch_norm {
            true => model,
            false => super::distributed::average_buffers(&self.plan.world, model),
        }
    }

    /// Whether the plan's length is reached.
    fn done(&self) -> bool {
        self.reached(self.step, self.epoch)
    }

    fn reached(&self, step: usize, epoch: usize) -> bool {
        match self.plan.length {
            Length::Steps(total) => step >= total,
            Length::Epochs(total) => epoch >= total,
        }
    }

    /// Keep a reported loss and show it to `on_loss`; whether that asks to stop (rank 0's
    /// answer, with several processes: every one stops or none does).
    fn record(&mut self, record: LossRecord) -> bool {
        let flow = self.events.loss(&record);
        self.losses.push(record);
        self.plan.world.root_says(flow.is_break())
    }

    /// Training time so far, without the time spent in `on_epoch`.
    fn seconds(&self) -> f64 {
        (Instant::now() - self.start - self.outside).as_secs_f64()
    }

    /// Train epoch `self.epoch` from its batch `first` (0, or where a resumed run stopped): each
    /// batch's loss read and checked, reported at the plan's cadence, the update made, `on_batch`
    /// told. Sets `stopped` (and `interrupted`) when a hook stops the run part-way.
    fn train_epoch(&mut self, mut model: M, first: usize) -> Result<(M, EpochLoss), TrainError> {
        let (plan, epoch, batches) = (self.plan, self.epoch, self.source.batches_per_epoch());
        let k = plan.accumulate.max(1);
        // A run resumed part-way through the epoch starts from the sum the interrupted run had
        // reached; resumed part-way through a group, it first trains the group's earlier batches
        // again for their gradients (the model has not changed since the group began).
        let mut sums = match first {
            0 => EpochLoss { loss_sum: 0.0, rows: 0, lr: 0.0 },
            _ => EpochLoss { loss_sum: plan.start.partial_loss, rows: plan.start.partial_rows, lr: 0.0 },
        };
        let mut group = Group::default();
        for (index, batch) in self.source.epoch().enumerate().skip(first - first % k) {
            let in_group = index % k;
            if in_group == 0 && matches!(plan.length, Length::Steps(total) if self.step >= total) {
                break;
            }
            let batch = batch.map_err(|error| TrainError::Batch {
                epoch,
                batch: index + 1,
                message: error.to_string(),
            })?;
            let rows = batch.rows();
            let scale = if k == 1 { None } else { Some(rows as f32 / self.group_rows(index, k)? as f32) };
            // The update's learning rate, one schedule step per update: taken before the batch
            // with an update per batch; at a group's end with accumulation, so that a checkpoint
            // part-way through a group holds the schedule as it was before the group's update.
            let mut update_lr = (k == 1).then(|| self.schedule.step());
            if let Some(lr) = &update_lr {
                sums.lr = lr.base();
            }
            // One device computes the loss now and its gradients after the checks below; several
            // compute both at once, each on its share of the rows.
            let (pending, value) = self.forward_and_read(&model, batch, in_group, scale)?;
            if !value.is_finite() {
                return Err(TrainError::Diverged { step: self.step, epoch, lr: sums.lr, loss: value });
            }
            let last_of_group = in_group + 1 == k || index + 1 == batches;
            let mut update = None;
            if last_of_group {
                let lr = update_lr.get_or_insert_with(|| self.schedule.step());
                sums.lr = lr.base();
                let made = Update { lr: sums.lr, loss: group.loss(value, rows) };
                update = Some(made);
                if self.report_step(LossRecord { step: self.step, epoch, lr: made.lr, loss: made.loss }) {
                    self.stopped = true;
                    return Ok((model, sums));
                }
            }
            group.add(&model, pending.gradients(&model, scale), value, rows);
            if index < first {
                continue; // a replayed batch: counted, reported and shown before the interruption
            }
            sums.loss_sum += value * rows as f64;
            sums.rows += rows;
            if let (true, Some(lr)) = (last_of_group, update_lr) {
                model = self.update(lr, model, group.take(), epoch);
                self.step += 1;
            }
            let end = BatchEnd { epoch, batch: index + 1, batches, step: self.step, loss: value, update };
            // A process interrupted (Ctrl-C reaches each at its own moment) stops them all here.
            let flow = flow_if(self.plan.world.any(self.events.batch(&end).is_break()));
            if flow.is_break() && !self.reached(self.step, epoch - 1) && index + 1 < batches {
                let model = self.shared_buffers(model);
                self.stop_part_way(&model, index + 1, &sums);
                return Ok((model, sums));
            }
            // An interruption with the epoch's last batch ends the epoch normally (its report and
            // checkpoint), then stops.
            self.interrupted |= flow.is_break();
        }
        Ok((model, sums))
    }

    /// The batch's forward pass (its gradients too, on several devices), and its loss, read: a
    /// run that diverged must stop at once, and every batch's loss is checked.
    fn forward_and_read(
        &self,
        model: &M,
        batch: B,
        in_group: usize,
        scale: Option<f32>,
    ) -> Result<(Pending, f64), TrainError> {
        let device =
            self.devices.first().ok_or_else(|| TrainError::Device("the model has no parameters".into()))?;
        let replicas = self.replicas.as_ref();
        let pending = forward(model, batch, (replicas, device), self.plan, (self.step, in_group), scale)?;
        let value = match &pending {
            Pending::Loss(loss) => read_scalar(loss.clone())?,
            Pending::Gradients(loss, _) => *loss,
        };
        Ok((pending, value))
    }

    /// Report an update's loss when the plan reports every few steps and this is one of them;
    /// whether `on_loss` asks to stop.
    fn report_step(&mut self, record: LossRecord) -> bool {
        matches!(self.plan.report, Report::EverySteps(every) if record.step.is_multiple_of(every.max(1)))
            && self.record(record)
    }

    /// The examples of the accumulation group of batch `index`: every batch of the group, the
    /// last group of an epoch as long as it is.
    fn group_rows(&self, index: usize, k: usize) -> Result<usize, TrainError> {
        let start = index - index % k;
        let end = (start + k).min(self.source.batches_per_epoch());
        (start..end).map(|batch| self.source.rows_of(batch)).sum::<Option<usize>>().ok_or_else(|| {
            TrainError::Batch {
                epoch: self.epoch,
                batch: index + 1,
                message: "gradient accumulation needs batches whose sizes are known before they are made"
                    .into(),
            }
        })
    }

    /// Interrupted after `batch` batches of the epoch: `on_epoch` sees where a continuing run
    /// starts, to checkpoint there.
    fn stop_part_way(&mut self, model: &M, batch: usize, sums: &EpochLoss) {
        let position = Position {
            step: self.step,
            epoch: self.epoch - 1,
            batch,
            partial_loss: sums.loss_sum,
            partial_rows: sums.rows,
        };
        let seconds = self.seconds();
        let Session { events, optimizer, schedule, .. } = self;
        let end = EpochEnd {
            epoch: self.epoch,
            step: self.step,
            last: false,
            model,
            optimizer,
            schedule,
            seconds,
            interrupted: true,
            position,
        };
        let _ = events.epoch(&end);
        (self.stopped, self.interrupted) = (true, true);
    }

    /// The end of an epoch: the processes of a job checked to hold the same parameters, then
    /// `on_epoch` sees the model and the state to evaluate or checkpoint (rank 0's answer
    /// decides for every process); its time is left out of the training time.
    fn end_epoch(&mut self, model: &M) -> Result<ControlFlow<()>, TrainError> {
        super::distributed::check_replicas(&self.plan.world, model, self.epoch)?;
        let hook_start = Instant::now();
        let last = self.done() || self.interrupted;
        let (step, epoch) = (self.step, self.epoch);
        let seconds = (hook_start - self.start - self.outside).as_secs_f64();
        let Session { events, optimizer, schedule, .. } = self;
        let end = EpochEnd {
            epoch,
            step,
            last,
            model,
            optimizer,
            schedule,
            seconds,
            interrupted: false,
            position: Position { step, epoch, ..Position::default() },
        };
        let flow = events.epoch(&end);
        self.outside += hook_start.elapsed();
        Ok(flow_if(self.plan.world.root_says(flow.is_break())))
    }

    /// Wait for every device, and what the run did.
    fn finish(self, model: M) -> Result<Trained<M>, TrainError> {
        for device in &self.devices {
            device.sync().map_err(|error| {
                TrainError::Device(crate::device::ReadBackError::from_debug(&error).to_string())
            })?;
        }
        let seconds = (self.start.elapsed() - self.outside).as_secs_f64();
        Ok(Trained {
            model,
            steps: self.step,
            epochs: self.epoch,
            losses: self.losses,
            seconds,
            stopped: self.stopped,
            interrupted: self.interrupted,
        })
    }
}

/// The replicas of a data-parallel plan (none for one device), and every device taking part.
type Taking<M, B> = (Option<Replicas<M, B>>, Vec<Device>);

/// The replicas of a data-parallel plan (none for one device), and every device taking part: the
/// model's, then the replicas'. The model's lazy parameters are drawn first, under the device
/// module's lock from the plan's seed (a model made by an experiment has drawn them already).
fn start_replicas<M, B>(model: &M, plan: &Plan) -> Result<Taking<M, B>, TrainError>
where
    M: Objective<B> + 'static,
    B: BatchRows + Send + 'static,
{
    let seed = step_seed(plan.seed.unwrap_or_default(), plan.start.step);
    let mut devices = model.devices();
    crate::device::init_seeded(&devices, seed, || model.clone());
    let replicas = match plan.replicas.len() {
        0 | 1 => None,
        _ => Some(Replicas::<M, B>::start(&plan.replicas)?),
    };
    for device in replicas.iter().flat_map(|r| r.devices()) {
        if !devices.contains(device) {
            devices.push(device.clone());
        }
    }
    Ok((replicas, devices))
}

/// Step `step`'s loss: on one device, the batch seeded from the step first; or on the replicas,
/// each share with a seed of its own (device 0's the one-device seed), with the gradients already
/// summed; or, with several processes, this process's share (see [`world_share`]).
fn forward<M, B>(
    model: &M,
    batch: B,
    (replicas, device): (Option<&Replicas<M, B>>, &Device),
    plan: &Plan,
    (step, in_group): (usize, usize),
    scale: Option<f32>,
) -> Result<Pending, TrainError>
where
    M: Objective<B> + 'static,
    B: BatchRows + Send + 'static,
{
    // A group's batches after its first draw from seeds of their own (the first one's is the
    // step's, as without accumulation).
    let seed = plan.seed.unwrap_or_default().wrapping_add((in_group as u64) << 32);
    if plan.world.is_parallel() {
        let sync = plan.sync_batch_norm.then_some(&plan.world);
        let share = || world_share(model, batch, (replicas, device), &plan.world, (seed, step), scale);
        return crate::nn::synchronise(sync, share);
    }
    match replicas {
        None => Ok(Pending::Loss(model.loss(batch.seeded(step_seed(seed, step))))),
        Some(replicas) => {
            let seed = |i: usize| step_seed(seed.wrapping_add(i as u64), step);
            let (loss, gradients) = replicas.step(model, batch, seed, scale)?;
            Ok(Pending::Gradients(loss, gradients))
        }
    }
}

/// This process's share of a step in a job of several processes: the contiguous rows of its
/// rank ([`World::share`]), their loss weighted by `share rows / batch rows` and its
/// gradients (over the replicas of this process, when it has several devices), seeded as the
/// share of device `rank` (rank 0's seed is a single process's). The loss comes back summed
/// across the processes, the batch's mean loss, the same on every one; the gradients are this
/// process's alone until the update sums them. A process left without rows (a batch with fewer
/// rows than processes) computes one row weighted by zero, so that its gradients still have
/// every parameter's shape.
fn world_share<M, B>(
    model: &M,
    batch: B,
    (replicas, device): (Option<&Replicas<M, B>>, &Device),
    world: &World,
    (seed, step): (u64, usize),
    scale: Option<f32>,
) -> Result<Pending, TrainError>
where
    M: Objective<B> + 'static,
    B: BatchRows + Send + 'static,
{
    let rows = batch.rows();
    let (range, weight) = match world.share(rows) {
        Some(range) => (range.clone(), range.len() as f32 / rows.max(1) as f32),
        None => (0..rows.min(1), 0.0),
    };
    let share = batch.slice_rows(range, device);
    drop(batch);
    let (value, gradients) = match replicas {
        None => {
            let seeded = share.seeded(step_seed(seed.wrapping_add(world.rank() as u64), step));
            let loss = model.loss(seeded).mul_scalar(weight);
            let value = read_scalar(loss.clone())?;
            let loss = match scale {
                Some(scale) => loss.mul_scalar(scale),
                None => loss,
            };
            (value, GradientsParams::from_grads(loss.backward(), model))
        }
        Some(replicas) => {
            let first = world.rank() * replicas.count();
            let seed_of = |i: usize| step_seed(seed.wrapping_add((first + i) as u64), step);
            let (loss, gradients) =
                replicas.step(model, share, seed_of, Some(weight * scale.unwrap_or(1.0)))?;
            (loss * f64::from(weight), gradients)
        }
    };
    let mut total = [value];
    world.sum_f64(&mut total);
    Ok(Pending::Gradients(total[0], gradients))
}

/// A step's loss before its gradients: the loss tensor (one device), or the loss already read
/// with the gradients already summed (several devices). One lives on the stack per step, so
/// the size of a `Tensor` in it costs nothing; boxing it would cost an allocation per step.
#[allow(clippy::large_enum_variant)]
enum Pending {
    Loss(Tensor<1>),
    Gradients(f64, GradientsParams),
}

impl Pending {
    /// The step's gradients: back from the loss (times `scale`, a batch's share of its
    /// accumulation group), or as the devices summed them.
    fn gradients<M: Module>(self, model: &M, scale: Option<f32>) -> GradientsParams {
        match self {
            Pending::Loss(loss) => {
                let loss = match scale {
                    Some(scale) => loss.mul_scalar(scale),
                    None => loss,
                };
                GradientsParams::from_grads(loss.backward(), model)
            }
            Pending::Gradients(_, gradients) => gradients,
        }
    }
}

/// `Break` when `stop`.
fn flow_if(stop: bool) -> ControlFlow<()> {
    if stop { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
}

fn read_scalar(tensor: Tensor<1>) -> Result<f64, TrainError> {
    crate::device::wait_for_reply(move || {
        tensor
            .inner()
            .try_into_scalar::<f32>()
            .map(f64::from)
            .map_err(|error| crate::device::ReadBackError::from_debug(&error))
    })
    .map_err(|error| TrainError::Device(error.to_string()))
}
