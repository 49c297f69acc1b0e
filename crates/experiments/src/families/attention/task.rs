//! The engine task of an attention instance: one type over the three tasks (so that a run is
//! homogeneous), exporting W_Q, W_K zero-padded to the run's largest head.

use tms_engine::data::pairs::PlantedConcepts;
use tms_engine::models::attention::{
    AttentionWorkspace, DistillationTask, HeadShape, RelationalGraphTask, ScoreRegressionTask,
};
use tms_engine::models::NamedTensor;
use tms_engine::rng::{InstanceKey, StreamRng};
use tms_engine::train::Task;

/// The engine task of one instance (one type for the three tasks, so that a run is homogeneous),
/// with the padding of its exported tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionTask {
    /// The task itself.
    pub inner: InnerTask,
    /// Heads and rows the exported W_Q, W_K are padded to (the run's largest).
    pub(super) padded: (usize, usize),
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
