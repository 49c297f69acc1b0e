//! The run directory: the output contract of tms (README, "Outputs").
//!
//! ```text
//! DIR/config.toml        the resolved config; `tms train DIR/config.toml` reproduces the run bit for bit
//! DIR/model.safetensors  W [K, m, n], b [K, n] (abs: W1, W2, b) as f32; metadata `config`: the resolved config
//! DIR/metrics.json       per instance: settings, losses of every replica, geometry metrics, status
//! DIR/loss.csv           step, instance, replica, loss, observables…
//! ```
//!
//! Every file is written atomically and a run directory appears whole or not at all: files are written
//! into a hidden staging directory beside the target, which is renamed into place at the end. A killed
//! run leaves at most a `.NAME.partial-PID` directory, never a half-written `NAME`.

use crate::config::{to_toml, Plan};
use crate::run::InstanceOutcome;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use tms_engine::train::Status;

/// Version of the output format, written into metrics.json.
pub const FORMAT: &str = "tms-run-1";

/// Why outputs could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// An I/O failure at `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The output directory exists already.
    #[error("output directory {0} already exists (pass --force to replace it)")]
    Exists(PathBuf),
    /// A file that is not what it should be (truncated, corrupt, wrong format).
    #[error("{path} is corrupt or not a tms file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl OutputError {
    /// The process exit code this error means: 2 for an existing output directory (bad input,
    /// nothing written), 1 for a failure while reading or writing.
    pub fn exit_code(&self) -> u8 {
        match self {
            OutputError::Exists(_) => crate::EXIT_BAD_INPUT,
            OutputError::Io { .. } | OutputError::Corrupt { .. } => crate::EXIT_FAILURE,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed and synced,
/// then renamed over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The files of a run directory, as bytes.
pub fn run_files(
    plan: &Plan,
    outcomes: &[InstanceOutcome],
) -> Result<Vec<(&'static str, Vec<u8>)>, OutputError> {
    let config = to_toml(&plan.resolved);
    Ok(vec![
        ("config.toml", config.clone().into_bytes()),
        ("model.safetensors", safetensors_bytes(&config, outcomes)?),
        ("metrics.json", metrics_json(plan, outcomes).into_bytes()),
        ("loss.csv", loss_csv(plan, outcomes).into_bytes()),
    ])
}

/// Writes a run directory atomically (staging directory + rename). With `force` an existing
/// directory is replaced; without, it is an error checked before any training should start
/// (see [`check_target`]).
pub fn write_run_dir(
    out: &Path,
    files: &[(&str, Vec<u8>)],
    force: bool,
) -> Result<(), OutputError> {
    check_target(out, force)?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("run");
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    std::fs::create_dir(&staging).map_err(io(&staging))?;
    let result = (|| {
        for (file, bytes) in files {
            write_atomically(&staging.join(file), bytes)?;
        }
        if out.exists() {
            let old = parent.join(format!(".{name}.old-{}", std::process::id()));
            std::fs::rename(out, &old).map_err(io(out))?;
            std::fs::rename(&staging, out).map_err(io(out))?;
            std::fs::remove_dir_all(&old).map_err(io(&old))
        } else {
            std::fs::rename(&staging, out).map_err(io(out))
        }
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

/// Fails if `out` exists and `force` is not set.
pub fn check_target(out: &Path, force: bool) -> Result<(), OutputError> {
    if out.exists() && !force {
        return Err(OutputError::Exists(out.to_path_buf()));
    }
    Ok(())
}

/// `model.safetensors`: each exported tensor stacked over instances, [K, ...shape], f32 little-endian;
/// metadata `config` holds the resolved config.
fn safetensors_bytes(config: &str, outcomes: &[InstanceOutcome]) -> Result<Vec<u8>, OutputError> {
    let mut stacked: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    if let Some(first) = outcomes.first() {
        for (t, tensor) in first.tensors.iter().enumerate() {
            let mut bytes = Vec::with_capacity(outcomes.len() * tensor.data.len() * 4);
            for o in outcomes {
                let other = &o.tensors[t];
                assert_eq!(
                    other.shape, tensor.shape,
                    "every instance of a run has the same tensor shapes"
                );
                bytes.extend(other.data.iter().flat_map(|v| v.to_le_bytes()));
            }
            let mut shape = vec![outcomes.len()];
            shape.extend(&tensor.shape);
            stacked.push((tensor.name.clone(), shape, bytes));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = stacked
        .iter()
        .map(|(name, shape, bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .expect("shape matches data");
            (name.clone(), view)
        })
        .collect();
    // One key only: safetensors keeps metadata in a `HashMap`, whose iteration order (and so the
    // header bytes) would vary between processes with two or more keys.
    let metadata: HashMap<String, String> = [("config".to_string(), config.to_string())].into();
    safetensors::tensor::serialize(views, &Some(metadata)).map_err(|e| OutputError::Corrupt {
        path: "model.safetensors".into(),
        reason: e.to_string(),
    })
}

/// `metrics.json`.
pub fn metrics_json(plan: &Plan, outcomes: &[InstanceOutcome]) -> String {
    let instances: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let chosen = o.chosen();
            let mut v = json!({
                "index": o.index,
                "seed": plan.seed,
                "replica": o.chosen_replica,
                "status": status_name(&chosen.status),
                "evaluation_loss": chosen.evaluation_loss,
                "final_train_loss": chosen.history.last().map(|r| r.loss),
                "replica_losses": o.replicas.iter().map(|r| r.evaluation_loss).collect::<Vec<_>>(),
            });
            if let Status::Diverged { step, .. } = chosen.status {
                v["diverged_at_step"] = json!(step);
            }
            merge(&mut v, &o.settings);
            merge(&mut v, &o.metrics);
            v
        })
        .collect();
    let doc = json!({
        "format": FORMAT,
        "experiment": plan.resolved.experiment.name,
        "family": plan.family.name(),
        "seed": plan.seed,
        "steps": plan.train.steps,
        "replicas": plan.replicas,
        "instances": instances,
    });
    let mut s = serde_json::to_string_pretty(&doc).expect("JSON values serialise");
    s.push('\n');
    s
}

fn merge(into: &mut Value, from: &Value) {
    if let (Some(a), Some(b)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
}

/// `finished`, `diverged` or `running`.
pub fn status_name(status: &Status) -> &'static str {
    match status {
        Status::Finished => "finished",
        Status::Diverged { .. } => "diverged",
        Status::Running => "running",
    }
}

/// `loss.csv`: one row per recorded step of every replica.
pub fn loss_csv(plan: &Plan, outcomes: &[InstanceOutcome]) -> String {
    let mut s = String::from("step,instance,replica,loss");
    for name in plan.family.observable_names() {
        s.push(',');
        s.push_str(&name);
    }
    s.push('\n');
    for o in outcomes {
        for r in &o.replicas {
            for row in &r.history {
                let _ = write!(s, "{},{},{},{}", row.step, o.index, r.replica, row.loss);
                for v in &row.observables {
                    let _ = write!(s, ",{v}");
                }
                s.push('\n');
            }
        }
    }
    s
}

/// Reads and checks `metrics.json` of a run directory.
pub fn read_metrics(dir: &Path) -> Result<Value, OutputError> {
    let path = dir.join("metrics.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| OutputError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if v["format"] != FORMAT || !v["instances"].is_array() {
        return Err(OutputError::Corrupt {
            path,
            reason: format!("expected \"format\": \"{FORMAT}\" and an \"instances\" list"),
        });
    }
    Ok(v)
}

/// A tensor read back from `model.safetensors`.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTensor {
    /// Tensor name.
    pub name: String,
    /// Shape, instances first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

/// Reads `model.safetensors` of a run directory, sorted by name, checked for corruption.
pub fn read_tensors(dir: &Path) -> Result<Vec<StoredTensor>, OutputError> {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let corrupt = |reason: String| OutputError::Corrupt {
        path: path.clone(),
        reason,
    };
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut out = Vec::new();
    for (name, view) in file.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(corrupt(format!(
                "tensor {name} is {:?}, expected F32",
                view.dtype()
            )));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(StoredTensor {
            name,
            shape: view.shape().to_vec(),
            values,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The summary `tms inspect` prints for a run directory: a header line, the tensors, then the
/// family's per-instance lines ([`crate::families::Family::inspect`]).
pub fn inspect(dir: &Path) -> Result<Vec<String>, OutputError> {
    let metrics = read_metrics(dir)?;
    let tensors = read_tensors(dir)?;
    let name = metrics["family"].as_str().unwrap_or("?");
    let family = crate::families::find(name).ok_or_else(|| OutputError::Corrupt {
        path: dir.join("metrics.json"),
        reason: format!(
            "unknown family `{name}` (known: {})",
            crate::families::names().join(", ")
        ),
    })?;
    let mut lines = vec![format!(
        "{}: experiment {}, family {name}, {} steps, best of {} replica(s)",
        dir.display(),
        metrics["experiment"].as_str().unwrap_or("?"),
        metrics["steps"],
        metrics["replicas"]
    )];
    let shapes: Vec<String> = tensors
        .iter()
        .map(|t| format!("{} {:?}", t.name, t.shape))
        .collect();
    lines.push(format!("tensors: {}", shapes.join(", ")));
    lines.extend(family.inspect(&metrics));
    Ok(lines)
}
