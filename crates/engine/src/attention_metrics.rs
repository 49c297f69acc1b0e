//! Metrics of an attention head against planted concepts (followups.md §F2). Pure functions on f64.
//!
//! They answer one question: are the singular vectors of the head's query–key matrix W_QK (d×d,
//! row-major, s = xᵀ W_QK y) the planted concepts (u_k, v_k)? Strengths and the planted share need no
//! decomposition; the subspace and alignment metrics use the SVD of [`crate::linalg`]. The same
//! functions apply to an OV matrix W_O W_V against a planted value→output map. Nothing here trains or
//! draws random numbers.

use crate::data::pairs::PlantedConcepts;
use crate::linalg;

/// Concept strengths a_k = u_kᵀ W v_k, [r]. `w` is [d, d].
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
