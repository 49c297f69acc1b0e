//! The item × property CSV of `dataset = "csv"` (format in the module docs of `[deep_linear]`):
//! reading it with errors at file, line and column, and writing it back.

use std::path::{Path, PathBuf};
use tms_engine::data::items::ItemPropertySet;

/// Why an item × property CSV could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CsvError {
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        message: String,
    },
    /// A malformed cell or row, at a 1-based line and column (cell number).
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (the cell's position in its row).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The file parsed but is not a usable matrix (e.g. no properties).
    #[error("{path}: {message}")]
    Matrix {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Reads an item × property CSV (format in the module docs).
pub fn read_matrix_csv(path: &Path) -> Result<ItemPropertySet, CsvError> {
    let text = std::fs::read_to_string(path).map_err(|e| CsvError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse_matrix_csv(&text, path)
}

/// Parses an item × property CSV; `path` only names the file in errors.
pub fn parse_matrix_csv(text: &str, path: &Path) -> Result<ItemPropertySet, CsvError> {
    let syntax = |line: usize, column: usize, message: String| CsvError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        message,
    };
    let mut header: Option<(usize, Vec<String>)> = None;
    let mut properties = Vec::new();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw_line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let cells = split_cells(raw_line).map_err(|(column, m)| syntax(line, column, m))?;
        let Some((header_line, items)) = &header else {
            let items: Vec<String> = cells[1..].to_vec();
            if items.is_empty() {
                return Err(syntax(
                    line,
                    2,
                    "the header row needs item names after its first cell".into(),
                ));
            }
            if let Some(c) = items.iter().position(String::is_empty) {
                return Err(syntax(line, c + 2, "empty item name".into()));
            }
            if let Some(c) = (1..items.len()).find(|&c| items[..c].contains(&items[c])) {
                return Err(syntax(
                    line,
                    c + 2,
                    format!("item `{}` appears twice", items[c]),
                ));
            }
            header = Some((line, items));
            continue;
        };
        if cells.len() != items.len() + 1 {
            return Err(syntax(
                line,
                // The first missing cell, or the first extra one.
                if cells.len() <= items.len() {
                    cells.len() + 1
                } else {
                    items.len() + 2
                },
                format!(
                    "expected a property name and {} values (one per item of the header on line {header_line}), found {} cells",
                    items.len(),
                    cells.len()
                ),
            ));
        }
        if cells[0].is_empty() {
            return Err(syntax(line, 1, "empty property name".into()));
        }
        let mut values = Vec::with_capacity(items.len());
        for (c, cell) in cells[1..].iter().enumerate() {
            let v: f64 = cell.parse().map_err(|_| {
                syntax(
                    line,
                    c + 2,
                    format!("expected a number for item `{}`, found `{cell}`", items[c]),
                )
            })?;
            if !v.is_finite() {
                return Err(syntax(
                    line,
                    c + 2,
                    format!("expected a finite number, found `{cell}`"),
                ));
            }
            values.push(v);
        }
        properties.push(cells[0].clone());
        rows.push(values);
    }
    let matrix_error = |message: String| CsvError::Matrix {
        path: path.to_path_buf(),
        message,
    };
    let Some((_, items)) = header else {
        return Err(matrix_error(
            "no header row (expected `property,item_1,item_2,…`)".into(),
        ));
    };
    if rows.is_empty() {
        return Err(matrix_error("no property rows after the header".into()));
    }
    ItemPropertySet::from_property_rows(&rows, Some(items), Some(properties))
        .map_err(|e| matrix_error(e.to_string()))
}

/// Splits one CSV line into trimmed cells; quoted cells may hold commas and `""` quotes.
/// An error carries the 1-based cell number.
fn split_cells(line: &str) -> Result<Vec<String>, (usize, String)> {
    let mut cells = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let column = cells.len() + 1;
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut cell = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        cell.push('"');
                    }
                    Some('"') => break,
                    Some(c) => cell.push(c),
                    None => return Err((column, "unterminated quoted cell".into())),
                }
            }
            while chars
                .peek()
                .is_some_and(|c| *c == ' ' || *c == '\t' || *c == '\r')
            {
                chars.next();
            }
            match chars.next() {
                None => {
                    cells.push(cell);
                    return Ok(cells);
                }
                Some(',') => cells.push(cell),
                Some(c) => {
                    return Err((
                        column,
                        format!("unexpected `{c}` after a quoted cell (expected `,`)"),
                    ))
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        cells.push(cell.trim().to_string());
                        return Ok(cells);
                    }
                    Some(',') => {
                        cells.push(cell.trim().to_string());
                        break;
                    }
                    Some(c) => cell.push(c),
                }
            }
        }
    }
}

/// Writes a data set in the CSV format [`read_matrix_csv`] reads (values with full precision).
pub fn write_matrix_csv(data: &ItemPropertySet) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"']) || s.trim() != s || s.starts_with('#') {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::from("property");
    for item in &data.items {
        out.push(',');
        out.push_str(&quote(item));
    }
    out.push('\n');
    for (m, name) in data.properties.iter().enumerate() {
        out.push_str(&quote(name));
        for v in data.targets.row(m) {
            out.push(',');
            out.push_str(&format!("{v:?}"));
        }
        out.push('\n');
    }
    out
}
