//! The head's forward/backward pass against central finite differences in f64 (every score map,
//! target and head combination, with and without values), the population loss against its
//! Monte-Carlo mean, and the scores and exports against a naive head.

use super::*;
use crate::data::pairs::PlantedConcepts;
use crate::models::{finite_difference_gradient, relative_gradient_error};
use crate::rng::StreamRng;

/// Owned targets for the gradient checks.
enum Kind {
    Score,
    Distribution,
    Position,
    Output,
}

/// Checks the analytic gradient of a 3-example batch (weight 1/3) against central differences.
fn check_gradient(shape: HeadShape, n: usize, kind: Kind, seed: u64) {
    let d = shape.d;
    let mut rng = StreamRng::seed_from_u64(seed);
    let mut p32 = vec![0.0f32; shape.parameter_count()];
    // std 0.5: scores of order one, so that softmaxes are neither uniform nor saturated.
    shape.initialise_gaussian(&mut rng, 0.5, &mut p32);
    let params: Vec<f64> = p32.iter().map(|&v| v as f64).collect();
    let batch = 3;
    let queries: Vec<f64> = (0..batch * d).map(|_| rng.standard_normal()).collect();
    let keys: Vec<f64> = (0..batch * n * d).map(|_| rng.standard_normal()).collect();
    let scores: Vec<f64> = (0..batch).map(|_| rng.standard_normal()).collect();
    let outputs: Vec<f64> = (0..batch * d).map(|_| rng.standard_normal()).collect();
    let positions: Vec<usize> = (0..batch).map(|_| rng.below(n as u32) as usize).collect();
    // A target distribution with every entry non-zero and one zero entry, to cover both branches.
    let mut dists: Vec<f64> = (0..batch * n).map(|_| rng.uniform_f64() + 0.1).collect();
    for e in 0..batch {
        let row = &mut dists[e * n..(e + 1) * n];
        if n > 1 {
            row[e % n] = 0.0;
        }
        let total: f64 = row.iter().sum();
        row.iter_mut().for_each(|p| *p /= total);
    }
    let loss = |p: &[f64], grad: Option<&mut [f64]>| -> f64 {
        let mut scratch = shape.scratch::<f64>(n);
        let mut grad = grad;
        if let Some(g) = grad.as_deref_mut() {
            g.fill(0.0);
        }
        (0..batch)
            .map(|e| {
                let target = match kind {
                    Kind::Score => Target::Score(scores[e]),
                    Kind::Distribution => Target::Distribution(&dists[e * n..(e + 1) * n]),
                    Kind::Position => Target::Position(positions[e]),
                    Kind::Output => Target::Output(&outputs[e * d..(e + 1) * d]),
                };
                shape.example_loss(
                    p,
                    &queries[e * d..(e + 1) * d],
                    &keys[e * n * d..(e + 1) * n * d],
                    target,
                    1.0 / batch as f64,
                    grad.as_deref_mut(),
                    &mut scratch,
                ) / batch as f64
            })
            .sum()
    };
    let mut analytic = vec![0.0; params.len()];
    let value = loss(&params, Some(&mut analytic));
    assert_eq!(
        value,
        loss(&params, None),
        "the gradient must not change the loss"
    );
    let numeric = finite_difference_gradient(&params, 1e-6, |p| loss(p, None));
    let err = relative_gradient_error(&analytic, &numeric);
    // h = 1e-6 puts truncation and rounding error near 1e-10 relative (models/mod.rs); 1e-6 leaves
    // four orders of margin while any wrong term (a missing factor, a transposed index) is O(1).
    assert!(err < 1e-6, "{shape:?}: relative gradient error {err}");
    assert!(analytic.iter().any(|&g| g != 0.0));
}

#[test]
fn factored_and_merged_regression_gradients() {
    check_gradient(HeadShape::merged(5), 1, Kind::Score, 1);
    check_gradient(HeadShape::factored(5, 3), 1, Kind::Score, 2);
    check_gradient(
        HeadShape::multi_head(4, 3, 2, HeadCombination::SumScores),
        1,
        Kind::Score,
        3,
    );
}

#[test]
fn softmax_cross_entropy_gradients() {
    for kind in [Kind::Distribution, Kind::Position] {
        check_gradient(HeadShape::merged(5), 6, kind, 4);
    }
    for kind in [Kind::Distribution, Kind::Position] {
        check_gradient(HeadShape::factored(5, 2), 7, kind, 5);
    }
}

#[test]
fn multi_head_gradients() {
    for combination in [HeadCombination::SumScores, HeadCombination::MixPatterns] {
        for kind in [Kind::Distribution, Kind::Position] {
            check_gradient(HeadShape::multi_head(4, 3, 2, combination), 5, kind, 6);
        }
    }
}

#[test]
fn ov_circuit_gradients() {
    check_gradient(HeadShape::merged(4).with_values(3), 5, Kind::Output, 7);
    check_gradient(HeadShape::factored(4, 2).with_values(2), 5, Kind::Output, 8);
    check_gradient(
        HeadShape::multi_head(4, 2, 2, HeadCombination::MixPatterns).with_values(3),
        6,
        Kind::Output,
        9,
    );
}

#[test]
fn population_gradient_matches_finite_differences() {
    for shape in [
        HeadShape::merged(5),
        HeadShape::factored(5, 3),
        HeadShape::multi_head(5, 2, 2, HeadCombination::SumScores),
    ] {
        let mut rng = StreamRng::seed_from_u64(10);
        let concepts = PlantedConcepts::draw(5, &[3.0, 2.0, 1.0], &mut rng).unwrap();
        let m = concepts.matrix();
        let mut p32 = vec![0.0f32; shape.parameter_count()];
        shape.initialise_gaussian(&mut rng, 0.5, &mut p32);
        let params: Vec<f64> = p32.iter().map(|&v| v as f64).collect();
        let mut analytic = vec![1.0; params.len()];
        shape.population_regression(&params, &m, Some(&mut analytic));
        let numeric =
            finite_difference_gradient(&params, 1e-6, |p| shape.population_regression(p, &m, None));
        let err = relative_gradient_error(&analytic, &numeric);
        assert!(err < 1e-6, "{shape:?}: {err}");
    }
}

#[test]
fn population_loss_is_the_mean_minibatch_loss() {
    let shape = HeadShape::factored(4, 2);
    let mut rng = StreamRng::seed_from_u64(11);
    let concepts = PlantedConcepts::draw(4, &[2.0, 1.0], &mut rng).unwrap();
    let m = concepts.matrix();
    let mut p32 = vec![0.0f32; shape.parameter_count()];
    shape.initialise_gaussian(&mut rng, 0.7, &mut p32);
    let params: Vec<f64> = p32.iter().map(|&v| v as f64).collect();
    let population = shape.population_regression(&params, &m, None);
    let mut scratch = shape.scratch::<f64>(1);
    let samples = 40_000;
    let (mut sum, mut sum2) = (0.0, 0.0);
    for _ in 0..samples {
        let x: Vec<f64> = (0..4).map(|_| rng.standard_normal()).collect();
        let y: Vec<f64> = (0..4).map(|_| rng.standard_normal()).collect();
        let t: f64 = (0..4)
            .map(|a| x[a] * (0..4).map(|b| m[a * 4 + b] * y[b]).sum::<f64>())
            .sum();
        let l = shape.example_loss(&params, &x, &y, Target::Score(t), 1.0, None, &mut scratch);
        sum += l;
        sum2 += l * l;
    }
    let mean = sum / samples as f64;
    let standard_error = ((sum2 / samples as f64 - mean * mean) / samples as f64).sqrt();
    // The Monte-Carlo mean is within 5 standard errors of the exact expectation.
    assert!(
        (mean - population).abs() < 5.0 * standard_error,
        "{mean} vs {population} ± {standard_error}"
    );
}

#[test]
fn scores_and_exports_match_a_naive_head() {
    // Naive twin: s = Σ_η (W_Q^η x)·(W_K^η y) from the exported tensors.
    let shape = HeadShape::multi_head(3, 2, 2, HeadCombination::MixPatterns).with_values(2);
    let mut p = vec![0.0f32; shape.parameter_count()];
    shape.initialise_gaussian(&mut StreamRng::seed_from_u64(12), 1.0, &mut p);
    let tensors = shape.export(&p);
    let names: Vec<_> = tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.clone()))
        .collect();
    assert_eq!(
        names,
        [
            ("W_Q", vec![2, 2, 3]),
            ("W_K", vec![2, 2, 3]),
            ("W_V", vec![2, 2, 3]),
            ("W_O", vec![2, 3, 2])
        ]
    );
    let total: usize = tensors.iter().map(|t| t.data.len()).sum();
    assert_eq!(total, shape.parameter_count());
    let (wq, wk) = (&tensors[0].data, &tensors[1].data);
    let (x, y) = ([0.3f64, -1.0, 0.5], [1.2f64, 0.1, -0.7]);
    let w = shape.score_matrix(&p);
    let heads = shape.head_score_matrices(&p);
    let mut naive_total = 0.0;
    for (eta, head) in heads.iter().enumerate() {
        let mut naive = 0.0;
        for i in 0..2 {
            let at = eta * 6 + i * 3;
            let q: f64 = (0..3).map(|a| wq[at + a] as f64 * x[a]).sum();
            let k: f64 = (0..3).map(|b| wk[at + b] as f64 * y[b]).sum();
            naive += q * k;
        }
        let via: f64 = (0..3)
            .map(|a| x[a] * (0..3).map(|b| head[a * 3 + b] * y[b]).sum::<f64>())
            .sum();
        assert!((naive - via).abs() < 1e-9);
        naive_total += naive;
    }
    let via: f64 = (0..3)
        .map(|a| x[a] * (0..3).map(|b| w[a * 3 + b] * y[b]).sum::<f64>())
        .sum();
    assert!((naive_total - via).abs() < 1e-9);
    assert_eq!(shape.ov_matrices(&p).len(), 2);
    let merged = HeadShape::merged(3);
    assert_eq!(merged.export(&p[..9])[0].shape, vec![3, 3]);
    assert_eq!(
        HeadShape::factored(3, 2).export(&p[..12])[0].shape,
        vec![2, 3]
    );
}
