//! The one place that decides which compiled copy of the vectorised code runs: the **kernel set**.
//!
//! Several hot loops exist in more than one compiled copy: the toy kernels ([`crate::kernels`]),
//! the sampler's tested trials ([`crate::data::sparse`]) and the Adam step ([`crate::optim`]).
//! Which copy runs is a [`KernelSet`]; every one of those places takes it from here, either passed
//! explicitly (the kernels' `_with` entry points, which the tests use to run every set) or through
//! [`active()`], the process-wide choice. Nothing else in the workspace asks the CPU what it has.
//!
//! ## The sets and what they need
//!
//! | set | CPU features required | what runs |
//! |---|---|---|
//! | [`KernelSet::Portable`] | none (x86-64 baseline, or any other target) | plain Rust, auto-vectorised for SSE2; never a fused multiply-add |
//! | [`KernelSet::Avx2Fma`] | `avx2`, `fma`, `popcnt` | the kernels' hot loops compiled for AVX2 with FMA intrinsics (small-m sweeps, dense encoder, fused decoder pass in blocks of 3 examples, sparse decoder backward); the sampler's AVX2 trial masks and values; POPCNT success counts; the AVX2 Adam copy |
//! | [`KernelSet::Avx512Vl`] | the above and `avx512f`, `avx512vl` | as `avx2-fma`, plus: the small-m sweep two features at a time, the fused decoder pass in blocks of 6, the sparse decoder backward with mask registers (all on 256-bit vectors with 32 registers); the sampler's trial masks on 512-bit registers, its expand into a dense batch and its positions by compress |
//!
//! The sets are ordered: each needs everything the previous one needs, so a CPU supports every
//! set up to [`KernelSet::detect()`].
//!
//! ## Which sets give the same bits
//!
//! Per component (each claim is tested where this CPU can run both sides):
//! - **sampler**: integer arithmetic and exact conversions in every copy, so every set draws the
//!   same batches (`data::sparse` tests each set against the portable copy).
//! - **Adam**: the AVX2 copy is the portable loop compiled for AVX2; Rust never fuses a product
//!   into a sum, so it gives the same bits (`optim` tests).
//! - **kernels, `portable` vs the others**: different bits. The SIMD copies round a·b + c once
//!   (FMA) where the portable loops round twice.
//! - **kernels, `avx2-fma` vs `avx512vl`**: the same gradient bits on every path (the paired
//!   sweep is two single sweeps, the mask-register backward the AVX2 one, each z of the fused
//!   decoder pass the same chain of FMAs), hence the same trained parameters. But the fused
//!   decoder pass (m > 8) sums each register block's loss in f32 over blocks of 3 examples
//!   (AVX2, 16 registers) or 6 (AVX-512VL, 32 registers), so the *reported training loss* of a
//!   large-m model differs in its last bits, and with it the loss history in `metrics.json`.
//!
//! So two results agree to the bit only when their sets are equal. One more thing decides bits
//! that this crate does not dispatch: `matrixmultiply`'s GEMMs (the large-m path's dense
//! products) pick their own kernel from the CPU (AVX-512F or FMA+AVX2: fused; otherwise not), and
//! glibc's `log`/`exp`/`sin` (the sampler's geometric gaps, the initialisation) pick an FMA
//! variant on CPUs with FMA and AVX2. Every CPU that runs `avx2-fma` or `avx512vl` has FMA and
//! AVX2, so for those two sets the set decides; a `portable` run on a CPU with FMA and AVX2
//! (forced) is not bit-compatible with a `portable` run on a CPU without. [`bit_class`] names
//! the class a (set, features) pair falls in and [`bit_compatible`] compares two. (The
//! matrixmultiply 0.3 kernels for AVX-512F and for FMA+AVX2 accumulate each element over k in the
//! same order with FMAs, and this crate calls them with α = 1, β ∈ {0, 1}, where their epilogues
//! agree: read from its source, not testable on one machine. CPUs with FMA4 but not AVX2, AMD
//! 2011–2014, get glibc's FMA4 variants and are not told apart. All of this assumes the same
//! binary and the same glibc.)

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// Which compiled copy of the vectorised code runs (see the module doc for what each needs and
/// which give the same bits). Ordered: each set needs every feature the previous one needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KernelSet {
    /// Plain Rust for the target's baseline; runs on every CPU.
    Portable,
    /// AVX2 with FMA (and POPCNT).
    Avx2Fma,
    /// AVX2, FMA, POPCNT, AVX-512F and AVX-512VL.
    Avx512Vl,
}

impl KernelSet {
    /// Every set, ascending.
    pub const ALL: [KernelSet; 3] = [KernelSet::Portable, KernelSet::Avx2Fma, KernelSet::Avx512Vl];

    /// The name used in outputs and options: `portable`, `avx2-fma` or `avx512vl`.
    pub fn name(self) -> &'static str {
        match self {
            KernelSet::Portable => "portable",
            KernelSet::Avx2Fma => "avx2-fma",
            KernelSet::Avx512Vl => "avx512vl",
        }
    }

    /// The set called `name` (the inverse of [`KernelSet::name`]).
    pub fn parse(name: &str) -> Option<KernelSet> {
        Self::ALL.into_iter().find(|set| set.name() == name)
    }

    /// The CPU features this set's code is compiled for, as `is_x86_feature_detected!` names them.
    pub fn required_features(self) -> &'static [&'static str] {
        match self {
            KernelSet::Portable => &[],
            KernelSet::Avx2Fma => &["avx2", "fma", "popcnt"],
            KernelSet::Avx512Vl => &["avx2", "fma", "popcnt", "avx512f", "avx512vl"],
        }
    }

    /// The best set this CPU supports (detected once, then cached).
    pub fn detect() -> KernelSet {
        static DETECTED: OnceLock<KernelSet> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            let present = features();
            Self::ALL
                .into_iter()
                .rev()
                .find(|set| set.required_features().iter().all(|f| present.contains(f)))
                .unwrap_or(KernelSet::Portable)
        })
    }

    /// Every set this CPU can run, ascending.
    pub fn supported() -> Vec<KernelSet> {
        Self::ALL
            .into_iter()
            .filter(|set| set.is_supported())
            .collect()
    }

    /// Whether this CPU can run the set.
    #[inline]
    pub fn is_supported(self) -> bool {
        self <= Self::detect()
    }
}

impl std::fmt::Display for KernelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a kernel set cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuError {
    /// The CPU lacks features the set is compiled for.
    #[error(
        "kernel set {set} needs CPU features {} that this CPU does not have (it supports: {})",
        missing.join(", "),
        supported_names()
    )]
    Unsupported {
        /// The set asked for.
        set: KernelSet,
        /// Its required features this CPU lacks.
        missing: Vec<&'static str>,
    },
}

fn supported_names() -> String {
    KernelSet::supported()
        .iter()
        .map(|set| set.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// 0: not forced (use [`KernelSet::detect`]); 1 + index in [`KernelSet::ALL`] otherwise.
static FORCED: AtomicU8 = AtomicU8::new(0);

/// The process-wide kernel set: [`KernelSet::detect()`] unless [`force`]d.
#[inline]
pub fn active() -> KernelSet {
    match FORCED.load(Ordering::Relaxed) {
        0 => KernelSet::detect(),
        k => KernelSet::ALL[k as usize - 1],
    }
}

/// Makes `set` the process-wide kernel set ([`active`]). Call before training: steps that ran
/// before the call used the previous set, and a run whose steps mixed sets has the bits of
/// neither. Fails, changing nothing, if the CPU cannot run `set`.
pub fn force(set: KernelSet) -> Result<(), CpuError> {
    if !set.is_supported() {
        let present = features();
        let missing = set
            .required_features()
            .iter()
            .copied()
            .filter(|f| !present.contains(f))
            .collect();
        return Err(CpuError::Unsupported { set, missing });
    }
    let index = KernelSet::ALL.iter().position(|&s| s == set).unwrap();
    FORCED.store(index as u8 + 1, Ordering::Relaxed);
    Ok(())
}

/// The CPU features that matter to tms that this CPU has, in a fixed order: those the kernel sets
/// need (`avx2`, `fma`, `popcnt`, `avx512f`, `avx512vl`) and `avx512bw` (no set needs it; recorded
/// because it tells AVX-512 CPUs apart). Empty off x86-64.
pub fn features() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        let detected = [
            ("avx2", std::is_x86_feature_detected!("avx2")),
            ("fma", std::is_x86_feature_detected!("fma")),
            ("popcnt", std::is_x86_feature_detected!("popcnt")),
            ("avx512f", std::is_x86_feature_detected!("avx512f")),
            ("avx512vl", std::is_x86_feature_detected!("avx512vl")),
            ("avx512bw", std::is_x86_feature_detected!("avx512bw")),
        ];
        detected
            .into_iter()
            .filter_map(|(name, present)| present.then_some(name))
            .collect()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

/// The class of results a run with `set` on a CPU with `features` (as [`features()`] lists them)
/// falls in: runs agree to the bit only within a class (module doc). `avx512vl` and `avx2-fma` are
/// their sets' names; a `portable` run is `portable+fma` on a CPU with FMA and AVX2 (where
/// matrixmultiply's GEMMs and glibc's libm fuse multiply-adds) and `portable` elsewhere.
pub fn bit_class<S: AsRef<str>>(set: KernelSet, features: &[S]) -> &'static str {
    let has = |name: &str| features.iter().any(|f| f.as_ref() == name);
    match set {
        KernelSet::Portable if has("fma") && has("avx2") => "portable+fma",
        set => set.name(),
    }
}

/// Whether a result of `set` on a CPU with `features` and one of `other_set` on a CPU with
/// `other_features` can have the same bits (the same [`bit_class`]): for `avx2-fma` and
/// `avx512vl`, when the sets are equal; for `portable`, when both CPUs also agree on FMA and AVX2.
pub fn bit_compatible<S: AsRef<str>, T: AsRef<str>>(
    set: KernelSet,
    features: &[S],
    other_set: KernelSet,
    other_features: &[T],
) -> bool {
    bit_class(set, features) == bit_class(other_set, other_features)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_nothing_else_parses() {
        for set in KernelSet::ALL {
            assert_eq!(KernelSet::parse(set.name()), Some(set));
            assert_eq!(set.to_string(), set.name());
        }
        for wrong in ["", "avx2", "AVX512VL", "avx512", "portable "] {
            assert_eq!(KernelSet::parse(wrong), None, "{wrong:?}");
        }
    }

    #[test]
    fn detection_is_consistent_with_the_features() {
        let present = features();
        let detected = KernelSet::detect();
        // The detected set's features are present, and the next set's are not all present.
        assert!(detected
            .required_features()
            .iter()
            .all(|f| present.contains(f)));
        if let Some(&next) = KernelSet::ALL.iter().find(|&&s| s > detected) {
            assert!(!next.required_features().iter().all(|f| present.contains(f)));
        }
        // Each set needs what the previous one needs.
        for pair in KernelSet::ALL.windows(2) {
            let (low, high) = (pair[0], pair[1]);
            assert!(low < high);
            assert!(low
                .required_features()
                .iter()
                .all(|f| high.required_features().contains(f)));
        }
        let supported = KernelSet::supported();
        assert_eq!(supported.first(), Some(&KernelSet::Portable));
        assert_eq!(supported.last(), Some(&detected));
        assert!(supported.windows(2).all(|w| w[0] < w[1]));
        eprintln!(
            "kernel sets on this CPU: {:?} (features {present:?}); detected {detected}",
            supported.iter().map(|s| s.name()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn an_unsupported_set_is_refused_naming_what_is_missing() {
        // `force` of a supported set would change the process-wide set under the other tests of
        // this binary: that is tested in tests/kernel_sets.rs, a process of its own.
        match KernelSet::ALL.into_iter().find(|s| !s.is_supported()) {
            Some(set) => {
                let Err(CpuError::Unsupported {
                    set: refused,
                    missing,
                }) = force(set)
                else {
                    panic!("{set} is not supported here but was accepted");
                };
                assert_eq!(refused, set);
                assert!(!missing.is_empty());
                assert!(missing.iter().all(|f| !features().contains(f)));
                assert_eq!(
                    active(),
                    KernelSet::detect(),
                    "a refused force changes nothing"
                );
            }
            None => eprintln!("every kernel set runs here: no unsupported set to refuse"),
        }
    }

    #[test]
    fn bit_classes_split_portable_by_fma_and_nothing_else() {
        let avx512 = ["avx2", "fma", "popcnt", "avx512f", "avx512vl", "avx512bw"];
        let avx2 = ["avx2", "fma", "popcnt"];
        let none: [&str; 0] = [];
        // Intel and AMD AVX-512 CPUs on the same set, and avx2-fma with or without AVX-512.
        assert!(bit_compatible(
            KernelSet::Avx512Vl,
            &avx512,
            KernelSet::Avx512Vl,
            &avx512[..5]
        ));
        assert!(bit_compatible(
            KernelSet::Avx2Fma,
            &avx512,
            KernelSet::Avx2Fma,
            &avx2
        ));
        // Different sets never agree.
        for a in KernelSet::ALL {
            for b in KernelSet::ALL {
                if a != b {
                    assert!(!bit_compatible(a, &avx512, b, &avx512), "{a} vs {b}");
                }
            }
        }
        // Portable: by whether the libraries fuse (FMA and AVX2 both present).
        assert!(bit_compatible(
            KernelSet::Portable,
            &avx512,
            KernelSet::Portable,
            &avx2
        ));
        assert!(!bit_compatible(
            KernelSet::Portable,
            &avx2,
            KernelSet::Portable,
            &none
        ));
        assert!(bit_compatible(
            KernelSet::Portable,
            &["fma"],
            KernelSet::Portable,
            &none
        ));
        assert_eq!(bit_class(KernelSet::Portable, &none), "portable");
        assert_eq!(bit_class(KernelSet::Portable, &avx2), "portable+fma");
        let owned: Vec<String> = avx2.iter().map(|s| s.to_string()).collect();
        assert_eq!(bit_class(KernelSet::Avx2Fma, &owned), "avx2-fma");
    }
}
