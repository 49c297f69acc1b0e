//! Training a [`Plan`]: every (instance, replica) pair is one engine instance; after training, each
//! instance keeps the replica with the lowest evaluation loss (best-of-N), and all replicas' losses
//! are recorded. The family's plan says how its instances train ([`crate::families::Family`]);
//! the shared driving code is in [`crate::training`].

use crate::config::Plan;
pub use crate::training::{select_best, InstanceOutcome, ReplicaOutcome};
use tms_engine::train::InstanceState;

/// Names of the observables recorded in the history.
pub fn observable_names(plan: &Plan) -> Vec<String> {
    plan.family.observable_names()
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
    plan.family.initial_states(indices, &plan.run_settings())
}

/// Advances `states` (laid out as by [`initial_states`]) to step `until`, in parallel.
pub fn advance(
    plan: &Plan,
    indices: &[usize],
    states: &mut [InstanceState],
    until: u64,
    progress: &(dyn Fn(u64) + Sync),
) {
    plan.family
        .advance(indices, states, until, &plan.run_settings(), progress)
}

/// Selects the best replica of each instance and describes it, from states laid out as by
/// [`initial_states`] (normally finished ones).
pub fn outcomes(plan: &Plan, indices: &[usize], states: &[InstanceState]) -> Vec<InstanceOutcome> {
    plan.family.outcomes(indices, states, &plan.run_settings())
}

/// Total steps `run` will report for `indices`.
pub fn total_steps(plan: &Plan, indices: &[usize]) -> u64 {
    indices.len() as u64 * plan.replicas * plan.train.steps
}

#[cfg(test)]
mod tests {
    use super::run;
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
}
