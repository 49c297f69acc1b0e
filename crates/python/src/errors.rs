//! The exceptions of the `tms` module and the mapping from the library crates' error types to them:
//! one Python class per kind of error, carrying the Rust error's message unchanged (the CLI prints
//! the same text after `error: `).
//!
//! ```text
//! tms.Error(Exception)
//! ├─ tms.ConfigError(tms.Error, ValueError)   bad input: config, override, preset, sweep, argument
//! ├─ tms.OutputError(tms.Error, OSError)      a run or sweep directory cannot be written or read
//! └─ tms.ReproduceError(tms.Error, RuntimeError)  `reproduce` itself failed (not a failed claim)
//! ```
//!
//! The classes need two bases each, which PyO3's `create_exception!` cannot express, so they are
//! made with `type(name, bases, namespace)` when the module is initialised.

use pyo3::exceptions::{PyException, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use std::error::Error as StdError;
use tms_experiments::config::ConfigError;
use tms_experiments::output::OutputError;
use tms_experiments::sweep::SweepError;
use tms_reproduce::ReproduceError;

static ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CONFIG_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static OUTPUT_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static REPRODUCE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The kinds of error, one Python class each.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// Bad input (the CLI's exit code 2): nothing was written.
    Config,
    /// Writing or reading an output failed.
    Output,
    /// `reproduce` failed while running (a failed claim is a result, not an error).
    Reproduce,
}

/// Creates the exception classes and adds them to the module.
pub fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let make = |name: &str, bases: Vec<Bound<'_, PyType>>, doc: &str| -> PyResult<Py<PyType>> {
        let namespace = PyDict::new(py);
        namespace.set_item("__module__", "tms")?;
        namespace.set_item("__doc__", doc)?;
        let class = py
            .get_type::<PyType>()
            .call1((name, PyTuple::new(py, bases)?, namespace))?
            .cast_into::<PyType>()?;
        m.add(name, &class)?;
        Ok(class.unbind())
    };
    let error = make(
        "Error",
        vec![py.get_type::<PyException>()],
        "Base class of every error tms raises.",
    )?;
    let base = error.bind(py).clone();
    let config = make(
        "ConfigError",
        vec![base.clone(), py.get_type::<PyValueError>()],
        "Bad input: a config, an override, a preset name, a sweep file or an argument.\n\n\
         The message is the CLI's: the file (or `<dict>`), the dotted key, what was expected and what\n\
         was found, and a hint where one helps. Nothing was written.",
    )?;
    let output = make(
        "OutputError",
        vec![base.clone(), py.get_type::<PyOSError>()],
        "A run or sweep directory could not be written or read: it exists already (pass\n\
         force=True to replace it), an I/O error, or a corrupt file (named in the message).",
    )?;
    let reproduce = make(
        "ReproduceError",
        vec![base, py.get_type::<PyRuntimeError>()],
        "`reproduce` failed while running (an analysis or the report). A claim that fails is a\n\
         result, reported in the returned data, not an error.",
    )?;
    let _ = ERROR.set(py, error);
    let _ = CONFIG_ERROR.set(py, config);
    let _ = OUTPUT_ERROR.set(py, output);
    let _ = REPRODUCE_ERROR.set(py, reproduce);
    Ok(())
}

/// An exception of `kind` with `message`.
pub fn new(kind: Kind, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| {
        let class = match kind {
            Kind::Config => &CONFIG_ERROR,
            Kind::Output => &OUTPUT_ERROR,
            Kind::Reproduce => &REPRODUCE_ERROR,
        };
        match class.get(py) {
            Some(class) => PyErr::from_type(class.bind(py).clone(), (message,)),
            None => PyRuntimeError::new_err(message),
        }
    })
}

/// The message of an error and its sources, joined as the CLI prints them (`{:#}` of anyhow).
pub fn chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A bad config.
pub fn config(e: ConfigError) -> PyErr {
    new(Kind::Config, chain(&e))
}

/// An output error.
pub fn output(e: OutputError) -> PyErr {
    new(Kind::Output, chain(&e))
}

/// A sweep error: bad input as the CLI classifies it (exit code 2) is a `ConfigError`; an output
/// error keeps its own class, as from `train`.
pub fn sweep(e: SweepError) -> PyErr {
    match e {
        SweepError::Output(e) => output(e),
        e if e.exit_code() == tms_experiments::EXIT_BAD_INPUT => new(Kind::Config, chain(&e)),
        e => new(Kind::Output, chain(&e)),
    }
}

/// A reproduce error: an unknown experiment id is bad input.
pub fn reproduce(e: ReproduceError) -> PyErr {
    let kind = match &e {
        ReproduceError::UnknownExperiment { .. } => Kind::Config,
        ReproduceError::Output(_) => Kind::Output,
        _ => Kind::Reproduce,
    };
    new(kind, chain(&e))
}
