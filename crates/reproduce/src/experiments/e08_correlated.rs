//! E8 — correlated and anticorrelated features (ReLU-output models, uniform importance).
//!
//! Paper (experiments.md §5): (a) two correlated pairs, n = 4, m = 2 → the members of a pair are
//! orthogonal ("local orthogonal bases"); (b) two anticorrelated pairs → the members of a pair are
//! antipodal (only about a third of random starts find it, so best-of-N matters); (c) three
//! correlated pairs, n = 6, m = 2 → the members of a pair sit side by side, and the pairs collapse
//! onto single directions as density rises, roughly p ≲ 0.05 none, 0.05–0.15 one, 0.15–0.2 two,
//! 0.25–0.5 all three; (d) two correlated sets of ten, n = 20, m = 10 → each set a local orthogonal
//! basis (identity blocks on the diagonal of WᵀW), the sets in superposition with each other.
//!
//! (c)'s "all three from 0.25" disagrees with the model's own optimum: two collapsed pairs have the
//! lower expected loss up to p ≈ 0.39 ([`COLLAPSE_OPTIMA`]), so E8.collapse_regimes fails at full
//! scale (p = 0.3, 0.4) and is kept failing; the report shows the two optima's losses.

use std::path::Path;

use tms_report::html::FigureRef;
use tms_report::{
    ArrowPanel, ArrowsFigure, Colormap, HeatmapFigure, HeatmapPanel, LinePlot, ReportError,
    ScatterOverlay, Series,
};

use crate::claims::{claim, list};
use crate::figures::figure_ref;
use crate::toy::{angular_gaps, density_label, model_title, toy_plan, weights, ToyWeights};
use crate::{Analysis, CompletedRun, Context, Experiment, ReproduceError, RunRequest, Scale};

/// E8.
pub struct Correlated;

/// Represented: ‖W_i‖ above this (learned features sit near 1, dropped ones near 0).
const REPRESENTED: f64 = 0.5;
/// A pair is collapsed onto one direction when its members' cosine exceeds this. Side by side,
/// three pairs in a plane are ≈ 60° apart (cos ≈ 0.5) and a collapsed pair is at cos ≈ 1, so 0.9
/// (≈ 26°) separates the two with a wide margin.
const COLLAPSED: f64 = 0.9;
/// Expected loss of the optimised "two pairs collapsed" and "three pairs collapsed" configurations
/// of (c), (p, two, three), measured offline by `scripts/e8_collapse_topologies.py` (stratified Monte
/// Carlo, 10⁴ samples per pattern of active pairs to optimise and 2·10⁵ to evaluate, full-batch Adam
/// from hand-built starts). Evidence for the report: the paper's regime "all three collapsed for
/// 0.25 ≤ p ≤ 0.5" disagrees with the model as specified, whose loss favours two collapsed pairs up
/// to p ≈ 0.39.
const COLLAPSE_OPTIMA: [(f64, f64, f64); 5] = [
    (0.3, 0.021824, 0.022694),
    (0.325, 0.024758, 0.025435),
    (0.35, 0.027824, 0.028277),
    (0.375, 0.031002, 0.031206),
    (0.4, 0.034261, 0.034199),
];

impl Experiment for Correlated {
    fn id(&self) -> &'static str {
        "E8"
    }

    fn title(&self) -> &'static str {
        "Correlated and anticorrelated features"
    }

    fn runs(&self, scale: Scale) -> Vec<RunRequest> {
        // Quick: the same models and seeds counts where the claims need best-of-N (≥ 10 seeds for
        // (a), (b)), fewer densities, and best of 5 for the density sweep (c) at one point per
        // regime.
        vec![
            RunRequest::scaled("e8-correlated", scale, &["toy.density=0.05"]),
            RunRequest::scaled(
                "e8-anticorrelated",
                scale,
                &["toy.density=0.1", "train.replicas=10"],
            ),
            RunRequest::scaled(
                "e8-correlated-three",
                scale,
                &["toy.density=[0.5, 0.2, 0.1, 0.02]", "train.replicas=5"],
            ),
            RunRequest::scaled("e8-correlated-sets", scale, &["toy.density=0.05"]),
        ]
    }

    fn analyse(&self, context: &Context) -> Result<Analysis, ReproduceError> {
        let mut figures = Vec::new();
        let mut claims = Vec::new();
        let mut paragraphs = Vec::new();
        let [pairs, anti, three, sets] = context.runs else {
            return Err(ReproduceError::Analysis {
                experiment: "E8".into(),
                message: format!("expected 4 runs, found {}", context.runs.len()),
            });
        };

        // (a) Correlated pairs: members orthogonal.
        let (labels, models) = labelled(pairs)?;
        let title = format!(
            "{}, correlated pairs {{0, 1}}, {{2, 3}}",
            model_title(toy_plan("E8", pairs)?)
        );
        figures.extend(arrows_and_grams(context, "a", &title, &labels, &models)?);
        let mut cosines = Vec::new();
        let mut across = Vec::new();
        let mut all_represented = true;
        for w in &models {
            all_represented &= w.norms().iter().all(|&v| v > REPRESENTED);
            cosines.extend([w.cosine(0, 1), w.cosine(2, 3)]);
            // How the two pairs share the plane: the most negative cosine across pairs.
            across.push(
                [(0, 2), (0, 3), (1, 2), (1, 3)]
                    .iter()
                    .map(|&(i, j)| w.cosine(i, j))
                    .fold(1.0, f64::min),
            );
        }
        claims.push(claim(
            "E8.correlated_orthogonal",
            "Correlated features are represented orthogonally: the two members of a correlated pair take perpendicular directions (local orthogonal bases).",
            format!("cos(W₀, W₁), cos(W₂, W₃) at {}: {}; all four represented: {all_represented}", labels.join(", "), list(&cosines, 3)),
            // Orthogonal is cos = 0; the alternatives in a plane are side by side (60–72°, cos ≥ 0.3),
            // antipodal (−1) or collapsed (+1), so |cos| < 0.1 (within ≈ 6° of 90°) singles it out.
            "at every density all four ‖W_i‖ > 0.5 and |cos| < 0.1 within each pair",
            all_represented && cosines.iter().all(|c| c.abs() < 0.1),
        ));
        paragraphs.push(format!(
            "(a) Two correlated pairs: within-pair cosines {}; the most negative cosine across the pairs {} (−1: the second pair is the first one's antipodes, filling the plane as a square).",
            list(&cosines, 3),
            list(&across, 3)
        ));

        // (b) Anticorrelated pairs: members antipodal.
        let (labels, models) = labelled(anti)?;
        let title = format!(
            "{}, anticorrelated pairs {{0, 1}}, {{2, 3}}",
            model_title(toy_plan("E8", anti)?)
        );
        figures.extend(arrows_and_grams(context, "b", &title, &labels, &models)?);
        let mut cosines = Vec::new();
        let mut all_represented = true;
        for w in &models {
            all_represented &= w.norms().iter().all(|&v| v > REPRESENTED);
            cosines.extend([w.cosine(0, 1), w.cosine(2, 3)]);
        }
        claims.push(claim(
            "E8.anticorrelated_antipodal",
            "Anticorrelated features are represented antipodally: the two members of an anticorrelated pair point in opposite directions.",
            format!("cos(W₀, W₁), cos(W₂, W₃) at {}: {}; all four represented: {all_represented}", labels.join(", "), list(&cosines, 3)),
            // Antipodal is cos = −1; the next candidate arrangements in a plane are 90° (0) or
            // 120°/144° polygons (≥ −0.81), so cos < −0.95 (within ≈ 18° of 180°) singles it out.
            "at every density all four ‖W_i‖ > 0.5 and cos < −0.95 within each pair",
            all_represented && cosines.iter().all(|&c| c < -0.95),
        ));
        let found: Vec<String> = anti
            .outcomes
            .iter()
            .zip(&labels)
            .map(|(o, label)| {
                let best = o.chosen().evaluation_loss;
                let near = o
                    .replicas
                    .iter()
                    .filter(|r| r.evaluation_loss <= best * 1.5 + 1e-6)
                    .count();
                format!("{label}: {near} of {}", o.replicas.len())
            })
            .collect();
        paragraphs.push(format!(
            "(b) Seeds that reach the best loss (within 1.5× of it; the antipodal solution reconstructs anticorrelated pairs exactly, so its loss is ≈ 0 while the other minima's are not): {}. The paper reports about a third from random starts: best-of-N is what finds it.",
            found.join("; ")
        ));

        // (c) Three correlated pairs: side by side, collapsing as density rises.
        let plan = toy_plan("E8", three)?;
        let (labels, models) = labelled(three)?;
        let title = format!(
            "{}, correlated pairs {{0, 1}}, {{2, 3}}, {{4, 5}}",
            model_title(plan)
        );
        let columns = 7.min(models.len());
        figures.push(arrows(
            &context.figure_stem("E8", "c-arrows"),
            &title,
            &labels,
            &models,
            columns,
        )?);
        let densities: Vec<f64> = plan.instances.iter().map(|i| i.density).collect();
        let collapsed: Vec<usize> = models
            .iter()
            .map(|w| {
                (0..3)
                    .filter(|&k| w.cosine(2 * k, 2 * k + 1) > COLLAPSED)
                    .count()
            })
            .collect();
        figures.push(collapse_plot(
            &context.figure_stem("E8", "c-collapse"),
            &title,
            &densities,
            &collapsed,
        )?);
        let (sparse, dense) = (argmin(&densities), argmax(&densities));
        // Side by side at the sparsest density: six represented directions, each pair's members
        // neighbours in angle.
        let w = &models[sparse];
        let gaps = angular_gaps(w, REPRESENTED);
        let pair_angles: Vec<f64> = (0..3)
            .map(|k| {
                w.cosine(2 * k, 2 * k + 1)
                    .clamp(-1.0, 1.0)
                    .acos()
                    .to_degrees()
            })
            .collect();
        let represented = w.norms().iter().filter(|&&v| v > REPRESENTED).count();
        let smallest_gap = gaps.iter().copied().fold(f64::INFINITY, f64::min);
        claims.push(claim(
            "E8.side_by_side",
            "When three correlated pairs share two dimensions (sparse features) they cannot be orthogonal: each pair's members sit side by side, neighbouring directions around the circle.",
            format!("at {}: {represented} represented; angle within each pair {}°; gaps between neighbouring directions {}°", labels[sparse], list(&pair_angles, 1), list(&gaps, 1)),
            // Six evenly spread directions are 60° apart; "side by side" means each pair's angle is
            // one such gap (a neighbour, not across the circle): below 90° and above 30° (not
            // collapsed), with no two directions closer than 30°.
            "6 represented, every within-pair angle in (30°, 90°), every gap > 30°",
            represented == 6 && pair_angles.iter().all(|&a| a > 30.0 && a < 90.0) && smallest_gap > 30.0,
        ));
        claims.push(claim(
            "E8.collapse_order",
            "As density rises, correlated pairs collapse one after another onto a single direction (their principal component).",
            format!("collapsed pairs (cos > {COLLAPSED}) by density: {}", pairs_by_density(&densities, &collapsed)),
            "none at the sparsest density, all three at the densest, never fewer at a higher density",
            collapsed[sparse] == 0 && collapsed[dense] == 3 && is_monotone(&densities, &collapsed),
        ));
        let mut disagreements = Vec::new();
        for (&p, &c) in densities.iter().zip(&collapsed) {
            if !paper_regime(p).contains(&c) {
                disagreements.push(format!("{} has {c}", density_label(p)));
            }
        }
        claims.push(claim(
            "E8.collapse_regimes",
            "The collapse regimes: p ≲ 0.05 no pair collapsed, 0.05–0.15 one, 0.15–0.2 two, 0.25–0.5 all three.",
            if disagreements.is_empty() {
                format!("every density in its regime: {}", pairs_by_density(&densities, &collapsed))
            } else {
                format!("outside the paper's regime: {}", disagreements.join(", "))
            },
            // The paper's ranges are "roughly": at its boundary values (0.05, 0.15, 0.2–0.25) both
            // neighbouring counts are accepted; strictly inside a range only that range's count.
            "every density strictly inside a range has that range's count (either neighbour at a boundary)",
            disagreements.is_empty(),
        ));
        paragraphs.push(format!(
            "(c) Collapsed pairs by density (best of N): {}. Where the trained models and the paper's \"all three collapsed\" range (0.25–0.5) disagree, the models keep the lower-loss configuration: optimised directly (measured offline by scripts/e8_collapse_topologies.py, not recomputed by this run: stratified Monte Carlo expected loss, full-batch Adam from hand-built starts), the expected loss of two collapsed pairs vs three is {}. So all three collapse only above p ≈ 0.39, and just above it the margin (0.2% at p = 0.4) is below what best-of-N over AdamW-trained seeds resolves (their evaluation losses spread by ≈ 1%). Three collapsed pairs are a local minimum at p ≥ 0.25 that many random starts reach (about half of 20 single seeds at p = 0.25–0.4 when measured), which a single-seed figure would show.",
            pairs_by_density(&densities, &collapsed),
            COLLAPSE_OPTIMA
                .iter()
                .map(|(p, two, three)| format!(
                    "{two:.6} vs {three:.6} at p = {p} (three {:+.2}%)",
                    100.0 * (three / two - 1.0)
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ));

        // (d) Two correlated sets of ten: block structure of WᵀW.
        let (labels, models) = labelled(sets)?;
        let plan = toy_plan("E8", sets)?;
        let half = plan.shape.n_features / 2;
        let title = format!(
            "{}, correlated sets {{0..{}}}, {{{}..{}}}",
            model_title(plan),
            half - 1,
            half,
            2 * half - 1
        );
        figures.push(grams(
            &context.figure_stem("E8", "d-gram"),
            &title,
            &labels,
            &models,
            2,
        )?);
        let mut within = Vec::new();
        let mut cross = Vec::new();
        let mut all_represented = true;
        for w in &models {
            let (a, b) = block_interference(w, half);
            within.push(a);
            cross.push(b);
            all_represented &= w.norms().iter().all(|&v| v > REPRESENTED);
        }
        claims.push(claim(
            "E8.local_orthogonal_bases",
            "Each set of correlated features takes a local orthogonal basis (identity blocks on the diagonal of WᵀW) while the two sets overlap each other in superposition.",
            format!("at {}: mean |W_i·W_j| within a set {}, across sets {}; all 20 represented: {all_represented}", labels.join(", "), list(&within, 3), list(&cross, 3)),
            // Twenty unit features in ten dimensions: a Welch-bound spread would put ≈ 0.23 on
            // every pair; orthogonal within sets means ≈ 0 there, so within < 0.05 and at least
            // three times smaller than across.
            "all represented; within-set mean < 0.05 and across-set mean > 3 × within, at every density",
            all_represented && within.iter().zip(&cross).all(|(&a, &b)| a < 0.05 && b > 3.0 * a),
        ));
        Ok(Analysis {
            settings: vec![(
                "collapsed pair".into(),
                format!("cos(W_a, W_b) > {COLLAPSED} between a pair's members"),
            )],
            paragraphs,
            figures,
            claims,
        })
    }
}

/// The weights of a run and a density label per instance.
fn labelled(run: &CompletedRun) -> Result<(Vec<String>, Vec<ToyWeights>), ReproduceError> {
    let plan = toy_plan("E8", run)?;
    let labels = plan
        .instances
        .iter()
        .map(|i| density_label(i.density))
        .collect();
    Ok((labels, weights("E8", run)?))
}

/// The pair counts the paper gives for density `p` (both neighbours at a boundary).
fn paper_regime(p: f64) -> std::ops::RangeInclusive<usize> {
    const EPS: f64 = 1e-9;
    if p < 0.05 - EPS {
        0..=0
    } else if p <= 0.05 + EPS {
        0..=1
    } else if p < 0.15 - EPS {
        1..=1
    } else if p <= 0.15 + EPS {
        1..=2
    } else if p < 0.2 - EPS {
        2..=2
    } else if p <= 0.25 + EPS {
        2..=3
    } else {
        3..=3
    }
}

/// Whether `count` never decreases as density increases.
fn is_monotone(densities: &[f64], count: &[usize]) -> bool {
    let mut order: Vec<usize> = (0..densities.len()).collect();
    order.sort_by(|&a, &b| densities[a].total_cmp(&densities[b]));
    order.windows(2).all(|w| count[w[0]] <= count[w[1]])
}

fn pairs_by_density(densities: &[f64], count: &[usize]) -> String {
    densities
        .iter()
        .zip(count)
        .map(|(&p, c)| format!("{}: {c}", density_label(p)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Mean |W_i·W_j| over pairs i ≠ j in the same set, and over pairs in different sets (sets
/// `0..half` and `half..n`).
fn block_interference(w: &ToyWeights, half: usize) -> (f64, f64) {
    let g = w.gram();
    let (mut within, mut cross) = ((0.0, 0usize), (0.0, 0usize));
    for i in 0..w.n {
        for j in 0..w.n {
            if i == j {
                continue;
            }
            let v = g[i * w.n + j].abs();
            if (i < half) == (j < half) {
                within = (within.0 + v, within.1 + 1);
            } else {
                cross = (cross.0 + v, cross.1 + 1);
            }
        }
    }
    (
        within.0 / within.1.max(1) as f64,
        cross.0 / cross.1.max(1) as f64,
    )
}

fn argmax(v: &[f64]) -> usize {
    crate::experiments::e01_intro::argmax(v)
}

fn argmin(v: &[f64]) -> usize {
    crate::experiments::e01_intro::argmin(v)
}

/// Panel grid size: (columns, rows).
fn grid(count: usize, columns: usize) -> (u32, u32) {
    let columns = columns.clamp(1, count.max(1));
    (columns as u32, count.div_ceil(columns) as u32)
}

/// The columns W_i as arrows in the hidden plane, one panel per density, sized to the grid.
fn arrows(
    stem: &Path,
    title: &str,
    labels: &[String],
    models: &[ToyWeights],
    columns: usize,
) -> Result<FigureRef, ReportError> {
    let n = models.first().map(|w| w.n).unwrap_or(0);
    let (c, r) = grid(models.len(), columns);
    let fig = ArrowsFigure {
        title: title.to_string(),
        panels: labels
            .iter()
            .zip(models)
            .map(|(label, w)| ArrowPanel {
                title: label.clone(),
                vectors: (0..w.n).map(|i| (w.column(i)[0], w.column(i)[1])).collect(),
                axes: Vec::new(),
            })
            .collect(),
        feature_labels: (0..n).map(|i| format!("feature {i}")).collect(),
        limit: None,
        unit_circle: true,
        columns: c as usize,
        size: (220 * c + 160, 230 * r + 50),
    };
    Ok(figure_ref(
        tms_report::arrows(stem, &fig)?,
        format!("{title}: the columns W_i as arrows in the hidden plane (unit circle dashed), one panel per density."),
    ))
}

/// WᵀW heatmaps in [−1, 1] with the bias beside each, sized to the grid.
fn grams(
    stem: &Path,
    title: &str,
    labels: &[String],
    models: &[ToyWeights],
    columns: usize,
) -> Result<FigureRef, ReportError> {
    let (c, r) = grid(models.len(), columns);
    let fig = HeatmapFigure {
        title: title.to_string(),
        panels: labels
            .iter()
            .zip(models)
            .map(|(label, w)| HeatmapPanel {
                title: label.clone(),
                rows: w.n,
                cols: w.n,
                values: w.gram(),
                bias: Some(w.bias.clone()),
                row_labels: Vec::new(),
                col_labels: Vec::new(),
            })
            .collect(),
        range: (-1.0, 1.0),
        colormap: Colormap::BlueWhiteRed,
        colourbar_label: "WᵀW".into(),
        bias_label: "b".into(),
        annotate: false,
        columns: c as usize,
        size: ((300 * c + 90).max(600), 290 * r + 50),
    };
    Ok(figure_ref(
        tms_report::heatmap(stem, &fig)?,
        format!(
            "{title}: WᵀW (left of each panel) and the bias b (right strip), colour scale [−1, 1]."
        ),
    ))
}

/// Part `part` of E8 drawn twice, four panels a row: the columns of W as arrows, and WᵀW with the bias.
fn arrows_and_grams(
    context: &Context,
    part: &str,
    title: &str,
    labels: &[String],
    models: &[ToyWeights],
) -> Result<[FigureRef; 2], ReproduceError> {
    Ok([
        arrows(
            &context.figure_stem("E8", &format!("{part}-arrows")),
            title,
            labels,
            models,
            4,
        )?,
        grams(
            &context.figure_stem("E8", &format!("{part}-gram")),
            title,
            labels,
            models,
            4,
        )?,
    ])
}

/// Collapsed pairs against density (log axis), with the paper's regimes dashed.
fn collapse_plot(
    stem: &Path,
    title: &str,
    densities: &[f64],
    collapsed: &[usize],
) -> Result<FigureRef, ReportError> {
    let mut order: Vec<usize> = (0..densities.len()).collect();
    order.sort_by(|&a, &b| densities[a].total_cmp(&densities[b]));
    let (lo, hi) = (densities[order[0]], densities[order[order.len() - 1]]);
    // The paper's regimes as a step function (midpoints of its boundary ranges).
    let steps: [(f64, f64, f64); 4] = [
        (0.0, 0.05, 0.0),
        (0.05, 0.15, 1.0),
        (0.15, 0.225, 2.0),
        (0.225, 1.0, 3.0),
    ];
    let (mut px, mut py) = (Vec::new(), Vec::new());
    for &(a, b, v) in &steps {
        let (a, b) = (a.max(lo), b.min(hi));
        if a < b {
            px.extend([a, b]);
            py.extend([v, v]);
        }
    }
    let plot = LinePlot {
        title: title.to_string(),
        x_label: "density p (probability a pair is active)".into(),
        y_label: "collapsed pairs".into(),
        series: vec![
            Series {
                name: "trained (best of N)".into(),
                x: order.iter().map(|&k| densities[k]).collect(),
                y: order.iter().map(|&k| collapsed[k] as f64).collect(),
                dashed: false,
                colour: Some(0),
            },
            Series {
                name: "paper's regimes".into(),
                x: px,
                y: py,
                dashed: true,
                colour: Some(3),
            },
        ],
        scatter: vec![ScatterOverlay {
            name: "trained densities".into(),
            x: densities.to_vec(),
            y: collapsed.iter().map(|&c| c as f64).collect(),
            colour: Some(0),
        }],
        log_x: true,
        y_range: Some((-0.2, 3.2)),
        ..Default::default()
    };
    Ok(figure_ref(
        tms_report::line_plot(stem, &plot)?,
        format!("{title}: number of pairs collapsed onto one direction (cos > {COLLAPSED}) against density; dashed, the paper's approximate regimes."),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regimes_accept_both_neighbours_only_at_boundaries() {
        assert_eq!(paper_regime(0.02), 0..=0);
        assert_eq!(paper_regime(0.05), 0..=1);
        assert_eq!(paper_regime(0.1), 1..=1);
        assert_eq!(paper_regime(0.175), 2..=2);
        assert_eq!(paper_regime(0.2), 2..=3);
        assert_eq!(paper_regime(0.3), 3..=3);
    }

    #[test]
    fn monotone_in_density_order_not_list_order() {
        assert!(is_monotone(&[0.5, 0.1, 0.01], &[3, 1, 0]));
        assert!(!is_monotone(&[0.5, 0.1, 0.01], &[1, 2, 0]));
    }
}
