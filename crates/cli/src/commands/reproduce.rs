//! `tms reproduce`: every experiment, its figures, its claims, one report.

use super::{progress_bar, BadInput};
use anyhow::{Context as _, Result};
use indicatif::ProgressBar;
use std::path::PathBuf;
use std::sync::Mutex;
use tms_reproduce::{Observer, Options, Scale};

/// Progress bars: one per run, a line per finished experiment.
struct Bars {
    current: Mutex<Option<ProgressBar>>,
}

impl Observer for Bars {
    fn run_started(&self, experiment: &str, preset: &str, total_steps: u64) {
        let bar = progress_bar(total_steps, &format!("{experiment} {preset}"));
        *self.current.lock().expect("progress lock") = Some(bar);
    }
    fn steps(&self, steps: u64) {
        if let Some(bar) = self.current.lock().expect("progress lock").as_ref() {
            bar.inc(steps);
        }
    }
    fn run_finished(&self) {
        if let Some(bar) = self.current.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
    fn experiment_finished(&self, id: &str, passed: usize, total: usize, wall_time_s: f64) {
        let mark = if passed == total { "ok" } else { "FAILED" };
        println!("{id:<4} {passed}/{total} claims passed {mark:>6}  ({wall_time_s:.1} s)");
    }
}

/// `tms reproduce`.
pub fn reproduce(only: Option<String>, quick: bool, out: PathBuf) -> Result<()> {
    let only = only.map(|s| {
        s.split(',')
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty())
            .collect::<Vec<_>>()
    });
    if let Some(ids) = &only {
        tms_reproduce::select(Some(ids)).map_err(|e| BadInput(e.to_string()))?;
    }
    let options = Options {
        out,
        only,
        scale: if quick { Scale::Quick } else { Scale::Full },
    };
    let start = std::time::Instant::now();
    let summary = tms_reproduce::reproduce(
        &options,
        &Bars {
            current: Mutex::new(None),
        },
    )
    .context("reproduce failed")?;
    let (passed, total) = summary.claims_passed();
    println!(
        "{passed}/{total} claims passed in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    println!("report: {}", summary.report.display());
    println!("claims: {}", summary.claims_json.display());
    let failures = summary.failures();
    if !failures.is_empty() {
        let list: Vec<String> = failures
            .iter()
            .map(|(e, c)| {
                format!(
                    "  {e} {}: measured {} (criterion: {})",
                    c.id, c.measured, c.criterion
                )
            })
            .collect();
        anyhow::bail!("{} claim(s) failed:\n{}", failures.len(), list.join("\n"));
    }
    Ok(())
}
