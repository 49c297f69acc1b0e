//! A toy model as a training [`Task`]: the law of its features, their importances, its batch sizes;
//! each step draws a batch and runs the fast kernel ([`crate::kernels::toy`]), the evaluation
//! loss runs the naive twin in f64 ([`ToyShape::loss_and_gradient_reference`]).

use super::shape::ToyShape;
use crate::data::batch::{DenseBatch, SparseBatch};
use crate::data::sparse::FeatureDistribution;
use crate::kernels::{self, toy::ToyKernelWorkspace};
use crate::models::NamedTensor;
use crate::rng::{InstanceKey, StreamPurpose, StreamRng};
use crate::train::Task;

/// One toy-model instance: its shape, the law of its features, their importances and its batch sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct ToyTask {
    /// Model and sizes.
    pub shape: ToyShape,
    /// Law of the input features (density, correlations, value range).
    pub distribution: FeatureDistribution,
    /// Importance I_i of each feature, \[n\].
    pub importance: Vec<f32>,
    /// Training minibatch size B.
    pub batch_size: usize,
    /// Size of the fixed evaluation batch (best-of-N selection, final loss).
    pub evaluation_batch_size: usize,
    /// Record each feature's dimensionality D_i in the history (learning dynamics, E9).
    pub record_dimensionality: bool,
}

/// Scratch of a [`ToyTask`]: the minibatch (as rows, or dense) and the fast kernel's buffers.
#[derive(Debug, Default)]
pub struct ToyWorkspace {
    batch: SparseBatch,
    dense: DenseBatch,
    kernel: ToyKernelWorkspace,
}

impl Task for ToyTask {
    type Workspace = ToyWorkspace;

    fn parameter_count(&self) -> usize {
        self.shape.parameter_count()
    }

    fn initialise(&self, rng: &mut StreamRng, parameters: &mut [f32]) {
        self.shape.initialise(rng, parameters);
    }

    fn workspace(&self) -> ToyWorkspace {
        ToyWorkspace::default()
    }

    fn loss_and_gradient(
        &self,
        parameters: &[f32],
        rng: &mut StreamRng,
        workspace: &mut ToyWorkspace,
        gradient: &mut [f32],
    ) -> f64 {
        // A distribution drawn dense goes to the small-m kernel as a dense matrix; both forms hold
        // the same examples, so the choice does not change the result's law or its stream.
        let small = kernels::toy::Plan::new(&self.shape, self.batch_size).small;
        if small && self.distribution.draws_dense() {
            self.distribution
                .sample_dense_into(rng, self.batch_size, &mut workspace.dense);
            return kernels::toy::loss_and_gradient_dense(
                &self.shape,
                parameters,
                &workspace.dense,
                &self.importance,
                gradient,
                &mut workspace.kernel,
            );
        }
        self.distribution
            .sample_into(rng, self.batch_size, &mut workspace.batch);
        kernels::toy::loss_and_gradient(
            &self.shape,
            parameters,
            &workspace.batch,
            &self.importance,
            gradient,
            &mut workspace.kernel,
        )
    }

    /// Loss in f64 on `evaluation_batch_size` examples from the instance's evaluation stream.
    fn evaluation_loss(&self, parameters: &[f32], key: &InstanceKey) -> f64 {
        let mut rng = key.stream(StreamPurpose::Evaluation);
        let params: Vec<f64> = parameters.iter().map(|&p| p as f64).collect();
        let importance: Vec<f64> = self.importance.iter().map(|&i| i as f64).collect();
        let mut scratch = self.shape.scratch::<f64>();
        // In chunks, so that memory stays bounded for large evaluation sets; the mean of equal-sized
        // chunk means is the overall mean.
        let chunk = 4096.min(self.evaluation_batch_size.max(1));
        let chunks = self.evaluation_batch_size.div_ceil(chunk).max(1);
        let mut batch = SparseBatch::default();
        let mut total = 0.0;
        for _ in 0..chunks {
            self.distribution.sample_into(&mut rng, chunk, &mut batch);
            total += self.shape.loss_and_gradient_reference(
                &params,
                &batch,
                &importance,
                None,
                &mut scratch,
            );
        }
        total / chunks as f64
    }

    fn observable_names(&self) -> Vec<String> {
        if self.record_dimensionality {
            (0..self.shape.n_features)
                .map(|i| format!("dimensionality_{i}"))
                .collect()
        } else {
            Vec::new()
        }
    }

    fn observe(&self, parameters: &[f32]) -> Vec<f64> {
        if self.record_dimensionality {
            let embedding = self.shape.embedding(parameters);
            crate::metrics::feature_dimensionality(
                &embedding,
                self.shape.n_features,
                self.shape.n_hidden,
            )
        } else {
            Vec::new()
        }
    }

    fn export(&self, parameters: &[f32]) -> Vec<NamedTensor> {
        self.shape.export(parameters)
    }
}
