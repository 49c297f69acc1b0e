//! Fast f32 loss and gradient of the toy models (experiments.md §2), used by training.
//!
//! Naive twin: [`ToyShape::loss_and_gradient_reference`] (generic over f32/f64, gradient-checked
//! against finite differences). `mod tests` below checks this kernel against it for every kind, on
//! random shapes and densities.
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
//!   activations stored [m, T], loops along the batch) or `large_tile` (m > 8, activations [T, m],
//!   the decoder forward fused with the loss and dz, GEMMs for the other dense products, dz = 0
//!   skipping in the backward pass).
//! - a batch drawn dense and feature-major ([`DenseBatch`], [`loss_and_gradient_dense`]) skips the
//!   gathering: the small path's tiles are T consecutive examples, zeros included, read in place
//!   as rows of the [n, S] input matrix.

use super::{gemm, MatMut, MatRef};
use crate::cpu::{self, KernelSet};
use crate::data::batch::{DenseBatch, SparseBatch};
use crate::models::toy::{ToyKind, ToyShape};
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

/// Fraction of non-zeros (in tenths) from which a tile's encoder or backward pass switches from
/// scattered axpys (cost ∝ non-zeros) to one GEMM (cost ∝ T·n·m, but several times faster per
/// multiply-add). Measured on sparse-400 (n = 400, m = 30): 20% is past the crossover.
const DENSE_TENTHS: usize = 2;

/// A small-path tile (m ≤ 8) is encoded densely when its examples have on average at least n /
/// `DENSE_SMALL_SHARE` non-zeros: the dense encoder and encoder gradient cost n·m multiply-adds per
/// example, in 8-wide vectors with no per-non-zero bookkeeping, against about nnz·m scalar
/// multiply-adds plus a gather and a scatter per non-zero for the sparse loops. Measured when
/// introduced, with `tms bench --threads 1`: dense tiles made e2 (n = 20, p = 0.1, 2.3 non-zeros
/// per non-empty example) 14% and e1 (n = 5, p = 0.05) 13% faster than the sparse loops; 8 and
/// below left e2 on the sparse loops.
const DENSE_SMALL_SHARE: usize = 16;

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
    /// Dense inputs x [n, T] of a small-path tile encoded densely ([`small_tile`]).
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
    /// Dᵀ [m, n] for the large path's fused decoder pass ([`avx2::decoder_forward`]).
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
            1 => small_tile::<1>(p, tile, s, g),
            2 => small_tile::<2>(p, tile, s, g),
            3 => small_tile::<3>(p, tile, s, g),
            4 => small_tile::<4>(p, tile, s, g),
            5 => small_tile::<5>(p, tile, s, g),
            6 => small_tile::<6>(p, tile, s, g),
            7 => small_tile::<7>(p, tile, s, g),
            8 => small_tile::<8>(p, tile, s, g),
            _ => large_tile(p, tile, s, g),
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
fn small_tile<const M: usize>(
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
            let features = avx512::Pair {
                bias: [p.bias[i], p.bias[i + 1]],
                coefficient: [p.coefficient[i], p.coefficient[i + 1]],
            };
            // SAFETY: AVX2, FMA and AVX-512VL: the Avx512Vl set requires them, and `run`
            // checked that the CPU supports it.
            let out = unsafe {
                avx512::feature_pair_sweep::<M>(
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
                avx2::feature_sweep::<M>(h, dhidden, tile, used, d, p.bias[i], c, linear, yi, real)
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
        unsafe { avx2::dense_encoder::<M>(p.encoder, x, x_stride, pre, p.n, tile, used) };
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
        unsafe { avx2::dense_encoder_gradient::<M>(x, x_stride, dpre, p.n, tile, used, ge) };
        return;
    }
    for j in 0..p.n {
        let xj = &x[j * x_stride..j * x_stride + used];
        for k in 0..M {
            g[p.encoder_at + j * M + k] += dot8(xj, &dpre[k * tile..k * tile + used]);
        }
    }
}

/// Loss and gradient of one tile of examples `rows` (each with a non-zero), any m (used for m > 8).
/// Accumulates (+=) into `g`; returns Σ_b Σ_i I_i (x̂_i − y_i)².
///
/// Layout: pre, h, dh [T, m]; z, dz, y [T, n] (T = `rows.len()`). Steps and their equations:
/// 1. pre = X E: scattered axpys pre_t += x_j E_j over the non-zeros, or one GEMM [T,n]·[n,m] when
///    the tile is ≥ 20% dense.
/// 2. Z = H Dᵀ + b, the loss, and dz in place: one fused register-blocked pass over Dᵀ
///    ([`avx2::decoder_forward`], SIMD sets), or a GEMM [T,m]·[m,n] and then one pass over z.
/// 3. Backward of the decoder: if dz is ≥ 20% non-zero, dH = dZ D and dD += dZᵀ H (two GEMMs);
///    otherwise only the non-zero dz_ti are visited: dD_i += dz h_t, dh_t += dz D_i (axpys of length m).
/// 4. dpre = dh ⊙ 1[pre > 0]; dE = Xᵀ dpre (GEMM if step 1 was one, else axpys over the non-zeros).
#[inline(always)]
fn large_tile(p: &Problem, rows: &[u32], s: &mut ChunkScratch, g: &mut [f32]) -> f64 {
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
        let constants = avx2::OutputConstants {
            bias: p.bias,
            importance: p.importance,
            coefficient: p.coefficient,
            linear: !p.kind.relu_output(),
        };
        let transposed = p.decoder_transposed;
        (sum, active_count) = if p.set >= KernelSet::Avx512Vl {
            // SAFETY: AVX2, FMA, POPCNT, AVX-512F and AVX-512VL: the Avx512Vl set requires them
            // (checked in `run`).
            unsafe { avx2::decoder_forward_avx512(h, transposed, &constants, y, t_len, z) }
        } else {
            // SAFETY: AVX2, FMA and POPCNT, which the Avx2Fma set requires (checked in `run`).
            unsafe { avx2::decoder_forward(h, transposed, &constants, y, t_len, z) }
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
                    avx2::sparse_decoder_backward_avx512
                } else {
                    avx2::sparse_decoder_backward
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

/// The small-m sweep over two features at once, for the avx512vl set (AVX-512VL: 32 vector registers hold
/// both features' accumulators): [`avx2::sweep`] with F = 2, compiled with AVX-512VL.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::avx2::sweep;

    /// The two features' constants: b_i and c_i.
    #[derive(Clone, Copy)]
    pub(super) struct Pair {
        pub bias: [f32; 2],
        pub coefficient: [f32; 2],
    }

    /// Features i and i + 1 of [`super::small_tile`]: [`sweep`] with F = 2 (see there), bit for
    /// bit two calls of [`super::avx2::feature_sweep`]. d holds the two decoder rows [2, M]; y the
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
        let (b, c) = (features.bias, features.coefficient);
        // One compiled loop per output kind: no test of `linear` inside it.
        if linear {
            sweep::<M, 2, true>(h, dh, tile, used, d, b, c, y, y_stride, real)
        } else {
            sweep::<M, 2, false>(h, dh, tile, used, d, b, c, y, y_stride, real)
        }
    }
}

/// The small-m sweep with AVX2 intrinsics: the portable version's passes fused into one, so that
/// z, dz and the M accumulators stay in registers.
#[cfg(target_arch = "x86_64")]
// Index loops over the M hidden dimensions address several register arrays at once.
#[allow(clippy::needless_range_loop)]
mod avx2 {
    use super::{lane_sum, LANES};
    use std::arch::x86_64::*;

    /// Σ of a vector's 8 lanes in [`lane_sum`]'s fixed order.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[inline(always)]
    pub(super) unsafe fn lane_total(v: __m256) -> f32 {
        let mut a = [0.0f32; LANES];
        // SAFETY: a holds 8 f32.
        _mm256_storeu_ps(a.as_mut_ptr(), v);
        lane_sum(&a)
    }

    /// The decoder backward of one example of [`super::large_tile`] when few dz are non-zero: for
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
        sparse_decoder_backward_body::<false>(dz, h, decoder, g_decoder, g_bias, dh)
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
        match h.len().div_ceil(LANES) {
            1 => sparse_decoder_backward_held::<1>(dz, h, decoder, g_decoder, g_bias, dh),
            2 => sparse_decoder_backward_held::<2>(dz, h, decoder, g_decoder, g_bias, dh),
            3 => sparse_decoder_backward_held::<3>(dz, h, decoder, g_decoder, g_bias, dh),
            4 => sparse_decoder_backward_held::<4>(dz, h, decoder, g_decoder, g_bias, dh),
            _ => sparse_decoder_backward_body::<true>(dz, h, decoder, g_decoder, g_bias, dh),
        }
    }

    /// [`sparse_decoder_backward_body`] for 8(V − 1) < m ≤ 8V, with h and dh in V registers
    /// (the last one masked when 8 ∤ m). Needs AVX-512VL (inlined into a function that has it).
    #[inline(always)]
    unsafe fn sparse_decoder_backward_held<const V: usize>(
        dz: &[f32],
        h: &[f32],
        decoder: &[f32],
        g_decoder: &mut [f32],
        g_bias: &mut [f32],
        dh: &mut [f32],
    ) {
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

    #[inline(always)]
    unsafe fn sparse_decoder_backward_body<const MASK_REGISTERS: bool>(
        dz: &[f32],
        h: &[f32],
        decoder: &[f32],
        g_decoder: &mut [f32],
        g_bias: &mut [f32],
        dh: &mut [f32],
    ) {
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

    /// Calls `visit(i, dz_i)` for every dz_i ≠ 0 in increasing i: a vector compare per 8 entries,
    /// then bit scans (a branch per entry would mispredict on every other active one).
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[inline(always)]
    unsafe fn for_each_nonzero(dz: &[f32], mut visit: impl FnMut(usize, f32)) {
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

    /// What the fused decoder pass needs of each output feature.
    pub(super) struct OutputConstants<'a> {
        /// b [n], I [n], c [n].
        pub bias: &'a [f32],
        pub importance: &'a [f32],
        pub coefficient: &'a [f32],
        /// Whether x̂ = z (else ReLU(z)).
        pub linear: bool,
    }

    /// Step 2 of [`super::large_tile`] fused into one pass over [T, n], with no GEMM packing and
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
        // 16 registers: 3 × 4 accumulators and 4 rows of Dᵀ.
        decoder_forward_body::<3>(h, decoder_transposed, constants, y, t_len, dz)
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
        decoder_forward_body::<6>(h, decoder_transposed, constants, y, t_len, dz)
    }

    #[inline(always)]
    unsafe fn decoder_forward_body<const R: usize>(
        h: &[f32],
        decoder_transposed: &[f32],
        constants: &OutputConstants,
        y: &[f32],
        t_len: usize,
        dz: &mut [f32],
    ) -> (f64, usize) {
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
        /// Examples t..t + RB and features i..i + 8V; the caller keeps both inside the tile
        /// (t + RB ≤ T, i + 8V ≤ n) and the buffers at the sizes asserted in its body.
        #[inline(always)]
        unsafe fn run<const RB: usize, const V: usize>(&self, dz: &mut [f32]) -> (f64, usize) {
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

    /// dz = c·err ⊙ 1[z > 0 or LINEAR], given c·err.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[inline(always)]
    pub(super) unsafe fn output_gradient<const LINEAR: bool>(z: __m256, scaled: __m256) -> __m256 {
        if LINEAR {
            scaled
        } else {
            let on = _mm256_cmp_ps::<_CMP_GT_OQ>(z, _mm256_setzero_ps());
            _mm256_and_ps(scaled, on)
        }
    }

    /// One feature i of [`super::small_tile`]: [`sweep`] with F = 1 (see there). d is the
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
        let [out] = if linear {
            sweep::<M, 1, true>(h, dh, tile, used, d, [bias], [c], y, 0, real)
        } else {
            sweep::<M, 1, false>(h, dh, tile, used, d, [bias], [c], y, 0, real)
        };
        out
    }

    /// Features i..i + F of [`super::small_tile`] over lanes 0..used, 8 at a time (F = 1, or 2 where
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::sparse::{DenseBatch, FeatureDistribution, ValueRange};
    use crate::rng::StreamRng;

    /// Draws a random instance (parameters with a bias that switches ReLU outputs both ways) and a
    /// batch, and returns (parameters, importance, batch).
    fn instance(
        shape: &ToyShape,
        density: f64,
        batch_size: usize,
        seed: u64,
    ) -> (Vec<f32>, Vec<f32>, SparseBatch) {
        let (params, importance, batch, _) = instance_and_dense(shape, density, batch_size, seed);
        (params, importance, batch)
    }

    /// [`instance`], and the same examples drawn dense when the distribution is drawn dense.
    fn instance_and_dense(
        shape: &ToyShape,
        density: f64,
        batch_size: usize,
        seed: u64,
    ) -> (Vec<f32>, Vec<f32>, SparseBatch, Option<DenseBatch>) {
        let n = shape.n_features;
        let mut rng = StreamRng::seed_from_u64(seed);
        let values = if shape.kind == ToyKind::AbsoluteValue {
            ValueRange::Signed
        } else {
            ValueRange::Unit
        };
        let distribution = FeatureDistribution::uniform(n, density, values).unwrap();
        let dense = distribution.draws_dense().then(|| {
            let mut dense = DenseBatch::default();
            distribution.sample_dense_into(&mut rng.clone(), batch_size, &mut dense);
            dense
        });
        let batch = distribution.sample(&mut rng, batch_size);
        let mut params = vec![0.0f32; shape.parameter_count()];
        shape.initialise(&mut rng, &mut params);
        // Odd seeds: biases around 0, about half the ReLU outputs on (dense backward); even seeds:
        // negative biases as after training, most outputs off (the sparse dz ≠ 0 backward).
        let offset = if seed % 2 == 1 { -0.5 } else { -0.8 };
        let bias_at = params.len() - n;
        for b in &mut params[bias_at..] {
            *b = 0.2 * (rng.uniform_f32() + offset);
        }
        let importance = (0..n)
            .map(|i| 0.5 + rng.uniform_f32() * (0.97f32).powi(i as i32))
            .collect();
        (params, importance, batch, dense)
    }

    /// The harness: the fast kernel against the naive twin evaluated in f64 (the exact value up to
    /// 1e-16), for loss and every gradient component.
    ///
    /// Tolerance from f32 summation error. Every quantity is a nest of sums: a gradient component
    /// sums over ≤ B examples terms whose factors are themselves sums over ≤ n encoder non-zeros, m
    /// decoder products and n output features. Rounding errors along such a nest add up to at most
    /// γ_N · Σ|terms| with N the total chain length, N ≤ B + 2n + m (+ a few roundings of products
    /// and scalings: +8), and γ_N ≤ N·ε for ε = f32::EPSILON = 2⁻²³ (twice the unit roundoff, which
    /// absorbs the second-order terms). Σ|terms| is bounded by the quantity's *absolute twin*
    /// ([`absolute_twin`]: the same nest with every factor replaced by its magnitude). A wrong kernel
    /// (one example or one feature missing, a wrong sign) errs by about one term, ≥ Σ|terms|/(B n),
    /// which is above this bound for the shapes tested.
    fn check(
        sets: &[KernelSet],
        shape: ToyShape,
        density: f64,
        batch_size: usize,
        seed: u64,
    ) -> bool {
        let (params, importance, batch) = instance(&shape, density, batch_size, seed);
        for &set in sets {
            check_set(set, shape, density, batch_size, seed);
        }
        let p64: Vec<f64> = params.iter().map(|&v| v as f64).collect();
        let i64s: Vec<f64> = importance.iter().map(|&v| v as f64).collect();
        let mut exact_grad = vec![0.0f64; params.len()];
        shape.loss_and_gradient_reference(
            &p64,
            &batch,
            &i64s,
            Some(&mut exact_grad),
            &mut shape.scratch(),
        );
        // Whether the comparison was not vacuous.
        exact_grad.iter().any(|&g| g != 0.0)
    }

    fn check_set(set: KernelSet, shape: ToyShape, density: f64, batch_size: usize, seed: u64) {
        let (params, importance, batch, dense) =
            instance_and_dense(&shape, density, batch_size, seed);
        // The same examples as rows and, when drawn dense, as a dense batch: both against the twin.
        let mut fast = Vec::new();
        let mut workspace = ToyKernelWorkspace::default();
        let mut fast_grad = vec![f32::NAN; params.len()];
        let fast_loss = loss_and_gradient_with(
            set,
            &shape,
            &params,
            &batch,
            &importance,
            &mut fast_grad,
            &mut workspace,
        );
        fast.push(("rows", fast_loss, fast_grad));
        if let Some(dense) = &dense {
            let mut fast_grad = vec![f32::NAN; params.len()];
            let fast_loss = loss_and_gradient_dense_with(
                set,
                &shape,
                &params,
                dense,
                &importance,
                &mut fast_grad,
                &mut workspace,
            );
            fast.push(("dense", fast_loss, fast_grad));
        }
        let p64: Vec<f64> = params.iter().map(|&v| v as f64).collect();
        let i64s: Vec<f64> = importance.iter().map(|&v| v as f64).collect();
        let mut exact_grad = vec![0.0f64; params.len()];
        let exact_loss = shape.loss_and_gradient_reference(
            &p64,
            &batch,
            &i64s,
            Some(&mut exact_grad),
            &mut shape.scratch(),
        );
        let magnitude = absolute_twin(&shape, &params, &batch, &importance);
        let n_terms = (batch_size + 2 * shape.n_features + shape.n_hidden + 8) as f64;
        let eps = f32::EPSILON as f64;
        let tol = |scale: f64| n_terms * eps * scale + 1e-30;
        for (input, fast_loss, fast_grad) in fast {
            assert!(
                (fast_loss - exact_loss).abs() <= tol(magnitude.0),
                "{set} {input} {shape:?} p={density}: loss {fast_loss} vs {exact_loss}"
            );
            for (k, (&f, &e)) in fast_grad.iter().zip(&exact_grad).enumerate() {
                assert!(
                    (f as f64 - e).abs() <= tol(magnitude.1[k]),
                    "{set} {input} {shape:?} p={density} B={batch_size}: dθ[{k}] {f} vs {e} \
                     (bound {})",
                    tol(magnitude.1[k])
                );
            }
        }
    }

    /// Upper bounds of Σ|terms| for the loss and each gradient component: every product in the
    /// forward and backward passes replaced by the product of absolute values (so no cancellation),
    /// ReLUs kept open (an upper bound of either branch), in f64.
    fn absolute_twin(
        shape: &ToyShape,
        params: &[f32],
        batch: &SparseBatch,
        importance: &[f32],
    ) -> (f64, Vec<f64>) {
        let (n, m) = (shape.n_features, shape.n_hidden);
        let (enc, dec, bias_at) = shape.offsets();
        let a = |k: usize| params[k].abs() as f64;
        let scale = 1.0 / (batch.batch_size() * n) as f64;
        let mut loss = 0.0;
        let mut grad = vec![0.0f64; params.len()];
        for b in 0..batch.batch_size() {
            let x: Vec<f64> = batch
                .dense_row(b, n)
                .iter()
                .map(|v| v.abs() as f64)
                .collect();
            let h: Vec<f64> = (0..m)
                .map(|k| (0..n).map(|j| x[j] * a(enc + j * m + k)).sum())
                .collect();
            let mut dh = vec![0.0; m];
            for i in 0..n {
                let z: f64 =
                    (0..m).map(|k| a(dec + i * m + k) * h[k]).sum::<f64>() + a(bias_at + i);
                let err = z + x[i];
                loss += importance[i] as f64 * err * err * scale;
                let dz = 2.0 * importance[i] as f64 * err * scale;
                grad[bias_at + i] += dz;
                for k in 0..m {
                    grad[dec + i * m + k] += dz * h[k];
                    dh[k] += dz * a(dec + i * m + k);
                }
            }
            for j in 0..n {
                for k in 0..m {
                    grad[enc + j * m + k] += x[j] * dh[k];
                }
            }
        }
        (loss, grad)
    }

    /// Every kernel set this CPU runs, saying on stderr which it cannot (like matrixmultiply's
    /// tests, a CPU without AVX-512 passes having run fewer sets, and says so).
    fn sets_to_test() -> Vec<KernelSet> {
        for set in KernelSet::ALL.into_iter().filter(|s| !s.is_supported()) {
            eprintln!(
                "skipped kernel set {set}: this CPU lacks {:?}",
                set.required_features()
            );
        }
        KernelSet::supported()
    }

    #[test]
    fn fast_kernel_equals_naive_twin_for_every_kind_shape_and_density() {
        let sets = sets_to_test();
        eprintln!(
            "kernel sets tested: {:?}",
            sets.iter().map(|s| s.name()).collect::<Vec<_>>()
        );
        let mut rng = StreamRng::seed_from_u64(99);
        // Fixed cases that reach every path: small m (each M) with dense and sparse encoders, large
        // m with sparse and dense tiles, chunked steps (B·n·m ≥ PARALLEL_WORK), all-zero examples,
        // partial lanes; batches drawn dense (p ≥ 1/16) on the small path, chunked or not, and on
        // the large path.
        let fixed = [
            (400, 8, 0.1, 1000),
            (5, 2, 0.05, 1024),
            (64, 6, 0.01, 500),
            (20, 5, 0.1, 1000),
            (3, 1, 0.7, 37),
            (9, 8, 1.0, 64),
            (12, 7, 0.3, 129),
            (60, 20, 0.02, 300),
            (60, 20, 1.0, 100),
            (300, 30, 0.01, 600),
            (64, 40, 0.9, 1024),
        ];
        let mut cases: Vec<(usize, usize, f64, usize)> = fixed.to_vec();
        // And random ones.
        for _ in 0..12 {
            let n = 2 + rng.below(80) as usize;
            let m = 1 + rng.below(n.min(24) as u32) as usize;
            let density = [1.0, 0.5, 0.1, 0.02][rng.below(4) as usize];
            let batch = 1 + rng.below(700) as usize;
            cases.push((n, m, density, batch));
        }
        let (mut checks, mut informative) = (0, 0);
        for (c, &(n, m, density, batch)) in cases.iter().enumerate() {
            for kind in ToyKind::ALL {
                let shape = ToyShape {
                    kind,
                    n_features: n,
                    n_hidden: m,
                };
                for seed in [2000 + 2 * c as u64, 2001 + 2 * c as u64] {
                    checks += 1;
                    informative += check(&sets, shape, density, batch, seed) as usize;
                }
            }
        }
        // Not vacuous: almost every case has a non-zero gradient (a tiny batch with every ReLU
        // output off may not).
        assert!(informative * 10 >= checks * 9, "{informative}/{checks}");
        let big = ToyShape {
            kind: ToyKind::ReluOutput,
            n_features: 300,
            n_hidden: 30,
        };
        assert!(
            Plan::new(&big, 600).chunk < 600,
            "a chunked case is covered"
        );
    }

    /// Uniform draws in [−1, 1) from `seed` for the tests that compare the AVX2 and AVX-512VL
    /// copies of a kernel; `None` (said on stderr) when the CPU cannot run the Avx512Vl set.
    #[cfg(target_arch = "x86_64")]
    fn simd_test_draws(seed: u64) -> Option<impl FnMut(usize) -> Vec<f32>> {
        if !KernelSet::Avx512Vl.is_supported() {
            eprintln!("skipped: this CPU cannot run kernel set avx512vl");
            return None;
        }
        let mut rng = StreamRng::seed_from_u64(seed);
        Some(move |len: usize| (0..len).map(|_| 2.0 * rng.uniform_f32() - 1.0).collect())
    }

    /// The bit patterns of `v`, to compare floats exactly (−0 ≠ +0).
    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The two-feature sweep is the one-feature sweep twice, to the bit (sums and dh).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn paired_sweep_equals_two_single_sweeps() {
        let Some(mut draw) = simd_test_draws(17) else {
            return;
        };
        const M: usize = 5;
        // Targets with their own stride, as read in place from a dense batch.
        let (tile, used, y_stride) = (64, 48, 80);
        let h = draw(M * tile);
        let dh0 = draw(M * tile);
        let d = draw(2 * M);
        let y = draw(y_stride + used);
        // Lanes 43..48 are padding: a partial last group.
        let real = 43;
        for linear in [false, true] {
            let pair = avx512::Pair {
                bias: [0.1, -0.2],
                coefficient: [0.03, 0.05],
            };
            let mut dh_pair = dh0.clone();
            // SAFETY: the CPU features were checked above.
            let paired = unsafe {
                avx512::feature_pair_sweep::<M>(
                    &h,
                    &mut dh_pair,
                    tile,
                    used,
                    &d,
                    pair,
                    linear,
                    &y,
                    y_stride,
                    real,
                )
            };
            let mut dh_single = dh0.clone();
            for f in 0..2 {
                // SAFETY: as above.
                let single = unsafe {
                    avx2::feature_sweep::<M>(
                        &h,
                        &mut dh_single,
                        tile,
                        used,
                        &d[f * M..f * M + M],
                        pair.bias[f],
                        pair.coefficient[f],
                        linear,
                        &y[f * y_stride..f * y_stride + used],
                        real,
                    )
                };
                assert_eq!(single.0.to_bits(), paired[f].0.to_bits());
                assert_eq!(single.1.to_bits(), paired[f].1.to_bits());
                assert_eq!(single.2.map(f32::to_bits), paired[f].2.map(f32::to_bits));
                assert!(single.0 > 0.0);
            }
            assert_eq!(bits(&dh_single), bits(&dh_pair));
            assert_ne!(bits(&dh_single), bits(&dh0));
        }
    }

    /// The fused decoder pass in blocks of 3 examples (AVX2) and of 6 (AVX-512VL) writes the same
    /// dz bits and counts (every z_ti is the same chain of FMAs over k); the losses differ only by
    /// the grouping of an f32 sum of ≤ 24 terms per lane, bounded by 24·ε·Σ I_i err².
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fused_decoder_copies_agree() {
        let Some(mut draw) = simd_test_draws(29) else {
            return;
        };
        for (t_len, n, m, linear) in [(37, 403, 30, false), (20, 64, 9, true), (6, 13, 40, false)] {
            let (h, transposed) = (draw(t_len * m), draw(m * n));
            let (bias, coefficient) = (draw(n), draw(n));
            // Importances are positive: the loss is a sum of positive terms.
            let importance: Vec<f32> = draw(n).iter().map(|v| v.abs()).collect();
            let mut y = draw(t_len * n);
            for (k, v) in y.iter_mut().enumerate() {
                *v = if k % 5 == 0 { v.abs() } else { 0.0 };
            }
            let constants = avx2::OutputConstants {
                bias: &bias,
                importance: &importance,
                coefficient: &coefficient,
                linear,
            };
            let (mut a, mut b) = (vec![f32::NAN; t_len * n], vec![f32::NAN; t_len * n]);
            // SAFETY: the CPU features were checked above.
            let (la, ca) =
                unsafe { avx2::decoder_forward(&h, &transposed, &constants, &y, t_len, &mut a) };
            let (lb, cb) = unsafe {
                avx2::decoder_forward_avx512(&h, &transposed, &constants, &y, t_len, &mut b)
            };
            assert_eq!(bits(&a), bits(&b));
            assert_eq!(ca, cb);
            assert!(ca > 0 && ca < t_len * n || linear);
            assert!(
                (la - lb).abs() <= 24.0 * f32::EPSILON as f64 * la.abs(),
                "{la} vs {lb}"
            );
        }
    }

    /// The mask-register copy of the sparse decoder backward (h and dh in registers for m ≤ 32)
    /// gives the bits of the AVX2 copy (h and dh in memory), for every register count and tail.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sparse_decoder_backward_copies_agree_to_the_bit() {
        let Some(mut draw) = simd_test_draws(23) else {
            return;
        };
        for (n, m) in [(37, 3), (40, 8), (19, 13), (64, 30), (8, 32), (30, 45)] {
            // About a third of dz non-zero, in no regular pattern.
            let mut dz = draw(n);
            for (i, v) in dz.iter_mut().enumerate() {
                if (i * 7919) % 3 != 0 {
                    *v = 0.0;
                }
            }
            let (h, decoder) = (draw(m), draw(n * m));
            let (g0, b0, dh0) = (draw(n * m), draw(n), draw(m));
            let (mut ga, mut ba, mut dha) = (g0.clone(), b0.clone(), dh0.clone());
            let (mut gb, mut bb, mut dhb) = (g0.clone(), b0.clone(), dh0.clone());
            // SAFETY: the CPU features were checked above.
            unsafe {
                avx2::sparse_decoder_backward(&dz, &h, &decoder, &mut ga, &mut ba, &mut dha);
                avx2::sparse_decoder_backward_avx512(&dz, &h, &decoder, &mut gb, &mut bb, &mut dhb);
            }
            assert_eq!(bits(&ga), bits(&gb), "dD, n={n} m={m}");
            assert_eq!(bits(&ba), bits(&bb), "db, n={n} m={m}");
            assert_eq!(bits(&dha), bits(&dhb), "dh, n={n} m={m}");
            assert_ne!(bits(&dha), bits(&dh0), "dh moved, n={n} m={m}");
        }
    }

    /// The loss and gradient bits of `set` on one drawn instance (rows, and dense when drawn dense).
    fn kernel_bits(
        set: KernelSet,
        shape: &ToyShape,
        density: f64,
        batch_size: usize,
        seed: u64,
    ) -> Vec<(u64, Vec<u32>)> {
        let (params, importance, batch, dense) =
            instance_and_dense(shape, density, batch_size, seed);
        let mut workspace = ToyKernelWorkspace::default();
        let mut out = Vec::new();
        let mut g = vec![f32::NAN; params.len()];
        let loss = loss_and_gradient_with(
            set,
            shape,
            &params,
            &batch,
            &importance,
            &mut g,
            &mut workspace,
        );
        out.push((loss.to_bits(), bits(&g)));
        if let Some(dense) = dense {
            let loss = loss_and_gradient_dense_with(
                set,
                shape,
                &params,
                &dense,
                &importance,
                &mut g,
                &mut workspace,
            );
            out.push((loss.to_bits(), bits(&g)));
        }
        out
    }

    /// What `cpu`'s module doc claims of the kernels: avx2-fma and avx512vl give the same gradient
    /// bits on every path and the same loss bits for m ≤ 8, but not the same loss for m > 8 (the
    /// fused decoder pass groups its f32 loss sums by 3 or 6 examples); portable differs from
    /// both (FMA). The inequalities are witnesses that the distinction is real.
    #[test]
    fn kernel_sets_agree_and_differ_as_the_cpu_module_says() {
        if !KernelSet::Avx512Vl.is_supported() {
            eprintln!("skipped: comparing the sets needs avx512vl, which this CPU cannot run");
            return;
        }
        let (mut large_loss_differs, mut portable_differs) = (false, false);
        let cases = [
            (20, 5, 0.1, 1000),
            (5, 2, 0.05, 1024),
            (9, 8, 1.0, 64),
            (12, 7, 0.3, 129),
            (60, 20, 0.02, 300),
            (60, 20, 1.0, 100),
            (300, 30, 0.01, 600),
            (64, 40, 0.9, 1024),
        ];
        for (c, &(n, m, density, batch_size)) in cases.iter().enumerate() {
            for kind in ToyKind::ALL {
                let shape = ToyShape {
                    kind,
                    n_features: n,
                    n_hidden: m,
                };
                let seed = 500 + c as u64;
                let avx2 = kernel_bits(KernelSet::Avx2Fma, &shape, density, batch_size, seed);
                let avx512 = kernel_bits(KernelSet::Avx512Vl, &shape, density, batch_size, seed);
                let portable = kernel_bits(KernelSet::Portable, &shape, density, batch_size, seed);
                for (a, b) in avx2.iter().zip(&avx512) {
                    assert_eq!(
                        a.1, b.1,
                        "{shape:?} p={density}: gradients avx2-fma vs avx512vl"
                    );
                    if m <= 8 {
                        assert_eq!(
                            a.0, b.0,
                            "{shape:?} p={density}: losses avx2-fma vs avx512vl"
                        );
                    }
                    large_loss_differs |= a.0 != b.0;
                }
                portable_differs |= portable != avx2;
            }
        }
        assert!(
            large_loss_differs,
            "a large-m loss told avx2-fma from avx512vl"
        );
        assert!(portable_differs, "some case told portable from avx2-fma");
    }

    #[test]
    fn result_does_not_depend_on_the_thread_count() {
        let shape = ToyShape {
            kind: ToyKind::ReluHidden,
            n_features: 300,
            n_hidden: 30,
        };
        let (params, importance, batch) = instance(&shape, 0.05, 1024, 5);
        assert!(Plan::new(&shape, 1024).chunk < 1024, "the step is chunked");
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut g = vec![0.0f32; params.len()];
                let loss = loss_and_gradient(
                    &shape,
                    &params,
                    &batch,
                    &importance,
                    &mut g,
                    &mut ToyKernelWorkspace::default(),
                );
                (
                    loss.to_bits(),
                    g.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                )
            })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }
}
