//! The sweep file: TOML text → the base config and swept values → validated cells with stable ids.

use super::{Cell, Sweep, SweepError, DEFAULT_CHECKPOINT_EVERY, MAX_CELLS};
use crate::checkpoint::fnv1a64;
use crate::config::{self, Origin};
use crate::presets;
use crate::validate::did_you_mean;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const CONFIG_SECTIONS: [&str; 3] = ["experiment", "train", "toy"];
const SECTIONS: [&str; 6] = ["sweep", "grid", "cells", "experiment", "train", "toy"];
const SWEEP_KEYS: [&str; 4] = ["name", "base", "preset", "checkpoint_every"];

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
