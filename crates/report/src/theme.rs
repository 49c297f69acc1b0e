//! Colours, colormaps and fonts shared by every figure.
//!
//! One place decides how tms figures look, so that panels from different experiments read alike:
//! WᵀW is always blue–white–red in a fixed range, superposition is always viridis, features always
//! take the same categorical colours in the same order. The font is embedded here, not loaded from
//! the system (see the crate docs).

use std::sync::OnceLock;

use plotters::style::{FontStyle, IntoFont, RGBColor, TextStyle, BLACK};

use crate::ReportError;

/// The family every figure uses. `ab_glyph` resolves it to the embedded DejaVu Sans; in SVG it is
/// written as `font-family="sans-serif"`, a generic family every browser has.
pub const FONT_FAMILY: &str = "sans-serif";

/// DejaVu Sans (Bitstream Vera licence, see `assets/DejaVuSans-LICENSE.txt`).
static FONT_TTF: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Figure title size, in pixels.
pub(crate) const TITLE_SIZE: f64 = 20.0;
/// Panel title size, in pixels.
pub(crate) const PANEL_TITLE_SIZE: f64 = 16.0;
/// Axis description size, in pixels.
pub(crate) const LABEL_SIZE: f64 = 15.0;
/// Tick label and legend size, in pixels.
pub(crate) const TICK_SIZE: f64 = 13.0;

/// Registers the embedded font with plotters once per process.
///
/// Layout needs font metrics even for SVG output, so every figure calls this first.
pub(crate) fn ensure_font() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_TTF).is_ok()
            && plotters::style::register_font(FONT_FAMILY, FontStyle::Bold, FONT_TTF).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(ReportError::Font)
    }
}

/// A black text style of the given pixel size in the embedded font.
pub(crate) fn text(size: f64) -> TextStyle<'static> {
    TextStyle::from((FONT_FAMILY, size).into_font()).color(&BLACK)
}

/// Colour for values that are missing or not finite.
pub const MISSING: RGBColor = RGBColor(190, 190, 190);

/// Matplotlib's `tab10`, the categorical palette: feature i takes `categorical(i)`.
const TAB10: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The i-th categorical colour (cycles after 10).
pub fn categorical(i: usize) -> RGBColor {
    TAB10[i % TAB10.len()]
}

/// Colour of feature `i` out of `n`: categorical up to 10 features, viridis beyond, where ten
/// categorical colours would repeat and a gradient (ordered by index, i.e. by importance) reads
/// better.
pub fn feature_colour(i: usize, n: usize) -> RGBColor {
    if n <= TAB10.len() {
        categorical(i)
    } else {
        Colormap::Viridis.map(i as f64 / (n - 1) as f64)
    }
}

/// Viridis control points (matplotlib), evenly spaced in [0, 1].
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

/// A continuous colormap from [0, 1] to colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Colormap {
    /// Diverging: 0 → blue (0, 0, 255), ½ → white, 1 → red (255, 0, 0), linear in between
    /// (matplotlib's `bwr`, the paper's WᵀW colours).
    #[default]
    BlueWhiteRed,
    /// Sequential, perceptually uniform: dark purple → yellow.
    Viridis,
    /// Sequential: white → dark red, for magnitudes such as |cos|.
    WhiteRed,
}

impl Colormap {
    /// The colour at `t` in [0, 1] (clamped); grey for NaN.
    pub fn map(self, t: f64) -> RGBColor {
        if t.is_nan() {
            return MISSING;
        }
        let t = t.clamp(0.0, 1.0);
        let to_u8 = |v: f64| (v * 255.0).round().clamp(0.0, 255.0) as u8;
        match self {
            Colormap::BlueWhiteRed => {
                if t <= 0.5 {
                    let a = 2.0 * t;
                    RGBColor(to_u8(a), to_u8(a), 255)
                } else {
                    let a = 2.0 * (1.0 - t);
                    RGBColor(255, to_u8(a), to_u8(a))
                }
            }
            Colormap::Viridis => {
                let x = t * (VIRIDIS.len() - 1) as f64;
                let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
                let f = x - i as f64;
                let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
                let lerp = |p: u8, q: u8| (p as f64 + f * (q as f64 - p as f64)).round() as u8;
                RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
            }
            Colormap::WhiteRed => {
                // White → (178, 24, 43), the dark end of ColorBrewer's RdBu.
                let lerp = |q: f64| to_u8(1.0 + t * (q / 255.0 - 1.0));
                RGBColor(lerp(178.0), lerp(24.0), lerp(43.0))
            }
        }
    }

    /// The colour of `value` on the range [lo, hi] (values outside are clamped).
    pub fn map_range(self, value: f64, (lo, hi): (f64, f64)) -> RGBColor {
        self.map((value - lo) / (hi - lo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blue_white_red_is_exact_at_the_ends_and_centre() {
        let c = Colormap::BlueWhiteRed;
        assert_eq!(c.map_range(-1.0, (-1.0, 1.0)), RGBColor(0, 0, 255));
        assert_eq!(c.map_range(0.0, (-1.0, 1.0)), RGBColor(255, 255, 255));
        assert_eq!(c.map_range(1.0, (-1.0, 1.0)), RGBColor(255, 0, 0));
        // Clamped outside the range, grey for NaN.
        assert_eq!(c.map_range(-3.0, (-1.0, 1.0)), RGBColor(0, 0, 255));
        assert_eq!(c.map_range(7.0, (-1.0, 1.0)), RGBColor(255, 0, 0));
        assert_eq!(c.map(f64::NAN), MISSING);
        // Half-way to red is a pink, lighter than red and redder than white.
        assert_eq!(c.map_range(0.5, (-1.0, 1.0)), RGBColor(255, 128, 128));
    }

    #[test]
    fn sequential_maps_hit_their_end_points() {
        assert_eq!(Colormap::Viridis.map(0.0), RGBColor(68, 1, 84));
        assert_eq!(Colormap::Viridis.map(1.0), RGBColor(253, 231, 37));
        assert_eq!(Colormap::WhiteRed.map(0.0), RGBColor(255, 255, 255));
        assert_eq!(Colormap::WhiteRed.map(1.0), RGBColor(178, 24, 43));
    }

    #[test]
    fn many_features_take_a_gradient() {
        assert_eq!(feature_colour(3, 5), categorical(3));
        assert_eq!(feature_colour(0, 40), Colormap::Viridis.map(0.0));
        assert_eq!(feature_colour(39, 40), Colormap::Viridis.map(1.0));
    }
}
