//! E7 — perturbing one feature of the pentagon: n = 5, m = 2, I = 1, base density p = 0.05; one
//! feature's density is divided by a factor k (k > 1: sparser, k < 1: denser).
//!
//! Paper (experiments.md §5): the pentagon deforms (the others lean towards the sparser feature);
//! past a critical factor the solution jumps to two digons with that feature dropped, exactly where
//! the two geometries' loss curves cross (a first-order transition). The paper reads the jump at
//! ~2.5× sparser; the project's reference measured it between 4× and 4.5× with AdamW training (and
//! between 3.5× and 4× optimising both geometries directly with L-BFGS).
//!
//! Both geometries' losses are measured from the best-of-N replicas themselves: every replica's
//! final feature dimensionalities D_i (recorded in the history) say which geometry it ended in, and
//! its loss on the fixed evaluation batch is recorded, so the lowest loss of each geometry at each
//! factor gives the two loss curves without training either geometry on purpose.

use tms_report::html::FigureRef;
use tms_report::{ArrowPanel, ArrowsFigure, LinePlot, RefLine, ReportError, Series};

use crate::claims::{claim, list, num};
use crate::figures::figure_ref;
use crate::toy::{model_title, toy_plan, weights, ToyWeights};
use crate::{Analysis, CompletedRun, Context, Experiment, ReproduceError, RunRequest, Scale};

/// E7.
pub struct PerturbedPentagon;

/// The critical factor the paper reads from its figure.
const PAPER_FACTOR: f64 = 2.5;
/// The reference's range for where AdamW training jumps (experiments.md §5, E7 row), reported beside.
const ADAMW_RANGE: (f64, f64) = (4.0, 4.5);
/// The reference's range for the crossing of the two geometries' loss curves, from optimising both
/// geometries directly (L-BFGS on 2M fixed samples): the criterion, since the claim measures that
/// same crossing (each geometry's lowest converged loss per factor).
const LBFGS_RANGE: (f64, f64) = (3.5, 4.0);

/// A feature is dropped below this dimensionality: half-way between 0 and the pentagon's ⅖ (a
/// nearly-zero column has D_i ≈ ‖W_i‖², far below).
const DROPPED_D: f64 = 0.2;
/// A digon member has D_i within this of ½: the pentagon's ⅖ and the triangle's ⅔ are 0.1 and 0.17
/// away, so 0.05 separates them.
const DIGON_TOLERANCE: f64 = 0.05;
/// Unperturbed pentagon: every D_i within 0.05 of ⅖ (½ and ⅓, the neighbouring polytope values, are
/// ≥ 0.067 away), as E1's pentagon claim.
const PENTAGON_TOLERANCE: f64 = 0.05;

/// The geometry a model (or replica) ended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Geometry {
    /// All five features represented (the pentagon, possibly deformed).
    Pentagon,
    /// The perturbed feature dropped, the other four in two antipodal pairs (D_i = ½).
    TwoDigons,
}

/// The geometry from the feature dimensionalities D_i; `None` for anything else (e.g. another
/// feature dropped).
pub fn geometry(dims: &[f64], perturbed: usize) -> Option<Geometry> {
    if dims.iter().all(|&d| d > DROPPED_D) {
        Some(Geometry::Pentagon)
    } else if dims[perturbed] < DROPPED_D
        && dims
            .iter()
            .enumerate()
            .all(|(i, &d)| i == perturbed || (d - 0.5).abs() < DIGON_TOLERANCE)
    {
        Some(Geometry::TwoDigons)
    } else {
        None
    }
}

/// One factor's results.
struct Point {
    /// The perturbed feature is k times sparser (k < 1: denser).
    k: f64,
    /// The kept model.
    model: ToyWeights,
    /// Its geometry.
    geometry: Option<Geometry>,
    /// Lowest evaluation loss among replicas that ended as a pentagon / as two digons.
    pentagon_loss: Option<f64>,
    digon_loss: Option<f64>,
    /// How many replicas ended in each geometry.
    counts: (usize, usize),
}

impl Experiment for PerturbedPentagon {
    fn id(&self) -> &'static str {
        "E7"
    }

    fn title(&self) -> &'static str {
        "Perturbing one feature of the pentagon: the jump to two digons"
    }

    fn runs(&self, scale: Scale) -> Vec<RunRequest> {
        // Quick: nine factors bracketing the reference's range (4×–4.5×) plus one denser and the
        // unperturbed pentagon; best of 10 instead of 20.
        vec![RunRequest::scaled(
            "e7",
            scale,
            &[
                "train.replicas=10",
                "toy.density_factor=[0.125, 0.2, 0.2222222222, 0.25, 0.2857142857, 0.3333333333, 0.5, 1.0, 4.0]",
            ],
        )]
    }

    fn analyse(&self, context: &Context) -> Result<Analysis, ReproduceError> {
        let run = &context.runs[0];
        let plan = toy_plan("E7", run)?;
        let perturbed = run
            .plan
            .resolved
            .section::<tms_experiments::families::toy::Toy>()
            .and_then(|t| t.perturbed_feature)
            .unwrap_or(0);
        let base_density = plan.instances.first().map(|i| i.density).unwrap_or(0.0);
        let mut points = points(run, perturbed)?;
        points.sort_by(|a, b| a.k.total_cmp(&b.k));
        let title = format!(
            "{}, I = 1, p = {}: feature {perturbed} k× sparser",
            model_title(plan),
            base_density
        );

        // The jump: the first factor from which every sparser factor is two digons.
        let first_digon = (0..points.len()).find(|&j| {
            points[j..]
                .iter()
                .all(|q| q.geometry == Some(Geometry::TwoDigons))
        });
        let last_pentagon = first_digon
            .and_then(|j| j.checked_sub(1))
            .filter(|&j| points[j].geometry == Some(Geometry::Pentagon));
        let crossing = loss_crossing(&points);

        let figures = vec![
            arrows_figure(
                &context.figure_stem("E7", "arrows"),
                &title,
                &points,
                perturbed,
            )?,
            geometry_figure(
                &context.figure_stem("E7", "norm-and-dimensionality"),
                &title,
                &points,
                perturbed,
                first_digon.map(|j| points[j].k),
            )?,
            loss_figure(
                &context.figure_stem("E7", "losses"),
                &title,
                &points,
                crossing,
            )?,
        ];

        let mut claims = Vec::new();
        // The unperturbed model is the pentagon this experiment perturbs.
        let unperturbed = points.iter().find(|q| (q.k - 1.0).abs() < 1e-9);
        let (measured, ok) = match unperturbed {
            Some(q) => {
                let dims = q.model.dimensionality();
                let ok = dims.iter().all(|d| (d - 0.4).abs() < PENTAGON_TOLERANCE);
                (format!("D_i = {}", list(&dims, 3)), ok)
            }
            None => ("no unperturbed setting (k = 1) in the run".into(), false),
        };
        claims.push(claim(
            "E7.pentagon",
            "Unperturbed (every feature at p = 0.05) the model is a pentagon: D_i = ⅖ for every feature.",
            measured,
            "every |D_i − 0.4| < 0.05",
            ok,
        ));

        // Deformation: on the pentagon branch, the neighbours of the sparser feature lean towards it.
        let gaps_at = |q: &Point| neighbour_gaps(&q.model, perturbed);
        let (measured, ok) = match (unperturbed, last_pentagon) {
            (Some(u), Some(j)) if points[j].k > 1.0 => {
                let all_gaps = crate::toy::angular_gaps(&u.model, 0.5);
                let smallest = all_gaps.iter().copied().fold(f64::INFINITY, f64::min);
                let lean = gaps_at(&points[j]);
                let denser = points
                    .first()
                    .filter(|q| q.k < 1.0 && q.geometry == Some(Geometry::Pentagon));
                let mut text = format!(
                    "k = 1: gaps {}°; k = {}: gaps beside feature {perturbed} {}°",
                    list(&all_gaps, 1),
                    trim(points[j].k),
                    list(&lean, 1)
                );
                if let Some(d) = denser {
                    text.push_str(&format!(
                        "; k = {} (denser): {}°",
                        trim(d.k),
                        list(&gaps_at(d), 1)
                    ));
                }
                (text, lean.len() == 2 && lean.iter().all(|&g| g < smallest))
            }
            _ => ("no pentagon both at k = 1 and sparser".into(), false),
        };
        claims.push(claim(
            "E7.deforms",
            "Before the jump the pentagon deforms: the other features lean towards the sparser feature (the two angles beside it shrink).",
            measured,
            "at the sparsest pentagon both angles beside the perturbed feature are smaller than every angle of the unperturbed pentagon",
            ok,
        ));

        // The jump to two digons (the structure), then where it happens (the factor).
        let (measured, ok) = match (first_digon, last_pentagon) {
            (Some(j), Some(i)) if points[i].k >= 1.0 => {
                let q = &points[j];
                let dims = q.model.dimensionality();
                (
                    format!(
                        "pentagon up to k = {}, two digons from k = {} on (there ‖W_{perturbed}‖ = {}, D_i = {})",
                        trim(points[i].k),
                        trim(q.k),
                        num(q.model.norms()[perturbed]),
                        list(&dims, 3)
                    ),
                    true,
                )
            }
            _ => (
                format!(
                    "no single jump from a pentagon to two digons; geometries by k: {}",
                    describe(&points)
                ),
                false,
            ),
        };
        claims.push(claim(
            "E7.jump_to_digons",
            "Past a critical factor the solution jumps from the (deformed) pentagon to two digons with the perturbed feature dropped.",
            measured,
            format!(
                "the kept model is a pentagon (every D_i > {DROPPED_D}) at the factor before the jump and two digons (perturbed D_i < {DROPPED_D}, the others within {DIGON_TOLERANCE} of ½) at every factor from the jump on"
            ),
            ok,
        ));
        let bracket = match (first_digon, last_pentagon) {
            (Some(j), Some(i)) => format!(
                "the kept solution jumps between k = {} and k = {}",
                trim(points[i].k),
                trim(points[j].k)
            ),
            _ => "no jump of the kept solution".into(),
        };
        claims.push(claim(
            "E7.critical_factor",
            "The jump happens where the two geometries' loss curves cross; the paper reads it at ~2.5× sparser.",
            format!(
                "loss curves cross at {} ({bracket}); paper ~{PAPER_FACTOR}×; reference: AdamW training {}–{}×, L-BFGS on both geometries {}–{}×",
                crossing
                    .map(|c| format!("k ≈ {c:.2}"))
                    .unwrap_or_else(|| "no crossing".into()),
                ADAMW_RANGE.0,
                ADAMW_RANGE.1,
                LBFGS_RANGE.0,
                LBFGS_RANGE.1,
            ),
            // The paper's 2.5× is read by eye from a coarse figure. What is measured here is the
            // crossing of the two geometries' loss curves (for each factor, the lowest converged loss
            // among the replicas that ended in each geometry, interpolated between factors), which
            // is the quantity the reference obtained by optimising both geometries directly
            // (L-BFGS): its 3.5–4× range is the criterion. The reference's 4–4.5× for AdamW is where
            // its best-of-N training runs jumped, a different (selection-noise-dependent) quantity,
            // reported beside; this run's kept solution jumps at the bracket printed above.
            format!(
                "crossing in [{}, {}] (the reference's range for the crossing of the two loss curves)",
                LBFGS_RANGE.0, LBFGS_RANGE.1
            ),
            crossing.is_some_and(|c| (LBFGS_RANGE.0..=LBFGS_RANGE.1).contains(&c)),
        ));

        // First order: a discontinuous jump, with both geometries coexisting around it.
        let (measured, ok) = match (first_digon, last_pentagon) {
            (Some(j), Some(i)) => {
                let branch: Vec<f64> = points[..=i]
                    .iter()
                    .filter(|q| q.geometry == Some(Geometry::Pentagon))
                    .map(|q| q.model.norms()[perturbed])
                    .collect();
                let step = branch
                    .windows(2)
                    .map(|w| (w[1] - w[0]).abs())
                    .fold(0.0, f64::max);
                let jump = points[i].model.norms()[perturbed] - points[j].model.norms()[perturbed];
                let coexist = [i, j]
                    .iter()
                    .all(|&x| points[x].pentagon_loss.is_some() && points[x].digon_loss.is_some());
                (
                    format!(
                        "‖W_{perturbed}‖ changes by at most {} between neighbouring factors on the pentagon branch, then drops by {} at the jump; both geometries found among the replicas at k = {} ({} pentagons, {} digon pairs) and k = {} ({}, {})",
                        num(step),
                        num(jump),
                        trim(points[i].k),
                        points[i].counts.0,
                        points[i].counts.1,
                        trim(points[j].k),
                        points[j].counts.0,
                        points[j].counts.1,
                    ),
                    // A continuous (second-order) change would shrink the norm gradually; a jump
                    // of more than half a unit norm in one factor step, ten times larger than any
                    // step along the branch, is the discontinuity.
                    jump > 0.5 && jump > 10.0 * step && coexist,
                )
            }
            _ => ("no jump".into(), false),
        };
        claims.push(claim(
            "E7.first_order",
            "The transition is first order: the perturbed feature's norm jumps from above 1 to ≈ 0 instead of shrinking gradually, and both geometries exist as solutions on both sides of the jump (their loss curves cross there).",
            measured,
            "drop of ‖W_i‖ at the jump > 0.5 and > 10 × the largest change between neighbouring factors on the pentagon branch; both geometries among the replicas on both sides",
            ok,
        ));

        let paragraphs = vec![
            format!(
                "Geometry of the kept (best-of-{}) model by factor k: {}.",
                run.plan.replicas,
                describe(&points)
            ),
            format!(
                "Each replica's geometry is read from its final D_i: all five above {DROPPED_D} = pentagon branch; the perturbed feature below {DROPPED_D} and the others within {DIGON_TOLERANCE} of ½ = two digons. The loss curves are the lowest evaluation loss among the replicas of each geometry (evaluation batch of {} examples).",
                plan.evaluation_batch_size
            ),
        ];
        Ok(Analysis {
            settings: vec![(
                "factors k (feature sparser by k)".into(),
                points
                    .iter()
                    .map(|q| trim(q.k))
                    .collect::<Vec<_>>()
                    .join(", "),
            )],
            paragraphs,
            figures,
            claims,
        })
    }
}

/// The results at every factor.
fn points(run: &CompletedRun, perturbed: usize) -> Result<Vec<Point>, ReproduceError> {
    let plan = toy_plan("E7", run)?;
    let models = weights("E7", run)?;
    let names = tms_experiments::run::observable_names(&run.plan);
    let columns: Vec<usize> = (0..plan.shape.n_features)
        .map(|i| {
            names
                .iter()
                .position(|n| *n == format!("dimensionality_{i}"))
                .ok_or_else(|| ReproduceError::Analysis {
                    experiment: "E7".into(),
                    message: format!(
                        "run {} does not record dimensionality_{i} (toy.record_dimensionality)",
                        run.request.preset
                    ),
                })
        })
        .collect::<Result<_, _>>()?;
    let mut points = Vec::new();
    for ((instance, model), outcome) in plan.instances.iter().zip(models).zip(&run.outcomes) {
        let factor = instance.density_factor.unwrap_or(1.0);
        let (mut pentagon, mut digon) = (None::<f64>, None::<f64>);
        let mut counts = (0, 0);
        for replica in &outcome.replicas {
            let (Some(last), true) = (replica.history.last(), replica.evaluation_loss.is_finite())
            else {
                continue;
            };
            let dims: Vec<f64> = columns.iter().map(|&c| last.observables[c]).collect();
            let loss = replica.evaluation_loss;
            match geometry(&dims, perturbed) {
                Some(Geometry::Pentagon) => {
                    counts.0 += 1;
                    pentagon = Some(pentagon.map_or(loss, |l| l.min(loss)));
                }
                Some(Geometry::TwoDigons) => {
                    counts.1 += 1;
                    digon = Some(digon.map_or(loss, |l| l.min(loss)));
                }
                None => {}
            }
        }
        points.push(Point {
            k: 1.0 / factor,
            geometry: geometry(&model.dimensionality(), perturbed),
            model,
            pentagon_loss: pentagon,
            digon_loss: digon,
            counts,
        });
    }
    Ok(points)
}

/// Where the two geometries' best losses cross (k, interpolated linearly in log k between the
/// neighbouring factors where the sign of L_pentagon − L_digons changes from − to +), if they do.
fn loss_crossing(points: &[Point]) -> Option<f64> {
    let both: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|q| Some((q.k, q.pentagon_loss? - q.digon_loss?)))
        .collect();
    both.windows(2).find_map(|w| {
        let ((k0, d0), (k1, d1)) = (w[0], w[1]);
        (d0 < 0.0 && d1 >= 0.0).then(|| {
            let t = d0 / (d0 - d1);
            (k0.ln() + t * (k1.ln() - k0.ln())).exp()
        })
    })
}

/// The angles (degrees) from the perturbed feature to its two angular neighbours among the
/// represented features (empty if it is not represented).
fn neighbour_gaps(w: &ToyWeights, perturbed: usize) -> Vec<f64> {
    let norms = w.norms();
    if norms[perturbed] <= 0.5 {
        return Vec::new();
    }
    let angle = |i: usize| w.column(i)[1].atan2(w.column(i)[0]).to_degrees();
    let base = angle(perturbed);
    let offsets: Vec<f64> = (0..w.n)
        .filter(|&i| i != perturbed && norms[i] > 0.5)
        .map(|i| (angle(i) - base).rem_euclid(360.0))
        .collect();
    if offsets.is_empty() {
        return Vec::new();
    }
    let after = offsets.iter().copied().fold(f64::INFINITY, f64::min);
    let before = 360.0 - offsets.iter().copied().fold(0.0, f64::max);
    vec![before, after]
}

/// `k = 1: pentagon, …` for the paragraph and failure messages.
fn describe(points: &[Point]) -> String {
    points
        .iter()
        .map(|q| {
            let g = match q.geometry {
                Some(Geometry::Pentagon) => "pentagon",
                Some(Geometry::TwoDigons) => "two digons",
                None => "other",
            };
            format!("{}: {g}", trim(q.k))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A factor without trailing zeros (`4.25`, `0.1`).
fn trim(k: f64) -> String {
    let s = format!("{k:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The panel title of a factor: `k = 4 (sparser)`.
fn factor_label(k: f64) -> String {
    if (k - 1.0).abs() < 1e-9 {
        "unperturbed".into()
    } else if k > 1.0 {
        format!("{}× sparser", trim(k))
    } else {
        format!("{}× denser", trim(1.0 / k))
    }
}

/// The columns of W as arrows at every factor, from denser to sparser.
fn arrows_figure(
    stem: &std::path::Path,
    title: &str,
    points: &[Point],
    perturbed: usize,
) -> Result<FigureRef, ReportError> {
    let columns = 7;
    let rows = points.len().div_ceil(columns);
    let n = points.first().map(|q| q.model.n).unwrap_or(0);
    let fig = ArrowsFigure {
        title: title.to_string(),
        panels: points
            .iter()
            .map(|q| ArrowPanel {
                title: factor_label(q.k),
                vectors: (0..q.model.n)
                    .map(|i| (q.model.column(i)[0], q.model.column(i)[1]))
                    .collect(),
                axes: Vec::new(),
            })
            .collect(),
        feature_labels: (0..n)
            .map(|i| {
                if i == perturbed {
                    format!("feature {i} *")
                } else {
                    format!("feature {i}")
                }
            })
            .collect(),
        limit: None,
        unit_circle: true,
        columns,
        size: (1300, 60 + 200 * rows as u32),
    };
    Ok(figure_ref(
        tms_report::arrows(stem, &fig)?,
        format!("{title}: the columns W_i of the kept model at every factor (unit circle dashed), from denser to sparser; * marks the perturbed feature."),
    ))
}

/// ‖W_i‖ and D_i of the perturbed feature, and the mean D_i of the others, against k.
fn geometry_figure(
    stem: &std::path::Path,
    title: &str,
    points: &[Point],
    perturbed: usize,
    jump: Option<f64>,
) -> Result<FigureRef, ReportError> {
    let ks: Vec<f64> = points.iter().map(|q| q.k).collect();
    let norm: Vec<f64> = points.iter().map(|q| q.model.norms()[perturbed]).collect();
    let dim: Vec<f64> = points
        .iter()
        .map(|q| q.model.dimensionality()[perturbed])
        .collect();
    let others: Vec<f64> = points
        .iter()
        .map(|q| {
            let d = q.model.dimensionality();
            let sum: f64 = (0..d.len()).filter(|&i| i != perturbed).map(|i| d[i]).sum();
            sum / (d.len() - 1) as f64
        })
        .collect();
    let top = norm.iter().copied().fold(1.0, f64::max) * 1.1;
    let mut series = vec![
        Series {
            name: format!("‖W_{perturbed}‖"),
            x: ks.clone(),
            y: norm,
            dashed: false,
            colour: Some(0),
        },
        Series {
            name: format!("D_{perturbed}"),
            x: ks.clone(),
            y: dim,
            dashed: false,
            colour: Some(1),
        },
        Series {
            name: "mean D_i, others".into(),
            x: ks,
            y: others,
            dashed: false,
            colour: Some(2),
        },
        Series {
            name: format!("paper ~{PAPER_FACTOR}×"),
            x: vec![PAPER_FACTOR, PAPER_FACTOR],
            y: vec![0.0, top],
            dashed: true,
            colour: Some(4),
        },
    ];
    if let Some(k) = jump {
        series.push(Series {
            name: format!("jump {}×", trim(k)),
            x: vec![k, k],
            y: vec![0.0, top],
            dashed: true,
            colour: Some(3),
        });
    }
    let plot = LinePlot {
        title: title.to_string(),
        x_label: "k: the perturbed feature's density is p / k (k > 1 sparser)".into(),
        y_label: "norm ‖W_i‖, dimensionality D_i".into(),
        series,
        ref_lines: vec![
            RefLine {
                y: 0.4,
                label: "⅖ pentagon".into(),
            },
            RefLine {
                y: 0.5,
                label: "½ digon".into(),
            },
        ],
        log_x: true,
        y_range: Some((0.0, top)),
        size: (900, 480),
        ..Default::default()
    };
    Ok(figure_ref(
        tms_report::line_plot(stem, &plot)?,
        format!("{title}: the perturbed feature's norm and dimensionality across factors (kept model), with the measured jump and the paper's ~{PAPER_FACTOR}×."),
    ))
}

/// The lowest evaluation loss of each geometry against k.
fn loss_figure(
    stem: &std::path::Path,
    title: &str,
    points: &[Point],
    crossing: Option<f64>,
) -> Result<FigureRef, ReportError> {
    let curve = |f: &dyn Fn(&Point) -> Option<f64>| {
        let (x, y): (Vec<f64>, Vec<f64>) = points
            .iter()
            .map(|q| (q.k, f(q).unwrap_or(f64::NAN)))
            .unzip();
        (x, y)
    };
    let (px, py) = curve(&|q| q.pentagon_loss);
    let (dx, dy) = curve(&|q| q.digon_loss);
    let finite = py.iter().chain(&dy).copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let mut series = vec![
        Series {
            name: "pentagon".into(),
            x: px,
            y: py,
            dashed: false,
            colour: Some(0),
        },
        Series {
            name: "two digons".into(),
            x: dx,
            y: dy,
            dashed: false,
            colour: Some(1),
        },
    ];
    if let (Some(c), true) = (crossing, lo.is_finite()) {
        series.push(Series {
            name: format!("crossing ≈ {c:.2}×"),
            x: vec![c, c],
            y: vec![lo * 0.9, hi * 1.1],
            dashed: true,
            colour: Some(3),
        });
    }
    let plot = LinePlot {
        title: title.to_string(),
        x_label: "k: the perturbed feature's density is p / k (k > 1 sparser)".into(),
        y_label: "lowest evaluation loss of the geometry".into(),
        series,
        log_x: true,
        log_y: true,
        size: (900, 480),
        ..Default::default()
    };
    Ok(figure_ref(
        tms_report::line_plot(stem, &plot)?,
        format!("{title}: the lowest evaluation loss among the replicas that ended in each geometry; where the curves cross the kept solution jumps (first order)."),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_from_dimensionalities() {
        assert_eq!(geometry(&[0.4; 5], 0), Some(Geometry::Pentagon));
        assert_eq!(
            geometry(&[0.001, 0.5, 0.49, 0.51, 0.5], 0),
            Some(Geometry::TwoDigons)
        );
        assert_eq!(geometry(&[0.5, 0.001, 0.5, 0.5, 0.5], 0), None);
        assert_eq!(geometry(&[0.001, 0.67, 0.67, 0.67, 0.0], 0), None);
    }

    #[test]
    fn neighbour_gaps_of_a_regular_pentagon_are_72_degrees() {
        let embedding: Vec<f64> = (0..5)
            .flat_map(|i| {
                let a = (72.0 * i as f64).to_radians();
                [a.cos(), a.sin()]
            })
            .collect();
        let w = ToyWeights {
            n: 5,
            m: 2,
            embedding,
            bias: vec![0.0; 5],
            decoder: Vec::new(),
        };
        for g in neighbour_gaps(&w, 2) {
            assert!((g - 72.0).abs() < 1e-9);
        }
    }
}
