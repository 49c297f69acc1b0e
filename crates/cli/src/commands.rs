//! Subcommands and their glue.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use tms_experiments::config::{load, ConfigError, Origin, Plan};
use tms_experiments::output::{self, OutputError};
use tms_experiments::{presets, run};

/// Toy Models of Superposition: train, sweep, reproduce and inspect.
#[derive(Parser, Debug)]
#[command(name = "tms", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train the instances of one config (a TOML file or a preset) and write a run directory.
    Train {
        /// Config file (TOML). Give either this or --preset.
        config: Option<PathBuf>,
        /// A built-in preset (see `tms presets`).
        #[arg(long, conflicts_with = "config")]
        preset: Option<String>,
        /// Output run directory (created atomically).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Override a config key, e.g. --set train.steps=2000 --set toy.density=0.05 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Replace DIR if it exists.
        #[arg(long)]
        force: bool,
    },
    /// List the built-in presets.
    Presets,
    /// Print a summary of a finished run directory.
    Inspect {
        /// A run directory written by `tms train`.
        dir: PathBuf,
    },
}

/// Errors that mean "bad input" (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(String);

/// 2 for bad input, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    let bad = e.chain().any(|c| {
        c.is::<ConfigError>() || c.is::<BadInput>() || matches!(c.downcast_ref::<OutputError>(), Some(OutputError::Exists(_)))
    });
    if bad {
        2
    } else {
        1
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    if let Some(threads) = cli.threads {
        if threads == 0 {
            return Err(BadInput("--threads expected an integer ≥ 1, but found 0".into()).into());
        }
        rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().context("cannot start the thread pool")?;
    }
    match cli.command {
        Command::Train { config, preset, out, overrides, force } => train(config, preset, &out, &overrides, force),
        Command::Presets => {
            for name in presets::names() {
                println!("{name:<20} {}", presets::description(name));
            }
            Ok(())
        }
        Command::Inspect { dir } => inspect(&dir),
    }
}

fn load_plan(config: Option<PathBuf>, preset: Option<String>, overrides: &[String]) -> Result<Plan> {
    match (config, preset) {
        (Some(path), None) => {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read { path: path.clone(), message: e.to_string() })?;
            Ok(load(&text, &Origin::File(path), overrides)?)
        }
        (None, Some(name)) => Ok(presets::load_preset(&name, overrides)?),
        _ => Err(BadInput("give a config file or --preset NAME (see `tms presets`)".into()).into()),
    }
}

/// A progress bar on stderr with an ETA, drawn only when stdout is a terminal.
pub fn progress_bar(total: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    if std::io::stdout().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
    }
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:40}] {percent:>3}% {human_pos}/{human_len} steps, ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

fn train(config: Option<PathBuf>, preset: Option<String>, out: &Path, overrides: &[String], force: bool) -> Result<()> {
    let plan = load_plan(config, preset, overrides)?;
    output::check_target(out, force)?;
    let indices: Vec<usize> = (0..plan.family.instance_count()).collect();
    let bar = progress_bar(run::total_steps(&plan, &indices), &plan.resolved.experiment.name);
    let start = std::time::Instant::now();
    let outcomes = run::run(&plan, &indices, &|k| bar.inc(k));
    bar.finish_and_clear();
    for o in &outcomes {
        if let tms_engine::train::Status::Diverged { step, loss } = o.chosen().status {
            eprintln!(
                "warning: instance {} ({}) diverged at step {step} (loss {loss}); its training stopped, the other instances went on",
                o.index, o.settings
            );
        }
    }
    let files = output::run_files(&plan, &outcomes)?;
    output::write_run_dir(out, &files, force)?;
    println!(
        "trained {} instance(s) × {} replica(s) × {} steps in {:.1} s → {}",
        outcomes.len(),
        plan.replicas,
        plan.train.steps,
        start.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

fn inspect(dir: &Path) -> Result<()> {
    let metrics = output::read_metrics(dir)?;
    let tensors = output::read_tensors(dir)?;
    println!(
        "{}: experiment {}, family {}, {} steps, best of {} replica(s)",
        dir.display(),
        metrics["experiment"].as_str().unwrap_or("?"),
        metrics["family"].as_str().unwrap_or("?"),
        metrics["steps"],
        metrics["replicas"]
    );
    let shapes: Vec<String> = tensors.iter().map(|(n, s, _)| format!("{n} {s:?}")).collect();
    println!("tensors: {}", shapes.join(", "));
    println!("{:>8} {:>10} {:>12} {:>8} {:>12} {:>10}", "instance", "density", "loss", "D*", "represented", "status");
    for inst in metrics["instances"].as_array().into_iter().flatten() {
        let n = inst["norms"].as_array().map(|a| a.len()).unwrap_or(0);
        println!(
            "{:>8} {:>10} {:>12} {:>8} {:>12} {:>10}",
            inst["index"],
            fmt_num(&inst["density"], 4),
            fmt_num(&inst["evaluation_loss"], 6),
            fmt_num(&inst["dimensions_per_feature"], 3),
            format!("{}/{n}", inst["represented_features"]),
            inst["status"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

fn fmt_num(v: &serde_json::Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e4) => format!("{x:.*e}", digits.saturating_sub(2)),
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    }
}
