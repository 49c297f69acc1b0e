//! Closed forms the experiments are checked against. Pure functions, no training.
//!
//! - [`superposition`]: the linear optimum, the phase diagrams of small models, polytope fractions
//!   (experiments.md §3–§4).

pub mod superposition;
