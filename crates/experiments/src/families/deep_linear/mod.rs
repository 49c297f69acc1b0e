//! `[deep_linear]`: deep linear networks learning an item × property matrix (Saxe, McClelland &
//! Ganguli 2019; followups.md §F1).
//!
//! One run trains K instances of one chain ŷ = W^L⋯W¹x on one data set Y (N₃ properties × P
//! items, items one-hot), full batch: `[train] optimizer = "sgd"` is plain gradient descent with
//! learning rate λ = `train.learning_rate` (τ = 1/λ, time in steps). Instances differ by the
//! per-instance *axis* of the start — `initial_strength` (a₀ of the aligned start) or `scale` (σ
//! of the Gaussian start), a number, a list or a range as in `[toy]` — and by `repeats`
//! independent initialisations of every axis value (instance index k = value index × repeats +
//! repeat; each instance has its own initialisation stream). Hidden widths are the same for every
//! instance: the output file stacks instances, so their tensors must share shapes.
//!
//! ```toml
//! [deep_linear]
//! dataset = "four-items"        # "four-items" | "tree" | "diffusion" | "csv"
//! # tree:      branching = 2, depth = 3                  (node-indicator hierarchy, B^D items)
//! # diffusion: branching = 2, depth = 3, flip_probability = 0.15, n_features = 1000,
//! #            data_seed = <train.seed>                  (one Y drawn once for the run)
//! # csv:       matrix_file = "items.csv"                 (see below)
//! hidden = [4]                  # N₂, …: one width per hidden layer; [] is the shallow ŷ = W x
//! start = "aligned"             # "aligned" (initial_strength = a₀) | "gaussian" (scale = σ) | "zero"
//! initial_strength = 1e-4       # an axis
//! repeats = 1                   # independent initialisations per axis value
//! predictions = [{ property = "Fly", item = "Salmon" }]   # names or 0-based indices
//! ```
//!
//! **The CSV format** (`dataset = "csv"`): comma-separated, UTF-8. The first row is a header: its
//! first cell is free (e.g. `property`), the others are the item names (the columns of Y). Every
//! further row is one property: its name, then its value for each item. Values are numbers.
//! Cells may be double-quoted (`"a, b"`, with `""` for a quote); blank lines and lines starting
//! with `#` are skipped; spaces around cells are ignored. A relative `matrix_file` is resolved
//! against the config file's directory (against the working directory for presets and
//! `--set`-only configs); the resolved config records the absolute path.
//!
//! ```text
//! property,Canary,Salmon,Oak,Rose
//! Grow,1,1,1,1
//! Move,1,1,0,0
//! ```
//!
//! Outputs: tensors `W1` … `WL` ([N₂, N₁], …); the history's observables are the task's
//! (`mode_strength_α`, `conservation_l` or `imbalance_l`, `prediction_m_i`); metrics.json holds per
//! instance the singular values s_α, the final mode strengths, the residual ‖Y − W^L⋯W¹‖_F, the
//! best rank-k residual √(Σ_{α>k} s_α²) for k = the narrowest hidden width, the distance to the
//! best rank-k approximation and the imbalances ‖C_l‖_F.

use super::axis::Axis;
use super::{finite_or_null, Family, PlanContext};
use crate::validate::{one_of, require, Invalid, Origin};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use tms_engine::data::items::ItemPropertySet;
use tms_engine::models::deep_linear::{
    imbalances, DeepLinearStart, DeepLinearTask, PredictionIndex,
};
use tms_engine::rng::{InstanceKey, StreamPurpose};

/// Deep linear networks on an item × property matrix, `[deep_linear]`.
pub struct DeepLinear;

impl Family for DeepLinear {
    const NAME: &'static str = "deep_linear";
    const RENAMED: &'static [(&'static str, &'static str)] = &[("features", "n_features")];
    type Raw = RawDeepLinear;
    type Plan = DeepLinearPlan;
    type Task = DeepLinearTask;

    fn resolve_paths(raw: &mut RawDeepLinear, origin: &Origin) {
        resolve_paths(raw, origin)
    }

    fn plan(raw: &mut RawDeepLinear, context: &PlanContext) -> Result<DeepLinearPlan, Invalid> {
        plan(raw, context.seed)
    }

    fn instance_count(plan: &DeepLinearPlan) -> usize {
        plan.instances.len()
    }

    fn task(plan: &DeepLinearPlan, k: usize) -> DeepLinearTask {
        plan.task(k)
    }

    fn settings(plan: &DeepLinearPlan, k: usize) -> Value {
        plan.settings_json(k)
    }

    fn metrics(
        plan: &DeepLinearPlan,
        _k: usize,
        _task: &DeepLinearTask,
        parameters: &[f32],
    ) -> Value {
        plan.metrics_json(parameters)
    }
}

/// `[deep_linear]` as written.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawDeepLinear {
    /// `four-items`, `tree`, `diffusion` or `csv`.
    pub dataset: String,
    /// Branching B of `tree` and `diffusion` (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branching: Option<usize>,
    /// Depth D of the hierarchy of `tree` and `diffusion` (default 3); the items are its B^D
    /// leaves. (The network's depth is set by `hidden`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    /// Flip probability ε of `diffusion` (default 0.15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flip_probability: Option<f64>,
    /// Number of features N_f of `diffusion` (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_features: Option<usize>,
    /// Seed of the `diffusion` sample (default `train.seed`): one Y for the whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_seed: Option<u64>,
    /// The item × property CSV of `csv` (format in the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_file: Option<String>,
    /// Hidden widths N₂, … (one per hidden layer); empty: the shallow control ŷ = W x.
    pub hidden: Vec<usize>,
    /// `aligned`, `gaussian` or `zero` (default `aligned`).
    #[serde(default = "default_start")]
    pub start: String,
    /// Axis of a₀ for the aligned start (default 1e-4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_strength: Option<Axis>,
    /// Axis of σ for the Gaussian start (default 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<Axis>,
    /// Independent initialisations per axis value (default 1).
    #[serde(default = "default_repeats")]
    pub repeats: usize,
    /// Entries ŷ_{m,i} recorded over training as `prediction_m_i`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predictions: Vec<RawPrediction>,
}

fn default_start() -> String {
    "aligned".into()
}
fn default_repeats() -> usize {
    1
}

/// Default a₀ of the aligned start (§F1's S1).
pub const DEFAULT_INITIAL_STRENGTH: f64 = 1e-4;
/// Default σ of the Gaussian start.
pub const DEFAULT_SCALE: f64 = 0.01;

/// A recorded prediction, by names or 0-based indices.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPrediction {
    /// The property m (a row of Y).
    pub property: NameOrIndex,
    /// The item i (a column of Y).
    pub item: NameOrIndex,
}

/// A property or item given by name or by 0-based index.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum NameOrIndex {
    /// 0-based index.
    Index(usize),
    /// Name as in the data set.
    Name(String),
}

impl<'de> Deserialize<'de> for NameOrIndex {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Shape;
        impl serde::de::Visitor<'_> for Shape {
            type Value = NameOrIndex;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a name or a 0-based index")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<NameOrIndex, E> {
                usize::try_from(v)
                    .map(NameOrIndex::Index)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<NameOrIndex, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NameOrIndex, E> {
                Ok(NameOrIndex::Name(v.to_string()))
            }
        }
        deserializer.deserialize_any(Shape)
    }
}

/// One instance's setting.
#[derive(Clone, Debug, PartialEq)]
pub struct DeepLinearInstance {
    /// How its weights start.
    pub start: DeepLinearStart,
    /// Which of the `repeats` initialisations of its axis value it is.
    pub repeat: usize,
}

/// A validated `[deep_linear]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct DeepLinearPlan {
    /// The data set Y with item and property names.
    pub data: ItemPropertySet,
    /// Hidden widths N₂, ….
    pub hidden: Vec<usize>,
    /// Recorded predictions.
    pub predictions: Vec<PredictionIndex>,
    /// The instances, in axis order (repeats fastest).
    pub instances: Vec<DeepLinearInstance>,
}

/// Resolves a relative `matrix_file` against the directory of the config file it came from.
pub fn resolve_paths(raw: &mut RawDeepLinear, origin: &Origin) {
    let (Some(file), Origin::File(config)) = (raw.matrix_file.as_mut(), origin) else {
        return;
    };
    let path = Path::new(file.as_str());
    if path.is_relative() {
        if let Some(dir) = config.parent().filter(|d| !d.as_os_str().is_empty()) {
            *file = dir.join(path).to_string_lossy().into_owned();
        }
    }
}

/// Validates `[deep_linear]` (filling its defaults in place) and builds the data set. `seed` is the
/// run's `train.seed`, the default `data_seed` of the diffusion sample.
pub fn plan(raw: &mut RawDeepLinear, seed: u64) -> Result<DeepLinearPlan, Invalid> {
    const DATASETS: [&str; 4] = ["four-items", "tree", "diffusion", "csv"];
    let dataset = raw.dataset.clone();
    if !DATASETS.contains(&dataset.as_str()) {
        return Err(one_of("deep_linear.dataset", &DATASETS, &dataset));
    }
    // Keys that belong to other data sets are errors, not silently ignored.
    let uses = |key: &str| match key {
        "branching" | "depth" => matches!(dataset.as_str(), "tree" | "diffusion"),
        "flip_probability" | "n_features" | "data_seed" => dataset == "diffusion",
        "matrix_file" => dataset == "csv",
        _ => true,
    };
    for (key, given) in [
        ("branching", raw.branching.is_some()),
        ("depth", raw.depth.is_some()),
        ("flip_probability", raw.flip_probability.is_some()),
        ("n_features", raw.n_features.is_some()),
        ("data_seed", raw.data_seed.is_some()),
        ("matrix_file", raw.matrix_file.is_some()),
    ] {
        if given && !uses(key) {
            return Err(Invalid::new(
                format!("deep_linear.{key}"),
                format!("no value with dataset = \"{dataset}\""),
                "a value",
            )
            .hint(format!("`{key}` belongs to {}", owner(key))));
        }
    }
    let data = match dataset.as_str() {
        "four-items" => ItemPropertySet::four_items(),
        "tree" => {
            let (b, d) = hierarchy(raw)?;
            ItemPropertySet::tree(b, d)
                .map_err(|e| Invalid::new("deep_linear.branching", "a smaller hierarchy", e))?
        }
        "diffusion" => {
            let (b, d) = hierarchy(raw)?;
            let epsilon = *raw.flip_probability.get_or_insert(0.15);
            require(
                (0.0..=1.0).contains(&epsilon),
                "deep_linear.flip_probability",
                "a probability in [0, 1]",
                epsilon,
            )?;
            let features = *raw.n_features.get_or_insert(1000);
            require(
                (1..=tms_engine::data::items::MAX_GENERATED_SIZE).contains(&features),
                "deep_linear.n_features",
                &format!(
                    "an integer in [1, {}]",
                    tms_engine::data::items::MAX_GENERATED_SIZE
                ),
                features,
            )?;
            let data_seed = *raw.data_seed.get_or_insert(seed);
            let key = InstanceKey {
                seed: data_seed,
                instance: 0,
                replica: 0,
            };
            ItemPropertySet::branching_diffusion(
                &mut key.stream(StreamPurpose::Dataset),
                b,
                d,
                epsilon,
                features,
            )
            .map_err(|e| Invalid::new("deep_linear.branching", "a smaller hierarchy", e))?
        }
        _ => {
            let Some(file) = raw.matrix_file.as_deref() else {
                return Err(Invalid::new(
                    "deep_linear.matrix_file",
                    "a path to an item × property CSV (required for dataset = \"csv\")",
                    "nothing",
                ));
            };
            read_matrix_csv(Path::new(file)).map_err(|e| {
                Invalid::new(
                    "deep_linear.matrix_file",
                    "a readable item × property CSV",
                    e,
                )
            })?
        }
    };

    for (l, &w) in raw.hidden.iter().enumerate() {
        require(
            (1..=4096).contains(&w),
            &format!("deep_linear.hidden[{l}]"),
            "an integer in [1, 4096]",
            w,
        )?;
    }
    require(
        raw.hidden.len() <= 16,
        "deep_linear.hidden",
        "at most 16 hidden layers",
        raw.hidden.len(),
    )?;
    require(
        (1..=100_000).contains(&raw.repeats),
        "deep_linear.repeats",
        "an integer in [1, 100000]",
        raw.repeats,
    )?;

    let start_name = raw.start.clone();
    let starts: Vec<DeepLinearStart> = match start_name.as_str() {
        "aligned" => {
            forbid_axis(raw.scale.is_some(), "scale", "aligned", "initial_strength")?;
            let axis = raw
                .initial_strength
                .get_or_insert(Axis::Single(DEFAULT_INITIAL_STRENGTH));
            let values = axis.values("deep_linear.initial_strength")?;
            if let Some(bad) = values.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                return Err(Invalid::new(
                    "deep_linear.initial_strength",
                    "finite numbers > 0",
                    bad,
                ));
            }
            values
                .into_iter()
                .map(|a| DeepLinearStart::Aligned {
                    initial_strength: a,
                })
                .collect()
        }
        "gaussian" => {
            forbid_axis(
                raw.initial_strength.is_some(),
                "initial_strength",
                "gaussian",
                "scale",
            )?;
            let axis = raw.scale.get_or_insert(Axis::Single(DEFAULT_SCALE));
            let values = axis.values("deep_linear.scale")?;
            if let Some(bad) = values.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
                return Err(Invalid::new("deep_linear.scale", "finite numbers ≥ 0", bad));
            }
            values
                .into_iter()
                .map(|scale| DeepLinearStart::Gaussian { scale })
                .collect()
        }
        "zero" => {
            forbid_axis(raw.scale.is_some(), "scale", "zero", "nothing")?;
            forbid_axis(
                raw.initial_strength.is_some(),
                "initial_strength",
                "zero",
                "nothing",
            )?;
            if !raw.hidden.is_empty() {
                return Err(Invalid::new(
                    "deep_linear.start",
                    "`aligned` or `gaussian` for a network with hidden layers",
                    "`zero`",
                )
                .hint("W = 0 is a saddle point of a deep chain (zero gradient): nothing would learn; the zero start is for the shallow control, hidden = []"));
            }
            vec![DeepLinearStart::Zero]
        }
        other => {
            return Err(one_of(
                "deep_linear.start",
                &["aligned", "gaussian", "zero"],
                other,
            ))
        }
    };

    let mut predictions = Vec::with_capacity(raw.predictions.len());
    for (k, p) in raw.predictions.iter().enumerate() {
        let key = format!("deep_linear.predictions[{k}]");
        predictions.push(PredictionIndex {
            property: lookup(&p.property, &data.properties, &format!("{key}.property"))?,
            item: lookup(&p.item, &data.items, &format!("{key}.item"))?,
        });
    }

    let count = starts.len().saturating_mul(raw.repeats);
    require(
        count <= 100_000,
        "deep_linear.repeats",
        "at most 10⁵ instances in one run (axis values × repeats)",
        count,
    )?;
    let instances: Vec<DeepLinearInstance> = starts
        .iter()
        .flat_map(|&start| (0..raw.repeats).map(move |repeat| DeepLinearInstance { start, repeat }))
        .collect();
    let plan = DeepLinearPlan {
        data,
        hidden: raw.hidden.clone(),
        predictions,
        instances,
    };
    // The engine's own checks (finite targets, shapes) before anything is written.
    plan.try_task(0)
        .map_err(|e| Invalid::new("deep_linear", "a network the engine can build", e))?;
    Ok(plan)
}

/// Which data set a data-set key belongs to, for hints.
fn owner(key: &str) -> &'static str {
    match key {
        "branching" | "depth" => "dataset = \"tree\" or \"diffusion\"",
        "matrix_file" => "dataset = \"csv\"",
        _ => "dataset = \"diffusion\"",
    }
}

/// B and D of a hierarchy, defaults 2 and 3 filled in place.
fn hierarchy(raw: &mut RawDeepLinear) -> Result<(usize, usize), Invalid> {
    let b = *raw.branching.get_or_insert(2);
    let d = *raw.depth.get_or_insert(3);
    require(b >= 2, "deep_linear.branching", "an integer ≥ 2", b)?;
    require(d >= 1, "deep_linear.depth", "an integer ≥ 1", d)?;
    Ok((b, d))
}

fn forbid_axis(given: bool, key: &str, start: &str, instead: &str) -> Result<(), Invalid> {
    if given {
        Err(Invalid::new(
            format!("deep_linear.{key}"),
            format!("no value with start = \"{start}\""),
            "a value",
        )
        .hint(format!("the {start} start takes {instead}")))
    } else {
        Ok(())
    }
}

/// The index of a name or index among `names`.
fn lookup(which: &NameOrIndex, names: &[String], key: &str) -> Result<usize, Invalid> {
    match which {
        NameOrIndex::Index(i) => {
            require(
                *i < names.len(),
                key,
                &format!("an index in [0, {})", names.len()),
                i,
            )?;
            Ok(*i)
        }
        NameOrIndex::Name(name) => names.iter().position(|n| n == name).ok_or_else(|| {
            let shown: Vec<&str> = names.iter().take(12).map(String::as_str).collect();
            let mut e = Invalid::new(
                key,
                format!(
                    "one of {}{}",
                    shown
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if names.len() > 12 { ", …" } else { "" }
                ),
                format!("`{name}`"),
            );
            let all: Vec<&str> = names.iter().map(String::as_str).collect();
            if let Some(s) = crate::validate::did_you_mean(name, &all) {
                e = e.hint(format!("did you mean `{s}`?"));
            }
            e
        }),
    }
}

impl DeepLinearPlan {
    fn try_task(
        &self,
        k: usize,
    ) -> Result<DeepLinearTask, tms_engine::models::deep_linear::DeepLinearError> {
        DeepLinearTask::new(
            &self.data.targets,
            &self.hidden,
            self.instances[k].start,
            self.predictions.clone(),
        )
    }

    /// The engine task of instance `k`.
    pub fn task(&self, k: usize) -> DeepLinearTask {
        self.try_task(k)
            .expect("every instance was validated by `plan`")
    }

    /// The settings of instance `k` as JSON: the start and its axis value, the repeat, the widths.
    pub fn settings_json(&self, k: usize) -> Value {
        let i = &self.instances[k];
        let mut v = json!({ "repeat": i.repeat, "hidden": self.hidden });
        match i.start {
            DeepLinearStart::Aligned { initial_strength } => {
                v["start"] = json!("aligned");
                v["initial_strength"] = json!(initial_strength);
            }
            DeepLinearStart::Gaussian { scale } => {
                v["start"] = json!("gaussian");
                v["scale"] = json!(scale);
            }
            DeepLinearStart::Zero => v["start"] = json!("zero"),
        }
        v
    }

    /// Metrics of trained parameters as JSON: singular values s_α, final mode strengths a_α, the
    /// residual ‖Y − W^L⋯W¹‖_F, the best rank-k residual and the distance to Y's best rank-k
    /// approximation (k = the narrowest hidden width, or the rank for the shallow control), and
    /// the imbalances ‖W^{l+1}ᵀW^{l+1} − W^l W^lᵀ‖_F.
    pub fn metrics_json(&self, parameters: &[f32]) -> Value {
        let task = self.task(0);
        let modes = task.modes();
        let s = &modes.singular_values;
        let total = task.shape().total_map(parameters);
        let best_rank = self
            .hidden
            .iter()
            .copied()
            .min()
            .unwrap_or(s.len())
            .min(s.len());
        let best = modes.reconstruct(best_rank);
        let tail: f64 = s[best_rank..].iter().map(|x| x * x).sum();
        json!({
            "singular_values": s,
            "mode_strengths": task.mode_strengths(parameters),
            "residual": finite_or_null(self.data.targets.sub(&total).frobenius_norm()),
            "best_rank": best_rank,
            "best_rank_residual": tail.sqrt(),
            "distance_to_best_rank": finite_or_null(total.sub(&best).frobenius_norm()),
            "imbalances": imbalances(&task.shape().weights(parameters))
                .iter()
                .map(|c| finite_or_null(c.frobenius_norm()))
                .collect::<Vec<_>>(),
        })
    }
}

mod csv;
#[cfg(test)]
mod tests;

pub use csv::{parse_matrix_csv, read_matrix_csv, write_matrix_csv, CsvError};
