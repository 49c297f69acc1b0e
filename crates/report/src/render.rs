//! Rendering plumbing shared by all figures: one drawing, two backends, atomic files.
//!
//! A figure implements [`Figure`]: its `draw` is generic over the plotters backend, so the SVG and
//! the PNG come from the very same code and cannot drift apart. [`render`] runs it on an SVG string
//! and on an RGB buffer, encodes the PNG with the pure-Rust `png` crate and writes both files
//! through [`write_atomic`]. The layout helpers (panel grid, colourbar, legend) live here too, so
//! that every figure lays them out the same way.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

use crate::theme::{self, Colormap, TICK_SIZE};
use crate::ReportError;

/// The two files a figure function wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FigurePaths {
    /// `stem.svg`: vector, text as `<text>` elements; the one the HTML report inlines.
    pub svg: PathBuf,
    /// `stem.png`: raster, text rasterised from the embedded font.
    pub png: PathBuf,
}

/// A drawing failure inside a figure, carried as text because plotters' error type is generic
/// over the backend; [`render`] turns it into [`ReportError::Draw`].
#[derive(Debug)]
pub(crate) struct DrawError(pub String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        DrawError(e.to_string())
    }
}

/// Result of drawing code.
pub(crate) type DrawResult<T = ()> = Result<T, DrawError>;

/// A figure: validated data plus drawing code generic over the backend.
pub(crate) trait Figure {
    /// Name used in error messages (the public function's name).
    const NAME: &'static str;
    /// Requested size in pixels (width, height).
    fn size(&self) -> (u32, u32);
    /// Checks the data before anything is drawn or written.
    fn validate(&self) -> Result<(), String>;
    /// Draws the whole figure onto `root` (already filled white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

/// `stem` with `ext` appended (not replacing a dot already in the stem, e.g. `p=0.05`).
fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s: OsString = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Writes `bytes` to `path` atomically: to `path.tmp` first, then renamed over `path`.
///
/// Parent directories are created. On failure the `.tmp` file is removed, so a crash or an error
/// never leaves a half-written file under the final name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let err = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(err)?;
    }
    let tmp = with_suffix(path, "tmp");
    let result = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Draws `fig` twice (SVG and PNG) and writes `stem.svg` and `stem.png` atomically.
pub(crate) fn render<F: Figure>(stem: &Path, fig: &F) -> Result<FigurePaths, ReportError> {
    let invalid = |message: String| ReportError::InvalidInput {
        figure: F::NAME,
        message,
    };
    let draw_err = |e: DrawError| ReportError::Draw {
        figure: F::NAME,
        message: e.0,
    };
    let (w, h) = fig.size();
    if w < 50 || h < 50 || w > 20_000 || h > 20_000 {
        return Err(invalid(format!(
            "size must be within 50..=20000 pixels a side, found {w}×{h}"
        )));
    }
    fig.validate().map_err(invalid)?;
    theme::ensure_font()?;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        draw_on(&root, fig).map_err(draw_err)?;
    }
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw_on(&root, fig).map_err(draw_err)?;
    }

    let paths = FigurePaths {
        svg: with_suffix(stem, "svg"),
        png: with_suffix(stem, "png"),
    };
    let png = encode_png(&rgb, (w, h)).map_err(|message| ReportError::Png {
        path: paths.png.clone(),
        message,
    })?;
    write_atomic(&paths.svg, svg.as_bytes())?;
    write_atomic(&paths.png, &png)?;
    Ok(paths)
}

fn draw_on<DB: DrawingBackend, F: Figure>(root: &DrawingArea<DB, Shift>, fig: &F) -> DrawResult {
    root.fill(&WHITE)?;
    fig.draw(root)?;
    root.present()?;
    Ok(())
}

/// Encodes an RGB8 buffer as PNG in memory.
fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(rgb).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Layout helpers
// ---------------------------------------------------------------------------------------------

/// The panel area and the optional legend strip of a figure.
pub(crate) type Framed<DB> = (DrawingArea<DB, Shift>, Option<DrawingArea<DB, Shift>>);

/// Splits the figure into a title band, the panel area and a right strip of `legend_width` pixels
/// (0 for none). Returns (panels, legend).
pub(crate) fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    legend_width: u32,
) -> DrawResult<Framed<DB>> {
    let body = if title.is_empty() {
        root.margin(6, 0, 0, 0)
    } else {
        root.titled(title, theme::text(theme::TITLE_SIZE))?
    };
    if legend_width == 0 {
        return Ok((body, None));
    }
    let (w, _) = body.dim_in_pixel();
    let (panels, legend) = body.split_horizontally(w.saturating_sub(legend_width) as i32);
    Ok((panels, Some(legend)))
}

/// Splits `area` into a grid for `n` panels, `columns` per row (0 = all in one row).
pub(crate) fn grid<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    n: usize,
    columns: usize,
) -> Vec<DrawingArea<DB, Shift>> {
    if n == 0 {
        return Vec::new();
    }
    let cols = if columns == 0 { n } else { columns.min(n) };
    let rows = n.div_ceil(cols);
    let mut cells = area.split_evenly((rows, cols));
    cells.truncate(n);
    cells
}

/// Number of colour steps in a colourbar (one `<rect>` each in SVG).
pub(crate) const COLOURBAR_STEPS: usize = 64;

/// Draws a vertical colourbar for `cmap` over `range` in `area`, with ticks at both ends and the
/// middle and `label` written vertically beside it.
pub(crate) fn colourbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    cmap: Colormap,
    range: (f64, f64),
    label: &str,
) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let bar_w = 16.min(w / 4).max(6);
    let top = 20;
    let bottom = (h - 20).max(top + 10);
    let x0 = 10;
    let span = (bottom - top) as f64;
    for k in 0..COLOURBAR_STEPS {
        // Step k covers the k-th slice from the bottom (low values at the bottom).
        let y1 = bottom - (span * k as f64 / COLOURBAR_STEPS as f64).round() as i32;
        let y0 = bottom - (span * (k + 1) as f64 / COLOURBAR_STEPS as f64).round() as i32;
        let t = (k as f64 + 0.5) / COLOURBAR_STEPS as f64;
        area.draw(&Rectangle::new(
            [(x0, y0), (x0 + bar_w, y1)],
            cmap.map(t).filled(),
        ))?;
    }
    area.draw(&Rectangle::new(
        [(x0, top), (x0 + bar_w, bottom)],
        BLACK.stroke_width(1),
    ))?;
    let tick_style = theme::text(TICK_SIZE).pos(Pos::new(HPos::Left, VPos::Center));
    for (frac, value) in [
        (0.0, range.0),
        (0.5, 0.5 * (range.0 + range.1)),
        (1.0, range.1),
    ] {
        let y = bottom - (span * frac).round() as i32;
        area.draw(&PathElement::new(
            vec![(x0 + bar_w, y), (x0 + bar_w + 4, y)],
            BLACK,
        ))?;
        area.draw(&Text::new(
            fmt_num(value),
            (x0 + bar_w + 6, y),
            tick_style.clone(),
        ))?;
    }
    if !label.is_empty() {
        let style = theme::text(theme::LABEL_SIZE)
            .transform(FontTransform::Rotate90)
            .pos(Pos::new(HPos::Center, VPos::Top));
        area.draw(&Text::new(
            label.to_string(),
            ((w - 4).max(x0 + bar_w + 40), (top + bottom) / 2),
            style,
        ))?;
    }
    Ok(())
}

/// How a legend entry shows its series.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Swatch {
    /// A filled square (bars, phases).
    Box(RGBColor),
    /// A solid line.
    Line(RGBColor),
    /// A dashed line (theory curves).
    Dashed(RGBColor),
    /// A dot (scatter points).
    Dot(RGBColor),
}

/// Pixel height of one legend row.
const LEGEND_ROW: i32 = 20;

/// Draws a legend (swatch + text per entry) from the top-left of `area`.
pub(crate) fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, Swatch)],
) -> DrawResult {
    let style = theme::text(TICK_SIZE).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (label, swatch)) in entries.iter().enumerate() {
        let y = 24 + i as i32 * LEGEND_ROW;
        let x = 8;
        match *swatch {
            Swatch::Box(c) => {
                area.draw(&Rectangle::new([(x, y - 6), (x + 18, y + 6)], c.filled()))?;
            }
            Swatch::Line(c) => {
                area.draw(&PathElement::new(
                    vec![(x, y), (x + 18, y)],
                    c.stroke_width(2),
                ))?;
            }
            Swatch::Dashed(c) => {
                for k in 0..3 {
                    let a = x + k * 7;
                    area.draw(&PathElement::new(
                        vec![(a, y), (a + 4, y)],
                        c.stroke_width(2),
                    ))?;
                }
            }
            Swatch::Dot(c) => {
                area.draw(&Circle::new((x + 9, y), 4, c.filled()))?;
            }
        }
        area.draw(&Text::new(label.clone(), (x + 26, y), style.clone()))?;
    }
    Ok(())
}

/// Draws the axes of a numeric chart in the house style: tick labels by [`fmt_num`], axis
/// descriptions, and either a light grid (`grid`) or none. One place for every x–y figure
/// (line plots, scatter plots, phase diagrams), so they look alike.
pub(crate) fn draw_axes<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    x_label: &str,
    y_label: &str,
    grid: bool,
) -> DrawResult
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut mesh = chart.configure_mesh();
    if grid {
        mesh.light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225));
    } else {
        mesh.disable_mesh();
    }
    mesh.x_desc(x_label)
        .y_desc(y_label)
        .label_style(theme::text(theme::TICK_SIZE))
        .axis_desc_style(theme::text(theme::LABEL_SIZE))
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .draw()?;
    Ok(())
}

/// Compact number formatting for ticks: 0.05, 1, 250, 1e-4, 2.5e6.
pub(crate) fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Checks that a figure's panel list is not empty and every value is finite or NaN-free as asked.
pub(crate) fn check_len(what: &str, found: usize, expected: usize) -> Result<(), String> {
    if found == expected {
        Ok(())
    } else {
        Err(format!("{what}: expected {expected} values, found {found}"))
    }
}

/// Smallest and largest finite values of an iterator (None when there are none).
pub(crate) fn finite_extent(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Pads a data range so that nothing sits on the frame; on log axes, pads multiplicatively and
/// ignores non-positive values.
pub(crate) fn padded_range(extent: Option<(f64, f64)>, log: bool) -> (f64, f64) {
    match (extent, log) {
        (None, false) => (0.0, 1.0),
        (None, true) => (0.1, 1.0),
        (Some((lo, hi)), false) => {
            let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
            (lo - 0.05 * span, hi + 0.05 * span)
        }
        (Some((lo, hi)), true) => {
            let (lo, hi) = (lo.max(f64::MIN_POSITIVE), hi.max(f64::MIN_POSITIVE));
            let ratio = if hi > lo { (hi / lo).powf(0.05) } else { 2.0 };
            (lo / ratio, hi * ratio)
        }
    }
}

/// Dispatches to a generic function with linear or log coordinates on each axis.
///
/// `$f` is called as `$f(x_spec, y_spec)` where each spec is either a `Range<f64>` or its
/// `log_scale()`; the four combinations have different types, hence a macro.
macro_rules! with_axes {
    ($log_x:expr, $log_y:expr, $xr:expr, $yr:expr, $f:expr) => {{
        use plotters::coord::combinators::IntoLogRange;
        let (xr, yr): (std::ops::Range<f64>, std::ops::Range<f64>) = ($xr, $yr);
        match ($log_x, $log_y) {
            (false, false) => $f(xr, yr),
            (true, false) => $f(xr.log_scale(), yr),
            (false, true) => $f(xr, yr.log_scale()),
            (true, true) => $f(xr.log_scale(), yr.log_scale()),
        }
    }};
}
pub(crate) use with_axes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_tmp_and_creates_parents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/p=0.05");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!with_suffix(&path, "tmp").exists());
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("p=0.05")]);
    }

    #[test]
    fn atomic_write_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: the rename fails.
        let path = dir.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("x"), b"x").unwrap();
        let err = write_atomic(&path, b"data").unwrap_err();
        assert!(err.to_string().contains("taken"), "{err}");
        assert!(!with_suffix(&path, "tmp").exists());
    }

    #[test]
    fn suffix_keeps_dots_in_the_stem() {
        assert_eq!(
            with_suffix(Path::new("out/p=0.05"), "svg"),
            PathBuf::from("out/p=0.05.svg")
        );
    }

    #[test]
    fn numbers_format_compactly() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(0.05), "0.05");
        assert_eq!(fmt_num(1.0), "1");
        assert_eq!(fmt_num(-0.5), "-0.5");
        assert_eq!(fmt_num(1e-4), "1e-4");
        assert_eq!(fmt_num(250.0), "250");
    }
}
