//! Per-instance random streams.
//!
//! Every instance of every run draws from its own stream, derived from the tuple
//! (run seed, instance index, replica, purpose) by SplitMix64 hashing. Nothing about an instance's
//! randomness depends on thread count, on which other instances share the run, or on how a sweep is
//! split across machines: that is what makes results bit-identical and sweeps shardable.
//!
//! The generator is xoshiro256++ (Blackman & Vigna). We keep our own 30-line implementation instead of
//! an opaque type so that its state is four plain `u64`s a checkpoint can save and restore exactly;
//! a test checks it draws the same numbers as the `rand_xoshiro` crate.

use rand::RngCore;

/// What a stream is used for. Separate purposes give independent streams for the same instance, so
/// that e.g. the evaluation batch does not shift when training takes more or fewer draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum StreamPurpose {
    /// Parameter initialisation.
    Initialisation = 1,
    /// Training minibatches.
    TrainingData = 2,
    /// The fixed evaluation batch used to compare replicas (best-of-N) and report the final loss.
    /// It does not depend on the replica: every replica of an instance is judged on the same batch.
    Evaluation = 3,
    /// Fixed data of a dataset that is drawn once (planted concepts, graph embeddings, trees).
    Dataset = 4,
}

/// Identifies one trained model: its run seed, its index among the run's instances, and its replica
/// number when best-of-N trains several seeds of the same setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InstanceKey {
    /// The run's seed (`train.seed`).
    pub seed: u64,
    /// Global index of the instance (its setting) in the run; stable under sharding.
    pub instance: u64,
    /// Replica number for best-of-N (0 when N = 1).
    pub replica: u64,
}

impl InstanceKey {
    /// A stream for `purpose`. Evaluation and dataset streams ignore the replica.
    pub fn stream(&self, purpose: StreamPurpose) -> StreamRng {
        let replica = match purpose {
            StreamPurpose::Evaluation | StreamPurpose::Dataset => u64::MAX,
            _ => self.replica,
        };
        StreamRng::from_words(&[self.seed, self.instance, replica, purpose as u64])
    }
}

/// SplitMix64 step: the standard seeding mixer for xoshiro generators.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256++ with an inspectable state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRng {
    state: [u64; 4],
}

impl StreamRng {
    /// Seeds the state from a 64-bit seed with SplitMix64, as `rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64` does.
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut sm = seed;
        let state = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self { state }
    }

    /// Hashes a tuple of words into one seed (each word goes through a SplitMix64 round), then seeds.
    pub fn from_words(words: &[u64]) -> Self {
        let mut h = 0x6A09_E667_F3BC_C909u64;
        for &w in words {
            let mut s = h ^ w;
            h = splitmix64(&mut s);
        }
        Self::seed_from_u64(h)
    }

    /// The raw state, for checkpoints.
    pub fn state(&self) -> [u64; 4] {
        self.state
    }

    /// Restores a state saved by [`StreamRng::state`]. An all-zero state is invalid for xoshiro and is
    /// replaced by a fixed non-zero one.
    pub fn from_state(state: [u64; 4]) -> Self {
        if state == [0; 4] {
            return Self::seed_from_u64(0);
        }
        Self { state }
    }

    /// Next 64 random bits (xoshiro256++).
    #[inline]
    pub fn next_word(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform f32 in [0, 1): the top 24 bits, so every value is exactly representable.
    #[inline]
    pub fn uniform_f32(&mut self) -> f32 {
        (self.next_word() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform f64 in [0, 1) from the top 53 bits.
    #[inline]
    pub fn uniform_f64(&mut self) -> f64 {
        (self.next_word() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform f64 in (0, 1]: safe to take the logarithm of.
    #[inline]
    pub fn uniform_open_closed(&mut self) -> f64 {
        ((self.next_word() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, bound) (Lemire's multiply-shift; bias below 2⁻³² for the bounds used here).
    #[inline]
    pub fn below(&mut self, bound: u32) -> u32 {
        (((self.next_word() >> 32) * bound as u64) >> 32) as u32
    }

    /// Standard normal draw (Box–Muller, one of the pair; simple and exact enough for initialisation).
    pub fn standard_normal(&mut self) -> f64 {
        let u1 = self.uniform_open_closed();
        let u2 = self.uniform_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Number of independent xoshiro256++ generators in a [`LaneRng`].
pub const RNG_LANES: usize = 8;

/// Eight xoshiro256++ generators stepped together, for bulk draws (one step gives 8 × 64 bits).
///
/// Stored as four arrays of eight state words (word w of lane l is `state[w][l]`), so that one step
/// is the scalar generator's seven operations on 8-wide integer vectors: the compiler vectorises it,
/// and integer arithmetic makes every compiled copy (portable or AVX2) draw the same bits. A
/// `LaneRng` is seeded from a [`StreamRng`] ([`LaneRng::seeded_from`]), so it inherits the stream's
/// derivation from (seed, instance, replica, purpose) and needs no state of its own in checkpoints.
#[derive(Clone, Debug)]
pub struct LaneRng {
    state: [[u64; RNG_LANES]; 4],
}

impl LaneRng {
    /// Takes 32 words from `rng` (through SplitMix64, so that lanes do not share structure) as the
    /// lanes' states. A lane whose four words are all zero (probability 2⁻²⁵⁶) gets a fixed state.
    pub fn seeded_from(rng: &mut StreamRng) -> Self {
        let mut state = [[0u64; RNG_LANES]; 4];
        for lane in 0..RNG_LANES {
            for word in &mut state {
                let mut s = rng.next_word();
                word[lane] = splitmix64(&mut s);
            }
            if (0..4).all(|w| state[w][lane] == 0) {
                state[0][lane] = 0x9E37_79B9_7F4A_7C15;
            }
        }
        Self { state }
    }

    /// Next 64 random bits of every lane (xoshiro256++ per lane).
    #[inline(always)]
    pub fn next_words(&mut self) -> [u64; RNG_LANES] {
        let [s0, s1, s2, s3] = &mut self.state;
        let mut out = [0u64; RNG_LANES];
        for l in 0..RNG_LANES {
            out[l] = s0[l]
                .wrapping_add(s3[l])
                .rotate_left(23)
                .wrapping_add(s0[l]);
            let t = s1[l] << 17;
            s2[l] ^= s0[l];
            s3[l] ^= s1[l];
            s1[l] ^= s2[l];
            s0[l] ^= s3[l];
            s2[l] ^= t;
            s3[l] = s3[l].rotate_left(45);
        }
        out
    }

    /// Sixteen 32-bit draws: the eight words read as little-endian pairs of halves, i.e.
    /// `[low(w₀), high(w₀), low(w₁), high(w₁), …]` (the order a vector register holds them in).
    #[inline(always)]
    pub fn next_halves(&mut self) -> [u32; 2 * RNG_LANES] {
        let words = self.next_words();
        let mut out = [0u32; 2 * RNG_LANES];
        for l in 0..RNG_LANES {
            out[2 * l] = words[l] as u32;
            out[2 * l + 1] = (words[l] >> 32) as u32;
        }
        out
    }

    /// The state, word-major (`[w][lane]`), for the vectorised copies of the generator.
    pub(crate) fn words(&mut self) -> &mut [[u64; RNG_LANES]; 4] {
        &mut self.state
    }
}

impl RngCore for StreamRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_word() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.next_word()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_word().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn matches_reference_xoshiro256plusplus() {
        let mut ours = StreamRng::seed_from_u64(12345);
        let mut reference = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(12345);
        for _ in 0..1000 {
            assert_eq!(ours.next_word(), reference.next_u64());
        }
    }

    #[test]
    fn every_lane_is_a_reference_xoshiro256plusplus() {
        let mut seeder = StreamRng::seed_from_u64(7);
        let mut lanes = LaneRng::seeded_from(&mut seeder);
        let mut references: Vec<rand_xoshiro::Xoshiro256PlusPlus> = (0..RNG_LANES)
            .map(|l| {
                let mut seed = [0u8; 32];
                for w in 0..4 {
                    seed[8 * w..8 * w + 8].copy_from_slice(&lanes.state[w][l].to_le_bytes());
                }
                rand_xoshiro::Xoshiro256PlusPlus::from_seed(seed)
            })
            .collect();
        for _ in 0..100 {
            let words = lanes.next_words();
            for (l, reference) in references.iter_mut().enumerate() {
                assert_eq!(words[l], reference.next_u64(), "lane {l}");
            }
        }
        // The lanes are distinct generators, and halves come low then high.
        let words = lanes.clone().next_words();
        let halves = lanes.next_halves();
        assert_eq!(halves[6], words[3] as u32);
        assert_eq!(halves[7], (words[3] >> 32) as u32);
        let distinct: std::collections::HashSet<u64> = words.iter().copied().collect();
        assert_eq!(distinct.len(), RNG_LANES);
    }

    #[test]
    fn streams_differ_by_every_component() {
        let base = InstanceKey {
            seed: 1,
            instance: 2,
            replica: 3,
        };
        let first = base.stream(StreamPurpose::TrainingData).next_word();
        let variants = [
            InstanceKey { seed: 9, ..base },
            InstanceKey {
                instance: 9,
                ..base
            },
            InstanceKey { replica: 9, ..base },
        ];
        for v in variants {
            assert_ne!(v.stream(StreamPurpose::TrainingData).next_word(), first);
        }
        assert_ne!(
            base.stream(StreamPurpose::Initialisation).next_word(),
            first
        );
        // Evaluation ignores the replica: all replicas are judged on the same batch.
        assert_eq!(
            base.stream(StreamPurpose::Evaluation).next_word(),
            InstanceKey { replica: 0, ..base }
                .stream(StreamPurpose::Evaluation)
                .next_word()
        );
    }

    #[test]
    fn state_round_trips() {
        let mut a = StreamRng::seed_from_u64(7);
        a.next_word();
        let mut b = StreamRng::from_state(a.state());
        assert_eq!(a.next_word(), b.next_word());
    }

    #[test]
    fn uniform_moments() {
        // Mean 1/2 and variance 1/12; with 10⁶ draws the standard error of the mean is
        // sqrt(1/12/1e6) ≈ 2.9e-4, so 5 standard errors is 1.5e-3.
        let mut r = StreamRng::seed_from_u64(3);
        let n = 1_000_000;
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        for _ in 0..n {
            let u = r.uniform_f32() as f64;
            assert!((0.0..1.0).contains(&u));
            s += u;
            s2 += u * u;
        }
        let mean = s / n as f64;
        assert!((mean - 0.5).abs() < 1.5e-3);
        assert!((s2 / n as f64 - mean * mean - 1.0 / 12.0).abs() < 1.5e-3);
    }
}
