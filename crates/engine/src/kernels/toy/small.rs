//! The small-m path (m ≤ 8) of the toy kernel: one tile of examples with its activations stored
//! [m, T], so that every loop runs along the batch and fills the SIMD lanes whatever n and m are;
//! the encoder over the non-zeros or densely (a dense batch read in place). It owns the tile's
//! arithmetic in portable loops and the choice of [`super::simd`]'s copies for the SIMD sets; it
//! does not own how the batch is cut into chunks and tiles ([`super`]) nor m > 8 ([`super::large`]).

#[cfg(target_arch = "x86_64")]
use super::simd;
use super::{axpy, dot8, sum8, ChunkScratch, Input, Problem, LANES};
use crate::cpu::KernelSet;
use crate::models::toy::shape::ToyKind;

/// A small-path tile (m ≤ 8) is encoded densely when its examples have on average at least n /
/// `DENSE_SMALL_SHARE` non-zeros: the dense encoder and encoder gradient cost n·m multiply-adds per
/// example, in 8-wide vectors with no per-non-zero bookkeeping, against about nnz·m scalar
/// multiply-adds plus a gather and a scatter per non-zero for the sparse loops. Measured when
/// introduced, with `tms bench --threads 1`: dense tiles made e2 (n = 20, p = 0.1, 2.3 non-zeros
/// per non-empty example) 14% and e1 (n = 5, p = 0.05) 13% faster than the sparse loops; 8 and
/// below left e2 on the sparse loops.
const DENSE_SMALL_SHARE: usize = 16;

/// Loss and gradient of one tile of examples `rows` (each with a non-zero), for m = M ≤ 8.
/// Accumulates (+=) into the gradient `g`; returns Σ_b Σ_i I_i (x̂_i − y_i)².
///
/// Layout: pre, h, dh are [M, T] and y is [n, T] (T = `p.tile`), so every loop runs along the batch
/// and fills the SIMD lanes whatever n and M are. Per feature i, with rows of length T:
/// z = b_i + Σ_k D_ik h_k (M axpys);  on = 1[z > 0 or linear];  err = (z·on − y_i) ⊙ mask;
/// dz = c_i err ⊙ on;  db_i += Σ_t dz;  dD_ik += dz·h_k;  dh_k += D_ik dz.
/// Cost O(T n M) multiply-adds, all in contiguous loops.
///
/// The encoder pre = Σ_j x_j E_j and its gradient dE_j = Σ_t x_j[t] dpre[t] run either over the
/// non-zeros (scalar loops per example, cost ∝ nnz·M) or, when the tile has at least
/// n / [`DENSE_SMALL_SHARE`] non-zeros per example, densely over x [n, T] ([`dense_encoder`],
/// [`dense_encoder_gradient`], cost ∝ T·n·M in vectors). Which one is a function of the batch.
#[inline(always)]
pub(super) fn small_tile<const M: usize>(
    p: &Problem,
    rows: &[u32],
    s: &mut ChunkScratch,
    g: &mut [f32],
) -> f64 {
    let (n, tile) = (p.n, p.tile);
    let used = rows.len().div_ceil(LANES) * LANES;
    // Dense tiles: always for a dense batch; for rows, when the tile has enough non-zeros (they
    // are contiguous, as the examples between its rows have none).
    let (dense, nonzeros) = match p.input {
        Input::Dense(_) => (true, 0..0),
        Input::Rows(batch) => {
            let starts = &batch.row_start;
            let nonzeros = starts[rows[0] as usize] as usize
                ..starts[rows[rows.len() - 1] as usize + 1] as usize;
            (
                nonzeros.len() * DENSE_SMALL_SHARE >= rows.len() * n,
                nonzeros,
            )
        }
    };
    let ChunkScratch {
        pre,
        hidden,
        dhidden,
        z,
        y,
        x: mask,
        dense_x,
        slot,
        origin,
        y_is_zero,
        ..
    } = s;
    for buffer in [&mut *pre, &mut *dhidden] {
        buffer.clear();
        buffer.resize(M * tile, 0.0);
    }
    let relu_hidden = p.kind.relu_hidden();
    if relu_hidden {
        hidden.clear();
        hidden.resize(M * tile, 0.0);
    }
    // A dense tile reads x as n rows of `x_stride` floats; its targets are x itself unless the
    // model is abs.
    let separate_y = !dense || p.kind == ToyKind::AbsoluteValue;
    if dense && matches!(p.input, Input::Rows(_)) {
        dense_x.clear();
        dense_x.resize(n * tile, 0.0);
    }
    if separate_y {
        y.clear();
        y.resize(n * tile, 0.0);
        *y_is_zero = false;
    }
    // z holds one feature's row of outputs, then of dz; its second half the squared errors
    // (portable sweep only).
    if p.set == KernelSet::Portable {
        z.clear();
        z.resize(2 * tile, 0.0);
    }
    // Lanes past the tile's examples are padding: the portable sweep multiplies their error by
    // this mask (the AVX2 sweeps clear them in the last group).
    if p.set == KernelSet::Portable {
        mask.clear();
        mask.resize(tile, 0.0);
        mask[..rows.len()].fill(1.0);
    }

    let (x, x_stride): (&[f32], usize) = match p.input {
        // The tile's examples are consecutive: columns rows[0].. of the [n, S] matrix (padded with
        // zeros up to S ≥ rows[0] + used, as rows[0] and S are multiples of 8).
        Input::Dense(batch) => (&batch.x[rows[0] as usize..], batch.stride()),
        Input::Rows(_) if !dense => (&[], 0),
        Input::Rows(batch) => {
            // Scatter x (and y) into [n, T], flat over the non-zeros (no loop per example, whose
            // mispredicted exits would dominate).
            let first_slot = slot[rows[0] as usize - *origin];
            let slot = &slot[..];
            let entries = batch.row[nonzeros.clone()]
                .iter()
                .zip(&batch.feature[nonzeros.clone()])
                .zip(&batch.value[nonzeros]);
            let at = |b: u32, j: u32| {
                j as usize * tile + (slot[b as usize - *origin] - first_slot) as usize
            };
            for ((&b, &j), &x) in entries {
                dense_x[at(b, j)] = x;
            }
            (&dense_x[..], tile)
        }
    };
    if dense {
        if separate_y {
            for j in 0..n {
                for (y, &x) in y[j * tile..j * tile + used]
                    .iter_mut()
                    .zip(&x[j * x_stride..j * x_stride + used])
                {
                    *y = p.target(x);
                }
            }
        }
        // pre = Eᵀ x densely.
        dense_encoder::<M>(p, x, x_stride, pre, tile, used);
    } else {
        // Encoder over the non-zeros: pre_k[t] = Σ_j x_j E_jk; targets y_j[t].
        let batch = p.input.rows();
        for (t, &b) in rows.iter().enumerate() {
            let (features, values) = batch.row(b as usize);
            // Accumulate in registers: a running sum in memory would chain every non-zero of the
            // example through store-to-load forwarding.
            let mut acc = [0.0f32; M];
            for (&j, &x) in features.iter().zip(values) {
                let j = j as usize;
                let e = &p.encoder[j * M..j * M + M];
                for k in 0..M {
                    acc[k] += x * e[k];
                }
                y[j * tile + t] = p.target(x);
            }
            for k in 0..M {
                pre[k * tile + t] = acc[k];
            }
        }
    }
    let (y, y_stride): (&[f32], usize) = if separate_y { (y, tile) } else { (x, x_stride) };
    if relu_hidden {
        for (h, &v) in hidden.iter_mut().zip(pre.iter()) {
            *h = v.max(0.0);
        }
    }
    let h: &[f32] = if relu_hidden { hidden } else { pre };

    let linear = !p.kind.relu_output();
    // Lanes 0..real are the tile's examples; real..used padding.
    let real = rows.len();
    let mut sum = 0.0f64;
    // Features two at a time where the set has 32 vector registers (AVX-512VL): h and dh are
    // loaded once per pair. Each feature's sums, and dh's updates in feature order, are those of
    // the one-feature sweep, so the result is the same to the bit.
    let mut paired = 0;
    #[cfg(target_arch = "x86_64")]
    if p.set >= KernelSet::Avx512Vl && M <= 6 {
        while paired + 2 <= n {
            let i = paired;
            let d = &p.decoder[i * M..i * M + 2 * M];
            let yi = &y[i * y_stride..i * y_stride + y_stride + used];
            let features = simd::Pair {
                bias: [p.bias[i], p.bias[i + 1]],
                coefficient: [p.coefficient[i], p.coefficient[i + 1]],
            };
            // SAFETY: AVX2, FMA and AVX-512VL: the Avx512Vl set requires them, and `run`
            // checked that the CPU supports it.
            let out = unsafe {
                simd::feature_pair_sweep::<M>(
                    h, dhidden, tile, used, d, features, linear, yi, y_stride, real,
                )
            };
            for (f, sums) in out.into_iter().enumerate() {
                add_feature(p, i + f, sums, &mut sum, g);
            }
            paired += 2;
        }
    }
    for i in paired..n {
        let d = &p.decoder[i * M..i * M + M];
        let c = p.coefficient[i];
        let yi = &y[i * y_stride..i * y_stride + used];
        #[cfg(target_arch = "x86_64")]
        if p.set >= KernelSet::Avx2Fma {
            // SAFETY: feature_sweep needs AVX2 and FMA, which the set requires (checked in `run`).
            let sums = unsafe {
                simd::feature_sweep::<M>(h, dhidden, tile, used, d, p.bias[i], c, linear, yi, real)
            };
            add_feature(p, i, sums, &mut sum, g);
            continue;
        }
        let (zrow, e2row) = z.split_at_mut(tile);
        let (zrow, e2row) = (&mut zrow[..used], &mut e2row[..used]);
        zrow.fill(p.bias[i]);
        for k in 0..M {
            axpy(d[k], &h[k * tile..k * tile + used], zrow);
        }
        // Branch-free, so that it vectorises: x̂ = z · on.
        for (((zt, e2), &yt), &mt) in zrow
            .iter_mut()
            .zip(e2row.iter_mut())
            .zip(yi)
            .zip(&mask[..used])
        {
            let on = ((*zt > 0.0) | linear) as u32 as f32;
            let err = (*zt * on - yt) * mt;
            *e2 = err * err;
            *zt = c * err * on;
        }
        let dz: &[f32] = zrow;
        let mut dd = [0.0f32; M];
        for k in 0..M {
            dd[k] = dot8(dz, &h[k * tile..k * tile + used]);
            axpy(d[k], dz, &mut dhidden[k * tile..k * tile + used]);
        }
        add_feature(p, i, (sum8(e2row), sum8(dz), dd), &mut sum, g);
    }

    // dpre = dh ⊙ 1[pre > 0]; dE_j += x_j dpre over the non-zeros (or densely).
    if relu_hidden {
        for (dh, &v) in dhidden.iter_mut().zip(pre.iter()) {
            *dh *= (v > 0.0) as u32 as f32;
        }
    }
    if dense {
        dense_encoder_gradient::<M>(p, x, x_stride, dhidden, tile, used, g);
        return sum;
    }
    for (t, &b) in rows.iter().enumerate() {
        let (features, values) = p.input.rows().row(b as usize);
        let mut dpre = [0.0f32; M];
        for k in 0..M {
            dpre[k] = dhidden[k * tile + t];
        }
        for (&j, &x) in features.iter().zip(values) {
            let at = p.encoder_at + j as usize * M;
            let ge = &mut g[at..at + M];
            for k in 0..M {
                ge[k] += x * dpre[k];
            }
        }
    }
    sum
}

/// Adds one feature's sweep results (Σ err², Σ dz, [Σ dz h_k]_k) of [`small_tile`] to the loss sum
/// (weighted by I_i) and to db_i and dD_i.
#[inline(always)]
fn add_feature<const M: usize>(
    p: &Problem,
    i: usize,
    (e2, db, dd): (f32, f32, [f32; M]),
    sum: &mut f64,
    g: &mut [f32],
) {
    *sum += p.importance[i] as f64 * e2 as f64;
    g[p.bias_at + i] += db;
    for k in 0..M {
        g[p.decoder_at + i * M + k] += dd[k];
    }
}

/// Dense encoder of a small tile: pre_k[t] = Σ_j E_jk x_j[t] for lanes 0..used, with x_j at
/// `x[j · x_stride..]` and pre [M, T] (T = `tile`).
#[inline(always)]
fn dense_encoder<const M: usize>(
    p: &Problem,
    x: &[f32],
    x_stride: usize,
    pre: &mut [f32],
    tile: usize,
    used: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if p.set >= KernelSet::Avx2Fma {
        // SAFETY: AVX2 and FMA, which the set requires (checked in `run`).
        unsafe { simd::dense_encoder::<M>(p.encoder, x, x_stride, pre, p.n, tile, used) };
        return;
    }
    for j in 0..p.n {
        let xj = &x[j * x_stride..j * x_stride + used];
        for k in 0..M {
            axpy(
                p.encoder[j * M + k],
                xj,
                &mut pre[k * tile..k * tile + used],
            );
        }
    }
}

/// Dense encoder gradient of a small tile: dE_jk += Σ_t x_j[t] dpre_k[t] over lanes 0..used, with
/// x_j at `x[j · x_stride..]` and dpre [M, T]. Padding lanes hold x = 0 and dpre = 0.
#[inline(always)]
fn dense_encoder_gradient<const M: usize>(
    p: &Problem,
    x: &[f32],
    x_stride: usize,
    dpre: &[f32],
    tile: usize,
    used: usize,
    g: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if p.set >= KernelSet::Avx2Fma {
        let ge = &mut g[p.encoder_at..p.encoder_at + p.n * M];
        // SAFETY: AVX2 and FMA, which the set requires (checked in `run`).
        unsafe { simd::dense_encoder_gradient::<M>(x, x_stride, dpre, p.n, tile, used, ge) };
        return;
    }
    for j in 0..p.n {
        let xj = &x[j * x_stride..j * x_stride + used];
        for k in 0..M {
            g[p.encoder_at + j * M + k] += dot8(xj, &dpre[k * tile..k * tile + used]);
        }
    }
}
