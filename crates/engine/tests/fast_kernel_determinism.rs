//! Determinism of the fast toy kernels inside the shared trainer: an instance whose steps are split
//! into parallel batch chunks (large n·m) must train to bit-identical parameters for any thread
//! count and whatever instances run beside it, like the small instances that run on one worker.

mod common;

use tms_engine::kernels::toy::Plan;
use tms_engine::models::toy::{ToyKind, ToyTask};
use tms_engine::optim::{Optimizer, Schedule};
use tms_engine::rng::InstanceKey;
use tms_engine::train::{self, InstanceState, TrainSettings};

/// Equal importances, batches of 1024.
fn task(kind: ToyKind, n: usize, m: usize, density: f64) -> ToyTask {
    common::toy_task(kind, n, m, density, 1.0)
}

fn key(instance: u64) -> InstanceKey {
    common::key(3, instance)
}

fn train_in_pool(threads: usize, tasks: &[ToyTask], keys: &[InstanceKey]) -> Vec<InstanceState> {
    let settings = TrainSettings {
        steps: 25,
        optimizer: Optimizer::PAPER,
        learning_rate: 1e-2,
        schedule: Schedule::Constant,
        log_every: 5,
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(|| train::train(tasks, keys, &settings, &|_| {}))
}

fn bits(state: &InstanceState) -> Vec<u32> {
    state.parameters.iter().map(|p| p.to_bits()).collect()
}

#[test]
fn chunked_instances_are_bit_identical_across_thread_counts_and_neighbours() {
    // Large instances (their steps are cut into parallel chunks) of every kind, next to small ones.
    let large: Vec<ToyTask> = ToyKind::ALL
        .iter()
        .map(|&kind| task(kind, 300, 30, 0.02))
        .collect();
    for t in &large {
        assert!(
            Plan::new(&t.shape, t.batch_size).chunk < t.batch_size,
            "the large task is chunked"
        );
    }
    let mut mixed = large.clone();
    mixed.push(task(ToyKind::ReluOutput, 20, 5, 0.1));
    mixed.push(task(ToyKind::ReluOutput, 5, 2, 0.05));
    let keys: Vec<InstanceKey> = (0..mixed.len() as u64).map(key).collect();

    let one = train_in_pool(1, &mixed, &keys);
    let two = train_in_pool(2, &mixed, &keys);
    let three = train_in_pool(3, &mixed, &keys);
    for k in 0..mixed.len() {
        assert_eq!(bits(&one[k]), bits(&two[k]), "instance {k}: 1 vs 2 threads");
        assert_eq!(
            bits(&one[k]),
            bits(&three[k]),
            "instance {k}: 1 vs 3 threads"
        );
        assert_eq!(one[k].history, two[k].history, "instance {k}: losses");
    }
    // Each large instance alone (K = 1, so all threads work inside its batch) equals itself among
    // the others.
    for (k, t) in large.iter().enumerate() {
        let alone = train_in_pool(2, std::slice::from_ref(t), &keys[k..k + 1]);
        assert!(bits(&alone[0]) == bits(&one[k]), "instance {k} alone");
    }
    // Training moved the parameters (the comparison is not between untouched initialisations).
    let start = InstanceState::new(&mixed[0], keys[0]);
    assert!(bits(&start) != bits(&one[0]));
}
