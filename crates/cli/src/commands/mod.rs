//! Subcommands and their glue: one file per command family; this file holds the argument
//! definitions, exit codes and the progress bar they share.

mod bench;
mod reproduce;
mod sweep;
mod train;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use tms_experiments::config::ConfigError;
use tms_experiments::output::OutputError;
use tms_experiments::presets;
use tms_experiments::sweep::SweepError;

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
    /// Train every experiment of the paper (and follow-ups), draw the figures, check each claim and
    /// write a self-contained report (OUT/report/index.html).
    Reproduce {
        /// Only these experiments, comma-separated (e.g. E3,E5).
        #[arg(long, value_name = "IDS")]
        only: Option<String>,
        /// Reduced scale (fewer steps and seeds; the same code path), as run in CI.
        #[arg(long)]
        quick: bool,
        /// Output directory (runs/ and report/ go under it).
        #[arg(long, value_name = "DIR", default_value = "out")]
        out: PathBuf,
        /// Worker threads (same as the global --threads).
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
    },
    /// Train a sweep (a grid or list over config keys), resumably, optionally one shard of it.
    Sweep(sweep::SweepArgs),
    /// Combine the directories of a sharded sweep into one, with the unsharded results table.
    Merge(sweep::MergeArgs),
    /// Training throughput on fixed configurations (steps/s, GFLOP/s, ratio to PyTorch).
    Bench(bench::BenchArgs),
    /// List the built-in presets.
    Presets,
    /// Print a summary of a finished run directory.
    Inspect {
        /// A run directory written by `tms train`.
        dir: PathBuf,
    },
}

/// A bad command-line argument (exit code 2): what the argument parser cannot check itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(String);

/// The exit code of an error: the first error in its chain whose type knows its code decides
/// (the libraries' errors say whether they are bad input, a failure or an interruption; see
/// `tms_experiments::EXIT_*`); 1 for any other failure.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(e) = cause.downcast_ref::<SweepError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<ConfigError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<OutputError>() {
            return e.exit_code();
        }
        if cause.is::<BadInput>() {
            return tms_experiments::EXIT_BAD_INPUT;
        }
    }
    tms_experiments::EXIT_FAILURE
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let jobs = match &cli.command {
        Command::Reproduce { jobs, .. } => *jobs,
        _ => None,
    };
    if let Some(threads) = jobs.or(cli.threads) {
        if threads == 0 {
            return Err(
                BadInput("--threads/--jobs expected an integer ≥ 1, but found 0".into()).into(),
            );
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("cannot start the thread pool")?;
    }
    match cli.command {
        Command::Train {
            config,
            preset,
            out,
            overrides,
            force,
        } => train::train(config, preset, &out, &overrides, force),
        Command::Reproduce {
            only, quick, out, ..
        } => reproduce::reproduce(only, quick, out),
        Command::Sweep(args) => sweep::sweep(args),
        Command::Merge(args) => sweep::merge(args),
        Command::Bench(args) => bench::bench(args),
        Command::Presets => {
            for name in presets::names() {
                println!("{name:<20} {}", presets::description(name));
            }
            Ok(())
        }
        Command::Inspect { dir } => train::inspect(&dir),
    }
}

/// A progress bar on stderr with an ETA, drawn only when stdout is a terminal.
pub fn progress_bar(total: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    if std::io::stdout().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{bar:40}] {percent:>3}% {human_pos}/{human_len} steps, ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}
