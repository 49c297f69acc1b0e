//! Closed forms of experiments.md §3–§4 for uniform-value sparse features (values U[0, 1] at density p).

/// E\[x\] = p/2 of a feature at density p.
pub fn feature_mean(density: f64) -> f64 {
    density / 2.0
}

/// Var\[x\] = σ² = p/3 − p²/4 of a feature at density p.
pub fn feature_variance(density: f64) -> f64 {
    density / 3.0 - density * density / 4.0
}

/// Minimal expected loss of the linear model per example and per feature (the engine's loss is a
/// mean over features): σ² · Σ_{i>m} I_(i) / n, importances sorted decreasing. The optimum keeps the
/// m most important features (WᵀW = projector on them) and sets b_i = p/2 for the dropped ones.
pub fn linear_optimum_loss(importance: &[f64], density: f64, n_hidden: usize) -> f64 {
    let mut sorted = importance.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let dropped: f64 = sorted.iter().skip(n_hidden).sum();
    feature_variance(density) * dropped / importance.len() as f64
}

/// Exact expected loss (per example, mean over features) of a *linear* model x̂ = G x + b,
/// G = WᵀW, on iid features of density p: with A = G − I, μ = p/2, σ² = p/3 − p²/4,
/// E\[L\] = (1/n) Σ_i I_i [σ² Σ_j A_ij² + (μ Σ_j A_ij + b_i)²].
/// `gram` is G (n×n row-major), `bias` is b.
pub fn linear_expected_loss(gram: &[f64], bias: &[f64], importance: &[f64], density: f64) -> f64 {
    let n = bias.len();
    let (mean, variance) = (feature_mean(density), feature_variance(density));
    let mut total = 0.0;
    for i in 0..n {
        let (mut squares, mut sum) = (0.0, 0.0);
        for j in 0..n {
            let a = gram[i * n + j] - if i == j { 1.0 } else { 0.0 };
            squares += a * a;
            sum += a;
        }
        total += importance[i] * (variance * squares + (mean * sum + bias[i]).powi(2));
    }
    total / n as f64
}

/// Solutions of the n = 2, m = 1 model with importances (1, r).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PhaseTwoToOne {
    /// The extra (second) feature is not learned; feature 1 has the dimension.
    ExtraNotLearned,
    /// The extra feature has the dimension to itself; feature 1 is dropped.
    ExtraDedicated,
    /// Both features share the dimension as an antipodal pair, W = [1, −1]: superposition.
    Antipodal,
}

impl PhaseTwoToOne {
    /// All phases, in legend order.
    pub const ALL: [PhaseTwoToOne; 3] = [
        PhaseTwoToOne::ExtraNotLearned,
        PhaseTwoToOne::ExtraDedicated,
        PhaseTwoToOne::Antipodal,
    ];

    /// Short label for figures and claims.
    pub fn label(self) -> &'static str {
        match self {
            PhaseTwoToOne::ExtraNotLearned => "extra not learned",
            PhaseTwoToOne::ExtraDedicated => "extra dedicated",
            PhaseTwoToOne::Antipodal => "antipodal (superposition)",
        }
    }
}

/// Expected loss per example (summed over features) of the three n=2 m=1 candidates, in the order of
/// [`PhaseTwoToOne::ALL`]: r(p/3 − p²/4), p/3 − p²/4, (1 + r)p²/6.
pub fn two_to_one_losses(density: f64, extra_importance: f64) -> [f64; 3] {
    let variance = feature_variance(density);
    [
        extra_importance * variance,
        variance,
        (1.0 + extra_importance) * density * density / 6.0,
    ]
}

/// The phase of lowest expected loss at (p, r).
pub fn two_to_one_phase(density: f64, extra_importance: f64) -> PhaseTwoToOne {
    argmin(
        &two_to_one_losses(density, extra_importance),
        &PhaseTwoToOne::ALL,
    )
}

/// Boundary between "extra not learned" and "antipodal": r = 2p/(4 − 5p) (p < 4/7).
pub fn two_to_one_boundary_not_learned(density: f64) -> f64 {
    2.0 * density / (4.0 - 5.0 * density)
}

/// Boundary between "extra dedicated" and "antipodal": r = (4 − 5p)/(2p) (p < 4/7).
pub fn two_to_one_boundary_dedicated(density: f64) -> f64 {
    (4.0 - 5.0 * density) / (2.0 * density)
}

/// Density of the triple point (r = 1): no superposition for p > 4/7.
pub const TWO_TO_ONE_TRIPLE_POINT: f64 = 4.0 / 7.0;

/// Solutions of the n = 3, m = 2 model with importances (1, 1, r), the third feature the extra one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PhaseThreeToTwo {
    /// The extra feature is dropped; the other two have a dimension each.
    ExtraNotLearned,
    /// One of the two others is dropped; the extra has a dimension.
    ExtraDedicatedOtherDropped,
    /// The extra feature forms an antipodal pair with another; the third has a dimension.
    ExtraAntipodal,
    /// The other two form an antipodal pair; the extra has a dimension to itself.
    OthersAntipodal,
}

impl PhaseThreeToTwo {
    /// All phases, in legend order.
    pub const ALL: [PhaseThreeToTwo; 4] = [
        PhaseThreeToTwo::ExtraNotLearned,
        PhaseThreeToTwo::ExtraDedicatedOtherDropped,
        PhaseThreeToTwo::ExtraAntipodal,
        PhaseThreeToTwo::OthersAntipodal,
    ];

    /// Short label for figures and claims.
    pub fn label(self) -> &'static str {
        match self {
            PhaseThreeToTwo::ExtraNotLearned => "extra not learned",
            PhaseThreeToTwo::ExtraDedicatedOtherDropped => "extra dedicated, another dropped",
            PhaseThreeToTwo::ExtraAntipodal => "extra antipodal with another",
            PhaseThreeToTwo::OthersAntipodal => "others antipodal, extra dedicated",
        }
    }
}

/// Expected losses of the four n=3 m=2 candidates, in the order of [`PhaseThreeToTwo::ALL`]:
/// r(p/3 − p²/4), p/3 − p²/4, (1 + r)p²/6, p²/3.
pub fn three_to_two_losses(density: f64, extra_importance: f64) -> [f64; 4] {
    let variance = feature_variance(density);
    let p2 = density * density;
    [
        extra_importance * variance,
        variance,
        (1.0 + extra_importance) * p2 / 6.0,
        p2 / 3.0,
    ]
}

/// The phase of lowest expected loss at (p, r).
pub fn three_to_two_phase(density: f64, extra_importance: f64) -> PhaseThreeToTwo {
    argmin(
        &three_to_two_losses(density, extra_importance),
        &PhaseThreeToTwo::ALL,
    )
}

fn argmin<P: Copy, const N: usize>(losses: &[f64; N], phases: &[P; N]) -> P {
    let mut best = 0;
    for k in 1..N {
        if losses[k] < losses[best] {
            best = k;
        }
    }
    phases[best]
}

/// Feature dimensionalities of the tegum-factor polytopes the paper highlights (§3), with names, for
/// the horizontal lines of the D* figure and the E6 claim.
pub const POLYTOPE_FRACTIONS: [(&str, f64); 6] = [
    ("tetrahedron", 0.75),
    ("triangle", 2.0 / 3.0),
    ("digon / square / octahedron", 0.5),
    ("pentagon", 0.4),
    ("square antiprism", 0.375),
    ("hexagon", 1.0 / 3.0),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_of_sparse_uniform_features() {
        assert_eq!(feature_mean(0.5), 0.25);
        assert!((feature_variance(1.0) - 1.0 / 12.0).abs() < 1e-15);
    }

    #[test]
    fn linear_optimum_sums_the_dropped_importances() {
        // n = 4, m = 2, importances (1, .5, .25, .125) shuffled: dropped .25 + .125, σ² = 1/12 at p = 1.
        let l = linear_optimum_loss(&[0.25, 1.0, 0.125, 0.5], 1.0, 2);
        assert!((l - (0.375 / 12.0) / 4.0).abs() < 1e-15);
    }

    #[test]
    fn linear_expected_loss_at_the_optimum_is_the_closed_form() {
        // Projector on the first 2 of 4 features, b = p/2 on the dropped ones.
        let p = 0.3;
        let mut gram = vec![0.0; 16];
        gram[0] = 1.0;
        gram[5] = 1.0;
        let bias = [0.0, 0.0, p / 2.0, p / 2.0];
        let importance = [1.0, 0.8, 0.64, 0.512];
        let exact = linear_expected_loss(&gram, &bias, &importance, p);
        assert!((exact - linear_optimum_loss(&importance, p, 2)).abs() < 1e-15);
        // Any other bias is worse.
        assert!(linear_expected_loss(&gram, &[0.0, 0.0, 0.0, p / 2.0], &importance, p) > exact);
    }

    #[test]
    fn two_to_one_boundaries_are_where_losses_cross() {
        for p in [0.01, 0.05, 0.2, 0.5] {
            let r = two_to_one_boundary_not_learned(p);
            let [drop_extra, _, antipodal] = two_to_one_losses(p, r);
            assert!((drop_extra - antipodal).abs() < 1e-14 * drop_extra.max(1e-30) + 1e-18);
            let r = two_to_one_boundary_dedicated(p);
            let [_, drop_first, antipodal] = two_to_one_losses(p, r);
            assert!((drop_first - antipodal).abs() <= 1e-12 * drop_first);
        }
        // Triple point: p = 4/7, r = 1, all three equal.
        let [a, b, c] = two_to_one_losses(TWO_TO_ONE_TRIPLE_POINT, 1.0);
        assert!((a - b).abs() < 1e-15 && (b - c).abs() < 1e-15);
        // Dense: no superposition; sparse and r ≈ 1: antipodal.
        assert_eq!(two_to_one_phase(0.9, 0.5), PhaseTwoToOne::ExtraNotLearned);
        assert_eq!(two_to_one_phase(0.9, 2.0), PhaseTwoToOne::ExtraDedicated);
        assert_eq!(two_to_one_phase(0.05, 1.0), PhaseTwoToOne::Antipodal);
    }

    #[test]
    fn three_to_two_phases() {
        assert_eq!(
            three_to_two_phase(0.9, 0.5),
            PhaseThreeToTwo::ExtraNotLearned
        );
        assert_eq!(
            three_to_two_phase(0.9, 2.0),
            PhaseThreeToTwo::ExtraDedicatedOtherDropped
        );
        assert_eq!(
            three_to_two_phase(0.05, 1.0),
            PhaseThreeToTwo::ExtraAntipodal
        );
        assert_eq!(
            three_to_two_phase(0.05, 5.0),
            PhaseThreeToTwo::OthersAntipodal
        );
    }
}
