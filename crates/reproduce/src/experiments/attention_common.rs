//! Shared reading of attention-head runs (A1–A4): the plan, histories by observable name, half
//! times, metrics from metrics.json values, and the two figures the concept experiments share.

// ReproduceError carries a ConfigError (origin, key, expected, found, hint); it is returned once per
// analysis, off any hot path, so its size does not matter (as in tms-experiments' lib.rs).
#![allow(clippy::result_large_err)]

use crate::figures::figure_ref;
use crate::{CompletedRun, Context, ReproduceError};
use serde_json::Value;
use tms_engine::train::HistoryRow;
use tms_experiments::families::attention::{Attention, AttentionPlan};
use tms_experiments::run::{observable_names, InstanceOutcome};
use tms_report::html::FigureRef;
use tms_report::{Colormap, HeatmapFigure, HeatmapPanel, LinePlot, ReportError, Series};

/// The `[attention]` plan of a run, or an analysis error naming the experiment.
pub fn attention_plan<'a>(
    id: &str,
    run: &'a CompletedRun,
) -> Result<&'a AttentionPlan, ReproduceError> {
    run.plan
        .family
        .get::<Attention>()
        .ok_or_else(|| ReproduceError::Analysis {
            experiment: id.to_string(),
            message: format!("run {} is not an attention run", run.request.preset),
        })
}

/// Column of observable `name` in the history rows of `run`.
pub fn column(id: &str, run: &CompletedRun, name: &str) -> Result<usize, ReproduceError> {
    observable_names(&run.plan)
        .iter()
        .position(|n| n == name)
        .ok_or_else(|| ReproduceError::Analysis {
            experiment: id.to_string(),
            message: format!("run {} records no `{name}`", run.request.preset),
        })
}

/// History of the kept replica of an instance.
pub fn history(outcome: &InstanceOutcome) -> &[HistoryRow] {
    &outcome.chosen().history
}

/// First step at which column `col` reaches `level` from below, linearly interpolated between rows.
pub fn crossing(rows: &[HistoryRow], col: usize, level: f64) -> Option<f64> {
    rows.windows(2).find_map(|w| {
        let (a, b) = (w[0].observables[col], w[1].observables[col]);
        (a < level && b >= level)
            .then(|| w[0].step as f64 + (level - a) / (b - a) * (w[1].step - w[0].step) as f64)
    })
}

/// A number array of metrics.json (`null` as NaN).
pub fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .map(|a| a.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect())
        .unwrap_or_default()
}

/// A number of metrics.json (NaN when missing).
pub fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

/// A table (array of arrays) of metrics.json.
pub fn table(value: &Value) -> Vec<Vec<f64>> {
    value
        .as_array()
        .map(|rows| rows.iter().map(numbers).collect())
        .unwrap_or_default()
}

/// Half times of every planted mode of an instance (None where the mode never reaches s_k/2).
pub fn half_times(
    id: &str,
    run: &CompletedRun,
    outcome: &InstanceOutcome,
    strengths: &[f64],
) -> Result<Vec<Option<f64>>, ReproduceError> {
    strengths
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let col = column(id, run, &format!("strength_{}", k + 1))?;
            Ok(crossing(history(outcome), col, s / 2.0))
        })
        .collect()
}

/// Formats optional half times.
pub fn times(t: &[Option<f64>]) -> String {
    let items: Vec<String> = t
        .iter()
        .map(|v| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "—".into()))
        .collect();
    format!("[{}]", items.join(", "))
}

/// Cosine heatmaps |u_kᵀ ũ_α| and |v_kᵀ ṽ_α| of one instance: planted concepts (rows) against the
/// singular vectors of W_QK (columns, by decreasing singular value).
pub fn cosine_heatmap(
    context: &Context,
    id: &str,
    name: &str,
    title: &str,
    metrics: &Value,
    strengths: &[f64],
) -> Result<FigureRef, ReportError> {
    let left = table(&metrics["cosines_left"]);
    let right = table(&metrics["cosines_right"]);
    let sv = numbers(&metrics["singular_values"]);
    let d = sv.len();
    let cols: Vec<String> = sv
        .iter()
        .enumerate()
        .map(|(a, s)| format!("σ{} = {s:.2}", a + 1))
        .collect();
    let panel = |side: &str, letter: &str, t: &[Vec<f64>]| HeatmapPanel {
        title: format!("{side}: |{letter}_kᵀ · singular vector|"),
        rows: t.len(),
        cols: d,
        values: t.iter().flatten().copied().collect(),
        bias: None,
        row_labels: strengths
            .iter()
            .enumerate()
            .map(|(k, s)| format!("{letter}{} (s = {s})", k + 1))
            .collect(),
        col_labels: cols.clone(),
    };
    let fig = HeatmapFigure {
        title: title.to_string(),
        panels: vec![
            panel("query side", "u", &left),
            panel("key side", "v", &right),
        ],
        range: (0.0, 1.0),
        colormap: Colormap::WhiteRed,
        colourbar_label: "|cos|".into(),
        annotate: true,
        columns: 2,
        size: (1100, 120 + 60 * strengths.len() as u32),
        ..Default::default()
    };
    Ok(figure_ref(
        tms_report::heatmap(&context.figure_stem(id, name), &fig)?,
        format!("{title}: |cos| between each planted concept (rows) and each singular vector of the trained W_QK (columns, decreasing σ). A diagonal of ones is a head whose singular vectors are the concepts."),
    ))
}

/// Strength curves a_k(t) of one instance (solid) with closed-form curves (dashed) from `theory`.
#[allow(clippy::too_many_arguments)]
pub fn strength_plot(
    context: &Context,
    id: &str,
    name: &str,
    title: &str,
    run: &CompletedRun,
    outcome: &InstanceOutcome,
    strengths: &[f64],
    theory: Option<&dyn Fn(f64, f64) -> f64>,
    caption: &str,
) -> Result<FigureRef, ReproduceError> {
    let rows = history(outcome);
    let steps: Vec<f64> = rows.iter().map(|r| r.step as f64).collect();
    let mut series = Vec::new();
    for (k, &s) in strengths.iter().enumerate() {
        let col = column(id, run, &format!("strength_{}", k + 1))?;
        series.push(Series {
            name: format!("a{} (s = {s})", k + 1),
            x: steps.clone(),
            y: rows.iter().map(|r| r.observables[col]).collect(),
            dashed: false,
            colour: Some(k),
        });
        if let Some(f) = theory {
            series.push(Series {
                name: format!("closed form, s = {s}"),
                x: steps.clone(),
                y: steps.iter().map(|&t| f(s, t)).collect(),
                dashed: true,
                colour: Some(k),
            });
        }
    }
    let plot = LinePlot {
        title: title.to_string(),
        x_label: "step".into(),
        y_label: "strength a_k = u_kᵀ W_QK v_k".into(),
        series,
        ..Default::default()
    };
    Ok(figure_ref(
        tms_report::line_plot(&context.figure_stem(id, name), &plot)?,
        caption.to_string(),
    ))
}
