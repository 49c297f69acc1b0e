//! Helpers shared by the figure tests: read what a figure function wrote and check it honestly.

use std::path::Path;

use crate::FigurePaths;

/// Width and height from a PNG file's IHDR chunk, after checking the signature.
pub(crate) fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.len() > 33, "PNG too short: {}", bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "first chunk is IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

/// Number of elements `<tag ` in an SVG document.
pub(crate) fn count_tag(svg: &str, tag: &str) -> usize {
    svg.matches(&format!("<{tag} ")).count()
}

/// Checks the common promises of every figure function and returns the SVG text:
/// both files exist under the stem, no `.tmp` is left, the SVG is one well-formed-looking `<svg>`
/// document containing `title`, and the PNG has the requested size.
pub(crate) fn check_outputs(
    paths: &FigurePaths,
    stem: &Path,
    size: (u32, u32),
    title: &str,
) -> String {
    assert_eq!(
        paths.svg,
        stem.with_file_name(format!(
            "{}.svg",
            stem.file_name().unwrap().to_str().unwrap()
        ))
    );
    assert_eq!(
        paths.png,
        stem.with_file_name(format!(
            "{}.png",
            stem.file_name().unwrap().to_str().unwrap()
        ))
    );
    let svg = std::fs::read_to_string(&paths.svg).unwrap();
    // For looking at the figures by eye: TMS_REPORT_TEST_OUT=/some/dir keeps a copy.
    if let Some(out) = std::env::var_os("TMS_REPORT_TEST_OUT") {
        let out = Path::new(&out);
        std::fs::create_dir_all(out).unwrap();
        for p in [&paths.svg, &paths.png] {
            std::fs::copy(p, out.join(p.file_name().unwrap())).unwrap();
        }
    }
    assert!(svg.trim_start().starts_with("<svg"), "starts with <svg");
    assert!(svg.trim_end().ends_with("</svg>"), "ends with </svg>");
    assert_eq!(svg.matches("<svg").count(), 1);
    assert!(svg.contains(&format!("viewBox=\"0 0 {} {}\"", size.0, size.1)));
    assert!(
        svg.contains(&xml_escape(title)),
        "title {title:?} in the SVG"
    );
    assert!(svg.contains("font-family=\"sans-serif\""));
    assert_eq!(
        count_tag(&svg, "text"),
        svg.matches("</text>").count(),
        "balanced <text>"
    );
    assert_eq!(png_size(&paths.png), size);
    let dir = stem.parent().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            !name.to_string_lossy().ends_with(".tmp"),
            "leftover {name:?}"
        );
    }
    svg
}

/// The escaping plotters applies to text content.
pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A small XML well-formedness check for plotters' SVG: every element is closed, in order, and
/// text content holds no raw `<` (which would start a bogus tag and fail the stack check).
pub(crate) fn assert_well_formed(svg: &str) {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("unterminated tag") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in <{tag}>"
        );
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name.trim()), "closing </{name}>");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().expect("tag name");
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
}

#[test]
fn well_formed_check_accepts_nesting_and_rejects_unclosed() {
    assert_well_formed("<?xml v?><svg a=\"1\"><g><rect x=\"0\"/></g><text>a &lt; b</text></svg>");
    let caught = std::panic::catch_unwind(|| assert_well_formed("<svg><g></svg>"));
    assert!(caught.is_err());
    let caught = std::panic::catch_unwind(|| assert_well_formed("<svg><text>a < b</text></svg>"));
    assert!(caught.is_err());
}
