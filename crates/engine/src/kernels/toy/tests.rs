//! The kernel harness: every kernel set this CPU supports against the naive twin, on fixed and
//! random shapes, kinds and densities (and says which sets it skipped); the SIMD copies against
//! each other where `cpu`'s docs say they agree; thread-count independence.

use super::*;
use crate::data::batch::DenseBatch;
use crate::data::sparse::{FeatureDistribution, ValueRange};
use crate::rng::StreamRng;

/// Draws a random instance (parameters with a bias that switches ReLU outputs both ways) and a
/// batch, and returns (parameters, importance, batch).
fn instance(
    shape: &ToyShape,
    density: f64,
    batch_size: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f32>, SparseBatch) {
    let (params, importance, batch, _) = instance_and_dense(shape, density, batch_size, seed);
    (params, importance, batch)
}

/// [`instance`], and the same examples drawn dense when the distribution is drawn dense.
fn instance_and_dense(
    shape: &ToyShape,
    density: f64,
    batch_size: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f32>, SparseBatch, Option<DenseBatch>) {
    let n = shape.n_features;
    let mut rng = StreamRng::seed_from_u64(seed);
    let values = if shape.kind == ToyKind::AbsoluteValue {
        ValueRange::Signed
    } else {
        ValueRange::Unit
    };
    let distribution = FeatureDistribution::uniform(n, density, values).unwrap();
    let dense = distribution.draws_dense().then(|| {
        let mut dense = DenseBatch::default();
        distribution.sample_dense_into(&mut rng.clone(), batch_size, &mut dense);
        dense
    });
    let batch = distribution.sample(&mut rng, batch_size);
    let mut params = vec![0.0f32; shape.parameter_count()];
    shape.initialise(&mut rng, &mut params);
    // Odd seeds: biases around 0, about half the ReLU outputs on (dense backward); even seeds:
    // negative biases as after training, most outputs off (the sparse dz ≠ 0 backward).
    let offset = if seed % 2 == 1 { -0.5 } else { -0.8 };
    let bias_at = params.len() - n;
    for b in &mut params[bias_at..] {
        *b = 0.2 * (rng.uniform_f32() + offset);
    }
    let importance = (0..n)
        .map(|i| 0.5 + rng.uniform_f32() * (0.97f32).powi(i as i32))
        .collect();
    (params, importance, batch, dense)
}

/// The harness: the fast kernel against the naive twin evaluated in f64 (the exact value up to
/// 1e-16), for loss and every gradient component.
///
/// Tolerance from f32 summation error. Every quantity is a nest of sums: a gradient component
/// sums over ≤ B examples terms whose factors are themselves sums over ≤ n encoder non-zeros, m
/// decoder products and n output features. Rounding errors along such a nest add up to at most
/// γ_N · Σ|terms| with N the total chain length, N ≤ B + 2n + m (+ a few roundings of products
/// and scalings: +8), and γ_N ≤ N·ε for ε = f32::EPSILON = 2⁻²³ (twice the unit roundoff, which
/// absorbs the second-order terms). Σ|terms| is bounded by the quantity's *absolute twin*
/// ([`absolute_twin`]: the same nest with every factor replaced by its magnitude). A wrong kernel
/// (one example or one feature missing, a wrong sign) errs by about one term, ≥ Σ|terms|/(B n),
/// which is above this bound for the shapes tested.
fn check(sets: &[KernelSet], shape: ToyShape, density: f64, batch_size: usize, seed: u64) -> bool {
    let (params, importance, batch) = instance(&shape, density, batch_size, seed);
    for &set in sets {
        check_set(set, shape, density, batch_size, seed);
    }
    let p64: Vec<f64> = params.iter().map(|&v| v as f64).collect();
    let i64s: Vec<f64> = importance.iter().map(|&v| v as f64).collect();
    let mut exact_grad = vec![0.0f64; params.len()];
    shape.loss_and_gradient_reference(
        &p64,
        &batch,
        &i64s,
        Some(&mut exact_grad),
        &mut shape.scratch(),
    );
    // Whether the comparison was not vacuous.
    exact_grad.iter().any(|&g| g != 0.0)
}

/// The kernel of `set` on the instance drawn from (shape, density, B, seed): (input, loss,
/// gradient) for the batch as rows and, when it is drawn dense, as a dense batch (the same
/// examples).
fn run_set(
    set: KernelSet,
    shape: &ToyShape,
    density: f64,
    batch_size: usize,
    seed: u64,
) -> Vec<(&'static str, f64, Vec<f32>)> {
    let (params, importance, batch, dense) = instance_and_dense(shape, density, batch_size, seed);
    let mut workspace = ToyKernelWorkspace::default();
    let mut fast_grad = vec![f32::NAN; params.len()];
    let fast_loss = loss_and_gradient_with(
        set,
        shape,
        &params,
        &batch,
        &importance,
        &mut fast_grad,
        &mut workspace,
    );
    let mut fast = vec![("rows", fast_loss, fast_grad)];
    if let Some(dense) = &dense {
        let mut fast_grad = vec![f32::NAN; params.len()];
        let fast_loss = loss_and_gradient_dense_with(
            set,
            shape,
            &params,
            dense,
            &importance,
            &mut fast_grad,
            &mut workspace,
        );
        fast.push(("dense", fast_loss, fast_grad));
    }
    fast
}

fn check_set(set: KernelSet, shape: ToyShape, density: f64, batch_size: usize, seed: u64) {
    let (params, importance, batch) = instance(&shape, density, batch_size, seed);
    // The same examples as rows and, when drawn dense, as a dense batch: both against the twin.
    let fast = run_set(set, &shape, density, batch_size, seed);
    let p64: Vec<f64> = params.iter().map(|&v| v as f64).collect();
    let i64s: Vec<f64> = importance.iter().map(|&v| v as f64).collect();
    let mut exact_grad = vec![0.0f64; params.len()];
    let exact_loss = shape.loss_and_gradient_reference(
        &p64,
        &batch,
        &i64s,
        Some(&mut exact_grad),
        &mut shape.scratch(),
    );
    let magnitude = absolute_twin(&shape, &params, &batch, &importance);
    let n_terms = (batch_size + 2 * shape.n_features + shape.n_hidden + 8) as f64;
    let eps = f32::EPSILON as f64;
    let tol = |scale: f64| n_terms * eps * scale + 1e-30;
    for (input, fast_loss, fast_grad) in fast {
        assert!(
            (fast_loss - exact_loss).abs() <= tol(magnitude.0),
            "{set} {input} {shape:?} p={density}: loss {fast_loss} vs {exact_loss}"
        );
        for (k, (&f, &e)) in fast_grad.iter().zip(&exact_grad).enumerate() {
            assert!(
                (f as f64 - e).abs() <= tol(magnitude.1[k]),
                "{set} {input} {shape:?} p={density} B={batch_size}: dθ[{k}] {f} vs {e} \
                 (bound {})",
                tol(magnitude.1[k])
            );
        }
    }
}

/// Upper bounds of Σ|terms| for the loss and each gradient component: every product in the
/// forward and backward passes replaced by the product of absolute values (so no cancellation),
/// ReLUs kept open (an upper bound of either branch), in f64.
fn absolute_twin(
    shape: &ToyShape,
    params: &[f32],
    batch: &SparseBatch,
    importance: &[f32],
) -> (f64, Vec<f64>) {
    let (n, m) = (shape.n_features, shape.n_hidden);
    let (enc, dec, bias_at) = shape.offsets();
    let a = |k: usize| params[k].abs() as f64;
    let scale = 1.0 / (batch.batch_size() * n) as f64;
    let mut loss = 0.0;
    let mut grad = vec![0.0f64; params.len()];
    for b in 0..batch.batch_size() {
        let x: Vec<f64> = batch
            .dense_row(b, n)
            .iter()
            .map(|v| v.abs() as f64)
            .collect();
        let h: Vec<f64> = (0..m)
            .map(|k| (0..n).map(|j| x[j] * a(enc + j * m + k)).sum())
            .collect();
        let mut dh = vec![0.0; m];
        for i in 0..n {
            let z: f64 = (0..m).map(|k| a(dec + i * m + k) * h[k]).sum::<f64>() + a(bias_at + i);
            let err = z + x[i];
            loss += importance[i] as f64 * err * err * scale;
            let dz = 2.0 * importance[i] as f64 * err * scale;
            grad[bias_at + i] += dz;
            for k in 0..m {
                grad[dec + i * m + k] += dz * h[k];
                dh[k] += dz * a(dec + i * m + k);
            }
        }
        for j in 0..n {
            for k in 0..m {
                grad[enc + j * m + k] += x[j] * dh[k];
            }
        }
    }
    (loss, grad)
}

/// Every kernel set this CPU runs, saying on stderr which it cannot (like matrixmultiply's
/// tests, a CPU without AVX-512 passes having run fewer sets, and says so).
fn sets_to_test() -> Vec<KernelSet> {
    for set in KernelSet::ALL.into_iter().filter(|s| !s.is_supported()) {
        eprintln!(
            "skipped kernel set {set}: this CPU lacks {:?}",
            set.required_features()
        );
    }
    KernelSet::supported()
}

/// (n, m, p, B) that reach every path: small m (each M) with dense and sparse encoders, large m
/// with sparse and dense tiles, chunked steps (B·n·m ≥ PARALLEL_WORK), all-zero examples, partial
/// lanes; batches drawn dense (p ≥ 1/16) on the small path, chunked or not, and on the large path.
const FIXED_CASES: [(usize, usize, f64, usize); 11] = [
    (400, 8, 0.1, 1000),
    (5, 2, 0.05, 1024),
    (64, 6, 0.01, 500),
    (20, 5, 0.1, 1000),
    (3, 1, 0.7, 37),
    (9, 8, 1.0, 64),
    (12, 7, 0.3, 129),
    (60, 20, 0.02, 300),
    (60, 20, 1.0, 100),
    (300, 30, 0.01, 600),
    (64, 40, 0.9, 1024),
];

#[test]
fn fast_kernel_equals_naive_twin_for_every_kind_shape_and_density() {
    let sets = sets_to_test();
    eprintln!(
        "kernel sets tested: {:?}",
        sets.iter().map(|s| s.name()).collect::<Vec<_>>()
    );
    let mut rng = StreamRng::seed_from_u64(99);
    let mut cases: Vec<(usize, usize, f64, usize)> = FIXED_CASES.to_vec();
    // And random ones.
    for _ in 0..12 {
        let n = 2 + rng.below(80) as usize;
        let m = 1 + rng.below(n.min(24) as u32) as usize;
        let density = [1.0, 0.5, 0.1, 0.02][rng.below(4) as usize];
        let batch = 1 + rng.below(700) as usize;
        cases.push((n, m, density, batch));
    }
    let (mut checks, mut informative) = (0, 0);
    for (c, &(n, m, density, batch)) in cases.iter().enumerate() {
        for kind in ToyKind::ALL {
            let shape = ToyShape {
                kind,
                n_features: n,
                n_hidden: m,
            };
            for seed in [2000 + 2 * c as u64, 2001 + 2 * c as u64] {
                checks += 1;
                informative += check(&sets, shape, density, batch, seed) as usize;
            }
        }
    }
    // Not vacuous: almost every case has a non-zero gradient (a tiny batch with every ReLU
    // output off may not).
    assert!(informative * 10 >= checks * 9, "{informative}/{checks}");
    let big = ToyShape {
        kind: ToyKind::ReluOutput,
        n_features: 300,
        n_hidden: 30,
    };
    assert!(
        Plan::new(&big, 600).chunk < 600,
        "a chunked case is covered"
    );
}

/// Uniform draws in [−1, 1) from `seed` for the tests that compare the AVX2 and AVX-512VL
/// copies of a kernel; `None` (said on stderr) when the CPU cannot run the Avx512Vl set.
#[cfg(target_arch = "x86_64")]
fn simd_test_draws(seed: u64) -> Option<impl FnMut(usize) -> Vec<f32>> {
    if !KernelSet::Avx512Vl.is_supported() {
        eprintln!("skipped: this CPU cannot run kernel set avx512vl");
        return None;
    }
    let mut rng = StreamRng::seed_from_u64(seed);
    Some(move |len: usize| (0..len).map(|_| 2.0 * rng.uniform_f32() - 1.0).collect())
}

/// The bit patterns of `v`, to compare floats exactly (−0 ≠ +0).
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The two-feature sweep is the one-feature sweep twice, to the bit (sums and dh).
#[cfg(target_arch = "x86_64")]
#[test]
fn paired_sweep_equals_two_single_sweeps() {
    let Some(mut draw) = simd_test_draws(17) else {
        return;
    };
    const M: usize = 5;
    // Targets with their own stride, as read in place from a dense batch.
    let (tile, used, y_stride) = (64, 48, 80);
    let h = draw(M * tile);
    let dh0 = draw(M * tile);
    let d = draw(2 * M);
    let y = draw(y_stride + used);
    // Lanes 43..48 are padding: a partial last group.
    let real = 43;
    for linear in [false, true] {
        let pair = simd::Pair {
            bias: [0.1, -0.2],
            coefficient: [0.03, 0.05],
        };
        let mut dh_pair = dh0.clone();
        // SAFETY: the CPU features were checked above.
        let paired = unsafe {
            simd::feature_pair_sweep::<M>(
                &h,
                &mut dh_pair,
                tile,
                used,
                &d,
                pair,
                linear,
                &y,
                y_stride,
                real,
            )
        };
        let mut dh_single = dh0.clone();
        for f in 0..2 {
            // SAFETY: as above.
            let single = unsafe {
                simd::feature_sweep::<M>(
                    &h,
                    &mut dh_single,
                    tile,
                    used,
                    &d[f * M..f * M + M],
                    pair.bias[f],
                    pair.coefficient[f],
                    linear,
                    &y[f * y_stride..f * y_stride + used],
                    real,
                )
            };
            assert_eq!(single.0.to_bits(), paired[f].0.to_bits());
            assert_eq!(single.1.to_bits(), paired[f].1.to_bits());
            assert_eq!(single.2.map(f32::to_bits), paired[f].2.map(f32::to_bits));
            assert!(single.0 > 0.0);
        }
        assert_eq!(bits(&dh_single), bits(&dh_pair));
        assert_ne!(bits(&dh_single), bits(&dh0));
    }
}

/// The fused decoder pass in blocks of 3 examples (AVX2) and of 6 (AVX-512VL) writes the same
/// dz bits and counts (every z_ti is the same chain of FMAs over k); the losses differ only by
/// the grouping of an f32 sum of ≤ 24 terms per lane, bounded by 24·ε·Σ I_i err².
#[cfg(target_arch = "x86_64")]
#[test]
fn fused_decoder_copies_agree() {
    let Some(mut draw) = simd_test_draws(29) else {
        return;
    };
    for (t_len, n, m, linear) in [(37, 403, 30, false), (20, 64, 9, true), (6, 13, 40, false)] {
        let (h, transposed) = (draw(t_len * m), draw(m * n));
        let (bias, coefficient) = (draw(n), draw(n));
        // Importances are positive: the loss is a sum of positive terms.
        let importance: Vec<f32> = draw(n).iter().map(|v| v.abs()).collect();
        let mut y = draw(t_len * n);
        for (k, v) in y.iter_mut().enumerate() {
            *v = if k % 5 == 0 { v.abs() } else { 0.0 };
        }
        let constants = simd::OutputConstants {
            bias: &bias,
            importance: &importance,
            coefficient: &coefficient,
            linear,
        };
        let (mut a, mut b) = (vec![f32::NAN; t_len * n], vec![f32::NAN; t_len * n]);
        // SAFETY: the CPU features were checked above.
        let (la, ca) =
            unsafe { simd::decoder_forward(&h, &transposed, &constants, &y, t_len, &mut a) };
        // SAFETY: as above.
        let (lb, cb) =
            unsafe { simd::decoder_forward_avx512(&h, &transposed, &constants, &y, t_len, &mut b) };
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(ca, cb);
        assert!(ca > 0 && ca < t_len * n || linear);
        assert!(
            (la - lb).abs() <= 24.0 * f32::EPSILON as f64 * la.abs(),
            "{la} vs {lb}"
        );
    }
}

/// The mask-register copy of the sparse decoder backward (h and dh in registers for m ≤ 32)
/// gives the bits of the AVX2 copy (h and dh in memory), for every register count and tail.
#[cfg(target_arch = "x86_64")]
#[test]
fn sparse_decoder_backward_copies_agree_to_the_bit() {
    let Some(mut draw) = simd_test_draws(23) else {
        return;
    };
    for (n, m) in [(37, 3), (40, 8), (19, 13), (64, 30), (8, 32), (30, 45)] {
        // About a third of dz non-zero, in no regular pattern.
        let mut dz = draw(n);
        for (i, v) in dz.iter_mut().enumerate() {
            if (i * 7919) % 3 != 0 {
                *v = 0.0;
            }
        }
        let (h, decoder) = (draw(m), draw(n * m));
        let (g0, b0, dh0) = (draw(n * m), draw(n), draw(m));
        let (mut ga, mut ba, mut dha) = (g0.clone(), b0.clone(), dh0.clone());
        let (mut gb, mut bb, mut dhb) = (g0.clone(), b0.clone(), dh0.clone());
        // SAFETY: the CPU features were checked above.
        unsafe {
            simd::sparse_decoder_backward(&dz, &h, &decoder, &mut ga, &mut ba, &mut dha);
            simd::sparse_decoder_backward_avx512(&dz, &h, &decoder, &mut gb, &mut bb, &mut dhb);
        }
        assert_eq!(bits(&ga), bits(&gb), "dD, n={n} m={m}");
        assert_eq!(bits(&ba), bits(&bb), "db, n={n} m={m}");
        assert_eq!(bits(&dha), bits(&dhb), "dh, n={n} m={m}");
        assert_ne!(bits(&dha), bits(&dh0), "dh moved, n={n} m={m}");
    }
}

/// The loss and gradient bits of `set` on one drawn instance (rows, and dense when drawn dense).
fn kernel_bits(
    set: KernelSet,
    shape: &ToyShape,
    density: f64,
    batch_size: usize,
    seed: u64,
) -> Vec<(u64, Vec<u32>)> {
    run_set(set, shape, density, batch_size, seed)
        .into_iter()
        .map(|(_, loss, gradient)| (loss.to_bits(), bits(&gradient)))
        .collect()
}

/// What `cpu`'s module doc claims of the kernels: avx2-fma and avx512vl give the same gradient
/// bits on every path and the same loss bits for m ≤ 8, but not the same loss for m > 8 (the
/// fused decoder pass groups its f32 loss sums by 3 or 6 examples); portable differs from
/// both (FMA). The inequalities are witnesses that the distinction is real.
#[test]
fn kernel_sets_agree_and_differ_as_the_cpu_module_says() {
    if !KernelSet::Avx512Vl.is_supported() {
        eprintln!("skipped: comparing the sets needs avx512vl, which this CPU cannot run");
        return;
    }
    let (mut large_loss_differs, mut portable_differs) = (false, false);
    for (c, &(n, m, density, batch_size)) in FIXED_CASES.iter().enumerate() {
        for kind in ToyKind::ALL {
            let shape = ToyShape {
                kind,
                n_features: n,
                n_hidden: m,
            };
            let seed = 500 + c as u64;
            let avx2 = kernel_bits(KernelSet::Avx2Fma, &shape, density, batch_size, seed);
            let avx512 = kernel_bits(KernelSet::Avx512Vl, &shape, density, batch_size, seed);
            let portable = kernel_bits(KernelSet::Portable, &shape, density, batch_size, seed);
            for (a, b) in avx2.iter().zip(&avx512) {
                assert_eq!(
                    a.1, b.1,
                    "{shape:?} p={density}: gradients avx2-fma vs avx512vl"
                );
                if m <= 8 {
                    assert_eq!(
                        a.0, b.0,
                        "{shape:?} p={density}: losses avx2-fma vs avx512vl"
                    );
                }
                large_loss_differs |= a.0 != b.0;
            }
            portable_differs |= portable != avx2;
        }
    }
    assert!(
        large_loss_differs,
        "a large-m loss told avx2-fma from avx512vl"
    );
    assert!(portable_differs, "some case told portable from avx2-fma");
}

#[test]
fn result_does_not_depend_on_the_thread_count() {
    let shape = ToyShape {
        kind: ToyKind::ReluHidden,
        n_features: 300,
        n_hidden: 30,
    };
    let (params, importance, batch) = instance(&shape, 0.05, 1024, 5);
    assert!(Plan::new(&shape, 1024).chunk < 1024, "the step is chunked");
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut g = vec![0.0f32; params.len()];
            let loss = loss_and_gradient(
                &shape,
                &params,
                &batch,
                &importance,
                &mut g,
                &mut ToyKernelWorkspace::default(),
            );
            (
                loss.to_bits(),
                g.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            )
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}
