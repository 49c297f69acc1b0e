//! The sweep file, in two typed stages like the run config: [`RawSweepFile`] (serde: `[sweep]`,
//! `[grid]`, `[[cells]]` and the config sections to lay over the base, unknown keys refused), then
//! validation into a [`Sweep`]: the base config, the swept values, and every cell's config
//! validated (each cell's keys checked at every depth by the config's own serde stage).

use super::{Cell, Sweep, SweepError, DEFAULT_CHECKPOINT_EVERY, MAX_CELLS};
use crate::checkpoint::fnv1a64;
use crate::config::{self, set_dotted, Origin};
use crate::families;
use crate::presets;
use crate::validate::{did_you_mean, parse, Invalid, Mistake};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A sweep file as written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawSweepFile {
    /// `[sweep]`.
    pub sweep: RawSweepSection,
    /// `[grid]`: dotted config key → the list of its values (checked by validation).
    pub grid: BTreeMap<String, toml::Value>,
    /// `[[cells]]`: explicit cells, dotted config key → value.
    pub cells: Option<Vec<BTreeMap<String, toml::Value>>>,
    /// Config sections (`[train]`, `[toy]`, …) laid over the base config key by key.
    pub sections: BTreeMap<String, toml::Table>,
}

/// `[sweep]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSweepSection {
    /// The sweep's name (default: the file's stem).
    pub name: Option<String>,
    /// A base config file, relative to the sweep file.
    pub base: Option<String>,
    /// A built-in preset as the base config.
    pub preset: Option<String>,
    /// Steps between checkpoints (default 1000).
    pub checkpoint_every: Option<u64>,
}

/// The config sections a sweep file may hold and its dotted keys may start with: `experiment`,
/// `train` and every registered family's.
fn config_sections() -> Vec<&'static str> {
    let mut sections = vec!["experiment", "train"];
    sections.extend(families::names());
    sections
}

impl RawSweepFile {
    /// The serde stage: each top-level table goes to its typed reader; an unknown one is refused
    /// with a did-you-mean.
    pub fn from_table(table: toml::Table) -> Result<RawSweepFile, Invalid> {
        let mut raw = RawSweepFile::default();
        let sections = config_sections();
        for (key, value) in table {
            match key.as_str() {
                "sweep" => raw.sweep = parse(value, "sweep", &[])?,
                "grid" => raw.grid = parse(value, "grid", &[])?,
                "cells" => raw.cells = Some(parse(value, "cells", &[])?),
                name if sections.contains(&name) => {
                    raw.sections.insert(key.clone(), parse(value, name, &[])?);
                }
                name => {
                    let mut allowed = vec!["sweep", "grid", "cells"];
                    allowed.extend(&sections);
                    return Err(Invalid::unknown_key(name, &allowed, &[]));
                }
            }
        }
        Ok(raw)
    }
}

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
    let table: toml::Table = toml::from_str(text).map_err(|e| SweepError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let at = |problem: Invalid| SweepError::Invalid {
        path: path.to_path_buf(),
        problem,
    };
    let raw = RawSweepFile::from_table(table).map_err(at)?;
    validate(raw, path)
}

/// The validation stage: the base config with the inline sections laid over it, the swept values,
/// and every cell's config validated.
pub fn validate(raw: RawSweepFile, path: &Path) -> Result<Sweep, SweepError> {
    let at = |problem: Invalid| SweepError::Invalid {
        path: path.to_path_buf(),
        problem,
    };
    let invalid = |key: &str, expected: &str, found: String| at(Invalid::new(key, expected, found));
    let RawSweepFile {
        sweep,
        grid,
        cells,
        sections,
    } = raw;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("sweep")
        .to_string();
    let name = sweep.name.unwrap_or(stem);
    let checkpoint_every = sweep.checkpoint_every.unwrap_or(DEFAULT_CHECKPOINT_EVERY);
    if checkpoint_every == 0 {
        return Err(invalid(
            "sweep.checkpoint_every",
            "an integer ≥ 1 (steps between checkpoints)",
            "0".into(),
        ));
    }

    // The base config, then the inline sections over it.
    let mut base = match (sweep.base, sweep.preset) {
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
                let e = Invalid::new(
                    "sweep.preset",
                    format!("one of {}", presets::names().join(", ")),
                    format!("`{preset}`"),
                );
                at(match did_you_mean(&preset, &presets::names()) {
                    Some(s) => e.hint(format!("did you mean `{s}`?")),
                    None => e,
                })
            })?;
            toml::from_str::<toml::Table>(text).expect("built-in presets are valid TOML")
        }
        (None, None) => toml::Table::new(),
    };
    for (name, overlay) in sections {
        match base.get_mut(&name) {
            Some(toml::Value::Table(b)) => b.extend(overlay),
            _ => {
                base.insert(name, toml::Value::Table(overlay));
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
    // Every key of the base is checked here, also one that every cell's values replace: the base
    // alone may lack keys the cells set, so only an unknown key is an error at this point.
    if let Err(e) = config::RawConfig::from_table(base.clone()) {
        if e.mistake == Mistake::UnknownKey {
            return Err(at(e));
        }
    }

    // The swept values.
    let sections = config_sections();
    let check_key = |key: &str, section: &str| -> Result<(), SweepError> {
        let first = key.split('.').next().unwrap_or("");
        if key.split('.').any(str::is_empty) || !sections.contains(&first) {
            let e = Invalid::new(
                format!("{section}.\"{key}\""),
                format!(
                    "a quoted dotted config key starting with {}",
                    sections
                        .iter()
                        .map(|s| format!("{s}."))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!("`{key}`"),
            );
            return Err(at(match did_you_mean(first, &sections) {
                Some(s) => e.hint(format!("did you mean `{s}`?")),
                None => e.hint("write keys quoted, e.g. \"toy.density\" = [0.1, 0.01]"),
            }));
        }
        Ok(())
    };
    let mut axes: Vec<(String, Vec<toml::Value>)> = Vec::new();
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
                let hint = if other.is_table() {
                    "dotted keys must be quoted: write \"toy.density\" = [0.1, 0.01], not toy.density = [0.1, 0.01]".to_string()
                } else {
                    format!("write \"{key}\" = [{other}] for one value")
                };
                return Err(at(Invalid::new(
                    format!("grid.\"{key}\""),
                    "a list of values",
                    format!("{} {other}", other.type_str()),
                )
                .hint(hint)));
            }
        }
    }
    let listed: Vec<BTreeMap<String, toml::Value>> = match cells {
        None => vec![BTreeMap::new()],
        Some(list) if list.is_empty() => {
            return Err(invalid(
                "cells",
                "a non-empty list of [[cells]] tables",
                "[]".into(),
            ))
        }
        Some(list) => {
            for (i, entry) in list.iter().enumerate() {
                for key in entry.keys() {
                    check_key(key, &format!("cells[{i}]"))?;
                }
            }
            list
        }
    };
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
            let mut values: BTreeMap<String, toml::Value> = entry.clone();
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
