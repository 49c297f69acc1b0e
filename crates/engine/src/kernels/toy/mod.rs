//! Fast f32 loss and gradient of the toy models (experiments.md §2), used by training.
//!
//! Naive twin: [`ToyShape::loss_and_gradient_reference`] (generic over f32/f64, gradient-checked
//! against finite differences). The harness (`tests.rs`) checks this kernel against it for every
//! kind and every kernel set the CPU supports, on fixed and random shapes and densities.
//!
//! Files: this one is the dispatch — the entry points, how a step is cut into chunks and tiles,
//! the all-zero examples, and small helpers shared by both paths; `small.rs` is the m ≤ 8 tile,
//! `large.rs` the m > 8 tile, `simd.rs` the intrinsics copies of their innermost loops (AVX2 and
//! AVX-512VL: the kernels' `unsafe` code, with [`super::gemm`]'s call of `sgemm`). Which
//! [`KernelSet`] runs is passed in (`_with`) or [`cpu::active`]'s.
//!
//! Letters: B batch, n features, m hidden, T examples per tile, c_i = 2 I_i / (B n).
//! Per example (y = x, or |x| for the abs model; E encoder rows, D decoder rows, E = D when tied):
//!
//! ```text
//! pre = Σ_{x_j≠0} x_j E_j          [m]      h = pre, or ReLU(pre) for relu-hidden / abs
//! z_i = D_i·h + b_i                [n]      x̂_i = z_i (linear) or ReLU(z_i)
//! L   = 1/(B n) Σ_b Σ_i I_i (x̂_i − y_i)²
//! dz_i = c_i (x̂_i − y_i) 1[z_i > 0 or linear]
//! db_i += dz_i ;  dD_i += dz_i h ;  dh = Σ_i dz_i D_i ;  dpre = dh ⊙ 1[pre > 0] (ReLU hidden)
//! dE_j += x_j dpre  (x_j ≠ 0 only)
//! ```
//!
//! How the batch is cut (all of it fixed by the shape and B, never by the thread count):
//! - **chunks** of [`CHUNK_EXAMPLES`] examples when B·n·m is large ([`PARALLEL_WORK`]): each chunk
//!   writes its own gradient, chunks run in parallel on rayon, and their gradients and losses are
//!   added in chunk order. Small problems are one chunk.
//! - in a chunk, examples with x = 0 are handled together in closed form (`zero_examples`); the
//!   others are gathered and processed in **tiles** of at most T examples: `small_tile` (m ≤ 8,
//!   activations stored [m, T], loops along the batch) or `large_tile` (m > 8, activations
//!   [T, m], the decoder forward fused with the loss and dz, GEMMs for the other dense products,
//!   dz = 0 skipping in the backward pass).
//! - a batch drawn dense and feature-major ([`DenseBatch`], [`loss_and_gradient_dense`]) skips the
//!   gathering: the small path's tiles are T consecutive examples, zeros included, read in place
//!   as rows of the [n, S] input matrix.

use super::{gemm, MatMut, MatRef};
use crate::cpu::{self, KernelSet};
use crate::data::batch::{DenseBatch, SparseBatch};
// The shape from its own file, not the folder's re-exports: models/toy/task.rs calls these
// kernels, so importing through models/toy/mod.rs would make a circle.
use crate::models::toy::shape::{ToyKind, ToyShape};
use rayon::prelude::*;
use std::ops::Range;

/// Width of the explicit accumulator arrays. Floating-point addition is not associative, so the
/// compiler may not vectorise a reduction `s += a[t] b[t]` by itself; keeping `LANES` independent
/// partial sums (as ndarray's `unrolled_dot` does) lets it, with a fixed and therefore deterministic
/// summation order. 8 = one AVX2 register of f32.
const LANES: usize = 8;

/// Examples per chunk when a step is split into chunks.
pub const CHUNK_EXAMPLES: usize = 256;

/// Dense-equivalent work B·n·m (multiply-adds of one decoder pass) above which a step is split into
/// chunks that may run on several threads. Below it, rayon's fork-join overhead (microseconds) is
/// not worth paying.
pub const PARALLEL_WORK: usize = 1 << 21;

/// How one step of a shape is cut into chunks and tiles: a function of (shape, B) only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Examples per chunk (B when the step is not split).
    pub chunk: usize,
    /// Maximum non-zero examples per tile (a multiple of `LANES`).
    pub tile: usize,
    /// Whether the small-m path (`small_tile`) is used.
    pub small: bool,
}

impl Plan {
    /// The plan for `shape` at batch size `batch_size`.
    pub fn new(shape: &ToyShape, batch_size: usize) -> Self {
        let (n, m) = (shape.n_features, shape.n_hidden);
        let small = m <= 8;
        // Tiles keep their activations in cache: the small path's [n, T] targets within 64 KiB, the
        // large path's [T, n] outputs within 256 KiB of a 1 MiB L2.
        let budget = if small { 16 * 1024 } else { 64 * 1024 };
        let tile = (budget / n.max(1)).clamp(16, 256) / LANES * LANES;
        let chunk = if batch_size * n * m >= PARALLEL_WORK {
            CHUNK_EXAMPLES
        } else {
            batch_size.max(1)
        };
        Plan { chunk, tile, small }
    }
}

/// Scratch of one chunk; every buffer is resized on use and reused across steps.
#[derive(Clone, Debug, Default)]
struct ChunkScratch {
    /// The chunk's gradient [P] (when the step has several chunks).
    gradient: Vec<f32>,
    /// Indices of the chunk's examples that have a non-zero.
    rows: Vec<u32>,
    /// slot[b − origin] = position of example b among `rows` (for b with a non-zero).
    slot: Vec<u32>,
    /// First example of the chunk.
    origin: usize,
    /// Encoder output pre: [m, T] (small) or [T, m] (large).
    pre: Vec<f32>,
    /// ReLU(pre) for relu-hidden and abs models.
    hidden: Vec<f32>,
    /// dL/dh, then dL/dpre.
    dhidden: Vec<f32>,
    /// Outputs z, then dz: [T, n] (large path).
    z: Vec<f32>,
    /// Targets y: [n, T] (small) or [T, n] (large).
    y: Vec<f32>,
    /// Dense x of a dense tile [T, n] (large path), or the lane mask [T] (small path).
    x: Vec<f32>,
    /// Indices i of one example's non-zero dz_i [n] (large path).
    active: Vec<u32>,
    /// Dense inputs x [n, T] of a small-path tile encoded densely ([`small::small_tile`]).
    dense_x: Vec<f32>,
    /// One example's squared errors [n] (large path).
    e2: Vec<f32>,
    /// Whether `y` holds only zeros (the large path leaves it so).
    y_is_zero: bool,
}

/// Reusable memory of [`loss_and_gradient`].
#[derive(Clone, Debug, Default)]
pub struct ToyKernelWorkspace {
    chunks: Vec<ChunkScratch>,
    /// c_i = 2 I_i / (B n).
    coefficient: Vec<f32>,
    /// Dᵀ [m, n] for the large path's fused decoder pass ([`simd::decoder_forward`]).
    decoder_transposed: Vec<f32>,
}

/// Everything a tile reads.
struct Problem<'a> {
    /// The kernel set; `run` checked that the CPU supports it before building the problem, which
    /// is what makes the intrinsics calls below sound.
    set: KernelSet,
    kind: ToyKind,
    n: usize,
    m: usize,
    tile: usize,
    /// Encoder rows E [n, m], decoder rows D [n, m], bias b [n].
    encoder: &'a [f32],
    decoder: &'a [f32],
    bias: &'a [f32],
    /// I [n] and c [n].
    importance: &'a [f32],
    coefficient: &'a [f32],
    /// Offsets of dE, dD and db in the gradient.
    encoder_at: usize,
    decoder_at: usize,
    bias_at: usize,
    input: Input<'a>,
    /// Dᵀ [m, n] (large path, SIMD sets; empty otherwise).
    decoder_transposed: &'a [f32],
}

/// The batch a step reads: compressed rows, or a dense feature-major matrix (small path only).
#[derive(Clone, Copy)]
enum Input<'a> {
    Rows(&'a SparseBatch),
    Dense(&'a DenseBatch),
}

impl<'a> Input<'a> {
    /// The compressed rows; the paths that call this never see a dense batch.
    #[inline(always)]
    fn rows(self) -> &'a SparseBatch {
        match self {
            Input::Rows(batch) => batch,
            Input::Dense(_) => unreachable!("dense batches run on the small path only"),
        }
    }
}

impl Problem<'_> {
    #[inline(always)]
    fn target(&self, x: f32) -> f32 {
        if self.kind == ToyKind::AbsoluteValue {
            x.abs()
        } else {
            x
        }
    }

    /// (x̂, whether dx̂/dz = 1) for output pre-activation z.
    #[inline(always)]
    fn output(&self, z: f32) -> (f32, bool) {
        if self.kind.relu_output() {
            (z.max(0.0), z > 0.0)
        } else {
            (z, true)
        }
    }
}

/// L = 1/(B n) Σ_b Σ_i I_i (x̂_i − y_i)² of one batch, and dL/dθ written into `gradient`
/// (overwritten). Same contract and parameter layout as the naive twin
/// [`ToyShape::loss_and_gradient_reference`]; shapes: parameters \[P\], importance \[n\], gradient \[P\].
///
/// The result is a function of the inputs only: the step is cut into chunks by [`Plan`] (from the
/// shape and B), chunks may run on any rayon threads, and their results are added in chunk order.
pub fn loss_and_gradient(
    shape: &ToyShape,
    parameters: &[f32],
    batch: &SparseBatch,
    importance: &[f32],
    gradient: &mut [f32],
    workspace: &mut ToyKernelWorkspace,
) -> f64 {
    loss_and_gradient_with(
        cpu::active(),
        shape,
        parameters,
        batch,
        importance,
        gradient,
        workspace,
    )
}

/// [`loss_and_gradient`] with a chosen [`KernelSet`] instead of [`cpu::active`] (tests check every
/// set against the naive twin). Panics if the CPU cannot run `set`.
pub fn loss_and_gradient_with(
    set: KernelSet,
    shape: &ToyShape,
    parameters: &[f32],
    batch: &SparseBatch,
    importance: &[f32],
    gradient: &mut [f32],
    workspace: &mut ToyKernelWorkspace,
) -> f64 {
    let input = Input::Rows(batch);
    run(
        set, shape, parameters, input, importance, gradient, workspace,
    )
}

/// [`loss_and_gradient`] of a batch drawn dense and feature-major
/// ([`crate::data::sparse::FeatureDistribution::sample_dense_into`]). For m ≤ 8 the tiles are read
/// in place from the [n, S] matrix; for larger m the same examples run as compressed rows (converted
/// here, at O(B n) next to the large path's O(B n m) products).
pub fn loss_and_gradient_dense(
    shape: &ToyShape,
    parameters: &[f32],
    batch: &DenseBatch,
    importance: &[f32],
    gradient: &mut [f32],
    workspace: &mut ToyKernelWorkspace,
) -> f64 {
    loss_and_gradient_dense_with(
        cpu::active(),
        shape,
        parameters,
        batch,
        importance,
        gradient,
        workspace,
    )
}

/// [`loss_and_gradient_dense`] with a chosen [`KernelSet`]. Panics if the CPU cannot run `set`.
pub fn loss_and_gradient_dense_with(
    set: KernelSet,
    shape: &ToyShape,
    parameters: &[f32],
    batch: &DenseBatch,
    importance: &[f32],
    gradient: &mut [f32],
    workspace: &mut ToyKernelWorkspace,
) -> f64 {
    assert_eq!(batch.n_features(), shape.n_features);
    if !Plan::new(shape, batch.batch_size()).small {
        let rows = batch.to_sparse();
        let input = Input::Rows(&rows);
        return run(
            set, shape, parameters, input, importance, gradient, workspace,
        );
    }
    let input = Input::Dense(batch);
    run(
        set, shape, parameters, input, importance, gradient, workspace,
    )
}

/// The body of every entry point.
fn run(
    set: KernelSet,
    shape: &ToyShape,
    parameters: &[f32],
    input: Input,
    importance: &[f32],
    gradient: &mut [f32],
    workspace: &mut ToyKernelWorkspace,
) -> f64 {
    assert!(set.is_supported(), "this CPU cannot run kernel set {set}");
    let (n, m) = (shape.n_features, shape.n_hidden);
    let batch_size = match input {
        Input::Rows(batch) => batch.batch_size(),
        Input::Dense(batch) => batch.batch_size(),
    };
    assert_eq!(parameters.len(), shape.parameter_count());
    assert_eq!(gradient.len(), parameters.len());
    assert_eq!(importance.len(), n);
    let plan = Plan::new(shape, batch_size);
    let (encoder_at, decoder_at, bias_at) = shape.offsets();
    let scale = 1.0 / (batch_size * n) as f64;
    workspace.coefficient.clear();
    workspace
        .coefficient
        .extend(importance.iter().map(|&i| (2.0 * i as f64 * scale) as f32));
    // The fused decoder pass of the large path reads Dᵀ: 8 consecutive features per k.
    workspace.decoder_transposed.clear();
    if !plan.small && set != KernelSet::Portable {
        let decoder = &parameters[decoder_at..decoder_at + n * m];
        workspace.decoder_transposed.resize(n * m, 0.0);
        for (i, row) in decoder.chunks_exact(m).enumerate() {
            for (k, &d) in row.iter().enumerate() {
                workspace.decoder_transposed[k * n + i] = d;
            }
        }
    }
    let problem = Problem {
        set,
        kind: shape.kind,
        n,
        m,
        tile: plan.tile,
        encoder: &parameters[encoder_at..encoder_at + n * m],
        decoder: &parameters[decoder_at..decoder_at + n * m],
        bias: &parameters[bias_at..bias_at + n],
        importance,
        coefficient: &workspace.coefficient,
        encoder_at,
        decoder_at,
        bias_at,
        input,
        decoder_transposed: &workspace.decoder_transposed,
    };
    let chunks = batch_size.div_ceil(plan.chunk).max(1);
    let chunk_range = |c: usize| c * plan.chunk..((c + 1) * plan.chunk).min(batch_size);
    workspace.chunks.resize_with(chunks, ChunkScratch::default);
    if chunks == 1 {
        let sum = chunk(&problem, chunk_range(0), &mut workspace.chunks[0], gradient);
        return sum * scale;
    }
    let sums: Vec<f64> = workspace
        .chunks
        .par_iter_mut()
        .enumerate()
        .with_max_len(1)
        .map(|(c, scratch)| {
            let mut g = std::mem::take(&mut scratch.gradient);
            g.resize(parameters.len(), 0.0);
            let sum = chunk(&problem, chunk_range(c), scratch, &mut g);
            scratch.gradient = g;
            sum
        })
        .collect();
    // Fixed-order reduction: chunk 0, then + chunk 1, + chunk 2, … for every component; the
    // components are split into ranges that may run on any thread (the order per component is
    // the same whatever the split).
    const RANGE: usize = 1 << 14;
    let chunks = &workspace.chunks;
    gradient
        .par_chunks_mut(RANGE)
        .enumerate()
        .for_each(|(r, g)| {
            let start = r * RANGE;
            g.copy_from_slice(&chunks[0].gradient[start..start + g.len()]);
            for scratch in &chunks[1..] {
                for (g, &c) in g.iter_mut().zip(&scratch.gradient[start..]) {
                    *g += c;
                }
            }
        });
    sums.iter().sum::<f64>() * scale
}

/// One chunk: overwrites `gradient` with the chunk's dL/dθ and returns Σ I_i (x̂_i − y_i)² over its
/// examples (not yet divided by B n). Dispatches to the AVX2 copy for the SIMD sets.
fn chunk(p: &Problem, range: Range<usize>, s: &mut ChunkScratch, gradient: &mut [f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if p.set >= KernelSet::Avx2Fma {
        // SAFETY: chunk_avx2's only precondition is that the CPU supports AVX2 and FMA, which
        // every set from Avx2Fma on requires; `run` checked that the CPU supports `p.set`.
        return unsafe { chunk_avx2(p, range, s, gradient) };
    }
    chunk_body(p, range, s, gradient)
}

/// [`chunk_body`] compiled with AVX2 and FMA enabled (8-wide vectors for the loops along the batch).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_avx2(
    p: &Problem,
    range: Range<usize>,
    s: &mut ChunkScratch,
    gradient: &mut [f32],
) -> f64 {
    chunk_body(p, range, s, gradient)
}

#[inline(always)]
fn chunk_body(p: &Problem, range: Range<usize>, s: &mut ChunkScratch, g: &mut [f32]) -> f64 {
    g.fill(0.0);
    let mut rows = std::mem::take(&mut s.rows);
    rows.clear();
    let mut zeros = 0;
    match p.input {
        // Every example, in order: tiles are consecutive columns of the dense matrix.
        Input::Dense(_) => rows.extend(range.start as u32..range.end as u32),
        Input::Rows(batch) => {
            // Branch-free compaction of the examples with a non-zero (at low density most are
            // empty, in no predictable pattern).
            let starts = &batch.row_start;
            rows.resize(range.len(), 0);
            s.slot.clear();
            s.slot.resize(range.len(), 0);
            s.origin = range.start;
            let mut count = 0;
            for (b, slot) in range.clone().zip(s.slot.iter_mut()) {
                rows[count] = b as u32;
                *slot = count as u32;
                count += (starts[b] != starts[b + 1]) as usize;
            }
            rows.truncate(count);
            zeros = range.len() - count;
        }
    }
    let mut sum = 0.0;
    for tile in rows.chunks(p.tile) {
        sum += match p.m {
            1 => small::small_tile::<1>(p, tile, s, g),
            2 => small::small_tile::<2>(p, tile, s, g),
            3 => small::small_tile::<3>(p, tile, s, g),
            4 => small::small_tile::<4>(p, tile, s, g),
            5 => small::small_tile::<5>(p, tile, s, g),
            6 => small::small_tile::<6>(p, tile, s, g),
            7 => small::small_tile::<7>(p, tile, s, g),
            8 => small::small_tile::<8>(p, tile, s, g),
            _ => large::large_tile(p, tile, s, g),
        };
    }
    s.rows = rows;
    sum + zero_examples(p, zeros, g)
}

/// `count` examples with x = 0 at once: h = 0 so z = b, x̂ = act(b), y = 0 for every one of them.
/// Adds count · c_i act(b_i) 1[active] to db_i and returns count · Σ_i I_i act(b_i)². Nothing reaches
/// W: dL/dW_i = dz_i h + x_i dpre = 0. Cost O(n) for all of them.
#[inline(always)]
fn zero_examples(p: &Problem, count: usize, g: &mut [f32]) -> f64 {
    if count == 0 {
        return 0.0;
    }
    let mut sum = 0.0f64;
    for i in 0..p.n {
        let (o, active) = p.output(p.bias[i]);
        sum += (p.importance[i] * o * o) as f64;
        if active {
            g[p.bias_at + i] += count as f32 * (p.coefficient[i] * o);
        }
    }
    sum * count as f64
}

/// y ← y + a x.
#[inline(always)]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Σ_t a_t b_t with [`LANES`] partial sums (vectorises; fixed order), then the tail.
#[inline(always)]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = lane_sum(&acc);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Σ_t a_t with [`LANES`] partial sums (vectorises; fixed order), then the tail.
#[inline(always)]
fn sum8(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = a.chunks_exact(LANES);
    let rest = chunks.remainder();
    for x in chunks {
        for l in 0..LANES {
            acc[l] += x[l];
        }
    }
    let mut s = lane_sum(&acc);
    for x in rest {
        s += x;
    }
    s
}

/// Σ_l v_l in a fixed pairwise order.
#[inline(always)]
fn lane_sum(v: &[f32; LANES]) -> f32 {
    ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))
}

mod large;
#[cfg(target_arch = "x86_64")]
mod simd;
mod small;

#[cfg(test)]
mod tests;
