//! E11 — superposition in a privileged basis: the ReLU-hidden model h = ReLU(W x),
//! x̂ = ReLU(Wᵀh + b), n = 10, m = 5, I = 0.75^i, density swept, best of N seeds.
//!
//! Paper (experiments.md §5): monosemantic neurons when dense (p ≳ 0.5); mixed regimes in between;
//! every neuron polysemantic by p ≈ 0.05–0.08; features spread over pairs of neurons at p ≲ 0.04.
//!
//! Monosemanticity is measured per neuron j (row j of W, or of W₁ for the abs model) as the share
//! of its squared weight on its top feature, max_i W_ji² / Σ_i W_ji²: 1 for a neuron that reads one
//! feature, 1/k for one that reads k features equally.

use std::path::Path;

use tms_report::html::FigureRef;
use tms_report::{LinePlot, RefLine, ReportError, Series, StackedBarsFigure, StackedBarsPanel};

use crate::claims::{claim, list};
use crate::figures::figure_ref;
use crate::toy::{density_label, model_title, toy_plan, weights, ToyWeights};
use crate::{Analysis, Context, Experiment, ReproduceError, RunRequest, Scale};

/// E11.
pub struct Privileged;

/// A neuron is monosemantic when its top feature holds at least this share of its squared weight:
/// the runner-up's weight is then at most 1/3 of the top one's (0.9 = 1/(1 + (1/3)²)).
pub(crate) const MONOSEMANTIC: f64 = 0.9;
/// A neuron is dead (reads nothing) when its squared weight is below this; it is left out of the
/// shares (an unused neuron is neither mono- nor polysemantic).
pub(crate) const DEAD: f64 = 1e-2;
/// Represented: ‖W_i‖ above this.
const REPRESENTED: f64 = 0.5;

/// The neurons' input weights: `rows[j][i]` = weight of feature i on neuron j (W_ji; W₁ for abs).
pub(crate) fn neuron_rows(w: &ToyWeights) -> Vec<Vec<f64>> {
    (0..w.m)
        .map(|j| (0..w.n).map(|i| w.embedding[i * w.m + j]).collect())
        .collect()
}

/// Per live neuron: (neuron, its top feature, the top feature's share of its squared weight).
pub(crate) fn neuron_shares(rows: &[Vec<f64>]) -> Vec<(usize, usize, f64)> {
    rows.iter()
        .enumerate()
        .filter_map(|(j, row)| {
            let total: f64 = row.iter().map(|v| v * v).sum();
            if total < DEAD {
                return None;
            }
            let top = (0..row.len()).max_by(|&a, &b| row[a].abs().total_cmp(&row[b].abs()))?;
            Some((j, top, row[top] * row[top] / total))
        })
        .collect()
}

/// Neurons ordered for the stacked-bar figure: by top feature (most important first), monosemantic
/// before polysemantic for the same feature; dead neurons last.
pub(crate) fn neuron_order(rows: &[Vec<f64>]) -> Vec<usize> {
    let shares = neuron_shares(rows);
    let mut order: Vec<(usize, usize, f64)> = shares.clone();
    order.sort_by(|a, b| a.1.cmp(&b.1).then(b.2.total_cmp(&a.2)));
    let mut out: Vec<usize> = order.iter().map(|s| s.0).collect();
    out.extend((0..rows.len()).filter(|j| !shares.iter().any(|s| s.0 == *j)));
    out
}

/// Neuron stacked bars, one panel per model: each bar a neuron, each segment a feature's weight.
pub(crate) fn neuron_bars(
    stem: &Path,
    title: &str,
    labels: &[String],
    rows: &[Vec<Vec<f64>>],
    columns: usize,
    legend: bool,
    size: (u32, u32),
) -> Result<FigureRef, ReportError> {
    let n = rows
        .first()
        .and_then(|r| r.first())
        .map(|r| r.len())
        .unwrap_or(0);
    let panels = labels
        .iter()
        .zip(rows)
        .map(|(label, rows)| {
            let order = neuron_order(rows);
            StackedBarsPanel {
                title: label.clone(),
                neurons: rows.len(),
                weights: order.iter().flat_map(|&j| rows[j].clone()).collect(),
            }
        })
        .collect();
    let fig = StackedBarsFigure {
        title: title.to_string(),
        panels,
        features: n,
        feature_labels: if legend {
            (0..n).map(|i| format!("feature {i}")).collect()
        } else {
            Vec::new()
        },
        x_label: "neuron (sorted by top feature)".into(),
        y_label: "weight".into(),
        min_abs: 0.02,
        columns,
        size,
    };
    let colours = if legend {
        "one colour per feature (legend)"
    } else {
        "colour = feature index, from the most important (dark purple) to the least (yellow)"
    };
    Ok(figure_ref(
        tms_report::stacked_bars(stem, &fig)?,
        format!("{title}: each bar is a neuron, each segment a feature's input weight (positive up, negative down; {colours}). Neurons sorted by their strongest feature."),
    ))
}

impl Experiment for Privileged {
    fn id(&self) -> &'static str {
        "E11"
    }

    fn title(&self) -> &'static str {
        "Superposition in a privileged basis (ReLU hidden layer)"
    }

    fn runs(&self, scale: Scale) -> Vec<RunRequest> {
        // Quick: one density per regime the claims check (dense, the all-polysemantic point, the
        // pairs-of-neurons regime), still best of 10: with best of 3 the sparse model can stop in
        // a minimum where some features sit on a single neuron.
        vec![RunRequest::scaled(
            "e11",
            scale,
            &["toy.density=[1.0, 0.05, 0.03]"],
        )]
    }

    fn analyse(&self, context: &Context) -> Result<Analysis, ReproduceError> {
        let run = &context.runs[0];
        let plan = toy_plan("E11", run)?;
        let models = weights("E11", run)?;
        let densities: Vec<f64> = plan.instances.iter().map(|i| i.density).collect();
        let labels: Vec<String> = densities.iter().map(|&p| density_label(p)).collect();
        let rows: Vec<Vec<Vec<f64>>> = models.iter().map(neuron_rows).collect();
        let title = model_title(plan);
        let columns = 6.min(models.len());
        let grid_rows = models.len().div_ceil(columns) as u32;
        let mut figures = vec![neuron_bars(
            &context.figure_stem("E11", "neurons"),
            &title,
            &labels,
            &rows,
            columns,
            true,
            (230 * columns as u32 + 140, 280 * grid_rows + 50),
        )?];
        let shares: Vec<Vec<(usize, usize, f64)>> = rows.iter().map(|r| neuron_shares(r)).collect();
        let mono: Vec<usize> = shares
            .iter()
            .map(|s| s.iter().filter(|x| x.2 >= MONOSEMANTIC).count())
            .collect();
        let live: Vec<usize> = shares.iter().map(|s| s.len()).collect();
        let mean_share: Vec<f64> = shares
            .iter()
            .map(|s| s.iter().map(|x| x.2).sum::<f64>() / s.len().max(1) as f64)
            .collect();
        figures.push(share_plot(
            &context.figure_stem("E11", "monosemanticity"),
            &title,
            &densities,
            &mono,
            &live,
            &mean_share,
        )?);
        let mut claims = Vec::new();
        let per_density = |f: &dyn Fn(usize) -> String, keep: &dyn Fn(f64) -> bool| -> String {
            (0..densities.len())
                .filter(|&k| keep(densities[k]))
                .map(|k| format!("{}: {}", labels[k], f(k)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let min_share = |k: usize| shares[k].iter().map(|x| x.2).fold(1.0, f64::min);
        let max_share = |k: usize| shares[k].iter().map(|x| x.2).fold(0.0, f64::max);

        // Dense: monosemantic.
        let dense: Vec<usize> = (0..densities.len())
            .filter(|&k| densities[k] >= 0.5)
            .collect();
        claims.push(claim(
            "E11.dense_monosemantic",
            "With dense features (p ≳ 0.5) every neuron is monosemantic: it reads a single feature.",
            format!("smallest top-feature share among live neurons: {}", per_density(&|k| format!("{:.3} ({} of {} live neurons monosemantic)", min_share(k), mono[k], live[k]), &|p| p >= 0.5)),
            format!("every live neuron's top-feature share ≥ {MONOSEMANTIC} (runner-up weight ≤ ⅓ of the top one) at every p ≥ 0.5"),
            !dense.is_empty() && dense.iter().all(|&k| live[k] > 0 && min_share(k) >= MONOSEMANTIC),
        ));
        // Sparse: all polysemantic.
        let sparse: Vec<usize> = (0..densities.len())
            .filter(|&k| densities[k] <= 0.05)
            .collect();
        claims.push(claim(
            "E11.sparse_polysemantic",
            "By p ≈ 0.05–0.08 (and sparser) every neuron is polysemantic.",
            format!("largest top-feature share among live neurons: {}", per_density(&|k| format!("{:.3}", max_share(k)), &|p| p <= 0.08)),
            // "By p ≈ 0.05–0.08": the transition completes somewhere in that range, so every
            // neuron must be polysemantic at p ≤ 0.05; between 0.05 and 0.08 either is accepted.
            format!("every live neuron's top-feature share < {MONOSEMANTIC} at every p ≤ 0.05 (0.05 < p ≤ 0.08 shown, not checked)"),
            !sparse.is_empty() && sparse.iter().all(|&k| live[k] > 0 && max_share(k) < MONOSEMANTIC),
        ));
        claims.push(claim(
            "E11.monosemanticity_falls",
            "Neurons lose monosemanticity as features become sparser.",
            format!(
                "monosemantic neurons by density: {}",
                per_density(&|k| mono[k].to_string(), &|_| true)
            ),
            "the number of monosemantic neurons never increases as density decreases",
            is_non_increasing_as_density_falls(&densities, &mono),
        ));
        // Very sparse: each feature on a pair of neurons.
        let support: Vec<Vec<usize>> = models.iter().map(positive_support).collect();
        let very_sparse: Vec<usize> = (0..densities.len())
            .filter(|&k| densities[k] <= 0.04)
            .collect();
        let medians: Vec<f64> = very_sparse.iter().map(|&k| median(&support[k])).collect();
        claims.push(claim(
            "E11.pairs_of_neurons",
            "At p ≲ 0.04 features are spread over pairs of neurons.",
            format!(
                "neurons carrying each represented feature: {}",
                per_density(&|k| format!("{:?}", support[k]), &|p| p <= 0.04)
            ),
            // A neuron carries feature i when W_ji is at least half of feature i's largest
            // positive weight (only positive weights make a ReLU neuron fire on x_i ≥ 0).
            "at every p ≤ 0.04 the median number of neurons carrying a represented feature is 2",
            !very_sparse.is_empty() && medians.iter().all(|&m| m == 2.0),
        ));
        let paragraphs = vec![format!(
            "Monosemantic neurons (top-feature share ≥ {MONOSEMANTIC}) from dense to sparse: {:?} of {} neurons; mean top-feature share {}. In between the dense and sparse regimes a few neurons mix features while the others stay monosemantic.",
            mono,
            plan.shape.n_hidden,
            list(&mean_share, 2)
        )];
        Ok(Analysis {
            settings: vec![(
                "monosemantic neuron".into(),
                format!("top feature's share of the neuron's squared weight ≥ {MONOSEMANTIC}"),
            )],
            paragraphs,
            figures,
            claims,
        })
    }
}

/// For each represented feature (‖W_i‖ > 0.5) with a positive weight, the number of neurons whose
/// weight on it is at least half its largest positive weight.
fn positive_support(w: &ToyWeights) -> Vec<usize> {
    let norms = w.norms();
    (0..w.n)
        .filter(|&i| norms[i] > REPRESENTED)
        .filter_map(|i| {
            let col = w.column(i);
            let top = col.iter().copied().fold(0.0, f64::max);
            (top > 0.0).then(|| col.iter().filter(|&&v| v >= 0.5 * top).count())
        })
        .collect()
}

fn median(v: &[usize]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let k = s.len();
    if k % 2 == 1 {
        s[k / 2] as f64
    } else {
        (s[k / 2 - 1] + s[k / 2]) as f64 / 2.0
    }
}

/// Whether `count` never increases as density decreases.
pub(crate) fn is_non_increasing_as_density_falls(densities: &[f64], count: &[usize]) -> bool {
    let mut order: Vec<usize> = (0..densities.len()).collect();
    order.sort_by(|&a, &b| densities[b].total_cmp(&densities[a]));
    order.windows(2).all(|w| count[w[1]] <= count[w[0]])
}

/// Share of monosemantic neurons and the mean top-feature share against density.
fn share_plot(
    stem: &Path,
    title: &str,
    densities: &[f64],
    mono: &[usize],
    live: &[usize],
    mean_share: &[f64],
) -> Result<FigureRef, ReportError> {
    let mut order: Vec<usize> = (0..densities.len()).collect();
    order.sort_by(|&a, &b| densities[a].total_cmp(&densities[b]));
    let x: Vec<f64> = order.iter().map(|&k| densities[k]).collect();
    let plot = LinePlot {
        title: title.to_string(),
        x_label: "density p".into(),
        y_label: "share".into(),
        series: vec![
            Series {
                name: "monosemantic neurons / live neurons".into(),
                x: x.clone(),
                y: order
                    .iter()
                    .map(|&k| mono[k] as f64 / live[k].max(1) as f64)
                    .collect(),
                dashed: false,
                colour: Some(0),
            },
            Series {
                name: "mean top-feature share".into(),
                x,
                y: order.iter().map(|&k| mean_share[k]).collect(),
                dashed: false,
                colour: Some(1),
            },
        ],
        ref_lines: vec![RefLine {
            y: MONOSEMANTIC,
            label: "monosemantic threshold".into(),
        }],
        log_x: true,
        y_range: Some((0.0, 1.05)),
        ..Default::default()
    };
    Ok(figure_ref(
        tms_report::line_plot(stem, &plot)?,
        format!("{title}: monosemanticity against density (a neuron's top-feature share is the fraction of its squared weight on its strongest feature)."),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_count_live_neurons_only() {
        let rows = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 0.0, 0.0],
            vec![1.0, -1.0, 0.0],
        ];
        let s = neuron_shares(&rows);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].0, s[0].1), (0, 0));
        assert!((s[0].2 - 1.0).abs() < 1e-12 && (s[1].2 - 0.5).abs() < 1e-12);
        assert_eq!(neuron_order(&rows), vec![0, 2, 1]);
    }

    #[test]
    fn monotone_in_density_order() {
        assert!(is_non_increasing_as_density_falls(
            &[1.0, 0.1, 0.5],
            &[5, 0, 3]
        ));
        assert!(!is_non_increasing_as_density_falls(
            &[1.0, 0.1, 0.5],
            &[5, 4, 3]
        ));
    }
}
