//! Scatter plots of one quantity against another, e.g. vulnerability against 1/D*.
//!
//! A scatter is the figure for "tracks": the adversarial-robustness claim is that vulnerability
//! rises with features per dimension, which reads best as points, optionally labelled (the
//! density of each model) and coloured by a third value on a sequential colormap.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::render::{self, check_len, with_axes, DrawResult, Figure};
use crate::theme::{self, Colormap};
use crate::{FigurePaths, ReportError};

/// A single-panel scatter plot.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ScatterPlot {
    /// Figure title (may be empty).
    pub title: String,
    /// x-axis description.
    pub x_label: String,
    /// y-axis description.
    pub y_label: String,
    /// x values.
    pub x: Vec<f64>,
    /// y values, one per x.
    pub y: Vec<f64>,
    /// Text beside each point: empty for none, else one per point (individual ones may be empty).
    pub labels: Vec<String>,
    /// Colour value per point on `colormap` over `colour_range`: empty for one colour.
    pub colour_values: Vec<f64>,
    /// Colormap for `colour_values`. Default viridis.
    pub colormap: Colormap,
    /// Range mapped onto the colormap. Default [0, 1].
    pub colour_range: (f64, f64),
    /// Text beside the colourbar (shown only with `colour_values`).
    pub colour_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Figure size in pixels (width, height).
    pub size: (u32, u32),
}

impl Default for ScatterPlot {
    fn default() -> Self {
        Self {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            x: Vec::new(),
            y: Vec::new(),
            labels: Vec::new(),
            colour_values: Vec::new(),
            colormap: Colormap::Viridis,
            colour_range: (0.0, 1.0),
            colour_label: String::new(),
            log_x: false,
            log_y: false,
            size: (640, 480),
        }
    }
}

/// Draws `plot` and writes `stem.svg` and `stem.png`: one `<circle>` per drawable point (points
/// that are not finite, or not positive on a log axis, are skipped).
pub fn scatter(stem: &Path, plot: &ScatterPlot) -> Result<FigurePaths, ReportError> {
    render::render(stem, plot)
}

/// Colour of points without a colour value.
const POINT: RGBColor = RGBColor(31, 119, 180);

impl ScatterPlot {
    fn drawable(&self) -> impl Iterator<Item = (usize, (f64, f64))> + '_ {
        let ok = |v: f64, log: bool| v.is_finite() && (!log || v > 0.0);
        self.x
            .iter()
            .zip(&self.y)
            .enumerate()
            .filter(move |(_, (a, b))| ok(**a, self.log_x) && ok(**b, self.log_y))
            .map(|(i, (a, b))| (i, (*a, *b)))
    }

    fn draw_chart<DB, X, Y>(&self, area: &DrawingArea<DB, Shift>, x: X, y: Y) -> DrawResult
    where
        DB: DrawingBackend,
        X: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
        Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
        X::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
        Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(x, y)?;
        render::draw_axes(&mut chart, &self.x_label, &self.y_label, true)?;
        chart.draw_series(self.drawable().map(|(i, p)| {
            let c = match self.colour_values.get(i) {
                Some(&v) => self.colormap.map_range(v, self.colour_range),
                None => POINT,
            };
            Circle::new(p, 5, c.filled())
        }))?;
        let style = theme::text(theme::TICK_SIZE).pos(Pos::new(HPos::Left, VPos::Bottom));
        chart.draw_series(self.drawable().filter_map(|(i, p)| {
            let l = self.labels.get(i).filter(|l| !l.is_empty())?;
            Some(EmptyElement::at(p) + Text::new(l.clone(), (7, -3), style.clone()))
        }))?;
        Ok(())
    }
}

impl Figure for ScatterPlot {
    const NAME: &'static str = "scatter";

    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn validate(&self) -> Result<(), String> {
        check_len("y", self.y.len(), self.x.len())?;
        if !self.labels.is_empty() {
            check_len("labels", self.labels.len(), self.x.len())?;
        }
        if !self.colour_values.is_empty() {
            check_len("colour_values", self.colour_values.len(), self.x.len())?;
        }
        let (lo, hi) = self.colour_range;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(format!(
                "colour_range must have lo < hi, found [{lo}, {hi}]"
            ));
        }
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let legend_w = if self.colour_values.is_empty() { 0 } else { 90 };
        let (plot, legend) = render::frame(root, &self.title, legend_w)?;
        let pts: Vec<(f64, f64)> = self.drawable().map(|(_, p)| p).collect();
        let (x0, x1) =
            render::padded_range(render::finite_extent(pts.iter().map(|p| p.0)), self.log_x);
        let (y0, y1) =
            render::padded_range(render::finite_extent(pts.iter().map(|p| p.1)), self.log_y);
        with_axes!(self.log_x, self.log_y, x0..x1, y0..y1, |x, y| self
            .draw_chart(&plot, x, y))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{check_outputs, count_tag};

    #[test]
    fn one_circle_per_drawable_point_with_labels() {
        let plot = ScatterPlot {
            title: "Vulnerability tracks features per dimension".into(),
            x_label: "1/D*".into(),
            y_label: "vulnerability".into(),
            x: vec![1.0, 1.5, 2.0, 3.0, -1.0],
            y: vec![1.0, 1.4, 2.2, 3.5, 2.0],
            labels: vec![
                "p=1".into(),
                "p=0.3".into(),
                String::new(),
                "p=0.03".into(),
                "bad".into(),
            ],
            colour_values: vec![0.0, 0.3, 0.6, 1.0, 0.5],
            colour_label: "sparsity".into(),
            log_x: true,
            log_y: true,
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("vuln");
        let svg = check_outputs(
            &scatter(&stem, &plot).unwrap(),
            &stem,
            (640, 480),
            "Vulnerability tracks features per dimension",
        );
        for t in [
            "1/D*",
            "vulnerability",
            "p=1",
            "p=0.3",
            "p=0.03",
            "sparsity",
        ] {
            assert!(svg.contains(t), "{t}");
        }
        // The point at x = −1 cannot sit on a log axis: skipped with its label.
        assert_eq!(count_tag(&svg, "circle"), 4);
        assert!(!svg.contains("bad"));
        assert!(svg.contains("fill=\"#440154\"") && svg.contains("fill=\"#FDE725\""));
    }
}
