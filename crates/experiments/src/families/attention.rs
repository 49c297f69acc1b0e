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
use super::{finite_or_null, Family, PlanContext};
use crate::validate::{one_of, require, Invalid};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tms_engine::attention_metrics;
use tms_engine::data::pairs::{GraphSpec, PlantedConcepts, RelationFrequency, RelationalGraph};
use tms_engine::linalg;
use tms_engine::models::attention::{
    AttentionInit, AttentionWorkspace, DistillationTask, HeadCombination, HeadShape,
    RegressionGradient, RelationalGraphTask, ScoreRegressionTask,
};
use tms_engine::models::NamedTensor;
use tms_engine::rng::{InstanceKey, StreamRng};
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

/// The engine task of one instance (one type for the three tasks, so that a run is homogeneous),
/// with the padding of its exported tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionTask {
    /// The task itself.
    pub inner: InnerTask,
    /// Heads and rows the exported W_Q, W_K are padded to (the run's largest).
    padded: (usize, usize),
}

/// The three engine tasks.
#[derive(Clone, Debug, PartialEq)]
pub enum InnerTask {
    /// A1/A2.
    Regression(ScoreRegressionTask),
    /// A3.
    Distillation(DistillationTask),
    /// A4.
    RelationalGraph(RelationalGraphTask),
}

macro_rules! each {
    ($self:expr, $t:ident => $e:expr) => {
        match &$self.inner {
            InnerTask::Regression($t) => $e,
            InnerTask::Distillation($t) => $e,
            InnerTask::RelationalGraph($t) => $e,
        }
    };
}

impl AttentionTask {
    /// The head's shape.
    pub fn shape(&self) -> &HeadShape {
        each!(self, t => &t.shape)
    }

    /// The planted concepts (regression and distillation).
    pub fn concepts(&self) -> Option<&PlantedConcepts> {
        match &self.inner {
            InnerTask::Regression(t) => Some(&t.concepts),
            InnerTask::Distillation(t) => Some(&t.concepts),
            InnerTask::RelationalGraph(_) => None,
        }
    }
}

impl Task for AttentionTask {
    type Workspace = AttentionWorkspace;

    fn parameter_count(&self) -> usize {
        each!(self, t => t.parameter_count())
    }

    fn initialise(&self, rng: &mut StreamRng, parameters: &mut [f32]) {
        each!(self, t => t.initialise(rng, parameters))
    }

    fn workspace(&self) -> AttentionWorkspace {
        each!(self, t => t.workspace())
    }

    fn loss_and_gradient(
        &self,
        parameters: &[f32],
        rng: &mut StreamRng,
        workspace: &mut AttentionWorkspace,
        gradient: &mut [f32],
    ) -> f64 {
        each!(self, t => t.loss_and_gradient(parameters, rng, workspace, gradient))
    }

    fn evaluation_loss(&self, parameters: &[f32], key: &InstanceKey) -> f64 {
        each!(self, t => t.evaluation_loss(parameters, key))
    }

    fn observable_names(&self) -> Vec<String> {
        each!(self, t => t.observable_names())
    }

    fn observe(&self, parameters: &[f32]) -> Vec<f64> {
        each!(self, t => t.observe(parameters))
    }

    /// `W_QK` [d, d] (merged), or `W_Q`, `W_K` zero-padded to the run's largest heads × d_head:
    /// [d_head, d] when every instance has one head, else [h, d_head, d].
    fn export(&self, parameters: &[f32]) -> Vec<NamedTensor> {
        let shape = *self.shape();
        let tensors = shape.export(parameters);
        let (h_max, rows_max) = self.padded;
        let Some((heads, rows)) = factored_size(&shape) else {
            return tensors;
        };
        let d = shape.d;
        tensors
            .into_iter()
            .map(|t| {
                if t.name != "W_Q" && t.name != "W_K" {
                    return t;
                }
                let mut data = vec![0.0f32; h_max * rows_max * d];
                for eta in 0..heads {
                    for i in 0..rows {
                        let from = (eta * rows + i) * d;
                        let to = (eta * rows_max + i) * d;
                        data[to..to + d].copy_from_slice(&t.data[from..from + d]);
                    }
                }
                let shape = if h_max > 1 {
                    vec![h_max, rows_max, d]
                } else {
                    vec![rows_max, d]
                };
                NamedTensor {
                    name: t.name,
                    shape,
                    data,
                }
            })
            .collect()
    }
}

/// (h, d_head) of a factored head.
fn factored_size(shape: &HeadShape) -> Option<(usize, usize)> {
    match shape.score {
        tms_engine::models::attention::ScoreMap::Merged => None,
        tms_engine::models::attention::ScoreMap::Factored { heads, d_k } => Some((heads, d_k)),
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

impl AttentionPlan {
    /// The engine task of instance `k`.
    pub fn task(&self, k: usize) -> AttentionTask {
        self.tasks[k].clone()
    }

    /// The engine task of instance `k`, borrowed.
    pub fn task_ref(&self, k: usize) -> &AttentionTask {
        &self.tasks[k]
    }

    /// The settings of instance `k` as JSON (task, head sizes, axis values).
    pub fn settings_json(&self, k: usize) -> Value {
        let i = &self.instances[k];
        let mut v = json!({
            "task": self.kind.name(),
            "form": if self.merged { "merged" } else { "factored" },
            "d": self.d,
            "heads": i.heads,
            "d_head": i.d_head,
            "key_budget": i.key_budget(),
            "repeat": i.repeat,
        });
        if let Some(c) = self.tasks[k].concepts() {
            v["strengths_planted"] = json!(c.strengths);
        }
        if let InnerTask::RelationalGraph(t) = &self.tasks[k].inner {
            v["edges"] = json!(t.graph.edges.len());
            v["vertices"] = json!(t.graph.spec.vertices);
            v["keys_per_context"] = json!(t.keys);
        }
        v
    }

    /// Metrics of trained parameters as JSON: for planted concepts the strengths, the planted
    /// share, principal angles (degrees), each concept's best singular pair and the |cos| tables;
    /// for graphs the top-1 accuracy per relation; for both the singular values, nuclear norm and
    /// effective rank of W_QK.
    pub fn metrics_json(&self, k: usize, parameters: &[f32]) -> Value {
        let task = &self.tasks[k];
        let shape = task.shape();
        let d = shape.d;
        let w = shape.score_matrix(parameters);
        let svd = linalg::svd(&linalg::Matrix::from_row_major(d, d, w.clone()));
        let sv = svd.singular_values.clone();
        let mut v = json!({
            "singular_values": sv,
            "nuclear_norm": attention_metrics::nuclear_norm(&sv),
            "effective_rank": attention_metrics::effective_rank(&sv),
        });
        match &task.inner {
            InnerTask::Regression(_) | InnerTask::Distillation(_) => {
                let c = task.concepts().expect("concept task");
                let angles = attention_metrics::subspace_angles(&w, c);
                let degrees = |a: &[f64]| a.iter().map(|x| x.to_degrees()).collect::<Vec<_>>();
                let alignment: Vec<Value> = attention_metrics::concept_alignment(&w, c)
                    .iter()
                    .map(|a| {
                        json!({
                            "singular_index": a.singular_index,
                            "left_cos": a.left,
                            "right_cos": a.right,
                        })
                    })
                    .collect();
                // |cos| between concept k and singular vector α, [r][d], both sides.
                let table = |planted: &[f64], basis: &linalg::Matrix| {
                    let columns = basis.columns();
                    planted
                        .chunks(d)
                        .map(|concept| {
                            columns
                                .iter()
                                .map(|col| linalg::dot(concept, col).abs())
                                .collect::<Vec<f64>>()
                        })
                        .collect::<Vec<_>>()
                };
                let residual: f64 = w
                    .iter()
                    .zip(c.matrix())
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt();
                v["strengths"] = json!(attention_metrics::concept_strengths(&w, c));
                v["planted_share"] = json!(attention_metrics::planted_share(&w, c));
                v["principal_angles_deg"] =
                    json!({ "left": degrees(&angles.left), "right": degrees(&angles.right) });
                v["alignment"] = json!(alignment);
                v["cosines_left"] = json!(table(&c.left, &svd.u));
                v["cosines_right"] = json!(table(&c.right, &svd.v));
                v["residual_frobenius"] = json!(residual);
            }
            InnerTask::RelationalGraph(t) => {
                let per_relation = t.relation_accuracy(parameters);
                let weighted: f64 = per_relation
                    .iter()
                    .zip(&t.graph.frequencies)
                    .map(|(a, f)| a * f)
                    .sum();
                let uniform = per_relation.iter().sum::<f64>() / per_relation.len().max(1) as f64;
                v["top1_accuracy"] = json!(weighted);
                v["top1_accuracy_uniform"] = finite_or_null(uniform);
                v["accuracy_per_relation"] = json!(per_relation
                    .iter()
                    .map(|&a| finite_or_null(a))
                    .collect::<Vec<_>>());
                v["relation_frequencies"] = json!(t.graph.frequencies);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::Attention;
    use crate::config::{load, ConfigError, Origin};

    const REGRESSION: &str = "[experiment]\nname = \"t\"\n[train]\nsteps = 50\noptimizer = \"sgd\"\nlearning_rate = 0.01\nlog_every = 10\n[attention]\ntask = \"regression\"\nd = 4\nstrengths = [2.0, 1.0]\n";
    const GRAPH: &str = "[experiment]\nname = \"g\"\n[train]\nsteps = 20\noptimizer = \"adam\"\nlearning_rate = 0.05\nlog_every = 10\n[attention]\ntask = \"relational-graph\"\nd = 4\nvertices = 12\nedges = [4, 8]\nkey_budget = 4\nheads = [1, 2]\n";

    fn error(text: &str, overrides: &[&str]) -> ConfigError {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        load(text, &Origin::File("a.toml".into()), &overrides).expect_err("must be rejected")
    }

    fn key_of(e: &ConfigError) -> String {
        match e {
            ConfigError::Invalid { key, .. } => key.clone(),
            other => panic!("expected an invalid-key error, got {other}"),
        }
    }

    #[test]
    fn defaults_fill_in_and_round_trip() {
        let plan = load(REGRESSION, &Origin::Preset("t".into()), &[]).unwrap();
        let again = load(
            &crate::config::to_toml(&plan.resolved),
            &Origin::Preset("t".into()),
            &[],
        )
        .unwrap();
        assert_eq!(plan, again);
        let a = plan.resolved.section::<Attention>().unwrap();
        assert_eq!(a.start.as_deref(), Some("aligned"));
        assert_eq!(a.gradient.as_deref(), Some("population"));
        let p = plan.family.get::<Attention>().expect("attention plan");
        assert_eq!(p.instances.len(), 1);
        assert_eq!(p.instances[0].d_head, 4);
    }

    #[test]
    fn graph_axes_multiply_and_key_budget_divides() {
        let plan = load(GRAPH, &Origin::Preset("g".into()), &[]).unwrap();
        let p = plan.family.get::<Attention>().expect("attention plan");
        let sizes: Vec<_> = p
            .instances
            .iter()
            .map(|i| (i.edges.unwrap(), i.heads, i.d_head))
            .collect();
        assert_eq!(sizes, [(4, 1, 4), (4, 2, 2), (8, 1, 4), (8, 2, 2)]);
    }

    #[test]
    fn each_bad_value_names_its_key() {
        for (text, set, key) in [
            (REGRESSION, "attention.task=\"regresion\"", "attention.task"),
            (REGRESSION, "attention.d=0", "attention.d"),
            (REGRESSION, "attention.form=\"fused\"", "attention.form"),
            (REGRESSION, "attention.heads=0", "attention.heads"),
            (REGRESSION, "attention.d_head=1.5", "attention.d_head"),
            (
                REGRESSION,
                "attention.strengths=[1,2,3,4,5]",
                "attention.strengths",
            ),
            (REGRESSION, "attention.start=\"random\"", "attention.start"),
            (
                REGRESSION,
                "attention.initial_strength=-1.0",
                "attention.initial_strength",
            ),
            (
                REGRESSION,
                "attention.gradient=\"full\"",
                "attention.gradient",
            ),
            (
                REGRESSION,
                "attention.keys_per_context=8",
                "attention.keys_per_context",
            ),
            (REGRESSION, "attention.edges=8", "attention.edges"),
            (REGRESSION, "attention.batch_size=0", "attention.batch_size"),
            (
                REGRESSION,
                "attention.combination=\"mix-patterns\"",
                "attention.combination",
            ),
            (GRAPH, "attention.strengths=[1.0]", "attention.strengths"),
            (GRAPH, "attention.start=\"aligned\"", "attention.start"),
            (GRAPH, "attention.key_budget=3", "attention.key_budget"),
            (GRAPH, "attention.edges=1000", "attention.edges"),
            (
                GRAPH,
                "attention.frequency=\"zipff\"",
                "attention.frequency",
            ),
            (
                GRAPH,
                "attention.keys_per_context=40",
                "attention.keys_per_context",
            ),
            (GRAPH, "attention.d_head=2", "attention.key_budget"),
        ] {
            let e = error(text, &[set]);
            assert_eq!(key_of(&e), key, "{set}: {e}");
        }
        let e = error(REGRESSION, &["attention.task=\"regresion\""]);
        assert!(e.to_string().contains("did you mean `regression`?"), "{e}");
        let e = error(REGRESSION, &["attention.strenghts=[1.0]"]);
        assert_eq!(key_of(&e), "attention.strenghts");
        assert!(e.to_string().contains("did you mean `strengths`?"), "{e}");
    }

    #[test]
    fn renamed_keys_are_refused_naming_the_new_key() {
        use crate::families::Family;
        for (old, new) in super::Attention::RENAMED {
            let e = error(REGRESSION, &[&format!("attention.{old}=1")]);
            assert_eq!(key_of(&e), format!("attention.{old}"));
            assert!(
                e.to_string()
                    .contains(&format!("`{old}` was renamed: write `attention.{new}`")),
                "{e}"
            );
        }
    }

    #[test]
    fn exactly_one_model_section() {
        let both = format!(
            "{REGRESSION}[toy]\nmodel = \"linear\"\nn_features = 3\nn_hidden = 2\ndensity = 1.0\n"
        );
        let e = error(&both, &[]);
        assert_eq!(key_of(&e), "attention");
        assert!(e.to_string().contains("[toy] and [attention]"), "{e}");
        let none = "[experiment]\nname = \"t\"\n";
        assert!(error(none, &[]).to_string().contains("[attention]"));
    }

    #[test]
    fn merged_heads_take_no_sizes() {
        let e = error(
            REGRESSION,
            &["attention.form=\"merged\"", "attention.d_head=2"],
        );
        assert_eq!(key_of(&e), "attention.d_head");
    }

    #[test]
    fn a_tiny_run_writes_the_contract() {
        let plan = load(
            GRAPH,
            &Origin::Preset("g".into()),
            &["attention.frequency=\"zipf\"".into()],
        )
        .unwrap();
        let indices: Vec<usize> = (0..plan.family.instance_count()).collect();
        let outcomes = crate::run::run(&plan, &indices, &|_| {});
        let files = crate::output::run_files(&plan, &outcomes).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            [
                "config.toml",
                "model.safetensors",
                "metrics.json",
                "loss.csv"
            ]
        );
        // Padded to the largest head: [instances, h = 2, d_head = 4, d = 4].
        assert_eq!(outcomes[0].tensors[0].shape, vec![2, 4, 4]);
        let metrics: serde_json::Value = serde_json::from_slice(&files[2].1).unwrap();
        let first = &metrics["instances"][0];
        assert_eq!(metrics["family"], "attention");
        assert_eq!(first["accuracy_per_relation"].as_array().unwrap().len(), 4);
        assert!(first["top1_accuracy"].as_f64().is_some());
        let csv = String::from_utf8(files[3].1.clone()).unwrap();
        assert!(csv.starts_with("step,instance,replica,loss,top1_accuracy,top1_accuracy_uniform\n"));

        let plan = load(REGRESSION, &Origin::Preset("t".into()), &[]).unwrap();
        let outcomes = crate::run::run(&plan, &[0], &|_| {});
        let m = &outcomes[0].metrics;
        assert_eq!(m["strengths"].as_array().unwrap().len(), 2);
        assert_eq!(m["cosines_left"].as_array().unwrap().len(), 2);
        assert!(m["planted_share"].as_f64().unwrap() > 0.999);
        let csv = crate::output::loss_csv(&plan, &outcomes);
        assert!(csv.starts_with(
            "step,instance,replica,loss,strength_1,strength_2,planted_share,nuclear_norm,effective_rank\n"
        ));
    }
}
