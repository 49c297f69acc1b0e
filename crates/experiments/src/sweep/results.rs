//! `results.csv` and `results.json`: one row per cell × instance of a finished sweep.

use super::directory::cell_dir;
use super::{Sweep, SweepError, RESULTS_FORMAT};
use crate::output::{self, OutputError};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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
