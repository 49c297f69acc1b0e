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
//! Keys are dotted config keys, quoted. A value replaces the key's value in the base config; a key
//! whose value is itself a list takes a list of lists in `[grid]`.
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

use crate::checkpoint::{self, fnv1a64};
use crate::config::{self, ConfigError, Origin, Plan};
use crate::output::{self, OutputError};
use crate::validate::did_you_mean;
use crate::{presets, run};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use tms_engine::train::{InstanceState, Status};

/// Version of `sweep.json`.
pub const FORMAT: &str = "tms-sweep-1";
/// Version of `results.json`.
pub const RESULTS_FORMAT: &str = "tms-sweep-results-1";
/// Default steps between checkpoints.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1000;
/// Most cells one sweep may expand into.
pub const MAX_CELLS: usize = 100_000;

const CONFIG_SECTIONS: [&str; 3] = ["experiment", "train", "toy"];
const SECTIONS: [&str; 6] = ["sweep", "grid", "cells", "experiment", "train", "toy"];
const SWEEP_KEYS: [&str; 4] = ["name", "base", "preset", "checkpoint_every"];
/// The files of a cell's run directory.
const RUN_FILES: [&str; 4] = [
    "config.toml",
    "model.safetensors",
    "metrics.json",
    "loss.csv",
];

/// A validated sweep: its cells, each a full config.
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
    #[error("invalid sweep {path}\nCaused by: `{key}` expected {expected}, but found {found}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Invalid {
        /// The sweep file.
        path: PathBuf,
        /// Dotted key.
        key: String,
        /// What is allowed.
        expected: String,
        /// What was there.
        found: String,
        /// How to fix it.
        hint: Option<String>,
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
    /// Stopped on request (SIGINT) after checkpointing.
    #[error("interrupted: checkpoint saved, {done} of {total} cells of this run done")]
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
    /// Whether the error is the user's input (exit code 2, nothing written).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            SweepError::Read { .. }
                | SweepError::Syntax { .. }
                | SweepError::Invalid { .. }
                | SweepError::Cell { .. }
                | SweepError::DifferentSweep { .. }
                | SweepError::NotASweepDir { .. }
                | SweepError::Missing { .. }
                | SweepError::BadShard(_)
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Loading

/// Reads and validates a sweep file.
pub fn load_file(path: &Path) -> Result<Sweep, SweepError> {
    let text = std::fs::read_to_string(path).map_err(|e| SweepError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    load(&text, path)
}

/// Parses and validates sweep text; `path` names it in errors and anchors a relative `base`.
/// Every cell is validated; nothing is written.
pub fn load(text: &str, path: &Path) -> Result<Sweep, SweepError> {
    let invalid = |key: &str, expected: &str, found: String| SweepError::Invalid {
        path: path.to_path_buf(),
        key: key.to_string(),
        expected: expected.to_string(),
        found,
        hint: None,
    };
    let with_hint = |e: SweepError, hint: Option<String>| match e {
        SweepError::Invalid {
            path,
            key,
            expected,
            found,
            ..
        } => SweepError::Invalid {
            path,
            key,
            expected,
            found,
            hint,
        },
        other => other,
    };
    let mut top: toml::Table = toml::from_str(text).map_err(|e| SweepError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if let Some(key) = top.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
        return Err(with_hint(
            invalid(
                key,
                "one of the sections [sweep], [grid], [[cells]], [experiment], [train], [toy]",
                format!("unknown key `{key}`"),
            ),
            did_you_mean(key, &SECTIONS).map(|s| format!("did you mean `{s}`?")),
        ));
    }

    // [sweep]
    let section = match top.remove("sweep") {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(other) => return Err(invalid("sweep", "a table", other.type_str().into())),
    };
    if let Some(key) = section.keys().find(|k| !SWEEP_KEYS.contains(&k.as_str())) {
        return Err(with_hint(
            invalid(
                &format!("sweep.{key}"),
                "a known key of [sweep] (name, base, preset, checkpoint_every)",
                format!("unknown key `{key}`"),
            ),
            did_you_mean(key, &SWEEP_KEYS).map(|s| format!("did you mean `{s}`?")),
        ));
    }
    let string = |key: &str| -> Result<Option<String>, SweepError> {
        match section.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(
                &format!("sweep.{key}"),
                "a string",
                format!("{} {other}", other.type_str()),
            )),
        }
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("sweep")
        .to_string();
    let name = string("name")?.unwrap_or(stem);
    let checkpoint_every = match section.get("checkpoint_every") {
        None => DEFAULT_CHECKPOINT_EVERY,
        Some(toml::Value::Integer(n)) if *n >= 1 => *n as u64,
        Some(other) => {
            return Err(invalid(
                "sweep.checkpoint_every",
                "an integer ≥ 1 (steps between checkpoints)",
                other.to_string(),
            ))
        }
    };

    // The base config, then the inline sections over it.
    let mut base = match (string("base")?, string("preset")?) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "sweep.base",
                "either sweep.base or sweep.preset, not both",
                "both".into(),
            ))
        }
        (Some(file), None) => {
            let base_path = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join(&file);
            let text = std::fs::read_to_string(&base_path).map_err(|e| SweepError::Read {
                path: base_path.clone(),
                message: format!("{e} (sweep.base in {})", path.display()),
            })?;
            toml::from_str::<toml::Table>(&text).map_err(|e| SweepError::Syntax {
                path: base_path,
                message: e.to_string(),
            })?
        }
        (None, Some(preset)) => {
            let text = presets::text(&preset).ok_or_else(|| {
                with_hint(
                    invalid(
                        "sweep.preset",
                        &format!("one of {}", presets::names().join(", ")),
                        format!("`{preset}`"),
                    ),
                    did_you_mean(&preset, &presets::names())
                        .map(|s| format!("did you mean `{s}`?")),
                )
            })?;
            toml::from_str::<toml::Table>(text).expect("built-in presets are valid TOML")
        }
        (None, None) => toml::Table::new(),
    };
    for name in CONFIG_SECTIONS {
        if let Some(overlay) = top.remove(name) {
            match (base.get_mut(name), overlay) {
                (Some(toml::Value::Table(b)), toml::Value::Table(o)) => b.extend(o),
                (_, overlay) => {
                    base.insert(name.to_string(), overlay);
                }
            }
        }
    }
    let experiment = base
        .entry("experiment")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(e) = experiment {
        e.entry("name")
            .or_insert_with(|| toml::Value::String(name.clone()));
    }

    // The swept values.
    let check_key = |key: &str, section: &str| -> Result<(), SweepError> {
        let first = key.split('.').next().unwrap_or("");
        if key.split('.').any(str::is_empty) || !CONFIG_SECTIONS.contains(&first) {
            return Err(with_hint(
                invalid(
                    &format!("{section}.\"{key}\""),
                    "a quoted dotted config key starting with experiment., train. or toy.",
                    format!("`{key}`"),
                ),
                did_you_mean(first, &CONFIG_SECTIONS)
                    .map(|s| format!("did you mean `{s}`?"))
                    .or_else(|| {
                        Some("write keys quoted, e.g. \"toy.density\" = [0.1, 0.01]".into())
                    }),
            ));
        }
        Ok(())
    };
    let mut axes: Vec<(String, Vec<toml::Value>)> = Vec::new();
    match top.remove("grid") {
        None => {}
        Some(toml::Value::Table(grid)) => {
            for (key, values) in grid {
                check_key(&key, "grid")?;
                match values {
                    toml::Value::Array(list) if !list.is_empty() => axes.push((key, list)),
                    toml::Value::Array(_) => {
                        return Err(invalid(
                            &format!("grid.\"{key}\""),
                            "a non-empty list of values",
                            "[]".into(),
                        ))
                    }
                    other => {
                        return Err(with_hint(
                            invalid(
                                &format!("grid.\"{key}\""),
                                "a list of values",
                                format!("{} {other}", other.type_str()),
                            ),
                            Some(if other.is_table() {
                                "dotted keys must be quoted: write \"toy.density\" = [0.1, 0.01], not toy.density = [0.1, 0.01]".to_string()
                            } else {
                                format!("write \"{key}\" = [{other}] for one value")
                            }),
                        ))
                    }
                }
            }
        }
        Some(other) => return Err(invalid("grid", "a table", other.type_str().into())),
    }
    let mut listed: Vec<toml::Table> = Vec::new();
    match top.remove("cells") {
        None => listed.push(toml::Table::new()),
        Some(toml::Value::Array(list)) if !list.is_empty() => {
            for (i, entry) in list.into_iter().enumerate() {
                match entry {
                    toml::Value::Table(t) => {
                        for key in t.keys() {
                            check_key(key, &format!("cells[{i}]"))?;
                        }
                        listed.push(t);
                    }
                    other => {
                        return Err(invalid(
                            &format!("cells[{i}]"),
                            "a table of key = value",
                            other.type_str().into(),
                        ))
                    }
                }
            }
        }
        Some(other) => {
            return Err(invalid(
                "cells",
                "a non-empty list of [[cells]] tables",
                other.type_str().into(),
            ))
        }
    }
    let grid_size = axes
        .iter()
        .try_fold(1usize, |acc, (_, v)| acc.checked_mul(v.len()))
        .and_then(|g| g.checked_mul(listed.len()))
        .filter(|&total| total <= MAX_CELLS);
    let Some(total) = grid_size else {
        return Err(invalid(
            "grid",
            &format!("at most {MAX_CELLS} cells"),
            "more".into(),
        ));
    };

    // Expand: each listed cell × each grid point (the last axis fastest).
    let mut cells: Vec<Cell> = Vec::with_capacity(total);
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    let grid_points = total / listed.len();
    for (i, entry) in listed.iter().enumerate() {
        for point in 0..grid_points {
            let mut values: BTreeMap<String, toml::Value> = entry.clone().into_iter().collect();
            let mut rest = point;
            for (key, list) in axes.iter().rev() {
                let v = list[rest % list.len()].clone();
                rest /= list.len();
                if values.insert(key.clone(), v).is_some() {
                    return Err(invalid(
                        &format!("cells[{i}].\"{key}\""),
                        "a key set in [[cells]] or in [grid], not both",
                        "both".into(),
                    ));
                }
            }
            let mut table = base.clone();
            for (key, value) in &values {
                set_dotted(&mut table, key, value.clone())
                    .map_err(|found| invalid(key, "a key inside a config table", found))?;
            }
            let values: Vec<(String, Value)> = values
                .into_iter()
                .map(|(k, v)| (k, toml_to_json(&v)))
                .collect();
            let id = cell_id(&values);
            let text = toml::to_string(&toml::Value::Table(table))
                .expect("a TOML table always serialises");
            let describe = |values: &[(String, Value)]| {
                values
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let plan =
                config::load(&text, &Origin::File(path.to_path_buf()), &[]).map_err(|source| {
                    SweepError::Cell {
                        path: path.to_path_buf(),
                        cell: id.clone(),
                        values: if values.is_empty() {
                            "the base config".into()
                        } else {
                            describe(&values)
                        },
                        source,
                    }
                })?;
            if let Some(&other) = ids.get(&id) {
                return Err(invalid(
                    "cells",
                    "cells with different values",
                    format!(
                        "two cells with {} (cells {other} and {})",
                        describe(&values),
                        cells.len()
                    ),
                ));
            }
            ids.insert(id.clone(), cells.len());
            let config = config::to_toml(&plan.resolved);
            cells.push(Cell {
                id,
                values,
                plan,
                config,
            });
        }
    }
    let keys: BTreeSet<String> = cells
        .iter()
        .flat_map(|c| c.values.iter().map(|(k, _)| k.clone()))
        .collect();
    Ok(Sweep {
        name,
        checkpoint_every,
        keys: keys.into_iter().collect(),
        cells,
    })
}

/// Sets `a.b.c` in a TOML table (intermediate tables created); the error says which part is not a table.
fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut current = table;
    for part in &parts[..parts.len() - 1] {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            other => return Err(format!("`{part}` is a {}, not a table", other.type_str())),
        };
    }
    current.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) if f.is_finite() => json!(f),
        toml::Value::Float(f) => json!(f.to_string()),
        toml::Value::Boolean(b) => json!(b),
        toml::Value::Datetime(d) => json!(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// A cell's id: `last-key=value_…` (sanitised, at most 48 characters) and 8 hex digits of the hash
/// of every key and value. Depends on the values only.
pub fn cell_id(values: &[(String, Value)]) -> String {
    let canonical: String = values.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let hash = fnv1a64(canonical.as_bytes());
    let mut slug: String = values
        .iter()
        .map(|(k, v)| {
            let short = k.rsplit('.').next().unwrap_or(k);
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{short}={v}")
        })
        .collect::<Vec<_>>()
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._=-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if slug.is_empty() {
        slug = "base".into();
    }
    slug.truncate(48);
    format!("{slug}-{:08x}", hash as u32 ^ (hash >> 32) as u32)
}

// ---------------------------------------------------------------------------------------------
// The sweep record (sweep.json)

/// The bytes of `sweep.json`: name, swept keys, and every cell's id, values, instance count and
/// resolved config. Two runs may share a directory exactly when these bytes are equal.
pub fn record(sweep: &Sweep) -> Vec<u8> {
    let cells: Vec<Value> = sweep
        .cells
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "values": Value::Object(c.values.iter().cloned().collect()),
                "instances": c.instance_count(),
                "config": c.config,
            })
        })
        .collect();
    let mut doc = json!({
        "format": FORMAT,
        "name": sweep.name,
        "keys": sweep.keys,
        "cells": cells,
    });
    doc["checksum"] = json!(record_checksum(&doc));
    let mut s = serde_json::to_string_pretty(&doc).expect("JSON values serialise");
    s.push('\n');
    s.into_bytes()
}

/// FNV-1a of the record's JSON text without its `checksum` field, as 16 hex digits: a hand edit
/// that keeps the JSON valid (a changed number in a config) is still detected.
fn record_checksum(doc: &Value) -> String {
    let mut body = doc.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("checksum");
    }
    let text = serde_json::to_string(&body).expect("JSON values serialise");
    format!("{:016x}", fnv1a64(text.as_bytes()))
}

/// Rebuilds a sweep from the bytes of its `sweep.json` at `path` (for `merge`); every config is
/// validated again.
pub fn from_record(bytes: &[u8], path: &Path) -> Result<Sweep, SweepError> {
    let corrupt = |reason: String| {
        SweepError::Output(OutputError::Corrupt {
            path: path.to_path_buf(),
            reason,
        })
    };
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if doc["format"] != FORMAT {
        return Err(corrupt(format!("expected \"format\": \"{FORMAT}\"")));
    }
    if doc["checksum"].as_str() != Some(record_checksum(&doc).as_str()) {
        return Err(corrupt(
            "checksum mismatch (the file was damaged or edited)".into(),
        ));
    }
    let name = doc["name"]
        .as_str()
        .ok_or_else(|| corrupt("no \"name\"".into()))?
        .to_string();
    let keys: Vec<String> = doc["keys"]
        .as_array()
        .ok_or_else(|| corrupt("no \"keys\" list".into()))?
        .iter()
        .map(|k| k.as_str().map(str::to_string))
        .collect::<Option<_>>()
        .ok_or_else(|| corrupt("\"keys\" must be strings".into()))?;
    let mut cells = Vec::new();
    for (i, c) in doc["cells"]
        .as_array()
        .ok_or_else(|| corrupt("no \"cells\" list".into()))?
        .iter()
        .enumerate()
    {
        let (Some(id), Some(values), Some(text)) = (
            c["id"].as_str(),
            c["values"].as_object(),
            c["config"].as_str(),
        ) else {
            return Err(corrupt(format!("cell {i} lacks id, values or config")));
        };
        let values: Vec<(String, Value)> =
            values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if cell_id(&values) != id {
            return Err(corrupt(format!(
                "cell {i}: id {id} does not match its values"
            )));
        }
        let plan = config::load(text, &Origin::File(path.to_path_buf()), &[])
            .map_err(|e| corrupt(format!("cell {id}: {e}")))?;
        cells.push(Cell {
            id: id.to_string(),
            values,
            config: config::to_toml(&plan.resolved),
            plan,
        });
    }
    let sweep = Sweep {
        name,
        checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
        keys,
        cells,
    };
    if record(&sweep) != bytes {
        return Err(corrupt(
            "not in the form tms writes (edited by hand?)".into(),
        ));
    }
    Ok(sweep)
}

/// What differs between two `sweep.json` records, one line each (at most a dozen).
fn differences(ours: &[u8], theirs: &[u8]) -> Vec<String> {
    let (Ok(a), Ok(b)) = (
        serde_json::from_slice::<Value>(ours),
        serde_json::from_slice::<Value>(theirs),
    ) else {
        return vec!["  its sweep.json is corrupt (not valid JSON)".into()];
    };
    let mut lines = Vec::new();
    if a["name"] != b["name"] {
        lines.push(format!("name: {} here, {} there", a["name"], b["name"]));
    }
    let cells = |v: &Value| -> BTreeMap<String, Value> {
        v["cells"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| Some((c["id"].as_str()?.to_string(), c["config"].clone())))
            .collect()
    };
    let (ca, cb) = (cells(&a), cells(&b));
    for (id, config) in &ca {
        match cb.get(id) {
            None => lines.push(format!("cell {id}: only in this sweep")),
            Some(other) if other != config => lines.push(format!("cell {id}: a different config")),
            _ => {}
        }
    }
    for id in cb.keys().filter(|id| !ca.contains_key(*id)) {
        lines.push(format!("cell {id}: only in the directory's sweep"));
    }
    if lines.is_empty() {
        lines.push("the cells are the same but listed differently".into());
    }
    if lines.len() > 12 {
        let more = lines.len() - 12;
        lines.truncate(12);
        lines.push(format!("… and {more} more"));
    }
    lines.iter().map(|l| format!("  {l}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Shards and units of work

/// The K-th of N parts of a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// K, from 0.
    pub index: usize,
    /// N ≥ 1.
    pub count: usize,
}

impl Shard {
    /// The whole sweep.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `K/N`.
    pub fn parse(text: &str) -> Result<Shard, SweepError> {
        let bad = || SweepError::BadShard(text.to_string());
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A piece of work: instances `instances` of cell `cell` (all of its instances, unless a sweep has
/// fewer cells than shards).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Index of the cell in the sweep.
    pub cell: usize,
    /// Instance indices of the piece.
    pub instances: Range<usize>,
}

/// The units of shard `shard`. With at least as many cells as shards, cell i goes to shard i mod N,
/// whole. With fewer, the (cell, instance) pairs of the whole sweep are cut into N contiguous,
/// near-equal runs, so that every shard has work; a cell cut in pieces is assembled from its parts.
/// Either way every instance belongs to exactly one shard.
pub fn units(sweep: &Sweep, shard: Shard) -> Vec<Unit> {
    let cells = &sweep.cells;
    if shard.count <= cells.len() {
        return (shard.index..cells.len())
            .step_by(shard.count)
            .map(|c| Unit {
                cell: c,
                instances: 0..cells[c].instance_count(),
            })
            .collect();
    }
    let total: usize = cells.iter().map(Cell::instance_count).sum();
    let from = shard.index * total / shard.count;
    let to = (shard.index + 1) * total / shard.count;
    let mut out = Vec::new();
    let mut offset = 0;
    for (c, cell) in cells.iter().enumerate() {
        let k = cell.instance_count();
        let (a, b) = (from.max(offset), to.min(offset + k));
        if a < b {
            out.push(Unit {
                cell: c,
                instances: a - offset..b - offset,
            });
        }
        offset += k;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Running

/// Something a sweep run reports as it goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A cell was already done in the directory.
    Skipped {
        /// Cell id.
        cell: String,
    },
    /// Training continues from a checkpoint.
    Resumed {
        /// Cell id.
        cell: String,
        /// The checkpoint.
        path: PathBuf,
        /// Its step (the least advanced instance's).
        step: u64,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// Cell id.
        cell: String,
        /// The file.
        path: PathBuf,
        /// Steps done (least advanced running instance).
        step: u64,
        /// Steps of the run.
        steps: u64,
    },
    /// A piece of a split cell is done; the cell is assembled once all pieces are.
    PartDone {
        /// Cell id.
        cell: String,
        /// The instances of the piece.
        instances: Range<usize>,
    },
    /// A cell's run directory was written.
    CellDone {
        /// Cell id.
        cell: String,
        /// Its directory.
        path: PathBuf,
    },
    /// A corrupt or unusable checkpoint was deleted; its piece is trained from scratch.
    Discarded {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// An instance diverged (NaN or infinite loss or gradient).
    Diverged {
        /// Cell id.
        cell: String,
        /// Instance index.
        instance: usize,
        /// The instance's settings.
        settings: String,
        /// Step of the first non-finite value.
        step: u64,
        /// The loss then.
        loss: f64,
    },
}

impl Event {
    /// Whether the event is a warning (shown even when not verbose).
    pub fn is_warning(&self) -> bool {
        matches!(self, Event::Discarded { .. } | Event::Diverged { .. })
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Skipped { cell } => write!(f, "cell {cell}: already done"),
            Event::Resumed { cell, path, step } => write!(
                f,
                "cell {cell}: resuming at step {step} from {}",
                path.display()
            ),
            Event::Checkpoint {
                cell,
                path,
                step,
                steps,
            } => write!(
                f,
                "cell {cell}: checkpoint at step {step}/{steps} → {}",
                path.display()
            ),
            Event::PartDone { cell, instances } => write!(
                f,
                "cell {cell}: instances {}..{} done (the cell is assembled when all its parts are)",
                instances.start, instances.end
            ),
            Event::CellDone { cell, path } => {
                write!(f, "cell {cell}: done → {}", path.display())
            }
            Event::Discarded { path, reason } => write!(
                f,
                "warning: discarding checkpoint {}: {reason}; its instances are trained again from scratch",
                path.display()
            ),
            Event::Diverged {
                cell,
                instance,
                settings,
                step,
                loss,
            } => write!(
                f,
                "warning: cell {cell}, instance {instance} ({settings}) diverged at step {step} (loss {loss}); its training stopped, the other instances went on"
            ),
        }
    }
}

/// How a sweep runs.
pub struct Options<'a> {
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
    /// Set (e.g. by a SIGINT handler) to stop at the next checkpoint.
    pub stop: &'a AtomicBool,
    /// Receives events.
    pub events: &'a (dyn Fn(Event) + Sync),
    /// Receives steps done (including steps restored from checkpoints).
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Units of this shard.
    pub units: usize,
    /// Units trained (fully or from a checkpoint) in this run.
    pub trained: usize,
    /// Cells of the whole sweep.
    pub cells: usize,
    /// Cells whose run directory exists in the sweep directory now.
    pub cells_done: usize,
    /// Whether results.csv/json were written (every cell done).
    pub results_written: bool,
}

/// Total training steps of `units` (for a progress bar).
pub fn total_steps(sweep: &Sweep, units: &[Unit]) -> u64 {
    units
        .iter()
        .map(|u| {
            let plan = &sweep.cells[u.cell].plan;
            u.instances.len() as u64 * plan.replicas * plan.train.steps
        })
        .sum()
}

fn cell_dir(dir: &Path, cell: &Cell) -> PathBuf {
    dir.join("cells").join(&cell.id)
}

fn checkpoint_path(dir: &Path, cell: &Cell, instances: &Range<usize>) -> PathBuf {
    dir.join("checkpoints").join(format!(
        "{}.i{}-{}.ckpt",
        cell.id, instances.start, instances.end
    ))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError + '_ {
    move |source| {
        SweepError::Output(OutputError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Checks that `dir` is new, empty, or holds this very sweep; nothing is written.
pub fn check_dir(sweep: &Sweep, dir: &Path) -> Result<(), SweepError> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(SweepError::NotASweepDir {
            dir: dir.to_path_buf(),
            reason: "it is a file".into(),
        });
    }
    let path = dir.join("sweep.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let ours = record(sweep);
            if bytes != ours {
                let details = match from_record(&bytes, &path) {
                    Err(SweepError::Output(e)) => vec![format!("  {e}")],
                    _ => differences(&ours, &bytes),
                };
                return Err(SweepError::DifferentSweep {
                    dir: dir.to_path_buf(),
                    details,
                });
            }
            Ok(())
        }
        Err(_) => {
            let empty = std::fs::read_dir(dir)
                .map_err(io_error(dir))?
                .next()
                .is_none();
            if empty {
                Ok(())
            } else {
                Err(SweepError::NotASweepDir {
                    dir: dir.to_path_buf(),
                    reason: "it is not empty and has no sweep.json".into(),
                })
            }
        }
    }
}

/// Trains the units of `shard` into the sweep directory `dir`, skipping what is done and resuming
/// from checkpoints; writes the results once every cell of the sweep is done in `dir`.
pub fn run(
    sweep: &Sweep,
    dir: &Path,
    shard: Shard,
    options: &Options,
) -> Result<Summary, SweepError> {
    check_dir(sweep, dir)?;
    for sub in ["cells", "checkpoints"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(io_error(&p))?;
    }
    let record_path = dir.join("sweep.json");
    if std::fs::read(&record_path).ok().as_deref() != Some(&record(sweep)[..]) {
        output::write_atomically(&record_path, &record(sweep))?;
    }
    let units = units(sweep, shard);
    let mut trained = 0;
    for (done, unit) in units.iter().enumerate() {
        if options.stop.load(Ordering::SeqCst) {
            return Err(SweepError::Interrupted {
                done,
                total: units.len(),
            });
        }
        let cell = &sweep.cells[unit.cell];
        let target = cell_dir(dir, cell);
        if target.exists() {
            verify_cell_dir(cell, &target)?;
            (options.progress)(unit_steps(cell, &unit.instances));
            (options.events)(Event::Skipped {
                cell: cell.id.clone(),
            });
            continue;
        }
        if let Some(states) = assemble(cell, &[dir.to_path_buf()], false, options.events)? {
            (options.progress)(unit_steps(cell, &unit.instances));
            finish_cell(cell, dir, &states, options.events)?;
            continue;
        }
        trained += 1;
        let states = match train_unit(cell, unit, dir, options)? {
            Some(states) => states,
            None => {
                return Err(SweepError::Interrupted {
                    done,
                    total: units.len(),
                })
            }
        };
        if unit.instances == (0..cell.instance_count()) {
            finish_cell(cell, dir, &states, options.events)?;
        } else {
            (options.events)(Event::PartDone {
                cell: cell.id.clone(),
                instances: unit.instances.clone(),
            });
            if let Some(states) = assemble(cell, &[dir.to_path_buf()], false, options.events)? {
                finish_cell(cell, dir, &states, options.events)?;
            }
        }
    }
    let cells_done = sweep
        .cells
        .iter()
        .filter(|c| cell_dir(dir, c).exists())
        .count();
    let results_written = cells_done == sweep.cells.len();
    if results_written {
        write_results(sweep, dir)?;
    }
    Ok(Summary {
        units: units.len(),
        trained,
        cells: sweep.cells.len(),
        cells_done,
        results_written,
    })
}

fn unit_steps(cell: &Cell, instances: &Range<usize>) -> u64 {
    instances.len() as u64 * cell.plan.replicas * cell.plan.train.steps
}

/// Trains one unit from its checkpoint (or from scratch) to the end, checkpointing every
/// `checkpoint_every` steps. A finished piece of a split cell stays as a complete checkpoint.
/// Returns `None` when stopped by `options.stop` (after writing a checkpoint).
fn train_unit(
    cell: &Cell,
    unit: &Unit,
    dir: &Path,
    options: &Options,
) -> Result<Option<Vec<InstanceState>>, SweepError> {
    let plan = &cell.plan;
    let steps = plan.train.steps;
    let indices: Vec<usize> = unit.instances.clone().collect();
    let range = unit.instances.start as u64..unit.instances.end as u64;
    let path = checkpoint_path(dir, cell, &unit.instances);
    let mut states = run::initial_states(plan, &indices);
    if path.exists() {
        let restored = checkpoint::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                checkpoint::check_matches(&c, cell.fingerprint(), &range, &states, steps)
                    .map(|()| c.states)
                    .map_err(|reason| format!("{}: {reason}", path.display()))
            });
        match restored {
            Ok(restored) => {
                states = restored;
                let step = least_step(&states).unwrap_or(steps);
                (options.events)(Event::Resumed {
                    cell: cell.id.clone(),
                    path: path.clone(),
                    step,
                });
                (options.progress)(states.iter().map(|s| s.step).sum());
            }
            Err(reason) => discard(&path, reason, options.events)?,
        }
    }
    let every = options.checkpoint_every.max(1);
    while let Some(step) = least_step(&states) {
        let until = ((step / every + 1) * every).min(steps);
        run::advance(plan, &indices, &mut states, until, options.progress);
        let finished = least_step(&states).is_none();
        let split = unit.instances != (0..cell.instance_count());
        if !finished || split {
            checkpoint::write(&path, cell.fingerprint(), &range, &states)?;
            (options.events)(Event::Checkpoint {
                cell: cell.id.clone(),
                path: path.clone(),
                step: least_step(&states).unwrap_or(steps),
                steps,
            });
        }
        if !finished && options.stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
    }
    Ok(Some(states))
}

/// The step of the least advanced running state; `None` when all have stopped.
fn least_step(states: &[InstanceState]) -> Option<u64> {
    states
        .iter()
        .filter(|s| s.status == Status::Running)
        .map(|s| s.step)
        .min()
}

fn discard(path: &Path, reason: String, events: &(dyn Fn(Event) + Sync)) -> Result<(), SweepError> {
    let reason = reason
        .strip_prefix(&format!("{}: ", path.display()))
        .map(str::to_string)
        .unwrap_or(reason);
    events(Event::Discarded {
        path: path.to_path_buf(),
        reason,
    });
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(path)(e)),
        _ => Ok(()),
    }
}

/// The complete parts of `cell` found in the `checkpoints/` of `dirs`, if they cover every instance;
/// their states in instance order. With `strict` (merge) an unreadable part is an error; without,
/// it is discarded with a warning.
fn assemble(
    cell: &Cell,
    dirs: &[PathBuf],
    strict: bool,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Option<Vec<InstanceState>>, SweepError> {
    let k = cell.instance_count();
    let prefix = format!("{}.i", cell.id);
    // (start, end, path) of every checkpoint file of this cell, by its name.
    let mut found: Vec<(usize, usize, PathBuf)> = Vec::new();
    for dir in dirs {
        let folder = dir.join("checkpoints");
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(range) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".ckpt"))
            else {
                continue;
            };
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    if a < b && b <= k {
                        found.push((a, b, entry.path()));
                    }
                }
            }
        }
    }
    found.sort();
    // Cheap check on names first: can they cover 0..k at all?
    let mut reach = 0;
    for (a, b, _) in &found {
        if *a <= reach {
            reach = reach.max(*b);
        }
    }
    if reach < k {
        return Ok(None);
    }
    let mut complete: BTreeMap<usize, (usize, Vec<InstanceState>)> = BTreeMap::new();
    for (a, b, path) in found {
        if complete.contains_key(&a) {
            continue;
        }
        let indices: Vec<usize> = (a..b).collect();
        let fresh = run::initial_states(&cell.plan, &indices);
        let checked = checkpoint::read(&path)
            .map_err(SweepError::from)
            .and_then(|c| {
                checkpoint::check_matches(
                    &c,
                    cell.fingerprint(),
                    &(a as u64..b as u64),
                    &fresh,
                    cell.plan.train.steps,
                )
                .map(|()| c)
                .map_err(|reason| {
                    SweepError::Output(OutputError::Corrupt {
                        path: path.clone(),
                        reason,
                    })
                })
            });
        match checked {
            Ok(c) if c.is_complete() => {
                complete.insert(a, (b, c.states));
            }
            Ok(_) => {} // in progress
            Err(e) if strict => return Err(e),
            Err(e) => {
                let reason = match e {
                    SweepError::Output(OutputError::Corrupt { reason, .. }) => reason,
                    other => other.to_string(),
                };
                discard(&path, reason, events)?;
            }
        }
    }
    let mut states = Vec::new();
    let mut at = 0;
    while at < k {
        match complete.remove(&at) {
            Some((end, s)) => {
                states.extend(s);
                at = end;
            }
            None => return Ok(None),
        }
    }
    Ok(Some(states))
}

/// The instance ranges (`a..b`) named by checkpoint files of `cell` in `dirs`, for messages.
fn part_names(cell: &Cell, dirs: &[PathBuf]) -> Vec<String> {
    let prefix = format!("{}.i", cell.id);
    let mut ranges: Vec<(usize, usize)> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d.join("checkpoints")).ok())
        .flat_map(|entries| entries.flatten())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let (a, b) = name
                .strip_prefix(&prefix)?
                .strip_suffix(".ckpt")?
                .split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    ranges.sort();
    ranges.dedup();
    ranges.iter().map(|(a, b)| format!("{a}..{b}")).collect()
}

/// Writes a cell's run directory from its finished states and removes its checkpoints.
fn finish_cell(
    cell: &Cell,
    dir: &Path,
    states: &[InstanceState],
    events: &(dyn Fn(Event) + Sync),
) -> Result<(), SweepError> {
    let indices: Vec<usize> = (0..cell.instance_count()).collect();
    let outcomes = run::outcomes(&cell.plan, &indices, states);
    for o in &outcomes {
        if let Status::Diverged { step, loss } = o.chosen().status {
            events(Event::Diverged {
                cell: cell.id.clone(),
                instance: o.index,
                settings: o.settings.to_string(),
                step,
                loss,
            });
        }
    }
    let files = output::run_files(&cell.plan, &outcomes)?;
    let target = cell_dir(dir, cell);
    match output::write_run_dir(&target, &files, false) {
        // Another shard sharing this directory assembled the same cell first: same bytes.
        Ok(()) | Err(OutputError::Exists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    remove_checkpoints(cell, dir)?;
    events(Event::CellDone {
        cell: cell.id.clone(),
        path: target,
    });
    Ok(())
}

fn remove_checkpoints(cell: &Cell, dir: &Path) -> Result<(), SweepError> {
    let folder = dir.join("checkpoints");
    let prefix = format!("{}.i", cell.id);
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(&prefix) && name.ends_with(".ckpt") {
            match std::fs::remove_file(entry.path()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error(&entry.path())(e))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Checks a finished cell's run directory: its config is the cell's, its metrics and tensors read
/// back whole. A torn or foreign file is an error naming it.
pub fn verify_cell_dir(cell: &Cell, path: &Path) -> Result<(), SweepError> {
    let config_path = path.join("config.toml");
    let config = std::fs::read(&config_path).map_err(io_error(&config_path))?;
    if config != cell.config.as_bytes() {
        return Err(OutputError::Corrupt {
            path: config_path,
            reason: format!(
                "not the config of cell {} (delete {} to train the cell again)",
                cell.id,
                path.display()
            ),
        }
        .into());
    }
    let metrics = output::read_metrics(path)?;
    let count = metrics["instances"].as_array().map_or(0, Vec::len);
    if count != cell.instance_count() {
        return Err(OutputError::Corrupt {
            path: path.join("metrics.json"),
            reason: format!("{count} instances, expected {}", cell.instance_count()),
        }
        .into());
    }
    let tensors = output::read_tensors(path)?;
    if tensors
        .iter()
        .any(|t| t.shape.first() != Some(&cell.instance_count()))
    {
        return Err(OutputError::Corrupt {
            path: path.join("model.safetensors"),
            reason: "tensor shapes do not match the cell's instances".into(),
        }
        .into());
    }
    let loss = path.join("loss.csv");
    std::fs::metadata(&loss).map_err(io_error(&loss))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Results

/// Instance fields that lead the results' columns, in this order; the other scalar fields follow
/// alphabetically.
const LEADING: [&str; 4] = ["index", "status", "evaluation_loss", "final_train_loss"];

/// `results.csv` and `results.json` of a sweep directory whose cells are all done: one row per
/// cell × instance, with the cell id, the swept values and the instance's fields of `metrics.json`
/// (settings and final metrics; lists only in the JSON).
pub fn results(sweep: &Sweep, dir: &Path) -> Result<(String, String), SweepError> {
    let mut rows: Vec<(usize, serde_json::Map<String, Value>)> = Vec::new();
    for (c, cell) in sweep.cells.iter().enumerate() {
        let path = cell_dir(dir, cell);
        let metrics = output::read_metrics(&path)?;
        for inst in metrics["instances"].as_array().into_iter().flatten() {
            let Value::Object(fields) = inst else {
                return Err(OutputError::Corrupt {
                    path: path.join("metrics.json"),
                    reason: "an instance is not an object".into(),
                }
                .into());
            };
            rows.push((c, fields.clone()));
        }
    }
    let scalar = |v: &Value| !v.is_array() && !v.is_object();
    let mut fields: BTreeSet<&str> = BTreeSet::new();
    for (_, r) in &rows {
        fields.extend(r.iter().filter(|(_, v)| scalar(v)).map(|(k, _)| k.as_str()));
    }
    let mut instance_columns: Vec<&str> = LEADING
        .iter()
        .copied()
        .filter(|f| fields.contains(f))
        .collect();
    instance_columns.extend(fields.iter().copied().filter(|f| !LEADING.contains(f)));
    let mut columns: Vec<String> = vec!["cell".into()];
    columns.extend(sweep.keys.iter().cloned());
    columns.extend(instance_columns.iter().map(|s| s.to_string()));

    let mut csv = columns
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",");
    csv.push('\n');
    let mut json_rows = Vec::with_capacity(rows.len());
    for (c, r) in &rows {
        let cell = &sweep.cells[*c];
        let values: BTreeMap<&str, &Value> =
            cell.values.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut line = vec![csv_field(&cell.id)];
        for key in &sweep.keys {
            line.push(
                values
                    .get(key.as_str())
                    .map_or(String::new(), |v| csv_value(v)),
            );
        }
        for f in &instance_columns {
            line.push(r.get(*f).map_or(String::new(), csv_value));
        }
        csv.push_str(&line.join(","));
        csv.push('\n');
        let mut row = serde_json::Map::new();
        row.insert("cell".into(), json!(cell.id));
        row.insert(
            "values".into(),
            Value::Object(cell.values.iter().cloned().collect()),
        );
        for (k, v) in r {
            row.insert(k.clone(), v.clone());
        }
        json_rows.push(Value::Object(row));
    }
    let doc = json!({
        "format": RESULTS_FORMAT,
        "sweep": sweep.name,
        "columns": columns,
        "rows": json_rows,
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("JSON values serialise");
    text.push('\n');
    Ok((csv, text))
}

/// Writes `results.csv` and `results.json` atomically.
pub fn write_results(sweep: &Sweep, dir: &Path) -> Result<(), SweepError> {
    let (csv, json) = results(sweep, dir)?;
    output::write_atomically(&dir.join("results.csv"), csv.as_bytes())?;
    output::write_atomically(&dir.join("results.json"), json.as_bytes())?;
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => csv_field(s),
        other => csv_field(&other.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Merging

/// What `merge` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeSummary {
    /// Cells of the sweep.
    pub cells: usize,
    /// Cells copied from a shard's directory.
    pub copied: usize,
    /// Cells assembled from parts trained by several shards.
    pub assembled: usize,
    /// Cells that were already in `out`.
    pub present: usize,
}

/// Where merge finds a cell.
enum Source {
    Present,
    Copy(PathBuf),
    Assemble(Vec<InstanceState>),
}

/// Combines the sweep directories `dirs` (shards of one sweep) into `out`: the same cells and the
/// same `results.csv`/`results.json`, byte for byte, as one unsharded run. Refuses directories of
/// different sweeps and lists missing cells; checks everything before writing anything.
pub fn merge(out: &Path, dirs: &[PathBuf]) -> Result<MergeSummary, SweepError> {
    let Some(first) = dirs.first() else {
        return Err(SweepError::NotASweepDir {
            dir: out.to_path_buf(),
            reason: "no shard directories given".into(),
        });
    };
    let read_record = |dir: &Path| -> Result<Vec<u8>, SweepError> {
        let path = dir.join("sweep.json");
        if !dir.is_dir() {
            return Err(SweepError::NotASweepDir {
                dir: dir.to_path_buf(),
                reason: "no such directory".into(),
            });
        }
        std::fs::read(&path).map_err(|_| SweepError::NotASweepDir {
            dir: dir.to_path_buf(),
            reason: "no sweep.json".into(),
        })
    };
    let bytes = read_record(first)?;
    let sweep = from_record(&bytes, &first.join("sweep.json"))?;
    for dir in &dirs[1..] {
        let other = read_record(dir)?;
        if other != bytes {
            let mut details = vec![format!("  compared with {}:", first.display())];
            details.extend(differences(&bytes, &other));
            return Err(SweepError::DifferentSweep {
                dir: dir.clone(),
                details,
            });
        }
    }
    check_dir(&sweep, out)?;

    // Find every cell before writing anything.
    let ignore = |_: Event| {};
    let mut sources = Vec::with_capacity(sweep.cells.len());
    let mut missing = Vec::new();
    for cell in &sweep.cells {
        if cell_dir(out, cell).exists() {
            verify_cell_dir(cell, &cell_dir(out, cell))?;
            sources.push(Source::Present);
            continue;
        }
        if let Some(dir) = dirs.iter().find(|d| cell_dir(d, cell).exists()) {
            verify_cell_dir(cell, &cell_dir(dir, cell))?;
            sources.push(Source::Copy(cell_dir(dir, cell)));
            continue;
        }
        match assemble(cell, dirs, true, &ignore)? {
            Some(states) => sources.push(Source::Assemble(states)),
            None => {
                let parts = part_names(cell, dirs);
                missing.push(format!(
                    "  {} ({}){}",
                    cell.id,
                    cell.describe(),
                    if parts.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; found parts for instances {} of 0..{}",
                            parts.join(", "),
                            cell.instance_count()
                        )
                    }
                ));
            }
        }
    }
    if !missing.is_empty() {
        return Err(SweepError::Missing {
            total: sweep.cells.len(),
            missing,
        });
    }

    for sub in ["cells", "checkpoints"] {
        let p = out.join(sub);
        std::fs::create_dir_all(&p).map_err(io_error(&p))?;
    }
    let record_path = out.join("sweep.json");
    if std::fs::read(&record_path).ok() != Some(bytes.clone()) {
        output::write_atomically(&record_path, &bytes)?;
    }
    let mut summary = MergeSummary {
        cells: sweep.cells.len(),
        copied: 0,
        assembled: 0,
        present: 0,
    };
    for (cell, source) in sweep.cells.iter().zip(sources) {
        match source {
            Source::Present => summary.present += 1,
            Source::Copy(from) => {
                let mut files = Vec::with_capacity(RUN_FILES.len());
                for name in RUN_FILES {
                    let p = from.join(name);
                    files.push((name, std::fs::read(&p).map_err(io_error(&p))?));
                }
                match output::write_run_dir(&cell_dir(out, cell), &files, false) {
                    Ok(()) | Err(OutputError::Exists(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                summary.copied += 1;
            }
            Source::Assemble(states) => {
                finish_cell(cell, out, &states, &ignore)?;
                summary.assembled += 1;
            }
        }
    }
    write_results(&sweep, out)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

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
