//! `tms bench`: training throughput on fixed configurations, beside the PyTorch reference.
//!
//! Each configuration is a `[toy]` config trained through the real path of `tms train`: the config is
//! validated into a `Plan` (AdamW with the paper's settings, batch 1024), its tasks are the engine's
//! `ToyTask`s, and the engine's shared trainer advances them (rayon across instances; fresh sparse
//! batches every step; the optimiser update; the history). Timing follows
//! `bench/pytorch_reference.py`: warm-up steps, then `--repeats` timed repetitions of the same number
//! of steps that continue the same training run; the median is reported.
//!
//! FLOPs are counted dense-equivalent, as PyTorch executes them: per instance and step,
//! forward h = W x (2·B·n·m) and z = Wᵀh (2·B·n·m), backward dh = W dz, dW from the decoder and dW from
//! the encoder (3 × 2·B·n·m): **10·B·n·m**. Element-wise work and data generation are not counted.

use super::BadInput;
use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tms_engine::rng::InstanceKey;
use tms_engine::train::{self, InstanceState, TrainSettings};
use tms_experiments::config::{load, Origin};
use tms_experiments::families::toy::Toy;

/// One benchmark configuration (the names and settings of `bench/pytorch_reference.py`).
struct BenchConfig {
    name: &'static str,
    n: usize,
    m: usize,
    instances: usize,
    density: f64,
    decay: f64,
    /// Timed steps per repetition (the PyTorch script's defaults).
    steps: u64,
}

const BATCH: usize = 1024;

const CONFIGS: [BenchConfig; 5] = [
    BenchConfig {
        name: "e1",
        n: 5,
        m: 2,
        instances: 10,
        density: 0.05,
        decay: 0.9,
        steps: 2000,
    },
    BenchConfig {
        name: "e2",
        n: 20,
        m: 5,
        instances: 10,
        density: 0.1,
        decay: 0.7,
        steps: 800,
    },
    BenchConfig {
        name: "sparse-400",
        n: 400,
        m: 30,
        instances: 8,
        density: 0.01,
        decay: 1.0,
        steps: 50,
    },
    BenchConfig {
        name: "sparse-1000",
        n: 1000,
        m: 100,
        instances: 1,
        density: 0.001,
        decay: 1.0,
        steps: 150,
    },
    BenchConfig {
        name: "dense-large",
        n: 512,
        m: 256,
        instances: 4,
        density: 1.0,
        decay: 1.0,
        steps: 50,
    },
];

/// `tms bench` arguments. The thread count is the global `--threads` (default: all cores).
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Comma-separated subset of: e1, e2, sparse-400, sparse-1000, dense-large.
    #[arg(long, value_name = "NAMES")]
    configs: Option<String>,
    /// Timed repetitions per configuration (the median is reported).
    #[arg(long, default_value_t = 5, value_name = "R")]
    repeats: usize,
    /// Timed steps per repetition (default: per configuration, as the PyTorch script).
    #[arg(long, value_name = "N")]
    steps: Option<u64>,
    /// Untimed warm-up steps (default: a fifth of the timed steps, at least 5, as the PyTorch script).
    #[arg(long, value_name = "N")]
    warmup: Option<u64>,
    /// The PyTorch results (JSON written by bench/run-pytorch.sh); ratios are printed when present.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "bench/results/pytorch.json"
    )]
    pytorch: PathBuf,
    /// f32 GEMM peak of the machine in GFLOP/s, if the PyTorch JSON has no `gemm_gflops`.
    #[arg(long, value_name = "GFLOPS")]
    gemm_peak: Option<f64>,
}

/// What one configuration measured.
struct Measured {
    median: f64,
    low: f64,
    high: f64,
}

/// `tms bench`.
pub fn bench(args: BenchArgs) -> Result<()> {
    let selected: Vec<&BenchConfig> = match &args.configs {
        None => CONFIGS.iter().collect(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|name| {
                CONFIGS.iter().find(|c| c.name == name).ok_or_else(|| {
                    BadInput(format!(
                        "--configs: unknown configuration `{name}`; known: {}",
                        CONFIGS.map(|c| c.name).join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if args.repeats == 0 || args.steps == Some(0) {
        return Err(
            BadInput("--repeats and --steps expected integers ≥ 1, but found 0".into()).into(),
        );
    }
    let reference = read_reference(&args.pytorch);
    let peak = args
        .gemm_peak
        .or_else(|| reference.as_ref().and_then(gemm_peak));
    let threads = rayon::current_num_threads();
    println!(
        "tms bench: {} thread(s), {}; batch {BATCH}, AdamW, median of {} repetition(s)",
        threads,
        cpu_model(),
        args.repeats
    );
    match (&reference, peak) {
        (Some(_), Some(p)) => println!(
            "PyTorch reference: {} (GEMM peak {p:.1} GFLOP/s)",
            args.pytorch.display()
        ),
        (Some(_), None) => println!("PyTorch reference: {}", args.pytorch.display()),
        (None, Some(p)) => println!("GEMM peak {p:.1} GFLOP/s (--gemm-peak)"),
        (None, None) => println!(
            "no PyTorch reference at {} (run bench/run-pytorch.sh) and no --gemm-peak",
            args.pytorch.display()
        ),
    }
    println!("GFLOP/s counts 10·B·n·m dense-equivalent FLOPs per instance-step (forward 2 GEMMs, backward 3).");
    println!();
    println!(
        "{:<12} {:>3} {:>5} {:>4} {:>6} {:>12} {:>19} {:>9} {:>7} {:>10} {:>8}",
        "config",
        "K",
        "n",
        "m",
        "p",
        "steps/s",
        "(min – max)",
        "GFLOP/s",
        "% peak",
        "PyTorch",
        "ratio"
    );
    for config in selected {
        let steps = args.steps.unwrap_or(config.steps);
        let warmup = args.warmup.unwrap_or((steps / 5).max(5));
        let measured = measure(config, steps, warmup, args.repeats)?;
        let flops = 10.0 * (BATCH * config.n * config.m * config.instances) as f64;
        let gflops = flops * measured.median / 1e9;
        let torch = reference
            .as_ref()
            .and_then(|r| reference_rate(r, config.name));
        println!(
            "{:<12} {:>3} {:>5} {:>4} {:>6} {:>12.1} {:>19} {:>9.2} {:>7} {:>10} {:>8}",
            config.name,
            config.instances,
            config.n,
            config.m,
            config.density,
            measured.median,
            format!("({:.1} – {:.1})", measured.low, measured.high),
            gflops,
            peak.map_or("-".into(), |p| format!("{:.1}%", 100.0 * gflops / p)),
            torch.map_or("-".into(), |t| format!("{t:.1}")),
            torch.map_or("-".into(), |t| format!("{:.1}×", measured.median / t)),
        );
    }
    Ok(())
}

/// Trains one configuration: `warmup` steps, then `repeats` timed repetitions of `steps` steps, all
/// one continuing run (as the PyTorch script does).
fn measure(config: &BenchConfig, steps: u64, warmup: u64, repeats: usize) -> Result<Measured> {
    let total = warmup + steps * repeats as u64;
    let text = format!(
        "[experiment]\nname = \"bench-{name}\"\n\n[train]\nsteps = {total}\n\n[toy]\n\
         model = \"relu-output\"\nn_features = {n}\nn_hidden = {m}\nbatch_size = {BATCH}\n\
         importance = {{ decay = {decay:?} }}\ndensity = [{densities}]\n",
        name = config.name,
        n = config.n,
        m = config.m,
        decay = config.decay,
        densities = vec![format!("{:?}", config.density); config.instances].join(", "),
    );
    let plan = load(
        &text,
        &Origin::Preset(format!("bench {}", config.name)),
        &[],
    )
    .with_context(|| format!("the bench configuration {}", config.name))?;
    let toy = plan
        .family
        .get::<Toy>()
        .expect("bench configurations are toy models");
    let tasks: Vec<_> = (0..toy.instances.len()).map(|k| toy.task(k)).collect();
    let settings: TrainSettings = plan.train;
    let mut states: Vec<InstanceState> = tasks
        .iter()
        .enumerate()
        .map(|(k, task)| {
            InstanceState::new(
                task,
                InstanceKey {
                    seed: plan.seed,
                    instance: k as u64,
                    replica: 0,
                },
            )
        })
        .collect();
    train::advance_all(&tasks, &mut states, &settings, warmup, &|_| {});
    let mut rates = Vec::with_capacity(repeats);
    let mut until = warmup;
    for _ in 0..repeats {
        until += steps;
        let start = Instant::now();
        train::advance_all(&tasks, &mut states, &settings, until, &|_| {});
        rates.push(steps as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let median = if repeats % 2 == 1 {
        rates[repeats / 2]
    } else {
        0.5 * (rates[repeats / 2 - 1] + rates[repeats / 2])
    };
    Ok(Measured {
        median,
        low: rates[0],
        high: rates[repeats - 1],
    })
}

/// The PyTorch JSON, if readable.
fn read_reference(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// PyTorch steps/s of `name`: `results[].{config, steps_per_second}`.
fn reference_rate(doc: &Value, name: &str) -> Option<f64> {
    doc.get("results")?
        .as_array()?
        .iter()
        .find(|r| r.get("config").and_then(Value::as_str) == Some(name))?
        .get("steps_per_second")?
        .as_f64()
}

/// The machine's GEMM peak: `gemm_gflops` as a number, or the largest GFLOP/s of any shape of any
/// backend in it (`gemm_gflops.{numpy,torch}.{"MxKxN": GFLOP/s}`).
fn gemm_peak(doc: &Value) -> Option<f64> {
    let gemm = doc.get("gemm_gflops")?;
    if let Some(v) = gemm.as_f64() {
        return Some(v);
    }
    let mut best: Option<f64> = None;
    for backend in gemm.as_object()?.values().filter_map(Value::as_object) {
        for (shape, v) in backend {
            let is_shape = shape.split('x').count() == 3
                && shape.split('x').all(|d| d.parse::<usize>().is_ok());
            if let (true, Some(g)) = (is_shape, v.as_f64()) {
                best = Some(best.map_or(g, |b: f64| b.max(g)));
            }
        }
    }
    best
}

/// The CPU model from /proc/cpuinfo and the number of logical CPUs.
fn cpu_model() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cpus} logical CPU(s)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_rates_and_the_gemm_peak_from_the_pytorch_json() {
        let doc = json!({
            "results": [
                {"config": "e1", "steps_per_second": 280.5},
                {"config": "e2", "steps_per_second": 127.0}
            ],
            "gemm_gflops": {
                "threads": 2,
                "statistic": "median GFLOP/s",
                "numpy": {"numpy_version": "2.0", "1024x1024x1024": 98.5, "1024x512x256": 90.0},
                "torch": {"torch_version": "2.5", "1024x1024x1024": 111.2}
            }
        });
        assert_eq!(reference_rate(&doc, "e2"), Some(127.0));
        assert_eq!(reference_rate(&doc, "dense-large"), None);
        assert_eq!(gemm_peak(&doc), Some(111.2));
        assert_eq!(gemm_peak(&json!({"gemm_gflops": 100.0})), Some(100.0));
    }
}
