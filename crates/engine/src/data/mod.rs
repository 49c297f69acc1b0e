//! Seeded data generators. Each draws only from the stream it is given, so a batch depends only on
//! the instance's key and step.
//!
//! - [`sparse`]: the synthetic sparse features of the toy models (independent, correlated and
//!   anticorrelated sets, signed values for the absolute-value task), drawn into [`batch`]'s
//!   [`SparseBatch`](batch::SparseBatch) or [`DenseBatch`](batch::DenseBatch), the toy kernels'
//!   input.
//! - [`pairs`]: planted concept matrices, Gaussian query/key pairs and the relational graph of the
//!   attention-head experiments (followups.md §F2).
//! - [`items`]: item × property matrices for deep linear networks (the 4×7 set, node-indicator
//!   trees, branching diffusion, validated user data).

pub mod batch;
pub mod items;
pub mod pairs;
pub mod sparse;
