//! Reading toy-model outcomes back as the paper's objects: the embedding W (columns W_i), the bias,
//! and geometry derived from them.

use tms_engine::metrics;
use tms_experiments::families::toy::{Toy, ToyPlan};
use tms_experiments::run::InstanceOutcome;

use crate::{CompletedRun, ReproduceError};

/// One trained toy model: n features embedded in m dimensions.
#[derive(Clone, Debug)]
pub struct ToyWeights {
    /// Features n.
    pub n: usize,
    /// Hidden dimensions m.
    pub m: usize,
    /// Feature-major rows: `embedding[i*m..(i+1)*m]` = W_i (for the abs model, W₁'s columns).
    pub embedding: Vec<f64>,
    /// The bias b (output bias), length n.
    pub bias: Vec<f64>,
    /// For the abs model, W₂ (n×m row-major); empty otherwise.
    pub decoder: Vec<f64>,
}

impl ToyWeights {
    /// Reads the tensors of an outcome (`W` [m, n] and `b`, or `W1`, `W2`, `b`).
    pub fn from_outcome(outcome: &InstanceOutcome) -> Option<Self> {
        let get = |name: &str| outcome.tensors.iter().find(|t| t.name == name);
        let encoder = get("W").or_else(|| get("W1"))?;
        let (m, n) = (encoder.shape[0], encoder.shape[1]);
        let mut embedding = vec![0.0; n * m];
        for j in 0..m {
            for i in 0..n {
                embedding[i * m + j] = encoder.data[j * n + i] as f64;
            }
        }
        let bias = get("b")?.data.iter().map(|&v| v as f64).collect();
        let decoder = get("W2")
            .map(|t| t.data.iter().map(|&v| v as f64).collect())
            .unwrap_or_default();
        Some(Self {
            n,
            m,
            embedding,
            bias,
            decoder,
        })
    }

    /// W_i.
    pub fn column(&self, i: usize) -> &[f64] {
        &self.embedding[i * self.m..(i + 1) * self.m]
    }

    /// ‖W_i‖ for every feature.
    pub fn norms(&self) -> Vec<f64> {
        metrics::feature_norms(&self.embedding, self.n, self.m)
    }

    /// WᵀW (n×n).
    pub fn gram(&self) -> Vec<f64> {
        metrics::gram(&self.embedding, self.n, self.m)
    }

    /// D_i for every feature.
    pub fn dimensionality(&self) -> Vec<f64> {
        metrics::feature_dimensionality(&self.embedding, self.n, self.m)
    }

    /// s_i for every feature.
    pub fn superposition(&self) -> Vec<f64> {
        metrics::superposition(&self.embedding, self.n, self.m)
    }

    /// D* = m / ‖W‖²_F.
    pub fn dimensions_per_feature(&self) -> f64 {
        metrics::dimensions_per_feature(&self.embedding, self.m)
    }

    /// cos(W_i, W_j) (0 if either is zero).
    pub fn cosine(&self, i: usize, j: usize) -> f64 {
        let (a, b) = (self.column(i), self.column(j));
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norms = self.norms();
        if norms[i] == 0.0 || norms[j] == 0.0 {
            0.0
        } else {
            dot / (norms[i] * norms[j])
        }
    }
}

/// The toy plan of a run, or an analysis error naming the experiment.
pub fn toy_plan<'a>(
    experiment: &str,
    run: &'a CompletedRun,
) -> Result<&'a ToyPlan, ReproduceError> {
    run.plan
        .family
        .get::<Toy>()
        .ok_or_else(|| ReproduceError::Analysis {
            experiment: experiment.into(),
            message: format!("run {} is not a toy-model run", run.request.preset),
        })
}

/// The weights of every instance of a run.
pub fn weights(experiment: &str, run: &CompletedRun) -> Result<Vec<ToyWeights>, ReproduceError> {
    run.outcomes
        .iter()
        .map(|o| {
            ToyWeights::from_outcome(o).ok_or_else(|| ReproduceError::Analysis {
                experiment: experiment.into(),
                message: format!(
                    "run {} instance {} has no W/b tensors",
                    run.request.preset, o.index
                ),
            })
        })
        .collect()
}

/// Angles (degrees, in [0, 360)) of the represented columns (norm > `threshold`) of an m = 2 model,
/// sorted, and the gaps between consecutive ones (wrapping around).
pub fn angular_gaps(w: &ToyWeights, threshold: f64) -> Vec<f64> {
    let norms = w.norms();
    let mut angles: Vec<f64> = (0..w.n)
        .filter(|&i| norms[i] > threshold)
        .map(|i| {
            let c = w.column(i);
            c[1].atan2(c[0]).to_degrees().rem_euclid(360.0)
        })
        .collect();
    angles.sort_by(f64::total_cmp);
    let k = angles.len();
    (0..k)
        .map(|i| {
            if i + 1 < k {
                angles[i + 1] - angles[i]
            } else {
                angles[0] + 360.0 - angles[i]
            }
        })
        .collect()
}

/// Compact label of a density for panel titles: `p = 0.05`.
pub fn density_label(p: f64) -> String {
    if p >= 0.01 {
        format!("p = {}", trim(p, 3))
    } else {
        format!("p = {p:.0e}")
    }
}

fn trim(v: f64, digits: usize) -> String {
    let s = format!("{v:.digits$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// The paper's description of a toy model for figure titles, from the plan (never hand-written).
pub fn model_title(plan: &ToyPlan) -> String {
    let kind = match plan.shape.kind {
        tms_engine::models::toy::ToyKind::Linear => "linear",
        tms_engine::models::toy::ToyKind::ReluOutput => "ReLU output",
        tms_engine::models::toy::ToyKind::ReluHidden => "ReLU hidden",
        tms_engine::models::toy::ToyKind::AbsoluteValue => "absolute value",
    };
    format!(
        "{kind}, n = {}, m = {}",
        plan.shape.n_features, plan.shape.n_hidden
    )
}
