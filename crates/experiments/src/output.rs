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

/// The files of a run directory, in the order [`run_files`] returns them.
pub const RUN_FILES: [&str; 4] = [
    "config.toml",
    "model.safetensors",
    "metrics.json",
    "loss.csv",
];

/// Reads the files of a run directory ([`RUN_FILES`]) as bytes, unchecked.
pub fn read_run_files(dir: &Path) -> Result<Vec<(&'static str, Vec<u8>)>, OutputError> {
    RUN_FILES
        .iter()
        .map(|&name| {
            let path = dir.join(name);
            std::fs::read(&path)
                .map(|bytes| (name, bytes))
                .map_err(io(&path))
        })
        .collect()
}

/// Reads and checks `metrics.json` of a run directory.
pub fn read_metrics(dir: &Path) -> Result<Value, OutputError> {
    let path = dir.join("metrics.json");
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    parse_metrics(&bytes, &path)
}

/// Checks and parses the bytes of a `metrics.json`; `path` names it in errors.
pub fn parse_metrics(bytes: &[u8], path: &Path) -> Result<Value, OutputError> {
    let corrupt = |reason: String| OutputError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if v["format"] != FORMAT || !v["instances"].is_array() {
        return Err(corrupt(format!(
            "expected \"format\": \"{FORMAT}\" and an \"instances\" list"
        )));
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
    parse_tensors(&bytes, &path)
}

/// Parses the bytes of a `model.safetensors` (f32 tensors only), sorted by name; `path` names it
/// in errors.
pub fn parse_tensors(bytes: &[u8], path: &Path) -> Result<Vec<StoredTensor>, OutputError> {
    let corrupt = |reason: String| OutputError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| corrupt(e.to_string()))?;
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

/// `loss.csv` read back, column by column.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LossTable {
    /// `step` of each row.
    pub step: Vec<u64>,
    /// `instance` of each row.
    pub instance: Vec<u64>,
    /// `replica` of each row.
    pub replica: Vec<u64>,
    /// `loss` of each row.
    pub loss: Vec<f64>,
    /// The observable columns after `loss`, by name, in file order.
    pub observables: Vec<(String, Vec<f64>)>,
}

/// Parses the text of a `loss.csv` (as [`loss_csv`] writes it); `path` names it in errors.
/// Numbers read back exactly: they were written in Rust's shortest round-trip form.
pub fn parse_loss_csv(text: &str, path: &Path) -> Result<LossTable, OutputError> {
    let corrupt = |line: usize, reason: String| OutputError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("line {line}: {reason}"),
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    if header.len() < 4 || header[..4] != ["step", "instance", "replica", "loss"] {
        return Err(corrupt(
            1,
            "expected the header step,instance,replica,loss[,observables…]".into(),
        ));
    }
    let mut table = LossTable {
        observables: header[4..]
            .iter()
            .map(|name| (name.to_string(), Vec::new()))
            .collect(),
        ..LossTable::default()
    };
    for (i, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != header.len() {
            return Err(corrupt(
                i + 2,
                format!("expected {} fields, found {}", header.len(), fields.len()),
            ));
        }
        let int = |j: usize| -> Result<u64, OutputError> {
            fields[j]
                .parse()
                .map_err(|_| corrupt(i + 2, format!("`{}` is not an integer", fields[j])))
        };
        let float = |j: usize| -> Result<f64, OutputError> {
            fields[j]
                .parse()
                .map_err(|_| corrupt(i + 2, format!("`{}` is not a number", fields[j])))
        };
        table.step.push(int(0)?);
        table.instance.push(int(1)?);
        table.replica.push(int(2)?);
        table.loss.push(float(3)?);
        for (j, (_, column)) in table.observables.iter_mut().enumerate() {
            column.push(float(4 + j)?);
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, Origin};

    #[test]
    fn run_files_parse_back_to_what_was_trained() {
        let text = "[experiment]\nname = \"t\"\n[train]\nsteps = 30\nreplicas = 2\nlog_every = 7\n[toy]\nmodel = \"relu-output\"\nn_features = 5\nn_hidden = 2\ndensity = [1.0, 0.1]\nbatch_size = 64\nevaluation_batch_size = 128\nrecord_dimensionality = true\n";
        let plan = load(text, &Origin::Preset("t".into()), &[]).unwrap();
        let outcomes = crate::run::run(&plan, &[0, 1], &|_| {});
        let files = run_files(&plan, &outcomes).unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, RUN_FILES);
        let path = Path::new("x");

        let table = parse_loss_csv(std::str::from_utf8(&files[3].1).unwrap(), path).unwrap();
        let mut rows = 0;
        for o in &outcomes {
            for r in &o.replicas {
                for h in &r.history {
                    assert_eq!(table.step[rows], h.step);
                    assert_eq!(table.instance[rows], o.index as u64);
                    assert_eq!(table.replica[rows], r.replica);
                    assert_eq!(table.loss[rows].to_bits(), h.loss.to_bits());
                    for (j, v) in h.observables.iter().enumerate() {
                        assert_eq!(table.observables[j].1[rows].to_bits(), v.to_bits());
                    }
                    rows += 1;
                }
            }
        }
        assert_eq!(table.step.len(), rows);
        assert_eq!(
            table.observables.len(),
            crate::run::observable_names(&plan).len()
        );
        assert!(!table.observables.is_empty(), "dimensionality recorded");

        let tensors = parse_tensors(&files[1].1, path).unwrap();
        let w = tensors.iter().find(|t| t.name == "W").unwrap();
        assert_eq!(w.shape, [2, 2, 5]);
        let first = &outcomes[1]
            .tensors
            .iter()
            .find(|t| t.name == "W")
            .unwrap()
            .data;
        assert_eq!(&w.values[10..], &first[..]);
        let metrics = parse_metrics(&files[2].1, path).unwrap();
        assert_eq!(metrics["instances"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn corrupt_files_are_named() {
        let path = Path::new("dir/loss.csv");
        let e = parse_loss_csv("step,instance,replica,loss\n0,0,0,zz\n", path).unwrap_err();
        assert!(e.to_string().contains("dir/loss.csv") && e.to_string().contains("line 2"));
        assert!(parse_loss_csv("a,b\n", path).is_err());
        assert!(parse_loss_csv("step,instance,replica,loss\n0,0\n", path).is_err());
        assert!(parse_metrics(b"{}", Path::new("m.json")).is_err());
        assert!(parse_tensors(b"\x00", Path::new("m.safetensors")).is_err());
    }
}
