//! The process-wide kernel set (`cpu::force`) end to end: whole training runs under every set this
//! CPU supports, compared as `cpu`'s module doc says they compare. One test only: forcing a set
//! changes it for every thread of the process, so nothing may train beside it.

mod common;

use tms_engine::cpu::{self, KernelSet};
use tms_engine::models::toy::{ToyKind, ToyTask};
use tms_engine::optim::{Optimizer, Schedule};
use tms_engine::rng::InstanceKey;
use tms_engine::train::{self, InstanceState, TrainSettings};

/// Importances 0.9ᶦ, batches of 256.
fn task(kind: ToyKind, n: usize, m: usize, density: f64) -> ToyTask {
    ToyTask {
        batch_size: 256,
        ..common::toy_task(kind, n, m, density, 0.9)
    }
}

/// One instance's trained parameters and loss history, as bits.
type Bits = (Vec<u32>, Vec<u64>);

/// Trains `tasks` for a few steps under `set` and returns each instance's bits.
fn train_under(set: KernelSet, tasks: &[ToyTask]) -> Vec<Bits> {
    cpu::force(set).unwrap();
    assert_eq!(cpu::active(), set);
    let keys: Vec<InstanceKey> = (0..tasks.len() as u64)
        .map(|instance| common::key(11, instance))
        .collect();
    let settings = TrainSettings {
        steps: 30,
        optimizer: Optimizer::PAPER,
        learning_rate: 1e-2,
        schedule: Schedule::Constant,
        log_every: 1,
    };
    let states: Vec<InstanceState> = train::train(tasks, &keys, &settings, &|_| {});
    states
        .iter()
        .map(|s| {
            (
                s.parameters.iter().map(|p| p.to_bits()).collect(),
                s.history.iter().map(|r| r.loss.to_bits()).collect(),
            )
        })
        .collect()
}

#[test]
fn forced_sets_train_as_the_cpu_module_says() {
    // Small m drawn dense (p ≥ 1/16) and as rows, tested trials and geometric gaps; large m with
    // the fused decoder pass, sparse and dense.
    let small = [
        task(ToyKind::ReluOutput, 20, 5, 0.1),
        task(ToyKind::AbsoluteValue, 12, 6, 0.3),
        task(ToyKind::ReluHidden, 30, 4, 0.005),
        task(ToyKind::Linear, 5, 2, 0.03),
    ];
    let large = [
        task(ToyKind::ReluOutput, 80, 20, 0.05),
        task(ToyKind::ReluHidden, 60, 12, 1.0),
    ];
    let tasks: Vec<ToyTask> = small.iter().chain(&large).cloned().collect();
    let supported = KernelSet::supported();
    for set in KernelSet::ALL
        .into_iter()
        .filter(|s| !supported.contains(s))
    {
        eprintln!("skipped kernel set {set}: this CPU cannot run it");
        assert!(cpu::force(set).is_err());
    }
    let runs: Vec<(KernelSet, Vec<Bits>)> = supported
        .iter()
        .map(|&set| (set, train_under(set, &tasks)))
        .collect();
    // Each set is deterministic: the same run again gives the same bits.
    let last = *supported.last().unwrap();
    assert_eq!(train_under(last, &tasks), runs.last().unwrap().1);
    let of = |set: KernelSet| runs.iter().find(|r| r.0 == set).map(|r| &r.1);
    if let (Some(avx2), Some(avx512)) = (of(KernelSet::Avx2Fma), of(KernelSet::Avx512Vl)) {
        for (k, (a, b)) in avx2.iter().zip(avx512).enumerate() {
            assert_eq!(a.0, b.0, "task {k}: parameters avx2-fma vs avx512vl");
            if k < small.len() {
                assert_eq!(a.1, b.1, "task {k}: small-m losses avx2-fma vs avx512vl");
            }
        }
    }
    if let (Some(portable), Some(avx2)) = (of(KernelSet::Portable), of(KernelSet::Avx2Fma)) {
        // FMA rounds differently: a witness that portable is a class of its own.
        assert!(portable.iter().zip(avx2).any(|(p, a)| p.0 != a.0));
    }
    eprintln!(
        "kernel sets trained: {:?}",
        supported.iter().map(|s| s.name()).collect::<Vec<_>>()
    );
}
