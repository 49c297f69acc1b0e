//! Driving the engine's trainer over the (instance, replica) pairs of a run, and best-of-N
//! selection: the code every family shares between its engine tasks and the run's outcomes.
//!
//! Every (instance, replica) pair is one engine instance; after training, each instance keeps the
//! replica with the lowest evaluation loss, and all replicas' losses and histories are recorded.
//! This module knows engine tasks only, not configs or families.

use rayon::prelude::*;
use serde_json::Value;
use tms_engine::models::NamedTensor;
use tms_engine::rng::InstanceKey;
use tms_engine::train::{self, HistoryRow, InstanceState, Status, Task, TrainSettings};

/// The settings of a run that every instance shares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunSettings {
    /// Optimiser, schedule, steps.
    pub train: TrainSettings,
    /// Run seed: each instance's streams derive from (seed, instance, replica).
    pub seed: u64,
    /// Replicas per instance (best-of-N).
    pub replicas: u64,
}

/// One replica of one instance after training.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaOutcome {
    /// Replica number.
    pub replica: u64,
    /// Loss on the instance's fixed evaluation batch (NaN if diverged).
    pub evaluation_loss: f64,
    /// How training ended.
    pub status: Status,
    /// Recorded history rows.
    pub history: Vec<HistoryRow>,
}

/// One instance (setting) after training and selection.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceOutcome {
    /// Index of the setting in the plan.
    pub index: usize,
    /// The replica kept (lowest evaluation loss among those that did not diverge).
    pub chosen_replica: u64,
    /// Every replica.
    pub replicas: Vec<ReplicaOutcome>,
    /// Parameters of the kept replica, as the output tensors.
    pub tensors: Vec<NamedTensor>,
    /// The instance's settings (axis values) as JSON.
    pub settings: Value,
    /// The family's metrics of the kept replica as JSON.
    pub metrics: Value,
}

impl InstanceOutcome {
    /// The kept replica.
    pub fn chosen(&self) -> &ReplicaOutcome {
        &self.replicas[self.chosen_replica as usize]
    }
}

/// What a family says about the kept replica of one instance.
pub struct Described {
    /// The instance's settings (axis values).
    pub settings: Value,
    /// Its metrics.
    pub metrics: Value,
    /// Its output tensors.
    pub tensors: Vec<NamedTensor>,
}

/// Fresh engine states of `tasks` (the tasks of instances `indices`): for each instance in order,
/// its replicas 0..N in order (the layout [`advance_states`] and [`select`] expect).
pub fn fresh_states<T: Task>(
    tasks: &[T],
    indices: &[usize],
    run: &RunSettings,
) -> Vec<InstanceState> {
    let replicas = run.replicas as usize;
    let mut states: Vec<InstanceState> = Vec::with_capacity(tasks.len() * replicas);
    for (task, &k) in tasks.iter().zip(indices) {
        for r in 0..replicas {
            let key = InstanceKey {
                seed: run.seed,
                instance: k as u64,
                replica: r as u64,
            };
            states.push(InstanceState::new(task, key));
        }
    }
    states
}

/// The task of each of `states` states laid out as by [`fresh_states`] (each task repeated for
/// its replicas): one flat list, so that rayon balances every (instance, replica) pair.
fn task_of_each_state<'a, T: Task>(tasks: &'a [T], states: usize, run: &RunSettings) -> Vec<&'a T> {
    let replicas = run.replicas as usize;
    assert_eq!(states, tasks.len() * replicas, "one state per replica");
    tasks
        .iter()
        .flat_map(|t| std::iter::repeat_n(t, replicas))
        .collect()
}

/// Advances `states` (laid out as by [`fresh_states`]) to step `until`, in parallel: each
/// (instance, replica) is independent of the others.
pub fn advance_states<T: Task>(
    tasks: &[T],
    states: &mut [InstanceState],
    until: u64,
    run: &RunSettings,
    progress: &(dyn Fn(u64) + Sync),
) {
    let flat_tasks = task_of_each_state(tasks, states.len(), run);
    states
        .par_iter_mut()
        .zip(flat_tasks.par_iter())
        .with_max_len(1)
        .for_each(|(state, task)| train::advance(*task, state, &run.train, until, progress));
}

/// Selects the best replica of each instance of `tasks` (instances `indices`, states laid out as by
/// [`fresh_states`]) and lets `describe` say what it is.
pub fn select<T: Task>(
    tasks: &[T],
    indices: &[usize],
    states: &[InstanceState],
    run: &RunSettings,
    describe: impl Fn(usize, &T, &[f32]) -> Described,
) -> Vec<InstanceOutcome> {
    let replicas = run.replicas as usize;
    let flat_tasks = task_of_each_state(tasks, states.len(), run);
    let losses: Vec<f64> = states
        .par_iter()
        .zip(flat_tasks.par_iter())
        .with_max_len(1)
        .map(|(state, task)| {
            if state.status == Status::Finished {
                task.evaluation_loss(&state.parameters, &state.key)
            } else {
                f64::NAN
            }
        })
        .collect();
    tasks
        .iter()
        .zip(indices)
        .enumerate()
        .map(|(position, (task, &k))| {
            let range = position * replicas..(position + 1) * replicas;
            let chosen = select_best(&losses[range.clone()]);
            let parameters = &states[range.start + chosen].parameters;
            let described = describe(k, task, parameters);
            InstanceOutcome {
                index: k,
                chosen_replica: chosen as u64,
                tensors: described.tensors,
                replicas: range
                    .map(|j| ReplicaOutcome {
                        replica: states[j].key.replica,
                        evaluation_loss: losses[j],
                        status: states[j].status.clone(),
                        history: states[j].history.clone(),
                    })
                    .collect(),
                settings: described.settings,
                metrics: described.metrics,
            }
        })
        .collect()
}

/// Index of the lowest loss; NaN (diverged) replicas lose to any number; ties keep the lowest index.
pub fn select_best(losses: &[f64]) -> usize {
    let mut best = 0;
    for (j, &l) in losses.iter().enumerate().skip(1) {
        let b = losses[best];
        if (b.is_nan() && !l.is_nan()) || l < b {
            best = j;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::select_best;

    #[test]
    fn best_of_n_prefers_finite_lowest_first() {
        assert_eq!(select_best(&[0.3, 0.1, 0.2]), 1);
        assert_eq!(select_best(&[f64::NAN, 0.5, 0.4]), 2);
        assert_eq!(select_best(&[0.1, 0.1]), 0);
        assert_eq!(select_best(&[f64::NAN, f64::NAN]), 0);
    }
}
