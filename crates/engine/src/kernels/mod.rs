//! Fast f32 kernels for training, each with a naive reference twin kept for tests.
//!
//! Letters as in the crate root: B batch, n features, m hidden dimensions, plus T, the examples of one
//! *tile* (a slice of the batch small enough that its activations stay in L1/L2).
//!
//! | kernel | computes | naive twin |
//! |---|---|---|
//! | [`toy::loss_and_gradient`] | L and dL/dθ of a toy model on a sparse batch | [`crate::models::toy::ToyShape::loss_and_gradient_reference`] |
//! | [`toy::loss_and_gradient_dense`] | the same on a batch drawn dense (density ≥ 1/16) | the same twin, on the batch's rows |
//! | [`gemm`] | C ← α A B + β C (strided) | [`gemm_naive`] |
//!
//! What makes the fast paths fast (each kernel's doc says which it uses):
//! - **non-zero-only encoder**: h = Σ_{x_j≠0} x_j W_j costs O(nnz · m), never O(B n m), unless the
//!   tile is dense enough for a GEMM to win;
//! - **all-zero examples in closed form**: an example with x = 0 has h = 0 and x̂ = act(b), the same
//!   for every such example, so they cost O(n) together, not O(n m) each;
//! - **batch-vectorised small models**: for m ≤ 8 the activations are stored transposed, [m, T],
//!   and every loop runs along the batch, so SIMD lanes are full whatever n and m are;
//! - **dense batches read in place**: at density ≥ 1/16 the sampler writes x as a dense [n, S]
//!   matrix and the small-m tiles read it directly, with no compressed rows and no scatter;
//! - **a fused decoder pass** where m is larger: z = Dh + b, the loss and dz in one register-blocked
//!   pass over Dᵀ; **GEMMs** (`matrixmultiply::sgemm`, pure Rust) for the dense encoder and the
//!   dense backward products;
//! - **dz = 0 skipping**: the backward pass visits only outputs whose gradient is non-zero (off ReLU
//!   outputs are most of them once biases turn negative);
//! - **fixed batch chunks** reduced in a fixed order, so a large instance can use several threads and
//!   still give bit-identical results for any thread count.
//!
//! The hot loops are compiled twice: for AVX2+FMA and portably; which copy runs is the
//! [`KernelSet`](crate::cpu::KernelSet) passed in (the `_with` entry points) or
//! [`crate::cpu::active`]. The AVX2 copy writes its innermost loops with `std::arch` intrinsics
//! (and AVX-512VL copies for the `avx512vl` set); those functions are `unsafe`, check every index
//! they touch with asserts up front, and say why each access is in bounds in a `// SAFETY:` note.
//! `sgemm` is called after checking every index it will touch. Which sets give the same bits:
//! [`crate::cpu`].

pub mod toy;

/// A strided read-only matrix view: element (r, c) is `data[r·rs + c·cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// Backing storage.
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

/// A strided mutable matrix view (see [`MatRef`]); its elements must not alias (rs ≠ cs, no zero
/// stride with more than one row or column).
#[derive(Debug)]
pub struct MatMut<'a> {
    /// Backing storage.
    pub data: &'a mut [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl MatRef<'_> {
    /// Row-major `rows × cols` view of `data`.
    pub fn row_major(data: &[f32], rows: usize, cols: usize) -> MatRef<'_> {
        MatRef {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose, without copying.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

impl MatMut<'_> {
    /// Row-major `rows × cols` view of `data`.
    pub fn row_major(data: &mut [f32], rows: usize, cols: usize) -> MatMut<'_> {
        MatMut {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }

    /// No two (r, c) address the same element: one stride spans the whole extent of the other.
    fn distinct(&self) -> bool {
        if self.rows <= 1 || self.cols <= 1 {
            (self.rows <= 1 || self.rs > 0) && (self.cols <= 1 || self.cs > 0)
        } else {
            (self.cs > 0 && self.rs >= self.cols * self.cs)
                || (self.rs > 0 && self.cs >= self.rows * self.rs)
        }
    }
}

/// C ← α A B + β C, with A: [r × k], B: [k × c], C: [r × c], any strides (`matrixmultiply::sgemm`,
/// single-threaded). With β = 0, C is not read (NaNs in it do not propagate).
///
/// Panics if a view's strides reach outside its slice or if shapes disagree.
pub fn gemm(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: MatMut) {
    assert!(
        a.cols == b.rows && a.rows == c.rows && b.cols == c.cols,
        "gemm shapes"
    );
    assert!(
        a.fits() && b.fits() && c.fits() && c.distinct(),
        "gemm views in bounds"
    );
    if c.rows == 0 || c.cols == 0 {
        return;
    }
    // SAFETY: every view was checked above to address only elements inside its slice
    // ((rows−1)·rs + (cols−1)·cs < len); C's strides do not alias; A and B are shared borrows and C a
    // unique one, so C does not overlap A or B. sgemm reads A[i·rsa + l·csa] for i < r, l < k, B
    // likewise, and writes C[i·rsc + j·csc] for i < r, j < c: exactly those elements.
    unsafe {
        matrixmultiply::sgemm(
            a.rows,
            a.cols,
            b.cols,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.data.as_mut_ptr(),
            c.rs as isize,
            c.cs as isize,
        );
    }
}

/// Naive twin of [`gemm`]: the triple loop in f64, rounded once to f32.
pub fn gemm_naive(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: MatMut) {
    assert!(
        a.cols == b.rows && a.rows == c.rows && b.cols == c.cols,
        "gemm shapes"
    );
    for i in 0..c.rows {
        for j in 0..c.cols {
            let mut s = 0.0f64;
            for l in 0..a.cols {
                s += a.data[i * a.rs + l * a.cs] as f64 * b.data[l * b.rs + j * b.cs] as f64;
            }
            let at = i * c.rs + j * c.cs;
            let old = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c.data[at] as f64
            };
            c.data[at] = (alpha as f64 * s + old) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::StreamRng;

    #[test]
    fn gemm_matches_naive_on_odd_shapes_and_strides() {
        let mut rng = StreamRng::seed_from_u64(4);
        for &(r, k, c) in &[(1, 1, 1), (3, 5, 7), (17, 2, 9), (33, 31, 65), (8, 100, 3)] {
            let a: Vec<f32> = (0..r * k).map(|_| rng.uniform_f32() - 0.5).collect();
            let b: Vec<f32> = (0..k * c).map(|_| rng.uniform_f32() - 0.5).collect();
            let c0: Vec<f32> = (0..r * c).map(|_| rng.uniform_f32() - 0.5).collect();
            // A read transposed from a [k × r] buffer, B row-major, C column-major.
            let at = MatRef::row_major(&a, k, r).t();
            let bm = MatRef::row_major(&b, k, c);
            let mut fast = c0.clone();
            let mut slow = c0.clone();
            fn column_major(d: &mut [f32], rows: usize, cols: usize) -> MatMut<'_> {
                MatMut {
                    data: d,
                    rows,
                    cols,
                    rs: 1,
                    cs: rows,
                }
            }
            gemm(0.5, at, bm, 1.0, column_major(&mut fast, r, c));
            gemm_naive(0.5, at, bm, 1.0, column_major(&mut slow, r, c));
            // Each entry is a k-term dot product of values ≤ ½ in magnitude: recursive f32
            // summation errs by at most k·ε·Σ|terms| ≤ k·ε·k/4, plus one rounding of the result.
            let eps = f32::EPSILON as f64;
            let tol = (k * k) as f64 * eps / 4.0 + 4.0 * eps;
            for (x, y) in fast.iter().zip(&slow) {
                assert!(((x - y) as f64).abs() <= tol, "{r}x{k}x{c}: {x} vs {y}");
            }
        }
    }
}
