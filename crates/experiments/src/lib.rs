//! # tms-experiments
//!
//! Everything between the engine and the user: configs and presets (TOML), runs (best-of-N over the
//! engine's shared trainer), and the output contract (safetensors, JSON, CSV, written atomically).
//! The engine knows nothing of this crate; the CLI and the report call into it.
//!
//! - [`config`]: `RawConfig` → validated `Plan`, errors with file, dotted key, expected vs found.
//! - [`families`]: one module per model family (its config section, tasks, metrics).
//! - [`presets`]: the built-in presets embedded from `presets/*.toml`.
//! - [`run`]: trains a plan, keeps the best replica of each instance.
//! - [`output`]: the run directory, atomic writes, reading outputs back with corruption checks.

#![forbid(unsafe_code)]
// Config errors carry the origin, key, expected and found values and a hint; they happen once per
// process, so their size on the error path does not matter.
#![allow(clippy::result_large_err)]

pub mod checkpoint;
pub mod config;
pub mod families;
pub mod output;
pub mod presets;
pub mod run;
pub mod sweep;
