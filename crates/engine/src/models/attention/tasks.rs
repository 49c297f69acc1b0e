//! The attention tasks of experiments A1–A4 (followups.md §F2): each draws its data (Gaussian
//! pairs, a planted teacher, a relational graph), scores it with [`super::head`]'s forward/backward
//! pass and implements [`Task`]; plus the planted-concept observables the histories record.

use super::head::{dot, HeadScratch, HeadShape, Target};
use crate::attention_metrics;
use crate::data::pairs::{
    gaussian_vectors, GraphContext, PairsError, PlantedConcepts, RelationalGraph,
};
use crate::models::NamedTensor;
use crate::rng::{InstanceKey, StreamPurpose, StreamRng};
use crate::train::Task;

/// Why a task cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttentionError {
    /// The head's shape does not fit the task.
    #[error("{task} needs {requirement}")]
    Shape {
        /// The task.
        task: &'static str,
        /// What the shape lacks.
        requirement: &'static str,
    },
    /// The data setting is invalid.
    #[error(transparent)]
    Data(#[from] PairsError),
}

/// How a planted-concept task initialises its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttentionInit {
    /// Every parameter N(0, std²) (small std: "small random start").
    Gaussian {
        /// Standard deviation.
        std: f64,
    },
    /// Every planted mode starts at strength a₀ ([`HeadShape::initialise_aligned`]).
    Aligned {
        /// Initial strength a₀ of each mode.
        a0: f64,
    },
}

impl AttentionInit {
    fn apply(
        &self,
        shape: &HeadShape,
        concepts: Option<&PlantedConcepts>,
        rng: &mut StreamRng,
        parameters: &mut [f32],
    ) {
        match (*self, concepts) {
            (AttentionInit::Gaussian { std }, _) => shape.initialise_gaussian(rng, std, parameters),
            (AttentionInit::Aligned { a0 }, Some(c)) => {
                shape.initialise_aligned(c, a0, rng, parameters)
            }
            (AttentionInit::Aligned { .. }, None) => {
                panic!("an aligned start needs planted concepts")
            }
        }
    }
}

/// Which gradient the regression task descends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegressionGradient {
    /// Minibatches of B Gaussian pairs from the training stream (SGD).
    Minibatch,
    /// The exact population gradient of ½‖W_QK − M‖²_F (full-batch gradient descent, F1's setting).
    Population,
}

/// Names of the planted-concept observables: `strength_1` … `strength_r` (a_k = u_kᵀ W_QK v_k), then
/// `planted_share` (‖P_U W_QK P_V‖²_F / ‖W_QK‖²_F), `nuclear_norm` and `effective_rank` of W_QK
/// (see [`attention_metrics`]).
fn concept_observable_names(r: usize) -> Vec<String> {
    let mut names: Vec<String> = (1..=r).map(|k| format!("strength_{k}")).collect();
    names.extend(["planted_share", "nuclear_norm", "effective_rank"].map(String::from));
    names
}

fn concept_observables(
    shape: &HeadShape,
    concepts: &PlantedConcepts,
    parameters: &[f32],
) -> Vec<f64> {
    let w = shape.score_matrix(parameters);
    let mut out = attention_metrics::concept_strengths(&w, concepts);
    out.push(attention_metrics::planted_share(&w, concepts));
    let sv = attention_metrics::singular_values(&w, shape.d);
    out.push(attention_metrics::nuclear_norm(&sv));
    out.push(attention_metrics::effective_rank(&sv));
    out
}

/// A1/A2: bilinear score regression. x, y ~ N(0, I) independent, target t = xᵀ M y with M the planted
/// concept matrix, loss ½(s − t)² averaged over the minibatch. Its population loss is ½‖W_QK − M‖²_F,
/// i.e. F1's deep linear network with Y := M (factored) or the shallow control (merged).
///
/// Observables: `strength_1` … `strength_r`, `planted_share`, `nuclear_norm`, `effective_rank` of
/// W_QK. Export: [`HeadShape::export`].
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreRegressionTask {
    /// The head: one pattern, no values.
    pub shape: HeadShape,
    /// The planted concepts (the instance's dataset stream).
    pub concepts: PlantedConcepts,
    /// M as f32, [d, d].
    target: Vec<f32>,
    /// Minibatch size B (unused with the population gradient).
    pub batch_size: usize,
    /// Minibatch SGD or the exact population gradient.
    pub gradient: RegressionGradient,
    /// Initialisation.
    pub init: AttentionInit,
}

impl ScoreRegressionTask {
    /// A regression task on `concepts`; the shape must have one pattern and no values.
    pub fn new(
        shape: HeadShape,
        concepts: PlantedConcepts,
        batch_size: usize,
        gradient: RegressionGradient,
        init: AttentionInit,
    ) -> Result<Self, AttentionError> {
        if shape.patterns() != 1 || shape.value_dim.is_some() || shape.d != concepts.d {
            return Err(AttentionError::Shape {
                task: "score regression",
                requirement: "one attention pattern, no values, and d equal to the concepts' d",
            });
        }
        Ok(Self {
            shape,
            target: concepts.matrix().iter().map(|&m| m as f32).collect(),
            concepts,
            batch_size: batch_size.max(1),
            gradient,
            init,
        })
    }
}

/// Scratch of the attention tasks: the drawn queries and keys, and the kernel's buffers.
#[derive(Clone, Debug, Default)]
pub struct AttentionWorkspace {
    queries: Vec<f32>,
    keys: Vec<f32>,
    teacher: Vec<f32>,
    context: GraphContext,
    scratch: HeadScratch<f32>,
}

impl Task for ScoreRegressionTask {
    type Workspace = AttentionWorkspace;

    fn parameter_count(&self) -> usize {
        self.shape.parameter_count()
    }

    fn initialise(&self, rng: &mut StreamRng, parameters: &mut [f32]) {
        self.init
            .apply(&self.shape, Some(&self.concepts), rng, parameters);
    }

    fn workspace(&self) -> AttentionWorkspace {
        AttentionWorkspace {
            scratch: self.shape.scratch(1),
            ..Default::default()
        }
    }

    fn loss_and_gradient(
        &self,
        parameters: &[f32],
        rng: &mut StreamRng,
        ws: &mut AttentionWorkspace,
        gradient: &mut [f32],
    ) -> f64 {
        let d = self.shape.d;
        if self.gradient == RegressionGradient::Population {
            return self
                .shape
                .population_regression(parameters, &self.target, Some(gradient))
                as f64;
        }
        gradient.fill(0.0);
        let b = self.batch_size;
        gaussian_vectors(rng, b, d, &mut ws.queries);
        gaussian_vectors(rng, b, d, &mut ws.keys);
        let weight = 1.0 / b as f32;
        let mut total = 0.0f64;
        for e in 0..b {
            let x = &ws.queries[e * d..(e + 1) * d];
            let y = &ws.keys[e * d..(e + 1) * d];
            // t = xᵀ M y.
            let t: f32 = (0..d)
                .map(|a| x[a] * dot(&self.target[a * d..(a + 1) * d], y))
                .sum();
            total += self.shape.example_loss(
                parameters,
                x,
                y,
                Target::Score(t),
                weight,
                Some(gradient),
                &mut ws.scratch,
            ) as f64;
        }
        total / b as f64
    }

    /// The exact population loss ½‖W_QK − M‖²_F (f64).
    fn evaluation_loss(&self, parameters: &[f32], _key: &InstanceKey) -> f64 {
        let p: Vec<f64> = parameters.iter().map(|&v| v as f64).collect();
        self.shape
            .population_regression(&p, &self.concepts.matrix(), None)
    }

    fn observable_names(&self) -> Vec<String> {
        concept_observable_names(self.concepts.rank())
    }

    fn observe(&self, parameters: &[f32]) -> Vec<f64> {
        concept_observables(&self.shape, &self.concepts, parameters)
    }

    fn export(&self, parameters: &[f32]) -> Vec<NamedTensor> {
        self.shape.export(parameters)
    }
}

/// A fixed evaluation set of contexts (f64): queries [E, d], keys [E, n, d], targets [E, n].
#[derive(Clone, Debug, PartialEq)]
struct EvaluationSet {
    queries: Vec<f64>,
    keys: Vec<f64>,
    teacher: Vec<f64>,
}

/// Teacher distribution p_j = softmax_j(xᵀ M y_j) for n keys, written to `out` \[n\]. `m` is [d, d].
fn teacher_distribution(m: &[f64], x: &[f64], keys: &[f64], out: &mut [f64]) {
    let d = x.len();
    // Mᵀx once, then one dot product per key.
    let read: Vec<f64> = (0..d)
        .map(|b| (0..d).map(|a| x[a] * m[a * d + b]).sum())
        .collect();
    for (j, o) in out.iter_mut().enumerate() {
        *o = dot(&read, &keys[j * d..(j + 1) * d]);
    }
    let max = out.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v));
    let total: f64 = out.iter().map(|&s| (s - max).exp()).sum();
    for o in out.iter_mut() {
        *o = (*o - max).exp() / total;
    }
}

/// A3: softmax attention distilled from a planted teacher. A query x and n keys y_j ~ N(0, I);
/// teacher p = softmax_j(xᵀ M y_j), student q̄ (the head's attention); loss Σ_j p_j ln(p_j/q̄_j)
/// (cross-entropy minus the teacher's entropy: same gradient q − p, zero at W_QK = M).
///
/// Observables: `strength_1` … `strength_r`, `planted_share`, `nuclear_norm`, `effective_rank` of
/// W_QK. Export: [`HeadShape::export`].
#[derive(Clone, Debug, PartialEq)]
pub struct DistillationTask {
    /// The student head (no values needed).
    pub shape: HeadShape,
    /// The planted teacher's concepts.
    pub concepts: PlantedConcepts,
    /// M, [d, d].
    target: Vec<f64>,
    /// Keys per context n.
    pub keys: usize,
    /// Minibatch size B.
    pub batch_size: usize,
    /// Initialisation.
    pub init: AttentionInit,
    evaluation: EvaluationSet,
}

impl DistillationTask {
    /// A distillation task with `evaluation_size` fixed contexts from the instance's evaluation stream.
    pub fn new(
        shape: HeadShape,
        concepts: PlantedConcepts,
        keys: usize,
        batch_size: usize,
        evaluation_size: usize,
        init: AttentionInit,
        key: &InstanceKey,
    ) -> Result<Self, AttentionError> {
        if shape.d != concepts.d || keys == 0 {
            return Err(AttentionError::Shape {
                task: "distillation",
                requirement: "d equal to the concepts' d and at least one key",
            });
        }
        let d = shape.d;
        let target = concepts.matrix();
        let mut rng = key.stream(StreamPurpose::Evaluation);
        let e = evaluation_size.max(1);
        let queries: Vec<f64> = (0..e * d).map(|_| rng.standard_normal()).collect();
        let all_keys: Vec<f64> = (0..e * keys * d).map(|_| rng.standard_normal()).collect();
        let mut teacher = vec![0.0; e * keys];
        for i in 0..e {
            teacher_distribution(
                &target,
                &queries[i * d..(i + 1) * d],
                &all_keys[i * keys * d..(i + 1) * keys * d],
                &mut teacher[i * keys..(i + 1) * keys],
            );
        }
        Ok(Self {
            shape,
            concepts,
            target,
            keys,
            batch_size: batch_size.max(1),
            init,
            evaluation: EvaluationSet {
                queries,
                keys: all_keys,
                teacher,
            },
        })
    }
}

impl Task for DistillationTask {
    type Workspace = AttentionWorkspace;

    fn parameter_count(&self) -> usize {
        self.shape.parameter_count()
    }

    fn initialise(&self, rng: &mut StreamRng, parameters: &mut [f32]) {
        self.init
            .apply(&self.shape, Some(&self.concepts), rng, parameters);
    }

    fn workspace(&self) -> AttentionWorkspace {
        AttentionWorkspace {
            scratch: self.shape.scratch(self.keys),
            ..Default::default()
        }
    }

    fn loss_and_gradient(
        &self,
        parameters: &[f32],
        rng: &mut StreamRng,
        ws: &mut AttentionWorkspace,
        gradient: &mut [f32],
    ) -> f64 {
        let (d, n, b) = (self.shape.d, self.keys, self.batch_size);
        gradient.fill(0.0);
        gaussian_vectors(rng, b, d, &mut ws.queries);
        gaussian_vectors(rng, b * n, d, &mut ws.keys);
        ws.teacher.resize(n, 0.0);
        let mut p64 = vec![0.0; n];
        let weight = 1.0 / b as f32;
        let mut total = 0.0f64;
        for e in 0..b {
            let x = &ws.queries[e * d..(e + 1) * d];
            let y = &ws.keys[e * n * d..(e + 1) * n * d];
            // The teacher in f64, so that p is exact to f32 rounding whatever the score range.
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let y64: Vec<f64> = y.iter().map(|&v| v as f64).collect();
            teacher_distribution(&self.target, &x64, &y64, &mut p64);
            for (t, &p) in ws.teacher.iter_mut().zip(&p64) {
                *t = p as f32;
            }
            total += self.shape.example_loss(
                parameters,
                x,
                y,
                Target::Distribution(&ws.teacher),
                weight,
                Some(gradient),
                &mut ws.scratch,
            ) as f64;
        }
        total / b as f64
    }

    /// Mean loss (f64) on the fixed evaluation contexts.
    fn evaluation_loss(&self, parameters: &[f32], _key: &InstanceKey) -> f64 {
        let (d, n) = (self.shape.d, self.keys);
        let p: Vec<f64> = parameters.iter().map(|&v| v as f64).collect();
        let mut scratch = self.shape.scratch::<f64>(n);
        let ev = &self.evaluation;
        let count = ev.queries.len() / d;
        let total: f64 = (0..count)
            .map(|i| {
                self.shape.example_loss(
                    &p,
                    &ev.queries[i * d..(i + 1) * d],
                    &ev.keys[i * n * d..(i + 1) * n * d],
                    Target::Distribution(&ev.teacher[i * n..(i + 1) * n]),
                    1.0,
                    None,
                    &mut scratch,
                )
            })
            .sum();
        total / count as f64
    }

    fn observable_names(&self) -> Vec<String> {
        concept_observable_names(self.concepts.rank())
    }

    fn observe(&self, parameters: &[f32]) -> Vec<f64> {
        concept_observables(&self.shape, &self.concepts, parameters)
    }

    fn export(&self, parameters: &[f32]) -> Vec<NamedTensor> {
        self.shape.export(parameters)
    }
}

/// A4: relational graph recognition (Adler 2025). Each example is an edge a → b drawn by its
/// frequency, the query x = e_a and a context of n keys holding e_b and n − 1 non-neighbours of a;
/// loss −ln q̄_target (cross-entropy on attending to the neighbour). Vertices may outnumber
/// dimensions (n_v ≫ d): the embeddings, and with them the relations, are in superposition.
#[derive(Clone, Debug, PartialEq)]
pub struct RelationalGraphTask {
    /// The heads (factored, any h and d_k; [`HeadCombination::MixPatterns`](super::HeadCombination::MixPatterns) is A4's choice).
    pub shape: HeadShape,
    /// The planted graph and its embeddings (the instance's dataset stream).
    pub graph: RelationalGraph,
    /// Keys per context n.
    pub keys: usize,
    /// Minibatch size B.
    pub batch_size: usize,
    /// Standard deviation of the Gaussian initialisation.
    pub init_std: f64,
    /// Fixed evaluation contexts (`contexts_per_edge` per edge, from the evaluation stream).
    evaluation: Vec<GraphContext>,
}

impl RelationalGraphTask {
    /// A graph task with `contexts_per_edge` fixed evaluation contexts for every edge.
    pub fn new(
        shape: HeadShape,
        graph: RelationalGraph,
        keys: usize,
        batch_size: usize,
        contexts_per_edge: usize,
        init_std: f64,
        key: &InstanceKey,
    ) -> Result<Self, AttentionError> {
        if shape.d != graph.spec.d || keys == 0 {
            return Err(AttentionError::Shape {
                task: "relational graph",
                requirement: "d equal to the graph's embedding dimension and at least one key",
            });
        }
        graph.check_context_size(keys)?;
        let mut rng = key.stream(StreamPurpose::Evaluation);
        let mut evaluation = Vec::with_capacity(graph.edges.len() * contexts_per_edge);
        for edge in 0..graph.edges.len() {
            for _ in 0..contexts_per_edge.max(1) {
                let mut c = GraphContext::default();
                graph.context_for_edge(&mut rng, edge, keys, &mut c);
                evaluation.push(c);
            }
        }
        Ok(Self {
            shape,
            graph,
            keys,
            batch_size: batch_size.max(1),
            init_std,
            evaluation,
        })
    }

    /// Gathers the key embeddings of a context into `out` [n, d].
    fn gather(&self, context: &GraphContext, out: &mut Vec<f32>) {
        out.clear();
        for &v in &context.keys {
            out.extend_from_slice(self.graph.embedding(v));
        }
    }

    /// Over the evaluation set: (loss, correct) per context, in f32 — the prediction is argmax_j q̄_j
    /// (ties to the lowest position).
    fn evaluate(&self, parameters: &[f32]) -> Vec<(f64, bool)> {
        let mut scratch = self.shape.scratch::<f32>(self.keys);
        let mut keys = Vec::new();
        self.evaluation
            .iter()
            .map(|c| {
                self.gather(c, &mut keys);
                let loss = self.shape.example_loss(
                    parameters,
                    self.graph.embedding(c.query),
                    &keys,
                    Target::Position(c.target),
                    1.0,
                    None,
                    &mut scratch,
                );
                let scores = scratch.log_attention();
                let best =
                    (0..scores.len()).fold(0, |b, j| if scores[j] > scores[b] { j } else { b });
                (loss as f64, best == c.target)
            })
            .collect()
    }

    /// Top-1 accuracy of every edge on its evaluation contexts, \[m′\].
    pub fn relation_accuracy(&self, parameters: &[f32]) -> Vec<f64> {
        let results = self.evaluate(parameters);
        let correct: Vec<bool> = results.iter().map(|r| r.1).collect();
        let relation: Vec<usize> = self.evaluation.iter().map(|c| c.edge).collect();
        attention_metrics::top1_accuracy_per_relation(&correct, &relation, self.graph.edges.len())
    }
}

impl Task for RelationalGraphTask {
    type Workspace = AttentionWorkspace;

    fn parameter_count(&self) -> usize {
        self.shape.parameter_count()
    }

    fn initialise(&self, rng: &mut StreamRng, parameters: &mut [f32]) {
        self.shape
            .initialise_gaussian(rng, self.init_std, parameters);
    }

    fn workspace(&self) -> AttentionWorkspace {
        AttentionWorkspace {
            scratch: self.shape.scratch(self.keys),
            ..Default::default()
        }
    }

    fn loss_and_gradient(
        &self,
        parameters: &[f32],
        rng: &mut StreamRng,
        ws: &mut AttentionWorkspace,
        gradient: &mut [f32],
    ) -> f64 {
        gradient.fill(0.0);
        let weight = 1.0 / self.batch_size as f32;
        let mut total = 0.0f64;
        for _ in 0..self.batch_size {
            self.graph.sample_context(rng, self.keys, &mut ws.context);
            self.gather(&ws.context, &mut ws.keys);
            total += self.shape.example_loss(
                parameters,
                self.graph.embedding(ws.context.query),
                &ws.keys,
                Target::Position(ws.context.target),
                weight,
                Some(gradient),
                &mut ws.scratch,
            ) as f64;
        }
        total / self.batch_size as f64
    }

    /// Frequency-weighted mean loss on the evaluation contexts: an estimate of the training
    /// objective that does not depend on the replica.
    fn evaluation_loss(&self, parameters: &[f32], _key: &InstanceKey) -> f64 {
        let results = self.evaluate(parameters);
        let per_edge = results.len() as f64 / self.graph.edges.len() as f64;
        results
            .iter()
            .zip(&self.evaluation)
            .map(|((loss, _), c)| loss * self.graph.frequencies[c.edge] / per_edge)
            .sum()
    }

    /// `top1_accuracy` (weighted by relation frequency: the accuracy on the training distribution)
    /// and `top1_accuracy_uniform` (mean over relations).
    fn observable_names(&self) -> Vec<String> {
        vec!["top1_accuracy".into(), "top1_accuracy_uniform".into()]
    }

    fn observe(&self, parameters: &[f32]) -> Vec<f64> {
        let per_relation = self.relation_accuracy(parameters);
        let weighted = per_relation
            .iter()
            .zip(&self.graph.frequencies)
            .map(|(a, f)| a * f)
            .sum();
        let uniform = per_relation.iter().sum::<f64>() / per_relation.len() as f64;
        vec![weighted, uniform]
    }

    fn export(&self, parameters: &[f32]) -> Vec<NamedTensor> {
        self.shape.export(parameters)
    }
}
