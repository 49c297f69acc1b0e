//! Figures shared by the toy-model experiments, built from trained weights and the plan's settings
//! (titles and labels come from the config, never hand-written).

use std::path::Path;
use tms_report::html::FigureRef;
use tms_report::{
    ArrowPanel, ArrowsFigure, BarPanel, BarsFigure, Colormap, HeatmapFigure, HeatmapPanel,
    ReportError,
};

use crate::toy::ToyWeights;

/// The SVG of a written figure, for the report.
pub fn figure_ref(paths: tms_report::FigurePaths, caption: impl Into<String>) -> FigureRef {
    FigureRef {
        path: paths.svg,
        caption: caption.into(),
    }
}

/// WᵀW heatmaps in [−1, 1] with the bias beside each, one panel per instance.
pub fn gram_heatmaps(
    stem: &Path,
    title: &str,
    models: &[(String, &ToyWeights)],
    columns: usize,
) -> Result<FigureRef, ReportError> {
    let panels = models
        .iter()
        .map(|(label, w)| HeatmapPanel {
            title: label.clone(),
            rows: w.n,
            cols: w.n,
            values: w.gram(),
            bias: Some(w.bias.clone()),
            row_labels: Vec::new(),
            col_labels: Vec::new(),
        })
        .collect();
    let fig = HeatmapFigure {
        title: title.to_string(),
        panels,
        range: (-1.0, 1.0),
        colormap: Colormap::BlueWhiteRed,
        colourbar_label: "WᵀW".into(),
        bias_label: "b".into(),
        annotate: false,
        columns,
        ..Default::default()
    };
    Ok(figure_ref(
        tms_report::heatmap(stem, &fig)?,
        format!(
            "{title}: WᵀW (left of each panel) and the bias b (right strip), colour scale [−1, 1]."
        ),
    ))
}

/// Bars of ‖W_i‖ coloured by superposition √s_i clipped to [0, 1], one panel per instance.
pub fn norm_bars(
    stem: &Path,
    title: &str,
    models: &[(String, &ToyWeights)],
    columns: usize,
) -> Result<FigureRef, ReportError> {
    let panels = models
        .iter()
        .map(|(label, w)| BarPanel {
            title: label.clone(),
            values: w.norms(),
            colour_values: w
                .superposition()
                .iter()
                .map(|s| s.sqrt().clamp(0.0, 1.0))
                .collect(),
            labels: (0..w.n).map(|i| i.to_string()).collect(),
        })
        .collect();
    let fig = BarsFigure {
        title: title.to_string(),
        panels,
        category_label: "feature i".into(),
        value_label: "‖W_i‖".into(),
        colour_label: "superposition √s_i".into(),
        colormap: Colormap::Viridis,
        colour_range: (0.0, 1.0),
        value_range: None,
        horizontal: true,
        columns,
        ..Default::default()
    };
    Ok(figure_ref(tms_report::bars(stem, &fig)?, format!("{title}: feature norms ‖W_i‖, coloured by superposition (dark: orthogonal to every other feature).")))
}

/// The columns W_i of m = 2 models as arrows, one panel per instance.
pub fn column_arrows(
    stem: &Path,
    title: &str,
    models: &[(String, &ToyWeights)],
    columns: usize,
) -> Result<FigureRef, ReportError> {
    let n = models.first().map(|(_, w)| w.n).unwrap_or(0);
    let panels = models
        .iter()
        .map(|(label, w)| ArrowPanel {
            title: label.clone(),
            vectors: (0..w.n).map(|i| (w.column(i)[0], w.column(i)[1])).collect(),
            axes: Vec::new(),
        })
        .collect();
    let fig = ArrowsFigure {
        title: title.to_string(),
        panels,
        feature_labels: (0..n).map(|i| format!("feature {i}")).collect(),
        limit: None,
        unit_circle: true,
        columns,
        ..Default::default()
    };
    Ok(figure_ref(
        tms_report::arrows(stem, &fig)?,
        format!(
            "{title}: the columns W_i drawn as arrows in the hidden plane (unit circle dashed)."
        ),
    ))
}
