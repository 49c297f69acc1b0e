//! # tms-engine
//!
//! The numerical core of tms: trains many independent small models at once and measures them.
//! It knows nothing about TOML, files, command lines or plots; it takes typed settings and returns
//! numbers. Three families share one training loop ([`train`]) and one output shape
//! ([`models::NamedTensor`] tensors, a loss history, observables):
//!
//! - toy models of superposition ([`models::toy`]), Elhage et al. 2022;
//! - deep linear networks (Saxe, McClelland & Ganguli 2019) — see `followups.md` §F1;
//! - attention heads trained on pairs of vectors — `followups.md` §F2: [`models::attention`], its
//!   data [`data::pairs`] and its metrics [`attention_metrics`].
//!
//! ## Letters
//!
//! One table for every kernel and comment in this crate:
//!
//! | letter | meaning |
//! |---|---|
//! | K | instances trained together (independent models) |
//! | B | batch size (examples per step) |
//! | n | features (input dimension of a toy model) |
//! | m | hidden dimensions |
//! | p | density: probability that a feature is non-zero (1 − sparsity S) |
//! | I_i | importance of feature i |
//! | W | the m×n embedding; column W_i embeds feature i |
//!
//! ## Invariants
//!
//! - An instance's result depends only on its task, its [`rng::InstanceKey`], the
//!   [`train::TrainSettings`] and the kernel set ([`cpu`], which says which sets give the same
//!   bits): not on thread count, not on the other instances of the run.
//! - Every model's backward pass is hand-derived and checked against central finite differences in f64.
//! - Data generators cost O(non-zeros), never O(B n) at low density.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod attention_metrics;
pub mod cpu;
pub mod data;
pub mod kernels;
pub mod linalg;
pub mod metrics;
pub mod models;
pub mod optim;
pub mod rng;
pub mod theory;
pub mod train;
