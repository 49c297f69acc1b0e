//! Running a sweep: the units of a shard trained with checkpoints, resumed from them after any
//! interruption, pieces of split cells assembled, finished cells written as run directories.

use super::directory::{cell_dir, check_dir, checkpoint_path, io_error, verify_cell_dir};
use super::{record, units, write_results, Cell, Shard, Sweep, SweepError, Unit};
use crate::checkpoint;
use crate::output::{self, OutputError};
use crate::run;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use tms_engine::train::{InstanceState, Status};

/// Something a sweep run reports as it goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A cell was already done in the directory.
    Skipped {
        /// Cell id.
        cell: String,
    },
    /// Training continues from a checkpoint.
    Resumed {
        /// Cell id.
        cell: String,
        /// The checkpoint.
        path: PathBuf,
        /// Its step (the least advanced instance's).
        step: u64,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// Cell id.
        cell: String,
        /// The file.
        path: PathBuf,
        /// Steps done (least advanced running instance).
        step: u64,
        /// Steps of the run.
        steps: u64,
    },
    /// A piece of a split cell is done; the cell is assembled once all pieces are.
    PartDone {
        /// Cell id.
        cell: String,
        /// The instances of the piece.
        instances: Range<usize>,
    },
    /// A cell's run directory was written.
    CellDone {
        /// Cell id.
        cell: String,
        /// Its directory.
        path: PathBuf,
    },
    /// A corrupt or unusable checkpoint was deleted; its piece is trained from scratch.
    Discarded {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// An instance diverged (NaN or infinite loss or gradient).
    Diverged {
        /// Cell id.
        cell: String,
        /// Instance index.
        instance: usize,
        /// The instance's settings.
        settings: String,
        /// Step of the first non-finite value.
        step: u64,
        /// The loss then.
        loss: f64,
    },
}

impl Event {
    /// Whether the event is a warning (shown even when not verbose).
    pub fn is_warning(&self) -> bool {
        matches!(self, Event::Discarded { .. } | Event::Diverged { .. })
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Skipped { cell } => write!(f, "cell {cell}: already done"),
            Event::Resumed { cell, path, step } => write!(
                f,
                "cell {cell}: resuming at step {step} from {}",
                path.display()
            ),
            Event::Checkpoint {
                cell,
                path,
                step,
                steps,
            } => write!(
                f,
                "cell {cell}: checkpoint at step {step}/{steps} → {}",
                path.display()
            ),
            Event::PartDone { cell, instances } => write!(
                f,
                "cell {cell}: instances {}..{} done (the cell is assembled when all its parts are)",
                instances.start, instances.end
            ),
            Event::CellDone { cell, path } => {
                write!(f, "cell {cell}: done → {}", path.display())
            }
            Event::Discarded { path, reason } => write!(
                f,
                "warning: discarding checkpoint {}: {reason}; its instances are trained again from scratch",
                path.display()
            ),
            Event::Diverged {
                cell,
                instance,
                settings,
                step,
                loss,
            } => write!(
                f,
                "warning: cell {cell}, instance {instance} ({settings}) diverged at step {step} (loss {loss}); its training stopped, the other instances went on"
            ),
        }
    }
}

/// How a sweep runs.
pub struct Options<'a> {
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
    /// Set (e.g. by a SIGINT handler) to stop at the next checkpoint.
    pub stop: &'a AtomicBool,
    /// Receives events.
    pub events: &'a (dyn Fn(Event) + Sync),
    /// Receives steps done (including steps restored from checkpoints).
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Units of this shard.
    pub units: usize,
    /// Units trained (fully or from a checkpoint) in this run.
    pub trained: usize,
    /// Cells of the whole sweep.
    pub cells: usize,
    /// Cells whose run directory exists in the sweep directory now.
    pub cells_done: usize,
    /// Whether results.csv/json were written (every cell done).
    pub results_written: bool,
}

/// Total training steps of `units` (for a progress bar).
pub fn total_steps(sweep: &Sweep, units: &[Unit]) -> u64 {
    units
        .iter()
        .map(|u| {
            let plan = &sweep.cells[u.cell].plan;
            u.instances.len() as u64 * plan.replicas * plan.train.steps
        })
        .sum()
}

/// Trains the units of `shard` into the sweep directory `dir`, skipping what is done and resuming
/// from checkpoints; writes the results once every cell of the sweep is done in `dir`.
pub fn run(
    sweep: &Sweep,
    dir: &Path,
    shard: Shard,
    options: &Options,
) -> Result<Summary, SweepError> {
    check_dir(sweep, dir)?;
    for sub in ["cells", "checkpoints"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(io_error(&p))?;
    }
    let record_path = dir.join("sweep.json");
    if std::fs::read(&record_path).ok().as_deref() != Some(&record(sweep)[..]) {
        output::write_atomically(&record_path, &record(sweep))?;
    }
    let units = units(sweep, shard);
    let mut trained = 0;
    for (done, unit) in units.iter().enumerate() {
        if options.stop.load(Ordering::SeqCst) {
            return Err(SweepError::Interrupted {
                done,
                total: units.len(),
            });
        }
        let cell = &sweep.cells[unit.cell];
        let target = cell_dir(dir, cell);
        if target.exists() {
            verify_cell_dir(cell, &target)?;
            (options.progress)(unit_steps(cell, &unit.instances));
            (options.events)(Event::Skipped {
                cell: cell.id.clone(),
            });
            continue;
        }
        if let Some(states) = assemble(cell, &[dir.to_path_buf()], false, options.events)? {
            (options.progress)(unit_steps(cell, &unit.instances));
            finish_cell(cell, dir, &states, options.events)?;
            continue;
        }
        trained += 1;
        let states = match train_unit(cell, unit, dir, options)? {
            Some(states) => states,
            None => {
                return Err(SweepError::Interrupted {
                    done,
                    total: units.len(),
                })
            }
        };
        if unit.instances == (0..cell.instance_count()) {
            finish_cell(cell, dir, &states, options.events)?;
        } else {
            (options.events)(Event::PartDone {
                cell: cell.id.clone(),
                instances: unit.instances.clone(),
            });
            if let Some(states) = assemble(cell, &[dir.to_path_buf()], false, options.events)? {
                finish_cell(cell, dir, &states, options.events)?;
            }
        }
    }
    let cells_done = sweep
        .cells
        .iter()
        .filter(|c| cell_dir(dir, c).exists())
        .count();
    let results_written = cells_done == sweep.cells.len();
    if results_written {
        write_results(sweep, dir)?;
    }
    Ok(Summary {
        units: units.len(),
        trained,
        cells: sweep.cells.len(),
        cells_done,
        results_written,
    })
}

fn unit_steps(cell: &Cell, instances: &Range<usize>) -> u64 {
    instances.len() as u64 * cell.plan.replicas * cell.plan.train.steps
}

/// Trains one unit from its checkpoint (or from scratch) to the end, checkpointing every
/// `checkpoint_every` steps. A finished piece of a split cell stays as a complete checkpoint.
/// Returns `None` when stopped by `options.stop` (after writing a checkpoint).
fn train_unit(
    cell: &Cell,
    unit: &Unit,
    dir: &Path,
    options: &Options,
) -> Result<Option<Vec<InstanceState>>, SweepError> {
    let plan = &cell.plan;
    let steps = plan.train.steps;
    let indices: Vec<usize> = unit.instances.clone().collect();
    let range = unit.instances.start as u64..unit.instances.end as u64;
    let path = checkpoint_path(dir, cell, &unit.instances);
    let mut states = run::initial_states(plan, &indices);
    if path.exists() {
        let restored = checkpoint::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                checkpoint::check_matches(&c, cell.fingerprint(), &range, &states, steps)
                    .map(|()| c.states)
                    .map_err(|reason| format!("{}: {reason}", path.display()))
            });
        match restored {
            Ok(restored) => {
                states = restored;
                let step = least_step(&states).unwrap_or(steps);
                (options.events)(Event::Resumed {
                    cell: cell.id.clone(),
                    path: path.clone(),
                    step,
                });
                (options.progress)(states.iter().map(|s| s.step).sum());
            }
            Err(reason) => discard(&path, reason, options.events)?,
        }
    }
    let every = options.checkpoint_every.max(1);
    while let Some(step) = least_step(&states) {
        let until = ((step / every + 1) * every).min(steps);
        run::advance(plan, &indices, &mut states, until, options.progress);
        let finished = least_step(&states).is_none();
        let split = unit.instances != (0..cell.instance_count());
        if !finished || split {
            checkpoint::write(&path, cell.fingerprint(), &range, &states)?;
            (options.events)(Event::Checkpoint {
                cell: cell.id.clone(),
                path: path.clone(),
                step: least_step(&states).unwrap_or(steps),
                steps,
            });
        }
        if !finished && options.stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
    }
    Ok(Some(states))
}

/// The step of the least advanced running state; `None` when all have stopped.
fn least_step(states: &[InstanceState]) -> Option<u64> {
    states
        .iter()
        .filter(|s| s.status == Status::Running)
        .map(|s| s.step)
        .min()
}

fn discard(path: &Path, reason: String, events: &(dyn Fn(Event) + Sync)) -> Result<(), SweepError> {
    let reason = reason
        .strip_prefix(&format!("{}: ", path.display()))
        .map(str::to_string)
        .unwrap_or(reason);
    events(Event::Discarded {
        path: path.to_path_buf(),
        reason,
    });
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(path)(e)),
        _ => Ok(()),
    }
}

/// The complete parts of `cell` found in the `checkpoints/` of `dirs`, if they cover every instance;
/// their states in instance order. With `strict` (merge) an unreadable part is an error; without,
/// it is discarded with a warning.
pub(super) fn assemble(
    cell: &Cell,
    dirs: &[PathBuf],
    strict: bool,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Option<Vec<InstanceState>>, SweepError> {
    let k = cell.instance_count();
    let prefix = format!("{}.i", cell.id);
    // (start, end, path) of every checkpoint file of this cell, by its name.
    let mut found: Vec<(usize, usize, PathBuf)> = Vec::new();
    for dir in dirs {
        let folder = dir.join("checkpoints");
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(range) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".ckpt"))
            else {
                continue;
            };
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    if a < b && b <= k {
                        found.push((a, b, entry.path()));
                    }
                }
            }
        }
    }
    found.sort();
    // Cheap check on names first: can they cover 0..k at all?
    let mut reach = 0;
    for (a, b, _) in &found {
        if *a <= reach {
            reach = reach.max(*b);
        }
    }
    if reach < k {
        return Ok(None);
    }
    let mut complete: BTreeMap<usize, (usize, Vec<InstanceState>)> = BTreeMap::new();
    for (a, b, path) in found {
        if complete.contains_key(&a) {
            continue;
        }
        let indices: Vec<usize> = (a..b).collect();
        let fresh = run::initial_states(&cell.plan, &indices);
        let checked = checkpoint::read(&path)
            .map_err(SweepError::from)
            .and_then(|c| {
                checkpoint::check_matches(
                    &c,
                    cell.fingerprint(),
                    &(a as u64..b as u64),
                    &fresh,
                    cell.plan.train.steps,
                )
                .map(|()| c)
                .map_err(|reason| {
                    SweepError::Output(OutputError::Corrupt {
                        path: path.clone(),
                        reason,
                    })
                })
            });
        match checked {
            Ok(c) if c.is_complete() => {
                complete.insert(a, (b, c.states));
            }
            Ok(_) => {} // in progress
            Err(e) if strict => return Err(e),
            Err(e) => {
                let reason = match e {
                    SweepError::Output(OutputError::Corrupt { reason, .. }) => reason,
                    other => other.to_string(),
                };
                discard(&path, reason, events)?;
            }
        }
    }
    let mut states = Vec::new();
    let mut at = 0;
    while at < k {
        match complete.remove(&at) {
            Some((end, s)) => {
                states.extend(s);
                at = end;
            }
            None => return Ok(None),
        }
    }
    Ok(Some(states))
}

/// The instance ranges (`a..b`) named by checkpoint files of `cell` in `dirs`, for messages.
pub(super) fn part_names(cell: &Cell, dirs: &[PathBuf]) -> Vec<String> {
    let prefix = format!("{}.i", cell.id);
    let mut ranges: Vec<(usize, usize)> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d.join("checkpoints")).ok())
        .flat_map(|entries| entries.flatten())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let (a, b) = name
                .strip_prefix(&prefix)?
                .strip_suffix(".ckpt")?
                .split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    ranges.sort();
    ranges.dedup();
    ranges.iter().map(|(a, b)| format!("{a}..{b}")).collect()
}

/// Writes a cell's run directory from its finished states and removes its checkpoints.
pub(super) fn finish_cell(
    cell: &Cell,
    dir: &Path,
    states: &[InstanceState],
    events: &(dyn Fn(Event) + Sync),
) -> Result<(), SweepError> {
    let indices: Vec<usize> = (0..cell.instance_count()).collect();
    let outcomes = run::outcomes(&cell.plan, &indices, states);
    for o in &outcomes {
        if let Status::Diverged { step, loss } = o.chosen().status {
            events(Event::Diverged {
                cell: cell.id.clone(),
                instance: o.index,
                settings: o.settings.to_string(),
                step,
                loss,
            });
        }
    }
    let files = output::run_files(&cell.plan, &outcomes)?;
    let target = cell_dir(dir, cell);
    match output::write_run_dir(&target, &files, false) {
        // Another shard sharing this directory assembled the same cell first: same bytes.
        Ok(()) | Err(OutputError::Exists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    remove_checkpoints(cell, dir)?;
    events(Event::CellDone {
        cell: cell.id.clone(),
        path: target,
    });
    Ok(())
}

fn remove_checkpoints(cell: &Cell, dir: &Path) -> Result<(), SweepError> {
    let folder = dir.join("checkpoints");
    let prefix = format!("{}.i", cell.id);
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(&prefix) && name.ends_with(".ckpt") {
            match std::fs::remove_file(entry.path()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error(&entry.path())(e))
                }
                _ => {}
            }
        }
    }
    Ok(())
}
