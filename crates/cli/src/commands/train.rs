//! `tms train` and `tms inspect`: one config → one run directory, and its summary.

use super::{progress_bar, BadInput};
use anyhow::Result;
use std::path::{Path, PathBuf};
use tms_experiments::config::{load, ConfigError, Origin, Plan};
use tms_experiments::output;
use tms_experiments::{presets, run};

/// Loads a config file or a preset, with overrides.
pub fn load_plan(
    config: Option<PathBuf>,
    preset: Option<String>,
    overrides: &[String],
) -> Result<Plan> {
    match (config, preset) {
        (Some(path), None) => {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read {
                path: path.clone(),
                message: e.to_string(),
            })?;
            Ok(load(&text, &Origin::File(path), overrides)?)
        }
        (None, Some(name)) => Ok(presets::load_preset(&name, overrides)?),
        _ => Err(BadInput("give a config file or --preset NAME (see `tms presets`)".into()).into()),
    }
}

/// `tms train`.
pub fn train(
    config: Option<PathBuf>,
    preset: Option<String>,
    out: &Path,
    overrides: &[String],
    force: bool,
) -> Result<()> {
    let plan = load_plan(config, preset, overrides)?;
    output::check_target(out, force)?;
    let indices: Vec<usize> = (0..plan.family.instance_count()).collect();
    let bar = progress_bar(
        run::total_steps(&plan, &indices),
        &plan.resolved.experiment.name,
    );
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

/// `tms inspect`.
pub fn inspect(dir: &Path) -> Result<()> {
    for line in output::inspect(dir)? {
        println!("{line}");
    }
    Ok(())
}
