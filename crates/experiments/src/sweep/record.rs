//! `sweep.json`, the resolved sweep: its bytes, its checksum, reading it back, and what differs
//! between two records.

use super::{cell_id, Cell, Sweep, SweepError, DEFAULT_CHECKPOINT_EVERY, FORMAT};
use crate::checkpoint::fnv1a64;
use crate::config::{self, Origin};
use crate::output::OutputError;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

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
pub(super) fn differences(ours: &[u8], theirs: &[u8]) -> Vec<String> {
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
