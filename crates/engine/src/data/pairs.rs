//! Data of the attention-head family (followups.md §F2): planted concept matrices, Gaussian
//! query/key pairs, and the relational-graph task of A4.
//!
//! What is fixed for an instance (the concepts u_k, v_k; the graph and its vertex embeddings) is drawn
//! once from the instance's [`StreamPurpose::Dataset`] stream, which ignores the replica: every replica
//! of an instance learns the same concepts, so best-of-N compares like with like. What changes every
//! step (queries, keys, contexts) is drawn from whatever stream the caller passes, normally the
//! training stream. Nothing here knows about models or losses.
//!
//! Letters (as in [`crate::models::attention`]): d embedding dimension, r planted concepts,
//! n keys per context, n_v vertices, m′ edges (relations) of the graph.

use crate::linalg;
use crate::rng::{InstanceKey, StreamPurpose, StreamRng};
use std::collections::HashSet;

/// Why a data setting cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PairsError {
    /// More planted concepts than dimensions: {u_k} cannot be orthonormal.
    #[error("{concepts} planted concepts do not fit orthonormally in d = {d} dimensions")]
    TooManyConcepts {
        /// r requested.
        concepts: usize,
        /// d.
        d: usize,
    },
    /// More edges than ordered pairs of distinct vertices.
    #[error("{edges} edges requested, but {vertices} vertices have only {max} ordered pairs")]
    TooManyEdges {
        /// m′ requested.
        edges: usize,
        /// n_v.
        vertices: usize,
        /// n_v (n_v − 1).
        max: usize,
    },
    /// Some query vertex has too many neighbours to fill a context with n − 1 non-neighbours.
    #[error(
        "a context of {keys} keys needs {keys} − 1 distractors, but vertex {vertex} has only \
         {available} non-neighbours"
    )]
    ContextTooLarge {
        /// n requested.
        keys: usize,
        /// The vertex with the fewest non-neighbours.
        vertex: usize,
        /// Its number of possible distractors.
        available: usize,
    },
    /// A frequency law with a parameter out of range.
    #[error("relation frequency parameter {0} out of range")]
    Frequency(f64),
}

/// A planted concept matrix M = Σ_k s_k u_k v_kᵀ with orthonormal {u_k} and orthonormal {v_k}.
#[derive(Clone, Debug, PartialEq)]
pub struct PlantedConcepts {
    /// Embedding dimension d.
    pub d: usize,
    /// Strengths s_k, \[r\] (the singular values of M when non-negative and distinct).
    pub strengths: Vec<f64>,
    /// Query-side concepts u_k as rows, [r, d].
    pub left: Vec<f64>,
    /// Key-side concepts v_k as rows, [r, d].
    pub right: Vec<f64>,
}

impl PlantedConcepts {
    /// Draws random orthonormal {u_k} and {v_k} (Haar, via [`linalg::random_orthonormal`]) from `rng`.
    pub fn draw(d: usize, strengths: &[f64], rng: &mut StreamRng) -> Result<Self, PairsError> {
        let r = strengths.len();
        if r > d {
            return Err(PairsError::TooManyConcepts { concepts: r, d });
        }
        // Columns of a d×r orthonormal matrix are the concepts; store them as rows.
        let columns_to_rows = |q: &linalg::Matrix| -> Vec<f64> {
            let mut rows = vec![0.0; r * d];
            for k in 0..r {
                for a in 0..d {
                    rows[k * d + a] = q[(a, k)];
                }
            }
            rows
        };
        let u = linalg::random_orthonormal(rng, d, r);
        let v = linalg::random_orthonormal(rng, d, r);
        Ok(Self {
            d,
            strengths: strengths.to_vec(),
            left: columns_to_rows(&u),
            right: columns_to_rows(&v),
        })
    }

    /// The concepts of one instance, drawn from its dataset stream (the same for every replica).
    pub fn for_instance(
        d: usize,
        strengths: &[f64],
        key: &InstanceKey,
    ) -> Result<Self, PairsError> {
        Self::draw(d, strengths, &mut key.stream(StreamPurpose::Dataset))
    }

    /// Number of concepts r.
    pub fn rank(&self) -> usize {
        self.strengths.len()
    }

    /// u_k, \[d\].
    pub fn u(&self, k: usize) -> &[f64] {
        &self.left[k * self.d..(k + 1) * self.d]
    }

    /// v_k, \[d\].
    pub fn v(&self, k: usize) -> &[f64] {
        &self.right[k * self.d..(k + 1) * self.d]
    }

    /// M = Σ_k s_k u_k v_kᵀ, row-major [d, d] (row index on the query side: t = xᵀ M y).
    pub fn matrix(&self) -> Vec<f64> {
        let d = self.d;
        let mut m = vec![0.0; d * d];
        for (k, &s) in self.strengths.iter().enumerate() {
            let (u, v) = (self.u(k), self.v(k));
            for a in 0..d {
                for b in 0..d {
                    m[a * d + b] += s * u[a] * v[b];
                }
            }
        }
        m
    }
}

/// Fills `out` with `count` independent N(0, I_d) vectors, row-major [count, d].
pub fn gaussian_vectors(rng: &mut StreamRng, count: usize, d: usize, out: &mut Vec<f32>) {
    out.clear();
    out.extend((0..count * d).map(|_| rng.standard_normal() as f32));
}

/// How often each relation (edge) of the graph is asked about: TMS-style importance, with edge 0 the
/// most frequent. Frequencies are normalised to sum to one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RelationFrequency {
    /// Every edge equally often.
    Uniform,
    /// f_e ∝ (e + 1)^(−exponent), exponent ≥ 0.
    Zipf {
        /// The power-law exponent.
        exponent: f64,
    },
    /// f_e ∝ ratio^e, 0 < ratio ≤ 1 (the toy models' importance decay).
    Geometric {
        /// Ratio of consecutive frequencies.
        ratio: f64,
    },
}

impl RelationFrequency {
    /// Normalised frequencies of `edges` relations.
    pub fn frequencies(&self, edges: usize) -> Result<Vec<f64>, PairsError> {
        let raw: Vec<f64> = match *self {
            RelationFrequency::Uniform => vec![1.0; edges],
            RelationFrequency::Zipf { exponent } => {
                if !(exponent >= 0.0 && exponent.is_finite()) {
                    return Err(PairsError::Frequency(exponent));
                }
                (0..edges)
                    .map(|e| (e as f64 + 1.0).powf(-exponent))
                    .collect()
            }
            RelationFrequency::Geometric { ratio } => {
                if !(ratio > 0.0 && ratio <= 1.0) {
                    return Err(PairsError::Frequency(ratio));
                }
                (0..edges).map(|e| ratio.powi(e as i32)).collect()
            }
        };
        let total: f64 = raw.iter().sum();
        Ok(raw.into_iter().map(|f| f / total).collect())
    }
}

/// Settings of a relational graph (A4).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GraphSpec {
    /// Number of vertices (tokens) n_v; n_v ≫ d puts the embeddings in superposition.
    pub vertices: usize,
    /// Embedding dimension d.
    pub d: usize,
    /// Number of directed edges (relations) m′.
    pub edges: usize,
    /// How often each relation is asked about.
    pub frequency: RelationFrequency,
}

/// A planted random directed graph over vertices with fixed random unit embeddings (A4,
/// Adler 2025 "relational graph recognition").
#[derive(Clone, Debug, PartialEq)]
pub struct RelationalGraph {
    /// The settings it was drawn with.
    pub spec: GraphSpec,
    /// Unit embeddings e_i as rows, [n_v, d] (Gaussian directions, normalised).
    pub embeddings: Vec<f32>,
    /// Edges (query vertex a, neighbour b), a ≠ b, all distinct, \[m′\].
    pub edges: Vec<(u32, u32)>,
    /// Frequency of each edge, summing to one, \[m′\].
    pub frequencies: Vec<f64>,
    /// Running sums of `frequencies` (for sampling by binary search), \[m′\].
    cumulative: Vec<f64>,
    /// Out-neighbours of each vertex, sorted, \[n_v\].
    neighbours: Vec<Vec<u32>>,
}

/// One A4 example: a query vertex and a context of n keys holding exactly one of its neighbours.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphContext {
    /// The edge asked about (its index in [`RelationalGraph::edges`]).
    pub edge: usize,
    /// The query vertex a.
    pub query: u32,
    /// The n key vertices: the neighbour b at `target`, n − 1 distinct non-neighbours of a elsewhere.
    pub keys: Vec<u32>,
    /// Position of the neighbour among the keys.
    pub target: usize,
}

impl RelationalGraph {
    /// Draws embeddings, then m′ distinct edges uniformly among ordered pairs of distinct vertices.
    pub fn draw(spec: GraphSpec, rng: &mut StreamRng) -> Result<Self, PairsError> {
        let (nv, d) = (spec.vertices, spec.d);
        let max = nv * nv.saturating_sub(1);
        if spec.edges > max {
            return Err(PairsError::TooManyEdges {
                edges: spec.edges,
                vertices: nv,
                max,
            });
        }
        let frequencies = spec.frequency.frequencies(spec.edges)?;
        let mut embeddings = Vec::with_capacity(nv * d);
        for _ in 0..nv {
            let row: Vec<f64> = (0..d).map(|_| rng.standard_normal()).collect();
            let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
            embeddings.extend(row.iter().map(|&x| (x / norm) as f32));
        }
        let edges = if 2 * spec.edges <= max {
            // Sparse: rejection keeps the expected cost below 2 draws per edge.
            let mut seen = HashSet::with_capacity(spec.edges);
            let mut edges = Vec::with_capacity(spec.edges);
            while edges.len() < spec.edges {
                let a = rng.below(nv as u32);
                let b = rng.below(nv as u32);
                if a != b && seen.insert((a, b)) {
                    edges.push((a, b));
                }
            }
            edges
        } else {
            // Dense: a partial Fisher–Yates shuffle of all ordered pairs.
            let mut all: Vec<(u32, u32)> = (0..nv as u32)
                .flat_map(|a| (0..nv as u32).filter(move |&b| b != a).map(move |b| (a, b)))
                .collect();
            for e in 0..spec.edges {
                let j = e + rng.below((all.len() - e) as u32) as usize;
                all.swap(e, j);
            }
            all.truncate(spec.edges);
            all
        };
        let mut neighbours = vec![Vec::new(); nv];
        for &(a, b) in &edges {
            neighbours[a as usize].push(b);
        }
        for list in &mut neighbours {
            list.sort_unstable();
        }
        let mut total = 0.0;
        let cumulative = frequencies
            .iter()
            .map(|f| {
                total += f;
                total
            })
            .collect();
        Ok(Self {
            spec,
            embeddings,
            edges,
            frequencies,
            cumulative,
            neighbours,
        })
    }

    /// The graph of one instance, drawn from its dataset stream (the same for every replica).
    pub fn for_instance(spec: GraphSpec, key: &InstanceKey) -> Result<Self, PairsError> {
        Self::draw(spec, &mut key.stream(StreamPurpose::Dataset))
    }

    /// Embedding e_i, \[d\].
    pub fn embedding(&self, vertex: u32) -> &[f32] {
        let d = self.spec.d;
        &self.embeddings[vertex as usize * d..(vertex as usize + 1) * d]
    }

    /// Out-neighbours of `vertex`, sorted.
    pub fn neighbours(&self, vertex: u32) -> &[u32] {
        &self.neighbours[vertex as usize]
    }

    /// Checks that every query vertex (a vertex with an out-edge) can be given `keys` − 1 distinct
    /// distractors: vertices other than itself and its neighbours.
    pub fn check_context_size(&self, keys: usize) -> Result<(), PairsError> {
        let nv = self.spec.vertices;
        for (vertex, list) in self.neighbours.iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let available = nv - 1 - list.len();
            if available + 1 < keys {
                return Err(PairsError::ContextTooLarge {
                    keys,
                    vertex,
                    available,
                });
            }
        }
        Ok(())
    }

    /// An edge drawn with probability f_e.
    pub fn sample_edge(&self, rng: &mut StreamRng) -> usize {
        let u = rng.uniform_f64();
        self.cumulative
            .partition_point(|&c| c <= u)
            .min(self.edges.len() - 1)
    }

    /// Fills `out` with a context for edge `edge`: the neighbour at a uniform position, distractors
    /// uniform among the non-neighbours of the query (and not the query itself), all distinct.
    /// The caller must have passed [`RelationalGraph::check_context_size`] for `keys`; the distractors
    /// are drawn by rejection, cheap while n + deg(a) ≪ n_v.
    pub fn context_for_edge(
        &self,
        rng: &mut StreamRng,
        edge: usize,
        keys: usize,
        out: &mut GraphContext,
    ) {
        let (a, b) = self.edges[edge];
        let nv = self.spec.vertices as u32;
        let list = self.neighbours(a);
        out.edge = edge;
        out.query = a;
        out.keys.clear();
        out.target = rng.below(keys as u32) as usize;
        while out.keys.len() + 1 < keys {
            let c = rng.below(nv);
            if c != a && list.binary_search(&c).is_err() && !out.keys.contains(&c) {
                out.keys.push(c);
            }
        }
        out.keys.insert(out.target, b);
    }

    /// A training example: an edge by frequency, then a context for it.
    pub fn sample_context(&self, rng: &mut StreamRng, keys: usize, out: &mut GraphContext) {
        let edge = self.sample_edge(rng);
        self.context_for_edge(rng, edge, keys, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_matrix_has_the_strengths_as_singular_values() {
        let c =
            PlantedConcepts::draw(6, &[3.0, 2.0, 1.0], &mut StreamRng::seed_from_u64(1)).unwrap();
        let m = c.matrix();
        // Orthonormality of each side and u_kᵀ M v_l = s_k δ_kl, exact up to rounding (~1e-15).
        for k in 0..3 {
            for l in 0..3 {
                let uu: f64 = c.u(k).iter().zip(c.u(l)).map(|(a, b)| a * b).sum();
                let vv: f64 = c.v(k).iter().zip(c.v(l)).map(|(a, b)| a * b).sum();
                let delta = if k == l { 1.0 } else { 0.0 };
                assert!((uu - delta).abs() < 1e-12 && (vv - delta).abs() < 1e-12);
                let mut umv = 0.0;
                for a in 0..6 {
                    for b in 0..6 {
                        umv += c.u(k)[a] * m[a * 6 + b] * c.v(l)[b];
                    }
                }
                assert!((umv - c.strengths[k] * delta).abs() < 1e-12);
            }
        }
        assert!(matches!(
            PlantedConcepts::draw(2, &[1.0; 3], &mut StreamRng::seed_from_u64(1)),
            Err(PairsError::TooManyConcepts { .. })
        ));
    }

    #[test]
    fn concepts_are_shared_by_replicas_and_differ_across_instances() {
        let key = InstanceKey {
            seed: 5,
            instance: 2,
            replica: 0,
        };
        let a = PlantedConcepts::for_instance(5, &[2.0, 1.0], &key).unwrap();
        let b = PlantedConcepts::for_instance(5, &[2.0, 1.0], &InstanceKey { replica: 3, ..key })
            .unwrap();
        let c = PlantedConcepts::for_instance(5, &[2.0, 1.0], &InstanceKey { instance: 3, ..key })
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn frequencies_are_normalised_and_decreasing() {
        for law in [
            RelationFrequency::Uniform,
            RelationFrequency::Zipf { exponent: 1.1 },
            RelationFrequency::Geometric { ratio: 0.9 },
        ] {
            let f = law.frequencies(50).unwrap();
            assert!((f.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(f.windows(2).all(|w| w[0] >= w[1]));
        }
        let g = RelationFrequency::Geometric { ratio: 0.5 }
            .frequencies(2)
            .unwrap();
        assert!((g[0] - 2.0 / 3.0).abs() < 1e-15);
        assert!(RelationFrequency::Zipf { exponent: -1.0 }
            .frequencies(3)
            .is_err());
    }

    #[test]
    fn graph_edges_are_distinct_and_contexts_hold_exactly_one_neighbour() {
        for edges in [40, 70] {
            // 40 of 9·8 = 72 pairs takes the sparse path, 70 the dense one.
            let spec = GraphSpec {
                vertices: 9,
                d: 4,
                edges,
                frequency: RelationFrequency::Uniform,
            };
            let g = RelationalGraph::draw(spec, &mut StreamRng::seed_from_u64(2)).unwrap();
            let set: HashSet<_> = g.edges.iter().collect();
            assert_eq!(set.len(), edges);
            assert!(g.edges.iter().all(|&(a, b)| a != b && a < 9 && b < 9));
            for i in 0..9 {
                let e = g.embedding(i);
                let norm: f32 = e.iter().map(|x| x * x).sum();
                assert!((norm - 1.0).abs() < 1e-6);
            }
            if edges == 70 {
                assert!(g.check_context_size(3).is_err());
                continue;
            }
            let keys = 2;
            g.check_context_size(keys).unwrap();
            let mut rng = StreamRng::seed_from_u64(3);
            let mut ctx = GraphContext::default();
            for _ in 0..200 {
                g.sample_context(&mut rng, keys, &mut ctx);
                assert_eq!(ctx.keys.len(), keys);
                let (a, b) = g.edges[ctx.edge];
                assert_eq!((ctx.query, ctx.keys[ctx.target]), (a, b));
                let hits = ctx
                    .keys
                    .iter()
                    .filter(|k| g.neighbours(a).contains(k))
                    .count();
                assert_eq!(hits, 1);
                assert!(!ctx.keys.contains(&a));
                let distinct: HashSet<_> = ctx.keys.iter().collect();
                assert_eq!(distinct.len(), keys);
            }
        }
        let too_many = GraphSpec {
            vertices: 3,
            d: 2,
            edges: 7,
            frequency: RelationFrequency::Uniform,
        };
        assert!(RelationalGraph::draw(too_many, &mut StreamRng::seed_from_u64(0)).is_err());
    }

    #[test]
    fn edges_are_sampled_by_frequency() {
        let spec = GraphSpec {
            vertices: 30,
            d: 3,
            edges: 4,
            frequency: RelationFrequency::Geometric { ratio: 0.5 },
        };
        let g = RelationalGraph::draw(spec, &mut StreamRng::seed_from_u64(4)).unwrap();
        let mut counts = [0usize; 4];
        let mut rng = StreamRng::seed_from_u64(5);
        let n = 100_000;
        for _ in 0..n {
            counts[g.sample_edge(&mut rng)] += 1;
        }
        // f = (8, 4, 2, 1)/15; a binomial proportion's standard error is ≤ 0.5/√n ≈ 1.6e-3, so 5 σ
        // is 8e-3.
        for (c, f) in counts.iter().zip(&g.frequencies) {
            assert!((*c as f64 / n as f64 - f).abs() < 8e-3, "{counts:?}");
        }
    }
}
