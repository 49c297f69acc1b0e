//! E6 — feature dimensionality D_i of the uniform models of E5 (the same run, trained once).
//!
//! Paper (experiments.md §3, §5): the D_i of the features of these models are not spread evenly:
//! they cluster at the fractions of the tegum-factor polytopes — ¾ (tetrahedron), ⅔ (triangle),
//! ½ (digon, square, octahedron), ⅖ (pentagon), ⅜ (square antiprism), ⅓ (hexagon) — and at 0
//! (features not learned); dense features sit at 1 (a dimension of their own). The factors are tight
//! frames, so the D_i of a model add up to its m dimensions.

use crate::claims::{claim, list};
use crate::experiments::e05_uniform::{uniform_models, uniform_run, UniformModel};
use crate::figures::figure_ref;
use crate::{Analysis, Context, Experiment, ReproduceError, RunRequest, Scale};
use tms_engine::theory::superposition::POLYTOPE_FRACTIONS;
use tms_report::{LinePlot, RefLine, ScatterOverlay, Series};

/// E6.
pub struct Dimensionality;

/// "Within a small distance" of a fraction: ±0.02 is below half the gap between neighbouring
/// levels other than ⅜/⅖ (≥ 0.042), so a point is near at most one level, or two adjacent ones
/// among ⅓, ⅜, ⅖.
const NEAR: f64 = 0.02;
/// Represented: ‖W_i‖ above this (learned features sit near 1, dropped ones near 0).
const REPRESENTED: f64 = 0.5;

/// The levels D_i clusters at: the polytope fractions, 1 (a dimension of its own) and 0 (dropped).
fn levels() -> Vec<f64> {
    let mut v: Vec<f64> = POLYTOPE_FRACTIONS.iter().map(|(_, d)| *d).collect();
    v.push(1.0);
    v.push(0.0);
    v
}

/// Distance of `d` to the nearest level.
fn distance_to_level(d: f64) -> f64 {
    levels()
        .iter()
        .map(|l| (d - l).abs())
        .fold(f64::INFINITY, f64::min)
}

/// The share of [0, 1] within `NEAR` of a level among `levels`: what D_i spread evenly would score.
fn chance_share(levels: &[f64]) -> f64 {
    // Fine grid: exact enough for a reference value, and simple.
    let steps = 100_000;
    let hits = (0..=steps)
        .filter(|&k| {
            let d = k as f64 / steps as f64;
            levels.iter().any(|l| (d - l).abs() < NEAR)
        })
        .count();
    hits as f64 / (steps + 1) as f64
}

impl Experiment for Dimensionality {
    fn id(&self) -> &'static str {
        "E6"
    }

    fn title(&self) -> &'static str {
        "Feature dimensionality clusters at polytope fractions"
    }

    fn runs(&self, scale: Scale) -> Vec<RunRequest> {
        vec![uniform_run(scale)]
    }

    fn analyse(&self, context: &Context) -> Result<Analysis, ReproduceError> {
        let (title, models) = uniform_models("E6", context)?;
        let m = models.first().map(|u| u.weights.m).unwrap_or(0);
        let x: Vec<f64> = models.iter().map(UniformModel::inverse_density).collect();
        let d_star: Vec<f64> = models
            .iter()
            .map(|u| u.weights.dimensions_per_feature())
            .collect();
        let mut scatter = ScatterOverlay {
            name: "D_i (every feature)".into(),
            ..Default::default()
        };
        let (mut all, mut all_near, mut rep, mut rep_near) = (0usize, 0usize, 0usize, 0usize);
        let mut polytope_models = 0;
        let mut sums = Vec::new();
        for u in &models {
            let dims = u.weights.dimensionality();
            let norms = u.weights.norms();
            // D* is the mean D_i of the represented features (unit norms, Σ D_i = m), so a model
            // with D* < ⅓ cannot be made of the paper's polytopes, whose fractions are all ≥ ⅓:
            // the clustering claim is checked on the models with D* ≥ ⅓ − NEAR.
            let in_scope = u.weights.dimensions_per_feature() >= 1.0 / 3.0 - NEAR;
            polytope_models += in_scope as usize;
            for (d, norm) in dims.iter().zip(&norms) {
                scatter.x.push(u.inverse_density());
                scatter.y.push(*d);
                if !in_scope {
                    continue;
                }
                let near = distance_to_level(*d) < NEAR;
                all += 1;
                all_near += near as usize;
                if *norm > REPRESENTED {
                    rep += 1;
                    rep_near += near as usize;
                }
            }
            sums.push(dims.iter().sum::<f64>());
        }
        let mut ref_lines: Vec<RefLine> = POLYTOPE_FRACTIONS
            .iter()
            .map(|(name, d)| RefLine {
                y: *d,
                label: format!("{} ({name})", fraction_label(*d)),
            })
            .collect();
        ref_lines.push(RefLine {
            y: 1.0,
            label: "1 (own dimension)".into(),
        });
        let plot = LinePlot {
            title: format!("{title}, I = 1: feature dimensionality"),
            x_label: "1/(1 − S) = 1/p".into(),
            y_label: "D_i, and D* (line)".into(),
            series: vec![Series {
                name: "D* = m/‖W‖²_F".into(),
                x: x.clone(),
                y: d_star.clone(),
                ..Default::default()
            }],
            ref_lines,
            scatter: vec![scatter],
            log_x: true,
            y_range: Some((-0.02, 1.1)),
            size: (820, 520),
            ..Default::default()
        };
        let figures = vec![figure_ref(
            tms_report::line_plot(&context.figure_stem("E6", "feature-dimensionality"), &plot)?,
            format!("{title}: the feature dimensionality D_i of every feature (points) over the D* curve, against 1/(1 − S) on a log axis; grey lines at the polytope fractions."),
        )];

        let all_share = all_near as f64 / all.max(1) as f64;
        let rep_share = rep_near as f64 / rep.max(1) as f64;
        // Chance for the represented features: the levels they can take (0 is excluded by ‖W_i‖ > ½).
        let nonzero: Vec<f64> = levels().into_iter().filter(|&l| l > 0.0).collect();
        let chance = chance_share(&nonzero);
        let mut claims = Vec::new();
        claims.push(claim(
            "E6.polytope_fractions",
            "Feature dimensionalities cluster at the polytope fractions ¾, ⅔, ½, ⅖, ⅜ (⅓) and at 0: features organise into tegum products of small polytopes.",
            format!(
                "over the {polytope_models} models with D* ≥ ⅓: {:.1}% of all D_i ({all_near}/{all}) within {NEAR} of a fraction, 1 or 0; {:.1}% of the represented features' D_i ({rep_near}/{rep}); D_i spread evenly over [0, 1] would score {:.1}%",
                100.0 * all_share,
                100.0 * rep_share,
                100.0 * chance
            ),
            // "Cluster" read as: most D_i of the represented features (dropped ones are trivially at
            // 0) sit at a level, and at least twice as often as evenly spread values would.
            format!("over the models with D* ≥ ⅓ (at least 3): > 50% of the represented features within {NEAR} of a level, and ≥ 2× the even-spread share"),
            polytope_models >= 3 && rep_share > 0.5 && rep_share >= 2.0 * chance,
        ));
        claims.push(claim(
            "E6.tight_frames",
            "The features form tight frames in orthogonal subspaces (tegum products), so Σ_i D_i equals the m dimensions — also in the sparsest models, where one frame of many features spans all m dimensions and every D_i ≈ D*.",
            format!("Σ_i D_i / m from dense to sparse: {}", list(&sums.iter().map(|s| s / m as f64).collect::<Vec<_>>(), 3)),
            // Σ D_i ≤ rank W ≤ m always; 0.9 m leaves room for a few features caught mid-transition.
            "Σ_i D_i ≥ 0.9 m at every density",
            sums.iter().all(|&s| s >= 0.9 * m as f64),
        ));
        // On the D* plateau (E5), the represented features are digons.
        let plateau: Vec<&UniformModel> = models
            .iter()
            .filter(|u| (u.weights.dimensions_per_feature() - 0.5).abs() < 0.05)
            .collect();
        let (mut n_rep, mut n_half) = (0usize, 0usize);
        for u in &plateau {
            for (d, norm) in u.weights.dimensionality().iter().zip(u.weights.norms()) {
                if norm > REPRESENTED {
                    n_rep += 1;
                    n_half += ((d - 0.5).abs() < NEAR) as usize;
                }
            }
        }
        let share = n_half as f64 / n_rep.max(1) as f64;
        claims.push(claim(
            "E6.digons_on_plateau",
            "Where D* sticks at ½, the represented features are antipodal pairs (digons): D_i = ½.",
            format!(
                "{} models with |D* − ½| < 0.05; {n_half}/{n_rep} represented features with |D_i − ½| < {NEAR} ({:.1}%)",
                plateau.len(),
                100.0 * share
            ),
            // "The" represented features: a large majority, allowing a few in other polytopes.
            "at least one plateau model, and ≥ 80% of its represented features at ½",
            !plateau.is_empty() && share >= 0.8,
        ));
        Ok(Analysis {
            settings: Vec::new(),
            paragraphs: vec![format!(
                "Levels: the polytope fractions {}, plus 1 and 0; \"near\" means within {NEAR}.",
                list(&levels(), 3)
            )],
            figures,
            claims,
        })
    }
}

/// ¾, ⅔, ½, ⅖, ⅜, ⅓ as text (a decimal otherwise).
pub(crate) fn fraction_label(d: f64) -> String {
    let known = [
        (0.75, "¾"),
        (2.0 / 3.0, "⅔"),
        (0.5, "½"),
        (0.4, "⅖"),
        (0.375, "⅜"),
        (1.0 / 3.0, "⅓"),
    ];
    known
        .iter()
        .find(|(v, _)| (v - d).abs() < 1e-9)
        .map(|(_, s)| s.to_string())
        .unwrap_or_else(|| format!("{d:.3}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_share_of_one_level_is_its_band() {
        assert!((chance_share(&[0.5]) - 2.0 * NEAR).abs() < 1e-3);
        assert!((chance_share(&[1.0]) - NEAR).abs() < 1e-3);
    }

    #[test]
    fn levels_include_the_polytopes_one_and_zero() {
        assert!(distance_to_level(0.4) < 1e-12);
        assert!(distance_to_level(0.0) < 1e-12);
        assert!(distance_to_level(1.0) < 1e-12);
        assert!(distance_to_level(0.58) > 0.05);
    }
}
