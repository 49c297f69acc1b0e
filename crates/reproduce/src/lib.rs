//! # tms-reproduce
//!
//! `tms reproduce`: every experiment of the paper (E1–E12 of `experiments.md` §5) and of the
//! follow-ups, each as presets (TOML, in `presets/`) plus an analysis step that turns trained
//! weights into figures and **claims**. A claim has an id, the paper's statement, the measured value,
//! the criterion (taken from the paper, never from what the code happened to produce) and pass/fail.
//! The driver trains each experiment's runs through the same path as `tms train`, writes the run
//! directories, calls the analysis, and writes the self-contained report and `claims.json`.
//!
//! Adding an experiment is adding presets and one module under [`experiments`] that implements
//! [`Experiment`]; the engine is not touched.

#![forbid(unsafe_code)]

pub mod claims;
pub mod deep_linear;
pub mod experiments;
pub mod figures;
pub mod toy;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tms_experiments::config::{ConfigError, Plan};
use tms_experiments::output::{self, OutputError};
use tms_experiments::run::{self, InstanceOutcome};
use tms_experiments::{config, presets};
use tms_report::html::{Claim, FigureRef, ReportBuilder, Section, SummaryRow};
use tms_report::ReportError;

/// Reduced scale for CI (`--quick`, same code path) or the paper's scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Fewer steps, replicas or grid points: minutes for everything, claims still checked.
    Quick,
    /// The paper's settings.
    Full,
}

impl Scale {
    /// `quick` or `full`.
    pub fn name(self) -> &'static str {
        match self {
            Scale::Quick => "quick",
            Scale::Full => "full",
        }
    }
}

/// One training run an experiment needs: a preset and `--set` overrides.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RunRequest {
    /// Preset name (a file in `presets/`).
    pub preset: String,
    /// Overrides applied on top (the quick scale's reductions, or variants).
    pub overrides: Vec<String>,
}

impl RunRequest {
    /// A preset with overrides.
    pub fn new(preset: &str, overrides: &[&str]) -> Self {
        Self {
            preset: preset.to_string(),
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The preset with no overrides at full scale, or with `quick` overrides at quick scale.
    pub fn scaled(preset: &str, scale: Scale, quick: &[&str]) -> Self {
        match scale {
            Scale::Full => Self::new(preset, &[]),
            Scale::Quick => Self::new(preset, quick),
        }
    }
}

/// A trained run handed to an analysis.
#[derive(Clone, Debug)]
pub struct CompletedRun {
    /// What was asked for.
    pub request: RunRequest,
    /// The validated plan (settings of every instance).
    pub plan: Plan,
    /// Every instance, best replica selected.
    pub outcomes: Vec<InstanceOutcome>,
    /// Where its run directory was written.
    pub dir: PathBuf,
    /// Training wall time in seconds.
    pub wall_time_s: f64,
}

/// What an analysis receives.
pub struct Context<'a> {
    /// The runs of [`Experiment::runs`], in the same order.
    pub runs: &'a [CompletedRun],
    /// Directory for this report's figures.
    pub figures_dir: &'a Path,
    /// The scale the runs were trained at.
    pub scale: Scale,
}

impl Context<'_> {
    /// The path stem of a figure of experiment `id` named `name`.
    pub fn figure_stem(&self, id: &str, name: &str) -> PathBuf {
        self.figures_dir
            .join(format!("{}-{name}", id.to_lowercase()))
    }
}

/// What an analysis returns: the report section's body.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    /// Settings shown in the section (key → value).
    pub settings: Vec<(String, String)>,
    /// Paragraphs of findings (plain text).
    pub paragraphs: Vec<String>,
    /// Figures.
    pub figures: Vec<FigureRef>,
    /// Checked claims.
    pub claims: Vec<Claim>,
}

/// One experiment: its runs and its analysis.
pub trait Experiment: Sync {
    /// Id used by `--only`, the report and claims (e.g. `E1`).
    fn id(&self) -> &'static str;
    /// Title in the report.
    fn title(&self) -> &'static str;
    /// The runs to train at `scale`.
    fn runs(&self, scale: Scale) -> Vec<RunRequest>;
    /// Turns the trained runs into figures and claims.
    fn analyse(&self, context: &Context) -> Result<Analysis, ReproduceError>;
}

/// Why `reproduce` failed (distinct from claims failing, which is a result).
#[derive(Debug, thiserror::Error)]
pub enum ReproduceError {
    /// `--only` named an unknown experiment.
    #[error("--only expected experiment ids among {known}, but found `{found}`")]
    UnknownExperiment {
        /// The id given.
        found: String,
        /// The known ids.
        known: String,
    },
    /// An experiment's preset does not load (a bug in the preset or its overrides).
    #[error("experiment {experiment}: preset {preset}")]
    Preset {
        /// Experiment id.
        experiment: String,
        /// Preset name.
        preset: String,
        /// The config error (boxed: it carries the whole origin, key and hint).
        #[source]
        source: Box<ConfigError>,
    },
    /// Writing outputs failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Drawing a figure or writing the report failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// An analysis found its runs unusable (e.g. missing tensors).
    #[error("experiment {experiment}: {message}")]
    Analysis {
        /// Experiment id.
        experiment: String,
        /// What was wrong.
        message: String,
    },
}

/// Options of `tms reproduce`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Output directory: `runs/` and `report/` go under it.
    pub out: PathBuf,
    /// Experiment ids to run (all when `None`).
    pub only: Option<Vec<String>>,
    /// Quick or full.
    pub scale: Scale,
}

/// Progress callbacks, implemented by the CLI (progress bars) or ignored (tests).
pub trait Observer: Sync {
    /// A run starts with `total_steps` steps to report.
    fn run_started(&self, _experiment: &str, _preset: &str, _total_steps: u64) {}
    /// `steps` more steps were done.
    fn steps(&self, _steps: u64) {}
    /// The current run finished.
    fn run_finished(&self) {}
    /// An experiment is analysed.
    fn experiment_finished(&self, _id: &str, _passed: usize, _total: usize, _wall_time_s: f64) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// Result of one experiment.
#[derive(Clone, Debug)]
pub struct ExperimentReport {
    /// Experiment id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Its section of the report.
    pub section: Section,
    /// Training plus analysis wall time.
    pub wall_time_s: f64,
}

/// The outcome of `reproduce`.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Per experiment.
    pub experiments: Vec<ExperimentReport>,
    /// `report/index.html`.
    pub report: PathBuf,
    /// `report/claims.json`.
    pub claims_json: PathBuf,
}

impl Summary {
    /// (passed, total) claims over all experiments.
    pub fn claims_passed(&self) -> (usize, usize) {
        let claims = self.experiments.iter().flat_map(|e| &e.section.claims);
        let (mut passed, mut total) = (0, 0);
        for c in claims {
            total += 1;
            passed += c.passed as usize;
        }
        (passed, total)
    }

    /// The claims that failed, as (experiment id, claim).
    pub fn failures(&self) -> Vec<(&str, &Claim)> {
        self.experiments
            .iter()
            .flat_map(|e| {
                e.section
                    .claims
                    .iter()
                    .filter(|c| !c.passed)
                    .map(move |c| (e.id.as_str(), c))
            })
            .collect()
    }
}

/// Checks `--only` ids against the registry, before anything runs.
pub fn select(only: Option<&[String]>) -> Result<Vec<Box<dyn Experiment>>, ReproduceError> {
    let all = experiments::registry();
    let Some(only) = only else { return Ok(all) };
    let known: Vec<&str> = all.iter().map(|e| e.id()).collect();
    for id in only {
        if !known.iter().any(|k| k.eq_ignore_ascii_case(id)) {
            return Err(ReproduceError::UnknownExperiment {
                found: id.clone(),
                known: known.join(", "),
            });
        }
    }
    Ok(all
        .into_iter()
        .filter(|e| only.iter().any(|id| id.eq_ignore_ascii_case(e.id())))
        .collect())
}

/// Loads every run of the selected experiments (validation before any training).
fn plans(
    selected: &[Box<dyn Experiment>],
    scale: Scale,
) -> Result<Vec<Vec<(RunRequest, Plan)>>, ReproduceError> {
    selected
        .iter()
        .map(|e| {
            e.runs(scale)
                .into_iter()
                .map(|request| {
                    let plan = presets::load_preset(&request.preset, &request.overrides).map_err(
                        |source| ReproduceError::Preset {
                            experiment: e.id().to_string(),
                            preset: request.preset.clone(),
                            source: Box::new(source),
                        },
                    )?;
                    Ok((request, plan))
                })
                .collect()
        })
        .collect()
}

/// Trains, analyses and reports the selected experiments.
pub fn reproduce(options: &Options, observer: &dyn Observer) -> Result<Summary, ReproduceError> {
    let selected = select(options.only.as_deref())?;
    let plans = plans(&selected, options.scale)?;
    let report_dir = options.out.join("report");
    let figures_dir = report_dir.join("figures");
    std::fs::create_dir_all(&figures_dir).map_err(|source| OutputError::Io {
        path: figures_dir.clone(),
        source,
    })?;
    // Runs shared between experiments (E5 and E6 analyse the same models) train once.
    let mut cache: HashMap<RunRequest, CompletedRun> = HashMap::new();
    let mut reports = Vec::new();
    for (experiment, runs) in selected.iter().zip(plans) {
        let start = Instant::now();
        let mut completed = Vec::new();
        for (request, plan) in runs {
            if let Some(done) = cache.get(&request) {
                completed.push(done.clone());
                continue;
            }
            let done = train_run(
                experiment.id(),
                request.clone(),
                plan,
                &options.out,
                observer,
            )?;
            cache.insert(request, done.clone());
            completed.push(done);
        }
        let context = Context {
            runs: &completed,
            figures_dir: &figures_dir,
            scale: options.scale,
        };
        let analysis = experiment.analyse(&context)?;
        let wall_time_s = start.elapsed().as_secs_f64();
        let mut settings = vec![("scale".to_string(), options.scale.name().to_string())];
        for run in &completed {
            let text = if run.request.overrides.is_empty() {
                run.request.preset.clone()
            } else {
                format!(
                    "{} with {}",
                    run.request.preset,
                    run.request.overrides.join(" ")
                )
            };
            settings.push((
                format!("run {}", run.plan.resolved.experiment.name),
                format!(
                    "{text} ({} instances × {} replicas × {} steps, {:.1} s)",
                    run.outcomes.len(),
                    run.plan.replicas,
                    run.plan.train.steps,
                    run.wall_time_s
                ),
            ));
        }
        settings.extend(analysis.settings);
        let section = Section {
            id: experiment.id().to_string(),
            title: format!("{} — {}", experiment.id(), experiment.title()),
            settings,
            paragraphs: analysis.paragraphs,
            figures: analysis.figures,
            claims: analysis.claims,
        };
        let passed = section.claims.iter().filter(|c| c.passed).count();
        observer.experiment_finished(experiment.id(), passed, section.claims.len(), wall_time_s);
        reports.push(ExperimentReport {
            id: experiment.id().to_string(),
            title: experiment.title().to_string(),
            section,
            wall_time_s,
        });
    }
    write_report(options, reports, &report_dir)
}

fn train_run(
    experiment: &str,
    request: RunRequest,
    plan: Plan,
    out: &Path,
    observer: &dyn Observer,
) -> Result<CompletedRun, ReproduceError> {
    let indices: Vec<usize> = (0..plan.family.instance_count()).collect();
    observer.run_started(
        experiment,
        &request.preset,
        run::total_steps(&plan, &indices),
    );
    let start = Instant::now();
    let outcomes = run::run(&plan, &indices, &|k| observer.steps(k));
    let wall_time_s = start.elapsed().as_secs_f64();
    observer.run_finished();
    let dir = out.join("runs").join(&request.preset);
    let files = output::run_files(&plan, &outcomes)?;
    output::write_run_dir(&dir, &files, true)?;
    Ok(CompletedRun {
        request,
        plan,
        outcomes,
        dir,
        wall_time_s,
    })
}

fn write_report(
    options: &Options,
    experiments: Vec<ExperimentReport>,
    report_dir: &Path,
) -> Result<Summary, ReproduceError> {
    let mut builder = ReportBuilder::new("tms — Toy Models of Superposition, reproduced")
        .paragraph(format!(
            "Every experiment of Elhage et al. 2022 (and the follow-ups) trained by `tms reproduce` at {} scale, with the paper's claims checked automatically. Settings are read from the presets; figures are drawn from the trained weights.",
            options.scale.name()
        ));
    for e in &experiments {
        let passed = e.section.claims.iter().filter(|c| c.passed).count();
        builder = builder.summary_row(SummaryRow {
            id: e.id.clone(),
            title: e.title.clone(),
            claims_passed: passed,
            claims_total: e.section.claims.len(),
            wall_time_s: e.wall_time_s,
        });
    }
    for e in &experiments {
        builder = builder.section(e.section.clone());
    }
    let report = builder.write(report_dir)?;
    let claims_json = report_dir.join("claims.json");
    let summary = Summary {
        experiments,
        report,
        claims_json: claims_json.clone(),
    };
    let (passed, total) = summary.claims_passed();
    let doc = serde_json::json!({
        "scale": options.scale.name(),
        "passed": passed,
        "total": total,
        "experiments": summary.experiments.iter().map(|e| serde_json::json!({
            "id": e.id,
            "title": e.title,
            "wall_time_s": e.wall_time_s,
            "claims": e.section.claims,
        })).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&doc).expect("JSON values serialise") + "\n";
    output::write_atomically(&claims_json, text.as_bytes())?;
    Ok(summary)
}

/// Re-export for experiment modules: the config's `to_toml`, used in settings tables.
pub use config::to_toml;
