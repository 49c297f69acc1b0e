//! Type erasure of [`Family`]: what the config, runs, sweeps and `inspect` hold without knowing the
//! family — a [`Section`] (a family's raw section), a [`FamilyPlan`] (its validated plan) and a
//! [`Registered`] family (parsing a section by name, `inspect`). Each is a generic adapter over one
//! `F: Family`; [`Section::get`] and [`FamilyPlan::get`] give the typed values back.

use super::{Family, PlanContext};
use crate::training::{self, Described, InstanceOutcome, RunSettings};
use crate::validate::{self, Invalid, Origin};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use tms_engine::train::InstanceState;

/// A registered family, without its types.
pub trait Registered: Send + Sync {
    /// The section's name.
    fn name(&self) -> &'static str;
    /// Renamed keys, `(old, new)` relative to the section.
    fn renamed(&self) -> &'static [(&'static str, &'static str)];
    /// The serde stage of the section `[name]`: unknown keys refused at every depth.
    fn parse(&self, value: toml::Value) -> Result<Section, Invalid>;
    /// The per-instance lines of `tms inspect` for a run of this family.
    fn inspect(&self, metrics: &Value) -> Vec<String>;
}

/// The registration of `F` (a zero-sized value for [`super::FAMILIES`]).
pub struct Registration<F>(PhantomData<fn() -> F>);

impl<F> Registration<F> {
    /// The registration.
    pub const NEW: Self = Registration(PhantomData);
}

impl<F: Family> Registered for Registration<F> {
    fn name(&self) -> &'static str {
        F::NAME
    }

    fn renamed(&self) -> &'static [(&'static str, &'static str)] {
        F::RENAMED
    }

    fn parse(&self, value: toml::Value) -> Result<Section, Invalid> {
        let raw: F::Raw = validate::parse(value, F::NAME, F::RENAMED)?;
        Ok(Section(Box::new(RawOf::<F>(raw))))
    }

    fn inspect(&self, metrics: &Value) -> Vec<String> {
        F::inspect(metrics)
    }
}

// ---------------------------------------------------------------------------------------------
// The raw section

/// A family's section as written (defaults filled in by serde, and by validation once planned).
pub struct Section(Box<dyn DynSection>);

trait DynSection: Send + Sync {
    fn family(&self) -> &'static str;
    fn clone_box(&self) -> Box<dyn DynSection>;
    fn as_any(&self) -> &dyn Any;
    fn eq_dyn(&self, other: &dyn DynSection) -> bool;
    fn fmt_dyn(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    fn resolve_paths(&mut self, origin: &Origin);
    fn plan(&mut self, context: &PlanContext) -> Result<FamilyPlan, Invalid>;
    fn to_toml(&self) -> String;
}

struct RawOf<F: Family>(F::Raw);

impl<F: Family> DynSection for RawOf<F> {
    fn family(&self) -> &'static str {
        F::NAME
    }

    fn clone_box(&self) -> Box<dyn DynSection> {
        Box::new(RawOf::<F>(self.0.clone()))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn eq_dyn(&self, other: &dyn DynSection) -> bool {
        other
            .as_any()
            .downcast_ref::<RawOf<F>>()
            .is_some_and(|o| o.0 == self.0)
    }

    fn fmt_dyn(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple(F::NAME).field(&self.0).finish()
    }

    fn resolve_paths(&mut self, origin: &Origin) {
        F::resolve_paths(&mut self.0, origin)
    }

    fn plan(&mut self, context: &PlanContext) -> Result<FamilyPlan, Invalid> {
        let plan = F::plan(&mut self.0, context)?;
        Ok(FamilyPlan(Arc::new(PlanOf::<F>(plan))))
    }

    fn to_toml(&self) -> String {
        toml::to_string_pretty(&Named(F::NAME, &self.0)).expect("a raw section always serialises")
    }
}

/// `[name]` holding `value`, for serialising one section as TOML.
struct Named<'a, T>(&'static str, &'a T);

impl<T: Serialize> Serialize for Named<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Section", 1)?;
        s.serialize_field(self.0, self.1)?;
        s.end()
    }
}

impl Section {
    /// The family's section name.
    pub fn family(&self) -> &'static str {
        self.0.family()
    }

    /// The raw section, if it is `F`'s.
    pub fn get<F: Family>(&self) -> Option<&F::Raw> {
        self.0.as_any().downcast_ref::<RawOf<F>>().map(|r| &r.0)
    }

    /// Makes paths absolute against the config's origin.
    pub(crate) fn resolve_paths(&mut self, origin: &Origin) {
        self.0.resolve_paths(origin)
    }

    /// Validates the section (filling its defaults in place).
    pub(crate) fn plan(&mut self, context: &PlanContext) -> Result<FamilyPlan, Invalid> {
        self.0.plan(context)
    }

    /// The section as TOML, `[name]` and its keys.
    pub(crate) fn to_toml(&self) -> String {
        self.0.to_toml()
    }
}

impl Clone for Section {
    fn clone(&self) -> Self {
        Section(self.0.clone_box())
    }
}

impl PartialEq for Section {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_dyn(&*other.0)
    }
}

impl fmt::Debug for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_dyn(f)
    }
}

// ---------------------------------------------------------------------------------------------
// The validated plan

/// A family's validated plan: its instances and how to train and describe them.
#[derive(Clone)]
pub struct FamilyPlan(Arc<dyn DynPlan>);

trait DynPlan: Send + Sync {
    fn family(&self) -> &'static str;
    fn as_any(&self) -> &dyn Any;
    fn eq_dyn(&self, other: &dyn DynPlan) -> bool;
    fn fmt_dyn(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    fn instance_count(&self) -> usize;
    fn observable_names(&self) -> Vec<String>;
    fn initial_states(&self, indices: &[usize], run: &RunSettings) -> Vec<InstanceState>;
    fn advance(
        &self,
        indices: &[usize],
        states: &mut [InstanceState],
        until: u64,
        run: &RunSettings,
        progress: &(dyn Fn(u64) + Sync),
    );
    fn outcomes(
        &self,
        indices: &[usize],
        states: &[InstanceState],
        run: &RunSettings,
    ) -> Vec<InstanceOutcome>;
}

struct PlanOf<F: Family>(F::Plan);

impl<F: Family> DynPlan for PlanOf<F> {
    fn family(&self) -> &'static str {
        F::NAME
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn eq_dyn(&self, other: &dyn DynPlan) -> bool {
        other
            .as_any()
            .downcast_ref::<PlanOf<F>>()
            .is_some_and(|o| o.0 == self.0)
    }

    fn fmt_dyn(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple(F::NAME).field(&self.0).finish()
    }

    fn instance_count(&self) -> usize {
        F::instance_count(&self.0)
    }

    fn observable_names(&self) -> Vec<String> {
        F::observable_names(&self.0)
    }

    fn initial_states(&self, indices: &[usize], run: &RunSettings) -> Vec<InstanceState> {
        F::initial_states(&self.0, indices, run)
    }

    fn advance(
        &self,
        indices: &[usize],
        states: &mut [InstanceState],
        until: u64,
        run: &RunSettings,
        progress: &(dyn Fn(u64) + Sync),
    ) {
        F::advance(&self.0, indices, states, until, run, progress)
    }

    fn outcomes(
        &self,
        indices: &[usize],
        states: &[InstanceState],
        run: &RunSettings,
    ) -> Vec<InstanceOutcome> {
        let plan = &self.0;
        let tasks: Vec<F::Task> = indices.iter().map(|&k| F::task(plan, k)).collect();
        training::select(&tasks, indices, states, run, |k, task, parameters| {
            Described {
                settings: F::settings(plan, k),
                metrics: F::metrics(plan, k, task, parameters),
                tensors: F::tensors(plan, k, task, parameters),
            }
        })
    }
}

impl FamilyPlan {
    /// The family's section name (`metrics.json`'s `family`).
    pub fn name(&self) -> &'static str {
        self.0.family()
    }

    /// The typed plan, if it is `F`'s.
    pub fn get<F: Family>(&self) -> Option<&F::Plan> {
        self.0.as_any().downcast_ref::<PlanOf<F>>().map(|p| &p.0)
    }

    /// Number of instance settings (before replicas).
    pub fn instance_count(&self) -> usize {
        self.0.instance_count()
    }

    /// Names of the observables recorded in the history.
    pub fn observable_names(&self) -> Vec<String> {
        self.0.observable_names()
    }

    /// Fresh engine states of instances `indices`, replicas in order within each.
    pub fn initial_states(&self, indices: &[usize], run: &RunSettings) -> Vec<InstanceState> {
        self.0.initial_states(indices, run)
    }

    /// Advances `states` (laid out as by [`FamilyPlan::initial_states`]) to step `until`.
    pub fn advance(
        &self,
        indices: &[usize],
        states: &mut [InstanceState],
        until: u64,
        run: &RunSettings,
        progress: &(dyn Fn(u64) + Sync),
    ) {
        self.0.advance(indices, states, until, run, progress)
    }

    /// The best replica of each instance and what the family says about it.
    pub fn outcomes(
        &self,
        indices: &[usize],
        states: &[InstanceState],
        run: &RunSettings,
    ) -> Vec<InstanceOutcome> {
        self.0.outcomes(indices, states, run)
    }
}

impl PartialEq for FamilyPlan {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_dyn(&*other.0)
    }
}

impl fmt::Debug for FamilyPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_dyn(f)
    }
}
