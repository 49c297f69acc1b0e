//! The vectorised passes of the tested trials ([`bernoulli_trials`](super::bernoulli_trials) and
//! the feature-major draws), one copy per kernel set: portable copies (plain loops over
//! [`LaneRng`]); for `avx2-fma`, AVX2 copies (the eight lanes in two 256-bit registers per state
//! word) and POPCNT counts; for `avx512vl`, AVX-512 copies (the trial masks on 512-bit registers,
//! the expand into a dense matrix, the positions by compress). Integer arithmetic and exact
//! conversions: every copy produces the same bits as the portable one (a test checks each set).
//! Each pass takes the set and asserts that the CPU supports it (a cached comparison) before any
//! intrinsic runs. What the passes compute and in which order the sampler calls them is
//! [`super`]'s; this file owns only the copies.

use super::BLOCK;
use crate::cpu::KernelSet;
use crate::rng::LaneRng;

/// masks[k] bit q = 1 iff draw q of step k of `lanes` is below `threshold`.
pub(super) fn trial_masks(set: KernelSet, lanes: &mut LaneRng, threshold: u32, masks: &mut [u16]) {
    assert!(set.is_supported(), "this CPU cannot run kernel set {set}");
    #[cfg(target_arch = "x86_64")]
    {
        if set >= KernelSet::Avx512Vl {
            // SAFETY: AVX-512F, which the set requires (checked above).
            unsafe { avx512::trial_masks(lanes, threshold, masks) };
            return;
        }
        if set >= KernelSet::Avx2Fma {
            // SAFETY: AVX2, which the set requires (checked above).
            unsafe { avx2::trial_masks(lanes, threshold, masks) };
            return;
        }
    }
    trial_masks_portable(lanes, threshold, masks);
}

/// `values` (a multiple of 16 long) ← U[0, 1) from the top 24 bits of successive draws of
/// `lanes`, or 2U − 1 when `signed`.
pub(super) fn uniform_values(
    set: KernelSet,
    lanes: &mut LaneRng,
    signed: bool,
    values: &mut [f32],
) {
    assert!(set.is_supported(), "this CPU cannot run kernel set {set}");
    #[cfg(target_arch = "x86_64")]
    if set >= KernelSet::Avx2Fma {
        // SAFETY: AVX2, which the set requires (checked above).
        unsafe { avx2::uniform_values(lanes, signed, values) };
        return;
    }
    uniform_values_portable(lanes, signed, values);
}

/// The (row, feature) of every success, in trial order: block k's trial q is at column
/// `column_k + q` of row `row_k`, i.e. (row_k + rows[column_k + q], columns[column_k + q]);
/// (row, column) advance by 16 trials per block through the same tables. `rows` and `columns`
/// have width + 17 entries (columns hold absolute features; `start` is the group's first).
/// Writes into `out_rows` and `out_features`, which need 16 entries of room past the last
/// success; returns the number of successes.
pub(super) fn positions(
    set: KernelSet,
    masks: &[u16],
    rows: &[u32],
    columns: &[u32],
    start: usize,
    out_rows: &mut [u32],
    out_features: &mut [u32],
) -> usize {
    assert!(set.is_supported(), "this CPU cannot run kernel set {set}");
    #[cfg(target_arch = "x86_64")]
    if set >= KernelSet::Avx512Vl {
        // SAFETY: AVX-512F, which the set requires (checked above).
        return unsafe { avx512::positions(masks, rows, columns, start, out_rows, out_features) };
    }
    positions_portable(masks, rows, columns, start, out_rows, out_features)
}

/// The number of set bits of `masks`, four masks per population count.
pub(super) fn successes(set: KernelSet, masks: &[u16]) -> usize {
    assert!(set.is_supported(), "this CPU cannot run kernel set {set}");
    #[cfg(target_arch = "x86_64")]
    if set >= KernelSet::Avx2Fma {
        // SAFETY: POPCNT, which the set requires (checked above).
        return unsafe { successes_popcnt(masks) };
    }
    successes_portable(masks)
}

fn successes_portable(masks: &[u16]) -> usize {
    let mut words = masks.chunks_exact(4);
    let whole: usize = words
        .by_ref()
        .map(|w| {
            let word = w.iter().rev().fold(0u64, |a, &m| a << 16 | m as u64);
            word.count_ones() as usize
        })
        .sum();
    whole
        + words
            .remainder()
            .iter()
            .map(|m| m.count_ones() as usize)
            .sum::<usize>()
}

/// [`successes`] with the POPCNT instruction (without it, `count_ones` is a dozen bit
/// operations).
///
/// # Safety
/// The CPU must support POPCNT.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn successes_popcnt(masks: &[u16]) -> usize {
    successes_portable(masks)
}

/// The successes' values, in order, placed at their trials: the masks are rows of `width`
/// trials (a multiple of 16), row r of x starts at r · `stride` (≥ width), and
/// x[r · stride + 16c + q] = the next value if bit q of the row's mask c is set, else 0. The
/// columns width..stride are not written. `values` holds the successes and 16 more.
pub(super) fn expand(
    set: KernelSet,
    masks: &[u16],
    values: &[f32],
    width: usize,
    stride: usize,
    x: &mut [f32],
) {
    assert!(set.is_supported(), "this CPU cannot run kernel set {set}");
    #[cfg(target_arch = "x86_64")]
    if set >= KernelSet::Avx512Vl {
        // SAFETY: AVX-512F and POPCNT, which the set requires (checked above).
        unsafe { avx512::expand(masks, values, width, stride, x) };
        return;
    }
    expand_portable(masks, values, width, stride, x);
}

/// The rows of `x` that [`expand`] writes, each with its row of masks.
fn expand_rows<'a>(
    masks: &'a [u16],
    width: usize,
    stride: usize,
    x: &'a mut [f32],
) -> impl Iterator<Item = (&'a [u16], &'a mut [f32])> {
    assert!(width.is_multiple_of(BLOCK) && width <= stride && stride > 0);
    let rows = if width == 0 {
        0
    } else {
        masks.len() / (width / BLOCK)
    };
    assert!(rows * width == masks.len() * BLOCK && x.len() >= rows * stride);
    masks
        .chunks_exact(width.max(BLOCK) / BLOCK)
        .zip(x.chunks_exact_mut(stride))
        .take(rows)
        .map(move |(m, x)| (m, &mut x[..width]))
}

pub(super) fn expand_portable(
    masks: &[u16],
    values: &[f32],
    width: usize,
    stride: usize,
    x: &mut [f32],
) {
    let mut k = 0;
    for (masks, x) in expand_rows(masks, width, stride, x) {
        for (&mask, block) in masks.iter().zip(x.chunks_exact_mut(BLOCK)) {
            for (q, x) in block.iter_mut().enumerate() {
                let on = mask >> q & 1 != 0;
                *x = if on { values[k] } else { 0.0 };
                k += on as usize;
            }
        }
    }
}

pub(super) fn positions_portable(
    masks: &[u16],
    rows: &[u32],
    columns: &[u32],
    start: usize,
    out_rows: &mut [u32],
    out_features: &mut [u32],
) -> usize {
    let (mut row, mut column, mut k) = (0u32, 0usize, 0usize);
    for &mask in masks {
        let mut bits = mask as u32;
        while bits != 0 {
            let v = column + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            out_rows[k] = row + rows[v];
            out_features[k] = columns[v];
            k += 1;
        }
        row += rows[column + BLOCK];
        column = columns[column + BLOCK] as usize - start;
    }
    k
}

pub(super) fn trial_masks_portable(lanes: &mut LaneRng, threshold: u32, masks: &mut [u16]) {
    for mask in masks {
        let draws = lanes.next_halves();
        let mut bits = 0u16;
        for (q, &d) in draws.iter().enumerate() {
            bits |= ((d < threshold) as u16) << q;
        }
        *mask = bits;
    }
}

pub(super) fn uniform_values_portable(lanes: &mut LaneRng, signed: bool, values: &mut [f32]) {
    assert!(values.len().is_multiple_of(BLOCK));
    for chunk in values.chunks_exact_mut(BLOCK) {
        for (v, &d) in chunk.iter_mut().zip(&lanes.next_halves()) {
            let u = (d >> 8) as f32 * (1.0 / (1u32 << 24) as f32);
            *v = if signed { 2.0 * u - 1.0 } else { u };
        }
    }
}

/// The AVX-512F copies: trial masks, expand and positions.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::BLOCK;
    use crate::cpu::KernelSet;
    use crate::rng::LaneRng;
    use std::arch::x86_64::*;

    /// [`super::trial_masks`] on 512-bit registers: the eight lanes' state words in four
    /// registers, one xoshiro256++ step of all lanes per block ([`LaneRng::next_words`]), and
    /// an unsigned compare of its 16 32-bit halves straight into the block's mask (half q of
    /// the step is bit q, as in [`LaneRng::next_halves`]).
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn trial_masks(lanes: &mut LaneRng, threshold: u32, masks: &mut [u16]) {
        // SAFETY: AVX-512F is this function's contract; the loads and stores of the state
        // are in bounds (notes below).
        unsafe {
            let words = lanes.words();
            let mut s = [_mm512_setzero_si512(); 4];
            for (s, word) in s.iter_mut().zip(words.iter()) {
                // SAFETY: each state word holds 8 u64 = 512 bits.
                *s = _mm512_loadu_si512(word.as_ptr() as *const _);
            }
            let limit = _mm512_set1_epi32(threshold as i32);
            for mask in masks {
                let result =
                    _mm512_add_epi64(_mm512_rol_epi64::<23>(_mm512_add_epi64(s[0], s[3])), s[0]);
                let t = _mm512_slli_epi64::<17>(s[1]);
                s[2] = _mm512_xor_si512(s[2], s[0]);
                s[3] = _mm512_xor_si512(s[3], s[1]);
                s[1] = _mm512_xor_si512(s[1], s[2]);
                s[0] = _mm512_xor_si512(s[0], s[3]);
                s[2] = _mm512_xor_si512(s[2], t);
                s[3] = _mm512_rol_epi64::<45>(s[3]);
                *mask = _mm512_cmplt_epu32_mask(result, limit);
            }
            for (s, word) in s.iter().zip(words.iter_mut()) {
                // SAFETY: as above.
                _mm512_storeu_si512(word.as_mut_ptr() as *mut _, *s);
            }
        }
    }

    /// [`super::expand`] with AVX-512's expand, from a register: 16 values are loaded and
    /// the block's popcount(mask) first ones spread to its set bits. The expand is written
    /// in assembly because the compiler folds the load into it, and the expanding load from
    /// memory is microcoded on AMD Zen 4 (it took 10% of e2's time against 3% now).
    ///
    /// # Safety
    /// The CPU must support AVX-512F and POPCNT. (Every memory access is checked by the
    /// asserts below.)
    #[target_feature(enable = "avx512f,popcnt")]
    pub(super) unsafe fn expand(
        masks: &[u16],
        values: &[f32],
        width: usize,
        stride: usize,
        x: &mut [f32],
    ) {
        // SAFETY: AVX-512F and POPCNT are this function's contract; the loads and stores
        // are in bounds by the assert above (note in the loop).
        unsafe {
            assert!(values.len() >= super::successes(KernelSet::Avx512Vl, masks) + BLOCK);
            let mut k = 0;
            for (masks, x) in super::expand_rows(masks, width, stride, x) {
                for (&mask, block) in masks.iter().zip(x.chunks_exact_mut(BLOCK)) {
                    // SAFETY: k ≤ successes, so values[k..k + 16] is in bounds (asserted above);
                    // the block holds 16 floats. The assembly only reads and writes registers.
                    let v = _mm512_loadu_ps(values.as_ptr().add(k));
                    let spread: __m512;
                    std::arch::asm!(
                        "vexpandps {spread}{{{mask}}}{{z}}, {v}",
                        spread = lateout(zmm_reg) spread,
                        v = in(zmm_reg) v,
                        mask = in(kreg) mask,
                        options(pure, nomem, nostack),
                    );
                    _mm512_storeu_ps(block.as_mut_ptr(), spread);
                    k += mask.count_ones() as usize;
                }
            }
        }
    }

    /// [`super::positions`] with AVX-512 compress: the 16 candidate (row, feature) pairs of a
    /// block are loaded from the tables and the successes' packed to the front, branch-free.
    ///
    /// # Safety
    /// The CPU must support AVX-512F. (Every memory access is checked by the asserts below.)
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn positions(
        masks: &[u16],
        rows: &[u32],
        columns: &[u32],
        start: usize,
        out_rows: &mut [u32],
        out_features: &mut [u32],
    ) -> usize {
        // SAFETY: AVX-512F is this function's contract; the loads and stores are in bounds
        // by the asserts above (note in the loop).
        unsafe {
            let width = columns.len() - BLOCK - 1;
            assert!(rows.len() == columns.len() && width > 0 && columns[0] as usize == start);
            assert!(masks.len() * BLOCK < 1 << 50);
            let successes = super::successes(KernelSet::Avx512Vl, masks);
            assert!(out_rows.len() >= successes + BLOCK && out_features.len() >= successes + BLOCK);
            let inverse_width = 1.0 / width as f64;
            let mut k = 0usize;
            for (block, &mask) in masks.iter().enumerate() {
                // (row, column) of the block's first trial s = 16·block, computed afresh for every
                // block so that blocks do not wait on each other: ⌊(s + ½)/w⌋ in f64 is exact, as
                // (s + ½)/w is ≥ ½/w from an integer and its relative error is ≤ 2⁻⁵² (s < 2⁵⁰).
                let first = block * BLOCK;
                let row = ((first as f64 + 0.5) * inverse_width) as usize;
                let column = first - row * width;
                // SAFETY: column < width, so column + 16 ≤ width + 16 < len of the tables; k ≤
                // successes, so k + 16 ≤ len of the outputs (asserted above).
                let r = _mm512_loadu_si512(rows.as_ptr().add(column) as *const _);
                let f = _mm512_loadu_si512(columns.as_ptr().add(column) as *const _);
                let r = _mm512_add_epi32(r, _mm512_set1_epi32(row as u32 as i32));
                _mm512_storeu_si512(
                    out_rows.as_mut_ptr().add(k) as *mut _,
                    _mm512_maskz_compress_epi32(mask, r),
                );
                _mm512_storeu_si512(
                    out_features.as_mut_ptr().add(k) as *mut _,
                    _mm512_maskz_compress_epi32(mask, f),
                );
                k += mask.count_ones() as usize;
            }
            k
        }
    }
}

#[cfg(target_arch = "x86_64")]
// Index loops over the two halves address the four state words at once.
#[allow(clippy::needless_range_loop)]
mod avx2 {
    use super::BLOCK;
    use crate::rng::{LaneRng, RNG_LANES};
    use std::arch::x86_64::*;

    /// The state in registers: word w of lanes 0–3 in `[w][0]`, of lanes 4–7 in `[w][1]`.
    type State = [[__m256i; 2]; 4];

    /// The eight lanes' state, in registers.
    ///
    /// # Safety
    /// The CPU must support AVX2 (inlined into functions that enable it).
    #[inline(always)]
    unsafe fn load(lanes: &mut LaneRng) -> State {
        // SAFETY: AVX2 is this function's contract; the loads are in bounds (note below).
        unsafe {
            let words = lanes.words();
            let mut s = [[_mm256_setzero_si256(); 2]; 4];
            for w in 0..4 {
                for h in 0..2 {
                    // SAFETY: words[w] holds 8 u64; lanes 4h..4h+4 are in bounds.
                    s[w][h] = _mm256_loadu_si256(words[w].as_ptr().add(4 * h) as *const __m256i);
                }
            }
            s
        }
    }

    /// Writes the state back into `lanes`.
    ///
    /// # Safety
    /// The CPU must support AVX2 (inlined into functions that enable it).
    #[inline(always)]
    unsafe fn store(lanes: &mut LaneRng, s: &State) {
        // SAFETY: AVX2 is this function's contract; the stores are in bounds (note below).
        unsafe {
            let words = lanes.words();
            for w in 0..4 {
                for h in 0..2 {
                    // SAFETY: as in `load`.
                    _mm256_storeu_si256(words[w].as_mut_ptr().add(4 * h) as *mut __m256i, s[w][h]);
                }
            }
        }
    }

    /// One xoshiro256++ step of four lanes (`h` selects which four): [`LaneRng::next_words`].
    ///
    /// # Safety
    /// The CPU must support AVX2 (inlined into functions that enable it).
    #[inline(always)]
    unsafe fn step(s: &mut State, h: usize) -> __m256i {
        // SAFETY: AVX2 is this function's contract; registers only.
        unsafe {
            let rotl = |x: __m256i, k: i32| {
                _mm256_or_si256(
                    _mm256_sll_epi64(x, _mm_cvtsi32_si128(k)),
                    _mm256_srl_epi64(x, _mm_cvtsi32_si128(64 - k)),
                )
            };
            let sum = _mm256_add_epi64(s[0][h], s[3][h]);
            let result = _mm256_add_epi64(rotl(sum, 23), s[0][h]);
            let t = _mm256_slli_epi64::<17>(s[1][h]);
            s[2][h] = _mm256_xor_si256(s[2][h], s[0][h]);
            s[3][h] = _mm256_xor_si256(s[3][h], s[1][h]);
            s[1][h] = _mm256_xor_si256(s[1][h], s[2][h]);
            s[0][h] = _mm256_xor_si256(s[0][h], s[3][h]);
            s[2][h] = _mm256_xor_si256(s[2][h], t);
            s[3][h] = rotl(s[3][h], 45);
            result
        }
    }

    /// [`super::trial_masks`]: unsigned d < threshold as a signed comparison of d ⊕ 2³¹.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn trial_masks(lanes: &mut LaneRng, threshold: u32, masks: &mut [u16]) {
        // SAFETY: AVX2 is this function's contract, all that `load`, `step` and `store`
        // need.
        unsafe {
            debug_assert_eq!(BLOCK, 2 * RNG_LANES);
            let mut s = load(lanes);
            let bias = _mm256_set1_epi32(i32::MIN);
            let limit = _mm256_set1_epi32((threshold ^ 0x8000_0000) as i32);
            for mask in masks {
                let mut bits = 0u32;
                for h in 0..2 {
                    let draws = _mm256_xor_si256(step(&mut s, h), bias);
                    let below = _mm256_cmpgt_epi32(limit, draws);
                    bits |= (_mm256_movemask_ps(_mm256_castsi256_ps(below)) as u32) << (8 * h);
                }
                *mask = bits as u16;
            }
            store(lanes, &s);
        }
    }

    /// [`super::uniform_values`]: (d >> 8) converted exactly, times 2⁻²⁴ (exact), then 2u − 1
    /// (exact: u has 24 significant bits).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn uniform_values(lanes: &mut LaneRng, signed: bool, values: &mut [f32]) {
        // SAFETY: AVX2 is this function's contract, all that `load`, `step` and `store`
        // need; the stores of values are in bounds (note in the loop).
        unsafe {
            assert!(values.len().is_multiple_of(BLOCK));
            let mut s = load(lanes);
            let scale = _mm256_set1_ps(1.0 / (1u32 << 24) as f32);
            let one = _mm256_set1_ps(1.0);
            for chunk in values.chunks_exact_mut(BLOCK) {
                for h in 0..2 {
                    let draws = step(&mut s, h);
                    let u = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32::<8>(draws)), scale);
                    let v = if signed {
                        _mm256_sub_ps(_mm256_add_ps(u, u), one)
                    } else {
                        u
                    };
                    // SAFETY: chunk holds 16 f32; 8h + 8 ≤ 16.
                    _mm256_storeu_ps(chunk.as_mut_ptr().add(8 * h), v);
                }
            }
            store(lanes, &s);
        }
    }
}
