//! Run configurations: TOML text → [`RawConfig`] (serde, unknown keys rejected at every depth) →
//! validated [`Plan`]. The model section is one registered family's ([`crate::families`]): this
//! module parses and validates it through the [`crate::families::Family`] trait and knows no
//! family by name.
//!
//! Two stages, as in ripgrep's flags: the raw stage only parses, the plan stage checks every value
//! and builds the engine's typed settings. Every error names where the config came from, the dotted
//! key, what was expected and what was found, and a hint where one helps (did-you-mean for typos).
//! Nothing is written anywhere until a config has become a `Plan`.
//!
//! The resolved config (every default filled in) is the `RawConfig` the plan keeps; writing it back as
//! TOML and running it again reproduces the run bit for bit.

use crate::families::{self, FamilyPlan, PlanContext, Section};
use crate::training::RunSettings;
use crate::validate::{one_of, parse, require, Mistake};
pub use crate::validate::{Invalid, Origin};
use serde::{Deserialize, Serialize};
use tms_engine::optim::{Optimizer, Schedule};
use tms_engine::train::TrainSettings;

/// A config as written by the user, defaults filled in by serde: `[experiment]`, `[train]` and
/// exactly one model family's section.
#[derive(Clone, Debug, PartialEq)]
pub struct RawConfig {
    /// Name and description.
    pub experiment: RawExperiment,
    /// Optimiser, schedule, steps, seeds.
    pub train: RawTrain,
    /// The model family's section (`[toy]`, `[attention]`, `[deep_linear]`, …).
    pub family: Section,
}

impl RawConfig {
    /// The serde stage: `[experiment]`, `[train]` and one registered family's section, each
    /// refusing unknown keys at every depth; any other top-level key is refused.
    pub fn from_table(table: toml::Table) -> Result<RawConfig, Invalid> {
        let mut experiment = None;
        let mut train = None;
        let mut sections: Vec<(usize, Section)> = Vec::new();
        for (key, value) in table {
            match key.as_str() {
                "experiment" => experiment = Some(parse(value, "experiment", &[])?),
                "train" => train = Some(parse(value, "train", &[])?),
                name => match families::FAMILIES.iter().position(|f| f.name() == name) {
                    Some(i) => sections.push((i, families::FAMILIES[i].parse(value)?)),
                    None => {
                        let mut allowed = vec!["experiment", "train"];
                        allowed.extend(families::names());
                        return Err(Invalid::unknown_key(name, &allowed, &[]));
                    }
                },
            }
        }
        let experiment = experiment.ok_or_else(|| Invalid {
            mistake: Mistake::MissingKey,
            ..Invalid::new("experiment", "a value (this key is required)", "nothing")
        })?;
        sections.sort_by_key(|(i, _)| *i);
        let mut sections = sections.into_iter().map(|(_, s)| s);
        let Some(family) = sections.next() else {
            let listed: Vec<String> = families::names().iter().map(|n| format!("[{n}]")).collect();
            return Err(
                Invalid::new(families::names()[0], "one model section", "none").hint(format!(
                    "add a model section such as {} (see `tms presets` for examples)",
                    listed.join(", ")
                )),
            );
        };
        if let Some(second) = sections.next() {
            return Err(Invalid::new(
                second.family(),
                "exactly one model section",
                format!("[{}] and [{}]", family.family(), second.family()),
            )
            .hint("one run trains one model family: split it into two configs"));
        }
        Ok(RawConfig {
            experiment,
            train: train.unwrap_or_default(),
            family,
        })
    }

    /// The family section, if it is `F`'s.
    pub fn section<F: families::Family>(&self) -> Option<&F::Raw> {
        self.family.get::<F>()
    }
}

/// `[experiment]`: what this run is.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    /// Short name (a preset's id, or the user's).
    pub name: String,
    /// One line for `tms presets` and the report.
    #[serde(default)]
    pub description: String,
}

/// `[train]`: settings shared by every instance. Defaults are the paper's notebook.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawTrain {
    /// Optimisation steps.
    pub steps: u64,
    /// `sgd`, `adam` or `adamw`.
    pub optimizer: String,
    /// Base learning rate η₀.
    pub learning_rate: f64,
    /// Weight decay (decoupled for AdamW, L2 for Adam; ignored by SGD).
    pub weight_decay: f64,
    /// Adam's β₁.
    pub beta1: f64,
    /// Adam's β₂.
    pub beta2: f64,
    /// Adam's ε.
    pub epsilon: f64,
    /// `constant`, `linear`, `cosine` or `warmup-cosine`.
    pub schedule: String,
    /// Warm-up steps of `warmup-cosine`.
    pub warmup_steps: u64,
    /// Run seed: each instance's streams derive from (seed, instance, replica).
    pub seed: u64,
    /// Best-of-N: seeds trained per setting; the lowest evaluation loss is kept, all are recorded.
    pub replicas: u64,
    /// A history row every `log_every` steps.
    pub log_every: u64,
}

impl Default for RawTrain {
    fn default() -> Self {
        Self {
            steps: 10_000,
            optimizer: "adamw".into(),
            learning_rate: 1e-3,
            weight_decay: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            schedule: "constant".into(),
            warmup_steps: 0,
            seed: 0,
            replicas: 1,
            log_every: 100,
        }
    }
}

/// A validated run: typed settings for the engine plus the resolved config it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The config with every default filled in (written as `config.toml`).
    pub resolved: RawConfig,
    /// Training settings shared by every instance.
    pub train: TrainSettings,
    /// Run seed.
    pub seed: u64,
    /// Replicas per setting (best-of-N).
    pub replicas: u64,
    /// The model family and its instances.
    pub family: FamilyPlan,
}

impl Plan {
    /// The settings every instance shares.
    pub fn run_settings(&self) -> RunSettings {
        RunSettings {
            train: self.train,
            seed: self.seed,
            replicas: self.replicas,
        }
    }
}

/// Why a config was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {message}")]
    Read {
        /// The path given.
        path: std::path::PathBuf,
        /// The operating system's reason.
        message: String,
    },
    /// Not valid TOML.
    #[error("invalid config {origin}: TOML syntax error\n{message}")]
    Syntax {
        /// Where the text came from.
        origin: Origin,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A `--set key=value` override that cannot apply.
    #[error("invalid override `{assignment}`: {problem}")]
    Override {
        /// The `key=value` text.
        assignment: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A key with a wrong value, an unknown key, or a missing key.
    #[error("invalid config {origin}\nCaused by: `{key}` expected {expected}, but found {found}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Invalid {
        /// Where the config came from.
        origin: Origin,
        /// Dotted key, e.g. `toy.density`.
        key: String,
        /// What is allowed.
        expected: String,
        /// What was there.
        found: String,
        /// How to fix it.
        hint: Option<String>,
    },
}

impl ConfigError {
    /// The process exit code this error means: always 2, bad input (nothing was written).
    pub fn exit_code(&self) -> u8 {
        crate::EXIT_BAD_INPUT
    }
}

impl Invalid {
    /// The full error, placed at `origin`.
    pub fn at(self, origin: &Origin) -> ConfigError {
        ConfigError::Invalid {
            origin: origin.clone(),
            key: self.key,
            expected: self.expected,
            found: self.found,
            hint: self.hint,
        }
    }
}

/// Parses TOML text, applies `--set` overrides, and validates it into a plan.
pub fn load(text: &str, origin: &Origin, overrides: &[String]) -> Result<Plan, ConfigError> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        origin: origin.clone(),
        message: e.to_string(),
    })?;
    for assignment in overrides {
        apply_override(&mut table, assignment)?;
    }
    let mut raw = RawConfig::from_table(table).map_err(|e| e.at(origin))?;
    raw.family.resolve_paths(origin);
    plan(raw).map_err(|e| e.at(origin))
}

/// Validates a raw config into a plan.
pub fn plan(mut raw: RawConfig) -> Result<Plan, Invalid> {
    let t = &raw.train;
    require(t.steps >= 1, "train.steps", "an integer ≥ 1", t.steps)?;
    require(
        t.learning_rate.is_finite() && t.learning_rate > 0.0,
        "train.learning_rate",
        "a finite number > 0",
        t.learning_rate,
    )?;
    require(
        t.weight_decay.is_finite() && t.weight_decay >= 0.0,
        "train.weight_decay",
        "a finite number ≥ 0",
        t.weight_decay,
    )?;
    require(
        (0.0..1.0).contains(&t.beta1),
        "train.beta1",
        "a number in [0, 1)",
        t.beta1,
    )?;
    require(
        (0.0..1.0).contains(&t.beta2),
        "train.beta2",
        "a number in [0, 1)",
        t.beta2,
    )?;
    require(
        t.epsilon.is_finite() && t.epsilon > 0.0,
        "train.epsilon",
        "a finite number > 0",
        t.epsilon,
    )?;
    require(
        t.replicas >= 1 && t.replicas <= 100_000,
        "train.replicas",
        "an integer in [1, 100000]",
        t.replicas,
    )?;
    require(
        t.log_every >= 1,
        "train.log_every",
        "an integer ≥ 1",
        t.log_every,
    )?;
    require(
        t.warmup_steps <= t.steps,
        "train.warmup_steps",
        format!("an integer in [0, train.steps = {}]", t.steps).as_str(),
        t.warmup_steps,
    )?;
    let optimizer = match t.optimizer.as_str() {
        "sgd" => Optimizer::Sgd,
        "adam" => Optimizer::Adam {
            beta1: t.beta1,
            beta2: t.beta2,
            epsilon: t.epsilon,
            weight_decay: t.weight_decay,
        },
        "adamw" => Optimizer::AdamW {
            beta1: t.beta1,
            beta2: t.beta2,
            epsilon: t.epsilon,
            weight_decay: t.weight_decay,
        },
        other => return Err(one_of("train.optimizer", &["sgd", "adam", "adamw"], other)),
    };
    let schedule = match t.schedule.as_str() {
        "constant" => Schedule::Constant,
        "linear" => Schedule::Linear,
        "cosine" => Schedule::Cosine,
        "warmup-cosine" => Schedule::WarmupCosine {
            warmup_steps: t.warmup_steps,
        },
        other => {
            return Err(one_of(
                "train.schedule",
                &["constant", "linear", "cosine", "warmup-cosine"],
                other,
            ))
        }
    };
    let train = TrainSettings {
        steps: t.steps,
        optimizer,
        learning_rate: t.learning_rate,
        schedule,
        log_every: t.log_every,
    };
    let (seed, replicas) = (t.seed, t.replicas);
    let family = raw.family.plan(&PlanContext { seed })?;
    Ok(Plan {
        resolved: raw,
        train,
        seed,
        replicas,
        family,
    })
}

/// Applies `a.b.c=value` to a TOML table. The value is parsed as TOML (number, bool, array, inline
/// table, quoted string); anything else is taken as a bare string.
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<(), ConfigError> {
    let fail = |problem: &str| ConfigError::Override {
        assignment: assignment.to_string(),
        problem: problem.to_string(),
    };
    let (key, value) = assignment
        .split_once('=')
        .ok_or_else(|| fail("expected KEY=VALUE, e.g. train.steps=2000"))?;
    let key = key.trim();
    if key.split('.').any(str::is_empty) {
        return Err(fail("the key must be a dotted path like toy.density"));
    }
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {}", value.trim())) {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => toml::Value::String(value.trim().to_string()),
    };
    set_dotted(table, key, value).map_err(|problem| fail(&problem))
}

/// Sets the dotted `key` in `table`, creating intermediate tables; the error says which part is
/// not a table.
pub fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut current = table;
    for part in &parts[..parts.len() - 1] {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            other => return Err(format!("`{part}` is a {}, not a table", other.type_str())),
        };
    }
    current.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// The resolved config as TOML text: `[experiment]`, `[train]`, then the family's section.
pub fn to_toml(raw: &RawConfig) -> String {
    #[derive(Serialize)]
    struct Head<'a> {
        experiment: &'a RawExperiment,
        train: &'a RawTrain,
    }
    let head = Head {
        experiment: &raw.experiment,
        train: &raw.train,
    };
    let head = toml::to_string_pretty(&head).expect("the head of a config always serialises");
    format!("{head}\n{}", raw.family.to_toml())
}

/// Helpers of the config tests of every family.
#[cfg(test)]
pub(crate) mod testing {
    use super::{load, ConfigError, Origin};

    /// The error of loading `text` (from file `file`) with `overrides`; panics if it loads.
    pub fn rejected(text: &str, file: &str, overrides: &[&str]) -> ConfigError {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        load(text, &Origin::File(file.into()), &overrides).expect_err("config must be rejected")
    }

    /// The dotted key of an invalid-key error; panics on any other error.
    pub fn key_of(e: &ConfigError) -> String {
        match e {
            ConfigError::Invalid { key, .. } => key.clone(),
            other => panic!("expected an invalid-key error, got {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{key_of, rejected};
    use super::*;

    const BASE: &str = "[experiment]\nname = \"t\"\n[toy]\nmodel = \"relu-output\"\nn_features = 5\nn_hidden = 2\ndensity = 0.1\n";

    fn error(text: &str, overrides: &[&str]) -> ConfigError {
        rejected(text, "c.toml", overrides)
    }

    #[test]
    fn valid_config_loads_and_round_trips() {
        let plan = load(BASE, &Origin::Preset("t".into()), &[]).unwrap();
        let again = load(&to_toml(&plan.resolved), &Origin::Preset("t".into()), &[]).unwrap();
        assert_eq!(plan, again);
        assert_eq!(plan.train.steps, 10_000);
    }

    #[test]
    fn each_bad_value_names_its_key() {
        for (set, key) in [
            ("toy.n_features=0", "toy.n_features"),
            ("toy.density=1.5", "toy.density"),
            ("toy.density=-0.1", "toy.density"),
            (
                "toy.importance=[1.0, -1.0, 1.0, 1.0, 1.0]",
                "toy.importance",
            ),
            ("toy.n_hidden=6", "toy.n_hidden"),
            ("train.learning_rate=nan", "train.learning_rate"),
            ("train.learning_rate=-0.1", "train.learning_rate"),
            ("train.steps=0", "train.steps"),
            ("train.optimizer=\"adamx\"", "train.optimizer"),
            ("toy.model=\"relu\"", "toy.model"),
            ("toy.density=0.0", "toy.density"),
        ] {
            let e = error(BASE, &[set]);
            assert_eq!(key_of(&e), key, "{set}: {e}");
        }
    }

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let e = error(BASE, &["toy.desnity=0.1"]);
        assert_eq!(key_of(&e), "toy.desnity");
        let text = e.to_string();
        assert!(text.contains("did you mean `density`?"), "{text}");
        assert!(text.contains("c.toml"), "{text}");
        let e = error(&BASE.replace("[experiment]", "[experimnt]"), &[]);
        assert!(e.to_string().contains("did you mean `experiment`?"), "{e}");
    }

    #[test]
    fn typos_inside_inline_tables_name_the_full_key() {
        // The two typos of issue 14, which used to train silently.
        for (set, key, hint) in [
            (
                "toy.density={ from = 1.0, to = 0.05, count = 4, spacng = \"linear\" }",
                "toy.density.spacng",
                "did you mean `spacing`?",
            ),
            (
                "toy.importance={ decay = 0.9, scal = 2 }",
                "toy.importance.scal",
                "allowed keys: decay",
            ),
            (
                "toy.sets=[{ kind = \"correlated\", features = [0, 2], convnetion = \"set\" }]",
                "toy.sets[0].convnetion",
                "did you mean `convention`?",
            ),
        ] {
            let e = error(BASE, &[set]);
            assert_eq!(key_of(&e), key, "{e}");
            assert!(e.to_string().contains(hint), "{e}");
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn wrong_types_and_missing_keys_name_the_key() {
        assert_eq!(
            key_of(&error(BASE, &["train.steps=\"many\""])),
            "train.steps"
        );
        let e = error(&BASE.replace("n_hidden = 2\n", ""), &[]);
        assert_eq!(key_of(&e), "toy.n_hidden");
    }

    #[test]
    fn syntax_errors_and_bad_overrides() {
        assert!(matches!(
            error("[experiment\n", &[]),
            ConfigError::Syntax { .. }
        ));
        assert!(matches!(
            error(BASE, &["novalue"]),
            ConfigError::Override { .. }
        ));
        assert!(matches!(
            error(BASE, &["experiment.name.x=1"]),
            ConfigError::Override { .. }
        ));
    }
}
