//! `tms._tms`: the binding behind the `tms` Python package (python/tms). Conversions only: every
//! function here turns its Python arguments into the library crates' types, calls their public API
//! (tms-experiments: configs, runs, outputs, sweeps; tms-reproduce: the experiments and claims),
//! and turns the results into Python objects. The core crates know nothing of Python.
//!
//! - `convert`: Python values ↔ TOML/JSON values, overrides in the CLI's `--set` form.
//! - `errors`: the exception classes, one per kind of library error, with the CLI's messages.
//! - `driver`: long calls with the GIL released, Ctrl-C, tqdm progress, the training callback.
//! - `work`: what those long calls run (training in chunks of steps, sweeps, reproduce).
//! - `run`: `Run` and `History`, a run directory as Python objects (numpy arrays without copies).
//!
//! Later families and tools (the model zoo, SAEs) come in as more functions and submodules here,
//! re-exported by python/tms.

// Config errors carry the origin, key, expected and found values and a hint; they happen once per
// call, so their size on the error path does not matter.
#![allow(clippy::result_large_err)]

mod convert;
mod driver;
mod errors;
mod run;
mod work;

use driver::{detached, Options};
use pyo3::exceptions::{PyKeyboardInterrupt, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyMapping, PyString};
use run::{History, Run};
use std::path::{Path, PathBuf};
use tms_experiments::config::{self, ConfigError, Origin, Plan};
use tms_experiments::presets as builtin;
use tms_experiments::{output, sweep as sweeps};

/// The label configs given as dicts carry in error messages.
const DICT: &str = "<dict>";

/// A config argument: a preset name, a TOML file, or a dict with the file's sections.
fn load_plan(config: &Bound<'_, PyAny>, overrides: &[String]) -> PyResult<Plan> {
    if let Ok(mapping) = config.cast::<PyMapping>() {
        let table = convert::table(mapping).map_err(|problem| {
            errors::config(ConfigError::Syntax {
                origin: Origin::Inline(DICT.into()),
                message: problem,
            })
        })?;
        let text = toml::to_string(&table).map_err(|e| {
            errors::config(ConfigError::Syntax {
                origin: Origin::Inline(DICT.into()),
                message: e.to_string(),
            })
        })?;
        return config::load(&text, &Origin::Inline(DICT.into()), overrides)
            .map_err(errors::config);
    }
    let is_str = config.is_instance_of::<PyString>();
    let text: PathBuf = config.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "config expected a preset name, a path to a TOML file or a dict, but found {}",
            config
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    let name = text.to_string_lossy().into_owned();
    // A path object is a file. A string is a preset when a preset has that name, a file when it
    // looks like one (a separator, `.toml`, or an existing file), else an unknown preset (whose
    // error suggests the closest name). "./e1" is the file e1, not the preset.
    let file = !is_str
        || (builtin::text(&name).is_none()
            && (name.contains(['/', '\\']) || name.ends_with(".toml") || text.is_file()));
    if file {
        let toml = std::fs::read_to_string(&text).map_err(|e| {
            errors::config(ConfigError::Read {
                path: text.clone(),
                message: e.to_string(),
            })
        })?;
        config::load(&toml, &Origin::File(text), overrides).map_err(errors::config)
    } else {
        builtin::load_preset(&name, overrides).map_err(errors::config)
    }
}

/// Train the instances of one config and return the run.
///
/// Args:
///     config: a preset name (see `tms.presets()`), a path to a TOML config file, or a dict with
///         the same sections (`{"experiment": {"name": ...}, "train": {...}, "toy": {...}}`).
///         A string names a preset if one has that name ("./e1" is the file); a Path is a file.
///     out: if given, also write the run directory there (atomically; the same files, byte for
///         byte, as `tms train ... --out DIR`). It must not exist unless `force=True`.
///     threads: worker threads (default: all cores). Results do not depend on it.
///     progress: show a tqdm progress bar (when tqdm is installed; silent otherwise).
///     callback: called as `callback(step, losses)` every fraction of a second while training,
///         with the step of the latest recorded loss and a float64 array [K, R] of the last
///         recorded loss of every instance and replica. Raising from it stops training (the
///         exception propagates; nothing is written).
///     set: overrides as a dict of dotted keys, e.g. `set={"toy.density": 0.01}`.
///     force: replace `out` if it exists.
///     **overrides: overrides as dotted keyword arguments, e.g. `**{"train.steps": 2000}`;
///         applied after `set`, like the CLI's `--set KEY=VALUE`.
///
/// Returns:
///     Run: the resolved config, the weights as numpy arrays, per-instance metrics and the loss
///     history.
///
/// Raises:
///     ConfigError: the config or an override is invalid (the CLI's message: file, dotted key,
///         expected vs found, hint). Nothing is written.
///     OutputError: `out` exists (without `force`) or cannot be written.
///     KeyboardInterrupt: Ctrl-C; training stops within about a second, nothing is written.
///
/// The GIL is released while training: other Python threads keep running.
#[pyfunction]
#[pyo3(signature = (config, *, out = None, threads = None, progress = true, callback = None, set = None, force = false, **overrides))]
#[allow(clippy::too_many_arguments)]
fn train(
    py: Python<'_>,
    config: &Bound<'_, PyAny>,
    out: Option<PathBuf>,
    threads: Option<usize>,
    progress: bool,
    callback: Option<Py<PyAny>>,
    set: Option<&Bound<'_, PyDict>>,
    force: bool,
    overrides: Option<&Bound<'_, PyDict>>,
) -> PyResult<Run> {
    let overrides = convert::overrides("train", set, overrides)?;
    let plan = load_plan(config, &overrides)?;
    if let Some(out) = &out {
        output::check_target(out, force).map_err(errors::output)?;
    }
    let losses = callback.is_some();
    let options = Options {
        progress,
        callback,
        threads,
    };
    let plan_ref = &plan;
    let outcomes = detached(py, &options, move |context| {
        work::train(plan_ref, context, losses)
    })?
    .ok_or_else(|| PyKeyboardInterrupt::new_err("training stopped"))?;
    let files = py
        .detach(|| -> Result<_, output::OutputError> {
            let files = output::run_files(&plan, &outcomes)?;
            if let Some(out) = &out {
                output::write_run_dir(out, &files, force)?;
            }
            Ok(files)
        })
        .map_err(errors::output)?;
    Run::from_files(py, files, out)
}

/// Read a run directory (written by `tms train`, `tms.train(out=...)`, `Run.save`, or a sweep's
/// `cells/<id>/`) into a `Run`.
///
/// Args:
///     dir: the run directory.
///
/// Raises:
///     OutputError: a file is missing or corrupt (the message names it).
#[pyfunction]
fn load(py: Python<'_>, dir: PathBuf) -> PyResult<Run> {
    Run::load(py, &dir)
}

/// The built-in presets: a dict of name → one-line description (`tms presets`).
#[pyfunction]
fn presets(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    for name in builtin::names() {
        dict.set_item(name, builtin::description(name))?;
    }
    Ok(dict)
}

/// The registered model families: the names of their config sections (`toy`, `deep_linear`,
/// `attention`, …), in the order error messages list them. Every family works through `train`,
/// `load` and `sweep`: the binding knows none by name.
#[pyfunction]
fn families() -> Vec<&'static str> {
    tms_experiments::families::names()
}

/// Run a sweep (or one shard of it) into a sweep directory, resuming whatever an earlier run left
/// there; as `tms sweep FILE --out OUT [--shard K/N]`.
///
/// Args:
///     file_or_dict: a sweep file (TOML: `[sweep]`, the base config's sections, `[grid]` and/or
///         `[[cells]]` over dotted keys), or a dict with the same sections (named `sweep` unless it
///         sets `sweep.name`; a relative `sweep.base` is read from the working directory).
///     out: the sweep directory: `cells/<cell-id>/` run directories, checkpoints, and
///         `results.csv`/`results.json` once every cell is done.
///     shard: run only the K-th of N deterministic parts, as "K/N" or (K, N); combine the parts'
///         directories with `tms merge`.
///     threads: worker threads (default: all cores). Results do not depend on it.
///     progress: show a tqdm progress bar (when tqdm is installed).
///     checkpoint_every: steps between checkpoints (default: the file's `sweep.checkpoint_every`);
///         results do not depend on it.
///
/// Returns:
///     SweepResult: the cells, their directories, and the results rows once every cell is done.
///
/// Raises:
///     ConfigError: the sweep or a cell's config is invalid, or `out` holds another sweep.
///         Nothing is written.
///     KeyboardInterrupt: Ctrl-C; the sweep stops at its next checkpoint. Run the same call
///         again to resume: the results are byte-identical to an uninterrupted run.
#[pyfunction]
#[pyo3(signature = (file_or_dict, out, *, shard = None, threads = None, progress = true, checkpoint_every = None))]
fn sweep(
    py: Python<'_>,
    file_or_dict: &Bound<'_, PyAny>,
    out: PathBuf,
    shard: Option<&Bound<'_, PyAny>>,
    threads: Option<usize>,
    progress: bool,
    checkpoint_every: Option<u64>,
) -> PyResult<SweepResult> {
    let shard = match shard {
        None => sweeps::Shard::ALL,
        Some(s) => {
            let text = match s.extract::<(usize, usize)>() {
                Ok((k, n)) => format!("{k}/{n}"),
                Err(_) => s.extract::<String>().map_err(|_| {
                    PyTypeError::new_err("shard expected \"K/N\" or a tuple (K, N)")
                })?,
            };
            sweeps::Shard::parse(&text).map_err(errors::sweep)?
        }
    };
    if checkpoint_every == Some(0) {
        return Err(errors::new(
            errors::Kind::Config,
            "`checkpoint_every` expected an integer ≥ 1, but found 0",
        ));
    }
    let sweep = if let Ok(mapping) = file_or_dict.cast::<PyMapping>() {
        let mut table = convert::table(mapping).map_err(|problem| {
            errors::sweep(sweeps::SweepError::Syntax {
                path: DICT.into(),
                message: problem,
            })
        })?;
        // A dict has no file name for the sweep's default name.
        if let toml::Value::Table(section) = table
            .entry("sweep")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        {
            section
                .entry("name")
                .or_insert_with(|| toml::Value::String("sweep".into()));
        }
        let text = toml::to_string(&table).map_err(|e| {
            errors::sweep(sweeps::SweepError::Syntax {
                path: DICT.into(),
                message: e.to_string(),
            })
        })?;
        sweeps::load(&text, Path::new(DICT)).map_err(errors::sweep)?
    } else {
        let path: PathBuf = file_or_dict.extract().map_err(|_| {
            PyTypeError::new_err("file_or_dict expected a path to a sweep file or a dict")
        })?;
        sweeps::load_file(&path).map_err(errors::sweep)?
    };
    sweeps::check_dir(&sweep, &out).map_err(errors::sweep)?;
    let options = Options {
        progress,
        callback: None,
        threads,
    };
    let every = checkpoint_every.unwrap_or(sweep.checkpoint_every);
    let (sweep_ref, out_ref) = (&sweep, &out);
    let summary = detached(py, &options, move |context| {
        work::sweep(sweep_ref, out_ref, shard, every, context)
    })?
    .map_err(|e| match e {
        sweeps::SweepError::Interrupted { .. } => PyKeyboardInterrupt::new_err(e.to_string()),
        other => errors::sweep(other),
    })?;
    let results = if summary.results_written {
        let path = out.join("results.json");
        let text = std::fs::read(&path).map_err(|source| {
            errors::output(output::OutputError::Io {
                path: path.clone(),
                source,
            })
        })?;
        let doc: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
            errors::output(output::OutputError::Corrupt {
                path,
                reason: e.to_string(),
            })
        })?;
        Some(doc["rows"].clone())
    } else {
        None
    };
    Ok(SweepResult {
        name: sweep.name.clone(),
        dir: out.clone(),
        cells: sweep
            .cells
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    serde_json::Value::Object(c.values.iter().cloned().collect()),
                )
            })
            .collect(),
        trained: summary.trained,
        complete: summary.cells_done == summary.cells,
        results,
    })
}

/// What `tms.sweep` did: the sweep's cells and, once every cell is done, its results.
#[pyclass(module = "tms", frozen)]
struct SweepResult {
    name: String,
    dir: PathBuf,
    cells: Vec<(String, serde_json::Value)>,
    trained: usize,
    complete: bool,
    results: Option<serde_json::Value>,
}

#[pymethods]
impl SweepResult {
    /// The sweep's name.
    #[getter]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// The sweep directory.
    #[getter]
    fn dir(&self) -> PathBuf {
        self.dir.clone()
    }

    /// Every cell of the sweep (all shards): a list of dicts with its `id`, its swept `values`
    /// (dotted key → value) and its run directory `dir` (which exists once the cell is done).
    #[getter]
    fn cells<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for (id, values) in &self.cells {
            let cell = PyDict::new(py);
            cell.set_item("id", id)?;
            cell.set_item("values", convert::json_to_py(py, values)?)?;
            cell.set_item("dir", self.dir.join("cells").join(id))?;
            list.append(cell)?;
        }
        Ok(list)
    }

    /// Units of work (cells, or parts of cells) trained by this call.
    #[getter]
    fn trained(&self) -> usize {
        self.trained
    }

    /// Whether every cell of the sweep is done in `dir` (then `results` is set).
    #[getter]
    fn complete(&self) -> bool {
        self.complete
    }

    /// One dict per cell × instance (`results.json`'s rows: `cell`, the swept `values`, the
    /// instance's settings and final metrics), or None until every cell is done.
    #[getter]
    fn results<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.results
            .as_ref()
            .map(|r| convert::json_to_py(py, r))
            .transpose()
    }

    /// The `Run` of one finished cell, by id.
    fn run(&self, py: Python<'_>, cell: &str) -> PyResult<Run> {
        if !self.cells.iter().any(|(id, _)| id == cell) {
            return Err(pyo3::exceptions::PyKeyError::new_err(cell.to_string()));
        }
        Run::load(py, &self.dir.join("cells").join(cell))
    }

    fn __repr__(&self) -> String {
        format!(
            "SweepResult(name='{}', dir='{}', cells={}, complete={})",
            self.name,
            self.dir.display(),
            self.cells.len(),
            if self.complete { "True" } else { "False" }
        )
    }
}

/// Train every experiment of the paper and the follow-ups (or some), draw the figures, check the
/// claims and write the report, as `tms reproduce`; return the claims.
///
/// Args:
///     only: experiment ids to run, e.g. ["E1", "E3"] or "E1,E3" (default: all).
///     quick: the reduced scale CI runs (fewer steps and seeds; the same code path).
///     out: output directory: `runs/` (run directories) and `report/` (index.html, claims.json,
///         figures) go under it.
///     threads: worker threads (default: all cores).
///     progress: show a tqdm bar per run and a line per experiment.
///
/// Returns:
///     dict: the claims as data, the content of `OUT/report/claims.json`: `scale`, `passed`,
///     `total`, and `experiments`, each with `id`, `title`, `wall_time_s` and its `claims` (`id`,
///     the paper's `statement`, `measured`, `criterion`, `passed`). A failed claim is data, not
///     an exception.
///
/// Raises:
///     ConfigError: an unknown experiment id (nothing is written).
///     KeyboardInterrupt: Ctrl-C; the training in progress stops within about a second (finished
///         run directories and figures stay; the report is not written).
#[pyfunction]
#[pyo3(signature = (only = None, quick = false, out = PathBuf::from("out"), *, threads = None, progress = true))]
fn reproduce(
    py: Python<'_>,
    only: Option<&Bound<'_, PyAny>>,
    quick: bool,
    out: PathBuf,
    threads: Option<usize>,
    progress: bool,
) -> PyResult<Py<PyAny>> {
    let only: Option<Vec<String>> = match only {
        None => None,
        Some(v) => {
            let items: Vec<String> = match v.extract::<String>() {
                Ok(s) => s.split(',').map(str::to_string).collect(),
                Err(_) => v.extract().map_err(|_| {
                    PyTypeError::new_err(
                        "only expected experiment ids: \"E1,E3\" or [\"E1\", \"E3\"]",
                    )
                })?,
            };
            Some(
                items
                    .into_iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            )
        }
    };
    if let Some(ids) = &only {
        tms_reproduce::select(Some(ids)).map_err(errors::reproduce)?;
    }
    let options = tms_reproduce::Options {
        out,
        only,
        scale: if quick {
            tms_reproduce::Scale::Quick
        } else {
            tms_reproduce::Scale::Full
        },
    };
    let driver = Options {
        progress,
        callback: None,
        threads,
    };
    let options_ref = &options;
    let summary = detached(py, &driver, move |context| {
        work::reproduce(options_ref, context)
    })?
    .ok_or_else(|| PyKeyboardInterrupt::new_err("reproduce stopped"))?
    .map_err(errors::reproduce)?;
    let path = &summary.claims_json;
    let bytes = std::fs::read(path).map_err(|source| {
        errors::output(output::OutputError::Io {
            path: path.clone(),
            source,
        })
    })?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        errors::output(output::OutputError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })
    })?;
    Ok(convert::json_to_py(py, &doc)?.unbind())
}

/// tms: Toy Models of Superposition, trained fast and checked.
///
/// `train` a config (a preset, a TOML file or a dict) into a `Run` of numpy arrays, `load` a run
/// directory, `sweep` a grid of configs, `reproduce` the paper's experiments and get their claims.
/// Shapes use the letters of the Rust docs: K instances, R replicas, n features, m hidden.
#[pymodule]
fn _tms(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::add(m)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(presets, m)?)?;
    m.add_function(wrap_pyfunction!(families, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(reproduce, m)?)?;
    m.add_class::<Run>()?;
    m.add_class::<History>()?;
    m.add_class::<SweepResult>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
