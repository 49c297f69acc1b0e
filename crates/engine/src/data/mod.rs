//! Seeded data generators. Each draws only from the stream it is given, so a batch depends only on
//! the instance's key and step.
//!
//! - [`sparse`]: the synthetic sparse features of the toy models (independent, correlated and
//!   anticorrelated sets, signed values for the absolute-value task).

pub mod sparse;
