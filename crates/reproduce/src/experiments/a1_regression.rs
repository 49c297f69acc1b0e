//! A1 — bilinear score regression (followups.md §F2): does an attention head trained on pairs of
//! vectors make the singular vectors of W_QK the planted concepts, and at what speed?
//!
//! x, y ~ N(0, I₆), target xᵀ M y with M = Σ s_k u_k v_kᵀ, s = (3, 2, 1); one factored head with
//! d_head = 6. The population loss is ½‖W_QK − M‖²_F, F1's two-layer deep linear network with
//! Y := M, so from the aligned start a_k(0) = a₀ each strength follows the closed form
//! a(t) = s / (1 + (s/a₀ − 1) e^{−2st/τ}), τ = 1/λ (`tms_engine::theory::deep_linear`). Spec:
//! t½ ≈ 172, 248, 461 steps for λ = 0.01, a₀ = 1e-4; within 2% with the population gradient, within
//! 10% and ordered with minibatches of 32 (measured there: 182, 264, 464).

// ReproduceError carries a ConfigError (origin, key, expected, found, hint); it is returned once per
// analysis, off any hot path, so its size does not matter (as in tms-experiments' lib.rs).
#![allow(clippy::result_large_err)]

use super::attention_common::{
    attention_plan, cosine_heatmap, half_times, history, number, numbers, strength_plot, times,
};
use crate::claims::{claim, list};
use crate::{Analysis, CompletedRun, Context, Experiment, ReproduceError, RunRequest, Scale};
use tms_engine::theory::deep_linear::{balanced_mode_strength, half_learning_time};
use tms_experiments::families::attention::Attention;

/// A1.
pub struct Regression;

/// Learning rate λ and aligned start a₀ of a run (from its resolved config).
pub fn rate_and_start(run: &CompletedRun) -> (f64, f64) {
    let lr = run.plan.train.learning_rate;
    let a0 = run
        .plan
        .resolved
        .section::<Attention>()
        .and_then(|a| a.initial_strength)
        .unwrap_or(f64::NAN);
    (lr, a0)
}

/// Planted strengths of a run.
pub fn planted(run: &CompletedRun) -> Vec<f64> {
    run.plan
        .resolved
        .section::<Attention>()
        .and_then(|a| a.strengths.clone())
        .unwrap_or_default()
}

/// Smallest |cos| over concepts and sides of each concept's best singular pair, and whether every
/// concept's best pair is the singular pair of its own rank (σ order = strength order).
pub fn alignment(metrics: &serde_json::Value) -> (f64, bool) {
    let pairs = metrics["alignment"].as_array().cloned().unwrap_or_default();
    let worst = pairs
        .iter()
        .flat_map(|a| [number(&a["left_cos"]), number(&a["right_cos"])])
        .fold(f64::INFINITY, f64::min);
    let ordered = pairs
        .iter()
        .enumerate()
        .all(|(k, a)| a["singular_index"].as_u64() == Some(k as u64));
    (if pairs.is_empty() { f64::NAN } else { worst }, ordered)
}

impl Experiment for Regression {
    fn id(&self) -> &'static str {
        "A1"
    }

    fn title(&self) -> &'static str {
        "An attention head on pairs of vectors: strengths follow the deep-linear closed form"
    }

    fn runs(&self, scale: Scale) -> Vec<RunRequest> {
        // Both runs take well under a second: the quick scale is the full one.
        vec![
            RunRequest::scaled("a1-regression", scale, &[]),
            RunRequest::scaled("a1-minibatch", scale, &[]),
        ]
    }

    fn analyse(&self, context: &Context) -> Result<Analysis, ReproduceError> {
        let (population, minibatch) = (&context.runs[0], &context.runs[1]);
        attention_plan("A1", population)?;
        let plan_mb = attention_plan("A1", minibatch)?;
        let strengths = planted(population);
        let (lr, a0) = rate_and_start(population);
        let tau = 1.0 / lr;
        let theory: Vec<f64> = strengths
            .iter()
            .map(|&s| half_learning_time(s, a0, tau))
            .collect();
        let mut claims = Vec::new();

        // Population gradient: within 2% of the closed form.
        let outcome = &population.outcomes[0];
        let measured = half_times("A1", population, outcome, &strengths)?;
        let errors: Vec<f64> = measured
            .iter()
            .zip(&theory)
            .map(|(m, t)| m.map(|m| (m - t).abs() / t).unwrap_or(f64::INFINITY))
            .collect();
        claims.push(claim(
            "A1.population_half_times",
            "With the exact population gradient the strengths follow F1's closed form with τ = 1/λ: t½ = (τ/2s)·ln(s/a₀ − 1) ≈ 172, 248, 461 steps for s = 3, 2, 1.",
            format!("t½ = {} vs closed form {}; relative errors {}", times(&measured), list(&theory, 1), list(&errors, 4)),
            // Gradient descent multiplies each factor by (1 + λ(s − a)) per step where the flow has
            // e^{λ(s − a)}: the discrete log-growth rate is ln(1 + λs)/(λs) ≈ 1 − λs/2 of the
            // continuous one, so t½ is up to λs/2 = 1.5% (s = 3) longer. 2% is the spec's bound.
            "every |t½ − closed form| / closed form < 2%",
            errors.iter().all(|&e| e < 0.02),
        ));

        // The whole trajectory, not just one level.
        let mut worst = 0.0f64;
        for (k, &s) in strengths.iter().enumerate() {
            let col =
                super::attention_common::column("A1", population, &format!("strength_{}", k + 1))?;
            for row in history(outcome) {
                let exact = balanced_mode_strength(s, a0, tau, row.step as f64);
                worst = worst.max((row.observables[col] - exact).abs() / s);
            }
        }
        claims.push(claim(
            "A1.population_trajectory",
            "The whole curve a_k(t), not only its half time, is the closed-form sigmoid.",
            format!("max_t |a_k(t) − a_closed(t)| / s_k = {worst:.4}"),
            // The discrete-time lag is ≤ 1.5% of t½ (above): 2.6 steps at s = 3, where the sigmoid's
            // steepest slope is s²/(2τ) = 0.045 per step, i.e. 0.12 = 3.9% of s. 5% covers it; a
            // different law (exponential, wrong rate) misses by tens of percent.
            "< 5% of s_k at every step",
            worst < 0.05,
        ));

        // Minibatch SGD: within 10% and ordered, every draw.
        let mut rows = Vec::new();
        let mut ok = true;
        for o in &minibatch.outcomes {
            let t = half_times("A1", minibatch, o, &strengths)?;
            let within = t
                .iter()
                .zip(&theory)
                .all(|(m, th)| m.is_some_and(|m| (m - th).abs() / th < 0.10));
            let ordered = t
                .windows(2)
                .all(|w| matches!((w[0], w[1]), (Some(a), Some(b)) if a < b));
            ok &= within && ordered;
            rows.push(times(&t));
        }
        claims.push(claim(
            "A1.minibatch_half_times",
            "With minibatches of 32 pairs the half times stay within 10% of the closed form and in the order of the strengths (the spec measured 182, 264, 464).",
            format!("{} draws: t½ = {}", rows.len(), rows.join(", ")),
            "every draw: each t½ within 10% of the closed form and t½(s=3) < t½(s=2) < t½(s=1)",
            ok && !rows.is_empty(),
        ));

        // Singular vectors = concepts, in every run and draw.
        let mut worst_cos = f64::INFINITY;
        let mut all_ordered = true;
        let mut worst_share = f64::INFINITY;
        for o in population.outcomes.iter().chain(&minibatch.outcomes) {
            let (w, ordered) = alignment(&o.metrics);
            worst_cos = worst_cos.min(w);
            all_ordered &= ordered;
            worst_share = worst_share.min(number(&o.metrics["planted_share"]));
        }
        claims.push(claim(
            "A1.singular_vectors",
            "The singular vectors of the trained W_QK are the planted concepts: the k-th singular pair is (u_k, v_k).",
            format!("smallest |cos| between a concept and its singular vector {worst_cos:.6}; k-th pair matches concept k: {all_ordered}; smallest planted share of ‖W_QK‖²_F {worst_share:.6}"),
            // Wedin: sin∠ ≤ ‖W_QK − M‖ / gap, with gap ≥ 1 between the planted strengths (and to 0);
            // |cos| ≥ 0.99 (8°) allows a residual of 0.14, far above a converged fit, far below one
            // that mixes concepts.
            "|cos| ≥ 0.99 on both sides for every concept, k-th pair = concept k, share ≥ 0.99",
            worst_cos >= 0.99 && all_ordered && worst_share >= 0.99,
        ));

        let closed = move |s: f64, t: f64| balanced_mode_strength(s, a0, tau, t);
        let figures = vec![
            strength_plot(
                context,
                "A1",
                "strengths",
                "A1: strengths a_k(t), population gradient (solid) and closed form (dashed)",
                population,
                outcome,
                &strengths,
                Some(&closed),
                &format!("Factored head, d = d_head = 6, λ = {lr}, aligned start a₀ = {a0}: each concept strength a_k = u_kᵀ W_QK v_k (solid) against F1's closed form with τ = 1/λ (dashed). Stronger concepts are learned first."),
            )?,
            strength_plot(
                context,
                "A1",
                "strengths-minibatch",
                "A1: strengths a_k(t), minibatch SGD, B = 32 (draw 0)",
                minibatch,
                &minibatch.outcomes[0],
                &strengths,
                Some(&closed),
                "The same head trained by minibatch SGD on 32 fresh Gaussian pairs per step (solid), against the closed form (dashed).",
            )?,
            cosine_heatmap(
                context,
                "A1",
                "cosines",
                "A1: planted concepts vs singular vectors of W_QK (population gradient)",
                &outcome.metrics,
                &strengths,
            )?,
        ];
        let finals = numbers(&outcome.metrics["strengths"]);
        Ok(Analysis {
            settings: vec![(
                "minibatch draws".into(),
                format!("{} (concepts, start and data independent)", plan_mb.instances.len()),
            )],
            paragraphs: vec![format!(
                "Yes — trained on pairs (x, y) scored by xᵀMy, the head's W_QK becomes M: final strengths {} for planted {}, its singular vectors are the planted u_k, v_k, and the order and speed in which it learns them is the deep-linear network's: stronger concepts first, t½ ∝ 1/s.",
                list(&finals, 4),
                list(&strengths, 1)
            )],
            figures,
            claims,
        })
    }
}
