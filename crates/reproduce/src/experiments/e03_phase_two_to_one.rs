//! E3 — the phase diagram of n = 2 features in m = 1 dimension, importances (1, r), density p.
//!
//! Paper (experiments.md §5, §4): three phases — the extra feature not learned, the extra feature
//! dedicated (the first dropped), and both as an antipodal pair (superposition) — matching the
//! closed forms of §4 away from the boundaries; no superposition for p > 4/7.

use tms_engine::theory::superposition::{
    two_to_one_boundary_dedicated, two_to_one_boundary_not_learned, two_to_one_losses,
    PhaseTwoToOne, TWO_TO_ONE_TRIPLE_POINT,
};
use tms_report::Polyline;

use super::phase_grid::{
    agreement_claim, away_setting, boundary_curve, boundary_segment, cells, phases_claim,
    trained_and_theory, Agreement, PhaseCell, BOUNDARY_LABEL, QUICK_GRID, REPRESENTED,
};
use crate::claims::claim;
use crate::toy::{model_title, toy_plan, ToyWeights};
use crate::{Analysis, Context, Experiment, ReproduceError, RunRequest, Scale};

/// E3.
pub struct PhaseTwoToOneDiagram;

/// The candidate solutions in [`PhaseTwoToOne::ALL`] order (the theory's indices).
fn names() -> Vec<&'static str> {
    PhaseTwoToOne::ALL.iter().map(|p| p.label()).collect()
}

/// Short legend names of the candidates, in [`PhaseTwoToOne::ALL`] order.
const LEGEND: [&str; 3] = ["extra not learned", "extra dedicated", "antipodal pair"];

/// The phase of a trained n = 2, m = 1 model from its weights W = [w₁, w₂]: which features are
/// represented (|w_i| > ½) and, when both are, whether they point opposite ways (antipodal).
/// `None` ("other"): both dropped, or both represented on the same side.
pub fn classify(w: &ToyWeights) -> Option<usize> {
    let (a, b) = (w.column(0)[0], w.column(1)[0]);
    let phase = match (a.abs() > REPRESENTED, b.abs() > REPRESENTED) {
        (true, false) => PhaseTwoToOne::ExtraNotLearned,
        (false, true) => PhaseTwoToOne::ExtraDedicated,
        (true, true) if a * b < 0.0 => PhaseTwoToOne::Antipodal,
        _ => return None,
    };
    PhaseTwoToOne::ALL.iter().position(|&p| p == phase)
}

/// The theory boundaries of §4 over p ∈ [from, to]: extra-not-learned | antipodal at
/// r = 2p/(4 − 5p) and extra-dedicated | antipodal at r = (4 − 5p)/(2p) for p < 4/7, meeting at the
/// triple point (4/7, 1), then r = 1 between the two single-feature phases for p > 4/7.
pub fn boundaries(from: f64, to: f64) -> Vec<Polyline> {
    let triple = TWO_TO_ONE_TRIPLE_POINT;
    vec![
        boundary_curve(
            BOUNDARY_LABEL,
            from,
            triple,
            two_to_one_boundary_not_learned,
        ),
        boundary_curve(BOUNDARY_LABEL, from, triple, two_to_one_boundary_dedicated),
        boundary_segment(BOUNDARY_LABEL, (triple, 1.0), (to, 1.0)),
    ]
}

impl Experiment for PhaseTwoToOneDiagram {
    fn id(&self) -> &'static str {
        "E3"
    }

    fn title(&self) -> &'static str {
        "Phase diagram: n = 2 features in m = 1 dimension"
    }

    fn runs(&self, scale: Scale) -> Vec<RunRequest> {
        // Quick: QUICK_GRID.
        vec![RunRequest::scaled("e3", scale, &QUICK_GRID)]
    }

    fn analyse(&self, context: &Context) -> Result<Analysis, ReproduceError> {
        let run = &context.runs[0];
        let plan = toy_plan("E3", run)?;
        let names = names();
        let cells = cells("E3", run, classify, |p, r| two_to_one_losses(p, r).to_vec())?;
        let (p_min, p_max) = extent(&cells);
        let title = format!("{} (importances 1, r)", model_title(plan));
        let lines = || boundaries(p_min / 2.0, p_max * 2.0);
        let figures = trained_and_theory(context, "E3", &title, &cells, &LEGEND, lines, "")?;
        let mut claims = vec![
            agreement_claim(
                "E3.phases_match_theory",
                "The empirical phase of each cell (extra feature not learned / dedicated / antipodal pair) matches the closed-form theory of §4 away from the boundaries.",
                &cells,
                &names,
            ),
            phases_claim(
                "E3.three_phases",
                "All three phases appear: the extra feature not learned (r small), dedicated (r large), and superposed as an antipodal pair (sparse, r near 1).",
                &cells,
                &names,
            ),
        ];
        // §4: the triple point is at p = 4/7; denser than that no setting is in superposition.
        let antipodal = PhaseTwoToOne::ALL
            .iter()
            .position(|&p| p == PhaseTwoToOne::Antipodal);
        let dense: Vec<&PhaseCell> = cells
            .iter()
            .filter(|c| c.density > TWO_TO_ONE_TRIPLE_POINT)
            .collect();
        let superposed = dense.iter().filter(|c| c.empirical == antipodal).count();
        claims.push(claim(
            "E3.no_superposition_dense",
            "No superposition when features are dense: for p > 4/7 (the triple point) the model never stores the two features as an antipodal pair.",
            format!("{superposed} of {} cells with p > 4/7 antipodal", dense.len()),
            "0 antipodal cells with p > 4/7 (and at least one such cell in the grid)",
            !dense.is_empty() && superposed == 0,
        ));
        let a = Agreement::of(&cells);
        Ok(Analysis {
            settings: vec![away_setting(&a)],
            paragraphs: vec![
                format!(
                    "Each cell is one setting (p, r), trained best of {} seeds; its phase is read from the weights W = [w₁, w₂]: a feature is represented when |w_i| > {REPRESENTED}, and two represented features of opposite signs are an antipodal pair. The theory's phase is the candidate of lowest closed-form loss (§4): r(p/3 − p²/4), p/3 − p²/4 and (1 + r)p²/6.",
                    run.plan.replicas
                ),
                format!(
                    "Agreement: {}/{} cells overall, {}/{} away from the boundaries; {} cell(s) match no candidate.",
                    a.all_agree, a.all, a.away_agree, a.away, a.other
                ),
            ],
            figures,
            claims,
        })
    }
}

/// Smallest and largest density of the grid.
pub fn extent(cells: &[PhaseCell]) -> (f64, f64) {
    cells.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), c| {
        (lo.min(c.density), hi.max(c.density))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(a: f64, b: f64) -> ToyWeights {
        ToyWeights {
            n: 2,
            m: 1,
            embedding: vec![a, b],
            bias: vec![0.0, 0.0],
            decoder: Vec::new(),
        }
    }

    #[test]
    fn classifies_the_three_candidates_and_other() {
        let idx = |p| PhaseTwoToOne::ALL.iter().position(|&q| q == p);
        assert_eq!(
            classify(&model(1.0, 0.01)),
            idx(PhaseTwoToOne::ExtraNotLearned)
        );
        assert_eq!(
            classify(&model(0.0, -1.0)),
            idx(PhaseTwoToOne::ExtraDedicated)
        );
        assert_eq!(classify(&model(-1.0, 0.9)), idx(PhaseTwoToOne::Antipodal));
        assert_eq!(classify(&model(1.0, 0.9)), None);
        assert_eq!(classify(&model(0.1, 0.1)), None);
    }

    #[test]
    fn boundaries_meet_at_the_triple_point() {
        let b = boundaries(0.01, 1.0);
        let end = |k: usize| *b[k].points.last().unwrap();
        for k in 0..2 {
            let (p, r) = end(k);
            assert!((p - TWO_TO_ONE_TRIPLE_POINT).abs() < 1e-12 && (r - 1.0).abs() < 1e-9);
        }
    }
}
