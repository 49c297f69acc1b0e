//! `[attention]`: an attention head trained on pairs of vectors (followups.md §F2, experiments A1–A4).
//!
//! One run trains K instances of one task. The task is one of
//!
//! - `regression` (A1/A2): the score s = xᵀ W_QK y regressed on t = xᵀ M y, x, y ~ N(0, I), with
//!   the planted concepts M = Σ s_k u_k v_kᵀ; the exact `population` gradient or `minibatch` SGD;
//! - `distillation` (A3): a softmax over `keys_per_context` Gaussian keys (the spec's n; not the
//!   toy models' n features) distilled from the teacher softmax_j(xᵀ M y_j);
//! - `relational-graph` (A4): `vertices` tokens with random unit embeddings in ℝᵈ, a planted directed
//!   graph of `edges` relations, contexts of `keys_per_context` keys holding one neighbour of the
//!   query.
//!
//! The head is `factored` (h = `heads` heads of W_Q^η, W_K^η: d_head × d; d_head is A4's d_k) or
//! `merged` (W_QK learned directly). Instances differ by the per-instance *axes* — `edges`,
//! `key_budget` (D_K = h·d_head) or `d_head`, `heads`, and `repeats` (independent draws of the
//! concepts or graph and of the initialisation) — whose Cartesian product in that order (the last
//! varying fastest) is the instance list. Each axis is a number, a list, or a range as in `[toy]`.
//!
//! Keys that the chosen task does not read are rejected (a `strengths` list on a graph task is a
//! mistake, not a no-op); the defaults of the keys it does read are filled in so that the resolved
//! config shows them.
//!
//! The start is the deep-linear family's: `start = "aligned"` (every planted mode at
//! `initial_strength` = a₀) or `"gaussian"` (every weight N(0, `scale`²)).
//!
//! When instances of one run have different head sizes, the exported `W_Q`, `W_K` are zero-padded to
//! the largest `heads` × `d_head` of the run (the safetensors file stacks instances into one tensor);
//! each instance's `heads` and `d_head` in metrics.json say which rows are its own.

use super::axis::Axis;
use super::{Family, PlanContext};
use crate::validate::{one_of, require, Invalid};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tms_engine::data::pairs::{GraphSpec, PlantedConcepts, RelationFrequency, RelationalGraph};
use tms_engine::models::attention::{
    AttentionInit, DistillationTask, HeadCombination, HeadShape, RegressionGradient,
    RelationalGraphTask, ScoreRegressionTask,
};
use tms_engine::rng::InstanceKey;
use tms_engine::train::Task;

/// Attention heads on pairs of vectors, `[attention]`.
pub struct Attention;

impl Family for Attention {
    const NAME: &'static str = "attention";
    const RENAMED: &'static [(&'static str, &'static str)] = &[
        ("init", "start"),
        ("a0", "initial_strength"),
        ("init_std", "scale"),
        ("d_k", "d_head"),
        ("keys", "keys_per_context"),
        ("evaluation_size", "evaluation_batch_size"),
    ];
    type Raw = RawAttention;
    type Plan = AttentionPlan;
    type Task = AttentionTask;

    fn plan(raw: &mut RawAttention, context: &PlanContext) -> Result<AttentionPlan, Invalid> {
        plan(raw, context.seed)
    }

    fn instance_count(plan: &AttentionPlan) -> usize {
        plan.instances.len()
    }

    fn task(plan: &AttentionPlan, k: usize) -> AttentionTask {
        plan.task(k)
    }

    fn settings(plan: &AttentionPlan, k: usize) -> Value {
        plan.settings_json(k)
    }

    fn metrics(plan: &AttentionPlan, k: usize, _task: &AttentionTask, parameters: &[f32]) -> Value {
        plan.metrics_json(k, parameters)
    }

    fn observable_names(plan: &AttentionPlan) -> Vec<String> {
        plan.task_ref(0).observable_names()
    }
}

/// `[attention]` as written. Keys marked "task: …" are read by those tasks only.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAttention {
    /// `regression` (A1/A2), `distillation` (A3) or `relational-graph` (A4).
    pub task: String,
    /// Embedding dimension d of queries and keys.
    pub d: usize,
    /// `factored` (W_Q, W_K per head; default) or `merged` (W_QK learned directly).
    #[serde(default = "default_form")]
    pub form: String,
    /// Axis: number of heads h (factored; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<Axis>,
    /// Axis: rows d_head of each head's W_Q and W_K (A4's d_k; factored; default d unless
    /// `key_budget` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_head: Option<Axis>,
    /// Axis: total key budget D_K = h·d_head (factored); d_head = D_K / h, which must divide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_budget: Option<Axis>,
    /// `sum-scores` (one softmax over the heads' summed scores) or `mix-patterns` (one softmax per
    /// head, patterns averaged). Default: `mix-patterns` for `relational-graph`, else `sum-scores`
    /// (regression needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combination: Option<String>,
    /// Task: regression, distillation. Planted strengths s_k (default [3, 2, 1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strengths: Option<Vec<f64>>,
    /// `aligned` (every planted mode starts at a₀; regression default) or `gaussian` (every weight
    /// N(0, scale²); the other tasks' default and the only choice for `relational-graph`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Initial strength a₀ of the aligned start (default 1e-4); a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_strength: Option<f64>,
    /// Standard deviation σ of the Gaussian start (default 1e-3; 0.1 for `relational-graph`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// Task: regression. `population` (the exact gradient of ½‖W_QK − M‖²_F; default) or
    /// `minibatch` (SGD on `batch_size` Gaussian pairs per step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradient: Option<String>,
    /// Examples per minibatch B (default 32).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Task: distillation, relational-graph. Keys per context, the spec's n (default 8 and 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_per_context: Option<usize>,
    /// Task: distillation. Contexts in the fixed evaluation batch (default 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_batch_size: Option<usize>,
    /// Task: relational-graph. Vertices (tokens) n_v; n_v > d puts the embeddings in superposition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertices: Option<usize>,
    /// Task: relational-graph. Axis: directed edges (relations) m′.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edges: Option<Axis>,
    /// Task: relational-graph. How often each relation is asked: `uniform` (default), `zipf`
    /// (f_e ∝ (e+1)^−exponent) or `geometric` (f_e ∝ ratioᵉ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<String>,
    /// Task: relational-graph. Zipf exponent (default 1) or geometric ratio (default 0.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_parameter: Option<f64>,
    /// Task: relational-graph. Fixed evaluation contexts per edge (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contexts_per_edge: Option<usize>,
    /// Independent draws per setting (concepts or graph, and initialisation), each its own instance;
    /// unlike `train.replicas` (best-of-N on the same data) all are kept (default 1).
    #[serde(default = "default_repeats")]
    pub repeats: usize,
}

fn default_form() -> String {
    "factored".into()
}
fn default_batch() -> usize {
    32
}
fn default_repeats() -> usize {
    1
}

/// Which task a run trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionTaskKind {
    /// A1/A2: bilinear score regression.
    Regression,
    /// A3: softmax distillation from a planted teacher.
    Distillation,
    /// A4: relational graph recognition.
    RelationalGraph,
}

impl AttentionTaskKind {
    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            AttentionTaskKind::Regression => "regression",
            AttentionTaskKind::Distillation => "distillation",
            AttentionTaskKind::RelationalGraph => "relational-graph",
        }
    }
}

/// One instance's setting (the axis values).
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionInstance {
    /// Heads h (1 for a merged head).
    pub heads: usize,
    /// Rows per head d_head (d for a merged head).
    pub d_head: usize,
    /// Relations m′ (graph task).
    pub edges: Option<usize>,
    /// Which independent draw of its setting this is, 0-based.
    pub repeat: usize,
}

impl AttentionInstance {
    /// The key budget D_K = h·d_head.
    pub fn key_budget(&self) -> usize {
        self.heads * self.d_head
    }
}

/// A validated `[attention]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionPlan {
    /// The task of every instance.
    pub kind: AttentionTaskKind,
    /// Embedding dimension d.
    pub d: usize,
    /// Merged (`true`) or factored head.
    pub merged: bool,
    /// How heads combine.
    pub combination: HeadCombination,
    /// The instances, in axis order.
    pub instances: Vec<AttentionInstance>,
    /// The engine task of each instance (built at validation, so that data errors are config errors).
    tasks: Vec<AttentionTask>,
}

/// Values of an integer axis, each ≥ `min`.
fn integer_axis(axis: &Axis, key: &str, min: usize) -> Result<Vec<usize>, Invalid> {
    axis.values(key)?
        .into_iter()
        .map(|v| {
            let r = v.round();
            // Geometric ranges such as 1 … 8 in 4 steps give 3.9999999999999996: accept 1e-9 relative.
            if v.is_finite()
                && (v - r).abs() <= 1e-9 * r.abs().max(1.0)
                && r >= min as f64
                && r <= 1e6
            {
                Ok(r as usize)
            } else {
                Err(Invalid::new(
                    key,
                    format!("integers in [{min}, 1000000]"),
                    v,
                ))
            }
        })
        .collect()
}

/// Fails if `present` with "not read by task …".
fn unused(present: bool, key: &str, task: AttentionTaskKind) -> Result<(), Invalid> {
    if present {
        Err(Invalid::new(
            format!("attention.{key}"),
            format!("no `{key}` with task = \"{}\"", task.name()),
            "a value",
        )
        .hint(format!(
            "`{key}` is not read by the {} task; remove it",
            task.name()
        )))
    } else {
        Ok(())
    }
}

/// Validates `[attention]` (filling its defaults in place) and builds every instance's task.
/// `seed` is the run's `train.seed`: the concepts and graphs are drawn from each instance's dataset
/// stream, so a graph that cannot fill a context is reported here, before training.
pub fn plan(raw: &mut RawAttention, seed: u64) -> Result<AttentionPlan, Invalid> {
    let kind = match raw.task.as_str() {
        "regression" => AttentionTaskKind::Regression,
        "distillation" => AttentionTaskKind::Distillation,
        "relational-graph" => AttentionTaskKind::RelationalGraph,
        other => {
            return Err(one_of(
                "attention.task",
                &["regression", "distillation", "relational-graph"],
                other,
            ))
        }
    };
    let d = raw.d;
    require(
        (1..=4096).contains(&d),
        "attention.d",
        "an integer in [1, 4096]",
        d,
    )?;
    let merged = match raw.form.as_str() {
        "factored" => false,
        "merged" => true,
        other => return Err(one_of("attention.form", &["factored", "merged"], other)),
    };
    let graph = kind == AttentionTaskKind::RelationalGraph;
    let concepts_task = !graph;

    // Head sizes.
    if merged {
        for (present, key) in [
            (raw.heads.is_some(), "heads"),
            (raw.d_head.is_some(), "d_head"),
            (raw.key_budget.is_some(), "key_budget"),
        ] {
            if present {
                return Err(Invalid::new(
                    format!("attention.{key}"),
                    "no head sizes with form = \"merged\" (W_QK is d × d)",
                    "a value",
                )
                .hint("remove it, or set form = \"factored\""));
            }
        }
    }
    if raw.d_head.is_some() && raw.key_budget.is_some() {
        return Err(Invalid::new(
            "attention.key_budget",
            "either d_head or key_budget (D_K = heads × d_head), not both",
            "both",
        ));
    }
    let heads = match &raw.heads {
        Some(axis) => integer_axis(axis, "attention.heads", 1)?,
        None => vec![1],
    };
    // (d_head per instance is derived per head count when key_budget is given.)
    let sizes: Vec<(usize, usize)> = if merged {
        vec![(1, d)]
    } else if let Some(axis) = &raw.key_budget {
        let budgets = integer_axis(axis, "attention.key_budget", 1)?;
        let mut out = Vec::new();
        for &b in &budgets {
            for &h in &heads {
                if b % h != 0 {
                    return Err(Invalid::new(
                        "attention.key_budget",
                        format!("multiples of every head count (heads = {h})"),
                        b,
                    ));
                }
                out.push((h, b / h));
            }
        }
        out
    } else {
        let rows = match &raw.d_head {
            Some(axis) => integer_axis(axis, "attention.d_head", 1)?,
            None => vec![d],
        };
        rows.iter()
            .flat_map(|&r| heads.iter().map(move |&h| (h, r)))
            .collect()
    };

    let combination_name = raw.combination.get_or_insert_with(|| {
        if graph {
            "mix-patterns".into()
        } else {
            "sum-scores".into()
        }
    });
    let combination = match combination_name.as_str() {
        "sum-scores" => HeadCombination::SumScores,
        "mix-patterns" => HeadCombination::MixPatterns,
        other => {
            return Err(one_of(
                "attention.combination",
                &["sum-scores", "mix-patterns"],
                other,
            ))
        }
    };
    if kind == AttentionTaskKind::Regression && combination == HeadCombination::MixPatterns {
        return Err(Invalid::new(
            "attention.combination",
            "`sum-scores` for task = \"regression\" (one score to regress)",
            "`mix-patterns`",
        ));
    }

    // Planted concepts.
    unused(graph && raw.strengths.is_some(), "strengths", kind)?;
    let strengths = if concepts_task {
        let s = raw
            .strengths
            .get_or_insert_with(|| vec![3.0, 2.0, 1.0])
            .clone();
        require(
            !s.is_empty() && s.len() <= d,
            "attention.strengths",
            &format!("a list of 1 to attention.d = {d} numbers"),
            format!("{} numbers", s.len()),
        )?;
        if let Some(bad) = s.iter().find(|v| !v.is_finite()) {
            return Err(Invalid::new("attention.strengths", "finite numbers", bad));
        }
        s
    } else {
        Vec::new()
    };

    // Initialisation.
    let init_name = raw
        .start
        .get_or_insert_with(|| {
            if kind == AttentionTaskKind::Regression {
                "aligned".into()
            } else {
                "gaussian".into()
            }
        })
        .clone();
    let init = match init_name.as_str() {
        "aligned" => {
            if graph {
                return Err(Invalid::new(
                    "attention.start",
                    "`gaussian` for task = \"relational-graph\" (there are no planted concepts to align with)",
                    "`aligned`",
                ));
            }
            unused(raw.scale.is_some(), "scale", kind)
                .map_err(|e| e.hint("scale is read by start = \"gaussian\" only"))?;
            let a0 = *raw.initial_strength.get_or_insert(1e-4);
            require(
                a0.is_finite() && a0 > 0.0,
                "attention.initial_strength",
                "a finite number > 0",
                a0,
            )?;
            AttentionInit::Aligned { a0 }
        }
        "gaussian" => {
            unused(raw.initial_strength.is_some(), "initial_strength", kind)
                .map_err(|e| e.hint("initial_strength is read by start = \"aligned\" only"))?;
            let std = *raw.scale.get_or_insert(if graph { 0.1 } else { 1e-3 });
            require(
                std.is_finite() && std >= 0.0,
                "attention.scale",
                "a finite number ≥ 0",
                std,
            )?;
            AttentionInit::Gaussian { std }
        }
        other => return Err(one_of("attention.start", &["aligned", "gaussian"], other)),
    };
    if let AttentionInit::Aligned { .. } = init {
        if !merged && sizes.iter().any(|&(h, _)| h > 1) && combination != HeadCombination::SumScores
        {
            return Err(Invalid::new(
                "attention.start",
                "`gaussian` with several heads that mix patterns",
                "`aligned`",
            ));
        }
    }

    // Task-specific keys.
    let regression = kind == AttentionTaskKind::Regression;
    unused(!regression && raw.gradient.is_some(), "gradient", kind)?;
    let gradient = if regression {
        match raw
            .gradient
            .get_or_insert_with(|| "population".into())
            .as_str()
        {
            "population" => RegressionGradient::Population,
            "minibatch" => RegressionGradient::Minibatch,
            other => {
                return Err(one_of(
                    "attention.gradient",
                    &["population", "minibatch"],
                    other,
                ))
            }
        }
    } else {
        RegressionGradient::Minibatch
    };
    require(
        (1..=1 << 20).contains(&raw.batch_size),
        "attention.batch_size",
        "an integer in [1, 1048576]",
        raw.batch_size,
    )?;
    unused(
        regression && raw.keys_per_context.is_some(),
        "keys_per_context",
        kind,
    )
    .map_err(|e| e.hint("regression scores one key per query"))?;
    let keys = if regression {
        1
    } else {
        let n = *raw
            .keys_per_context
            .get_or_insert(if graph { 4 } else { 8 });
        require(
            (1..=4096).contains(&n),
            "attention.keys_per_context",
            "an integer in [1, 4096]",
            n,
        )?;
        n
    };
    let distillation = kind == AttentionTaskKind::Distillation;
    unused(
        !distillation && raw.evaluation_batch_size.is_some(),
        "evaluation_batch_size",
        kind,
    )?;
    let evaluation_size = if distillation {
        let e = *raw.evaluation_batch_size.get_or_insert(256);
        require(
            (1..=1 << 20).contains(&e),
            "attention.evaluation_batch_size",
            "an integer in [1, 1048576]",
            e,
        )?;
        e
    } else {
        0
    };
    for (present, key) in [
        (raw.vertices.is_some(), "vertices"),
        (raw.edges.is_some(), "edges"),
        (raw.frequency.is_some(), "frequency"),
        (raw.frequency_parameter.is_some(), "frequency_parameter"),
        (raw.contexts_per_edge.is_some(), "contexts_per_edge"),
    ] {
        unused(!graph && present, key, kind)?;
    }
    let mut graph_settings = None;
    let edge_counts: Vec<Option<usize>> = if graph {
        let vertices = raw.vertices.ok_or_else(|| {
            Invalid::new(
                "attention.vertices",
                "a value (this key is required)",
                "nothing",
            )
        })?;
        require(
            (2..=1 << 20).contains(&vertices),
            "attention.vertices",
            "an integer in [2, 1048576]",
            vertices,
        )?;
        let edges = raw.edges.as_ref().ok_or_else(|| {
            Invalid::new(
                "attention.edges",
                "a value (this key is required)",
                "nothing",
            )
        })?;
        let edges = integer_axis(edges, "attention.edges", 1)?;
        let max = vertices * (vertices - 1);
        if let Some(&bad) = edges.iter().find(|&&m| m > max) {
            return Err(Invalid::new(
                "attention.edges",
                format!("integers ≤ n_v (n_v − 1) = {max} (distinct ordered pairs of vertices)"),
                bad,
            ));
        }
        let frequency = match raw
            .frequency
            .get_or_insert_with(|| "uniform".into())
            .as_str()
        {
            "uniform" => {
                unused(
                    raw.frequency_parameter.is_some(),
                    "frequency_parameter",
                    kind,
                )
                .map_err(|e| e.hint("frequency = \"uniform\" has no parameter"))?;
                RelationFrequency::Uniform
            }
            "zipf" => {
                let exponent = *raw.frequency_parameter.get_or_insert(1.0);
                require(
                    exponent.is_finite() && exponent >= 0.0,
                    "attention.frequency_parameter",
                    "a Zipf exponent: a finite number ≥ 0",
                    exponent,
                )?;
                RelationFrequency::Zipf { exponent }
            }
            "geometric" => {
                let ratio = *raw.frequency_parameter.get_or_insert(0.9);
                require(
                    ratio > 0.0 && ratio <= 1.0,
                    "attention.frequency_parameter",
                    "a geometric ratio in (0, 1]",
                    ratio,
                )?;
                RelationFrequency::Geometric { ratio }
            }
            other => {
                return Err(one_of(
                    "attention.frequency",
                    &["uniform", "zipf", "geometric"],
                    other,
                ))
            }
        };
        let per_edge = *raw.contexts_per_edge.get_or_insert(8);
        require(
            (1..=4096).contains(&per_edge),
            "attention.contexts_per_edge",
            "an integer in [1, 4096]",
            per_edge,
        )?;
        require(
            keys < vertices,
            "attention.keys_per_context",
            &format!("an integer ≤ attention.vertices − 1 = {}", vertices - 1),
            keys,
        )?;
        graph_settings = Some((vertices, frequency, per_edge));
        edges.into_iter().map(Some).collect()
    } else {
        vec![None]
    };
    require(
        (1..=100_000).contains(&raw.repeats),
        "attention.repeats",
        "an integer in [1, 100000]",
        raw.repeats,
    )?;

    let mut instances = Vec::new();
    for &edges in &edge_counts {
        for &(h, rows) in &sizes {
            for repeat in 0..raw.repeats {
                instances.push(AttentionInstance {
                    heads: h,
                    d_head: rows,
                    edges,
                    repeat,
                });
            }
        }
    }
    require(
        instances.len() <= 100_000,
        "attention.repeats",
        "at most 10⁵ instances in one run",
        instances.len(),
    )?;
    let padded = (
        instances.iter().map(|i| i.heads).max().unwrap_or(1),
        instances.iter().map(|i| i.d_head).max().unwrap_or(d),
    );
    let mut tasks = Vec::with_capacity(instances.len());
    for (k, instance) in instances.iter().enumerate() {
        let key = InstanceKey {
            seed,
            instance: k as u64,
            replica: 0,
        };
        let shape = if merged {
            HeadShape::merged(d)
        } else {
            HeadShape::multi_head(d, instance.heads, instance.d_head, combination)
        };
        let data_error = |e: &dyn std::fmt::Display, key_name: &str| {
            Invalid::new(
                format!("attention.{key_name}"),
                "settings whose data can be drawn",
                format!("instance {k}: {e}"),
            )
        };
        let inner = match kind {
            AttentionTaskKind::Regression | AttentionTaskKind::Distillation => {
                let concepts = PlantedConcepts::for_instance(d, &strengths, &key)
                    .map_err(|e| data_error(&e, "strengths"))?;
                if regression {
                    InnerTask::Regression(
                        ScoreRegressionTask::new(shape, concepts, raw.batch_size, gradient, init)
                            .map_err(|e| data_error(&e, "task"))?,
                    )
                } else {
                    InnerTask::Distillation(
                        DistillationTask::new(
                            shape,
                            concepts,
                            keys,
                            raw.batch_size,
                            evaluation_size,
                            init,
                            &key,
                        )
                        .map_err(|e| data_error(&e, "task"))?,
                    )
                }
            }
            AttentionTaskKind::RelationalGraph => {
                let (vertices, frequency, per_edge) = graph_settings.expect("graph settings");
                let spec = GraphSpec {
                    vertices,
                    d,
                    edges: instance.edges.expect("graph instances have edges"),
                    frequency,
                };
                let graph = RelationalGraph::for_instance(spec, &key)
                    .map_err(|e| data_error(&e, "edges"))?;
                let std = match init {
                    AttentionInit::Gaussian { std } => std,
                    AttentionInit::Aligned { .. } => unreachable!("rejected above"),
                };
                InnerTask::RelationalGraph(
                    RelationalGraphTask::new(
                        shape,
                        graph,
                        keys,
                        raw.batch_size,
                        per_edge,
                        std,
                        &key,
                    )
                    .map_err(|e| {
                        data_error(&e, "keys_per_context").hint(
                            "a vertex has too many neighbours for this context size: lower keys_per_context or edges, or raise vertices",
                        )
                    })?,
                )
            }
        };
        tasks.push(AttentionTask { inner, padded });
    }
    Ok(AttentionPlan {
        kind,
        d,
        merged,
        combination,
        instances,
        tasks,
    })
}

mod metrics;
mod task;
#[cfg(test)]
mod tests;

pub use task::{AttentionTask, InnerTask};
