//! Model families. Each family holds its parameter layout and its forward/backward pair, side by
//! side, generic over [`Real`] so that the same code runs in f32 and in f64 for the
//! finite-difference gradient checks, next to the [`Task`](crate::train::Task) that trains it.
//! The toy models train through the fast f32 kernels of [`crate::kernels`] instead, with their
//! generic pair as the kernels' naive twin.
//!
//! - [`toy`]: the toy models of superposition (linear, ReLU output, ReLU hidden, absolute value):
//!   `shape.rs` the math, `task.rs` the task.
//! - [`deep_linear`]: deep linear networks ŷ = W^L⋯W¹x learning item × property matrices
//!   (Saxe, McClelland & Ganguli 2019; followups.md §F1).
//! - [`attention`]: attention heads trained on pairs of vectors (merged/factored W_QK, several heads,
//!   OV circuit; score regression, softmax distillation, relational graphs: followups.md §F2):
//!   `head.rs` the math, `tasks.rs` the tasks.
//!
//! The follow-ups' acceptance runs (whole trainings against their closed forms: S1, S3, S4, S7 and
//! A1–A4) are integration tests: `crates/engine/tests/{deep_linear,attention}_acceptance.rs`.

pub mod attention;
pub mod deep_linear;
pub mod toy;

use num_traits::{Float, FromPrimitive};
use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{AddAssign, MulAssign, SubAssign};

/// The scalar types kernels run in: f32 (training) and f64 (gradient checks, metrics).
pub trait Real:
    Float + FromPrimitive + AddAssign + SubAssign + MulAssign + Sum + Debug + Send + Sync + 'static
{
    /// Converts an f32 (data values, importances).
    fn of(value: f32) -> Self;
}

impl Real for f32 {
    #[inline]
    fn of(value: f32) -> Self {
        value
    }
}

impl Real for f64 {
    #[inline]
    fn of(value: f32) -> Self {
        value as f64
    }
}

/// A named tensor exported from an instance's flat parameters (row-major `shape`).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// Tensor name in the output file (e.g. `W`, `b`).
    pub name: String,
    /// Shape of one instance's tensor (the output stacks instances in front: [K, ...shape]).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Central finite-difference gradient of `loss` at `parameters` (f64), for gradient checks.
///
/// Step `h`: the truncation error is O(h² f‴) and the rounding error O(ε_f64 · |f| / h); h = 1e-6
/// balances them near 1e-10 for losses of order one.
pub fn finite_difference_gradient(
    parameters: &[f64],
    h: f64,
    mut loss: impl FnMut(&[f64]) -> f64,
) -> Vec<f64> {
    let mut p = parameters.to_vec();
    (0..p.len())
        .map(|k| {
            let original = p[k];
            p[k] = original + h;
            let up = loss(&p);
            p[k] = original - h;
            let down = loss(&p);
            p[k] = original;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// Largest component-wise difference between two gradients, relative to the largest component of
/// `reference`: the measure the gradient checks bound by 1e-6.
pub fn relative_gradient_error(analytic: &[f64], reference: &[f64]) -> f64 {
    let scale = reference
        .iter()
        .fold(0.0f64, |a, &g| a.max(g.abs()))
        .max(1e-300);
    analytic
        .iter()
        .zip(reference)
        .fold(0.0f64, |a, (&x, &y)| a.max((x - y).abs()))
        / scale
}
