//! Small dense linear algebra in f64: a row-major [`Matrix`], products, the symmetric
//! eigendecomposition (cyclic Jacobi), the thin SVD (one-sided Jacobi), QR by Gram–Schmidt, random
//! orthonormal matrices and principal angles between subspaces.
//!
//! Why our own: the analyses of deep linear networks (mode strengths u_αᵀ W v_α, best rank-r
//! approximations, representational similarity) and of attention heads (singular vectors of W_QK,
//! subspace overlaps) need these on matrices of a few hundred rows at most, in f64, deterministically,
//! without a LAPACK dependency. Jacobi methods are short, accurate to working precision (they compute
//! small singular values to high relative accuracy) and their results do not depend on threads.
//! Cost is O(n³) per sweep with typically 6–10 sweeps: fine up to n ≈ 300, not meant for more.
//!
//! What this module deliberately does not do: f32, sparse or batched matrices, non-symmetric
//! eigenproblems, anything over a few hundred rows.
//!
//! **Conventions.** Matrices are row-major: entry (i, j) of an r×c matrix is `data[i * c + j]`.
//! Decompositions return vectors as *columns* (the paper's u_α, v_α). Eigenvalues and singular values
//! are sorted decreasing. Sign convention (see [`fix_sign`]): each singular pair (u_α, v_α) and each
//! eigenvector is flipped so that the sum of the entries of v_α (of the eigenvector) is positive, or,
//! when that sum is zero within 1e-10, so that its first entry with magnitude above 1e-10 is
//! positive. Vectors of a repeated value are an arbitrary orthonormal basis of their subspace: compare
//! subspaces (e.g. with [`principal_angle_cosines`]), never the individual vectors.

use crate::rng::StreamRng;
use std::ops::{Index, IndexMut};

/// A dense row-major matrix of f64.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    /// Row-major entries, `rows * cols` of them.
    data: Vec<f64>,
}

impl Matrix {
    /// The r×c zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// The n×n identity.
    pub fn identity(n: usize) -> Self {
        let mut m = Self::zeros(n, n);
        for i in 0..n {
            m[(i, i)] = 1.0;
        }
        m
    }

    /// A matrix from row-major entries.
    ///
    /// # Panics
    /// If `data.len() != rows * cols` (a programming error, not an input error: callers that take
    /// user data validate it first).
    pub fn from_row_major(rows: usize, cols: usize, data: Vec<f64>) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "a {rows}×{cols} matrix needs {} entries",
            rows * cols
        );
        Self { rows, cols, data }
    }

    /// A matrix whose entry (i, j) is `f(i, j)`.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> f64) -> Self {
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push(f(i, j));
            }
        }
        Self { rows, cols, data }
    }

    /// A matrix whose columns are `columns` (each of the same length `rows`).
    ///
    /// # Panics
    /// If the columns differ in length.
    pub fn from_columns(rows: usize, columns: &[Vec<f64>]) -> Self {
        assert!(columns.iter().all(|c| c.len() == rows), "ragged columns");
        Self::from_fn(rows, columns.len(), |i, j| columns[j][i])
    }

    /// The square diagonal matrix diag(values).
    pub fn diagonal(values: &[f64]) -> Self {
        let mut m = Self::zeros(values.len(), values.len());
        for (i, &v) in values.iter().enumerate() {
            m[(i, i)] = v;
        }
        m
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The row-major entries.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// The row-major entries, consuming the matrix.
    pub fn into_vec(self) -> Vec<f64> {
        self.data
    }

    /// Row i as a slice.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Column j, copied.
    pub fn column(&self, j: usize) -> Vec<f64> {
        (0..self.rows).map(|i| self[(i, j)]).collect()
    }

    /// All columns, copied (column-major view of the matrix).
    pub fn columns(&self) -> Vec<Vec<f64>> {
        (0..self.cols).map(|j| self.column(j)).collect()
    }

    /// The first `k` columns.
    pub fn leading_columns(&self, k: usize) -> Matrix {
        assert!(k <= self.cols, "asked for {k} of {} columns", self.cols);
        Matrix::from_fn(self.rows, k, |i, j| self[(i, j)])
    }

    /// Aᵀ.
    pub fn transpose(&self) -> Matrix {
        Matrix::from_fn(self.cols, self.rows, |i, j| self[(j, i)])
    }

    /// A B.
    ///
    /// # Panics
    /// If the inner dimensions differ.
    pub fn matmul(&self, other: &Matrix) -> Matrix {
        assert_eq!(
            self.cols, other.rows,
            "matmul of {}×{} by {}×{}",
            self.rows, self.cols, other.rows, other.cols
        );
        let mut out = Matrix::zeros(self.rows, other.cols);
        // i-k-j order: the inner loop runs along contiguous rows of B and of the output.
        for i in 0..self.rows {
            let out_row = &mut out.data[i * other.cols..(i + 1) * other.cols];
            for k in 0..self.cols {
                let a = self.data[i * self.cols + k];
                if a == 0.0 {
                    continue;
                }
                for (o, &b) in out_row.iter_mut().zip(other.row(k)) {
                    *o += a * b;
                }
            }
        }
        out
    }

    /// Aᵀ B, without forming Aᵀ.
    ///
    /// # Panics
    /// If the row counts differ.
    pub fn transpose_matmul(&self, other: &Matrix) -> Matrix {
        assert_eq!(self.rows, other.rows, "AᵀB needs equal row counts");
        let mut out = Matrix::zeros(self.cols, other.cols);
        for k in 0..self.rows {
            let b_row = other.row(k);
            for (i, &a) in self.row(k).iter().enumerate() {
                if a == 0.0 {
                    continue;
                }
                let out_row = &mut out.data[i * other.cols..(i + 1) * other.cols];
                for (o, &b) in out_row.iter_mut().zip(b_row) {
                    *o += a * b;
                }
            }
        }
        out
    }

    /// A x for a vector x.
    pub fn matvec(&self, x: &[f64]) -> Vec<f64> {
        assert_eq!(self.cols, x.len(), "matvec dimension");
        (0..self.rows).map(|i| dot(self.row(i), x)).collect()
    }

    /// A + B.
    pub fn add(&self, other: &Matrix) -> Matrix {
        self.zip_with(other, |a, b| a + b)
    }

    /// A − B.
    pub fn sub(&self, other: &Matrix) -> Matrix {
        self.zip_with(other, |a, b| a - b)
    }

    /// c A.
    pub fn scale(&self, c: f64) -> Matrix {
        Matrix {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|&a| c * a).collect(),
        }
    }

    /// ‖A‖_F = √(Σ a_ij²).
    pub fn frobenius_norm(&self) -> f64 {
        self.data.iter().map(|a| a * a).sum::<f64>().sqrt()
    }

    /// max |a_ij|.
    pub fn max_abs(&self) -> f64 {
        self.data.iter().fold(0.0f64, |m, a| m.max(a.abs()))
    }

    fn zip_with(&self, other: &Matrix, f: impl Fn(f64, f64) -> f64) -> Matrix {
        assert_eq!(
            (self.rows, self.cols),
            (other.rows, other.cols),
            "shape mismatch"
        );
        Matrix {
            rows: self.rows,
            cols: self.cols,
            data: self
                .data
                .iter()
                .zip(&other.data)
                .map(|(&a, &b)| f(a, b))
                .collect(),
        }
    }
}

impl Index<(usize, usize)> for Matrix {
    type Output = f64;
    #[inline]
    fn index(&self, (i, j): (usize, usize)) -> &f64 {
        debug_assert!(i < self.rows && j < self.cols);
        &self.data[i * self.cols + j]
    }
}

impl IndexMut<(usize, usize)> for Matrix {
    #[inline]
    fn index_mut(&mut self, (i, j): (usize, usize)) -> &mut f64 {
        debug_assert!(i < self.rows && j < self.cols);
        &mut self.data[i * self.cols + j]
    }
}

/// x · y.
#[inline]
pub fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// ‖x‖₂.
#[inline]
pub fn norm(x: &[f64]) -> f64 {
    dot(x, x).sqrt()
}

/// Entries below this (relative to the vector's scale) count as zero in the sign convention.
const SIGN_TOLERANCE: f64 = 1e-10;

/// Whether `v` should be negated under this module's sign convention: make Σ v_i positive, or if
/// |Σ v_i| ≤ 1e-10·‖v‖₁, make the first entry with |v_i| > 1e-10·‖v‖_∞ positive.
pub fn fix_sign(v: &[f64]) -> bool {
    let sum: f64 = v.iter().sum();
    let l1: f64 = v.iter().map(|a| a.abs()).sum();
    if sum.abs() > SIGN_TOLERANCE * l1 {
        return sum < 0.0;
    }
    let largest = v.iter().fold(0.0f64, |m, a| m.max(a.abs()));
    v.iter()
        .find(|a| a.abs() > SIGN_TOLERANCE * largest)
        .is_some_and(|&a| a < 0.0)
}

/// A symmetric eigendecomposition A = Q diag(λ) Qᵀ.
#[derive(Clone, Debug, PartialEq)]
pub struct SymmetricEigen {
    /// Eigenvalues λ, decreasing.
    pub values: Vec<f64>,
    /// n×n orthogonal Q; column k is the eigenvector of `values[k]`.
    pub vectors: Matrix,
}

/// Maximum Jacobi sweeps. Cyclic Jacobi converges quadratically once off-diagonal mass is small; 6–10
/// sweeps are typical for n ≤ 300, so 100 is never reached by a convergent problem.
const MAX_SWEEPS: usize = 100;

/// Eigendecomposition of a symmetric matrix by the cyclic Jacobi method.
///
/// Only the upper triangle's symmetry is assumed, not checked; the lower triangle is read too, so pass
/// a symmetric matrix. Eigenvalues are accurate to about ε‖A‖_F.
///
/// # Panics
/// If `a` is not square.
pub fn symmetric_eigen(a: &Matrix) -> SymmetricEigen {
    assert_eq!(a.rows, a.cols, "symmetric_eigen needs a square matrix");
    let n = a.rows;
    let mut m = a.clone();
    let mut q = Matrix::identity(n);
    let scale = a.frobenius_norm();
    for _ in 0..MAX_SWEEPS {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[(i, j)] * m[(i, j)])
            .sum::<f64>()
            .sqrt();
        // Off-diagonal mass below ε‖A‖_F: the eigenvalues are as accurate as the rounding allows.
        if off <= f64::EPSILON * scale {
            break;
        }
        for p in 0..n {
            for r in p + 1..n {
                let apr = m[(p, r)];
                if apr == 0.0 {
                    continue;
                }
                // Rotation J in the (p, r) plane zeroing m_pr: θ = (a_rr − a_pp)/(2 a_pr),
                // t = tan φ the smaller root of t² + 2θt − 1 = 0.
                let theta = (m[(r, r)] - m[(p, p)]) / (2.0 * apr);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // M ← Jᵀ M J: columns p, r then rows p, r.
                for k in 0..n {
                    let (mkp, mkr) = (m[(k, p)], m[(k, r)]);
                    m[(k, p)] = c * mkp - s * mkr;
                    m[(k, r)] = s * mkp + c * mkr;
                }
                for k in 0..n {
                    let (mpk, mrk) = (m[(p, k)], m[(r, k)]);
                    m[(p, k)] = c * mpk - s * mrk;
                    m[(r, k)] = s * mpk + c * mrk;
                }
                for k in 0..n {
                    let (qkp, qkr) = (q[(k, p)], q[(k, r)]);
                    q[(k, p)] = c * qkp - s * qkr;
                    q[(k, r)] = s * qkp + c * qkr;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| m[(j, j)].total_cmp(&m[(i, i)]));
    let values = order.iter().map(|&i| m[(i, i)]).collect();
    let columns: Vec<Vec<f64>> = order
        .iter()
        .map(|&k| {
            let mut v = q.column(k);
            if fix_sign(&v) {
                v.iter_mut().for_each(|a| *a = -*a);
            }
            v
        })
        .collect();
    SymmetricEigen {
        values,
        vectors: Matrix::from_columns(n, &columns),
    }
}

/// A thin singular value decomposition A = U diag(σ) Vᵀ of an m×n matrix, r = min(m, n).
#[derive(Clone, Debug, PartialEq)]
pub struct Svd {
    /// m×r, orthonormal columns u_α (left singular vectors; the paper's feature synthesizers).
    pub u: Matrix,
    /// σ_α ≥ 0, decreasing, r of them.
    pub singular_values: Vec<f64>,
    /// n×r, orthonormal columns v_α (right singular vectors; the paper's object analyzers).
    pub v: Matrix,
}

impl Svd {
    /// U diag(σ) Vᵀ, keeping only the first `rank` modes: the best rank-`rank` approximation
    /// (Eckart–Young) when `rank` < r.
    pub fn reconstruct(&self, rank: usize) -> Matrix {
        let rank = rank.min(self.singular_values.len());
        let (m, n) = (self.u.rows, self.v.rows);
        Matrix::from_fn(m, n, |i, j| {
            (0..rank)
                .map(|a| self.u[(i, a)] * self.singular_values[a] * self.v[(j, a)])
                .sum()
        })
    }
}

/// Thin SVD by one-sided (Hestenes) Jacobi.
///
/// For m ≥ n, plane rotations V are applied to the columns of A until they are mutually orthogonal
/// (|a_iᵀa_j| ≤ ε‖a_i‖‖a_j‖); then σ_j = ‖a_j‖, u_j = a_j/σ_j. Columns whose norm is below
/// max(m,n)·ε·σ_max (numerically zero singular values) get u_j from Gram–Schmidt completion instead,
/// so U keeps orthonormal columns for rank-deficient A. For m < n we decompose Aᵀ and swap U and V.
/// Sign convention: see the module docs.
pub fn svd(a: &Matrix) -> Svd {
    if a.rows < a.cols {
        let t = svd(&a.transpose());
        // A = (Aᵀ)ᵀ = V Σ Uᵀ; re-apply the sign convention to the new v (the old u).
        let mut u = t.v.columns();
        let mut v = t.u.columns();
        for (uc, vc) in u.iter_mut().zip(v.iter_mut()) {
            if fix_sign(vc) {
                uc.iter_mut().for_each(|x| *x = -*x);
                vc.iter_mut().for_each(|x| *x = -*x);
            }
        }
        return Svd {
            u: Matrix::from_columns(a.rows, &u),
            singular_values: t.singular_values,
            v: Matrix::from_columns(a.cols, &v),
        };
    }
    let (m, n) = (a.rows, a.cols);
    let mut cols = a.columns();
    let mut v: Vec<Vec<f64>> = Matrix::identity(n).columns();
    for _ in 0..MAX_SWEEPS {
        let mut rotated = false;
        for i in 0..n {
            for j in i + 1..n {
                let alpha = dot(&cols[i], &cols[i]);
                let beta = dot(&cols[j], &cols[j]);
                let gamma = dot(&cols[i], &cols[j]);
                if gamma == 0.0 || gamma.abs() <= f64::EPSILON * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                // The rotation that diagonalises the 2×2 Gram matrix [[α, γ], [γ, β]].
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                rotate_pair(&mut cols, i, j, c, s);
                rotate_pair(&mut v, i, j, c, s);
            }
        }
        if !rotated {
            break;
        }
    }
    let norms: Vec<f64> = cols.iter().map(|c| norm(c)).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| norms[j].total_cmp(&norms[i]));
    let sigma_max = norms.iter().fold(0.0f64, |a, &b| a.max(b));
    let zero_below = m.max(n) as f64 * f64::EPSILON * sigma_max;
    let mut u_cols: Vec<Vec<f64>> = Vec::with_capacity(n);
    let mut v_cols: Vec<Vec<f64>> = Vec::with_capacity(n);
    let mut values = Vec::with_capacity(n);
    let mut deficient = Vec::new();
    for &k in &order {
        let sigma = norms[k];
        values.push(sigma);
        v_cols.push(v[k].clone());
        if sigma > zero_below && sigma > 0.0 {
            u_cols.push(cols[k].iter().map(|x| x / sigma).collect());
        } else {
            deficient.push(u_cols.len());
            u_cols.push(vec![0.0; m]);
        }
    }
    // Complete U for numerically zero σ: orthonormal to every other column.
    for &slot in &deficient {
        // Slots not yet completed are zero vectors and project out nothing.
        let others: Vec<Vec<f64>> = u_cols
            .iter()
            .enumerate()
            .filter(|&(k, _)| k != slot)
            .map(|(_, c)| c.clone())
            .collect();
        u_cols[slot] = orthonormal_complement_vector(&others, m);
    }
    for (uc, vc) in u_cols.iter_mut().zip(v_cols.iter_mut()) {
        if fix_sign(vc) {
            uc.iter_mut().for_each(|x| *x = -*x);
            vc.iter_mut().for_each(|x| *x = -*x);
        }
    }
    Svd {
        u: Matrix::from_columns(m, &u_cols),
        singular_values: values,
        v: Matrix::from_columns(n, &v_cols),
    }
}

/// (x_i, x_j) ← (c x_i − s x_j, s x_i + c x_j).
fn rotate_pair(columns: &mut [Vec<f64>], i: usize, j: usize, c: f64, s: f64) {
    let (left, right) = columns.split_at_mut(j);
    for (a, b) in left[i].iter_mut().zip(right[0].iter_mut()) {
        let (x, y) = (*a, *b);
        *a = c * x - s * y;
        *b = s * x + c * y;
    }
}

/// Removes from `x` its components along the orthonormal vectors `basis`, twice ("twice is enough":
/// one re-orthogonalisation pass brings the loss of orthogonality to working precision).
fn orthogonalise_against(x: &mut [f64], basis: &[Vec<f64>]) {
    for _ in 0..2 {
        for b in basis {
            let c = dot(x, b);
            x.iter_mut().zip(b).for_each(|(xi, bi)| *xi -= c * bi);
        }
    }
}

/// A unit vector of length `dim` orthogonal to the orthonormal `basis` (fewer than `dim` vectors):
/// the standard basis vector with the largest remainder after projection, normalised.
fn orthonormal_complement_vector(basis: &[Vec<f64>], dim: usize) -> Vec<f64> {
    let mut best = vec![0.0; dim];
    let mut best_norm = -1.0;
    for e in 0..dim {
        let mut x = vec![0.0; dim];
        x[e] = 1.0;
        orthogonalise_against(&mut x, basis);
        let nx = norm(&x);
        // A remainder above 1/√dim always exists (the projector onto the complement has trace ≥ 1),
        // so taking the largest keeps the normalisation well conditioned.
        if nx > best_norm {
            best_norm = nx;
            best = x;
        }
    }
    best.iter_mut().for_each(|x| *x /= best_norm);
    best
}

/// A thin QR factorisation A = Q R of an m×n matrix with m ≥ n.
#[derive(Clone, Debug, PartialEq)]
pub struct Qr {
    /// m×n with orthonormal columns.
    pub q: Matrix,
    /// n×n upper triangular, with r_jj ≥ 0.
    pub r: Matrix,
}

/// Thin QR by modified Gram–Schmidt with one re-orthogonalisation pass.
///
/// A column that is (numerically) a combination of the previous ones — remainder below
/// m·ε·‖A‖_F — gets r_jj = 0 and a unit q_j from orthonormal completion, so Q always has orthonormal
/// columns and A = QR still holds.
///
/// # Panics
/// If m < n.
pub fn qr(a: &Matrix) -> Qr {
    let (m, n) = (a.rows, a.cols);
    assert!(m >= n, "thin QR needs rows ≥ columns, got {m}×{n}");
    let zero_below = m as f64 * f64::EPSILON * a.frobenius_norm();
    let mut q_cols: Vec<Vec<f64>> = Vec::with_capacity(n);
    let mut r = Matrix::zeros(n, n);
    for j in 0..n {
        let mut x = a.column(j);
        for _ in 0..2 {
            for (k, qk) in q_cols.iter().enumerate() {
                let c = dot(&x, qk);
                r[(k, j)] += c;
                x.iter_mut().zip(qk).for_each(|(xi, qi)| *xi -= c * qi);
            }
        }
        let nx = norm(&x);
        if nx > zero_below && nx > 0.0 {
            r[(j, j)] = nx;
            q_cols.push(x.iter().map(|v| v / nx).collect());
        } else {
            q_cols.push(orthonormal_complement_vector(&q_cols, m));
        }
    }
    Qr {
        q: Matrix::from_columns(m, &q_cols),
        r,
    }
}

/// A random n×k matrix with orthonormal columns, k ≤ n, uniformly (Haar) distributed: the Q of a
/// Gaussian matrix's QR with r_jj > 0.
///
/// # Panics
/// If k > n.
pub fn random_orthonormal(rng: &mut StreamRng, n: usize, k: usize) -> Matrix {
    assert!(
        k <= n,
        "cannot fit {k} orthonormal columns in dimension {n}"
    );
    let g = Matrix::from_fn(n, k, |_, _| rng.standard_normal());
    qr(&g).q
}

/// Cosines of the principal angles between the column spaces of `a` (n×p) and `b` (n×q): the
/// singular values of Q_aᵀ Q_b with Q the orthonormalised columns, min(p, q) of them, decreasing,
/// clamped to [0, 1]. All ones: one subspace contains the other.
///
/// The columns of each matrix should be linearly independent: a dependent column is replaced by an
/// arbitrary orthonormal completion (see [`qr`]).
///
/// # Panics
/// If the row counts differ.
pub fn principal_angle_cosines(a: &Matrix, b: &Matrix) -> Vec<f64> {
    assert_eq!(a.rows, b.rows, "subspaces of different ambient dimensions");
    let qa = qr(a).q;
    let qb = qr(b).q;
    svd(&qa.transpose_matmul(&qb))
        .singular_values
        .into_iter()
        .map(|c| c.clamp(0.0, 1.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(rng: &mut StreamRng, m: usize, n: usize) -> Matrix {
        Matrix::from_fn(m, n, |_, _| rng.standard_normal())
    }

    /// ‖QᵀQ − I‖_max.
    fn orthogonality_error(q: &Matrix) -> f64 {
        q.transpose_matmul(q)
            .sub(&Matrix::identity(q.cols()))
            .max_abs()
    }

    /// Checks A = UΣVᵀ, orthonormality, ordering and non-negativity. Bound 1e-12 on
    /// max|A − UΣVᵀ| / max(1, ‖A‖_F): Jacobi's backward error is a modest multiple of ε ≈ 2.2e-16
    /// times ‖A‖ for these sizes (≤ 40), about 1e-14 in practice; 1e-12 leaves two orders of margin
    /// while a wrong rotation or a mis-sorted pair errs by O(1).
    fn check_svd(a: &Matrix) -> Svd {
        let d = svd(a);
        let r = a.rows().min(a.cols());
        assert_eq!(d.u.rows(), a.rows());
        assert_eq!(d.v.rows(), a.cols());
        assert_eq!(d.singular_values.len(), r);
        let scale = a.frobenius_norm().max(1.0);
        let err = a.sub(&d.reconstruct(r)).max_abs() / scale;
        assert!(err < 1e-12, "reconstruction error {err}");
        assert!(orthogonality_error(&d.u) < 1e-12, "U not orthonormal");
        assert!(orthogonality_error(&d.v) < 1e-12, "V not orthonormal");
        assert!(d.singular_values.windows(2).all(|w| w[0] >= w[1]));
        assert!(d.singular_values.iter().all(|&s| s >= 0.0));
        d
    }

    #[test]
    fn svd_reconstructs_random_matrices_of_every_shape() {
        let mut rng = StreamRng::seed_from_u64(1);
        for &(m, n) in &[(1, 1), (5, 3), (3, 5), (7, 7), (40, 17), (12, 30)] {
            check_svd(&random(&mut rng, m, n));
        }
    }

    #[test]
    fn svd_handles_rank_deficiency_and_repeated_values() {
        let mut rng = StreamRng::seed_from_u64(2);
        let u = random_orthonormal(&mut rng, 9, 6);
        let v = random_orthonormal(&mut rng, 6, 6);
        let sigma = [3.0, 3.0, 3.0, 1.0, 0.0, 0.0];
        let a = u.matmul(&Matrix::diagonal(&sigma)).matmul(&v.transpose());
        let d = check_svd(&a);
        for (got, want) in d.singular_values.iter().zip(sigma) {
            // Singular values are perfectly conditioned: |δσ| ≤ ‖δA‖₂ ≈ ε‖A‖ ≈ 1e-15.
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        // The repeated triple spans the same subspace as the planted one.
        let cos = principal_angle_cosines(&d.v.leading_columns(3), &v.leading_columns(3));
        assert!(cos.iter().all(|&c| (c - 1.0).abs() < 1e-12), "{cos:?}");
        // The zero matrix and a rank-one wide matrix.
        check_svd(&Matrix::zeros(4, 3));
        let rank_one = Matrix::from_fn(3, 8, |i, j| (i + 1) as f64 * (j as f64 - 2.0));
        let d = check_svd(&rank_one);
        assert!(d.singular_values[1] < 1e-12);
    }

    #[test]
    fn svd_sign_convention_makes_analyzer_sums_positive() {
        // The 4-item analyzers: (1,1,1,1)/2 has a positive sum; (1,1,−1,−1)/2 sums to zero and so
        // starts positive.
        let y = Matrix::from_row_major(
            7,
            4,
            vec![
                1., 1., 1., 1., 1., 1., 0., 0., 0., 0., 1., 1., 1., 0., 0., 0., 0., 1., 0., 0., 0.,
                0., 1., 0., 0., 0., 0., 1.,
            ],
        );
        let d = svd(&y);
        assert!(d.v.column(0).iter().all(|&x| (x - 0.5).abs() < 1e-12));
        let second = d.v.column(1);
        for (x, want) in second.iter().zip([0.5, 0.5, -0.5, -0.5]) {
            assert!((x - want).abs() < 1e-12, "{second:?}");
        }
    }

    #[test]
    fn symmetric_eigen_diagonalises() {
        let mut rng = StreamRng::seed_from_u64(3);
        for n in [1, 2, 6, 25] {
            let g = random(&mut rng, n, n);
            let a = g.add(&g.transpose());
            let e = symmetric_eigen(&a);
            assert!(orthogonality_error(&e.vectors) < 1e-12);
            let back = e
                .vectors
                .matmul(&Matrix::diagonal(&e.values))
                .matmul(&e.vectors.transpose());
            assert!(a.sub(&back).max_abs() < 1e-12 * a.frobenius_norm().max(1.0));
            assert!(e.values.windows(2).all(|w| w[0] >= w[1]));
        }
        // Repeated eigenvalues: λ(J₃ + I) = 4, 1, 1.
        let a = Matrix::from_fn(3, 3, |i, j| if i == j { 2.0 } else { 1.0 });
        let e = symmetric_eigen(&a);
        for (got, want) in e.values.iter().zip([4.0, 1.0, 1.0]) {
            assert!((got - want).abs() < 1e-13);
        }
    }

    #[test]
    fn qr_factorises_and_completes_dependent_columns() {
        let mut rng = StreamRng::seed_from_u64(4);
        let mut a = random(&mut rng, 8, 5);
        // Column 3 = column 0 + column 1: dependent.
        for i in 0..8 {
            a[(i, 3)] = a[(i, 0)] + a[(i, 1)];
        }
        let f = qr(&a);
        assert!(orthogonality_error(&f.q) < 1e-12);
        assert!(a.sub(&f.q.matmul(&f.r)).max_abs() < 1e-12 * a.frobenius_norm());
        assert!(f.r[(3, 3)] == 0.0);
        for i in 0..5 {
            assert!(f.r[(i, i)] >= 0.0);
            for j in 0..i {
                assert_eq!(f.r[(i, j)], 0.0);
            }
        }
    }

    #[test]
    fn random_orthonormal_is_orthonormal_and_seeded() {
        let q = random_orthonormal(&mut StreamRng::seed_from_u64(5), 10, 4);
        assert!(orthogonality_error(&q) < 1e-12);
        assert_eq!(
            q,
            random_orthonormal(&mut StreamRng::seed_from_u64(5), 10, 4)
        );
    }

    #[test]
    fn principal_angles_of_known_planes() {
        // span(e1, e2) vs span(e1, cos θ e2 + sin θ e3): cosines 1 and cos θ.
        let theta: f64 = 0.3;
        let a = Matrix::from_fn(3, 2, |i, j| if i == j { 1.0 } else { 0.0 });
        let b = Matrix::from_columns(
            3,
            &[vec![2.0, 0.0, 0.0], vec![0.0, theta.cos(), theta.sin()]],
        );
        let cos = principal_angle_cosines(&a, &b);
        assert!((cos[0] - 1.0).abs() < 1e-14);
        assert!((cos[1] - theta.cos()).abs() < 1e-14);
    }
}
