//! Attention heads trained on pairs of vectors (followups.md §F2): forward and backward passes, and
//! the tasks of experiments A1–A4.
//!
//! The question behind this family: does a head organise its query–key matrix W_QK so that its
//! singular vectors are the concepts in the data, and what happens when there are more concepts than
//! dimensions? Everything here is a hand-derived forward/backward pair checked against finite
//! differences in f64; the metrics that read the answer off W_QK live in
//! [`crate::attention_metrics`], the data in [`crate::data::pairs`].
//!
//! ## Letters
//!
//! | letter | meaning |
//! |---|---|
//! | d | embedding dimension of queries x and keys y |
//! | d_head | rows of W_Q and W_K of a single factored head |
//! | h | heads; head η has W_Q^η, W_K^η: d_k × d |
//! | d_k | key dimension of one head; D_K = h·d_k is the total key budget |
//! | G | attention patterns: 1 when scores add (merged, one head, [`HeadCombination::SumScores`]), h when each head has its own softmax ([`HeadCombination::MixPatterns`]) |
//! | d_v | value dimension of one OV circuit (one per pattern) |
//! | n | keys in a context |
//! | B | examples per minibatch |
//! | r | planted concepts (u_k, v_k, s_k) |
//!
//! ## Equations
//!
//! - Score of head η: s^η(x, y) = (W_Q^η x)·(W_K^η y) = xᵀ W_Q^ηᵀ W_K^η y. Merged: s = xᵀ W_QK y.
//!   Scores of one pattern group add: s^g = Σ_{η∈g} s^η, so with G = 1 the head computes xᵀ W_QK y
//!   with W_QK = Σ_η W_Q^ηᵀ W_K^η.
//! - Regression (A1/A2), n = 1: L = ½(s − t)², t = xᵀ M y. ∂L/∂s = s − t.
//! - Patterns: q^g_j = softmax_j(s^g_j); the head's attention is their mean q̄_j = (1/G) Σ_g q^g_j.
//! - Distillation (A3) and relational graphs (A4): L = Σ_j p_j (ln p_j − ln q̄_j) (cross-entropy minus
//!   the target's entropy, so that L = 0 at a perfect fit; one-hot p for A4). With
//!   ρ^g_j = q^g_j / q̄_j and ρ^g = Σ_j p_j ρ^g_j:
//!   ∂L/∂s^g_i = (1/G) (q^g_i ρ^g − p_i ρ^g_i), which is q_i − p_i when G = 1.
//! - OV circuit of pattern g: W_V^g: d_v × d, W_O^g: d × d_v; output o = Σ_g W_O^g W_V^g ȳ^g with
//!   ȳ^g = Σ_j q^g_j y_j. Output regression: L = ½‖o − z‖².
//!
//! ## Why per-head softmax for A4
//!
//! When the heads' scores add, h heads × d_k are exactly one head of D_K = h·d_k:
//! Σ_η W_Q^ηᵀ W_K^η ranges over all d×d matrices of rank ≤ D_K either way, so "more heads at fixed
//! D_K" could not change anything. Adler (2025) finds that it does; what differs in a real layer is
//! that each head normalises its own scores. [`HeadCombination::MixPatterns`] gives each head its own
//! softmax and averages the patterns, which is the weight the layer's output puts on each key when
//! the heads' OV circuits are equal and the values orthogonal. A4 uses it; the cross-entropy is on
//! the averaged pattern q̄.
//!
//! ## Layout of one instance's flat parameters
//!
//! - merged: `[W_QK: d×d]` (row a pairs with x_a, column b with y_b);
//! - factored: `[W_Q: h×d_k×d][W_K: h×d_k×d]`;
//! - then, with values: `[W_V: G×d_v×d][W_O: G×d×d_v]`.
//!
//! The backward pass, per example and per pattern g (ds = ∂L/∂s, `weight` = 1/B folded in):
//! - read vector w^g = Σ_{η∈g} W_K^ηᵀ q^η with q^η = W_Q^η x (merged: w = W_QKᵀ x), so s^g_j = w^g·y_j;
//! - key sum ỹ^g = Σ_j ds^g_j y_j;
//! - merged: dW_QK += x ỹᵀ; factored: dW_Q^η += (W_K^η ỹ) xᵀ and dW_K^η += q^η ỹᵀ;
//! - OV: do = o − z; dW_O^g += do (W_V^g ȳ^g)ᵀ; dv = W_O^gᵀ do; dW_V^g += dv ȳ^gᵀ;
//!   dq^g_j = (W_V^gᵀ dv)·y_j; ds^g_j = q^g_j (dq^g_j − Σ_i q^g_i dq^g_i).

use super::{NamedTensor, Real};
use crate::attention_metrics;
use crate::data::pairs::{
    gaussian_vectors, GraphContext, PairsError, PlantedConcepts, RelationalGraph,
};
use crate::linalg;
use crate::rng::{InstanceKey, StreamPurpose, StreamRng};
use crate::train::Task;

/// How the query–key map is parameterised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreMap {
    /// W_QK (d×d) learned directly: the shallow control of A2.
    Merged,
    /// h heads, each W_Q^η, W_K^η: d_k × d (one head of d_head rows: `heads = 1, d_k = d_head`).
    Factored {
        /// Number of heads h.
        heads: usize,
        /// Rows per head d_k.
        d_k: usize,
    },
}

/// How several heads make one attention pattern (see the module doc for why A4 mixes patterns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadCombination {
    /// Scores add, one softmax: equivalent to one head of D_K = h·d_k.
    SumScores,
    /// One softmax per head; the head's attention is the mean of the h patterns.
    MixPatterns,
}

/// Shape of one attention head (or group of heads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadShape {
    /// Embedding dimension d.
    pub d: usize,
    /// Merged or factored query–key map.
    pub score: ScoreMap,
    /// How heads combine (irrelevant for one head).
    pub combination: HeadCombination,
    /// Value dimension d_v of an OV circuit per pattern; `None`: no values.
    pub value_dim: Option<usize>,
}

/// What one example is scored against.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a, T> {
    /// Regression of the score on t (needs n = 1 key and G = 1): L = ½(s − t)².
    Score(T),
    /// A target distribution p over the n keys: L = Σ_j p_j ln(p_j / q̄_j).
    Distribution(&'a [T]),
    /// A one-hot target at this key position: L = −ln q̄_t.
    Position(usize),
    /// Regression of the OV output on z, \[d\]: L = ½‖o − z‖² (needs values).
    Output(&'a [T]),
}

/// Why a task cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttentionError {
    /// The head's shape does not fit the task.
    #[error("{task} needs {requirement}")]
    Shape {
        /// The task.
        task: &'static str,
        /// What the shape lacks.
        requirement: &'static str,
    },
    /// The data setting is invalid.
    #[error(transparent)]
    Data(#[from] PairsError),
}

/// Offsets of the parameter blocks.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// W_K (factored) — W_Q and W_QK start at 0.
    w_k: usize,
    /// W_V.
    w_v: usize,
    /// W_O.
    w_o: usize,
    /// Total parameters.
    total: usize,
}

/// Scratch buffers of one forward/backward pass (shapes in the comments).
#[derive(Clone, Debug, Default)]
pub struct HeadScratch<T> {
    queries: Vec<T>,      // [h, d_k] q^η = W_Q^η x
    reads: Vec<T>,        // [G, d]   w^g = Σ_η W_K^ηᵀ q^η
    log_patterns: Vec<T>, // [G, n]   scores, then ln q^g_j
    patterns: Vec<T>,     // [G, n]   q^g_j
    log_mixture: Vec<T>,  // [n]      ln q̄_j
    dscores: Vec<T>,      // [G, n]   weight · ∂L/∂s^g_j
    key_sum: Vec<T>,      // [d]      ỹ = Σ_j ds_j y_j
    attended: Vec<T>,     // [G, d]   ȳ^g = Σ_j q^g_j y_j
    values: Vec<T>,       // [G, d_v] W_V^g ȳ^g
    output: Vec<T>,       // [d]      o
    dvalue: Vec<T>,       // [d_v]
    dattended: Vec<T>,    // [d]
    dpattern: Vec<T>,     // [n]
}

impl HeadShape {
    /// A merged head: W_QK learned directly.
    pub fn merged(d: usize) -> Self {
        Self {
            d,
            score: ScoreMap::Merged,
            combination: HeadCombination::SumScores,
            value_dim: None,
        }
    }

    /// One factored head with W_Q, W_K: d_head × d.
    pub fn factored(d: usize, d_head: usize) -> Self {
        Self::multi_head(d, 1, d_head, HeadCombination::SumScores)
    }

    /// h factored heads of d_k rows each.
    pub fn multi_head(d: usize, heads: usize, d_k: usize, combination: HeadCombination) -> Self {
        Self {
            d,
            score: ScoreMap::Factored { heads, d_k },
            combination,
            value_dim: None,
        }
    }

    /// The same shape with an OV circuit of value dimension d_v per pattern.
    pub fn with_values(self, d_v: usize) -> Self {
        Self {
            value_dim: Some(d_v),
            ..self
        }
    }

    /// Number of heads h (1 for a merged head).
    pub fn heads(&self) -> usize {
        match self.score {
            ScoreMap::Merged => 1,
            ScoreMap::Factored { heads, .. } => heads,
        }
    }

    /// Number of attention patterns G.
    pub fn patterns(&self) -> usize {
        match (self.score, self.combination) {
            (ScoreMap::Factored { heads, .. }, HeadCombination::MixPatterns) => heads,
            _ => 1,
        }
    }

    /// Pattern group of head η.
    fn group(&self, head: usize) -> usize {
        if self.patterns() == 1 {
            0
        } else {
            head
        }
    }

    fn layout(&self) -> Layout {
        let d = self.d;
        let (w_k, score_len) = match self.score {
            ScoreMap::Merged => (0, d * d),
            ScoreMap::Factored { heads, d_k } => (heads * d_k * d, 2 * heads * d_k * d),
        };
        let dv = self.value_dim.unwrap_or(0);
        let g = self.patterns();
        Layout {
            w_k,
            w_v: score_len,
            w_o: score_len + g * dv * d,
            total: score_len + 2 * g * dv * d,
        }
    }

    /// Number of parameters of one instance.
    pub fn parameter_count(&self) -> usize {
        self.layout().total
    }

    /// Every parameter N(0, std²).
    pub fn initialise_gaussian(&self, rng: &mut StreamRng, std: f64, parameters: &mut [f32]) {
        for p in parameters.iter_mut() {
            *p = (std * rng.standard_normal()) as f32;
        }
    }

    /// Scratch sized for contexts of n keys (resized on the fly if n changes).
    pub fn scratch<T: Real>(&self, n: usize) -> HeadScratch<T> {
        let mut s = HeadScratch {
            queries: Vec::new(),
            reads: Vec::new(),
            log_patterns: Vec::new(),
            patterns: Vec::new(),
            log_mixture: Vec::new(),
            dscores: Vec::new(),
            key_sum: Vec::new(),
            attended: Vec::new(),
            values: Vec::new(),
            output: Vec::new(),
            dvalue: Vec::new(),
            dattended: Vec::new(),
            dpattern: Vec::new(),
        };
        self.size_scratch(&mut s, n);
        s
    }

    fn size_scratch<T: Real>(&self, s: &mut HeadScratch<T>, n: usize) {
        let (d, g) = (self.d, self.patterns());
        let dk = match self.score {
            ScoreMap::Merged => 0,
            ScoreMap::Factored { d_k, .. } => d_k,
        };
        let dv = self.value_dim.unwrap_or(0);
        let z = T::zero();
        s.queries.resize(self.heads() * dk, z);
        s.reads.resize(g * d, z);
        s.log_patterns.resize(g * n, z);
        s.patterns.resize(g * n, z);
        s.log_mixture.resize(n, z);
        s.dscores.resize(g * n, z);
        s.key_sum.resize(d, z);
        s.attended.resize(g * d, z);
        s.values.resize(g * dv, z);
        s.output.resize(d, z);
        s.dvalue.resize(dv, z);
        s.dattended.resize(d, z);
        s.dpattern.resize(n, z);
    }

    /// Loss of one example and, when `gradient` is given, `weight`·∂L/∂θ **added** to it.
    ///
    /// Shapes: parameters \[P\], query x \[d\], keys [n, d] (row j = y_j). Returns the unweighted loss.
    /// After the call the scratch holds ln q̄ (see [`HeadScratch::log_attention`]) for pattern
    /// targets. Cost O(D_K·d + G·n·d (+ G·d_v·d with values)).
    #[allow(clippy::too_many_arguments)]
    pub fn example_loss<T: Real>(
        &self,
        parameters: &[T],
        query: &[T],
        keys: &[T],
        target: Target<'_, T>,
        weight: T,
        gradient: Option<&mut [T]>,
        scratch: &mut HeadScratch<T>,
    ) -> T {
        let d = self.d;
        let n = keys.len() / d;
        let g_count = self.patterns();
        let lay = self.layout();
        if scratch.log_mixture.len() != n {
            self.size_scratch(scratch, n);
        }
        let half = T::from_f64(0.5).unwrap();

        // Forward, scores: w^g = Σ_{η∈g} W_K^ηᵀ (W_Q^η x) (merged: W_QKᵀ x); s^g_j = w^g·y_j.
        scratch.reads.fill(T::zero());
        match self.score {
            ScoreMap::Merged => {
                let w = &parameters[..d * d];
                for (a, &xa) in query.iter().enumerate() {
                    for (r, &wab) in scratch.reads.iter_mut().zip(&w[a * d..(a + 1) * d]) {
                        *r += xa * wab;
                    }
                }
            }
            ScoreMap::Factored { heads, d_k } => {
                for eta in 0..heads {
                    let g = self.group(eta);
                    let wq = &parameters[eta * d_k * d..(eta + 1) * d_k * d];
                    let wk = &parameters[lay.w_k + eta * d_k * d..lay.w_k + (eta + 1) * d_k * d];
                    let read = &mut scratch.reads[g * d..(g + 1) * d];
                    for i in 0..d_k {
                        let q = dot(&wq[i * d..(i + 1) * d], query);
                        scratch.queries[eta * d_k + i] = q;
                        for (r, &w) in read.iter_mut().zip(&wk[i * d..(i + 1) * d]) {
                            *r += q * w;
                        }
                    }
                }
            }
        }
        for g in 0..g_count {
            let read = &scratch.reads[g * d..(g + 1) * d];
            for j in 0..n {
                scratch.log_patterns[g * n + j] = dot(read, &keys[j * d..(j + 1) * d]);
            }
        }
        let backward = gradient.is_some();
        scratch.dscores.fill(T::zero());

        let loss = match target {
            Target::Score(t) => {
                assert!(
                    n == 1 && g_count == 1,
                    "score regression needs one key and one pattern"
                );
                let err = scratch.log_patterns[0] - t;
                scratch.dscores[0] = weight * err;
                half * err * err
            }
            Target::Distribution(_) | Target::Position(_) => {
                self.softmax_patterns(scratch, n);
                let p_of = |j: usize| match target {
                    Target::Distribution(p) => p[j],
                    Target::Position(t) => {
                        if j == t {
                            T::one()
                        } else {
                            T::zero()
                        }
                    }
                    _ => unreachable!(),
                };
                let mut loss = T::zero();
                for j in 0..n {
                    let p = p_of(j);
                    if p > T::zero() {
                        loss += p * (p.ln() - scratch.log_mixture[j]);
                    }
                }
                if backward {
                    // ds^g_i = (weight/G)(q^g_i ρ^g − p_i ρ^g_i), ρ^g_j = q^g_j/q̄_j, ρ^g = Σ_j p_j ρ^g_j.
                    let scale = weight / T::from_usize(g_count).unwrap();
                    for g in 0..g_count {
                        let row = g * n..(g + 1) * n;
                        let ratio = |j: usize| {
                            (scratch.log_patterns[g * n + j] - scratch.log_mixture[j]).exp()
                        };
                        let rho: T = (0..n)
                            .filter(|&j| p_of(j) > T::zero())
                            .map(|j| p_of(j) * ratio(j))
                            .sum();
                        for (i, ds) in scratch.dscores[row].iter_mut().enumerate() {
                            let q = scratch.patterns[g * n + i];
                            let p = p_of(i);
                            let term = if p > T::zero() {
                                p * ratio(i)
                            } else {
                                T::zero()
                            };
                            *ds = scale * (q * rho - term);
                        }
                    }
                }
                loss
            }
            Target::Output(z) => {
                let dv = self
                    .value_dim
                    .expect("an output target needs an OV circuit (value_dim)");
                self.softmax_patterns(scratch, n);
                // ȳ^g = Σ_j q^g_j y_j; v^g = W_V^g ȳ^g; o = Σ_g W_O^g v^g.
                scratch.output.fill(T::zero());
                for g in 0..g_count {
                    let att = &mut scratch.attended[g * d..(g + 1) * d];
                    att.fill(T::zero());
                    for j in 0..n {
                        let q = scratch.patterns[g * n + j];
                        for (a, &y) in att.iter_mut().zip(&keys[j * d..(j + 1) * d]) {
                            *a += q * y;
                        }
                    }
                    let wv = &parameters[lay.w_v + g * dv * d..lay.w_v + (g + 1) * dv * d];
                    let wo = &parameters[lay.w_o + g * d * dv..lay.w_o + (g + 1) * d * dv];
                    for c in 0..dv {
                        scratch.values[g * dv + c] = dot(&wv[c * d..(c + 1) * d], att);
                    }
                    let v = &scratch.values[g * dv..(g + 1) * dv];
                    for (a, o) in scratch.output.iter_mut().enumerate() {
                        *o += dot(&wo[a * dv..(a + 1) * dv], v);
                    }
                }
                let mut loss = T::zero();
                for (o, &zt) in scratch.output.iter_mut().zip(z) {
                    let err = *o - zt;
                    loss += half * err * err;
                    *o = weight * err; // from here on: do = weight · (o − z)
                }
                loss
            }
        };
        let Some(grad) = gradient else {
            return loss;
        };

        // Backward through the OV circuit (output targets only).
        if let (Target::Output(_), Some(dv)) = (target, self.value_dim) {
            for g in 0..g_count {
                let wv = &parameters[lay.w_v + g * dv * d..lay.w_v + (g + 1) * dv * d];
                let wo = &parameters[lay.w_o + g * d * dv..lay.w_o + (g + 1) * d * dv];
                let v = &scratch.values[g * dv..(g + 1) * dv];
                let att = &scratch.attended[g * d..(g + 1) * d];
                // dW_O^g += do vᵀ; dv = W_O^gᵀ do.
                scratch.dvalue.fill(T::zero());
                for (a, &dout) in scratch.output.iter().enumerate() {
                    let gw = &mut grad
                        [lay.w_o + g * d * dv + a * dv..lay.w_o + g * d * dv + (a + 1) * dv];
                    for ((gwc, &vc), (dvc, &woc)) in gw
                        .iter_mut()
                        .zip(v)
                        .zip(scratch.dvalue.iter_mut().zip(&wo[a * dv..(a + 1) * dv]))
                    {
                        *gwc += dout * vc;
                        *dvc += dout * woc;
                    }
                }
                // dW_V^g += dv ȳᵀ; dȳ = W_V^gᵀ dv.
                scratch.dattended.fill(T::zero());
                for (c, &dvc) in scratch.dvalue.iter().enumerate() {
                    let gw =
                        &mut grad[lay.w_v + g * dv * d + c * d..lay.w_v + g * dv * d + (c + 1) * d];
                    for ((gwb, &ab), (dab, &wvb)) in gw
                        .iter_mut()
                        .zip(att)
                        .zip(scratch.dattended.iter_mut().zip(&wv[c * d..(c + 1) * d]))
                    {
                        *gwb += dvc * ab;
                        *dab += dvc * wvb;
                    }
                }
                // dq_j = dȳ·y_j; ds^g_j = q^g_j (dq_j − Σ_i q^g_i dq_i).
                let mut mean = T::zero();
                for j in 0..n {
                    let dq = dot(&scratch.dattended, &keys[j * d..(j + 1) * d]);
                    scratch.dpattern[j] = dq;
                    mean += scratch.patterns[g * n + j] * dq;
                }
                for j in 0..n {
                    scratch.dscores[g * n + j] =
                        scratch.patterns[g * n + j] * (scratch.dpattern[j] - mean);
                }
            }
        }

        // Backward through the scores: ỹ^g = Σ_j ds^g_j y_j.
        for g in 0..g_count {
            scratch.key_sum.fill(T::zero());
            for j in 0..n {
                let ds = scratch.dscores[g * n + j];
                for (k, &y) in scratch.key_sum.iter_mut().zip(&keys[j * d..(j + 1) * d]) {
                    *k += ds * y;
                }
            }
            match self.score {
                ScoreMap::Merged => {
                    // dW_QK += x ỹᵀ.
                    for (a, &xa) in query.iter().enumerate() {
                        for (gw, &k) in grad[a * d..(a + 1) * d].iter_mut().zip(&scratch.key_sum) {
                            *gw += xa * k;
                        }
                    }
                }
                ScoreMap::Factored { heads, d_k } => {
                    for eta in (0..heads).filter(|&eta| self.group(eta) == g) {
                        let wk_at = lay.w_k + eta * d_k * d;
                        for i in 0..d_k {
                            // dW_Q^η row i += (W_K^η ỹ)_i x; dW_K^η row i += q^η_i ỹ.
                            let dq = dot(
                                &parameters[wk_at + i * d..wk_at + (i + 1) * d],
                                &scratch.key_sum,
                            );
                            let q = scratch.queries[eta * d_k + i];
                            let wq_at = eta * d_k * d + i * d;
                            for (gw, &x) in grad[wq_at..wq_at + d].iter_mut().zip(query) {
                                *gw += dq * x;
                            }
                            for (gw, &k) in grad[wk_at + i * d..wk_at + (i + 1) * d]
                                .iter_mut()
                                .zip(&scratch.key_sum)
                            {
                                *gw += q * k;
                            }
                        }
                    }
                }
            }
        }
        loss
    }

    /// From scores in `log_patterns`: ln q^g_j (in place), q^g_j, and ln q̄_j (log-mean-exp over g).
    fn softmax_patterns<T: Real>(&self, s: &mut HeadScratch<T>, n: usize) {
        let g_count = self.patterns();
        for g in 0..g_count {
            let row = &mut s.log_patterns[g * n..(g + 1) * n];
            let max = row.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
            let lse = max + row.iter().map(|&v| (v - max).exp()).sum::<T>().ln();
            for (lp, p) in row.iter_mut().zip(&mut s.patterns[g * n..(g + 1) * n]) {
                *lp -= lse;
                *p = lp.exp();
            }
        }
        let ln_g = T::from_usize(g_count).unwrap().ln();
        for j in 0..n {
            let max = (0..g_count).fold(T::neg_infinity(), |m, g| m.max(s.log_patterns[g * n + j]));
            let sum: T = (0..g_count)
                .map(|g| (s.log_patterns[g * n + j] - max).exp())
                .sum();
            s.log_mixture[j] = max + sum.ln() - ln_g;
        }
    }
}

impl<T: Real> HeadScratch<T> {
    /// ln q̄_j of the last pattern-target example, \[n\].
    pub fn log_attention(&self) -> &[T] {
        &self.log_mixture
    }
}

impl HeadShape {
    /// Exact expected regression loss over x, y ~ N(0, I) and its gradient (**overwritten**):
    /// E[½(xᵀ(W_QK − M)y)²] = ½‖W_QK − M‖²_F, since E[x_a x_c] = δ_ac and E[y_b y_e] = δ_be.
    ///
    /// With E = W_QK − M: merged dW_QK = E; factored dW_Q^η = W_K^η Eᵀ, dW_K^η = W_Q^η E. OV
    /// parameters (if any) get zero. Needs one pattern (scores that add). `target` is M, [d, d].
    pub fn population_regression<T: Real>(
        &self,
        parameters: &[T],
        target: &[T],
        gradient: Option<&mut [T]>,
    ) -> T {
        assert_eq!(self.patterns(), 1, "regression needs scores that add");
        let d = self.d;
        let lay = self.layout();
        let mut error = self.score_matrix_of(parameters);
        for (e, &m) in error.iter_mut().zip(target) {
            *e -= m;
        }
        let loss = T::from_f64(0.5).unwrap() * error.iter().map(|&e| e * e).sum::<T>();
        let Some(grad) = gradient else {
            return loss;
        };
        grad.fill(T::zero());
        match self.score {
            ScoreMap::Merged => grad[..d * d].copy_from_slice(&error),
            ScoreMap::Factored { heads, d_k } => {
                for row in 0..heads * d_k {
                    let wq = &parameters[row * d..(row + 1) * d];
                    let wk = &parameters[lay.w_k + row * d..lay.w_k + (row + 1) * d];
                    for a in 0..d {
                        // (W_K Eᵀ)_{row,a} = Σ_b W_K[row][b] E[a][b]; (W_Q E)_{row,a} = Σ_c W_Q[row][c] E[c][a].
                        grad[row * d + a] = dot(wk, &error[a * d..(a + 1) * d]);
                        grad[lay.w_k + row * d + a] =
                            (0..d).map(|c| wq[c] * error[c * d + a]).sum();
                    }
                }
            }
        }
        loss
    }

    /// W_QK = Σ_η W_Q^ηᵀ W_K^η (merged: the parameters), [d, d], in the parameters' precision.
    fn score_matrix_of<T: Real>(&self, parameters: &[T]) -> Vec<T> {
        let d = self.d;
        match self.score {
            ScoreMap::Merged => parameters[..d * d].to_vec(),
            ScoreMap::Factored { heads, d_k } => {
                let w_k = self.layout().w_k;
                let mut w = vec![T::zero(); d * d];
                // Stacking the heads' rows, W_QK = W_Qᵀ W_K = Σ_rows (W_Q row)ᵀ (W_K row).
                for row in 0..heads * d_k {
                    let wq = &parameters[row * d..(row + 1) * d];
                    let wk = &parameters[w_k + row * d..w_k + (row + 1) * d];
                    for (a, &qa) in wq.iter().enumerate() {
                        for (out, &kb) in w[a * d..(a + 1) * d].iter_mut().zip(wk) {
                            *out += qa * kb;
                        }
                    }
                }
                w
            }
        }
    }

    /// The query–key matrix W_QK = Σ_η W_Q^ηᵀ W_K^η (f64, [d, d]): what the planted-concept metrics
    /// read. With mixed patterns it is the sum of [`HeadShape::head_score_matrices`].
    pub fn score_matrix(&self, parameters: &[f32]) -> Vec<f64> {
        let p: Vec<f64> = parameters.iter().map(|&v| v as f64).collect();
        self.score_matrix_of(&p)
    }

    /// Each head's W_Q^ηᵀ W_K^η (f64, h × [d, d]); the one merged matrix for a merged head.
    pub fn head_score_matrices(&self, parameters: &[f32]) -> Vec<Vec<f64>> {
        let d = self.d;
        match self.score {
            ScoreMap::Merged => vec![self.score_matrix(parameters)],
            ScoreMap::Factored { heads, d_k } => {
                let w_k = self.layout().w_k;
                (0..heads)
                    .map(|eta| {
                        let one = HeadShape::factored(d, d_k);
                        let mut p = parameters[eta * d_k * d..(eta + 1) * d_k * d].to_vec();
                        p.extend_from_slice(
                            &parameters[w_k + eta * d_k * d..w_k + (eta + 1) * d_k * d],
                        );
                        one.score_matrix(&p)
                    })
                    .collect()
            }
        }
    }

    /// Each pattern's OV matrix W_O^g W_V^g (f64, G × [d, d]); empty without values.
    pub fn ov_matrices(&self, parameters: &[f32]) -> Vec<Vec<f64>> {
        let Some(dv) = self.value_dim else {
            return Vec::new();
        };
        let (d, lay) = (self.d, self.layout());
        (0..self.patterns())
            .map(|g| {
                let wv = &parameters[lay.w_v + g * dv * d..lay.w_v + (g + 1) * dv * d];
                let wo = &parameters[lay.w_o + g * d * dv..lay.w_o + (g + 1) * d * dv];
                let mut ov = vec![0.0; d * d];
                for a in 0..d {
                    for b in 0..d {
                        ov[a * d + b] = (0..dv)
                            .map(|c| wo[a * dv + c] as f64 * wv[c * d + b] as f64)
                            .sum();
                    }
                }
                ov
            })
            .collect()
    }

    /// The parameters as named tensors: `W_QK` [d, d] (merged) or `W_Q`, `W_K` [d_head, d]
    /// ([h, d_k, d] with several heads); with values `W_V` [d_v, d] and `W_O` [d, d_v]
    /// ([G, d_v, d] and [G, d, d_v] with several patterns).
    pub fn export(&self, parameters: &[f32]) -> Vec<NamedTensor> {
        let (d, lay) = (self.d, self.layout());
        let tensor = |name: &str, shape: Vec<usize>, range: std::ops::Range<usize>| NamedTensor {
            name: name.into(),
            shape,
            data: parameters[range].to_vec(),
        };
        let lead = |count: usize, mut shape: Vec<usize>| {
            if count > 1 {
                shape.insert(0, count);
            }
            shape
        };
        let mut out = match self.score {
            ScoreMap::Merged => vec![tensor("W_QK", vec![d, d], 0..d * d)],
            ScoreMap::Factored { heads, d_k } => vec![
                tensor("W_Q", lead(heads, vec![d_k, d]), 0..lay.w_k),
                tensor("W_K", lead(heads, vec![d_k, d]), lay.w_k..lay.w_v),
            ],
        };
        if let Some(dv) = self.value_dim {
            let g = self.patterns();
            out.push(tensor("W_V", lead(g, vec![dv, d]), lay.w_v..lay.w_o));
            out.push(tensor("W_O", lead(g, vec![d, dv]), lay.w_o..lay.total));
        }
        out
    }

    /// Aligned start on planted concepts (F1's balanced start): W_QK(0) = a₀ Σ_k u_k v_kᵀ.
    ///
    /// Merged: exactly that. Factored (one pattern): with the D_K = h·d_k rows stacked and R a random
    /// orthonormal D_K × r′ matrix (r′ = min(r, D_K), from `rng`), W_Q = √a₀ Σ_k R_k u_kᵀ and
    /// W_K = √a₀ Σ_k R_k v_kᵀ, so each mode starts at strength a₀ and the modes decouple under the
    /// population gradient. Concepts beyond D_K start at zero; OV parameters are zero.
    pub fn initialise_aligned(
        &self,
        concepts: &PlantedConcepts,
        a0: f64,
        rng: &mut StreamRng,
        parameters: &mut [f32],
    ) {
        let (d, lay) = (self.d, self.layout());
        parameters.fill(0.0);
        match self.score {
            ScoreMap::Merged => {
                for k in 0..concepts.rank() {
                    let (u, v) = (concepts.u(k), concepts.v(k));
                    for a in 0..d {
                        for b in 0..d {
                            parameters[a * d + b] += (a0 * u[a] * v[b]) as f32;
                        }
                    }
                }
            }
            ScoreMap::Factored { heads, d_k } => {
                let rows = heads * d_k;
                let r = concepts.rank().min(rows);
                let rotation = linalg::random_orthonormal(rng, rows, r);
                let scale = a0.sqrt();
                for row in 0..rows {
                    for k in 0..r {
                        let c = scale * rotation[(row, k)];
                        for a in 0..d {
                            parameters[row * d + a] += (c * concepts.u(k)[a]) as f32;
                            parameters[lay.w_k + row * d + a] += (c * concepts.v(k)[a]) as f32;
                        }
                    }
                }
            }
        }
    }
}

#[inline]
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    a.iter().zip(b).fold(T::zero(), |s, (&x, &y)| s + x * y)
}

/// How a planted-concept task initialises its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttentionInit {
    /// Every parameter N(0, std²) (small std: "small random start").
    Gaussian {
        /// Standard deviation.
        std: f64,
    },
    /// Every planted mode starts at strength a₀ ([`HeadShape::initialise_aligned`]).
    Aligned {
        /// Initial strength a₀ of each mode.
        a0: f64,
    },
}

impl AttentionInit {
    fn apply(
        &self,
        shape: &HeadShape,
        concepts: Option<&PlantedConcepts>,
        rng: &mut StreamRng,
        parameters: &mut [f32],
    ) {
        match (*self, concepts) {
            (AttentionInit::Gaussian { std }, _) => shape.initialise_gaussian(rng, std, parameters),
            (AttentionInit::Aligned { a0 }, Some(c)) => {
                shape.initialise_aligned(c, a0, rng, parameters)
            }
            (AttentionInit::Aligned { .. }, None) => {
                panic!("an aligned start needs planted concepts")
            }
        }
    }
}

/// Which gradient the regression task descends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegressionGradient {
    /// Minibatches of B Gaussian pairs from the training stream (SGD).
    Minibatch,
    /// The exact population gradient of ½‖W_QK − M‖²_F (full-batch gradient descent, F1's setting).
    Population,
}

/// Names of the planted-concept observables: `strength_1` … `strength_r` (a_k = u_kᵀ W_QK v_k), then
/// `planted_share` (‖P_U W_QK P_V‖²_F / ‖W_QK‖²_F), `nuclear_norm` and `effective_rank` of W_QK
/// (see [`attention_metrics`]).
fn concept_observable_names(r: usize) -> Vec<String> {
    let mut names: Vec<String> = (1..=r).map(|k| format!("strength_{k}")).collect();
    names.extend(["planted_share", "nuclear_norm", "effective_rank"].map(String::from));
    names
}

fn concept_observables(
    shape: &HeadShape,
    concepts: &PlantedConcepts,
    parameters: &[f32],
) -> Vec<f64> {
    let w = shape.score_matrix(parameters);
    let mut out = attention_metrics::concept_strengths(&w, concepts);
    out.push(attention_metrics::planted_share(&w, concepts));
    let sv = attention_metrics::singular_values(&w, shape.d);
    out.push(attention_metrics::nuclear_norm(&sv));
    out.push(attention_metrics::effective_rank(&sv));
    out
}

/// A1/A2: bilinear score regression. x, y ~ N(0, I) independent, target t = xᵀ M y with M the planted
/// concept matrix, loss ½(s − t)² averaged over the minibatch. Its population loss is ½‖W_QK − M‖²_F,
/// i.e. F1's deep linear network with Y := M (factored) or the shallow control (merged).
///
/// Observables: `strength_1` … `strength_r`, `planted_share`, `nuclear_norm`, `effective_rank` of
/// W_QK. Export: [`HeadShape::export`].
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreRegressionTask {
    /// The head: one pattern, no values.
    pub shape: HeadShape,
    /// The planted concepts (the instance's dataset stream).
    pub concepts: PlantedConcepts,
    /// M as f32, [d, d].
    target: Vec<f32>,
    /// Minibatch size B (unused with the population gradient).
    pub batch_size: usize,
    /// Minibatch SGD or the exact population gradient.
    pub gradient: RegressionGradient,
    /// Initialisation.
    pub init: AttentionInit,
}

impl ScoreRegressionTask {
    /// A regression task on `concepts`; the shape must have one pattern and no values.
    pub fn new(
        shape: HeadShape,
        concepts: PlantedConcepts,
        batch_size: usize,
        gradient: RegressionGradient,
        init: AttentionInit,
    ) -> Result<Self, AttentionError> {
        if shape.patterns() != 1 || shape.value_dim.is_some() || shape.d != concepts.d {
            return Err(AttentionError::Shape {
                task: "score regression",
                requirement: "one attention pattern, no values, and d equal to the concepts' d",
            });
        }
        Ok(Self {
            shape,
            target: concepts.matrix().iter().map(|&m| m as f32).collect(),
            concepts,
            batch_size: batch_size.max(1),
            gradient,
            init,
        })
    }
}

/// Scratch of the attention tasks: the drawn queries and keys, and the kernel's buffers.
#[derive(Clone, Debug, Default)]
pub struct AttentionWorkspace {
    queries: Vec<f32>,
    keys: Vec<f32>,
    teacher: Vec<f32>,
    context: GraphContext,
    scratch: HeadScratch<f32>,
}

impl Task for ScoreRegressionTask {
    type Workspace = AttentionWorkspace;

    fn parameter_count(&self) -> usize {
        self.shape.parameter_count()
    }

    fn initialise(&self, rng: &mut StreamRng, parameters: &mut [f32]) {
        self.init
            .apply(&self.shape, Some(&self.concepts), rng, parameters);
    }

    fn workspace(&self) -> AttentionWorkspace {
        AttentionWorkspace {
            scratch: self.shape.scratch(1),
            ..Default::default()
        }
    }

    fn loss_and_gradient(
        &self,
        parameters: &[f32],
        rng: &mut StreamRng,
        ws: &mut AttentionWorkspace,
        gradient: &mut [f32],
    ) -> f64 {
        let d = self.shape.d;
        if self.gradient == RegressionGradient::Population {
            return self
                .shape
                .population_regression(parameters, &self.target, Some(gradient))
                as f64;
        }
        gradient.fill(0.0);
        let b = self.batch_size;
        gaussian_vectors(rng, b, d, &mut ws.queries);
        gaussian_vectors(rng, b, d, &mut ws.keys);
        let weight = 1.0 / b as f32;
        let mut total = 0.0f64;
        for e in 0..b {
            let x = &ws.queries[e * d..(e + 1) * d];
            let y = &ws.keys[e * d..(e + 1) * d];
            // t = xᵀ M y.
            let t: f32 = (0..d)
                .map(|a| x[a] * dot(&self.target[a * d..(a + 1) * d], y))
                .sum();
            total += self.shape.example_loss(
                parameters,
                x,
                y,
                Target::Score(t),
                weight,
                Some(gradient),
                &mut ws.scratch,
            ) as f64;
        }
        total / b as f64
    }

    /// The exact population loss ½‖W_QK − M‖²_F (f64).
    fn evaluation_loss(&self, parameters: &[f32], _key: &InstanceKey) -> f64 {
        let p: Vec<f64> = parameters.iter().map(|&v| v as f64).collect();
        self.shape
            .population_regression(&p, &self.concepts.matrix(), None)
    }

    fn observable_names(&self) -> Vec<String> {
        concept_observable_names(self.concepts.rank())
    }

    fn observe(&self, parameters: &[f32]) -> Vec<f64> {
        concept_observables(&self.shape, &self.concepts, parameters)
    }

    fn export(&self, parameters: &[f32]) -> Vec<NamedTensor> {
        self.shape.export(parameters)
    }
}

/// A fixed evaluation set of contexts (f64): queries [E, d], keys [E, n, d], targets [E, n].
#[derive(Clone, Debug, PartialEq)]
struct EvaluationSet {
    queries: Vec<f64>,
    keys: Vec<f64>,
    teacher: Vec<f64>,
}

/// Teacher distribution p_j = softmax_j(xᵀ M y_j) for n keys, written to `out` \[n\]. `m` is [d, d].
fn teacher_distribution(m: &[f64], x: &[f64], keys: &[f64], out: &mut [f64]) {
    let d = x.len();
    // Mᵀx once, then one dot product per key.
    let read: Vec<f64> = (0..d)
        .map(|b| (0..d).map(|a| x[a] * m[a * d + b]).sum())
        .collect();
    for (j, o) in out.iter_mut().enumerate() {
        *o = dot(&read, &keys[j * d..(j + 1) * d]);
    }
    let max = out.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v));
    let total: f64 = out.iter().map(|&s| (s - max).exp()).sum();
    for o in out.iter_mut() {
        *o = (*o - max).exp() / total;
    }
}

/// A3: softmax attention distilled from a planted teacher. A query x and n keys y_j ~ N(0, I);
/// teacher p = softmax_j(xᵀ M y_j), student q̄ (the head's attention); loss Σ_j p_j ln(p_j/q̄_j)
/// (cross-entropy minus the teacher's entropy: same gradient q − p, zero at W_QK = M).
///
/// Observables: `strength_1` … `strength_r`, `planted_share`, `nuclear_norm`, `effective_rank` of
/// W_QK. Export: [`HeadShape::export`].
#[derive(Clone, Debug, PartialEq)]
pub struct DistillationTask {
    /// The student head (no values needed).
    pub shape: HeadShape,
    /// The planted teacher's concepts.
    pub concepts: PlantedConcepts,
    /// M, [d, d].
    target: Vec<f64>,
    /// Keys per context n.
    pub keys: usize,
    /// Minibatch size B.
    pub batch_size: usize,
    /// Initialisation.
    pub init: AttentionInit,
    evaluation: EvaluationSet,
}

impl DistillationTask {
    /// A distillation task with `evaluation_size` fixed contexts from the instance's evaluation stream.
    pub fn new(
        shape: HeadShape,
        concepts: PlantedConcepts,
        keys: usize,
        batch_size: usize,
        evaluation_size: usize,
        init: AttentionInit,
        key: &InstanceKey,
    ) -> Result<Self, AttentionError> {
        if shape.d != concepts.d || keys == 0 {
            return Err(AttentionError::Shape {
                task: "distillation",
                requirement: "d equal to the concepts' d and at least one key",
            });
        }
        let d = shape.d;
        let target = concepts.matrix();
        let mut rng = key.stream(StreamPurpose::Evaluation);
        let e = evaluation_size.max(1);
        let queries: Vec<f64> = (0..e * d).map(|_| rng.standard_normal()).collect();
        let all_keys: Vec<f64> = (0..e * keys * d).map(|_| rng.standard_normal()).collect();
        let mut teacher = vec![0.0; e * keys];
        for i in 0..e {
            teacher_distribution(
                &target,
                &queries[i * d..(i + 1) * d],
                &all_keys[i * keys * d..(i + 1) * keys * d],
                &mut teacher[i * keys..(i + 1) * keys],
            );
        }
        Ok(Self {
            shape,
            concepts,
            target,
            keys,
            batch_size: batch_size.max(1),
            init,
            evaluation: EvaluationSet {
                queries,
                keys: all_keys,
                teacher,
            },
        })
    }
}

impl Task for DistillationTask {
    type Workspace = AttentionWorkspace;

    fn parameter_count(&self) -> usize {
        self.shape.parameter_count()
    }

    fn initialise(&self, rng: &mut StreamRng, parameters: &mut [f32]) {
        self.init
            .apply(&self.shape, Some(&self.concepts), rng, parameters);
    }

    fn workspace(&self) -> AttentionWorkspace {
        AttentionWorkspace {
            scratch: self.shape.scratch(self.keys),
            ..Default::default()
        }
    }

    fn loss_and_gradient(
        &self,
        parameters: &[f32],
        rng: &mut StreamRng,
        ws: &mut AttentionWorkspace,
        gradient: &mut [f32],
    ) -> f64 {
        let (d, n, b) = (self.shape.d, self.keys, self.batch_size);
        gradient.fill(0.0);
        gaussian_vectors(rng, b, d, &mut ws.queries);
        gaussian_vectors(rng, b * n, d, &mut ws.keys);
        ws.teacher.resize(n, 0.0);
        let mut p64 = vec![0.0; n];
        let weight = 1.0 / b as f32;
        let mut total = 0.0f64;
        for e in 0..b {
            let x = &ws.queries[e * d..(e + 1) * d];
            let y = &ws.keys[e * n * d..(e + 1) * n * d];
            // The teacher in f64, so that p is exact to f32 rounding whatever the score range.
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let y64: Vec<f64> = y.iter().map(|&v| v as f64).collect();
            teacher_distribution(&self.target, &x64, &y64, &mut p64);
            for (t, &p) in ws.teacher.iter_mut().zip(&p64) {
                *t = p as f32;
            }
            total += self.shape.example_loss(
                parameters,
                x,
                y,
                Target::Distribution(&ws.teacher),
                weight,
                Some(gradient),
                &mut ws.scratch,
            ) as f64;
        }
        total / b as f64
    }

    /// Mean loss (f64) on the fixed evaluation contexts.
    fn evaluation_loss(&self, parameters: &[f32], _key: &InstanceKey) -> f64 {
        let (d, n) = (self.shape.d, self.keys);
        let p: Vec<f64> = parameters.iter().map(|&v| v as f64).collect();
        let mut scratch = self.shape.scratch::<f64>(n);
        let ev = &self.evaluation;
        let count = ev.queries.len() / d;
        let total: f64 = (0..count)
            .map(|i| {
                self.shape.example_loss(
                    &p,
                    &ev.queries[i * d..(i + 1) * d],
                    &ev.keys[i * n * d..(i + 1) * n * d],
                    Target::Distribution(&ev.teacher[i * n..(i + 1) * n]),
                    1.0,
                    None,
                    &mut scratch,
                )
            })
            .sum();
        total / count as f64
    }

    fn observable_names(&self) -> Vec<String> {
        concept_observable_names(self.concepts.rank())
    }

    fn observe(&self, parameters: &[f32]) -> Vec<f64> {
        concept_observables(&self.shape, &self.concepts, parameters)
    }

    fn export(&self, parameters: &[f32]) -> Vec<NamedTensor> {
        self.shape.export(parameters)
    }
}

/// A4: relational graph recognition (Adler 2025). Each example is an edge a → b drawn by its
/// frequency, the query x = e_a and a context of n keys holding e_b and n − 1 non-neighbours of a;
/// loss −ln q̄_target (cross-entropy on attending to the neighbour). Vertices may outnumber
/// dimensions (n_v ≫ d): the embeddings, and with them the relations, are in superposition.
#[derive(Clone, Debug, PartialEq)]
pub struct RelationalGraphTask {
    /// The heads (factored, any h and d_k; [`HeadCombination::MixPatterns`] is A4's choice).
    pub shape: HeadShape,
    /// The planted graph and its embeddings (the instance's dataset stream).
    pub graph: RelationalGraph,
    /// Keys per context n.
    pub keys: usize,
    /// Minibatch size B.
    pub batch_size: usize,
    /// Standard deviation of the Gaussian initialisation.
    pub init_std: f64,
    /// Fixed evaluation contexts (`contexts_per_edge` per edge, from the evaluation stream).
    evaluation: Vec<GraphContext>,
}

impl RelationalGraphTask {
    /// A graph task with `contexts_per_edge` fixed evaluation contexts for every edge.
    pub fn new(
        shape: HeadShape,
        graph: RelationalGraph,
        keys: usize,
        batch_size: usize,
        contexts_per_edge: usize,
        init_std: f64,
        key: &InstanceKey,
    ) -> Result<Self, AttentionError> {
        if shape.d != graph.spec.d || keys == 0 {
            return Err(AttentionError::Shape {
                task: "relational graph",
                requirement: "d equal to the graph's embedding dimension and at least one key",
            });
        }
        graph.check_context_size(keys)?;
        let mut rng = key.stream(StreamPurpose::Evaluation);
        let mut evaluation = Vec::with_capacity(graph.edges.len() * contexts_per_edge);
        for edge in 0..graph.edges.len() {
            for _ in 0..contexts_per_edge.max(1) {
                let mut c = GraphContext::default();
                graph.context_for_edge(&mut rng, edge, keys, &mut c);
                evaluation.push(c);
            }
        }
        Ok(Self {
            shape,
            graph,
            keys,
            batch_size: batch_size.max(1),
            init_std,
            evaluation,
        })
    }

    /// Gathers the key embeddings of a context into `out` [n, d].
    fn gather(&self, context: &GraphContext, out: &mut Vec<f32>) {
        out.clear();
        for &v in &context.keys {
            out.extend_from_slice(self.graph.embedding(v));
        }
    }

    /// Over the evaluation set: (loss, correct) per context, in f32 — the prediction is argmax_j q̄_j
    /// (ties to the lowest position).
    fn evaluate(&self, parameters: &[f32]) -> Vec<(f64, bool)> {
        let mut scratch = self.shape.scratch::<f32>(self.keys);
        let mut keys = Vec::new();
        self.evaluation
            .iter()
            .map(|c| {
                self.gather(c, &mut keys);
                let loss = self.shape.example_loss(
                    parameters,
                    self.graph.embedding(c.query),
                    &keys,
                    Target::Position(c.target),
                    1.0,
                    None,
                    &mut scratch,
                );
                let scores = scratch.log_attention();
                let best =
                    (0..scores.len()).fold(0, |b, j| if scores[j] > scores[b] { j } else { b });
                (loss as f64, best == c.target)
            })
            .collect()
    }

    /// Top-1 accuracy of every edge on its evaluation contexts, \[m′\].
    pub fn relation_accuracy(&self, parameters: &[f32]) -> Vec<f64> {
        let results = self.evaluate(parameters);
        let correct: Vec<bool> = results.iter().map(|r| r.1).collect();
        let relation: Vec<usize> = self.evaluation.iter().map(|c| c.edge).collect();
        attention_metrics::top1_accuracy_per_relation(&correct, &relation, self.graph.edges.len())
    }
}

impl Task for RelationalGraphTask {
    type Workspace = AttentionWorkspace;

    fn parameter_count(&self) -> usize {
        self.shape.parameter_count()
    }

    fn initialise(&self, rng: &mut StreamRng, parameters: &mut [f32]) {
        self.shape
            .initialise_gaussian(rng, self.init_std, parameters);
    }

    fn workspace(&self) -> AttentionWorkspace {
        AttentionWorkspace {
            scratch: self.shape.scratch(self.keys),
            ..Default::default()
        }
    }

    fn loss_and_gradient(
        &self,
        parameters: &[f32],
        rng: &mut StreamRng,
        ws: &mut AttentionWorkspace,
        gradient: &mut [f32],
    ) -> f64 {
        gradient.fill(0.0);
        let weight = 1.0 / self.batch_size as f32;
        let mut total = 0.0f64;
        for _ in 0..self.batch_size {
            self.graph.sample_context(rng, self.keys, &mut ws.context);
            self.gather(&ws.context, &mut ws.keys);
            total += self.shape.example_loss(
                parameters,
                self.graph.embedding(ws.context.query),
                &ws.keys,
                Target::Position(ws.context.target),
                weight,
                Some(gradient),
                &mut ws.scratch,
            ) as f64;
        }
        total / self.batch_size as f64
    }

    /// Frequency-weighted mean loss on the evaluation contexts: an estimate of the training
    /// objective that does not depend on the replica.
    fn evaluation_loss(&self, parameters: &[f32], _key: &InstanceKey) -> f64 {
        let results = self.evaluate(parameters);
        let per_edge = results.len() as f64 / self.graph.edges.len() as f64;
        results
            .iter()
            .zip(&self.evaluation)
            .map(|((loss, _), c)| loss * self.graph.frequencies[c.edge] / per_edge)
            .sum()
    }

    /// `top1_accuracy` (weighted by relation frequency: the accuracy on the training distribution)
    /// and `top1_accuracy_uniform` (mean over relations).
    fn observable_names(&self) -> Vec<String> {
        vec!["top1_accuracy".into(), "top1_accuracy_uniform".into()]
    }

    fn observe(&self, parameters: &[f32]) -> Vec<f64> {
        let per_relation = self.relation_accuracy(parameters);
        let weighted = per_relation
            .iter()
            .zip(&self.graph.frequencies)
            .map(|(a, f)| a * f)
            .sum();
        let uniform = per_relation.iter().sum::<f64>() / per_relation.len() as f64;
        vec![weighted, uniform]
    }

    fn export(&self, parameters: &[f32]) -> Vec<NamedTensor> {
        self.shape.export(parameters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{finite_difference_gradient, relative_gradient_error};
    use crate::optim::{Optimizer, Schedule};
    use crate::theory::deep_linear;
    use crate::train::{train, TrainSettings};

    /// Owned targets for the gradient checks.
    enum Kind {
        Score,
        Distribution,
        Position,
        Output,
    }

    /// Checks the analytic gradient of a 3-example batch (weight 1/3) against central differences.
    fn check_gradient(shape: HeadShape, n: usize, kind: Kind, seed: u64) {
        let d = shape.d;
        let mut rng = StreamRng::seed_from_u64(seed);
        let mut p32 = vec![0.0f32; shape.parameter_count()];
        // std 0.5: scores of order one, so that softmaxes are neither uniform nor saturated.
        shape.initialise_gaussian(&mut rng, 0.5, &mut p32);
        let params: Vec<f64> = p32.iter().map(|&v| v as f64).collect();
        let batch = 3;
        let queries: Vec<f64> = (0..batch * d).map(|_| rng.standard_normal()).collect();
        let keys: Vec<f64> = (0..batch * n * d).map(|_| rng.standard_normal()).collect();
        let scores: Vec<f64> = (0..batch).map(|_| rng.standard_normal()).collect();
        let outputs: Vec<f64> = (0..batch * d).map(|_| rng.standard_normal()).collect();
        let positions: Vec<usize> = (0..batch).map(|_| rng.below(n as u32) as usize).collect();
        // A target distribution with every entry non-zero and one zero entry, to cover both branches.
        let mut dists: Vec<f64> = (0..batch * n).map(|_| rng.uniform_f64() + 0.1).collect();
        for e in 0..batch {
            let row = &mut dists[e * n..(e + 1) * n];
            if n > 1 {
                row[e % n] = 0.0;
            }
            let total: f64 = row.iter().sum();
            row.iter_mut().for_each(|p| *p /= total);
        }
        let loss = |p: &[f64], grad: Option<&mut [f64]>| -> f64 {
            let mut scratch = shape.scratch::<f64>(n);
            let mut grad = grad;
            if let Some(g) = grad.as_deref_mut() {
                g.fill(0.0);
            }
            (0..batch)
                .map(|e| {
                    let target = match kind {
                        Kind::Score => Target::Score(scores[e]),
                        Kind::Distribution => Target::Distribution(&dists[e * n..(e + 1) * n]),
                        Kind::Position => Target::Position(positions[e]),
                        Kind::Output => Target::Output(&outputs[e * d..(e + 1) * d]),
                    };
                    shape.example_loss(
                        p,
                        &queries[e * d..(e + 1) * d],
                        &keys[e * n * d..(e + 1) * n * d],
                        target,
                        1.0 / batch as f64,
                        grad.as_deref_mut(),
                        &mut scratch,
                    ) / batch as f64
                })
                .sum()
        };
        let mut analytic = vec![0.0; params.len()];
        let value = loss(&params, Some(&mut analytic));
        assert_eq!(
            value,
            loss(&params, None),
            "the gradient must not change the loss"
        );
        let numeric = finite_difference_gradient(&params, 1e-6, |p| loss(p, None));
        let err = relative_gradient_error(&analytic, &numeric);
        // h = 1e-6 puts truncation and rounding error near 1e-10 relative (models/mod.rs); 1e-6 leaves
        // four orders of margin while any wrong term (a missing factor, a transposed index) is O(1).
        assert!(err < 1e-6, "{shape:?}: relative gradient error {err}");
        assert!(analytic.iter().any(|&g| g != 0.0));
    }

    #[test]
    fn factored_and_merged_regression_gradients() {
        check_gradient(HeadShape::merged(5), 1, Kind::Score, 1);
        check_gradient(HeadShape::factored(5, 3), 1, Kind::Score, 2);
        check_gradient(
            HeadShape::multi_head(4, 3, 2, HeadCombination::SumScores),
            1,
            Kind::Score,
            3,
        );
    }

    #[test]
    fn softmax_cross_entropy_gradients() {
        for kind in [Kind::Distribution, Kind::Position] {
            check_gradient(HeadShape::merged(5), 6, kind, 4);
        }
        for kind in [Kind::Distribution, Kind::Position] {
            check_gradient(HeadShape::factored(5, 2), 7, kind, 5);
        }
    }

    #[test]
    fn multi_head_gradients() {
        for combination in [HeadCombination::SumScores, HeadCombination::MixPatterns] {
            for kind in [Kind::Distribution, Kind::Position] {
                check_gradient(HeadShape::multi_head(4, 3, 2, combination), 5, kind, 6);
            }
        }
    }

    #[test]
    fn ov_circuit_gradients() {
        check_gradient(HeadShape::merged(4).with_values(3), 5, Kind::Output, 7);
        check_gradient(HeadShape::factored(4, 2).with_values(2), 5, Kind::Output, 8);
        check_gradient(
            HeadShape::multi_head(4, 2, 2, HeadCombination::MixPatterns).with_values(3),
            6,
            Kind::Output,
            9,
        );
    }

    #[test]
    fn population_gradient_matches_finite_differences() {
        for shape in [
            HeadShape::merged(5),
            HeadShape::factored(5, 3),
            HeadShape::multi_head(5, 2, 2, HeadCombination::SumScores),
        ] {
            let mut rng = StreamRng::seed_from_u64(10);
            let concepts = PlantedConcepts::draw(5, &[3.0, 2.0, 1.0], &mut rng).unwrap();
            let m = concepts.matrix();
            let mut p32 = vec![0.0f32; shape.parameter_count()];
            shape.initialise_gaussian(&mut rng, 0.5, &mut p32);
            let params: Vec<f64> = p32.iter().map(|&v| v as f64).collect();
            let mut analytic = vec![1.0; params.len()];
            shape.population_regression(&params, &m, Some(&mut analytic));
            let numeric = finite_difference_gradient(&params, 1e-6, |p| {
                shape.population_regression(p, &m, None)
            });
            let err = relative_gradient_error(&analytic, &numeric);
            assert!(err < 1e-6, "{shape:?}: {err}");
        }
    }

    #[test]
    fn population_loss_is_the_mean_minibatch_loss() {
        let shape = HeadShape::factored(4, 2);
        let mut rng = StreamRng::seed_from_u64(11);
        let concepts = PlantedConcepts::draw(4, &[2.0, 1.0], &mut rng).unwrap();
        let m = concepts.matrix();
        let mut p32 = vec![0.0f32; shape.parameter_count()];
        shape.initialise_gaussian(&mut rng, 0.7, &mut p32);
        let params: Vec<f64> = p32.iter().map(|&v| v as f64).collect();
        let population = shape.population_regression(&params, &m, None);
        let mut scratch = shape.scratch::<f64>(1);
        let samples = 40_000;
        let (mut sum, mut sum2) = (0.0, 0.0);
        for _ in 0..samples {
            let x: Vec<f64> = (0..4).map(|_| rng.standard_normal()).collect();
            let y: Vec<f64> = (0..4).map(|_| rng.standard_normal()).collect();
            let t: f64 = (0..4)
                .map(|a| x[a] * (0..4).map(|b| m[a * 4 + b] * y[b]).sum::<f64>())
                .sum();
            let l = shape.example_loss(&params, &x, &y, Target::Score(t), 1.0, None, &mut scratch);
            sum += l;
            sum2 += l * l;
        }
        let mean = sum / samples as f64;
        let standard_error = ((sum2 / samples as f64 - mean * mean) / samples as f64).sqrt();
        // The Monte-Carlo mean is within 5 standard errors of the exact expectation.
        assert!(
            (mean - population).abs() < 5.0 * standard_error,
            "{mean} vs {population} ± {standard_error}"
        );
    }

    #[test]
    fn scores_and_exports_match_a_naive_head() {
        // Naive twin: s = Σ_η (W_Q^η x)·(W_K^η y) from the exported tensors.
        let shape = HeadShape::multi_head(3, 2, 2, HeadCombination::MixPatterns).with_values(2);
        let mut p = vec![0.0f32; shape.parameter_count()];
        shape.initialise_gaussian(&mut StreamRng::seed_from_u64(12), 1.0, &mut p);
        let tensors = shape.export(&p);
        let names: Vec<_> = tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.clone()))
            .collect();
        assert_eq!(
            names,
            [
                ("W_Q", vec![2, 2, 3]),
                ("W_K", vec![2, 2, 3]),
                ("W_V", vec![2, 2, 3]),
                ("W_O", vec![2, 3, 2])
            ]
        );
        let total: usize = tensors.iter().map(|t| t.data.len()).sum();
        assert_eq!(total, shape.parameter_count());
        let (wq, wk) = (&tensors[0].data, &tensors[1].data);
        let (x, y) = ([0.3f64, -1.0, 0.5], [1.2f64, 0.1, -0.7]);
        let w = shape.score_matrix(&p);
        let heads = shape.head_score_matrices(&p);
        let mut naive_total = 0.0;
        for (eta, head) in heads.iter().enumerate() {
            let mut naive = 0.0;
            for i in 0..2 {
                let at = eta * 6 + i * 3;
                let q: f64 = (0..3).map(|a| wq[at + a] as f64 * x[a]).sum();
                let k: f64 = (0..3).map(|b| wk[at + b] as f64 * y[b]).sum();
                naive += q * k;
            }
            let via: f64 = (0..3)
                .map(|a| x[a] * (0..3).map(|b| head[a * 3 + b] * y[b]).sum::<f64>())
                .sum();
            assert!((naive - via).abs() < 1e-9);
            naive_total += naive;
        }
        let via: f64 = (0..3)
            .map(|a| x[a] * (0..3).map(|b| w[a * 3 + b] * y[b]).sum::<f64>())
            .sum();
        assert!((naive_total - via).abs() < 1e-9);
        assert_eq!(shape.ov_matrices(&p).len(), 2);
        let merged = HeadShape::merged(3);
        assert_eq!(merged.export(&p[..9])[0].shape, vec![3, 3]);
        assert_eq!(
            HeadShape::factored(3, 2).export(&p[..12])[0].shape,
            vec![2, 3]
        );
    }

    fn key(instance: u64) -> InstanceKey {
        InstanceKey {
            seed: 2025,
            instance,
            replica: 0,
        }
    }

    /// First step at which an observable reaches `level`, linearly interpolated between history rows.
    fn crossing(rows: &[crate::train::HistoryRow], column: usize, level: f64) -> Option<f64> {
        rows.windows(2).find_map(|w| {
            let (a, b) = (w[0].observables[column], w[1].observables[column]);
            (a < level && b >= level)
                .then(|| w[0].step as f64 + (level - a) / (b - a) * (w[1].step - w[0].step) as f64)
        })
    }

    #[test]
    fn a1_population_gradient_follows_the_deep_linear_closed_form() {
        // §F2 A1: d = 6, d_head = 6, s = (3, 2, 1), λ = 0.01, aligned a₀ = 1e-4, exact gradient.
        let strengths = [3.0, 2.0, 1.0];
        let (lr, a0) = (0.01, 1e-4);
        let k = key(0);
        let concepts = PlantedConcepts::for_instance(6, &strengths, &k).unwrap();
        let task = ScoreRegressionTask::new(
            HeadShape::factored(6, 6),
            concepts,
            32,
            RegressionGradient::Population,
            AttentionInit::Aligned { a0 },
        )
        .unwrap();
        let settings = TrainSettings {
            steps: 800,
            optimizer: Optimizer::Sgd,
            learning_rate: lr,
            schedule: Schedule::Constant,
            log_every: 1,
        };
        let state = train(std::slice::from_ref(&task), &[k], &settings, &|_| ()).remove(0);
        let first = &state.history[0].observables;
        for (a, _) in first.iter().zip(&strengths) {
            // a_k(0) = a₀ up to f32 rounding of the √a₀-sized weights (relative 1e-6).
            assert!((a - a0).abs() < 1e-3 * a0, "a(0) = {a}");
        }
        for (col, &s) in strengths.iter().enumerate() {
            let measured = crossing(&state.history, col, s / 2.0).expect("mode learned");
            let theory = deep_linear::half_learning_time(s, a0, 1.0 / lr);
            // Gradient descent multiplies each factor by (1 + λ(s − a)) per step where the flow has
            // e^{λ(s − a)}: early on the discrete log-growth rate is ln(1 + λs)/(λs) ≈ 1 − λs/2 of the
            // continuous one, i.e. t½ is up to λs/2 = 1.5% (s = 3) longer. 2% is the spec's bound.
            let error = (measured - theory).abs() / theory;
            eprintln!("A1 mode s = {s}: t½ measured {measured:.1}, theory {theory:.1}");
            assert!(error < 0.02, "s = {s}: t½ {measured} vs {theory}");
        }
        let last = &state.history.last().unwrap().observables;
        // After 800 steps every mode is past its sigmoid: the slowest (s = 1) has t½ ≈ 461 and rises
        // with rate 2λs(1 − a/s) — within 1e-3 of s after ~340 more steps; share → 1 as off-plane
        // directions never grow from an aligned start.
        for (a, s) in last.iter().zip(&strengths) {
            assert!((a - s).abs() < 1e-2 * s, "final a = {a}, s = {s}");
        }
        assert!(last[3] > 0.999, "planted share {}", last[3]);

        // A2's shallow control: the merged head from the same aligned start. Every mode reaches half
        // its strength at the same t = ln 2 / −ln(1 − λ) ≈ 69 steps whatever s (the a₀ offset moves it
        // by a₀/s ≤ 1e-4 relative); the history's 1-step rows and linear interpolation of a curve of
        // curvature ~λ per step bound the error well below 1%.
        let merged = ScoreRegressionTask::new(
            HeadShape::merged(6),
            task.concepts.clone(),
            32,
            RegressionGradient::Population,
            AttentionInit::Aligned { a0 },
        )
        .unwrap();
        let state = train(
            &[merged],
            &[k],
            &TrainSettings {
                steps: 200,
                ..settings
            },
            &|_| (),
        )
        .remove(0);
        let theory = deep_linear::shallow_half_time(lr);
        for (col, &s) in strengths.iter().enumerate() {
            let measured = crossing(&state.history, col, s / 2.0).expect("mode learned");
            eprintln!("A2 merged s = {s}: t½ measured {measured:.2}, theory {theory:.2}");
            assert!((measured - theory).abs() < 0.01 * theory);
        }
    }

    #[test]
    fn a3_distillation_learns_stronger_concepts_first() {
        // §F2 A3: n = 8 Gaussian keys, teacher softmax(xᵀ M y_j), s = (3, 2, 1); factored head from a
        // small random start (std 1e-3, so a_k(0) ~ 1e-5 and each mode has a plateau to escape).
        let strengths = [3.0, 2.0, 1.0];
        let k = key(1);
        let concepts = PlantedConcepts::for_instance(6, &strengths, &k).unwrap();
        let task = DistillationTask::new(
            HeadShape::factored(6, 6),
            concepts,
            8,
            32,
            256,
            AttentionInit::Gaussian { std: 1e-3 },
            &k,
        )
        .unwrap();
        let settings = TrainSettings {
            steps: 1000,
            optimizer: Optimizer::Sgd,
            learning_rate: 0.1,
            schedule: Schedule::Constant,
            log_every: 2,
        };
        let state = train(std::slice::from_ref(&task), &[k], &settings, &|_| ()).remove(0);
        let times: Vec<f64> = (0..3)
            .map(|c| crossing(&state.history, c, strengths[c] / 2.0).expect("mode learned"))
            .collect();
        let last = &state.history.last().unwrap().observables;
        eprintln!("A3 half times {times:?}, final strengths {:?}", &last[..3]);
        // Measured over instances 1..6 while writing this test: t½ ≈ (99–105, 111–118, 158–193),
        // the s = 3 / s = 2 gap (≥ 9 steps) is over 4× the log interval, so the order is not a sampling
        // accident of this seed.
        assert!(
            times[0] < times[1] && times[1] < times[2],
            "stronger concepts first: {times:?}"
        );
        // W_QK = M is the exact minimiser (q = p for every context, so the minibatch gradient vanishes
        // there too): SGD converges to it up to f32 rounding (seen 1e-7); 1e-3 is a loose bound.
        for (a, s) in last.iter().zip(&strengths) {
            assert!((a - s).abs() < 1e-3 * s, "final a = {a}, s = {s}");
        }
        assert!(last[3] > 0.999, "planted share {}", last[3]);
        assert!(task.evaluation_loss(&state.parameters, &k) < 1e-6);
    }

    #[test]
    fn a4_heads_learn_a_small_graph() {
        use crate::data::pairs::{GraphSpec, RelationFrequency};
        // Far below capacity: m′ = 16 relations, D_K·d = 8·8 = 64. Chance is 1/n = 1/4.
        let spec = GraphSpec {
            vertices: 16,
            d: 8,
            edges: 16,
            frequency: RelationFrequency::Zipf { exponent: 1.0 },
        };
        let k = key(2);
        let graph = RelationalGraph::for_instance(spec, &k).unwrap();
        let shape = HeadShape::multi_head(8, 2, 4, HeadCombination::MixPatterns);
        let task = RelationalGraphTask::new(shape, graph, 4, 32, 8, 0.1, &k).unwrap();
        let settings = TrainSettings {
            steps: 400,
            optimizer: Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
                weight_decay: 0.0,
            },
            learning_rate: 0.05,
            schedule: Schedule::Constant,
            log_every: 50,
        };
        let state = train(std::slice::from_ref(&task), &[k], &settings, &|_| ()).remove(0);
        let first = &state.history[0].observables;
        let last = &state.history.last().unwrap().observables;
        let per_relation = task.relation_accuracy(&state.parameters);
        eprintln!("A4 accuracy {first:?} -> {last:?}; per relation {per_relation:?}");
        assert_eq!(per_relation.len(), 16);
        assert!(last[0] > 0.9 && last[1] > 0.9, "accuracy {last:?}");
        assert!(task.evaluation_loss(&state.parameters, &k) < 0.5);
    }
}
