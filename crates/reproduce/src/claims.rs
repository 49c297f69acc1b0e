//! Building claims: the paper's statement, what was measured, the criterion, pass/fail.

use tms_report::html::Claim;

/// A claim.
pub fn claim(
    id: &str,
    statement: &str,
    measured: impl Into<String>,
    criterion: impl Into<String>,
    passed: bool,
) -> Claim {
    Claim {
        id: id.to_string(),
        statement: statement.to_string(),
        measured: measured.into(),
        criterion: criterion.into(),
        passed,
    }
}

/// Formats a list of numbers compactly: `[0.40, 0.41, …]`.
pub fn list(values: &[f64], digits: usize) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:.digits$}")).collect();
    format!("[{}]", items.join(", "))
}

/// Formats a number with a sensible number of significant digits.
pub fn num(v: f64) -> String {
    if v == 0.0 || (1e-3..1e4).contains(&v.abs()) {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}
