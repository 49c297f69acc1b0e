//! The built-in presets: one TOML file per run in the repository's `presets/` folder, embedded at
//! build time (see `build.rs`). `tms presets` lists them; `tms train --preset NAME` runs one.

use crate::config::{load, ConfigError, Origin, Plan};

include!(concat!(env!("OUT_DIR"), "/presets.rs"));

/// The TOML text of preset `name`.
pub fn text(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Names of all presets.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}

/// Loads preset `name` with `--set` overrides.
pub fn load_preset(name: &str, overrides: &[String]) -> Result<Plan, ConfigError> {
    let text = text(name).ok_or_else(|| {
        let mut e = crate::config::Invalid::new(
            "--preset",
            format!("one of {}", names().join(", ")),
            format!("`{name}`"),
        );
        if let Some(s) = crate::validate::did_you_mean(name, &names()) {
            e = e.hint(format!("did you mean `{s}`?"));
        }
        e.at(&Origin::Preset(name.to_string()))
    })?;
    load(text, &Origin::Preset(name.to_string()), overrides)
}

/// The one-line description of a preset (its `experiment.description`).
pub fn description(name: &str) -> String {
    text(name)
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| {
            t.get("experiment")?
                .get("description")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_loads_and_describes_itself() {
        assert!(!PRESETS.is_empty());
        for name in names() {
            let plan = load_preset(name, &[]).unwrap_or_else(|e| panic!("preset {name}: {e}"));
            assert_eq!(
                plan.resolved.experiment.name, name,
                "preset file name and experiment.name agree"
            );
            assert!(
                !description(name).is_empty(),
                "preset {name} has a description"
            );
        }
    }
}
