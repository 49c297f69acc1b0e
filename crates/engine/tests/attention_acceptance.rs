//! Acceptance of the attention-head follow-up (followups.md §F2): whole training runs whose
//! learning curves are checked against the deep-linear closed forms (A1, A2's shallow control),
//! the order in which a distilled head learns its concepts (A3), and a small relational graph
//! learned by mixed-pattern heads (A4). Moved out of `models/` so that the head's file holds its
//! math and its gradient checks only.

mod common;

use tms_engine::data::pairs::{GraphSpec, PlantedConcepts, RelationFrequency, RelationalGraph};
use tms_engine::models::attention::{
    AttentionInit, DistillationTask, HeadCombination, HeadShape, RegressionGradient,
    RelationalGraphTask, ScoreRegressionTask,
};
use tms_engine::optim::{Optimizer, Schedule};
use tms_engine::rng::InstanceKey;
use tms_engine::theory::deep_linear;
use tms_engine::train::{train, HistoryRow, Task, TrainSettings};

fn key(instance: u64) -> InstanceKey {
    common::key(2025, instance)
}

/// First step at which an observable reaches `level`, linearly interpolated between history rows.
fn crossing(rows: &[HistoryRow], column: usize, level: f64) -> Option<f64> {
    rows.windows(2).find_map(|w| {
        let (a, b) = (w[0].observables[column], w[1].observables[column]);
        (a < level && b >= level)
            .then(|| w[0].step as f64 + (level - a) / (b - a) * (w[1].step - w[0].step) as f64)
    })
}

#[test]
fn a1_population_gradient_follows_the_deep_linear_closed_form() {
    // §F2 A1: d = 6, d_head = 6, s = (3, 2, 1), λ = 0.01, aligned a₀ = 1e-4, exact gradient.
    let strengths = [3.0, 2.0, 1.0];
    let (lr, a0) = (0.01, 1e-4);
    let k = key(0);
    let concepts = PlantedConcepts::for_instance(6, &strengths, &k).unwrap();
    let task = ScoreRegressionTask::new(
        HeadShape::factored(6, 6),
        concepts,
        32,
        RegressionGradient::Population,
        AttentionInit::Aligned { a0 },
    )
    .unwrap();
    let settings = TrainSettings {
        steps: 800,
        optimizer: Optimizer::Sgd,
        learning_rate: lr,
        schedule: Schedule::Constant,
        log_every: 1,
    };
    let state = train(std::slice::from_ref(&task), &[k], &settings, &|_| ()).remove(0);
    let first = &state.history[0].observables;
    for (a, _) in first.iter().zip(&strengths) {
        // a_k(0) = a₀ up to f32 rounding of the √a₀-sized weights (relative 1e-6).
        assert!((a - a0).abs() < 1e-3 * a0, "a(0) = {a}");
    }
    for (col, &s) in strengths.iter().enumerate() {
        let measured = crossing(&state.history, col, s / 2.0).expect("mode learned");
        let theory = deep_linear::half_learning_time(s, a0, 1.0 / lr);
        // Gradient descent multiplies each factor by (1 + λ(s − a)) per step where the flow has
        // e^{λ(s − a)}: early on the discrete log-growth rate is ln(1 + λs)/(λs) ≈ 1 − λs/2 of the
        // continuous one, i.e. t½ is up to λs/2 = 1.5% (s = 3) longer. 2% is the spec's bound.
        let error = (measured - theory).abs() / theory;
        eprintln!("A1 mode s = {s}: t½ measured {measured:.1}, theory {theory:.1}");
        assert!(error < 0.02, "s = {s}: t½ {measured} vs {theory}");
    }
    let last = &state.history.last().unwrap().observables;
    // After 800 steps every mode is past its sigmoid: the slowest (s = 1) has t½ ≈ 461 and rises
    // with rate 2λs(1 − a/s) — within 1e-3 of s after ~340 more steps; share → 1 as off-plane
    // directions never grow from an aligned start.
    for (a, s) in last.iter().zip(&strengths) {
        assert!((a - s).abs() < 1e-2 * s, "final a = {a}, s = {s}");
    }
    assert!(last[3] > 0.999, "planted share {}", last[3]);

    // A2's shallow control: the merged head from the same aligned start. Every mode reaches half
    // its strength at the same t = ln 2 / −ln(1 − λ) ≈ 69 steps whatever s (the a₀ offset moves it
    // by a₀/s ≤ 1e-4 relative); the history's 1-step rows and linear interpolation of a curve of
    // curvature ~λ per step bound the error well below 1%.
    let merged = ScoreRegressionTask::new(
        HeadShape::merged(6),
        task.concepts.clone(),
        32,
        RegressionGradient::Population,
        AttentionInit::Aligned { a0 },
    )
    .unwrap();
    let state = train(
        &[merged],
        &[k],
        &TrainSettings {
            steps: 200,
            ..settings
        },
        &|_| (),
    )
    .remove(0);
    let theory = deep_linear::shallow_half_time(lr);
    for (col, &s) in strengths.iter().enumerate() {
        let measured = crossing(&state.history, col, s / 2.0).expect("mode learned");
        eprintln!("A2 merged s = {s}: t½ measured {measured:.2}, theory {theory:.2}");
        assert!((measured - theory).abs() < 0.01 * theory);
    }
}

#[test]
fn a3_distillation_learns_stronger_concepts_first() {
    // §F2 A3: n = 8 Gaussian keys, teacher softmax(xᵀ M y_j), s = (3, 2, 1); factored head from a
    // small random start (std 1e-3, so a_k(0) ~ 1e-5 and each mode has a plateau to escape).
    let strengths = [3.0, 2.0, 1.0];
    let k = key(1);
    let concepts = PlantedConcepts::for_instance(6, &strengths, &k).unwrap();
    let task = DistillationTask::new(
        HeadShape::factored(6, 6),
        concepts,
        8,
        32,
        256,
        AttentionInit::Gaussian { std: 1e-3 },
        &k,
    )
    .unwrap();
    let settings = TrainSettings {
        steps: 1000,
        optimizer: Optimizer::Sgd,
        learning_rate: 0.1,
        schedule: Schedule::Constant,
        log_every: 2,
    };
    let state = train(std::slice::from_ref(&task), &[k], &settings, &|_| ()).remove(0);
    let times: Vec<f64> = (0..3)
        .map(|c| crossing(&state.history, c, strengths[c] / 2.0).expect("mode learned"))
        .collect();
    let last = &state.history.last().unwrap().observables;
    eprintln!("A3 half times {times:?}, final strengths {:?}", &last[..3]);
    // Measured over instances 1..6 while writing this test: t½ ≈ (99–105, 111–118, 158–193),
    // the s = 3 / s = 2 gap (≥ 9 steps) is over 4× the log interval, so the order is not a sampling
    // accident of this seed.
    assert!(
        times[0] < times[1] && times[1] < times[2],
        "stronger concepts first: {times:?}"
    );
    // W_QK = M is the exact minimiser (q = p for every context, so the minibatch gradient vanishes
    // there too): SGD converges to it up to f32 rounding (seen 1e-7); 1e-3 is a loose bound.
    for (a, s) in last.iter().zip(&strengths) {
        assert!((a - s).abs() < 1e-3 * s, "final a = {a}, s = {s}");
    }
    assert!(last[3] > 0.999, "planted share {}", last[3]);
    assert!(task.evaluation_loss(&state.parameters, &k) < 1e-6);
}

#[test]
fn a4_heads_learn_a_small_graph() {
    // Far below capacity: m′ = 16 relations, D_K·d = 8·8 = 64. Chance is 1/n = 1/4.
    let spec = GraphSpec {
        vertices: 16,
        d: 8,
        edges: 16,
        frequency: RelationFrequency::Zipf { exponent: 1.0 },
    };
    let k = key(2);
    let graph = RelationalGraph::for_instance(spec, &k).unwrap();
    let shape = HeadShape::multi_head(8, 2, 4, HeadCombination::MixPatterns);
    let task = RelationalGraphTask::new(shape, graph, 4, 32, 8, 0.1, &k).unwrap();
    let settings = TrainSettings {
        steps: 400,
        optimizer: Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
        },
        learning_rate: 0.05,
        schedule: Schedule::Constant,
        log_every: 50,
    };
    let state = train(std::slice::from_ref(&task), &[k], &settings, &|_| ()).remove(0);
    let first = &state.history[0].observables;
    let last = &state.history.last().unwrap().observables;
    let per_relation = task.relation_accuracy(&state.parameters);
    eprintln!("A4 accuracy {first:?} -> {last:?}; per relation {per_relation:?}");
    assert_eq!(per_relation.len(), 16);
    assert!(last[0] > 0.9 && last[1] > 0.9, "accuracy {last:?}");
    assert!(task.evaluation_loss(&state.parameters, &k) < 0.5);
}
