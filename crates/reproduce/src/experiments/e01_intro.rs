//! E1 — the intro figure: ReLU output, n = 5, m = 2, I = 0.9^i, ten densities from 1 to 0.05.
//!
//! Paper (experiments.md §5): dense → two orthogonal features, three at ≈ 0; intermediate →
//! antipodal pairs; sparsest → a pentagon, norms a little above 1, D_i ≈ ⅖, negative biases.

use crate::claims::{claim, list};
use crate::figures::{column_arrows, gram_heatmaps, norm_bars};
use crate::toy::{angular_gaps, density_label, model_title, toy_plan, weights, ToyWeights};
use crate::{Analysis, Context, Experiment, ReproduceError, RunRequest, Scale};

/// E1.
pub struct Intro;

/// A feature counts as represented above this norm (learned features sit near 1, dropped near 0).
const REPRESENTED: f64 = 0.5;

impl Experiment for Intro {
    fn id(&self) -> &'static str {
        "E1"
    }

    fn title(&self) -> &'static str {
        "Superposition in the intro model (n = 5, m = 2)"
    }

    fn runs(&self, scale: Scale) -> Vec<RunRequest> {
        // Quick: the same ten densities and steps (weight decay needs them to bring the dropped
        // features to ≈ 0), best of 3 instead of 10.
        vec![RunRequest::scaled("e1", scale, &["train.replicas=3"])]
    }

    fn analyse(&self, context: &Context) -> Result<Analysis, ReproduceError> {
        let run = &context.runs[0];
        let plan = toy_plan("E1", run)?;
        let models = weights("E1", run)?;
        let densities: Vec<f64> = plan.instances.iter().map(|i| i.density).collect();
        let labelled: Vec<(String, &ToyWeights)> = densities
            .iter()
            .map(|&p| density_label(p))
            .zip(models.iter())
            .collect();
        let title = model_title(plan);
        let figures = vec![
            gram_heatmaps(&context.figure_stem("E1", "gram"), &title, &labelled, 5)?,
            norm_bars(&context.figure_stem("E1", "norms"), &title, &labelled, 5)?,
            column_arrows(&context.figure_stem("E1", "arrows"), &title, &labelled, 5)?,
        ];
        let densest = argmax(&densities);
        let sparsest = argmin(&densities);
        let mut claims = Vec::new();

        // Dense: the two most important features get the two dimensions, orthogonally.
        let dense = &models[densest];
        let norms = dense.norms();
        let ok = norms[..2].iter().all(|&v| (v - 1.0).abs() < 0.1)
            && norms[2..].iter().all(|&v| v < 0.1)
            && dense.cosine(0, 1).abs() < 0.1;
        claims.push(claim(
            "E1.dense",
            "Dense features (p = 1): the two most important features are represented, orthogonally; the other three are not learned.",
            format!("‖W_i‖ = {}, cos(W₀, W₁) = {:.3}", list(&norms, 3), dense.cosine(0, 1)),
            "‖W₀‖, ‖W₁‖ within 0.1 of 1; ‖W₂..₄‖ < 0.1; |cos| < 0.1",
            ok,
        ));

        // Intermediate densities: antipodal pairs (cos ≈ −1 between two represented features).
        let mut best = (0usize, 1.0f64);
        for (k, w) in models.iter().enumerate() {
            if k == densest || k == sparsest {
                continue;
            }
            let pairs = antipodal_pairs(w);
            if pairs > best.0 {
                best = (pairs, densities[k]);
            }
        }
        claims.push(claim(
            "E1.antipodal",
            "At intermediate sparsity the model stores features as antipodal pairs.",
            format!("{} antipodal pair(s) at p = {:.3}", best.0, best.1),
            "some intermediate density has ≥ 2 pairs of represented features with cos < −0.9",
            best.0 >= 2,
        ));

        // Sparsest: a pentagon.
        let sparse = &models[sparsest];
        let norms = sparse.norms();
        let dims = sparse.dimensionality();
        let gaps = angular_gaps(sparse, REPRESENTED);
        let represented = norms.iter().filter(|&&v| v > REPRESENTED).count();
        claims.push(claim(
            "E1.pentagon",
            "Sparsest (p = 0.05): all five features are represented as a pentagon, each with feature dimensionality ⅖.",
            format!("{represented} represented; D_i = {}; angles between neighbours {}°", list(&dims, 3), list(&gaps, 1)),
            // ⅖ ± 0.05 separates the pentagon from the neighbouring polytope values ½ and ⅓;
            // ±12° around 72° separates five evenly spread features from any 4+1 arrangement
            // (whose gaps would include 90° or ≤ 45°).
            "5 represented, every |D_i − 0.4| < 0.05, every angle within 12° of 72°",
            represented == 5 && dims.iter().all(|d| (d - 0.4).abs() < 0.05) && gaps.len() == 5 && gaps.iter().all(|g| (g - 72.0).abs() < 12.0),
        ));
        let bias = &sparse.bias;
        claims.push(claim(
            "E1.pentagon_norms_and_bias",
            "In the pentagon the norms are a little above 1 and the biases are negative (they filter the interference).",
            format!("‖W_i‖ = {}, b = {}", list(&norms, 3), list(bias, 3)),
            "1 < ‖W_i‖ < 1.3 and b_i < 0 for every feature",
            norms.iter().all(|&v| v > 1.0 && v < 1.3) && bias.iter().all(|&b| b < 0.0),
        ));
        let represented_counts: Vec<usize> = models
            .iter()
            .map(|w| w.norms().iter().filter(|&&v| v > REPRESENTED).count())
            .collect();
        Ok(Analysis {
            settings: Vec::new(),
            paragraphs: vec![format!(
                "Represented features (‖W_i‖ > {REPRESENTED}) from dense to sparse: {:?}. Superposition appears as density falls: first antipodal pairs, then the pentagon.",
                represented_counts
            )],
            figures,
            claims,
        })
    }
}

/// Pairs (i, j) of represented features with cos(W_i, W_j) < −0.9.
fn antipodal_pairs(w: &ToyWeights) -> usize {
    let norms = w.norms();
    let mut count = 0;
    for i in 0..w.n {
        for j in i + 1..w.n {
            if norms[i] > REPRESENTED && norms[j] > REPRESENTED && w.cosine(i, j) < -0.9 {
                count += 1;
            }
        }
    }
    count
}

/// Index of the largest value.
pub fn argmax(v: &[f64]) -> usize {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0)
}

/// Index of the smallest value.
pub fn argmin(v: &[f64]) -> usize {
    (0..v.len())
        .min_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0)
}
