//! Neuron stacked bars: which features each hidden neuron carries, with what sign.
//!
//! In the privileged-basis experiments the question is per neuron: monosemantic (one segment),
//! polysemantic (several), or the asymmetric motif (a large positive and a small negative weight).
//! Each bar is a neuron; each segment a feature's weight, positive segments stacked upwards from
//! zero and negative ones downwards, one colour per feature throughout the figure.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::render::{self, check_len, DrawResult, Figure, Swatch};
use crate::theme;
use crate::{FigurePaths, ReportError};

/// One panel of neuron bars.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct StackedBarsPanel {
    /// Small title above the panel (may be empty).
    pub title: String,
    /// Number of neurons (bars).
    pub neurons: usize,
    /// Weights, neuron-major: `weights[j * features + i]` is feature i's weight on neuron j.
    pub weights: Vec<f64>,
}

/// Several stacked-bar panels sharing one feature legend.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StackedBarsFigure {
    /// Figure title (may be empty).
    pub title: String,
    /// The panels, laid out left to right, top to bottom.
    pub panels: Vec<StackedBarsPanel>,
    /// Number of features (segments per bar).
    pub features: usize,
    /// Legend labels, one per feature (empty: no legend).
    pub feature_labels: Vec<String>,
    /// x-axis description, e.g. "neuron".
    pub x_label: String,
    /// y-axis description, e.g. "weight".
    pub y_label: String,
    /// Segments with |weight| below this are not drawn (keeps near-zero slivers out). Default 1e-3.
    pub min_abs: f64,
    /// Panels per row; 0 puts all panels in one row.
    pub columns: usize,
    /// Figure size in pixels (width, height).
    pub size: (u32, u32),
}

impl Default for StackedBarsFigure {
    fn default() -> Self {
        Self {
            title: String::new(),
            panels: Vec::new(),
            features: 0,
            feature_labels: Vec::new(),
            x_label: String::new(),
            y_label: String::new(),
            min_abs: 1e-3,
            columns: 0,
            size: (900, 360),
        }
    }
}

/// Draws `fig` and writes `stem.svg` and `stem.png`: one filled `<rect>` per drawn segment.
///
/// Features take the categorical palette up to 10 features and a viridis gradient beyond.
pub fn stacked_bars(stem: &Path, fig: &StackedBarsFigure) -> Result<FigurePaths, ReportError> {
    render::render(stem, fig)
}

impl Figure for StackedBarsFigure {
    const NAME: &'static str = "stacked_bars";

    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn validate(&self) -> Result<(), String> {
        if self.panels.is_empty() {
            return Err("no panels".into());
        }
        if self.features == 0 {
            return Err("features must be positive".into());
        }
        if self.min_abs.is_nan() || self.min_abs < 0.0 {
            return Err(format!("min_abs must be >= 0, found {}", self.min_abs));
        }
        for (i, p) in self.panels.iter().enumerate() {
            if p.neurons == 0 {
                return Err(format!("panel {i}: no neurons"));
            }
            check_len(
                &format!("panel {i} weights"),
                p.weights.len(),
                p.neurons * self.features,
            )?;
        }
        if !self.feature_labels.is_empty() {
            check_len("feature_labels", self.feature_labels.len(), self.features)?;
        }
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let legend_w = if self.feature_labels.is_empty() {
            0
        } else {
            120
        };
        let (panels_area, legend) = render::frame(root, &self.title, legend_w)?;
        // One y range for all panels, so that bar heights compare across panels.
        let (mut lo, mut hi) = (0.0f64, 0.0f64);
        for p in &self.panels {
            for j in 0..p.neurons {
                let (neg, pos) = self.stack_extent(p, j);
                lo = lo.min(neg);
                hi = hi.max(pos);
            }
        }
        if hi - lo <= 0.0 {
            hi = 1.0;
        }
        let pad = 0.05 * (hi - lo);
        let range = (if lo < 0.0 { lo - pad } else { 0.0 }, hi + pad);
        for (panel, area) in
            self.panels
                .iter()
                .zip(render::grid(&panels_area, self.panels.len(), self.columns))
        {
            self.draw_panel(panel, &area, range)?;
        }
        if let Some(legend) = legend {
            let entries: Vec<_> = self
                .feature_labels
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    (
                        l.clone(),
                        Swatch::Box(theme::feature_colour(i, self.features)),
                    )
                })
                .collect();
            render::legend(&legend, &entries)?;
        }
        Ok(())
    }
}

impl StackedBarsFigure {
    fn drawn(&self, w: f64) -> bool {
        w.is_finite() && w.abs() >= self.min_abs && w != 0.0
    }

    /// (sum of negative weights, sum of positive weights) of neuron j.
    fn stack_extent(&self, p: &StackedBarsPanel, j: usize) -> (f64, f64) {
        let row = &p.weights[j * self.features..(j + 1) * self.features];
        row.iter()
            .filter(|w| self.drawn(**w))
            .fold(
                (0.0, 0.0),
                |(n, q), &w| {
                    if w < 0.0 {
                        (n + w, q)
                    } else {
                        (n, q + w)
                    }
                },
            )
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        p: &StackedBarsPanel,
        area: &DrawingArea<DB, Shift>,
        range: (f64, f64),
    ) -> DrawResult {
        let n = p.neurons;
        let label_of = |v: &f64| {
            let r = v.round();
            if (v - r).abs() < 1e-6 && r >= 0.0 && r < n as f64 {
                format!("{}", r as usize)
            } else {
                String::new()
            }
        };
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, theme::text(theme::PANEL_TITLE_SIZE))
            .margin(6)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), range.0..range.1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(228, 228, 228))
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .x_labels(n.min(20))
            .label_style(theme::text(theme::TICK_SIZE))
            .axis_desc_style(theme::text(theme::LABEL_SIZE))
            .x_label_formatter(&label_of)
            .y_label_formatter(&|v| render::fmt_num(*v))
            .draw()?;
        let half = 0.38;
        for j in 0..n {
            let (mut up, mut down) = (0.0, 0.0);
            let x = j as f64;
            for i in 0..self.features {
                let w = p.weights[j * self.features + i];
                if !self.drawn(w) {
                    continue;
                }
                let (a, b) = if w > 0.0 {
                    let a = up;
                    up += w;
                    (a, up)
                } else {
                    let a = down;
                    down += w;
                    (a, down)
                };
                chart.draw_series([Rectangle::new(
                    [(x - half, a), (x + half, b)],
                    theme::feature_colour(i, self.features).filled(),
                )])?;
            }
        }
        chart.draw_series([PathElement::new(
            vec![(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
            BLACK.stroke_width(1),
        )])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{check_outputs, count_tag};

    #[test]
    fn one_rect_per_nonzero_segment_positive_up_negative_down() {
        // 3 neurons × 4 features: a monosemantic neuron, a polysemantic one, the (2, −½) motif.
        let weights = vec![
            1.0, 0.0, 0.0, 0.0, //
            0.5, 0.4, 0.0, 0.3, //
            0.0, 0.0, 2.0, -0.5,
        ];
        let fig = StackedBarsFigure {
            title: "Neuron weights".into(),
            panels: vec![StackedBarsPanel {
                title: "p = 0.1".into(),
                neurons: 3,
                weights,
            }],
            features: 4,
            feature_labels: (0..4).map(|i| format!("feature {i}")).collect(),
            x_label: "neuron".into(),
            y_label: "weight".into(),
            size: (640, 360),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("neurons");
        let svg = check_outputs(
            &stacked_bars(&stem, &fig).unwrap(),
            &stem,
            (640, 360),
            "Neuron weights",
        );
        for t in ["p = 0.1", "feature 3", "neuron", "weight"] {
            assert!(svg.contains(t), "{t}");
        }
        // Background + 6 segments + 4 legend boxes.
        assert_eq!(count_tag(&svg, "rect"), 1 + 6 + 4);
        // The motif's negative segment (feature 3, red) hangs below the zero line, its positive
        // one (feature 2, green) sits above it.
        let rect_of = |colour: &str| -> (i32, i32) {
            let r = svg
                .split("<rect ")
                .skip(1)
                .filter(|r| r.contains(&format!("fill=\"{colour}\"")))
                .map(|r| r.split("/>").next().unwrap().to_string())
                .collect::<Vec<_>>();
            let attr = |s: &str, name: &str| -> i32 {
                let k = s.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                s[k..].split('"').next().unwrap().parse().unwrap()
            };
            // The last rect of that colour that is a bar (legend boxes are 18 wide).
            let bar = r.iter().rev().find(|s| attr(s, "width") != 18).unwrap();
            (attr(bar, "y"), attr(bar, "y") + attr(bar, "height"))
        };
        let (green_top, green_bottom) = rect_of("#2CA02C");
        let (red_top, red_bottom) = rect_of("#D62728");
        assert_eq!(green_bottom, red_top, "both segments meet at zero");
        assert!(green_top < green_bottom && red_top < red_bottom);
        assert!((green_bottom - green_top) > 3 * (red_bottom - red_top));
    }
}
