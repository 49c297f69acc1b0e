//! The experiments, one module each, in the order of the report.
//!
//! Each module states the paper's claims it checks and where its criteria come from
//! (`experiments.md` §5, `followups.md`).

mod e01_intro;
mod e02_sparsity;
mod e05_uniform;
mod e06_dimensionality;
mod e08_correlated;
mod e09_dynamics;
mod e10_adversarial;
mod e11_privileged;
mod e12_computation;
mod a1_regression;
mod a2_merged_factored;
mod a3_distillation;
mod a4_relational_graph;
mod attention_common;

use crate::Experiment;

/// Every experiment, in report order.
pub fn registry() -> Vec<Box<dyn Experiment>> {
    vec![
        Box::new(e01_intro::Intro),
        Box::new(e02_sparsity::Sparsity),
        Box::new(e05_uniform::Uniform),
        Box::new(e06_dimensionality::Dimensionality),
        Box::new(e08_correlated::Correlated),
        Box::new(e09_dynamics::Dynamics),
        Box::new(e10_adversarial::Adversarial),
        Box::new(e11_privileged::Privileged),
        Box::new(e12_computation::Computation),
        Box::new(a1_regression::Regression),
        Box::new(a2_merged_factored::MergedFactored),
        Box::new(a3_distillation::Distillation),
        Box::new(a4_relational_graph::RelationalGraph),
    ]
}
