//! Columns of W as arrows from the origin: the geometry of superposition at a glance.
//!
//! For m = 2 the columns W_i are points in the plane, and the paper's intro figure reads the
//! solution off them directly: orthogonal pairs, antipodal digons, a pentagon. Axes share one
//! scale (equal aspect) or a pentagon would look like an ellipse. For m = 3 the caller projects
//! the columns to 2-D (this crate does no linear algebra) and may pass the projected basis axes,
//! drawn as grey guides.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::render::{self, check_len, DrawResult, Figure, Swatch};
use crate::theme;
use crate::{FigurePaths, ReportError};

/// One panel of arrows.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ArrowPanel {
    /// Small title above the panel (may be empty).
    pub title: String,
    /// Arrow tips, one per feature: (x, y) = W_i for m = 2, or its 2-D projection for m = 3.
    pub vectors: Vec<(f64, f64)>,
    /// Projected basis axes for m = 3 (e.g. ("h1", (x, y))), drawn as grey lines from the origin;
    /// empty for none.
    pub axes: Vec<(String, (f64, f64))>,
}

/// Several arrow panels, one colour per feature.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ArrowsFigure {
    /// Figure title (may be empty).
    pub title: String,
    /// The panels, laid out left to right, top to bottom.
    pub panels: Vec<ArrowPanel>,
    /// Legend labels, one per feature index (empty for no legend).
    pub feature_labels: Vec<String>,
    /// Half-width of both axes; `None` fits the longest arrow of all panels.
    pub limit: Option<f64>,
    /// Draw the unit circle as a faint guide (‖W_i‖ = 1 is "represented").
    pub unit_circle: bool,
    /// Panels per row; 0 puts all panels in one row.
    pub columns: usize,
    /// Figure size in pixels (width, height).
    pub size: (u32, u32),
}

impl Default for ArrowsFigure {
    fn default() -> Self {
        Self {
            title: String::new(),
            panels: Vec::new(),
            feature_labels: Vec::new(),
            limit: None,
            unit_circle: true,
            columns: 0,
            size: (1000, 260),
        }
    }
}

/// Draws `fig` and writes `stem.svg` and `stem.png`: per feature one shaft and one head.
pub fn arrows(stem: &Path, fig: &ArrowsFigure) -> Result<FigurePaths, ReportError> {
    render::render(stem, fig)
}

impl Figure for ArrowsFigure {
    const NAME: &'static str = "arrows";

    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn validate(&self) -> Result<(), String> {
        if self.panels.is_empty() {
            return Err("no panels".into());
        }
        if let Some(l) = self.limit {
            if !(l.is_finite() && l > 0.0) {
                return Err(format!("limit must be positive, found {l}"));
            }
        }
        let n = self.panels[0].vectors.len();
        for (i, p) in self.panels.iter().enumerate() {
            check_len(&format!("panel {i} vectors"), p.vectors.len(), n)?;
            if p.vectors
                .iter()
                .any(|(x, y)| !(x.is_finite() && y.is_finite()))
            {
                return Err(format!("panel {i}: non-finite vector"));
            }
        }
        if !self.feature_labels.is_empty() {
            check_len("feature_labels", self.feature_labels.len(), n)?;
        }
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let n = self.panels[0].vectors.len();
        let legend_w = if self.feature_labels.is_empty() {
            0
        } else {
            110
        };
        let (panels_area, legend) = render::frame(root, &self.title, legend_w)?;
        let limit = self.limit.unwrap_or_else(|| {
            let longest = self
                .panels
                .iter()
                .flat_map(|p| p.vectors.iter().chain(p.axes.iter().map(|(_, v)| v)))
                .map(|(x, y)| x.hypot(*y))
                .fold(0.0, f64::max);
            let base = if self.unit_circle {
                longest.max(1.0)
            } else {
                longest
            };
            if base > 0.0 {
                base * 1.12
            } else {
                1.0
            }
        });
        for (panel, area) in
            self.panels
                .iter()
                .zip(render::grid(&panels_area, self.panels.len(), self.columns))
        {
            self.draw_panel(panel, &area, limit, n)?;
        }
        if let Some(legend) = legend {
            let entries: Vec<_> = self
                .feature_labels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.clone(), Swatch::Line(theme::feature_colour(i, n))))
                .collect();
            render::legend(&legend, &entries)?;
        }
        Ok(())
    }
}

impl ArrowsFigure {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        p: &ArrowPanel,
        area: &DrawingArea<DB, Shift>,
        limit: f64,
        n: usize,
    ) -> DrawResult {
        // Equal aspect: the plot is the largest centred square of the panel below its title.
        let (w, h) = area.dim_in_pixel();
        let title_h: u32 = if p.title.is_empty() { 0 } else { 24 };
        if !p.title.is_empty() {
            area.draw(&Text::new(
                p.title.clone(),
                ((w / 2) as i32, 4),
                theme::text(theme::PANEL_TITLE_SIZE).pos(Pos::new(HPos::Center, VPos::Top)),
            ))?;
        }
        let side = w.min(h.saturating_sub(title_h)).saturating_sub(8).max(10);
        let left = (w - side) / 2;
        let top = title_h + (h - title_h - side) / 2;
        let square = area.margin(top, h - top - side, left, w - left - side);
        let mut chart =
            ChartBuilder::on(&square).build_cartesian_2d(-limit..limit, -limit..limit)?;

        let grey = RGBColor(200, 200, 200);
        chart.draw_series([
            PathElement::new(vec![(-limit, 0.0), (limit, 0.0)], grey),
            PathElement::new(vec![(0.0, -limit), (0.0, limit)], grey),
        ])?;
        if self.unit_circle {
            let circle: Vec<(f64, f64)> = (0..=96)
                .map(|k| {
                    let t = k as f64 / 96.0 * std::f64::consts::TAU;
                    (t.cos(), t.sin())
                })
                .collect();
            chart.draw_series([PathElement::new(circle, RGBColor(225, 225, 225))])?;
        }
        let label_style = theme::text(theme::TICK_SIZE).color(&RGBColor(110, 110, 110));
        for (label, (x, y)) in &p.axes {
            chart.draw_series([PathElement::new(
                vec![(0.0, 0.0), (*x, *y)],
                RGBColor(150, 150, 150).stroke_width(1),
            )])?;
            chart.draw_series([Text::new(
                label.clone(),
                (x * 1.06, y * 1.06),
                label_style.pos(Pos::new(HPos::Center, VPos::Center)),
            )])?;
        }

        let head = 0.09 * limit;
        for (i, &(x, y)) in p.vectors.iter().enumerate() {
            let colour = theme::feature_colour(i, n);
            let len = x.hypot(y);
            if len < 1e-3 * limit {
                // A dropped feature: a dot at the origin, so it is still visible.
                chart.draw_series([Circle::new((0.0, 0.0), 3, colour.filled())])?;
                continue;
            }
            let (ux, uy) = (x / len, y / len);
            let head = head.min(0.5 * len);
            let (bx, by) = (x - ux * head, y - uy * head);
            let (nx, ny) = (-uy * head * 0.45, ux * head * 0.45);
            chart.draw_series([PathElement::new(
                vec![(0.0, 0.0), (bx, by)],
                colour.stroke_width(2),
            )])?;
            chart.draw_series([Polygon::new(
                vec![(x, y), (bx + nx, by + ny), (bx - nx, by - ny)],
                colour.filled(),
            )])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{check_outputs, count_tag};

    fn polygon(k: usize, r: f64) -> Vec<(f64, f64)> {
        (0..k)
            .map(|i| {
                let t = i as f64 / k as f64 * std::f64::consts::TAU;
                (r * t.cos(), r * t.sin())
            })
            .collect()
    }

    #[test]
    fn one_head_per_feature_and_dots_for_dropped_ones() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("geometry");
        let mut digons = vec![(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)];
        digons.push((0.0, 0.0));
        let fig = ArrowsFigure {
            title: "Columns of W".into(),
            panels: vec![
                ArrowPanel {
                    title: "pentagon".into(),
                    vectors: polygon(5, 1.05),
                    axes: Vec::new(),
                },
                ArrowPanel {
                    title: "two digons".into(),
                    vectors: digons,
                    axes: Vec::new(),
                },
            ],
            feature_labels: (0..5).map(|i| format!("feature {i}")).collect(),
            size: (700, 320),
            ..Default::default()
        };
        let paths = arrows(&stem, &fig).unwrap();
        let svg = check_outputs(&paths, &stem, (700, 320), "Columns of W");
        for t in ["pentagon", "two digons", "feature 0", "feature 4"] {
            assert!(svg.contains(t), "{t}");
        }
        // 5 + 4 arrow heads; 1 dropped feature drawn as a dot.
        assert_eq!(count_tag(&svg, "polygon"), 9);
        assert_eq!(count_tag(&svg, "circle"), 1);
        // Feature colours are the categorical palette, feature 0 blue.
        assert!(svg.contains("#1F77B4"));
    }

    #[test]
    fn projected_axes_are_labelled() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("octahedron");
        let fig = ArrowsFigure {
            title: "m = 3, projected".into(),
            panels: vec![ArrowPanel {
                title: String::new(),
                vectors: polygon(6, 1.0),
                axes: vec![
                    ("h1".into(), (0.8, -0.3)),
                    ("h2".into(), (0.0, 0.9)),
                    ("h3".into(), (-0.8, -0.3)),
                ],
            }],
            size: (300, 300),
            ..Default::default()
        };
        let svg = check_outputs(
            &arrows(&stem, &fig).unwrap(),
            &stem,
            (300, 300),
            "m = 3, projected",
        );
        for t in ["h1", "h2", "h3"] {
            assert!(svg.contains(t), "{t}");
        }
        assert_eq!(count_tag(&svg, "polygon"), 6);
    }
}
