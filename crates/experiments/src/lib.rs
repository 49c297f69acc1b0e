//! # tms-experiments
//!
//! Everything between the engine and the user: configs and presets (TOML), runs (best-of-N over the
//! engine's shared trainer), and the output contract (safetensors, JSON, CSV, written atomically).
//! The engine knows nothing of this crate; the CLI and the report call into it.
//!
//! - [`validate`]: what every validation stage shares (dotted-key errors, did-you-mean, the serde
//!   stage that refuses unknown keys at every depth).
//! - [`training`]: driving the engine's trainer over (instance, replica) pairs; best-of-N.
//! - [`families`]: the `Family` trait, one module per model family, the registration point.
//! - [`config`]: `RawConfig` → validated `Plan`, errors with file, dotted key, expected vs found.
//! - [`presets`]: the built-in presets embedded from `presets/*.toml`.
//! - [`run`]: trains a plan, keeps the best replica of each instance.
//! - [`output`]: the run directory, atomic writes, reading outputs back with corruption checks.
//! - [`sweep`], [`checkpoint`]: sweeps over any config key, resumable, sharded, merged.

#![forbid(unsafe_code)]
// Config errors carry the origin, key, expected and found values and a hint; they happen once per
// process, so their size on the error path does not matter.
#![allow(clippy::result_large_err)]

/// Exit code of bad input (a config, a sweep file, an argument, an output directory): nothing was
/// written. The error types say which code they mean (`exit_code()`); the binary asks them.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code of a failure while running (a damaged result, an I/O error).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a run stopped by a signal after checkpointing (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

pub mod checkpoint;
pub mod config;
pub mod families;
pub mod output;
pub mod presets;
pub mod run;
pub mod sweep;
pub mod training;
pub mod validate;
