//! S6 — illusory correlations (followups.md §F1; Saxe et al. 2019): during learning the network
//! predicts properties that the broad categories suggest but the item lacks, then unlearns them.
//! ŷ_{m,i}(t) = Σ_α a_α(t)·u_{α,m}·v_{α,i} rises while the broad modes switch on and falls when the
//! fine mode does.

// Analyses return `ReproduceError`, which carries a config error with its origin, key and hint;
// it happens at most once per experiment, so its size on the error path does not matter.
#![allow(clippy::result_large_err)]

use crate::claims::{claim, num};
use crate::deep_linear::{aligned_start, analysis_error, deep_plan, History};
use crate::figures::figure_ref;
use crate::{Analysis, Context, Experiment, ReproduceError, RunRequest, Scale};
use tms_engine::theory::deep_linear as theory;
use tms_report::{LinePlot, RefLine, Series};

/// S6.
pub struct Illusory;

impl Experiment for Illusory {
    fn id(&self) -> &'static str {
        "S6"
    }

    fn title(&self) -> &'static str {
        "Illusory correlations: predictions that rise, then fall"
    }

    fn runs(&self, scale: Scale) -> Vec<RunRequest> {
        vec![RunRequest::scaled("s6-illusory", scale, &[])]
    }

    fn analyse(&self, context: &Context) -> Result<Analysis, ReproduceError> {
        let id = "S6";
        let run = &context.runs[0];
        let plan = deep_plan(id, run)?;
        let outcome = &run.outcomes[0];
        let a0 = aligned_start(id, plan, outcome.index)?;
        let tau = 1.0 / run.plan.train.learning_rate;
        let task = plan.task(outcome.index);
        let modes = task.modes();
        let s = &modes.singular_values;
        let history = History::of(run, outcome);
        let mut claims = Vec::new();
        let mut series = Vec::new();
        let mut any_non_monotone = false;
        let mut measured_text = Vec::new();
        let mut worst_theory = 0.0f64;
        let mut theory_bound = f64::INFINITY;
        for (k, p) in plan.predictions.iter().enumerate() {
            let (m, i) = (p.property, p.item);
            let label = format!("ŷ({}, {})", plan.data.properties[m], plan.data.items[i]);
            let y = history.column(id, &format!("prediction_{m}_{i}"))?;
            // Closed form: Σ_α a_α(t) u_{α,m} v_{α,i}. Modes with equal s (the s = 1 pair) carry
            // equal a(t) from the aligned start, so the sum does not depend on the basis of their plane.
            let weights: Vec<f64> = (0..s.len())
                .map(|a| modes.u[(m, a)] * modes.v[(i, a)])
                .collect();
            let closed = |t: f64| -> f64 {
                (0..s.len())
                    .map(|a| theory::balanced_mode_strength(s[a], a0, tau, t) * weights[a])
                    .sum()
            };
            let th: Vec<f64> = history.steps.iter().map(|&t| closed(t)).collect();
            // The theory's peak height above the end value: the size of the effect to detect.
            let peak_th = th.iter().cloned().fold(f64::MIN, f64::max);
            let end_th = *th.last().unwrap_or(&0.0);
            let height = peak_th - end_th.max(th[0]);
            let peak = y.iter().cloned().fold(f64::MIN, f64::max);
            let at = history.steps[y.iter().position(|&v| v == peak).unwrap_or(0)];
            let (first, last) = (y[0], *y.last().unwrap_or(&0.0));
            let rises_falls = peak - first >= height / 2.0 && peak - last >= height / 2.0;
            any_non_monotone |= rises_falls;
            measured_text.push(format!(
                "{label}: {} at t = 0, peak {} at t = {at:.0}, {} at the end (target {}); closed-form peak height {}",
                num(first),
                num(peak),
                num(last),
                plan.data.targets[(m, i)],
                num(height)
            ));
            for (a, b) in y.iter().zip(&th) {
                worst_theory = worst_theory.max((a - b).abs());
            }
            // S1's bound |a_α − a_α^theory| ≤ 0.05·s_α, propagated through the weights.
            theory_bound =
                theory_bound.min(0.05 * (0..s.len()).map(|a| s[a] * weights[a].abs()).sum::<f64>());
            series.push(Series {
                name: format!("{label}, measured"),
                x: history.steps.clone(),
                y: y.to_vec(),
                dashed: false,
                colour: Some(k),
            });
            series.push(Series {
                name: format!("{label}, Σ_α a_α(t)u_αm v_αi"),
                x: history.steps.clone(),
                y: th,
                dashed: true,
                colour: Some(k),
            });
        }
        if plan.predictions.is_empty() {
            return Err(analysis_error(id, "s6-illusory records no predictions"));
        }
        claims.push(claim(
            "S6.non_monotone",
            "For some item–property pair the prediction ŷ_{m,i}(t) rises, then falls (an illusory correlation learned and unlearned).",
            measured_text.join("; "),
            // Half the closed form's own peak height: a monotone curve has peak − start = 0 or
            // peak − end = 0; half the predicted height leaves room for S1's 5% trajectory bound.
            "peak − start and peak − end both ≥ ½ the closed-form peak height, for at least one pair",
            any_non_monotone,
        ));
        claims.push(claim(
            "S6.closed_form",
            "The prediction follows Σ_α a_α(t)·u_{α,m}·v_{α,i} with the closed-form a_α(t).",
            format!("max_t |ŷ − Σ_α a_α u_αm v_αi| = {}", num(worst_theory)),
            format!(
                "< 0.05·Σ_α s_α|u_αm v_αi| = {} (S1's bound on each a_α)",
                num(theory_bound)
            ),
            worst_theory < theory_bound,
        ));
        let fig = tms_report::line_plot(
            &context.figure_stem(id, "illusory"),
            &LinePlot {
                title: "Illusory correlations, 4 items × 7 properties, N₂ = 4, aligned start"
                    .into(),
                x_label: "step t".into(),
                y_label: "prediction ŷ_{m,i}(t)".into(),
                series,
                ref_lines: vec![RefLine {
                    y: 0.0,
                    label: "target 0".into(),
                }],
                ..Default::default()
            },
        )?;
        Ok(Analysis {
            settings: Vec::new(),
            paragraphs: vec!["Salmon are animals, and while only the animal/plant distinction is known, animals fly a little; roses are plants, and plants have leaves. When the bird/fish and tree/flower modes switch on, both predictions return to the data's 0.".into()],
            figures: vec![figure_ref(fig, "Predictions for property–item pairs whose target is 0: measured (solid) and the closed form (dashed).")],
            claims,
        })
    }
}
