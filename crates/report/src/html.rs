//! The HTML report: one self-contained `index.html` that opens from disk.
//!
//! The report is what a reader checks the reproduction against, so it must survive being copied,
//! mailed or opened offline years later. Hence: SVG figures are inlined (PNGs become base64 data
//! URIs), the CSS is inline, and nothing is loaded from a network — no CDN, no web font, no remote
//! script. The one inline script only checks, on load, that every figure has a non-zero rendered
//! size and records the result in `<html data-check="OK n">` (or `FAIL …`), which
//! `scripts/check-report.sh` reads from a headless browser's DOM dump.
//!
//! Every piece of caller text is HTML-escaped. The builder knows nothing about experiments: the
//! caller passes ids, titles, settings, figures and claims as plain strings.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::render::write_atomic;
use crate::ReportError;

/// One row of the summary table at the top of the report.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SummaryRow {
    /// Experiment id, e.g. "E1"; links to the section with the same id.
    pub id: String,
    /// Experiment title.
    pub title: String,
    /// Number of claims that passed.
    pub claims_passed: usize,
    /// Number of claims checked.
    pub claims_total: usize,
    /// Wall time of the experiment, in seconds.
    pub wall_time_s: f64,
}

/// One checked claim: what was asserted, what was measured, and whether it held.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    /// Claim id, e.g. "E1.pentagon".
    pub id: String,
    /// The statement, in words.
    pub statement: String,
    /// What was measured, formatted by the caller.
    pub measured: String,
    /// The pass criterion, formatted by the caller.
    pub criterion: String,
    /// Whether the claim held (green badge) or not (red badge).
    pub passed: bool,
}

/// A figure file to inline into a section.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FigureRef {
    /// Path of an `.svg` (inlined as markup) or `.png` (inlined as a base64 data URI).
    pub path: PathBuf,
    /// Caption under the figure (may be empty).
    pub caption: String,
}

/// One section of the report, usually one experiment.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Section {
    /// HTML id and anchor target: non-empty, unique, letters, digits, `-`, `_`, `.` only.
    pub id: String,
    /// Section heading.
    pub title: String,
    /// Settings table, key → value, in the caller's order.
    pub settings: Vec<(String, String)>,
    /// Free-text paragraphs (plain text, escaped).
    pub paragraphs: Vec<String>,
    /// Figures, inlined in order.
    pub figures: Vec<FigureRef>,
    /// Claims table.
    pub claims: Vec<Claim>,
}

/// Builds the report page; [`ReportBuilder::write`] writes `index.html` atomically.
#[derive(Debug, Clone, Default)]
pub struct ReportBuilder {
    title: String,
    intro: Vec<String>,
    summary: Vec<SummaryRow>,
    sections: Vec<Section>,
}

impl ReportBuilder {
    /// A report with the given page title and heading.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }

    /// Adds an introductory paragraph under the heading (plain text).
    pub fn paragraph(mut self, text: impl Into<String>) -> Self {
        self.intro.push(text.into());
        self
    }

    /// Adds a row to the summary table.
    pub fn summary_row(mut self, row: SummaryRow) -> Self {
        self.summary.push(row);
        self
    }

    /// Adds a section.
    pub fn section(mut self, section: Section) -> Self {
        self.sections.push(section);
        self
    }

    /// Renders the page to a string, reading and inlining every figure.
    pub fn render(&self) -> Result<String, ReportError> {
        self.validate()?;
        let mut h = String::with_capacity(1 << 16);
        let title = esc(&self.title);
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n\
             <h1>{title}</h1>\n"
        );
        for p in &self.intro {
            let _ = writeln!(h, "<p>{}</p>", esc(p));
        }
        self.render_summary(&mut h);
        for s in &self.sections {
            render_section(&mut h, s)?;
        }
        let data = serde_json::json!({ "summary": &self.summary, "claims": self
            .sections
            .iter()
            .map(|s| serde_json::json!({ "section": &s.id, "claims": &s.claims }))
            .collect::<Vec<_>>() });
        // `<` is escaped so that no string in the data can close the script element.
        let data = data.to_string().replace('<', "\\u003c");
        let _ = write!(
            h,
            "<footer>Generated by tms-report. Self-contained: open this file from disk.</footer>\n\
             </main>\n<script type=\"application/json\" id=\"tms-report-data\">{data}</script>\n\
             <script>{CHECK_SCRIPT}</script>\n</body>\n</html>\n"
        );
        Ok(h)
    }

    /// Writes `dir/index.html` atomically and returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, ReportError> {
        let html = self.render()?;
        let path = dir.join("index.html");
        write_atomic(&path, html.as_bytes())?;
        Ok(path)
    }

    fn validate(&self) -> Result<(), ReportError> {
        let bad = |message: String| Err(ReportError::InvalidReport { message });
        let mut seen = std::collections::HashSet::new();
        for s in &self.sections {
            let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
            if s.id.is_empty() || !s.id.chars().all(ok_char) {
                return bad(format!(
                    "section id {:?} must be non-empty and use only letters, digits, '-', '_', '.'",
                    s.id
                ));
            }
            if !seen.insert(s.id.as_str()) {
                return bad(format!("section id {:?} appears twice", s.id));
            }
        }
        Ok(())
    }

    fn render_summary(&self, h: &mut String) {
        if self.summary.is_empty() {
            return;
        }
        let (passed, total) = self.summary.iter().fold((0, 0), |(p, t), r| {
            (p + r.claims_passed, t + r.claims_total)
        });
        let _ = write!(
            h,
            "<h2 id=\"summary\">Summary</h2>\n<p class=\"overall\">{} {passed} / {total} claims passed</p>\n\
             <table class=\"summary\">\n<thead><tr><th>id</th><th>experiment</th><th>claims</th>\
             <th>wall time</th></tr></thead>\n<tbody>\n",
            badge(passed == total)
        );
        let ids: std::collections::HashSet<&str> =
            self.sections.iter().map(|s| s.id.as_str()).collect();
        for r in &self.summary {
            let id = if ids.contains(r.id.as_str()) {
                format!("<a href=\"#{}\">{}</a>", esc(&r.id), esc(&r.id))
            } else {
                esc(&r.id)
            };
            let _ = writeln!(
                h,
                "<tr><td>{id}</td><td>{}</td><td>{} {} / {}</td><td class=\"num\">{}</td></tr>",
                esc(&r.title),
                badge(r.claims_passed == r.claims_total),
                r.claims_passed,
                r.claims_total,
                fmt_duration(r.wall_time_s)
            );
        }
        h.push_str("</tbody>\n</table>\n");
    }
}

fn render_section(h: &mut String, s: &Section) -> Result<(), ReportError> {
    let _ = writeln!(
        h,
        "<section id=\"{}\">\n<h2>{} <a class=\"anchor\" href=\"#{}\">#</a></h2>",
        esc(&s.id),
        esc(&s.title),
        esc(&s.id)
    );
    for p in &s.paragraphs {
        let _ = writeln!(h, "<p>{}</p>", esc(p));
    }
    if !s.settings.is_empty() {
        h.push_str("<table class=\"settings\">\n<tbody>\n");
        for (k, v) in &s.settings {
            let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
        }
        h.push_str("</tbody>\n</table>\n");
    }
    for f in &s.figures {
        h.push_str("<figure class=\"fig\">\n");
        h.push_str(&inline_figure(&f.path)?);
        if !f.caption.is_empty() {
            let _ = write!(h, "\n<figcaption>{}</figcaption>", esc(&f.caption));
        }
        h.push_str("\n</figure>\n");
    }
    if !s.claims.is_empty() {
        h.push_str(
            "<table class=\"claims\">\n<thead><tr><th>claim</th><th>statement</th><th>measured</th>\
             <th>criterion</th><th>result</th></tr></thead>\n<tbody>\n",
        );
        for c in &s.claims {
            let _ = writeln!(
                h,
                "<tr class=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if c.passed { "pass" } else { "fail" },
                esc(&c.id),
                esc(&c.statement),
                esc(&c.measured),
                esc(&c.criterion),
                badge(c.passed)
            );
        }
        h.push_str("</tbody>\n</table>\n");
    }
    h.push_str("</section>\n");
    Ok(())
}

/// The figure's markup: the SVG document itself (minus any XML prolog), or an `<img>` with the
/// PNG as a base64 data URI.
fn inline_figure(path: &Path) -> Result<String, ReportError> {
    let read_err = |source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("svg") => {
            let svg = std::fs::read_to_string(path).map_err(read_err)?;
            let start = svg
                .find("<svg")
                .ok_or_else(|| ReportError::UnsupportedFigure {
                    path: path.to_path_buf(),
                })?;
            Ok(svg[start..].trim_end().to_string())
        }
        Some("png") => {
            let bytes = std::fs::read(path).map_err(read_err)?;
            let alt = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(format!(
                "<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
                esc(&alt),
                base64(&bytes)
            ))
        }
        _ => Err(ReportError::UnsupportedFigure {
            path: path.to_path_buf(),
        }),
    }
}

fn badge(passed: bool) -> &'static str {
    if passed {
        "<span class=\"badge pass\">pass</span>"
    } else {
        "<span class=\"badge fail\">fail</span>"
    }
}

/// HTML-escapes text for element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "0.42 s", "12.3 s", "2 min 05 s", "1 h 02 min".
fn fmt_duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "–".into();
    }
    if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        let t = s.round() as u64;
        format!("{} min {:02} s", t / 60, t % 60)
    } else {
        let t = (s / 60.0).round() as u64;
        format!("{} h {:02} min", t / 60, t % 60)
    }
}

/// Standard base64 with padding (RFC 4648), for PNG data URIs.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

const CSS: &str = r#"
:root { --fg: #1d1d1f; --muted: #666; --line: #ddd; --pass: #1a7f37; --fail: #cf222e; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 15px/1.5 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 28px; margin: 8px 0 16px; }
h2 { font-size: 21px; margin: 40px 0 12px; padding-top: 12px; border-top: 1px solid var(--line); }
a { color: #0969da; text-decoration: none; }
a:hover { text-decoration: underline; }
a.anchor { color: var(--muted); font-weight: normal; font-size: 16px; }
table { border-collapse: collapse; margin: 12px 0 20px; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 12px 5px 0; text-align: left;
  vertical-align: top; }
thead th { border-bottom: 2px solid #bbb; }
table.settings th { font-weight: 600; color: var(--muted); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
.badge { display: inline-block; min-width: 3.2em; text-align: center; padding: 0 6px;
  border-radius: 10px; color: #fff; font-size: 12px; font-weight: 600; }
.badge.pass { background: var(--pass); }
.badge.fail { background: var(--fail); }
tr.fail td { background: #fff5f5; }
p.overall { font-size: 16px; }
figure.fig { margin: 16px 0 24px; }
figure.fig > svg, figure.fig > img { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 14px; margin-top: 4px; }
footer { margin-top: 48px; color: var(--muted); font-size: 13px; }
"#;

/// Runs on load: every figure must have a non-zero rendered size. The verdict goes into
/// `<html data-check>`, which a headless browser's `--dump-dom` shows; script errors are recorded
/// the same way.
const CHECK_SCRIPT: &str = r#"
(function () {
  var root = document.documentElement;
  window.addEventListener('error', function (e) {
    root.setAttribute('data-check', 'ERROR ' + (e.message || 'script error'));
  });
  window.addEventListener('load', function () {
    if ((root.getAttribute('data-check') || '').indexOf('ERROR') === 0) { return; }
    var figs = document.querySelectorAll('figure.fig > svg, figure.fig > img');
    var empty = 0;
    for (var i = 0; i < figs.length; i++) {
      var r = figs[i].getBoundingClientRect();
      var broken = figs[i].tagName === 'IMG' && !(figs[i].complete && figs[i].naturalWidth > 0);
      if (!(r.width > 0 && r.height > 0) || broken) { empty++; }
    }
    root.setAttribute('data-check', (empty === 0 ? 'OK ' : 'FAIL ') + figs.length +
      (empty ? ' (' + empty + ' empty)' : ''));
  });
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{heatmap, HeatmapFigure, HeatmapPanel};

    fn claim(id: &str, passed: bool) -> Claim {
        Claim {
            id: id.into(),
            statement: format!("statement of {id} with <markup> & \"quotes\""),
            measured: "0.41".into(),
            criterion: "within 0.05 of 0.4".into(),
            passed,
        }
    }

    /// A small report with one SVG and one PNG figure, written to a temp dir.
    fn sample(dir: &Path) -> (ReportBuilder, PathBuf) {
        let fig = heatmap(
            &dir.join("figs/wtw"),
            &HeatmapFigure {
                title: "WtW".into(),
                panels: vec![HeatmapPanel {
                    title: "p = 0.05".into(),
                    rows: 2,
                    cols: 2,
                    values: vec![1.0, -1.0, -1.0, 1.0],
                    ..Default::default()
                }],
                size: (300, 200),
                ..Default::default()
            },
        )
        .unwrap();
        let report = ReportBuilder::new("tms reproduction")
            .paragraph("Intro text.")
            .summary_row(SummaryRow {
                id: "E1".into(),
                title: "intro geometry".into(),
                claims_passed: 2,
                claims_total: 2,
                wall_time_s: 12.34,
            })
            .summary_row(SummaryRow {
                id: "E3".into(),
                title: "phase diagram".into(),
                claims_passed: 0,
                claims_total: 1,
                wall_time_s: 125.0,
            })
            .section(Section {
                id: "E1".into(),
                title: "Intro geometry".into(),
                settings: vec![
                    ("n_features".into(), "5".into()),
                    ("lr".into(), "1e-3".into()),
                ],
                paragraphs: vec!["A pentagon appears when sparse.".into()],
                figures: vec![
                    FigureRef {
                        path: fig.svg.clone(),
                        caption: "WᵀW per density".into(),
                    },
                    FigureRef {
                        path: fig.png.clone(),
                        caption: String::new(),
                    },
                ],
                claims: vec![claim("E1.pentagon", true), claim("E1.bias", true)],
            })
            .section(Section {
                id: "E3".into(),
                title: "Phase diagram".into(),
                claims: vec![claim("E3.boundary", false)],
                ..Default::default()
            });
        (report, fig.svg)
    }

    /// Values of every `attr="…"` in the page.
    fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
        html.split(&format!(" {attr}=\""))
            .skip(1)
            .map(|s| s.split('"').next().unwrap())
            .collect()
    }

    #[test]
    fn page_has_every_section_claim_and_link() {
        let dir = tempfile::tempdir().unwrap();
        let (report, svg_path) = sample(dir.path());
        let path = report.write(&dir.path().join("out")).unwrap();
        assert_eq!(path, dir.path().join("out/index.html"));
        let html = std::fs::read_to_string(&path).unwrap();
        for id in ["E1", "E3"] {
            assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
            assert!(
                html.contains(&format!("<a href=\"#{id}\">{id}</a>")),
                "{id}"
            );
        }
        for id in ["E1.pentagon", "E1.bias", "E3.boundary"] {
            assert!(html.contains(&format!("<code>{id}</code>")), "{id}");
        }
        // Caller text is escaped, never interpreted.
        assert!(
            html.contains("statement of E1.pentagon with &lt;markup&gt; &amp; &quot;quotes&quot;")
        );
        assert!(!html.contains("<markup>"));
        // Badges: 2 + 1 in the claims, 2 in the summary rows, 1 overall.
        assert_eq!(html.matches("<span class=\"badge pass\">").count(), 3);
        assert_eq!(html.matches("<span class=\"badge fail\">").count(), 3);
        assert!(html.contains("2 / 3 claims passed"));
        assert!(html.contains("12.3 s") && html.contains("2 min 05 s"));
        assert!(html.contains("<th>n_features</th><td>5</td>"));
        // The SVG is inlined verbatim, the PNG as a data URI.
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert!(html.contains(svg.trim_end()));
        assert_eq!(html.matches("<figure class=\"fig\">").count(), 2);
        assert!(html.contains("src=\"data:image/png;base64,iVBORw0KGgo"));
        // The JSON data block parses and holds the claims.
        let start = html.find("id=\"tms-report-data\">").unwrap() + "id=\"tms-report-data\">".len();
        let end = start + html[start..].find("</script>").unwrap();
        let data: serde_json::Value = serde_json::from_str(&html[start..end]).unwrap();
        assert_eq!(data["claims"][1]["claims"][0]["id"], "E3.boundary");
        assert_eq!(data["summary"][0]["claims_total"], 2);
    }

    #[test]
    fn page_is_self_contained_and_written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let (report, _) = sample(dir.path());
        let out = dir.path().join("out");
        let path = report.write(&out).unwrap();
        let html = std::fs::read_to_string(&path).unwrap();
        for attr in ["src", "href"] {
            for v in attr_values(&html, attr) {
                assert!(
                    v.starts_with('#') || v.starts_with("data:"),
                    "{attr}={v:?} is not local"
                );
            }
        }
        assert!(!html.contains("<link"));
        assert!(!html.contains("@import"));
        assert!(!html.contains("url("));
        assert_eq!(
            html.matches("<script").count(),
            2,
            "the data block and the check only"
        );
        assert!(!html.contains("<script src"));
        let names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["index.html".to_string()]);
    }

    #[test]
    fn bad_input_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.svg");
        let err = ReportBuilder::new("t")
            .section(Section {
                id: "A".into(),
                figures: vec![FigureRef {
                    path: missing.clone(),
                    caption: String::new(),
                }],
                ..Default::default()
            })
            .write(dir.path())
            .unwrap_err();
        assert!(
            matches!(&err, ReportError::Read { path, .. } if *path == missing),
            "{err}"
        );
        assert!(!dir.path().join("index.html").exists());

        let dup = ReportBuilder::new("t")
            .section(Section {
                id: "A".into(),
                ..Default::default()
            })
            .section(Section {
                id: "A".into(),
                ..Default::default()
            });
        assert!(dup.render().unwrap_err().to_string().contains("twice"));
        let spaced = ReportBuilder::new("t").section(Section {
            id: "a b".into(),
            ..Default::default()
        });
        assert!(spaced.render().is_err());
        let other = ReportBuilder::new("t").section(Section {
            id: "A".into(),
            figures: vec![FigureRef {
                path: dir.path().join("x.pdf"),
                caption: String::new(),
            }],
            ..Default::default()
        });
        assert!(matches!(
            other.render().unwrap_err(),
            ReportError::UnsupportedFigure { .. }
        ));
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
