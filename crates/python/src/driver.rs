//! Long work off the interpreter: the GIL released, Ctrl-C honoured, progress shown.
//!
//! [`detached`] runs `work` on a scoped thread (inside a rayon pool of `threads` workers when asked)
//! while the calling thread, with the GIL released, wakes every [`POLL`] to take the GIL briefly:
//! it checks for signals (a pending Ctrl-C raises `KeyboardInterrupt` there), moves the tqdm bar,
//! and calls the user's callback with what the work sent. When any of these raises, it sets the
//! [`Context::stop`] flag, waits for the work to notice it (between two chunks of training steps,
//! or at a sweep's next checkpoint) and re-raises; the work's result is dropped, so nothing
//! partial is written. Other Python threads run all the while.

use numpy::ndarray::Array2;
use numpy::IntoPyArray;
use pyo3::exceptions::{PyImportError, PyRuntimeWarning};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::Duration;

/// How often the calling thread takes the GIL to check for signals and show progress.
pub const POLL: Duration = Duration::from_millis(100);

/// What the work tells the calling thread.
pub enum Message {
    /// A new progress bar of `total` steps replaces the current one.
    Stage {
        /// The bar's label.
        label: String,
        /// Steps to come.
        total: u64,
        /// Whether the bar stays on screen once done.
        leave: bool,
    },
    /// Training reached `step`: the last recorded loss of every (instance, replica), [K, R].
    Losses {
        /// The step of the latest history row.
        step: u64,
        /// Row-major [K, R].
        losses: Vec<f64>,
        /// R.
        replicas: usize,
    },
    /// A line for the user (shown with the progress).
    Line(String),
    /// A warning (e.g. a diverged instance), raised as a Python `RuntimeWarning`.
    Warning(String),
}

/// What the work sees: the stop flag, the step counter and the message channel.
pub struct Context {
    /// Set when the caller wants the work to stop (Ctrl-C, or the callback raised).
    pub stop: AtomicBool,
    done: AtomicU64,
    tx: Sender<Message>,
}

impl Context {
    /// Whether the work should stop now.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// `steps` more steps are done.
    pub fn add(&self, steps: u64) {
        self.done.fetch_add(steps, Ordering::Relaxed);
    }

    /// Sends a message to the calling thread (ignored if it is gone).
    pub fn send(&self, message: Message) {
        let _ = self.tx.send(message);
    }
}

/// What the calling thread shows.
pub struct Options {
    /// A tqdm bar, when tqdm is installed.
    pub progress: bool,
    /// Called as `callback(step, losses)`.
    pub callback: Option<Py<PyAny>>,
    /// Worker threads (`None`: rayon's global pool, all cores).
    pub threads: Option<usize>,
}

/// Runs `work` with the GIL released; see the module doc.
pub fn detached<T: Send>(
    py: Python<'_>,
    options: &Options,
    work: impl FnOnce(&Context) -> T + Send,
) -> PyResult<T> {
    let pool = match options.threads {
        None => None,
        Some(0) => {
            return Err(crate::errors::new(
                crate::errors::Kind::Config,
                "`threads` expected an integer ≥ 1, but found 0",
            ))
        }
        Some(n) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| {
                    pyo3::exceptions::PyRuntimeError::new_err(format!(
                        "cannot start {n} threads: {e}"
                    ))
                })?,
        ),
    };
    let (tx, rx) = channel();
    let context = Context {
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
        tx,
    };
    let mut ui = Ui {
        progress: options.progress,
        callback: options.callback.as_ref().map(|c| c.clone_ref(py)),
        bar: None,
        shown: 0,
    };
    let (pool, context, ui) = (&pool, &context, &mut ui);
    py.detach(move || {
        std::thread::scope(|scope| {
            let worker = scope.spawn(move || match pool {
                Some(pool) => pool.install(|| work(context)),
                None => work(context),
            });
            let mut failure: Option<PyErr> = None;
            loop {
                let message = match rx.recv_timeout(POLL) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        unreachable!("the context holds a sender")
                    }
                };
                let finished = message.is_none() && worker.is_finished();
                if let Err(e) = Python::attach(|py| ui.poll(py, context, message)) {
                    context.stop.store(true, Ordering::Relaxed);
                    failure = Some(e);
                    break;
                }
                if finished {
                    // Anything sent after the last poll.
                    let rest: Vec<Message> = rx.try_iter().collect();
                    if let Err(e) = Python::attach(|py| {
                        rest.into_iter()
                            .try_for_each(|m| ui.poll(py, context, Some(m)))
                    }) {
                        failure = Some(e);
                    }
                    break;
                }
            }
            let result = worker.join();
            if let Err(e) = Python::attach(|py| ui.close(py)) {
                failure.get_or_insert(e);
            }
            match (result, failure) {
                (Err(panic), _) => std::panic::resume_unwind(panic),
                (Ok(_), Some(e)) => Err(e),
                (Ok(value), None) => Ok(value),
            }
        })
    })
}

struct Ui {
    progress: bool,
    callback: Option<Py<PyAny>>,
    bar: Option<Py<PyAny>>,
    shown: u64,
}

impl Ui {
    fn poll(
        &mut self,
        py: Python<'_>,
        context: &Context,
        message: Option<Message>,
    ) -> PyResult<()> {
        py.check_signals()?;
        match message {
            None => {}
            Some(Message::Stage {
                label,
                total,
                leave,
            }) => {
                self.close(py)?;
                self.shown = context.done.load(Ordering::Relaxed);
                if self.progress {
                    self.bar = tqdm(py, &label, total, leave)?;
                }
            }
            Some(Message::Losses {
                step,
                losses,
                replicas,
            }) => {
                if let Some(callback) = &self.callback {
                    let rows = losses.len() / replicas.max(1);
                    let losses = Array2::from_shape_vec((rows, replicas), losses)
                        .expect("K·R losses")
                        .into_pyarray(py);
                    callback.call1(py, (step, losses))?;
                }
            }
            Some(Message::Line(line)) if self.progress => {
                let line = line.into_pyobject(py)?;
                match &self.bar {
                    Some(bar) => bar.bind(py).getattr("write")?.call1((line,))?,
                    None => py.import("builtins")?.getattr("print")?.call1((line,))?,
                };
            }
            Some(Message::Line(_)) => {}
            Some(Message::Warning(text)) => {
                let text = CString::new(text.replace('\0', " ")).expect("no NUL left");
                PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &text, 1)?;
            }
        }
        if let Some(bar) = &self.bar {
            let done = context.done.load(Ordering::Relaxed);
            if done > self.shown {
                bar.call_method1(py, "update", (done - self.shown,))?;
                self.shown = done;
            }
        }
        Ok(())
    }

    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(bar) = self.bar.take() {
            bar.call_method0(py, "close")?;
        }
        Ok(())
    }
}

/// A `tqdm.auto.tqdm` bar, or `None` when tqdm is not installed. Any other error propagates: a
/// `KeyboardInterrupt` raised while tqdm's Python code runs must not be lost.
fn tqdm(py: Python<'_>, label: &str, total: u64, leave: bool) -> PyResult<Option<Py<PyAny>>> {
    let module = match py.import("tqdm.auto") {
        Ok(m) => m,
        Err(e) if e.is_instance_of::<PyImportError>(py) => return Ok(None),
        Err(e) => return Err(e),
    };
    let kwargs = PyDict::new(py);
    kwargs.set_item("total", total)?;
    kwargs.set_item("desc", label)?;
    kwargs.set_item("unit", "step")?;
    kwargs.set_item("unit_scale", true)?;
    kwargs.set_item("leave", leave)?;
    Ok(Some(
        module.getattr("tqdm")?.call((), Some(&kwargs))?.unbind(),
    ))
}
