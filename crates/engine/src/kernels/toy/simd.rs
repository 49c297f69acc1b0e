//! The toy kernels' innermost loops written with `std::arch` intrinsics, for the `avx2-fma` and
//! `avx512vl` kernel sets ([`crate::cpu`]): the small-m sweeps and dense encoder
//! ([`super::small`]), and the large-m path's fused decoder pass and sparse decoder backward
//! ([`super::large`]), each the portable loops' arithmetic fused into one pass so that the
//! accumulators stay in registers. Which copy runs, and on which tiles, is decided by the callers;
//! this file owns only the copies.
//!
//! Every function here is `unsafe` for one reason: it is compiled for CPU features (its
//! `# Safety` section names them) that the caller must have checked, which it does by holding a
//! supported [`KernelSet`](crate::cpu::KernelSet). Memory accesses are checked by asserts at the
//! top of each function, and every raw access says why it is in bounds in a `// SAFETY:` note.
//! Which copies give the same bits as which: [`crate::cpu`] and the tests.

// Index loops over the M hidden dimensions address several register arrays at once.
#![allow(clippy::needless_range_loop)]

use super::{lane_sum, LANES};
use std::arch::x86_64::*;

// Shared by both paths: lane sums, the decoder dot product, the output nonlinearity.

/// Σ of a vector's 8 lanes in [`lane_sum`]'s fixed order.
///
/// # Safety
/// The CPU must support AVX.
#[inline(always)]
pub(super) unsafe fn lane_total(v: __m256) -> f32 {
    // SAFETY: AVX is this function's contract; the one store is in bounds (note below).
    unsafe {
        let mut a = [0.0f32; LANES];
        // SAFETY: a holds 8 f32.
        _mm256_storeu_ps(a.as_mut_ptr(), v);
        lane_sum(&a)
    }
}

/// z = b + Σ_k D_k h_k as two interleaved chains (even k from b, odd k from D_1 h_1) added at
/// the end: half the latency of one chain of M FMAs, which the sweeps wait on.
///
/// # Safety
/// The CPU must support AVX and FMA.
#[inline(always)]
pub(super) unsafe fn decode<const M: usize>(
    bias: __m256,
    d: &[__m256; M],
    h: &[__m256; M],
) -> __m256 {
    // SAFETY: AVX and FMA are this function's contract; registers only.
    unsafe {
        if M == 1 {
            return _mm256_fmadd_ps(d[0], h[0], bias);
        }
        let mut even = bias;
        let mut odd = _mm256_mul_ps(d[1], h[1]);
        for k in 0..M {
            if k % 2 == 0 {
                even = _mm256_fmadd_ps(d[k], h[k], even);
            } else if k > 1 {
                odd = _mm256_fmadd_ps(d[k], h[k], odd);
            }
        }
        _mm256_add_ps(even, odd)
    }
}

/// err = x̂ − y for z's lanes t.., with x̂ = z (LINEAR) or ReLU(z), and 0 on lanes ≥ `real`
/// (padding past the tile's examples). max(0, z) keeps a NaN z (vmaxps returns its second
/// operand), so a diverged model still reports a NaN loss.
///
/// # Safety
/// The CPU must support AVX2.
#[inline(always)]
pub(super) unsafe fn output_error<const LINEAR: bool>(
    z: __m256,
    y: __m256,
    t: usize,
    real: usize,
) -> __m256 {
    // SAFETY: AVX2 is this function's contract; registers only.
    unsafe {
        let out = if LINEAR {
            z
        } else {
            _mm256_max_ps(_mm256_setzero_ps(), z)
        };
        let err = _mm256_sub_ps(out, y);
        if t + LANES <= real {
            return err;
        }
        // The tile's last, partial group: lanes real − t.. are padding.
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(real.saturating_sub(t) as i32), lanes);
        _mm256_and_ps(err, _mm256_castsi256_ps(keep))
    }
}

/// dz = c·err ⊙ 1[z > 0 or LINEAR], given c·err.
///
/// # Safety
/// The CPU must support AVX.
#[inline(always)]
pub(super) unsafe fn output_gradient<const LINEAR: bool>(z: __m256, scaled: __m256) -> __m256 {
    // SAFETY: AVX is this function's contract; registers only.
    unsafe {
        if LINEAR {
            scaled
        } else {
            let on = _mm256_cmp_ps::<_CMP_GT_OQ>(z, _mm256_setzero_ps());
            _mm256_and_ps(scaled, on)
        }
    }
}

// The small-m path (super::small): the feature sweeps and the dense encoder.

/// One feature i of [`super::small::small_tile`]: [`sweep`] with F = 1 (see there). d is the
/// decoder row [M]; y the target row [used].
///
/// # Safety
/// The CPU must support AVX2 and FMA. (Memory accesses are checked by [`sweep`]'s asserts.)
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn feature_sweep<const M: usize>(
    h: &[f32],
    dh: &mut [f32],
    tile: usize,
    used: usize,
    d: &[f32],
    bias: f32,
    c: f32,
    linear: bool,
    y: &[f32],
    real: usize,
) -> (f32, f32, [f32; M]) {
    // SAFETY: `sweep` needs AVX2 and FMA, this function's contract (and enabled
    // here); it checks its memory accesses itself.
    unsafe {
        let [out] = if linear {
            sweep::<M, 1, true>(h, dh, tile, used, d, [bias], [c], y, 0, real)
        } else {
            sweep::<M, 1, false>(h, dh, tile, used, d, [bias], [c], y, 0, real)
        };
        out
    }
}

/// The two features' constants: b_i and c_i.
#[derive(Clone, Copy)]
pub(super) struct Pair {
    pub bias: [f32; 2],
    pub coefficient: [f32; 2],
}

/// Features i and i + 1 of [`super::small::small_tile`]: [`sweep`] with F = 2 (see there), bit for
/// bit two calls of [`feature_sweep`]. d holds the two decoder rows [2, M]; y the
/// two target rows at offsets 0 and `y_stride`.
///
/// # Safety
/// The CPU must support AVX2, FMA, AVX-512F and AVX-512VL. (Memory accesses are checked by
/// [`sweep`]'s asserts.)
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn feature_pair_sweep<const M: usize>(
    h: &[f32],
    dh: &mut [f32],
    tile: usize,
    used: usize,
    d: &[f32],
    features: Pair,
    linear: bool,
    y: &[f32],
    y_stride: usize,
    real: usize,
) -> [(f32, f32, [f32; M]); 2] {
    // SAFETY: `sweep` needs AVX2 and FMA, part of this function's contract (and
    // enabled here, with AVX-512VL); it checks its memory accesses itself.
    unsafe {
        let (b, c) = (features.bias, features.coefficient);
        // One compiled loop per output kind: no test of `linear` inside it.
        if linear {
            sweep::<M, 2, true>(h, dh, tile, used, d, b, c, y, y_stride, real)
        } else {
            sweep::<M, 2, false>(h, dh, tile, used, d, b, c, y, y_stride, real)
        }
    }
}

/// Features i..i + F of [`super::small::small_tile`] over lanes 0..used, 8 at a time (F = 1, or 2 where
/// 32 registers hold both features' constants and accumulators). For each feature f:
/// z = b_f + Σ_k D_fk h_k ([`decode`]); err = (x̂ − y_f) on lanes < `real`, 0 on the padding
/// ([`output_error`]); dz_f = c_f err ⊙ 1[z > 0 or LINEAR]; then dh_k += D_fk dz_f in feature
/// order. Returns per feature (Σ err², Σ dz, [Σ dz h_k]_k), each summed over lanes in
/// [`lane_sum`]'s fixed order. h and dh are [M, tile]; d holds the F decoder rows [F, M]; y
/// the F target rows at offsets 0, `y_stride`, …. Every feature's arithmetic is the same
/// whatever F, so F = 2 gives the bits of two calls with F = 1 (a test checks it).
///
/// # Safety
/// The CPU must support AVX2 and FMA. (Every memory access is checked by the asserts below.)
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn sweep<const M: usize, const F: usize, const LINEAR: bool>(
    h: &[f32],
    dh: &mut [f32],
    tile: usize,
    used: usize,
    d: &[f32],
    bias: [f32; F],
    coefficient: [f32; F],
    y: &[f32],
    y_stride: usize,
    real: usize,
) -> [(f32, f32, [f32; M]); F] {
    // SAFETY: AVX2 and FMA are this function's contract; every load and store is in
    // bounds by the asserts above it (the note in the loop says why).
    unsafe {
        assert!(used.is_multiple_of(LANES) && used <= tile && real <= used);
        assert!(h.len() >= M * tile && dh.len() >= M * tile && d.len() == F * M);
        assert!(y.len() >= (F - 1) * y_stride + used);
        let zero = _mm256_setzero_ps();
        let mut vd = [[zero; M]; F];
        for f in 0..F {
            for k in 0..M {
                vd[f][k] = _mm256_set1_ps(d[f * M + k]);
            }
        }
        let vb = bias.map(|b| _mm256_set1_ps(b));
        let vc = coefficient.map(|c| _mm256_set1_ps(c));
        let (mut e2, mut db) = ([zero; F], [zero; F]);
        let mut dd = [[zero; M]; F];
        let (hp, dhp, yp) = (h.as_ptr(), dh.as_mut_ptr(), y.as_ptr());
        let mut t = 0;
        while t < used {
            // SAFETY (all loads and stores below): t + 8 ≤ used ≤ tile, so k·tile + t + 8 ≤ M·tile
            // ≤ len of h and dh, and f·y_stride + t + 8 ≤ (F − 1)·y_stride + used ≤ len of y
            // (asserted above).
            let mut hk = [zero; M];
            for k in 0..M {
                hk[k] = _mm256_loadu_ps(hp.add(k * tile + t));
            }
            let mut dz = [zero; F];
            for f in 0..F {
                let z = decode::<M>(vb[f], &vd[f], &hk);
                let yf = _mm256_loadu_ps(yp.add(f * y_stride + t));
                let err = output_error::<LINEAR>(z, yf, t, real);
                e2[f] = _mm256_fmadd_ps(err, err, e2[f]);
                dz[f] = output_gradient::<LINEAR>(z, _mm256_mul_ps(vc[f], err));
                db[f] = _mm256_add_ps(db[f], dz[f]);
                for k in 0..M {
                    dd[f][k] = _mm256_fmadd_ps(dz[f], hk[k], dd[f][k]);
                }
            }
            for k in 0..M {
                let at = dhp.add(k * tile + t);
                let mut sum = _mm256_loadu_ps(at);
                for f in 0..F {
                    sum = _mm256_fmadd_ps(dz[f], vd[f][k], sum);
                }
                _mm256_storeu_ps(at, sum);
            }
            t += LANES;
        }
        let mut out = [(0.0f32, 0.0f32, [0.0f32; M]); F];
        for f in 0..F {
            let mut sums = [0.0f32; M];
            for k in 0..M {
                sums[k] = lane_total(dd[f][k]);
            }
            out[f] = (lane_total(e2[f]), lane_total(db[f]), sums);
        }
        out
    }
}

/// Dense encoder, 16 lanes at a time (then 8): pre_k[t] = Σ_j E_jk x_j[t], with E [n, M] row-major,
/// x_j at `x[j · x_stride..]` and pre [M, tile]; lanes 0..used are written.
///
/// # Safety
/// The CPU must support AVX2 and FMA. (Every memory access is checked by the asserts below.)
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dense_encoder<const M: usize>(
    e: &[f32],
    x: &[f32],
    x_stride: usize,
    pre: &mut [f32],
    n: usize,
    tile: usize,
    used: usize,
) {
    // SAFETY: AVX2 and FMA are this function's contract; every load and store is in
    // bounds by the asserts above it (the note before the loops says why).
    unsafe {
        assert!(used.is_multiple_of(LANES) && used <= tile && used <= x_stride);
        assert!(e.len() >= n * M && pre.len() >= M * tile);
        assert!(n == 0 || x.len() >= (n - 1) * x_stride + used);
        let (ep, xp, pp) = (e.as_ptr(), x.as_ptr(), pre.as_mut_ptr());
        let zero = _mm256_setzero_ps();
        let mut t = 0;
        // SAFETY (all loads and stores below): t + 16 ≤ used (or t + 8 ≤ used) ≤ tile, so
        // j·x_stride + t + 16 ≤ (n − 1)·x_stride + used ≤ len of x and k·tile + t + 16 ≤ M·tile;
        // j·M + k < n·M (asserted above).
        while t + 2 * LANES <= used {
            let (mut a, mut b) = ([zero; M], [zero; M]);
            for j in 0..n {
                let x0 = _mm256_loadu_ps(xp.add(j * x_stride + t));
                let x1 = _mm256_loadu_ps(xp.add(j * x_stride + t + LANES));
                for k in 0..M {
                    let w = _mm256_set1_ps(*ep.add(j * M + k));
                    a[k] = _mm256_fmadd_ps(w, x0, a[k]);
                    b[k] = _mm256_fmadd_ps(w, x1, b[k]);
                }
            }
            for k in 0..M {
                _mm256_storeu_ps(pp.add(k * tile + t), a[k]);
                _mm256_storeu_ps(pp.add(k * tile + t + LANES), b[k]);
            }
            t += 2 * LANES;
        }
        if t < used {
            let mut a = [zero; M];
            for j in 0..n {
                let x0 = _mm256_loadu_ps(xp.add(j * x_stride + t));
                for k in 0..M {
                    a[k] = _mm256_fmadd_ps(_mm256_set1_ps(*ep.add(j * M + k)), x0, a[k]);
                }
            }
            for k in 0..M {
                _mm256_storeu_ps(pp.add(k * tile + t), a[k]);
            }
        }
    }
}

/// Dense encoder gradient, two features at a time: dE_jk += Σ_t x_j[t] dpre_k[t] over lanes
/// 0..used (each sum in 8 lanes, then [`lane_sum`]'s fixed order), with x_j at
/// `x[j · x_stride..]`, dpre [M, tile] and dE [n, M] row-major.
///
/// # Safety
/// The CPU must support AVX2 and FMA. (Every memory access is checked by the asserts below.)
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dense_encoder_gradient<const M: usize>(
    x: &[f32],
    x_stride: usize,
    dpre: &[f32],
    n: usize,
    tile: usize,
    used: usize,
    de: &mut [f32],
) {
    // SAFETY: AVX2 and FMA are this function's contract; every load is in bounds by
    // the asserts above it (the note before the loop says why).
    unsafe {
        assert!(used.is_multiple_of(LANES) && used <= tile && used <= x_stride);
        assert!(dpre.len() >= M * tile && de.len() == n * M);
        assert!(n == 0 || x.len() >= (n - 1) * x_stride + used);
        let (xp, dp) = (x.as_ptr(), dpre.as_ptr());
        let zero = _mm256_setzero_ps();
        let mut j = 0;
        // SAFETY (all loads below): t + 8 ≤ used, so j·x_stride + t + 8 ≤ (n − 1)·x_stride + used
        // ≤ len of x for j < n, and k·tile + t + 8 ≤ M·tile (asserted above).
        while j < n {
            let pair = j + 1 < n;
            let (mut a, mut b) = ([zero; M], [zero; M]);
            let mut t = 0;
            while t < used {
                let x0 = _mm256_loadu_ps(xp.add(j * x_stride + t));
                let x1 = if pair {
                    _mm256_loadu_ps(xp.add((j + 1) * x_stride + t))
                } else {
                    zero
                };
                for k in 0..M {
                    let d = _mm256_loadu_ps(dp.add(k * tile + t));
                    a[k] = _mm256_fmadd_ps(x0, d, a[k]);
                    b[k] = _mm256_fmadd_ps(x1, d, b[k]);
                }
                t += LANES;
            }
            for k in 0..M {
                de[j * M + k] += lane_total(a[k]);
                if pair {
                    de[(j + 1) * M + k] += lane_total(b[k]);
                }
            }
            j += 2;
        }
    }
}

// The large-m path (super::large): the fused decoder pass and the sparse decoder backward.

/// What the fused decoder pass needs of each output feature.
pub(super) struct OutputConstants<'a> {
    /// b [n], I [n], c [n].
    pub bias: &'a [f32],
    pub importance: &'a [f32],
    pub coefficient: &'a [f32],
    /// Whether x̂ = z (else ReLU(z)).
    pub linear: bool,
}

/// Step 2 of [`super::large::large_tile`] fused into one pass over [T, n], with no GEMM packing and
/// no second pass over z:
///
/// ```text
/// z_ti = Σ_k H_tk Dᵀ_ki + b_i      x̂ = z (linear) or ReLU(z)      err = x̂ − y_ti
/// loss += I_i err²                 dz_ti = c_i err 1[z > 0 or linear]   (written to `dz`)
/// ```
///
/// H [T, m] and y, dz [T, n] row-major; Dᵀ [m, n]. Register blocks of R examples × 32
/// features, features outermost so that a block's m rows of Dᵀ stay in L1 while every example
/// passes. The loss is summed in f32 within a block (≤ 4R terms per lane) and in f64 across
/// blocks. Returns (Σ I_i err², number of dz_ti ≠ 0). Its reference is the GEMM path it
/// replaces (the Portable set), both checked against the naive twin.
///
/// # Safety
/// The CPU must support AVX2, FMA and POPCNT. (Memory accesses are checked by the asserts in
/// `decoder_forward_body`.)
#[target_feature(enable = "avx2,fma,popcnt")]
pub(super) unsafe fn decoder_forward(
    h: &[f32],
    decoder_transposed: &[f32],
    constants: &OutputConstants,
    y: &[f32],
    t_len: usize,
    dz: &mut [f32],
) -> (f64, usize) {
    // SAFETY: the body needs AVX2, FMA and POPCNT, this function's contract (and
    // enabled here); it checks its memory accesses itself.
    unsafe {
        // 16 registers: 3 × 4 accumulators and 4 rows of Dᵀ.
        decoder_forward_body::<3>(h, decoder_transposed, constants, y, t_len, dz)
    }
}

/// [`decoder_forward`] with AVX-512VL's 32 registers: blocks of 6 examples.
///
/// # Safety
/// The CPU must support AVX2, FMA, POPCNT, AVX-512F and AVX-512VL.
#[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
pub(super) unsafe fn decoder_forward_avx512(
    h: &[f32],
    decoder_transposed: &[f32],
    constants: &OutputConstants,
    y: &[f32],
    t_len: usize,
    dz: &mut [f32],
) -> (f64, usize) {
    // SAFETY: the body needs AVX2, FMA and POPCNT, part of this function's contract
    // (and enabled here, with AVX-512VL for 32 registers); it checks its memory accesses itself.
    unsafe { decoder_forward_body::<6>(h, decoder_transposed, constants, y, t_len, dz) }
}

/// # Safety
/// The CPU must support AVX2, FMA and POPCNT (it is inlined into the `decoder_forward` copies,
/// which enable them). Memory accesses are checked by the asserts below.
#[inline(always)]
unsafe fn decoder_forward_body<const R: usize>(
    h: &[f32],
    decoder_transposed: &[f32],
    constants: &OutputConstants,
    y: &[f32],
    t_len: usize,
    dz: &mut [f32],
) -> (f64, usize) {
    // SAFETY: the CPU features are this function's contract; `Block::run` needs its block
    // inside [0, t_len) × [0, n) and the buffers at the sizes asserted above, which the loops keep.
    unsafe {
        let n = constants.bias.len();
        assert!(n > 0 && decoder_transposed.len().is_multiple_of(n));
        let m = decoder_transposed.len() / n;
        assert!(h.len() >= t_len * m && y.len() >= t_len * n && dz.len() >= t_len * n);
        assert!(constants.importance.len() == n && constants.coefficient.len() == n);
        let mut totals = (0.0f64, 0usize);
        // Features in blocks of 32, then of 8; examples in blocks of R, then one at a time. Every
        // block stays inside [0, t_len) × [0, n) (i + 8V ≤ n, t + rows ≤ t_len), as `run` needs.
        let mut i = 0;
        while i < n / LANES * LANES {
            let width = if i + 4 * LANES <= n { 4 } else { 1 };
            let mut t = 0;
            while t < t_len {
                let rows = if t + R <= t_len { R } else { 1 };
                let block = Block {
                    h,
                    decoder_transposed,
                    constants,
                    y,
                    m,
                    n,
                    t,
                    i,
                };
                let (loss, count) = match (rows == R, width) {
                    (true, 4) => block.run::<R, 4>(dz),
                    (true, _) => block.run::<R, 1>(dz),
                    (false, 4) => block.run::<1, 4>(dz),
                    (false, _) => block.run::<1, 1>(dz),
                };
                totals.0 += loss;
                totals.1 += count;
                t += rows;
            }
            i += width * LANES;
        }
        // The last n mod 8 features, one at a time.
        for i in n / LANES * LANES..n {
            for t in 0..t_len {
                let mut z = 0.0f32;
                for k in 0..m {
                    z = h[t * m + k].mul_add(decoder_transposed[k * n + i], z);
                }
                let z = z + constants.bias[i];
                let out = if constants.linear { z } else { z.max(0.0) };
                let err = out - y[t * n + i];
                totals.0 += (constants.importance[i] * err * err) as f64;
                let on = constants.linear || z > 0.0;
                let d = if on {
                    constants.coefficient[i] * err
                } else {
                    0.0
                };
                dz[t * n + i] = d;
                totals.1 += (d != 0.0) as usize;
            }
        }
        totals
    }
}

/// One register block of [`decoder_forward_body`]: examples t.., features i...
struct Block<'a> {
    h: &'a [f32],
    decoder_transposed: &'a [f32],
    constants: &'a OutputConstants<'a>,
    y: &'a [f32],
    m: usize,
    n: usize,
    t: usize,
    i: usize,
}

impl Block<'_> {
    /// Examples t..t + RB and features i..i + 8V of the fused decoder pass.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and POPCNT; the block must lie inside the tile (t + RB ≤ T,
    /// i + 8V ≤ n) and the buffers have the sizes asserted in `decoder_forward_body`.
    #[inline(always)]
    unsafe fn run<const RB: usize, const V: usize>(&self, dz: &mut [f32]) -> (f64, usize) {
        // SAFETY: the features and the bounds are this function's contract; each access says
        // why it is in bounds in a note below.
        unsafe {
            let (m, n, t, i) = (self.m, self.n, self.t, self.i);
            debug_assert!((t + RB) * m <= self.h.len() && i + V * LANES <= n);
            let (hp, dp) = (self.h.as_ptr(), self.decoder_transposed.as_ptr());
            let zero = _mm256_setzero_ps();
            let mut acc = [[zero; V]; RB];
            for k in 0..m {
                // SAFETY: k < m and i + 8V ≤ n, so k·n + i + 8v + 8 ≤ m·n; (t + r)·m + k < T·m.
                let mut d = [zero; V];
                for v in 0..V {
                    d[v] = _mm256_loadu_ps(dp.add(k * n + i + v * LANES));
                }
                for r in 0..RB {
                    let hb = _mm256_broadcast_ss(&*hp.add((t + r) * m + k));
                    for v in 0..V {
                        acc[r][v] = _mm256_fmadd_ps(hb, d[v], acc[r][v]);
                    }
                }
            }
            let c = self.constants;
            let (yp, zp) = (self.y.as_ptr(), dz.as_mut_ptr());
            let mut loss = zero;
            let mut count = 0u32;
            for v in 0..V {
                let at = i + v * LANES;
                // SAFETY: at + 8 ≤ n = len of bias, importance and coefficient.
                let b = _mm256_loadu_ps(c.bias.as_ptr().add(at));
                let importance = _mm256_loadu_ps(c.importance.as_ptr().add(at));
                let coefficient = _mm256_loadu_ps(c.coefficient.as_ptr().add(at));
                for r in 0..RB {
                    let z = _mm256_add_ps(acc[r][v], b);
                    // SAFETY: (t + r)·n + at + 8 ≤ T·n ≤ len of y and dz.
                    let target = _mm256_loadu_ps(yp.add((t + r) * n + at));
                    let out = if c.linear { z } else { _mm256_max_ps(zero, z) };
                    let err = _mm256_sub_ps(out, target);
                    loss = _mm256_fmadd_ps(_mm256_mul_ps(importance, err), err, loss);
                    let scaled = _mm256_mul_ps(coefficient, err);
                    let d = if c.linear {
                        scaled
                    } else {
                        _mm256_and_ps(scaled, _mm256_cmp_ps::<_CMP_GT_OQ>(z, zero))
                    };
                    _mm256_storeu_ps(zp.add((t + r) * n + at), d);
                    let nonzero = _mm256_cmp_ps::<_CMP_NEQ_UQ>(d, zero);
                    count += (_mm256_movemask_ps(nonzero) as u32).count_ones();
                }
            }
            (lane_total(loss) as f64, count as usize)
        }
    }
}

/// The decoder backward of one example of [`super::large::large_tile`] when few dz are non-zero: for
/// every i with dz_i ≠ 0 (found 8 at a time by a vector comparison), in increasing i:
/// db_i += dz_i;  dD_i += dz_i h;  dh += dz_i D_i. Products are rounded before they are added
/// (no FMA), exactly as the portable loops, so both copies give the same bits.
///
/// # Safety
/// The CPU must support AVX2. (Every memory access is checked by the asserts below.)
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn sparse_decoder_backward(
    dz: &[f32],
    h: &[f32],
    decoder: &[f32],
    g_decoder: &mut [f32],
    g_bias: &mut [f32],
    dh: &mut [f32],
) {
    // SAFETY: the body needs AVX2 and FMA, this function's contract (and enabled here);
    // it checks its memory accesses itself.
    unsafe { sparse_decoder_backward_body::<false>(dz, h, decoder, g_decoder, g_bias, dh) }
}

/// [`sparse_decoder_backward`] for the avx512vl set: the tail of m mod 8 entries with
/// mask-register loads and stores (AVX2's `vmaskmovps` store is slow on AMD cores), and for
/// m ≤ 32 h and dh held in registers across the example's non-zero dz_i (in memory, every
/// update of dh would wait on the previous one's store). The same arithmetic in the same
/// order, so the same bits (a test checks it).
///
/// # Safety
/// The CPU must support AVX2, FMA, AVX-512F and AVX-512VL.
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
pub(super) unsafe fn sparse_decoder_backward_avx512(
    dz: &[f32],
    h: &[f32],
    decoder: &[f32],
    g_decoder: &mut [f32],
    g_bias: &mut [f32],
    dh: &mut [f32],
) {
    // SAFETY: the bodies need AVX2, FMA, AVX-512F and AVX-512VL, this function's
    // contract (and enabled here); they check their memory accesses themselves.
    unsafe {
        match h.len().div_ceil(LANES) {
            1 => sparse_decoder_backward_held::<1>(dz, h, decoder, g_decoder, g_bias, dh),
            2 => sparse_decoder_backward_held::<2>(dz, h, decoder, g_decoder, g_bias, dh),
            3 => sparse_decoder_backward_held::<3>(dz, h, decoder, g_decoder, g_bias, dh),
            4 => sparse_decoder_backward_held::<4>(dz, h, decoder, g_decoder, g_bias, dh),
            _ => sparse_decoder_backward_body::<true>(dz, h, decoder, g_decoder, g_bias, dh),
        }
    }
}

/// [`sparse_decoder_backward_body`] for 8(V − 1) < m ≤ 8V, with h and dh in V registers
/// (the last one masked when 8 ∤ m). Needs AVX-512VL (inlined into a function that has it).
///
/// # Safety
/// The CPU must support AVX2, FMA, AVX-512F and AVX-512VL. (Memory accesses are checked by the
/// asserts below.)
#[inline(always)]
unsafe fn sparse_decoder_backward_held<const V: usize>(
    dz: &[f32],
    h: &[f32],
    decoder: &[f32],
    g_decoder: &mut [f32],
    g_bias: &mut [f32],
    dh: &mut [f32],
) {
    // SAFETY: the CPU features are this function's contract; every access is in bounds by
    // the asserts above it (the note after them says why).
    unsafe {
        let (n, m) = (dz.len(), h.len());
        assert!(m.div_ceil(LANES) == V);
        assert!(decoder.len() == n * m && g_decoder.len() == n * m);
        assert!(g_bias.len() == n && dh.len() == m);
        let zero = _mm256_setzero_ps();
        // Lanes of the last register that hold entries 8(V − 1).. < m.
        let last = ((1u32 << (m - LANES * (V - 1))) - 1) as __mmask8;
        // SAFETY (all loads and stores of this function): register v covers entries 8v..8v + 8,
        // all below m for v < V − 1, and those below m under `last` for v = V − 1; rows
        // i·m..i·m + m lie within D and dD (i < n); h and dh hold m entries (asserted above).
        let load = |p: *const f32, v: usize| {
            if v + 1 < V || last == 0xff {
                _mm256_loadu_ps(p.add(LANES * v))
            } else {
                _mm256_maskz_loadu_ps(last, p.add(LANES * v))
            }
        };
        let store = |p: *mut f32, v: usize, x: __m256| {
            if v + 1 < V || last == 0xff {
                _mm256_storeu_ps(p.add(LANES * v), x)
            } else {
                _mm256_mask_storeu_ps(p.add(LANES * v), last, x)
            }
        };
        let mut hk = [zero; V];
        let mut acc = [zero; V];
        for v in 0..V {
            hk[v] = load(h.as_ptr(), v);
            acc[v] = load(dh.as_ptr(), v);
        }
        for_each_nonzero(dz, |i, d| {
            g_bias[i] += d;
            let vd = _mm256_set1_ps(d);
            let (row, grad) = (
                decoder.as_ptr().add(i * m),
                g_decoder.as_mut_ptr().add(i * m),
            );
            for v in 0..V {
                // dD_i += dz h;  dh += dz D_i (un-fused, as the memory version).
                store(
                    grad,
                    v,
                    _mm256_add_ps(load(grad, v), _mm256_mul_ps(vd, hk[v])),
                );
                acc[v] = _mm256_add_ps(acc[v], _mm256_mul_ps(vd, load(row, v)));
            }
        });
        for v in 0..V {
            store(dh.as_mut_ptr(), v, acc[v]);
        }
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA, and AVX-512F and AVX-512VL when `MASK_REGISTERS`.
/// (Memory accesses are checked by the asserts below.)
#[inline(always)]
unsafe fn sparse_decoder_backward_body<const MASK_REGISTERS: bool>(
    dz: &[f32],
    h: &[f32],
    decoder: &[f32],
    g_decoder: &mut [f32],
    g_bias: &mut [f32],
    dh: &mut [f32],
) {
    // SAFETY: the CPU features are this function's contract; every access is in bounds by
    // the asserts above it (the notes in the loop say why).
    unsafe {
        let (n, m) = (dz.len(), h.len());
        assert!(decoder.len() == n * m && g_decoder.len() == n * m);
        assert!(g_bias.len() == n && dh.len() == m);
        let full = m / LANES * LANES;
        // Lane l of the tail is on (sign bit set) when full + l < m.
        let tail = _mm256_cmpgt_epi32(
            _mm256_set1_epi32((m - full) as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        for_each_nonzero(dz, |i, d| {
            g_bias[i] += d;
            let vd = _mm256_set1_ps(d);
            let (row, grad) = (
                decoder.as_ptr().add(i * m),
                g_decoder.as_mut_ptr().add(i * m),
            );
            let mut k = 0;
            // SAFETY: k + 8 ≤ full ≤ m, and rows i·m..i·m + m lie within D and dD (i < n);
            // h and dh hold m entries.
            while k < full {
                let at = grad.add(k);
                let hk = _mm256_loadu_ps(h.as_ptr().add(k));
                _mm256_storeu_ps(
                    at,
                    _mm256_add_ps(_mm256_loadu_ps(at), _mm256_mul_ps(vd, hk)),
                );
                let dhk = dh.as_mut_ptr().add(k);
                let dk = _mm256_loadu_ps(row.add(k));
                _mm256_storeu_ps(
                    dhk,
                    _mm256_add_ps(_mm256_loadu_ps(dhk), _mm256_mul_ps(vd, dk)),
                );
                k += LANES;
            }
            if full < m && MASK_REGISTERS {
                // The same with AVX-512VL mask registers (k has bit l set when full + l < m).
                let k = ((1u32 << (m - full)) - 1) as __mmask8;
                let at = grad.add(full);
                let hk = _mm256_maskz_loadu_ps(k, h.as_ptr().add(full));
                let sum = _mm256_add_ps(_mm256_maskz_loadu_ps(k, at), _mm256_mul_ps(vd, hk));
                _mm256_mask_storeu_ps(at, k, sum);
                let dhk = dh.as_mut_ptr().add(full);
                let dk = _mm256_maskz_loadu_ps(k, row.add(full));
                let sum = _mm256_add_ps(_mm256_maskz_loadu_ps(k, dhk), _mm256_mul_ps(vd, dk));
                _mm256_mask_storeu_ps(dhk, k, sum);
            } else if full < m {
                // The last m − full < 8 entries with masked loads and stores (lanes past m
                // are neither read nor written).
                let at = grad.add(full);
                let hk = _mm256_maskload_ps(h.as_ptr().add(full), tail);
                let sum = _mm256_add_ps(_mm256_maskload_ps(at, tail), _mm256_mul_ps(vd, hk));
                _mm256_maskstore_ps(at, tail, sum);
                let dhk = dh.as_mut_ptr().add(full);
                let dk = _mm256_maskload_ps(row.add(full), tail);
                let sum = _mm256_add_ps(_mm256_maskload_ps(dhk, tail), _mm256_mul_ps(vd, dk));
                _mm256_maskstore_ps(dhk, tail, sum);
            }
        });
    }
}

/// Calls `visit(i, dz_i)` for every dz_i ≠ 0 in increasing i: a vector compare per 8 entries,
/// then bit scans (a branch per entry would mispredict on every other active one).
///
/// # Safety
/// The CPU must support AVX.
#[inline(always)]
unsafe fn for_each_nonzero(dz: &[f32], mut visit: impl FnMut(usize, f32)) {
    // SAFETY: AVX is this function's contract; the one load is in bounds (note below).
    unsafe {
        let (n, zero) = (dz.len(), _mm256_setzero_ps());
        let mut block = 0;
        while block < n {
            let mut bits = if block + LANES <= n {
                // SAFETY: block + 8 ≤ n = len of dz.
                let v = _mm256_loadu_ps(dz.as_ptr().add(block));
                _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(v, zero)) as u32
            } else {
                (block..n).fold(0u32, |b, i| b | ((dz[i] != 0.0) as u32) << (i - block))
            };
            while bits != 0 {
                let i = block + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                visit(i, dz[i]);
            }
            block += LANES;
        }
    }
}
