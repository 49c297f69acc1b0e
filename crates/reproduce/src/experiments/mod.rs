//! The experiments, one module each, in the order of the report.
//!
//! Each module states the paper's claims it checks and where its criteria come from
//! (`experiments.md` §5, `followups.md`).

mod a1_regression;
mod a2_merged_factored;
mod a3_distillation;
mod a4_relational_graph;
mod attention_common;
mod e01_intro;
mod e02_sparsity;
mod e03_phase_two_to_one;
mod e04_phase_three_to_two;
mod e05_uniform;
mod e06_dimensionality;
mod e07_perturbed_pentagon;
mod e08_correlated;
mod e09_dynamics;
mod e10_adversarial;
mod e11_privileged;
mod e12_computation;
mod phase_grid;
mod s1_aligned;
mod s2_random;
mod s3_shallow;
mod s4_narrow;
mod s5_diffusion;
mod s6_illusory;
mod s7_conservation;

use crate::Experiment;

/// Every experiment, in report order.
pub fn registry() -> Vec<Box<dyn Experiment>> {
    vec![
        Box::new(e01_intro::Intro),
        Box::new(e02_sparsity::Sparsity),
        Box::new(e03_phase_two_to_one::PhaseTwoToOneDiagram),
        Box::new(e04_phase_three_to_two::PhaseThreeToTwoDiagram),
        Box::new(e05_uniform::Uniform),
        Box::new(e06_dimensionality::Dimensionality),
        Box::new(e07_perturbed_pentagon::PerturbedPentagon),
        Box::new(e08_correlated::Correlated),
        Box::new(e09_dynamics::Dynamics),
        Box::new(e10_adversarial::Adversarial),
        Box::new(e11_privileged::Privileged),
        Box::new(e12_computation::Computation),
        Box::new(a1_regression::Regression),
        Box::new(a2_merged_factored::MergedFactored),
        Box::new(a3_distillation::Distillation),
        Box::new(a4_relational_graph::RelationalGraph),
        Box::new(s1_aligned::Aligned),
        Box::new(s2_random::Random),
        Box::new(s3_shallow::Shallow),
        Box::new(s4_narrow::Narrow),
        Box::new(s5_diffusion::Diffusion),
        Box::new(s6_illusory::Illusory),
        Box::new(s7_conservation::Conservation),
    ]
}
