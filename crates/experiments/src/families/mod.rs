//! One module per model family: its `[section]` of the config, the validated plan, the engine tasks
//! it builds, and the per-instance metrics it writes. The run and output machinery is shared.

pub mod attention;
pub mod deep_linear;
pub mod toy;
