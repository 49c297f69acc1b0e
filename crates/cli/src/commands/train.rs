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
    let shapes: Vec<String> = tensors
        .iter()
        .map(|t| format!("{} {:?}", t.name, t.shape))
        .collect();
    println!("tensors: {}", shapes.join(", "));
    let instances: Vec<&serde_json::Value> = metrics["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if metrics["family"] == "toy" {
        println!(
            "{:>8} {:>10} {:>12} {:>8} {:>12} {:>10}",
            "instance", "density", "loss", "D*", "represented", "status"
        );
        for inst in instances {
            let n = inst["norms"].as_array().map(|a| a.len()).unwrap_or(0);
            println!(
                "{:>8} {:>10} {:>12} {:>8} {:>12} {:>10}",
                inst["index"].to_string(),
                fmt_num(&inst["density"], 4),
                fmt_num(&inst["evaluation_loss"], 6),
                fmt_num(&inst["dimensions_per_feature"], 3),
                format!("{}/{n}", inst["represented_features"]),
                inst["status"].as_str().unwrap_or("?")
            );
        }
    } else {
        // Other families: the loss, the status and every scalar the family records per instance.
        const SHOWN: [&str; 5] = ["index", "seed", "replica", "evaluation_loss", "status"];
        for inst in instances {
            let scalars: Vec<String> = inst
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| !SHOWN.contains(&k.as_str()) && v.is_number())
                .map(|(k, v)| format!("{k} {}", fmt_num(v, 4)))
                .collect();
            println!(
                "instance {}: loss {}, {}; {}",
                inst["index"],
                fmt_num(&inst["evaluation_loss"], 6),
                inst["status"].as_str().unwrap_or("?"),
                scalars.join(", ")
            );
        }
    }
    Ok(())
}

fn fmt_num(v: &serde_json::Value, digits: usize) -> String {
    if let Some(i) = v.as_i64() {
        return i.to_string();
    }
    match v.as_f64() {
        Some(x) if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e4) => {
            format!("{x:.*e}", digits.saturating_sub(2))
        }
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    }
}
