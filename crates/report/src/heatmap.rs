//! Matrix heatmaps: WᵀW (with the bias beside it), RSMs, cosine-similarity tables.
//!
//! The paper shows WᵀW on a blue–white–red scale fixed at [−1, 1], so that a panel's colours mean
//! the same in every instance: white is orthogonal, red aligned, blue antipodal. The range is
//! therefore fixed by the caller, never fitted to the data. Cells are laid out by hand (square,
//! one `<rect>` each) rather than through a chart, which keeps them square at any panel size.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

use crate::render::{self, check_len, DrawResult, Figure};
use crate::theme::{self, Colormap};
use crate::{FigurePaths, ReportError};

/// One matrix panel.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct HeatmapPanel {
    /// Small title above the panel, e.g. "p = 0.05" (may be empty).
    pub title: String,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// The matrix, row-major, `rows × cols` values; NaN is drawn grey.
    pub values: Vec<f64>,
    /// Optional vector of `rows` values drawn as a separate one-column strip to the right
    /// (the bias b beside WᵀW).
    pub bias: Option<Vec<f64>>,
    /// Labels of the rows, drawn on the left: empty for none, else `rows` labels.
    pub row_labels: Vec<String>,
    /// Labels of the columns, drawn below: empty for none, else `cols` labels.
    pub col_labels: Vec<String>,
}

/// Several heatmap panels side by side with one shared colourbar.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HeatmapFigure {
    /// Figure title (may be empty).
    pub title: String,
    /// The panels, laid out left to right, top to bottom.
    pub panels: Vec<HeatmapPanel>,
    /// Value range mapped onto the colormap's ends; values outside are clamped. Default [−1, 1].
    pub range: (f64, f64),
    /// The colormap. Default blue–white–red.
    pub colormap: Colormap,
    /// Text beside the colourbar (may be empty).
    pub colourbar_label: String,
    /// Caption under the bias strip, e.g. "b" (may be empty).
    pub bias_label: String,
    /// Write each cell's value (2 decimals) into it when cells are large enough.
    pub annotate: bool,
    /// Panels per row; 0 puts all panels in one row.
    pub columns: usize,
    /// Figure size in pixels (width, height).
    pub size: (u32, u32),
}

impl Default for HeatmapFigure {
    fn default() -> Self {
        Self {
            title: String::new(),
            panels: Vec::new(),
            range: (-1.0, 1.0),
            colormap: Colormap::BlueWhiteRed,
            colourbar_label: String::new(),
            bias_label: String::new(),
            annotate: false,
            columns: 0,
            size: (900, 320),
        }
    }
}

/// Draws `fig` and writes `stem.svg` and `stem.png`.
///
/// One filled `<rect>` per matrix cell and per bias entry; the shared colourbar sits on the right.
pub fn heatmap(stem: &Path, fig: &HeatmapFigure) -> Result<FigurePaths, ReportError> {
    render::render(stem, fig)
}

/// Width of the colourbar strip.
const COLOURBAR_WIDTH: u32 = 90;

impl Figure for HeatmapFigure {
    const NAME: &'static str = "heatmap";

    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn validate(&self) -> Result<(), String> {
        if self.panels.is_empty() {
            return Err("no panels".into());
        }
        let (lo, hi) = self.range;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(format!(
                "range must be finite with lo < hi, found [{lo}, {hi}]"
            ));
        }
        for (i, p) in self.panels.iter().enumerate() {
            if p.rows == 0 || p.cols == 0 {
                return Err(format!("panel {i}: empty matrix {}×{}", p.rows, p.cols));
            }
            check_len(
                &format!("panel {i} values"),
                p.values.len(),
                p.rows * p.cols,
            )?;
            if let Some(b) = &p.bias {
                check_len(&format!("panel {i} bias"), b.len(), p.rows)?;
            }
            if !p.row_labels.is_empty() {
                check_len(&format!("panel {i} row_labels"), p.row_labels.len(), p.rows)?;
            }
            if !p.col_labels.is_empty() {
                check_len(&format!("panel {i} col_labels"), p.col_labels.len(), p.cols)?;
            }
        }
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let (panels_area, legend) = render::frame(root, &self.title, COLOURBAR_WIDTH)?;
        for (panel, area) in
            self.panels
                .iter()
                .zip(render::grid(&panels_area, self.panels.len(), self.columns))
        {
            self.draw_panel(panel, &area)?;
        }
        if let Some(legend) = legend {
            render::colourbar(&legend, self.colormap, self.range, &self.colourbar_label)?;
        }
        Ok(())
    }
}

impl HeatmapFigure {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        p: &HeatmapPanel,
        area: &DrawingArea<DB, Shift>,
    ) -> DrawResult {
        let (pw, ph) = area.dim_in_pixel();
        let (pw, ph) = (pw as f64, ph as f64);
        let tick = theme::text(theme::TICK_SIZE);
        let text_w = |s: &str| -> f64 {
            area.estimate_text_size(s, &tick)
                .map(|(w, _)| w as f64)
                .unwrap_or(s.chars().count() as f64 * 7.0)
        };

        let mut top = 4.0;
        if !p.title.is_empty() {
            area.draw(&Text::new(
                p.title.clone(),
                ((pw / 2.0) as i32, 4),
                theme::text(theme::PANEL_TITLE_SIZE).pos(Pos::new(HPos::Center, VPos::Top)),
            ))?;
            top += 22.0;
        }
        let row_label_w = p.row_labels.iter().map(|s| text_w(s)).fold(0.0, f64::max);
        let col_label_w = p.col_labels.iter().map(|s| text_w(s)).fold(0.0, f64::max);
        let left = 4.0
            + if row_label_w > 0.0 {
                row_label_w + 6.0
            } else {
                0.0
            };
        let bias_cols = if p.bias.is_some() { 1.0 } else { 0.0 };
        let gap = if p.bias.is_some() { 8.0 } else { 0.0 };
        let avail_w = (pw - left - 4.0 - gap).max(1.0);

        // The cell size depends on whether the column labels must be rotated, which depends on
        // the cell size: decide with the upright height first, then re-fit if rotated.
        let has_bottom =
            !p.col_labels.is_empty() || (p.bias.is_some() && !self.bias_label.is_empty());
        let upright_bottom = if has_bottom { 20.0 } else { 4.0 };
        let fit = |bottom: f64| {
            let avail_h = (ph - top - bottom).max(1.0);
            (avail_w / (p.cols as f64 + bias_cols)).min(avail_h / p.rows as f64)
        };
        let mut cell = fit(upright_bottom);
        let rotate = col_label_w > cell - 2.0;
        if rotate {
            cell = fit(col_label_w.max(16.0) + 8.0);
        }
        let cell = cell.max(1.0);

        let total_w = cell * (p.cols as f64 + bias_cols) + gap;
        let x0 = left + ((pw - left - 4.0 - total_w) / 2.0).max(0.0);
        let y0 = top;
        let px = |x: f64| x.round() as i32;

        for r in 0..p.rows {
            for c in 0..p.cols {
                let v = p.values[r * p.cols + c];
                let colour = self.colormap.map_range(v, self.range);
                let (xa, xb) = (x0 + c as f64 * cell, x0 + (c + 1) as f64 * cell);
                let (ya, yb) = (y0 + r as f64 * cell, y0 + (r + 1) as f64 * cell);
                area.draw(&Rectangle::new(
                    [(px(xa), px(ya)), (px(xb), px(yb))],
                    colour.filled(),
                ))?;
                if self.annotate && cell >= 24.0 {
                    self.annotate_cell(area, v, colour, ((xa + xb) / 2.0, (ya + yb) / 2.0))?;
                }
            }
        }
        let matrix_right = x0 + p.cols as f64 * cell;
        let matrix_bottom = y0 + p.rows as f64 * cell;
        area.draw(&Rectangle::new(
            [(px(x0), px(y0)), (px(matrix_right), px(matrix_bottom))],
            RGBColor(80, 80, 80).stroke_width(1),
        ))?;

        if let Some(bias) = &p.bias {
            let bx = matrix_right + gap;
            for (r, &v) in bias.iter().enumerate() {
                let colour = self.colormap.map_range(v, self.range);
                let (ya, yb) = (y0 + r as f64 * cell, y0 + (r + 1) as f64 * cell);
                area.draw(&Rectangle::new(
                    [(px(bx), px(ya)), (px(bx + cell), px(yb))],
                    colour.filled(),
                ))?;
                if self.annotate && cell >= 24.0 {
                    self.annotate_cell(area, v, colour, (bx + cell / 2.0, (ya + yb) / 2.0))?;
                }
            }
            area.draw(&Rectangle::new(
                [(px(bx), px(y0)), (px(bx + cell), px(matrix_bottom))],
                RGBColor(80, 80, 80).stroke_width(1),
            ))?;
            if !self.bias_label.is_empty() {
                area.draw(&Text::new(
                    self.bias_label.clone(),
                    (px(bx + cell / 2.0), px(matrix_bottom + 4.0)),
                    tick.pos(Pos::new(HPos::Center, VPos::Top)),
                ))?;
            }
        }

        for (r, label) in p.row_labels.iter().enumerate() {
            area.draw(&Text::new(
                label.clone(),
                (px(x0 - 4.0), px(y0 + (r as f64 + 0.5) * cell)),
                tick.pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
        }
        for (c, label) in p.col_labels.iter().enumerate() {
            let x = px(x0 + (c as f64 + 0.5) * cell);
            let style = if rotate {
                tick.transform(FontTransform::Rotate90)
                    .pos(Pos::new(HPos::Left, VPos::Center))
            } else {
                tick.pos(Pos::new(HPos::Center, VPos::Top))
            };
            area.draw(&Text::new(
                label.clone(),
                (x, px(matrix_bottom + 4.0)),
                style,
            ))?;
        }
        Ok(())
    }

    fn annotate_cell<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        v: f64,
        background: RGBColor,
        (x, y): (f64, f64),
    ) -> DrawResult {
        let luminance =
            0.299 * background.0 as f64 + 0.587 * background.1 as f64 + 0.114 * background.2 as f64;
        let colour = if luminance < 110.0 { WHITE } else { BLACK };
        let label = if v.is_finite() {
            format!("{v:.2}")
        } else {
            "–".into()
        };
        area.draw(&Text::new(
            label,
            (x.round() as i32, y.round() as i32),
            theme::text(11.0)
                .color(&colour)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{check_outputs, count_tag};

    fn wtw_panel(title: &str, n: usize, with_bias: bool) -> HeatmapPanel {
        // An antipodal-pair-like pattern: +1 on the diagonal, −1 between features 0 and 1.
        let mut values = vec![0.0; n * n];
        for i in 0..n {
            values[i * n + i] = 1.0;
        }
        values[1] = -1.0;
        values[n] = -1.0;
        HeatmapPanel {
            title: title.into(),
            rows: n,
            cols: n,
            values,
            bias: with_bias.then(|| (0..n).map(|i| -0.1 * i as f64).collect()),
            ..Default::default()
        }
    }

    /// Filled rectangles in the SVG (frames are drawn with fill="none").
    fn filled_rects(svg: &str) -> usize {
        let frames = svg
            .split("<rect ")
            .skip(1)
            .filter(|r| r.split("/>").next().unwrap().contains("fill=\"none\""))
            .count();
        count_tag(svg, "rect") - frames
    }

    #[test]
    fn one_rect_per_cell_and_bias_entry_in_every_panel() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("wtw");
        let fig = HeatmapFigure {
            title: "W^T W across densities".into(),
            panels: vec![
                wtw_panel("p = 1", 5, true),
                wtw_panel("p = 0.05", 5, true),
                wtw_panel("p = 0.01", 4, false),
            ],
            colourbar_label: "value".into(),
            bias_label: "b".into(),
            size: (1000, 300),
            ..Default::default()
        };
        let paths = heatmap(&stem, &fig).unwrap();
        let svg = check_outputs(&paths, &stem, (1000, 300), "W^T W across densities");
        for t in ["p = 1", "p = 0.05", "p = 0.01", "value"] {
            assert!(svg.contains(t), "{t}");
        }
        // Background + cells + bias entries + colourbar steps.
        let expected = 1 + (25 + 5) + (25 + 5) + 16 + render::COLOURBAR_STEPS;
        assert_eq!(filled_rects(&svg), expected);
        // The three colours of the pattern are drawn: red diagonal, blue pair, white elsewhere.
        assert!(svg.contains("fill=\"#FF0000\""));
        assert!(svg.contains("fill=\"#0000FF\""));
        assert!(svg.contains("fill=\"#FFFFFF\""));
    }

    #[test]
    fn labelled_cosine_table_with_annotations() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("cos");
        let fig = HeatmapFigure {
            title: "|cos| singular vectors vs concepts".into(),
            panels: vec![HeatmapPanel {
                title: String::new(),
                rows: 2,
                cols: 3,
                values: vec![0.99, 0.1, 0.0, 0.05, 0.97, 0.2],
                bias: None,
                row_labels: vec!["u1".into(), "u2".into()],
                col_labels: vec!["concept A".into(), "concept B".into(), "concept C".into()],
            }],
            range: (0.0, 1.0),
            colormap: Colormap::WhiteRed,
            annotate: true,
            size: (500, 400),
            ..Default::default()
        };
        let paths = heatmap(&stem, &fig).unwrap();
        let svg = check_outputs(
            &paths,
            &stem,
            (500, 400),
            "|cos| singular vectors vs concepts",
        );
        for t in ["u1", "u2", "concept A", "concept C", "0.99", "0.97"] {
            assert!(svg.contains(t), "{t}");
        }
        assert_eq!(filled_rects(&svg), 1 + 6 + render::COLOURBAR_STEPS);
    }

    #[test]
    fn mismatched_lengths_are_rejected_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("bad");
        let mut panel = wtw_panel("x", 3, true);
        panel.values.pop();
        let fig = HeatmapFigure {
            panels: vec![panel],
            ..Default::default()
        };
        let err = heatmap(&stem, &fig).unwrap_err();
        assert!(
            matches!(
                err,
                ReportError::InvalidInput {
                    figure: "heatmap",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("expected 9 values, found 8"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
