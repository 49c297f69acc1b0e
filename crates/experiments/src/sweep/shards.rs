//! Shards: the K-th of N deterministic parts of a sweep, as units of work (whole cells, or pieces
//! of cells when there are fewer cells than shards).

use super::{Cell, Sweep, SweepError};
use std::fmt;
use std::ops::Range;

/// The K-th of N parts of a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// K, from 0.
    pub index: usize,
    /// N ≥ 1.
    pub count: usize,
}

impl Shard {
    /// The whole sweep.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `K/N`.
    pub fn parse(text: &str) -> Result<Shard, SweepError> {
        let bad = || SweepError::BadShard(text.to_string());
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A piece of work: instances `instances` of cell `cell` (all of its instances, unless a sweep has
/// fewer cells than shards).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Index of the cell in the sweep.
    pub cell: usize,
    /// Instance indices of the piece.
    pub instances: Range<usize>,
}

/// The units of shard `shard`. With at least as many cells as shards, cell i goes to shard i mod N,
/// whole. With fewer, the (cell, instance) pairs of the whole sweep are cut into N contiguous,
/// near-equal runs, so that every shard has work; a cell cut in pieces is assembled from its parts.
/// Either way every instance belongs to exactly one shard.
pub fn units(sweep: &Sweep, shard: Shard) -> Vec<Unit> {
    let cells = &sweep.cells;
    if shard.count <= cells.len() {
        return (shard.index..cells.len())
            .step_by(shard.count)
            .map(|c| Unit {
                cell: c,
                instances: 0..cells[c].instance_count(),
            })
            .collect();
    }
    let total: usize = cells.iter().map(Cell::instance_count).sum();
    let from = shard.index * total / shard.count;
    let to = (shard.index + 1) * total / shard.count;
    let mut out = Vec::new();
    let mut offset = 0;
    for (c, cell) in cells.iter().enumerate() {
        let k = cell.instance_count();
        let (a, b) = (from.max(offset), to.min(offset + k));
        if a < b {
            out.push(Unit {
                cell: c,
                instances: a - offset..b - offset,
            });
        }
        offset += k;
    }
    out
}
