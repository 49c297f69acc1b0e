//! S5 — progressive differentiation on branching-diffusion trees (followups.md §F1; Saxe et al.
//! 2019): the data's spectrum against the formula, the modes of the sampled Y against the tree's
//! levels, the stage order root < level 0 < level 1 < level 2 (…) of the half-learning times, and
//! the hidden representations' similarity HᵀH over time.
//!
//! **Spectrum.** The formula is for E[YᵀY]/N_f; a finite sample scatters around it. To compare
//! without the bias of sorting a degenerate level's sample eigenvalues, each level is estimated by
//! tr(P_l Ŝ)/m_l, with P_l the projector onto the level's eigenspace (exactly the node-indicator
//! tree's level subspace, by the symmetry of the model) and Ŝ = YᵀY/N_f: an unbiased estimate whose
//! standard error is measured from 20 equal batches of features. A fresh sample of N_f = 20 000
//! (the spec's Monte-Carlo size; 5 000 at quick scale) is drawn for this from the run's generator
//! settings, independently of the training data.
//!
//! **RSMs.** Hidden codes at several times come from replaying the run (see
//! [`crate::deep_linear`]): H = W¹ (column μ = item μ's code, items being one-hot), RSM = HᵀH.

// Analyses return `ReproduceError`, which carries a config error with its origin, key and hint;
// it happens at most once per experiment, so its size on the error path does not matter.
#![allow(clippy::result_large_err)]

use crate::claims::{claim, list};
use crate::deep_linear::{analysis_error, deep_plan, mean, replay, step_label, History};
use crate::figures::figure_ref;
use crate::{Analysis, Context, Experiment, ReproduceError, RunRequest, Scale};
use tms_engine::data::items::ItemPropertySet;
use tms_engine::linalg::{self, Matrix};
use tms_engine::models::deep_linear::representational_similarity;
use tms_engine::rng::{InstanceKey, StreamPurpose};
use tms_engine::theory::deep_linear::{diffusion_spectrum, SpectrumLevel};
use tms_report::html::FigureRef;
use tms_report::{Colormap, HeatmapFigure, HeatmapPanel, LinePlot, ScatterOverlay, Series};

/// S5.
pub struct Diffusion;

/// Batches for the standard error of the spectrum estimates.
const BATCHES: usize = 20;

impl Experiment for Diffusion {
    fn id(&self) -> &'static str {
        "S5"
    }

    fn title(&self) -> &'static str {
        "Branching diffusion: spectrum, stage order, progressive differentiation"
    }

    fn runs(&self, scale: Scale) -> Vec<RunRequest> {
        vec![
            RunRequest::scaled("s5-diffusion", scale, &[]),
            RunRequest::scaled("s5-diffusion-large", scale, &[]),
        ]
    }

    fn analyse(&self, context: &Context) -> Result<Analysis, ReproduceError> {
        let monte_carlo = match context.scale {
            Scale::Full => 20_000,
            Scale::Quick => 5_000,
        };
        let mut analysis = Analysis::default();
        for (k, run) in context.runs.iter().enumerate() {
            let tag = if k == 0 { "small" } else { "large" };
            tree_analysis(context, run, tag, monte_carlo, &mut analysis, k == 0)?;
        }
        Ok(analysis)
    }
}

/// The hierarchy settings of a diffusion run.
fn hierarchy(run: &crate::CompletedRun) -> Result<(usize, usize, f64, u64), ReproduceError> {
    let raw = run
        .plan
        .resolved
        .section::<tms_experiments::families::deep_linear::DeepLinear>()
        .ok_or_else(|| analysis_error("S5", "not a deep linear run"))?;
    match (
        raw.branching,
        raw.depth,
        raw.flip_probability,
        raw.data_seed,
    ) {
        (Some(b), Some(d), Some(e), Some(seed)) if raw.dataset == "diffusion" => {
            Ok((b, d, e, seed))
        }
        _ => Err(analysis_error(
            "S5",
            format!("{} is not a diffusion run", run.request.preset),
        )),
    }
}

/// The level subspaces of the tree: columns of the node-indicator tree's V, grouped by level.
fn level_bases(
    b: usize,
    d: usize,
    levels: &[SpectrumLevel],
) -> Result<Vec<Matrix>, ReproduceError> {
    let tree = ItemPropertySet::tree(b, d).map_err(|e| analysis_error("S5", e.to_string()))?;
    Ok(group_columns(&linalg::svd(&tree.targets).v, levels))
}

/// Splits the columns of `v` (in decreasing order of value) into the levels' groups.
fn group_columns(v: &Matrix, levels: &[SpectrumLevel]) -> Vec<Matrix> {
    let mut start = 0;
    levels
        .iter()
        .map(|l| {
            let cols: Vec<Vec<f64>> = (start..start + l.multiplicity)
                .map(|c| v.column(c))
                .collect();
            start += l.multiplicity;
            Matrix::from_columns(v.rows(), &cols)
        })
        .collect()
}

/// Level names: root, level 0, level 1, ….
fn level_name(l: &SpectrumLevel) -> String {
    match l.split_level {
        None => "root".into(),
        Some(k) => format!("level {k}"),
    }
}

fn tree_analysis(
    context: &Context,
    run: &crate::CompletedRun,
    tag: &str,
    monte_carlo: usize,
    out: &mut Analysis,
    draw_rsm: bool,
) -> Result<(), ReproduceError> {
    let id = "S5";
    let plan = deep_plan(id, run)?;
    let (b, d, epsilon, data_seed) = hierarchy(run)?;
    let levels = diffusion_spectrum(b, d, epsilon);
    let bases = level_bases(b, d, &levels)?;
    let names: Vec<String> = levels.iter().map(level_name).collect();
    let setting = format!("B = {b}, D = {d}, ε = {epsilon}");

    // --- Spectrum of a fresh large sample: unbiased level estimates and their batch SE.
    let mut rng = InstanceKey {
        seed: data_seed,
        instance: 1,
        replica: 0,
    }
    .stream(StreamPurpose::Dataset);
    let sample = ItemPropertySet::branching_diffusion(&mut rng, b, d, epsilon, monte_carlo)
        .map_err(|e| analysis_error(id, e.to_string()))?;
    let p = sample.n_items();
    let per_batch = monte_carlo / BATCHES;
    let mut batch_estimates = vec![Vec::new(); levels.len()];
    for batch in 0..BATCHES {
        let rows: Vec<f64> =
            sample.targets.as_slice()[batch * per_batch * p..(batch + 1) * per_batch * p].to_vec();
        let y = Matrix::from_row_major(per_batch, p, rows);
        let cov = y.transpose_matmul(&y).scale(1.0 / per_batch as f64);
        for (l, basis) in bases.iter().enumerate() {
            let projected = basis.transpose_matmul(&cov.matmul(basis));
            let trace: f64 = (0..basis.cols()).map(|c| projected[(c, c)]).sum();
            batch_estimates[l].push(trace / basis.cols() as f64);
        }
    }
    let mut spectrum_ok = true;
    let mut rows = Vec::new();
    for (l, level) in levels.iter().enumerate() {
        let est = mean(&batch_estimates[l]);
        let var = batch_estimates[l]
            .iter()
            .map(|x| (x - est).powi(2))
            .sum::<f64>()
            / (BATCHES - 1) as f64;
        let se = (var / BATCHES as f64).sqrt();
        let z = (est - level.value) / se;
        spectrum_ok &= z.abs() < 4.0;
        rows.push(format!(
            "{} {:.4} vs {:.4} ({:+.1} SE)",
            names[l], est, level.value, z
        ));
    }
    let full_cov = sample
        .targets
        .transpose_matmul(&sample.targets)
        .scale(1.0 / monte_carlo as f64);
    let sorted = linalg::symmetric_eigen(&full_cov).values;
    out.claims.push(claim(
        &format!("S5.spectrum_{tag}"),
        "The eigenvalues of E[YᵀY]/N_f of the branching-diffusion model are λ_root = Σ_l (q_l − q_{l−1})n_l and λ_k = Σ_{l>k}(q_l − q_{l−1})n_l with multiplicity (B−1)Bᵏ (B=2, D=3, ε=0.15: 2.4408, 1.4996, 1.0098 ×2, 0.5100 ×4).",
        format!("{setting}, N_f = {monte_carlo}: {}", rows.join("; ")),
        // tr(P_l Ŝ)/m_l is unbiased for λ_l; its standard error is the spread of 20 independent
        // batch estimates / √20. Four standard errors: a two-sided t₁₉ tail of 8e-4 per level.
        "every level within 4 standard errors of the formula",
        spectrum_ok,
    ));

    // --- The training data's modes against the tree's levels.
    let task = plan.task(0);
    let modes = task.modes();
    let s = modes.singular_values.clone();
    let n_f = plan.data.n_properties() as f64;
    let groups = group_columns(&modes.v, &levels);
    let mut worst_cos = 1.0f64;
    for (g, basis) in groups.iter().zip(&bases) {
        let cos = linalg::principal_angle_cosines(g, basis);
        worst_cos = worst_cos.min(cos.iter().cloned().fold(1.0, f64::min));
    }
    out.claims.push(claim(
        &format!("S5.modes_are_levels_{tag}"),
        "The object analyzers of the sampled data are the tree's levels: the root mode, then the modes splitting the children of each level.",
        format!("{setting}, training data N_f = {n_f}: smallest principal-angle cosine between each group of sampled analyzers and its level subspace = {worst_cos:.4}"),
        // Sampling tilts an eigenvector by ~ SE/gap: √(2/N_f)·λ/Δλ ≤ 0.063·2 ≈ 0.13 rad for
        // N_f = 500 and the closest levels (1.01 vs 0.51), i.e. cos ≥ 0.99; 0.9 (26°) leaves
        // a wide margin and still rejects a mode from the wrong level (cos ≈ 0).
        "every cosine > 0.9",
        worst_cos > 0.9,
    ));

    // --- Stage order from the random start.
    let outcome = &run.outcomes[0];
    let history = History::of(run, outcome);
    let t_half: Vec<f64> = (0..s.len())
        .map(|a| history.half_time(id, a, s[a]))
        .collect::<Result<_, _>>()?;
    let mut stage = Vec::new();
    let mut start = 0;
    for level in &levels {
        stage.push(mean(&t_half[start..start + level.multiplicity]));
        start += level.multiplicity;
    }
    let ordered = stage.windows(2).all(|w| w[0] < w[1]);
    out.claims.push(claim(
        &format!("S5.stage_order_{tag}"),
        "Stages of learning follow the hierarchy: root < level 0 < level 1 < level 2 (progressive differentiation).",
        format!(
            "{setting}: mean t½ per level ({}) = {} steps",
            names.join(", "),
            list(&stage, 1)
        ),
        "strictly increasing from the root to the deepest level",
        ordered,
    ));

    // --- Figures: spectrum; modes over time; RSMs.
    let stem = |name: &str| context.figure_stem(id, &format!("{tag}-{name}"));
    let formula: Vec<f64> = tms_engine::theory::deep_linear::expand_spectrum(&levels);
    let index: Vec<f64> = (1..=formula.len()).map(|i| i as f64).collect();
    let spectrum = tms_report::line_plot(
        &stem("spectrum"),
        &LinePlot {
            title: format!("Branching diffusion {setting}: spectrum of YᵀY/N_f"),
            x_label: "mode (decreasing eigenvalue)".into(),
            y_label: "eigenvalue λ".into(),
            series: vec![Series {
                name: "formula".into(),
                x: index.clone(),
                y: formula,
                dashed: true,
                colour: Some(0),
            }],
            scatter: vec![
                ScatterOverlay {
                    name: format!("sample, N_f = {monte_carlo}"),
                    x: index.clone(),
                    y: sorted,
                    colour: Some(1),
                },
                ScatterOverlay {
                    name: format!("training data, s²/N_f (N_f = {n_f})"),
                    x: index.clone(),
                    y: s.iter().map(|v| v * v / n_f).collect(),
                    colour: Some(2),
                },
            ],
            ..Default::default()
        },
    )?;
    let mut series = Vec::new();
    let mut start = 0;
    for (l, level) in levels.iter().enumerate() {
        for (a, &s_a) in s.iter().enumerate().skip(start).take(level.multiplicity) {
            series.push(Series {
                name: if a == start {
                    format!("{} (λ = {:.3})", names[l], level.value)
                } else {
                    String::new()
                },
                x: history.steps.clone(),
                y: history.mode(id, a)?.iter().map(|v| v / s_a).collect(),
                dashed: false,
                colour: Some(l),
            });
        }
        start += level.multiplicity;
    }
    let modes_fig = tms_report::line_plot(
        &stem("modes"),
        &LinePlot {
            title: format!(
                "Branching diffusion {setting}, N₂ = {}, Gaussian start",
                plan.hidden[0]
            ),
            x_label: "step t".into(),
            y_label: "a_α(t) / s_α (one colour per level)".into(),
            series,
            ..Default::default()
        },
    )?;
    out.figures.push(figure_ref(spectrum, format!("{setting}: the formula's eigenvalues (dashed, each repeated by its multiplicity) against a fresh sample's and the training data's.")));
    out.figures.push(figure_ref(modes_fig, format!("{setting}: normalised mode strengths from a small random start, coloured by tree level: the root first, then each level in turn.")));
    if draw_rsm {
        out.figures.push(rsm_figure(
            context,
            run,
            outcome,
            &stage,
            &stem("rsm"),
            &setting,
        )?);
    }
    out.settings.push((
        format!("{tag} tree"),
        format!("{setting}, N_f = {n_f}, P = {} items", plan.data.n_items()),
    ));
    out.paragraphs.push(format!(
        "{setting}: half-learning times per mode {} steps; the stages follow the hierarchy from the root down.",
        list(&t_half, 0)
    ));
    Ok(())
}

/// RSM heatmaps HᵀH of the first hidden layer at times between the stages and at the end.
fn rsm_figure(
    context: &Context,
    run: &crate::CompletedRun,
    outcome: &tms_experiments::run::InstanceOutcome,
    stage: &[f64],
    stem: &std::path::Path,
    setting: &str,
) -> Result<FigureRef, ReproduceError> {
    let id = "S5";
    let _ = context;
    let plan = deep_plan(id, run)?;
    let mut times: Vec<u64> = stage
        .windows(2)
        .map(|w| (0.5 * (w[0] + w[1])).round() as u64)
        .collect();
    times.push(run.plan.train.steps);
    let replayed = replay(id, run, outcome, &times)?;
    let task = plan.task(outcome.index);
    let mut matrices = Vec::new();
    for snapshot in &replayed.snapshots {
        let tensors = tms_engine::train::Task::export(&task, snapshot);
        matrices.push(
            representational_similarity(&tensors, 1)
                .map_err(|e| analysis_error(id, e.to_string()))?,
        );
    }
    let limit = matrices
        .iter()
        .map(Matrix::max_abs)
        .fold(0.0, f64::max)
        .max(1e-12);
    let p = plan.data.n_items();
    let labels: Vec<String> = (0..p).map(|i| i.to_string()).collect();
    let panels = matrices
        .iter()
        .zip(&times)
        .map(|(m, &t)| HeatmapPanel {
            title: step_label(t as f64),
            rows: p,
            cols: p,
            values: m.as_slice().to_vec(),
            bias: None,
            row_labels: labels.clone(),
            col_labels: labels.clone(),
        })
        .collect();
    let fig = tms_report::heatmap(
        stem,
        &HeatmapFigure {
            title: format!("Hidden-code similarity HᵀH (H = W¹), branching diffusion {setting}"),
            panels,
            range: (-limit, limit),
            colormap: Colormap::BlueWhiteRed,
            colourbar_label: "h_μ · h_ν".into(),
            columns: 0,
            size: (1200, 360),
            ..Default::default()
        },
    )?;
    Ok(figure_ref(
        fig,
        format!(
            "Representational similarity of the items' hidden codes at steps {} (between successive stages, then the end); items are the leaves 0…{} in tree order. First one block (all items alike), then the two halves, then the quarters: progressive differentiation.",
            times.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "),
            p - 1
        ),
    ))
}
