//! E4 — the phase diagram of n = 3 features in m = 2 dimensions, importances (1, 1, r), density p.
//!
//! Paper (experiments.md §5, §4): four regions — the extra feature not learned; the extra dedicated
//! with another feature dropped; the extra in an antipodal pair with another feature (the third
//! dedicated); the two others antipodal with the extra dedicated — matching the closed forms of §4
//! away from the boundaries.

use tms_engine::theory::superposition::{
    three_to_two_losses, two_to_one_boundary_not_learned, PhaseThreeToTwo, TWO_TO_ONE_TRIPLE_POINT,
};
use tms_report::Polyline;

use super::e03_phase_two_to_one::extent;
use super::phase_grid::{
    agreement_claim, away_setting, boundary_curve, boundary_segment, cells, phases_claim,
    trained_and_theory, Agreement, BOUNDARY_LABEL, QUICK_GRID, REPRESENTED,
};
use crate::toy::{model_title, toy_plan, ToyWeights};
use crate::{Analysis, Context, Experiment, ReproduceError, RunRequest, Scale};

/// E4.
pub struct PhaseThreeToTwoDiagram;

/// Two represented columns are an antipodal pair below this cosine: half-way between the triangle's
/// −½ (three features at 120°, a geometry that is none of the candidates) and the pair's −1.
const ANTIPODAL: f64 = -0.75;
/// Two represented columns are orthogonal when |cos| is below this: half-way between 0 and the
/// triangle's ½.
const ORTHOGONAL: f64 = 0.25;

/// The candidate solutions in [`PhaseThreeToTwo::ALL`] order (the theory's indices).
fn names() -> Vec<&'static str> {
    PhaseThreeToTwo::ALL.iter().map(|p| p.label()).collect()
}

/// Short legend names of the candidates, in [`PhaseThreeToTwo::ALL`] order (the caption gives the
/// full ones).
const LEGEND: [&str; 4] = [
    "extra not learned",
    "one other dropped",
    "extra antipodal",
    "others antipodal",
];

/// The legend's short names spelled out, for the captions.
const NOTE: &str = " One other dropped: the extra feature dedicated, one of the other two dropped. Extra antipodal: the extra feature in an antipodal pair with another, the third dedicated. Others antipodal: the other two in an antipodal pair, the extra dedicated.";

/// The phase of a trained n = 3, m = 2 model from its columns W₀, W₁ (importance 1) and W₂ (the
/// extra feature): which features are represented (‖W_i‖ > ½), and the cosines between them
/// (antipodal pair: cos < −¾; orthogonal: |cos| < ¼). `None` ("other"): any other geometry, e.g. a
/// triangle or a pair that is neither antipodal nor orthogonal.
pub fn classify(w: &ToyWeights) -> Option<usize> {
    let norms = w.norms();
    let rep: Vec<bool> = norms.iter().map(|&v| v > REPRESENTED).collect();
    let orthogonal = |i, j| w.cosine(i, j).abs() < ORTHOGONAL;
    let antipodal = |i, j| w.cosine(i, j) < ANTIPODAL;
    let phase = match (rep[0], rep[1], rep[2]) {
        (true, true, false) if orthogonal(0, 1) => PhaseThreeToTwo::ExtraNotLearned,
        (true, false, true) if orthogonal(0, 2) => PhaseThreeToTwo::ExtraDedicatedOtherDropped,
        (false, true, true) if orthogonal(1, 2) => PhaseThreeToTwo::ExtraDedicatedOtherDropped,
        (true, true, true) => {
            if antipodal(0, 1) && orthogonal(2, 0) && orthogonal(2, 1) {
                PhaseThreeToTwo::OthersAntipodal
            } else if [(0, 1), (1, 0)]
                .iter()
                .any(|&(j, k)| antipodal(2, j) && orthogonal(k, 2) && orthogonal(k, j))
            {
                PhaseThreeToTwo::ExtraAntipodal
            } else {
                return None;
            }
        }
        _ => return None,
    };
    PhaseThreeToTwo::ALL.iter().position(|&p| p == phase)
}

/// The theory boundaries of §4 (where the lowest two closed-form losses are equal), p ∈ [from, to],
/// r up to `r_max`: extra not learned | extra antipodal at r = 2p/(4 − 5p) (the same equation as
/// 2 → 1) for p < 4/7; r = 1 across the whole range (extra antipodal | others antipodal for p < 4/7,
/// extra not learned | another dropped above); others antipodal | another dropped at p = 4/7 for
/// r > 1.
pub fn boundaries(from: f64, to: f64, r_max: f64) -> Vec<Polyline> {
    let triple = TWO_TO_ONE_TRIPLE_POINT;
    vec![
        boundary_curve(
            BOUNDARY_LABEL,
            from,
            triple,
            two_to_one_boundary_not_learned,
        ),
        boundary_segment(BOUNDARY_LABEL, (from, 1.0), (to, 1.0)),
        boundary_segment(BOUNDARY_LABEL, (triple, 1.0), (triple, r_max)),
    ]
}

impl Experiment for PhaseThreeToTwoDiagram {
    fn id(&self) -> &'static str {
        "E4"
    }

    fn title(&self) -> &'static str {
        "Phase diagram: n = 3 features in m = 2 dimensions"
    }

    fn runs(&self, scale: Scale) -> Vec<RunRequest> {
        // Quick: QUICK_GRID.
        vec![RunRequest::scaled("e4", scale, &QUICK_GRID)]
    }

    fn analyse(&self, context: &Context) -> Result<Analysis, ReproduceError> {
        let run = &context.runs[0];
        let plan = toy_plan("E4", run)?;
        let names = names();
        let cells = cells("E4", run, classify, |p, r| {
            three_to_two_losses(p, r).to_vec()
        })?;
        let (p_min, p_max) = extent(&cells);
        let r_max = cells.iter().map(|c| c.extra_importance).fold(0.0, f64::max);
        let lines = || boundaries(p_min / 2.0, p_max * 2.0, r_max * 2.0);
        let title = format!("{} (importances 1, 1, r)", model_title(plan));
        let figures = trained_and_theory(context, "E4", &title, &cells, &LEGEND, lines, NOTE)?;
        let claims = vec![
            agreement_claim(
                "E4.phases_match_theory",
                "The empirical phase of each cell matches the closed-form theory of §4 away from the boundaries.",
                &cells,
                &names,
            ),
            phases_claim(
                "E4.four_regions",
                "The diagram has the four regions of §4: extra not learned; extra dedicated with another feature dropped; extra antipodal with another feature; the other two antipodal with the extra dedicated.",
                &cells,
                &names,
            ),
        ];
        let a = Agreement::of(&cells);
        Ok(Analysis {
            settings: vec![away_setting(&a)],
            paragraphs: vec![
                format!(
                    "Each cell is one setting (p, r), trained best of {} seeds; its phase is read from the columns of W: represented when ‖W_i‖ > {REPRESENTED}, an antipodal pair when cos < {ANTIPODAL}, orthogonal when |cos| < {ORTHOGONAL}. The theory's phase is the candidate of lowest closed-form loss (§4): r(p/3 − p²/4), p/3 − p²/4, (1 + r)p²/6 and p²/3.",
                    run.plan.replicas
                ),
                format!(
                    "Agreement: {}/{} cells overall, {}/{} away from the boundaries; {} cell(s) match no candidate (e.g. a triangle).",
                    a.all_agree, a.all, a.away_agree, a.away, a.other
                ),
            ],
            figures,
            claims,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tms_engine::theory::superposition::three_to_two_phase;

    fn model(columns: [(f64, f64); 3]) -> ToyWeights {
        ToyWeights {
            n: 3,
            m: 2,
            embedding: columns.iter().flat_map(|&(x, y)| [x, y]).collect(),
            bias: vec![0.0; 3],
            decoder: Vec::new(),
        }
    }

    #[test]
    fn classifies_the_four_candidates_and_the_triangle_as_other() {
        let idx = |p| PhaseThreeToTwo::ALL.iter().position(|&q| q == p);
        let c = classify(&model([(1.0, 0.0), (0.0, 1.0), (0.01, 0.0)]));
        assert_eq!(c, idx(PhaseThreeToTwo::ExtraNotLearned));
        let c = classify(&model([(0.0, 0.0), (0.0, 1.0), (1.0, 0.0)]));
        assert_eq!(c, idx(PhaseThreeToTwo::ExtraDedicatedOtherDropped));
        let c = classify(&model([(0.0, 1.0), (1.0, 0.0), (-1.0, 0.0)]));
        assert_eq!(c, idx(PhaseThreeToTwo::ExtraAntipodal));
        let c = classify(&model([(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0)]));
        assert_eq!(c, idx(PhaseThreeToTwo::OthersAntipodal));
        let s = 3f64.sqrt() / 2.0;
        assert_eq!(classify(&model([(1.0, 0.0), (-0.5, s), (-0.5, -s)])), None);
    }

    /// The drawn boundaries separate the theory's phases: on each side of every boundary (away from
    /// the others) the argmin of the closed forms is the expected pair of phases.
    #[test]
    fn boundaries_separate_the_theory_phases() {
        use PhaseThreeToTwo::*;
        let eps = 1.05;
        for p in [0.02, 0.1, 0.3] {
            let r = two_to_one_boundary_not_learned(p);
            assert_eq!(three_to_two_phase(p, r / eps), ExtraNotLearned);
            assert_eq!(three_to_two_phase(p, r * eps), ExtraAntipodal);
            assert_eq!(three_to_two_phase(p, 1.0 / eps), ExtraAntipodal);
            assert_eq!(three_to_two_phase(p, eps), OthersAntipodal);
        }
        let triple = TWO_TO_ONE_TRIPLE_POINT;
        for r in [1.5, 5.0] {
            assert_eq!(three_to_two_phase(triple / eps, r), OthersAntipodal);
            assert_eq!(
                three_to_two_phase(triple * eps, r),
                ExtraDedicatedOtherDropped
            );
        }
        assert_eq!(three_to_two_phase(0.8, 1.0 / eps), ExtraNotLearned);
        assert_eq!(three_to_two_phase(0.8, eps), ExtraDedicatedOtherDropped);
    }
}
