//! Sparse synthetic features (experiments.md §1), generated non-zero by non-zero.
//!
//! At density p a batch of B examples of n features has about pBn non-zeros. We never touch the
//! zeros: for a run of features that share a density, the gaps between consecutive non-zeros in the
//! flattened (example, feature) sequence are geometric, so one uniform draw and one logarithm give the
//! next non-zero. The cost of a batch is O(non-zeros + groups), not O(Bn).
//!
//! Above [`BERNOULLI_DENSITY`] the logarithm per non-zero costs more than testing every trial: an
//! independent group then compares 32-bit draws of a [`LaneRng`] (16 trials per step of eight
//! vectorised generators, seeded from the instance's stream) with ⌊p·2³²⌉ and visits the successes
//! with bit scans. Either way a batch is a function of the instance's stream only.
//!
//! A batch is stored as compressed rows ([`SparseBatch`], defined with [`DenseBatch`] in
//! [`super::batch`] and re-exported here): the non-zeros of example b are
//! `feature[row_start[b]..row_start[b+1]]` with their `value`s, in increasing feature order.
//!
//! From [`DENSE_DENSITY`] on, a distribution of one independent group has no zeros worth skipping:
//! its trials run feature-major, and [`FeatureDistribution::sample_dense_into`] writes the batch
//! straight into a dense [n, S] matrix ([`DenseBatch`]) that the small-m kernel reads in place.
//! [`FeatureDistribution::sample_into`] draws the same examples as compressed rows, so the form a
//! caller asks for never changes the data.

pub use super::batch::{DenseBatch, SparseBatch};
use crate::cpu::{self, KernelSet};
use crate::rng::{LaneRng, StreamRng, RNG_LANES};
use std::ops::Range;

/// Density from which an independent group tests every trial (`bernoulli_trials`) instead of
/// drawing geometric gaps (`GeometricSkipper`). Measured with `tms bench --threads 1`: a geometric
/// gap costs about 15 ns per non-zero (a logarithm, two draws), a tested trial about 0.2 ns plus
/// 3 ns per success, so the trials win from p ≈ 0.013 on; 1/64 keeps a margin.
pub const BERNOULLI_DENSITY: f64 = 1.0 / 64.0;

/// Density from which a distribution of one independent group is drawn **feature-major** ([`DenseBatch`]):
/// trial (feature j, example b) is trial j·S + b of the tested trials (S = B rounded up to a multiple
/// of 16), so that each 16-bit success mask covers 16 consecutive examples of one feature and the
/// batch can be written straight into a dense [n, S] matrix with one masked expand per mask. At
/// this density a kernel encodes the inputs densely anyway (see `DENSE_SMALL_SHARE` in the toy
/// kernel), so building compressed rows first and scattering them back would be wasted work.
pub const DENSE_DENSITY: f64 = 1.0 / 16.0;

/// How values of an active feature are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRange {
    /// U[0, 1] (the paper's default).
    Unit,
    /// U[−1, 1] (the absolute-value task; target |x|).
    Signed,
}

/// Which density an anticorrelated set's `density` denotes (§1 lists both conventions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnticorrelatedConvention {
    /// The paper's: the set is active with probability `density`, and then exactly one uniformly
    /// chosen member is non-zero. Each member's marginal density is `density / k`.
    SetDensity,
    /// The course variant: each member is active with marginal probability `density`, never two at
    /// once; the set is active with probability `k · density` (needs `k · density ≤ 1`).
    FeatureDensity,
}

/// One group of features with a joint law. Groups partition `0..n_features`.
#[derive(Clone, Debug, PartialEq)]
pub enum FeatureGroup {
    /// Each feature in the range independently non-zero with probability `density`.
    Independent {
        /// Features of the group.
        features: Range<usize>,
        /// Probability that a feature is non-zero.
        density: f64,
    },
    /// The whole set is active together with probability `density`; active values independent.
    Correlated {
        /// Features of the set.
        features: Range<usize>,
        /// Probability that the set is active.
        density: f64,
    },
    /// At most one member of the set is active (see [`AnticorrelatedConvention`]).
    Anticorrelated {
        /// Features of the set.
        features: Range<usize>,
        /// Density in the sense of `convention`.
        density: f64,
        /// What `density` means.
        convention: AnticorrelatedConvention,
    },
}

impl FeatureGroup {
    /// The features of the group.
    pub fn features(&self) -> Range<usize> {
        match self {
            FeatureGroup::Independent { features, .. }
            | FeatureGroup::Correlated { features, .. }
            | FeatureGroup::Anticorrelated { features, .. } => features.clone(),
        }
    }

    /// Marginal probability that one given feature of the group is non-zero.
    pub fn marginal_density(&self) -> f64 {
        match *self {
            FeatureGroup::Independent { density, .. }
            | FeatureGroup::Correlated { density, .. } => density,
            FeatureGroup::Anticorrelated {
                density,
                convention,
                ref features,
            } => match convention {
                AnticorrelatedConvention::SetDensity => density / features.len() as f64,
                AnticorrelatedConvention::FeatureDensity => density,
            },
        }
    }

    /// Probability that the unit drawn per example (a set, or a single feature) is active.
    fn unit_density(&self) -> f64 {
        match *self {
            FeatureGroup::Independent { density, .. }
            | FeatureGroup::Correlated { density, .. } => density,
            FeatureGroup::Anticorrelated {
                density,
                convention,
                ref features,
            } => match convention {
                AnticorrelatedConvention::SetDensity => density,
                AnticorrelatedConvention::FeatureDensity => density * features.len() as f64,
            },
        }
    }
}

/// The law of one instance's input vector.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureDistribution {
    n_features: usize,
    groups: Vec<FeatureGroup>,
    values: ValueRange,
}

/// Why a [`FeatureDistribution`] is not valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DistributionError {
    /// Groups overlap or leave features uncovered.
    #[error("feature groups must partition 0..{n_features}: feature {feature} is {problem}")]
    NotAPartition {
        /// Number of features.
        n_features: usize,
        /// The first offending feature.
        feature: usize,
        /// "uncovered" or "in two groups".
        problem: &'static str,
    },
    /// A density outside [0, 1] (or a set density above 1 after the convention).
    #[error("density of features {features:?} is {density}, expected a number in [0, 1]")]
    Density {
        /// Features of the offending group.
        features: Range<usize>,
        /// The density that is out of range.
        density: f64,
    },
}

impl FeatureDistribution {
    /// A distribution from groups that partition `0..n_features`. Groups are sorted by first feature.
    pub fn new(
        n_features: usize,
        mut groups: Vec<FeatureGroup>,
        values: ValueRange,
    ) -> Result<Self, DistributionError> {
        groups.retain(|g| !g.features().is_empty());
        groups.sort_by_key(|g| g.features().start);
        let mut next = 0;
        for g in &groups {
            let f = g.features();
            if f.start != next {
                let (feature, problem) = if f.start > next {
                    (next, "uncovered")
                } else {
                    (f.start, "in two groups")
                };
                return Err(DistributionError::NotAPartition {
                    n_features,
                    feature,
                    problem,
                });
            }
            next = f.end;
            let d = g.unit_density();
            if !(0.0..=1.0).contains(&d) {
                return Err(DistributionError::Density {
                    features: f,
                    density: d,
                });
            }
        }
        if next != n_features {
            let (feature, problem) = if next < n_features {
                (next, "uncovered")
            } else {
                (n_features, "in two groups")
            };
            return Err(DistributionError::NotAPartition {
                n_features,
                feature,
                problem,
            });
        }
        Ok(Self {
            n_features,
            groups,
            values,
        })
    }

    /// All features independent with one density.
    pub fn uniform(
        n_features: usize,
        density: f64,
        values: ValueRange,
    ) -> Result<Self, DistributionError> {
        Self::new(
            n_features,
            vec![FeatureGroup::Independent {
                features: 0..n_features,
                density,
            }],
            values,
        )
    }

    /// Independent features, each with its own density; consecutive equal densities share a group.
    pub fn independent(densities: &[f64], values: ValueRange) -> Result<Self, DistributionError> {
        let mut groups = Vec::new();
        let mut start = 0;
        for i in 1..=densities.len() {
            if i == densities.len() || densities[i] != densities[start] {
                groups.push(FeatureGroup::Independent {
                    features: start..i,
                    density: densities[start],
                });
                start = i;
            }
        }
        Self::new(densities.len(), groups, values)
    }

    /// Number of features n.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The groups, sorted by first feature.
    pub fn groups(&self) -> &[FeatureGroup] {
        &self.groups
    }

    /// How active values are drawn.
    pub fn values(&self) -> ValueRange {
        self.values
    }

    /// Marginal density of every feature.
    pub fn marginal_densities(&self) -> Vec<f64> {
        let mut d = vec![0.0; self.n_features];
        for g in &self.groups {
            for i in g.features() {
                d[i] = g.marginal_density();
            }
        }
        d
    }

    /// Whether batches are drawn feature-major ([`DENSE_DENSITY`]): one independent group whose
    /// density is in [[`DENSE_DENSITY`], 1). Such a distribution can be drawn straight into a
    /// [`DenseBatch`] ([`Self::sample_dense_into`]); [`Self::sample_into`] draws the same examples.
    pub fn draws_dense(&self) -> bool {
        match self.groups.as_slice() {
            [FeatureGroup::Independent { density, .. }] => (DENSE_DENSITY..1.0).contains(density),
            _ => false,
        }
    }

    /// The tested trials of a distribution that [`Self::draws_dense`], feature-major: `masks`
    /// [n, W/16] with bit q of block k = trial (feature k / (W/16), example 16·(k mod W/16) + q),
    /// cleared at examples ≥ B; `values` the successes' values in that order (then at least 16
    /// more). Returns W = B rounded up to a multiple of 16, the trials per feature. Seeds its
    /// generators from `rng` as [`bernoulli_trials`] does, so both consume the same words of the
    /// instance's stream.
    fn feature_major_trials(
        &self,
        set: KernelSet,
        rng: &mut StreamRng,
        batch_size: usize,
        masks: &mut Vec<u16>,
        values: &mut Vec<f32>,
    ) -> usize {
        let [FeatureGroup::Independent { density, .. }] = self.groups.as_slice() else {
            unreachable!("feature-major trials need one independent group")
        };
        let mut generators = TrialGenerators::seeded_from(rng);
        let stride = batch_size.div_ceil(BLOCK) * BLOCK;
        let blocks_per_feature = stride / BLOCK;
        masks.clear();
        masks.resize(self.n_features * blocks_per_feature, 0);
        vectorised::trial_masks(
            set,
            &mut generators.trials,
            success_threshold(*density),
            masks,
        );
        if !batch_size.is_multiple_of(BLOCK) {
            // Each feature's last block has trials at examples past B: they do not exist.
            let keep = ((1u32 << (batch_size % BLOCK)) - 1) as u16;
            for feature in masks.chunks_exact_mut(blocks_per_feature) {
                feature[blocks_per_feature - 1] &= keep;
            }
        }
        let successes = vectorised::successes(set, masks);
        // One block of values past the last success: the expand loads 16 at a time.
        values.clear();
        values.resize(successes.div_ceil(BLOCK) * BLOCK + BLOCK, 0.0);
        let signed = self.values == ValueRange::Signed;
        vectorised::uniform_values(set, &mut generators.values, signed, values);
        stride
    }

    /// Draws a batch of `batch_size` examples into `out`, dense and feature-major: the same
    /// examples as [`Self::sample_into`] from the same stream state, without building compressed
    /// rows. Cost: one masked expand per 16 trials after the trials themselves. The vectorised
    /// passes run in [`cpu::active`]'s kernel set; every set draws the same bits.
    ///
    /// # Panics
    /// If the distribution is not drawn dense ([`Self::draws_dense`]).
    pub fn sample_dense_into(&self, rng: &mut StreamRng, batch_size: usize, out: &mut DenseBatch) {
        assert!(
            self.draws_dense(),
            "sample_dense_into needs one independent group of density in [1/16, 1)"
        );
        let (mut masks, mut values) = (
            std::mem::take(&mut out.scratch_masks),
            std::mem::take(&mut out.scratch_values),
        );
        let set = cpu::active();
        let trials_per_feature =
            self.feature_major_trials(set, rng, batch_size, &mut masks, &mut values);
        // Rows 4 KiB apart would share their L1 sets (a tile reads all n rows at once): a stride
        // that is a multiple of 64 floats gets 16 more.
        let stride = trials_per_feature + BLOCK * trials_per_feature.is_multiple_of(64) as usize;
        let shape = (self.n_features, batch_size, stride);
        if (out.n_features, out.batch_size, out.stride) != shape {
            // Columns from W on are zero and never written (a different B with the same stride
            // could have written some); the rest is overwritten below.
            out.x.clear();
            out.x.resize(self.n_features * stride, 0.0);
        }
        out.batch_size = batch_size;
        out.n_features = self.n_features;
        out.stride = stride;
        vectorised::expand(set, &masks, &values, trials_per_feature, stride, &mut out.x);
        out.scratch_masks = masks;
        out.scratch_values = values;
    }

    /// Draws a batch of `batch_size` examples into `out` (its buffers are reused). The vectorised
    /// passes run in [`cpu::active`]'s kernel set; every set draws the same bits.
    pub fn sample_into(&self, rng: &mut StreamRng, batch_size: usize, out: &mut SparseBatch) {
        out.clear(batch_size);
        let set = cpu::active();
        if self.draws_dense() {
            // Feature-major trials, turned into rows: success k (in mask order) is the non-zero
            // (example 16·(block mod W/16) + bit, feature block / (W/16)) with value k.
            let (mut masks, mut values) = (
                std::mem::take(&mut out.scratch_masks),
                std::mem::take(&mut out.scratch_values),
            );
            let width = self.feature_major_trials(set, rng, batch_size, &mut masks, &mut values);
            let blocks_per_feature = (width / BLOCK).max(1);
            let mut k = 0;
            for (block, &mask) in masks.iter().enumerate() {
                let feature = block / blocks_per_feature;
                let first = (block % blocks_per_feature) * BLOCK;
                let mut bits = mask as u32;
                while bits != 0 {
                    let q = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    out.push_unsorted(first + q, feature, values[k]);
                    k += 1;
                }
            }
            out.scratch_masks = masks;
            out.scratch_values = values;
            // Stable by example: within a row the features stay in increasing order.
            out.finish(false);
            return;
        }
        let signed = self.values == ValueRange::Signed;
        let draw_value = |rng: &mut StreamRng| -> f32 {
            let u = rng.uniform_f32();
            if signed {
                2.0 * u - 1.0
            } else {
                u
            }
        };
        // Fast path: one group means the flattened (example, feature) order is already row order.
        let single = self.groups.len() == 1;
        let mut generators: Option<TrialGenerators> = None;
        for group in &self.groups {
            let features = group.features();
            let width = features.len();
            let unit_density = group.unit_density();
            let units_per_row = match group {
                FeatureGroup::Independent { .. } => width,
                _ => 1,
            };
            let total_units = batch_size * units_per_row;
            if let FeatureGroup::Independent { .. } = group {
                if (BERNOULLI_DENSITY..1.0).contains(&unit_density) {
                    let generators =
                        generators.get_or_insert_with(|| TrialGenerators::seeded_from(rng));
                    bernoulli_trials(
                        set,
                        generators,
                        unit_density,
                        batch_size,
                        features,
                        signed,
                        out,
                    );
                    continue;
                }
            }
            let mut position = GeometricSkipper::new(unit_density, total_units, rng);
            if let FeatureGroup::Independent { .. } = group {
                // The same draws in the same order as the general loop below, but the (row, column)
                // of each success is tracked incrementally instead of dividing its flat position by
                // the width (an integer division per non-zero is a fifth of the sampler's time).
                let (mut row, mut column, mut last) = (0usize, 0usize, 0usize);
                while let Some(unit) = position.next(rng) {
                    column += unit - last;
                    last = unit;
                    if column >= width {
                        if column < 8 * width {
                            while column >= width {
                                column -= width;
                                row += 1;
                            }
                        } else {
                            row += column / width;
                            column %= width;
                        }
                    }
                    out.push_unsorted(row, features.start + column, draw_value(rng));
                }
                continue;
            }
            while let Some(unit) = position.next(rng) {
                let row = unit / units_per_row;
                match group {
                    FeatureGroup::Independent { .. } => {
                        let feature = features.start + unit % units_per_row;
                        out.push_unsorted(row, feature, draw_value(rng));
                    }
                    FeatureGroup::Correlated { .. } => {
                        for feature in features.clone() {
                            out.push_unsorted(row, feature, draw_value(rng));
                        }
                    }
                    FeatureGroup::Anticorrelated { .. } => {
                        let feature = features.start + rng.below(width as u32) as usize;
                        out.push_unsorted(row, feature, draw_value(rng));
                    }
                }
            }
        }
        out.finish(single);
    }

    /// A fresh batch.
    pub fn sample(&self, rng: &mut StreamRng, batch_size: usize) -> SparseBatch {
        let mut b = SparseBatch::default();
        self.sample_into(rng, batch_size, &mut b);
        b
    }
}

/// Trials per block: one step of a [`LaneRng`] gives 16 32-bit draws.
const BLOCK: usize = 2 * RNG_LANES;

/// The two vectorised generators of a batch's tested trials: one decides the trials, the other
/// draws the successes' values. Seeded from the instance's stream (64 words) at the first
/// independent group that tests trials, and shared by the batch's later groups.
struct TrialGenerators {
    trials: LaneRng,
    values: LaneRng,
}

impl TrialGenerators {
    /// Both generators, seeded from the instance's stream: the trials' first, then the values'.
    fn seeded_from(rng: &mut StreamRng) -> Self {
        Self {
            trials: LaneRng::seeded_from(rng),
            values: LaneRng::seeded_from(rng),
        }
    }
}

/// The non-zeros of an independent group of features `features` with density p over `batch_size`
/// examples, by testing every trial. Trial u (example u / w, feature u mod w, w the group's width)
/// succeeds when its 32-bit draw is below ⌊p·2³²⌉ (success probability within 2⁻³² of p); the draws
/// come 16 per step of `generators.trials`. In three passes, each a loop without branches on data
/// except the last: (1) a 16-bit success mask per block of trials; (2) one value per success from
/// `generators.values` (U[0, 1) from the top 24 bits, or 2U − 1 when `signed`; 16 per step);
/// (3) the successes' positions by bit scans, in trial order, paired with the values in order.
fn bernoulli_trials(
    set: KernelSet,
    generators: &mut TrialGenerators,
    density: f64,
    batch_size: usize,
    features: Range<usize>,
    signed: bool,
    out: &mut SparseBatch,
) {
    let width = features.len();
    let total = batch_size * width;
    let threshold = success_threshold(density);
    let mut masks = std::mem::take(&mut out.scratch_masks);
    masks.clear();
    masks.resize(total.div_ceil(BLOCK), 0);
    vectorised::trial_masks(set, &mut generators.trials, threshold, &mut masks);
    if !total.is_multiple_of(BLOCK) {
        // The last block's trials past `total` do not exist.
        if let Some(last) = masks.last_mut() {
            *last &= ((1u32 << (total % BLOCK)) - 1) as u16;
        }
    }
    let successes = vectorised::successes(set, &masks);
    let mut values = std::mem::take(&mut out.scratch_values);
    values.clear();
    values.resize(successes.div_ceil(BLOCK) * BLOCK, 0.0);
    vectorised::uniform_values(set, &mut generators.values, signed, &mut values);
    // Trial `column + q` of a row is (row + rows[column + q], columns[column + q]) for q ≤ 16: a
    // table instead of a data-dependent loop (whose mispredicted exits cost more than the rest).
    let (mut rows, mut columns) = (
        std::mem::take(&mut out.scratch_rows),
        std::mem::take(&mut out.scratch_columns),
    );
    rows.clear();
    columns.clear();
    for v in 0..width + BLOCK + 1 {
        rows.push((v / width) as u32);
        columns.push((features.start + v % width) as u32);
    }
    // Success k (in trial order) is non-zero k of the group, with value k. The position pass may
    // write up to BLOCK entries past the last success: room is made, then cut.
    let first = out.feature.len();
    let end = first + successes;
    out.row.resize(end + BLOCK, 0);
    out.feature.resize(end + BLOCK, 0);
    let written = vectorised::positions(
        set,
        &masks,
        &rows,
        &columns,
        features.start,
        &mut out.row[first..],
        &mut out.feature[first..],
    );
    debug_assert_eq!(written, successes);
    out.row.truncate(end);
    out.feature.truncate(end);
    out.value.extend_from_slice(&values[..successes]);
    out.scratch_rows = rows;
    out.scratch_columns = columns;
    out.scratch_masks = masks;
    out.scratch_values = values;
}

/// ⌊p·2³²⌉: a trial succeeds when its 32-bit draw is below it (probability within 2⁻³² of p).
fn success_threshold(density: f64) -> u32 {
    (density * 4_294_967_296.0).round().min(u32::MAX as f64) as u32
}

mod vectorised;

/// Visits the successes of `total` Bernoulli(p) trials in order, by drawing the geometric gaps.
struct GeometricSkipper {
    next: usize,
    total: usize,
    /// 1 / ln(1 − p); 0 marks p = 1 (no gaps), and `total` is set to 0 for p = 0.
    inv_log_q: f64,
}

impl GeometricSkipper {
    fn new(p: f64, total: usize, rng: &mut StreamRng) -> Self {
        let mut s = Self {
            next: 0,
            total,
            inv_log_q: 0.0,
        };
        if p <= 0.0 {
            s.total = 0;
        } else if p < 1.0 {
            s.inv_log_q = 1.0 / (-p).ln_1p();
            s.next = s.gap(rng);
        }
        s
    }

    /// Number of failures before the next success: floor(ln U / ln(1 − p)), U ∈ (0, 1].
    #[inline]
    fn gap(&self, rng: &mut StreamRng) -> usize {
        if self.inv_log_q == 0.0 {
            return 0;
        }
        let g = rng.uniform_open_closed().ln() * self.inv_log_q;
        if g >= self.total as f64 {
            self.total
        } else {
            g as usize
        }
    }

    #[inline]
    fn next(&mut self, rng: &mut StreamRng) -> Option<usize> {
        if self.next >= self.total {
            return None;
        }
        let current = self.next;
        self.next = current + 1 + self.gap(rng);
        Some(current)
    }
}

#[cfg(test)]
mod tests;
