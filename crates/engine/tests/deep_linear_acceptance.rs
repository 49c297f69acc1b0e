//! Acceptance of the deep-linear follow-up (followups.md §F1): whole training runs checked against
//! Saxe et al.'s closed forms — the half-learning times of S1, the depth-3 chain equation, the
//! shallow control of S3, the low-rank fixed point of S4 and the second-order conservation drift
//! of S7. Moved out of `models/` so that the model's file holds its math and unit tests only.

mod common;

use tms_engine::data::items::ItemPropertySet;
use tms_engine::linalg::Matrix;
use tms_engine::models::deep_linear::{conservation_drift, DeepLinearStart, DeepLinearTask};
use tms_engine::optim::{Optimizer, Schedule};
use tms_engine::rng::InstanceKey;
use tms_engine::theory::deep_linear as theory;
use tms_engine::train::{self, InstanceState, Task, TrainSettings};

fn key(instance: u64) -> InstanceKey {
    common::key(7, instance)
}

fn four_items() -> Matrix {
    ItemPropertySet::four_items().targets
}

fn sgd(steps: u64, learning_rate: f64, log_every: u64) -> TrainSettings {
    TrainSettings {
        steps,
        optimizer: Optimizer::Sgd,
        learning_rate,
        schedule: Schedule::Constant,
        log_every,
    }
}

/// First step at which column `c` of the history reaches `level`, linearly interpolated.
fn crossing(state: &InstanceState, c: usize, level: f64) -> Option<f64> {
    state.history.windows(2).find_map(|w| {
        let (a, b) = (w[0].observables[c], w[1].observables[c]);
        (a < level && b >= level)
            .then(|| w[0].step as f64 + (level - a) / (b - a) * (w[1].step - w[0].step) as f64)
    })
}

/// S1: 4×7 data, N₂ = 4, aligned start a₀ = 1e-4, λ = 0.0025 (τ = 400).
#[test]
fn s1_half_times_follow_the_closed_form() {
    let a0 = 1e-4;
    let task = DeepLinearTask::new(
        &four_items(),
        &[4],
        DeepLinearStart::Aligned {
            initial_strength: a0,
        },
        vec![],
    )
    .unwrap();
    let s = task.modes().singular_values.clone();
    let state = &train::train(&[task], &[key(0)], &sgd(2400, 0.0025, 1), &|_| {})[0];
    for (alpha, &s_alpha) in s.iter().enumerate() {
        let measured = crossing(state, alpha, s_alpha / 2.0).expect("mode learned");
        let predicted = theory::half_learning_time(s_alpha, a0, 400.0);
        // Gradient descent multiplies a per step by (1 + λ(s − a))², the flow by e^{2λ(s−a)}: in
        // the exponential phase the rate differs by a factor 1 − λs/2 (≤ 0.33% for s = √7), and
        // interpolating between unit steps adds < 1 step (< 0.13%). 2% (the spec's bound) is
        // six times that; a wrong loss scale (mean instead of sum, a missing ½) errs by ≥ 25%.
        let relative = (measured - predicted).abs() / predicted;
        assert!(
            relative < 0.02,
            "mode {alpha}: t½ {measured:.1} vs {predicted:.1}"
        );
        eprintln!(
            "S1 mode {}: s = {s_alpha:.4}, t½ measured {measured:.1}, theory {predicted:.1}, {:.2}%",
            alpha + 1,
            100.0 * relative
        );
        // The whole curve: a 2% shift of t½ moves a(t) by at most 0.02·t½·max ȧ, with
        // max ȧ = s²/(2τ) at a = s/2, i.e. by 0.02·ln(s/a₀ − 1)/4 ≈ 5% of s.
        for row in &state.history {
            let theory = theory::balanced_mode_strength(s_alpha, a0, 400.0, row.step as f64);
            assert!((row.observables[alpha] - theory).abs() < 0.05 * s_alpha);
        }
    }
    // Ordered by s: the strongest first, the two s = 1 modes together.
    let t: Vec<f64> = (0..4)
        .map(|a| crossing(state, a, s[a] / 2.0).unwrap())
        .collect();
    assert!(t[0] < t[1] && t[1] < t[2] && (t[2] - t[3]).abs() < 2.0);
}

/// Depth 3 from the balanced aligned start follows the deep-chain equation
/// τ da/dt = 3a^{4/3}(s − a) (integrated by RK4 in theory::deep_linear).
#[test]
fn depth_three_follows_the_chain_equation() {
    let (a0, lr) = (1e-2, 0.005);
    let task = DeepLinearTask::new(
        &four_items(),
        &[4, 4],
        DeepLinearStart::Aligned {
            initial_strength: a0,
        },
        vec![],
    )
    .unwrap();
    let s = task.modes().singular_values.clone();
    let state = &train::train(&[task], &[key(4)], &sgd(1200, lr, 1), &|_| {})[0];
    for (alpha, &s_alpha) in s.iter().enumerate().take(3) {
        let measured = crossing(state, alpha, s_alpha / 2.0).unwrap();
        let flow = theory::chain_mode_trajectory(s_alpha, a0, 1.0 / lr, 3, 0.25, 4800);
        let predicted = theory::crossing_time(&flow, 0.25, s_alpha / 2.0).unwrap();
        eprintln!(
            "depth 3 mode {}: t½ measured {measured:.1}, RK4 {predicted:.1}",
            alpha + 1
        );
        // As for S1, discrete steps slow the growth by a relative O(λs) ≤ 1.3% here, plus < 1
        // step of interpolation on t½ ≥ 300 steps; RK4 at dt = τ/800 is exact to ~1e-9.
        assert!((measured - predicted).abs() / predicted < 0.02);
    }
}

/// S3: the shallow control from W = 0 follows W_t = Y(1 − (1−λ)^t) exactly.
#[test]
fn s3_shallow_control_has_one_half_time() {
    let lr = 0.0025;
    let task = DeepLinearTask::new(&four_items(), &[], DeepLinearStart::Zero, vec![]).unwrap();
    let s = task.modes().singular_values.clone();
    let state = &train::train(&[task], &[key(1)], &sgd(400, lr, 1), &|_| {})[0];
    let t_half = theory::shallow_half_time(lr);
    for (alpha, &s_alpha) in s.iter().enumerate() {
        let measured = crossing(state, alpha, s_alpha / 2.0).unwrap();
        // Exact in exact arithmetic; interpolating a curve of curvature λ²s per step between
        // unit steps errs by < 0.01 step, f32 weights by ~1e-7 relative: 0.1 step is ample.
        assert!((measured - t_half).abs() < 0.1, "{measured} vs {t_half}");
        let last = state.history.last().unwrap();
        let theory = theory::shallow_mode_strength(s_alpha, lr, last.step as f64);
        assert!((last.observables[alpha] - theory).abs() < 1e-5);
    }
}

/// S4: N₂ = 2 < rank 4, from a small random start: W²W¹ → the best rank-2 approximation of Y,
/// with residual ‖Y − W²W¹‖_F = √(1² + 1²) = √2.
#[test]
fn s4_fixed_point_is_the_best_low_rank_approximation() {
    let y = four_items();
    let task =
        DeepLinearTask::new(&y, &[2], DeepLinearStart::Gaussian { scale: 0.1 }, vec![]).unwrap();
    let best = task.modes().reconstruct(2);
    let state = &train::train(
        std::slice::from_ref(&task),
        &[key(2)],
        &sgd(1500, 0.05, 100),
        &|_| {},
    )[0];
    let total = task.shape().total_map(&state.parameters);
    let residual = y.sub(&total).frobenius_norm();
    let distance = total.sub(&best).frobenius_norm();
    eprintln!("S4: residual {residual:.6} (√2 = 1.414214), distance to rank-2 {distance:.2e}");
    // Near the fixed point the error decays like e^{−2λ s_min t} per mode-pair (s_min = √3 for
    // the learned modes, s_α − s_β for rotations within them ≥ √7 − √3 = 0.91): by step 1500 at
    // λ = 0.05 that is below e^{−60}; what remains is f32 rounding of weights of order one,
    // ~1e-6. 1e-4 bounds it with margin; stopping at a saddle (a rank-1 map) would be off by 1.
    assert!(distance < 1e-4, "{distance}");
    assert!((residual - 2f64.sqrt()).abs() < 1e-4);
    let loss = task.evaluation_loss(&state.parameters, &key(2));
    assert!((loss - 1.0).abs() < 1e-4, "½·residual² = 1, got {loss}");
}

/// S7: gradient descent changes C = W²ᵀW² − W¹W¹ᵀ by λ²(dW²ᵀdW² − dW¹dW¹ᵀ) per step, so over a
/// fixed span of t/τ (1/λ steps) the drift is ∝ λ and the per-step drift ∝ λ²: halving λ
/// quarters it.
#[test]
fn s7_conservation_drift_is_second_order_in_the_learning_rate() {
    let task = DeepLinearTask::new(
        &four_items(),
        &[4],
        DeepLinearStart::Gaussian { scale: 0.1 },
        vec![],
    )
    .unwrap();
    // 20τ: every mode learned (slowest t½ ≈ (τ/2)·ln(1/a₀) with a₀ ~ 0.04 is ≈ 1.6τ).
    let per_step_drift = |lr: f64| {
        let steps = (20.0 / lr) as u64;
        let initial = InstanceState::new(&task, key(3)).parameters;
        let state = &train::train(
            std::slice::from_ref(&task),
            &[key(3)],
            &sgd(steps, lr, steps),
            &|_| {},
        )[0];
        conservation_drift(task.shape(), &initial, &state.parameters)[0] / steps as f64
    };
    let (coarse, fine) = (per_step_drift(0.02), per_step_drift(0.01));
    let ratio = coarse / fine;
    eprintln!(
        "S7: per-step drift {coarse:.3e} (λ = 0.02), {fine:.3e} (λ = 0.01), ratio {ratio:.3}"
    );
    // Total drift = λ² Σ_t g(t) = λ ∫ g dt + O(λ²): the two runs follow the same flow up to
    // O(λ s²) ≈ 5% trajectory differences, so the ratio is 4·(1 ± ~10%); f32 rounding of the
    // weights (~1e-7 per step, a random walk) is orders below drifts of ~1e-3. [3.4, 4.6]
    // separates "quarters" from first-order drift (ratio 2) and from no drift (0/0 or noise).
    assert!((3.4..4.6).contains(&ratio), "ratio {ratio}");
}
