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
//! A batch is stored as compressed rows ([`SparseBatch`]): the non-zeros of example b are
//! `feature[row_start[b]..row_start[b+1]]` with their `value`s, in increasing feature order.
//!
//! From [`DENSE_DENSITY`] on, a distribution of one independent group has no zeros worth skipping:
//! its trials run feature-major, and [`FeatureDistribution::sample_dense_into`] writes the batch
//! straight into a dense [n, S] matrix ([`DenseBatch`]) that the small-m kernel reads in place.
//! [`FeatureDistribution::sample_into`] draws the same examples as compressed rows, so the form a
//! caller asks for never changes the data.

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

/// The vectorised passes of the tested trials ([`bernoulli_trials`] and the feature-major draws),
/// one copy per kernel set: portable copies (plain loops over [`LaneRng`]), for `avx2-fma` AVX2
/// copies (the eight lanes in two 256-bit registers per state word) and POPCNT counts, for
/// `avx512vl` AVX-512 copies (the trial masks on 512-bit registers, the expand into a dense
/// matrix, the positions by compress). Integer arithmetic and exact conversions: every copy
/// produces the same bits as the portable one (a test checks each set). Each pass takes the set
/// and asserts that the CPU supports it (a cached comparison) before any intrinsic runs.
mod vectorised {
    use super::BLOCK;
    use crate::cpu::KernelSet;
    use crate::rng::LaneRng;

    /// masks[k] bit q = 1 iff draw q of step k of `lanes` is below `threshold`.
    pub(super) fn trial_masks(
        set: KernelSet,
        lanes: &mut LaneRng,
        threshold: u32,
        masks: &mut [u16],
    ) {
        assert!(set.is_supported(), "this CPU cannot run kernel set {set}");
        #[cfg(target_arch = "x86_64")]
        {
            if set >= KernelSet::Avx512Vl {
                // SAFETY: AVX-512F, which the set requires (checked above).
                unsafe { avx512::trial_masks(lanes, threshold, masks) };
                return;
            }
            if set >= KernelSet::Avx2Fma {
                // SAFETY: AVX2, which the set requires (checked above).
                unsafe { avx2::trial_masks(lanes, threshold, masks) };
                return;
            }
        }
        trial_masks_portable(lanes, threshold, masks);
    }

    /// `values` (a multiple of 16 long) ← U[0, 1) from the top 24 bits of successive draws of
    /// `lanes`, or 2U − 1 when `signed`.
    pub(super) fn uniform_values(
        set: KernelSet,
        lanes: &mut LaneRng,
        signed: bool,
        values: &mut [f32],
    ) {
        assert!(set.is_supported(), "this CPU cannot run kernel set {set}");
        #[cfg(target_arch = "x86_64")]
        if set >= KernelSet::Avx2Fma {
            // SAFETY: AVX2, which the set requires (checked above).
            unsafe { avx2::uniform_values(lanes, signed, values) };
            return;
        }
        uniform_values_portable(lanes, signed, values);
    }

    /// The (row, feature) of every success, in trial order: block k's trial q is at column
    /// `column_k + q` of row `row_k`, i.e. (row_k + rows[column_k + q], columns[column_k + q]);
    /// (row, column) advance by 16 trials per block through the same tables. `rows` and `columns`
    /// have width + 17 entries (columns hold absolute features; `start` is the group's first).
    /// Writes into `out_rows` and `out_features`, which need 16 entries of room past the last
    /// success; returns the number of successes.
    pub(super) fn positions(
        set: KernelSet,
        masks: &[u16],
        rows: &[u32],
        columns: &[u32],
        start: usize,
        out_rows: &mut [u32],
        out_features: &mut [u32],
    ) -> usize {
        assert!(set.is_supported(), "this CPU cannot run kernel set {set}");
        #[cfg(target_arch = "x86_64")]
        if set >= KernelSet::Avx512Vl {
            // SAFETY: AVX-512F, which the set requires (checked above).
            return unsafe {
                avx512::positions(masks, rows, columns, start, out_rows, out_features)
            };
        }
        positions_portable(masks, rows, columns, start, out_rows, out_features)
    }

    /// The number of set bits of `masks`, four masks per population count.
    pub(super) fn successes(set: KernelSet, masks: &[u16]) -> usize {
        assert!(set.is_supported(), "this CPU cannot run kernel set {set}");
        #[cfg(target_arch = "x86_64")]
        if set >= KernelSet::Avx2Fma {
            // SAFETY: POPCNT, which the set requires (checked above).
            return unsafe { successes_popcnt(masks) };
        }
        successes_portable(masks)
    }

    fn successes_portable(masks: &[u16]) -> usize {
        let mut words = masks.chunks_exact(4);
        let whole: usize = words
            .by_ref()
            .map(|w| {
                let word = w.iter().rev().fold(0u64, |a, &m| a << 16 | m as u64);
                word.count_ones() as usize
            })
            .sum();
        whole
            + words
                .remainder()
                .iter()
                .map(|m| m.count_ones() as usize)
                .sum::<usize>()
    }

    /// [`successes`] with the POPCNT instruction (without it, `count_ones` is a dozen bit
    /// operations).
    ///
    /// # Safety
    /// The CPU must support POPCNT.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    unsafe fn successes_popcnt(masks: &[u16]) -> usize {
        successes_portable(masks)
    }

    /// The successes' values, in order, placed at their trials: the masks are rows of `width`
    /// trials (a multiple of 16), row r of x starts at r · `stride` (≥ width), and
    /// x[r · stride + 16c + q] = the next value if bit q of the row's mask c is set, else 0. The
    /// columns width..stride are not written. `values` holds the successes and 16 more.
    pub(super) fn expand(
        set: KernelSet,
        masks: &[u16],
        values: &[f32],
        width: usize,
        stride: usize,
        x: &mut [f32],
    ) {
        assert!(set.is_supported(), "this CPU cannot run kernel set {set}");
        #[cfg(target_arch = "x86_64")]
        if set >= KernelSet::Avx512Vl {
            // SAFETY: AVX-512F and POPCNT, which the set requires (checked above).
            unsafe { avx512::expand(masks, values, width, stride, x) };
            return;
        }
        expand_portable(masks, values, width, stride, x);
    }

    /// The rows of `x` that [`expand`] writes, each with its row of masks.
    fn expand_rows<'a>(
        masks: &'a [u16],
        width: usize,
        stride: usize,
        x: &'a mut [f32],
    ) -> impl Iterator<Item = (&'a [u16], &'a mut [f32])> {
        assert!(width.is_multiple_of(BLOCK) && width <= stride && stride > 0);
        let rows = if width == 0 {
            0
        } else {
            masks.len() / (width / BLOCK)
        };
        assert!(rows * width == masks.len() * BLOCK && x.len() >= rows * stride);
        masks
            .chunks_exact(width.max(BLOCK) / BLOCK)
            .zip(x.chunks_exact_mut(stride))
            .take(rows)
            .map(move |(m, x)| (m, &mut x[..width]))
    }

    pub(super) fn expand_portable(
        masks: &[u16],
        values: &[f32],
        width: usize,
        stride: usize,
        x: &mut [f32],
    ) {
        let mut k = 0;
        for (masks, x) in expand_rows(masks, width, stride, x) {
            for (&mask, block) in masks.iter().zip(x.chunks_exact_mut(BLOCK)) {
                for (q, x) in block.iter_mut().enumerate() {
                    let on = mask >> q & 1 != 0;
                    *x = if on { values[k] } else { 0.0 };
                    k += on as usize;
                }
            }
        }
    }

    pub(super) fn positions_portable(
        masks: &[u16],
        rows: &[u32],
        columns: &[u32],
        start: usize,
        out_rows: &mut [u32],
        out_features: &mut [u32],
    ) -> usize {
        let (mut row, mut column, mut k) = (0u32, 0usize, 0usize);
        for &mask in masks {
            let mut bits = mask as u32;
            while bits != 0 {
                let v = column + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                out_rows[k] = row + rows[v];
                out_features[k] = columns[v];
                k += 1;
            }
            row += rows[column + BLOCK];
            column = columns[column + BLOCK] as usize - start;
        }
        k
    }

    pub(super) fn trial_masks_portable(lanes: &mut LaneRng, threshold: u32, masks: &mut [u16]) {
        for mask in masks {
            let draws = lanes.next_halves();
            let mut bits = 0u16;
            for (q, &d) in draws.iter().enumerate() {
                bits |= ((d < threshold) as u16) << q;
            }
            *mask = bits;
        }
    }

    pub(super) fn uniform_values_portable(lanes: &mut LaneRng, signed: bool, values: &mut [f32]) {
        assert!(values.len().is_multiple_of(BLOCK));
        for chunk in values.chunks_exact_mut(BLOCK) {
            for (v, &d) in chunk.iter_mut().zip(&lanes.next_halves()) {
                let u = (d >> 8) as f32 * (1.0 / (1u32 << 24) as f32);
                *v = if signed { 2.0 * u - 1.0 } else { u };
            }
        }
    }

    /// The AVX-512F copies: trial masks, expand and positions.
    #[cfg(target_arch = "x86_64")]
    mod avx512 {
        use super::BLOCK;
        use crate::cpu::KernelSet;
        use crate::rng::LaneRng;
        use std::arch::x86_64::*;

        /// [`super::trial_masks`] on 512-bit registers: the eight lanes' state words in four
        /// registers, one xoshiro256++ step of all lanes per block ([`LaneRng::next_words`]), and
        /// an unsigned compare of its 16 32-bit halves straight into the block's mask (half q of
        /// the step is bit q, as in [`LaneRng::next_halves`]).
        ///
        /// # Safety
        /// The CPU must support AVX-512F.
        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn trial_masks(lanes: &mut LaneRng, threshold: u32, masks: &mut [u16]) {
            let words = lanes.words();
            let mut s = [_mm512_setzero_si512(); 4];
            for (s, word) in s.iter_mut().zip(words.iter()) {
                // SAFETY: each state word holds 8 u64 = 512 bits.
                *s = _mm512_loadu_si512(word.as_ptr() as *const _);
            }
            let limit = _mm512_set1_epi32(threshold as i32);
            for mask in masks {
                let result =
                    _mm512_add_epi64(_mm512_rol_epi64::<23>(_mm512_add_epi64(s[0], s[3])), s[0]);
                let t = _mm512_slli_epi64::<17>(s[1]);
                s[2] = _mm512_xor_si512(s[2], s[0]);
                s[3] = _mm512_xor_si512(s[3], s[1]);
                s[1] = _mm512_xor_si512(s[1], s[2]);
                s[0] = _mm512_xor_si512(s[0], s[3]);
                s[2] = _mm512_xor_si512(s[2], t);
                s[3] = _mm512_rol_epi64::<45>(s[3]);
                *mask = _mm512_cmplt_epu32_mask(result, limit);
            }
            for (s, word) in s.iter().zip(words.iter_mut()) {
                // SAFETY: as above.
                _mm512_storeu_si512(word.as_mut_ptr() as *mut _, *s);
            }
        }

        /// [`super::expand`] with AVX-512's expand, from a register: 16 values are loaded and
        /// the block's popcount(mask) first ones spread to its set bits. The expand is written
        /// in assembly because the compiler folds the load into it, and the expanding load from
        /// memory is microcoded on AMD Zen 4 (it took 10% of e2's time against 3% now).
        ///
        /// # Safety
        /// The CPU must support AVX-512F and POPCNT. (Every memory access is checked by the
        /// asserts below.)
        #[target_feature(enable = "avx512f,popcnt")]
        pub(super) unsafe fn expand(
            masks: &[u16],
            values: &[f32],
            width: usize,
            stride: usize,
            x: &mut [f32],
        ) {
            assert!(values.len() >= super::successes(KernelSet::Avx512Vl, masks) + BLOCK);
            let mut k = 0;
            for (masks, x) in super::expand_rows(masks, width, stride, x) {
                for (&mask, block) in masks.iter().zip(x.chunks_exact_mut(BLOCK)) {
                    // SAFETY: k ≤ successes, so values[k..k + 16] is in bounds (asserted above);
                    // the block holds 16 floats. The assembly only reads and writes registers.
                    let v = _mm512_loadu_ps(values.as_ptr().add(k));
                    let spread: __m512;
                    std::arch::asm!(
                        "vexpandps {spread}{{{mask}}}{{z}}, {v}",
                        spread = lateout(zmm_reg) spread,
                        v = in(zmm_reg) v,
                        mask = in(kreg) mask,
                        options(pure, nomem, nostack),
                    );
                    _mm512_storeu_ps(block.as_mut_ptr(), spread);
                    k += mask.count_ones() as usize;
                }
            }
        }

        /// [`super::positions`] with AVX-512 compress: the 16 candidate (row, feature) pairs of a
        /// block are loaded from the tables and the successes' packed to the front, branch-free.
        ///
        /// # Safety
        /// The CPU must support AVX-512F. (Every memory access is checked by the asserts below.)
        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn positions(
            masks: &[u16],
            rows: &[u32],
            columns: &[u32],
            start: usize,
            out_rows: &mut [u32],
            out_features: &mut [u32],
        ) -> usize {
            let width = columns.len() - BLOCK - 1;
            assert!(rows.len() == columns.len() && width > 0 && columns[0] as usize == start);
            assert!(masks.len() * BLOCK < 1 << 50);
            let successes = super::successes(KernelSet::Avx512Vl, masks);
            assert!(out_rows.len() >= successes + BLOCK && out_features.len() >= successes + BLOCK);
            let inverse_width = 1.0 / width as f64;
            let mut k = 0usize;
            for (block, &mask) in masks.iter().enumerate() {
                // (row, column) of the block's first trial s = 16·block, computed afresh for every
                // block so that blocks do not wait on each other: ⌊(s + ½)/w⌋ in f64 is exact, as
                // (s + ½)/w is ≥ ½/w from an integer and its relative error is ≤ 2⁻⁵² (s < 2⁵⁰).
                let first = block * BLOCK;
                let row = ((first as f64 + 0.5) * inverse_width) as usize;
                let column = first - row * width;
                // SAFETY: column < width, so column + 16 ≤ width + 16 < len of the tables; k ≤
                // successes, so k + 16 ≤ len of the outputs (asserted above).
                let r = _mm512_loadu_si512(rows.as_ptr().add(column) as *const _);
                let f = _mm512_loadu_si512(columns.as_ptr().add(column) as *const _);
                let r = _mm512_add_epi32(r, _mm512_set1_epi32(row as u32 as i32));
                _mm512_storeu_si512(
                    out_rows.as_mut_ptr().add(k) as *mut _,
                    _mm512_maskz_compress_epi32(mask, r),
                );
                _mm512_storeu_si512(
                    out_features.as_mut_ptr().add(k) as *mut _,
                    _mm512_maskz_compress_epi32(mask, f),
                );
                k += mask.count_ones() as usize;
            }
            k
        }
    }

    #[cfg(target_arch = "x86_64")]
    // Index loops over the two halves address the four state words at once.
    #[allow(clippy::needless_range_loop)]
    pub(super) mod avx2 {
        use super::BLOCK;
        use crate::rng::{LaneRng, RNG_LANES};
        use std::arch::x86_64::*;

        /// The state in registers: word w of lanes 0–3 in `[w][0]`, of lanes 4–7 in `[w][1]`.
        type State = [[__m256i; 2]; 4];

        #[inline(always)]
        unsafe fn load(lanes: &mut LaneRng) -> State {
            let words = lanes.words();
            let mut s = [[_mm256_setzero_si256(); 2]; 4];
            for w in 0..4 {
                for h in 0..2 {
                    // SAFETY: words[w] holds 8 u64; lanes 4h..4h+4 are in bounds.
                    s[w][h] = _mm256_loadu_si256(words[w].as_ptr().add(4 * h) as *const __m256i);
                }
            }
            s
        }

        #[inline(always)]
        unsafe fn store(lanes: &mut LaneRng, s: &State) {
            let words = lanes.words();
            for w in 0..4 {
                for h in 0..2 {
                    // SAFETY: as in `load`.
                    _mm256_storeu_si256(words[w].as_mut_ptr().add(4 * h) as *mut __m256i, s[w][h]);
                }
            }
        }

        /// One xoshiro256++ step of four lanes (`h` selects which four): [`LaneRng::next_words`].
        #[inline(always)]
        unsafe fn step(s: &mut State, h: usize) -> __m256i {
            let rotl = |x: __m256i, k: i32| {
                _mm256_or_si256(
                    _mm256_sll_epi64(x, _mm_cvtsi32_si128(k)),
                    _mm256_srl_epi64(x, _mm_cvtsi32_si128(64 - k)),
                )
            };
            let sum = _mm256_add_epi64(s[0][h], s[3][h]);
            let result = _mm256_add_epi64(rotl(sum, 23), s[0][h]);
            let t = _mm256_slli_epi64::<17>(s[1][h]);
            s[2][h] = _mm256_xor_si256(s[2][h], s[0][h]);
            s[3][h] = _mm256_xor_si256(s[3][h], s[1][h]);
            s[1][h] = _mm256_xor_si256(s[1][h], s[2][h]);
            s[0][h] = _mm256_xor_si256(s[0][h], s[3][h]);
            s[2][h] = _mm256_xor_si256(s[2][h], t);
            s[3][h] = rotl(s[3][h], 45);
            result
        }

        /// [`super::trial_masks`]: unsigned d < threshold as a signed comparison of d ⊕ 2³¹.
        ///
        /// # Safety
        /// The CPU must support AVX2.
        #[target_feature(enable = "avx2")]
        pub(in super::super) unsafe fn trial_masks(
            lanes: &mut LaneRng,
            threshold: u32,
            masks: &mut [u16],
        ) {
            debug_assert_eq!(BLOCK, 2 * RNG_LANES);
            let mut s = load(lanes);
            let bias = _mm256_set1_epi32(i32::MIN);
            let limit = _mm256_set1_epi32((threshold ^ 0x8000_0000) as i32);
            for mask in masks {
                let mut bits = 0u32;
                for h in 0..2 {
                    let draws = _mm256_xor_si256(step(&mut s, h), bias);
                    let below = _mm256_cmpgt_epi32(limit, draws);
                    bits |= (_mm256_movemask_ps(_mm256_castsi256_ps(below)) as u32) << (8 * h);
                }
                *mask = bits as u16;
            }
            store(lanes, &s);
        }

        /// [`super::uniform_values`]: (d >> 8) converted exactly, times 2⁻²⁴ (exact), then 2u − 1
        /// (exact: u has 24 significant bits).
        ///
        /// # Safety
        /// The CPU must support AVX2.
        #[target_feature(enable = "avx2")]
        pub(in super::super) unsafe fn uniform_values(
            lanes: &mut LaneRng,
            signed: bool,
            values: &mut [f32],
        ) {
            assert!(values.len().is_multiple_of(BLOCK));
            let mut s = load(lanes);
            let scale = _mm256_set1_ps(1.0 / (1u32 << 24) as f32);
            let one = _mm256_set1_ps(1.0);
            for chunk in values.chunks_exact_mut(BLOCK) {
                for h in 0..2 {
                    let draws = step(&mut s, h);
                    let u = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32::<8>(draws)), scale);
                    let v = if signed {
                        _mm256_sub_ps(_mm256_add_ps(u, u), one)
                    } else {
                        u
                    };
                    // SAFETY: chunk holds 16 f32; 8h + 8 ≤ 16.
                    _mm256_storeu_ps(chunk.as_mut_ptr().add(8 * h), v);
                }
            }
            store(lanes, &s);
        }
    }
}

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

/// A batch of sparse examples in compressed-row form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseBatch {
    /// `row_start[b]..row_start[b+1]` indexes example b's non-zeros; length B + 1.
    pub row_start: Vec<u32>,
    /// Feature index of each non-zero.
    pub feature: Vec<u32>,
    /// Value of each non-zero.
    pub value: Vec<f32>,
    /// Example (row) of each non-zero: `row[k] = b` for every k in `row_start[b]..row_start[b+1]`
    /// (the coordinate form of the same batch, for passes that run over the non-zeros flat).
    pub row: Vec<u32>,
    scratch_feature: Vec<u32>,
    scratch_value: Vec<f32>,
    scratch_counts: Vec<u32>,
    /// Scratch of the tested trials: success masks and values.
    scratch_masks: Vec<u16>,
    scratch_values: Vec<f32>,
    scratch_rows: Vec<u32>,
    scratch_columns: Vec<u32>,
}

impl SparseBatch {
    /// Number of examples B.
    pub fn batch_size(&self) -> usize {
        self.row_start.len().saturating_sub(1)
    }

    /// Total number of non-zeros.
    pub fn nonzeros(&self) -> usize {
        self.feature.len()
    }

    /// The non-zeros of example `b` as (feature, value) slices.
    #[inline]
    pub fn row(&self, b: usize) -> (&[u32], &[f32]) {
        let r = self.row_start[b] as usize..self.row_start[b + 1] as usize;
        (&self.feature[r.clone()], &self.value[r])
    }

    /// Builds a batch from dense rows (tests, user data).
    pub fn from_dense(rows: &[Vec<f32>]) -> Self {
        let mut b = SparseBatch::default();
        b.clear(rows.len());
        for (r, row) in rows.iter().enumerate() {
            for (i, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    b.push_unsorted(r, i, v);
                }
            }
        }
        b.finish(true);
        b
    }

    /// Dense copy of example `b` with `n` features.
    pub fn dense_row(&self, b: usize, n: usize) -> Vec<f32> {
        let mut x = vec![0.0; n];
        let (f, v) = self.row(b);
        for (&i, &val) in f.iter().zip(v) {
            x[i as usize] = val;
        }
        x
    }

    fn clear(&mut self, batch_size: usize) {
        self.row_start.clear();
        self.row_start.resize(batch_size + 1, 0);
        self.feature.clear();
        self.value.clear();
        self.row.clear();
    }

    #[inline]
    fn push_unsorted(&mut self, row: usize, feature: usize, value: f32) {
        self.row.push(row as u32);
        self.feature.push(feature as u32);
        self.value.push(value);
    }

    /// Turns pushed (row, feature, value) triples into compressed rows. `already_sorted` when they were
    /// pushed in row order (a single group); otherwise a stable counting sort by row, which keeps the
    /// groups' increasing feature order within a row.
    fn finish(&mut self, already_sorted: bool) {
        let b = self.row_start.len() - 1;
        if already_sorted {
            // row_start[r + 1] = 1 + the last k with row[k] = r (stores in order: the last wins, and
            // no store waits on a load, unlike counting); then rows without non-zeros take the
            // previous end (running maximum).
            self.row_start.fill(0);
            for (k, &r) in self.row.iter().enumerate() {
                self.row_start[r as usize + 1] = k as u32 + 1;
            }
            for i in 0..b {
                self.row_start[i + 1] = self.row_start[i + 1].max(self.row_start[i]);
            }
            return;
        }
        let mut counts = std::mem::take(&mut self.scratch_counts);
        counts.clear();
        counts.resize(b + 1, 0);
        for &r in &self.row {
            counts[r as usize + 1] += 1;
        }
        for i in 0..b {
            counts[i + 1] += counts[i];
        }
        self.row_start.copy_from_slice(&counts);
        let nnz = self.feature.len();
        self.scratch_feature.resize(nnz, 0);
        self.scratch_value.resize(nnz, 0.0);
        let mut cursor = counts;
        for k in 0..nnz {
            let r = self.row[k] as usize;
            let dst = cursor[r] as usize;
            cursor[r] += 1;
            self.scratch_feature[dst] = self.feature[k];
            self.scratch_value[dst] = self.value[k];
        }
        std::mem::swap(&mut self.feature, &mut self.scratch_feature);
        std::mem::swap(&mut self.value, &mut self.scratch_value);
        // Rows in sorted order: row b repeated row_start[b+1] − row_start[b] times.
        for example in 0..b {
            let r = self.row_start[example] as usize..self.row_start[example + 1] as usize;
            self.row[r].fill(example as u32);
        }
        self.scratch_counts = cursor;
    }
}

/// A batch stored densely and feature-major, as drawn by
/// [`FeatureDistribution::sample_dense_into`]: x_j of example b is `x[j · stride + b]`, where the
/// stride S is B rounded up to a multiple of 16 (and 16 more when that is a multiple of 64, so
/// that rows do not alias in the L1 cache); entries at examples B..S are zero. Kernels read a
/// tile of consecutive examples of every feature as rows of one matrix, with no scatter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DenseBatch {
    /// The inputs x [n, S].
    pub x: Vec<f32>,
    batch_size: usize,
    n_features: usize,
    stride: usize,
    scratch_masks: Vec<u16>,
    scratch_values: Vec<f32>,
}

impl DenseBatch {
    /// Number of examples B.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Number of features n.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Distance S between consecutive features' rows of [`Self::x`] (≥ B, a multiple of 16).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Dense copy of example `b`.
    pub fn dense_row(&self, b: usize) -> Vec<f32> {
        assert!(b < self.batch_size);
        (0..self.n_features)
            .map(|j| self.x[j * self.stride + b])
            .collect()
    }

    /// The same examples as compressed rows (the non-zero entries).
    pub fn to_sparse(&self) -> SparseBatch {
        let rows: Vec<Vec<f32>> = (0..self.batch_size).map(|b| self.dense_row(b)).collect();
        SparseBatch::from_dense(&rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Empirical density, mean and second moment of feature values over `batches` batches.
    fn moments(
        dist: &FeatureDistribution,
        batches: usize,
        batch_size: usize,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = dist.n_features();
        let mut rng = StreamRng::seed_from_u64(42);
        let (mut active, mut sum, mut sum2) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let mut batch = SparseBatch::default();
        for _ in 0..batches {
            dist.sample_into(&mut rng, batch_size, &mut batch);
            for (&i, &v) in batch.feature.iter().zip(&batch.value) {
                active[i as usize] += 1.0;
                sum[i as usize] += v as f64;
                sum2[i as usize] += (v as f64).powi(2);
            }
        }
        let total = (batches * batch_size) as f64;
        (
            active.iter().map(|a| a / total).collect(),
            sum.iter().map(|s| s / total).collect(),
            sum2.iter().map(|s| s / total).collect(),
        )
    }

    #[test]
    fn independent_density_mean_and_second_moment() {
        // x = 0 w.p. 1 − p, else U[0,1]: P(x≠0) = p, E[x] = p/2, E[x²] = p/3.
        for p in [1.0, 0.3, 0.05, 0.003] {
            let dist = FeatureDistribution::uniform(20, p, ValueRange::Unit).unwrap();
            let draws = 400 * 1024;
            let (d, m, m2) = moments(&dist, 400, 1024);
            // Five binomial standard errors of the density, sqrt(p(1−p)/N); the mean and second
            // moment have variances below p/3 and p/5, so 5·sqrt(p/(3N)) bounds both.
            let tol_d = 5.0 * (p * (1.0 - p) / draws as f64).sqrt() + 1e-12;
            let tol_m = 5.0 * (p / 3.0 / draws as f64).sqrt();
            for i in 0..20 {
                assert!((d[i] - p).abs() <= tol_d, "density {} vs {p}", d[i]);
                assert!(
                    (m[i] - p / 2.0).abs() <= tol_m,
                    "mean {} vs {}",
                    m[i],
                    p / 2.0
                );
                assert!(
                    (m2[i] - p / 3.0).abs() <= tol_m,
                    "second moment {} vs {}",
                    m2[i],
                    p / 3.0
                );
            }
        }
    }

    #[test]
    fn dense_draws_equal_row_draws() {
        // The same stream state gives the same examples as a dense matrix and as rows, and leaves
        // the stream in the same state; the padding past B is zero.
        for (n, batch_size) in [(20, 1024), (5, 37), (1, 16), (3, 1)] {
            for p in [DENSE_DENSITY, 0.1, 0.5, 0.999] {
                for values in [ValueRange::Unit, ValueRange::Signed] {
                    let dist = FeatureDistribution::uniform(n, p, values).unwrap();
                    assert!(dist.draws_dense());
                    let (mut a, mut b) = (StreamRng::seed_from_u64(9), StreamRng::seed_from_u64(9));
                    let (mut rows, mut dense) = (SparseBatch::default(), DenseBatch::default());
                    for _ in 0..2 {
                        dist.sample_into(&mut a, batch_size, &mut rows);
                        dist.sample_dense_into(&mut b, batch_size, &mut dense);
                        assert_eq!(dense.batch_size(), batch_size);
                        assert_eq!(dense.stride() % 16, 0);
                        for e in 0..batch_size {
                            assert_eq!(rows.dense_row(e, n), dense.dense_row(e), "example {e}");
                        }
                        for j in 0..n {
                            let row = &dense.x[j * dense.stride()..(j + 1) * dense.stride()];
                            assert!(row[batch_size..].iter().all(|&x| x == 0.0));
                        }
                        assert_eq!(dense.to_sparse().dense_row(0, n), rows.dense_row(0, n));
                    }
                    assert_eq!(a.state(), b.state());
                }
            }
        }
        // A reused batch keeps its padding zero when B changes under the same stride: B = 1040
        // fills columns 1024..1040 that B = 1024 (stride 1024 + 16) leaves as padding.
        let dist = FeatureDistribution::uniform(3, 0.5, ValueRange::Unit).unwrap();
        let (mut rng, mut dense) = (StreamRng::seed_from_u64(4), DenseBatch::default());
        dist.sample_dense_into(&mut rng, 1040, &mut dense);
        assert!(dense.x[1024..1040].iter().any(|&x| x != 0.0));
        dist.sample_dense_into(&mut rng, 1024, &mut dense);
        assert_eq!(dense.stride(), 1040);
        for j in 0..3 {
            assert!(dense.x[j * 1040 + 1024..(j + 1) * 1040]
                .iter()
                .all(|&x| x == 0.0));
        }
        // Below the threshold, or with several groups, batches are drawn as rows.
        assert!(!FeatureDistribution::uniform(5, 0.05, ValueRange::Unit)
            .unwrap()
            .draws_dense());
        assert!(!FeatureDistribution::uniform(5, 1.0, ValueRange::Unit)
            .unwrap()
            .draws_dense());
        assert!(
            !FeatureDistribution::independent(&[0.1, 0.2], ValueRange::Unit)
                .unwrap()
                .draws_dense()
        );
    }

    #[test]
    fn feature_major_draws_have_density_p_at_every_example() {
        // B = 37 is not a multiple of 16: each feature's last mask is cut at B. A cut one example
        // too early or too late would leave that example with density 0 or shift its trials.
        let (n, batch_size, batches, p) = (20, 37, 2000, 0.3);
        let dist = FeatureDistribution::uniform(n, p, ValueRange::Unit).unwrap();
        let mut rng = StreamRng::seed_from_u64(5);
        let mut dense = DenseBatch::default();
        let mut active = vec![0usize; batch_size];
        for _ in 0..batches {
            dist.sample_dense_into(&mut rng, batch_size, &mut dense);
            for j in 0..n {
                for (e, &x) in dense.x[j * dense.stride()..][..batch_size]
                    .iter()
                    .enumerate()
                {
                    active[e] += (x != 0.0) as usize;
                }
            }
        }
        // Five binomial standard errors of each example's density over n · batches trials.
        let trials = (n * batches) as f64;
        let tolerance = 5.0 * (p * (1.0 - p) / trials).sqrt();
        for (e, &a) in active.iter().enumerate() {
            let d = a as f64 / trials;
            assert!((d - p).abs() <= tolerance, "example {e}: density {d}");
        }
    }

    /// Naive twin of the independent-group loop: each success's flat position divided by the
    /// width. The fast loop must draw exactly the same batch.
    fn sample_by_division(
        n: usize,
        density: f64,
        batch_size: usize,
        rng: &mut StreamRng,
    ) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
        let mut skipper = GeometricSkipper::new(density, batch_size * n, rng);
        let mut rows = Vec::new();
        let mut features = Vec::new();
        let mut values = Vec::new();
        while let Some(unit) = skipper.next(rng) {
            rows.push((unit / n) as u32);
            features.push((unit % n) as u32);
            values.push(rng.uniform_f32());
        }
        (rows, features, values)
    }

    /// The tested-trials path in its plainest form: trial u = (example u / w, feature u mod w) is
    /// drawn one 32-bit value at a time (the scalar [`LaneRng::next_halves`]), succeeds below the
    /// threshold, and takes the next value of the value generator. No masks, tables or bit scans.
    fn bernoulli_by_trial(
        width: usize,
        p: f64,
        batch_size: usize,
        rng: &mut StreamRng,
        signed: bool,
    ) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
        let mut trials = LaneRng::seeded_from(rng);
        let mut value_draws = LaneRng::seeded_from(rng);
        let threshold = (p * 4_294_967_296.0).round() as u64;
        // From DENSE_DENSITY on, trials run feature-major over B rounded up to 16 examples.
        let feature_major = p >= DENSE_DENSITY;
        let stride = batch_size.div_ceil(BLOCK) * BLOCK;
        let trial_count = if feature_major {
            width * stride
        } else {
            batch_size * width
        };
        let mut triples = Vec::new();
        let mut block = trials.next_halves();
        let mut value_block = value_draws.next_halves();
        let mut next_value = 0;
        for u in 0..trial_count {
            if u > 0 && u % BLOCK == 0 {
                block = trials.next_halves();
            }
            let (row, feature) = if feature_major {
                (u % stride, u / stride)
            } else {
                (u / width, u % width)
            };
            if row < batch_size && (block[u % BLOCK] as u64) < threshold {
                if next_value == BLOCK {
                    value_block = value_draws.next_halves();
                    next_value = 0;
                }
                let unit = (value_block[next_value] >> 8) as f32 / 16_777_216.0;
                next_value += 1;
                triples.push((
                    row as u32,
                    feature as u32,
                    if signed { 2.0 * unit - 1.0 } else { unit },
                ));
            }
        }
        triples.sort_by_key(|&(row, feature, _)| (row, feature));
        let rows = triples.iter().map(|t| t.0).collect();
        let features = triples.iter().map(|t| t.1).collect();
        let values = triples.iter().map(|t| t.2).collect();
        (rows, features, values)
    }

    #[test]
    fn tested_trials_equal_the_trial_by_trial_twin() {
        for &(n, p, signed) in &[
            (1, 0.5, false),
            (5, 0.05, false),
            (20, 0.1, true),
            (7, 0.9, false),
            (16, 0.3, true),
            (33, 0.02, false),
            (400, 0.016, false),
        ] {
            assert!((BERNOULLI_DENSITY..1.0).contains(&p));
            let range = if signed {
                ValueRange::Signed
            } else {
                ValueRange::Unit
            };
            let dist = FeatureDistribution::uniform(n, p, range).unwrap();
            // 301 examples: the last block of trials is partial for every width here but 16.
            let mut a = StreamRng::seed_from_u64(n as u64);
            let mut b = a.clone();
            let batch = dist.sample(&mut a, 301);
            let (rows, features, values) = bernoulli_by_trial(n, p, 301, &mut b, signed);
            assert_eq!(batch.row, rows, "n={n} p={p}");
            assert_eq!(batch.feature, features, "n={n} p={p}");
            assert_eq!(batch.value, values, "n={n} p={p}");
            assert_eq!(a, b, "the same number of draws from the stream");
            assert!(!values.is_empty());
        }
    }

    #[test]
    fn every_kernel_sets_vectorised_passes_equal_the_portable_copies() {
        for set in KernelSet::ALL.into_iter().filter(|s| !s.is_supported()) {
            eprintln!("skipped kernel set {set}: this CPU cannot run it");
        }
        let mut rng = StreamRng::seed_from_u64(3);
        let lanes = LaneRng::seeded_from(&mut rng);
        for set in KernelSet::supported() {
            for threshold in [0, 1, 1 << 31, 429_496_730, u32::MAX] {
                let (mut fast, mut portable) = (lanes.clone(), lanes.clone());
                let (mut a, mut b) = (vec![0u16; 200], vec![0u16; 200]);
                vectorised::trial_masks(set, &mut fast, threshold, &mut a);
                vectorised::trial_masks_portable(&mut portable, threshold, &mut b);
                assert_eq!(a, b, "{set}, threshold {threshold}");
                assert_eq!(fast.next_words(), portable.next_words(), "{set}");
                let set_bits: usize = a.iter().map(|m| m.count_ones() as usize).sum();
                assert_eq!(vectorised::successes(set, &a), set_bits);
                let tail: usize = a[197..].iter().map(|m| m.count_ones() as usize).sum();
                assert_eq!(vectorised::successes(set, &a[..197]), set_bits - tail);
            }
            for signed in [false, true] {
                let (mut fast, mut portable) = (lanes.clone(), lanes.clone());
                let (mut a, mut b) = (vec![0f32; 160], vec![0f32; 160]);
                vectorised::uniform_values(set, &mut fast, signed, &mut a);
                vectorised::uniform_values_portable(&mut portable, signed, &mut b);
                assert_eq!(a, b, "{set}");
                assert_eq!(fast.next_words(), portable.next_words(), "{set}");
            }
            for threshold in [0, 1 << 30, u32::MAX] {
                let mut masks = vec![0u16; 200];
                vectorised::trial_masks_portable(&mut lanes.clone(), threshold, &mut masks);
                let mut values = vec![0f32; 201 * BLOCK];
                vectorised::uniform_values_portable(&mut lanes.clone(), true, &mut values);
                // 20 rows of 160 trials, 176 floats apart; the gaps stay as they were.
                let (mut a, mut b) = (vec![-1.0; 20 * 176], vec![-1.0; 20 * 176]);
                vectorised::expand(set, &masks, &values, 160, 176, &mut a);
                vectorised::expand_portable(&masks, &values, 160, 176, &mut b);
                assert_eq!(a, b, "{set}, threshold {threshold}");
                assert!(a
                    .chunks(176)
                    .all(|row| row[160..].iter().all(|&x| x == -1.0)));
            }
            for width in [1usize, 5, 16, 20, 37] {
                let mut masks = vec![0u16; 300];
                vectorised::trial_masks_portable(&mut lanes.clone(), 1 << 30, &mut masks);
                let rows: Vec<u32> = (0..width + BLOCK + 1).map(|v| (v / width) as u32).collect();
                let columns: Vec<u32> = (0..width + BLOCK + 1)
                    .map(|v| (3 + v % width) as u32)
                    .collect();
                let room = 300 * BLOCK + BLOCK;
                let (mut ra, mut fa, mut rb, mut fb) =
                    (vec![0; room], vec![0; room], vec![0; room], vec![0; room]);
                let ka = vectorised::positions(set, &masks, &rows, &columns, 3, &mut ra, &mut fa);
                let kb =
                    vectorised::positions_portable(&masks, &rows, &columns, 3, &mut rb, &mut fb);
                assert_eq!(ka, kb, "{set}");
                assert_eq!(
                    (&ra[..ka], &fa[..ka]),
                    (&rb[..kb], &fb[..kb]),
                    "{set}, width {width}"
                );
            }
        }
    }

    #[test]
    fn incremental_positions_equal_division() {
        // Densities that draw geometric gaps (below BERNOULLI_DENSITY, or 1).
        for &(n, p) in &[
            (1, 0.01),
            (5, 0.012),
            (20, 0.015),
            (1000, 0.001),
            (3, 0.0005),
            (400, 1.0),
        ] {
            assert!(p < BERNOULLI_DENSITY || p == 1.0);
            let dist = FeatureDistribution::uniform(n, p, ValueRange::Unit).unwrap();
            let mut a = StreamRng::seed_from_u64(n as u64);
            let mut b = a.clone();
            let batch = dist.sample(&mut a, 300);
            let (rows, features, values) = sample_by_division(n, p, 300, &mut b);
            assert_eq!(batch.feature, features, "n={n} p={p}");
            assert_eq!(batch.value, values);
            let mut expected_rows = Vec::new();
            for r in 0..300 {
                expected_rows.extend(std::iter::repeat_n(r as u32, batch.row(r).0.len()));
            }
            assert_eq!(expected_rows, rows);
            assert_eq!(a, b, "the same number of draws");
        }
    }

    #[test]
    fn zero_density_gives_no_nonzeros_and_full_density_all() {
        let mut rng = StreamRng::seed_from_u64(1);
        let none = FeatureDistribution::uniform(7, 0.0, ValueRange::Unit)
            .unwrap()
            .sample(&mut rng, 100);
        assert_eq!(none.nonzeros(), 0);
        let all = FeatureDistribution::uniform(7, 1.0, ValueRange::Unit)
            .unwrap()
            .sample(&mut rng, 100);
        assert_eq!(all.nonzeros(), 700);
        for b in 0..100 {
            assert_eq!(all.row(b).0, &[0, 1, 2, 3, 4, 5, 6]);
        }
    }

    #[test]
    fn correlated_sets_cofire_and_anticorrelated_never_do() {
        let dist = FeatureDistribution::new(
            6,
            vec![
                FeatureGroup::Correlated {
                    features: 0..3,
                    density: 0.2,
                },
                FeatureGroup::Anticorrelated {
                    features: 3..6,
                    density: 0.6,
                    convention: AnticorrelatedConvention::SetDensity,
                },
            ],
            ValueRange::Unit,
        )
        .unwrap();
        let mut rng = StreamRng::seed_from_u64(5);
        let batch = dist.sample(&mut rng, 20_000);
        let (mut corr_active, mut anti_active) = (0usize, 0usize);
        for b in 0..batch.batch_size() {
            let (f, _) = batch.row(b);
            assert!(
                f.windows(2).all(|w| w[0] < w[1]),
                "row features sorted and unique"
            );
            let corr = f.iter().filter(|&&i| i < 3).count();
            assert!(
                corr == 0 || corr == 3,
                "correlated set fires together, got {corr}"
            );
            let anti = f.iter().filter(|&&i| i >= 3).count();
            assert!(anti <= 1, "anticorrelated set never co-fires");
            corr_active += (corr == 3) as usize;
            anti_active += anti;
        }
        // Binomial(20000, p): 5 standard errors.
        let n = 20_000.0;
        assert!((corr_active as f64 / n - 0.2).abs() < 5.0 * (0.2 * 0.8 / n).sqrt());
        assert!((anti_active as f64 / n - 0.6).abs() < 5.0 * (0.6 * 0.4 / n).sqrt());
    }

    #[test]
    fn anticorrelated_feature_density_convention_has_marginal_p() {
        let dist = FeatureDistribution::new(
            2,
            vec![FeatureGroup::Anticorrelated {
                features: 0..2,
                density: 0.3,
                convention: AnticorrelatedConvention::FeatureDensity,
            }],
            ValueRange::Unit,
        )
        .unwrap();
        let (d, _, _) = moments(&dist, 50, 1024);
        let tol = 5.0 * (0.3 * 0.7 / 51200.0f64).sqrt();
        assert!(
            (d[0] - 0.3).abs() < tol && (d[1] - 0.3).abs() < tol,
            "{d:?}"
        );
    }

    #[test]
    fn signed_values_are_symmetric() {
        let dist = FeatureDistribution::uniform(10, 0.5, ValueRange::Signed).unwrap();
        let (_, m, m2) = moments(&dist, 100, 1024);
        let draws = 102_400.0f64;
        for i in 0..10 {
            // E[x] = 0 and E[x²] = p/3 for U[−1,1] values at density p = 1/2.
            assert!(m[i].abs() < 5.0 * (0.5 / 3.0 / draws).sqrt());
            assert!((m2[i] - 0.5 / 3.0).abs() < 5.0 * (0.5 / 5.0 / draws).sqrt());
        }
    }

    #[test]
    fn mixed_densities_are_kept_per_group() {
        let mut densities = vec![0.05; 5];
        densities[2] = 0.005;
        let dist = FeatureDistribution::independent(&densities, ValueRange::Unit).unwrap();
        assert_eq!(dist.groups().len(), 3);
        let (d, _, _) = moments(&dist, 200, 1024);
        for (i, &p) in densities.iter().enumerate() {
            assert!(
                (d[i] - p).abs() < 5.0 * (p * (1.0 - p) / 204_800.0f64).sqrt(),
                "{i}: {} vs {p}",
                d[i]
            );
        }
    }

    #[test]
    fn invalid_distributions_are_rejected() {
        assert!(matches!(
            FeatureDistribution::uniform(3, 1.5, ValueRange::Unit),
            Err(DistributionError::Density { .. })
        ));
        let gap = FeatureDistribution::new(
            4,
            vec![FeatureGroup::Independent {
                features: 0..2,
                density: 0.1,
            }],
            ValueRange::Unit,
        );
        assert!(matches!(
            gap,
            Err(DistributionError::NotAPartition {
                feature: 2,
                problem: "uncovered",
                ..
            })
        ));
        let k_times_p = FeatureDistribution::new(
            3,
            vec![FeatureGroup::Anticorrelated {
                features: 0..3,
                density: 0.5,
                convention: AnticorrelatedConvention::FeatureDensity,
            }],
            ValueRange::Unit,
        );
        assert!(k_times_p.is_err(), "3 × 0.5 > 1 cannot be a probability");
    }
}
