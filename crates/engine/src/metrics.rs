//! Geometry metrics of an embedding (experiments.md §3). Pure functions on f64.
//!
//! Every function takes the embedding as feature-major rows: `embedding[i*m..(i+1)*m]` is W_i, the
//! column of the paper's m×n matrix W that embeds feature i.

/// ‖W_i‖ for every feature: ≈ 1 represented, ≈ 0 not learned.
pub fn feature_norms(embedding: &[f64], n: usize, m: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            row(embedding, i, m)
                .iter()
                .map(|w| w * w)
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

/// WᵀW, n×n row-major: (WᵀW)_ij = W_i · W_j.
pub fn gram(embedding: &[f64], n: usize, m: usize) -> Vec<f64> {
    let mut g = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let d = dot(row(embedding, i, m), row(embedding, j, m));
            g[i * n + j] = d;
            g[j * n + i] = d;
        }
    }
    g
}

/// Superposition (interference) of each feature: s_i = Σ_{j≠i} (Ŵ_i · W_j)², Ŵ_i = W_i/‖W_i‖;
/// 0 for a feature of zero norm.
pub fn superposition(embedding: &[f64], n: usize, m: usize) -> Vec<f64> {
    let norms = feature_norms(embedding, n, m);
    (0..n)
        .map(|i| {
            if norms[i] == 0.0 {
                return 0.0;
            }
            (0..n)
                .filter(|&j| j != i)
                .map(|j| (dot(row(embedding, i, m), row(embedding, j, m)) / norms[i]).powi(2))
                .sum()
        })
        .collect()
}

/// Dimensions per feature D* = m / ‖W‖²_F (features per dimension is 1/D*). Infinite for W = 0.
pub fn dimensions_per_feature(embedding: &[f64], m: usize) -> f64 {
    m as f64 / embedding.iter().map(|w| w * w).sum::<f64>()
}

/// Feature dimensionality D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)² (j = i included); 0 for ‖W_i‖ = 0.
///
/// Computed as ‖W_i‖² / (Ŵ_iᵀ (W Wᵀ) Ŵ_i) with the m×m matrix W Wᵀ formed once: O(n m²).
pub fn feature_dimensionality(embedding: &[f64], n: usize, m: usize) -> Vec<f64> {
    // W Wᵀ = Σ_i W_i W_iᵀ (m×m).
    let mut outer = vec![0.0; m * m];
    for i in 0..n {
        let w = row(embedding, i, m);
        for a in 0..m {
            for b in 0..m {
                outer[a * m + b] += w[a] * w[b];
            }
        }
    }
    (0..n)
        .map(|i| {
            let w = row(embedding, i, m);
            let norm2 = dot(w, w);
            if norm2 == 0.0 {
                return 0.0;
            }
            // Ŵᵀ (W Wᵀ) Ŵ = wᵀ (W Wᵀ) w / ‖w‖².
            let mut quadratic = 0.0;
            for a in 0..m {
                quadratic += w[a] * dot(&outer[a * m..(a + 1) * m], w);
            }
            norm2 * norm2 / quadratic
        })
        .collect()
}

/// Number of features with ‖W_i‖ above `threshold` (0.5 is used throughout: learned features sit
/// near 1, dropped ones near 0).
pub fn represented_count(norms: &[f64], threshold: f64) -> usize {
    norms.iter().filter(|&&v| v > threshold).count()
}

fn row(embedding: &[f64], i: usize, m: usize) -> &[f64] {
    &embedding[i * m..(i + 1) * m]
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Unit vectors of standard geometries, feature-major, for tests and for the figures' reference lines.
pub mod geometries {
    use std::f64::consts::TAU;

    /// k unit vectors evenly spaced on a circle (m = 2): k = 2 digon, 3 triangle, 4 square, 5 pentagon.
    pub fn regular_polygon(k: usize) -> Vec<f64> {
        (0..k)
            .flat_map(|i| {
                let a = TAU * i as f64 / k as f64;
                [a.cos(), a.sin()]
            })
            .collect()
    }

    /// Regular tetrahedron in 3-D (four unit vectors, pairwise cos = −⅓).
    pub fn tetrahedron() -> Vec<f64> {
        let s = 1.0 / 3f64.sqrt();
        vec![s, s, s, s, -s, -s, -s, s, -s, -s, -s, s]
    }

    /// Regular octahedron in 3-D (±e₁, ±e₂, ±e₃).
    pub fn octahedron() -> Vec<f64> {
        let mut v = Vec::new();
        for axis in 0..3 {
            for sign in [1.0, -1.0] {
                let mut e = [0.0; 3];
                e[axis] = sign;
                v.extend_from_slice(&e);
            }
        }
        v
    }

    /// The tight square antiprism in 3-D: 8 unit vectors on two squares at heights ±h, the second
    /// rotated by 45°, with h = 1/√3 so that Σ W_i W_iᵀ = (8/3) I (a tight frame).
    pub fn square_antiprism() -> Vec<f64> {
        let h = 1.0 / 3f64.sqrt();
        let r = (1.0 - h * h).sqrt();
        let mut v = Vec::new();
        for k in 0..4 {
            let a = TAU * k as f64 / 4.0;
            v.extend_from_slice(&[r * a.cos(), r * a.sin(), h]);
            let b = a + TAU / 8.0;
            v.extend_from_slice(&[r * b.cos(), r * b.sin(), -h]);
        }
        v
    }

    /// Regular d-simplex: d+1 unit vectors in d dimensions with pairwise cos = −1/d.
    pub fn simplex(d: usize) -> Vec<f64> {
        // Centre the standard basis of ℝ^{d+1} and express it in an orthonormal basis of the
        // hyperplane Σx = 0 (Gram–Schmidt), then normalise.
        let k = d + 1;
        let centred: Vec<Vec<f64>> = (0..k)
            .map(|i| {
                (0..k)
                    .map(|j| {
                        if i == j {
                            1.0 - 1.0 / k as f64
                        } else {
                            -1.0 / k as f64
                        }
                    })
                    .collect()
            })
            .collect();
        let mut basis: Vec<Vec<f64>> = Vec::new();
        for v in &centred {
            let mut u = v.clone();
            for b in &basis {
                let p: f64 = u.iter().zip(b).map(|(x, y)| x * y).sum();
                for (x, y) in u.iter_mut().zip(b) {
                    *x -= p * y;
                }
            }
            let norm = u.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 1e-9 && basis.len() < d {
                basis.push(u.iter().map(|x| x / norm).collect());
            }
        }
        centred
            .iter()
            .flat_map(|v| {
                let coords: Vec<f64> = basis
                    .iter()
                    .map(|b| v.iter().zip(b).map(|(x, y)| x * y).sum())
                    .collect();
                let norm = coords.iter().map(|x| x * x).sum::<f64>().sqrt();
                coords.into_iter().map(move |x| x / norm)
            })
            .collect()
    }

    /// Triangular bipyramid: a triangle in the plane z = 0 and the two poles ±e₃.
    pub fn triangular_bipyramid() -> Vec<f64> {
        let mut v = Vec::new();
        for k in 0..3 {
            let a = TAU * k as f64 / 3.0;
            v.extend_from_slice(&[a.cos(), a.sin(), 0.0]);
        }
        v.extend_from_slice(&[0.0, 0.0, 1.0, 0.0, 0.0, -1.0]);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::geometries::*;
    use super::*;

    fn assert_all(d: &[f64], expected: f64) {
        for &x in d {
            assert!((x - expected).abs() < 1e-12, "{d:?} vs {expected}");
        }
    }

    #[test]
    fn feature_dimensionality_of_the_paper_geometries() {
        assert_all(&feature_dimensionality(&regular_polygon(2), 2, 2), 0.5); // antipodal pair ½
        assert_all(
            &feature_dimensionality(&regular_polygon(3), 3, 2),
            2.0 / 3.0,
        ); // triangle ⅔
        assert_all(&feature_dimensionality(&regular_polygon(4), 4, 2), 0.5); // square ½
        assert_all(&feature_dimensionality(&regular_polygon(5), 5, 2), 0.4); // pentagon ⅖
        assert_all(
            &feature_dimensionality(&regular_polygon(6), 6, 2),
            1.0 / 3.0,
        ); // hexagon ⅓
        assert_all(&feature_dimensionality(&tetrahedron(), 4, 3), 0.75); // tetrahedron ¾
        assert_all(&feature_dimensionality(&octahedron(), 6, 3), 0.5); // octahedron ½
        assert_all(&feature_dimensionality(&square_antiprism(), 8, 3), 0.375); // square antiprism ⅜
        for d in 2..6 {
            assert_all(
                &feature_dimensionality(&simplex(d), d + 1, d),
                d as f64 / (d as f64 + 1.0),
            );
        }
        let bipyramid = feature_dimensionality(&triangular_bipyramid(), 5, 3);
        for (x, e) in bipyramid
            .iter()
            .zip([2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 0.5, 0.5])
        {
            assert!((x - e).abs() < 1e-12, "{bipyramid:?}");
        }
    }

    #[test]
    fn dimensionality_matches_the_definition_and_handles_zero_columns() {
        // Definition: D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)², on an irregular embedding with a zero column.
        let w = vec![1.0, 0.2, -0.3, 0.8, 0.0, 0.0, 0.5, -0.5];
        let d = feature_dimensionality(&w, 4, 2);
        assert_eq!(d[2], 0.0);
        let g = gram(&w, 4, 2);
        for i in [0usize, 1, 3] {
            let norm2 = g[i * 4 + i];
            let denominator: f64 = (0..4).map(|j| g[i * 4 + j].powi(2) / norm2).sum();
            assert!((d[i] - norm2 / denominator).abs() < 1e-12);
        }
        // Σ_i D_i ≤ rank W.
        assert!(d.iter().sum::<f64>() <= 2.0 + 1e-12);
    }

    #[test]
    fn superposition_norms_and_dimensions_per_feature() {
        // Two orthogonal features and one at zero: no interference, D* = m / ‖W‖²_F = 2/2.
        let w = vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        assert_eq!(superposition(&w, 3, 2), vec![0.0, 0.0, 0.0]);
        assert_eq!(feature_norms(&w, 3, 2), vec![1.0, 1.0, 0.0]);
        assert_eq!(dimensions_per_feature(&w, 2), 1.0);
        assert_eq!(represented_count(&feature_norms(&w, 3, 2), 0.5), 2);
        // Antipodal pair: each sees the other fully, s = 1; D* = 1/2.
        let pair = regular_polygon(2);
        for s in superposition(&pair, 2, 2) {
            assert!((s - 1.0).abs() < 1e-12);
        }
        // Pentagon: D* = 2/5 and s_i = Σ_{j≠i} cos²(2πk/5) = 2(cos²72° + cos²144°) = 3/2.
        let pentagon = regular_polygon(5);
        assert!((dimensions_per_feature(&pentagon, 2) - 0.4).abs() < 1e-12);
        for s in superposition(&pentagon, 5, 2) {
            assert!((s - 1.5).abs() < 1e-12);
        }
    }
}
