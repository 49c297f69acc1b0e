//! Line plots: measured curves, dashed theory, reference levels and a cloud of points.
//!
//! One chart type covers most of the paper's quantitative figures: D* against 1/(1 − S) with the
//! D_i scatter and horizontal lines at the polytope fractions (¾, ⅔, ½, ⅖, ⅜), loss curves with
//! their closed forms dashed beside them, the Saxe mode strengths a_α(t) with the sigmoid theory.
//! Each series is data the caller computed; this module only lays it out.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::render::{self, check_len, with_axes, DrawResult, Figure, Swatch};
use crate::theme;
use crate::{FigurePaths, ReportError};

/// A named curve.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Series {
    /// Legend label (empty: not in the legend).
    pub name: String,
    /// x values.
    pub x: Vec<f64>,
    /// y values, one per x; a non-finite value (or a non-positive one on a log axis) breaks the
    /// line.
    pub y: Vec<f64>,
    /// Dashed line: how theory curves are drawn.
    pub dashed: bool,
    /// Index into the categorical palette; `None` takes the series' own index, so a theory curve
    /// can share its measured curve's colour by giving the same index.
    pub colour: Option<usize>,
}

/// A horizontal reference line with a label at its right end (e.g. ⅖ for the pentagon).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RefLine {
    /// Height in data coordinates.
    pub y: f64,
    /// Label written above the line's right end.
    pub label: String,
}

/// Many small semi-transparent points (e.g. every D_i of every model).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ScatterOverlay {
    /// Legend label (empty: not in the legend).
    pub name: String,
    /// x values.
    pub x: Vec<f64>,
    /// y values, one per x.
    pub y: Vec<f64>,
    /// Index into the categorical palette; `None` draws dark grey.
    pub colour: Option<usize>,
}

/// A single-panel line plot.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LinePlot {
    /// Figure title (may be empty).
    pub title: String,
    /// x-axis description.
    pub x_label: String,
    /// y-axis description.
    pub y_label: String,
    /// Curves, drawn in order (solid or dashed).
    pub series: Vec<Series>,
    /// Horizontal reference lines, drawn light grey under the data.
    pub ref_lines: Vec<RefLine>,
    /// Point clouds, drawn under the curves.
    pub scatter: Vec<ScatterOverlay>,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// x range; `None` fits the data.
    pub x_range: Option<(f64, f64)>,
    /// y range; `None` fits the data and the reference lines.
    pub y_range: Option<(f64, f64)>,
    /// Figure size in pixels (width, height).
    pub size: (u32, u32),
}

impl Default for LinePlot {
    fn default() -> Self {
        Self {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: Vec::new(),
            ref_lines: Vec::new(),
            scatter: Vec::new(),
            log_x: false,
            log_y: false,
            x_range: None,
            y_range: None,
            size: (760, 480),
        }
    }
}

/// Draws `plot` and writes `stem.svg` and `stem.png`: one `<polyline>` per unbroken piece of a
/// solid series, one `<circle>` per scatter point.
pub fn line_plot(stem: &Path, plot: &LinePlot) -> Result<FigurePaths, ReportError> {
    render::render(stem, plot)
}

/// Grey of scatter points without a colour.
const SCATTER_GREY: RGBColor = RGBColor(60, 60, 60);

/// Splits (x, y) into drawable pieces: a point that cannot be drawn breaks the line.
fn pieces(x: &[f64], y: &[f64], log_x: bool, log_y: bool) -> Vec<Vec<(f64, f64)>> {
    let ok = |v: f64, log: bool| v.is_finite() && (!log || v > 0.0);
    let mut out = vec![Vec::new()];
    for (&a, &b) in x.iter().zip(y) {
        if ok(a, log_x) && ok(b, log_y) {
            out.last_mut().expect("never empty").push((a, b));
        } else if !out.last().expect("never empty").is_empty() {
            out.push(Vec::new());
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

impl LinePlot {
    fn series_colour(&self, i: usize) -> RGBColor {
        theme::categorical(self.series[i].colour.unwrap_or(i))
    }

    fn scatter_colour(s: &ScatterOverlay) -> RGBColor {
        s.colour.map(theme::categorical).unwrap_or(SCATTER_GREY)
    }

    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let usable = |v: f64, log: bool| v.is_finite() && (!log || v > 0.0);
        let xs = self
            .series
            .iter()
            .map(|s| (&s.x, &s.y))
            .chain(self.scatter.iter().map(|s| (&s.x, &s.y)))
            .flat_map(|(x, y)| x.iter().zip(y.iter()))
            .filter(|(a, b)| usable(**a, self.log_x) && usable(**b, self.log_y));
        let pts: Vec<(f64, f64)> = xs.map(|(a, b)| (*a, *b)).collect();
        let x = self.x_range.unwrap_or_else(|| {
            render::padded_range(render::finite_extent(pts.iter().map(|p| p.0)), self.log_x)
        });
        let y = self.y_range.unwrap_or_else(|| {
            let refs = self
                .ref_lines
                .iter()
                .map(|r| r.y)
                .filter(|&v| usable(v, self.log_y));
            render::padded_range(
                render::finite_extent(pts.iter().map(|p| p.1).chain(refs)),
                self.log_y,
            )
        });
        (x, y)
    }

    fn draw_chart<DB, X, Y>(
        &self,
        area: &DrawingArea<DB, Shift>,
        x: X,
        y: Y,
        x_hi: f64,
    ) -> DrawResult
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

        let ref_style = theme::text(theme::TICK_SIZE)
            .color(&RGBColor(90, 90, 90))
            .pos(Pos::new(HPos::Right, VPos::Bottom));
        for r in &self.ref_lines {
            if !r.y.is_finite() || (self.log_y && r.y <= 0.0) {
                continue;
            }
            let (x0, x1) = (
                chart.x_range().start.min(chart.x_range().end),
                chart.x_range().end.max(chart.x_range().start),
            );
            chart.draw_series([PathElement::new(
                vec![(x0, r.y), (x1, r.y)],
                RGBColor(150, 150, 150).stroke_width(1),
            )])?;
            chart.draw_series([Text::new(r.label.clone(), (x_hi, r.y), ref_style.clone())])?;
        }
        for s in &self.scatter {
            let c = Self::scatter_colour(s);
            for piece in pieces(&s.x, &s.y, self.log_x, self.log_y) {
                chart.draw_series(
                    piece
                        .into_iter()
                        .map(|p| Circle::new(p, 2, c.mix(0.35).filled())),
                )?;
            }
        }
        for (i, s) in self.series.iter().enumerate() {
            let style = self.series_colour(i).stroke_width(2);
            for piece in pieces(&s.x, &s.y, self.log_x, self.log_y) {
                if s.dashed {
                    chart.draw_series(DashedLineSeries::new(piece, 7, 5, style))?;
                } else {
                    chart.draw_series(LineSeries::new(piece, style))?;
                }
            }
        }
        Ok(())
    }
}

impl Figure for LinePlot {
    const NAME: &'static str = "line_plot";

    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn validate(&self) -> Result<(), String> {
        for s in &self.series {
            check_len(&format!("series {:?} y", s.name), s.y.len(), s.x.len())?;
        }
        for s in &self.scatter {
            check_len(&format!("scatter {:?} y", s.name), s.y.len(), s.x.len())?;
        }
        for (name, r, log) in [
            ("x_range", self.x_range, self.log_x),
            ("y_range", self.y_range, self.log_y),
        ] {
            if let Some((lo, hi)) = r {
                if !(lo.is_finite() && hi.is_finite() && lo < hi && (!log || lo > 0.0)) {
                    return Err(format!(
                        "{name} must have lo < hi (and lo > 0 on a log axis), found [{lo}, {hi}]"
                    ));
                }
            }
        }
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let mut entries: Vec<(String, Swatch)> = Vec::new();
        for (i, s) in self.series.iter().enumerate() {
            if !s.name.is_empty() {
                let c = self.series_colour(i);
                let sw = if s.dashed {
                    Swatch::Dashed(c)
                } else {
                    Swatch::Line(c)
                };
                entries.push((s.name.clone(), sw));
            }
        }
        for s in &self.scatter {
            if !s.name.is_empty() {
                entries.push((s.name.clone(), Swatch::Dot(Self::scatter_colour(s))));
            }
        }
        let legend_w = if entries.is_empty() { 0 } else { 170 };
        let (plot, legend) = render::frame(root, &self.title, legend_w)?;
        let ((x0, x1), (y0, y1)) = self.ranges();
        with_axes!(self.log_x, self.log_y, x0..x1, y0..y1, |x, y| self
            .draw_chart(&plot, x, y, x1))?;
        if let Some(legend) = legend {
            render::legend(&legend, &entries)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{check_outputs, count_tag};

    #[test]
    fn pieces_break_at_undrawable_points() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [1.0, f64::NAN, 3.0, 0.0, 5.0];
        assert_eq!(pieces(&x, &y, false, false).len(), 2);
        // On a log y axis the 0 breaks the line too.
        assert_eq!(
            pieces(&x, &y, false, true),
            vec![vec![(1.0, 1.0)], vec![(3.0, 3.0)], vec![(5.0, 5.0)]]
        );
    }

    #[test]
    fn dimensionality_plot_with_levels_scatter_and_theory() {
        let xs: Vec<f64> = (0..30).map(|i| 10f64.powf(i as f64 / 10.0)).collect();
        let d_star: Vec<f64> = xs.iter().map(|x| 1.0 / x.sqrt().max(1.0)).collect();
        let n_points = 200;
        let sx: Vec<f64> = (0..n_points).map(|i| xs[i % 30]).collect();
        let sy: Vec<f64> = (0..n_points)
            .map(|i| [0.75, 2.0 / 3.0, 0.5, 0.4, 0.375][i % 5])
            .collect();
        let plot = LinePlot {
            title: "Dimensions per feature".into(),
            x_label: "1/(1-S)".into(),
            y_label: "D*".into(),
            series: vec![
                Series {
                    name: "measured D*".into(),
                    x: xs.clone(),
                    y: d_star.clone(),
                    ..Default::default()
                },
                Series {
                    name: "theory".into(),
                    x: xs.clone(),
                    y: d_star.iter().map(|d| d * 1.01).collect(),
                    dashed: true,
                    colour: Some(0),
                },
            ],
            ref_lines: ["¾", "⅔", "½", "⅖", "⅜"]
                .iter()
                .zip([0.75, 2.0 / 3.0, 0.5, 0.4, 0.375])
                .map(|(l, y)| RefLine {
                    y,
                    label: l.to_string(),
                })
                .collect(),
            scatter: vec![ScatterOverlay {
                name: "D_i".into(),
                x: sx,
                y: sy,
                colour: None,
            }],
            log_x: true,
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("dstar");
        let svg = check_outputs(
            &line_plot(&stem, &plot).unwrap(),
            &stem,
            (760, 480),
            "Dimensions per feature",
        );
        for t in [
            "1/(1-S)",
            "D*",
            "measured D*",
            "theory",
            "D_i",
            "¾",
            "⅔",
            "½",
            "⅖",
            "⅜",
        ] {
            assert!(svg.contains(t), "{t}");
        }
        // One circle per scatter point plus the legend dot; semi-transparent.
        assert_eq!(count_tag(&svg, "circle"), n_points + 1);
        assert!(svg.contains("opacity=\"0.35\""));
        // The dashed series is drawn as many short pieces, the solid one as one polyline.
        let blue_2px = svg
            .split("<polyline ")
            .skip(1)
            .filter(|r| r.contains("stroke=\"#1F77B4\" stroke-width=\"2\""))
            .count();
        assert!(blue_2px > 10, "dashes: {blue_2px}");
    }

    #[test]
    fn log_range_must_be_positive() {
        let plot = LinePlot {
            log_y: true,
            y_range: Some((0.0, 1.0)),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let err = line_plot(&dir.path().join("x"), &plot).unwrap_err();
        assert!(err.to_string().contains("y_range"), "{err}");
    }
}
