//! `tms merge`: the directories of a sharded sweep combined into the same cells and results, byte
//! for byte, as one unsharded run.

use super::directory::{cell_dir, check_dir, io_error, verify_cell_dir, RUN_FILES};
use super::execution::{assemble, finish_cell, part_names};
use super::record::differences;
use super::{from_record, write_results, Event, SweepError};
use crate::output::{self, OutputError};
use std::path::{Path, PathBuf};
use tms_engine::train::InstanceState;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeSummary {
    /// Cells of the sweep.
    pub cells: usize,
    /// Cells copied from a shard's directory.
    pub copied: usize,
    /// Cells assembled from parts trained by several shards.
    pub assembled: usize,
    /// Cells that were already in `out`.
    pub present: usize,
}

/// Where merge finds a cell.
enum Source {
    Present,
    Copy(PathBuf),
    Assemble(Vec<InstanceState>),
}

/// Combines the sweep directories `dirs` (shards of one sweep) into `out`: the same cells and the
/// same `results.csv`/`results.json`, byte for byte, as one unsharded run. Refuses directories of
/// different sweeps and lists missing cells; checks everything before writing anything.
pub fn merge(out: &Path, dirs: &[PathBuf]) -> Result<MergeSummary, SweepError> {
    let Some(first) = dirs.first() else {
        return Err(SweepError::NotASweepDir {
            dir: out.to_path_buf(),
            reason: "no shard directories given".into(),
        });
    };
    let read_record = |dir: &Path| -> Result<Vec<u8>, SweepError> {
        let path = dir.join("sweep.json");
        if !dir.is_dir() {
            return Err(SweepError::NotASweepDir {
                dir: dir.to_path_buf(),
                reason: "no such directory".into(),
            });
        }
        std::fs::read(&path).map_err(|_| SweepError::NotASweepDir {
            dir: dir.to_path_buf(),
            reason: "no sweep.json".into(),
        })
    };
    let bytes = read_record(first)?;
    let sweep = from_record(&bytes, &first.join("sweep.json"))?;
    for dir in &dirs[1..] {
        let other = read_record(dir)?;
        if other != bytes {
            let mut details = vec![format!("  compared with {}:", first.display())];
            details.extend(differences(&bytes, &other));
            return Err(SweepError::DifferentSweep {
                dir: dir.clone(),
                details,
            });
        }
    }
    check_dir(&sweep, out)?;

    // Find every cell before writing anything.
    let ignore = |_: Event| {};
    let mut sources = Vec::with_capacity(sweep.cells.len());
    let mut missing = Vec::new();
    for cell in &sweep.cells {
        if cell_dir(out, cell).exists() {
            verify_cell_dir(cell, &cell_dir(out, cell))?;
            sources.push(Source::Present);
            continue;
        }
        if let Some(dir) = dirs.iter().find(|d| cell_dir(d, cell).exists()) {
            verify_cell_dir(cell, &cell_dir(dir, cell))?;
            sources.push(Source::Copy(cell_dir(dir, cell)));
            continue;
        }
        match assemble(cell, dirs, true, &ignore)? {
            Some(states) => sources.push(Source::Assemble(states)),
            None => {
                let parts = part_names(cell, dirs);
                missing.push(format!(
                    "  {} ({}){}",
                    cell.id,
                    cell.describe(),
                    if parts.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; found parts for instances {} of 0..{}",
                            parts.join(", "),
                            cell.instance_count()
                        )
                    }
                ));
            }
        }
    }
    if !missing.is_empty() {
        return Err(SweepError::Missing {
            total: sweep.cells.len(),
            missing,
        });
    }

    for sub in ["cells", "checkpoints"] {
        let p = out.join(sub);
        std::fs::create_dir_all(&p).map_err(io_error(&p))?;
    }
    let record_path = out.join("sweep.json");
    if std::fs::read(&record_path).ok() != Some(bytes.clone()) {
        output::write_atomically(&record_path, &bytes)?;
    }
    let mut summary = MergeSummary {
        cells: sweep.cells.len(),
        copied: 0,
        assembled: 0,
        present: 0,
    };
    for (cell, source) in sweep.cells.iter().zip(sources) {
        match source {
            Source::Present => summary.present += 1,
            Source::Copy(from) => {
                let mut files = Vec::with_capacity(RUN_FILES.len());
                for name in RUN_FILES {
                    let p = from.join(name);
                    files.push((name, std::fs::read(&p).map_err(io_error(&p))?));
                }
                match output::write_run_dir(&cell_dir(out, cell), &files, false) {
                    Ok(()) | Err(OutputError::Exists(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                summary.copied += 1;
            }
            Source::Assemble(states) => {
                finish_cell(cell, out, &states, &ignore)?;
                summary.assembled += 1;
            }
        }
    }
    write_results(&sweep, out)?;
    Ok(summary)
}
