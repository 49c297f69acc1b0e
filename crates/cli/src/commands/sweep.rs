//! `tms sweep` and `tms merge`: train a sweep (or one shard of it) into a sweep directory, resuming
//! whatever an earlier run left; combine the directories of shards into one.
//!
//! SIGINT (Ctrl-C), SIGTERM and SIGHUP (what Slurm sends at a time limit or preemption) ask the
//! library to stop at the next checkpoint; the process then exits with code 130 and says how to
//! resume. A second signal exits at once (every file is written atomically, so even that loses only
//! the steps since the last checkpoint).

use super::{progress_bar, BadInput};
use anyhow::Result;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tms_experiments::sweep::{self, Event, Options, Shard, SweepError};

/// Set by the SIGINT handler.
static STOP: AtomicBool = AtomicBool::new(false);
/// SIGINTs received.
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// Arguments of `tms sweep`.
#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    /// Sweep file (TOML): a base config plus `[grid]` and/or `[[cells]]` over dotted config keys.
    sweep: PathBuf,
    /// Sweep directory: `cells/<cell-id>/` run directories, checkpoints, results.csv and results.json.
    /// Re-running the same command into it trains only what is missing.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Run only the K-th of N deterministic parts (0 ≤ K < N); combine the parts with `tms merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Steps between checkpoints (overrides sweep.checkpoint_every; does not change results).
    #[arg(long, value_name = "STEPS")]
    checkpoint_every: Option<u64>,
    /// Report every checkpoint and cell on stderr.
    #[arg(long, short)]
    verbose: bool,
}

/// Arguments of `tms merge`.
#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Output sweep directory (may be one of the inputs, or new).
    out: PathBuf,
    /// Sweep directories written by `tms sweep --shard K/N` (in any order).
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
}

/// `tms sweep`.
pub fn sweep(args: SweepArgs) -> Result<()> {
    let shard = match &args.shard {
        Some(s) => Shard::parse(s)?,
        None => Shard::ALL,
    };
    if args.checkpoint_every == Some(0) {
        return Err(
            BadInput("--checkpoint-every expected an integer ≥ 1, but found 0".into()).into(),
        );
    }
    let sweep = sweep::load_file(&args.sweep)?;
    sweep::check_dir(&sweep, &args.out)?;
    let units = sweep::units(&sweep, shard);

    ctrlc::set_handler(|| {
        if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
            STOP.store(true, Ordering::SeqCst);
            eprintln!(
                "\ninterrupt: stopping at the next checkpoint (press Ctrl-C again to quit now)"
            );
        } else {
            eprintln!("\ninterrupt: quitting now; re-run the same command to resume");
            std::process::exit(130);
        }
    })
    .map_err(|e| anyhow::anyhow!("cannot install the SIGINT handler: {e}"))?;

    let label = match args.shard {
        Some(_) => format!("{} {shard}", sweep.name),
        None => sweep.name.clone(),
    };
    let bar = progress_bar(sweep::total_steps(&sweep, &units), &label);
    let verbose = args.verbose;
    let diverged = AtomicUsize::new(0);
    let events = |event: Event| {
        if matches!(event, Event::Diverged { .. }) {
            diverged.fetch_add(1, Ordering::SeqCst);
        }
        if verbose || event.is_warning() {
            bar.suspend(|| eprintln!("{event}"));
        }
    };
    let options = Options {
        checkpoint_every: args.checkpoint_every.unwrap_or(sweep.checkpoint_every),
        stop: &STOP,
        events: &events,
        progress: &|k| bar.inc(k),
    };
    let start = std::time::Instant::now();
    let result = sweep::run(&sweep, &args.out, shard, &options);
    bar.finish_and_clear();
    match result {
        Ok(summary) => {
            let elapsed = start.elapsed().as_secs_f64();
            println!(
                "sweep {}{}: {} unit(s) of work, {} trained now, in {elapsed:.1} s; {}/{} cells done in {}",
                sweep.name,
                args.shard.as_ref().map(|_| format!(" shard {shard}")).unwrap_or_default(),
                summary.units,
                summary.trained,
                summary.cells_done,
                summary.cells,
                args.out.display()
            );
            let diverged = diverged.load(Ordering::SeqCst);
            if diverged > 0 {
                eprintln!("warning: {diverged} instance(s) diverged (see above; status \"diverged\" in the results)");
            }
            if summary.results_written {
                println!(
                    "results: {} and {}",
                    args.out.join("results.csv").display(),
                    args.out.join("results.json").display()
                );
            } else {
                println!(
                    "results are written once every cell is done: combine the shards with `tms merge OUT DIR…`"
                );
            }
            Ok(())
        }
        Err(e @ SweepError::Interrupted { .. }) => {
            eprintln!(
                "progress is checkpointed in {}; re-run the same command to resume: tms sweep {} --out {}{}",
                args.out.display(),
                args.sweep.display(),
                args.out.display(),
                args.shard.map(|s| format!(" --shard {s}")).unwrap_or_default()
            );
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// `tms merge`.
pub fn merge(args: MergeArgs) -> Result<()> {
    let summary = sweep::merge(&args.out, &args.dirs)?;
    println!(
        "merged {} director{} into {}: {} cells ({} copied, {} assembled from parts, {} already there)",
        args.dirs.len(),
        if args.dirs.len() == 1 { "y" } else { "ies" },
        args.out.display(),
        summary.cells,
        summary.copied,
        summary.assembled,
        summary.present
    );
    println!(
        "results: {} and {}",
        args.out.join("results.csv").display(),
        args.out.join("results.json").display()
    );
    Ok(())
}
