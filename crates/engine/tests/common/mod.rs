//! Helpers shared by the engine's integration tests.

// Each test binary includes this module and uses only some of it.
#![allow(dead_code)]

use tms_engine::data::sparse::{FeatureDistribution, ValueRange};
use tms_engine::models::toy::{ToyKind, ToyShape, ToyTask};
use tms_engine::rng::InstanceKey;

/// Replica 0 of `instance` in a run seeded `seed`.
pub fn key(seed: u64, instance: u64) -> InstanceKey {
    InstanceKey {
        seed,
        instance,
        replica: 0,
    }
}

/// A toy task with n features, m hidden dimensions, one density, importances decayᶦ, batches of
/// 1024 and an evaluation batch of 4096 (override with `ToyTask { .., ..toy_task(…) }`).
pub fn toy_task(kind: ToyKind, n: usize, m: usize, density: f64, decay: f64) -> ToyTask {
    ToyTask {
        shape: ToyShape {
            kind,
            n_features: n,
            n_hidden: m,
        },
        distribution: FeatureDistribution::uniform(n, density, ValueRange::Unit).unwrap(),
        importance: (0..n).map(|i| decay.powi(i as i32) as f32).collect(),
        batch_size: 1024,
        evaluation_batch_size: 4096,
        record_dimensionality: false,
    }
}
