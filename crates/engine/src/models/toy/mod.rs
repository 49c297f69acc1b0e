//! Toy models of superposition (experiments.md §2): x̂ = ReLU(WᵀW x + b) and its variants.
//!
//! - [`shape`]: the math — kinds, parameter layout, the forward/backward pair (the naive twin of
//!   the fast kernels, gradient-checked in f64), export. The derivation is in its doc.
//! - [`task`]: the training [`Task`](crate::train::Task) — data law, importances, batch sizes;
//!   each step draws a batch and calls the fast kernels ([`crate::kernels::toy`]).
//!
//! The kernels read the shape from [`shape`] and [`task`] calls the kernels, so no file imports
//! one that imports it back. Everything is re-exported here.

pub mod shape;
pub mod task;

pub use shape::{ToyKind, ToyScratch, ToyShape};
pub use task::{ToyTask, ToyWorkspace};
