//! Sweeps: one base config and a grid or list over any config keys, expanded into *cells* (each a
//! full, validated config), trained cell by cell with checkpoints, resumable after any interruption,
//! splittable into shards that run on different machines and merge into the same results.
//!
//! ## The sweep file
//!
//! ```toml
//! [sweep]
//! name = "density"            # default: the file's stem
//! preset = "e2-relu"          # or base = "path.toml" (relative to this file), or neither
//! checkpoint_every = 1000     # steps between checkpoints (default 1000; does not change results)
//!
//! [train]                     # optional inline sections, laid over the base key by key
//! steps = 2000
//!
//! [grid]                      # Cartesian product; keys in alphabetical order, the last fastest
//! "toy.n_hidden" = [2, 5]
//! "train.seed" = [0, 1, 2]
//!
//! [[cells]]                   # and/or an explicit list (each entry × every grid point)
//! "toy.model" = "linear"
//! ```
//!
//! Keys are dotted config keys, quoted: any key of `[experiment]`, `[train]` or any registered
//! family's section (`"attention.strengths"`, `"deep_linear.hidden"`, `"toy.density.count"`). A
//! value replaces the key's value in the base config; a key whose value is itself a list takes a
//! list of lists in `[grid]`, and tables are values like any other. Every key is checked: the
//! file's own tables by [`RawSweepFile`], the base with its inline sections once, and each cell's
//! config at every depth when it is validated.
//!
//! ## The rooms
//!
//! `load` (the file → cells), `record` (`sweep.json`), `shards` (units of work per shard),
//! `directory` (the sweep directory's layout and checks), `execution` (training with checkpoints,
//! resume, assembly of split cells), `results` (`results.csv|json`), `merge`.
//!
//! ## The sweep directory
//!
//! ```text
//! DIR/sweep.json                   the resolved sweep: every cell's id, swept values and full config,
//!                                  with a checksum
//! DIR/cells/<cell-id>/             one run directory per cell (the `tms train` contract, see output.rs)
//! DIR/checkpoints/<id>.i<a>-<b>.ckpt  states of instances a..b of a cell (checkpoint.rs): in progress,
//!                                  or finished parts of a cell split across shards
//! DIR/results.csv, results.json    one row per cell × instance, written once every cell is done
//! ```
//!
//! A cell's id is a readable slug of its values plus 8 hex digits of their hash: it depends on the
//! cell's values only, so it is the same in every shard. A run's result per instance depends only on
//! (seed, instance index, replica) — never on which other instances or cells share the process — so
//! results do not depend on how a sweep was split, interrupted or resumed: they are byte-identical.
//!
//! ## Corrupt files: the policy
//!
//! A checkpoint that is torn, fails its checksum or does not fit its cell is reported (its path and
//! why) and discarded, and the piece it held is trained again from scratch: checkpoints are derived
//! data. A finished cell directory or a `sweep.json` that cannot be read is an error naming the file;
//! tms never deletes results. `tms merge` discards nothing: any corrupt file it needs is an error.

mod directory;
mod execution;
mod load;
mod merge;
mod record;
mod results;
mod shards;

pub use directory::{check_dir, verify_cell_dir};
pub use execution::{run, total_steps, Event, Options, Summary};
pub use load::{cell_id, load, load_file, validate, RawSweepFile, RawSweepSection};
pub use merge::{merge, MergeSummary};
pub use record::{from_record, record};
pub use results::{results, write_results};
pub use shards::{units, Shard, Unit};

use crate::checkpoint::fnv1a64;
use crate::config::{ConfigError, Plan};
use crate::output::OutputError;
use crate::validate::Invalid;
use serde_json::Value;
use std::path::PathBuf;

/// Version of `sweep.json`.
pub const FORMAT: &str = "tms-sweep-1";
/// Version of `results.json`.
pub const RESULTS_FORMAT: &str = "tms-sweep-results-1";
/// Default steps between checkpoints.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1000;
/// Most cells one sweep may expand into.
pub const MAX_CELLS: usize = 100_000;

#[derive(Clone, Debug)]
pub struct Sweep {
    /// The sweep's name (`sweep.name`, default the file's stem).
    pub name: String,
    /// Steps between checkpoints (`sweep.checkpoint_every`).
    pub checkpoint_every: u64,
    /// Every swept key, sorted (the results' value columns).
    pub keys: Vec<String>,
    /// The cells, in expansion order.
    pub cells: Vec<Cell>,
}

/// One cell: the base config with some keys set.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Stable id, from the values only.
    pub id: String,
    /// The swept keys and this cell's values, sorted by key.
    pub values: Vec<(String, Value)>,
    /// The validated config.
    pub plan: Plan,
    /// The resolved config as TOML (the cell's `config.toml`).
    pub config: String,
}

impl Cell {
    /// Fingerprint of the resolved config (checkpoints of another config are refused).
    pub fn fingerprint(&self) -> u64 {
        fnv1a64(self.config.as_bytes())
    }

    /// Number of instance settings of the cell's run.
    pub fn instance_count(&self) -> usize {
        self.plan.family.instance_count()
    }

    /// `key = value, …` for messages.
    pub fn describe(&self) -> String {
        if self.values.is_empty() {
            return "the base config".into();
        }
        self.values
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a sweep could not be loaded, run or merged.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        message: String,
    },
    /// Not valid TOML.
    #[error("invalid sweep {path}: TOML syntax error\n{message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A sweep-level key with a wrong value, or an unknown key.
    #[error("invalid sweep {path}\nCaused by: {problem}")]
    Invalid {
        /// The sweep file.
        path: PathBuf,
        /// The dotted key, what was expected and found, a hint.
        problem: Invalid,
    },
    /// A cell whose config is invalid.
    #[error("invalid sweep {path}: cell `{cell}` ({values})")]
    Cell {
        /// The sweep file.
        path: PathBuf,
        /// The cell's id.
        cell: String,
        /// The cell's values.
        values: String,
        /// What is wrong with its config (names the dotted key).
        #[source]
        source: ConfigError,
    },
    /// The output directory holds another sweep.
    #[error("{dir} holds a different sweep than this one; use another --out directory or delete it\n{}", details.join("\n"))]
    DifferentSweep {
        /// The directory.
        dir: PathBuf,
        /// What differs, one line each.
        details: Vec<String>,
    },
    /// A directory that should be a sweep directory is not one.
    #[error("{dir} is not a sweep directory ({reason})")]
    NotASweepDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// `merge` found cells that no shard finished.
    #[error("cannot merge: {} of {total} cells are missing\n{}", missing.len(), missing.join("\n"))]
    Missing {
        /// Cells of the sweep.
        total: usize,
        /// One line per missing cell (its id and what was found of it).
        missing: Vec<String>,
    },
    /// `--shard` is not `K/N` with K < N.
    #[error("--shard expected K/N with 0 ≤ K < N (e.g. 0/4), but found `{0}`")]
    BadShard(String),
    /// Stopped on request (SIGINT, SIGTERM, SIGHUP) after checkpointing.
    #[error("interrupted at a checkpoint: {done} of {total} unit(s) of work of this run done")]
    Interrupted {
        /// Units finished in this run's share.
        done: usize,
        /// Units in this run's share.
        total: usize,
    },
    /// Writing or reading an output failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl SweepError {
    /// The process exit code this error means: 2 for bad input (nothing was written), 130 for an
    /// interruption (progress checkpointed), 1 for a failure while running.
    pub fn exit_code(&self) -> u8 {
        match self {
            SweepError::Read { .. }
            | SweepError::Syntax { .. }
            | SweepError::Invalid { .. }
            | SweepError::Cell { .. }
            | SweepError::DifferentSweep { .. }
            | SweepError::NotASweepDir { .. }
            | SweepError::Missing { .. }
            | SweepError::BadShard(_) => crate::EXIT_BAD_INPUT,
            SweepError::Interrupted { .. } => crate::EXIT_INTERRUPTED,
            SweepError::Output(e) => e.exit_code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    const SWEEP: &str = r#"
[sweep]
name = "t"
[experiment]
name = "t"
[train]
steps = 20
log_every = 5
[toy]
model = "relu-output"
n_features = 4
n_hidden = 2
density = [1.0, 0.1]
batch_size = 8
evaluation_batch_size = 16
[grid]
"toy.n_hidden" = [1, 2]
"train.seed" = [0, 1, 2]
"#;

    fn load_str(text: &str) -> Result<Sweep, SweepError> {
        load(text, Path::new("s.toml"))
    }

    #[test]
    fn grid_expands_with_stable_distinct_ids() {
        let s = load_str(SWEEP).unwrap();
        assert_eq!(s.cells.len(), 6);
        assert_eq!(s.keys, vec!["toy.n_hidden", "train.seed"]);
        let ids: BTreeSet<_> = s.cells.iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids.len(), 6);
        assert!(
            s.cells[1].id.starts_with("n_hidden=1_seed=1-"),
            "{}",
            s.cells[1].id
        );
        let again = load_str(SWEEP).unwrap();
        assert_eq!(record(&s), record(&again));
        let rebuilt = from_record(&record(&s), Path::new("sweep.json")).unwrap();
        assert_eq!(record(&rebuilt), record(&s));
    }

    #[test]
    fn units_cover_every_instance_once() {
        let s = load_str(SWEEP).unwrap();
        for n in 1..=20 {
            let mut seen = vec![vec![0; 2]; s.cells.len()];
            for k in 0..n {
                for u in units(&s, Shard { index: k, count: n }) {
                    for i in u.instances {
                        seen[u.cell][i] += 1;
                    }
                }
            }
            assert!(seen.iter().flatten().all(|&c| c == 1), "N = {n}");
        }
    }

    #[test]
    fn bad_keys_name_the_key() {
        let e = load_str(&SWEEP.replace("\"train.seed\"", "\"train.sed\"")).unwrap_err();
        let text = format!("{e}: {}", std::error::Error::source(&e).unwrap());
        assert!(
            text.contains("train.sed") && text.contains("did you mean `seed`"),
            "{text}"
        );
        let e = load_str(&SWEEP.replace("[grid]", "[gird]")).unwrap_err();
        assert!(e.to_string().contains("did you mean `grid`"), "{e}");
        let e = load_str(&SWEEP.replace("\"toy.n_hidden\" = [1, 2]", "\"toy.n_hidden\" = [0, 2]"))
            .unwrap_err();
        assert!(
            matches!(&e, SweepError::Cell { cell, .. } if cell.starts_with("n_hidden=0")),
            "{e}"
        );
        assert!(Shard::parse("4/4").is_err() && Shard::parse("x").is_err());
        assert_eq!(Shard::parse("1/4").unwrap(), Shard { index: 1, count: 4 });
    }
}
