//! The batches the samplers write and the toy kernels read: the kernels' input interface.
//!
//! - [`SparseBatch`]: compressed rows (the non-zeros of example b are
//!   `feature[row_start[b]..row_start[b+1]]` with their `value`s, in increasing feature order),
//!   plus each non-zero's row (the coordinate form, for passes that run over the non-zeros flat).
//! - [`DenseBatch`]: a dense, feature-major [n, S] matrix, drawn at density ≥ 1/16 and read in
//!   place by the small-m kernel.
//!
//! What fills them (the law of the features, the trials, the vectorised passes) is
//! [`super::sparse`]'s; this file owns only the layouts and the conversions between them. The
//! sampler's scratch buffers ride along in each batch (`pub(super)`), so that a reused batch
//! allocates nothing.

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
    /// Scratch of the sampler's tested trials: success masks and values, position tables.
    pub(super) scratch_masks: Vec<u16>,
    pub(super) scratch_values: Vec<f32>,
    pub(super) scratch_rows: Vec<u32>,
    pub(super) scratch_columns: Vec<u32>,
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

    /// Empties the batch and sizes it for `batch_size` examples (the sampler fills it).
    pub(super) fn clear(&mut self, batch_size: usize) {
        self.row_start.clear();
        self.row_start.resize(batch_size + 1, 0);
        self.feature.clear();
        self.value.clear();
        self.row.clear();
    }

    /// Appends one non-zero; [`Self::finish`] turns the appended triples into compressed rows.
    #[inline]
    pub(super) fn push_unsorted(&mut self, row: usize, feature: usize, value: f32) {
        self.row.push(row as u32);
        self.feature.push(feature as u32);
        self.value.push(value);
    }

    /// Turns pushed (row, feature, value) triples into compressed rows. `already_sorted` when they were
    /// pushed in row order (a single group); otherwise a stable counting sort by row, which keeps the
    /// groups' increasing feature order within a row.
    pub(super) fn finish(&mut self, already_sorted: bool) {
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
/// [`FeatureDistribution::sample_dense_into`](super::sparse::FeatureDistribution::sample_dense_into): x_j of example b is `x[j · stride + b]`, where the
/// stride S is B rounded up to a multiple of 16 (and 16 more when that is a multiple of 64, so
/// that rows do not alias in the L1 cache); entries at examples B..S are zero. Kernels read a
/// tile of consecutive examples of every feature as rows of one matrix, with no scatter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DenseBatch {
    /// The inputs x [n, S].
    pub x: Vec<f32>,
    /// B, n and S, set by the sampler.
    pub(super) batch_size: usize,
    pub(super) n_features: usize,
    pub(super) stride: usize,
    /// Scratch of the sampler's tested trials: success masks and values.
    pub(super) scratch_masks: Vec<u16>,
    pub(super) scratch_values: Vec<f32>,
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
