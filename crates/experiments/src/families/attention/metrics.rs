//! What `metrics.json` says about an attention instance: its settings and the metrics of its
//! trained W_QK (planted concepts: strengths, angles, alignment; graphs: accuracy per relation).

use super::{AttentionPlan, AttentionTask, InnerTask};
use crate::families::finite_or_null;
use serde_json::{json, Value};
use tms_engine::attention_metrics;
use tms_engine::linalg;

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
