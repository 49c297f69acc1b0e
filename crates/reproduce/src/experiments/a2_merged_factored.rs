//! A2 — merged vs factored heads on A1's task (followups.md §F2).
//!
//! Spec: merged (W_QK learned directly): all modes rise together, exponentially — F1's shallow
//! control, a(t) = s(1 − (1 − λ)ᵗ) + a₀(1 − λ)ᵗ exactly for gradient descent; factored: sigmoid
//! stages ordered by s_k; from small init the factored head ends with lower nuclear norm / effective
//! rank. The last statement is examined rather than assumed: the population loss ½‖W_QK − M‖²_F has
//! the unique minimiser M, so both heads *end* at M; what differs is the path, which the claims
//! below compare at matched loss.

// ReproduceError carries a ConfigError (origin, key, expected, found, hint); it is returned once per
// analysis, off any hot path, so its size does not matter (as in tms-experiments' lib.rs).
#![allow(clippy::result_large_err)]

use super::a1_regression::{planted, rate_and_start};
use super::attention_common::{attention_plan, column, half_times, history, numbers, times};
use crate::claims::{claim, list};
use crate::figures::figure_ref;
use crate::{Analysis, CompletedRun, Context, Experiment, ReproduceError, RunRequest, Scale};
use tms_engine::attention_metrics::effective_rank;
use tms_engine::theory::deep_linear::{balanced_mode_strength, shallow_half_time};
use tms_report::{LinePlot, Series};

/// A2.
pub struct MergedFactored;

/// Time for a_k to rise from 10% to 90% of s_k (None if it never does).
fn rise_width(rows: &[tms_engine::train::HistoryRow], col: usize, s: f64) -> Option<f64> {
    let t10 = super::attention_common::crossing(rows, col, 0.1 * s)?;
    let t90 = super::attention_common::crossing(rows, col, 0.9 * s)?;
    Some(t90 - t10)
}

/// (loss, effective rank, nuclear norm) of one history row.
type PathPoint = (f64, f64, f64);

/// The [`PathPoint`] of the first history row at or below each loss level.
fn at_loss(run: &CompletedRun, levels: &[f64]) -> Result<Vec<Option<PathPoint>>, ReproduceError> {
    let rank = column("A2", run, "effective_rank")?;
    let nuclear = column("A2", run, "nuclear_norm")?;
    let rows = history(&run.outcomes[0]);
    Ok(levels
        .iter()
        .map(|&level| {
            rows.iter()
                .find(|r| r.loss <= level)
                .map(|r| (r.loss, r.observables[rank], r.observables[nuclear]))
        })
        .collect())
}

impl Experiment for MergedFactored {
    fn id(&self) -> &'static str {
        "A2"
    }

    fn title(&self) -> &'static str {
        "Merged vs factored heads: exponential together vs ordered sigmoids"
    }

    fn runs(&self, scale: Scale) -> Vec<RunRequest> {
        // All four take well under a second: the quick scale is the full one. `a1-regression` is
        // shared with A1 (trained once).
        [
            "a1-regression",
            "a2-merged",
            "a2-small-factored",
            "a2-small-merged",
        ]
        .iter()
        .map(|p| RunRequest::scaled(p, scale, &[]))
        .collect()
    }

    fn analyse(&self, context: &Context) -> Result<Analysis, ReproduceError> {
        let [factored, merged, small_factored, small_merged] =
            [0, 1, 2, 3].map(|i| &context.runs[i]);
        for run in [factored, merged, small_factored, small_merged] {
            attention_plan("A2", run)?;
        }
        let strengths = planted(factored);
        let (lr, a0) = rate_and_start(merged);
        let mut claims = Vec::new();

        // Merged: together, at the shallow control's common half time.
        let merged_t = half_times("A2", merged, &merged.outcomes[0], &strengths)?;
        let common = shallow_half_time(lr);
        let spread: Vec<f64> = merged_t
            .iter()
            .map(|t| {
                t.map(|t| (t - common).abs() / common)
                    .unwrap_or(f64::INFINITY)
            })
            .collect();
        claims.push(claim(
            "A2.merged_together",
            "Merged head: all modes rise together — each reaches half its strength at the same time ln 2/−ln(1 − λ) whatever s.",
            format!("t½ = {} vs {common:.2} for every mode", times(&merged_t)),
            // The a₀ offset moves t½ by a₀/s ≤ 1e-4 relative; rows every step and linear
            // interpolation on a curve of curvature ~λ per step err well below 1%.
            "every |t½ − ln 2/−ln(1 − λ)| < 1% of it",
            spread.iter().all(|&e| e < 0.01),
        ));
        let mut worst = 0.0f64;
        let rows = history(&merged.outcomes[0]);
        for (k, &s) in strengths.iter().enumerate() {
            let col = column("A2", merged, &format!("strength_{}", k + 1))?;
            for r in rows {
                let decay = (1.0 - lr).powf(r.step as f64);
                let exact = s * (1.0 - decay) + a0 * decay;
                worst = worst.max((r.observables[col] - exact).abs() / s);
            }
        }
        claims.push(claim(
            "A2.merged_exponential",
            "Merged head: each mode rises exponentially, a(t) = s(1 − (1 − λ)ᵗ) + a₀(1 − λ)ᵗ (the shallow control), with no plateau.",
            format!("max_t |a_k(t) − exponential| / s_k = {worst:.2e}"),
            // Exact for gradient descent; f32 rounding of the iterates (1e-7 relative per step)
            // accumulates to ≲ 1e-5 over 1000 steps. Any sigmoid misses by O(1).
            "< 1e-3 at every step",
            worst < 1e-3,
        ));

        // Factored: ordered sigmoid stages, each as narrow as the logistic's τ ln 9 / s.
        let factored_t = half_times("A2", factored, &factored.outcomes[0], &strengths)?;
        let ordered = factored_t
            .windows(2)
            .all(|w| matches!((w[0], w[1]), (Some(a), Some(b)) if a < b));
        let tau = 1.0 / lr;
        let frows = history(&factored.outcomes[0]);
        let mut widths = Vec::new();
        let mut merged_widths = Vec::new();
        let mut ok = ordered;
        for (k, &s) in strengths.iter().enumerate() {
            let col = column("A2", factored, &format!("strength_{}", k + 1))?;
            let w = rise_width(frows, col, s);
            let theory = tau * 9f64.ln() / s;
            ok &= w.is_some_and(|w| (w - theory).abs() / theory < 0.05);
            widths.push(w.unwrap_or(f64::NAN));
            let mcol = column("A2", merged, &format!("strength_{}", k + 1))?;
            merged_widths.push(rise_width(rows, mcol, s).unwrap_or(f64::NAN));
        }
        let logistic: Vec<f64> = strengths.iter().map(|s| tau * 9f64.ln() / s).collect();
        claims.push(claim(
            "A2.factored_ordered_sigmoids",
            "Factored head: sigmoid stages ordered by s_k — a plateau, then a rise whose width shrinks as 1/s (the logistic's τ ln 9 / s from 10% to 90%), strongest first.",
            format!(
                "t½ = {}; 10→90% widths {} vs logistic {}; the merged head's widths {} (the same for every s)",
                times(&factored_t),
                list(&widths, 1),
                list(&logistic, 1),
                list(&merged_widths, 1)
            ),
            // The discrete-time rate is (1 − λs/2) of the flow's: ≤ 1.5% wider at s = 3; 5% leaves
            // room for interpolating two levels, while the merged head's width (≈ 219 for every s)
            // is off by 200% at s = 3.
            "t½ strictly increasing as s decreases, and every width within 5% of τ ln 9 / s",
            ok,
        ));

        // From small random starts: the factored head's path is low-rank at matched loss.
        let loss0 = 0.5 * strengths.iter().map(|s| s * s).sum::<f64>();
        let fractions = [0.5, 0.25, 0.125, 0.0625];
        let levels: Vec<f64> = fractions.iter().map(|f| f * loss0).collect();
        let f_at = at_loss(small_factored, &levels)?;
        let m_at = at_loss(small_merged, &levels)?;
        let mut lower = true;
        let mut cells = Vec::new();
        for (k, f) in fractions.iter().enumerate() {
            match (f_at[k], m_at[k]) {
                (Some(a), Some(b)) => {
                    lower &= a.1 < b.1;
                    cells.push(format!(
                        "L/L₀ = {f}: erank {:.3} vs {:.3}, ‖W‖_* {:.3} vs {:.3}",
                        a.1, b.1, a.2, b.2
                    ));
                }
                _ => {
                    lower = false;
                    cells.push(format!("L/L₀ = {f}: not reached"));
                }
            }
        }
        claims.push(claim(
            "A2.low_rank_path",
            "From a small random start the factored head learns the concepts one at a time, so at the same loss its W_QK has a lower effective rank than the merged head's (which is ∝ M at every loss).",
            format!("factored vs merged at matched loss — {}", cells.join("; ")),
            // Both runs are deterministic (population gradient); a strict inequality at every level.
            "effective rank lower for the factored head at every level L/L₀ ∈ {1/2, 1/4, 1/8, 1/16}",
            lower,
        ));

        // The end state: both at M (the statement of the spec examined).
        let sum: f64 = strengths.iter().sum();
        let m_rank = effective_rank(&strengths);
        let fm = &small_factored.outcomes[0].metrics;
        let mm = &small_merged.outcomes[0].metrics;
        let end = |m: &serde_json::Value| {
            (
                m["nuclear_norm"].as_f64().unwrap_or(f64::NAN),
                m["effective_rank"].as_f64().unwrap_or(f64::NAN),
            )
        };
        let (fn_, fr) = end(fm);
        let (mn, mr) = end(mm);
        let close = |v: f64, target: f64| (v - target).abs() < 0.01 * target;
        claims.push(claim(
            "A2.same_end",
            "Spec: from small init the factored head ends with lower nuclear norm / effective rank. Examined: ½‖W_QK − M‖²_F has the unique minimiser M, so both heads end at M's nuclear norm Σs and effective rank; the factored head's advantage is its path (A2.low_rank_path), not its end.",
            format!("end: factored ‖W‖_* = {fn_:.4}, erank = {fr:.4}; merged ‖W‖_* = {mn:.4}, erank = {mr:.4}; M: {sum:.4}, {m_rank:.4}"),
            // The factored head keeps its start's part outside the planted subspace (its gradient is
            // proportional to itself: ~d·std² ≈ 6e-4 of nuclear norm, 1e-4 relative, which raises the
            // entropy of the normalised spectrum by ~1e-3); 1% bounds both with margin, while a
            // head missing a concept would be off by ≥ 17% (1/6 of the nuclear norm).
            "both heads' nuclear norm and effective rank within 1% of M's",
            close(fn_, sum) && close(mn, sum) && close(fr, m_rank) && close(mr, m_rank),
        ));

        // Figures.
        let mut series = Vec::new();
        for (run, label, dashed_theory) in [(factored, "factored", true), (merged, "merged", false)]
        {
            let rows = history(&run.outcomes[0]);
            let steps: Vec<f64> = rows.iter().map(|r| r.step as f64).collect();
            for (k, &s) in strengths.iter().enumerate() {
                let col = column("A2", run, &format!("strength_{}", k + 1))?;
                series.push(Series {
                    name: format!("{label}, s = {s}"),
                    x: steps.clone(),
                    y: rows.iter().map(|r| r.observables[col] / s).collect(),
                    dashed: false,
                    colour: Some(k + if dashed_theory { 0 } else { 3 }),
                });
                let theory: Vec<f64> = steps
                    .iter()
                    .map(|&t| {
                        if dashed_theory {
                            balanced_mode_strength(s, a0, tau, t) / s
                        } else {
                            let decay = (1.0 - lr).powf(t);
                            (s * (1.0 - decay) + a0 * decay) / s
                        }
                    })
                    .collect();
                series.push(Series {
                    name: format!("{label} closed form, s = {s}"),
                    x: steps.clone(),
                    y: theory,
                    dashed: true,
                    colour: Some(k + if dashed_theory { 0 } else { 3 }),
                });
            }
        }
        let strengths_fig = figure_ref(
            tms_report::line_plot(
                &context.figure_stem("A2", "merged-vs-factored"),
                &LinePlot {
                    title: "A2: a_k(t)/s_k, merged vs factored (aligned start a₀ = 1e-4)".into(),
                    x_label: "step".into(),
                    y_label: "a_k / s_k".into(),
                    series,
                    ..Default::default()
                },
            )?,
            "Normalised strengths from the same aligned start: the merged head's three modes coincide (one exponential), the factored head's are three sigmoids in the order of s. Dashed: closed forms (shallow control and F1's two-layer sigmoid).",
        );
        let mut rank_series = Vec::new();
        let mut path_series = Vec::new();
        for (run, label, colour) in [(small_factored, "factored", 0), (small_merged, "merged", 3)] {
            let rows = history(&run.outcomes[0]);
            let loss: Vec<f64> = rows.iter().map(|r| r.loss / loss0).collect();
            let rank = column("A2", run, "effective_rank")?;
            rank_series.push(Series {
                name: label.into(),
                x: rows.iter().map(|r| r.step as f64).collect(),
                y: rows.iter().map(|r| r.observables[rank]).collect(),
                dashed: false,
                colour: Some(colour),
            });
            path_series.push(Series {
                name: label.into(),
                x: loss,
                y: rows.iter().map(|r| r.observables[rank]).collect(),
                dashed: false,
                colour: Some(colour),
            });
        }
        let rank_fig = figure_ref(
            tms_report::line_plot(
                &context.figure_stem("A2", "effective-rank"),
                &LinePlot {
                    title: "A2: effective rank of W_QK from a small random start".into(),
                    x_label: "step".into(),
                    y_label: "effective rank".into(),
                    series: rank_series,
                    ..Default::default()
                },
            )?,
            format!("Effective rank over training from small random starts (factored: W_Q, W_K ~ N(0, 0.01²); merged: W_QK ~ N(0, 6e-4²)). The merged head is ∝ M after a short transient (erank {m_rank:.3}); the factored head drops to ≈ 1 while it learns the first concept, then adds concepts one by one."),
        );
        let path_fig = figure_ref(
            tms_report::line_plot(
                &context.figure_stem("A2", "rank-vs-loss"),
                &LinePlot {
                    title: "A2: effective rank against loss (matched-loss comparison)".into(),
                    x_label: "loss / initial loss".into(),
                    y_label: "effective rank".into(),
                    series: path_series,
                    log_x: true,
                    x_range: Some((1e-4, 1.0)),
                    ..Default::default()
                },
            )?,
            "The same runs against the loss they have reached (read right to left): at every loss the factored head's W_QK is lower-rank.",
        );
        let f_final = numbers(&small_factored.outcomes[0].metrics["strengths"]);
        Ok(Analysis {
            settings: Vec::new(),
            paragraphs: vec![
                format!("Merged heads learn every concept at once (a single exponential with time constant τ), factored heads learn them one after another (sigmoids at t½ ∝ 1/s): the factorisation W_QK = W_Qᵀ W_K is what turns learning into a sequence of concepts. From a small random start the factored head also finds the concepts (final strengths {}).", list(&f_final, 4)),
                format!("Nuclear norm at matched loss is not lower for the factored head (at L/L₀ = 1/2: {}): for a given squared error it puts the mass on the strongest concepts, which costs more ‖·‖_* than shrinking all of M uniformly; at matched time it is lower simply because it learns later. The claim of lower nuclear norm / effective rank holds for the effective rank along the path only.", f_at[0].zip(m_at[0]).map(|(a, b)| format!("{:.3} vs {:.3}", a.2, b.2)).unwrap_or_else(|| "not reached".into())),
            ],
            figures: vec![strengths_fig, rank_fig, path_fig],
            claims,
        })
    }
}
