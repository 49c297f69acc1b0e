//! Closed forms the experiments are checked against. Pure functions, no training.
//!
//! - [`superposition`]: the linear optimum, the phase diagrams of small models, polytope fractions
//!   (experiments.md §3–§4).
//! - [`deep_linear`]: Saxe et al.'s learning curves a(t), half-learning times, the shallow control,
//!   tree and branching-diffusion spectra, the deep-chain mode equation (followups.md §F1).

pub mod deep_linear;
pub mod superposition;
