//! Item × property data sets for deep linear networks (followups.md §F1, "Datasets").
//!
//! A data set is the target matrix Y (N₃×P): column μ holds item μ's properties, row m is property m
//! across items. Items are presented one-hot (x_μ = e_μ, N₁ = P), so Y is the whole training set and
//! its SVD Y = Σ_α s_α u_α v_αᵀ drives the learning dynamics. This module builds Y:
//!
//! - [`ItemPropertySet::four_items`]: the 4 items × 7 properties of Saxe et al.'s Fig. 3;
//! - [`ItemPropertySet::tree`]: a node-indicator hierarchy of any branching B and depth D;
//! - [`ItemPropertySet::branching_diffusion`]: the PNAS generative model, drawn from a stream;
//! - [`ItemPropertySet::from_property_rows`] / [`ItemPropertySet::from_item_rows`]: user data,
//!   validated (shape, finite values) with a typed [`ItemsError`].
//!
//! Reading files (CSV) belongs to the experiments crate; this module takes rows of f64.

use crate::linalg::Matrix;
use crate::rng::StreamRng;
use thiserror::Error;

/// Largest number of items (leaves) or properties a generated set may have: keeps a typo such as
/// B = 10, D = 9 from allocating gigabytes. The dense linear algebra is meant for a few hundred.
pub const MAX_GENERATED_SIZE: usize = 1 << 16;

/// Why an item × property set could not be built.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum ItemsError {
    /// No rows, or rows without entries.
    #[error("the item × property matrix is empty")]
    Empty,
    /// A row of a different length than the first.
    #[error("row {row} has {found} entries, but row 0 has {expected}")]
    Ragged {
        /// The offending row (0-based).
        row: usize,
        /// Length of row 0.
        expected: usize,
        /// Length of this row.
        found: usize,
    },
    /// A NaN or infinite entry.
    #[error("entry ({row}, {column}) is {value}, expected a finite number")]
    NonFinite {
        /// Row (0-based) in the rows as given.
        row: usize,
        /// Column (0-based) in the rows as given.
        column: usize,
        /// The value found.
        value: f64,
    },
    /// A name list of the wrong length.
    #[error("{what}: expected {expected} names, found {found}")]
    NameCount {
        /// "items" or "properties".
        what: &'static str,
        /// Number of items or properties.
        expected: usize,
        /// Number of names given.
        found: usize,
    },
    /// Branching below 2 or depth 0 for a generated hierarchy.
    #[error(
        "a hierarchy needs branching ≥ 2 and depth ≥ 1, got branching {branching}, depth {depth}"
    )]
    BadTree {
        /// B.
        branching: usize,
        /// D.
        depth: usize,
    },
    /// A generated hierarchy with too many leaves or nodes.
    #[error("branching {branching}, depth {depth} gives more than {MAX_GENERATED_SIZE} items or properties")]
    TooLarge {
        /// B.
        branching: usize,
        /// D.
        depth: usize,
    },
    /// A flip probability outside [0, 1].
    #[error("flip probability ε = {0} must lie in [0, 1]")]
    BadFlipProbability(f64),
    /// Zero features requested, or too many.
    #[error("number of features N_f = {0} must be between 1 and {MAX_GENERATED_SIZE}")]
    BadFeatureCount(usize),
}

/// A data set: the target matrix Y (N₃ properties × P items) with item and property names.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemPropertySet {
    /// Item names, P of them (columns of Y).
    pub items: Vec<String>,
    /// Property names, N₃ of them (rows of Y).
    pub properties: Vec<String>,
    /// Y: [N₃, P]; entry (m, μ) is property m of item μ.
    pub targets: Matrix,
}

impl ItemPropertySet {
    /// Number of items P (= N₁, the input width).
    pub fn n_items(&self) -> usize {
        self.targets.cols()
    }

    /// Number of properties N₃ (the output width).
    pub fn n_properties(&self) -> usize {
        self.targets.rows()
    }

    /// Saxe et al.'s 4 items (Canary, Salmon, Oak, Rose) × 7 properties (Grow, Move, Roots, Fly,
    /// Swim, Leaves, Petals). Singular values √7, √3, 1, 1.
    pub fn four_items() -> Self {
        let rows = [
            ("Grow", [1.0, 1.0, 1.0, 1.0]),
            ("Move", [1.0, 1.0, 0.0, 0.0]),
            ("Roots", [0.0, 0.0, 1.0, 1.0]),
            ("Fly", [1.0, 0.0, 0.0, 0.0]),
            ("Swim", [0.0, 1.0, 0.0, 0.0]),
            ("Leaves", [0.0, 0.0, 1.0, 0.0]),
            ("Petals", [0.0, 0.0, 0.0, 1.0]),
        ];
        Self {
            items: ["Canary", "Salmon", "Oak", "Rose"]
                .map(String::from)
                .to_vec(),
            properties: rows.iter().map(|(name, _)| name.to_string()).collect(),
            targets: Matrix::from_row_major(7, 4, rows.iter().flat_map(|(_, r)| *r).collect()),
        }
    }

    /// The node-indicator hierarchy: P = B^D leaves are the items; one property per tree node
    /// (Σ_{l=0..D} B^l of them, level by level from the root, left to right), 1 if the item lies
    /// under that node. Node (l, j) covers leaves j·B^{D−l} … (j+1)·B^{D−l} − 1.
    /// Items are named `leaf_i`, properties `node_l_j`.
    pub fn tree(branching: usize, depth: usize) -> Result<Self, ItemsError> {
        let leaves = tree_size(branching, depth)?;
        let mut properties = Vec::new();
        let mut data = Vec::new();
        for level in 0..=depth {
            let span = branching.pow((depth - level) as u32);
            for node in 0..branching.pow(level as u32) {
                properties.push(format!("node_{level}_{node}"));
                data.extend((0..leaves).map(|leaf| f64::from(u8::from(leaf / span == node))));
            }
        }
        Ok(Self {
            items: (0..leaves).map(|i| format!("leaf_{i}")).collect(),
            targets: Matrix::from_row_major(properties.len(), leaves, data),
            properties,
        })
    }

    /// The branching-diffusion model of Saxe et al. (PNAS 2019): each of `n_features` properties
    /// independently draws a root sign ±1 with equal probability; every child node copies its
    /// parent's sign, flipped with probability `epsilon`; the B^D leaves' signs are the items'
    /// values. E\[YᵀY\]/N_f has the eigenvalues of [`crate::theory::deep_linear::diffusion_spectrum`].
    /// Items are named `leaf_i`, properties `feature_f`. Draws 1 + Σ_{l=1..D} B^l uniforms per
    /// feature, in feature order, level by level.
    pub fn branching_diffusion(
        rng: &mut StreamRng,
        branching: usize,
        depth: usize,
        epsilon: f64,
        n_features: usize,
    ) -> Result<Self, ItemsError> {
        let leaves = tree_size(branching, depth)?;
        if !(0.0..=1.0).contains(&epsilon) {
            return Err(ItemsError::BadFlipProbability(epsilon));
        }
        if n_features == 0 || n_features > MAX_GENERATED_SIZE {
            return Err(ItemsError::BadFeatureCount(n_features));
        }
        let mut data = Vec::with_capacity(n_features * leaves);
        let mut level = Vec::with_capacity(leaves);
        let mut next = Vec::with_capacity(leaves);
        for _ in 0..n_features {
            level.clear();
            level.push(if rng.uniform_f64() < 0.5 { 1.0 } else { -1.0 });
            for _ in 0..depth {
                next.clear();
                for &parent in &level {
                    for _ in 0..branching {
                        let flip = rng.uniform_f64() < epsilon;
                        next.push(if flip { -parent } else { parent });
                    }
                }
                std::mem::swap(&mut level, &mut next);
            }
            data.extend_from_slice(&level);
        }
        Ok(Self {
            items: (0..leaves).map(|i| format!("leaf_{i}")).collect(),
            properties: (0..n_features).map(|f| format!("feature_{f}")).collect(),
            targets: Matrix::from_row_major(n_features, leaves, data),
        })
    }

    /// User data given as rows of Y: row m lists property m's value for every item. Names are
    /// optional (`item_i`, `property_m` otherwise).
    pub fn from_property_rows(
        rows: &[Vec<f64>],
        item_names: Option<Vec<String>>,
        property_names: Option<Vec<String>>,
    ) -> Result<Self, ItemsError> {
        let (n_rows, n_cols, data) = validate_rows(rows)?;
        Self::named(
            Matrix::from_row_major(n_rows, n_cols, data),
            item_names,
            property_names,
        )
    }

    /// User data given one row per item (the transpose of Y): row μ lists item μ's properties.
    pub fn from_item_rows(
        rows: &[Vec<f64>],
        item_names: Option<Vec<String>>,
        property_names: Option<Vec<String>>,
    ) -> Result<Self, ItemsError> {
        let (n_rows, n_cols, data) = validate_rows(rows)?;
        Self::named(
            Matrix::from_row_major(n_rows, n_cols, data).transpose(),
            item_names,
            property_names,
        )
    }

    fn named(
        targets: Matrix,
        item_names: Option<Vec<String>>,
        property_names: Option<Vec<String>>,
    ) -> Result<Self, ItemsError> {
        let items = names(item_names, "items", "item", targets.cols())?;
        let properties = names(property_names, "properties", "property", targets.rows())?;
        Ok(Self {
            items,
            properties,
            targets,
        })
    }
}

/// Number of leaves B^D of a valid, not too large hierarchy.
fn tree_size(branching: usize, depth: usize) -> Result<usize, ItemsError> {
    if branching < 2 || depth == 0 {
        return Err(ItemsError::BadTree { branching, depth });
    }
    // Nodes Σ_{l≤D} B^l < 2·B^D, so bounding 2·B^D bounds both items and properties.
    let too_large = ItemsError::TooLarge { branching, depth };
    let leaves = u32::try_from(depth)
        .ok()
        .and_then(|d| branching.checked_pow(d))
        .ok_or(too_large.clone())?;
    if leaves.saturating_mul(2) > MAX_GENERATED_SIZE {
        return Err(too_large);
    }
    Ok(leaves)
}

/// Checks rows are non-empty, rectangular and finite; returns (rows, columns, row-major data).
fn validate_rows(rows: &[Vec<f64>]) -> Result<(usize, usize, Vec<f64>), ItemsError> {
    let width = rows.first().map_or(0, Vec::len);
    if width == 0 {
        return Err(ItemsError::Empty);
    }
    let mut data = Vec::with_capacity(rows.len() * width);
    for (row, values) in rows.iter().enumerate() {
        if values.len() != width {
            return Err(ItemsError::Ragged {
                row,
                expected: width,
                found: values.len(),
            });
        }
        if let Some((column, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ItemsError::NonFinite { row, column, value });
        }
        data.extend_from_slice(values);
    }
    Ok((rows.len(), width, data))
}

fn names(
    given: Option<Vec<String>>,
    what: &'static str,
    prefix: &str,
    expected: usize,
) -> Result<Vec<String>, ItemsError> {
    match given {
        Some(n) if n.len() != expected => Err(ItemsError::NameCount {
            what,
            expected,
            found: n.len(),
        }),
        Some(n) => Ok(n),
        None => Ok((0..expected).map(|i| format!("{prefix}_{i}")).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::dot;

    #[test]
    fn four_items_matches_the_table() {
        let set = ItemPropertySet::four_items();
        assert_eq!((set.n_properties(), set.n_items()), (7, 4));
        // Fly: only the canary; Petals: only the rose.
        assert_eq!(set.targets.row(3), &[1.0, 0.0, 0.0, 0.0]);
        assert_eq!(set.targets.row(6), &[0.0, 0.0, 0.0, 1.0]);
        assert_eq!(set.items[2], "Oak");
        assert_eq!(set.properties[4], "Swim");
        // Column sums: the canary has Grow, Move, Fly.
        assert_eq!(set.targets.column(0).iter().sum::<f64>(), 3.0);
    }

    #[test]
    fn tree_indicates_ancestors() {
        let set = ItemPropertySet::tree(2, 3).unwrap();
        assert_eq!((set.n_properties(), set.n_items()), (15, 8));
        // Every leaf has exactly D + 1 = 4 ancestors (itself included).
        for item in 0..8 {
            assert_eq!(set.targets.column(item).iter().sum::<f64>(), 4.0);
        }
        // node_1_1 covers leaves 4..8.
        let row = set.properties.iter().position(|p| p == "node_1_1").unwrap();
        assert_eq!(set.targets.row(row), &[0., 0., 0., 0., 1., 1., 1., 1.]);
        assert_eq!(
            ItemPropertySet::tree(1, 3),
            Err(ItemsError::BadTree {
                branching: 1,
                depth: 3
            })
        );
        assert!(matches!(
            ItemPropertySet::tree(10, 9),
            Err(ItemsError::TooLarge { .. })
        ));
    }

    /// Monte-Carlo check of the diffusion model against the eigenstructure of §F1: the Rayleigh
    /// quotient vᵀ(YᵀY/N_f)v on the tree's Haar-like vectors estimates λ without bias.
    #[test]
    fn branching_diffusion_has_the_predicted_covariance_spectrum() {
        let n_f = 20_000;
        let mut rng = StreamRng::seed_from_u64(9);
        let set = ItemPropertySet::branching_diffusion(&mut rng, 2, 3, 0.15, n_f).unwrap();
        assert_eq!((set.n_properties(), set.n_items()), (n_f, 8));
        let gram = set
            .targets
            .transpose_matmul(&set.targets)
            .scale(1.0 / n_f as f64);
        // Eigenvectors for B = 2, D = 3 (unnormalised): the root's all-ones, and for each node a
        // +1/−1 split of its leaves between its two children. (vector, support size, λ of §F1.)
        let cases: [(Vec<f64>, f64, f64); 4] = [
            (vec![1.0; 8], 8.0, 2.4408),
            (vec![1., 1., 1., 1., -1., -1., -1., -1.], 8.0, 1.4996),
            (vec![0., 0., 0., 0., 1., 1., -1., -1.], 4.0, 1.0098),
            (vec![0., 0., 1., -1., 0., 0., 0., 0.], 2.0, 0.5100),
        ];
        for (v, support, lambda) in cases {
            let vn: Vec<f64> = v.iter().map(|x| x / support.sqrt()).collect();
            let estimate = dot(&vn, &gram.matvec(&vn));
            // Per feature, (vᵀy)² lies in [0, ‖v‖₁²] = [0, support] (y = ±1, v = ±1/√support on its
            // support), with mean λ; by the Bhatia–Davis inequality its variance is at most
            // λ(support − λ). Five standard errors of the mean of N_f draws, plus the 5e-5 rounding
            // of the spec's four decimals.
            let tolerance = 5.0 * (lambda * (support - lambda) / n_f as f64).sqrt() + 5e-5;
            assert!(
                (estimate - lambda).abs() < tolerance,
                "λ = {lambda}: estimate {estimate}, tolerance {tolerance}"
            );
        }
        // Off the eigenbasis nothing: two vectors of different modes are uncorrelated.
        // Per feature (aᵀy)(bᵀy) has mean 0 and |·| ≤ ‖a‖₁‖b‖₁ = √8·√2 = 4: five standard errors.
        let a = [0.5f64; 8].map(|x| x / 2f64.sqrt());
        let b = [0., 0., 1., -1., 0., 0., 0., 0.].map(|x: f64| x / 2f64.sqrt());
        assert!(dot(&a, &gram.matvec(&b)).abs() < 5.0 * 4.0 / (n_f as f64).sqrt());
    }

    #[test]
    fn diffusion_is_seeded_and_validates() {
        let draw = |seed| {
            ItemPropertySet::branching_diffusion(&mut StreamRng::seed_from_u64(seed), 3, 2, 0.1, 5)
                .unwrap()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        let rng = &mut StreamRng::seed_from_u64(0);
        assert_eq!(
            ItemPropertySet::branching_diffusion(rng, 2, 2, 1.5, 5),
            Err(ItemsError::BadFlipProbability(1.5))
        );
        assert_eq!(
            ItemPropertySet::branching_diffusion(rng, 2, 2, 0.1, 0),
            Err(ItemsError::BadFeatureCount(0))
        );
        // ε = 0: every feature is constant over the leaves.
        let set = ItemPropertySet::branching_diffusion(rng, 2, 2, 0.0, 10).unwrap();
        for m in 0..10 {
            let row = set.targets.row(m);
            assert!(row.iter().all(|&x| x == row[0]));
        }
    }

    #[test]
    fn user_rows_are_validated() {
        let ok = ItemPropertySet::from_item_rows(
            &[vec![1.0, 0.0, 2.0], vec![0.5, 1.0, 0.0]],
            Some(vec!["a".into(), "b".into()]),
            None,
        )
        .unwrap();
        // Two items (columns of Y), three properties (rows).
        assert_eq!((ok.n_properties(), ok.n_items()), (3, 2));
        assert_eq!(ok.targets.row(2), &[2.0, 0.0]);
        assert_eq!(ok.properties[1], "property_1");
        assert_eq!(
            ItemPropertySet::from_property_rows(&[vec![1.0, 2.0], vec![3.0]], None, None),
            Err(ItemsError::Ragged {
                row: 1,
                expected: 2,
                found: 1
            })
        );
        assert!(matches!(
            ItemPropertySet::from_property_rows(&[vec![1.0, f64::NAN]], None, None),
            Err(ItemsError::NonFinite {
                row: 0,
                column: 1,
                ..
            })
        ));
        assert_eq!(
            ItemPropertySet::from_property_rows(&[], None, None),
            Err(ItemsError::Empty)
        );
        assert_eq!(
            ItemPropertySet::from_property_rows(&[vec![1.0]], Some(vec![]), None),
            Err(ItemsError::NameCount {
                what: "items",
                expected: 1,
                found: 0
            })
        );
    }
}
