//! Deep linear networks (Saxe, McClelland & Ganguli 2019; followups.md §F1): forward and backward
//! passes, and the [`DeepLinearTask`] the shared trainer runs.
//!
//! Why a family of its own: a linear chain computes only a linear map, yet its *learning dynamics*
//! are nonlinear — plateaus, stage-like transitions ordered by singular value, progressive
//! differentiation of hidden representations — and solvable in closed form
//! ([`crate::theory::deep_linear`]). The simulations here are what those closed forms are checked
//! against.
//!
//! Letters (§F1): P items (one-hot inputs, N₁ = P), N₃ properties (outputs), N₂ hidden units;
//! for deeper chains the widths are N₁, N₂, …, N_{L+1} and L is the depth (number of weight
//! matrices). Depth 1 is the shallow control ŷ = W x.
//!
//! - Model: ŷ = W^L ⋯ W² W¹ x, W^l: [N_{l+1}, N_l], no biases.
//! - Loss (sum convention, full batch over the P one-hot items, so X = I and Σˣˣ = I):
//!   L = ½ Σ_μ ‖y_μ − W^L⋯W¹ e_μ‖² = ½ ‖Y − W^L⋯W¹‖²_F, Y: [N₃, P].
//! - Backward, with E = ŷ − Y = W^L⋯W¹ − Y ([N₃, P]):
//!   dL/dW^l = (W^L⋯W^{l+1})ᵀ · E · (W^{l−1}⋯W¹)ᵀ.
//!   Computed right to left: G_L = E; dW^l = G_l · P_{l−1}ᵀ with the prefix products
//!   P_l = W^l⋯W¹ ([N_{l+1}, P], P_0 = I); then G_{l−1} = W^lᵀ G_l.
//!
//! **Layout.** The flat parameter vector of one instance is `[W¹ row-major][W²]…[W^L]`; exported
//! tensors are `W1`, `W2`, … with shapes [N₂, N₁], [N₃, N₂], ….
//!
//! The task ignores the data stream: every step is a full-batch gradient step on Y.

use super::{NamedTensor, Real};
use crate::linalg::{self, Matrix, Svd};
use crate::rng::{InstanceKey, StreamRng};
use crate::train::Task;
use thiserror::Error;

/// Why a deep linear network or task could not be built, or a similarity matrix computed.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum DeepLinearError {
    /// Fewer than two widths (a chain needs an input and an output).
    #[error("a deep linear network needs at least an input and an output width, got {0:?}")]
    TooFewLayers(Vec<usize>),
    /// A zero width.
    #[error("width {index} of {widths:?} is zero")]
    ZeroWidth {
        /// Position in the widths list (0 = the items).
        index: usize,
        /// All widths.
        widths: Vec<usize>,
    },
    /// Targets with a non-finite entry.
    #[error("target ({property}, {item}) is not finite")]
    NonFiniteTarget {
        /// Row of Y.
        property: usize,
        /// Column of Y.
        item: usize,
    },
    /// The zero start of a chain of depth ≥ 2: W = 0 is a saddle with zero gradient, nothing learns.
    #[error("the zero start is a saddle point for depth {0} ≥ 2 (no gradient): use the aligned or Gaussian start")]
    ZeroStartIsSaddle(usize),
    /// An initial mode strength that is not positive and finite.
    #[error("the aligned start needs a positive initial strength a₀, got {0}")]
    BadInitialStrength(f64),
    /// A Gaussian scale that is negative or not finite.
    #[error("the Gaussian start needs a non-negative finite scale, got {0}")]
    BadScale(f64),
    /// A recorded prediction outside Y.
    #[error("prediction ({property}, {item}) lies outside the {n_properties}×{n_items} targets")]
    PredictionOutOfRange {
        /// Requested property (row).
        property: usize,
        /// Requested item (column).
        item: usize,
        /// N₃.
        n_properties: usize,
        /// P.
        n_items: usize,
    },
    /// An exported weight tensor is missing.
    #[error("no tensor named {0}")]
    MissingTensor(String),
    /// An exported weight tensor with a shape that does not continue the chain.
    #[error("tensor {name} has shape {shape:?}, expected [_, {expected_columns}]")]
    TensorShape {
        /// Tensor name.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Columns it must have (the previous layer's rows, or P).
        expected_columns: usize,
    },
    /// A hidden layer index outside 1..=L.
    #[error("layer {0} does not exist (layers are 1..=depth)")]
    BadLayer(usize),
}

/// Widths of a chain: [N₁ = P, N₂, …, N_{L+1} = N₃]; depth L = widths − 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeepLinearShape {
    widths: Vec<usize>,
}

/// Buffers of one forward/backward pass.
#[derive(Clone, Debug, Default)]
pub struct DeepLinearScratch<T> {
    /// prefix[l] = P_{l+1} = W^{l+1}⋯W¹: [N_{l+2}, P]; the last is ŷ.
    prefix: Vec<Vec<T>>,
    /// E = ŷ − Y, then G_l as the backward pass walks down: [N_{l+1}, P].
    g: Vec<T>,
    /// Next G (ping-pong with `g`).
    g_next: Vec<T>,
}

impl DeepLinearShape {
    /// A chain with widths [N₁, …, N_{L+1}] (at least two, all positive).
    pub fn new(widths: Vec<usize>) -> Result<Self, DeepLinearError> {
        if widths.len() < 2 {
            return Err(DeepLinearError::TooFewLayers(widths));
        }
        if let Some(index) = widths.iter().position(|&w| w == 0) {
            return Err(DeepLinearError::ZeroWidth { index, widths });
        }
        Ok(Self { widths })
    }

    /// [N₁, …, N_{L+1}].
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// L: the number of weight matrices.
    pub fn depth(&self) -> usize {
        self.widths.len() - 1
    }

    /// P = N₁: items (one-hot inputs).
    pub fn n_items(&self) -> usize {
        self.widths[0]
    }

    /// N₃ = N_{L+1}: properties (outputs).
    pub fn n_properties(&self) -> usize {
        self.widths[self.depth()]
    }

    /// (rows, columns) of W^{l+1} (0-based `l`): [N_{l+2}, N_{l+1}].
    pub fn layer_shape(&self, l: usize) -> (usize, usize) {
        (self.widths[l + 1], self.widths[l])
    }

    /// Offset of W^{l+1} (0-based `l`) in the flat parameter vector.
    pub fn offset(&self, l: usize) -> usize {
        (0..l).map(|k| self.widths[k] * self.widths[k + 1]).sum()
    }

    /// Σ_l N_{l+1} N_l.
    pub fn parameter_count(&self) -> usize {
        self.offset(self.depth())
    }

    /// Fresh buffers.
    pub fn scratch<T: Real>(&self) -> DeepLinearScratch<T> {
        let p = self.n_items();
        let widest = *self.widths.iter().max().unwrap();
        DeepLinearScratch {
            prefix: (1..=self.depth())
                .map(|l| vec![T::zero(); self.widths[l] * p])
                .collect(),
            g: vec![T::zero(); widest * p],
            g_next: vec![T::zero(); widest * p],
        }
    }

    /// Loss L = ½‖Y − W^L⋯W¹‖²_F and, if `gradient` is given, dL/dθ (overwritten, same layout as
    /// `parameters`). `targets` is Y row-major, [N₃, P].
    pub fn loss_and_gradient<T: Real>(
        &self,
        parameters: &[T],
        targets: &[T],
        gradient: Option<&mut [T]>,
        scratch: &mut DeepLinearScratch<T>,
    ) -> T {
        let (depth, p) = (self.depth(), self.n_items());
        assert_eq!(parameters.len(), self.parameter_count());
        assert_eq!(targets.len(), self.n_properties() * p);
        let weight = |l: usize| {
            let (r, c) = self.layer_shape(l);
            &parameters[self.offset(l)..self.offset(l) + r * c]
        };

        // ---- forward: P_1 = W¹ (X = I), P_{l+1} = W^{l+1} P_l;  ŷ = P_L: [N₃, P]
        scratch.prefix[0].copy_from_slice(weight(0));
        for l in 1..depth {
            let (rows, inner) = self.layer_shape(l);
            let (done, rest) = scratch.prefix.split_at_mut(l);
            matmul(weight(l), &done[l - 1], &mut rest[0], rows, inner, p);
        }

        // ---- loss: E = ŷ − Y;  L = ½ Σ E²
        let n_out = self.n_properties() * p;
        let err = &mut scratch.g[..n_out];
        let mut loss = T::zero();
        for ((e, &y_hat), &y) in err.iter_mut().zip(&scratch.prefix[depth - 1]).zip(targets) {
            *e = y_hat - y;
            loss += *e * *e;
        }
        let loss = loss * T::of(0.5);
        let Some(gradient) = gradient else {
            return loss;
        };
        assert_eq!(gradient.len(), self.parameter_count());

        // ---- backward, l = L … 1 (0-based l = depth−1 … 0), G_L = E:
        //   dW^l = G_l P_{l−1}ᵀ  (P_0 = I, so dW¹ = G_1);   G_{l−1} = W^lᵀ G_l
        for l in (0..depth).rev() {
            let (rows, cols) = self.layer_shape(l);
            let d_weight = &mut gradient[self.offset(l)..self.offset(l) + rows * cols];
            let g = &scratch.g[..rows * p];
            if l == 0 {
                d_weight.copy_from_slice(g);
            } else {
                matmul_a_bt(g, &scratch.prefix[l - 1], d_weight, rows, p, cols);
                matmul_at_b(weight(l), g, &mut scratch.g_next[..cols * p], cols, rows, p);
                std::mem::swap(&mut scratch.g, &mut scratch.g_next);
            }
        }
        loss
    }

    /// The weights W¹ … W^L in f64.
    pub fn weights(&self, parameters: &[f32]) -> Vec<Matrix> {
        (0..self.depth())
            .map(|l| {
                let (r, c) = self.layer_shape(l);
                let at = self.offset(l);
                Matrix::from_row_major(
                    r,
                    c,
                    parameters[at..at + r * c]
                        .iter()
                        .map(|&x| x as f64)
                        .collect(),
                )
            })
            .collect()
    }

    /// The network's map W^L⋯W¹ in f64, [N₃, P]: column μ is the prediction ŷ for item μ.
    pub fn total_map(&self, parameters: &[f32]) -> Matrix {
        chain_product(&self.weights(parameters))
    }

    /// Tensors `W1` … `WL`, shapes [N₂, N₁], [N₃, N₂], ….
    pub fn export(&self, parameters: &[f32]) -> Vec<NamedTensor> {
        (0..self.depth())
            .map(|l| {
                let (r, c) = self.layer_shape(l);
                let at = self.offset(l);
                NamedTensor {
                    name: format!("W{}", l + 1),
                    shape: vec![r, c],
                    data: parameters[at..at + r * c].to_vec(),
                }
            })
            .collect()
    }
}

/// W^k ⋯ W¹ for weights [W¹, …, W^k] (at least one).
fn chain_product(weights: &[Matrix]) -> Matrix {
    let mut product = weights[0].clone();
    for w in &weights[1..] {
        product = w.matmul(&product);
    }
    product
}

/// The imbalances C_l = W^{l+1}ᵀW^{l+1} − W^l W^lᵀ ([N_{l+1}, N_{l+1}], l = 1 … L−1), conserved by
/// gradient flow; gradient descent changes C_l by exactly λ²(dW^{l+1}ᵀdW^{l+1} − dW^l dW^lᵀ) per
/// step (the O(λ) terms cancel).
pub fn imbalances(weights: &[Matrix]) -> Vec<Matrix> {
    weights
        .windows(2)
        .map(|w| {
            w[1].transpose_matmul(&w[1])
                .sub(&w[0].matmul(&w[0].transpose()))
        })
        .collect()
}

/// Drift of each conserved quantity, ‖C_l(current) − C_l(initial)‖_F for l = 1 … L−1.
pub fn conservation_drift(shape: &DeepLinearShape, initial: &[f32], current: &[f32]) -> Vec<f64> {
    imbalances(&shape.weights(initial))
        .iter()
        .zip(imbalances(&shape.weights(current)))
        .map(|(c0, c)| c.sub(c0).frobenius_norm())
        .collect()
}

/// The representational similarity matrix of hidden layer `layer` (1 ≤ layer ≤ L) from exported
/// weights: H = W^layer ⋯ W¹ ([N_{layer+1}, P], column μ = item μ's hidden code, since the items
/// are one-hot) and RSM = HᵀH ([P, P], entry (μ, ν) = h_μ · h_ν). `layer = 1` is the first hidden
/// layer of §F1's heatmaps; `layer = L` gives the output similarity ŷᵀŷ.
pub fn representational_similarity(
    tensors: &[NamedTensor],
    layer: usize,
) -> Result<Matrix, DeepLinearError> {
    if layer == 0 {
        return Err(DeepLinearError::BadLayer(layer));
    }
    let mut weights: Vec<Matrix> = Vec::with_capacity(layer);
    for l in 1..=layer {
        let name = format!("W{l}");
        let t = tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| DeepLinearError::MissingTensor(name.clone()))?;
        let expected_columns = weights
            .last()
            .map_or(t.shape.get(1).copied().unwrap_or(0), |w| w.rows());
        if t.shape.len() != 2
            || t.shape[1] != expected_columns
            || t.data.len() != t.shape[0] * t.shape[1]
        {
            return Err(DeepLinearError::TensorShape {
                name,
                shape: t.shape.clone(),
                expected_columns,
            });
        }
        weights.push(Matrix::from_row_major(
            t.shape[0],
            t.shape[1],
            t.data.iter().map(|&x| x as f64).collect(),
        ));
    }
    let hidden = chain_product(&weights);
    Ok(hidden.transpose_matmul(&hidden))
}

/// How the weights start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DeepLinearStart {
    /// Balanced and aligned with Y's SVD, every mode at strength a₀ (§F1's closed-form start).
    /// Two layers: W¹ = R·diag(√a₀)·Vᵀ, W² = U·diag(√a₀)·Rᵀ with R a random orthonormal
    /// [N₂, k] from the initialisation stream. Depth L: each layer carries a₀^{1/L}
    /// (W¹ = R₁ a₀^{1/L} Vᵀ, W^l = R_l a₀^{1/L} R_{l−1}ᵀ, W^L = U a₀^{1/L} R_{L−1}ᵀ), so
    /// W^L⋯W¹ = U diag(a₀) Vᵀ and every C_l = 0. Only the k = min(modes, narrowest hidden width)
    /// strongest modes are seeded; the others start (and stay) at 0.
    Aligned {
        /// a₀ > 0.
        initial_strength: f64,
    },
    /// Independent N(0, scale²) entries from the initialisation stream (Saxe et al.'s small random
    /// start).
    Gaussian {
        /// Standard deviation of every entry.
        scale: f64,
    },
    /// All zero: the shallow control's start (depth 1 only; for depth ≥ 2 it is a saddle).
    Zero,
}

/// An entry ŷ_{m,i} = (W^L⋯W¹)_{m,i} recorded in the history (e.g. illusory correlations, S6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PredictionIndex {
    /// Property m (row of Y, 0-based).
    pub property: usize,
    /// Item i (column of Y, 0-based).
    pub item: usize,
}

/// One deep linear network learning the item × property matrix Y by full-batch gradient descent.
///
/// Observables, in order:
/// - `mode_strength_1` … `mode_strength_r`: a_α = u_αᵀ W^L⋯W¹ v_α for every mode of Y's thin SVD
///   (r = min(N₃, P), decreasing s_α, including zero singular values);
/// - depth ≥ 2, aligned start: `conservation_1` … `conservation_{L−1}`: ‖C_l(t) − C_l(0)‖_F with
///   C_l = W^{l+1}ᵀW^{l+1} − W^l W^lᵀ, whose initial value is 0 for this start;
/// - depth ≥ 2, Gaussian start: `imbalance_1` … `imbalance_{L−1}`: ‖C_l(t)‖_F (the initial value is
///   random and [`Task::observe`] does not see the initial parameters; use [`conservation_drift`]
///   on the initial and current parameters for the drift);
/// - `prediction_m_i` for each requested [`PredictionIndex`]: ŷ_{m,i}(t).
#[derive(Clone, Debug)]
pub struct DeepLinearTask {
    shape: DeepLinearShape,
    /// Y row-major [N₃, P] in f64 (exact loss) and f32 (training).
    targets: Vec<f64>,
    targets_f32: Vec<f32>,
    /// Y's thin SVD: u_α (feature synthesizers), s_α, v_α (object analyzers).
    modes: Svd,
    start: DeepLinearStart,
    predictions: Vec<PredictionIndex>,
}

impl DeepLinearTask {
    /// A network with hidden widths `hidden_widths` (empty: the shallow control ŷ = W x) learning
    /// `targets` = Y ([N₃, P]; P items, N₃ properties) from `start`, recording `predictions`.
    pub fn new(
        targets: &Matrix,
        hidden_widths: &[usize],
        start: DeepLinearStart,
        predictions: Vec<PredictionIndex>,
    ) -> Result<Self, DeepLinearError> {
        let mut widths = vec![targets.cols()];
        widths.extend_from_slice(hidden_widths);
        widths.push(targets.rows());
        let shape = DeepLinearShape::new(widths)?;
        let (n_properties, n_items) = (targets.rows(), targets.cols());
        if let Some(k) = targets.as_slice().iter().position(|v| !v.is_finite()) {
            return Err(DeepLinearError::NonFiniteTarget {
                property: k / n_items,
                item: k % n_items,
            });
        }
        match start {
            DeepLinearStart::Aligned { initial_strength }
                if !(initial_strength > 0.0 && initial_strength.is_finite()) =>
            {
                return Err(DeepLinearError::BadInitialStrength(initial_strength));
            }
            DeepLinearStart::Gaussian { scale } if !(scale >= 0.0 && scale.is_finite()) => {
                return Err(DeepLinearError::BadScale(scale));
            }
            DeepLinearStart::Zero if shape.depth() >= 2 => {
                return Err(DeepLinearError::ZeroStartIsSaddle(shape.depth()));
            }
            _ => {}
        }
        if let Some(bad) = predictions
            .iter()
            .find(|q| q.property >= n_properties || q.item >= n_items)
        {
            return Err(DeepLinearError::PredictionOutOfRange {
                property: bad.property,
                item: bad.item,
                n_properties,
                n_items,
            });
        }
        Ok(Self {
            shape,
            targets: targets.as_slice().to_vec(),
            targets_f32: targets.as_slice().iter().map(|&y| y as f32).collect(),
            modes: linalg::svd(targets),
            start,
            predictions,
        })
    }

    /// The chain's widths and layout.
    pub fn shape(&self) -> &DeepLinearShape {
        &self.shape
    }

    /// Y's thin SVD (u_α, s_α, v_α), the basis of the mode strengths.
    pub fn modes(&self) -> &Svd {
        &self.modes
    }

    /// a_α = u_αᵀ W^L⋯W¹ v_α for every mode α of Y.
    pub fn mode_strengths(&self, parameters: &[f32]) -> Vec<f64> {
        let total = self.shape.total_map(parameters);
        (0..self.modes.singular_values.len())
            .map(|a| {
                let u = self.modes.u.column(a);
                let v = self.modes.v.column(a);
                linalg::dot(&u, &total.matvec(&v))
            })
            .collect()
    }

    /// Writes the aligned start (see [`DeepLinearStart::Aligned`]).
    fn initialise_aligned(&self, rng: &mut StreamRng, a0: f64, parameters: &mut [f32]) {
        let depth = self.shape.depth();
        let widths = self.shape.widths();
        let hidden_min = widths[1..depth].iter().copied().min().unwrap_or(usize::MAX);
        let k = self.modes.singular_values.len().min(hidden_min);
        let per_layer = a0.powf(1.0 / depth as f64);
        // Bases: V_k on the input side, R_1 … R_{L−1} for the hidden layers, U_k on the output side.
        let mut bases = vec![self.modes.v.leading_columns(k)];
        bases.extend((1..depth).map(|l| linalg::random_orthonormal(rng, widths[l], k)));
        bases.push(self.modes.u.leading_columns(k));
        // W^{l+1} = a₀^{1/L} · (output basis)(input basis)ᵀ.
        for l in 0..depth {
            let w = bases[l + 1].matmul(&bases[l].transpose()).scale(per_layer);
            let at = self.shape.offset(l);
            for (p, &x) in parameters[at..at + w.as_slice().len()]
                .iter_mut()
                .zip(w.as_slice())
            {
                *p = x as f32;
            }
        }
    }
}

impl Task for DeepLinearTask {
    type Workspace = DeepLinearScratch<f32>;

    fn parameter_count(&self) -> usize {
        self.shape.parameter_count()
    }

    fn initialise(&self, rng: &mut StreamRng, parameters: &mut [f32]) {
        match self.start {
            DeepLinearStart::Aligned { initial_strength } => {
                self.initialise_aligned(rng, initial_strength, parameters)
            }
            DeepLinearStart::Gaussian { scale } => {
                for p in parameters.iter_mut() {
                    *p = (scale * rng.standard_normal()) as f32;
                }
            }
            DeepLinearStart::Zero => parameters.fill(0.0),
        }
    }

    fn workspace(&self) -> Self::Workspace {
        self.shape.scratch()
    }

    /// Full batch: the stream is not drawn from.
    fn loss_and_gradient(
        &self,
        parameters: &[f32],
        _rng: &mut StreamRng,
        workspace: &mut Self::Workspace,
        gradient: &mut [f32],
    ) -> f64 {
        self.shape
            .loss_and_gradient(parameters, &self.targets_f32, Some(gradient), workspace)
            as f64
    }

    /// The exact loss ½‖Y − W^L⋯W¹‖²_F in f64.
    fn evaluation_loss(&self, parameters: &[f32], _key: &InstanceKey) -> f64 {
        let total = self.shape.total_map(parameters);
        0.5 * total
            .as_slice()
            .iter()
            .zip(&self.targets)
            .map(|(a, y)| (a - y).powi(2))
            .sum::<f64>()
    }

    fn observable_names(&self) -> Vec<String> {
        let mut names: Vec<String> = (1..=self.modes.singular_values.len())
            .map(|a| format!("mode_strength_{a}"))
            .collect();
        let conserved = match self.start {
            DeepLinearStart::Gaussian { .. } => "imbalance",
            _ => "conservation",
        };
        names.extend((1..self.shape.depth()).map(|l| format!("{conserved}_{l}")));
        names.extend(
            self.predictions
                .iter()
                .map(|q| format!("prediction_{}_{}", q.property, q.item)),
        );
        names
    }

    fn observe(&self, parameters: &[f32]) -> Vec<f64> {
        let weights = self.shape.weights(parameters);
        let total = chain_product(&weights);
        let mut values: Vec<f64> = (0..self.modes.singular_values.len())
            .map(|a| {
                linalg::dot(
                    &self.modes.u.column(a),
                    &total.matvec(&self.modes.v.column(a)),
                )
            })
            .collect();
        // Aligned and zero starts have C_l(0) = 0, so ‖C_l(t)‖ is the drift; for Gaussian starts it
        // is the imbalance itself (see the type's docs).
        values.extend(imbalances(&weights).iter().map(Matrix::frobenius_norm));
        values.extend(self.predictions.iter().map(|q| total[(q.property, q.item)]));
        values
    }

    fn export(&self, parameters: &[f32]) -> Vec<NamedTensor> {
        self.shape.export(parameters)
    }
}

/// out[m×n] = a[m×k] · b[k×n] (overwrites).
fn matmul<T: Real>(a: &[T], b: &[T], out: &mut [T], m: usize, k: usize, n: usize) {
    out[..m * n].fill(T::zero());
    for i in 0..m {
        let row = &mut out[i * n..(i + 1) * n];
        for (kk, &aik) in a[i * k..(i + 1) * k].iter().enumerate() {
            for (o, &bkj) in row.iter_mut().zip(&b[kk * n..(kk + 1) * n]) {
                *o += aik * bkj;
            }
        }
    }
}

/// out[m×n] = a[m×k] · b[n×k]ᵀ (overwrites).
fn matmul_a_bt<T: Real>(a: &[T], b: &[T], out: &mut [T], m: usize, k: usize, n: usize) {
    for i in 0..m {
        let a_row = &a[i * k..(i + 1) * k];
        for j in 0..n {
            out[i * n + j] = a_row
                .iter()
                .zip(&b[j * k..(j + 1) * k])
                .fold(T::zero(), |s, (&x, &y)| s + x * y);
        }
    }
}

/// out[m×n] = a[k×m]ᵀ · b[k×n] (overwrites).
fn matmul_at_b<T: Real>(a: &[T], b: &[T], out: &mut [T], m: usize, k: usize, n: usize) {
    out[..m * n].fill(T::zero());
    for kk in 0..k {
        let b_row = &b[kk * n..(kk + 1) * n];
        for (i, &aki) in a[kk * m..(kk + 1) * m].iter().enumerate() {
            for (o, &bkj) in out[i * n..(i + 1) * n].iter_mut().zip(b_row) {
                *o += aki * bkj;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::items::ItemPropertySet;
    use crate::models::{finite_difference_gradient, relative_gradient_error};

    fn key(instance: u64) -> InstanceKey {
        InstanceKey {
            seed: 7,
            instance,
            replica: 0,
        }
    }

    fn four_items() -> Matrix {
        ItemPropertySet::four_items().targets
    }

    #[test]
    fn gradients_match_finite_differences_in_f64_for_depths_1_2_3() {
        for widths in [
            vec![4, 5],
            vec![4, 3, 5],
            vec![4, 3, 2, 5],
            vec![3, 6, 4, 2],
        ] {
            let shape = DeepLinearShape::new(widths.clone()).unwrap();
            let mut rng = StreamRng::seed_from_u64(widths.len() as u64);
            let params: Vec<f64> = (0..shape.parameter_count())
                .map(|_| 0.7 * rng.standard_normal())
                .collect();
            let targets: Vec<f64> = (0..shape.n_properties() * shape.n_items())
                .map(|_| rng.standard_normal())
                .collect();
            let mut analytic = vec![f64::NAN; params.len()];
            let loss = shape.loss_and_gradient(
                &params,
                &targets,
                Some(&mut analytic),
                &mut shape.scratch(),
            );
            // The loss is a polynomial of degree 2L in θ; h = 1e-6 gives central differences with
            // truncation ~h²·|∂³L| ≈ 1e-12 and rounding ~ε|L|/h ≈ 1e-10 against gradients of order
            // one, well inside the 1e-6 bound; a wrong transpose or a missing factor errs by O(1).
            let numeric = finite_difference_gradient(&params, 1e-6, |p| {
                shape.loss_and_gradient(p, &targets, None, &mut shape.scratch())
            });
            let err = relative_gradient_error(&analytic, &numeric);
            assert!(err < 1e-6, "{widths:?}: relative gradient error {err}");
            assert!(loss > 0.0);
        }
    }

    #[test]
    fn aligned_start_is_balanced_and_seeds_every_mode() {
        for hidden in [vec![4], vec![5, 6], vec![]] {
            let task = DeepLinearTask::new(
                &four_items(),
                &hidden,
                DeepLinearStart::Aligned {
                    initial_strength: 1e-2,
                },
                vec![],
            )
            .unwrap();
            let mut p = vec![0.0f32; task.parameter_count()];
            task.initialise(&mut StreamRng::seed_from_u64(1), &mut p);
            let obs = task.observe(&p);
            // Modes: a_α(0) = a₀ up to f32 rounding of the weights (~1e-7 relative).
            for a in &obs[..4] {
                assert!((a - 1e-2).abs() < 1e-8, "{hidden:?}: {obs:?}");
            }
            // C_l(0) = 0 up to the same rounding (entries of size ≤ a₀^{2/L} ≈ 1e-2).
            for c in &obs[4..] {
                assert!(*c < 1e-8, "{hidden:?}: {obs:?}");
            }
            // Off-mode entries of the map are zero: W_total = U diag(a₀) Vᵀ.
            let total = task.shape().total_map(&p);
            let expected = Matrix::from_fn(7, 4, |i, j| {
                (0..4)
                    .map(|a| task.modes().u[(i, a)] * 1e-2 * task.modes().v[(j, a)])
                    .sum()
            });
            assert!(total.sub(&expected).max_abs() < 1e-8);
        }
    }

    #[test]
    fn predictions_and_names() {
        let task = DeepLinearTask::new(
            &four_items(),
            &[3, 3],
            DeepLinearStart::Gaussian { scale: 0.3 },
            vec![PredictionIndex {
                property: 3,
                item: 1,
            }],
        )
        .unwrap();
        let names = task.observable_names();
        assert_eq!(
            names,
            [
                "mode_strength_1",
                "mode_strength_2",
                "mode_strength_3",
                "mode_strength_4",
                "imbalance_1",
                "imbalance_2",
                "prediction_3_1"
            ]
        );
        let mut p = vec![0.0f32; task.parameter_count()];
        task.initialise(&mut StreamRng::seed_from_u64(4), &mut p);
        let obs = task.observe(&p);
        assert_eq!(obs.len(), names.len());
        assert_eq!(obs[6], task.shape().total_map(&p)[(3, 1)]);
        // ½‖Y − ŷ‖² in f64 agrees with the f32 training loss to f32 precision.
        let train_loss = task.loss_and_gradient(
            &p,
            &mut StreamRng::seed_from_u64(0),
            &mut task.workspace(),
            &mut vec![0.0; p.len()],
        );
        let exact = task.evaluation_loss(&p, &key(0));
        assert!((train_loss - exact).abs() < 1e-5 * exact.max(1.0));
        // Exports chain: W1 [3, 4], W2 [3, 3], W3 [7, 3].
        let shapes: Vec<Vec<usize>> = task.export(&p).into_iter().map(|t| t.shape).collect();
        assert_eq!(shapes, [vec![3, 4], vec![3, 3], vec![7, 3]]);
    }

    #[test]
    fn representational_similarity_of_hidden_codes() {
        let task = DeepLinearTask::new(
            &four_items(),
            &[3, 2],
            DeepLinearStart::Gaussian { scale: 0.5 },
            vec![],
        )
        .unwrap();
        let mut p = vec![0.0f32; task.parameter_count()];
        task.initialise(&mut StreamRng::seed_from_u64(5), &mut p);
        let tensors = task.export(&p);
        let w = task.shape().weights(&p);
        // Layer 2: H = W²W¹ [2, 4], RSM = HᵀH [4, 4].
        let h = w[1].matmul(&w[0]);
        let rsm = representational_similarity(&tensors, 2).unwrap();
        assert_eq!((rsm.rows(), rsm.cols()), (4, 4));
        assert!(rsm.sub(&h.transpose_matmul(&h)).max_abs() < 1e-12);
        // Layer 3 is the output: ŷᵀŷ.
        let out = task.shape().total_map(&p);
        let rsm = representational_similarity(&tensors, 3).unwrap();
        assert!(rsm.sub(&out.transpose_matmul(&out)).max_abs() < 1e-12);
        assert_eq!(
            representational_similarity(&tensors, 4),
            Err(DeepLinearError::MissingTensor("W4".into()))
        );
        assert_eq!(
            representational_similarity(&tensors, 0),
            Err(DeepLinearError::BadLayer(0))
        );
    }

    #[test]
    fn invalid_settings_are_rejected() {
        let y = four_items();
        assert_eq!(
            DeepLinearTask::new(&y, &[4], DeepLinearStart::Zero, vec![]).unwrap_err(),
            DeepLinearError::ZeroStartIsSaddle(2)
        );
        assert!(matches!(
            DeepLinearTask::new(&y, &[0], DeepLinearStart::Zero, vec![]),
            Err(DeepLinearError::ZeroWidth { index: 1, .. })
        ));
        assert!(matches!(
            DeepLinearTask::new(
                &y,
                &[4],
                DeepLinearStart::Aligned {
                    initial_strength: 0.0
                },
                vec![]
            ),
            Err(DeepLinearError::BadInitialStrength(_))
        ));
        assert!(matches!(
            DeepLinearTask::new(
                &y,
                &[],
                DeepLinearStart::Zero,
                vec![PredictionIndex {
                    property: 7,
                    item: 0
                }]
            ),
            Err(DeepLinearError::PredictionOutOfRange { .. })
        ));
    }
}
