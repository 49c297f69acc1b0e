//! Optimisers (SGD, Adam, AdamW) over one instance's flat parameter vector, and learning-rate
//! schedules. The update equations are PyTorch's, so that runs compare with the paper's notebook.

use crate::cpu::{self, KernelSet};
use rayon::prelude::*;

/// An optimiser and its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// θ ← θ − η g (full-batch gradient descent when the task's batch is the whole data set).
    Sgd,
    /// Adam with coupled L2 weight decay (g ← g + λθ before the moments), PyTorch's `Adam`.
    Adam {
        /// β₁: decay of the first moment.
        beta1: f64,
        /// β₂: decay of the second moment.
        beta2: f64,
        /// ε added to √v̂.
        epsilon: f64,
        /// L2 coefficient λ added to the gradient.
        weight_decay: f64,
    },
    /// AdamW: decoupled weight decay θ ← θ(1 − ηλ) before the Adam step, PyTorch's `AdamW`.
    AdamW {
        /// β₁: decay of the first moment.
        beta1: f64,
        /// β₂: decay of the second moment.
        beta2: f64,
        /// ε added to √v̂.
        epsilon: f64,
        /// Decoupled decay λ.
        weight_decay: f64,
    },
}

impl Optimizer {
    /// The paper's notebook: AdamW, β = (0.9, 0.999), ε = 1e-8, weight decay 1e-2.
    pub const PAPER: Optimizer = Optimizer::AdamW {
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
        weight_decay: 1e-2,
    };

    /// Applies one update to `parameters` with gradient `gradient` at learning rate `rate`.
    ///
    /// Adam: t ← t+1; m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; m̂ = m/(1−β₁ᵗ); v̂ = v/(1−β₂ᵗ);
    /// θ ← θ − η m̂/(√v̂ + ε).
    pub fn update(
        &self,
        state: &mut OptimizerState,
        parameters: &mut [f32],
        gradient: &[f32],
        rate: f64,
    ) {
        state.step += 1;
        match *self {
            Optimizer::Sgd => {
                let rate = rate as f32;
                for (p, &g) in parameters.iter_mut().zip(gradient) {
                    *p -= rate * g;
                }
            }
            Optimizer::Adam {
                beta1,
                beta2,
                epsilon,
                weight_decay,
            }
            | Optimizer::AdamW {
                beta1,
                beta2,
                epsilon,
                weight_decay,
            } => {
                let decoupled = matches!(self, Optimizer::AdamW { .. });
                if state.first_moment.len() != parameters.len() {
                    state.first_moment = vec![0.0; parameters.len()];
                    state.second_moment = vec![0.0; parameters.len()];
                }
                let t = state.step as i32;
                let correction1 = 1.0 - beta1.powi(t);
                let correction2 = 1.0 - beta2.powi(t);
                // θ ← θ − (η/c₁) m / (√v/√c₂ + ε): PyTorch's arrangement of the bias corrections.
                let step_size = (rate / correction1) as f32;
                let inv_sqrt_c2 = (1.0 / correction2.sqrt()) as f32;
                let (b1, b2, eps) = (beta1 as f32, beta2 as f32, epsilon as f32);
                let coupled = if decoupled { 0.0 } else { weight_decay as f32 };
                let shrink = if decoupled {
                    1.0 - (rate * weight_decay) as f32
                } else {
                    1.0
                };
                let constants = AdamConstants {
                    coupled,
                    shrink,
                    b1,
                    b2,
                    step_size,
                    inv_sqrt_c2,
                    eps,
                };
                let (m, v) = (&mut state.first_moment, &mut state.second_moment);
                // Element-wise: large models update in ranges on any thread, with the same bits.
                const RANGE: usize = 1 << 14;
                let set = cpu::active();
                if parameters.len() >= 4 * RANGE {
                    parameters
                        .par_chunks_mut(RANGE)
                        .zip(gradient.par_chunks(RANGE))
                        .zip(m.par_chunks_mut(RANGE))
                        .zip(v.par_chunks_mut(RANGE))
                        .for_each(|(((p, g), m), v)| adam_fastest(set, &constants, p, g, m, v));
                } else {
                    adam_fastest(set, &constants, parameters, gradient, m, v);
                }
            }
        }
    }
}

/// Moments and step count of an optimiser for one instance (empty moments for SGD).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// Updates applied so far.
    pub step: u64,
    /// Adam's m.
    pub first_moment: Vec<f32>,
    /// Adam's v.
    pub second_moment: Vec<f32>,
}

/// How the learning rate η(t) varies over the `total` steps of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// η(t) = η₀.
    Constant,
    /// η(t) = η₀ (1 − t/T).
    Linear,
    /// η(t) = η₀ · ½(1 + cos(π t/T)).
    Cosine,
    /// Linear warm-up from 0 over `warmup_steps`, then cosine decay over the rest.
    WarmupCosine {
        /// Steps of linear warm-up.
        warmup_steps: u64,
    },
}

impl Schedule {
    /// η at step `step` (0-based) of `total`.
    pub fn rate(&self, base: f64, step: u64, total: u64) -> f64 {
        let total = total.max(1) as f64;
        let t = step as f64;
        let cosine =
            |fraction: f64| 0.5 * (1.0 + (std::f64::consts::PI * fraction.clamp(0.0, 1.0)).cos());
        match *self {
            Schedule::Constant => base,
            Schedule::Linear => base * (1.0 - t / total),
            Schedule::Cosine => base * cosine(t / total),
            Schedule::WarmupCosine { warmup_steps } => {
                let w = warmup_steps as f64;
                if t < w {
                    base * (t + 1.0) / w
                } else {
                    base * cosine((t - w) / (total - w).max(1.0))
                }
            }
        }
    }
}

/// The per-parameter constants of one Adam(W) step.
struct AdamConstants {
    /// Coupled (L2) weight decay λ (Adam), 0 for AdamW.
    coupled: f32,
    /// Decoupled shrink 1 − ηλ (AdamW), 1 for Adam.
    shrink: f32,
    b1: f32,
    b2: f32,
    /// η / (1 − β₁ᵗ).
    step_size: f32,
    /// 1 / √(1 − β₂ᵗ).
    inv_sqrt_c2: f32,
    eps: f32,
}

/// One Adam(W) step over every parameter: g ← g + λθ (Adam); θ ← (1 − ηλ)θ (AdamW);
/// m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; θ ← θ − (η/c₁) m / (√v/√c₂ + ε).
#[inline(always)]
fn adam(c: &AdamConstants, parameters: &mut [f32], gradient: &[f32], m: &mut [f32], v: &mut [f32]) {
    for (((p, &g), m), v) in parameters
        .iter_mut()
        .zip(gradient)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
    {
        let g = g + c.coupled * *p;
        *p *= c.shrink;
        *m = c.b1 * *m + (1.0 - c.b1) * g;
        *v = c.b2 * *v + (1.0 - c.b2) * g * g;
        *p -= c.step_size * *m / (v.sqrt() * c.inv_sqrt_c2 + c.eps);
    }
}

/// [`adam`], in its AVX2 copy for the SIMD kernel sets (the same bits either way).
fn adam_fastest(
    set: KernelSet,
    c: &AdamConstants,
    parameters: &mut [f32],
    gradient: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    assert!(set.is_supported(), "this CPU cannot run kernel set {set}");
    #[cfg(target_arch = "x86_64")]
    if set >= KernelSet::Avx2Fma {
        // SAFETY: the only precondition of the AVX2 copy is a CPU with AVX2, which every set
        // from Avx2Fma on requires (checked just above).
        unsafe { adam_avx2(c, parameters, gradient, m, v) };
        return;
    }
    adam(c, parameters, gradient, m, v);
}

/// [`adam`] compiled for AVX2: 8-wide vectors. Every operation is a correctly rounded IEEE one
/// (products and sums are not fused), so it gives the same bits as the portable copy.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn adam_avx2(
    c: &AdamConstants,
    parameters: &mut [f32],
    gradient: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    adam(c, parameters, gradient, m, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_sets_adam_step_equals_the_portable_one_to_the_bit() {
        for set in KernelSet::ALL.into_iter().filter(|s| !s.is_supported()) {
            eprintln!("skipped kernel set {set}: this CPU cannot run it");
        }
        let mut rng = crate::rng::StreamRng::seed_from_u64(5);
        let mut draw =
            |len: usize| -> Vec<f32> { (0..len).map(|_| 2.0 * rng.uniform_f32() - 1.0).collect() };
        let (p0, g, m0) = (draw(1003), draw(1003), draw(1003));
        let v0: Vec<f32> = draw(1003).iter().map(|x| x * x).collect();
        for coupled in [0.0, 0.01] {
            let c = AdamConstants {
                coupled,
                shrink: 1.0 - 1e-5,
                b1: 0.9,
                b2: 0.999,
                step_size: 1e-3 / 0.1,
                inv_sqrt_c2: 1.0 / 0.001f32.sqrt(),
                eps: 1e-8,
            };
            let (mut pa, mut ma, mut va) = (p0.clone(), m0.clone(), v0.clone());
            adam(&c, &mut pa, &g, &mut ma, &mut va);
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_ne!(bits(&pa), bits(&p0));
            for set in KernelSet::supported() {
                let (mut pb, mut mb, mut vb) = (p0.clone(), m0.clone(), v0.clone());
                adam_fastest(set, &c, &mut pb, &g, &mut mb, &mut vb);
                assert_eq!(bits(&pa), bits(&pb), "{set}");
                assert_eq!(bits(&ma), bits(&mb), "{set}");
                assert_eq!(bits(&va), bits(&vb), "{set}");
            }
        }
    }

    /// Naive twin of the Adam(W) update, written the textbook way in f64 with explicit m̂ and v̂.
    fn reference_adam(
        decoupled: bool,
        steps: &[Vec<f64>],
        lr: f64,
        wd: f64,
        p0: &[f64],
    ) -> Vec<f64> {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let mut p = p0.to_vec();
        let mut m = vec![0.0; p.len()];
        let mut v = vec![0.0; p.len()];
        for (t, g) in steps.iter().enumerate() {
            let t = t as i32 + 1;
            for k in 0..p.len() {
                let mut gk = g[k];
                if decoupled {
                    p[k] -= lr * wd * p[k];
                } else {
                    gk += wd * p[k];
                }
                m[k] = b1 * m[k] + (1.0 - b1) * gk;
                v[k] = b2 * v[k] + (1.0 - b2) * gk * gk;
                let m_hat = m[k] / (1.0 - b1.powi(t));
                let v_hat = v[k] / (1.0 - b2.powi(t));
                p[k] -= lr * m_hat / (v_hat.sqrt() + eps);
            }
        }
        p
    }

    #[test]
    fn adam_and_adamw_match_textbook_updates() {
        let p0 = vec![0.5f64, -1.0, 2.0];
        let grads: Vec<Vec<f64>> = (0..50)
            .map(|t| vec![(t as f64 * 0.3).sin(), 0.1 * t as f64 - 2.0, 1e-3])
            .collect();
        for decoupled in [false, true] {
            let opt = if decoupled {
                Optimizer::AdamW {
                    beta1: 0.9,
                    beta2: 0.999,
                    epsilon: 1e-8,
                    weight_decay: 0.01,
                }
            } else {
                Optimizer::Adam {
                    beta1: 0.9,
                    beta2: 0.999,
                    epsilon: 1e-8,
                    weight_decay: 0.01,
                }
            };
            let mut state = OptimizerState::default();
            let mut p: Vec<f32> = p0.iter().map(|&v| v as f32).collect();
            for g in &grads {
                let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
                opt.update(&mut state, &mut p, &g32, 0.01);
            }
            let expected = reference_adam(decoupled, &grads, 0.01, 0.01, &p0);
            for (a, e) in p.iter().zip(&expected) {
                // 50 f32 updates of size ≤ lr = 0.01 each: rounding stays below 50 · 2⁻²⁴ · 2 ≈ 6e-6.
                assert!(
                    (*a as f64 - e).abs() < 1e-5,
                    "decoupled={decoupled}: {a} vs {e}"
                );
            }
        }
    }

    #[test]
    fn sgd_is_plain_descent() {
        let mut p = vec![1.0f32, 2.0];
        Optimizer::Sgd.update(&mut OptimizerState::default(), &mut p, &[0.5, -1.0], 0.1);
        assert_eq!(p, vec![0.95, 2.1]);
    }

    #[test]
    fn schedules_start_and_end_where_documented() {
        assert_eq!(Schedule::Constant.rate(1.0, 500, 1000), 1.0);
        assert_eq!(Schedule::Linear.rate(1.0, 0, 1000), 1.0);
        assert!((Schedule::Linear.rate(1.0, 500, 1000) - 0.5).abs() < 1e-12);
        assert!((Schedule::Cosine.rate(1.0, 500, 1000) - 0.5).abs() < 1e-12);
        assert!(Schedule::Cosine.rate(1.0, 999, 1000) < 1e-4);
        let warm = Schedule::WarmupCosine { warmup_steps: 100 };
        assert!((warm.rate(1.0, 49, 1000) - 0.5).abs() < 1e-12);
        assert!((warm.rate(1.0, 100, 1000) - 1.0).abs() < 1e-12);
        assert!((warm.rate(1.0, 550, 1000) - 0.5).abs() < 1e-12);
    }
}
