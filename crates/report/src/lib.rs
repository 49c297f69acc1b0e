//! Figures and the HTML report of tms, from plain data.
//!
//! **Why this crate is separate:** figures are the one place where tms touches fonts, colours and
//! file formats. Keeping them here lets the engine stay pure math and the experiments stay about
//! science. The crate knows nothing about the engine, TOML or the experiments. It takes plain
//! structs (`Vec<f64>`, labels, titles) and writes files.
//!
//! **Architecture invariants:**
//! - Every figure function draws once, through code that is generic over the plotters backend. It
//!   writes both an SVG (`stem.svg`) and a PNG (`stem.png`) and returns both paths
//!   ([`FigurePaths`]).
//! - Every file is written atomically: first `path.tmp`, then a rename. A reader never sees half a
//!   figure or half a report.
//! - The font (DejaVu Sans, `assets/`) is embedded with `include_bytes!`. `ab_glyph` rasterises it,
//!   so the PNG path needs no fontconfig, freetype or other system library. SVG text uses the
//!   generic `sans-serif` family.
//! - Titles and labels always come from the caller. Nothing here names an experiment.
//!
//! Entry points: the figure functions re-exported below ([`heatmap`], [`bars`], [`arrows`],
//! [`phase_diagram`], [`line_plot`], [`stacked_bars`], [`scatter`]) and [`html::ReportBuilder`].

#![forbid(unsafe_code)]

mod arrows;
mod bars;
mod heatmap;
pub mod html;
mod lines;
mod phase;
mod render;
mod scatter;
mod stacked;
pub mod theme;

#[cfg(test)]
mod testutil;

use std::path::PathBuf;

pub use arrows::{arrows, ArrowPanel, ArrowsFigure};
pub use bars::{bars, BarPanel, BarsFigure};
pub use heatmap::{heatmap, HeatmapFigure, HeatmapPanel};
pub use lines::{line_plot, LinePlot, RefLine, ScatterOverlay, Series};
pub use phase::{phase_diagram, PhaseDiagram, Polyline};
pub use render::{write_atomic, FigurePaths};
pub use scatter::{scatter, ScatterPlot};
pub use stacked::{stacked_bars, StackedBarsFigure, StackedBarsPanel};
pub use theme::Colormap;

/// Everything that can go wrong while drawing figures or writing the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing (or renaming) an output file failed.
    #[error("could not write {}: {source}", .path.display())]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Reading a figure to inline into the report failed.
    #[error("could not read figure {}: {source}", .path.display())]
    Read {
        /// The figure file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The caller's data does not fit the figure (lengths, sizes, ranges).
    #[error("figure `{figure}`: invalid input: {message}")]
    InvalidInput {
        /// The figure function that rejected the data.
        figure: &'static str,
        /// What was expected versus found.
        message: String,
    },
    /// plotters failed while drawing.
    #[error("figure `{figure}`: drawing failed: {message}")]
    Draw {
        /// The figure function that failed.
        figure: &'static str,
        /// The backend's error message.
        message: String,
    },
    /// Encoding the rendered pixels as PNG failed.
    #[error("could not encode PNG {}: {message}", .path.display())]
    Png {
        /// The PNG being written.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
    /// A figure to inline into the report has an extension other than `.svg` or `.png`.
    #[error("cannot inline figure {}: only .svg and .png are supported", .path.display())]
    UnsupportedFigure {
        /// The rejected figure path.
        path: PathBuf,
    },
    /// The report's structure is invalid (e.g. a duplicate or malformed section id).
    #[error("invalid report: {message}")]
    InvalidReport {
        /// What is wrong.
        message: String,
    },
    /// The embedded font could not be parsed (a corrupted build).
    #[error("the embedded font could not be registered")]
    Font,
}
