//! Training a [`Plan`]: every (instance, replica) pair is one engine instance; after training, each
//! instance keeps the replica with the lowest evaluation loss (best-of-N), and all replicas' losses
//! are recorded.

use crate::config::{FamilyPlan, Plan};
use rayon::prelude::*;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tms_engine::models::NamedTensor;
use tms_engine::rng::InstanceKey;
use tms_engine::train::{self, HistoryRow, InstanceState, Status, Task};

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

/// Names of the observables recorded in the history, per family.
pub fn observable_names(plan: &Plan) -> Vec<String> {
    match &plan.family {
        FamilyPlan::Toy(p) => p.task(0).observable_names(),
        FamilyPlan::Attention(p) => p.task_ref(0).observable_names(),
        FamilyPlan::DeepLinear(p) => p.task(0).observable_names(),
    }
}

/// Trains the instances `indices` of `plan` (all of them for a plain run; a subset for a shard or a
/// resumed sweep). `progress` receives steps done.
///
/// Equivalent to [`initial_states`], [`advance`] to the last step, then [`outcomes`]; callers that
/// checkpoint (sweeps) call those three themselves and get the same results bit for bit.
pub fn run(
    plan: &Plan,
    indices: &[usize],
    progress: &(dyn Fn(u64) + Sync),
) -> Vec<InstanceOutcome> {
    let mut states = initial_states(plan, indices);
    advance(plan, indices, &mut states, plan.train.steps, progress);
    outcomes(plan, indices, &states)
}

/// Fresh engine states of the instances `indices`: for each instance in order, its replicas
/// 0..N in order (the layout [`advance`] and [`outcomes`] expect).
pub fn initial_states(plan: &Plan, indices: &[usize]) -> Vec<InstanceState> {
    match &plan.family {
        FamilyPlan::Toy(toy) => {
            let tasks: Vec<_> = indices.iter().map(|&k| toy.task(k)).collect();
            fresh_states(plan, &tasks, indices)
        }
        FamilyPlan::Attention(attention) => {
            let tasks: Vec<_> = indices.iter().map(|&k| attention.task(k)).collect();
            fresh_states(plan, &tasks, indices)
        }
        FamilyPlan::DeepLinear(deep) => {
            let tasks: Vec<_> = indices.iter().map(|&k| deep.task(k)).collect();
            fresh_states(plan, &tasks, indices)
        }
    }
}

/// Advances `states` (laid out as by [`initial_states`]) to step `until`, in parallel.
pub fn advance(
    plan: &Plan,
    indices: &[usize],
    states: &mut [InstanceState],
    until: u64,
    progress: &(dyn Fn(u64) + Sync),
) {
    advance_or_stop(plan, indices, states, until, progress, None)
}

/// [`advance`] that can be cancelled: every instance checks `stop` between chunks of its own steps
/// (chunks of at most ~[`STOP_CHECK_EVERY`] of work, so a request is seen within about that time)
/// and returns early once it is set, at a step boundary. Results are those of [`advance`], bit for
/// bit: a state advanced in pieces is the state advanced at once (as sweeps' checkpoints rely on).
/// No barrier joins the instances between checks. Returns whether it was stopped.
pub fn advance_stoppable(
    plan: &Plan,
    indices: &[usize],
    states: &mut [InstanceState],
    until: u64,
    progress: &(dyn Fn(u64) + Sync),
    stop: &AtomicBool,
) -> bool {
    advance_or_stop(plan, indices, states, until, progress, Some(stop));
    stop.load(Ordering::Relaxed)
}

/// How much work an instance does between two checks of [`advance_stoppable`]'s flag.
pub const STOP_CHECK_EVERY: Duration = Duration::from_millis(50);

fn advance_or_stop(
    plan: &Plan,
    indices: &[usize],
    states: &mut [InstanceState],
    until: u64,
    progress: &(dyn Fn(u64) + Sync),
    stop: Option<&AtomicBool>,
) {
    match &plan.family {
        FamilyPlan::Toy(toy) => {
            let tasks: Vec<_> = indices.iter().map(|&k| toy.task(k)).collect();
            advance_states(plan, &tasks, states, until, progress, stop)
        }
        FamilyPlan::Attention(attention) => {
            let tasks: Vec<_> = indices.iter().map(|&k| attention.task(k)).collect();
            advance_states(plan, &tasks, states, until, progress, stop)
        }
        FamilyPlan::DeepLinear(deep) => {
            let tasks: Vec<_> = indices.iter().map(|&k| deep.task(k)).collect();
            advance_states(plan, &tasks, states, until, progress, stop)
        }
    }
}

/// Selects the best replica of each instance and describes it, from states laid out as by
/// [`initial_states`] (normally finished ones).
pub fn outcomes(plan: &Plan, indices: &[usize], states: &[InstanceState]) -> Vec<InstanceOutcome> {
    match &plan.family {
        FamilyPlan::Toy(toy) => {
            let tasks: Vec<_> = indices.iter().map(|&k| toy.task(k)).collect();
            select(plan, &tasks, indices, states, |k, _task, params| {
                (toy.settings_json(k), toy.metrics_json(params))
            })
        }
        FamilyPlan::Attention(attention) => {
            let tasks: Vec<_> = indices.iter().map(|&k| attention.task(k)).collect();
            select(plan, &tasks, indices, states, |k, _task, params| {
                (
                    attention.settings_json(k),
                    attention.metrics_json(k, params),
                )
            })
        }
        FamilyPlan::DeepLinear(deep) => {
            let tasks: Vec<_> = indices.iter().map(|&k| deep.task(k)).collect();
            select(plan, &tasks, indices, states, |k, _task, params| {
                (deep.settings_json(k), deep.metrics_json(params))
            })
        }
    }
}

/// Total steps `run` will report for `indices`.
pub fn total_steps(plan: &Plan, indices: &[usize]) -> u64 {
    indices.len() as u64 * plan.replicas * plan.train.steps
}

fn fresh_states<T: Task>(plan: &Plan, tasks: &[T], indices: &[usize]) -> Vec<InstanceState> {
    let replicas = plan.replicas as usize;
    let mut states: Vec<InstanceState> = Vec::with_capacity(tasks.len() * replicas);
    for (task, &k) in tasks.iter().zip(indices) {
        for r in 0..replicas {
            let key = InstanceKey {
                seed: plan.seed,
                instance: k as u64,
                replica: r as u64,
            };
            states.push(InstanceState::new(task, key));
        }
    }
    states
}

fn advance_states<T: Task>(
    plan: &Plan,
    tasks: &[T],
    states: &mut [InstanceState],
    until: u64,
    progress: &(dyn Fn(u64) + Sync),
    stop: Option<&AtomicBool>,
) {
    let replicas = plan.replicas as usize;
    assert_eq!(
        states.len(),
        tasks.len() * replicas,
        "one state per replica"
    );
    // Flatten (instance, replica) into one list so that rayon balances all of them.
    let flat_tasks: Vec<&T> = tasks
        .iter()
        .flat_map(|t| std::iter::repeat_n(t, replicas))
        .collect();
    states
        .par_iter_mut()
        .zip(flat_tasks.par_iter())
        .with_max_len(1)
        .for_each(|(state, task)| match stop {
            None => train::advance(*task, state, &plan.train, until, progress),
            Some(stop) => {
                // Chunks double while they take less than STOP_CHECK_EVERY (each call allocates
                // the task's workspace, so they should not stay tiny).
                let mut chunk = 1;
                while state.step < until.min(plan.train.steps)
                    && state.status == Status::Running
                    && !stop.load(Ordering::Relaxed)
                {
                    let start = Instant::now();
                    let next = (state.step + chunk).min(until);
                    train::advance(*task, state, &plan.train, next, progress);
                    if start.elapsed() < STOP_CHECK_EVERY {
                        chunk *= 2;
                    }
                }
                if !stop.load(Ordering::Relaxed) {
                    // Whatever `advance` does at its end (e.g. a state with no step left to
                    // take is marked finished), as in the unstopped path.
                    train::advance(*task, state, &plan.train, until, progress);
                }
            }
        });
}

fn select<T: Task>(
    plan: &Plan,
    tasks: &[T],
    indices: &[usize],
    states: &[InstanceState],
    describe: impl Fn(usize, &T, &[f32]) -> (Value, Value) + Sync,
) -> Vec<InstanceOutcome> {
    let replicas = plan.replicas as usize;
    assert_eq!(
        states.len(),
        tasks.len() * replicas,
        "one state per replica"
    );
    let flat_tasks: Vec<&T> = tasks
        .iter()
        .flat_map(|t| std::iter::repeat_n(t, replicas))
        .collect();
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
            let (settings, metrics) = describe(k, task, parameters);
            InstanceOutcome {
                index: k,
                chosen_replica: chosen as u64,
                tensors: task.export(parameters),
                replicas: range
                    .map(|j| ReplicaOutcome {
                        replica: states[j].key.replica,
                        evaluation_loss: losses[j],
                        status: states[j].status.clone(),
                        history: states[j].history.clone(),
                    })
                    .collect(),
                settings,
                metrics,
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
    use super::{run, select_best};
    use crate::config::{load, Origin};

    #[test]
    fn an_instance_run_alone_equals_the_same_instance_in_the_full_run() {
        let text = "[experiment]\nname = \"t\"\n[train]\nsteps = 200\nreplicas = 2\n[toy]\nmodel = \"relu-hidden\"\nn_features = 6\nn_hidden = 3\ndensity = [1.0, 0.2, 0.05]\nbatch_size = 128\nevaluation_batch_size = 512\n";
        let plan = load(text, &Origin::Preset("t".into()), &[]).unwrap();
        let all = run(&plan, &[0, 1, 2], &|_| {});
        let alone = run(&plan, &[1], &|_| {});
        assert_eq!(alone[0], all[1]);
        assert_ne!(all[0].tensors, all[1].tensors);
    }

    #[test]
    fn a_stoppable_advance_gives_the_same_states_and_stops_when_asked() {
        use super::{advance, advance_stoppable, initial_states};
        use std::sync::atomic::AtomicBool;
        let text = "[experiment]\nname = \"t\"\n[train]\nsteps = 300\nreplicas = 2\nlog_every = 7\n[toy]\nmodel = \"relu-output\"\nn_features = 6\nn_hidden = 3\ndensity = [1.0, 0.05]\nbatch_size = 64\nevaluation_batch_size = 128\n";
        let plan = load(text, &Origin::Preset("t".into()), &[]).unwrap();
        let indices = [0, 1];
        let mut at_once = initial_states(&plan, &indices);
        advance(&plan, &indices, &mut at_once, 300, &|_| {});
        let go_on = AtomicBool::new(false);
        let mut stoppable = initial_states(&plan, &indices);
        assert!(!advance_stoppable(
            &plan,
            &indices,
            &mut stoppable,
            120,
            &|_| {},
            &go_on
        ));
        assert!(!advance_stoppable(
            &plan,
            &indices,
            &mut stoppable,
            300,
            &|_| {},
            &go_on
        ));
        assert_eq!(stoppable, at_once);
        // A flag set before the start: nothing moves (the flag is checked before every chunk).
        let stop = AtomicBool::new(true);
        let mut stopped = initial_states(&plan, &indices);
        assert!(advance_stoppable(
            &plan,
            &indices,
            &mut stopped,
            300,
            &|_| {},
            &stop
        ));
        assert!(stopped.iter().all(|s| s.step == 0));
    }

    #[test]
    fn best_of_n_prefers_finite_lowest_first() {
        assert_eq!(select_best(&[0.3, 0.1, 0.2]), 1);
        assert_eq!(select_best(&[f64::NAN, 0.5, 0.4]), 2);
        assert_eq!(select_best(&[0.1, 0.1]), 0);
        assert_eq!(select_best(&[f64::NAN, f64::NAN]), 0);
    }
}
