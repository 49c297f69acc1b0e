//! Closed forms of deep-linear learning dynamics (Saxe, McClelland & Ganguli 2019; Saxe et al.
//! ICLR 2014), followups.md §F1 — the curves the simulations of [`crate::models::deep_linear`] are
//! checked against. Pure functions of the spectrum, no training.
//!
//! Conventions of §F1: sum-convention loss L = ½‖Y − W_total‖²_F on one-hot items, full-batch
//! gradient descent with learning rate λ, time t in steps, τ = 1/λ. A mode α of Y = Σ s_α u_α v_αᵀ
//! has strength a_α(t) = u_αᵀ W_total(t) v_α. "Depth" counts weight matrices (N_l − 1 in the paper's
//! count of neuron layers N_l): depth 1 is the shallow control ŷ = W x, depth 2 is ŷ = W²W¹x.

/// a(t) for the balanced, aligned two-layer start with a(0) = a₀:
/// a(t) = s·e^{2st/τ} / (e^{2st/τ} − 1 + s/a₀), the solution of τ da/dt = 2a(s − a).
///
/// Evaluated as s / (1 + (s/a₀ − 1)·e^{−2st/τ}), which does not overflow for large t.
pub fn balanced_mode_strength(s: f64, a0: f64, tau: f64, t: f64) -> f64 {
    s / (1.0 + (s / a0 - 1.0) * (-2.0 * s * t / tau).exp())
}

/// Time at which a balanced, aligned two-layer mode reaches s/2: t½ = (τ/2s)·ln(s/a₀ − 1).
/// Inversely proportional to s: stronger modes are learned first.
pub fn half_learning_time(s: f64, a0: f64, tau: f64) -> f64 {
    tau / (2.0 * s) * (s / a0 - 1.0).ln()
}

/// Mode strength of the shallow control ŷ = W x trained by gradient descent from W = 0:
/// W_t = Y·(1 − (1−λ)^t), so a(t) = s·(1 − (1−λ)^t) (exact for the discrete steps).
pub fn shallow_mode_strength(s: f64, learning_rate: f64, t: f64) -> f64 {
    s * (1.0 - (1.0 - learning_rate).powf(t))
}

/// The shallow control's common half time, the same for every mode whatever its s:
/// ln 2 / (−ln(1−λ)) ≈ τ ln 2.
pub fn shallow_half_time(learning_rate: f64) -> f64 {
    std::f64::consts::LN_2 / -(1.0 - learning_rate).ln()
}

/// The loss staircase L(t) = ½ Σ_α (s_α − a_α(t))² when the modes are decoupled (aligned starts).
/// `a` may be shorter than `s`: missing strengths count as 0 (modes the network cannot hold).
pub fn staircase_loss(s: &[f64], a: &[f64]) -> f64 {
    0.5 * s
        .iter()
        .enumerate()
        .map(|(k, &sk)| (sk - a.get(k).copied().unwrap_or(0.0)).powi(2))
        .sum::<f64>()
}

/// One level of a hierarchical spectrum: a value shared by `multiplicity` modes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpectrumLevel {
    /// The singular value (trees) or covariance eigenvalue (diffusion) of these modes.
    pub value: f64,
    /// How many modes share it.
    pub multiplicity: usize,
    /// `None` for the root mode (the all-items direction); `Some(k)` for the modes that split the
    /// children of the level-k nodes (k = 0 is the root's split).
    pub split_level: Option<usize>,
}

/// Singular values of the node-indicator tree's Y (branching B, depth D, items = B^D leaves):
/// s_root = √(Σ_{l=0..D} B^{D−l}); the modes splitting the children of a level-k node
/// (k = 0…D−1) have s_k = √(Σ_{l=k+1..D} B^{D−l}) with multiplicity (B−1)·B^k. Root first, then
/// k = 0, 1, …: decreasing. B = 2, D = 3: √15, √7, √3 ×2, 1 ×4.
pub fn tree_spectrum(branching: usize, depth: usize) -> Vec<SpectrumLevel> {
    let b = branching as f64;
    let n = |l: usize| b.powi((depth - l) as i32);
    let mut levels = vec![SpectrumLevel {
        value: (0..=depth).map(n).sum::<f64>().sqrt(),
        multiplicity: 1,
        split_level: None,
    }];
    levels.extend((0..depth).map(|k| SpectrumLevel {
        value: (k + 1..=depth).map(n).sum::<f64>().sqrt(),
        multiplicity: (branching - 1) * branching.pow(k as u32),
        split_level: Some(k),
    }));
    levels
}

/// Eigenvalues of E\[YᵀY\]/N_f for the branching-diffusion model (B, D, flip probability ε): with
/// r = 1 − 2ε, q_l = r^{2(D−l)} (q_{−1} = 0), n_l = B^{D−l}:
/// λ_root = Σ_{l=0..D} (q_l − q_{l−1})·n_l and λ_k = Σ_{l=k+1..D} (q_l − q_{l−1})·n_l with
/// multiplicity (B−1)·B^k. The singular values of a sampled Y are ≈ √(N_f·λ).
/// B = 2, D = 3, ε = 0.15: λ = 2.4408, 1.4996, 1.0098 ×2, 0.5100 ×4.
pub fn diffusion_spectrum(branching: usize, depth: usize, epsilon: f64) -> Vec<SpectrumLevel> {
    let r = 1.0 - 2.0 * epsilon;
    let q = |l: usize| r.powi(2 * (depth - l) as i32);
    // Term l of the sums: (q_l − q_{l−1})·n_l, with q_{−1} = 0.
    let term = |l: usize| {
        let previous = if l == 0 { 0.0 } else { q(l - 1) };
        (q(l) - previous) * (branching as f64).powi((depth - l) as i32)
    };
    let mut levels = vec![SpectrumLevel {
        value: (0..=depth).map(term).sum(),
        multiplicity: 1,
        split_level: None,
    }];
    levels.extend((0..depth).map(|k| SpectrumLevel {
        value: (k + 1..=depth).map(term).sum(),
        multiplicity: (branching - 1) * branching.pow(k as u32),
        split_level: Some(k),
    }));
    levels
}

/// Expands levels into one value per mode (each repeated `multiplicity` times), in level order.
pub fn expand_spectrum(levels: &[SpectrumLevel]) -> Vec<f64> {
    levels
        .iter()
        .flat_map(|l| std::iter::repeat_n(l.value, l.multiplicity))
        .collect()
}

/// Right-hand side of the balanced deep-chain mode equation, da/dt:
/// τ da/dt = D·a^{2−2/D}·(s − a), D = `depth` = N_l − 1 weight matrices (D = 2: 2a(s − a);
/// D = 1: s − a, the shallow flow).
pub fn chain_mode_rate(s: f64, tau: f64, depth: usize, a: f64) -> f64 {
    let d = depth as f64;
    d * a.max(0.0).powf(2.0 - 2.0 / d) * (s - a) / tau
}

/// Integrates τ da/dt = D·a^{2−2/D}·(s − a) from a(0) = a₀ with classical RK4, `steps` steps of
/// size dt; returns a at t = 0, dt, …, steps·dt (steps + 1 values).
///
/// For a balanced chain of D weight matrices with per-layer strength a₀^{1/D} this is the mode's
/// exact gradient flow. RK4's global error is O(dt⁴); choose dt ≪ τ/(D·s) (e.g. τ/(100·D·s)).
pub fn chain_mode_trajectory(
    s: f64,
    a0: f64,
    tau: f64,
    depth: usize,
    dt: f64,
    steps: usize,
) -> Vec<f64> {
    let f = |a: f64| chain_mode_rate(s, tau, depth, a);
    let mut a = a0;
    let mut out = Vec::with_capacity(steps + 1);
    out.push(a);
    for _ in 0..steps {
        let k1 = f(a);
        let k2 = f(a + 0.5 * dt * k1);
        let k3 = f(a + 0.5 * dt * k2);
        let k4 = f(a + dt * k3);
        a += dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
        out.push(a);
    }
    out
}

/// First time a sampled trajectory (values at t = 0, dt, 2dt, …) reaches `level`, linearly
/// interpolated between samples; `None` if it never does.
pub fn crossing_time(trajectory: &[f64], dt: f64, level: f64) -> Option<f64> {
    if trajectory.first().is_some_and(|&a| a >= level) {
        return Some(0.0);
    }
    trajectory.windows(2).enumerate().find_map(|(k, w)| {
        (w[0] < level && w[1] >= level).then(|| (k as f64 + (level - w[0]) / (w[1] - w[0])) * dt)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::items::ItemPropertySet;
    use crate::linalg::svd;

    #[test]
    fn four_item_singular_values() {
        let s = svd(&ItemPropertySet::four_items().targets).singular_values;
        // Jacobi SVD is accurate to a few ε·‖Y‖_F ≈ 1e-15.
        for (got, want) in s.iter().zip([7f64.sqrt(), 3f64.sqrt(), 1.0, 1.0]) {
            assert!((got - want).abs() < 1e-12, "{s:?}");
        }
    }

    #[test]
    fn tree_spectrum_matches_formula_and_svd() {
        let levels = tree_spectrum(2, 3);
        let want = [15f64.sqrt(), 7f64.sqrt(), 3f64.sqrt(), 1.0];
        let mult = [1, 1, 2, 4];
        for ((l, w), m) in levels.iter().zip(want).zip(mult) {
            assert!((l.value - w).abs() < 1e-14);
            assert_eq!(l.multiplicity, m);
        }
        // The formula against the actual SVD, also for B = 3, D = 2.
        for (b, d) in [(2, 3), (3, 2), (2, 4)] {
            let s = svd(&ItemPropertySet::tree(b, d).unwrap().targets).singular_values;
            let formula = expand_spectrum(&tree_spectrum(b, d));
            assert_eq!(s.len(), formula.len());
            for (got, want) in s.iter().zip(&formula) {
                assert!(
                    (got - want).abs() < 1e-12,
                    "B={b} D={d}: {s:?} vs {formula:?}"
                );
            }
        }
    }

    #[test]
    fn diffusion_spectrum_matches_spec() {
        let levels = diffusion_spectrum(2, 3, 0.15);
        // §F1's four decimals: |error| ≤ 5e-5 from rounding.
        let want = [2.4408, 1.4996, 1.0098, 0.5100];
        let mult = [1, 1, 2, 4];
        for ((l, w), m) in levels.iter().zip(want).zip(mult) {
            assert!((l.value - w).abs() <= 5e-5, "{} vs {w}", l.value);
            assert_eq!(l.multiplicity, m);
        }
        // ε = 0: every feature is constant over the leaves, so all variance is the root's:
        // λ_root = B^D, every split 0.
        let levels = diffusion_spectrum(3, 2, 0.0);
        assert!((levels[0].value - 9.0).abs() < 1e-12);
        assert!(levels[1..].iter().all(|l| l.value.abs() < 1e-12));
        // ε = 1/2: independent leaves, E[YᵀY]/N_f = I.
        assert!(diffusion_spectrum(2, 3, 0.5)
            .iter()
            .all(|l| (l.value - 1.0).abs() < 1e-12));
    }

    #[test]
    fn s1_half_times() {
        // §F1 S1: τ = 400, a₀ = 1e-4; ✓ values given to 0.1 step.
        let tau = 400.0;
        for (s, want) in [(7f64.sqrt(), 769.8), (3f64.sqrt(), 1126.9), (1.0, 1842.0)] {
            let t = half_learning_time(s, 1e-4, tau);
            assert!((t - want).abs() < 0.05, "s = {s}: {t} vs {want}");
            // The closed form a(t) passes through s/2 at t½.
            assert!((balanced_mode_strength(s, 1e-4, tau, t) - s / 2.0).abs() < 1e-12);
        }
        assert!((balanced_mode_strength(2.0, 1e-4, tau, 0.0) - 1e-4).abs() < 1e-18);
        assert!((balanced_mode_strength(2.0, 1e-4, tau, 1e6) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn shallow_control() {
        let lr = 0.0025;
        let t = shallow_half_time(lr);
        // ln 2/(−ln(1−λ)) = τ ln 2 · (1 − λ/2 + O(λ²)): 276.91 vs τ ln 2 = 277.26.
        assert!((t - 400.0 * std::f64::consts::LN_2).abs() < 0.5);
        for s in [7f64.sqrt(), 1.0] {
            assert!((shallow_mode_strength(s, lr, t) - s / 2.0).abs() < 1e-12);
        }
    }

    #[test]
    fn staircase() {
        assert_eq!(staircase_loss(&[2.0, 1.0], &[2.0]), 0.5);
        assert_eq!(staircase_loss(&[2.0, 1.0], &[1.0, 1.0]), 0.5);
    }

    #[test]
    fn rk4_chain_reproduces_closed_forms() {
        let (s, a0, tau) = (3f64.sqrt(), 1e-4, 400.0);
        // Depth 2: RK4 with dt = 1 (≈ τ/(230·s·2)) against the logistic closed form; RK4's O(dt⁴)
        // error on rates of order 2s/τ ≈ 1e-2 per step is below 1e-8 relative.
        let traj = chain_mode_trajectory(s, a0, tau, 2, 1.0, 3000);
        for (t, &a) in traj.iter().enumerate().step_by(100) {
            let exact = balanced_mode_strength(s, a0, tau, t as f64);
            assert!((a - exact).abs() < 1e-7 * s, "t = {t}: {a} vs {exact}");
        }
        let t_half = crossing_time(&traj, 1.0, s / 2.0).unwrap();
        // Linear interpolation on a sigmoid sampled every step: error ≤ dt²·max|a″|/(8·a′) ≈ 1e-2.
        assert!((t_half - half_learning_time(s, a0, tau)).abs() < 0.05);
        // Depth 1: τ da/dt = s − a, a = s − (s − a₀)e^{−t/τ}.
        let traj = chain_mode_trajectory(s, a0, tau, 1, 1.0, 1000);
        let exact = s - (s - a0) * (-1000.0f64 / tau).exp();
        assert!((traj[1000] - exact).abs() < 1e-9);
        // Depth 3 is sharper: from the same a₀ = 0.01 (s = 1) its 10%→90% transition is shorter
        // (∫da/(3a^{4/3}(1−a)) = 2.01τ vs ln 81/2 = 2.20τ) although it starts later (t½ = 3.77τ vs
        // 2.30τ). RK4 at dt = τ/800 resolves both to far better than that 9% gap.
        let measure = |depth| {
            let t = chain_mode_trajectory(1.0, 1e-2, tau, depth, 0.5, 8_000);
            let at = |level| crossing_time(&t, 0.5, level).unwrap() / tau;
            (at(0.9) - at(0.1), at(0.5))
        };
        let ((w2, h2), (w3, h3)) = (measure(2), measure(3));
        assert!(
            (w2 - 2.1972).abs() < 1e-3 && (w3 - 2.0094).abs() < 1e-3,
            "{w2} {w3}"
        );
        assert!(
            (h2 - 2.2976).abs() < 1e-3 && (h3 - 3.7680).abs() < 1e-3,
            "{h2} {h3}"
        );
    }
}
