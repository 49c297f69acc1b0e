//! E9 — learning dynamics: the feature dimensionality D_i of every feature and the loss over
//! training, for a uniform model in the digon regime and for n = 6, m = 3 with two correlated triples.
//!
//! Paper (experiments.md §5): D_i does not drift smoothly: features jump between the polytope levels,
//! and the jumps happen at the moments the loss drops; the correlated triples end in an octahedron
//! (every D_i = ½, each feature antipodal to a feature of the other triple).
//!
//! "At the moments the loss drops" is made measurable on a logarithmic time axis τ = log₁₀(step),
//! where learning happens (the history has a row every `log_every` steps):
//! - the loss is the training minibatch loss, smoothed geometrically over ±[`SMOOTH`] decades;
//! - speeds over a window of [`WINDOW`] decades: v_D(τ) = Σ_i |D_i(τ + w) − D_i(τ)| and
//!   v_L(τ) = ln L(τ) − ln L(τ + w) (how fast the loss drops);
//! - a **D_i jump** is a peak of v_D (the largest within ±2w) above [`JUMP`] and above twice the
//!   median of v_D over the surrounding ±½ decade (sudden: a change of level, not a slow drift);
//! - a **loss drop** is a peak of v_L (the largest within ±2w) above [`DROP`] and above twice the
//!   median of v_L over the surrounding ±½ decade (sudden, not the steady early descent);
//! - the claim: at least 80% of the D_i jumps lie within ±[`MATCH`] decades of a loss drop, while
//!   those neighbourhoods cover less than half of the time axis (so that the coincidence is not a
//!   matter of chance).
#![allow(clippy::result_large_err)]

use crate::claims::{claim, list};
use crate::experiments::e06_dimensionality::fraction_label;
use crate::figures::figure_ref;
use crate::toy::{model_title, toy_plan, weights, ToyWeights};
use crate::{Analysis, Context, Experiment, ReproduceError, RunRequest, Scale};
use tms_engine::theory::superposition::POLYTOPE_FRACTIONS;
use tms_report::html::FigureRef;
use tms_report::{LinePlot, RefLine, Series};

/// E9.
pub struct Dynamics;

/// Half-width of the loss smoothing, in decades of steps.
const SMOOTH: f64 = 0.05;
/// Resolution of the log-time grid: points per decade.
const PER_DECADE: f64 = 40.0;
/// Window over which speeds are measured, in decades.
const WINDOW: f64 = 0.1;
/// A jump: Σ_i |ΔD_i| over one window above this. The levels differ by ≥ ⅙ (½ → ⅔) and usually by
/// ½ (0 → ½, 1 → ½), so 0.25 catches a feature changing level and ignores slow drift and noise.
const JUMP: f64 = 0.25;
/// A loss drop: ln L falls by more than this over one window (10%); on a plateau the smoothed loss
/// moves by a few percent at most.
const DROP: f64 = 0.1;
/// A jump coincides with a loss drop within this many decades (a factor 1.41 in steps).
const MATCH: f64 = 0.15;

/// The recorded history of one trained model.
struct Trajectory {
    /// Steps of the rows.
    steps: Vec<f64>,
    /// Minibatch loss per row.
    loss: Vec<f64>,
    /// D_i per row: `dims[k][i]`.
    dims: Vec<Vec<f64>>,
}

impl Trajectory {
    /// The log-time grid: τ from the first positive step to the last, `PER_DECADE` points a decade.
    fn grid(&self) -> Vec<f64> {
        let first = self.steps.iter().copied().find(|&s| s > 0.0).unwrap_or(1.0);
        let last = self.steps.last().copied().unwrap_or(1.0).max(first);
        let (a, b) = (first.log10(), last.log10());
        let points = ((b - a) * PER_DECADE).floor() as usize + 1;
        (0..points).map(|k| a + k as f64 / PER_DECADE).collect()
    }

    /// Index of the row whose step is nearest 10^τ.
    fn row_at(&self, tau: f64) -> usize {
        let target = 10f64.powf(tau);
        let k = self.steps.partition_point(|&s| s < target);
        if k == 0 {
            0
        } else if k >= self.steps.len() {
            self.steps.len() - 1
        } else if target - self.steps[k - 1] <= self.steps[k] - target {
            k - 1
        } else {
            k
        }
    }

    /// The loss at every row, smoothed geometrically over the rows within ±SMOOTH decades.
    fn smoothed_loss(&self) -> Vec<f64> {
        let k = self.steps.len();
        (0..k)
            .map(|r| {
                let s = self.steps[r].max(1.0);
                let lo = self.steps.partition_point(|&t| t < s * 10f64.powf(-SMOOTH));
                let hi = self
                    .steps
                    .partition_point(|&t| t <= s * 10f64.powf(SMOOTH))
                    .max(r + 1);
                let logs: f64 = self.loss[lo..hi].iter().map(|l| l.max(1e-300).ln()).sum();
                (logs / (hi - lo) as f64).exp()
            })
            .collect()
    }
}

/// What the coincidence test found.
struct Coincidence {
    /// Steps of the D_i jumps.
    jumps: Vec<f64>,
    /// Steps of the loss drops.
    drops: Vec<f64>,
    /// Whether each jump is at a loss drop.
    at_drop: Vec<bool>,
    /// Share of the log-time axis within ±MATCH of a loss drop.
    drop_share: f64,
}

impl Coincidence {
    fn share(&self) -> f64 {
        self.at_drop.iter().filter(|&&b| b).count() as f64 / self.at_drop.len().max(1) as f64
    }
}

/// Peaks of `speed` (the largest within ±2 windows) above `threshold`, as grid indices.
fn peaks(speed: &[f64], threshold: f64) -> Vec<usize> {
    let reach = (2.0 * WINDOW * PER_DECADE).round() as usize;
    (0..speed.len())
        .filter(|&k| {
            let (a, b) = (k.saturating_sub(reach), (k + reach + 1).min(speed.len()));
            speed[k] > threshold
                && speed[a..b].iter().all(|&v| v <= speed[k])
                // Ties on a flat top: keep the first.
                && speed[a..k].iter().all(|&v| v < speed[k])
        })
        .collect()
}

fn coincidence(t: &Trajectory) -> Coincidence {
    let grid = t.grid();
    let smooth = t.smoothed_loss();
    let lag = (WINDOW * PER_DECADE).round() as usize;
    let windows = grid.len().saturating_sub(lag);
    let (mut v_d, mut v_l) = (Vec::new(), Vec::new());
    for k in 0..windows {
        let (a, b) = (t.row_at(grid[k]), t.row_at(grid[k + lag]));
        v_d.push(
            t.dims[a]
                .iter()
                .zip(&t.dims[b])
                .map(|(x, y)| (x - y).abs())
                .sum::<f64>(),
        );
        v_l.push(smooth[a].ln() - smooth[b].ln());
    }
    // An event's time: the middle of its window.
    let middle = |k: usize| grid[k] + WINDOW / 2.0;
    // Both events must be sudden: a peak that also beats twice the median speed of the surrounding
    // decade. For the loss this keeps the steady power-law descent at the start of training from
    // counting as a string of "drops"; for D_i it keeps a slow drift (features sliding over many
    // hundreds of steps, not jumping between levels) from counting as a "jump". The same test for
    // both, so neither side of the coincidence is easier to satisfy than the other.
    let reach = (0.5 * PER_DECADE) as usize;
    let sudden = |speed: &[f64], k: usize| {
        let (a, b) = (k.saturating_sub(reach), (k + reach + 1).min(speed.len()));
        let mut around = speed[a..b].to_vec();
        around.sort_by(f64::total_cmp);
        speed[k] > 2.0 * around[around.len() / 2]
    };
    let jumps: Vec<f64> = peaks(&v_d, JUMP)
        .into_iter()
        .filter(|&k| sudden(&v_d, k))
        .map(middle)
        .collect();
    let drops: Vec<f64> = peaks(&v_l, DROP)
        .into_iter()
        .filter(|&k| sudden(&v_l, k))
        .map(middle)
        .collect();
    let near = |tau: f64| drops.iter().any(|d| (d - tau).abs() <= MATCH);
    let at_drop = jumps.iter().map(|&j| near(j)).collect();
    let covered = grid.iter().filter(|&&tau| near(tau)).count();
    Coincidence {
        jumps: jumps.iter().map(|tau| 10f64.powf(*tau).round()).collect(),
        drops: drops.iter().map(|tau| 10f64.powf(*tau).round()).collect(),
        at_drop,
        drop_share: covered as f64 / grid.len().max(1) as f64,
    }
}

/// The trajectory of instance 0's kept replica.
fn trajectory(experiment: &str, run: &crate::CompletedRun) -> Result<Trajectory, ReproduceError> {
    let outcome = run
        .outcomes
        .first()
        .ok_or_else(|| ReproduceError::Analysis {
            experiment: experiment.into(),
            message: format!("run {} has no instance", run.request.preset),
        })?;
    let history = &outcome.chosen().history;
    if history.iter().any(|row| row.observables.is_empty()) || history.len() < 40 {
        return Err(ReproduceError::Analysis {
            experiment: experiment.into(),
            message: format!(
                "run {} has no D_i history (record_dimensionality = true and ≥ 40 rows needed)",
                run.request.preset,
            ),
        });
    }
    Ok(Trajectory {
        steps: history.iter().map(|r| r.step as f64).collect(),
        loss: history.iter().map(|r| r.loss).collect(),
        dims: history.iter().map(|r| r.observables.clone()).collect(),
    })
}

/// Vertical dashed markers at `steps`, from `lo` to `hi`, in palette colour `colour`.
fn markers(steps: &[f64], lo: f64, hi: f64, name: &str, colour: usize) -> Vec<Series> {
    steps
        .iter()
        .enumerate()
        .map(|(k, &s)| Series {
            name: if k == 0 { name.into() } else { String::new() },
            x: vec![s, s],
            y: vec![lo, hi],
            dashed: true,
            colour: Some(colour),
        })
        .collect()
}

/// D_i over training and the loss over training, with the jumps marked.
fn dynamics_figures(
    context: &Context,
    tag: &str,
    title: &str,
    t: &Trajectory,
    found: &Coincidence,
) -> Result<Vec<FigureRef>, ReproduceError> {
    let n = t.dims.first().map(Vec::len).unwrap_or(0);
    let mut series: Vec<Series> = (0..n)
        .map(|i| Series {
            name: format!("D_{i}"),
            x: t.steps.clone(),
            y: t.dims.iter().map(|row| row[i]).collect(),
            dashed: false,
            colour: Some(i),
        })
        .collect();
    let marker_colour = 7;
    series.extend(markers(&found.jumps, 0.0, 1.05, "D_i jump", marker_colour));
    series.extend(markers(&found.drops, 0.0, 1.05, "loss drop", 3));
    let ref_lines = POLYTOPE_FRACTIONS
        .iter()
        .map(|(name, d)| RefLine {
            y: *d,
            label: format!("{} {name}", fraction_label(*d)),
        })
        .chain([RefLine {
            y: 1.0,
            label: "1".into(),
        }])
        .collect();
    let dims_plot = LinePlot {
        title: format!("{title}: feature dimensionality over training"),
        x_label: "training step".into(),
        y_label: "D_i".into(),
        series,
        ref_lines,
        log_x: true,
        y_range: Some((0.0, 1.1)),
        size: (860, 500),
        ..Default::default()
    };
    let smooth = t.smoothed_loss();
    let lo = t
        .loss
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(1e-12);
    let hi = t.loss.iter().copied().fold(0.0, f64::max);
    let mut loss_series = vec![
        Series {
            name: "minibatch loss".into(),
            x: t.steps.clone(),
            y: t.loss.clone(),
            colour: Some(8),
            ..Default::default()
        },
        Series {
            name: "smoothed".into(),
            x: t.steps.clone(),
            y: smooth,
            colour: Some(0),
            ..Default::default()
        },
    ];
    loss_series.extend(markers(&found.jumps, lo, hi, "D_i jump", marker_colour));
    loss_series.extend(markers(&found.drops, lo, hi, "loss drop", 3));
    let loss_plot = LinePlot {
        title: format!("{title}: loss over training"),
        x_label: "training step".into(),
        y_label: "loss".into(),
        series: loss_series,
        log_x: true,
        log_y: true,
        size: (860, 400),
        ..Default::default()
    };
    Ok(vec![
        figure_ref(
            tms_report::line_plot(&context.figure_stem("E9", &format!("{tag}-dimensionality")), &dims_plot)?,
            format!("{title}: D_i of every feature over training (log steps); dashed verticals at the detected D_i jumps; grey lines at the polytope fractions."),
        ),
        figure_ref(
            tms_report::line_plot(&context.figure_stem("E9", &format!("{tag}-loss")), &loss_plot)?,
            format!("{title}: training loss (minibatch, and smoothed over ±{SMOOTH} decades) with the D_i jumps (grey) and the loss drops (red) marked."),
        ),
    ])
}

/// The coincidence claim of one model.
/// One run's trajectory: its figures (appended to `figures`) and the claim
/// `E9.{tag}_jumps_at_loss_drops`, titled "{model}, {what}, p = …".
fn trajectory_analysis(
    context: &Context,
    run: &crate::CompletedRun,
    tag: &str,
    what: &str,
    figures: &mut Vec<FigureRef>,
) -> Result<tms_report::html::Claim, ReproduceError> {
    let plan = toy_plan("E9", run)?;
    let title = format!(
        "{}, {what}, p = {}",
        model_title(plan),
        plan.instances[0].density
    );
    let t = trajectory("E9", run)?;
    let found = coincidence(&t);
    figures.extend(dynamics_figures(context, tag, &title, &t, &found)?);
    Ok(coincidence_claim(
        &format!("E9.{tag}_jumps_at_loss_drops"),
        &title,
        &found,
    ))
}

fn coincidence_claim(id: &str, what: &str, found: &Coincidence) -> tms_report::html::Claim {
    let share = found.share();
    claim(
        id,
        &format!("{what}: D_i jumps between levels at the moments the loss drops."),
        format!(
            "{} D_i jumps at steps {}; loss drops at steps {}; {:.0}% of the jumps at a loss drop; the drops' neighbourhoods cover {:.0}% of the log-time axis",
            found.jumps.len(),
            list(&found.jumps, 0),
            list(&found.drops, 0),
            100.0 * share,
            100.0 * found.drop_share
        ),
        format!("≥ 1 jump; ≥ 80% of the jumps within ±{MATCH} decades of a loss drop; those neighbourhoods cover < 50% of the log-time axis"),
        !found.jumps.is_empty() && share >= 0.8 && found.drop_share < 0.5,
    )
}

impl Experiment for Dynamics {
    fn id(&self) -> &'static str {
        "E9"
    }

    fn title(&self) -> &'static str {
        "Learning dynamics: feature dimensionality jumps"
    }

    fn runs(&self, scale: Scale) -> Vec<RunRequest> {
        // Both models are tiny: quick and full are the same runs.
        let _ = scale;
        vec![
            RunRequest::new("e9-uniform", &[]),
            RunRequest::new("e9-correlated", &[]),
        ]
    }

    fn analyse(&self, context: &Context) -> Result<Analysis, ReproduceError> {
        let mut figures = Vec::new();
        let mut claims = Vec::new();
        let mut paragraphs = Vec::new();

        // Uniform model in the digon regime.
        let run = &context.runs[0];
        claims.push(trajectory_analysis(
            context,
            run,
            "uniform",
            "I = 1",
            &mut figures,
        )?);
        let w = &weights("E9", run)?[0];
        let dims = w.dimensionality();
        let halves = dims.iter().filter(|d| (*d - 0.5).abs() < 0.05).count();
        let zeros = dims.iter().filter(|d| d.abs() < 0.05).count();
        claims.push(claim(
            "E9.uniform_digons",
            "The uniform model ends in the digon regime: m antipodal pairs (D_i = ½), the other features dropped (D_i = 0).",
            format!("final D_i = {}", list(&dims, 2)),
            format!("every D_i within 0.05 of ½ or 0, and 2m = {} of them at ½", 2 * w.m),
            halves + zeros == w.n && halves == 2 * w.m,
        ));

        // Two correlated triples ending in an octahedron.
        let run = &context.runs[1];
        claims.push(trajectory_analysis(
            context,
            run,
            "correlated",
            "two correlated triples",
            &mut figures,
        )?);
        let w = &weights("E9", run)?[0];
        let (ok, measured) = octahedron(w);
        claims.push(claim(
            "E9.octahedron",
            "The two correlated triples end in an octahedron: every D_i = ½, each feature antipodal to one feature of the other triple and orthogonal to the rest (correlated features are orthogonal).",
            measured,
            // ±0.05 around ½ as in E5; cos < −0.9 for the antipodal partner and |cos| < 0.1 for the
            // others, as for E1's pairs.
            "every |D_i − ½| < 0.05; each feature's partner (cos < −0.9) is in the other triple; every other pair |cos| < 0.1",
            ok,
        ));
        paragraphs.push(format!(
            "On a log-time axis: a D_i jump is a peak of Σ_i |ΔD_i| over {WINDOW} decades above {JUMP}; a loss drop is a peak of the fall of ln L (smoothed over ±{SMOOTH} decades) over {WINDOW} decades above {DROP}; both must also exceed twice the median speed of the surrounding decade (sudden events, not drift); they coincide within ±{MATCH} decades."
        ));
        Ok(Analysis {
            settings: Vec::new(),
            paragraphs,
            figures,
            claims,
        })
    }
}

/// Whether `w` (n = 6, triples [0, 3) and [3, 6)) is the octahedron, and what was measured.
fn octahedron(w: &ToyWeights) -> (bool, String) {
    let dims = w.dimensionality();
    let mut ok = w.n == 6 && dims.iter().all(|d| (d - 0.5).abs() < 0.05);
    let mut partners = Vec::new();
    for i in 0..w.n {
        let mut partner = None;
        for j in 0..w.n {
            if i == j {
                continue;
            }
            let c = w.cosine(i, j);
            if c < -0.9 {
                ok &= partner.is_none() && (i < 3) != (j < 3);
                partner = Some(j);
            } else {
                ok &= c.abs() < 0.1;
            }
        }
        ok &= partner.is_some();
        partners.push(partner.map(|j| j.to_string()).unwrap_or("none".into()));
    }
    (
        ok,
        format!(
            "D_i = {}; antipodal partner of each feature: [{}]",
            list(&dims, 3),
            partners.join(", ")
        ),
    )
}
