//! Metrics of an attention head against planted concepts (followups.md §F2). Pure functions on f64.
//!
//! They answer one question: are the singular vectors of the head's query–key matrix W_QK (d×d,
//! row-major, s = xᵀ W_QK y) the planted concepts (u_k, v_k)? Strengths and the planted share need no
//! decomposition; the subspace and alignment metrics use the SVD of [`crate::linalg`]. The same
//! functions apply to an OV matrix W_O W_V against a planted value→output map. Nothing here trains or
//! draws random numbers.

use crate::data::pairs::PlantedConcepts;
use crate::linalg;

/// Concept strengths a_k = u_kᵀ W v_k, \[r\]. `w` is [d, d].
pub fn concept_strengths(w: &[f64], concepts: &PlantedConcepts) -> Vec<f64> {
    let d = concepts.d;
    (0..concepts.rank())
        .map(|k| {
            let (u, v) = (concepts.u(k), concepts.v(k));
            (0..d)
                .map(|a| u[a] * (0..d).map(|b| w[a * d + b] * v[b]).sum::<f64>())
                .sum()
        })
        .collect()
}

/// Share of ‖W‖²_F inside the planted subspace: ‖P_U W P_V‖²_F / ‖W‖²_F, with P_U = Σ_k u_k u_kᵀ and
/// P_V = Σ_k v_k v_kᵀ. Since {u_k}, {v_k} are orthonormal, ‖P_U W P_V‖_F = ‖Uᵀ W V‖_F (an r×r
/// matrix). In [0, 1]; 0 for W = 0.
pub fn planted_share(w: &[f64], concepts: &PlantedConcepts) -> f64 {
    let d = concepts.d;
    let r = concepts.rank();
    let total: f64 = w.iter().map(|x| x * x).sum();
    if total == 0.0 {
        return 0.0;
    }
    // W V: [d, r], then Uᵀ (W V): [r, r].
    let wv: Vec<f64> = (0..d * r)
        .map(|i| {
            let (a, l) = (i / r, i % r);
            (0..d).map(|b| w[a * d + b] * concepts.v(l)[b]).sum()
        })
        .collect();
    let mut inside = 0.0;
    for k in 0..r {
        for l in 0..r {
            let c: f64 = (0..d).map(|a| concepts.u(k)[a] * wv[a * r + l]).sum();
            inside += c * c;
        }
    }
    inside / total
}

/// Nuclear norm ‖W‖_* = Σ_i σ_i.
pub fn nuclear_norm(singular_values: &[f64]) -> f64 {
    singular_values.iter().map(|s| s.abs()).sum()
}

/// Effective rank (Roy & Vetterli 2007): exp(H(p)) with p_i = σ_i / Σ_j σ_j and
/// H(p) = −Σ_i p_i ln p_i (0 ln 0 = 0). It is k for k equal non-zero singular values and between 1 and
/// rank(W) otherwise; 0 for W = 0.
pub fn effective_rank(singular_values: &[f64]) -> f64 {
    let total = nuclear_norm(singular_values);
    if total == 0.0 {
        return 0.0;
    }
    let entropy: f64 = singular_values
        .iter()
        .map(|s| s.abs() / total)
        .filter(|&p| p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    entropy.exp()
}

/// Singular values of W ([d, d], row-major), decreasing.
pub fn singular_values(w: &[f64], d: usize) -> Vec<f64> {
    linalg::svd(&linalg::Matrix::from_row_major(d, d, w.to_vec())).singular_values
}

/// Principal angles (radians, increasing) between the top-r singular subspaces of W and the planted
/// ones: `left` against span{u_k}, `right` against span{v_k}, r = number of concepts. All zero when
/// W's top-r singular vectors span exactly the planted subspaces.
#[derive(Clone, Debug, PartialEq)]
pub struct SubspaceAngles {
    /// Query side: top-r left singular subspace vs span{u_k}, \[r\].
    pub left: Vec<f64>,
    /// Key side: top-r right singular subspace vs span{v_k}, \[r\].
    pub right: Vec<f64>,
}

/// [`SubspaceAngles`] of W ([d, d]) against `concepts`. Subspaces, not vectors: well defined even when
/// singular values repeat.
pub fn subspace_angles(w: &[f64], concepts: &PlantedConcepts) -> SubspaceAngles {
    let (d, r) = (concepts.d, concepts.rank());
    let svd = linalg::svd(&linalg::Matrix::from_row_major(d, d, w.to_vec()));
    let planted = |rows: &[f64]| linalg::Matrix::from_fn(d, r, |a, k| rows[k * d + a]);
    let angles = |basis: &linalg::Matrix, rows: &[f64]| -> Vec<f64> {
        let mut a: Vec<f64> =
            linalg::principal_angle_cosines(&basis.leading_columns(r), &planted(rows))
                .into_iter()
                .map(f64::acos)
                .collect();
        a.sort_by(f64::total_cmp);
        a
    };
    SubspaceAngles {
        left: angles(&svd.u, &concepts.left),
        right: angles(&svd.v, &concepts.right),
    }
}

/// How well one planted concept matches one singular pair of W.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConceptAlignment {
    /// Index α of the singular pair (u_α, v_α) of W chosen for the concept (decreasing σ order).
    pub singular_index: usize,
    /// |cos| between u_k and the left singular vector α.
    pub left: f64,
    /// |cos| between v_k and the right singular vector α.
    pub right: f64,
}

/// For each concept k, the singular pair α of W that maximises |u_kᵀ ũ_α|·|v_kᵀ ṽ_α|, with both
/// |cos|. Individual singular vectors are only defined for distinct singular values: where W has
/// repeated ones (e.g. equal strengths) read [`subspace_angles`] instead.
pub fn concept_alignment(w: &[f64], concepts: &PlantedConcepts) -> Vec<ConceptAlignment> {
    let d = concepts.d;
    let svd = linalg::svd(&linalg::Matrix::from_row_major(d, d, w.to_vec()));
    let (u, v) = (svd.u.columns(), svd.v.columns());
    (0..concepts.rank())
        .map(|k| {
            let mut best = ConceptAlignment {
                singular_index: 0,
                left: 0.0,
                right: 0.0,
            };
            for alpha in 0..u.len() {
                let left = linalg::dot(concepts.u(k), &u[alpha]).abs();
                let right = linalg::dot(concepts.v(k), &v[alpha]).abs();
                if left * right > best.left * best.right {
                    best = ConceptAlignment {
                        singular_index: alpha,
                        left,
                        right,
                    };
                }
            }
            best
        })
        .collect()
}

/// Top-1 accuracy of each relation: the fraction of its examples with `correct[i]`, where
/// `relation[i]` ∈ [0, m) names example i's relation. NaN for a relation without examples.
pub fn top1_accuracy_per_relation(correct: &[bool], relation: &[usize], m: usize) -> Vec<f64> {
    let mut hits = vec![0usize; m];
    let mut counts = vec![0usize; m];
    for (&c, &r) in correct.iter().zip(relation) {
        counts[r] += 1;
        hits[r] += c as usize;
    }
    hits.iter()
        .zip(&counts)
        .map(|(&h, &n)| {
            if n == 0 {
                f64::NAN
            } else {
                h as f64 / n as f64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::StreamRng;

    /// Three orthonormal concepts in d = 6 plus one extra orthonormal direction on each side (the
    /// last column of a 6×4 random orthonormal matrix), for off-plane components.
    fn setup() -> (PlantedConcepts, Vec<f64>, Vec<f64>) {
        let mut rng = StreamRng::seed_from_u64(21);
        let q_left = linalg::random_orthonormal(&mut rng, 6, 4);
        let q_right = linalg::random_orthonormal(&mut rng, 6, 4);
        let rows = |q: &linalg::Matrix, cols: std::ops::Range<usize>| -> Vec<f64> {
            cols.flat_map(|k| q.column(k)).collect()
        };
        let concepts = PlantedConcepts {
            d: 6,
            strengths: vec![3.0, 2.0, 1.0],
            left: rows(&q_left, 0..3),
            right: rows(&q_right, 0..3),
        };
        (concepts, q_left.column(3), q_right.column(3))
    }

    fn outer_add(w: &mut [f64], c: f64, u: &[f64], v: &[f64]) {
        let d = u.len();
        for a in 0..d {
            for b in 0..d {
                w[a * d + b] += c * u[a] * v[b];
            }
        }
    }

    // Tolerances: every quantity below is a few O(d²) sums of products of exact-to-1e-16 inputs, or
    // a Jacobi SVD (backward error ~1e-14, linalg.rs); 1e-9 leaves a wide margin. Angles from acos
    // near cos = 1 lose half the digits (acos(1 − δ) ≈ √(2δ)), hence 1e-6 for zero angles.

    #[test]
    fn planted_matrix_scores_perfectly() {
        let (c, _, _) = setup();
        let m = c.matrix();
        let a = concept_strengths(&m, &c);
        assert!(a
            .iter()
            .zip(&c.strengths)
            .all(|(x, s)| (x - s).abs() < 1e-9));
        assert!((planted_share(&m, &c) - 1.0).abs() < 1e-9);
        let angles = subspace_angles(&m, &c);
        assert!(angles.left.iter().chain(&angles.right).all(|&t| t < 1e-6));
        for (k, al) in concept_alignment(&m, &c).iter().enumerate() {
            assert_eq!(al.singular_index, k, "σ decreasing = s decreasing");
            assert!(al.left > 1.0 - 1e-9 && al.right > 1.0 - 1e-9);
        }
        let sv = singular_values(&m, 6);
        assert!((nuclear_norm(&sv) - 6.0).abs() < 1e-9);
        // p = (1/2, 1/3, 1/6): exp(½ ln 2 + ⅓ ln 3 + ⅙ ln 6) = 2.7495…
        let expected = (0.5 * 2f64.ln() + 3f64.ln() / 3.0 + 6f64.ln() / 6.0).exp();
        assert!((effective_rank(&sv) - expected).abs() < 1e-9);
    }

    #[test]
    fn off_plane_mass_lowers_the_share_but_not_the_strengths() {
        let (c, u_off, v_off) = setup();
        let mut w = c.matrix();
        outer_add(&mut w, 2.5, &u_off, &v_off);
        // ‖W‖² = 9 + 4 + 1 + 6.25; inside the planted subspace: 14.
        assert!((planted_share(&w, &c) - 14.0 / 20.25).abs() < 1e-9);
        let a = concept_strengths(&w, &c);
        assert!(a
            .iter()
            .zip(&c.strengths)
            .all(|(x, s)| (x - s).abs() < 1e-9));
        // σ = (3, 2.5, 2, 1): the top-3 subspaces hold concepts 1 and 2 and the off-plane direction,
        // so the principal angles to the planted ones are (0, 0, π/2) on each side.
        let angles = subspace_angles(&w, &c);
        for side in [&angles.left, &angles.right] {
            assert!(side[0] < 1e-6 && side[1] < 1e-6, "{side:?}");
            assert!(
                (side[2] - std::f64::consts::FRAC_PI_2).abs() < 1e-9,
                "{side:?}"
            );
        }
        let al = concept_alignment(&w, &c);
        assert_eq!(
            al.iter().map(|a| a.singular_index).collect::<Vec<_>>(),
            [0, 2, 3]
        );
    }

    #[test]
    fn a_tilted_key_direction_gives_its_angle() {
        let (mut c, _, v_off) = setup();
        c.strengths.truncate(1);
        c.left.truncate(6);
        c.right.truncate(6);
        let theta = 0.3f64;
        let tilted: Vec<f64> = c
            .v(0)
            .iter()
            .zip(&v_off)
            .map(|(v, o)| theta.cos() * v + theta.sin() * o)
            .collect();
        let mut w = vec![0.0; 36];
        outer_add(&mut w, 2.0, c.u(0), &tilted);
        let angles = subspace_angles(&w, &c);
        assert!(angles.left[0] < 1e-6);
        assert!((angles.right[0] - theta).abs() < 1e-9);
        let al = concept_alignment(&w, &c)[0];
        assert!((al.right - theta.cos()).abs() < 1e-9 && (al.left - 1.0).abs() < 1e-9);
        assert!((concept_strengths(&w, &c)[0] - 2.0 * theta.cos()).abs() < 1e-9);
    }

    #[test]
    fn effective_rank_and_nuclear_norm_of_simple_spectra() {
        assert!((effective_rank(&[1.0, 1.0, 1.0, 1.0]) - 4.0).abs() < 1e-12);
        assert!((effective_rank(&[5.0, 0.0, 0.0]) - 1.0).abs() < 1e-12);
        assert_eq!(effective_rank(&[0.0, 0.0]), 0.0);
        assert_eq!(nuclear_norm(&[3.0, 2.0, 1.0]), 6.0);
        assert_eq!(planted_share(&[0.0; 36], &setup().0), 0.0);
    }

    #[test]
    fn accuracy_per_relation_counts_hits() {
        let acc =
            top1_accuracy_per_relation(&[true, false, true, true, false], &[0, 0, 1, 1, 2], 4);
        assert_eq!(&acc[..3], &[0.5, 1.0, 0.0]);
        assert!(acc[3].is_nan());
    }
}
