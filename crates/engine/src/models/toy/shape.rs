//! The toy models' math: kinds, parameter layout, initialisation, the forward/backward pair in
//! its naive form (generic over f32/f64: the twin of the fast kernels and what the gradient checks
//! differentiate) and the export to the paper's tensors. The fast f32 kernels that train with the
//! same equations are [`crate::kernels::toy`], which reads [`ToyShape`] from this file; the
//! training task that calls them is [`super::task`].
//!
//! Letters: B batch size, n features, m hidden dimensions.
//!
//! | model | hidden | output |
//! |---|---|---|
//! | linear | h = W x | x̂ = Wᵀh + b |
//! | ReLU output | h = W x | x̂ = ReLU(Wᵀh + b) |
//! | ReLU hidden | h = ReLU(W x) | x̂ = ReLU(Wᵀh + b) |
//! | absolute value | h = ReLU(W₁ x) | ŷ = ReLU(W₂ h + b) |
//!
//! Loss of one instance: L = 1/(B n) Σ_b Σ_i I_i (x̂_i − y_i)², y = x (y = |x| for the abs model).
//!
//! **Layout.** The paper's W is m×n with column W_i embedding feature i. Internally we store it
//! feature-major, as n rows of length m (row i = W_i), so that the sparse encoder h = Σ_{x_i≠0} x_i W_i
//! and the decoder dot products W_i·h both read contiguous memory. The exported tensor `W` is [m, n]
//! as the paper writes it. Flat parameter vector of one instance:
//! - tied models: `[W: n×m rows][b: n]`
//! - abs model: `[W₁: n×m rows (row i = column i of W₁)][W₂: n×m rows (row i = row i of W₂)][b: n]`
//!
//! Derivation of the backward pass, per example (dz_i is ∂L/∂z_i, z the output pre-activation):
//! - dz_i = 2 I_i (x̂_i − y_i) · 1\[z_i > 0 or linear\] / (B n)
//! - db_i = dz_i
//! - ∂L/∂(decoder row i) = dz_i h
//! - dh = Σ_i dz_i (decoder row i);  dpre = dh ⊙ 1\[pre > 0\] for a ReLU hidden layer
//! - ∂L/∂(encoder row i) = x_i dpre   (non-zero x_i only)
//!
//! For tied models encoder and decoder rows are the same W_i, so the two contributions add:
//! dL/dW_i = dz_i h + x_i dpre  (i.e. dL/dW = h dzᵀ + dpre xᵀ in the paper's m×n layout).

use crate::data::batch::SparseBatch;
use crate::models::{NamedTensor, Real};
use crate::rng::StreamRng;

/// Which toy model (experiments.md §2). No model has a hidden bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ToyKind {
    /// x̂ = WᵀW x + b.
    Linear,
    /// x̂ = ReLU(WᵀW x + b): the paper's main model.
    ReluOutput,
    /// x̂ = ReLU(Wᵀ ReLU(W x) + b): privileged basis.
    ReluHidden,
    /// ŷ = ReLU(W₂ ReLU(W₁ x) + b), target |x|: computation in superposition.
    AbsoluteValue,
}

impl ToyKind {
    /// All kinds, in documentation order.
    pub const ALL: [ToyKind; 4] = [
        ToyKind::Linear,
        ToyKind::ReluOutput,
        ToyKind::ReluHidden,
        ToyKind::AbsoluteValue,
    ];

    /// The name used in configs and outputs.
    pub fn name(self) -> &'static str {
        match self {
            ToyKind::Linear => "linear",
            ToyKind::ReluOutput => "relu-output",
            ToyKind::ReluHidden => "relu-hidden",
            ToyKind::AbsoluteValue => "abs",
        }
    }

    /// Parses a config name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the output passes through a ReLU.
    pub(crate) fn relu_output(self) -> bool {
        !matches!(self, ToyKind::Linear)
    }

    /// Whether the hidden layer passes through a ReLU.
    pub(crate) fn relu_hidden(self) -> bool {
        matches!(self, ToyKind::ReluHidden | ToyKind::AbsoluteValue)
    }

    /// Whether encoder and decoder are one matrix W.
    pub fn tied(self) -> bool {
        !matches!(self, ToyKind::AbsoluteValue)
    }
}

/// Shape of a toy model: its kind, n features and m hidden dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToyShape {
    /// The model.
    pub kind: ToyKind,
    /// Number of features n.
    pub n_features: usize,
    /// Number of hidden dimensions m.
    pub n_hidden: usize,
}

/// Scratch buffers of one forward/backward pass (all length m).
#[derive(Clone, Debug, Default)]
pub struct ToyScratch<T> {
    pre: Vec<T>,
    hidden: Vec<T>,
    dhidden: Vec<T>,
}

impl ToyShape {
    /// Number of parameters of one instance.
    pub fn parameter_count(&self) -> usize {
        let matrices = if self.kind.tied() { 1 } else { 2 };
        matrices * self.n_features * self.n_hidden + self.n_features
    }

    /// Offsets of (encoder rows, decoder rows, bias) in the flat parameter vector.
    pub(crate) fn offsets(&self) -> (usize, usize, usize) {
        let block = self.n_features * self.n_hidden;
        if self.kind.tied() {
            (0, 0, block)
        } else {
            (0, block, 2 * block)
        }
    }

    /// Xavier-normal initialisation of each matrix, std √(2/(n+m)); b = 0.
    pub fn initialise(&self, rng: &mut StreamRng, parameters: &mut [f32]) {
        let (_, _, bias) = self.offsets();
        let std = (2.0 / (self.n_features + self.n_hidden) as f64).sqrt();
        for p in &mut parameters[..bias] {
            *p = (std * rng.standard_normal()) as f32;
        }
        parameters[bias..].fill(0.0);
    }

    /// A scratch buffer sized for this shape.
    pub fn scratch<T: Real>(&self) -> ToyScratch<T> {
        let m = self.n_hidden;
        ToyScratch {
            pre: vec![T::zero(); m],
            hidden: vec![T::zero(); m],
            dhidden: vec![T::zero(); m],
        }
    }

    /// Loss of one batch and, when `gradient` is given, dL/dθ (overwritten): the naive reference
    /// twin of the fast training kernel [`crate::kernels::toy::loss_and_gradient`], one example at a
    /// time, generic over f32/f64 so that the gradient checks run it in f64.
    ///
    /// Shapes: parameters \[P\], importance \[n\], gradient \[P\]; see the module doc for the layout.
    /// Cost: O(B (nnz_per_example·m + n·m)), with the n·m backward terms skipped where dz_i = 0
    /// (ReLU outputs that are off and whose target is zero: most features at low density).
    // Inlined where it is called (as it was when the task lived in this file): the evaluation
    // loss passes no gradient, and the inlined copy drops the gradient's branches.
    #[inline]
    pub fn loss_and_gradient_reference<T: Real>(
        &self,
        parameters: &[T],
        batch: &SparseBatch,
        importance: &[T],
        mut gradient: Option<&mut [T]>,
        scratch: &mut ToyScratch<T>,
    ) -> T {
        let (n, m) = (self.n_features, self.n_hidden);
        let (enc, dec, bias_at) = self.offsets();
        let encoder = &parameters[enc..enc + n * m];
        let decoder = &parameters[dec..dec + n * m];
        let bias = &parameters[bias_at..bias_at + n];
        let batch_size = batch.batch_size();
        let scale = T::one() / T::from_usize(batch_size * n).unwrap();
        let two = T::from_f64(2.0).unwrap();
        let abs_target = self.kind == ToyKind::AbsoluteValue;
        if let Some(g) = gradient.as_deref_mut() {
            g.fill(T::zero());
        }
        let mut total = T::zero();
        let ToyScratch {
            pre,
            hidden,
            dhidden,
        } = scratch;
        for b in 0..batch_size {
            let (features, values) = batch.row(b);
            // Forward: pre = Σ_{x_i≠0} x_i E_i ; h = pre or ReLU(pre).
            pre.fill(T::zero());
            for (&i, &x) in features.iter().zip(values) {
                let row = &encoder[i as usize * m..(i as usize + 1) * m];
                let x = T::of(x);
                for (p, &w) in pre.iter_mut().zip(row) {
                    *p += x * w;
                }
            }
            for (h, &p) in hidden.iter_mut().zip(pre.iter()) {
                *h = if self.kind.relu_hidden() {
                    p.max(T::zero())
                } else {
                    p
                };
            }
            dhidden.fill(T::zero());
            // Output: z_i = D_i·h + b_i, x̂_i = act(z_i); features with a non-zero target are visited
            // in the same sweep through `cursor` (row features are sorted).
            let mut cursor = 0;
            for i in 0..n {
                let row = &decoder[i * m..(i + 1) * m];
                let z = dot(row, hidden) + bias[i];
                let target = if cursor < features.len() && features[cursor] as usize == i {
                    let x = T::of(values[cursor]);
                    cursor += 1;
                    if abs_target {
                        x.abs()
                    } else {
                        x
                    }
                } else {
                    T::zero()
                };
                let active = !self.kind.relu_output() || z > T::zero();
                let output = if active { z } else { T::zero() };
                let error = output - target;
                total += importance[i] * error * error;
                let Some(g) = gradient.as_deref_mut() else {
                    continue;
                };
                if !active || error == T::zero() {
                    continue;
                }
                // dz_i = 2 I_i (x̂_i − y_i) / (B n); db_i += dz_i; dD_i += dz_i h; dh += dz_i D_i.
                let dz = two * importance[i] * error * scale;
                g[bias_at + i] += dz;
                let grow = &mut g[dec + i * m..dec + (i + 1) * m];
                for ((gw, &h), (dh, &w)) in grow
                    .iter_mut()
                    .zip(hidden.iter())
                    .zip(dhidden.iter_mut().zip(row))
                {
                    *gw += dz * h;
                    *dh += dz * w;
                }
            }
            let Some(g) = gradient.as_deref_mut() else {
                continue;
            };
            // dpre = dh ⊙ 1[pre > 0] (ReLU hidden); dE_i += x_i dpre for the non-zero x_i.
            if self.kind.relu_hidden() {
                for (dh, &p) in dhidden.iter_mut().zip(pre.iter()) {
                    if p <= T::zero() {
                        *dh = T::zero();
                    }
                }
            }
            for (&i, &x) in features.iter().zip(values) {
                let x = T::of(x);
                let grow = &mut g[enc + i as usize * m..enc + (i as usize + 1) * m];
                for (gw, &dh) in grow.iter_mut().zip(dhidden.iter()) {
                    *gw += x * dh;
                }
            }
        }
        total * scale
    }

    /// Exports one instance's parameters as the output contract's tensors:
    /// `W` [m, n] and `b` \[n\] for tied models; `W1` [m, n], `W2` [n, m] and `b` \[n\] for the abs model.
    pub fn export(&self, parameters: &[f32]) -> Vec<NamedTensor> {
        let (n, m) = (self.n_features, self.n_hidden);
        let (enc, dec, bias_at) = self.offsets();
        // Feature-major rows → the paper's m×n layout: W[j][i] = row_i[j].
        let transpose = |rows: &[f32]| -> Vec<f32> {
            let mut out = vec![0.0; n * m];
            for i in 0..n {
                for j in 0..m {
                    out[j * n + i] = rows[i * m + j];
                }
            }
            out
        };
        let bias = NamedTensor {
            name: "b".into(),
            shape: vec![n],
            data: parameters[bias_at..bias_at + n].to_vec(),
        };
        if self.kind.tied() {
            vec![
                NamedTensor {
                    name: "W".into(),
                    shape: vec![m, n],
                    data: transpose(&parameters[enc..enc + n * m]),
                },
                bias,
            ]
        } else {
            vec![
                NamedTensor {
                    name: "W1".into(),
                    shape: vec![m, n],
                    data: transpose(&parameters[enc..enc + n * m]),
                },
                // W₂ is n×m with row i = decoder row i: already the stored layout.
                NamedTensor {
                    name: "W2".into(),
                    shape: vec![n, m],
                    data: parameters[dec..dec + n * m].to_vec(),
                },
                bias,
            ]
        }
    }

    /// The embedding rows W_i (feature-major n×m, f64) used by the geometry metrics: W for tied
    /// models, W₁'s columns for the abs model.
    pub fn embedding(&self, parameters: &[f32]) -> Vec<f64> {
        let (enc, _, _) = self.offsets();
        parameters[enc..enc + self.n_features * self.n_hidden]
            .iter()
            .map(|&w| w as f64)
            .collect()
    }

    /// The bias b (f64).
    pub fn bias(&self, parameters: &[f32]) -> Vec<f64> {
        let (_, _, bias_at) = self.offsets();
        parameters[bias_at..bias_at + self.n_features]
            .iter()
            .map(|&w| w as f64)
            .collect()
    }
}

#[inline]
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    a.iter().zip(b).fold(T::zero(), |s, (&x, &y)| s + x * y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::sparse::{FeatureDistribution, ValueRange};
    use crate::models::{finite_difference_gradient, relative_gradient_error};

    /// The smallest |pre-activation| that a ReLU of the model sees on `batch` (hidden ReLUs on
    /// examples with a non-zero, output ReLUs everywhere), in f64.
    fn kink_distance(shape: &ToyShape, params: &[f64], batch: &SparseBatch) -> f64 {
        let (n, m) = (shape.n_features, shape.n_hidden);
        let (encoder_at, decoder_at, bias_at) = shape.offsets();
        let mut closest = f64::INFINITY;
        for b in 0..batch.batch_size() {
            let x = batch.dense_row(b, n);
            let mut h = vec![0.0f64; m];
            for (k, hk) in h.iter_mut().enumerate() {
                *hk = (0..n)
                    .map(|j| x[j] as f64 * params[encoder_at + j * m + k])
                    .sum();
            }
            if shape.kind.relu_hidden() {
                if x.iter().any(|&v| v != 0.0) {
                    closest = h.iter().fold(closest, |c, v| c.min(v.abs()));
                }
                h.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            if shape.kind.relu_output() {
                for i in 0..n {
                    let z: f64 = (0..m)
                        .map(|k| params[decoder_at + i * m + k] * h[k])
                        .sum::<f64>()
                        + params[bias_at + i];
                    closest = closest.min(z.abs());
                }
            }
        }
        closest
    }

    #[test]
    fn gradients_match_finite_differences_in_f64() {
        for kind in ToyKind::ALL {
            let shape = ToyShape {
                kind,
                n_features: 7,
                n_hidden: 3,
            };
            let values = if kind == ToyKind::AbsoluteValue {
                ValueRange::Signed
            } else {
                ValueRange::Unit
            };
            // Central differences are only exact to O(h²) away from the ReLU kinks: draw instances
            // (seeds 11, 12, …) until every pre-activation that a ReLU sees is farther from 0 than
            // 100 times the largest change a step h = 1e-6 can make to it (h·(Σ|x| + m) < 1e-5).
            let (batch, params) = (11u64..)
                .map(|seed| {
                    let mut rng = StreamRng::seed_from_u64(seed);
                    let batch = FeatureDistribution::uniform(7, 0.4, values)
                        .unwrap()
                        .sample(&mut rng, 16);
                    let mut p32 = vec![0.0f32; shape.parameter_count()];
                    shape.initialise(&mut rng, &mut p32);
                    // A non-zero bias, half negative, so that ReLU outputs are both on and off.
                    let bias_at = shape.parameter_count() - 7;
                    for (k, b) in p32[bias_at..].iter_mut().enumerate() {
                        *b = 0.1 * (k as f32 - 3.0);
                    }
                    let params: Vec<f64> = p32.iter().map(|&v| v as f64).collect();
                    (batch, params)
                })
                .find(|(batch, params)| kink_distance(&shape, params, batch) > 1e-3)
                .unwrap();
            let importance: Vec<f64> = (0..7).map(|i| 0.9f64.powi(i)).collect();
            let mut scratch = shape.scratch::<f64>();
            let mut analytic = vec![0.0; params.len()];
            shape.loss_and_gradient_reference(
                &params,
                &batch,
                &importance,
                Some(&mut analytic),
                &mut scratch,
            );
            let numeric = finite_difference_gradient(&params, 1e-6, |p| {
                shape.loss_and_gradient_reference(
                    p,
                    &batch,
                    &importance,
                    None,
                    &mut shape.scratch::<f64>(),
                )
            });
            let err = relative_gradient_error(&analytic, &numeric);
            assert!(err < 1e-6, "{kind:?}: relative gradient error {err}");
            assert!(analytic.iter().any(|&g| g != 0.0));
        }
    }

    #[test]
    fn loss_matches_dense_reference() {
        // Naive twin: dense x, explicit m×n W, the formula of the table above.
        let shape = ToyShape {
            kind: ToyKind::ReluOutput,
            n_features: 5,
            n_hidden: 2,
        };
        let mut rng = StreamRng::seed_from_u64(3);
        let batch = FeatureDistribution::uniform(5, 0.5, ValueRange::Unit)
            .unwrap()
            .sample(&mut rng, 32);
        let mut params = vec![0.0f32; shape.parameter_count()];
        shape.initialise(&mut rng, &mut params);
        params[10..].copy_from_slice(&[0.1, -0.2, 0.0, 0.05, -0.1]);
        let importance = vec![1.0f32, 0.9, 0.81, 0.729, 0.6561];
        let tensors = shape.export(&params);
        let (w, b) = (&tensors[0].data, &tensors[1].data);
        let mut expected = 0.0f64;
        for r in 0..32 {
            let x = batch.dense_row(r, 5);
            let h: Vec<f64> = (0..2)
                .map(|j| (0..5).map(|i| w[j * 5 + i] as f64 * x[i] as f64).sum())
                .collect();
            for i in 0..5 {
                let z: f64 = (0..2).map(|j| w[j * 5 + i] as f64 * h[j]).sum::<f64>() + b[i] as f64;
                expected += importance[i] as f64 * (z.max(0.0) - x[i] as f64).powi(2);
            }
        }
        expected /= 32.0 * 5.0;
        let got = shape.loss_and_gradient_reference(
            &params,
            &batch,
            &importance,
            None,
            &mut shape.scratch::<f32>(),
        );
        assert!(
            (got as f64 - expected).abs() < 1e-6 * expected.max(1e-3),
            "{got} vs {expected}"
        );
    }

    #[test]
    fn xavier_std() {
        let shape = ToyShape {
            kind: ToyKind::Linear,
            n_features: 400,
            n_hidden: 30,
        };
        let mut p = vec![0.0f32; shape.parameter_count()];
        shape.initialise(&mut StreamRng::seed_from_u64(1), &mut p);
        let w = &p[..12_000];
        let var = w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / w.len() as f64;
        let expected = 2.0 / 430.0;
        // The sample variance of 12 000 normals has relative standard error sqrt(2/12000) ≈ 1.3%.
        assert!(
            (var / expected - 1.0).abs() < 5.0 * (2.0f64 / 12_000.0).sqrt(),
            "var {var} vs {expected}"
        );
        assert!(p[12_000..].iter().all(|&b| b == 0.0));
    }
}
