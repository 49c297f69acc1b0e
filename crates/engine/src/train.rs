//! The one training loop every model family shares.
//!
//! A [`Task`] is what one instance learns: its model, its data and its loss. The trainer owns
//! everything else: initialisation from the instance's own stream, the optimiser and schedule, the
//! per-instance history (loss and the task's observables every `log_every` steps), divergence
//! detection, and parallelism. Instances are independent: the trainer hands each instance's step
//! loop to rayon as one task, with no state shared between instances. Inside a step a large
//! instance may fork work of its own onto the same pool and join it before the step ends (the toy
//! kernels' batch chunks, the optimiser's parameter ranges); that work is cut by sizes only and
//! reduced in a fixed order. So an instance's result is a function of its task, its
//! [`InstanceKey`], the settings and the kernel set ([`crate::cpu`]) only — never of the thread
//! count or of the other instances in the run.
//!
//! An [`InstanceState`] holds all that a run needs to continue (parameters, optimiser moments, the
//! random stream's state, step, history), so checkpointing is a copy of it and resuming from a
//! checkpoint gives bit-identical results.

use crate::models::NamedTensor;
use crate::optim::{Optimizer, OptimizerState, Schedule};
use crate::rng::{InstanceKey, StreamPurpose, StreamRng};
use rayon::prelude::*;

/// What one instance learns: its model, data and loss. Implemented once per model family.
pub trait Task: Sync {
    /// Per-instance scratch memory reused across steps (batches, activations).
    type Workspace: Send;

    /// Number of f32 parameters of one instance.
    fn parameter_count(&self) -> usize;

    /// Writes the initial parameters, drawing from the instance's initialisation stream.
    fn initialise(&self, rng: &mut StreamRng, parameters: &mut [f32]);

    /// Fresh scratch memory.
    fn workspace(&self) -> Self::Workspace;

    /// Loss of one training step and its gradient dL/dθ (overwritten), drawing data from `rng`.
    fn loss_and_gradient(
        &self,
        parameters: &[f32],
        rng: &mut StreamRng,
        workspace: &mut Self::Workspace,
        gradient: &mut [f32],
    ) -> f64;

    /// Loss on the instance's fixed evaluation data (or an exact expected loss), used to report the
    /// final loss and to pick the best of N replicas. Must not depend on `key.replica`.
    fn evaluation_loss(&self, parameters: &[f32], key: &InstanceKey) -> f64;

    /// Names of the quantities recorded beside the loss in the history.
    fn observable_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// The observables at `parameters` (same order as [`Task::observable_names`]).
    fn observe(&self, _parameters: &[f32]) -> Vec<f64> {
        Vec::new()
    }

    /// The instance's parameters as named tensors for the output files.
    fn export(&self, parameters: &[f32]) -> Vec<NamedTensor>;
}

/// Settings shared by every instance of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainSettings {
    /// Number of optimisation steps.
    pub steps: u64,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// Base learning rate η₀.
    pub learning_rate: f64,
    /// How η varies over the run.
    pub schedule: Schedule,
    /// A history row every `log_every` steps (and at the last step).
    pub log_every: u64,
}

/// One row of an instance's history: the state after `step` updates.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryRow {
    /// Updates applied before this row's measurement.
    pub step: u64,
    /// Loss of the minibatch drawn at this step (before its update).
    pub loss: f64,
    /// The task's observables at this step.
    pub observables: Vec<f64>,
}

/// How an instance's training ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Still has steps to run.
    Running,
    /// Ran all its steps.
    Finished,
    /// Stopped because the loss or a gradient was NaN or infinite at `step`.
    Diverged {
        /// The step at which a non-finite value appeared.
        step: u64,
        /// The loss at that step (may itself be finite if only the gradient was not).
        loss: f64,
    },
}

/// Everything about one instance's training so far: enough to continue it exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceState {
    /// Which instance this is.
    pub key: InstanceKey,
    /// Flat parameters (layout defined by the task).
    pub parameters: Vec<f32>,
    /// Optimiser moments.
    pub optimizer: OptimizerState,
    /// The training-data stream, positioned at the next draw.
    pub rng: StreamRng,
    /// Updates applied so far.
    pub step: u64,
    /// Recorded rows.
    pub history: Vec<HistoryRow>,
    /// How training stands.
    pub status: Status,
}

impl InstanceState {
    /// A fresh instance: parameters from its initialisation stream, data from its training stream.
    pub fn new<T: Task>(task: &T, key: InstanceKey) -> Self {
        let mut parameters = vec![0.0; task.parameter_count()];
        task.initialise(
            &mut key.stream(StreamPurpose::Initialisation),
            &mut parameters,
        );
        Self {
            key,
            parameters,
            optimizer: OptimizerState::default(),
            rng: key.stream(StreamPurpose::TrainingData),
            step: 0,
            history: Vec::new(),
            status: Status::Running,
        }
    }
}

/// How often (in steps) the trainer reports progress.
const PROGRESS_EVERY: u64 = 64;

/// Advances one instance up to step `until` (at most `settings.steps`). `progress` receives the number
/// of steps done since its last call.
pub fn advance<T: Task>(
    task: &T,
    state: &mut InstanceState,
    settings: &TrainSettings,
    until: u64,
    progress: &(dyn Fn(u64) + Sync),
) {
    let until = until.min(settings.steps);
    let mut workspace = task.workspace();
    let mut gradient = vec![0.0f32; state.parameters.len()];
    let mut unreported = 0;
    while state.step < until && state.status == Status::Running {
        let step = state.step;
        let loss = task.loss_and_gradient(
            &state.parameters,
            &mut state.rng,
            &mut workspace,
            &mut gradient,
        );
        let last = step + 1 == settings.steps;
        if step.is_multiple_of(settings.log_every.max(1)) || last {
            state.history.push(HistoryRow {
                step,
                loss,
                observables: task.observe(&state.parameters),
            });
        }
        // A branch-free fold (vectorised): at 10⁵ parameters a short-circuiting scan is a serial
        // pause in every step, long enough for the other worker threads to fall asleep.
        let gradient_finite = gradient.iter().fold(true, |all, g| all & g.is_finite());
        if !loss.is_finite() || !gradient_finite {
            state.status = Status::Diverged { step, loss };
            break;
        }
        let rate = settings
            .schedule
            .rate(settings.learning_rate, step, settings.steps);
        settings
            .optimizer
            .update(&mut state.optimizer, &mut state.parameters, &gradient, rate);
        state.step += 1;
        unreported += 1;
        if unreported == PROGRESS_EVERY {
            progress(unreported);
            unreported = 0;
        }
    }
    if state.step >= settings.steps && state.status == Status::Running {
        state.status = Status::Finished;
    }
    progress(unreported);
}

/// Advances every instance to step `until`, in parallel across instances (rayon's global pool).
/// `tasks[k]` is the task of `states[k]`.
pub fn advance_all<T: Task>(
    tasks: &[T],
    states: &mut [InstanceState],
    settings: &TrainSettings,
    until: u64,
    progress: &(dyn Fn(u64) + Sync),
) {
    assert_eq!(tasks.len(), states.len(), "one task per instance state");
    tasks
        .par_iter()
        .zip(states.par_iter_mut())
        .with_max_len(1)
        .for_each(|(task, state)| advance(task, state, settings, until, progress));
}

/// Trains every instance from scratch for `settings.steps` steps.
pub fn train<T: Task>(
    tasks: &[T],
    keys: &[InstanceKey],
    settings: &TrainSettings,
    progress: &(dyn Fn(u64) + Sync),
) -> Vec<InstanceState> {
    let mut states: Vec<InstanceState> = tasks
        .iter()
        .zip(keys)
        .map(|(t, &k)| InstanceState::new(t, k))
        .collect();
    advance_all(tasks, &mut states, settings, settings.steps, progress);
    states
}
