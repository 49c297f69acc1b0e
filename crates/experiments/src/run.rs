//! Training a [`Plan`]: every (instance, replica) pair is one engine instance; after training, each
//! instance keeps the replica with the lowest evaluation loss (best-of-N), and all replicas' losses
//! are recorded. The family's plan says how its instances train ([`crate::families::Family`]);
//! the shared driving code is in [`crate::training`].

use crate::config::Plan;
pub use crate::training::{select_best, InstanceOutcome, ReplicaOutcome, STOP_CHECK_EVERY};
use std::sync::atomic::{AtomicBool, Ordering};
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
        .advance(indices, states, until, &plan.run_settings(), progress, None)
}

/// [`advance`] that can be cancelled: every instance checks `stop` between chunks of its own steps
/// (chunks of at most ~[`STOP_CHECK_EVERY`] of work, so a request is seen within about that time)
/// and returns early once it is set, at a step boundary. Results are those of [`advance`], bit for
/// bit: a state advanced in pieces is the state advanced at once (as sweeps' checkpoints rely on).
/// No barrier joins the instances between checks. Returns whether it was stopped.
///
/// The flag reaches the family's [`crate::families::Family::advance`], so every family (those
/// registered later included) can be stopped this way.
pub fn advance_stoppable(
    plan: &Plan,
    indices: &[usize],
    states: &mut [InstanceState],
    until: u64,
    progress: &(dyn Fn(u64) + Sync),
    stop: &AtomicBool,
) -> bool {
    plan.family.advance(
        indices,
        states,
        until,
        &plan.run_settings(),
        progress,
        Some(stop),
    );
    stop.load(Ordering::Relaxed)
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

    #[test]
    fn a_stoppable_advance_gives_the_same_states_and_stops_when_asked() {
        use super::{advance, advance_stoppable, initial_states};
        use crate::presets::load_preset;
        use std::sync::atomic::AtomicBool;
        // One run of every family: the flag goes through `Family::advance`, not through a match
        // on the family.
        let toy = "[experiment]\nname = \"t\"\n[train]\nsteps = 300\nreplicas = 2\nlog_every = 7\n[toy]\nmodel = \"relu-output\"\nn_features = 6\nn_hidden = 3\ndensity = [1.0, 0.05]\nbatch_size = 64\nevaluation_batch_size = 128\n";
        let plans = [
            load(toy, &Origin::Preset("t".into()), &[]).unwrap(),
            load_preset("s1-aligned", &["train.steps=300".into()]).unwrap(),
            load_preset("a1-regression", &["train.steps=300".into()]).unwrap(),
        ];
        let mut families: Vec<&str> = plans.iter().map(|p| p.family.name()).collect();
        families.sort();
        let mut registered = crate::families::names();
        registered.sort();
        assert_eq!(families, registered, "a plan of every registered family");
        for plan in &plans {
            let indices: Vec<usize> = (0..plan.family.instance_count()).collect();
            let mut at_once = initial_states(plan, &indices);
            advance(plan, &indices, &mut at_once, 300, &|_| {});
            let go_on = AtomicBool::new(false);
            let mut stoppable = initial_states(plan, &indices);
            for until in [120, 300] {
                let stopped =
                    advance_stoppable(plan, &indices, &mut stoppable, until, &|_| {}, &go_on);
                assert!(!stopped);
            }
            assert_eq!(stoppable, at_once, "{}", plan.family.name());
            // A flag set before the start: nothing moves (the flag is checked before every chunk).
            let stop = AtomicBool::new(true);
            let mut stopped = initial_states(plan, &indices);
            assert!(advance_stoppable(
                plan,
                &indices,
                &mut stopped,
                300,
                &|_| {},
                &stop
            ));
            assert!(stopped.iter().all(|s| s.step == 0));
        }
    }
}
