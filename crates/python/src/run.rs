//! `Run` and `History`: a run directory as Python objects. A `Run` is built from the bytes of the
//! run directory's files (`tms_experiments::output::run_files` after training, or the files of a
//! directory for `tms.load`), parsed by `tms_experiments::output`; `save` writes those same bytes,
//! so a saved run is byte-identical to what `tms train` writes.

use crate::convert::{json_to_py, table_to_py};
use crate::errors;
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::{Path, PathBuf};
use tms_experiments::output::{self, LossTable, OutputError};

/// Makes an array read-only: it is the run's result, which `save` writes unchanged.
fn read_only<'py>(array: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let kwargs = PyDict::new(array.py());
    kwargs.set_item("write", false)?;
    array.call_method("setflags", (), Some(&kwargs))?;
    Ok(array)
}

/// One trained run: its resolved config, weights, per-instance metrics and loss history.
///
/// Returned by `tms.train` and `tms.load`; the same data as a run directory (`config.toml`,
/// `model.safetensors`, `metrics.json`, `loss.csv`), see the README's "Outputs".
#[pyclass(module = "tms", frozen)]
pub struct Run {
    files: Vec<(&'static str, Vec<u8>)>,
    config: toml::Table,
    metrics: serde_json::Value,
    tensors: Vec<(String, Py<PyAny>)>,
    history: Py<History>,
    dir: Option<PathBuf>,
}

impl Run {
    /// Parses the files of a run directory (in `output::RUN_FILES` order); `dir` names them in
    /// errors and is the run's `.dir` if given.
    pub fn from_files(
        py: Python<'_>,
        files: Vec<(&'static str, Vec<u8>)>,
        dir: Option<PathBuf>,
    ) -> PyResult<Run> {
        let base = dir.clone().unwrap_or_default();
        let bytes = |name: &str| -> &[u8] {
            files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| b.as_slice())
                .unwrap_or_default()
        };
        let corrupt = |name: &str, reason: String| {
            errors::output(OutputError::Corrupt {
                path: base.join(name),
                reason,
            })
        };
        let config: toml::Table = std::str::from_utf8(bytes("config.toml"))
            .map_err(|e| corrupt("config.toml", e.to_string()))?
            .parse()
            .map_err(|e: toml::de::Error| corrupt("config.toml", e.to_string()))?;
        let metrics = output::parse_metrics(bytes("metrics.json"), &base.join("metrics.json"))
            .map_err(errors::output)?;
        let stored =
            output::parse_tensors(bytes("model.safetensors"), &base.join("model.safetensors"))
                .map_err(errors::output)?;
        let mut tensors = Vec::new();
        for t in stored {
            let array = ArrayD::from_shape_vec(IxDyn(&t.shape), t.values)
                .map_err(|e| corrupt("model.safetensors", e.to_string()))?;
            // The Vec becomes the array's buffer: no copy.
            let array = read_only(array.into_pyarray(py).into_any())?;
            tensors.push((t.name, array.unbind()));
        }
        let csv = std::str::from_utf8(bytes("loss.csv"))
            .map_err(|e| corrupt("loss.csv", e.to_string()))?;
        let table = output::parse_loss_csv(csv, &base.join("loss.csv")).map_err(errors::output)?;
        let history = Py::new(py, History::new(py, table)?)?;
        Ok(Run {
            files,
            config,
            metrics,
            tensors,
            history,
            dir,
        })
    }

    /// Reads a run directory.
    pub fn load(py: Python<'_>, dir: &Path) -> PyResult<Run> {
        let files = output::read_run_files(dir).map_err(errors::output)?;
        Run::from_files(py, files, Some(dir.to_path_buf()))
    }
}

#[pymethods]
impl Run {
    /// The resolved config (every default filled in), as a dict with the TOML's sections.
    /// Training it again (`tms.train(run.config)`) reproduces the run bit for bit.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        table_to_py(py, &self.config)
    }

    /// The weights: a dict of read-only float32 numpy arrays with the run directory's names and
    /// shapes, instances first (toy models: `W` [K, m, n] and `b` [K, n]; abs: `W1`, `W2`, `b`).
    /// The arrays share memory with the run (no copy); `.copy()` one to change it.
    #[getter]
    fn tensors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (name, array) in &self.tensors {
            dict.set_item(name, array.bind(py))?;
        }
        Ok(dict)
    }

    /// Per-instance results, one dict per instance (`metrics.json`'s `instances`): its index
    /// and settings (e.g. `density`), the kept `replica`, every replica's loss, `status`, and the
    /// family's metrics (toy: `norms`, `superposition`, `dimensionality`, …).
    #[getter]
    fn instances<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.metrics["instances"])
    }

    /// The loss history (`loss.csv`): one row per recorded step of every replica.
    #[getter]
    fn history(&self, py: Python<'_>) -> Py<History> {
        self.history.clone_ref(py)
    }

    /// The experiment's name (`experiment.name`).
    #[getter]
    fn name(&self) -> String {
        self.metrics["experiment"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The model family: its config section's name (`toy`, `deep_linear`, `attention`, … see
    /// `tms.families()`).
    #[getter]
    fn family(&self) -> String {
        self.metrics["family"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Training steps of every instance.
    #[getter]
    fn steps(&self) -> u64 {
        self.metrics["steps"].as_u64().unwrap_or(0)
    }

    /// Replicas per instance (best-of-N; the kept one is in `instances[i]["replica"]`).
    #[getter]
    fn replicas(&self) -> u64 {
        self.metrics["replicas"].as_u64().unwrap_or(0)
    }

    /// The run's seed (`train.seed`).
    #[getter]
    fn seed(&self) -> u64 {
        self.metrics["seed"].as_u64().unwrap_or(0)
    }

    /// The run directory it was read from or written to (`out=`), else None.
    #[getter]
    fn dir(&self) -> Option<PathBuf> {
        self.dir.clone()
    }

    /// Writes the run directory `dir` atomically (it appears whole or not at all), byte for byte
    /// what `tms train` writes for the same config.
    ///
    /// Args:
    ///     dir: the directory to create.
    ///     force: replace `dir` if it exists (otherwise that is an `OutputError`).
    #[pyo3(signature = (dir, *, force = false))]
    fn save(&self, py: Python<'_>, dir: PathBuf, force: bool) -> PyResult<()> {
        py.detach(|| output::write_run_dir(&dir, &self.files, force))
            .map_err(errors::output)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let shapes: Vec<String> = self
            .tensors
            .iter()
            .map(|(name, array)| {
                let shape: Vec<usize> = array.bind(py).getattr("shape")?.extract()?;
                let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
                Ok(format!("'{name}': ({})", dims.join(", ")))
            })
            .collect::<PyResult<_>>()?;
        Ok(format!(
            "Run(name='{}', family='{}', instances={}, replicas={}, steps={}, tensors={{{}}})",
            self.name(),
            self.family(),
            self.metrics["instances"].as_array().map_or(0, Vec::len),
            self.replicas(),
            self.steps(),
            shapes.join(", ")
        ))
    }
}

/// The loss history of a run (`loss.csv`), column by column.
///
/// Columns: `step`, `instance`, `replica` (int64), `loss` and one column per recorded
/// observable (float64), one row per recorded step of every replica. `history["loss"]` is a
/// numpy array; `to_pandas()` gives a DataFrame (when pandas is installed).
#[pyclass(module = "tms", frozen)]
pub struct History {
    columns: Vec<(String, Py<PyAny>)>,
    rows: usize,
}

impl History {
    fn new(py: Python<'_>, table: LossTable) -> PyResult<History> {
        let rows = table.step.len();
        let ints = |v: Vec<u64>| -> PyResult<Py<PyAny>> {
            let v: Vec<i64> = v.into_iter().map(|x| x as i64).collect();
            Ok(read_only(v.into_pyarray(py).into_any())?.unbind())
        };
        let floats = |v: Vec<f64>| -> PyResult<Py<PyAny>> {
            Ok(read_only(v.into_pyarray(py).into_any())?.unbind())
        };
        let mut columns = vec![
            ("step".to_string(), ints(table.step)?),
            ("instance".to_string(), ints(table.instance)?),
            ("replica".to_string(), ints(table.replica)?),
            ("loss".to_string(), floats(table.loss)?),
        ];
        for (name, values) in table.observables {
            columns.push((name, floats(values)?));
        }
        Ok(History { columns, rows })
    }
}

#[pymethods]
impl History {
    /// The column names, in `loss.csv`'s order.
    #[getter]
    fn columns(&self) -> Vec<String> {
        self.columns.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The columns as a dict of read-only numpy arrays.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (name, column) in &self.columns {
            dict.set_item(name, column.bind(py))?;
        }
        Ok(dict)
    }

    /// The table as a pandas DataFrame (pandas is not a dependency of tms: install it to use
    /// this).
    fn to_pandas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let pandas = py.import("pandas").map_err(|e| {
            pyo3::exceptions::PyImportError::new_err(format!(
                "History.to_pandas needs pandas (pip install pandas): {e}"
            ))
        })?;
        pandas.getattr("DataFrame")?.call1((self.to_dict(py)?,))
    }

    fn __getitem__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.bind(py).clone())
            .ok_or_else(|| {
                pyo3::exceptions::PyKeyError::new_err(format!(
                    "{name} (columns: {})",
                    self.columns().join(", ")
                ))
            })
    }

    fn __len__(&self) -> usize {
        self.rows
    }

    fn __repr__(&self) -> String {
        format!(
            "History(rows={}, columns=[{}])",
            self.rows,
            self.columns()
                .iter()
                .map(|c| format!("'{c}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
