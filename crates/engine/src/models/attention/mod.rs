//! Attention heads trained on pairs of vectors (followups.md §F2): the head's forward and backward
//! passes ([`head`]) and the tasks of experiments A1–A4 ([`tasks`]).
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
//! ## Files
//!
//! - [`head`]: the head's math — shapes, parameter layout, the forward/backward pass of one
//!   example side by side (with its derivation), the population loss, score and OV matrices,
//!   initialisation, export; its gradient checks in `tests.rs`.
//! - [`tasks`]: the A1–A4 tasks that train a head (data, losses, observables).
//!
//! The acceptance runs of A1–A4 are integration tests (`tests/attention_acceptance.rs`).
//! Everything public is re-exported here.

pub mod head;
pub mod tasks;
#[cfg(test)]
mod tests;

pub use head::{HeadCombination, HeadScratch, HeadShape, ScoreMap, Target};
pub use tasks::{
    AttentionError, AttentionInit, AttentionWorkspace, DistillationTask, RegressionGradient,
    RelationalGraphTask, ScoreRegressionTask,
};
