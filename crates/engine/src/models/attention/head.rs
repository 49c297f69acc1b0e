//! One attention head's math (followups.md §F2): its shapes and parameter layout, the forward and
//! backward pass of one example side by side (generic over f32/f64, checked against finite
//! differences in f64 in `tests.rs`), the exact population loss of the regression task, the
//! score and OV matrices the metrics read, initialisation and export. The letters and equations are in
//! [`super`]'s doc; the tasks that train a head are [`super::tasks`].
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

use crate::data::pairs::PlantedConcepts;
use crate::linalg;
use crate::models::{NamedTensor, Real};
use crate::rng::StreamRng;

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
pub(super) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    a.iter().zip(b).fold(T::zero(), |s, (&x, &y)| s + x * y)
}
