//! The long calls as the worker runs them: training a plan in chunks of steps (so that a stop
//! request is seen within a fraction of a second), a sweep with the library's stop flag, and
//! `reproduce` with an observer that forwards progress. Everything here calls the library crates'
//! public API; nothing computes results of its own.

use crate::driver::{Context, Message};
use std::time::{Duration, Instant};
use tms_experiments::config::Plan;
use tms_experiments::run::{self, InstanceOutcome};
use tms_experiments::sweep;

/// Wall time one chunk of training steps aims at when a callback wants loss snapshots: a stop
/// request waits at most about this long (plus [`crate::driver::POLL`]), and the chunks' barriers
/// stay a small share of the run.
const CHUNK_TARGET: Duration = Duration::from_millis(400);

/// Trains every instance of `plan` through `run::initial_states`, `run::advance_stoppable` (or
/// `run::advance` in chunks) and `run::outcomes`: the same results, bit for bit, as `run::run`
/// (the engine's states carry everything a step needs; sweeps checkpoint the same way). `None`
/// when the stop flag was set.
///
/// Without a callback, each instance checks the flag between chunks of its own steps
/// (`run::advance_stoppable`: no barrier between instances, no cost to speak of). With one
/// (`losses`), all instances advance together in chunks of about [`CHUNK_TARGET`], after each of
/// which the last recorded loss of every replica is sent: a consistent snapshot for the callback,
/// at the price of the instances waiting for each other at the end of every chunk.
pub fn train(plan: &Plan, context: &Context, losses: bool) -> Option<Vec<InstanceOutcome>> {
    let indices: Vec<usize> = (0..plan.family.instance_count()).collect();
    context.send(Message::Stage {
        label: plan.resolved.experiment.name.clone(),
        total: run::total_steps(plan, &indices),
        leave: true,
    });
    let mut states = run::initial_states(plan, &indices);
    let steps = plan.train.steps;
    let progress = |k| context.add(k);
    if !losses {
        if run::advance_stoppable(plan, &indices, &mut states, steps, &progress, &context.stop) {
            return None;
        }
    } else {
        let (mut step, mut chunk, mut reported) = (0, 1, None);
        while step < steps {
            if context.stopped() {
                return None;
            }
            let until = (step + chunk).min(steps);
            let start = Instant::now();
            run::advance(plan, &indices, &mut states, until, &progress);
            chunk = next_chunk(until - step, start.elapsed());
            step = until;
            let last = states
                .iter()
                .filter_map(|s| s.history.last().map(|row| row.step))
                .max();
            if last.is_some() && last != reported {
                reported = last;
                context.send(Message::Losses {
                    step: last.unwrap_or(0),
                    losses: states
                        .iter()
                        .map(|s| s.history.last().map_or(f64::NAN, |row| row.loss))
                        .collect(),
                    replicas: plan.replicas as usize,
                });
            }
        }
    }
    if context.stopped() {
        return None;
    }
    let outcomes = run::outcomes(plan, &indices, &states);
    for o in &outcomes {
        if let tms_engine::train::Status::Diverged { step, loss } = o.chosen().status {
            context.send(Message::Warning(format!(
                "instance {} ({}) diverged at step {step} (loss {loss}); its training stopped, the other instances went on",
                o.index, o.settings
            )));
        }
    }
    Some(outcomes)
}

/// The next chunk's length in steps: what fits [`CHUNK_TARGET`] at the last chunk's pace, growing
/// at most fourfold (the first steps of a run can be unrepresentative), at least one step.
fn next_chunk(last: u64, took: Duration) -> u64 {
    let per_step = took.as_secs_f64() / last as f64;
    let fits = if per_step > 0.0 {
        (CHUNK_TARGET.as_secs_f64() / per_step) as u64
    } else {
        u64::MAX
    };
    fits.clamp(1, last.saturating_mul(4))
}

/// Runs a sweep's shard; a stop request makes it stop at its next checkpoint.
pub fn sweep(
    sweep: &sweep::Sweep,
    dir: &std::path::Path,
    shard: sweep::Shard,
    checkpoint_every: u64,
    context: &Context,
) -> Result<sweep::Summary, sweep::SweepError> {
    let units = sweep::units(sweep, shard);
    context.send(Message::Stage {
        label: sweep.name.clone(),
        total: sweep::total_steps(sweep, &units),
        leave: true,
    });
    let events = |event: sweep::Event| {
        if event.is_warning() {
            context.send(Message::Warning(event.to_string()));
        }
    };
    let options = sweep::Options {
        checkpoint_every,
        stop: &context.stop,
        events: &events,
        progress: &|k| context.add(k),
    };
    sweep::run(sweep, dir, shard, &options)
}

/// The payload that unwinds `reproduce` when a stop is requested (see [`reproduce`]).
struct Cancelled;

/// Forwards `reproduce`'s progress, and stops it when asked.
struct Observer<'a>(&'a Context);

impl tms_reproduce::Observer for Observer<'_> {
    fn run_started(&self, experiment: &str, preset: &str, total_steps: u64) {
        self.0.send(Message::Stage {
            label: format!("{experiment} {preset}"),
            total: total_steps,
            leave: false,
        });
    }

    fn steps(&self, steps: u64) {
        self.0.add(steps);
        if self.0.stopped() {
            // tms-reproduce has no stop flag of its own: unwind with a private payload (no panic
            // message: `resume_unwind` skips the panic hook), caught in `reproduce` below. The
            // training in progress is abandoned before anything of it is written.
            std::panic::resume_unwind(Box::new(Cancelled));
        }
    }

    fn experiment_finished(&self, id: &str, passed: usize, total: usize, wall_time_s: f64) {
        let mark = if passed == total { "ok" } else { "FAILED" };
        self.0.send(Message::Line(format!(
            "{id:<4} {passed}/{total} claims passed {mark:>6}  ({wall_time_s:.1} s)"
        )));
    }
}

/// Runs `reproduce`; `None` when stopped.
pub fn reproduce(
    options: &tms_reproduce::Options,
    context: &Context,
) -> Option<Result<tms_reproduce::Summary, tms_reproduce::ReproduceError>> {
    let observer = Observer(context);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tms_reproduce::reproduce(options, &observer)
    })) {
        Ok(result) => Some(result),
        Err(payload) if payload.is::<Cancelled>() => None,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}
