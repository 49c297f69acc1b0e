//! Per-feature bar charts: ‖W_i‖ per feature, each bar coloured by its superposition.
//!
//! The paper's sparsity figures read two things at once from one bar: its length says whether a
//! feature is represented (‖W_i‖ ≈ 1) or dropped (≈ 0), its colour says whether it shares its
//! direction with others (√s_i on a sequential colormap in [0, 1]). Bars are horizontal by default,
//! features top to bottom in the caller's order (usually by importance), as in the paper.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::render::{self, check_len, DrawResult, Figure};
use crate::theme::{self, Colormap};
use crate::{FigurePaths, ReportError};

/// One bar chart.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct BarPanel {
    /// Small title above the panel, e.g. "p = 0.01" (may be empty).
    pub title: String,
    /// Bar lengths, one per feature, in the caller's order (first on top / left).
    pub values: Vec<f64>,
    /// Colour value of each bar on the figure's colormap (e.g. √superposition in [0, 1]);
    /// empty for a single neutral colour.
    pub colour_values: Vec<f64>,
    /// Category labels: empty for the feature index (0, 1, …), else one per bar.
    pub labels: Vec<String>,
}

/// Several bar-chart panels with one shared colourbar.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BarsFigure {
    /// Figure title (may be empty).
    pub title: String,
    /// The panels, laid out left to right, top to bottom.
    pub panels: Vec<BarPanel>,
    /// Description of the category axis, e.g. "feature" (may be empty).
    pub category_label: String,
    /// Description of the value axis, e.g. "‖W_i‖" (may be empty).
    pub value_label: String,
    /// Text beside the colourbar, e.g. "superposition" (may be empty).
    pub colour_label: String,
    /// Colormap for `colour_values`. Default viridis.
    pub colormap: Colormap,
    /// Range of `colour_values` mapped onto the colormap. Default [0, 1].
    pub colour_range: (f64, f64),
    /// Value-axis range; `None` fits 0 and the data of all panels.
    pub value_range: Option<(f64, f64)>,
    /// Horizontal bars (features down the side, the paper's layout). Default true.
    pub horizontal: bool,
    /// Panels per row; 0 puts all panels in one row.
    pub columns: usize,
    /// Figure size in pixels (width, height).
    pub size: (u32, u32),
}

impl Default for BarsFigure {
    fn default() -> Self {
        Self {
            title: String::new(),
            panels: Vec::new(),
            category_label: String::new(),
            value_label: String::new(),
            colour_label: String::new(),
            colormap: Colormap::Viridis,
            colour_range: (0.0, 1.0),
            value_range: None,
            horizontal: true,
            columns: 0,
            size: (900, 360),
        }
    }
}

/// Draws `fig` and writes `stem.svg` and `stem.png`: one filled `<rect>` per bar.
pub fn bars(stem: &Path, fig: &BarsFigure) -> Result<FigurePaths, ReportError> {
    render::render(stem, fig)
}

/// Colour of bars without a colour value.
const NEUTRAL: RGBColor = RGBColor(70, 110, 160);

impl Figure for BarsFigure {
    const NAME: &'static str = "bars";

    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn validate(&self) -> Result<(), String> {
        if self.panels.is_empty() {
            return Err("no panels".into());
        }
        let (lo, hi) = self.colour_range;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(format!(
                "colour_range must have lo < hi, found [{lo}, {hi}]"
            ));
        }
        if let Some((lo, hi)) = self.value_range {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(format!("value_range must have lo < hi, found [{lo}, {hi}]"));
            }
        }
        for (i, p) in self.panels.iter().enumerate() {
            if p.values.is_empty() {
                return Err(format!("panel {i}: no bars"));
            }
            if !p.colour_values.is_empty() {
                check_len(
                    &format!("panel {i} colour_values"),
                    p.colour_values.len(),
                    p.values.len(),
                )?;
            }
            if !p.labels.is_empty() {
                check_len(&format!("panel {i} labels"), p.labels.len(), p.values.len())?;
            }
        }
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let coloured = self.panels.iter().any(|p| !p.colour_values.is_empty());
        let legend_w = if coloured { 90 } else { 0 };
        let (panels_area, legend) = render::frame(root, &self.title, legend_w)?;
        let range = self.value_range.unwrap_or_else(|| {
            let (lo, hi) =
                render::finite_extent(self.panels.iter().flat_map(|p| p.values.iter().copied()))
                    .unwrap_or((0.0, 1.0));
            let (lo, hi) = (lo.min(0.0), hi.max(0.0));
            let span = if hi > lo { hi - lo } else { 1.0 };
            (
                if lo < 0.0 { lo - 0.05 * span } else { 0.0 },
                hi + 0.05 * span,
            )
        });
        for (panel, area) in
            self.panels
                .iter()
                .zip(render::grid(&panels_area, self.panels.len(), self.columns))
        {
            self.draw_panel(panel, &area, range)?;
        }
        if let Some(legend) = legend {
            render::colourbar(
                &legend,
                self.colormap,
                self.colour_range,
                &self.colour_label,
            )?;
        }
        Ok(())
    }
}

impl BarsFigure {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        p: &BarPanel,
        area: &DrawingArea<DB, Shift>,
        range: (f64, f64),
    ) -> DrawResult {
        let n = p.values.len();
        let cat_range = -0.5..(n as f64 - 0.5);
        // Category k sits at position k (vertical bars) or n−1−k (horizontal: first on top).
        let pos = |k: usize| {
            if self.horizontal {
                (n - 1 - k) as f64
            } else {
                k as f64
            }
        };
        let label_of = |v: &f64| -> String {
            let r = v.round();
            if (v - r).abs() > 1e-6 || r < 0.0 || r >= n as f64 {
                return String::new();
            }
            let k = if self.horizontal {
                n - 1 - r as usize
            } else {
                r as usize
            };
            p.labels.get(k).cloned().unwrap_or_else(|| k.to_string())
        };
        let value_fmt = |v: &f64| render::fmt_num(*v);
        let n_cat_labels = n.min(if self.horizontal { 20 } else { 12 });

        let mut builder = ChartBuilder::on(area);
        builder
            .caption(&p.title, theme::text(theme::PANEL_TITLE_SIZE))
            .margin(6)
            .x_label_area_size(if self.horizontal { 34 } else { 40 })
            .y_label_area_size(if self.horizontal { 46 } else { 50 });
        let (x_range, y_range) = if self.horizontal {
            (range.0..range.1, cat_range)
        } else {
            (cat_range, range.0..range.1)
        };
        let mut chart = builder.build_cartesian_2d(x_range, y_range)?;
        {
            let mut mesh = chart.configure_mesh();
            mesh.disable_mesh()
                .label_style(theme::text(theme::TICK_SIZE))
                .axis_desc_style(theme::text(theme::LABEL_SIZE));
            if self.horizontal {
                mesh.x_desc(self.value_label.as_str())
                    .y_desc(self.category_label.as_str())
                    .x_labels(5)
                    .y_labels(n_cat_labels)
                    .x_label_formatter(&value_fmt)
                    .y_label_formatter(&label_of);
            } else {
                mesh.x_desc(self.category_label.as_str())
                    .y_desc(self.value_label.as_str())
                    .x_labels(n_cat_labels)
                    .y_labels(5)
                    .x_label_formatter(&label_of)
                    .y_label_formatter(&value_fmt);
            }
            mesh.draw()?;
        }
        let half = 0.38;
        chart.draw_series(p.values.iter().enumerate().map(|(k, &v)| {
            let colour = match p.colour_values.get(k) {
                Some(&c) => self.colormap.map_range(c, self.colour_range),
                None => NEUTRAL,
            };
            let v = if v.is_finite() { v } else { 0.0 };
            let c = pos(k);
            let corners = if self.horizontal {
                [(0.0, c - half), (v, c + half)]
            } else {
                [(c - half, 0.0), (c + half, v)]
            };
            Rectangle::new(corners, colour.filled())
        }))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{check_outputs, count_tag};

    fn panel(title: &str, n: usize) -> BarPanel {
        BarPanel {
            title: title.into(),
            values: (0..n).map(|i| 1.0 - 0.1 * i as f64).collect(),
            colour_values: (0..n).map(|i| i as f64 / (n - 1) as f64).collect(),
            labels: Vec::new(),
        }
    }

    #[test]
    fn one_coloured_rect_per_bar_in_both_orientations() {
        for horizontal in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let stem = dir.path().join("norms");
            let fig = BarsFigure {
                title: "Feature norms coloured by superposition".into(),
                panels: vec![panel("p = 1", 7), panel("p = 0.001", 7)],
                category_label: "feature".into(),
                value_label: "norm".into(),
                colour_label: "superposition".into(),
                horizontal,
                size: (800, 400),
                ..Default::default()
            };
            let paths = bars(&stem, &fig).unwrap();
            let svg = check_outputs(
                &paths,
                &stem,
                (800, 400),
                "Feature norms coloured by superposition",
            );
            for t in ["p = 1", "p = 0.001", "feature", "norm", "superposition"] {
                assert!(svg.contains(t), "{t}");
            }
            // Viridis ends: the least superposed bar is dark purple, the most yellow.
            assert!(svg.contains("fill=\"#440154\""));
            assert!(svg.contains("fill=\"#FDE725\""));
            // Background + 2 × 7 bars + colourbar steps (+ its frame, unfilled).
            let filled = count_tag(&svg, "rect")
                - svg
                    .split("<rect ")
                    .skip(1)
                    .filter(|r| r.split("/>").next().unwrap().contains("fill=\"none\""))
                    .count();
            assert_eq!(filled, 1 + 14 + render::COLOURBAR_STEPS);
        }
    }

    #[test]
    fn labels_must_match_the_bars() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = panel("x", 3);
        p.labels = vec!["a".into()];
        let fig = BarsFigure {
            panels: vec![p],
            ..Default::default()
        };
        let err = bars(&dir.path().join("b"), &fig).unwrap_err();
        assert!(err.to_string().contains("labels"), "{err}");
    }
}
