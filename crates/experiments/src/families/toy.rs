//! `[toy]`: toy models of superposition (experiments.md §1–§3).
//!
//! One run trains K instances of one shape. Instances differ by the per-instance *axes* — `density`,
//! `extra_importance`, `density_factor` — whose Cartesian product (in that order, the last varying
//! fastest) gives the instance list. Each axis is a number, a list, or a range
//! `{ from, to, count, spacing = "geometric" | "linear" }`.

use super::axis::{Axis, NumberListOrTable};
use super::{finite_or_null, format_number, instances, Family, PlanContext};
use crate::validate::{one_of, require, Invalid};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use tms_engine::data::sparse::{
    AnticorrelatedConvention, FeatureDistribution, FeatureGroup, ValueRange,
};
use tms_engine::metrics;
use tms_engine::models::toy::{ToyKind, ToyShape, ToyTask};

/// The toy models of superposition, `[toy]`.
pub struct Toy;

impl Family for Toy {
    const NAME: &'static str = "toy";
    type Raw = RawToy;
    type Plan = ToyPlan;
    type Task = ToyTask;

    fn plan(raw: &mut RawToy, _context: &PlanContext) -> Result<ToyPlan, Invalid> {
        plan(raw)
    }

    fn instance_count(plan: &ToyPlan) -> usize {
        plan.instances.len()
    }

    fn task(plan: &ToyPlan, k: usize) -> ToyTask {
        plan.task(k)
    }

    fn settings(plan: &ToyPlan, k: usize) -> Value {
        plan.settings_json(k)
    }

    fn metrics(plan: &ToyPlan, _k: usize, _task: &ToyTask, parameters: &[f32]) -> Value {
        plan.metrics_json(parameters)
    }

    /// A table: density, loss, D*, represented features, status.
    fn inspect(metrics: &Value) -> Vec<String> {
        let mut lines = vec![format!(
            "{:>8} {:>10} {:>12} {:>8} {:>12} {:>10}",
            "instance", "density", "loss", "D*", "represented", "status"
        )];
        for inst in instances(metrics) {
            let n = inst["norms"].as_array().map(|a| a.len()).unwrap_or(0);
            lines.push(format!(
                "{:>8} {:>10} {:>12} {:>8} {:>12} {:>10}",
                inst["index"].to_string(),
                format_number(&inst["density"], 4),
                format_number(&inst["evaluation_loss"], 6),
                format_number(&inst["dimensions_per_feature"], 3),
                format!("{}/{n}", inst["represented_features"]),
                inst["status"].as_str().unwrap_or("?")
            ));
        }
        lines
    }
}

/// `[toy]` as written.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawToy {
    /// `linear`, `relu-output`, `relu-hidden` or `abs`.
    pub model: String,
    /// Number of features n.
    pub n_features: usize,
    /// Number of hidden dimensions m.
    pub n_hidden: usize,
    /// Feature density p per instance (an axis).
    pub density: Axis,
    /// Importance of the features: a number (all equal), a list of n numbers, or `{ decay = r }` for I_i = rⁱ.
    #[serde(default = "default_importance")]
    pub importance: Importance,
    /// Optional axis: the importance of the last feature (the "extra" feature of the phase diagrams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_importance: Option<Axis>,
    /// Optional axis: the density of `perturbed_feature` is the instance's density times this factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub density_factor: Option<Axis>,
    /// The feature whose density `density_factor` scales (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perturbed_feature: Option<usize>,
    /// Correlated and anticorrelated sets of features; the other features are independent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<RawSet>,
    /// `unit` (U\[0, 1\]) or `signed` (U\[−1, 1\]); default `signed` for `abs`, else `unit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<String>,
    /// Training minibatch size.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Examples in the fixed evaluation batch (final loss, best-of-N selection).
    #[serde(default = "default_evaluation_batch")]
    pub evaluation_batch_size: usize,
    /// Record every feature's dimensionality D_i in the history (learning dynamics).
    #[serde(default)]
    pub record_dimensionality: bool,
}

fn default_importance() -> Importance {
    Importance::Uniform(1.0)
}
fn default_batch() -> usize {
    1024
}
fn default_evaluation_batch() -> usize {
    16_384
}

/// Feature importances: `1.0`, `[1.0, 0.5, …]` or `{ decay = 0.9 }`.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Importance {
    /// Every feature the same.
    Uniform(f64),
    /// One value per feature.
    List(Vec<f64>),
    /// I_i = decayⁱ (i from 0).
    Decay {
        /// Ratio between consecutive features.
        decay: f64,
    },
}

/// The table form of [`Importance`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportanceDecay {
    decay: f64,
}

impl<'de> Deserialize<'de> for Importance {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(
            match NumberListOrTable::<ImportanceDecay>::deserialize(
                deserializer,
                "a number, a list of numbers or { decay = r }",
            )? {
                NumberListOrTable::Number(v) => Importance::Uniform(v),
                NumberListOrTable::List(v) => Importance::List(v),
                NumberListOrTable::Table(t) => Importance::Decay { decay: t.decay },
            },
        )
    }
}

/// A correlated or anticorrelated set: `features = [start, end)`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSet {
    /// `correlated` or `anticorrelated`.
    pub kind: String,
    /// Half-open feature range `[start, end)`.
    pub features: [usize; 2],
    /// For anticorrelated sets: `set` (the set is active with probability p, then one member) or
    /// `feature` (each member has marginal p, never two at once). Default `set`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convention: Option<String>,
}

/// One instance's setting.
#[derive(Clone, Debug, PartialEq)]
pub struct ToyInstance {
    /// Density p of the instance.
    pub density: f64,
    /// Importance of each feature.
    pub importance: Vec<f64>,
    /// Value of the `extra_importance` axis, if any.
    pub extra_importance: Option<f64>,
    /// Value of the `density_factor` axis, if any.
    pub density_factor: Option<f64>,
    /// The law of the instance's features.
    pub distribution: FeatureDistribution,
}

/// A validated `[toy]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct ToyPlan {
    /// Model and sizes.
    pub shape: ToyShape,
    /// Training minibatch size.
    pub batch_size: usize,
    /// Evaluation batch size.
    pub evaluation_batch_size: usize,
    /// Whether D_i is recorded over training.
    pub record_dimensionality: bool,
    /// The instances, in axis order.
    pub instances: Vec<ToyInstance>,
}

/// Validates `[toy]` (and fills its defaults in place, so the resolved config shows them).
pub fn plan(raw: &mut RawToy) -> Result<ToyPlan, Invalid> {
    let kind = ToyKind::from_name(&raw.model).ok_or_else(|| {
        one_of(
            "toy.model",
            &["linear", "relu-output", "relu-hidden", "abs"],
            &raw.model,
        )
    })?;
    let (n, m) = (raw.n_features, raw.n_hidden);
    require(
        (1..=1_000_000).contains(&n),
        "toy.n_features",
        "an integer in [1, 1000000]",
        n,
    )?;
    require(m >= 1, "toy.n_hidden", "an integer ≥ 1", m)?;
    if kind.tied() && m > n {
        return Err(Invalid::new("toy.n_hidden", format!("an integer in [1, toy.n_features = {n}]"), m)
            .hint("with m > n every feature gets its own dimension and nothing is in superposition; the `abs` model allows m > n"));
    }
    require(
        raw.batch_size >= 1 && raw.batch_size <= 1 << 22,
        "toy.batch_size",
        "an integer in [1, 4194304]",
        raw.batch_size,
    )?;
    require(
        raw.evaluation_batch_size >= 1 && raw.evaluation_batch_size <= 1 << 24,
        "toy.evaluation_batch_size",
        "an integer in [1, 16777216]",
        raw.evaluation_batch_size,
    )?;
    let values_name = raw.values.get_or_insert_with(|| {
        if kind == ToyKind::AbsoluteValue {
            "signed".into()
        } else {
            "unit".into()
        }
    });
    let values = match values_name.as_str() {
        "unit" => ValueRange::Unit,
        "signed" => ValueRange::Signed,
        other => return Err(one_of("toy.values", &["unit", "signed"], other)),
    };

    let importance: Vec<f64> = match &raw.importance {
        Importance::Uniform(v) => vec![*v; n],
        Importance::List(v) => {
            require(
                v.len() == n,
                "toy.importance",
                &format!("a list of toy.n_features = {n} numbers"),
                format!("{} numbers", v.len()),
            )?;
            v.clone()
        }
        Importance::Decay { decay } => {
            require(
                decay.is_finite() && *decay > 0.0,
                "toy.importance.decay",
                "a finite number > 0",
                decay,
            )?;
            (0..n).map(|i| decay.powi(i as i32)).collect()
        }
    };
    if let Some(bad) = importance.iter().find(|v| !v.is_finite() || **v < 0.0) {
        return Err(Invalid::new("toy.importance", "finite numbers ≥ 0", bad));
    }

    let densities = raw.density.values("toy.density")?;
    if let Some(bad) = densities.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        return Err(Invalid::new("toy.density", "numbers in [0, 1]", bad));
    }
    require(
        densities.iter().any(|&p| p > 0.0),
        "toy.density",
        "at least one density > 0",
        "0 everywhere",
    )
    .map_err(|e| e.hint("at density 0 every input is zero and there is nothing to learn"))?;
    let extras = match &raw.extra_importance {
        Some(axis) => axis
            .values("toy.extra_importance")?
            .into_iter()
            .map(Some)
            .collect(),
        None => vec![None],
    };
    if let Some(bad) = extras
        .iter()
        .flatten()
        .find(|v| !v.is_finite() || **v < 0.0)
    {
        return Err(Invalid::new(
            "toy.extra_importance",
            "finite numbers ≥ 0",
            bad,
        ));
    }
    let factors = match &raw.density_factor {
        Some(axis) => axis
            .values("toy.density_factor")?
            .into_iter()
            .map(Some)
            .collect(),
        None => vec![None],
    };
    if let Some(bad) = factors
        .iter()
        .flatten()
        .find(|v| !v.is_finite() || **v <= 0.0)
    {
        return Err(Invalid::new(
            "toy.density_factor",
            "finite numbers > 0",
            bad,
        ));
    }
    let perturbed = raw.perturbed_feature.unwrap_or(0);
    require(
        perturbed < n,
        "toy.perturbed_feature",
        &format!("a feature index in [0, {n})"),
        perturbed,
    )?;

    // Sets: validated once, instantiated per density.
    let mut covered = vec![false; n];
    let mut sets = Vec::new();
    for (k, set) in raw.sets.iter().enumerate() {
        let key = format!("toy.sets[{k}]");
        let [start, end] = set.features;
        require(
            start < end && end <= n,
            &format!("{key}.features"),
            &format!("[start, end) with 0 ≤ start < end ≤ {n}"),
            format!("[{start}, {end}]"),
        )?;
        if let Some(i) = (start..end).find(|&i| covered[i]) {
            return Err(Invalid::new(
                format!("{key}.features"),
                "sets that do not overlap",
                format!("feature {i} in two sets"),
            ));
        }
        covered[start..end].iter_mut().for_each(|c| *c = true);
        let convention = match set.convention.as_deref().unwrap_or("set") {
            "set" => AnticorrelatedConvention::SetDensity,
            "feature" => AnticorrelatedConvention::FeatureDensity,
            other => {
                return Err(one_of(
                    &format!("{key}.convention"),
                    &["set", "feature"],
                    other,
                ))
            }
        };
        match set.kind.as_str() {
            "correlated" | "anticorrelated" => {
                sets.push((set.kind == "correlated", start..end, convention))
            }
            other => {
                return Err(one_of(
                    &format!("{key}.kind"),
                    &["correlated", "anticorrelated"],
                    other,
                ))
            }
        }
    }
    if raw.density_factor.is_some() && covered[perturbed] {
        return Err(Invalid::new(
            "toy.perturbed_feature",
            "an independent feature (not in a set)",
            perturbed,
        ));
    }

    let mut instances = Vec::new();
    for &density in &densities {
        for &extra in &extras {
            for &factor in &factors {
                let mut importance = importance.clone();
                if let Some(r) = extra {
                    importance[n - 1] = r;
                }
                let mut marginal = vec![density; n];
                if let Some(f) = factor {
                    marginal[perturbed] = density * f;
                    if marginal[perturbed] > 1.0 {
                        return Err(Invalid::new(
                            "toy.density_factor",
                            format!("factors with density × factor ≤ 1 (density {density})"),
                            f,
                        ));
                    }
                }
                let mut groups: Vec<FeatureGroup> = sets
                    .iter()
                    .map(|(correlated, features, convention)| {
                        if *correlated {
                            FeatureGroup::Correlated {
                                features: features.clone(),
                                density,
                            }
                        } else {
                            FeatureGroup::Anticorrelated {
                                features: features.clone(),
                                density,
                                convention: *convention,
                            }
                        }
                    })
                    .collect();
                let mut start = 0;
                while start < n {
                    if covered[start] {
                        start += 1;
                        continue;
                    }
                    let mut end = start + 1;
                    while end < n && !covered[end] && marginal[end] == marginal[start] {
                        end += 1;
                    }
                    groups.push(FeatureGroup::Independent {
                        features: start..end,
                        density: marginal[start],
                    });
                    start = end;
                }
                let distribution = FeatureDistribution::new(n, groups, values).map_err(|e| {
                    Invalid::new("toy.sets", "sets whose probabilities are in [0, 1]", e)
                })?;
                instances.push(ToyInstance {
                    density,
                    importance,
                    extra_importance: extra,
                    density_factor: factor,
                    distribution,
                });
            }
        }
    }
    require(
        instances.len() <= 1_000_000,
        "toy.density",
        "at most 10⁶ instances in one run",
        instances.len(),
    )?;
    Ok(ToyPlan {
        shape: ToyShape {
            kind,
            n_features: n,
            n_hidden: m,
        },
        batch_size: raw.batch_size,
        evaluation_batch_size: raw.evaluation_batch_size,
        record_dimensionality: raw.record_dimensionality,
        instances,
    })
}

impl ToyPlan {
    /// The engine task of instance `k`.
    pub fn task(&self, k: usize) -> ToyTask {
        let instance = &self.instances[k];
        ToyTask {
            shape: self.shape,
            distribution: instance.distribution.clone(),
            importance: instance.importance.iter().map(|&i| i as f32).collect(),
            batch_size: self.batch_size,
            evaluation_batch_size: self.evaluation_batch_size,
            record_dimensionality: self.record_dimensionality,
        }
    }

    /// The settings of instance `k` as JSON (the axis values and importances).
    pub fn settings_json(&self, k: usize) -> Value {
        let i = &self.instances[k];
        let mut v = json!({ "density": i.density, "importance": i.importance });
        if let Some(r) = i.extra_importance {
            v["extra_importance"] = json!(r);
        }
        if let Some(f) = i.density_factor {
            v["density_factor"] = json!(f);
        }
        v
    }

    /// Geometry metrics of trained parameters (experiments.md §3), as JSON.
    pub fn metrics_json(&self, parameters: &[f32]) -> Value {
        let (n, m) = (self.shape.n_features, self.shape.n_hidden);
        let embedding = self.shape.embedding(parameters);
        let norms = metrics::feature_norms(&embedding, n, m);
        json!({
            "norms": norms,
            "superposition": metrics::superposition(&embedding, n, m),
            "dimensionality": metrics::feature_dimensionality(&embedding, n, m),
            "dimensions_per_feature": finite_or_null(metrics::dimensions_per_feature(&embedding, m)),
            "represented_features": metrics::represented_count(&norms, 0.5),
            "bias": self.shape.bias(parameters),
        })
    }
}
