//! Reading deep-linear runs (followups.md §F1) back as the paper's objects: the histories of the
//! mode strengths a_α(t) and predictions ŷ_{m,i}(t), half-learning times, and the weights at chosen
//! times.
//!
//! **Weights at several times** (for the RSM heatmaps of progressive differentiation and the
//! conservation drift): a run keeps only its final weights, and the task's observables cannot see
//! the initial ones. Training is deterministic given the instance key (the initial weights come from
//! the key's initialisation stream, full-batch gradient descent draws nothing), so the analysis
//! *replays* the kept replica with the engine's trainer, stopping at the requested steps — the same
//! code path as the run, in steps of a few microseconds. [`replay`] checks that the replay ends on
//! the run's exported weights bit for bit, so a snapshot is exactly the run's state at that step.

// Analyses return `ReproduceError`, which carries a config error with its origin, key and hint;
// it happens at most once per experiment, so its size on the error path does not matter.
#![allow(clippy::result_large_err)]

use tms_engine::models::deep_linear::{DeepLinearShape, DeepLinearStart};
use tms_engine::models::NamedTensor;
use tms_engine::rng::InstanceKey;
use tms_engine::train::{self, InstanceState};
use tms_experiments::families::deep_linear::{DeepLinear, DeepLinearPlan};
use tms_experiments::run::{observable_names, InstanceOutcome};

use crate::{CompletedRun, ReproduceError};

/// The deep-linear plan of a run, or an analysis error naming the experiment.
pub fn deep_plan<'a>(
    experiment: &str,
    run: &'a CompletedRun,
) -> Result<&'a DeepLinearPlan, ReproduceError> {
    run.plan.family.get::<DeepLinear>().ok_or_else(|| {
        analysis_error(
            experiment,
            format!("run {} is not a deep linear run", run.request.preset),
        )
    })
}

/// An analysis error of `experiment`.
pub fn analysis_error(experiment: &str, message: impl Into<String>) -> ReproduceError {
    ReproduceError::Analysis {
        experiment: experiment.into(),
        message: message.into(),
    }
}

/// The initial strength a₀ of instance `index` of `plan`, which must start aligned (the closed
/// forms assume it); an analysis error naming `experiment` otherwise.
pub fn aligned_start(
    experiment: &str,
    plan: &DeepLinearPlan,
    index: usize,
) -> Result<f64, ReproduceError> {
    match plan.instances[index].start {
        DeepLinearStart::Aligned { initial_strength } => Ok(initial_strength),
        _ => Err(analysis_error(
            experiment,
            "the preset must use the aligned start (the closed forms assume it)",
        )),
    }
}

/// The recorded history of an instance's kept replica: steps and every observable by name.
#[derive(Clone, Debug)]
pub struct History {
    /// Step of each row.
    pub steps: Vec<f64>,
    /// Training loss of each row (the loss before that step's update).
    pub loss: Vec<f64>,
    names: Vec<String>,
    columns: Vec<Vec<f64>>,
}

impl History {
    /// The history of `outcome` in `run`.
    pub fn of(run: &CompletedRun, outcome: &InstanceOutcome) -> Self {
        let rows = &outcome.chosen().history;
        let names = observable_names(&run.plan);
        let columns = (0..names.len())
            .map(|c| rows.iter().map(|r| r.observables[c]).collect())
            .collect();
        Self {
            steps: rows.iter().map(|r| r.step as f64).collect(),
            loss: rows.iter().map(|r| r.loss).collect(),
            names,
            columns,
        }
    }

    /// The observable `name` over time.
    pub fn column(&self, experiment: &str, name: &str) -> Result<&[f64], ReproduceError> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|c| self.columns[c].as_slice())
            .ok_or_else(|| analysis_error(experiment, format!("no observable `{name}` recorded")))
    }

    /// a_α(t) of mode `alpha` (0-based).
    pub fn mode(&self, experiment: &str, alpha: usize) -> Result<&[f64], ReproduceError> {
        self.column(experiment, &format!("mode_strength_{}", alpha + 1))
    }

    /// Half-learning time of mode `alpha`: the first step at which a_α reaches s_α/2.
    pub fn half_time(&self, experiment: &str, alpha: usize, s: f64) -> Result<f64, ReproduceError> {
        crossing(&self.steps, self.mode(experiment, alpha)?, s / 2.0).ok_or_else(|| {
            analysis_error(
                experiment,
                format!(
                    "mode {} never reached s/2 = {:.4} in {} steps",
                    alpha + 1,
                    s / 2.0,
                    self.steps.last().copied().unwrap_or(0.0)
                ),
            )
        })
    }
}

/// First time `values` (sampled at `steps`) reaches `level` from below, linearly interpolated
/// between rows (an error below one logging interval); `Some(steps[0])` if it starts there.
pub fn crossing(steps: &[f64], values: &[f64], level: f64) -> Option<f64> {
    if values.first().is_some_and(|&v| v >= level) {
        return steps.first().copied();
    }
    (1..values.len()).find_map(|k| {
        let (a, b) = (values[k - 1], values[k]);
        (a < level && b >= level)
            .then(|| steps[k - 1] + (level - a) / (b - a) * (steps[k] - steps[k - 1]))
    })
}

/// The weights of instance `outcome` at `times` (any order; each ≤ the run's steps), and its
/// initial weights, by replaying its training (see the module docs). Fails if the replay does not
/// end on the run's exported tensors.
pub fn replay(
    experiment: &str,
    run: &CompletedRun,
    outcome: &InstanceOutcome,
    times: &[u64],
) -> Result<Replay, ReproduceError> {
    let plan = deep_plan(experiment, run)?;
    let task = plan.task(outcome.index);
    let key = InstanceKey {
        seed: run.plan.seed,
        instance: outcome.index as u64,
        replica: outcome.chosen_replica,
    };
    let mut state = InstanceState::new(&task, key);
    let initial = state.parameters.clone();
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by_key(|&k| times[k]);
    let mut snapshots = vec![Vec::new(); times.len()];
    for k in order {
        train::advance(&task, &mut state, &run.plan.train, times[k], &|_| {});
        snapshots[k] = state.parameters.clone();
    }
    train::advance(
        &task,
        &mut state,
        &run.plan.train,
        run.plan.train.steps,
        &|_| {},
    );
    let replayed = tms_engine::train::Task::export(&task, &state.parameters);
    if !same_tensors(&replayed, &outcome.tensors) {
        return Err(analysis_error(
            experiment,
            format!(
                "replaying instance {} of {} did not reproduce its final weights",
                outcome.index, run.request.preset
            ),
        ));
    }
    Ok(Replay {
        shape: task.shape().clone(),
        initial,
        snapshots,
    })
}

fn same_tensors(a: &[NamedTensor], b: &[NamedTensor]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name == y.name
                && x.shape == y.shape
                && x.data
                    .iter()
                    .zip(&y.data)
                    .all(|(p, q)| p.to_bits() == q.to_bits())
        })
}

/// Weights of one instance at chosen times.
#[derive(Clone, Debug)]
pub struct Replay {
    /// The chain's shape (to read the flat parameters).
    pub shape: DeepLinearShape,
    /// Parameters at step 0.
    pub initial: Vec<f32>,
    /// Parameters after `times[k]` steps, in the order the times were given.
    pub snapshots: Vec<Vec<f32>>,
}

/// Compact step label: `t = 420`.
pub fn step_label(t: f64) -> String {
    format!("t = {t:.0}")
}

/// Mean of a slice (NaN when empty).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}
