//! Values across the boundary: Python objects → TOML values (configs given as dicts, overrides),
//! TOML and JSON values → Python objects (resolved configs, metrics, claims), and `key=value`
//! override strings in the CLI's `--set` syntax, so that overrides go through the same parser.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};

/// A Python value as a TOML value: bool, int, float, str, a path, a mapping with str keys, a list
/// or tuple, or a numpy array or scalar (through `tolist()`). `None` has no TOML form.
pub fn to_toml(value: &Bound<'_, PyAny>) -> Result<toml::Value, String> {
    if value.is_none() {
        return Err("None, which TOML cannot express (leave the key out for its default)".into());
    }
    if value.is_instance_of::<PyBool>() {
        return Ok(toml::Value::Boolean(
            value.extract::<bool>().map_err(describe)?,
        ));
    }
    if value.is_instance_of::<PyInt>() {
        return value
            .extract::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("the integer {value}, outside the 64-bit range"));
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(toml::Value::Float(
            value.extract::<f64>().map_err(describe)?,
        ));
    }
    if value.is_instance_of::<PyString>() {
        return Ok(toml::Value::String(
            value.extract::<String>().map_err(describe)?,
        ));
    }
    if value.hasattr("__fspath__").unwrap_or(false) {
        let path = value.call_method0("__fspath__").map_err(describe)?;
        return to_toml(&path);
    }
    if let Ok(mapping) = value.cast::<PyMapping>() {
        return table(mapping).map(toml::Value::Table);
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for item in value.try_iter().map_err(describe)? {
            items.push(to_toml(&item.map_err(describe)?)?);
        }
        return Ok(toml::Value::Array(items));
    }
    // numpy arrays and scalars (and anything else list-like that knows its Python form).
    if value.hasattr("tolist").unwrap_or(false) {
        let plain = value.call_method0("tolist").map_err(describe)?;
        if !plain.is(value) {
            return to_toml(&plain);
        }
    }
    Err(format!(
        "a value of type {}, which is not a TOML value (number, bool, string, list or dict)",
        type_name(value)
    ))
}

/// A mapping with string keys as a TOML table.
pub fn table(mapping: &Bound<'_, PyMapping>) -> Result<toml::Table, String> {
    let mut out = toml::Table::new();
    for item in mapping.items().map_err(describe)?.iter() {
        let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
            item.extract().map_err(describe)?;
        let key: String = key
            .extract()
            .map_err(|_| format!("a key {key} of type {}: keys are strings", type_name(&key)))?;
        let value = to_toml(&value).map_err(|e| format!("`{key}`: {e}"))?;
        out.insert(key, value);
    }
    Ok(out)
}

/// `key=value` in the CLI's `--set` syntax, the value written as TOML.
pub fn assignment(key: &str, value: &Bound<'_, PyAny>) -> Result<String, String> {
    Ok(format!("{key}={}", to_toml(value)?))
}

/// The overrides of `set={...}` and then of `**overrides`, as `key=value` strings. Keyword
/// overrides must be dotted keys: a plain word is more likely a misspelt parameter.
pub fn overrides(
    function: &str,
    set: Option<&Bound<'_, PyDict>>,
    keywords: Option<&Bound<'_, PyDict>>,
) -> PyResult<Vec<String>> {
    let mut out = Vec::new();
    for (source, dict) in [("set", set), ("keyword", keywords)] {
        let Some(dict) = dict else { continue };
        for (key, value) in dict.iter() {
            let key: String = key.extract()?;
            if source == "keyword" && !key.contains('.') {
                return Err(PyTypeError::new_err(format!(
                    "{function}() got an unexpected keyword argument '{key}' (config overrides are dotted keys such as **{{\"toy.density\": 0.01}})"
                )));
            }
            let text = assignment(&key, &value).map_err(|problem| {
                crate::errors::config(tms_experiments::config::ConfigError::Override {
                    assignment: format!("{key}={}", short_repr(&value)),
                    problem: format!("expected a TOML value, but found {problem}"),
                })
            })?;
            out.push(text);
        }
    }
    Ok(out)
}

/// A TOML value as a Python object (dates as strings).
pub fn toml_to_py<'py>(py: Python<'py>, value: &toml::Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        toml::Value::String(s) => s.into_pyobject(py)?.into_any(),
        toml::Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        toml::Value::Float(f) => f.into_pyobject(py)?.into_any(),
        toml::Value::Boolean(b) => PyBool::new(py, *b).to_owned().into_any(),
        toml::Value::Datetime(d) => d.to_string().into_pyobject(py)?.into_any(),
        toml::Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(toml_to_py(py, item)?)?;
            }
            list.into_any()
        }
        toml::Value::Table(t) => table_to_py(py, t)?.into_any(),
    })
}

/// A TOML table as a dict.
pub fn table_to_py<'py>(py: Python<'py>, table: &toml::Table) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in table {
        dict.set_item(k, toml_to_py(py, v)?)?;
    }
    Ok(dict)
}

/// A JSON value as a Python object.
pub fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

fn describe(e: PyErr) -> String {
    e.to_string()
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn short_repr(value: &Bound<'_, PyAny>) -> String {
    let text = value
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into());
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}
