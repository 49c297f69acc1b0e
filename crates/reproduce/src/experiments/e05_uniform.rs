//! E5 — uniform superposition: dimensions per feature D* = m/‖W‖²_F against 1/(1 − S) (= 1/p) for
//! ReLU-output models with n = 400 features, m = 30 dimensions and equal importance.
//!
//! Paper (experiments.md §5, "The geometry of superposition"): D* ≈ 1 when features are dense (no
//! superposition: ‖W‖²_F = m), then D* falls and *sticks* at ½ over a range of
//! densities (antipodal pairs, "digons"), and falls below ½ when features are sparser still.
//! E6 and E10 analyse the same models (the same run request, trained once).
#![allow(clippy::result_large_err)]

use crate::claims::{claim, list};
use crate::figures::figure_ref;
use crate::toy::{model_title, toy_plan, weights, ToyWeights};
use crate::{Analysis, Context, Experiment, ReproduceError, RunRequest, Scale};
use tms_engine::data::sparse::FeatureDistribution;
use tms_report::{LinePlot, RefLine, Series};

/// E5.
pub struct Uniform;

/// The run shared by E5, E6 and E10: identical requests, so the models are trained once.
///
/// Quick scale: the paper's n = 400, m = 30 would cost most of CI's budget, so `--quick` trains the
/// reference notebook's smaller model (n = 200, m = 20; experiments.md §5) on the same density grid,
/// with the same 10 000 steps: the 1 → ½ transition is slow, and at 4 000 steps the models just
/// before and after the plateau had not settled (D* 0.54 and 0.48 beside it, a plateau slope of
/// 0.35 per decade against 0.49 after it). The claims are the same.
pub(crate) fn uniform_run(scale: Scale) -> RunRequest {
    RunRequest::scaled("e5", scale, &["toy.n_features=200", "toy.n_hidden=20"])
}

/// One trained uniform model, read back for E5, E6 and E10.
pub(crate) struct UniformModel {
    /// Density p (= 1 − S).
    pub density: f64,
    /// The weights.
    pub weights: ToyWeights,
    /// The law of the features (for E10's forward passes on sampled data).
    pub distribution: FeatureDistribution,
    /// Importance of each feature.
    pub importance: Vec<f64>,
}

impl UniformModel {
    /// 1/(1 − S) = 1/p: the paper's x axis.
    pub fn inverse_density(&self) -> f64 {
        1.0 / self.density
    }
}

/// The models of the uniform run, in density order (dense first), with the figure title.
pub(crate) fn uniform_models(
    experiment: &str,
    context: &Context,
) -> Result<(String, Vec<UniformModel>), ReproduceError> {
    let run = &context.runs[0];
    let plan = toy_plan(experiment, run)?;
    let mut models: Vec<UniformModel> = plan
        .instances
        .iter()
        .zip(weights(experiment, run)?)
        .map(|(i, weights)| UniformModel {
            density: i.density,
            weights,
            distribution: i.distribution.clone(),
            importance: i.importance.clone(),
        })
        .collect();
    models.sort_by(|a, b| b.density.total_cmp(&a.density));
    Ok((model_title(plan), models))
}

/// Half-width of the band around ½ that counts as the plateau: ±0.05 keeps ⅖ (pentagons, 0.4) and
/// ⅔ (triangles) out, while allowing the few-percent shrinkage of norms that weight decay and the
/// negative biases cause (‖W_i‖ ≈ 1/(1 − b_i), experiments.md §4).
const PLATEAU_BAND: f64 = 0.05;

impl Experiment for Uniform {
    fn id(&self) -> &'static str {
        "E5"
    }

    fn title(&self) -> &'static str {
        "Uniform superposition: dimensions per feature D*"
    }

    fn runs(&self, scale: Scale) -> Vec<RunRequest> {
        vec![uniform_run(scale)]
    }

    fn analyse(&self, context: &Context) -> Result<Analysis, ReproduceError> {
        let (title, models) = uniform_models("E5", context)?;
        let x: Vec<f64> = models.iter().map(UniformModel::inverse_density).collect();
        let d_star: Vec<f64> = models
            .iter()
            .map(|u| u.weights.dimensions_per_feature())
            .collect();
        let m = models.first().map(|u| u.weights.m).unwrap_or(0);
        let plot = LinePlot {
            title: format!("{title}, I = 1: dimensions per feature"),
            x_label: "1/(1 − S) = 1/p".into(),
            y_label: "D* = m / ‖W‖²_F".into(),
            series: vec![Series {
                name: "D*".into(),
                x: x.clone(),
                y: d_star.clone(),
                ..Default::default()
            }],
            ref_lines: vec![
                RefLine {
                    y: 1.0,
                    label: "1".into(),
                },
                RefLine {
                    y: 0.5,
                    label: "½".into(),
                },
            ],
            log_x: true,
            y_range: Some((0.0, 1.1)),
            ..Default::default()
        };
        let figures = vec![figure_ref(
            tms_report::line_plot(&context.figure_stem("E5", "dimensions-per-feature"), &plot)?,
            format!("{title}, equal importance: D* = m/‖W‖²_F against 1/(1 − S) on a log axis. Dense features get a dimension each (D* ≈ 1); D* sticks at ½ over a range of densities, then falls below."),
        )];

        let mut claims = Vec::new();
        claims.push(claim(
            "E5.dense",
            "Dense features: no superposition, the model spends one dimension per feature stored, D* ≈ 1.",
            format!("D* = {:.3} at p = {}", d_star[0], models[0].density),
            // Dense, the optimum is a rank-m projector WᵀW (with equal importances any one: the
            // features need not be axis-aligned), so ‖W‖²_F = m and D* = 1 exactly; 0.1 allows
            // for weight decay and an unfinished optimisation.
            "|D* − 1| < 0.1 at the densest setting",
            (d_star[0] - 1.0).abs() < 0.1,
        ));
        let plateau = longest_run(&d_star, |d| (d - 0.5).abs() < PLATEAU_BAND);
        let (measured, sticky) = match plateau.clone() {
            Some(r) if r.len() >= 2 && r.start > 0 && r.end < d_star.len() => {
                // Slopes per decade of 1/(1 − S): across the plateau, and from its ends to the
                // densities just outside it.
                let slope = |i: usize, j: usize| {
                    (d_star[i] - d_star[j]).abs() / (x[j].log10() - x[i].log10()).abs()
                };
                let inside = slope(r.start, r.end - 1);
                let before = slope(r.start - 1, r.start);
                let after = slope(r.end - 1, r.end);
                (
                    format!(
                        "|D* − ½| < {PLATEAU_BAND} at {} consecutive densities, 1/p from {:.2} to {:.2}; D* there {}; slope per decade {:.2} across the plateau, {:.2} before, {:.2} after",
                        r.len(),
                        x[r.start],
                        x[r.end - 1],
                        list(&d_star[r.clone()], 3),
                        inside,
                        before,
                        after
                    ),
                    inside < 0.5 * before.min(after),
                )
            }
            Some(r) => (
                format!(
                    "|D* − ½| < {PLATEAU_BAND} at {} density(ies) from 1/p = {:.2} (a plateau needs ≥ 2 inside the sweep)",
                    r.len(),
                    x[r.start]
                ),
                false,
            ),
            None => (format!("D* never within {PLATEAU_BAND} of ½"), false),
        };
        claims.push(claim(
            "E5.sticky_half",
            "D* is 'sticky' at ½: it lingers on a plateau at ½ (antipodal pairs) over a range of densities before falling further.",
            measured,
            // A plateau, not a crossing: at least two consecutive grid points in the band, and D*
            // falls there (per decade of 1/(1 − S)) less than half as fast as on either side of it.
            format!("≥ 2 consecutive densities with |D* − ½| < {PLATEAU_BAND}, and the slope across them < ½ × the slope on each side"),
            sticky,
        ));
        let sparsest = *d_star.last().unwrap_or(&f64::NAN);
        let after_plateau = plateau.map(|r| r.end < d_star.len()).unwrap_or(false);
        claims.push(claim(
            "E5.below_half",
            "Sparser than the plateau, D* falls below ½ (more than two features per dimension).",
            format!(
                "D* = {:.3} at the sparsest p = {}",
                sparsest,
                models.last().map(|u| u.density).unwrap_or(f64::NAN)
            ),
            format!("D* < ½ − {PLATEAU_BAND} at the sparsest density, after the plateau"),
            sparsest < 0.5 - PLATEAU_BAND && after_plateau,
        ));
        claims.push(claim(
            "E5.monotone",
            "Features per dimension only grow as features become sparser: D* falls from 1 to below ½ without climbing back.",
            format!("D* from dense to sparse: {}", list(&d_star, 3)),
            // 0.03: the training noise of D* at one density (a few features more or less in 400).
            "D* never rises by more than 0.03 from one density to the next sparser one",
            d_star.windows(2).all(|w| w[1] <= w[0] + 0.03),
        ));
        Ok(Analysis {
            settings: vec![("hidden dimensions m".into(), m.to_string())],
            paragraphs: vec![format!(
                "D* from dense to sparse at 1/p = {}: {}.",
                list(&x, 2),
                list(&d_star, 3)
            )],
            figures,
            claims,
        })
    }
}

/// The longest run of consecutive indices whose value satisfies `inside`.
pub(crate) fn longest_run(
    values: &[f64],
    inside: impl Fn(f64) -> bool,
) -> Option<std::ops::Range<usize>> {
    let mut best: Option<std::ops::Range<usize>> = None;
    let mut start = None;
    for (k, &v) in values.iter().enumerate().chain([(values.len(), &f64::NAN)]) {
        if k < values.len() && inside(v) {
            start.get_or_insert(k);
        } else if let Some(s) = start.take() {
            if best.as_ref().map(|b| k - s > b.len()).unwrap_or(true) {
                best = Some(s..k);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::longest_run;

    #[test]
    fn longest_run_finds_the_widest_band() {
        let v = [1.0, 0.5, 0.9, 0.5, 0.51, 0.49, 0.3];
        assert_eq!(longest_run(&v, |d| (d - 0.5).abs() < 0.05), Some(3..6));
        assert_eq!(longest_run(&v, |d| d > 2.0), None);
        assert_eq!(longest_run(&[0.5, 0.5], |d| d == 0.5), Some(0..2));
    }
}
