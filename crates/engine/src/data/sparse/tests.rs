//! The sampler against its laws (densities, moments, correlations) and its twins (trial by
//! trial, division instead of incremental positions, portable copies of the vectorised passes).

use super::*;

/// Empirical density, mean and second moment of feature values over `batches` batches.
fn moments(
    dist: &FeatureDistribution,
    batches: usize,
    batch_size: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = dist.n_features();
    let mut rng = StreamRng::seed_from_u64(42);
    let (mut active, mut sum, mut sum2) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut batch = SparseBatch::default();
    for _ in 0..batches {
        dist.sample_into(&mut rng, batch_size, &mut batch);
        for (&i, &v) in batch.feature.iter().zip(&batch.value) {
            active[i as usize] += 1.0;
            sum[i as usize] += v as f64;
            sum2[i as usize] += (v as f64).powi(2);
        }
    }
    let total = (batches * batch_size) as f64;
    (
        active.iter().map(|a| a / total).collect(),
        sum.iter().map(|s| s / total).collect(),
        sum2.iter().map(|s| s / total).collect(),
    )
}

#[test]
fn independent_density_mean_and_second_moment() {
    // x = 0 w.p. 1 − p, else U[0,1]: P(x≠0) = p, E[x] = p/2, E[x²] = p/3.
    for p in [1.0, 0.3, 0.05, 0.003] {
        let dist = FeatureDistribution::uniform(20, p, ValueRange::Unit).unwrap();
        let draws = 400 * 1024;
        let (d, m, m2) = moments(&dist, 400, 1024);
        // Five binomial standard errors of the density, sqrt(p(1−p)/N); the mean and second
        // moment have variances below p/3 and p/5, so 5·sqrt(p/(3N)) bounds both.
        let tol_d = 5.0 * (p * (1.0 - p) / draws as f64).sqrt() + 1e-12;
        let tol_m = 5.0 * (p / 3.0 / draws as f64).sqrt();
        for i in 0..20 {
            assert!((d[i] - p).abs() <= tol_d, "density {} vs {p}", d[i]);
            assert!(
                (m[i] - p / 2.0).abs() <= tol_m,
                "mean {} vs {}",
                m[i],
                p / 2.0
            );
            assert!(
                (m2[i] - p / 3.0).abs() <= tol_m,
                "second moment {} vs {}",
                m2[i],
                p / 3.0
            );
        }
    }
}

#[test]
fn dense_draws_equal_row_draws() {
    // The same stream state gives the same examples as a dense matrix and as rows, and leaves
    // the stream in the same state; the padding past B is zero.
    for (n, batch_size) in [(20, 1024), (5, 37), (1, 16), (3, 1)] {
        for p in [DENSE_DENSITY, 0.1, 0.5, 0.999] {
            for values in [ValueRange::Unit, ValueRange::Signed] {
                let dist = FeatureDistribution::uniform(n, p, values).unwrap();
                assert!(dist.draws_dense());
                let (mut a, mut b) = (StreamRng::seed_from_u64(9), StreamRng::seed_from_u64(9));
                let (mut rows, mut dense) = (SparseBatch::default(), DenseBatch::default());
                for _ in 0..2 {
                    dist.sample_into(&mut a, batch_size, &mut rows);
                    dist.sample_dense_into(&mut b, batch_size, &mut dense);
                    assert_eq!(dense.batch_size(), batch_size);
                    assert_eq!(dense.stride() % 16, 0);
                    for e in 0..batch_size {
                        assert_eq!(rows.dense_row(e, n), dense.dense_row(e), "example {e}");
                    }
                    for j in 0..n {
                        let row = &dense.x[j * dense.stride()..(j + 1) * dense.stride()];
                        assert!(row[batch_size..].iter().all(|&x| x == 0.0));
                    }
                    assert_eq!(dense.to_sparse().dense_row(0, n), rows.dense_row(0, n));
                }
                assert_eq!(a.state(), b.state());
            }
        }
    }
    // A reused batch keeps its padding zero when B changes under the same stride: B = 1040
    // fills columns 1024..1040 that B = 1024 (stride 1024 + 16) leaves as padding.
    let dist = FeatureDistribution::uniform(3, 0.5, ValueRange::Unit).unwrap();
    let (mut rng, mut dense) = (StreamRng::seed_from_u64(4), DenseBatch::default());
    dist.sample_dense_into(&mut rng, 1040, &mut dense);
    assert!(dense.x[1024..1040].iter().any(|&x| x != 0.0));
    dist.sample_dense_into(&mut rng, 1024, &mut dense);
    assert_eq!(dense.stride(), 1040);
    for j in 0..3 {
        assert!(dense.x[j * 1040 + 1024..(j + 1) * 1040]
            .iter()
            .all(|&x| x == 0.0));
    }
    // Below the threshold, or with several groups, batches are drawn as rows.
    assert!(!FeatureDistribution::uniform(5, 0.05, ValueRange::Unit)
        .unwrap()
        .draws_dense());
    assert!(!FeatureDistribution::uniform(5, 1.0, ValueRange::Unit)
        .unwrap()
        .draws_dense());
    assert!(
        !FeatureDistribution::independent(&[0.1, 0.2], ValueRange::Unit)
            .unwrap()
            .draws_dense()
    );
}

#[test]
fn feature_major_draws_have_density_p_at_every_example() {
    // B = 37 is not a multiple of 16: each feature's last mask is cut at B. A cut one example
    // too early or too late would leave that example with density 0 or shift its trials.
    let (n, batch_size, batches, p) = (20, 37, 2000, 0.3);
    let dist = FeatureDistribution::uniform(n, p, ValueRange::Unit).unwrap();
    let mut rng = StreamRng::seed_from_u64(5);
    let mut dense = DenseBatch::default();
    let mut active = vec![0usize; batch_size];
    for _ in 0..batches {
        dist.sample_dense_into(&mut rng, batch_size, &mut dense);
        for j in 0..n {
            for (e, &x) in dense.x[j * dense.stride()..][..batch_size]
                .iter()
                .enumerate()
            {
                active[e] += (x != 0.0) as usize;
            }
        }
    }
    // Five binomial standard errors of each example's density over n · batches trials.
    let trials = (n * batches) as f64;
    let tolerance = 5.0 * (p * (1.0 - p) / trials).sqrt();
    for (e, &a) in active.iter().enumerate() {
        let d = a as f64 / trials;
        assert!((d - p).abs() <= tolerance, "example {e}: density {d}");
    }
}

/// Naive twin of the independent-group loop: each success's flat position divided by the
/// width. The fast loop must draw exactly the same batch.
fn sample_by_division(
    n: usize,
    density: f64,
    batch_size: usize,
    rng: &mut StreamRng,
) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    let mut skipper = GeometricSkipper::new(density, batch_size * n, rng);
    let mut rows = Vec::new();
    let mut features = Vec::new();
    let mut values = Vec::new();
    while let Some(unit) = skipper.next(rng) {
        rows.push((unit / n) as u32);
        features.push((unit % n) as u32);
        values.push(rng.uniform_f32());
    }
    (rows, features, values)
}

/// The tested-trials path in its plainest form: trial u = (example u / w, feature u mod w) is
/// drawn one 32-bit value at a time (the scalar [`LaneRng::next_halves`]), succeeds below the
/// threshold, and takes the next value of the value generator. No masks, tables or bit scans.
fn bernoulli_by_trial(
    width: usize,
    p: f64,
    batch_size: usize,
    rng: &mut StreamRng,
    signed: bool,
) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    let mut trials = LaneRng::seeded_from(rng);
    let mut value_draws = LaneRng::seeded_from(rng);
    let threshold = (p * 4_294_967_296.0).round() as u64;
    // From DENSE_DENSITY on, trials run feature-major over B rounded up to 16 examples.
    let feature_major = p >= DENSE_DENSITY;
    let stride = batch_size.div_ceil(BLOCK) * BLOCK;
    let trial_count = if feature_major {
        width * stride
    } else {
        batch_size * width
    };
    let mut triples = Vec::new();
    let mut block = trials.next_halves();
    let mut value_block = value_draws.next_halves();
    let mut next_value = 0;
    for u in 0..trial_count {
        if u > 0 && u % BLOCK == 0 {
            block = trials.next_halves();
        }
        let (row, feature) = if feature_major {
            (u % stride, u / stride)
        } else {
            (u / width, u % width)
        };
        if row < batch_size && (block[u % BLOCK] as u64) < threshold {
            if next_value == BLOCK {
                value_block = value_draws.next_halves();
                next_value = 0;
            }
            let unit = (value_block[next_value] >> 8) as f32 / 16_777_216.0;
            next_value += 1;
            triples.push((
                row as u32,
                feature as u32,
                if signed { 2.0 * unit - 1.0 } else { unit },
            ));
        }
    }
    triples.sort_by_key(|&(row, feature, _)| (row, feature));
    let rows = triples.iter().map(|t| t.0).collect();
    let features = triples.iter().map(|t| t.1).collect();
    let values = triples.iter().map(|t| t.2).collect();
    (rows, features, values)
}

#[test]
fn tested_trials_equal_the_trial_by_trial_twin() {
    for &(n, p, signed) in &[
        (1, 0.5, false),
        (5, 0.05, false),
        (20, 0.1, true),
        (7, 0.9, false),
        (16, 0.3, true),
        (33, 0.02, false),
        (400, 0.016, false),
    ] {
        assert!((BERNOULLI_DENSITY..1.0).contains(&p));
        let range = if signed {
            ValueRange::Signed
        } else {
            ValueRange::Unit
        };
        let dist = FeatureDistribution::uniform(n, p, range).unwrap();
        // 301 examples: the last block of trials is partial for every width here but 16.
        let mut a = StreamRng::seed_from_u64(n as u64);
        let mut b = a.clone();
        let batch = dist.sample(&mut a, 301);
        let (rows, features, values) = bernoulli_by_trial(n, p, 301, &mut b, signed);
        assert_eq!(batch.row, rows, "n={n} p={p}");
        assert_eq!(batch.feature, features, "n={n} p={p}");
        assert_eq!(batch.value, values, "n={n} p={p}");
        assert_eq!(a, b, "the same number of draws from the stream");
        assert!(!values.is_empty());
    }
}

#[test]
fn every_kernel_sets_vectorised_passes_equal_the_portable_copies() {
    for set in KernelSet::ALL.into_iter().filter(|s| !s.is_supported()) {
        eprintln!("skipped kernel set {set}: this CPU cannot run it");
    }
    let mut rng = StreamRng::seed_from_u64(3);
    let lanes = LaneRng::seeded_from(&mut rng);
    for set in KernelSet::supported() {
        for threshold in [0, 1, 1 << 31, 429_496_730, u32::MAX] {
            let (mut fast, mut portable) = (lanes.clone(), lanes.clone());
            let (mut a, mut b) = (vec![0u16; 200], vec![0u16; 200]);
            vectorised::trial_masks(set, &mut fast, threshold, &mut a);
            vectorised::trial_masks_portable(&mut portable, threshold, &mut b);
            assert_eq!(a, b, "{set}, threshold {threshold}");
            assert_eq!(fast.next_words(), portable.next_words(), "{set}");
            let set_bits: usize = a.iter().map(|m| m.count_ones() as usize).sum();
            assert_eq!(vectorised::successes(set, &a), set_bits);
            let tail: usize = a[197..].iter().map(|m| m.count_ones() as usize).sum();
            assert_eq!(vectorised::successes(set, &a[..197]), set_bits - tail);
        }
        for signed in [false, true] {
            let (mut fast, mut portable) = (lanes.clone(), lanes.clone());
            let (mut a, mut b) = (vec![0f32; 160], vec![0f32; 160]);
            vectorised::uniform_values(set, &mut fast, signed, &mut a);
            vectorised::uniform_values_portable(&mut portable, signed, &mut b);
            assert_eq!(a, b, "{set}");
            assert_eq!(fast.next_words(), portable.next_words(), "{set}");
        }
        for threshold in [0, 1 << 30, u32::MAX] {
            let mut masks = vec![0u16; 200];
            vectorised::trial_masks_portable(&mut lanes.clone(), threshold, &mut masks);
            let mut values = vec![0f32; 201 * BLOCK];
            vectorised::uniform_values_portable(&mut lanes.clone(), true, &mut values);
            // 20 rows of 160 trials, 176 floats apart; the gaps stay as they were.
            let (mut a, mut b) = (vec![-1.0; 20 * 176], vec![-1.0; 20 * 176]);
            vectorised::expand(set, &masks, &values, 160, 176, &mut a);
            vectorised::expand_portable(&masks, &values, 160, 176, &mut b);
            assert_eq!(a, b, "{set}, threshold {threshold}");
            assert!(a
                .chunks(176)
                .all(|row| row[160..].iter().all(|&x| x == -1.0)));
        }
        for width in [1usize, 5, 16, 20, 37] {
            let mut masks = vec![0u16; 300];
            vectorised::trial_masks_portable(&mut lanes.clone(), 1 << 30, &mut masks);
            let rows: Vec<u32> = (0..width + BLOCK + 1).map(|v| (v / width) as u32).collect();
            let columns: Vec<u32> = (0..width + BLOCK + 1)
                .map(|v| (3 + v % width) as u32)
                .collect();
            let room = 300 * BLOCK + BLOCK;
            let (mut ra, mut fa, mut rb, mut fb) =
                (vec![0; room], vec![0; room], vec![0; room], vec![0; room]);
            let ka = vectorised::positions(set, &masks, &rows, &columns, 3, &mut ra, &mut fa);
            let kb = vectorised::positions_portable(&masks, &rows, &columns, 3, &mut rb, &mut fb);
            assert_eq!(ka, kb, "{set}");
            assert_eq!(
                (&ra[..ka], &fa[..ka]),
                (&rb[..kb], &fb[..kb]),
                "{set}, width {width}"
            );
        }
    }
}

#[test]
fn incremental_positions_equal_division() {
    // Densities that draw geometric gaps (below BERNOULLI_DENSITY, or 1).
    for &(n, p) in &[
        (1, 0.01),
        (5, 0.012),
        (20, 0.015),
        (1000, 0.001),
        (3, 0.0005),
        (400, 1.0),
    ] {
        assert!(p < BERNOULLI_DENSITY || p == 1.0);
        let dist = FeatureDistribution::uniform(n, p, ValueRange::Unit).unwrap();
        let mut a = StreamRng::seed_from_u64(n as u64);
        let mut b = a.clone();
        let batch = dist.sample(&mut a, 300);
        let (rows, features, values) = sample_by_division(n, p, 300, &mut b);
        assert_eq!(batch.feature, features, "n={n} p={p}");
        assert_eq!(batch.value, values);
        let mut expected_rows = Vec::new();
        for r in 0..300 {
            expected_rows.extend(std::iter::repeat_n(r as u32, batch.row(r).0.len()));
        }
        assert_eq!(expected_rows, rows);
        assert_eq!(a, b, "the same number of draws");
    }
}

#[test]
fn zero_density_gives_no_nonzeros_and_full_density_all() {
    let mut rng = StreamRng::seed_from_u64(1);
    let none = FeatureDistribution::uniform(7, 0.0, ValueRange::Unit)
        .unwrap()
        .sample(&mut rng, 100);
    assert_eq!(none.nonzeros(), 0);
    let all = FeatureDistribution::uniform(7, 1.0, ValueRange::Unit)
        .unwrap()
        .sample(&mut rng, 100);
    assert_eq!(all.nonzeros(), 700);
    for b in 0..100 {
        assert_eq!(all.row(b).0, &[0, 1, 2, 3, 4, 5, 6]);
    }
}

#[test]
fn correlated_sets_cofire_and_anticorrelated_never_do() {
    let dist = FeatureDistribution::new(
        6,
        vec![
            FeatureGroup::Correlated {
                features: 0..3,
                density: 0.2,
            },
            FeatureGroup::Anticorrelated {
                features: 3..6,
                density: 0.6,
                convention: AnticorrelatedConvention::SetDensity,
            },
        ],
        ValueRange::Unit,
    )
    .unwrap();
    let mut rng = StreamRng::seed_from_u64(5);
    let batch = dist.sample(&mut rng, 20_000);
    let (mut corr_active, mut anti_active) = (0usize, 0usize);
    for b in 0..batch.batch_size() {
        let (f, _) = batch.row(b);
        assert!(
            f.windows(2).all(|w| w[0] < w[1]),
            "row features sorted and unique"
        );
        let corr = f.iter().filter(|&&i| i < 3).count();
        assert!(
            corr == 0 || corr == 3,
            "correlated set fires together, got {corr}"
        );
        let anti = f.iter().filter(|&&i| i >= 3).count();
        assert!(anti <= 1, "anticorrelated set never co-fires");
        corr_active += (corr == 3) as usize;
        anti_active += anti;
    }
    // Binomial(20000, p): 5 standard errors.
    let n = 20_000.0;
    assert!((corr_active as f64 / n - 0.2).abs() < 5.0 * (0.2 * 0.8 / n).sqrt());
    assert!((anti_active as f64 / n - 0.6).abs() < 5.0 * (0.6 * 0.4 / n).sqrt());
}

#[test]
fn anticorrelated_feature_density_convention_has_marginal_p() {
    let dist = FeatureDistribution::new(
        2,
        vec![FeatureGroup::Anticorrelated {
            features: 0..2,
            density: 0.3,
            convention: AnticorrelatedConvention::FeatureDensity,
        }],
        ValueRange::Unit,
    )
    .unwrap();
    let (d, _, _) = moments(&dist, 50, 1024);
    let tol = 5.0 * (0.3 * 0.7 / 51200.0f64).sqrt();
    assert!(
        (d[0] - 0.3).abs() < tol && (d[1] - 0.3).abs() < tol,
        "{d:?}"
    );
}

#[test]
fn signed_values_are_symmetric() {
    let dist = FeatureDistribution::uniform(10, 0.5, ValueRange::Signed).unwrap();
    let (_, m, m2) = moments(&dist, 100, 1024);
    let draws = 102_400.0f64;
    for i in 0..10 {
        // E[x] = 0 and E[x²] = p/3 for U[−1,1] values at density p = 1/2.
        assert!(m[i].abs() < 5.0 * (0.5 / 3.0 / draws).sqrt());
        assert!((m2[i] - 0.5 / 3.0).abs() < 5.0 * (0.5 / 5.0 / draws).sqrt());
    }
}

#[test]
fn mixed_densities_are_kept_per_group() {
    let mut densities = vec![0.05; 5];
    densities[2] = 0.005;
    let dist = FeatureDistribution::independent(&densities, ValueRange::Unit).unwrap();
    assert_eq!(dist.groups().len(), 3);
    let (d, _, _) = moments(&dist, 200, 1024);
    for (i, &p) in densities.iter().enumerate() {
        assert!(
            (d[i] - p).abs() < 5.0 * (p * (1.0 - p) / 204_800.0f64).sqrt(),
            "{i}: {} vs {p}",
            d[i]
        );
    }
}

#[test]
fn invalid_distributions_are_rejected() {
    assert!(matches!(
        FeatureDistribution::uniform(3, 1.5, ValueRange::Unit),
        Err(DistributionError::Density { .. })
    ));
    let gap = FeatureDistribution::new(
        4,
        vec![FeatureGroup::Independent {
            features: 0..2,
            density: 0.1,
        }],
        ValueRange::Unit,
    );
    assert!(matches!(
        gap,
        Err(DistributionError::NotAPartition {
            feature: 2,
            problem: "uncovered",
            ..
        })
    ));
    let k_times_p = FeatureDistribution::new(
        3,
        vec![FeatureGroup::Anticorrelated {
            features: 0..3,
            density: 0.5,
            convention: AnticorrelatedConvention::FeatureDensity,
        }],
        ValueRange::Unit,
    );
    assert!(k_times_p.is_err(), "3 × 0.5 > 1 cannot be a probability");
}
