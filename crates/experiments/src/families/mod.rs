//! Model families: the [`Family`] trait, one module per family, and [`FAMILIES`], the one place
//! where families are registered.
//!
//! A family owns its `[section]` of the config (a serde struct that refuses unknown keys at every
//! depth), the validation of that section into typed engine settings (its plan), the engine task of
//! each instance, the per-instance settings and metrics of `metrics.json`, the tensors of
//! `model.safetensors`, and the per-instance lines of `tms inspect`. Everything else — configs,
//! `--set`, sweeps, shards, checkpoints, best-of-N, the run directory, `reproduce`'s runs — is
//! shared and reaches a family only through this trait.
//!
//! # Adding a family
//!
//! 1. Write `families/<name>.rs`: a zero-sized type (`pub struct Sae;`) implementing [`Family`]:
//!    - `type Raw`: the section as written, `#[derive(Deserialize, Serialize)]` with
//!      `#[serde(deny_unknown_fields)]` on it and on every nested struct. Shapes such as "a number, a
//!      list or a table" go through [`axis::NumberListOrTable`] (never `#[serde(untagged)]` for
//!      deserialising: it drops the unknown keys of tables). Optional keys are `Option`s that
//!      [`Family::plan`] fills in, so the resolved `config.toml` shows every default.
//!    - [`Family::plan`]: checks every value (errors name the dotted key, e.g. `sae.l1`, what is
//!      allowed and what was found) and builds the instances. Nothing may fail after this.
//!    - [`Family::task`], [`Family::settings`], [`Family::metrics`] (and [`Family::tensors`],
//!      [`Family::inspect`] when the defaults do not fit).
//!    - Key names: use the same key for the same concept as the other families (`start`,
//!      `initial_strength`, `scale`, `repeats`, `batch_size`, `evaluation_batch_size`, `n_features`
//!      …). A renamed key goes into [`Family::RENAMED`] so that old configs get a hint.
//! 2. Add one line to [`FAMILIES`]. The config, `--set`, `tms sweep` (any dotted key of the section),
//!    shards, merges, checkpoints, `tms inspect` and the run directory then work for it.
//! 3. Presets (`presets/*.toml`) and a sweep test (`crates/cli/tests/sweep.rs`, one per family).
//!
//! Instances are trained independently by default (one engine instance per (instance, replica),
//! each with its own streams). A family whose instances share work — several sparse autoencoders
//! reading one activation stream, say — overrides [`Family::initial_states`] and
//! [`Family::advance`]; it must keep the invariant that an instance's result depends only on its
//! task, its (seed, instance, replica) and the train settings, never on which other instances are
//! trained beside it (shards split a cell's instances), so a shared stream is derived from the seed
//! alone. A data source that is a file or a run directory is read in [`Family::plan`] (its path
//! made absolute in [`Family::resolve_paths`]), so that a missing or corrupt source is bad input.

pub mod attention;
pub mod axis;
pub mod deep_linear;
mod erased;
pub mod toy;

pub use erased::{FamilyPlan, Registered, Section};

use crate::training::{self, RunSettings};
use crate::validate::{Invalid, Origin};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Debug;
use tms_engine::models::NamedTensor;
use tms_engine::train::{InstanceState, Task};

/// The registration point: every model family, in the order messages list them. Adding a family is
/// one module and one line here.
pub static FAMILIES: &[&dyn Registered] = &[
    &erased::Registration::<toy::Toy>::NEW,
    &erased::Registration::<attention::Attention>::NEW,
    &erased::Registration::<deep_linear::DeepLinear>::NEW,
];

/// The registered family whose section is `[name]`.
pub fn find(name: &str) -> Option<&'static dyn Registered> {
    FAMILIES.iter().copied().find(|f| f.name() == name)
}

/// The section names of every registered family, in registration order.
pub fn names() -> Vec<&'static str> {
    FAMILIES.iter().map(|f| f.name()).collect()
}

/// What a family's validation may use besides its own section.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanContext {
    /// The run's `train.seed` (data sets drawn once per run or per instance derive from it).
    pub seed: u64,
}

/// A model family: its config section, its validation into engine settings, its engine tasks and
/// what it writes about each instance. See the module docs for how to add one.
pub trait Family: Sized + Send + Sync + 'static {
    /// The section's name (`toy` for `[toy]`), also `metrics.json`'s `family`.
    const NAME: &'static str;
    /// Keys renamed since an earlier version, `(old, new)` dotted relative to the section: an old
    /// name is refused with a hint naming the new key.
    const RENAMED: &'static [(&'static str, &'static str)] = &[];

    /// The section as written, defaults filled in by serde; refuses unknown keys at every depth.
    type Raw: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The validated section: typed engine settings and the instance list.
    type Plan: Clone + Debug + PartialEq + Send + Sync + 'static;
    /// The engine task of one instance.
    type Task: Task + Send + 'static;

    /// Makes paths in the section absolute against the config's origin (before validation).
    fn resolve_paths(_raw: &mut Self::Raw, _origin: &Origin) {}

    /// Validates the section and fills its defaults in place (so the resolved config shows them).
    /// Every value is checked here: nothing may fail after a plan exists.
    fn plan(raw: &mut Self::Raw, context: &PlanContext) -> Result<Self::Plan, Invalid>;

    /// Number of instances (settings) of the plan, before replicas.
    fn instance_count(plan: &Self::Plan) -> usize;

    /// The engine task of instance `k`.
    fn task(plan: &Self::Plan, k: usize) -> Self::Task;

    /// The settings of instance `k` (its axis values) as a JSON object, merged into its entry of
    /// `metrics.json`.
    fn settings(plan: &Self::Plan, k: usize) -> Value;

    /// Metrics of instance `k`'s trained parameters as a JSON object, merged into its entry of
    /// `metrics.json`.
    fn metrics(plan: &Self::Plan, k: usize, task: &Self::Task, parameters: &[f32]) -> Value;

    /// The tensors of instance `k` in `model.safetensors` (stacked over instances: every instance
    /// of a run must give the same names and shapes).
    fn tensors(
        _plan: &Self::Plan,
        _k: usize,
        task: &Self::Task,
        parameters: &[f32],
    ) -> Vec<NamedTensor> {
        task.export(parameters)
    }

    /// Names of the observables recorded in the history (the columns of `loss.csv` after the loss).
    fn observable_names(plan: &Self::Plan) -> Vec<String> {
        Self::task(plan, 0).observable_names()
    }

    /// The per-instance lines of `tms inspect`, from the run's `metrics.json`. Default: each
    /// instance's loss, status and every scalar the family records.
    fn inspect(metrics: &Value) -> Vec<String> {
        scalar_lines(metrics)
    }

    /// Fresh engine states of instances `indices`: for each instance in order, its replicas
    /// 0..N in order.
    fn initial_states(
        plan: &Self::Plan,
        indices: &[usize],
        run: &RunSettings,
    ) -> Vec<InstanceState> {
        let tasks: Vec<Self::Task> = indices.iter().map(|&k| Self::task(plan, k)).collect();
        training::fresh_states(&tasks, indices, run)
    }

    /// Advances `states` (laid out as by [`Family::initial_states`]) to step `until`.
    fn advance(
        plan: &Self::Plan,
        indices: &[usize],
        states: &mut [InstanceState],
        until: u64,
        run: &RunSettings,
        progress: &(dyn Fn(u64) + Sync),
    ) {
        let tasks: Vec<Self::Task> = indices.iter().map(|&k| Self::task(plan, k)).collect();
        training::advance_states(&tasks, states, until, run, progress)
    }
}

/// `instance K: loss L, status; key value, …` for every instance of `metrics.json`: the default
/// [`Family::inspect`].
pub fn scalar_lines(metrics: &Value) -> Vec<String> {
    const SHOWN: [&str; 5] = ["index", "seed", "replica", "evaluation_loss", "status"];
    instances(metrics)
        .map(|inst| {
            let scalars: Vec<String> = inst
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| !SHOWN.contains(&k.as_str()) && v.is_number())
                .map(|(k, v)| format!("{k} {}", format_number(v, 4)))
                .collect();
            format!(
                "instance {}: loss {}, {}; {}",
                inst["index"],
                format_number(&inst["evaluation_loss"], 6),
                inst["status"].as_str().unwrap_or("?"),
                scalars.join(", ")
            )
        })
        .collect()
}

/// The instances of a `metrics.json`.
pub fn instances(metrics: &Value) -> impl Iterator<Item = &Value> {
    metrics["instances"].as_array().into_iter().flatten()
}

/// A JSON number for a table: integers as they are, floats with `digits` decimals (scientific when
/// tiny or huge), `-` for anything else.
pub fn format_number(v: &Value, digits: usize) -> String {
    if let Some(i) = v.as_i64() {
        return i.to_string();
    }
    match v.as_f64() {
        Some(x) if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e4) => {
            format!("{x:.*e}", digits.saturating_sub(2))
        }
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    }
}

/// JSON has no infinity: non-finite numbers are written as null.
pub fn finite_or_null(v: f64) -> Value {
    if v.is_finite() {
        serde_json::json!(v)
    } else {
        Value::Null
    }
}
