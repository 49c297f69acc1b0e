//! The sweep directory's layout (`cells/<id>/`, `checkpoints/<id>.i<a>-<b>.ckpt`) and its checks:
//! whether a directory may hold this sweep, whether a finished cell's run directory is whole.

use super::record::differences;
use super::{from_record, record, Cell, Sweep, SweepError};
use crate::output::{self, OutputError};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The files of a cell's run directory.
pub(super) const RUN_FILES: [&str; 4] = [
    "config.toml",
    "model.safetensors",
    "metrics.json",
    "loss.csv",
];

pub(super) fn cell_dir(dir: &Path, cell: &Cell) -> PathBuf {
    dir.join("cells").join(&cell.id)
}

pub(super) fn checkpoint_path(dir: &Path, cell: &Cell, instances: &Range<usize>) -> PathBuf {
    dir.join("checkpoints").join(format!(
        "{}.i{}-{}.ckpt",
        cell.id, instances.start, instances.end
    ))
}

pub(super) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError + '_ {
    move |source| {
        SweepError::Output(OutputError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Checks that `dir` is new, empty, or holds this very sweep; nothing is written.
pub fn check_dir(sweep: &Sweep, dir: &Path) -> Result<(), SweepError> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(SweepError::NotASweepDir {
            dir: dir.to_path_buf(),
            reason: "it is a file".into(),
        });
    }
    let path = dir.join("sweep.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let ours = record(sweep);
            if bytes != ours {
                let details = match from_record(&bytes, &path) {
                    Err(SweepError::Output(e)) => vec![format!("  {e}")],
                    _ => differences(&ours, &bytes),
                };
                return Err(SweepError::DifferentSweep {
                    dir: dir.to_path_buf(),
                    details,
                });
            }
            Ok(())
        }
        Err(_) => {
            let empty = std::fs::read_dir(dir)
                .map_err(io_error(dir))?
                .next()
                .is_none();
            if empty {
                Ok(())
            } else {
                Err(SweepError::NotASweepDir {
                    dir: dir.to_path_buf(),
                    reason: "it is not empty and has no sweep.json".into(),
                })
            }
        }
    }
}

/// Checks a finished cell's run directory: its config is the cell's, its metrics and tensors read
/// back whole. A torn or foreign file is an error naming it.
pub fn verify_cell_dir(cell: &Cell, path: &Path) -> Result<(), SweepError> {
    let config_path = path.join("config.toml");
    let config = std::fs::read(&config_path).map_err(io_error(&config_path))?;
    if config != cell.config.as_bytes() {
        return Err(OutputError::Corrupt {
            path: config_path,
            reason: format!(
                "not the config of cell {} (delete {} to train the cell again)",
                cell.id,
                path.display()
            ),
        }
        .into());
    }
    let metrics = output::read_metrics(path)?;
    let count = metrics["instances"].as_array().map_or(0, Vec::len);
    if count != cell.instance_count() {
        return Err(OutputError::Corrupt {
            path: path.join("metrics.json"),
            reason: format!("{count} instances, expected {}", cell.instance_count()),
        }
        .into());
    }
    let tensors = output::read_tensors(path)?;
    if tensors
        .iter()
        .any(|t| t.shape.first() != Some(&cell.instance_count()))
    {
        return Err(OutputError::Corrupt {
            path: path.join("model.safetensors"),
            reason: "tensor shapes do not match the cell's instances".into(),
        }
        .into());
    }
    let loss = path.join("loss.csv");
    std::fs::metadata(&loss).map_err(io_error(&loss))?;
    Ok(())
}
