//! Phase diagrams: which solution wins, over density × relative importance, with theory on top.
//!
//! The paper's phase diagrams (n = 2 → m = 1, n = 3 → m = 2) colour each grid cell by the phase the
//! trained model lands in, on two log axes, and overlay the analytic boundaries. Drawing both in
//! one chart is the check: away from the boundaries the colours must agree with the curves. Cells
//! are given by their centres; edges sit half-way between (geometric means on log axes).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::render::{self, check_len, with_axes, DrawResult, Figure, Swatch};
use crate::{FigurePaths, ReportError};

/// A named polyline in data coordinates (a theory boundary).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Polyline {
    /// Legend label; boundaries sharing a label share one legend entry.
    pub label: String,
    /// Points, in data coordinates; points outside the axes are dropped (the line breaks there).
    pub points: Vec<(f64, f64)>,
}

/// A categorical grid over two (by default log) axes with boundary curves.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PhaseDiagram {
    /// Figure title (may be empty).
    pub title: String,
    /// x-axis description, e.g. "feature density p".
    pub x_label: String,
    /// y-axis description, e.g. "relative importance r".
    pub y_label: String,
    /// Cell centres along x, increasing.
    pub x_centres: Vec<f64>,
    /// Cell centres along y, increasing.
    pub y_centres: Vec<f64>,
    /// Phase index of each cell into `phase_names`, row-major: `phases[iy * nx + ix]`;
    /// `None` leaves the cell blank.
    pub phases: Vec<Option<usize>>,
    /// Name of each phase, in the legend; phase k takes colour k of the phase palette.
    pub phase_names: Vec<String>,
    /// Theory boundaries drawn over the grid.
    pub boundaries: Vec<Polyline>,
    /// Logarithmic x axis. Default true.
    pub log_x: bool,
    /// Logarithmic y axis. Default true.
    pub log_y: bool,
    /// Figure size in pixels (width, height).
    pub size: (u32, u32),
}

impl Default for PhaseDiagram {
    fn default() -> Self {
        Self {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            x_centres: Vec::new(),
            y_centres: Vec::new(),
            phases: Vec::new(),
            phase_names: Vec::new(),
            boundaries: Vec::new(),
            log_x: true,
            log_y: true,
            size: (720, 520),
        }
    }
}

/// Light, distinct phase colours (ColorBrewer "Paired", light members first).
const PHASE_COLOURS: [RGBColor; 8] = [
    RGBColor(166, 206, 227),
    RGBColor(251, 154, 153),
    RGBColor(178, 223, 138),
    RGBColor(253, 191, 111),
    RGBColor(202, 178, 214),
    RGBColor(255, 255, 153),
    RGBColor(31, 120, 180),
    RGBColor(227, 26, 28),
];

/// Colour of phase `k`.
pub fn phase_colour(k: usize) -> RGBColor {
    PHASE_COLOURS[k % PHASE_COLOURS.len()]
}

/// Draws `fig` and writes `stem.svg` and `stem.png`: one filled `<rect>` per non-blank cell, one
/// `<polyline>` per boundary piece.
pub fn phase_diagram(stem: &Path, fig: &PhaseDiagram) -> Result<FigurePaths, ReportError> {
    render::render(stem, fig)
}

/// Cell edges from increasing centres: midpoints (geometric on log axes), ends mirrored.
fn edges(centres: &[f64], log: bool) -> Vec<f64> {
    let to_axis = |v: f64| if log { v.ln() } else { v };
    let from_axis = |v: f64| if log { v.exp() } else { v };
    let t: Vec<f64> = centres.iter().map(|&c| to_axis(c)).collect();
    let n = t.len();
    let half = if n > 1 {
        (t[1] - t[0]) / 2.0
    } else if log {
        0.5
    } else {
        0.5 * t[0].abs().max(1.0)
    };
    let half_end = if n > 1 {
        (t[n - 1] - t[n - 2]) / 2.0
    } else {
        half
    };
    let mut e = Vec::with_capacity(n + 1);
    e.push(t[0] - half);
    for k in 1..n {
        e.push((t[k - 1] + t[k]) / 2.0);
    }
    e.push(t[n - 1] + half_end);
    e.into_iter().map(from_axis).collect()
}

impl Figure for PhaseDiagram {
    const NAME: &'static str = "phase_diagram";

    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn validate(&self) -> Result<(), String> {
        for (name, c, log) in [
            ("x_centres", &self.x_centres, self.log_x),
            ("y_centres", &self.y_centres, self.log_y),
        ] {
            if c.is_empty() {
                return Err(format!("{name} is empty"));
            }
            if c.iter().any(|v| !v.is_finite() || (log && *v <= 0.0)) {
                return Err(format!(
                    "{name} must be finite (and positive on a log axis)"
                ));
            }
            if c.windows(2).any(|w| w[1] <= w[0]) {
                return Err(format!("{name} must be strictly increasing"));
            }
        }
        check_len(
            "phases",
            self.phases.len(),
            self.x_centres.len() * self.y_centres.len(),
        )?;
        if let Some(k) = self
            .phases
            .iter()
            .flatten()
            .find(|&&k| k >= self.phase_names.len())
        {
            return Err(format!(
                "phase index {k} but only {} phase_names",
                self.phase_names.len()
            ));
        }
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let (plot, legend) = render::frame(root, &self.title, 170)?;
        let xe = edges(&self.x_centres, self.log_x);
        let ye = edges(&self.y_centres, self.log_y);
        let xr = xe[0]..xe[xe.len() - 1];
        let yr = ye[0]..ye[ye.len() - 1];
        with_axes!(self.log_x, self.log_y, xr, yr, |x, y| self
            .draw_chart(&plot, x, y, &xe, &ye))?;
        if let Some(legend) = legend {
            let mut entries: Vec<(String, Swatch)> = self
                .phase_names
                .iter()
                .enumerate()
                .map(|(k, n)| (n.clone(), Swatch::Box(phase_colour(k))))
                .collect();
            for b in &self.boundaries {
                if !b.label.is_empty() && !entries.iter().any(|(l, _)| *l == b.label) {
                    entries.push((b.label.clone(), Swatch::Line(BLACK)));
                }
            }
            render::legend(&legend, &entries)?;
        }
        Ok(())
    }
}

impl PhaseDiagram {
    fn draw_chart<DB, X, Y>(
        &self,
        area: &DrawingArea<DB, Shift>,
        x: X,
        y: Y,
        xe: &[f64],
        ye: &[f64],
    ) -> DrawResult
    where
        DB: DrawingBackend,
        X: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
        Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
        X::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
        Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(area)
            .margin(8)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(x, y)?;
        let nx = self.x_centres.len();
        chart.draw_series(self.phases.iter().enumerate().filter_map(|(i, ph)| {
            let (ix, iy) = (i % nx, i / nx);
            ph.map(|k| {
                Rectangle::new(
                    [(xe[ix], ye[iy]), (xe[ix + 1], ye[iy + 1])],
                    phase_colour(k).filled(),
                )
            })
        }))?;
        render::draw_axes(&mut chart, &self.x_label, &self.y_label, false)?;
        let (x_lo, x_hi) = (xe[0], xe[xe.len() - 1]);
        let (y_lo, y_hi) = (ye[0], ye[ye.len() - 1]);
        let inside = |&(px, py): &(f64, f64)| {
            px.is_finite() && py.is_finite() && px >= x_lo && px <= x_hi && py >= y_lo && py <= y_hi
        };
        for b in &self.boundaries {
            for piece in b.points.split(|p| !inside(p)).filter(|s| s.len() >= 2) {
                chart.draw_series([PathElement::new(piece.to_vec(), BLACK.stroke_width(2))])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{check_outputs, count_tag};

    #[test]
    fn edges_are_geometric_midpoints_on_log_axes() {
        let e = edges(&[0.01, 0.1, 1.0], true);
        let want = [
            0.01 / 10f64.sqrt(),
            0.1 / 10f64.sqrt(),
            10f64.sqrt() / 10.0,
            10f64.sqrt(),
        ];
        for (a, b) in e.iter().zip(want) {
            assert!((a / b - 1.0).abs() < 1e-12, "{e:?}");
        }
        assert_eq!(edges(&[1.0, 2.0, 3.0], false), vec![0.5, 1.5, 2.5, 3.5]);
    }

    #[test]
    fn one_rect_per_cell_and_the_theory_curve_on_top() {
        // The 2 → 1 phase diagram from theory: extra feature dropped / antipodal / first dropped.
        let ps: Vec<f64> = (0..12)
            .map(|i| 0.01 * 10f64.powf(2.0 * i as f64 / 11.0))
            .collect();
        let rs: Vec<f64> = (0..10)
            .map(|i| 0.1 * 10f64.powf(2.0 * i as f64 / 9.0))
            .collect();
        let mut phases = Vec::new();
        for &r in &rs {
            for &p in &ps {
                let lo = 2.0 * p / (4.0 - 5.0 * p);
                let hi = (4.0 - 5.0 * p) / (2.0 * p);
                let k = if p > 4.0 / 7.0 {
                    if r < 1.0 {
                        0
                    } else {
                        2
                    }
                } else if r < lo {
                    0
                } else if r > hi {
                    2
                } else {
                    1
                };
                phases.push(Some(k));
            }
        }
        phases[0] = None;
        let boundary = |f: fn(f64) -> f64| Polyline {
            label: "theory".into(),
            points: (0..100)
                .map(|i| 0.01 * 10f64.powf(2.0 * i as f64 / 99.0))
                .filter(|&p| p < 4.0 / 7.0)
                .map(|p| (p, f(p)))
                .collect(),
        };
        let fig = PhaseDiagram {
            title: "Phase diagram 2 to 1".into(),
            x_label: "density p".into(),
            y_label: "relative importance r".into(),
            x_centres: ps,
            y_centres: rs,
            phases,
            phase_names: vec![
                "extra dropped".into(),
                "antipodal".into(),
                "first dropped".into(),
            ],
            boundaries: vec![
                boundary(|p| 2.0 * p / (4.0 - 5.0 * p)),
                boundary(|p| (4.0 - 5.0 * p) / (2.0 * p)),
            ],
            size: (720, 520),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("phase");
        let svg = check_outputs(
            &phase_diagram(&stem, &fig).unwrap(),
            &stem,
            (720, 520),
            "Phase diagram 2 to 1",
        );
        for t in [
            "density p",
            "relative importance r",
            "antipodal",
            "first dropped",
            "theory",
        ] {
            assert!(svg.contains(t), "{t}");
        }
        // Filled rects: background + 119 cells (one blank) + 3 legend boxes.
        let filled = count_tag(&svg, "rect")
            - svg
                .split("<rect ")
                .skip(1)
                .filter(|r| r.split("/>").next().unwrap().contains("fill=\"none\""))
                .count();
        assert_eq!(filled, 1 + 119 + 3);
        // "theory" appears once in the legend though two curves carry it.
        assert_eq!(svg.matches("theory").count(), 1);
        // Both boundaries are drawn as 2-px black polylines (plus the legend swatch).
        let black2 = svg
            .split("<polyline ")
            .skip(1)
            .filter(|r| r.contains("stroke=\"#000000\" stroke-width=\"2\""))
            .count();
        assert_eq!(black2, 3);
    }

    #[test]
    fn bad_phase_index_is_rejected() {
        let fig = PhaseDiagram {
            x_centres: vec![0.1, 1.0],
            y_centres: vec![1.0],
            phases: vec![Some(0), Some(3)],
            phase_names: vec!["a".into()],
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let err = phase_diagram(&dir.path().join("x"), &fig).unwrap_err();
        assert!(err.to_string().contains("phase index 3"), "{err}");
    }
}
