//! What every validation stage shares: [`Invalid`] (a bad value at a dotted key, before its origin is
//! known), the checks that build one ([`require`], [`one_of`], [`did_you_mean`]), and [`parse`], the
//! serde stage that turns a TOML value into a raw section with every unknown key refused — at every
//! depth, with the full dotted key and a did-you-mean.
//!
//! This module knows no config, no family and no sweep: the families, the run config and the sweep
//! file all build on it.

use serde::de::DeserializeOwned;
use std::fmt;

/// Where a config came from, for error messages.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// A file on disk.
    File(std::path::PathBuf),
    /// A built-in preset.
    Preset(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Preset(name) => write!(f, "preset `{name}`"),
        }
    }
}

/// What kind of mistake an [`Invalid`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mistake {
    /// A value out of range, of the wrong type, or inconsistent with another.
    Value,
    /// A key the table does not have.
    UnknownKey,
    /// A required key that is not there.
    MissingKey,
}

/// A value error before its origin is known; the config and the sweep file place it.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// What kind of mistake it is.
    pub mistake: Mistake,
    /// Dotted key, e.g. `toy.density.spacing`.
    pub key: String,
    /// What is allowed.
    pub expected: String,
    /// What was there.
    pub found: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Invalid {
    /// An error for `key`.
    pub fn new(
        key: impl Into<String>,
        expected: impl Into<String>,
        found: impl fmt::Display,
    ) -> Self {
        Self {
            mistake: Mistake::Value,
            key: key.into(),
            expected: expected.into(),
            found: found.to_string(),
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// An unknown key `key` (dotted, its last part the unknown name) among `allowed`, with a
    /// did-you-mean, or the allowed keys when nothing is close. `renamed` maps old names (relative
    /// to the same table) to their new ones: an old name's hint names the new key.
    pub fn unknown_key(key: &str, allowed: &[&str], renamed: &[(&str, &str)]) -> Self {
        let (parent, name) = match key.rsplit_once('.') {
            Some((p, n)) => (Some(p), n),
            None => (None, key),
        };
        let err = Invalid {
            mistake: Mistake::UnknownKey,
            ..Invalid::new(
                key,
                format!(
                    "a known key{}",
                    parent.map(|p| format!(" of [{p}]")).unwrap_or_default()
                ),
                format!("unknown key `{name}`"),
            )
        };
        if let Some((_, new)) = renamed.iter().find(|(old, _)| *old == name) {
            let new_key = match parent {
                Some(p) => format!("{p}.{new}"),
                None => new.to_string(),
            };
            return err.hint(format!("`{name}` was renamed: write `{new_key}`"));
        }
        match did_you_mean(name, allowed) {
            Some(s) => err.hint(format!("did you mean `{s}`?")),
            None if !allowed.is_empty() => {
                err.hint(format!("allowed keys: {}", allowed.join(", ")))
            }
            None => err,
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` expected {}, but found {}",
            self.key, self.expected, self.found
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Checks `ok`, or fails with an [`Invalid`] for `key`.
pub fn require(
    ok: bool,
    key: &str,
    expected: &str,
    found: impl fmt::Display,
) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(key, expected, found))
    }
}

/// An error for a string field that must be one of `allowed`, with a did-you-mean hint.
pub fn one_of(key: &str, allowed: &[&str], found: &str) -> Invalid {
    let expected = format!(
        "one of {}",
        allowed
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let err = Invalid::new(key, expected, format!("`{found}`"));
    match did_you_mean(found, allowed) {
        Some(s) => err.hint(format!("did you mean `{s}`?")),
        None => err,
    }
}

/// The closest of `candidates` to `word` by edit distance, if close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|&(d, c)| d <= 2.max(c.len() / 3))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            current.push(
                (previous[j] + (ca != cb) as usize)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}

/// The serde stage: deserialises `value` (the table or value at dotted key `prefix`) into `T`,
/// whose structs refuse unknown keys at every depth. A serde error becomes an [`Invalid`] at its
/// full dotted key: an unknown key with a did-you-mean (or the hint of `renamed`, old → new names
/// relative to `prefix`), a missing key, or a value of the wrong type.
pub fn parse<T: DeserializeOwned>(
    value: toml::Value,
    prefix: &str,
    renamed: &[(&str, &str)],
) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(value).map_err(|e| schema_error(e, prefix, renamed))
}

/// `prefix` and a relative dotted path joined (either may be empty).
pub fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty() || path == ".") {
        (_, true) => prefix.to_string(),
        (true, false) => path.to_string(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// Turns a serde error (unknown key, missing key, wrong type) into an `Invalid` at its dotted path.
fn schema_error(
    error: serde_path_to_error::Error<toml::de::Error>,
    prefix: &str,
    renamed: &[(&str, &str)],
) -> Invalid {
    let path = join(prefix, &error.path().to_string());
    let message = error.inner().message().to_string();
    // serde: "unknown field `x`, expected one of `a`, `b`" / "unknown field `x`, expected `a`" /
    // "unknown field `x`, there are no fields". The path ends with `x` itself.
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let allowed: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        let key = if path.rsplit('.').next() == Some(field) {
            path.clone()
        } else {
            join(&path, field)
        };
        let relative = key
            .strip_prefix(prefix)
            .map(|r| r.trim_start_matches('.'))
            .unwrap_or(&key);
        let renamed_here: Vec<(&str, &str)> = renamed
            .iter()
            .filter(|(old, _)| *old == relative)
            .map(|(old, new)| {
                (
                    old.rsplit('.').next().unwrap_or(old),
                    new.rsplit('.').next().unwrap_or(new),
                )
            })
            .collect();
        return Invalid::unknown_key(&key, &allowed, &renamed_here);
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return Invalid::new(
            join(&path, field),
            "a value (this key is required)",
            "nothing",
        );
    }
    // "invalid type: string \"x\", expected f64" and similar.
    let (found, expected) = match message.split_once(", expected ") {
        Some((f, e)) => (
            f.trim_start_matches("invalid type: ")
                .trim_start_matches("invalid value: ")
                .to_string(),
            e.to_string(),
        ),
        None => (message.clone(), "a valid value".into()),
    };
    Invalid::new(path, expected, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_need_a_close_match() {
        assert_eq!(
            did_you_mean("densty", &["density", "importance"]),
            Some("density")
        );
        assert_eq!(did_you_mean("zzzzzz", &["density", "importance"]), None);
    }

    #[test]
    fn keys_join_with_dots_and_brackets() {
        assert_eq!(join("toy", "density.spacing"), "toy.density.spacing");
        assert_eq!(join("toy", "[0]"), "toy[0]");
        assert_eq!(join("toy", "."), "toy");
        assert_eq!(join("", "train"), "train");
    }

    #[test]
    fn renamed_keys_name_the_new_key() {
        let e = Invalid::unknown_key(
            "attention.a0",
            &["initial_strength"],
            &[("a0", "initial_strength")],
        );
        assert_eq!(
            e.hint.as_deref(),
            Some("`a0` was renamed: write `attention.initial_strength`")
        );
    }
}
