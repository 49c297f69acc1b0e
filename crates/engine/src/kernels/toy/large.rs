//! The large-m path (m > 8) of the toy kernel: one tile of examples with activations [T, m] and
//! outputs [T, n]; the decoder forward fused with the loss and dz (SIMD sets) or a GEMM and a pass
//! over z (portable), GEMMs where the tile is dense, and dz = 0 skipping in the backward pass. It
//! owns the tile's arithmetic and the choice of [`super::simd`]'s copies; it does not own how the
//! batch is cut ([`super`]) nor m ≤ 8 ([`super::small`]).

#[cfg(target_arch = "x86_64")]
use super::simd;
use super::{axpy, gemm, sum8, ChunkScratch, MatMut, MatRef, Problem};
use crate::cpu::KernelSet;

/// Fraction of non-zeros (in tenths) from which a tile's encoder or backward pass switches from
/// scattered axpys (cost ∝ non-zeros) to one GEMM (cost ∝ T·n·m, but several times faster per
/// multiply-add). Measured on sparse-400 (n = 400, m = 30): 20% is past the crossover.
const DENSE_TENTHS: usize = 2;

/// Loss and gradient of one tile of examples `rows` (each with a non-zero), any m (used for m > 8).
/// Accumulates (+=) into `g`; returns Σ_b Σ_i I_i (x̂_i − y_i)².
///
/// Layout: pre, h, dh [T, m]; z, dz, y [T, n] (T = `rows.len()`). Steps and their equations:
/// 1. pre = X E: scattered axpys pre_t += x_j E_j over the non-zeros, or one GEMM [T,n]·[n,m] when
///    the tile is ≥ 20% dense.
/// 2. Z = H Dᵀ + b, the loss, and dz in place: one fused register-blocked pass over Dᵀ
///    ([`simd::decoder_forward`], SIMD sets), or a GEMM [T,m]·[m,n] and then one pass over z.
/// 3. Backward of the decoder: if dz is ≥ 20% non-zero, dH = dZ D and dD += dZᵀ H (two GEMMs);
///    otherwise only the non-zero dz_ti are visited: dD_i += dz h_t, dh_t += dz D_i (axpys of length m).
/// 4. dpre = dh ⊙ 1[pre > 0]; dE = Xᵀ dpre (GEMM if step 1 was one, else axpys over the non-zeros).
#[inline(always)]
pub(super) fn large_tile(p: &Problem, rows: &[u32], s: &mut ChunkScratch, g: &mut [f32]) -> f64 {
    let (n, m, t_len) = (p.n, p.m, rows.len());
    let ChunkScratch {
        pre,
        hidden,
        dhidden,
        z,
        y,
        x,
        active,
        e2,
        y_is_zero,
        ..
    } = s;
    let nonzeros: usize = rows
        .iter()
        .map(|&b| p.input.rows().row(b as usize).0.len())
        .sum();
    let dense_input = nonzeros * 10 >= DENSE_TENTHS * t_len * n;
    pre.clear();
    pre.resize(t_len * m, 0.0);
    // y [T, n] is all zeros between large tiles (each tile zeroes the targets it wrote), so it is
    // not cleared here: at n = 1000 that would be a quarter megabyte of zeros per tile.
    if !*y_is_zero || y.len() < t_len * n {
        y.clear();
        y.resize(t_len * n, 0.0);
    }
    *y_is_zero = false;
    if dense_input {
        x.clear();
        x.resize(t_len * n, 0.0);
    }
    // 1. Encoder and targets.
    for (t, &b) in rows.iter().enumerate() {
        let (features, values) = p.input.rows().row(b as usize);
        for (&j, &v) in features.iter().zip(values) {
            let j = j as usize;
            y[t * n + j] = p.target(v);
            if dense_input {
                x[t * n + j] = v;
            } else {
                axpy(v, &p.encoder[j * m..j * m + m], &mut pre[t * m..t * m + m]);
            }
        }
    }
    if dense_input {
        gemm(
            1.0,
            MatRef::row_major(x, t_len, n),
            MatRef::row_major(p.encoder, n, m),
            0.0,
            MatMut::row_major(pre, t_len, m),
        );
    }
    let relu_hidden = p.kind.relu_hidden();
    if relu_hidden {
        hidden.clear();
        hidden.extend(pre.iter().map(|&v| v.max(0.0)));
    }
    let h: &[f32] = if relu_hidden { hidden } else { pre };

    // 2. Decoder, loss and dz: one fused pass (SIMD sets), or a GEMM and a pass over z. With
    // β = 0 the GEMM does not read z, nor does the fused pass: z is not cleared first (at n = 1000
    // that would be a quarter megabyte of zeros per tile).
    if z.len() < t_len * n {
        z.resize(t_len * n, 0.0);
    }
    let z = &mut z[..t_len * n];
    let mut sum = 0.0f64;
    let mut active_count = 0usize;
    let fused = cfg!(target_arch = "x86_64") && p.set >= KernelSet::Avx2Fma;
    #[cfg(target_arch = "x86_64")]
    if fused {
        let constants = simd::OutputConstants {
            bias: p.bias,
            importance: p.importance,
            coefficient: p.coefficient,
            linear: !p.kind.relu_output(),
        };
        let transposed = p.decoder_transposed;
        (sum, active_count) = if p.set >= KernelSet::Avx512Vl {
            // SAFETY: AVX2, FMA, POPCNT, AVX-512F and AVX-512VL: the Avx512Vl set requires them
            // (checked in `run`).
            unsafe { simd::decoder_forward_avx512(h, transposed, &constants, y, t_len, z) }
        } else {
            // SAFETY: AVX2, FMA and POPCNT, which the Avx2Fma set requires (checked in `run`).
            unsafe { simd::decoder_forward(h, transposed, &constants, y, t_len, z) }
        };
    }
    if !fused {
        gemm(
            1.0,
            MatRef::row_major(h, t_len, m),
            MatRef::row_major(p.decoder, n, m).t(),
            0.0,
            MatMut::row_major(z, t_len, n),
        );
        e2.clear();
        e2.resize(n, 0.0);
        for t in 0..t_len {
            let (partial, count) =
                loss_and_dz_row(p, &mut z[t * n..t * n + n], &y[t * n..t * n + n], e2);
            sum += partial as f64;
            active_count += count;
        }
    }
    // Back to all zeros: clear the targets this tile wrote.
    for (t, &b) in rows.iter().enumerate() {
        for &j in p.input.rows().row(b as usize).0 {
            y[t * n + j as usize] = 0.0;
        }
    }
    *y_is_zero = true;

    // 3. Decoder backward.
    dhidden.clear();
    dhidden.resize(t_len * m, 0.0);
    let decoder_grad = p.decoder_at..p.decoder_at + n * m;
    if active_count * 10 >= DENSE_TENTHS * t_len * n {
        gemm(
            1.0,
            MatRef::row_major(z, t_len, n),
            MatRef::row_major(p.decoder, n, m),
            0.0,
            MatMut::row_major(dhidden, t_len, m),
        );
        gemm(
            1.0,
            MatRef::row_major(z, t_len, n).t(),
            MatRef::row_major(h, t_len, m),
            1.0,
            MatMut::row_major(&mut g[decoder_grad], n, m),
        );
        let db = &mut g[p.bias_at..p.bias_at + n];
        for t in 0..t_len {
            for (d, &v) in db.iter_mut().zip(&z[t * n..t * n + n]) {
                *d += v;
            }
        }
    } else {
        active.clear();
        active.resize(n, 0);
        #[cfg(target_arch = "x86_64")]
        let mask_registers = p.set >= KernelSet::Avx512Vl;
        for t in 0..t_len {
            let dz_row = &z[t * n..t * n + n];
            let h_t = &h[t * m..t * m + m];
            #[cfg(target_arch = "x86_64")]
            if p.set >= KernelSet::Avx2Fma {
                let (decoder_and_bias, _) = g.split_at_mut(p.bias_at + n);
                let (g_decoder, g_bias) = decoder_and_bias.split_at_mut(p.bias_at);
                let backward = if mask_registers {
                    simd::sparse_decoder_backward_avx512
                } else {
                    simd::sparse_decoder_backward
                };
                // SAFETY: AVX2 and FMA (every SIMD set), and AVX-512F and AVX-512VL for the
                // mask-register copy (the Avx512Vl set): `run` checked that the CPU has the set.
                unsafe {
                    backward(
                        dz_row,
                        h_t,
                        p.decoder,
                        &mut g_decoder[p.decoder_at..p.decoder_at + n * m],
                        &mut g_bias[..n],
                        &mut dhidden[t * m..t * m + m],
                    )
                };
                continue;
            }
            // Branch-free compaction of the indices with dz ≠ 0 (a data-dependent branch per
            // output would mispredict on every other active one).
            let mut count = 0;
            for (i, &dz) in dz_row.iter().enumerate() {
                active[count] = i as u32;
                count += (dz != 0.0) as usize;
            }
            for &i in &active[..count] {
                let i = i as usize;
                let dz = dz_row[i];
                g[p.bias_at + i] += dz;
                let at = p.decoder_at + i * m;
                axpy(dz, h_t, &mut g[at..at + m]);
                axpy(
                    dz,
                    &p.decoder[i * m..i * m + m],
                    &mut dhidden[t * m..t * m + m],
                );
            }
        }
    }

    // 4. Encoder backward.
    if relu_hidden {
        for (dh, &v) in dhidden.iter_mut().zip(pre.iter()) {
            if v <= 0.0 {
                *dh = 0.0;
            }
        }
    }
    if dense_input {
        gemm(
            1.0,
            MatRef::row_major(x, t_len, n).t(),
            MatRef::row_major(dhidden, t_len, m),
            1.0,
            MatMut::row_major(&mut g[p.encoder_at..p.encoder_at + n * m], n, m),
        );
    } else {
        for (t, &b) in rows.iter().enumerate() {
            let (features, values) = p.input.rows().row(b as usize);
            for (&j, &v) in features.iter().zip(values) {
                let at = p.encoder_at + j as usize * m;
                axpy(v, &dhidden[t * m..t * m + m], &mut g[at..at + m]);
            }
        }
    }
    sum
}

/// One example's outputs: z_i ← dz_i = c_i (x̂_i − y_i) 1[active] for z_i = (D h)_i + b_i given in
/// `z` without its bias; `e2` [n] receives I_i (x̂_i − y_i)². Returns (Σ_i I_i (x̂_i − y_i)², number
/// of non-zero dz_i). Branch-free element-wise passes, so that they vectorise.
#[inline(always)]
fn loss_and_dz_row(p: &Problem, z: &mut [f32], y: &[f32], e2: &mut [f32]) -> (f32, usize) {
    let linear = !p.kind.relu_output();
    for (((((zi, &yi), e2i), &b), &imp), &c) in z
        .iter_mut()
        .zip(y)
        .zip(e2.iter_mut())
        .zip(p.bias)
        .zip(p.importance)
        .zip(p.coefficient)
    {
        let v = *zi + b;
        let on = ((v > 0.0) | linear) as u32 as f32;
        let err = v * on - yi;
        *e2i = imp * err * err;
        *zi = c * err * on;
    }
    let count = z.iter().map(|&v| (v != 0.0) as usize).sum();
    (sum8(e2), count)
}
